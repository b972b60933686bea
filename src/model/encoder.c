/* BERT / RoBERTa / MPNet encoder + sequence-classification head, forward and backward (see encoder.h). */
#include "model/encoder.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "core/util.h"
#include "model/gemm_bf16.h"
#include "model/ops.h"

/* One layer's activations. Stored layers (training, at or above the lowest layer backward needs) own theirs; every
 * other layer runs in the shared scratch slot. */
typedef struct {
    const float *x_in;            /* (N, H) layer input (previous output), not owned */
    float *q, *k, *v, *ctx;       /* (N, H) */
    float *att;                   /* (B, NH, T, T) pre-dropout probabilities: bf16 mode's stored layers; NULL in the
                                   * scratch slot and in fp32 mode, whose backward recomputes them */
    float *ln1_in, *ln1_out;      /* (N, H) */
    float *ln1_mean, *ln1_rstd;   /* (N) */
    float *pre, *act;             /* (N, I) intermediate before / after the activation (same buffer in scratch) */
    uint16_t *pre16;              /* bf16 mode, a stored layer: pre kept in bf16 (pre is NULL; the layer computes it
                                   * in the scratch slot) */
                                  /* A stored layer's ctx, ln1_out and act are read in backward only as the input of
                                   * an adapted linear (attention.output, intermediate, output dense). They exist only
                                   * once such an adapter is on (cl_encoder_forward allocates them then); until then
                                   * the layer writes them into the scratch slot, since nothing else reads them after
                                   * its forward. */
    float *ln2_in, *out;          /* (N, H) */
    float *ln2_mean, *ln2_rstd;   /* (N) */
} layer_acts;

struct cl_encoder {
    const cl_weights *m;
    int maxB, maxT, train, nthreads;
    int H, I, NH, HS, L, NL;
    size_t bytes;
    /* current batch */
    int B, T, N;
    int32_t *ids, *types, *pos, *len, *labels; /* copies (validated) */
    float *targets, *mtargets;
    int has_types, has_labels, has_targets, has_multi;
    cl_fwd_opts opts;
    int fwd_train_ok, bwd_from;
    float p_hidden, p_att, p_cls;
    /* embeddings */
    float *emb, *emb_mean, *emb_rstd, *x0;
    layer_acts *acts;  /* NL stored slots (training workspace) */
    layer_acts scratch;
    float *tmp;        /* (N, H) dense outputs before dropout + residual */
    float *relb;       /* (NH, 2T - 1) relative-attention bias of the current T (MPNet); NULL otherwise */
    const cl_head_layout *head;
    float *att_scratch; /* nthreads * 2 * T * T */
    /* head */
    float *cls, *cls_d, *hpre, *hact, *hact_d, *logits, *dlogits;
    float *d_hact, *d_hpre, *d_cls;
    /* backward */
    float *g0, *g1, *gt, *d1, *d2, *dq, *dk, *dv, *dI, *demb;
    int demb_valid;
    uint32_t *bf16_ws; /* bf16 mode: the bf16-rounded copy of a product's input (cl_bf16_gemm); else NULL */
};

enum { SITE_EMB = 1, SITE_HEAD_IN = 2, SITE_HEAD_ACT = 3, SITE_LAYER = 16 };
/* per_row: the elements one example has in the site's buffer (NH T T attention, T H token states, H the head's) */
static cl_dropout drop_site(const cl_encoder *e, uint64_t site, float p, uint64_t per_row) {
    cl_dropout d = {e->opts.seed, site, e->opts.train ? p : 0.0f, e->opts.row0 * per_row};
    return d;
}
#define ATT_ROW ((uint64_t)e->NH * (uint64_t)e->T * (uint64_t)e->T)
#define TOK_ROW ((uint64_t)e->T * (uint64_t)e->H)
#define HEAD_ROW ((uint64_t)e->H)

static float *ealloc(cl_encoder *e, size_t n, cl_error *err) {
    e->bytes += n * sizeof(float);
    return cl_alloc(n, sizeof(float), err);
}

