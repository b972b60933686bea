/* Model configuration and weights of a BERT, RoBERTa or MPNet encoder with an optional sequence-classification head,
 * loaded from a Hugging Face model directory (config.json + model.safetensors or a sharded index). How each
 * architecture is spelled (tensor names, head, positions) lives in model/arch.h.
 * Weights are fp32, row-major with PyTorch's layout: a linear layer stores W as (d_out, d_in), y = x W^T + b. */
#ifndef CL_MODEL_H
#define CL_MODEL_H
#include <stdint.h>
#include "core/error.h"
#include "model/arch.h"

typedef enum { CL_ACT_GELU = 0 /* exact erf form */, CL_ACT_GELU_TANH, CL_ACT_RELU } cl_act;

typedef struct {
    cl_arch arch;
    char model_type[32];        /* as config.json names it: one of the table's model_types (model/arch.h) */
    int vocab_size, hidden_size, num_layers, num_heads, intermediate_size;
    int max_position, type_vocab_size /* 0: the architecture has no token types */, pad_token_id;
    int rel_buckets;            /* relative-attention bias buckets (MPNet 32), 0: none */
    float layer_norm_eps;
    cl_act act;
    float hidden_dropout, attention_dropout, classifier_dropout; /* classifier_dropout < 0: use hidden_dropout */
    int num_labels;             /* from num_labels or id2label; 0 when the config names none */
    char **id2label;            /* num_labels strings, or NULL */
    char problem_type[48];      /* "", "regression", "single_label_classification" */
} cl_config;

int cl_config_load(cl_config *c, const char *path, cl_error *err);
int cl_config_parse(cl_config *c, const char *json, size_t len, const char *name, cl_error *err);
void cl_config_free(cl_config *c);
/* Parameters of the embeddings + layers for this config (what cl_weights's n_params_encoder will be), by formula. */
uint64_t cl_config_n_params_encoder(const cl_config *c);

typedef struct cl_bf16_w cl_bf16_w; /* a packed bf16 weight (model/gemm_bf16.h) */

typedef struct {
    float *w;   /* (d_out, d_in); NULL for an encoder layer's W released by cl_model_to_bf16 (bf16 mode) */
    float *b;   /* (d_out) */
    int d_out, d_in;
} cl_linear;

typedef struct {
    cl_linear lin[CL_MOD_COUNT];
    float *ln1_w, *ln1_b; /* attention.output.LayerNorm (H) */
    float *ln2_w, *ln2_b; /* output.LayerNorm (H) */
    /* bf16 mode (cl_model_to_bf16, model/gemm_bf16.h): lin[k]'s W packed for y = x W^T (w16) and W^T for
     * dx = dy W (w16t); NULL in fp32 mode (w16t also when the model was converted for inference only) */
    const cl_bf16_w *w16[CL_MOD_COUNT], *w16t[CL_MOD_COUNT];
} cl_layer_weights;

typedef struct {
    cl_config cfg;
    float *word_emb;   /* (vocab_size, H) */
    float *pos_emb;    /* (max_position, H) */
    float *type_emb;   /* (type_vocab_size, H); NULL when the architecture has no token types */
    float *rel_bias;   /* (rel_buckets, num_heads) shared relative-attention bias (MPNet); NULL otherwise */
    float *emb_ln_w, *emb_ln_b;
    cl_layer_weights *layers; /* num_layers */
    cl_linear pooler;  /* BERT pooler dense (H, H); w == NULL when absent */
    /* Classification head (model/arch.h cl_head_layout). CL_HEAD_DENSE: dense (H,H) + tanh + out_proj (L,H) on
     * token 0. CL_HEAD_POOLER: pooler (above) + tanh, then classifier = head_out (L,H); head_dense unused. */
    cl_head_kind head;
    int head_from_file;  /* 1 when the head was read from the checkpoint, 0 when freshly initialised */
    cl_linear head_dense, head_out;
    uint64_t n_params_encoder; /* embeddings + layers (no pooler, no head) */
    uint64_t n_params_total;   /* everything loaded/initialised */
    void *priv;                /* loader-owned storage (mappings, buffers) */
    void *bf16;                /* bf16 mode: storage of the packed weights (cl_model_to_bf16); NULL in fp32 mode */
} cl_weights;

