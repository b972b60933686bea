/* The training loop, evaluation, early stopping and the schedule (see trainer.h). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/util.h"
#include "io/safetensors.h"
#include "model/gemm_bf16.h"
#include "train/options.h"
#include "train/train_internal.h"

/* the table's defaults (train/options.c); the adapter's from cl_adapter_opts_default (tests/test_options.c checks
 * that they are the table's too) */
void cl_train_opts_default(cl_train_opts *o) {
    memset(o, 0, sizeof *o);
    cl_adapter_opts_default(&o->ad, CL_METHOD_CONDLORA);
    for (size_t i = 0; i < cl_train_option_count(); i++) {
        const cl_train_option *p = cl_train_option_at(i);
        if ((p->flags & CL_OF_ADAPTER) || !p->def || !*p->def || p->set) continue;
        cl_error e = {0};
        cl_train_option_set(o, p, p->def, &e);
    }
    o->protocol = CL_PROTOCOL_PAPER;
    o->save_final = 1;
}

/* METHODS.md section 4, verbatim. */
static const cl_paper_preset PRESETS[] = {
    {"CoLA", 4.862585643e-4, 6.02555587379099e-4, 100, 0},
    {"SST-2", 2.53267522217202e-4, 4.1369967560273e-4, 60, 30},
    {"MRPC", 8.36641968785768e-5, 1.91170236576257e-4, 100, 30},
    {"QQP", 1.99807699090228e-4, 2.42588482184581e-4, 50, 0},
    {"STS-B", 1.61048057994754e-3, 1.64898943982061e-4, 100, 30},
    {"MNLI", 7.57809165465913e-4, 1.05521999043283e-4, 50, 0},
    {"QNLI", 1.15530990829162e-4, 2.91557968964229e-4, 50, 30},
    {"RTE", 7.70943216980477e-5, 1.61750047409374e-4, 100, 0},
};

const cl_paper_preset *cl_paper_preset_find(const char *task) {
    const cl_glue_task *t = cl_glue_find_task(task);
    if (!t) return NULL;
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
        if (!strcmp(PRESETS[i].task, t->name)) return &PRESETS[i];
    return NULL;
}

int cl_train_apply_paper_preset(cl_train_opts *o, cl_error *err) {
    o->preset_paper = 1;
    const cl_paper_preset *p = o->task ? cl_paper_preset_find(o->task) : NULL;
    if (!p)
        return cl_errf(err, CL_EUSAGE, "option --preset: the paper gives no settings for task '%s' (it has CoLA, SST-2, "
                                       "MRPC, QQP, STS-B, MNLI, QNLI, RTE)", o->task ? o->task : "(none)");
    o->lr = (float)(o->ad.method == CL_METHOD_CONDLORA ? p->lr_condlora : p->lr_lora);
    o->epochs = p->epochs;
    o->patience = p->patience;
    o->max_length = 512;
    o->batch_size = 16;
    o->warmup_ratio = 0.1;
    o->weight_decay = 0.0f;
    o->beta1 = 0.9f, o->beta2 = 0.999f, o->eps = 1e-8f;
    o->ad.r = 8;
    o->ad.alpha = 8.0f;
    o->ad.dropout = 0.0f;
    o->ad.target_modules = "query,value";
    o->eval_every = -1; /* decided from the epoch size: cl_paper_eval_every */
    o->protocol = CL_PROTOCOL_PAPER;
    o->train_pooler = 1; /* BERT: pooler + classifier = RoBERTa's trained classification head */
    return 0;
}

int64_t cl_paper_eval_every(size_t batches_per_epoch) { return batches_per_epoch >= 1500 ? 1500 : 0; }

int64_t cl_train_warmup_steps(double warmup_ratio, int64_t total) {
    if (warmup_ratio <= 0) return 0;
    return (int64_t)ceil((double)total * warmup_ratio);
}

double cl_train_lr_at(double lr, int64_t step, int64_t warmup, int64_t total) {
    if (step < warmup) return lr * (double)step / (double)(warmup > 1 ? warmup : 1);
    double f = (double)(total - step) / (double)(total - warmup > 1 ? total - warmup : 1);
    return lr * (f > 0 ? f : 0);
}

static uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t cl_train_step_seed(uint64_t seed, int64_t step, int stream) {
    return splitmix(splitmix(seed) ^ splitmix((uint64_t)step * 2 + 1) ^ ((uint64_t)stream << 56));
}

/* ---- setup ------------------------------------------------------------------------------------------------ */