static int alloc_acts(cl_encoder *e, layer_acts *a, int stored, cl_error *err) {
    size_t NHs = (size_t)e->maxB * e->maxT * e->H, NI = (size_t)e->maxB * e->maxT * e->I, N = (size_t)e->maxB * e->maxT;
    float **hs[] = {&a->q, &a->k, &a->v, &a->ln1_in, &a->ln2_in, &a->out};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (!(*hs[i] = ealloc(e, NHs, err))) return -1;
    a->ctx = a->ln1_out = NULL; /* a stored layer's: lazily, in cl_encoder_forward */
    if (!stored && (!(a->ctx = ealloc(e, NHs, err)) || !(a->ln1_out = ealloc(e, NHs, err)))) return -1;
    float **ns[] = {&a->ln1_mean, &a->ln1_rstd, &a->ln2_mean, &a->ln2_rstd};
    for (size_t i = 0; i < 4; i++)
        if (!(*ns[i] = ealloc(e, N, err))) return -1;
    a->pre = NULL, a->pre16 = NULL;
    if (stored && e->m->bf16) {
        e->bytes += NI * sizeof(uint16_t);
        if (!(a->pre16 = cl_alloc(NI, sizeof(uint16_t), err))) return -1;
    } else if (!(a->pre = ealloc(e, NI, err))) return -1;
    if (stored) {
        a->act = NULL;
        /* fp32: the backward recomputes each head's probabilities (cl_attention_backward with att NULL) */
        a->att = NULL;
        if (e->m->bf16 && !(a->att = ealloc(e, (size_t)e->maxB * e->NH * e->maxT * e->maxT, err))) return -1;
    } else {
        a->act = a->pre;
        a->att = NULL;
    }
    return 0;
}

static void free_acts(layer_acts *a) {
    float *p[] = {a->q, a->k, a->v, a->ctx, a->ln1_in, a->ln1_out, a->ln2_in, a->out, a->ln1_mean, a->ln1_rstd,
                  a->ln2_mean, a->ln2_rstd, a->pre};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) cl_free(p[i]);
    cl_free(a->pre16);
    if (a->act && a->act != a->pre) cl_free(a->act);
    cl_free(a->att);
}

void cl_encoder_free(cl_encoder *e) {
    if (!e) return;
    if (e->acts) {
        for (int l = 0; l < e->NL; l++) free_acts(&e->acts[l]);
        free(e->acts);
    }
    free_acts(&e->scratch);
    void *p[] = {e->ids, e->types, e->pos, e->len, e->labels, e->targets, e->mtargets, e->emb, e->emb_mean, e->emb_rstd, e->x0,
                 e->tmp, e->relb, e->att_scratch, e->cls, e->cls_d, e->hpre, e->hact, e->hact_d, e->logits, e->dlogits,
                 e->d_hact, e->d_hpre, e->d_cls, e->g0, e->g1, e->gt, e->d1, e->d2, e->dq, e->dk, e->dv, e->dI,
                 e->demb, e->bf16_ws};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) cl_free(p[i]);
    free(e);
}

