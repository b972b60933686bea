/* The architecture table (see arch.h) and the functions that read a model through it. */
#include "model/arch.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/model.h"

const char *const cl_module_names[CL_MOD_COUNT] = {
    "query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense",
};

static const cl_head_layout head_layouts[] = {
    {CL_HEAD_DENSE, "classifier.dense", "classifier.out_proj", 1,
     "classification head on token 0 (dense + tanh + out_proj)"},
    {CL_HEAD_POOLER, NULL, "classifier", 0, "pooler (dense + tanh) + classifier"},
};

/* BERT and RoBERTa spell their tensors and PEFT modules alike */
#define BERT_FAMILY_NAMES                                                                                         \
    .layers = "encoder.layer",                                                                                    \
    .word_emb = "embeddings.word_embeddings", .pos_emb = "embeddings.position_embeddings",                        \
    .type_emb = "embeddings.token_type_embeddings", .emb_ln = "embeddings.LayerNorm",                             \
    .lin = {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",        \
            "intermediate.dense", "output.dense"},                                                                \
    .ln1 = "attention.output.LayerNorm", .ln2 = "output.LayerNorm", .pooler = "pooler.dense", .rel_bias = NULL,   \
    .peft = {"query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"},             \
    .peft_default = {"query", "value"}

static const cl_arch_desc table[CL_ARCH_COUNT] = {
    [CL_ARCH_BERT] = {
        .arch = CL_ARCH_BERT, .name = "BERT",
        .model_types = {"bert"}, .vocab_defaults = {30522},
        .class_prefixes = {"Bert"},
        .prefix = "bert", .seqcls_class = "BertForSequenceClassification",
        BERT_FAMILY_NAMES,
        .head = CL_HEAD_POOLER, .pooler_in_seqcls = 1, .classifier_dropout_key = 1,
        .pos_offset = 0, .padding_idx = -1, .default_pad = 0, .default_type_vocab = 2,
    },
    [CL_ARCH_ROBERTA] = {
        .arch = CL_ARCH_ROBERTA, .name = "RoBERTa",
        .model_types = {"roberta", "xlm-roberta", "camembert"}, .vocab_defaults = {50265, 30522, 30522},
        .class_prefixes = {"Roberta", "XLMRoberta", "Camembert"},
        .prefix = "roberta", .seqcls_class = "RobertaForSequenceClassification",
        BERT_FAMILY_NAMES,
        .head = CL_HEAD_DENSE, .pooler_in_seqcls = 0, .classifier_dropout_key = 1,
        .pos_offset = 1, .padding_idx = -1, .default_pad = 1, .default_type_vocab = 2,
    },
    [CL_ARCH_MPNET] = {
        .arch = CL_ARCH_MPNET, .name = "MPNet",
        .model_types = {"mpnet"}, .vocab_defaults = {30527},
        .class_prefixes = {"MPNet"},
        .prefix = "mpnet", .seqcls_class = "MPNetForSequenceClassification",
        .word_emb = "embeddings.word_embeddings", .pos_emb = "embeddings.position_embeddings",
        .type_emb = NULL, .emb_ln = "embeddings.LayerNorm", .layers = "encoder.layer",
        .lin = {"attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o",
                "intermediate.dense", "output.dense"},
        .ln1 = "attention.LayerNorm", .ln2 = "output.LayerNorm",
        .pooler = "pooler.dense", .rel_bias = "encoder.relative_attention_bias",
        .peft = {"q", "k", "v", "o", "intermediate.dense", "output.dense"},
        .peft_default = {NULL},
        .head = CL_HEAD_DENSE, .pooler_in_seqcls = 0, .classifier_dropout_key = 0,
        .pos_offset = 1, .padding_idx = 1, .default_pad = 1, .default_type_vocab = 0,
        .rel_buckets = 32, .rel_max_distance = 128,
    },
};

const cl_arch_desc *cl_arch_get(cl_arch a) {
    return (int)a >= 0 && a < CL_ARCH_COUNT ? &table[a] : NULL;
}

const cl_head_layout *cl_head_layout_of(cl_head_kind k) {
    for (size_t i = 0; i < sizeof head_layouts / sizeof head_layouts[0]; i++)
        if (head_layouts[i].kind == k) return &head_layouts[i];
    return NULL;
}

const cl_arch_desc *cl_arch_by_model_type(const char *t, int *vocab_default) {
    if (!t) return NULL;
    for (int a = 0; a < CL_ARCH_COUNT; a++)
        for (int i = 0; i < 4 && table[a].model_types[i]; i++)
            if (!strcmp(t, table[a].model_types[i])) {
                if (vocab_default) *vocab_default = table[a].vocab_defaults[i];
                return &table[a];
            }
    return NULL;
}

const cl_arch_desc *cl_arch_by_class(const char *cls) {
    if (!cls) return NULL;
    /* the longest matching prefix wins (none is a prefix of another today, but "Roberta" vs "RobertaPreLayerNorm"
     * style names would need it) */
    const cl_arch_desc *best = NULL;
    size_t bl = 0;
    for (int a = 0; a < CL_ARCH_COUNT; a++)
        for (int i = 0; i < 4 && table[a].class_prefixes[i]; i++) {
            size_t n = strlen(table[a].class_prefixes[i]);
            if (n > bl && !strncmp(cls, table[a].class_prefixes[i], n)) best = &table[a], bl = n;
        }
    return best;
}

void cl_arch_model_types(char *buf, size_t n) {
    size_t o = 0;
    if (n) buf[0] = 0;
    for (int a = 0; a < CL_ARCH_COUNT; a++)
        for (int i = 0; i < 4 && table[a].model_types[i] && o < n; i++)
            o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? ", " : "", table[a].model_types[i]);
}