static int validate_opts(const cl_train_opts *o, int need_out, cl_error *err) {
    if (!o->model_dir || !*o->model_dir) return cl_errf(err, CL_EUSAGE, "option --model: a model directory is required");
    if (o->train_file) {
        if ((o->task && *o->task) || (o->data_dir && *o->data_dir))
            return cl_errf(err, CL_EUSAGE, "option --train: your own files (--train, --dev, --test) or a GLUE task "
                           "(--task, --data), not both");
        if (o->preset_paper)
            return cl_errf(err, CL_EUSAGE, "option --preset: the paper's settings are for GLUE tasks");
    } else {
        if (o->dev_file || o->test_file)
            return cl_errf(err, CL_EUSAGE, "option --%s: needs --train", o->dev_file ? "dev" : "test");
        if (!o->task || !*o->task)
            return cl_errf(err, CL_EUSAGE, "option --task: a GLUE task name (or your own files: --train FILE) is "
                           "required");
        if (!o->data_dir || !*o->data_dir)
            return cl_errf(err, CL_EUSAGE, "option --data: a data directory is required");
    }
    if (need_out && (!o->out_dir || !*o->out_dir))
        return cl_errf(err, CL_EUSAGE, "option --out: a run directory is required");
    if (!(o->lr > 0) || !isfinite(o->lr)) return cl_errf(err, CL_EUSAGE, "option --lr: %g is not > 0", o->lr);
    if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
        return cl_errf(err, CL_EUSAGE, "option --weight-decay: %g is not >= 0", o->weight_decay);
    if (!(o->warmup_ratio >= 0 && o->warmup_ratio <= 1))
        return cl_errf(err, CL_EUSAGE, "option --warmup-ratio: %g is not in [0, 1]", o->warmup_ratio);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return cl_errf(err, CL_EUSAGE, "option --betas: (%g, %g) must be in [0, 1)", o->beta1, o->beta2);
    if (!(o->eps > 0)) return cl_errf(err, CL_EUSAGE, "option --eps: %g is not > 0", o->eps);
    if (!isfinite(o->max_grad_norm)) return cl_errf(err, CL_EUSAGE, "option --max-grad-norm: not a number");
    if (o->batch_size < 1 || o->batch_size > 65536)
        return cl_errf(err, CL_EUSAGE, "option --batch-size: %d is not in 1..65536", o->batch_size);
    if (o->max_length < 2) return cl_errf(err, CL_EUSAGE, "option --max-length: %d is too small", o->max_length);
    if (o->epochs < 1 && o->max_steps <= 0)
        return cl_errf(err, CL_EUSAGE, "option --epochs: %d is not >= 1 (or give --max-steps)", o->epochs);
    if (o->max_steps < 0) return cl_errf(err, CL_EUSAGE, "option --max-steps: negative");
    if (o->patience < 0) return cl_errf(err, CL_EUSAGE, "option --patience: negative");
    if (o->log_every < 1) return cl_errf(err, CL_EUSAGE, "option --log-every: %d is not >= 1", o->log_every);
    if (o->threads < 0) return cl_errf(err, CL_EUSAGE, "option --threads: negative");
    return 0;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* an event to the caller's callback, with its line */
static void emit(const cl_tctx *c, cl_train_event *ev, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void emit(const cl_tctx *c, cl_train_event *ev, const char *fmt, ...) {
    if (!c->o.on_event) return;
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ev->message = msg;
    c->o.on_event(ev, c->o.event_user);
}

static void tokset_free(cl_tokset *s) {
    free(s->ids), free(s->types), free(s->off), free(s->len), free(s->label), free(s->score), free((void *)s->multi);
    cl_batch_plan_free(&s->seq);
    memset(s, 0, sizeof *s);
}

static int tokenize_set(cl_tctx *c, const cl_dataset *d, const char *what, cl_tokset *s, size_t limit,
                        cl_error *err) {
    memset(s, 0, sizeof *s);
    size_t n = d->n;
    if (limit > 0 && n > limit) n = limit;
    s->n = n;
    size_t cap = n * 64 + 64;
    s->ids = malloc(cap * 4), s->types = malloc(cap * 4);
    s->off = malloc((n + 1) * sizeof(size_t)), s->len = malloc((n + 1) * sizeof(int));
    s->label = malloc((n + 1) * 4), s->score = malloc((n + 1) * 4);
    if (c->task->multi_label) s->multi = malloc((n + 1) * sizeof *s->multi);
    if (!s->ids || !s->types || !s->off || !s->len || !s->label || !s->score || (c->task->multi_label && !s->multi))
        return cl_errf(err, CL_ENOMEM, "tokenizing %s: out of memory", what);
    cl_tok_encoding e;
    cl_tok_encoding_init(&e);
    size_t used = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const cl_example *x = &d->ex[i];
        if ((rc = cl_tokenizer_encode_str(c->tok, x->text_a, x->text_b, c->o.max_length, &e, err))) {
            cl_err_prefix(err, "%s example %zu (line %d)", what, i, x->line);
            break;
        }
        if (used + (size_t)e.len > cap) {
            size_t nc = (used + (size_t)e.len) * 2;
            int32_t *a = realloc(s->ids, nc * 4), *b = a ? realloc(s->types, nc * 4) : NULL;
            if (a) s->ids = a;
            if (b) s->types = b;
            if (!a || !b) { rc = cl_errf(err, CL_ENOMEM, "tokenizing %s: out of memory", what); break; }
            cap = nc;
        }
        memcpy(s->ids + used, e.ids, (size_t)e.len * 4);
        memcpy(s->types + used, e.type_ids, (size_t)e.len * 4);
        s->off[i] = used;
        s->len[i] = e.len;
        s->label[i] = x->label;
        s->score[i] = x->score;
        if (s->multi) s->multi[i] = x->multi;
        s->tokens += e.len;
        s->truncated += e.truncated;
        used += (size_t)e.len;
        if (e.len > c->maxT) c->maxT = e.len;
    }
    cl_tok_encoding_free(&e);
    if (rc) return rc;
    if (n && (rc = cl_batch_plan_sequential(n, (size_t)c->o.batch_size, &s->seq, err))) return rc;
    return 0;
}

static void tctx_free(cl_tctx *c) {
    cl_encoder_free(c->enc);
    cl_adapter_free(c->ad);
    cl_params_free(&c->P);
    if (c->model_loaded) cl_model_free(&c->model);
    cl_tokenizer_free(c->tok);
    tokset_free(&c->tr), tokset_free(&c->dev), tokset_free(&c->test);
    cl_glue_splits_free(&c->splits);
    cl_user_task_free(&c->utask);
    free(c->b_ids), free(c->b_types), free(c->b_len), free(c->b_lab), free(c->b_tgt);
    free(c->pred), free(c->pred_score), free(c->best_param);
    cl_threads_leave(&c->threads_saved);
    memset(c, 0, sizeof *c);
}

/* Everything that can fail on the user's input happens here, before any step. tok_train: tokenize train too. */
static int tctx_setup(cl_tctx *c, const cl_train_opts *o, int need_out, int tok_train, cl_error *err) {
    memset(c, 0, sizeof *c);
    c->o = *o;
    int rc;
    if ((rc = validate_opts(o, need_out, err))) return rc;
    cl_threads_enter(o->threads, &c->threads_saved); /* restored by tctx_free */
    cl_user_opts uo = {o->train_file, o->dev_file, o->test_file, o->text_columns, o->label_column, o->problem,
                       o->format};
    if (o->train_file) {
        /* the user's own files: read (every row checked) now; the task is the one they define */
        if ((rc = cl_user_load(&uo, o->seed, &c->utask, &c->splits, err))) return rc;
        c->task = &c->utask.task;
        snprintf(c->task_dir, sizeof c->task_dir, "%s", o->train_file);
        goto model;
    }
    if ((rc = cl_glue_task_lookup(o->task, &c->task, err))) return cl_err_prefix(err, "option --task"), rc;
    /* data: the GLUE root holding TASK/, or the task directory itself */
    if (!is_dir(o->data_dir))
        return cl_errf(err, CL_EMISSING,
                       "option --data: %s is not a directory (GLUE data: the TSV files of each task under one "
                       "directory, e.g. ../shared/data/glue; see README.md for how to get them)", o->data_dir);
    snprintf(c->task_dir, sizeof c->task_dir, "%s/%s", o->data_dir, c->task->name);
    if (!is_dir(c->task_dir)) snprintf(c->task_dir, sizeof c->task_dir, "%s", o->data_dir);
    if ((rc = cl_glue_check_dir(c->task, c->task_dir, err))) return rc;
model:
    /* model directory and tokenizer */
    if (!is_dir(o->model_dir))
        return cl_errf(err, CL_EMISSING, "option --model: %s is not a directory (fetch the default model with "
                                         "scripts/fetch_model.sh)", o->model_dir);
    const char *tdir = o->tokenizer_dir && *o->tokenizer_dir ? o->tokenizer_dir : o->model_dir;
    if ((rc = cl_tokenizer_load(&c->tok, tdir, err))) return rc;
    cl_load_opts lo = {.num_labels = c->task->num_labels, .head_seed = o->seed, .verbose = 0};
    if ((rc = cl_model_load(&c->model, o->model_dir, &lo, err))) return rc;
    c->model_loaded = 1;
    if (c->model.head == CL_HEAD_NONE)
        return cl_errf(err, CL_EUNSUP, "%s: the model has no classification head", o->model_dir);
    if (cl_tokenizer_vocab_size(c->tok) > c->model.cfg.vocab_size)
        return cl_errf(err, CL_EINVAL, "%s: the tokenizer's %d ids do not fit the model's vocab_size %d", tdir,
                       cl_tokenizer_vocab_size(c->tok), c->model.cfg.vocab_size);
    int maxpos = cl_config_max_tokens(&c->model.cfg);
    if (o->max_length > maxpos)
        return cl_errf(err, CL_EUSAGE, "option --max-length: %d is more than the %d positions of %s/config.json",
                       o->max_length, maxpos, o->model_dir);
    /* data: every row is read and checked now (own files: already) */
    if (!o->train_file &&
        (rc = cl_glue_make_splits(c->task, c->task_dir, o->protocol, o->seed, NULL, &c->splits, err)))
        return rc;
    if (c->splits.train.n == 0) return cl_errf(err, CL_EFORMAT, "%s: no training rows", c->task_dir);
    if (c->splits.dev.n == 0) return cl_errf(err, CL_EFORMAT, "%s: no dev rows", c->task_dir);
    if (tok_train && (rc = tokenize_set(c, &c->splits.train, "train", &c->tr, o->max_train, err))) return rc;
    if ((rc = tokenize_set(c, &c->splits.dev, "dev", &c->dev, o->max_eval, err))) return rc;
    if (c->splits.test.n && (rc = tokenize_set(c, &c->splits.test, "test", &c->test, o->max_eval, err))) return rc;
    if (c->maxT < 1) c->maxT = 1;
    /* adapter + head in one trainable buffer */
    cl_params_init(&c->P);
    if ((rc = cl_adapter_create(&c->ad, &o->ad, &c->model, err))) return cl_err_prefix(err, "adapter options"), rc;
    if ((rc = cl_adapter_register(c->ad, &c->P, err)) || (rc = cl_head_register(&c->P, &c->model, o->train_pooler, &c->hp, err)) ||
        (rc = cl_params_alloc(&c->P, err)) || (rc = cl_adapter_bind(c->ad, &c->P, err)))
        return rc;
    cl_head_bind(&c->P, &c->model, &c->hp, &c->hg);
    cl_adapter_init(c->ad, o->seed);
    c->hook = cl_adapter_hook(c->ad);
    if (o->bf16) {
        /* --precision bf16, after the adapter exists (it checks its W): W^T is packed too when training (need_out),
         * and CondLoRA keeps the fp32 W of its targets (A_l = ThA W^T, B_l = W ThB^T are built from it) */
        cl_bf16_opts bo = {.backward = need_out,
                           .keep = o->ad.method == CL_METHOD_CONDLORA ? cl_bf16_keep_adapted : NULL,
                           .keep_ctx = &c->hook};
        if ((rc = cl_model_to_bf16(&c->model, &bo, err))) return rc;
    }
    if ((rc = cl_encoder_new(&c->enc, &c->model, o->batch_size, c->maxT, 1, err))) return rc;
    size_t BT = (size_t)o->batch_size * (size_t)c->maxT;
    size_t maxn = c->dev.n > c->test.n ? c->dev.n : c->test.n;
    if (c->tr.n > maxn) maxn = c->tr.n;
    c->b_ids = malloc(BT * 4), c->b_types = malloc(BT * 4);
    c->b_len = malloc((size_t)o->batch_size * 4), c->b_lab = malloc((size_t)o->batch_size * 4);
    const size_t K = c->task->multi_label ? (size_t)c->task->num_labels : 1;
    c->b_tgt = malloc((size_t)o->batch_size * K * 4);
    c->pred = malloc((maxn * K + 1) * sizeof(int)), c->pred_score = malloc((maxn + 1) * sizeof(float));
    c->best_param = malloc((c->P.numel + 1) * sizeof(float));
    if (!c->b_ids || !c->b_types || !c->b_len || !c->b_lab || !c->b_tgt || !c->pred || !c->pred_score ||
        !c->best_param)
        return cl_errf(err, CL_ENOMEM, "training buffers: out of memory");
    return 0;
}

/* Fills the batch buffers with examples idx[0..B) of s, padded to their longest member. */
static cl_batch fill_batch_T(cl_tctx *c, const cl_tokset *s, const size_t *idx, size_t B, int T_at_least) {
    int T = T_at_least > 1 ? T_at_least : 1;
    for (size_t b = 0; b < B; b++)
        if (s->len[idx[b]] > T) T = s->len[idx[b]];
    int pad = c->model.cfg.pad_token_id;
    for (size_t b = 0; b < B; b++) {
        size_t i = idx[b];
        int L = s->len[i];
        int32_t *di = c->b_ids + b * (size_t)T, *dt = c->b_types + b * (size_t)T;
        memcpy(di, s->ids + s->off[i], (size_t)L * 4);
        memcpy(dt, s->types + s->off[i], (size_t)L * 4);
        for (int t = L; t < T; t++) di[t] = pad, dt[t] = 0;
        c->b_len[b] = L;
        c->b_lab[b] = s->label[i];
        if (s->multi) {
            const int K = c->task->num_labels;
            const char *m = s->multi[i];
            for (int k = 0; k < K; k++) c->b_tgt[b * (size_t)K + k] = m && m[k] == '1' ? 1.0f : 0.0f;
        } else {
            c->b_tgt[b] = s->score[i];
        }
    }
    cl_batch bt = {c->b_ids, c->b_types, c->b_len, (int)B, T};
    return bt;
}
static cl_batch fill_batch(cl_tctx *c, const cl_tokset *s, const size_t *idx, size_t B) {
    return fill_batch_T(c, s, idx, B, 0);
}

/* ---- data parallelism (cl_comm, trainer.h) ---- */
static int dp_on(const cl_tctx *c) { return c->o.comm && c->o.comm->size > 1; }
static int dp_rank(const cl_tctx *c) { return dp_on(c) ? c->o.comm->rank : 0; }

/* Every process learns whether any failed: the failed ones keep their own error, the others return one that names
 * the failed rank. A lost process (the collective fails) is an error everywhere. */
static int dp_agree(const cl_tctx *c, int rc, cl_error *err) {
    if (!dp_on(c)) return rc;
    cl_comm *cm = c->o.comm;
    double v[2] = {rc ? 1.0 : 0.0, rc ? (double)cm->rank : 0.0};
    if (cm->sum_f64(cm, v, 2))
        return rc ? rc : cl_errf(err, CL_EIO, "data parallel: rank %d lost contact with the other processes (one "
                                              "died?)", cm->rank);
    if (rc || v[0] == 0) return rc;
    if (v[0] == 1)
        return cl_errf(err, CL_EIO, "data parallel: rank %.0f stopped with an error (its message says why), so rank "
                                    "%d stops too", v[1], cm->rank);
    return cl_errf(err, CL_EIO, "data parallel: %.0f ranks stopped with errors (their messages say why)", v[0]);
}

static uint64_t fnv64(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}
static uint64_t hash_file(uint64_t h, const char *path) { /* 64-bit FNV-1a of the words of a file, 0 if unreadable */
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static uint64_t buf[1 << 15];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        size_t w = n / 8;
        for (size_t i = 0; i < w; i++) h = (h ^ buf[i]) * 0x100000001b3ULL;
        h = fnv64(h, (unsigned char *)buf + w * 8, n - w * 8);
    }
    fclose(f);
    return h;
}
static uint64_t hash_tokset(uint64_t h, const cl_tokset *s) {
    h = fnv64(h, &s->n, sizeof s->n);
    if (!s->n) return h;
    h = fnv64(h, s->len, s->n * sizeof *s->len);
    h = fnv64(h, s->label, s->n * sizeof *s->label);
    if (s->score) h = fnv64(h, s->score, s->n * sizeof *s->score);
    size_t toks = (size_t)(s->off[s->n - 1] + s->len[s->n - 1]);
    return fnv64(h, s->ids, toks * sizeof *s->ids);
}

