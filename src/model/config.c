/* config.json reader for the encoders of the architecture table (model/arch.h: BERT, RoBERTa, MPNet).
 *
 * Required keys: "model_type" (one of the table's: bert, roberta, xlm-roberta, camembert, mpnet); when it is absent,
 * "architectures" naming a class of one of them (Bert*, Roberta*, XLMRoberta*, Camembert*, MPNet*) is accepted.
 * Every other key is optional and defaults as transformers' config classes do:
 *   vocab_size 30522 (bert, xlm-roberta, camembert) / 50265 (roberta) / 30527 (mpnet), hidden_size 768,
 *   num_hidden_layers 12, num_attention_heads 12, intermediate_size 3072, hidden_act "gelu", hidden_dropout_prob 0.1,
 *   attention_probs_dropout_prob 0.1, max_position_embeddings 512, type_vocab_size 2 (none for mpnet, whose key is
 *   ignored), layer_norm_eps 1e-12, pad_token_id 0 (bert) / 1 (roberta family, mpnet), classifier_dropout null
 *   (ignored for mpnet, whose head always uses hidden_dropout_prob), problem_type null. mpnet:
 *   relative_attention_num_buckets must be 32 (what transformers computes with, whatever the config says).
 * num_labels: from id2label (keys "0".."L-1") or num_labels; 0 when the config names neither (unlike transformers,
 * which defaults to 2: the caller decides how many labels a new head gets).
 * Validation guards later allocations: sizes are positive and bounded (vocab <= 10M, hidden <= 65536, layers <= 1000,
 * intermediate <= 1M, positions <= 1M, token types <= 1M, labels <= 100000), hidden divisible by heads,
 * 0 < layer_norm_eps < 1, dropouts in [0, 1). Every error names the file and the key. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/util.h"
#include "model/model.h"

void cl_config_free(cl_config *c) {
    if (!c) return;
    if (c->id2label) {
        for (int i = 0; i < c->num_labels; i++) free(c->id2label[i]);
        free(c->id2label);
    }
    c->id2label = NULL;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF); raw control bytes other than \t \n \r are refused too
 * (they are not valid anywhere in JSON text). Returns the offset of the first bad byte, or -1. */
static long bad_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
            long long u = cl_utf8_invalid_at(s, i); /* an invalid sequence before the control byte comes first */
            return u >= 0 ? (long)u : (long)i;
        }
    return (long)cl_utf8_invalid_at(s, n);
}

typedef struct {
    const cJSON *root;
    const char *name;
    cl_error *err;
} ctx;

/* Integer key: absent or null -> *out unchanged (default); otherwise must be an integral number in [lo, hi]. */
static int get_int(ctx *x, const char *key, int lo, int hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(x->root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v))
        return cl_errf(x->err, CL_EFORMAT, "%s: key '%s': expected an integer, got a %s", x->name, key,
                       cJSON_IsString(v) ? "string" : cJSON_IsBool(v) ? "boolean" : cJSON_IsArray(v) ? "array"
                                                                                           : "object");
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d))
        return cl_errf(x->err, CL_EFORMAT, "%s: key '%s': expected an integer, got %.17g", x->name, key, d);
    if (d < lo || d > hi)
        return cl_errf(x->err, CL_EFORMAT, "%s: key '%s': %.17g is out of range [%d, %d]", x->name, key, d, lo, hi);
    *out = (int)d;
    return 0;
}

/* Float key in (lo_open ? (lo, hi) : [lo, hi)); absent/null -> unchanged (null allowed when null_ok). */
static int get_float(ctx *x, const char *key, double lo, int lo_open, double hi, float *out, int *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(x->root, key);
    if (present) *present = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v))
        return cl_errf(x->err, CL_EFORMAT, "%s: key '%s': expected a number", x->name, key);
    double d = v->valuedouble;
    if (!isfinite(d) || (lo_open ? d <= lo : d < lo) || d >= hi)
        return cl_errf(x->err, CL_EFORMAT, "%s: key '%s': %.17g is out of range %s%g, %g)", x->name, key, d,
                       lo_open ? "(" : "[", lo, hi);
    *out = (float)d;
    if (present) *present = 1;
    return 0;
}

/* String key: absent/null -> NULL; non-string -> error. */
static int get_str(ctx *x, const char *key, const char **out) {
    *out = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(x->root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v) || !v->valuestring)
        return cl_errf(x->err, CL_EFORMAT, "%s: key '%s': expected a string", x->name, key);
    *out = v->valuestring;
    return 0;
}

