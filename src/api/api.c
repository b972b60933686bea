/* The public API (include/condlora.h) over the internal modules. Every entry point keeps its failure in the calling
 * thread's cl_error, which cl_last_error() reads. */
#include "condlora.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "adapters/peft_io.h"
#include "core/error.h"
#include "core/util.h"
#include "model/arch.h"
#include "model/encoder.h"
#include "model/gemm_bf16.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/options.h"
#include "train/trainer.h"

static _Thread_local cl_error g_err;

/* records a failure (the message already in g_err) and returns its status */
static cl_status fail(int rc) {
    if (!g_err.code) g_err.code = rc ? (cl_status)rc : CL_EINVAL;
    return (cl_status)rc;
}
static void begin(void) { cl_err_clear(&g_err); }

const char *cl_version(void) { return CONDLORA_VERSION; }
const char *cl_last_error(void) { return g_err.msg; }
cl_status cl_last_status(void) { return g_err.code; }

/* ---- models ---- */
struct cl_model {
    cl_weights w;
    int loaded;
    cl_peft *pf;
    cl_lin_hook hook;
    cl_encoder *enc;
    int enc_B, enc_T;
    int threads;
    char **names; /* label names */
    int multi;
};

cl_model_params cl_model_default_params(void) {
    cl_model_params p = {NULL, 0, 0};
    return p;
}

void cl_model_close(cl_model *m) {
    if (!m) return;
    cl_encoder_free(m->enc);
    if (m->pf) cl_peft_free(m->pf);
    cl_peft_label_names_free(m->names, m->w.head_out.d_out);
    if (m->loaded) cl_model_free(&m->w);
    free(m);
}

cl_model *cl_model_open(const char *dir, const cl_model_params *params) {
    begin();
    cl_model_params p = params ? *params : cl_model_default_params();
    if (!dir) { cl_errf(&g_err, CL_EINVAL, "cl_model_open: no directory"); return NULL; }
    cl_model *m = calloc(1, sizeof *m);
    if (!m) { cl_errf(&g_err, CL_ENOMEM, "out of memory"); return NULL; }
    m->threads = p.threads;
    int L = 0;
    if (p.adapter && cl_peft_num_labels(p.adapter, &L, &g_err)) goto fail;
    cl_load_opts lo = {.num_labels = L};
    if (cl_model_load(&m->w, dir, &lo, &g_err)) goto fail;
    m->loaded = 1;
    if (p.adapter) {
        if (cl_peft_load(&m->pf, p.adapter, &m->w, &g_err)) goto fail;
        m->hook = cl_adapter_hook(m->pf->ad);
    }
    if (p.bf16) {
        cl_bf16_opts bo = {.keep = m->pf && cl_adapter_method(m->pf->ad) == CL_METHOD_CONDLORA ? cl_bf16_keep_adapted
                                                                                                : NULL,
                           .keep_ctx = &m->hook};
        if (cl_model_to_bf16(&m->w, &bo, &g_err)) goto fail;
    }
    if (m->w.head != CL_HEAD_NONE && (m->w.head_from_file || (m->pf && m->pf->has_head))) {
        int n = m->w.head_out.d_out;
        if (!(m->names = cl_peft_label_names(m->pf ? m->pf->dir : NULL, &m->w, NULL, n))) {
            cl_errf(&g_err, CL_ENOMEM, "out of memory");
            goto fail;
        }
        m->multi = n > 1 && cl_peft_is_multi_label(m->pf ? m->pf->dir : NULL, &m->w);
    }
    return m;
fail:
    fail(g_err.code);
    cl_model_close(m);
    return NULL;
}

const char *cl_model_arch_name(const cl_model *m) { return m ? cl_model_arch(&m->w)->model_types[0] : ""; }
int cl_model_hidden_size(const cl_model *m) { return m ? m->w.cfg.hidden_size : 0; }
int cl_model_num_layers(const cl_model *m) { return m ? m->w.cfg.num_layers : 0; }
int cl_model_max_length(const cl_model *m) { return m ? cl_config_max_tokens(&m->w.cfg) : 0; }
int cl_model_pad_id(const cl_model *m) { return m ? m->w.cfg.pad_token_id : 0; }
int cl_model_type_vocab_size(const cl_model *m) { return m ? m->w.cfg.type_vocab_size : 0; }
int cl_model_num_labels(const cl_model *m) { return m && m->names ? m->w.head_out.d_out : 0; }
int cl_model_is_multi_label(const cl_model *m) { return m ? m->multi : 0; }
const char *cl_model_label_name(const cl_model *m, int i) {
    return m && m->names && i >= 0 && i < m->w.head_out.d_out ? m->names[i] : NULL;
}