int cl_encoder_new(cl_encoder **out, const cl_weights *m, int max_B, int max_T, int train, cl_error *err) {
    *out = NULL;
    const cl_config *c = &m->cfg;
    if (max_B < 1 || max_T < 1)
        return cl_errf(err, CL_EINVAL, "encoder: batch %d x sequence %d: both must be >= 1", max_B, max_T);
    if (c->hidden_size < 1 || c->num_heads < 1 || c->hidden_size % c->num_heads)
        return cl_errf(err, CL_EINVAL, "encoder: hidden_size %d is not a multiple of num_attention_heads %d",
                       c->hidden_size, c->num_heads);
    int maxpos = cl_config_max_tokens(c);
    if (max_T > maxpos)
        return cl_errf(err, CL_EINVAL, "encoder: sequence length %d exceeds the model's %d positions", max_T, maxpos);
    if (m->head != CL_HEAD_NONE && (!m->head_out.w || !cl_model_head_dense((cl_weights *)m)))
        return cl_errf(err, CL_EMISSING, "encoder: the classification head's weights are missing");
    if (c->rel_buckets && !m->rel_bias)
        return cl_errf(err, CL_EMISSING, "encoder: the relative-attention bias is missing");
    cl_encoder *e = calloc(1, sizeof *e);
    if (!e) return cl_errf(err, CL_ENOMEM, "encoder: out of memory");
    e->m = m;
    e->maxB = max_B;
    e->maxT = max_T;
    e->train = train;
    e->H = c->hidden_size;
    e->I = c->intermediate_size;
    e->NH = c->num_heads;
    e->HS = e->H / e->NH;
    e->NL = c->num_layers;
    e->L = m->head == CL_HEAD_NONE ? 0 : m->head_out.d_out;
    e->head = cl_head_layout_of(m->head);
    e->nthreads = omp_get_max_threads();
    e->p_hidden = c->hidden_dropout;
    e->p_att = c->attention_dropout;
    e->p_cls = c->classifier_dropout >= 0 ? c->classifier_dropout : c->hidden_dropout;
    const size_t N = (size_t)max_B * max_T, NHs = N * e->H, BH = (size_t)max_B * e->H, BL = (size_t)max_B * (e->L + 1);
    int ok = 1;
#define A(ptr, n, type)                                                                                          \
    do {                                                                                                         \
        if (ok && !((ptr) = (type *)cl_alloc((n), sizeof(type), err))) ok = 0;                                  \
        e->bytes += (size_t)(n) * sizeof(type);                                                                  \
    } while (0)
    A(e->ids, N, int32_t);
    A(e->types, N, int32_t);
    A(e->pos, N, int32_t);
    A(e->len, max_B, int32_t);
    A(e->labels, max_B, int32_t);
    A(e->targets, max_B, float);
    A(e->mtargets, (size_t)max_B * (e->L > 0 ? e->L : 1), float);
    A(e->emb, NHs, float);
    A(e->emb_mean, N, float);
    A(e->emb_rstd, N, float);
    A(e->x0, NHs, float);
    A(e->tmp, NHs, float);
    if (c->rel_buckets) A(e->relb, (size_t)e->NH * (2 * (size_t)max_T - 1), float);
    /* bf16 mode's attention also packs its operands there (model/gemm_bf16.h) */
    A(e->att_scratch,
      (size_t)e->nthreads * (m->bf16 ? cl_bf16_attention_scratch(max_T, e->HS) : 3 * (size_t)max_T * max_T), float);
    A(e->cls, BH, float);
    A(e->cls_d, BH, float);
    A(e->hpre, BH, float);
    A(e->hact, BH, float);
    A(e->hact_d, BH, float);
    A(e->logits, BL, float);
    A(e->dlogits, BL, float);
    A(e->d_hact, BH, float);
    A(e->d_hpre, BH, float);
    A(e->d_cls, BH, float);
    if (m->bf16) A(e->bf16_ws, cl_bf16_ws_elems((int)N, e->H > e->I ? e->H : e->I), uint32_t);
    if (ok && alloc_acts(e, &e->scratch, 0, err)) ok = 0;
    if (ok && train) {
        float **bw[] = {&e->g0, &e->g1, &e->gt, &e->d1, &e->d2, &e->dq, &e->dk, &e->dv, &e->demb};
        for (size_t i = 0; i < sizeof bw / sizeof bw[0]; i++) A(*bw[i], NHs, float);
        A(e->dI, N * e->I, float);
        if (ok && !(e->acts = calloc((size_t)e->NL, sizeof *e->acts))) ok = !cl_errf(err, CL_ENOMEM, "encoder: out of memory");
        for (int l = 0; ok && l < e->NL; l++)
            if (alloc_acts(e, &e->acts[l], 1, err)) ok = 0;
    }
#undef A
    if (!ok) {
        cl_err_prefix(err, "encoder workspace (batch %d x sequence %d)", max_B, max_T);
        cl_encoder_free(e);
        return err ? err->code : CL_ENOMEM;
    }
    *out = e;
    return 0;
}

size_t cl_encoder_workspace_bytes(const cl_encoder *e) { return e->bytes; }
const float *cl_encoder_last_hidden(const cl_encoder *e) {
    if (e->NL == 0) return e->x0;
    return e->bwd_from <= e->NL - 1 && e->opts.train ? e->acts[e->NL - 1].out : e->scratch.out;
}
const float *cl_encoder_input_grad(const cl_encoder *e) { return e->demb_valid ? e->demb : NULL; }

static int nt_att(const cl_encoder *e) {
    int nt = omp_get_max_threads();
    return nt < e->nthreads ? nt : e->nthreads;
}

/* ---- forward ---------------------------------------------------------------------------------------------- */
static int hook_on(const cl_encoder *e, int l, cl_module mod) {
    const cl_lin_hook *h = e->opts.hook;
    return h && h->adapted && h->adapted(h->ctx, l, mod);
}

/* y = x W^T + b of frozen encoder linear layer (l, mod): the bf16 kernel when the model is in bf16 mode (w16 set
 * by cl_model_to_bf16), else OpenBLAS in fp32 (unchanged) */
static void frozen_fwd(const cl_encoder *e, int l, cl_module mod, const float *x, const float *b, float *y) {
    const cl_layer_weights *w = &e->m->layers[l];
    const cl_linear *lin = &w->lin[mod];
    if (w->w16[mod]) cl_bf16_gemm(y, x, w->w16[mod], b, e->N, 0, e->bf16_ws);
    else cl_linear_forward(y, x, lin->w, b, e->N, lin->d_in, lin->d_out);
}

/* dx += dy W of frozen encoder linear layer (l, mod) (bf16: W^T packed, w16t) */
static void frozen_bwd(const cl_encoder *e, int l, cl_module mod, const float *dy, const float *x, float *dx) {
    const cl_layer_weights *w = &e->m->layers[l];
    const cl_linear *lin = &w->lin[mod];
    if (w->w16t[mod]) cl_bf16_gemm(dx, dy, w->w16t[mod], NULL, e->N, 1, e->bf16_ws);
    else cl_linear_backward(dx, NULL, NULL, dy, x, lin->w, e->N, lin->d_in, lin->d_out);
}