static int parse_id2label(ctx *x, cl_config *c, const cJSON *obj) {
    if (!cJSON_IsObject(obj))
        return cl_errf(x->err, CL_EFORMAT, "%s: key 'id2label': expected an object mapping \"0\".. to label names",
                       x->name);
    int n = cJSON_GetArraySize(obj);
    if (n <= 0) return 0;
    if (n > 100000)
        return cl_errf(x->err, CL_EFORMAT, "%s: key 'id2label': %d labels is more than the limit 100000", x->name, n);
    char **lab = calloc((size_t)n, sizeof *lab);
    if (!lab) return cl_errf(x->err, CL_ENOMEM, "%s: out of memory for id2label", x->name);
    int rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        const char *k = it->string ? it->string : "";
        char *end = NULL;
        long id = (k[0] >= '0' && k[0] <= '9') ? strtol(k, &end, 10) : -1;
        if (id < 0 || !end || *end || (k[0] == '0' && k[1]) || id >= n) {
            rc = cl_errf(x->err, CL_EFORMAT,
                         "%s: key 'id2label': entry \"%.64s\" is not a label id in 0..%d", x->name, k, n - 1);
            break;
        }
        if (lab[id]) {
            rc = cl_errf(x->err, CL_EFORMAT, "%s: key 'id2label': label id %ld appears twice", x->name, id);
            break;
        }
        if (!cJSON_IsString(it) || !it->valuestring) {
            rc = cl_errf(x->err, CL_EFORMAT, "%s: key 'id2label': entry \"%ld\" is not a string", x->name, id);
            break;
        }
        lab[id] = strdup(it->valuestring);
        if (!lab[id]) { rc = cl_errf(x->err, CL_ENOMEM, "%s: out of memory for id2label", x->name); break; }
    }
    if (rc) {
        for (int i = 0; i < n; i++) free(lab[i]);
        free(lab);
        return rc;
    }
    c->id2label = lab;
    c->num_labels = n;
    return 0;
}

