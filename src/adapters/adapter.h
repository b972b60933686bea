/* Adapter methods behind one interface: LoRA, CondLoRA, SaLoRA, AdaLoRA (mathematics: ../shared/docs/METHODS.md).
 * The encoder only sees the cl_lin_hook returned by cl_adapter_hook (model/hook.h); it never knows the method.
 *
 * Training step, in order (one optimizer step, possibly several micro-batches):
 *   cl_adapter_materialise(ad)                       once per optimizer step, after the parameters changed
 *                                                    (CondLoRA builds A_l = ThA W^T, B_l = W ThB^T for every layer;
 *                                                    SaLoRA/AdaLoRA/LoRA: nothing to do)
 *   for each micro-batch:
 *     cl_adapter_begin_batch(ad, B, S, seed)          dropout masks and SaLoRA gate noise are pure functions of
 *                                                    (seed, layer, module, element): backward regenerates them
 *     encoder forward (hook->forward, train = 1) + backward (hook->backward: gradients accumulate += into the
 *                                                    cl_params grad array; CondLoRA folds each layer's dA_l, dB_l
 *                                                    into dThA, dThB immediately, so there is no "finish" call)
 *     cl_adapter_extra_loss(ad, scale)               regularisers (SaLoRA L0 Lagrangian + orthogonality, AdaLoRA
 *                                                    orthogonality): returns the value, adds scale * gradient
 *   clip, cl_params_adamw_step
 *   cl_adapter_post_step(ad, step, total_steps)     after the optimizer step, BEFORE zeroing gradients (AdaLoRA
 *                                                    reads |p * grad| as PEFT's update_and_allocate does; SaLoRA
 *                                                    updates its Lagrange multipliers by gradient ascent)
 *   cl_params_zero_grad
 *
 * Parameter names in cl_params are PEFT's saved names, e.g.
 *   base_model.model.roberta.encoder.layer.3.attention.self.query.lora_A.weight   (r, d_in)
 *   base_model.model.roberta.encoder.layer.3.attention.self.query.lora_B.weight   (d_out, r)
 *   ...query.lora_E                   (r, 1)   AdaLoRA singular values
 *   ...query.salora_log_alpha         (r)      SaLoRA gate logits (part "gate")
 *   condlora.query.theta_A / theta_B  (r, d)   CondLoRA maps, shared by all layers (also condlora.theta_x, (r, d),
 *                                              and condlora.query.w_x (d) for the use_x variants)
 *   base_model.model.classifier.dense.weight ... the head (see cl_head_register)
 *
 * Constants (each also documented where it is used):
 *   LoRA      s = alpha / r (rsLoRA: alpha / sqrt r); A ~ U(-1/sqrt(d_in), 1/sqrt(d_in)) (kaiming_uniform a=sqrt 5),
 *             B = 0; dropout on the low-rank path only (inverted, p = dropout).
 *   CondLoRA  ThA ~ U(-1/sqrt(d), 1/sqrt(d)), ThB = 0; use_x lambda_x = 0.5 (released code), Thx = 0, w_x = 0.
 *             Dropout: applied to x on the low-rank path only (as PEFT LoRA); the released code also drops the
 *             frozen path's input (0 in every paper run, so the two agree there).
 *             Non-square targets (intermediate.dense, output.dense) are refused: the maps A_l = ThA W^T and
 *             B_l = W ThB^T only type-check for square W and [P1] defines nothing else.
 *   SaLoRA    hard-concrete gates [L0]: gamma = -0.1, zeta = 1.1, beta = 2/3, u ~ U(1e-6, 1 - 1e-6);
 *             log_alpha initialised to 3.0 (P(gate != 0) = 0.99, evaluation gate = 1: starts as full-rank LoRA);
 *             expected-L0 fraction e = sum_i P(z_i != 0) / (total rank); target t(step) = 1 - (1 - budget) *
 *             min(1, step / (warmup * total_steps)) with warmup = 0.3 by default; Lagrangian
 *             lambda1 (e - t) + lambda2 (e - t)^2, both multipliers start at 0 and rise by gradient ascent in
 *             post_step: lambda1 += lambda_lr (e - t), lambda2 += lambda_lr (e - t)^2, lambda_lr = 0.01 by default;
 *             orthogonality weight 0.1 (default) times the mean over modules of
 *             ||A A^T - I||_F^2 + ||B^T B - I||_F^2; s = alpha / r as LoRA; A, B initialised as LoRA.
 *   AdaLoRA   PEFT 0.10: scaling = alpha (alpha > 0), delta = x (A * E)^T B^T * scaling / (r + 1e-5);
 *             A, B, E ~ N(0, 0.02); r is PEFT's init_r (12 in its default), target_r 8; EMAs beta1 = beta2 = 0.85;
 *             orth_reg_weight 0.5 on the mean over A and B matrices of ||cov - I||_F (not squared); budget cubic
 *             from init to target between tinit and total_steps - tfinal, masking every deltaT steps. */