/* The processes of a data-parallel run must run the same run: rank 0's digests of the options (paths aside: a
 * node may keep its own copy), of the model's files and of the tokenized data go to every process, and one that
 * disagrees stops them all with the name of what differs. */
static int dp_check_same(cl_tctx *c, cl_error *err) {
    if (!dp_on(c)) return 0;
    uint64_t d[3] = {0xcbf29ce484222325ULL, 0xcbf29ce484222325ULL, 0xcbf29ce484222325ULL};
    const char *differs = NULL;
    char val[4096];
    for (size_t i = 0; i < cl_train_option_count(); i++) {
        const cl_train_option *p = cl_train_option_at(i);
        if (p->type == CL_OT_PATH || (p->flags & (CL_OF_RESUME | CL_OF_INVOCATION))) continue;
        cl_train_option_get(&c->o, p, val, sizeof val);
        d[0] = fnv64(fnv64(d[0], p->name, strlen(p->name) + 1), val, strlen(val) + 1);
    }
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/config.json", c->o.model_dir);
    d[1] = hash_file(d[1], mp);
    snprintf(mp, sizeof mp, "%s/model.safetensors", c->o.model_dir);
    if (access(mp, R_OK) != 0) snprintf(mp, sizeof mp, "%s/model.safetensors.index.json", c->o.model_dir);
    d[1] = hash_file(d[1], mp);
    d[2] = hash_tokset(hash_tokset(hash_tokset(d[2], &c->tr), &c->dev), &c->test);
    uint64_t r0[3];
    memcpy(r0, d, sizeof d);
    cl_comm *cm = c->o.comm;
    int rc = cm->bcast(cm, r0, sizeof r0);
    if (rc) return cl_errf(err, CL_EIO, "data parallel: rank %d could not receive rank 0's digests", cm->rank);
    if (r0[0] != d[0]) differs = "the options";
    else if (r0[1] != d[1]) differs = "the model files (config.json, model.safetensors)";
    else if (r0[2] != d[2]) differs = "the tokenized data (the data files or the tokenizer)";
    if (differs)
        rc = cl_errf(err, CL_EINVAL, "data parallel: rank %d's %s differ from rank 0's (every process must run the "
                                     "same options on the same model and data)", cm->rank, differs);
    return dp_agree(c, rc, err);
}

