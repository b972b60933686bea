/* Encoder ops, llm.c style: every op is a *_forward / *_backward pair with its shapes in a comment; backward
 * ACCUMULATES (+=) into the input gradients it is given; nothing here allocates, everything is fp32 row-major.
 * Non-BLAS loops are parallelised with OpenMP; linear layers and attention use cblas_sgemm (attention runs one
 * single-threaded sgemm per (batch, head) inside an OpenMP loop over batch*heads; OpenMP builds of OpenBLAS run
 * single-threaded when called inside a parallel region, so threads are never oversubscribed).
 *
 * Dropout is counter-based: whether element i of dropout site `site` is kept is a pure function of
 * (seed, site, i), so backward regenerates the mask instead of storing it and results do not depend on the
 * thread count. */
#ifndef CL_OPS_H
#define CL_OPS_H
#include <stdint.h>
#include "model/model.h"

/* ---- dropout ---------------------------------------------------------------------------------------------- */
typedef struct {
    uint64_t seed;  /* per step */
    uint64_t site;  /* which dropout in the network */
    float p;        /* drop probability; p <= 0 means identity */
    uint64_t offset; /* element 0 of the buffer is element `offset` of the site's whole-batch buffer (a multiple of
                        4): a shard of the batch (data parallelism) draws the rows' masks of the whole batch */
} cl_dropout;
/* The mask's hash, also used by bf16 mode's attention (model/gemm_bf16.c) to draw the same masks: element i of a
 * site is kept when the 16-bit field (i & 3) of cl_dropout_mix64(cl_dropout_key(d) + (i >> 2)) is >= thr(p). */
static inline uint64_t cl_dropout_mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static inline uint64_t cl_dropout_key(const cl_dropout *d) {
    /* element i hashes key + (i >> 2): an offset of 4k elements is a key k larger */
    return cl_dropout_mix64(d->seed ^ cl_dropout_mix64(d->site * 0x632be59bd9b4e019ULL)) + (d->offset >> 2);
}
static inline uint32_t cl_dropout_thr(float p) { return (uint32_t)(p * 65536.0f + 0.5f); }
/* What an attention kernel needs of a dropout site: on, the mask key, the keep threshold, the kept scale. */
typedef struct {
    int on;
    uint64_t key;
    uint32_t thr;
    float scale;
} cl_dropout_plan;
static inline cl_dropout_plan cl_dropout_plan_of(const cl_dropout *d) {
    cl_dropout_plan pl = {0, 0, 0, 1.0f};
    if (d && d->p > 0.0f) {
        pl.on = 1, pl.key = cl_dropout_key(d), pl.thr = cl_dropout_thr(d->p);
        pl.scale = d->p >= 1.0f ? 0.0f : 1.0f / (1.0f - d->p);
    }
    return pl;
}
/* the multiplier of element i: 0 or 1/(1-p) */
float cl_dropout_scale(const cl_dropout *d, uint64_t i);
/* y (n) = dropout(x) ; in place allowed */
void cl_dropout_forward(float *y, const float *x, size_t n, const cl_dropout *d);
/* dx (n) += dropout'(dy) */
void cl_dropout_backward(float *dx, const float *dy, size_t n, const cl_dropout *d);

/* ---- embeddings ------------------------------------------------------------------------------------------- */
/* Position ids (B*T): pad_id < 0: 0..T-1 (BERT); else padding-aware as transformers'
 * create_position_ids_from_input_ids (RoBERTa, MPNet: pads take pad_id, other tokens pad_id + 1 + their rank among
 * non-pad tokens; cl_config_position_pad gives pad_id). */
void cl_position_ids(int32_t *pos, const int32_t *ids, int B, int T, int pad_id);
/* out (N, H) = word_emb[ids] + pos_emb[pos] + type_emb[types or 0], N = B*T; ids already range-checked;
 * type_emb NULL: the architecture has no token types (word + pos) */
void cl_embed_forward(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                      const float *word_emb, const float *pos_emb, const float *type_emb, int N, int H);
/* d(word_emb) (V, H) += scatter(dout) (only used by tests; the encoder's embeddings are frozen) */
void cl_embed_backward_word(float *dword, const float *dout, const int32_t *ids, int N, int H);

/* ---- layer norm ------------------------------------------------------------------------------------------- */
/* out (N, C) = (inp - mean) * rstd * w + b; mean, rstd (N) saved for backward (may be NULL in inference) */
void cl_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                          int N, int C, float eps);
/* fused: inp (N, C) = resid + dropout(x) is written (kept for backward), then out = layernorm(inp) */
void cl_residual_layernorm_forward(float *out, float *mean, float *rstd, float *inp, const float *resid,
                                   const float *x, const cl_dropout *drop, const float *w, const float *b, int N,
                                   int C, float eps);
