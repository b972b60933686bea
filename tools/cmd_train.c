/* condlora train: fine-tune an encoder with an adapter method on a GLUE task (src/train/trainer.h). */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "model/gemm_bf16.h"
#include "train/trainer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: condlora train --model DIR --task NAME --data DIR --method lora|condlora|salora|adalora\n"
            "                      --out RUN_DIR [options]\n"
            "       condlora train --model DIR --train FILE [--dev FILE] [--test FILE] --method ... --out RUN_DIR\n"
            "Checks every input first (model, tokenizer, data rows, options), then trains and writes RUN_DIR/run.json,\n"
            "metrics.jsonl, curve.svg, best/ and final/ (PEFT adapter_model.safetensors + adapter_config.json).\n"
            "  --data DIR           the GLUE root holding TASK/ (e.g. ../shared/data/glue) or the task's directory\n"
            "  --tokenizer DIR      tokenizer files (default: the model directory)\n"
            "  --train FILE         your own data instead of a GLUE task: TSV, CSV or JSON Lines with named columns\n"
            "  --dev FILE           for model selection (default: 10%% of --train held out, the paper's protocol)\n"
            "  --test FILE          evaluated with the best checkpoint at the end (labelled)\n"
            "  --text-columns A[,B] the text column(s) (default sentence)  --label-column NAME (default label)\n"
            "  --problem classification|regression|multi_label (default: multi_label when a JSON Lines label is a\n"
            "                       list, regression when every label is a non-integer number, else classification;\n"
            "                       a multi-label TSV/CSV field lists its labels separated by commas)\n"
            "  --format tsv|csv|jsonl  (default: by each file's extension)\n"
            "  --r N (8)  --alpha A (8)  --dropout P (0)  --targets query,value  --layers 0-5,11 (all)\n"
            "  --lr X (5e-4)  --weight-decay X (0)  --warmup-ratio X (0.1)  --beta1 X (0.9)  --beta2 X (0.999)\n"
            "  --eps X (1e-8)  --max-grad-norm X (0 = no clipping)\n"
            "  --batch-size N (16)  --max-length N (128)  --epochs N (3)  --max-steps N (0 = by epochs)\n"
            "  --eval-every N (0 = every epoch)  --patience N (0 = no early stopping)  --seed N (1)\n"
            "  --threads K (OMP_NUM_THREADS or all cores)  --protocol paper|glue (paper)  --mega N (50 batches\n"
            "  per length bucket)  --log-every N (10)  --max-train N / --max-eval N (use only the first N examples)\n"
            "  --preset paper       the paper's settings for the task (METHODS.md 4): its lr for LoRA / CondLoRA,\n"
            "                       epochs, patience, max length 512, r = alpha = 8, eval every epoch or 1500 steps;\n"
            "                       options given after --preset override it\n"
            "  --save-every N       write RUN_DIR/checkpoint-STEP/ every N steps (adapter, head, optimizer moments,\n"
            "                       schedule and data position, evaluation history; COMPLETE marker last)\n"
            "  --save-limit N       keep only the newest N checkpoints (0 = all)\n"
            "  --stop-after N       take N steps, write a checkpoint and exit (continue later with --resume)\n"
            "  --resume RUN_DIR     continue RUN_DIR from its newest complete checkpoint with the options of its\n"
            "                       run.json (other options may be repeated with the run's values; only --threads,\n"
            "                       --quiet, --save-every, --save-limit, --stop-after may change); same thread count\n"
            "                       = the same losses and bytes as a run never stopped\n"
            "  --overwrite          --out may name an existing run: it is removed once every input has been checked\n"
            "                       (without it an existing run is refused; a directory that is not a run never is\n"
            "                       removed)\n"
            "  --precision fp32|bf16  bf16: the encoder's frozen linear layers in bf16 with fp32 accumulation\n"
            "                       (AVX512_BF16 CPUs); adapters, head and optimizer stay fp32 (default fp32)\n"
            "  --train-pooler 0|1   BERT: train pooler.dense with the classifier (PEFT modules_to_save \"pooler\"),\n"
            "                       the counterpart of RoBERTa's classifier.dense; --preset paper sets 1 (default 0)\n"
            "  --condlora-form released|paper   B_l = W ThB^T (released code, default) or W^T ThB^T (Eq. 6)\n"
            "  --condlora-use-x 0|1|2           the released code's input-conditioned variants (0 = none)\n"
            "  --quiet              no progress lines\n"
            "SIGINT (Ctrl-C) and SIGTERM finish the current step, write a checkpoint and exit with 130 / 143.\n");
}