#ifndef CL_ADAPTER_H
#define CL_ADAPTER_H
#include <stdint.h>
#include <stdio.h>
#include "adapters/params.h"
#include "core/error.h"
#include "model/encoder.h" /* cl_head_grads */
#include "model/hook.h"
#include "model/model.h"

typedef enum { CL_METHOD_LORA = 0, CL_METHOD_CONDLORA, CL_METHOD_SALORA, CL_METHOD_ADALORA, CL_METHOD_COUNT } cl_method;
extern const char *const cl_method_names[CL_METHOD_COUNT]; /* "lora", "condlora", "salora", "adalora" */
int cl_method_parse(const char *name, cl_method *out, cl_error *err); /* message names option "method" */

typedef struct {
    cl_method method;
    const char *target_modules; /* comma-separated PEFT names; NULL or "" = "query,value" */
    const char *layers;         /* NULL or "" = all; else comma-separated indices or ranges "0-5,11" */
    int r;                      /* rank (AdaLoRA: init_r) */
    float alpha;                /* lora_alpha (> 0) */
    float dropout;              /* lora_dropout in [0, 1) */
    int rslora;                 /* s = alpha / sqrt(r) instead of alpha / r (LoRA, SaLoRA, CondLoRA) */
    /* CondLoRA */
    int condlora_paper;         /* 1: B_l = W^T ThB^T (Eq. 6 of [P1]); 0: released code B_l = W ThB^T */
    int condlora_use_x;         /* 0 none, 1 "type1", 2 "type2" (released-code variants, METHODS.md 2) */
    float condlora_lambda_x;    /* 0.5 */
    /* SaLoRA */
    float salora_budget;        /* target fraction of the total rank kept, in (0, 1] */
    float salora_warmup;        /* fraction of total steps over which the target falls from 1 to budget (0.3) */
    float salora_lambda_lr;     /* gradient-ascent rate of the Lagrange multipliers (0.01) */
    float salora_orth;          /* orthogonality weight (0.1) */
    float salora_log_alpha_init;/* 3.0 */
    /* AdaLoRA (PEFT AdaLoraConfig) */
    int ada_target_r;           /* 8 */
    int ada_tinit, ada_tfinal, ada_deltaT; /* 0, 0, 1 */
    float ada_beta1, ada_beta2; /* 0.85, 0.85 */
    float ada_orth;             /* orth_reg_weight 0.5 */
    /* Per-module rank and alpha (LoRA only: PEFT's rank_pattern / alpha_pattern / regex target_modules, see
     * adapters/peft_io.h). NULL: r and alpha on target_modules x layers. Else mod_rank[l * CL_MOD_COUNT + m]
     * (num_layers * CL_MOD_COUNT entries) > 0 adapts (layer l, module m) with that rank, 0 leaves it alone
     * (target_modules and layers are then not used); mod_alpha (NULL: alpha everywhere) is each module's lora_alpha:
     * s = alpha_m / r_m (rsLoRA: alpha_m / sqrt r_m). Read by cl_adapter_create only. */
    const int *mod_rank;
    const float *mod_alpha;
} cl_adapter_opts;

/* Defaults for METHOD (r = 8, alpha = 8, dropout 0, query+value of all layers; AdaLoRA r = 12, target 8). */
void cl_adapter_opts_default(cl_adapter_opts *o, cl_method method);

typedef struct cl_adapter cl_adapter;

/* Validates the options against the model (messages name the option: "r", "lora_alpha", "lora_dropout",
 * "target_modules", "layers", "salora_budget", "ada_target_r", ...). The adapter keeps a pointer to the model. */
int cl_adapter_create(cl_adapter **out, const cl_adapter_opts *o, cl_weights *model, cl_error *err);
void cl_adapter_free(cl_adapter *ad);
cl_method cl_adapter_method(const cl_adapter *ad);
/* Registers the adapter's tensors (PEFT names, see above) in P; call before cl_params_alloc. */
int cl_adapter_register(cl_adapter *ad, cl_params *p, cl_error *err);
/* After cl_params_alloc: resolves pointers into P (and allocates method state: CondLoRA's materialised A_l, B_l,
 * AdaLoRA's importance EMAs). Also runs materialise. */
int cl_adapter_bind(cl_adapter *ad, cl_params *p, cl_error *err);
/* Writes initial values (see constants above) from a seeded RNG, then materialises. */
void cl_adapter_init(cl_adapter *ad, uint64_t seed);
void cl_adapter_materialise(cl_adapter *ad);
/* Batch geometry and randomness of the next forward/backward pair (B sequences of S tokens, T = B*S rows). */
/* Reserves scratch for T = B * S rows (the hook grows it on demand when not called; failures are then reported by
 * cl_adapter_check). */
int cl_adapter_begin_batch(cl_adapter *ad, int B, int S, uint64_t seed, cl_error *err);
/* After begin_batch: the batch is rows row0.. of a larger batch of the same S (a data-parallel shard), so that the
 * adapter's dropout masks are those rows' masks of the larger batch. */