/* dinp (N, C) += ; dw, db (C) += (either may be NULL: frozen) */
void cl_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                           const float *mean, const float *rstd, int N, int C);

/* ---- linear (y = x W^T + b, W (OC, C) as PyTorch stores it) ----------------------------------------------- */
/* out (N, OC) = inp (N, C) W^T + b (b may be NULL) */
void cl_linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C, int OC);
/* dinp (N, C) += dout W (dinp may be NULL); dw (OC, C) += dout^T inp; db (OC) += colsum(dout) (NULL: frozen) */
void cl_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        int N, int C, int OC);

/* ---- activations ------------------------------------------------------------------------------------------ */
float cl_gelu(float x, cl_act act);
float cl_gelu_grad(float x, cl_act act);
/* out (n) = act(inp); in place allowed */
/* one thread's share: out (n) = act(inp) (out may equal inp); g (n) *= act'(inp) */
void cl_act_row(float *out, const float *inp, size_t n, cl_act act);
void cl_act_grad_row(float *g, const float *inp, size_t n, cl_act act);
void cl_act_forward(float *out, const float *inp, size_t n, cl_act act);
/* dinp (n) += act'(inp) * dout */
/* g[i] *= act'(inp[i]) (vectorised) */
void cl_act_grad_mul(float *g, const float *inp, size_t n, cl_act act);
void cl_act_backward(float *dinp, const float *dout, const float *inp, size_t n, cl_act act);
/* fused: x (N, C) += bias (C), then out = act(x) (x keeps the pre-activation for backward; out may equal x in
 * inference) */
void cl_bias_act_forward(float *out, float *x, const float *bias, int N, int C, cl_act act);
/* out (n) = tanh(inp) */
void cl_tanh_forward(float *out, const float *inp, size_t n);
/* dinp (n) += (1 - out^2) * dout */
void cl_tanh_backward(float *dinp, const float *dout, const float *out, size_t n);

/* ---- multi-head self-attention ---------------------------------------------------------------------------- */
/* q, k, v, out (B*T, NH*HS) with heads side by side (PyTorch's layout before the head split);
 * att (B, NH, T, T): softmax(q k^T / sqrt(HS) + bias) over the first len[b] keys (later keys get exactly 0, as the
 * additive finfo.min mask of transformers gives), saved for backward (pre-dropout). att may be NULL (inference,
 * or training whose backward recomputes it), then scratch is used. scratch: nthreads * T * T floats (the loop runs on at most nthreads threads).
 * out = dropout(att) v.
 * relb: NULL, or a relative-position bias (NH, 2T - 1) added after the scaling (MPNet): the bias of query i, key j
 * in head h is relb[h * (2T - 1) + (j - i) + T - 1]. It is frozen (no gradient). cl_rel_bias_table builds it. */
void cl_attention_forward(float *out, float *att, float *scratch, const float *q, const float *k, const float *v,
                          const float *relb, const int32_t *len, int B, int T, int NH, int HS,
                          const cl_dropout *drop, int nthreads);
/* relb (NH, 2T - 1) from the model's relative_attention_bias (buckets, NH): relb[h][d + T - 1] =
 * w[bucket(d), h] for d = j - i in [-(T-1), T-1] */
void cl_rel_bias_table(float *relb, const float *w, int T, int NH, int buckets, int max_distance);
/* dq, dk, dv (B*T, NH*HS) += . att: the forward's probabilities, or NULL: each head's are recomputed here from q, k
 * and relb by the forward's own code (the same bits), which saves B NH T T floats a layer for about 1% more work.
 * scratch: nthreads * 2 * T * T floats, 3 * T * T with att NULL. */
void cl_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *q,
                           const float *k, const float *v, const float *att, const float *relb, const int32_t *len,
                           int B, int T, int NH, int HS, const cl_dropout *drop, int nthreads);

/* ---- losses (mean over the batch, as torch's CrossEntropyLoss / MSELoss) ---------------------------------- */
/* logits (B, L), labels (B) in [0, L): returns the mean loss; dlogits (B, L) += scale * d(loss)/d(logits) when
 * not NULL */
double cl_crossentropy_forward_backward(float *dlogits, const float *logits, const int32_t *labels, int B, int L,
                                        float scale);
/* logits (B, 1), targets (B) */
double cl_mse_forward_backward(float *dlogits, const float *logits, const float *targets, int B, float scale);
/* BCEWithLogitsLoss (mean over all n = B * L elements): logits (n), targets (n) in [0, 1];
 * loss = mean(max(x, 0) - x y + log(1 + exp(-|x|))), d/dx = (sigmoid(x) - y) / n */
double cl_bce_logits_forward_backward(float *dlogits, const float *logits, const float *targets, size_t n,
                                      float scale);

#endif