cl_status cl_model_logits(cl_model *m, const int32_t *ids, const int32_t *type_ids, const int32_t *lengths, int B,
                          int T, float *logits) {
    begin();
    if (!m || !ids || !lengths || !logits || B < 1 || T < 1)
        return fail(cl_errf(&g_err, CL_EINVAL, "cl_model_logits: bad arguments (B %d, T %d)", B, T));
    if (!m->names)
        return fail(cl_errf(&g_err, CL_EINVAL, "the model holds no classification head (classifier.* tensors)%s",
                            m->pf ? ", nor does the adapter" : ""));
    if (!m->enc || B > m->enc_B || T > m->enc_T) {
        int nb = B > m->enc_B ? B : m->enc_B, nt = T > m->enc_T ? T : m->enc_T;
        cl_encoder_free(m->enc);
        m->enc = NULL;
        if (cl_encoder_new(&m->enc, &m->w, nb, nt, 0, &g_err)) return fail(g_err.code);
        m->enc_B = nb, m->enc_T = nt;
    }
    cl_threads_saved ts;
    cl_threads_enter(m->threads, &ts);
    cl_batch bt = {ids, m->w.cfg.type_vocab_size > 1 ? type_ids : NULL, lengths, B, T};
    cl_fwd_opts fo = {0};
    fo.hook = m->pf ? &m->hook : NULL;
    const float *lg = NULL;
    int rc = cl_encoder_forward(m->enc, &bt, &fo, &lg, NULL, &g_err);
    /* an adapter that could not allocate its scratch added nothing: an error, never base-model logits */
    if (!rc && m->pf) rc = cl_adapter_check(m->pf->ad, &g_err);
    cl_threads_leave(&ts);
    if (rc) return fail(rc);
    memcpy(logits, lg, (size_t)B * (size_t)m->w.head_out.d_out * sizeof(float));
    return CL_OK;
}

cl_status cl_predict(cl_model *m, const cl_tokenizer *t, const char *const *text_a, const char *const *text_b,
                     size_t n, int max_length, float *logits) {
    begin();
    if (!m || !t || (!text_a && n) || !logits) return fail(cl_errf(&g_err, CL_EINVAL, "cl_predict: bad arguments"));
    const int L = cl_model_num_labels(m), maxpos = cl_model_max_length(m);
    const int maxT = max_length > 0 ? max_length : maxpos < 512 ? maxpos : 512;
    enum { BATCH = 32 };
    int32_t *ids = malloc((size_t)BATCH * maxT * sizeof *ids), *types = malloc((size_t)BATCH * maxT * sizeof *types);
    int32_t lens[BATCH];
    cl_tok_encoding e;
    cl_tok_encoding_init(&e);
    int rc = !ids || !types ? cl_errf(&g_err, CL_ENOMEM, "out of memory") : 0;
    for (size_t r0 = 0; r0 < n && !rc; r0 += BATCH) {
        int B = n - r0 < BATCH ? (int)(n - r0) : BATCH, T = 1;
        for (int b = 0; b < B && !rc; b++) {
            const char *a = text_a[r0 + b], *bb = text_b ? text_b[r0 + b] : NULL;
            if (!a) { rc = cl_errf(&g_err, CL_EINVAL, "cl_predict: text %zu is NULL", r0 + b); break; }
            if ((rc = cl_tokenizer_encode_str(t, a, bb, maxT, &e, &g_err))) {
                cl_err_prefix(&g_err, "text %zu", r0 + b);
                break;
            }
            lens[b] = e.len;
            memcpy(ids + (size_t)b * maxT, e.ids, (size_t)e.len * sizeof *ids);
            memcpy(types + (size_t)b * maxT, e.type_ids, (size_t)e.len * sizeof *types);
            if (e.len > T) T = e.len;
        }
        if (rc) break;
        /* repack to the batch's own length T, padded */
        for (int b = 0; b < B; b++) {
            int32_t *di = ids + (size_t)b * T, *dt = types + (size_t)b * T;
            memmove(di, ids + (size_t)b * maxT, (size_t)lens[b] * sizeof *ids);
            memmove(dt, types + (size_t)b * maxT, (size_t)lens[b] * sizeof *types);
            for (int k = lens[b]; k < T; k++) di[k] = m->w.cfg.pad_token_id, dt[k] = 0;
        }
        rc = cl_model_logits(m, ids, types, lens, B, T, logits + r0 * (size_t)L);
    }
    cl_tok_encoding_free(&e);
    free(ids), free(types);
    return rc ? fail(rc) : CL_OK;
}