static int parse_f(const char *name, const char *s, float *out) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v)) {
        fprintf(stderr, "condlora train: option --%s: '%s' is not a number\n", name, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

static int parse_i(const char *name, const char *s, long long lo, long long hi, long long *out) {
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "condlora train: option --%s: '%s' is not an integer in %lld..%lld\n", name, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* applies option NAME (as getopt_long names it) with argument A to O: 0, or 2 after a message (a usage error) */
static int apply_opt(cl_train_opts *o, const char *n, const char *a, cl_error *err) {
    long long v = 0;
    int bad = 0;
    if (!strcmp(n, "model")) o->model_dir = a;
    else if (!strcmp(n, "train")) o->train_file = a;
    else if (!strcmp(n, "dev")) o->dev_file = a;
    else if (!strcmp(n, "test")) o->test_file = a;
    else if (!strcmp(n, "text-columns")) o->text_columns = a;
    else if (!strcmp(n, "label-column")) o->label_column = a;
    else if (!strcmp(n, "problem")) {
        if (cl_problem_parse(a, &o->problem, err)) {
            fprintf(stderr, "condlora train: %s\n", err->msg);
            return 2;
        }
    } else if (!strcmp(n, "format")) {
        if (cl_file_format_parse(a, &o->format, err)) {
            fprintf(stderr, "condlora train: %s\n", err->msg);
            return 2;
        }
    }
    else if (!strcmp(n, "task")) o->task = a;
    else if (!strcmp(n, "data")) o->data_dir = a;
    else if (!strcmp(n, "method")) ;
    else if (!strcmp(n, "out")) o->out_dir = a;
    else if (!strcmp(n, "tokenizer")) o->tokenizer_dir = a;
    else if (!strcmp(n, "r")) { bad = parse_i(n, a, 1, 4096, &v); o->ad.r = (int)v; }
    else if (!strcmp(n, "alpha")) bad = parse_f(n, a, &o->ad.alpha);
    else if (!strcmp(n, "dropout")) bad = parse_f(n, a, &o->ad.dropout);
    else if (!strcmp(n, "targets")) o->ad.target_modules = a;
    else if (!strcmp(n, "layers")) o->ad.layers = a;
    else if (!strcmp(n, "lr")) bad = parse_f(n, a, &o->lr);
    else if (!strcmp(n, "weight-decay")) bad = parse_f(n, a, &o->weight_decay);
    else if (!strcmp(n, "warmup-ratio")) { float f = 0; bad = parse_f(n, a, &f); o->warmup_ratio = strtod(a, NULL); }
    else if (!strcmp(n, "beta1")) bad = parse_f(n, a, &o->beta1);
    else if (!strcmp(n, "beta2")) bad = parse_f(n, a, &o->beta2);
    else if (!strcmp(n, "eps")) bad = parse_f(n, a, &o->eps);
    else if (!strcmp(n, "max-grad-norm")) bad = parse_f(n, a, &o->max_grad_norm);
    else if (!strcmp(n, "batch-size")) { bad = parse_i(n, a, 1, 65536, &v); o->batch_size = (int)v; }
    else if (!strcmp(n, "max-length")) { bad = parse_i(n, a, 2, 1 << 20, &v); o->max_length = (int)v; }
    else if (!strcmp(n, "epochs")) { bad = parse_i(n, a, 1, 1000000, &v); o->epochs = (int)v; }
    else if (!strcmp(n, "max-steps")) { bad = parse_i(n, a, 0, 1LL << 40, &v); o->max_steps = v; }
    else if (!strcmp(n, "eval-every")) { bad = parse_i(n, a, 0, 1LL << 40, &v); o->eval_every = v; }
    else if (!strcmp(n, "patience")) { bad = parse_i(n, a, 0, 1000000, &v); o->patience = (int)v; }
    else if (!strcmp(n, "seed")) { bad = parse_i(n, a, 0, (1LL << 53), &v); o->seed = (uint64_t)v; }
    else if (!strcmp(n, "threads")) { bad = parse_i(n, a, 1, 4096, &v); o->threads = (int)v; }
    else if (!strcmp(n, "mega")) { bad = parse_i(n, a, 0, 1000000, &v); o->mega = (int)v; }
    else if (!strcmp(n, "log-every")) { bad = parse_i(n, a, 1, 1000000, &v); o->log_every = (int)v; }
    else if (!strcmp(n, "max-train")) { bad = parse_i(n, a, 0, 1LL << 40, &v); o->max_train = (size_t)v; }
    else if (!strcmp(n, "max-eval")) { bad = parse_i(n, a, 0, 1LL << 40, &v); o->max_eval = (size_t)v; }
    else if (!strcmp(n, "quiet")) o->quiet = 1;
    else if (!strcmp(n, "save-every")) { bad = parse_i(n, a, 0, 1LL << 40, &v); o->save_every = v; }
    else if (!strcmp(n, "save-limit")) { bad = parse_i(n, a, 0, 1000000, &v); o->save_limit = (int)v; }
    else if (!strcmp(n, "stop-after")) { bad = parse_i(n, a, 1, 1LL << 40, &v); o->stop_after = v; }
    else if (!strcmp(n, "resume")) o->resume = a;
    else if (!strcmp(n, "train-pooler")) { bad = parse_i(n, a, 0, 1, &v); o->train_pooler = (int)v; }
    else if (!strcmp(n, "condlora-use-x")) { bad = parse_i(n, a, 0, 2, &v); o->ad.condlora_use_x = (int)v; }
    else if (!strcmp(n, "condlora-form")) {
        if (strcmp(a, "released") && strcmp(a, "paper")) {
            fprintf(stderr, "condlora train: option --condlora-form: '%s' is not released or paper\n", a);
            return 2;
        }
        o->ad.condlora_paper = !strcmp(a, "paper");
    }
    else if (!strcmp(n, "precision")) {
        if (cl_precision_parse(a, &o->bf16, err)) {
            fprintf(stderr, "condlora train: %s\n", err->msg);
            return 2;
        }
    }
    else if (!strcmp(n, "protocol")) {
        if (cl_protocol_parse(a, &o->protocol, err)) {
            fprintf(stderr, "condlora train: option --protocol: %s\n", err->msg);
            return 2;
        }
    } else if (!strcmp(n, "preset")) {
        if (strcmp(a, "paper")) {
            fprintf(stderr, "condlora train: option --preset: '%s' is not 'paper'\n", a);
            return 2;
        }
        if (cl_train_apply_paper_preset(o, err)) {
            fprintf(stderr, "condlora train: %s\n", err->msg);
            return 2;
        }
    }
    return bad ? 2 : 0;
}

int cmd_train(int argc, char **argv) {
    cl_train_opts o;
    cl_train_opts_default(&o);
    static const struct option lo[] = {
        {"model", 1, 0, 0},      {"task", 1, 0, 0},       {"data", 1, 0, 0},         {"method", 1, 0, 0},
        {"out", 1, 0, 0},        {"tokenizer", 1, 0, 0},  {"r", 1, 0, 0},            {"alpha", 1, 0, 0},
        {"dropout", 1, 0, 0},    {"targets", 1, 0, 0},    {"layers", 1, 0, 0},       {"lr", 1, 0, 0},
        {"weight-decay", 1, 0, 0}, {"warmup-ratio", 1, 0, 0}, {"beta1", 1, 0, 0},    {"beta2", 1, 0, 0},
        {"eps", 1, 0, 0},        {"max-grad-norm", 1, 0, 0}, {"batch-size", 1, 0, 0}, {"max-length", 1, 0, 0},
        {"epochs", 1, 0, 0},     {"max-steps", 1, 0, 0},  {"eval-every", 1, 0, 0},   {"patience", 1, 0, 0},
        {"seed", 1, 0, 0},       {"threads", 1, 0, 0},    {"protocol", 1, 0, 0},     {"preset", 1, 0, 0},
        {"mega", 1, 0, 0},       {"log-every", 1, 0, 0},  {"max-train", 1, 0, 0},    {"max-eval", 1, 0, 0},
        {"quiet", 0, 0, 0},      {"help", 0, 0, 'h'},     {"save-every", 1, 0, 0},   {"save-limit", 1, 0, 0},
        {"stop-after", 1, 0, 0}, {"resume", 1, 0, 0},     {"precision", 1, 0, 0},    {"overwrite", 0, 0, 0},
        {"condlora-form", 1, 0, 0}, {"condlora-use-x", 1, 0, 0}, {"train-pooler", 1, 0, 0},
        {"train", 1, 0, 0},      {"dev", 1, 0, 0},        {"test", 1, 0, 0},         {"text-columns", 1, 0, 0},
        {"label-column", 1, 0, 0}, {"problem", 1, 0, 0},  {"format", 1, 0, 0},       {0, 0, 0, 0}};
    /* first pass: method and task (the preset and the adapter defaults depend on them) */
    const char *method = "condlora";
    int c, li;
    for (int i = 1; i < argc - 1; i++) {
        if (!strcmp(argv[i], "--method")) method = argv[i + 1];
        if (!strcmp(argv[i], "--task")) o.task = argv[i + 1];
    }
    cl_error err = {0};
    if (cl_method_parse(method, &o.ad.method, &err)) {
        fprintf(stderr, "condlora train: %s\n", err.msg);
        return 2;
    }
    cl_adapter_opts_default(&o.ad, o.ad.method);
    /* the options given, in order (a resumed run checks them against its run.json) */
    const char **gn = calloc((size_t)argc + 1, sizeof *gn), **ga = calloc((size_t)argc + 1, sizeof *ga);
    int ng = 0;
    if (!gn || !ga) {
        free(gn), free(ga);
        fprintf(stderr, "condlora train: out of memory\n");
        return 1;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, &li)) != -1) {
        if (c == 'h') { usage(stdout); free(gn), free(ga); return 0; }
        if (c != 0) { usage(stderr); free(gn), free(ga); return 2; }
        const char *n = lo[li].name, *a = optarg;
        gn[ng] = n, ga[ng++] = a;
        if (!strcmp(n, "method")) continue;
        if (!strcmp(n, "resume")) { o.resume = a; continue; }
        if (!strcmp(n, "overwrite")) { o.overwrite = 1; continue; }
        if (apply_opt(&o, n, a, &err)) { free(gn), free(ga); return 2; }
    }
    if (optind < argc) {
        fprintf(stderr, "condlora train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o.resume) {
        /* options equal to the run's are accepted; a different one is refused, naming it */
        static const char *anew[] = {"resume", "threads", "quiet", "save-every", "save-limit", "stop-after"};
        cl_train_opts ro;
        char buf[16384];
        if (cl_train_read_run_opts(o.resume, &ro, buf, sizeof buf, &err)) {
            fprintf(stderr, "condlora train: option --resume: %s\n", err.msg);
            free(gn), free(ga);
            return 1;
        }
        for (int i = 0; i < ng; i++) {
            int free_to_change = 0;
            for (size_t k = 0; k < sizeof anew / sizeof anew[0]; k++) free_to_change |= !strcmp(gn[i], anew[k]);
            if (free_to_change) continue;
            cl_train_opts t = ro;
            const char *diff = NULL;
            if (!strcmp(gn[i], "method")) {
                cl_method m;
                if (cl_method_parse(ga[i], &m, &err) || m != ro.ad.method) diff = "method";
            } else if (!strcmp(gn[i], "overwrite")) {
                diff = "overwrite";
            } else if (apply_opt(&t, gn[i], ga[i], &err)) {
                free(gn), free(ga);
                return 2;
            } else {
                diff = cl_train_opts_diff(&ro, &t);
            }
            if (diff) {
                fprintf(stderr, "condlora train: option --%s%s%s: %s (run.json) continues with its own options; this "
                        "one differs from them (only --threads, --quiet, --save-every, --save-limit and --stop-after "
                        "may change)\n", gn[i], ga[i] ? " " : "", ga[i] ? ga[i] : "", o.resume);
                free(gn), free(ga);
                return 2;
            }
        }
    }
    /* a file-size limit (ulimit -f) must give a write error, not kill the process mid-checkpoint */
    signal(SIGXFSZ, SIG_IGN);
    free(gn), free(ga);
    cl_train_result r;
    if (cl_train_run(&o, &r, &err)) {
        fprintf(stderr, "condlora train: %s\n", err.msg);
        return cl_exit_status(&err);
    }
    if (r.interrupted) return 128 + r.interrupted; /* 130 SIGINT, 143 SIGTERM, after the checkpoint */
    if (r.paused) return 0;
    const char *out_dir = o.resume ? o.resume : o.out_dir;
    /* summary table */
    printf("\n%-8s %-10s %-8s %s\n", "split", "examples", "step", "metrics");
    for (int s = 0; s < 1 + r.have_test; s++) {
        const cl_metric_set *m = s ? &r.test : &r.best_dev;
        printf("%-8s %-10zu %-8lld", s ? "test" : "dev", s ? r.n_test : r.n_dev, (long long)r.best_step);
        for (int i = 0; i < m->n; i++) printf(" %s %.4f", m->m[i].name, m->m[i].value);
        printf("\n");
    }
    printf("steps %lld, epochs %d%s, %.1f examples/s, %.0f tokens/s, wall %.1f s; run: %s\n", (long long)r.steps,
           r.epochs_run, r.stopped_early ? " (stopped early)" : "", r.examples_per_s, r.tokens_per_s, r.wall_s,
           out_dir);
    return 0;
}
