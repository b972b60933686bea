/* The training options table (see options.h). */
#include "train/options.h"
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/util.h"
#include "model/gemm_bf16.h" /* cl_precision_parse */

#define OFF(f) offsetof(cl_train_opts, f), (int)sizeof(((cl_train_opts *)0)->f)
#define BIG 1099511627776.0 /* 2^40 */

/* ---- choice options: a generic one stores the word's index in an int (enum) field; these do more ---- */
static int choice_index(const char *choices, const char *v) {
    size_t n = strlen(v);
    int k = 0;
    for (const char *p = choices; *p; k++) {
        const char *e = strchr(p, '|');
        size_t m = e ? (size_t)(e - p) : strlen(p);
        if (m == n && !strncmp(p, v, n)) return k;
        p += m + (e ? 1 : 0);
    }
    return -1;
}

static void choice_word(const char *choices, int k, char *buf, size_t n) {
    const char *p = choices;
    for (int i = 0; i < k && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) { snprintf(buf, n, "?"); return; }
    const char *e = strchr(p, '|');
    snprintf(buf, n, "%.*s", (int)(e ? (size_t)(e - p) : strlen(p)), p);
}

static int set_method(cl_train_opts *o, const char *v, cl_error *err) {
    cl_method m;
    if (cl_method_parse(v, &m, err)) return cl_errf(err, CL_EUSAGE, "option --method: %s", err->msg);
    /* the adapter options back to this method's defaults (AdaLoRA's r is 12): set the method first */
    if (m != o->ad.method) {
        cl_adapter_opts keep = o->ad;
        cl_adapter_opts_default(&o->ad, m);
        o->ad.target_modules = keep.target_modules, o->ad.layers = keep.layers;
    }
    return 0;
}

static int set_problem(cl_train_opts *o, const char *v, cl_error *err) {
    if (!strcmp(v, "auto")) return o->problem = CL_PROBLEM_AUTO, 0;
    return cl_problem_parse(v, &o->problem, err) ? CL_EUSAGE : 0;
}

static int set_format(cl_train_opts *o, const char *v, cl_error *err) {
    if (!strcmp(v, "auto")) return o->format = CL_FMT_AUTO, 0;
    return cl_file_format_parse(v, &o->format, err) ? CL_EUSAGE : 0;
}




/* --preset paper applies the paper's settings for the task at this point of the command line (later options
 * override them); "none" does nothing. run.json records which was given; reading it back only sets the mark. */
static int set_preset(cl_train_opts *o, const char *v, cl_error *err) {
    if (!strcmp(v, "none")) return o->preset_paper = 0, 0;
    if (strcmp(v, "paper")) return cl_errf(err, CL_EUSAGE, "option --preset: '%s' is not 'paper'", v);
    return cl_train_apply_paper_preset(o, err);
}

