/* condlora predict: logits (or GLUE predictions) of a sequence-classification model, optionally with a PEFT /
 * condlora adapter applied, for every row of a TSV file. */
#include <cblas.h>
#include <math.h>
#include <strings.h>
#include <cjson/cJSON.h>
#include <unistd.h>
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "adapters/peft_io.h"
#include "commands.h"
#include "condlora.h"
#include "core/util.h"
#include "data/glue.h"
#include "model/encoder.h"
#include "model/gemm_bf16.h"
#include "data/userdata.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: condlora predict --model DIR --input FILE [--adapter DIR] [--task NAME]\n"
            "                        [--format tsv|glue|labels] [--text-columns C | C1,C2 | NAME | A,B]\n"
            "                        [--output OUT.tsv] [--skip-header] [--ids] [--input-format tsv|csv|jsonl]\n"
            "                        [--tokenizer DIR] [--max-length N] [--batch B] [--threads K]\n"
            "                        [--precision fp32|bf16]\n"
            "Writes one line per input row: the model's logits, tab-separated (one value for a regression head), or\n"
            "with --format glue a GLUE submission file.\n"
            "  --model DIR         a model directory (config.json + model.safetensors); with a classification head\n"
            "                      unless the adapter carries one\n"
            "  --adapter DIR       apply a PEFT LoRA / AdaLoRA adapter directory (adapter_config.json +\n"
            "                      adapter_model.safetensors, its classification head included) on top of --model;\n"
            "                      a condlora run directory means RUN/best\n"
            "  --task NAME         a GLUE task: the input is read as the task's test.tsv (or a train/dev file) by\n"
            "                      column name unless --text-columns is given, and --format glue writes its labels\n"
            "  --format tsv|glue   tsv (default): logits; glue: a header line \"index<TAB>prediction\" then the row's\n"
            "                      index (the file's index/id column with --task, else 0, 1, ...) and the argmax\n"
            "                      label (--task: as GLUE writes it, e.g. entailment or 1; else the class id) or the\n"
            "                      score of a regression head\n"
            "  --format labels     a header \"index<TAB>label<TAB>NAME_0<TAB>NAME_1...\", then each row's index, its\n"
            "                      predicted label name and every label's probability (softmax); a regression head:\n"
            "                      \"index<TAB>score\"; a multi-label head: \"index<TAB>labels<TAB>NAME_0...\", the\n"
            "                      labels whose probability (sigmoid) is above 0.5, comma-separated, then each\n"
            "                      label's probability. Names: the adapter's labels.json (a condlora run's), else\n"
            "                      the model's id2label, else --task's, else LABEL_k\n"
            "  --text-columns      0-based tab-separated column(s) holding the text, or the two texts of a pair\n"
            "                      (default 0); or column NAMES: the input is then read as your own data (a header\n"
            "                      row; TSV, CSV or JSON Lines by its extension or --input-format), as train reads it\n"
            "  --skip-header       ignore the first line of the input\n"
            "  --ids               the columns hold token ids (space-separated, special tokens included) instead of\n"
            "                      text; the ids of a pair are concatenated, BERT token types 0 then 1\n"
            "  --tokenizer DIR     tokenizer files (default: the model directory)\n"
            "  --max-length N      truncate to N tokens (default: the model's positions, at most 512)\n"
            "  --batch B           sequences per forward (default 32)\n"
            "  --precision bf16    the encoder's frozen linear layers in bf16 with fp32 accumulation (AVX512_BF16\n"
            "                      CPUs; faster, logits differ from fp32 in about the third significant digit);\n"
            "                      default fp32\n");
}

typedef struct {
    int32_t *ids, *types;
    int n, cap;
} seq;


static int seq_push(seq *s, int32_t id, int32_t type) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 64;
        int32_t *a = realloc(s->ids, (size_t)nc * 4), *b = a ? realloc(s->types, (size_t)nc * 4) : NULL;
        if (a) s->ids = a;
        if (b) s->types = b;
        if (!a || !b) return -1;
        s->cap = nc;
    }
    s->ids[s->n] = id;
    s->types[s->n++] = type;
    return 0;
}

/* the k-th tab-separated field of line (in place: fields are NUL-terminated by the caller's split) */
static int split_tabs(char *line, char **f, int maxf) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p; p++)
        if (*p == '\t') {
            *p = 0;
            if (n < maxf) f[n++] = p + 1;
            else return -1;
        }
    return n;
}

