/* bf16 mode (`--precision bf16`): the encoder's frozen per-layer linear weights as packed bf16 copies, an
 * AVX512_BF16 matrix product with fp32 accumulation for them and for attention's batched products, and vectorised
 * forms of the element-wise ops the encoder runs in that mode.
 *
 * What is bf16. The operands of the products: the six linear layers of each encoder layer (forward y = x W^T and
 * backward dx = dy W; W was rounded once, x and dy are rounded as each product packs them) and attention's q k^T,
 * P v and the four products of its backward. Rounding is to nearest even as VCVTNE2PS2BF16 does it (denormals
 * flush to zero); the products of two bf16 are exact in fp32 and VDPBF16PS accumulates pairs of them in fp32, so a
 * result is the exact dot product of the rounded operands up to fp32 summation error. Activations are stored in
 * fp32, and everything else stays fp32: embeddings, layer norms, softmax, GELU, dropout, the adapters (LoRA's and
 * CondLoRA's products through OpenBLAS, CondLoRA's A_l = ThA W^T from the fp32 W it keeps), the pooler and head,
 * the optimizer and its state.
 *
 * Layouts. A packed weight (OC outputs, C inputs) holds ceil(OC / 48) panels of 48 outputs; a panel stores for
 * every input pair p the 48 pairs (W[j][2p], W[j][2p+1]) side by side (3 vectors of 16 lanes x 2 bf16), zeros past
 * OC and C. The product's input is converted per call into row-major bf16 pairs (a scratch the caller owns) and
 * the 8 x 48 micro-kernel broadcasts a pair of each of 8 rows against the 3 weight vectors (24 accumulators). dx =
 * dy W contracts over OC, and VDPBF16PS pairs elements along the contracted dimension, so W is packed a second
 * time transposed (pairs along OC) for training: the same kernel runs on it. Blocking and measured speed:
 * gemm_bf16.c.
 *
 * The kernels carry target attributes, so the file builds whatever -march says; cl_bf16_supported() checks the
 * CPU at run time, and nothing here but cl_bf16_supported, cl_bf16_round, cl_bf16_pack*, cl_precision_parse and
 * the model functions may be called when it returns 0 (cl_model_to_bf16 then refuses with a message naming the
 * missing instruction set, so the encoder never reaches them). */
#ifndef CL_GEMM_BF16_H
#define CL_GEMM_BF16_H
#include <stddef.h>
#include <stdint.h>
#include "core/error.h"
#include "model/hook.h"
#include "model/model.h"
#include "model/ops.h"

/* A weight packed for out = inp W^T: OC outputs, C inputs (the contracted dimension). */
struct cl_bf16_w {
    uint16_t *data; /* cl_bf16_pack_elems(OC, C) bf16 values */
    int OC, C;
};

/* 1 when the CPU has AVX512F, AVX512BW, AVX512VL and AVX512_BF16 (0 when CONDLORA_NO_BF16 is set: tests of the
 * message a CPU without them gives) */
int cl_bf16_supported(void);
/* 1 when the products of the weights also run on AMX tiles (AMX-TILE + AMX-BF16, granted by the kernel; 0 when
 * CONDLORA_NO_AMX is set) */
int cl_bf16_amx(void);

/* bf16 values a packed (OC, C) weight takes */
size_t cl_bf16_pack_elems(int OC, int C);
/* Packs into buf (cl_bf16_pack_elems values, 64-byte aligned) and describes it in dst.
 * transpose = 0: w is (rows, cols) = (OC, C), for out = inp w^T (a linear layer's forward);
 * transpose = 1: w is (rows, cols) = (C, OC), for out = inp w (a linear layer's dx = dy W, with W (rows, cols)).
 * Multithreaded (OpenMP). */
void cl_bf16_pack(cl_bf16_w *dst, uint16_t *buf, const float *w, int rows, int cols, int transpose);

/* uint32 scratch values cl_bf16_gemm needs for N rows of C inputs (inp rounded to bf16 pairs, row-major) */
size_t cl_bf16_ws_elems(int N, int C);
/* out (N, OC) = inp (N, C) W^T + bias (accumulate = 0) or out += inp W^T + bias (accumulate = 1); bias (OC) may be
 * NULL. ws: cl_bf16_ws_elems(N, C) uint32, 64-byte aligned. Threads: OpenMP's (omp_get_max_threads()). */
void cl_bf16_gemm(float *out, const float *inp, const cl_bf16_w *w, const float *bias, int N, int accumulate,
                  uint32_t *ws);