/* ---- the table ---- */
#define G_DATA "model and data"
#define G_AD "adapter"
#define G_OPT "optimizer"
#define G_SCHED "schedule and evaluation"
#define G_RUN "run"
static const cl_train_option OPTS[] = {
    {"model", "model_dir", CL_OT_PATH, 0, G_DATA, "DIR", "", 0, 0, NULL,
     "Hugging Face model directory (config.json + model.safetensors)", OFF(model_dir), NULL, NULL},
    {"tokenizer", "tokenizer_dir", CL_OT_PATH, 0, G_DATA, "DIR", "", 0, 0, NULL,
     "tokenizer files (default: the model directory)", OFF(tokenizer_dir), NULL, NULL},
    {"task", "task", CL_OT_STRING, 0, G_DATA, "NAME", "", 0, 0, NULL,
     "a GLUE task: CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE, WNLI", OFF(task), NULL, NULL},
    {"data", "data_dir", CL_OT_PATH, 0, G_DATA, "DIR", "", 0, 0, NULL,
     "the GLUE root holding TASK/ (e.g. ../shared/data/glue) or the task's directory", OFF(data_dir), NULL, NULL},
    {"train", "train_file", CL_OT_PATH, 0, G_DATA, "FILE", "", 0, 0, NULL,
     "your own data instead of a GLUE task: TSV, CSV or JSON Lines with named columns", OFF(train_file), NULL,
     NULL},
    {"dev", "dev_file", CL_OT_PATH, 0, G_DATA, "FILE", "", 0, 0, NULL,
     "for model selection (default: 10% of --train held out, the paper's protocol)", OFF(dev_file), NULL, NULL},
    {"test", "test_file", CL_OT_PATH, 0, G_DATA, "FILE", "", 0, 0, NULL,
     "evaluated with the best checkpoint at the end (labelled)", OFF(test_file), NULL, NULL},
    {"text-columns", "text_columns", CL_OT_STRING, 0, G_DATA, "A[,B]", "sentence", 0, 0, NULL,
     "the text column(s) of --train / --dev / --test", OFF(text_columns), NULL, NULL},
    {"label-column", "label_column", CL_OT_STRING, 0, G_DATA, "NAME", "label", 0, 0, NULL,
     "the label column of --train / --dev / --test", OFF(label_column), NULL, NULL},
    {"problem", "problem", CL_OT_CHOICE, 0, G_DATA, NULL, "auto", 0, 0, "auto|classification|regression|multi_label",
     "auto: multi_label when a JSON Lines label is a list, regression when every label is a non-integer number, "
     "else classification (a multi-label TSV/CSV field lists its labels separated by commas)", OFF(problem),
     set_problem, NULL},
    {"format", "format", CL_OT_CHOICE, 0, G_DATA, NULL, "auto", 0, 0, "auto|tsv|csv|jsonl",
     "the files' format (auto: by each file's extension)", OFF(format), set_format, NULL},
    {"protocol", "protocol", CL_OT_CHOICE, 0, G_DATA, NULL, "paper", 0, 0, "paper|glue",
     "paper: 10% of train held out for model selection, the official dev set as test; glue: the official splits",
     OFF(protocol), NULL, NULL},
    {"max-length", "max_length", CL_OT_INT, 0, G_DATA, "N", "128", 2, 1 << 20, NULL,
     "truncate sequences to N tokens (512 under --preset paper)", OFF(max_length), NULL, NULL},
    {"max-train", "max_train", CL_OT_INT, 0, G_DATA, "N", "0", 0, BIG, NULL,
     "use only the first N training examples (0 = all)", OFF(max_train), NULL, NULL},
    {"max-eval", "max_eval", CL_OT_INT, 0, G_DATA, "N", "0", 0, BIG, NULL,
     "use only the first N dev / test examples (0 = all)", OFF(max_eval), NULL, NULL},

    {"method", "method", CL_OT_CHOICE, CL_OF_ADAPTER, G_AD, NULL, "condlora", 0, 0, "lora|condlora|salora|adalora",
     "the adapter method (setting it resets the adapter options to the method's defaults: give it first)",
     OFF(ad.method), set_method, NULL},
    {"r", "r", CL_OT_INT, CL_OF_ADAPTER, G_AD, "N", "8", 1, 4096, NULL, "rank (AdaLoRA: init_r, default 12)",
     OFF(ad.r), NULL, NULL},
    {"alpha", "alpha", CL_OT_FLOAT, CL_OF_ADAPTER, G_AD, "A", "8", 1e-12, 1e9, NULL,
     "lora_alpha: the update is scaled by alpha / r", OFF(ad.alpha), NULL, NULL},
    {"dropout", "dropout", CL_OT_FLOAT, CL_OF_ADAPTER, G_AD, "P", "0", 0, 0.999999, NULL,
     "lora_dropout on the adapter's input", OFF(ad.dropout), NULL, NULL},
    {"targets", "target_modules", CL_OT_STRING, CL_OF_ADAPTER, G_AD, "M1,M2", "query,value", 0, 0, NULL,
     "target modules (query, key, value, attention.output.dense, intermediate.dense, output.dense)",
     OFF(ad.target_modules), NULL, NULL},
    {"layers", "layers", CL_OT_STRING, CL_OF_ADAPTER, G_AD, "0-5,11", "", 0, 0, NULL,
     "the layers adapted (default: all)", OFF(ad.layers), NULL, NULL},
    {"rslora", "rslora", CL_OT_BOOL, CL_OF_ADAPTER, G_AD, "0|1", "0", 0, 1, NULL,
     "rsLoRA: scale by alpha / sqrt(r) (LoRA, SaLoRA, CondLoRA)", OFF(ad.rslora), NULL, NULL},
    {"condlora-form", "condlora_paper", CL_OT_CHOICE, CL_OF_ADAPTER, G_AD, NULL, "released", 0, 0,
     "released|paper", "CondLoRA: B_l = W ThB^T (the released code) or W^T ThB^T (Eq. 6 of the paper)",
     OFF(ad.condlora_paper), NULL, NULL},
    {"condlora-use-x", "condlora_use_x", CL_OT_INT, CL_OF_ADAPTER, G_AD, "0|1|2", "0", 0, 2, NULL,
     "CondLoRA: the released code's input-conditioned variants (0 = none)", OFF(ad.condlora_use_x), NULL, NULL},
    {"condlora-lambda-x", "condlora_lambda_x", CL_OT_FLOAT, CL_OF_ADAPTER, G_AD, "X", "0.5", 0, 1e6, NULL,
     "CondLoRA use-x: the weight of the input-conditioned term", OFF(ad.condlora_lambda_x), NULL, NULL},
    {"salora-budget", "salora_budget", CL_OT_FLOAT, CL_OF_ADAPTER, G_AD, "X", "0.5", 1e-6, 1, NULL,
     "SaLoRA: the fraction of the total rank kept at the end", OFF(ad.salora_budget), NULL, NULL},
    {"salora-warmup", "salora_warmup", CL_OT_FLOAT, CL_OF_ADAPTER, G_AD, "X", "0.3", 0, 1, NULL,
     "SaLoRA: the fraction of the steps over which the target falls from 1 to the budget", OFF(ad.salora_warmup),
     NULL, NULL},
    {"salora-lambda-lr", "salora_lambda_lr", CL_OT_FLOAT, CL_OF_ADAPTER, G_AD, "X", "0.01", 0, 1e6, NULL,
     "SaLoRA: the gradient-ascent rate of the Lagrange multipliers", OFF(ad.salora_lambda_lr), NULL, NULL},
    {"salora-orth", "salora_orth", CL_OT_FLOAT, CL_OF_ADAPTER, G_AD, "X", "0.1", 0, 1e6, NULL,
     "SaLoRA: the orthogonality regulariser's weight", OFF(ad.salora_orth), NULL, NULL},
    {"salora-log-alpha-init", "salora_log_alpha_init", CL_OT_FLOAT, CL_OF_ADAPTER, G_AD, "X", "3", -1000, 1000,
     NULL, "SaLoRA: the gates' initial log alpha (3: P(gate open) = 0.99)", OFF(ad.salora_log_alpha_init), NULL,
     NULL},
    {"ada-target-r", "ada_target_r", CL_OT_INT, CL_OF_ADAPTER, G_AD, "N", "8", 1, 4096, NULL,
     "AdaLoRA: the average rank at the end (PEFT target_r)", OFF(ad.ada_target_r), NULL, NULL},
    {"ada-tinit", "ada_tinit", CL_OT_INT, CL_OF_ADAPTER, G_AD, "N", "0", 0, 2147483647.0, NULL,
     "AdaLoRA: steps of warm-up before the budget falls (PEFT tinit)", OFF(ad.ada_tinit), NULL, NULL},
    {"ada-tfinal", "ada_tfinal", CL_OT_INT, CL_OF_ADAPTER, G_AD, "N", "0", 0, 2147483647.0, NULL,
     "AdaLoRA: final steps at the target budget (PEFT tfinal)", OFF(ad.ada_tfinal), NULL, NULL},
    {"ada-delta-t", "ada_deltaT", CL_OT_INT, CL_OF_ADAPTER, G_AD, "N", "1", 1, 2147483647.0, NULL,
     "AdaLoRA: steps between two budget allocations (PEFT deltaT)", OFF(ad.ada_deltaT), NULL, NULL},
    {"ada-beta1", "ada_beta1", CL_OT_FLOAT, CL_OF_ADAPTER, G_AD, "X", "0.85", 0, 0.999999, NULL,
     "AdaLoRA: the sensitivity EMA's coefficient", OFF(ad.ada_beta1), NULL, NULL},
    {"ada-beta2", "ada_beta2", CL_OT_FLOAT, CL_OF_ADAPTER, G_AD, "X", "0.85", 0, 0.999999, NULL,
     "AdaLoRA: the uncertainty EMA's coefficient", OFF(ad.ada_beta2), NULL, NULL},
    {"ada-orth", "ada_orth", CL_OT_FLOAT, CL_OF_ADAPTER, G_AD, "X", "0.5", 0, 1e6, NULL,
     "AdaLoRA: the orthogonality regulariser's weight (PEFT orth_reg_weight)", OFF(ad.ada_orth), NULL, NULL},
    {"train-pooler", "train_pooler", CL_OT_BOOL, 0, G_AD, "0|1", "0", 0, 1, NULL,
     "BERT: train pooler.dense with the classifier (PEFT modules_to_save \"pooler\"), the counterpart of "
     "RoBERTa's classifier.dense; --preset paper sets 1", OFF(train_pooler), NULL, NULL},

    {"lr", "lr", CL_OT_FLOAT, 0, G_OPT, "X", "5e-4", 1e-30, 1e3, NULL, "the peak learning rate", OFF(lr), NULL,
     NULL},
    {"weight-decay", "weight_decay", CL_OT_FLOAT, 0, G_OPT, "X", "0", 0, 1e3, NULL, "AdamW's decoupled weight decay",
     OFF(weight_decay), NULL, NULL},
    {"beta1", "beta1", CL_OT_FLOAT, 0, G_OPT, "X", "0.9", 0, 0.999999, NULL, "AdamW beta1", OFF(beta1), NULL, NULL},
    {"beta2", "beta2", CL_OT_FLOAT, 0, G_OPT, "X", "0.999", 0, 0.999999, NULL, "AdamW beta2", OFF(beta2), NULL,
     NULL},
    {"eps", "eps", CL_OT_FLOAT, 0, G_OPT, "X", "1e-8", 0, 1, NULL, "AdamW epsilon", OFF(eps), NULL, NULL},
    {"max-grad-norm", "max_grad_norm", CL_OT_FLOAT, 0, G_OPT, "X", "0", 0, 1e9, NULL,
     "clip the gradient's global norm (0 = no clipping)", OFF(max_grad_norm), NULL, NULL},
    {"batch-size", "batch_size", CL_OT_INT, 0, G_OPT, "N", "16", 1, 65536, NULL, "examples per optimizer step",
     OFF(batch_size), NULL, NULL},
    {"warmup-ratio", "warmup_ratio", CL_OT_FLOAT, 0, G_OPT, "X", "0.1", 0, 1, NULL,
     "linear warm-up over this fraction of the steps, then linear decay to 0", OFF(warmup_ratio), NULL, NULL},

    {"epochs", "epochs", CL_OT_INT, 0, G_SCHED, "N", "3", 1, 1000000, NULL, "passes over the training set",
     OFF(epochs), NULL, NULL},
    {"max-steps", "max_steps", CL_OT_INT, 0, G_SCHED, "N", "0", 0, BIG, NULL,
     "stop after N optimizer steps (0 = by epochs)", OFF(max_steps), NULL, NULL},
    {"eval-every", "eval_every", CL_OT_INT, 0, G_SCHED, "N", "0", -1, BIG, NULL,
     "evaluate on dev every N steps (0 = every epoch; -1 = the paper's rule, set by --preset paper)",
     OFF(eval_every), NULL, NULL},
    {"patience", "patience", CL_OT_INT, 0, G_SCHED, "N", "0", 0, 1000000, NULL,
     "stop after N evaluations without improvement (0 = no early stopping)", OFF(patience), NULL, NULL},
    {"seed", "seed", CL_OT_INT, 0, G_SCHED, "N", "1", 0, 9007199254740991.0, NULL,
     "every random draw (split, head, adapter, batch order, dropout) derives from it", OFF(seed), NULL, NULL},
    {"mega", "mega", CL_OT_INT, 0, G_SCHED, "N", "50", 0, 1000000, NULL,
     "batches per length bucket of the batch order (0 or 1 = no bucketing)", OFF(mega), NULL, NULL},
    {"log-every", "log_every", CL_OT_INT, 0, G_SCHED, "N", "10", 1, 1000000, NULL,
     "a progress line and a metrics.jsonl record every N steps", OFF(log_every), NULL, NULL},
    {"preset", "preset", CL_OT_CHOICE, 0, G_SCHED, NULL, "none", 0, 0, "none|paper",
     "paper: the paper's settings for the task (METHODS.md 4): its lr for LoRA / CondLoRA, epochs, patience, max "
     "length 512, r = alpha = 8, eval every epoch or 1500 steps; options given after it override it",
     OFF(preset_paper), set_preset, NULL},

    {"out", "out_dir", CL_OT_PATH, CL_OF_NO_REL, G_RUN, "RUN_DIR", "", 0, 0, NULL,
     "the run directory (new, or an existing run with --overwrite)", OFF(out_dir), NULL, NULL},
    {"precision", "precision", CL_OT_CHOICE, 0, G_RUN, NULL, "fp32", 0, 0, "fp32|bf16",
     "bf16: the encoder's frozen linear layers in bf16 with fp32 accumulation (AVX512_BF16 CPUs); adapters, head "
     "and optimizer stay fp32", OFF(bf16), NULL, NULL},
    {"threads", "threads", CL_OT_INT, CL_OF_RESUME, G_RUN, "K", "0", 0, 4096, NULL,
     "threads for this run (0 = OMP_NUM_THREADS or all cores)", OFF(threads), NULL, NULL},
    {"save-every", "save_every", CL_OT_INT, CL_OF_RESUME, G_RUN, "N", "0", 0, BIG, NULL,
     "write RUN_DIR/checkpoint-STEP/ every N steps (adapter, head, optimizer moments, schedule and data position, "
     "evaluation history; COMPLETE marker last)", OFF(save_every), NULL, NULL},
    {"save-limit", "save_limit", CL_OT_INT, CL_OF_RESUME, G_RUN, "N", "0", 0, 1000000, NULL,
     "keep only the newest N checkpoints (0 = all)", OFF(save_limit), NULL, NULL},
    {"stop-after", "stop_after", CL_OT_INT, CL_OF_INVOCATION, G_RUN, "N", "0", 0, BIG, NULL,
     "take N steps, write a checkpoint and exit (continue later with --resume; 0 = run to the end)",
     OFF(stop_after), NULL, NULL},
    {"overwrite", "overwrite", CL_OT_FLAG, CL_OF_INVOCATION, G_RUN, NULL, "0", 0, 1, NULL,
     "--out may name an existing run: it is removed once every input has been checked (a directory that is not a "
     "run never is)", OFF(overwrite), NULL, NULL},
    {"quiet", "quiet", CL_OT_FLAG, CL_OF_INVOCATION, G_RUN, NULL, "0", 0, 1, NULL, "no progress lines", OFF(quiet),
     NULL, NULL},
};
#define NOPTS (sizeof OPTS / sizeof OPTS[0])