/* The element-wise ops of the layers: bf16 mode runs the vectorised forms of model/gemm_bf16.h (same dropout
 * masks), fp32 mode the ops.c ones (unchanged). */
static void res_ln(const cl_encoder *e, float *out, float *mean, float *rstd, float *inp, const float *resid,
                   const float *x, const cl_dropout *d, const float *w, const float *b) {
    const float eps = e->m->cfg.layer_norm_eps;
    if (e->m->bf16) cl_bf16_residual_layernorm_forward(out, mean, rstd, inp, resid, x, d, w, b, e->N, e->H, eps);
    else cl_residual_layernorm_forward(out, mean, rstd, inp, resid, x, d, w, b, e->N, e->H, eps);
}
static void ln_bwd(const cl_encoder *e, float *dinp, const float *dout, const float *inp, const float *w,
                   const float *mean, const float *rstd) {
    if (e->m->bf16) cl_bf16_layernorm_backward(dinp, dout, inp, w, mean, rstd, e->N, e->H);
    else cl_layernorm_backward(dinp, NULL, NULL, dout, inp, w, mean, rstd, e->N, e->H);
}
static void drop_fwd(const cl_encoder *e, float *y, const float *x, size_t n, const cl_dropout *d) {
    if (e->m->bf16) cl_bf16_dropout_forward(y, x, n, d);
    else cl_dropout_forward(y, x, n, d);
}

/* y = x W^T + b, then the adapter's delta */
static void lin_fwd(cl_encoder *e, int l, cl_module mod, const float *x, float *y) {
    frozen_fwd(e, l, mod, x, e->m->layers[l].lin[mod].b, y);
    if (hook_on(e, l, mod)) e->opts.hook->forward(e->opts.hook->ctx, l, mod, x, y, e->N, e->opts.train);
}

static void layer_forward(cl_encoder *e, int l, layer_acts *a) {
    const cl_layer_weights *w = &e->m->layers[l];
    const cl_config *c = &e->m->cfg;
    const int N = e->N, I = e->I;
    float *act = a->act ? a->act : e->scratch.pre, *pre = a->pre ? a->pre : e->scratch.pre;
    float *ctx = a->ctx ? a->ctx : e->scratch.ctx, *ln1_out = a->ln1_out ? a->ln1_out : e->scratch.ln1_out;
    lin_fwd(e, l, CL_MOD_QUERY, a->x_in, a->q);
    lin_fwd(e, l, CL_MOD_KEY, a->x_in, a->k);
    lin_fwd(e, l, CL_MOD_VALUE, a->x_in, a->v);
    cl_dropout da = drop_site(e, SITE_LAYER + 4 * (uint64_t)l, e->p_att, ATT_ROW);
    if (e->m->bf16) /* bf16 mode: its products in bf16, the rest vectorised, the same masks (model/gemm_bf16.h) */
        cl_bf16_attention_forward(ctx, a->att, e->att_scratch, a->q, a->k, a->v, e->relb, e->len, e->B, e->T, e->NH,
                                  e->HS, &da, nt_att(e));
    else
        cl_attention_forward(ctx, a->att, e->att_scratch, a->q, a->k, a->v, e->relb, e->len, e->B, e->T, e->NH,
                             e->HS, &da, nt_att(e));
    lin_fwd(e, l, CL_MOD_ATTN_OUT, ctx, e->tmp);
    cl_dropout d1 = drop_site(e, SITE_LAYER + 4 * (uint64_t)l + 1, e->p_hidden, TOK_ROW);
    res_ln(e, ln1_out, a->ln1_mean, a->ln1_rstd, a->ln1_in, a->x_in, e->tmp, &d1, w->ln1_w, w->ln1_b);
    const cl_linear *li = &w->lin[CL_MOD_INTER];
    if (hook_on(e, l, CL_MOD_INTER)) {
        lin_fwd(e, l, CL_MOD_INTER, ln1_out, pre);
        if (a->pre16) cl_bf16_bias_act_store(act, a->pre16, pre, NULL, N, I, c->act);
        else cl_act_forward(act, pre, (size_t)N * I, c->act);
    } else {
        frozen_fwd(e, l, CL_MOD_INTER, ln1_out, NULL, pre);
        if (a->pre16) cl_bf16_bias_act_store(act, a->pre16, pre, li->b, N, I, c->act);
        else cl_bias_act_forward(act, pre, li->b, N, I, c->act);
    }
    lin_fwd(e, l, CL_MOD_OUT, act, e->tmp);
    cl_dropout d2 = drop_site(e, SITE_LAYER + 4 * (uint64_t)l + 2, e->p_hidden, TOK_ROW);
    res_ln(e, a->out, a->ln2_mean, a->ln2_rstd, a->ln2_in, ln1_out, e->tmp, &d2, w->ln2_w, w->ln2_b);
}