/* The padded length of a global batch, which every shard uses: the longest member, raised where needed so that the
 * dropout sites' per-example element counts (NH T T, T H, H) are multiples of 4 (masks are drawn 4 at a time). */
static int dp_batch_T(const cl_tctx *c, const cl_tokset *s, const size_t *idx, size_t B, cl_error *err) {
    int T = 1;
    for (size_t b = 0; b < B; b++)
        if (s->len[idx[b]] > T) T = s->len[idx[b]];
    const cl_config *cf = &c->model.cfg;
    int T0 = T;
    while (((uint64_t)cf->num_heads * T * T) % 4 || ((uint64_t)T * cf->hidden_size) % 4) T++;
    if (T > c->maxT || cf->hidden_size % 4)
        return cl_errf(err, CL_EUNSUP, "data parallel: a batch of length %d cannot be padded to %d (the model's "
                                       "hidden size %d must be a multiple of 4)", T0, T, cf->hidden_size), -1;
    return T;
}

/* Data parallel: every rank predicted its evaluation batches; the sum over ranks of each rank's predictions (zero
 * elsewhere) gives every rank all of them. */
static int dp_gather_pred(cl_tctx *c, const cl_tokset *s, cl_error *err) {
    const size_t K = c->task->multi_label ? (size_t)c->task->num_labels : 1, n = s->n * K;
    double *v = calloc(n + s->n + 1, sizeof *v);
    if (!v) return cl_errf(err, CL_ENOMEM, "data parallel: out of memory");
    const int N = c->o.comm->size, R = c->o.comm->rank;
    for (size_t b = 0; b < s->seq.nbatches; b++) {
        if ((int)(b % (size_t)N) != R) continue;
        const size_t *idx;
        size_t B = cl_batch_get(&s->seq, b, &idx);
        for (size_t k = 0; k < B; k++) {
            for (size_t j = 0; j < K; j++) v[idx[k] * K + j] = c->pred[idx[k] * K + j];
            if (c->task->regression) v[n + idx[k]] = c->pred_score[idx[k]];
        }
    }
    int rc = c->o.comm->sum_f64(c->o.comm, v, n + s->n);
    if (!rc) {
        for (size_t i = 0; i < n; i++) c->pred[i] = (int)v[i];
        if (c->task->regression)
            for (size_t i = 0; i < s->n; i++) c->pred_score[i] = (float)v[n + i];
    }
    free(v);
    return rc ? cl_errf(err, CL_EIO, "data parallel: rank %d lost contact with the other processes during an "
                                     "evaluation (one died?)", c->o.comm->rank) : 0;
}

/* Predictions and metrics of the current parameters on s (gold = d). */
static int evaluate(cl_tctx *c, const cl_tokset *s, const cl_dataset *d, cl_metric_set *out, cl_error *err) {
    cl_adapter_materialise(c->ad);
    int L = c->task->num_labels;
    int rc;
    /* a line every 10 s on a long evaluation, so that minutes do not pass in silence */
    const char *what = s == &c->dev ? "dev" : s == &c->test ? "test" : "train";
    const double t0 = cl_now();
    double next = t0 + 10.0;
    size_t done_n = 0;
    const int N = dp_on(c) ? c->o.comm->size : 1, R = dp_rank(c); /* data parallel: batch b on rank b % N */
    for (size_t b = 0; b < s->seq.nbatches; b++) {
        const size_t *idx;
        size_t B = cl_batch_get(&s->seq, b, &idx);
        if ((int)(b % (size_t)N) != R) continue;
        if (c->o.on_event && cl_now() >= next && done_n > 0) {
            double el = cl_now() - t0, rate = done_n / el, eta = (double)(s->n - done_n) / rate;
            emit(c, &(cl_train_event){.type = CL_TRAIN_EV_PROGRESS, .split = what, .done = done_n, .n = s->n,
                                      .examples_per_s = rate, .eta_s = eta},
                 "evaluating %s: %zu/%zu examples, %.1f ex/s, ETA %.0f s", what, done_n, s->n, rate, eta);
            next = cl_now() + 10.0;
        }
        done_n += B;
        cl_batch bt = fill_batch(c, s, idx, B);
        if ((rc = cl_adapter_begin_batch(c->ad, bt.B, bt.T, 0, err))) return rc;
        cl_fwd_opts fo = {.train = 0, .hook = &c->hook};
        const float *logits = NULL;
        if ((rc = cl_encoder_forward(c->enc, &bt, &fo, &logits, NULL, err))) return rc;
        if ((rc = cl_adapter_check(c->ad, err))) return rc;
        for (size_t k = 0; k < B; k++) {
            const float *lg = logits + k * (size_t)L;
            if (c->task->multi_label) { /* sigmoid(logit) > 0.5 */
                for (int j = 0; j < L; j++) c->pred[idx[k] * (size_t)L + j] = lg[j] > 0.0f;
            } else if (c->task->regression) {
                c->pred_score[idx[k]] = lg[0];
                c->pred[idx[k]] = -1;
            } else {
                int best = 0;
                for (int j = 1; j < L; j++)
                    if (lg[j] > lg[best]) best = j;
                c->pred[idx[k]] = best;
            }
        }
    }
    if (N > 1 && (rc = dp_gather_pred(c, s, err))) return rc;
    cl_dataset view = *d;
    view.n = s->n;
    return cl_task_metrics(c->task, &view, c->task->regression ? NULL : c->pred,
                           c->task->regression ? c->pred_score : NULL, out, err);
}

static void fmt_metrics(const cl_metric_set *m, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < m->n && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s %.4f", i ? " " : "", m->m[i].name, m->m[i].value);
}

static void fmt_eta(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e8) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

/* SIGINT / SIGTERM: finish the step, write a checkpoint, return (the CLI exits 130 / 143) */