size_t cl_train_option_count(void) { return NOPTS; }
const cl_train_option *cl_train_option_at(size_t i) { return i < NOPTS ? &OPTS[i] : NULL; }

/* names compare with '-' and '_' equal */
static int name_eq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (*a != *b && !((*a == '-' || *a == '_') && (*b == '-' || *b == '_'))) return 0;
    return *a == *b;
}

const cl_train_option *cl_train_option_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < NOPTS; i++)
        if (name_eq(OPTS[i].name, name) || !strcmp(OPTS[i].key, name)) return &OPTS[i];
    return NULL;
}

static void *field(cl_train_opts *o, const cl_train_option *p) { return (char *)o + p->off; }
static const void *cfield(const cl_train_opts *o, const cl_train_option *p) { return (const char *)o + p->off; }

int cl_train_option_set(cl_train_opts *o, const cl_train_option *p, const char *v, cl_error *err) {
    if (p->type == CL_OT_FLAG && !v) v = "1";
    if (!v) return cl_errf(err, CL_EUSAGE, "option --%s: a value is required", p->name);
    if (p->set) {
        cl_error e = {0};
        int rc = p->set(o, v, &e);
        if (rc) { /* the parsers name the option their own way; make sure --NAME is in the message */
            char dn[80];
            snprintf(dn, sizeof dn, "--%s", p->name);
            if (strstr(e.msg, dn)) cl_errf(err, CL_EUSAGE, "%s", e.msg);
            else cl_errf(err, CL_EUSAGE, "option --%s: %s", p->name, e.msg);
        }
        return rc ? CL_EUSAGE : 0;
    }
    switch (p->type) {
    case CL_OT_STRING:
    case CL_OT_PATH:
        *(const char **)field(o, p) = v;
        return 0;
    case CL_OT_INT:
    case CL_OT_BOOL:
    case CL_OT_FLAG: {
        long long x;
        char *end = NULL;
        errno = 0;
        if (p->type != CL_OT_INT && (!strcmp(v, "true") || !strcmp(v, "false"))) x = v[0] == 't';
        else x = strtoll(v, &end, 10);
        if ((end && (!*v || *end)) || errno || x < (long long)p->lo || x > (long long)p->hi)
            return cl_errf(err, CL_EUSAGE, "option --%s: '%s' is not an integer in %.0f..%.0f", p->name, v, p->lo,
                           p->hi);
        if (p->size == 8) *(int64_t *)field(o, p) = x; /* int64_t, uint64_t and size_t fields */
        else *(int *)field(o, p) = (int)x;
        return 0;
    }
    case CL_OT_FLOAT: {
        char *end = NULL;
        errno = 0;
        double x = strtod(v, &end);
        if (!*v || *end || !isfinite(x))
            return cl_errf(err, CL_EUSAGE, "option --%s: '%s' is not a finite number", p->name, v);
        if (x < p->lo || x > p->hi)
            return cl_errf(err, CL_EUSAGE, "option --%s: %s is outside [%g, %g]", p->name, v, p->lo, p->hi);
        if (p->size == 8) *(double *)field(o, p) = x;
        else *(float *)field(o, p) = (float)x;
        return 0;
    }
    case CL_OT_CHOICE: {
        int k = choice_index(p->choices, v);
        if (k < 0) {
            char ch[160];
            snprintf(ch, sizeof ch, "%s", p->choices);
            for (char *q = ch; *q; q++)
                if (*q == '|') *q = ',';
            return cl_errf(err, CL_EUSAGE, "option --%s: '%s' is not one of %s", p->name, v, ch);
        }
        *(int *)field(o, p) = k;
        return 0;
    }
    }
    return cl_errf(err, CL_EINVAL, "option --%s: no setter", p->name);
}