static void head_forward(cl_encoder *e) {
    const cl_weights *m = e->m;
    const int B = e->B, H = e->H, T = e->T;
    const float *last = cl_encoder_last_hidden(e);
    for (int b = 0; b < B; b++) memcpy(e->cls + (size_t)b * H, last + (size_t)b * T * H, (size_t)H * sizeof(float));
    const cl_linear *dense = cl_model_head_dense((cl_weights *)m);
    cl_dropout d0 = drop_site(e, SITE_HEAD_IN, e->head->dropout_in ? e->p_cls : 0.0f, HEAD_ROW);
    cl_dropout_forward(e->cls_d, e->cls, (size_t)B * H, &d0);
    cl_linear_forward(e->hpre, e->cls_d, dense->w, dense->b, B, H, dense->d_out);
    cl_tanh_forward(e->hact, e->hpre, (size_t)B * H);
    cl_dropout d1 = drop_site(e, SITE_HEAD_ACT, e->p_cls, HEAD_ROW);
    cl_dropout_forward(e->hact_d, e->hact, (size_t)B * H, &d1);
    cl_linear_forward(e->logits, e->hact_d, m->head_out.w, m->head_out.b, B, H, e->L);
}

int cl_encoder_forward(cl_encoder *e, const cl_batch *bt, const cl_fwd_opts *opts, const float **logits,
                       float *loss, cl_error *err) {
    static const cl_fwd_opts none = {0};
    const cl_weights *m = e->m;
    const cl_config *c = &m->cfg;
    if (!opts) opts = &none;
    if (logits) *logits = NULL;
    if (loss) *loss = NAN;
    e->fwd_train_ok = 0;
    e->demb_valid = 0;
    if (opts->train && !e->train)
        return cl_errf(err, CL_EINVAL, "encoder: training forward on a workspace created for inference");
    if (bt->B < 1 || bt->B > e->maxB || bt->T < 1 || bt->T > e->maxT)
        return cl_errf(err, CL_EINVAL, "encoder: batch %d x %d exceeds the workspace's %d x %d", bt->B, bt->T,
                       e->maxB, e->maxT);
    if ((opts->labels != NULL) + (opts->targets != NULL) + (opts->multi_targets != NULL) > 1)
        return cl_errf(err, CL_EINVAL, "encoder: give one of labels, targets and multi-label targets");
    if ((opts->labels || opts->targets || opts->multi_targets) && m->head == CL_HEAD_NONE)
        return cl_errf(err, CL_EINVAL, "encoder: labels given but the model has no classification head");
    if (opts->targets && e->L != 1)
        return cl_errf(err, CL_EINVAL, "encoder: regression targets need num_labels == 1 (the head has %d)", e->L);
    const int B = bt->B, T = bt->T, N = B * T;
    for (int b = 0; b < B; b++) {
        if (bt->len[b] < 1 || bt->len[b] > T)
            return cl_errf(err, CL_EINVAL, "encoder: sequence %d has length %d, outside [1, %d]", b, bt->len[b], T);
        if (opts->labels && (opts->labels[b] < 0 || opts->labels[b] >= e->L))
            return cl_errf(err, CL_EINVAL, "encoder: sequence %d: label %d outside [0, %d)", b, opts->labels[b], e->L);
        if (opts->targets && !isfinite(opts->targets[b]))
            return cl_errf(err, CL_EINVAL, "encoder: sequence %d: regression target is not finite", b);
        for (int j = 0; opts->multi_targets && j < e->L; j++) {
            const float y = opts->multi_targets[(size_t)b * e->L + j];
            if (!(y >= 0.0f && y <= 1.0f))
                return cl_errf(err, CL_EINVAL, "encoder: sequence %d: multi-label target %d is not in [0, 1]", b, j);
        }
    }
    for (int i = 0; i < N; i++) {
        if (bt->ids[i] < 0 || bt->ids[i] >= c->vocab_size)
            return cl_errf(err, CL_EINVAL, "encoder: sequence %d position %d: token id %d outside the vocabulary [0, %d)",
                           i / T, i % T, bt->ids[i], c->vocab_size);
        if (bt->type_ids && bt->type_ids[i] && (bt->type_ids[i] < 0 || bt->type_ids[i] >= c->type_vocab_size))
            return cl_errf(err, CL_EINVAL, "encoder: sequence %d position %d: token type %d outside [0, %d)%s", i / T,
                           i % T, bt->type_ids[i], c->type_vocab_size > 0 ? c->type_vocab_size : 1,
                           m->type_emb ? "" : " (the model has no token types)");
    }
    e->B = B;
    e->T = T;
    e->N = N;
    e->opts = *opts;
    memcpy(e->ids, bt->ids, (size_t)N * sizeof(int32_t));
    memcpy(e->len, bt->len, (size_t)B * sizeof(int32_t));
    e->has_types = bt->type_ids != NULL && m->type_emb != NULL; /* all 0 without token types (checked above) */
    if (e->has_types) memcpy(e->types, bt->type_ids, (size_t)N * sizeof(int32_t));
    e->has_labels = opts->labels != NULL;
    if (e->has_labels) memcpy(e->labels, opts->labels, (size_t)B * sizeof(int32_t));
    e->has_targets = opts->targets != NULL;
    if (e->has_targets) memcpy(e->targets, opts->targets, (size_t)B * sizeof(float));
    e->has_multi = opts->multi_targets != NULL;
    if (e->has_multi) memcpy(e->mtargets, opts->multi_targets, (size_t)B * e->L * sizeof(float));
    e->opts.multi_targets = NULL;
    e->opts.labels = NULL;
    e->opts.targets = NULL;
    e->opts.hidden_states = NULL;

    /* lowest layer backward will need */
    e->bwd_from = e->NL;
    if (opts->train) {
        if (opts->need_input_grad) e->bwd_from = 0;
        else if (opts->hook)
            for (int l = 0; l < e->NL && e->bwd_from == e->NL; l++)
                for (int mod = 0; mod < CL_MOD_COUNT; mod++)
                    if (hook_on(e, l, (cl_module)mod)) {
                        e->bwd_from = l;
                        break;
                    }
    }

    /* an adapted attention.output, intermediate or output dense reads its input in backward: that layer keeps its
     * own copy of it */
    for (int l = e->bwd_from; l < e->NL; l++) {
        layer_acts *a = &e->acts[l];
        const size_t NHs = (size_t)e->maxB * e->maxT * e->H, NI = (size_t)e->maxB * e->maxT * e->I;
        const char *what = NULL;
        if (!a->ctx && hook_on(e, l, CL_MOD_ATTN_OUT) && !(a->ctx = ealloc(e, NHs, err)))
            what = "attention context for its adapted attention.output dense";
        else if (!a->ln1_out && hook_on(e, l, CL_MOD_INTER) && !(a->ln1_out = ealloc(e, NHs, err)))
            what = "attention block output for its adapted intermediate dense";
        else if (!a->act && hook_on(e, l, CL_MOD_OUT) && !(a->act = ealloc(e, NI, err)))
            what = "activation for its adapted output dense";
        if (what) {
            cl_err_prefix(err, "encoder: layer %d's %s", l, what);
            return err ? err->code : CL_ENOMEM;
        }
    }

    /* bf16 mode: a backward through layer l needs every W^T packed (or the fp32 W) */
    for (int l = e->bwd_from; l < e->NL; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++)
            if (!m->layers[l].w16t[k] && !m->layers[l].lin[k].w)
                return cl_errf(err, CL_EINVAL, "encoder: training through layer %d needs the bf16 model converted with "
                                               "backward (cl_bf16_opts.backward)", l);

    /* embeddings */
    const int H = e->H;
    cl_position_ids(e->pos, e->ids, B, T, cl_config_position_pad(c));
    if (e->relb) cl_rel_bias_table(e->relb, m->rel_bias, T, e->NH, c->rel_buckets, cl_model_arch(m)->rel_max_distance);
    cl_embed_forward(e->emb, e->ids, e->pos, e->has_types ? e->types : NULL, m->word_emb, m->pos_emb, m->type_emb,
                     N, H);
    cl_layernorm_forward(e->x0, e->emb_mean, e->emb_rstd, e->emb, m->emb_ln_w, m->emb_ln_b, N, H,
                         c->layer_norm_eps);
    cl_dropout de = drop_site(e, SITE_EMB, e->p_hidden, TOK_ROW);
    drop_fwd(e, e->x0, e->x0, (size_t)N * H, &de);
    const size_t NHs = (size_t)N * H;
    if (opts->hidden_states) memcpy(opts->hidden_states, e->x0, NHs * sizeof(float));

    const float *x = e->x0;
    for (int l = 0; l < e->NL; l++) {
        layer_acts *a = (opts->train && l >= e->bwd_from) ? &e->acts[l] : &e->scratch;
        a->x_in = x;
        layer_forward(e, l, a);
        x = a->out;
        if (opts->hidden_states) memcpy(opts->hidden_states + (size_t)(l + 1) * NHs, x, NHs * sizeof(float));
    }
    if (m->head != CL_HEAD_NONE) {
        head_forward(e);
        if (logits) *logits = e->logits;
        double lv = NAN;
        if (e->has_labels) lv = cl_crossentropy_forward_backward(NULL, e->logits, e->labels, B, e->L, 1.0f);
        else if (e->has_targets) lv = cl_mse_forward_backward(NULL, e->logits, e->targets, B, 1.0f);
        else if (e->has_multi)
            lv = cl_bce_logits_forward_backward(NULL, e->logits, e->mtargets, (size_t)B * e->L, 1.0f);
        if (loss) *loss = (float)lv;
    }
    e->fwd_train_ok = opts->train;
    return 0;
}

