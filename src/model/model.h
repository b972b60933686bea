/* Model configuration and weights of a BERT or RoBERTa encoder with an optional sequence-classification head,
 * loaded from a Hugging Face model directory (config.json + model.safetensors or a sharded index).
 * Weights are fp32, row-major with PyTorch's layout: a linear layer stores W as (d_out, d_in), y = x W^T + b. */
#ifndef CL_MODEL_H
#define CL_MODEL_H
#include <stdint.h>
#include "core/error.h"

typedef enum { CL_ARCH_BERT = 0, CL_ARCH_ROBERTA = 1 } cl_arch;
typedef enum { CL_ACT_GELU = 0 /* exact erf form */, CL_ACT_GELU_TANH, CL_ACT_RELU } cl_act;

typedef struct {
    cl_arch arch;
    char model_type[32];        /* "bert" or "roberta" (also accepted: "xlm-roberta", "camembert" as roberta) */
    int vocab_size, hidden_size, num_layers, num_heads, intermediate_size;
    int max_position, type_vocab_size, pad_token_id;
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
/* Parameters of the embeddings + layers for this config (what cl_model's n_params_encoder will be), by formula. */
uint64_t cl_config_n_params_encoder(const cl_config *c);

/* Linear-layer module types, in the order of a layer's forward pass. Names are PEFT's target-module names. */
typedef enum {
    CL_MOD_QUERY = 0, CL_MOD_KEY, CL_MOD_VALUE, CL_MOD_ATTN_OUT, CL_MOD_INTER, CL_MOD_OUT, CL_MOD_COUNT
} cl_module;
extern const char *const cl_module_names[CL_MOD_COUNT];
/* "query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense" */
int cl_module_parse(const char *name, cl_module *out); /* 0 on success */

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

typedef enum { CL_HEAD_NONE = 0, CL_HEAD_ROBERTA, CL_HEAD_BERT } cl_head_kind;

typedef struct {
    cl_config cfg;
    float *word_emb;   /* (vocab_size, H) */
    float *pos_emb;    /* (max_position, H) */
    float *type_emb;   /* (type_vocab_size, H) */
    float *emb_ln_w, *emb_ln_b;
    cl_layer_weights *layers; /* num_layers */
    cl_linear pooler;  /* BERT pooler dense (H, H); w == NULL when absent */
    /* Classification head. RoBERTa: dense (H,H) + tanh + out_proj (L,H) on token 0.
     * BERT: pooler (above) + tanh, then classifier = head_out (L,H); head_dense unused. */
    cl_head_kind head;
    int head_from_file;  /* 1 when the head was read from the checkpoint, 0 when freshly initialised */
    cl_linear head_dense, head_out;
    uint64_t n_params_encoder; /* embeddings + layers (no pooler, no head) */
    uint64_t n_params_total;   /* everything loaded/initialised */
    void *priv;                /* loader-owned storage (mappings, buffers) */
    void *bf16;                /* bf16 mode: storage of the packed weights (cl_model_to_bf16); NULL in fp32 mode */
} cl_model;

typedef struct {
    int num_labels;     /* > 0: make sure a head for this many labels exists (re-initialise on mismatch); 0: keep */
    uint64_t head_seed; /* seed for a newly initialised head (normal(0, 0.02) weights, zero bias, as transformers) */
    int verbose;        /* report missing / unexpected tensors on stderr */
} cl_load_opts;

/* Loads DIR (config.json + model.safetensors | model.safetensors.index.json). Tensor names with or without the
 * "roberta." / "bert." prefix are accepted; every tensor is shape-checked against the config; missing and unexpected
 * tensors are reported by name. */
int cl_model_load(cl_model *m, const char *dir, const cl_load_opts *opts, cl_error *err);
/* A model with random weights of the config's shapes (benchmarks, tests): normal(0, 0.02), LayerNorm 1/0. */
int cl_model_init_random(cl_model *m, const cl_config *cfg, cl_head_kind head, int num_labels, uint64_t seed,
                         cl_error *err);
void cl_model_free(cl_model *m);

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
const cl_load_report *cl_model_load_report(const cl_model *m);

#endif