void cl_train_option_get(const cl_train_opts *o, const cl_train_option *p, char *b, size_t n) {
    if (p->get) { p->get(o, b, n); return; }
    switch (p->type) {
    case CL_OT_STRING:
    case CL_OT_PATH: {
        const char *s = *(const char *const *)cfield(o, p);
        snprintf(b, n, "%s", s && *s ? s : p->def);
        return;
    }
    case CL_OT_INT:
    case CL_OT_BOOL:
    case CL_OT_FLAG:
        if (p->size == 8) snprintf(b, n, "%lld", (long long)*(const int64_t *)cfield(o, p));
        else snprintf(b, n, "%d", *(const int *)cfield(o, p));
        return;
    case CL_OT_FLOAT:
        if (p->size == 8) {
            const double d = *(const double *)cfield(o, p);
            for (int digits = 15; digits <= 17; digits++) {
                snprintf(b, n, "%.*g", digits, d);
                if (strtod(b, NULL) == d) break;
            }
        }
        else { /* the shortest text that reads back as the same float */
            const float f = *(const float *)cfield(o, p);
            for (int digits = 6; digits <= 9; digits++) {
                snprintf(b, n, "%.*g", digits, (double)f);
                if ((float)strtod(b, NULL) == f) break;
            }
        }
        return;
    case CL_OT_CHOICE:
        choice_word(p->choices, *(const int *)cfield(o, p), b, n);
        return;
    }
    snprintf(b, n, "?");
}

