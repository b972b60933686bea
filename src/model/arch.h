/* One description per architecture: the only place that knows how BERT, RoBERTa and MPNet are spelled outside
 * condlora (llama.cpp's llama-arch.cpp tensor-name table is the model).
 *
 * Per architecture the table gives the config.json model_type values and class names, the Hugging Face base-model
 * prefix ("bert." in BertForSequenceClassification), every tensor name of the embeddings, of each layer's modules and
 * layer norms, the pooler and the relative-attention bias, PEFT's module names and default target_modules, the
 * classification head's layout, the position-id rule, the config defaults and whether token types exist.
 * The loader, the model writer, the adapters' module paths, PEFT read and write, inspect and the analysis read it;
 * nothing else names an architecture. A lookup that fails is an error, never a fallback to BERT.
 *
 * Adding an architecture: one entry in arch.c's table (plus an enum value here), and its distinct ops, if any, in
 * the encoder (MPNet's were the relative-attention bias). */
#ifndef CL_ARCH_H
#define CL_ARCH_H
#include <stddef.h>
#include <stdint.h>

typedef enum { CL_ARCH_BERT = 0, CL_ARCH_ROBERTA, CL_ARCH_MPNET, CL_ARCH_COUNT } cl_arch;

/* Linear-layer module types, in the order of a layer's forward pass. */
typedef enum {
    CL_MOD_QUERY = 0, CL_MOD_KEY, CL_MOD_VALUE, CL_MOD_ATTN_OUT, CL_MOD_INTER, CL_MOD_OUT, CL_MOD_COUNT
} cl_module;
/* condlora's own (architecture-independent) module names, as --target-modules takes them:
 * "query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense" */
extern const char *const cl_module_names[CL_MOD_COUNT];
/* A module named by condlora's name, a short alias (q, k, v, o, attn_out, ffn_in, ffn_out), or any architecture's
 * tensor path under a layer (attention.self.query, attention.attn.q, ...). 0 on success. */
int cl_module_parse(const char *name, cl_module *out);

/* The sequence-classification head's layout (which tensors, where dropout goes). */
typedef enum {
    CL_HEAD_NONE = 0,
    CL_HEAD_DENSE,  /* RoBERTa, MPNet: on token 0, dropout -> classifier.dense -> tanh -> dropout -> out_proj */
    CL_HEAD_POOLER, /* BERT: pooler.dense -> tanh (the base model's pooler) -> dropout -> classifier */
} cl_head_kind;

typedef struct {
    cl_head_kind kind;
    const char *dense;        /* the dense layer's name: "classifier.dense", or NULL: the base model's pooler */
    const char *out;          /* "classifier.out_proj" | "classifier" */
    int dropout_in;           /* dropout on token 0 before the dense layer */
    const char *description;  /* for inspect */
} cl_head_layout;
const cl_head_layout *cl_head_layout_of(cl_head_kind k); /* NULL for CL_HEAD_NONE */

typedef struct {
    cl_arch arch;
    const char *name;              /* "BERT", "RoBERTa", "MPNet" */
    const char *model_types[4];    /* config.json model_type values; NULL-terminated; [0] is the canonical one */
    int vocab_defaults[4];         /* the config class's vocab_size default for each model_type */
    const char *class_prefixes[4]; /* names of classes in 'architectures' (when model_type is absent) */
    const char *prefix;            /* base-model attribute in *ForSequenceClassification: "bert" */
    const char *seqcls_class;      /* "BertForSequenceClassification" */
    /* tensor names, transformers', without the prefix and without ".weight" / ".bias"; layer ones under
     * "<layers>.L." */
    const char *layers;            /* "encoder.layer" */
    const char *word_emb, *pos_emb, *type_emb /* NULL: no token types */, *emb_ln;
    const char *lin[CL_MOD_COUNT];
    const char *ln1, *ln2;         /* after attention, after the FFN */
    const char *pooler;            /* the base model's pooler dense layer */
    const char *rel_bias;          /* the shared relative-attention bias (buckets, heads), or NULL */
    const char *peft[CL_MOD_COUNT];  /* PEFT target_modules entry of each module (a suffix of the module path) */
    const char *peft_default[3];   /* PEFT 0.10's default target_modules; {NULL}: PEFT refuses null */
    cl_head_kind head;             /* the *ForSequenceClassification head */
    int pooler_in_seqcls;          /* *ForSequenceClassification keeps the pooler (its head uses it) */
    int classifier_dropout_key;    /* config.json's classifier_dropout applies to the head; else hidden_dropout_prob */
    int pos_offset;                /* 1: position ids as RoBERTa (pads -> padding_idx, tokens padding_idx + 1 + rank);
                                      0: 0 .. T-1 */
    int padding_idx;               /* positions' padding_idx when fixed by the model code (MPNet 1); -1: pad_token_id */
    int default_pad;               /* pad_token_id default */
    int default_type_vocab;        /* type_vocab_size default (0 when no token types) */
    int rel_buckets;               /* relative_attention_num_buckets the model code uses (0: none) */
    int rel_max_distance;          /* its max_distance */
} cl_arch_desc;

const cl_arch_desc *cl_arch_get(cl_arch a);        /* NULL when out of range */
/* by config.json's model_type; *vocab_default receives that type's default vocab_size (may be NULL) */
const cl_arch_desc *cl_arch_by_model_type(const char *model_type, int *vocab_default);
/* by a class name in 'architectures' (prefix match) */
const cl_arch_desc *cl_arch_by_class(const char *cls);
/* "bert, roberta, xlm-roberta, camembert, mpnet": every model_type the table knows */
void cl_arch_model_types(char *buf, size_t n);
/* The architecture whose prefix starts PEFT name NAME after "base_model.model." (an adapter's tensor), or NULL */
const cl_arch_desc *cl_arch_by_peft_name(const char *name);
/* The architecture a checkpoint tensor name belongs to: by its base prefix ("roberta.encoder..." or
 * "base_model.model.roberta..."; *prefixed = 1), else by its layer module names (*prefixed = 0; BERT and RoBERTa
 * share theirs, so that answers BERT); NULL when it names neither. */
const cl_arch_desc *cl_arch_of_tensor_name(const char *name, int *prefixed);
/* The module of a tensor path under a layer, in any architecture ("attention.attn.q" -> CL_MOD_QUERY). */
int cl_arch_module_of_path(const char *path, cl_module *out);

/* MPNet's relative_position_bucket (transformers, modeling_mpnet.py) of key position j relative to query i
 * (rel = j - i), with num_buckets and max_distance. */
int cl_rel_bucket(int rel, int num_buckets, int max_distance);

#endif