/* ---- tokenizers ---- */
cl_tokenizer *cl_tokenizer_open(const char *dir) {
    begin();
    cl_tokenizer *t = NULL;
    if (!dir) { fail(cl_errf(&g_err, CL_EINVAL, "cl_tokenizer_open: no directory")); return NULL; }
    if (cl_tokenizer_load(&t, dir, &g_err)) { fail(g_err.code); return NULL; }
    return t;
}
void cl_tokenizer_close(cl_tokenizer *t) { cl_tokenizer_free(t); }

int cl_tokenize(const cl_tokenizer *t, const char *text_a, const char *text_b, int max_length, int32_t *ids,
                int32_t *type_ids, int capacity) {
    begin();
    if (!t || !text_a || (capacity > 0 && !ids)) return fail(cl_errf(&g_err, CL_EINVAL, "cl_tokenize: bad arguments")), -1;
    cl_tok_encoding e;
    cl_tok_encoding_init(&e);
    int rc = cl_tokenizer_encode_str(t, text_a, text_b, max_length > 0 ? max_length : 512, &e, &g_err);
    int n = rc ? -1 : e.len;
    for (int i = 0; !rc && i < e.len && i < capacity; i++) {
        ids[i] = e.ids[i];
        if (type_ids) type_ids[i] = e.type_ids[i];
    }
    cl_tok_encoding_free(&e);
    if (rc) fail(rc);
    return n;
}

/* ---- options and training ---- */
size_t cl_option_count(void) { return cl_train_option_count(); }

cl_status cl_option_at(size_t i, cl_option_info *out) {
    begin();
    const cl_train_option *p = cl_train_option_at(i);
    if (!p || !out) return fail(cl_errf(&g_err, CL_EINVAL, "cl_option_at: no option %zu", i));
    out->name = p->name, out->key = p->key, out->type = (cl_option_type)p->type, out->def = p->def;
    out->min = p->lo, out->max = p->hi, out->choices = p->choices ? p->choices : "", out->group = p->group;
    out->help = p->help, out->resumable = (p->flags & (CL_OF_RESUME | CL_OF_INVOCATION)) != 0;
    return CL_OK;
}

struct cl_train_params {
    cl_train_opts o;
    char **strs; /* copies of the values given (the options point into them) */
    size_t n, cap;
};

cl_train_params *cl_train_params_new(void) {
    begin();
    cl_train_params *p = calloc(1, sizeof *p);
    if (!p) { fail(cl_errf(&g_err, CL_ENOMEM, "out of memory")); return NULL; }
    cl_train_opts_default(&p->o);
    return p;
}

void cl_train_params_free(cl_train_params *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) free(p->strs[i]);
    free(p->strs);
    free(p);
}

static const char *keep_str(cl_train_params *p, const char *v) {
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 16;
        char **ns = realloc(p->strs, nc * sizeof *ns);
        if (!ns) return NULL;
        p->strs = ns, p->cap = nc;
    }
    char *c = strdup(v);
    if (c) p->strs[p->n++] = c;
    return c;
}

cl_status cl_train_params_set(cl_train_params *p, const char *name, const char *value) {
    begin();
    if (!p || !name) return fail(cl_errf(&g_err, CL_EINVAL, "cl_train_params_set: bad arguments"));
    const char *v = value ? keep_str(p, value) : NULL;
    if (value && !v) return fail(cl_errf(&g_err, CL_ENOMEM, "out of memory"));
    if (!strcmp(name, "resume")) {
        if (!v || !*v) return fail(cl_errf(&g_err, CL_EUSAGE, "option --resume: a run directory is required"));
        p->o.resume = v;
        return CL_OK;
    }
    const cl_train_option *o = cl_train_option_find(name);
    if (!o) return fail(cl_errf(&g_err, CL_EUSAGE, "unknown option '%s' (cl_option_at lists them)", name));
    int rc = cl_train_option_set(&p->o, o, v, &g_err);
    return rc ? fail(rc) : CL_OK;
}