/* ---- run.json ---- */
void cl_train_options_to_json(const cl_train_opts *o, cJSON *op, cJSON *ad, const char *run_dir) {
    for (size_t i = 0; i < NOPTS; i++) {
        const cl_train_option *p = &OPTS[i];
        cJSON *dst = p->flags & CL_OF_ADAPTER ? ad : op;
        char v[4096];
        cl_train_option_get(o, p, v, sizeof v);
        switch (p->type) {
        case CL_OT_PATH: {
            char abs[4096], rel[4096], k[80];
            cJSON_AddStringToObject(dst, p->key, !*v || cl_path_abs(v, abs, sizeof abs) ? v : abs);
            snprintf(k, sizeof k, "%s_rel", p->key);
            if (*v && run_dir && !(p->flags & CL_OF_NO_REL) && !cl_path_relative(run_dir, v, rel, sizeof rel))
                cJSON_AddStringToObject(dst, k, rel);
            break;
        }
        case CL_OT_INT:
        case CL_OT_BOOL:
        case CL_OT_FLAG:
        case CL_OT_FLOAT:
            cJSON_AddNumberToObject(dst, p->key, strtod(v, NULL));
            break;
        default:
            cJSON_AddStringToObject(dst, p->key, v);
        }
    }
}

static int path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static const char *keep(const char *s, char **buf, size_t *left) {
    size_t n = strlen(s) + 1;
    if (n > *left) return NULL;
    memcpy(*buf, s, n);
    const char *r = *buf;
    *buf += n, *left -= n;
    return r;
}