const cl_arch_desc *cl_arch_by_peft_name(const char *name) {
    static const char pfx[] = "base_model.model.";
    if (strncmp(name, pfx, sizeof pfx - 1)) return NULL;
    name += sizeof pfx - 1;
    for (int a = 0; a < CL_ARCH_COUNT; a++) {
        size_t n = strlen(table[a].prefix);
        if (!strncmp(name, table[a].prefix, n) && name[n] == '.') return &table[a];
    }
    return NULL;
}

const cl_arch_desc *cl_arch_of_tensor_name(const char *name, int *prefixed) {
    for (int a = 0; a < CL_ARCH_COUNT; a++) {
        size_t n = strlen(table[a].prefix);
        const char *p = strstr(name, table[a].prefix);
        for (; p; p = strstr(p + 1, table[a].prefix))
            if ((p == name || p[-1] == '.') && p[n] == '.') return *prefixed = 1, &table[a];
    }
    for (int a = 0; a < CL_ARCH_COUNT; a++)
        for (int m = 0; m < CL_MOD_COUNT; m++) {
            char key[96];
            snprintf(key, sizeof key, ".%s.", table[a].lin[m]);
            if (strstr(name, table[a].layers) && strstr(name, key)) return *prefixed = 0, &table[a];
        }
    return NULL;
}

int cl_arch_module_of_path(const char *path, cl_module *out) {
    for (int a = 0; a < CL_ARCH_COUNT; a++)
        for (int m = 0; m < CL_MOD_COUNT; m++)
            if (!strcmp(path, table[a].lin[m])) return *out = (cl_module)m, 0;
    return -1;
}

int cl_module_parse(const char *name, cl_module *out) {
    static const struct { const char *s; cl_module m; } alias[] = {
        {"q", CL_MOD_QUERY}, {"k", CL_MOD_KEY}, {"v", CL_MOD_VALUE}, {"o", CL_MOD_ATTN_OUT},
        {"attn_out", CL_MOD_ATTN_OUT}, {"ffn_in", CL_MOD_INTER}, {"ffn_out", CL_MOD_OUT},
    };
    if (!name || !out) return -1;
    for (int m = 0; m < CL_MOD_COUNT; m++)
        if (!strcmp(name, cl_module_names[m])) return *out = (cl_module)m, 0;
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (!strcmp(name, alias[i].s)) return *out = alias[i].m, 0;
    return cl_arch_module_of_path(name, out);
}

int cl_rel_bucket(int rel, int num_buckets, int max_distance) {
    /* transformers: n = -rel; ret = (n < 0) * num_buckets / 2; n = |n|; exact below max_exact = num_buckets / 4,
     * then log-spaced up to max_distance, clipped to the half's last bucket. float32 as torch computes it. */
    int nb = num_buckets / 2, ret = 0;
    long n = -(long)rel;
    if (n < 0) ret += nb, n = -n;
    const int max_exact = nb / 2;
    if (n < max_exact) return ret + (int)n;
    float f = logf((float)n / (float)max_exact) / (float)log((double)max_distance / max_exact) * (float)(nb - max_exact);
    long large = max_exact + (long)f;
    if (large > nb - 1) large = nb - 1;
    return ret + (int)large;
}

/* ---- a model through the table ------------------------------------------------------------------------------ */
const cl_arch_desc *cl_model_arch(const cl_weights *m) { return cl_arch_get(m->cfg.arch); }

int cl_config_position_pad(const cl_config *c) {
    const cl_arch_desc *a = cl_arch_get(c->arch);
    if (!a || !a->pos_offset) return -1;
    return a->padding_idx >= 0 ? a->padding_idx : c->pad_token_id;
}

int cl_config_max_tokens(const cl_config *c) {
    int pad = cl_config_position_pad(c);
    return c->max_position - (pad >= 0 ? pad + 1 : 0);
}

cl_linear *cl_model_head_dense(cl_weights *m) {
    const cl_head_layout *h = cl_head_layout_of(m->head);
    if (!h) return NULL;
    cl_linear *d = h->dense ? &m->head_dense : &m->pooler;
    return d->w ? d : NULL;
}