void cl_adapter_set_row0(cl_adapter *ad, uint64_t row0);
/* Non-zero (with the message) when a hook call could not allocate its scratch since the last check. */
int cl_adapter_check(cl_adapter *ad, cl_error *err);
cl_lin_hook cl_adapter_hook(cl_adapter *ad);
/* Adds scale * d(extra)/d(theta) to the gradients and returns the extra loss value (0 for LoRA, CondLoRA). */
double cl_adapter_extra_loss(cl_adapter *ad, float scale);
void cl_adapter_post_step(cl_adapter *ad, int64_t step, int64_t total_steps);
/* W += delta (from the pristine W, which is kept); unmerge restores the saved W bit for bit. While merged the hook
 * adds nothing (adapted() returns 0). */
int cl_adapter_merge(cl_adapter *ad, cl_error *err);
int cl_adapter_unmerge(cl_adapter *ad, cl_error *err);
int cl_adapter_is_merged(const cl_adapter *ad);

/* Training state outside cl_params, for checkpoints that resume exactly: the schedule position given to the last
 * post_step, SaLoRA's Lagrange multipliers, AdaLoRA's importance EMAs, budget and rank pattern. n doubles. */
size_t cl_adapter_state_size(const cl_adapter *ad);
void cl_adapter_state_get(const cl_adapter *ad, double *out);
void cl_adapter_state_set(cl_adapter *ad, const double *in);

/* Export: one callback per tensor with PEFT key names (...layer.L.attention.self.query.lora_A.weight and lora_B;
 * AdaLoRA also lora_E). CondLoRA exports the materialised per-layer A_l, B_l (a plain PEFT LoRA with the same
 * scaling). SaLoRA exports only the kept components (evaluation gate > 0): A rows and B columns times the gate;
 * *rank_out receives the learned rank for the rank_pattern. */
typedef int (*cl_tensor_cb)(void *user, const char *name, int ndim, const int64_t *shape, const float *data,
                            cl_error *err);
int cl_adapter_export(cl_adapter *ad, cl_tensor_cb cb, void *user, cl_error *err);
/* ranks[l * CL_MOD_COUNT + m]: effective rank of (layer l, module m): r for LoRA/CondLoRA, SaLoRA components with
 * evaluation gate > 0, AdaLoRA non-zero E entries; -1 where not adapted. Returns the total. */
int cl_adapter_ranks(const cl_adapter *ad, int *ranks);
/* the sum of the ranks every adapted module was created with (the most cl_adapter_ranks can return) */
int cl_adapter_full_rank(const cl_adapter *ad);
/* Human-readable per-module learned-rank report (SaLoRA/AdaLoRA "structure"; the rank for the others). */
void cl_adapter_rank_report(const cl_adapter *ad, FILE *f);
/* Scalar summary for logs: SaLoRA expected-L0 fraction, target and multipliers; 0 otherwise. */
typedef struct { double expected_frac, target_frac, lambda1, lambda2; int budget; } cl_adapter_stats;
void cl_adapter_stats_get(const cl_adapter *ad, cl_adapter_stats *s);
/* AdaLoRA's budget schedule (RankAllocator.budget_schedule): the budget at STEP and whether to mask. */
int cl_adalora_schedule(const cl_adapter *ad, int64_t step, int64_t total, int *mask_ind);
/* PEFT module path prefix of (layer, m), e.g. "base_model.model.roberta.encoder.layer.3.attention.self.query". */
void cl_adapter_module_path(const cl_weights *model, int layer, cl_module m, char *buf, size_t n);

/* ---- classification head in the trainable buffer ---------------------------------------------------------
 * PEFT 0.10 SEQ_CLS trains modules_to_save = {"classifier", "score"}: RoBERTa classifier.dense + out_proj, BERT
 * classifier (= head_out); the BERT pooler stays frozen unless train_pooler (PEFT modules_to_save "pooler", saved as
 * base_model.model.bert.pooler.dense.weight / .bias): BERT's pooler dense + tanh + classifier is the same head as
 * RoBERTa's classifier.dense + tanh + out_proj, which the paper trains. train_pooler is ignored for RoBERTa. */
typedef struct {
    int present[4];        /* dense.w, dense.b, out.w, out.b */
    size_t off[4];
} cl_head_params;
int cl_head_register(cl_params *p, const cl_weights *model, int train_pooler, cl_head_params *h, cl_error *err);
/* The head's dense layer: RoBERTa classifier.dense, BERT pooler.dense (NULL when absent). */
cl_linear *cl_head_dense(cl_weights *model);
/* Copies the model's head values into P and re-points model->head_dense / head_out at P, so the optimizer updates
 * them in place; fills the gradient pointers the encoder accumulates into. */
void cl_head_bind(cl_params *p, cl_weights *model, const cl_head_params *h, cl_head_grads *g);

#endif