int cl_train_options_from_json(cl_train_opts *o, cJSON *op, cJSON *ad, const char *run_dir, char **buf,
                               size_t *left, const char *const *required, const char *path, cl_error *err) {
    for (const char *const *k = required; k && *k; k++) {
        const cl_train_option *p = cl_train_option_find(*k);
        cJSON *src = p && (p->flags & CL_OF_ADAPTER) ? ad : op;
        if (!cJSON_GetObjectItemCaseSensitive(src, *k))
            return cl_errf(err, CL_EFORMAT, "%s: run.json lacks the option %s%s", path,
                           p && (p->flags & CL_OF_ADAPTER) ? "adapter." : "", *k);
    }
    /* the method first: it resets the adapter options to its defaults */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < NOPTS; i++) {
            const cl_train_option *p = &OPTS[i];
            if ((p->set == set_method) != (pass == 0)) continue;
            cJSON *it = cJSON_GetObjectItemCaseSensitive(p->flags & CL_OF_ADAPTER ? ad : op, p->key);
            if (!it) continue;
            char v[4200];
            const char *val = v;
            if (cJSON_IsString(it)) {
                snprintf(v, sizeof v, "%s", it->valuestring);
            } else if (cJSON_IsNumber(it) && p->type == CL_OT_CHOICE) { /* older runs: condlora_paper 0 / 1 */
                choice_word(p->choices, (int)it->valuedouble, v, sizeof v);
            } else if (cJSON_IsNumber(it)) {
                if (p->type == CL_OT_FLOAT) snprintf(v, sizeof v, "%.17g", it->valuedouble);
                else snprintf(v, sizeof v, "%.0f", it->valuedouble);
            } else if (cJSON_IsBool(it)) {
                snprintf(v, sizeof v, "%d", cJSON_IsTrue(it) ? 1 : 0);
            } else {
                return cl_errf(err, CL_EFORMAT, "%s: run.json option %s: not a string or a number", path, p->key);
            }
            if (p->type == CL_OT_PATH || p->type == CL_OT_STRING) {
                if (!*v) { *(const char **)field(o, p) = NULL; continue; }
                if (p->type == CL_OT_PATH && !path_exists(v) && run_dir) { /* a run that moved with its data */
                    char k[80], cand[4200];
                    snprintf(k, sizeof k, "%s_rel", p->key);
                    cJSON *rel = cJSON_GetObjectItemCaseSensitive(p->flags & CL_OF_ADAPTER ? ad : op, k);
                    if (cJSON_IsString(rel)) {
                        int cn = snprintf(cand, sizeof cand, "%s/%s", run_dir, rel->valuestring);
                        if (cn > 0 && (size_t)cn < sizeof cand && path_exists(cand)) memcpy(v, cand, (size_t)cn + 1);
                    }
                }
                if (!(val = keep(v, buf, left)))
                    return cl_errf(err, CL_EFORMAT, "%s: run.json option %s: too long", path, p->key);
            }
            if (p->set == set_preset) { /* the mark only: the preset's values are recorded one by one */
                o->preset_paper = !strcmp(v, "paper");
                continue;
            }
            cl_error e = {0};
            if (cl_train_option_set(o, p, val, &e))
                return cl_errf(err, CL_EFORMAT, "%s: run.json option %s: %s", path, p->key, e.msg);
        }
    return 0;
}