static int parse_ids(const char *s, seq *out, int32_t type, const char *file, long line, cl_error *err) {
    const char *p = s;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 0x7fffffff || (*end && *end != ' '))
            return cl_errf(err, CL_EFORMAT, "%s:%ld: '%.32s' is not a token id", file, line, p);
        if (seq_push(out, (int32_t)v, type)) return cl_errf(err, CL_ENOMEM, "out of memory");
        p = end;
    }
    return 0;
}

/* one input row: its text (or id) fields, the source line and the index written by --format glue */
typedef struct {
    const char *f[2];
    const char *id;
    long line;
} row;

static int add_row(row **rows, size_t *n, size_t *cap, row r) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        row *nr = realloc(*rows, nc * sizeof *nr);
        if (!nr) return -1;
        *rows = nr, *cap = nc;
    }
    (*rows)[(*n)++] = r;
    return 0;
}

/* rows of a plain TSV (columns col[0..ncol)); the text is split in place */
static int read_plain(char *text, size_t tlen, const char *input, const int *col, int ncol, int skip_header,
                      row **rows, size_t *n, size_t *cap) {
    char *p = text, *endt = text + tlen;
    long lineno = 0;
    while (p < endt) {
        char *nl = memchr(p, '\n', (size_t)(endt - p));
        char *line = p;
        if (nl) *nl = 0;
        p = nl ? nl + 1 : endt;
        lineno++;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[--ll] = 0;
        if ((lineno == 1 && skip_header) || (!ll && p >= endt)) continue;
        char *f[1024];
        int nf = split_tabs(line, f, 1024);
        int need = (col[0] > col[1] ? col[0] : col[1]) + 1;
        if (nf < need) {
            fprintf(stderr, "condlora predict: %s:%ld: %d column(s), --text-columns needs column %d\n", input, lineno,
                    nf < 0 ? 1024 : nf, need - 1);
            return -1;
        }
        row r = {{f[col[0]], ncol == 2 ? f[col[1]] : NULL}, NULL, lineno};
        if (add_row(rows, n, cap, r)) {
            fprintf(stderr, "condlora predict: out of memory\n");
            return -1;
        }
    }
    return 0;
}