cl_status cl_train_params_get(const cl_train_params *p, const char *name, char *buf, size_t n) {
    begin();
    if (!p || !name || !buf || !n) return fail(cl_errf(&g_err, CL_EINVAL, "cl_train_params_get: bad arguments"));
    if (!strcmp(name, "resume")) {
        snprintf(buf, n, "%s", p->o.resume ? p->o.resume : "");
        return CL_OK;
    }
    const cl_train_option *o = cl_train_option_find(name);
    if (!o) return fail(cl_errf(&g_err, CL_EUSAGE, "unknown option '%s'", name));
    cl_train_option_get(&p->o, o, buf, n);
    return CL_OK;
}

struct cl_run {
    char dir[4096];
    cl_train_result res;
};

cl_status cl_train_params_set_comm(cl_train_params *p, cl_comm *comm) {
    begin();
    if (!p) return fail(cl_errf(&g_err, CL_EINVAL, "cl_train_params_set_comm: no params"));
    if (comm && (comm->size < 1 || comm->rank < 0 || comm->rank >= comm->size || !comm->sum_f32 || !comm->sum_f64 ||
                 !comm->bcast))
        return fail(cl_errf(&g_err, CL_EINVAL, "cl_train_params_set_comm: rank %d of %d, or a function missing",
                            comm->rank, comm->size));
    p->o.comm = comm;
    return CL_OK;
}

cl_run *cl_train(const cl_train_params *p, const cl_train_callbacks *cb) {
    begin();
    if (!p) { fail(cl_errf(&g_err, CL_EINVAL, "cl_train: no params")); return NULL; }
    cl_run *r = calloc(1, sizeof *r);
    if (!r) { fail(cl_errf(&g_err, CL_ENOMEM, "out of memory")); return NULL; }
    cl_train_opts o = p->o;
    if (cb) o.on_event = cb->on_event, o.event_user = cb->user, o.cancel = cb->cancel;
    const char *dir = o.resume ? o.resume : o.out_dir;
    snprintf(r->dir, sizeof r->dir, "%s", dir ? dir : "");
    if (cl_train_run(&o, &r->res, &g_err)) {
        fail(g_err.code);
        free(r);
        return NULL;
    }
    return r;
}

void cl_run_free(cl_run *r) { free(r); }
const char *cl_run_dir(const cl_run *r) { return r ? r->dir : ""; }
const cl_train_result *cl_run_result(const cl_run *r) { return r ? &r->res : NULL; }

cl_eval_params cl_eval_default_params(void) {
    cl_eval_params p = {NULL, NULL, 0, -1, NULL, NULL};
    return p;
}

cl_status cl_eval(const char *run, const char *split, const cl_eval_params *params, cl_metric_set *out,
                  size_t *n_examples) {
    begin();
    cl_eval_params p = params ? *params : cl_eval_default_params();
    if (!run || !split || !out) return fail(cl_errf(&g_err, CL_EINVAL, "cl_eval: bad arguments"));
    int rc = cl_eval_run_precision(run, split, p.model_dir, p.data_dir, p.threads, p.precision, p.on_event, p.user,
                                   out, n_examples, &g_err);
    return rc ? fail(rc) : CL_OK;
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

cl_status cl_export_peft(const char *run, const char *out_dir) {
    begin();
    if (!run || !out_dir) return fail(cl_errf(&g_err, CL_EINVAL, "cl_export_peft: bad arguments"));
    char src[4096], p[4300];
    snprintf(src, sizeof src, "%s", run);
    snprintf(p, sizeof p, "%s/run.json", run);
    if (is_file(p)) snprintf(src, sizeof src, "%s/best", run); /* a run directory: its best checkpoint */
    static const char *files[] = {"adapter_model.safetensors", "adapter_config.json", "labels.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", src, files[i]);
        if (!is_file(p))
            return fail(cl_errf(&g_err, CL_EMISSING, "%s: no %s (not a PEFT adapter, a checkpoint or a run)", src,
                                files[i]));
    }
    int rc = cl_mkdir_p(out_dir, &g_err);
    for (int i = 0; i < 3 && !rc; i++) {
        snprintf(p, sizeof p, "%s/%s", src, files[i]);
        if (i == 2 && !is_file(p)) continue;
        char *data = NULL, q[4300];
        size_t len = 0;
        if ((rc = cl_read_file(p, &data, &len, &g_err))) break;
        snprintf(q, sizeof q, "%s/%s", out_dir, files[i]);
        rc = cl_atomic_write(q, data, len, &g_err);
        free(data);
    }
    return rc ? fail(rc) : CL_OK;
}
