/* condlora eval: reload a saved run (best/ or final/) and compute the task's metrics on a split. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "condlora.h"
#include "model/gemm_bf16.h"
#include "train/trainer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: condlora eval --run RUN_DIR[/best|/final] [--split dev|test|train] [--model DIR] [--data DIR]\n"
               "                     [--threads K] [--precision fp32|bf16]\n"
               "Reloads the checkpoint (RUN_DIR alone means RUN_DIR/best) with the options in RUN_DIR/run.json and\n"
               "prints the split's metrics as one JSON line (splits as the run's protocol defines them; default dev).\n"
               "  --model / --data   override the paths recorded in run.json\n"
               "  --precision        fp32 or bf16 (AVX512_BF16 CPUs); default: the run's own (run.json)\n");
}

/* a long evaluation's progress lines */
static void progress(const cl_train_event *ev, void *user) {
    (void)user;
    fprintf(stderr, "%s\n", ev->message);
}

int cmd_eval(int argc, char **argv) {
    const char *run = NULL, *split = "dev", *model = NULL, *data = NULL;
    int threads = 0, bf16 = -1; /* -1: the run's precision */
    cl_error err = {0};
    static const struct option lo[] = {{"run", 1, 0, 'r'},  {"split", 1, 0, 's'},   {"model", 1, 0, 'm'},
                                       {"data", 1, 0, 'd'}, {"threads", 1, 0, 't'}, {"help", 0, 0, 'h'},
                                       {"precision", 1, 0, 'P'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'r': run = optarg; break;
        case 's': split = optarg; break;
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 't': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > 4096) {
                fprintf(stderr, "condlora eval: option --threads: '%s' is not a count\n", optarg);
                return 2;
            }
            threads = (int)v;
            break;
        }
        case 'P':
            if (cl_precision_parse(optarg, &bf16, &err)) {
                fprintf(stderr, "condlora eval: %s\n", err.msg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!run || optind < argc) {
        if (!run) fprintf(stderr, "condlora eval: option --run is required\n");
        else fprintf(stderr, "condlora eval: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    /* through the public API (include/condlora.h) */
    cl_metric_set m;
    size_t n = 0;
    cl_eval_params ep = cl_eval_default_params();
    ep.model_dir = model, ep.data_dir = data, ep.threads = threads, ep.precision = bf16, ep.on_event = progress;
    if (cl_eval(run, split, &ep, &m, &n)) {
        fprintf(stderr, "condlora eval: %s\n", cl_last_error());
        return cl_last_status() == CL_EUSAGE ? 2 : 1;
    }
    /* one JSON line; the run path goes through cJSON's string escaping (a path may hold quotes or backslashes) */
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "run", run);
    cJSON_AddStringToObject(j, "split", split);
    cJSON_AddNumberToObject(j, "examples", (double)n);
    cJSON_AddNumberToObject(j, "main", m.main);
    for (int i = 0; i < m.n; i++) cJSON_AddNumberToObject(j, m.m[i].name, m.m[i].value);
    char *txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!txt) {
        fprintf(stderr, "condlora eval: out of memory\n");
        return 1;
    }
    printf("%s\n", txt);
    free(txt);
    return 0;
}