/* ---- backward --------------------------------------------------------------------------------------------- */
static void hook_bwd(cl_encoder *e, int l, cl_module mod, const float *x, const float *dy, float *dx) {
    if (hook_on(e, l, mod)) e->opts.hook->backward(e->opts.hook->ctx, l, mod, x, dy, dx, e->N);
}

/* dout (N, H): d(layer output); dx (N, H) = d(layer input) (overwritten) */
static void layer_backward(cl_encoder *e, int l, layer_acts *a, const float *dout, float *dx) {
    const cl_layer_weights *w = &e->m->layers[l];
    const cl_config *c = &e->m->cfg;
    const int N = e->N, H = e->H, I = e->I;
    const size_t NHs = (size_t)N * H, NI = (size_t)N * I;
    /* output LayerNorm, residual to ln1_out, dropout, output.dense */
    memset(e->gt, 0, NHs * sizeof(float));
    ln_bwd(e, e->gt, dout, a->ln2_in, w->ln2_w, a->ln2_mean, a->ln2_rstd);
    memcpy(e->d1, e->gt, NHs * sizeof(float));
    cl_dropout d2 = drop_site(e, SITE_LAYER + 4 * (uint64_t)l + 2, e->p_hidden, TOK_ROW);
    drop_fwd(e, e->d2, e->gt, NHs, &d2); /* dropout's backward is the same mask and scale */
    memset(e->dI, 0, NI * sizeof(float));
    frozen_bwd(e, l, CL_MOD_OUT, e->d2, a->act, e->dI);
    hook_bwd(e, l, CL_MOD_OUT, a->act, e->d2, e->dI);
    /* activation (in place), intermediate.dense */
    {
        if (a->pre16) cl_bf16_act_grad_mul16(e->dI, a->pre16, NI, c->act);
        else cl_act_grad_mul(e->dI, a->pre, NI, c->act);
    }
    frozen_bwd(e, l, CL_MOD_INTER, e->dI, a->ln1_out, e->d1);
    hook_bwd(e, l, CL_MOD_INTER, a->ln1_out, e->dI, e->d1);
    /* attention LayerNorm, residual to the layer input, dropout, attention.output.dense */
    memset(e->gt, 0, NHs * sizeof(float));
    ln_bwd(e, e->gt, e->d1, a->ln1_in, w->ln1_w, a->ln1_mean, a->ln1_rstd);
    memcpy(dx, e->gt, NHs * sizeof(float));
    cl_dropout d1 = drop_site(e, SITE_LAYER + 4 * (uint64_t)l + 1, e->p_hidden, TOK_ROW);
    drop_fwd(e, e->d2, e->gt, NHs, &d1);
    memset(e->d1, 0, NHs * sizeof(float));
    frozen_bwd(e, l, CL_MOD_ATTN_OUT, e->d2, a->ctx, e->d1);
    hook_bwd(e, l, CL_MOD_ATTN_OUT, a->ctx, e->d2, e->d1);
    /* attention core */
    memset(e->dq, 0, NHs * sizeof(float));
    memset(e->dk, 0, NHs * sizeof(float));
    memset(e->dv, 0, NHs * sizeof(float));
    cl_dropout da = drop_site(e, SITE_LAYER + 4 * (uint64_t)l, e->p_att, ATT_ROW);
    if (e->m->bf16)
        cl_bf16_attention_backward(e->dq, e->dk, e->dv, e->att_scratch, e->d1, a->q, a->k, a->v, a->att, e->len,
                                   e->B, e->T, e->NH, e->HS, &da, nt_att(e));
    else
        cl_attention_backward(e->dq, e->dk, e->dv, e->att_scratch, e->d1, a->q, a->k, a->v, a->att, e->relb, e->len,
                              e->B, e->T, e->NH, e->HS, &da, nt_att(e));
    /* value, key, query (reverse of the forward order). dx = dy W is skipped where nobody reads dx: the lowest layer
     * backward visits, without an input gradient (the hooks still get dx to write into; nothing reads it). */
    const int skip_dx = l == e->bwd_from && !e->opts.need_input_grad;
    if (!skip_dx) frozen_bwd(e, l, CL_MOD_VALUE, e->dv, a->x_in, dx);
    hook_bwd(e, l, CL_MOD_VALUE, a->x_in, e->dv, dx);
    if (!skip_dx) frozen_bwd(e, l, CL_MOD_KEY, e->dk, a->x_in, dx);
    hook_bwd(e, l, CL_MOD_KEY, a->x_in, e->dk, dx);
    if (!skip_dx) frozen_bwd(e, l, CL_MOD_QUERY, e->dq, a->x_in, dx);
    hook_bwd(e, l, CL_MOD_QUERY, a->x_in, e->dq, dx);
}

