/* condlora split: the rows of a GLUE task's train / dev / test splits under a protocol and seed, as `condlora train`
 * makes them, so that another implementation (PyTorch, PEFT: bench/torch_glue.py) trains and selects on exactly the
 * same examples. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "commands.h"
#include "core/util.h"
#include "data/glue.h"

static void usage(FILE *f) {
    fprintf(f, "usage: condlora split --task TASK --data GLUE_DIR [--protocol paper|glue] [--seed N] [--out FILE]\n"
               "Prints one JSON object: for each split (train, dev, test) the file it comes from and the 1-based\n"
               "line numbers of its rows in that file, in the order `condlora train --seed N` uses them. Under the\n"
               "paper protocol (the default) train.tsv is shuffled with the seed and its first round(10%%) rows are\n"
               "dev; the official dev file is the test split. Under glue, train and dev are the official files.\n"
               "  --seed N    the run's --seed (default 1; `condlora train` splits with its own seed)\n"
               "  --out FILE  write there (atomically) instead of to standard output\n"
               "Exit status: 0 ok, 1 a missing or malformed file, 2 usage error.\n");
}

static void put_lines(FILE *f, const char *name, const char *file, const cl_dataset *d, int origins, int last) {
    fprintf(f, "  \"%s\": {\"file\": \"", name);
    for (const char *p = file; *p; p++) { /* a JSON string: paths may hold quotes or backslashes */
        if (*p == '"' || *p == '\\') fputc('\\', f);
        if ((unsigned char)*p < 0x20) fprintf(f, "\\u%04x", (unsigned char)*p);
        else fputc(*p, f);
    }
    fprintf(f, "\", \"n\": %zu, \"lines\": [", d->n);
    for (size_t i = 0; i < d->n; i++) fprintf(f, "%s%d", i ? "," : "", d->ex[i].line);
    if (origins) { /* MNLI: which dev file each row is from (0 matched, 1 mismatched) */
        fprintf(f, "], \"origins\": [");
        for (size_t i = 0; i < d->n; i++) fprintf(f, "%s%d", i ? "," : "", d->ex[i].origin);
    }
    fprintf(f, "]}%s\n", last ? "" : ",");
}

int cmd_split(int argc, char **argv) {
    const char *task_name = NULL, *data = NULL, *proto = "paper", *out = NULL;
    long long seed = 1;
    static const struct option lo[] = {{"task", 1, 0, 't'}, {"data", 1, 0, 'd'}, {"protocol", 1, 0, 'p'},
                                       {"seed", 1, 0, 's'}, {"out", 1, 0, 'o'},  {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 't': task_name = optarg; break;
        case 'd': data = optarg; break;
        case 'p': proto = optarg; break;
        case 'o': out = optarg; break;
        case 's': {
            char *end = NULL;
            seed = strtoll(optarg, &end, 10);
            if (!*optarg || *end || seed < 0) {
                fprintf(stderr, "condlora split: option --seed: '%s' is not a non-negative integer\n", optarg);
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "condlora split: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!task_name || !data) {
        fprintf(stderr, "condlora split: --task and --data are required\n");
        usage(stderr);
        return 2;
    }
    cl_error err = {0};
    const cl_glue_task *t;
    cl_protocol p;
    if (cl_glue_task_lookup(task_name, &t, &err) || cl_protocol_parse(proto, &p, &err)) {
        fprintf(stderr, "condlora split: %s\n", err.msg);
        return 2;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", data, t->name);
    cl_glue_splits s;
    if (cl_glue_make_splits(t, dir, p, (uint64_t)seed, NULL, &s, &err)) {
        fprintf(stderr, "condlora split: %s\n", err.msg);
        return 1;
    }
    char tmp[4300], ftr[4300], fdv[4300];
    snprintf(ftr, sizeof ftr, "%s/%s", dir, t->files[CL_SPLIT_TRAIN]);
    snprintf(fdv, sizeof fdv, "%s/%s", dir, t->files[CL_SPLIT_DEV]);
    FILE *f = stdout;
    if (out) {
        snprintf(tmp, sizeof tmp, "%s.tmp", out);
        if (!(f = fopen(tmp, "w"))) {
            fprintf(stderr, "condlora split: %s: cannot create\n", tmp);
            cl_glue_splits_free(&s);
            return 1;
        }
    }
    fprintf(f, "{\n  \"task\": \"%s\", \"protocol\": \"%s\", \"seed\": %lld,\n", t->name,
            p == CL_PROTOCOL_PAPER ? "paper" : "glue", seed);
    if (t->files[CL_SPLIT_DEV_MM])
        fprintf(f, "  \"note\": \"the official dev split is %s (origin 0) followed by %s (origin 1)\",\n",
                t->files[CL_SPLIT_DEV], t->files[CL_SPLIT_DEV_MM]);
    int mm = t->files[CL_SPLIT_DEV_MM] != NULL;
    put_lines(f, "train", ftr, &s.train, 0, 0);
    if (p == CL_PROTOCOL_PAPER) {
        put_lines(f, "dev", ftr, &s.dev, 0, 0);
        put_lines(f, "test", fdv, &s.test, mm, 1);
    } else {
        put_lines(f, "dev", fdv, &s.dev, mm, 1);
    }
    fprintf(f, "}\n");
    cl_glue_splits_free(&s);
    if (out) {
        int bad = ferror(f) | (fflush(f) != 0) | (fsync(fileno(f)) != 0);
        bad |= fclose(f) != 0;
        if (bad || rename(tmp, out) != 0) {
            fprintf(stderr, "condlora split: %s: write failed (disk full?)\n", out);
            remove(tmp);
            return 1;
        }
    } else if (fflush(stdout) != 0) {
        fprintf(stderr, "condlora split: writing standard output failed\n");
        return 1;
    }
    return 0;
}