/* bf16 mode's attention: cl_attention_forward / cl_attention_backward (model/ops.h: same arguments and semantics,
 * the same dropout masks) with the products q k^T, P v and the four of the backward in bf16 with fp32
 * accumulation (q, k, v, the probabilities and the gradients rounded to bf16 as they are packed, per head), and
 * the element-wise work (softmax and its backward in fp32, the dropout masks) vectorised with AVX-512. scratch:
 * nthreads * cl_bf16_attention_scratch(T, HS) floats, 64-byte aligned (forward and backward alike). */
size_t cl_bf16_attention_scratch(int T, int HS);
void cl_bf16_attention_forward(float *out, float *att, float *scratch, const float *q, const float *k,
                               const float *v, const float *relb, const int32_t *len, int B, int T, int NH, int HS,
                               const cl_dropout *drop, int nthreads);
void cl_bf16_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *q,
                                const float *k, const float *v, const float *att, const int32_t *len, int B, int T,
                                int NH, int HS, const cl_dropout *drop, int nthreads);

/* bf16 mode's element-wise ops: cl_dropout_forward, cl_residual_layernorm_forward and cl_layernorm_backward
 * (model/ops.h, frozen LayerNorm: no dw, db) vectorised with AVX-512: the same masks, the statistics summed in fp32
 * lanes rather than scalar doubles. */
void cl_bf16_dropout_forward(float *y, const float *x, size_t n, const cl_dropout *d);
void cl_bf16_residual_layernorm_forward(float *out, float *mean, float *rstd, float *inp, const float *resid,
                                        const float *x, const cl_dropout *drop, const float *w, const float *b,
                                        int N, int C, float eps);
void cl_bf16_layernorm_backward(float *dinp, const float *dout, const float *inp, const float *w, const float *mean,
                                const float *rstd, int N, int C);

/* bf16 mode's saved FFN pre-activation: x (N, C) += bias (may be NULL), pre16 = bf16(x), out = act(x) (out may
 * equal x); and its backward g (n) *= act'(pre16). */
void cl_bf16_bias_act_store(float *out, uint16_t *pre16, float *x, const float *bias, int N, int C, cl_act act);
void cl_bf16_act_grad_mul16(float *g, const uint16_t *pre16, size_t n, cl_act act);

/* Round to bf16 (nearest even, denormals to zero, NaN kept quiet) and back: what the kernel does to its inputs. */
float cl_bf16_round(float x);

/* ---- a model in bf16 mode --------------------------------------------------------------------------------- */
typedef struct {
    int backward; /* also pack W^T (dx = dy W): training through the encoder layers (adapters) */
    /* non-NULL: layers/modules for which the fp32 W stays available (keep(ctx, layer, module) != 0), e.g.
     * CondLoRA's targets (A_l = ThA W^T is materialised from the fp32 W); every other converted W is released */
    int (*keep)(void *ctx, int layer, cl_module m);
    void *keep_ctx;
    int keep_all; /* keep every fp32 W (tests, tools that still read W) */
} cl_bf16_opts;

/* cl_bf16_opts.keep for an adapter whose method reads the fp32 W of its targets (CondLoRA): ctx is the adapter's
 * cl_lin_hook, keep = adapted(layer, m) */
int cl_bf16_keep_adapted(void *hook, int layer, cl_module m);

/* Converts the 6 linear layers of every encoder layer to packed bf16 (layers[l].w16[k], and w16t[k] with
 * o->backward); the
 * encoder then runs them with cl_bf16_gemm. A released fp32 W has lin[k].w == NULL afterwards and its memory is
 * given back to the system page by page as each matrix is packed (a copy-on-write file mapping re-reads from the
 * file, nothing is written there). Embeddings, layer norms, biases, pooler and head stay fp32. Call it after the
 * adapters are created (cl_adapter_create checks the W it adapts exists) and before cl_encoder_new. Errors: the CPU
 * lacks AVX512_BF16 (CL_EUNSUP), out of memory, already converted. */
int cl_model_to_bf16(cl_weights *m, const cl_bf16_opts *o, cl_error *err);
/* frees the packed copies (cl_model_free calls it) */
void cl_model_bf16_free(cl_weights *m);
/* bytes held by the packed copies (0 in fp32 mode) */
size_t cl_model_bf16_bytes(const cl_weights *m);

/* "fp32" / "bf16" <-> 0 / 1 for the command-line option --precision (message names the option) */
int cl_precision_parse(const char *s, int *bf16, cl_error *err);

#endif