int cl_config_parse(cl_config *c, const char *json, size_t len, const char *name, cl_error *err) {
    memset(c, 0, sizeof *c);
    if (!name) name = "config.json";
    if (!json) return cl_errf(err, CL_EINVAL, "%s: no data", name);
    if (len > (64u << 20)) return cl_errf(err, CL_EFORMAT, "%s: %zu bytes is larger than 64 MiB", name, len);
    long bad = bad_utf8((const unsigned char *)json, len);
    if (bad >= 0)
        return cl_errf(err, CL_EFORMAT, "%s: invalid UTF-8 or control byte 0x%02x at byte offset %ld", name,
                       (unsigned char)json[bad], bad);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        long off = end ? (long)(end - json) : (cJSON_GetErrorPtr() ? (long)(cJSON_GetErrorPtr() - json) : -1);
        if (off < 0 || (size_t)off > len) off = -1;
        return cl_errf(err, CL_EFORMAT, "%s: not valid JSON (error near byte offset %ld)", name, off);
    }
    if (end) {
        for (const char *p = end; p < json + len; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
                cJSON_Delete(root);
                return cl_errf(err, CL_EFORMAT, "%s: trailing data after the JSON value at byte offset %ld", name,
                               (long)(p - json));
            }
    }
    int rc = 0;
    ctx x = {root, name, err};
    if (!cJSON_IsObject(root)) { rc = cl_errf(err, CL_EFORMAT, "%s: expected a JSON object at the top level", name); goto done; }

    /* model_type (required, or inferred from architectures), then the architecture's defaults */
    const char *mt;
    if ((rc = get_str(&x, "model_type", &mt))) goto done;
    const cl_arch_desc *ad = NULL;
    int vocab = 0;
    if (mt) {
        if (!(ad = cl_arch_by_model_type(mt, &vocab))) {
            char known[200];
            cl_arch_model_types(known, sizeof known);
            rc = cl_errf(err, CL_EUNSUP, "%s: key 'model_type': \"%.64s\" is not supported (%s)", name, mt, known);
            goto done;
        }
        snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    } else {
        const cJSON *ar = cJSON_GetObjectItemCaseSensitive(root, "architectures");
        const cJSON *a0 = cJSON_IsArray(ar) ? cJSON_GetArrayItem(ar, 0) : NULL;
        if (!(ad = cl_arch_by_class(cJSON_IsString(a0) ? a0->valuestring : NULL))) {
            rc = cl_errf(err, CL_EMISSING,
                         "%s: key 'model_type' is missing (and 'architectures' names no class of a supported "
                         "architecture)", name);
            goto done;
        }
        snprintf(c->model_type, sizeof c->model_type, "%s", ad->model_types[0]);
        vocab = ad->vocab_defaults[0];
    }
    c->arch = ad->arch;
    c->vocab_size = vocab;
    c->hidden_size = 768;
    c->num_layers = 12;
    c->num_heads = 12;
    c->intermediate_size = 3072;
    c->max_position = 512;
    c->type_vocab_size = ad->default_type_vocab;
    c->pad_token_id = ad->default_pad;
    c->rel_buckets = ad->rel_buckets;
    c->layer_norm_eps = 1e-12f;
    c->act = CL_ACT_GELU;
    c->hidden_dropout = 0.1f;
    c->attention_dropout = 0.1f;
    c->classifier_dropout = -1.0f;

    if ((rc = get_int(&x, "vocab_size", 1, 10000000, &c->vocab_size))) goto done;
    if ((rc = get_int(&x, "hidden_size", 1, 65536, &c->hidden_size))) goto done;
    if ((rc = get_int(&x, "num_hidden_layers", 1, 1000, &c->num_layers))) goto done;
    if ((rc = get_int(&x, "num_attention_heads", 1, 65536, &c->num_heads))) goto done;
    if ((rc = get_int(&x, "intermediate_size", 1, 1000000, &c->intermediate_size))) goto done;
    if ((rc = get_int(&x, "max_position_embeddings", 1, 1000000, &c->max_position))) goto done;
    if (ad->type_emb && (rc = get_int(&x, "type_vocab_size", 1, 1000000, &c->type_vocab_size))) goto done;
    if (ad->rel_buckets) {
        /* transformers' MPNet always calls relative_position_bucket with 32 buckets and max distance 128, whatever
         * the config says; a config that says otherwise describes a model the code does not compute */
        int nb = ad->rel_buckets;
        if ((rc = get_int(&x, "relative_attention_num_buckets", 1, 1000000, &nb))) goto done;
        if (nb != ad->rel_buckets) {
            rc = cl_errf(err, CL_EUNSUP, "%s: key 'relative_attention_num_buckets': %d is not supported (%s uses %d "
                         "buckets whatever the config says)", name, nb, ad->name, ad->rel_buckets);
            goto done;
        }
    }
    if ((rc = get_int(&x, "pad_token_id", 0, 10000000, &c->pad_token_id))) goto done;
    if (c->hidden_size % c->num_heads) {
        rc = cl_errf(err, CL_EFORMAT, "%s: key 'num_attention_heads': hidden_size %d is not divisible by %d heads",
                     name, c->hidden_size, c->num_heads);
        goto done;
    }
    if (c->pad_token_id >= c->vocab_size) {
        rc = cl_errf(err, CL_EFORMAT, "%s: key 'pad_token_id': %d is not below vocab_size %d", name, c->pad_token_id,
                     c->vocab_size);
        goto done;
    }
    if (cl_config_max_tokens(c) < 1) {
        rc = cl_errf(err, CL_EFORMAT,
                     "%s: key 'max_position_embeddings': %d leaves no positions after padding_idx + 1 = %d "
                     "(%s positions start there)", name, c->max_position, cl_config_position_pad(c) + 1, ad->name);
        goto done;
    }
    if ((rc = get_float(&x, "layer_norm_eps", 0.0, 1, 1.0, &c->layer_norm_eps, NULL))) goto done;
    if (!(c->layer_norm_eps > 0)) { /* a positive double that underflows float */
        rc = cl_errf(err, CL_EFORMAT, "%s: key 'layer_norm_eps': too small for fp32", name);
        goto done;
    }
    if ((rc = get_float(&x, "hidden_dropout_prob", 0.0, 0, 1.0, &c->hidden_dropout, NULL))) goto done;
    if ((rc = get_float(&x, "attention_probs_dropout_prob", 0.0, 0, 1.0, &c->attention_dropout, NULL))) goto done;
    if ((rc = get_float(&x, "classifier_dropout", 0.0, 0, 1.0, &c->classifier_dropout, NULL))) goto done;
    if (!ad->classifier_dropout_key) c->classifier_dropout = -1.0f; /* the head uses hidden_dropout_prob */

    const char *act;
    if ((rc = get_str(&x, "hidden_act", &act))) goto done;
    if (act) {
        if (!strcmp(act, "gelu")) c->act = CL_ACT_GELU;
        else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_fast"))
            c->act = CL_ACT_GELU_TANH;
        else if (!strcmp(act, "relu")) c->act = CL_ACT_RELU;
        else {
            rc = cl_errf(err, CL_EUNSUP,
                         "%s: key 'hidden_act': \"%.64s\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, "
                         "gelu_fast, relu)", name, act);
            goto done;
        }
    }
    const char *pet;
    if ((rc = get_str(&x, "position_embedding_type", &pet))) goto done;
    if (pet && strcmp(pet, "absolute")) {
        rc = cl_errf(err, CL_EUNSUP, "%s: key 'position_embedding_type': \"%.64s\" is not supported (absolute)",
                     name, pet);
        goto done;
    }
    const char *pt;
    if ((rc = get_str(&x, "problem_type", &pt))) goto done;
    if (pt) {
        if (strcmp(pt, "regression") && strcmp(pt, "single_label_classification") &&
            strcmp(pt, "multi_label_classification")) {
            rc = cl_errf(err, CL_EFORMAT,
                         "%s: key 'problem_type': \"%.64s\" is not one of regression, single_label_classification, "
                         "multi_label_classification", name, pt);
            goto done;
        }
        snprintf(c->problem_type, sizeof c->problem_type, "%s", pt);
    }

    /* labels */
    int nl = -1;
    if ((rc = get_int(&x, "num_labels", 1, 100000, &nl))) goto done;
    const cJSON *id2 = cJSON_GetObjectItemCaseSensitive(root, "id2label");
    if (id2 && !cJSON_IsNull(id2)) {
        if ((rc = parse_id2label(&x, c, id2))) goto done;
        if (nl > 0 && c->num_labels > 0 && nl != c->num_labels) {
            rc = cl_errf(err, CL_EFORMAT, "%s: key 'num_labels': %d disagrees with the %d entries of 'id2label'", name,
                         nl, c->num_labels);
            goto done;
        }
    }
    if (c->num_labels == 0 && nl > 0) c->num_labels = nl;
    const cJSON *l2i = cJSON_GetObjectItemCaseSensitive(root, "label2id");
    if (l2i && !cJSON_IsNull(l2i)) {
        if (!cJSON_IsObject(l2i)) {
            rc = cl_errf(err, CL_EFORMAT, "%s: key 'label2id': expected an object", name);
            goto done;
        }
        int n2 = cJSON_GetArraySize(l2i);
        if (c->num_labels > 0 && n2 > 0 && n2 != c->num_labels) {
            rc = cl_errf(err, CL_EFORMAT, "%s: key 'label2id': %d entries disagree with %d labels", name, n2,
                         c->num_labels);
            goto done;
        }
    }
    if (!strcmp(c->problem_type, "regression") && c->num_labels > 1) {
        rc = cl_errf(err, CL_EFORMAT, "%s: key 'problem_type': regression needs num_labels 1, not %d", name,
                     c->num_labels);
        goto done;
    }
done:
    cJSON_Delete(root);
    if (rc) cl_config_free(c);
    return rc;
}

int cl_config_load(cl_config *c, const char *path, cl_error *err) {
    memset(c, 0, sizeof *c);
    char *buf = NULL;
    size_t len = 0;
    int rc = cl_read_file(path, &buf, &len, err);
    if (rc) return rc;
    rc = cl_config_parse(c, buf, len, path, err);
    free(buf);
    return rc;
}

uint64_t cl_config_n_params_encoder(const cl_config *c) {
    uint64_t H = (uint64_t)c->hidden_size, I = (uint64_t)c->intermediate_size;
    uint64_t emb = ((uint64_t)c->vocab_size + (uint64_t)c->max_position + (uint64_t)c->type_vocab_size) * H + 2 * H;
    uint64_t layer = 4 * (H * H + H) + (I * H + I) + (H * I + H) + 4 * H;
    return emb + (uint64_t)c->num_layers * layer + (uint64_t)c->rel_buckets * (uint64_t)c->num_heads;
}