void cl_model_module_path(const cl_weights *m, int layer, cl_module mod, char *buf, size_t n) {
    const cl_arch_desc *a = cl_model_arch(m);
    snprintf(buf, n, "%s.%s.%d.%s", a->prefix, a->layers, layer, a->lin[mod]);
}

int cl_model_head_tensor_name(const cl_weights *m, int k, char *buf, size_t n) {
    const cl_head_layout *h = cl_head_layout_of(m->head);
    if (!h || k < 0 || k > 3) return -1;
    const char *suffix = (k & 1) ? "bias" : "weight";
    if (k >= 2) snprintf(buf, n, "%s.%s", h->out, suffix);
    else if (h->dense) snprintf(buf, n, "%s.%s", h->dense, suffix);
    else snprintf(buf, n, "%s.%s.%s", cl_model_arch(m)->prefix, cl_model_arch(m)->pooler, suffix);
    return 0;
}

#define EMIT(k, p, nd, d0, d1, ...)                                                                     \
    do {                                                                                                \
        cl_model_tensor t = {.kind = (k), .ptr = (p), .ndim = (nd), .shape = {(d0), (d1)}};             \
        snprintf(t.name, sizeof t.name, __VA_ARGS__);                                                   \
        int rc_ = cb(user, &t);                                                                         \
        if (rc_) return rc_;                                                                            \
    } while (0)

int cl_model_tensors(cl_weights *m, cl_head_kind head, int with_pooler, cl_model_tensor_cb cb, void *user) {
    const cl_config *c = &m->cfg;
    const cl_arch_desc *a = cl_model_arch(m);
    if (!a) return -1;
    const int64_t H = c->hidden_size;
    EMIT(CL_TENSOR_ENCODER, &m->word_emb, 2, c->vocab_size, H, "%s.weight", a->word_emb);
    EMIT(CL_TENSOR_ENCODER, &m->pos_emb, 2, c->max_position, H, "%s.weight", a->pos_emb);
    if (a->type_emb) EMIT(CL_TENSOR_ENCODER, &m->type_emb, 2, c->type_vocab_size, H, "%s.weight", a->type_emb);
    EMIT(CL_TENSOR_ENCODER, &m->emb_ln_w, 1, H, 0, "%s.weight", a->emb_ln);
    EMIT(CL_TENSOR_ENCODER, &m->emb_ln_b, 1, H, 0, "%s.bias", a->emb_ln);
    for (int l = 0; l < c->num_layers; l++) {
        cl_layer_weights *L = &m->layers[l];
        for (int k = 0; k < CL_MOD_COUNT; k++) {
            const int64_t dout = k == CL_MOD_INTER ? c->intermediate_size : H;
            const int64_t din = k == CL_MOD_OUT ? c->intermediate_size : H;
            EMIT(CL_TENSOR_ENCODER, &L->lin[k].w, 2, dout, din, "%s.%d.%s.weight", a->layers, l, a->lin[k]);
            EMIT(CL_TENSOR_ENCODER, &L->lin[k].b, 1, dout, 0, "%s.%d.%s.bias", a->layers, l, a->lin[k]);
        }
        EMIT(CL_TENSOR_ENCODER, &L->ln1_w, 1, H, 0, "%s.%d.%s.weight", a->layers, l, a->ln1);
        EMIT(CL_TENSOR_ENCODER, &L->ln1_b, 1, H, 0, "%s.%d.%s.bias", a->layers, l, a->ln1);
        EMIT(CL_TENSOR_ENCODER, &L->ln2_w, 1, H, 0, "%s.%d.%s.weight", a->layers, l, a->ln2);
        EMIT(CL_TENSOR_ENCODER, &L->ln2_b, 1, H, 0, "%s.%d.%s.bias", a->layers, l, a->ln2);
    }
    if (a->rel_bias) EMIT(CL_TENSOR_ENCODER, &m->rel_bias, 2, a->rel_buckets, c->num_heads, "%s.weight", a->rel_bias);
    if (with_pooler) {
        EMIT(CL_TENSOR_POOLER, &m->pooler.w, 2, H, H, "%s.weight", a->pooler);
        EMIT(CL_TENSOR_POOLER, &m->pooler.b, 1, H, 0, "%s.bias", a->pooler);
    }
    const cl_head_layout *h = cl_head_layout_of(head);
    if (h) {
        const int64_t L = m->head_out.w ? m->head_out.d_out : -1; /* -1: the label count, from the file */
        if (h->dense) {
            EMIT(CL_TENSOR_HEAD, &m->head_dense.w, 2, H, H, "%s.weight", h->dense);
            EMIT(CL_TENSOR_HEAD, &m->head_dense.b, 1, H, 0, "%s.bias", h->dense);
        }
        EMIT(CL_TENSOR_HEAD, &m->head_out.w, 2, L, H, "%s.weight", h->out);
        EMIT(CL_TENSOR_HEAD, &m->head_out.b, 1, L, 0, "%s.bias", h->out);
    }
    return 0;
}
#undef EMIT