int cl_encoder_backward_logits(cl_encoder *e, const float *dlogits, const cl_head_grads *g, cl_error *err) {
    static const cl_head_grads none = {0};
    if (!e->fwd_train_ok) return cl_errf(err, CL_EINVAL, "encoder: backward needs a training forward first");
    if (e->m->head == CL_HEAD_NONE) return cl_errf(err, CL_EINVAL, "encoder: backward needs a classification head");
    if (!g) g = &none;
    const cl_weights *m = e->m;
    const int B = e->B, H = e->H, T = e->T, L = e->L;
    const size_t BH = (size_t)B * H;
    const cl_linear *dense = cl_model_head_dense((cl_weights *)m);
    /* out_proj / classifier */
    memset(e->d_hact, 0, BH * sizeof(float));
    cl_linear_backward(e->d_hact, g->out_w, g->out_b, dlogits, e->hact_d, m->head_out.w, B, H, L);
    cl_dropout d1 = drop_site(e, SITE_HEAD_ACT, e->p_cls, HEAD_ROW);
    cl_dropout_forward(e->d_hact, e->d_hact, BH, &d1);
    memset(e->d_hpre, 0, BH * sizeof(float));
    cl_tanh_backward(e->d_hpre, e->d_hact, e->hact, BH);
    const int deeper = e->bwd_from < e->NL || e->opts.need_input_grad;
    if (deeper) memset(e->d_cls, 0, BH * sizeof(float));
    cl_linear_backward(deeper ? e->d_cls : NULL, g->dense_w, g->dense_b, e->d_hpre, e->cls_d, dense->w, B, H, H);
    if (!deeper) return 0;
    cl_dropout d0 = drop_site(e, SITE_HEAD_IN, e->head->dropout_in ? e->p_cls : 0.0f, HEAD_ROW);
    cl_dropout_forward(e->d_cls, e->d_cls, BH, &d0);
    /* into the encoder: only token 0 of each sequence has a gradient */
    const size_t NHs = (size_t)e->N * H;
    memset(e->g0, 0, NHs * sizeof(float));
    for (int b = 0; b < B; b++)
        memcpy(e->g0 + (size_t)b * T * H, e->d_cls + (size_t)b * H, (size_t)H * sizeof(float));
    float *gout = e->g0, *gin = e->g1;
    for (int l = e->NL - 1; l >= e->bwd_from; l--) {
        layer_backward(e, l, &e->acts[l], gout, gin);
        float *t = gout;
        gout = gin;
        gin = t;
    }
    if (e->opts.need_input_grad) {
        /* embedding dropout and LayerNorm: d(word + position + type) = d(word embedding output) */
        cl_dropout de = drop_site(e, SITE_EMB, e->p_hidden, TOK_ROW);
        drop_fwd(e, gin, gout, NHs, &de);
        memset(e->demb, 0, NHs * sizeof(float));
        cl_layernorm_backward(e->demb, NULL, NULL, gin, e->emb, m->emb_ln_w, e->emb_mean, e->emb_rstd, e->N, H);
        e->demb_valid = 1;
    }
    return 0;
}

int cl_encoder_backward(cl_encoder *e, float scale, const cl_head_grads *g, cl_error *err) {
    if (!e->fwd_train_ok) return cl_errf(err, CL_EINVAL, "encoder: backward needs a training forward first");
    if (!e->has_labels && !e->has_targets && !e->has_multi)
        return cl_errf(err, CL_EINVAL, "encoder: backward needs the forward to have had labels or targets");
    const size_t BL = (size_t)e->B * e->L;
    memset(e->dlogits, 0, BL * sizeof(float));
    if (e->has_labels) cl_crossentropy_forward_backward(e->dlogits, e->logits, e->labels, e->B, e->L, scale);
    else if (e->has_multi) cl_bce_logits_forward_backward(e->dlogits, e->logits, e->mtargets, BL, scale);
    else cl_mse_forward_backward(e->dlogits, e->logits, e->targets, e->B, scale);
    return cl_encoder_backward_logits(e, e->dlogits, g, err);
}