typedef struct {
    int num_labels;     /* > 0: make sure a head for this many labels exists (re-initialise on mismatch); 0: keep */
    uint64_t head_seed; /* seed for a newly initialised head (normal(0, 0.02) weights, zero bias, as transformers) */
    int verbose;        /* report unexpected tensors and notes through cl_log (core/log.h) */
} cl_load_opts;

/* Loads DIR (config.json + model.safetensors | model.safetensors.index.json). Tensor names with or without the
 * "roberta." / "bert." prefix are accepted; every tensor is shape-checked against the config; missing and unexpected
 * tensors are reported by name. */
int cl_model_load(cl_weights *m, const char *dir, const cl_load_opts *opts, cl_error *err);
/* A model with random weights of the config's shapes (benchmarks, tests): normal(0, 0.02), LayerNorm 1/0. */
int cl_model_init_random(cl_weights *m, const cl_config *cfg, cl_head_kind head, int num_labels, uint64_t seed,
                         cl_error *err);
void cl_model_free(cl_weights *m);

/* What cl_model_load found, for `condlora inspect` and diagnostics (owned by the model; valid until cl_model_free;
 * NULL for a model from cl_model_init_random). Names are as written in the checkpoint (unexpected) or in the
 * transformers naming without prefix (missing: optional tensors that were absent, e.g. a pooler or head that was
 * freshly initialised; a missing encoder tensor is an error, not an entry here). notes: one line per decision the
 * loader took (head initialised, pooler initialised, dtype converted). */
typedef struct {
    int n_files;                 /* safetensors files read (1, or the shards of an index) */
    const char *const *files;
    char dtype[16];              /* source dtype of the weights: "F32", "F16", "BF16", "F64" or "mixed" */
    int n_missing, n_unexpected, n_notes;
    const char *const *missing;
    const char *const *unexpected;
    const char *const *notes;
    uint64_t n_inplace;          /* tensors used in place from the copy-on-write mapping (not copied) */
} cl_load_report;
const cl_load_report *cl_model_load_report(const cl_weights *m);

/* ---- the model through the architecture table (model/arch.c) ---- */
const cl_arch_desc *cl_model_arch(const cl_weights *m);
/* positions' padding_idx (RoBERTa, MPNet), or -1 when positions are 0..T-1 (BERT) */
int cl_config_position_pad(const cl_config *c);
/* the longest sequence the position table allows */
int cl_config_max_tokens(const cl_config *c);
/* the head's dense layer: classifier.dense (CL_HEAD_DENSE) or the pooler (CL_HEAD_POOLER); NULL when absent */
cl_linear *cl_model_head_dense(cl_weights *m);
/* "bert.encoder.layer.3.attention.self.query": module (layer, mod) as named in *ForSequenceClassification */
void cl_model_module_path(const cl_weights *m, int layer, cl_module mod, char *buf, size_t n);
/* k = 0..3: the head's dense weight, dense bias, out weight, out bias, as *ForSequenceClassification names them
 * ("classifier.dense.weight", "bert.pooler.dense.bias", "classifier.weight", ...). -1 without a head. */
int cl_model_head_tensor_name(const cl_weights *m, int k, char *buf, size_t n);

/* Every tensor of the model with its transformers name (without the base prefix; head tensors are never
 * prefixed), shape (shape[0] == -1: the label count, unknown) and the model's pointer to it: the loader's list of
 * expected tensors and the writer's list of tensors to save. with_pooler: include the base model's pooler. */
typedef enum { CL_TENSOR_ENCODER = 0, CL_TENSOR_POOLER, CL_TENSOR_HEAD } cl_tensor_kind;
typedef struct {
    char name[160];
    float **ptr;
    int ndim;
    int64_t shape[2];
    cl_tensor_kind kind;
} cl_model_tensor;
typedef int (*cl_model_tensor_cb)(void *user, const cl_model_tensor *t);
int cl_model_tensors(cl_weights *m, cl_head_kind head, int with_pooler, cl_model_tensor_cb cb, void *user);

/* Writes M as a Hugging Face *ForSequenceClassification model.safetensors (prefixed names, the pooler when the
 * architecture's classifier keeps it, the relative-attention bias, the head) to PATH, crash-safely; dtype is a
 * cl_dtype (io/safetensors.h): CL_DT_F32, CL_DT_F16 or CL_DT_BF16, rounded to nearest even. (model/save.c) */
int cl_model_save_weights(const cl_weights *m, const char *path, int dtype, cl_error *err);

#endif