static int path_eq(const char *a, const char *b) {
    if (!a || !*a || !b || !*b) return (!a || !*a) == (!b || !*b);
    char x[4096], y[4096];
    if (cl_path_abs(a, x, sizeof x) || cl_path_abs(b, y, sizeof y)) return !strcmp(a, b);
    return !strcmp(x, y);
}
static int str_eq(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

const char *cl_train_opts_diff(const cl_train_opts *a, const cl_train_opts *b) {
    for (size_t i = 0; i < cl_train_option_count(); i++) {
        const cl_train_option *p = cl_train_option_at(i);
        if (p->flags & (CL_OF_RESUME | CL_OF_INVOCATION)) continue;
        char x[4096], y[4096];
        cl_train_option_get(a, p, x, sizeof x);
        cl_train_option_get(b, p, y, sizeof y);
        int same;
        if (!strcmp(p->name, "tokenizer")) /* unset = the model directory */
            same = path_eq(a->tokenizer_dir && *a->tokenizer_dir ? a->tokenizer_dir : a->model_dir,
                           b->tokenizer_dir && *b->tokenizer_dir ? b->tokenizer_dir : b->model_dir);
        else if (p->type == CL_OT_PATH) same = path_eq(x, y);
        else if (!strcmp(p->name, "task")) /* SST-2 = sst2 */
            same = cl_glue_find_task(x) == cl_glue_find_task(y) && !*x == !*y && (cl_glue_find_task(x) || str_eq(x, y));
        else if (!strcmp(p->name, "problem") || !strcmp(p->name, "format")) /* auto matches what it resolved to */
            same = str_eq(x, y) || !strcmp(x, "auto") || !strcmp(y, "auto");
        else same = str_eq(x, y);
        if (!same) return p->name;
    }
    return NULL;
}

int cl_train_read_run_opts(const char *run_dir, cl_train_opts *o, char *buf, size_t n, cl_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/run.json", run_dir);
    int rc = cl_run_read_opts(path, o, buf, n, NULL, err);
    if (!rc) o->out_dir = run_dir;
    return rc;
}

/* --out of a new run: a new or empty directory; an existing run only with --overwrite (*replace = 1: removed once
 * every input has been checked); anything else is refused, never deleted. */
static int check_out_dir(const cl_train_opts *o, int *replace, cl_error *err) {
    *replace = 0;
    struct stat st;
    if (lstat(o->out_dir, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode))
        return cl_errf(err, CL_EINVAL, "option --out: %s exists and is not a directory", o->out_dir);
    if (cl_dir_nonempty(o->out_dir) <= 0) return 0;
    char p[4200];
    snprintf(p, sizeof p, "%s/run.json", o->out_dir);
    int is_run = stat(p, &st) == 0;
    if (!is_run)
        return cl_errf(err, CL_EINVAL, "option --out: %s exists, is not empty and is not a condlora run (no run.json); "
                       "choose a new directory (it is never deleted)", o->out_dir);
    if (!o->overwrite)
        return cl_errf(err, CL_EINVAL, "option --out: %s already holds a run (run.json); choose a new --out, continue "
                       "it with --resume %s, or replace it with --overwrite", o->out_dir, o->out_dir);
    *replace = 1;
    return 0;
}

/* The options of a resumed run: run.json's, with the few a user may give anew. */
static int resume_opts(const cl_train_opts *given, cl_train_opts *o, char *buf, size_t len, char *run_id,
                       cl_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/run.json", given->resume);
    int rc = cl_run_read_opts(path, o, buf, len, run_id, err);
    if (rc) return cl_err_prefix(err, "option --resume"), rc;
    o->out_dir = given->resume;
    o->resume = given->resume;
    o->quiet = given->quiet;
    if (given->threads > 0) o->threads = given->threads;
    if (given->save_every > 0) o->save_every = given->save_every;
    if (given->save_limit > 0) o->save_limit = given->save_limit;
    o->stop_after = given->stop_after;
    o->save_final = given->save_final;
    o->on_event = given->on_event, o->event_user = given->event_user, o->cancel = given->cancel;
    o->comm = given->comm;
    return 0;
}

/* Rows [lo, hi) of global batch idx[0..B) through forward and backward, padded to T (0: to their longest), with the
 * dropout masks those rows have in the whole batch; the gradient of the global mean loss ((hi - lo) / B times the
 * rows' mean: 1 for the whole batch) accumulates into P.grad; *loss is the rows' mean loss. */
static int shard_step(cl_tctx *c, const size_t *idx, size_t B, size_t lo, size_t hi, int T, int64_t step, float *loss,
                      cl_error *err) {
    cl_batch bt = fill_batch_T(c, &c->tr, idx + lo, hi - lo, T);
    int rc = cl_adapter_begin_batch(c->ad, bt.B, bt.T, cl_train_step_seed(c->o.seed, step, 1), err);
    if (rc) return rc;
    cl_adapter_set_row0(c->ad, lo);
    cl_fwd_opts fo = {.train = 1, .seed = cl_train_step_seed(c->o.seed, step, 0), .hook = &c->hook, .row0 = lo};
    if (c->task->multi_label) fo.multi_targets = c->b_tgt;
    else if (c->task->regression) fo.targets = c->b_tgt;
    else fo.labels = c->b_lab;
    if ((rc = cl_encoder_forward(c->enc, &bt, &fo, NULL, loss, err))) return rc;
    if ((rc = cl_encoder_backward(c->enc, (float)(hi - lo) / (float)B, &c->hg, err))) return rc;
    return cl_adapter_check(c->ad, err);
}

/* One data-parallel step's share: this rank's rows of global batch idx[0..B), padded to the global batch's length,
 * with those rows' dropout masks; the gradient of the global mean loss (the shard's mean times Bs / B) accumulates
 * into P.grad. Then the global loss, the cancel requests and the failures are summed over the ranks, so that every
 * process knows the same things before the gradients are summed. */
static int dp_step(cl_tctx *c, const size_t *idx, size_t B, int64_t step, float *loss, int *sig, cl_error *err) {
    cl_comm *cm = c->o.comm;
    const size_t lo = B * (size_t)cm->rank / (size_t)cm->size, hi = B * (size_t)(cm->rank + 1) / (size_t)cm->size;
    int rc = 0;
    float l = 0;
    int T = dp_batch_T(c, &c->tr, idx, B, err);
    if (T < 0) rc = CL_EUNSUP;
    if (!rc && hi > lo) rc = shard_step(c, idx, B, lo, hi, T, step, &l, err);
    int cancel = c->o.cancel ? (int)*c->o.cancel : 0;
    double v[5] = {rc ? 0.0 : (double)l * (double)(hi - lo) / (double)B, cancel ? (double)cancel : 0.0,
                   cancel ? 1.0 : 0.0, rc ? 1.0 : 0.0, rc ? (double)cm->rank : 0.0};
    if (cm->sum_f64(cm, v, 5))
        return rc ? rc : cl_errf(err, CL_EIO, "data parallel: step %lld: rank %d lost contact with the other "
                                              "processes (one died?)", (long long)step, cm->rank);
    if (rc) return rc;
    if (v[3] > 0)
        return cl_errf(err, CL_EIO, "data parallel: step %lld: rank %.0f stopped with an error (its message says why), "
                                    "so rank %d stops too", (long long)step, v[4] / v[3], cm->rank);
    *loss = (float)v[0];
    *sig = v[2] > 0 ? (int)(v[1] / v[2] + 0.5) : 0;
    return 0;
}

int cl_train_run(const cl_train_opts *opts, cl_train_result *res, cl_error *err) {
    memset(res, 0, sizeof *res);
    res->best_step = -1;
    res->resumed_from = -1;
    double t_start = cl_now();
    cl_tctx *c = calloc(1, sizeof *c);
    if (!c) return cl_errf(err, CL_ENOMEM, "out of memory");
    char rstr[16384]; /* the strings of a resumed run's options (run.json) */
    char rid[33] = "";
    cl_train_opts ro;
    int rc = 0, replace_old = 0;
    const int R0 = !opts->comm || opts->comm->rank == 0; /* data parallel: only rank 0 writes files */
    if (opts->resume) {
        rc = resume_opts(opts, &ro, rstr, sizeof rstr, rid, err);
        if (!rc) opts = &ro;
    } else if (opts->out_dir && R0) {
        rc = check_out_dir(opts, &replace_old, err);
    }
    if (!rc) rc = tctx_setup(c, opts, 1, 1, err);
    else c->o.comm = opts->comm; /* the agreement below still reaches the other processes */
    if (opts->comm && opts->comm->size > 1) {
        rc = dp_agree(c, rc, err);
        if (!rc) rc = dp_check_same(c, err);
    }
    if (opts->resume) memcpy(c->run_id, rid, sizeof rid);
    else cl_random_id(c->run_id);
    if (!rc && dp_on(c) && (rc = c->o.comm->bcast(c->o.comm, c->run_id, sizeof c->run_id)))
        rc = cl_errf(err, CL_EIO, "data parallel: the run id could not be broadcast");
    FILE *mf = NULL;
    char path[4200], bestdir[4200], ckpt[4300];
    cl_batch_plan plan = {0};
    cl_train_pos pos;
    memset(&pos, 0, sizeof pos);
    if (rc) goto done;
    const cl_train_opts *o = &c->o;
    cl_batch_opts bo = {.batch_size = (size_t)o->batch_size, .mega = (size_t)(o->mega > 0 ? o->mega : 0),
                        .seed = o->seed};
    int64_t nb = (int64_t)((c->tr.n + (size_t)o->batch_size - 1) / (size_t)o->batch_size);
    int64_t total = o->max_steps > 0 ? o->max_steps : (int64_t)o->epochs * nb;
    int n_epochs = (int)((total + nb - 1) / nb);
    int64_t warm = cl_train_warmup_steps(o->warmup_ratio, total);
    int64_t eval_every = o->eval_every;
    if (eval_every < 0) eval_every = cl_paper_eval_every((size_t)nb);
    c->o.eval_every = eval_every;
    res->n_adapter = c->P.count[CL_PART_ADAPTER], res->n_head = c->P.count[CL_PART_HEAD];
    res->n_gate = c->P.count[CL_PART_GATE];
    res->n_train = c->tr.n, res->n_dev = c->dev.n, res->n_test = c->test.n;
    res->have_test = c->test.n > 0;
    pos.total = total, pos.warmup = warm, pos.best_main = -INFINITY, pos.best_step = -1;
    snprintf(bestdir, sizeof bestdir, "%s/best", o->out_dir);
    if (o->resume) {
        int64_t cstep = 0;
        int gone = R0 ? cl_run_remove_incomplete(o->out_dir) : 0;
        if (gone)
            emit(c, &(cl_train_event){.type = CL_TRAIN_EV_NOTE},
                 "resume: removed %d incomplete checkpoint(s) (no COMPLETE marker)", gone);
        if ((rc = dp_agree(c, 0, err))) goto done; /* the others look only once rank 0 has cleaned up */
        rc = cl_train_latest_checkpoint(o->out_dir, ckpt, sizeof ckpt, &cstep, err);
        if (!rc) rc = cl_run_load_resume_checkpoint(c, ckpt, &pos, err);
        if ((rc = dp_agree(c, rc, err))) goto done;
        if (pos.total != total || pos.warmup != warm) {
            rc = cl_errf(err, CL_EFORMAT, "%s: the checkpoint's schedule (%lld steps, warm-up %lld) is not the one "
                                          "run.json's options give (%lld, %lld)", ckpt, (long long)pos.total,
                         (long long)pos.warmup, (long long)total, (long long)warm);
            goto done;
        }
        res->resumed_from = pos.step;
        /* best/ as it was at the checkpoint (a later best/ of the interrupted process is discarded) */
        if (pos.best_step >= 0) {
            float *cur = malloc(c->P.numel * sizeof(float));
            if (!cur) { rc = cl_errf(err, CL_ENOMEM, "out of memory"); goto done; }
            memcpy(cur, c->P.param, c->P.numel * sizeof(float));
            memcpy(c->P.param, c->best_param, c->P.numel * sizeof(float));
            rc = R0 ? cl_run_save_checkpoint(c, bestdir, pos.best_step, &pos.best_dev, err) : 0;
            memcpy(c->P.param, cur, c->P.numel * sizeof(float));
            free(cur);
            cl_adapter_materialise(c->ad);
            if ((rc = dp_agree(c, rc, err))) goto done;
        }
        res->best_step = pos.best_step, res->best_dev = pos.best_dev, res->epochs_run = pos.epochs_run;
        res->final_loss = pos.final_loss;
    }
    /* the run directory, only now that every input has been checked (--overwrite: the old run goes first) */
    if (replace_old && (rc = cl_remove_tree(o->out_dir, err))) {
        cl_err_prefix(err, "option --overwrite: removing the old run");
    }
    if (!rc && R0) rc = cl_mkdir_p(o->out_dir, err);
    snprintf(path, sizeof path, "%s/run.json", o->out_dir);
    if (!rc && R0) rc = cl_run_write_json(c, path, res, "running", err);
    if ((rc = dp_agree(c, rc, err))) goto done;
    snprintf(path, sizeof path, "%s/metrics.jsonl", o->out_dir);
    if (!R0) { /* the other processes of a data-parallel run write nothing */
        if (!(mf = fopen("/dev/null", "w"))) {
            rc = cl_errf(err, CL_EIO, "/dev/null: cannot open");
        }
    } else if (o->resume) {
        /* keep the lines up to the checkpoint, drop what the interrupted process wrote after it */
        if (truncate(path, pos.metrics_offset) != 0 || !(mf = fopen(path, "a"))) {
            rc = cl_errf(err, CL_EIO, "%s: cannot truncate to the checkpoint's %ld bytes or reopen", path,
                         pos.metrics_offset);
        }
    } else if (!(mf = fopen(path, "w"))) {
        rc = cl_errf(err, CL_EIO, "%s: cannot create", path);
    }
    if ((rc = dp_agree(c, rc, err))) goto done;
    if (o->on_event) {
        char *rep = NULL;
        size_t rlen = 0;
        FILE *ms = open_memstream(&rep, &rlen); /* the parameter counts, as cl_params_report writes them */
        if (ms) cl_params_report(&c->P, ms), fclose(ms);
        if (rlen && rep[rlen - 1] == '\n') rep[rlen - 1] = 0;
        emit(c, &(cl_train_event){.type = CL_TRAIN_EV_START, .total = total, .epochs = 0},
             "condlora train: %s %s on %s (%s protocol): train %zu, dev %zu, test %zu examples; %lld steps (%lld per "
             "epoch, warm-up %lld), lr %g, batch %d, max length %d, threads %d\n%s", cl_method_names[o->ad.method],
             o->model_dir, c->task->name, o->protocol == CL_PROTOCOL_PAPER ? "paper" : "glue", c->tr.n, c->dev.n,
             c->test.n, (long long)total, (long long)nb, (long long)warm, o->lr, o->batch_size, o->max_length,
             omp_get_max_threads(), rep ? rep : "");
        free(rep);
        if (o->resume)
            emit(c, &(cl_train_event){.type = CL_TRAIN_EV_NOTE, .step = pos.step},
                 "resuming from %s (step %lld, epoch %d, batch %lld)", ckpt, (long long)pos.step, pos.epoch + 1,
                 (long long)pos.batch);
    }
    int64_t step = pos.step, steps_here = 0;
    int stop = o->patience > 0 && pos.bad_evals >= o->patience;
    const char *main_name = c->task->main_metric;
    double elapsed0 = pos.elapsed_s;
    for (int ep = pos.epoch; ep < n_epochs && !stop; ep++) {
        cl_batch_plan_free(&plan);
        if ((rc = cl_batch_plan_epoch(c->tr.len, c->tr.n, &bo, (uint64_t)ep, &plan, err))) goto done;
        size_t b0 = ep == pos.epoch ? (size_t)pos.batch : 0;
        for (size_t b = b0; b < plan.nbatches && step < total && !stop; b++) {
            double t0 = cl_now();
            const size_t *idx;
            size_t B = cl_batch_get(&plan, b, &idx);
            double lr = cl_train_lr_at(o->lr, step, warm, total);
            cl_adapter_materialise(c->ad);
            float loss = 0;
            int dsig = 0; /* data parallel: the cancel signal the processes agreed on */
            rc = dp_on(c) ? dp_step(c, idx, B, step, &loss, &dsig, err)
                          : shard_step(c, idx, B, 0, B, 0, step, &loss, err);
            if (rc) goto done;
            double extra = cl_adapter_extra_loss(c->ad, dp_on(c) ? 1.0f / (float)c->o.comm->size : 1.0f);
            double tc = cl_now();
            if (dp_on(c) && c->o.comm->sum_f32(c->o.comm, c->P.grad, c->P.numel)) {
                rc = cl_errf(err, CL_EIO, "data parallel: step %lld: rank %d lost contact with the other processes "
                                          "(one died?)", (long long)step, c->o.comm->rank);
                goto done;
            }
            if (dp_on(c)) c->comm_s += cl_now() - tc, c->comm_n++;
            double gnorm = cl_params_clip_grad_norm(&c->P, o->max_grad_norm);
            if (!isfinite(loss) || !isfinite(gnorm)) {
                rc = cl_errf(err, CL_EINVAL, "step %lld: the loss or the gradient is not finite (loss %g, gradient "
                                             "norm %g); try a smaller --lr", (long long)step, loss, gnorm);
                goto done;
            }
            cl_params_adamw_step(&c->P, (float)lr, o->beta1, o->beta2, o->eps, o->weight_decay);
            cl_adapter_post_step(c->ad, step, total);
            cl_params_zero_grad(&c->P);
            step++, steps_here++;
            pos.train_s += cl_now() - t0;
            long long ntok = 0;
            for (size_t k = 0; k < B; k++) ntok += c->tr.len[idx[k]];
            pos.tok_total += ntok, pos.ex_total += (long long)B;
            pos.win_loss += loss + extra, pos.win_n++;
            if (step % o->log_every == 0 || step == total) {
                double ml = pos.win_loss / (double)pos.win_n;
                pos.final_loss = res->final_loss = ml;
                double eta = pos.train_s / (double)step * (double)(total - step);
                char etab[32];
                fmt_eta(eta, etab, sizeof etab);
                fprintf(mf, "{\"type\":\"train\",\"step\":%lld,\"epoch\":%.4f,\"loss\":%.9g,\"lr\":%.9g,"
                            "\"grad_norm\":%.6g,\"tokens_per_s\":%.1f,\"examples_per_s\":%.2f,\"elapsed_s\":%.2f}\n",
                        (long long)step, ep + (double)(b + 1) / (double)plan.nbatches, ml, lr, gnorm,
                        (double)pos.tok_total / pos.train_s, (double)pos.ex_total / pos.train_s,
                        elapsed0 + cl_now() - t_start);
                fflush(mf);
                double tps = (double)pos.tok_total / pos.train_s, eps = (double)pos.ex_total / pos.train_s;
                emit(c, &(cl_train_event){.type = CL_TRAIN_EV_STEP, .step = step, .total = total, .epoch = ep + 1,
                                          .epochs = n_epochs, .loss = ml, .lr = lr, .tokens_per_s = tps,
                                          .examples_per_s = eps, .eta_s = eta},
                     "step %lld/%lld  epoch %d/%d  loss %.4f  lr %.3g  %.0f tok/s  %.1f ex/s  ETA %s",
                     (long long)step, (long long)total, ep + 1, n_epochs, ml, lr, tps, eps, etab);
                pos.win_loss = 0, pos.win_n = 0;
            }
            int epoch_end = b + 1 == plan.nbatches;
            int do_eval = eval_every > 0 ? step % eval_every == 0 : epoch_end;
            if (step == total) do_eval = 1;
            if (do_eval) {
                cl_metric_set dm;
                if ((rc = evaluate(c, &c->dev, &c->splits.dev, &dm, err))) goto done;
                int improved = dm.main > pos.best_main; /* NAN never improves */
                if (improved) {
                    pos.best_main = dm.main;
                    pos.bad_evals = 0;
                    pos.best_step = res->best_step = step;
                    pos.best_dev = res->best_dev = dm;
                    memcpy(c->best_param, c->P.param, c->P.numel * sizeof(float));
                    if (R0) rc = cl_run_save_checkpoint(c, bestdir, step, &dm, err);
                    if ((rc = dp_agree(c, rc, err))) goto done;
                } else {
                    pos.bad_evals++;
                }
                fprintf(mf, "{\"type\":\"eval\",\"split\":\"dev\",\"step\":%lld,\"epoch\":%.4f,", (long long)step,
                        ep + (double)(b + 1) / (double)plan.nbatches);
                cl_run_json_metrics(mf, &dm);
                fprintf(mf, ",\"main\":%.10g,\"best\":%.10g,\"improved\":%s}\n", isfinite(dm.main) ? dm.main : 0,
                        isfinite(pos.best_main) ? pos.best_main : 0, improved ? "true" : "false");
                fflush(mf);
                if (o->on_event) {
                    char mb[256];
                    fmt_metrics(&dm, mb, sizeof mb);
                    emit(c, &(cl_train_event){.type = CL_TRAIN_EV_EVAL, .step = step, .total = total, .epoch = ep + 1,
                                              .epochs = n_epochs, .metrics = &dm, .improved = improved,
                                              .best = pos.best_main, .best_step = pos.best_step, .split = "dev"},
                         "eval step %lld: dev %s%s (best %s %.4f at step %lld)", (long long)step, mb,
                         improved ? " *" : "", main_name, pos.best_main, (long long)pos.best_step);
                }
                if (o->patience > 0 && pos.bad_evals >= o->patience) {
                    stop = 1;
                    res->stopped_early = 1;
                    emit(c, &(cl_train_event){.type = CL_TRAIN_EV_NOTE, .step = step},
                         "early stopping: %d evaluations without improvement", pos.bad_evals);
                }
            }
            res->epochs_run = pos.epochs_run = ep + 1;
            /* checkpoint: every save_every steps, on a stop signal, after stop_after steps of this process */
            int sig = dp_on(c) ? dsig : o->cancel ? (int)*o->cancel : 0;
            int pause = o->stop_after > 0 && steps_here >= o->stop_after && step < total && !stop;
            int want = (o->save_every > 0 && step % o->save_every == 0) || ((sig || pause) && step < total && !stop);
            if (want) {
                pos.step = step;
                pos.epoch = epoch_end ? ep + 1 : ep;
                pos.batch = epoch_end ? 0 : (int64_t)(b + 1);
                pos.elapsed_s = elapsed0 + cl_now() - t_start;
                fflush(mf);
                pos.metrics_offset = ftell(mf);
                if (R0) rc = cl_run_save_resume_checkpoint(c, o->out_dir, &pos, err);
                if ((rc = dp_agree(c, rc, err))) goto done;
                char cp[4300];
                snprintf(cp, sizeof cp, "%s/checkpoint-%lld", o->out_dir, (long long)step);
                emit(c, &(cl_train_event){.type = CL_TRAIN_EV_CHECKPOINT, .step = step, .total = total, .path = cp},
                     "checkpoint %s written", cp);
            }
            if ((sig || pause) && step < total && !stop) {
                res->interrupted = sig;
                res->paused = !sig;
                res->steps = step;
                snprintf(path, sizeof path, "%s/run.json", o->out_dir);
                rc = R0 ? cl_run_write_json(c, path, res, sig ? "interrupted" : "paused", err) : 0;
                rc = dp_agree(c, rc, err);
                goto done;
            }
        }
    }
    res->steps = step;
    res->train_s = pos.train_s;
    res->examples_per_s = pos.train_s > 0 ? (double)pos.ex_total / pos.train_s : 0;
    res->tokens_per_s = pos.train_s > 0 ? (double)pos.tok_total / pos.train_s : 0;
    if (o->save_final) {
        snprintf(path, sizeof path, "%s/final", o->out_dir);
        if (R0) rc = cl_run_save_checkpoint(c, path, step, NULL, err);
        if ((rc = dp_agree(c, rc, err))) goto done;
    }
    if (res->best_step < 0) { /* no evaluation ever improved (metric NAN): the final parameters are the best */
        memcpy(c->best_param, c->P.param, c->P.numel * sizeof(float));
        res->best_step = step;
        if (R0) rc = cl_run_save_checkpoint(c, bestdir, step, NULL, err);
        if ((rc = dp_agree(c, rc, err))) goto done;
        if ((rc = evaluate(c, &c->dev, &c->splits.dev, &res->best_dev, err))) goto done;
    }
    /* test metrics of the best checkpoint */
    memcpy(c->P.param, c->best_param, c->P.numel * sizeof(float));
    if (c->test.n) {
        if ((rc = evaluate(c, &c->test, &c->splits.test, &res->test, err))) goto done;
        fprintf(mf, "{\"type\":\"eval\",\"split\":\"test\",\"step\":%lld,", (long long)res->best_step);
        cl_run_json_metrics(mf, &res->test);
        fprintf(mf, ",\"main\":%.10g}\n", isfinite(res->test.main) ? res->test.main : 0);
    }
    if (fclose(mf) != 0) rc = cl_errf(err, CL_EIO, "%s/metrics.jsonl: write failed", o->out_dir);
    mf = NULL;
    res->wall_s = elapsed0 + cl_now() - t_start;
    snprintf(path, sizeof path, "%s/run.json", o->out_dir);
    if (!rc && R0) rc = cl_run_write_json(c, path, res, res->stopped_early ? "stopped_early" : "done", err);
    if ((rc = dp_agree(c, rc, err))) goto done;
    if (R0) {
        char mp[4200], sp[4200];
        snprintf(mp, sizeof mp, "%s/metrics.jsonl", o->out_dir);
        snprintf(sp, sizeof sp, "%s/curve.svg", o->out_dir);
        cl_error e2 = {0};
        if (cl_run_write_curve(mp, sp, main_name, &e2))
            emit(c, &(cl_train_event){.type = CL_TRAIN_EV_NOTE}, "warning: %s", e2.msg);
    }
done:
    if (mf) fclose(mf);
    cl_batch_plan_free(&plan);
    tctx_free(c);
    free(c);
    return rc;
}

int cl_eval_run(const char *run, const char *split, const char *model_dir, const char *data_dir, int threads,
                cl_metric_set *out, size_t *n_out, cl_error *err) {
    return cl_eval_run_precision(run, split, model_dir, data_dir, threads, -1, NULL, NULL, out, n_out, err);
}

int cl_eval_run_precision(const char *run, const char *split, const char *model_dir, const char *data_dir,
                          int threads, int bf16, cl_train_event_fn on_event, void *event_user, cl_metric_set *out,
                          size_t *n_out, cl_error *err) {
    char ckpt[4096], rj[4200], strbuf[16384];
    if (strcmp(split, "dev") && strcmp(split, "test") && strcmp(split, "train")) /* a usage error, checked first */
        return cl_errf(err, CL_EUSAGE, "option --split: '%s' is not dev, test or train", split);
    snprintf(ckpt, sizeof ckpt, "%s", run);
    size_t k = strlen(ckpt);
    while (k > 1 && ckpt[k - 1] == '/') ckpt[--k] = 0;
    /* RUN_DIR itself means RUN_DIR/best; run.json lives in the checkpoint's parent */
    snprintf(rj, sizeof rj, "%s/run.json", ckpt);
    if (access(rj, F_OK) == 0) {
        strncat(ckpt, "/best", sizeof ckpt - strlen(ckpt) - 1);
    } else {
        snprintf(rj, sizeof rj, "%s/../run.json", ckpt);
    }
    cl_train_opts o;
    int rc = cl_run_read_opts(rj, &o, strbuf, sizeof strbuf, NULL, err);
    if (rc) return rc;
    if (model_dir) o.model_dir = model_dir, o.tokenizer_dir = NULL;
    if (data_dir) o.data_dir = data_dir;
    if (threads > 0) o.threads = threads;
    if (bf16 >= 0) o.bf16 = bf16;
    o.on_event = on_event, o.event_user = event_user;
    int which = !strcmp(split, "dev") ? 1 : !strcmp(split, "test") ? 2 : !strcmp(split, "train") ? 0 : -1;
    if (which < 0) return cl_errf(err, CL_EUSAGE, "option --split: '%s' is not dev, test or train", split);
    cl_tctx *c = calloc(1, sizeof *c);
    if (!c) return cl_errf(err, CL_ENOMEM, "out of memory");
    if ((rc = tctx_setup(c, &o, 0, which == 0, err))) goto done;
    if ((rc = cl_run_load_state(c, ckpt, err))) goto done;
    /* the PEFT file beside it must be a valid safetensors file too (predict and PEFT read that one), and every
     * loaded value finite */
    {
        char ap[4400];
        snprintf(ap, sizeof ap, "%s/adapter_model.safetensors", ckpt);
        cl_safetensors ast;
        if ((rc = cl_st_open(&ast, ap, err))) goto done;
        cl_st_close(&ast);
        for (size_t i = 0; i < c->P.numel; i++)
            if (!isfinite(c->P.param[i])) {
                rc = cl_errf(err, CL_EFORMAT, "%s/condlora_state.safetensors: value %zu is not finite", ckpt, i);
                goto done;
            }
    }
    const cl_tokset *s = which == 0 ? &c->tr : which == 1 ? &c->dev : &c->test;
    const cl_dataset *d = which == 0 ? &c->splits.train : which == 1 ? &c->splits.dev : &c->splits.test;
    if (s->n == 0) {
        rc = cl_errf(err, CL_EUSAGE, "option --split: the %s protocol has no %s split",
                     o.protocol == CL_PROTOCOL_PAPER ? "paper" : "glue", split);
        goto done;
    }
    rc = evaluate(c, s, d, out, err);
    if (n_out) *n_out = s->n;
done:
    tctx_free(c);
    free(c);
    return rc;
}