/* ---- --help ---- */
void cl_train_options_help(FILE *f) {
    static const char *groups[] = {G_DATA, G_AD, G_OPT, G_SCHED, G_RUN};
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        fprintf(f, "%s%s:\n", g ? "\n" : "", groups[g]);
        for (size_t i = 0; i < NOPTS; i++) {
            const cl_train_option *p = &OPTS[i];
            if (strcmp(p->group, groups[g])) continue;
            char head[160];
            if (p->type == CL_OT_FLAG) snprintf(head, sizeof head, "  --%s", p->name);
            else snprintf(head, sizeof head, "  --%s %s", p->name, p->type == CL_OT_CHOICE ? p->choices : p->arg);
            char def[96] = "";
            if (p->def && *p->def && p->type != CL_OT_FLAG) snprintf(def, sizeof def, " (default %s)", p->def);
            /* wrap the help at 118 columns, indented to column 26 */
            char text[1024];
            snprintf(text, sizeof text, "%s%s", p->help, def);
            int col = (int)strlen(head);
            fputs(head, f);
            const char *w = text;
            int first = 1;
            while (*w) {
                const char *e = w;
                size_t len = 0;
                while (e[len] && e[len] != ' ') len++;
                if (first && col < 25) { fprintf(f, "%*s", 25 - col, ""), col = 25; }
                else if (first || col + 1 + (int)len > 118) { fprintf(f, "\n%25s", ""), col = 25; }
                else { fputc(' ', f), col++; }
                fprintf(f, "%.*s", (int)len, w);
                col += (int)len;
                first = 0;
                w += len;
                while (*w == ' ') w++;
            }
            fputc('\n', f);
        }
    }
}