int cmd_predict(int argc, char **argv) {
    const char *model_dir = NULL, *input = NULL, *output = NULL, *tokdir = NULL, *cols = NULL, *adapter = NULL;
    const char *task_name = NULL, *format = "tsv", *precision = "fp32", *input_format = NULL;
    int use_ids = 0, skip_header = 0, batch = 32, max_len = 0, threads = 0;
    static const struct option lo[] = {
        {"model", 1, 0, 'm'},  {"input", 1, 0, 'i'},       {"output", 1, 0, 'o'},     {"text-columns", 1, 0, 'c'},
        {"ids", 0, 0, 'I'},    {"skip-header", 0, 0, 'H'}, {"tokenizer", 1, 0, 'k'},  {"max-length", 1, 0, 'x'},
        {"batch", 1, 0, 'b'},  {"threads", 1, 0, 't'},     {"adapter", 1, 0, 'a'},    {"task", 1, 0, 'T'},
        {"format", 1, 0, 'f'}, {"help", 0, 0, 'h'},        {"precision", 1, 0, 'P'},  {"input-format", 1, 0, 'F'},
        {0, 0, 0, 0}};
    int c, li = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, &li)) != -1) {
        if (c == 'x' || c == 'b' || c == 't') {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < (c == 't' ? 0 : c == 'x' ? 2 : 1) || v > 1000000) {
                fprintf(stderr, "condlora predict: option --%s: '%s' is not a valid count\n", lo[li].name, optarg);
                return 2;
            }
            if (c == 'x') max_len = (int)v;
            else if (c == 'b') batch = (int)v;
            else threads = (int)v;
            continue;
        }
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case 'c': cols = optarg; break;
        case 'I': use_ids = 1; break;
        case 'H': skip_header = 1; break;
        case 'k': tokdir = optarg; break;
        case 'a': adapter = optarg; break;
        case 'T': task_name = optarg; break;
        case 'f': format = optarg; break;
        case 'P': precision = optarg; break;
        case 'F': input_format = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model_dir || !input || optind < argc) {
        if (optind < argc) fprintf(stderr, "condlora predict: unexpected argument '%s'\n", argv[optind]);
        else fprintf(stderr, "condlora predict: --model and --input are required\n");
        usage(stderr);
        return 2;
    }
    int glue_fmt = !strcmp(format, "glue"), labels_fmt = !strcmp(format, "labels");
    if (!glue_fmt && !labels_fmt && strcmp(format, "tsv")) {
        fprintf(stderr, "condlora predict: option --format: '%s' is not tsv, glue or labels\n", format);
        return 2;
    }
    cl_error err = {0};
    int bf16 = 0;
    if (cl_precision_parse(precision, &bf16, &err)) {
        fprintf(stderr, "condlora predict: %s\n", err.msg);
        return 2;
    }
    const cl_glue_task *task = NULL;
    if (task_name && cl_glue_task_lookup(task_name, &task, &err)) {
        fprintf(stderr, "condlora predict: option --task: %s\n", err.msg);
        return 2;
    }
    int col[2] = {0, -1}, ncol = 1;
    /* own data: column names (not numbers), a .csv / .jsonl input, or --input-format */
    cl_user_opts uo = {0};
    int user_input = 0;
    if (input_format && cl_file_format_parse(input_format, &uo.format, &err)) {
        fprintf(stderr, "condlora predict: option --input-format: %s\n", err.msg);
        return 2;
    }
    if (input) {
        const char *dot = strrchr(input, '.');
        user_input = input_format || (cols && !(cols[0] >= '0' && cols[0] <= '9')) ||
                     (dot && (!strcasecmp(dot, ".csv") || !strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".ndjson")));
    }
    if (user_input && (use_ids || task)) {
        fprintf(stderr, "condlora predict: named columns (your own data) do not go with --%s\n", use_ids ? "ids" : "task");
        return 2;
    }
    if (user_input) {
        uo.text_columns = cols;
        ncol = cols && strchr(cols, ',') ? 2 : 1;
    } else if (cols) {
        char *end;
        long a = strtol(cols, &end, 10), b = -1;
        if (end != cols && *end == ',') {
            char *e2;
            b = strtol(end + 1, &e2, 10);
            if (e2 == end + 1 || *e2) a = -1;
        } else if (end == cols || *end) a = -1;
        if (a < 0 || a > 1000 || (b != -1 && (b < 0 || b > 1000))) {
            fprintf(stderr, "condlora predict: option --text-columns: '%s' is not C or C1,C2 (0-based)\n", cols);
            return 2;
        }
        col[0] = (int)a;
        col[1] = (int)b;
        ncol = b >= 0 ? 2 : 1;
    }
    /* the model with the adapter, the tokenizer and the logits: the public API (include/condlora.h) */
    cl_model_params mp = cl_model_default_params();
    mp.adapter = adapter, mp.bf16 = bf16, mp.threads = threads;
    cl_model *m = cl_model_open(model_dir, &mp);
    if (!m) {
        fprintf(stderr, "condlora predict: %s\n", cl_last_error());
        return 1;
    }
    int rc = 1;
    cl_tokenizer *tok = NULL;
    char *text = NULL;
    seq *seqs = NULL;
    row *rows = NULL;
    size_t nrows = 0, caprows = 0;
    cl_dataset ds;
    memset(&ds, 0, sizeof ds);
    int32_t *ids = NULL, *types = NULL, *lens = NULL, *tok_ids = NULL, *tok_types = NULL;
    float *logits = NULL;
    const char **names = NULL;
    cl_atomic_file af = {0};
    FILE *out = stdout;
    const int L = cl_model_num_labels(m), bert_types = cl_model_type_vocab_size(m) > 1;
    if (L == 0) {
        fprintf(stderr, "condlora predict: %s holds no classification head (classifier.* tensors)%s\n", model_dir,
                adapter ? ", nor does the adapter" : "");
        goto done;
    }
    /* a multi-label head (labels.json or config.json problem_type): a sigmoid per label, the set where p > 0.5 */
    const int multi = cl_model_is_multi_label(m);
    if (task && L != task->num_labels) {
        fprintf(stderr, "condlora predict: the model's head has %d label%s but GLUE %s has %d\n", L, L > 1 ? "s" : "",
                task->name, task->num_labels);
        goto done;
    }
    int maxpos = cl_model_max_length(m);
    if (max_len > maxpos) { /* as train: more than the model's positions is refused, not silently clamped */
        fprintf(stderr, "condlora predict: option --max-length: %d is more than the %d positions of %s/config.json\n",
                max_len, maxpos, model_dir);
        rc = 2;
        goto done;
    }
    if (max_len <= 0) max_len = maxpos < 512 ? maxpos : 512;
    if (!use_ids && !(tok = cl_tokenizer_open(tokdir ? tokdir : model_dir))) {
        fprintf(stderr, "condlora predict: %s (or pass --ids with pre-tokenized input)\n", cl_last_error());
        goto done;
    }
    /* the rows */
    if (user_input) {
        if (cl_user_read_inputs(input, &uo, &ds, &err)) {
            fprintf(stderr, "condlora predict: %s\n", err.msg);
            rc = err.code == CL_EUSAGE ? 2 : 1;
            goto done;
        }
        for (size_t i = 0; i < ds.n; i++) {
            row r = {{ds.ex[i].text_a, ds.ex[i].text_b}, NULL, ds.ex[i].line};
            if (add_row(&rows, &nrows, &caprows, r)) {
                fprintf(stderr, "condlora predict: out of memory\n");
                goto done;
            }
        }
    } else if (task && !cols) {
        /* the task's test file by column name; else its train/dev layout */
        if (cl_glue_read_file(task, input, 0, NULL, &ds, &err)) {
            cl_error e2 = {0};
            if (cl_glue_read_file(task, input, 1, NULL, &ds, &e2)) {
                fprintf(stderr, "condlora predict: %s\n", err.msg);
                goto done;
            }
        }
        for (size_t i = 0; i < ds.n; i++) {
            row r = {{ds.ex[i].text_a, ds.ex[i].text_b}, ds.ex[i].id, ds.ex[i].line};
            if (add_row(&rows, &nrows, &caprows, r)) {
                fprintf(stderr, "condlora predict: out of memory\n");
                goto done;
            }
        }
        ncol = cl_glue_is_pair(task) ? 2 : 1;
    } else {
        size_t tlen;
        if (cl_read_file(input, &text, &tlen, &err)) {
            fprintf(stderr, "condlora predict: %s\n", err.msg);
            goto done;
        }
        if (read_plain(text, tlen, input, col, ncol, skip_header, &rows, &nrows, &caprows)) goto done;
    }
    seqs = calloc((size_t)batch, sizeof *seqs);
    ids = malloc((size_t)batch * max_len * 4);
    types = malloc((size_t)batch * max_len * 4);
    lens = malloc((size_t)batch * 4);
    tok_ids = malloc((size_t)max_len * 4), tok_types = malloc((size_t)max_len * 4);
    logits = malloc((size_t)batch * L * sizeof *logits);
    if (!seqs || !ids || !types || !lens || !tok_ids || !tok_types || !logits) {
        fprintf(stderr, "condlora predict: out of memory\n");
        goto done;
    }
    if (output) {
        if (cl_atomic_open(&af, output, &err)) {
            fprintf(stderr, "condlora predict: %s\n", err.msg);
            goto done;
        }
        out = af.f;
    }
    if (glue_fmt) fprintf(out, "index\tprediction\n");
    /* --format labels: the label names */
    if (labels_fmt) {
        /* the adapter's labels.json, else the model's id2label; --task's names where those are transformers'
         * placeholders LABEL_k */
        if (!(names = calloc((size_t)L, sizeof *names))) {
            fprintf(stderr, "condlora predict: out of memory\n");
            goto done;
        }
        for (int j = 0; j < L; j++) {
            names[j] = cl_model_label_name(m, j);
            if (task && task->label_names && !strncmp(names[j], "LABEL_", 6)) names[j] = task->label_names[j];
        }
        fprintf(out, L == 1 ? "index\tscore" : multi ? "index\tlabels" : "index\tlabel");
        for (int j = 0; L > 1 && j < L; j++) fprintf(out, "\t%s", names[j]);
        fprintf(out, "\n");
    }
    int failed = 0;
    for (size_t r0 = 0; r0 < nrows && !failed; r0 += (size_t)batch) {
        int nb = nrows - r0 < (size_t)batch ? (int)(nrows - r0) : batch;
        for (int b = 0; b < nb && !failed; b++) {
            const row *rw = &rows[r0 + (size_t)b];
            seq *s = &seqs[b];
            s->n = 0;
            if (use_ids) {
                for (int k = 0; k < ncol && !failed; k++)
                    if (parse_ids(rw->f[k] ? rw->f[k] : "", s, bert_types ? k : 0, input, rw->line, &err)) failed = 1;
                if (!failed && s->n == 0) {
                    cl_errf(&err, CL_EFORMAT, "%s:%ld: no token ids", input, rw->line);
                    failed = 1;
                }
                if (!failed && s->n > max_len) s->n = max_len;
            } else {
                int n = cl_tokenize(tok, rw->f[0], ncol == 2 ? rw->f[1] : NULL, max_len, tok_ids, tok_types, max_len);
                if (n < 0) {
                    cl_errf(&err, CL_EFORMAT, "%s:%ld: %s", input, rw->line, cl_last_error());
                    failed = 1;
                }
                for (int i = 0; !failed && i < n && i < max_len; i++)
                    if (seq_push(s, tok_ids[i], bert_types ? tok_types[i] : 0)) {
                        cl_errf(&err, CL_ENOMEM, "out of memory");
                        failed = 1;
                    }
            }
            if (failed) fprintf(stderr, "condlora predict: %s\n", err.msg);
        }
        if (failed) break;
        int T = 1;
        for (int b = 0; b < nb; b++) T = seqs[b].n > T ? seqs[b].n : T;
        for (int b = 0; b < nb; b++) {
            lens[b] = seqs[b].n;
            for (int t = 0; t < T; t++) {
                ids[b * T + t] = t < seqs[b].n ? seqs[b].ids[t] : cl_model_pad_id(m);
                types[b * T + t] = t < seqs[b].n ? seqs[b].types[t] : 0;
            }
        }
        /* (an adapter that could not allocate its scratch is an error there, never base-model logits) */
        if (cl_model_logits(m, ids, bert_types ? types : NULL, lens, nb, T, logits)) {
            fprintf(stderr, "condlora predict: %s: batch ending at line %ld: %s\n", input, rows[r0 + nb - 1].line,
                    cl_last_error());
            failed = 1;
            break;
        }
        for (int b = 0; b < nb; b++) {
            const float *lg = logits + (size_t)b * L;
            if (labels_fmt) {
                fprintf(out, "%zu", r0 + (size_t)b);
                if (L == 1) {
                    fprintf(out, "\t%.7g\n", lg[0]);
                    continue;
                }
                if (multi) { /* the labels with sigmoid > 0.5 (logit > 0), comma-separated, then each sigmoid */
                    fputc('\t', out);
                    for (int j = 0, first = 1; j < L; j++)
                        if (lg[j] > 0.0f) fprintf(out, "%s%s", first ? "" : ",", names[j]), first = 0;
                    for (int j = 0; j < L; j++) fprintf(out, "\t%.6f", 1.0 / (1.0 + exp(-(double)lg[j])));
                    fprintf(out, "\n");
                    continue;
                }
                int best = 0;
                double mx = lg[0], sum = 0;
                for (int j = 1; j < L; j++)
                    if (lg[j] > lg[best]) best = j, mx = lg[j];
                for (int j = 0; j < L; j++) sum += exp((double)lg[j] - mx);
                fprintf(out, "\t%s", names[best]);
                for (int j = 0; j < L; j++) fprintf(out, "\t%.6f", exp((double)lg[j] - mx) / sum);
                fprintf(out, "\n");
                continue;
            }
            if (!glue_fmt) {
                for (int j = 0; j < L; j++) fprintf(out, "%.7g%c", lg[j], j + 1 < L ? '\t' : '\n');
                continue;
            }
            const row *rw = &rows[r0 + (size_t)b];
            if (rw->id) fprintf(out, "%s\t", rw->id);
            else fprintf(out, "%zu\t", r0 + (size_t)b);
            if (L == 1) {
                fprintf(out, "%.7g\n", lg[0]);
                continue;
            }
            if (multi) { /* the class ids of the predicted set, comma-separated */
                for (int j = 0, first = 1; j < L; j++)
                    if (lg[j] > 0.0f) fprintf(out, "%s%d", first ? "" : ",", j), first = 0;
                fprintf(out, "\n");
                continue;
            }
            int best = 0;
            for (int j = 1; j < L; j++)
                if (lg[j] > lg[best]) best = j;
            if (task && task->label_values[best]) fprintf(out, "%s\n", task->label_values[best]);
            else fprintf(out, "%d\n", best);
        }
    }
    if (failed) {
        if (output) cl_atomic_abort(&af);
        goto done;
    }
    if (output) {
        if (cl_atomic_commit(&af, &err)) {
            fprintf(stderr, "condlora predict: %s\n", err.msg);
            goto done;
        }
    } else if (fflush(stdout)) {
        fprintf(stderr, "condlora predict: cannot write the output\n");
        goto done;
    }
    rc = 0;
done:
    free(names);
    if (seqs)
        for (int b = 0; b < batch; b++) free(seqs[b].ids), free(seqs[b].types);
    free(seqs), free(ids), free(types), free(lens), free(text), free(rows), free(tok_ids), free(tok_types);
    free(logits);
    cl_dataset_free(&ds);
    cl_tokenizer_close(tok);
    cl_model_close(m);
    return rc;
}
