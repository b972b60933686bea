/* The BERT / RoBERTa encoder with its sequence-classification head: forward (inference or training) and backward
 * on CPU, numerically equal to Hugging Face transformers (fp32).
 *
 * Workspace. cl_encoder_new(model, max_B, max_T, train) sizes every buffer once; forward/backward never allocate.
 * A training workspace reserves room for every layer's activations, but a training forward only writes (and so
 * only makes resident) the layers that backward will need: from the lowest layer with an adapted module (or from
 * the embeddings when the input gradient is requested) up. With no hook and no input gradient, a training step is
 * a dropout forward plus the head's backward, like PyTorch with requires_grad=False on the encoder.
 *
 * Batch. B sequences padded to T (the longest in the batch, T <= max_T): ids (B*T int32), token-type ids (B*T or
 * NULL = all 0), len (B): the attention mask is the first len[b] tokens (1 <= len[b] <= T). RoBERTa position ids
 * are computed from ids as transformers does (pads = tokens equal to pad_token_id take padding_idx). An example's
 * outputs do not depend on the other sequences of its batch nor on T.
 *
 * Forward: logits (B, num_labels) and, given labels (int class ids), targets (float, num_labels == 1) or
 * multi_targets (B x num_labels floats in [0, 1]), the mean loss (CrossEntropyLoss, MSELoss or BCEWithLogitsLoss,
 * the mean over all B x num_labels elements, as transformers' *ForSequenceClassification computes them). In training mode
 * dropout is active, drawn from opts.seed (counter-based: same seed, same masks, whatever the thread count).
 * Optional: every layer's hidden states ((num_layers + 1) x B x T x H, embeddings output first, as
 * output_hidden_states=True gives) copied into a caller buffer; nothing is stored for them otherwise.
 *
 * Adapters. For each of the 6 linear modules of each layer (query, key, value, attention.output.dense,
 * intermediate.dense, output.dense) the encoder computes y = x W^T + b and, when hook->adapted(layer, module),
 * calls hook->forward(x, y) to add the adapter's delta (before the GELU for intermediate.dense). Backward calls
 * hook->backward in exactly the reverse order, with the same x pointer (kept alive), after dx = dy W has been
 * accumulated. hook == NULL: plain encoder.
 *
 * Backward(after a training forward): d(loss)/d(logits) scaled by `scale` (1 = the mean loss; use 1/k for k
 * gradient-accumulation steps), through the head into caller gradient buffers (+=), then through the frozen
 * encoder as far down as needed, calling the hook for adapted modules. Threads: OpenMP's (omp_set_num_threads /
 * OMP_NUM_THREADS) for the loops, OpenBLAS's for the large matrix products. */
#ifndef CL_ENCODER_H
#define CL_ENCODER_H
#include <stdint.h>
#include "model/hook.h"
#include "model/model.h"

typedef struct cl_encoder cl_encoder;

typedef struct {
    const int32_t *ids;      /* (B*T) */
    const int32_t *type_ids; /* (B*T) or NULL */
    const int32_t *len;      /* (B) */
    int B, T;
} cl_batch;

typedef struct {
    int train;                 /* dropout on, keep what backward needs */
    uint64_t seed;             /* dropout seed of this step (training) */
    uint64_t row0;             /* the batch is rows row0.. of a larger batch of the same T (a data-parallel shard):
                                  dropout masks are those of those rows of the larger batch */
    const cl_lin_hook *hook;   /* NULL: no adapters */
    const int32_t *labels;     /* (B) class ids in [0, num_labels), or NULL */
    const float *targets;      /* (B) regression targets when num_labels == 1, or NULL */
    const float *multi_targets; /* (B, num_labels) multi-label targets in [0, 1] (BCEWithLogitsLoss, as transformers'
                                   problem_type "multi_label_classification"), or NULL */
    float *hidden_states;      /* ((num_layers + 1) * B * T * H) output, or NULL */
    int need_input_grad;       /* backward also computes d(loss)/d(input embeddings) (word embedding output) */
} cl_fwd_opts;

/* Head gradients, accumulated (+=); a NULL pointer means that tensor is frozen.
 * RoBERTa: dense_* = classifier.dense, out_* = classifier.out_proj.
 * BERT:    dense_* = bert.pooler.dense, out_* = classifier. */
typedef struct {
    float *dense_w, *dense_b; /* (H, H), (H) */
    float *out_w, *out_b;     /* (L, H), (L) */
} cl_head_grads;

/* model must outlive the encoder; train: the workspace can run training forwards and backward. */
int cl_encoder_new(cl_encoder **out, const cl_weights *m, int max_B, int max_T, int train, cl_error *err);
void cl_encoder_free(cl_encoder *e);

/* logits: set to the encoder's (B, num_labels) buffer (NULL when the model has no head); loss: set when labels or
 * targets are given (else NAN); either may be NULL. Errors: bad shapes, ids or lengths (named), training forward on
 * an inference workspace. */
int cl_encoder_forward(cl_encoder *e, const cl_batch *batch, const cl_fwd_opts *opts, const float **logits,
                       float *loss, cl_error *err);
/* Backward of the mean loss of the last training forward (which must have had labels or targets). */
int cl_encoder_backward(cl_encoder *e, float scale, const cl_head_grads *g, cl_error *err);
/* Backward from a caller's d(objective)/d(logits) (B, num_labels) instead of the built-in loss. */
int cl_encoder_backward_logits(cl_encoder *e, const float *dlogits, const cl_head_grads *g, cl_error *err);

/* After forward: the last layer's output (B*T, H). After backward with need_input_grad: d/d(input embeddings)
 * (B*T, H), else NULL. */
const float *cl_encoder_last_hidden(const cl_encoder *e);
const float *cl_encoder_input_grad(const cl_encoder *e);
/* bytes reserved by the workspace */
size_t cl_encoder_workspace_bytes(const cl_encoder *e);

#endif
