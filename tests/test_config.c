/* config.json reader: values and defaults against what transformers' config classes resolve
 * (tests/data/model/config_cases.json from scripts/gen_model_fixtures.py), the files transformers wrote for the
 * fixtures, the module-name parser, and >= 10 kinds of broken config each rejected with a message naming the key. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include "core/util.h"
#include "model/model.h"
#include "test.h"

static const char *act_name(cl_act a) {
    return a == CL_ACT_GELU ? "gelu" : a == CL_ACT_GELU_TANH ? "gelu_tanh" : "relu";
}

TEST(config_cases_match_transformers) {
    char *buf;
    size_t len;
    cl_error err = {0};
    if (cl_read_file("tests/data/model/config_cases.json", &buf, &len, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    CHECK(cJSON_IsArray(root) && cJSON_GetArraySize(root) >= 8, "%s", "check");
    const cJSON *cs;
    int k = 0;
    cJSON_ArrayForEach(cs, root) {
        const char *js = cJSON_GetObjectItem(cs, "json")->valuestring;
        const cJSON *e = cJSON_GetObjectItem(cs, "expect");
#define EI(key) (cJSON_GetObjectItem(e, key)->valueint)
#define ED(key) (cJSON_GetObjectItem(e, key)->valuedouble)
#define ES(key) (cJSON_GetObjectItem(e, key)->valuestring)
        cl_config c;
        int rc = cl_config_parse(&c, js, strlen(js), "case.json", &err);
        CHECK(rc == 0, "case %d: %s", k, err.msg);
        if (rc) { k++; continue; }
        CHECK(!strcmp(c.model_type, ES("model_type")), "case %d: %s", k, c.model_type);
        int roberta = !strcmp(ES("model_type"), "bert") ? 0 : 1;
        CHECK((int)c.arch == roberta, "case %d", k);
        CHECK(c.vocab_size == EI("vocab_size"), "case %d: %d", k, c.vocab_size);
        CHECK(c.hidden_size == EI("hidden_size"), "case %d", k);
        CHECK(c.num_layers == EI("num_hidden_layers"), "case %d", k);
        CHECK(c.num_heads == EI("num_attention_heads"), "case %d", k);
        CHECK(c.intermediate_size == EI("intermediate_size"), "case %d", k);
        CHECK(c.max_position == EI("max_position_embeddings"), "case %d", k);
        CHECK(c.type_vocab_size == EI("type_vocab_size"), "case %d", k);
        CHECK(c.pad_token_id == EI("pad_token_id"), "case %d: %d", k, c.pad_token_id);
        CHECK_NEAR(c.layer_norm_eps, ED("layer_norm_eps"), ED("layer_norm_eps") * 1e-6);
        CHECK_NEAR(c.hidden_dropout, ED("hidden_dropout_prob"), 1e-7);
        CHECK_NEAR(c.attention_dropout, ED("attention_probs_dropout_prob"), 1e-7);
        const cJSON *cd = cJSON_GetObjectItem(e, "classifier_dropout");
        if (cJSON_IsNull(cd)) CHECK(c.classifier_dropout < 0, "case %d", k);
        else CHECK_NEAR(c.classifier_dropout, cd->valuedouble, 1e-7);
        const char *act = ES("hidden_act");
        const char *want = !strcmp(act, "gelu") ? "gelu" : !strcmp(act, "relu") ? "relu" : "gelu_tanh";
        CHECK(!strcmp(act_name(c.act), want), "case %d: %s vs %s", k, act_name(c.act), act);
        CHECK(!strcmp(c.problem_type, ES("problem_type")), "case %d", k);
        CHECK(c.num_labels == EI("num_labels"), "case %d: %d", k, c.num_labels);
        const cJSON *ids = cJSON_GetObjectItem(e, "id2label");
        if (cJSON_IsArray(ids)) {
            CHECK(c.id2label != NULL, "case %d", k);
            for (int i = 0; c.id2label && i < cJSON_GetArraySize(ids); i++)
                CHECK(!strcmp(c.id2label[i], cJSON_GetArrayItem(ids, i)->valuestring), "case %d label %d", k, i);
        } else {
            CHECK(c.id2label == NULL, "case %d", k);
        }
        cl_config_free(&c);
        k++;
    }
    cJSON_Delete(root);
}

TEST(fixture_configs_written_by_transformers) {
    cl_config c;
    cl_error err = {0};
    CHECK(cl_config_load(&c, "tests/data/model/bert_cls/config.json", &err) == 0, "%s", err.msg);
    CHECK(c.arch == CL_ARCH_BERT && c.hidden_size == 32 && c.num_layers == 2 && c.num_heads == 4, "%s", "check");
    CHECK(c.intermediate_size == 37 && c.vocab_size == 100 && c.max_position == 24, "%s", "check");
    CHECK(c.num_labels == 3 && c.id2label && !strcmp(c.id2label[0], "neg") && !strcmp(c.id2label[2], "pos"), "%s", "check");
    cl_config_free(&c);
    CHECK(cl_config_load(&c, "tests/data/model/roberta_cls/config.json", &err) == 0, "%s", err.msg);
    CHECK(c.arch == CL_ARCH_ROBERTA && c.type_vocab_size == 1 && c.pad_token_id == 1 && c.act == CL_ACT_GELU_TANH, "%s", "check");
    CHECK(c.num_labels == 0, "transformers omits id2label for its default of 2 labels; the head tells the loader");
    cl_config_free(&c);
    CHECK(cl_config_load(&c, "tests/data/model/nope/config.json", &err) != 0, "%s", "check");
    CHECK(strstr(err.msg, "nope/config.json") != NULL, "%s", err.msg);
}

TEST(module_names) {
    for (int i = 0; i < CL_MOD_COUNT; i++) {
        cl_module m;
        CHECK(cl_module_parse(cl_module_names[i], &m) == 0 && (int)m == i, "%s", cl_module_names[i]);
    }
    cl_module m;
    CHECK(cl_module_parse("attention.self.value", &m) == 0 && m == CL_MOD_VALUE, "%s", "check");
    CHECK(cl_module_parse("dense", &m) != 0, "%s", "check");
    CHECK(cl_module_parse("", &m) != 0, "%s", "check");
    CHECK(cl_module_parse(NULL, &m) != 0, "%s", "check");
}

TEST(param_formula_roberta_base) {
    /* roberta-base: RobertaModel has 124,645,632 parameters, of which the pooler is 768*768+768 */
    const char *js = "{\"model_type\":\"roberta\",\"vocab_size\":50265,\"max_position_embeddings\":514,"
                     "\"type_vocab_size\":1,\"layer_norm_eps\":1e-5}";
    cl_config c;
    cl_error err = {0};
    CHECK(cl_config_parse(&c, js, strlen(js), "roberta-base/config.json", &err) == 0, "%s", err.msg);
    CHECK(cl_config_n_params_encoder(&c) == 124055040ull, "%llu", (unsigned long long)cl_config_n_params_encoder(&c));
    cl_config_free(&c);
}

typedef struct {
    const char *json;
    const char *expect; /* substring of the message (the key or the problem) */
} bad_case;

TEST(broken_configs_rejected) {
    static const bad_case cases[] = {
        {"", "not valid JSON"},
        {"{\"model_type\": \"bert\"", "not valid JSON"},
        {"[1, 2, 3]", "object"},
        {"\"bert\"", "object"},
        {"{}", "model_type"},
        {"{\"model_type\": 5}", "model_type"},
        {"{\"model_type\": \"gpt2\"}", "model_type"},
        {"{\"model_type\": \"bert\", \"hidden_size\": \"768\"}", "hidden_size"},
        {"{\"model_type\": \"bert\", \"hidden_size\": -768}", "hidden_size"},
        {"{\"model_type\": \"bert\", \"num_hidden_layers\": 0}", "num_hidden_layers"},
        {"{\"model_type\": \"bert\", \"num_hidden_layers\": 2.5}", "num_hidden_layers"},
        {"{\"model_type\": \"bert\", \"hidden_size\": 100, \"num_attention_heads\": 12}", "num_attention_heads"},
        {"{\"model_type\": \"bert\", \"vocab_size\": 1e300}", "vocab_size"},
        {"{\"model_type\": \"bert\", \"vocab_size\": 2000000000}", "vocab_size"},
        {"{\"model_type\": \"bert\", \"num_hidden_layers\": 100000}", "num_hidden_layers"},
        {"{\"model_type\": \"bert\", \"intermediate_size\": 1e12}", "intermediate_size"},
        {"{\"model_type\": \"bert\", \"layer_norm_eps\": 0}", "layer_norm_eps"},
        {"{\"model_type\": \"bert\", \"layer_norm_eps\": -1e-5}", "layer_norm_eps"},
        {"{\"model_type\": \"bert\", \"layer_norm_eps\": 1e-60}", "layer_norm_eps"},
        {"{\"model_type\": \"bert\", \"hidden_act\": \"swish\"}", "hidden_act"},
        {"{\"model_type\": \"bert\", \"hidden_act\": 3}", "hidden_act"},
        {"{\"model_type\": \"bert\", \"hidden_dropout_prob\": 1.5}", "hidden_dropout_prob"},
        {"{\"model_type\": \"bert\", \"num_labels\": 3, \"id2label\": {\"0\": \"a\", \"1\": \"b\"}}", "num_labels"},
        {"{\"model_type\": \"bert\", \"id2label\": {\"0\": \"a\", \"2\": \"b\"}}", "id2label"},
        {"{\"model_type\": \"bert\", \"id2label\": {\"0\": \"a\", \"00\": \"b\"}}", "id2label"},
        {"{\"model_type\": \"bert\", \"id2label\": {\"0\": 1}}", "id2label"},
        {"{\"model_type\": \"bert\", \"id2label\": [\"a\", \"b\"]}", "id2label"},
        {"{\"model_type\": \"bert\", \"label2id\": {\"a\": 0}, \"num_labels\": 2}", "label2id"},
        {"{\"model_type\": \"bert\", \"pad_token_id\": 30522}", "pad_token_id"},
        {"{\"model_type\": \"bert\", \"position_embedding_type\": \"relative_key\"}", "position_embedding_type"},
        {"{\"model_type\": \"bert\", \"problem_type\": \"ranking\"}", "problem_type"},
        {"{\"model_type\": \"bert\", \"problem_type\": \"regression\", \"num_labels\": 2}", "problem_type"},
        {"{\"model_type\": \"roberta\", \"max_position_embeddings\": 2}", "max_position_embeddings"},
        {"{\"model_type\": \"bert\", \"model_type_x\": \"\xc3\x28\"}", "UTF-8"},
        {"{\"model_type\": \"bert\xff\"}", "UTF-8"},
        {"{\"model_type\": \"bert\"} trailing", "trailing"},
        {"{\"model_type\": \"bert\", \"x\": \"\x01\"}", "control"},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        cl_config c;
        cl_error err = {0};
        int rc = cl_config_parse(&c, cases[i].json, strlen(cases[i].json), "dir/config.json", &err);
        CHECK(rc != 0, "case %d accepted: %s", i, cases[i].json);
        CHECK(strstr(err.msg, "dir/config.json") != NULL, "case %d: %s", i, err.msg);
        CHECK(strstr(err.msg, cases[i].expect) != NULL, "case %d: '%s' not in: %s", i, cases[i].expect, err.msg);
        CHECK(c.id2label == NULL, "case %d", i);
        cl_config_free(&c);
    }
    /* a NUL byte inside the buffer */
    cl_config c;
    cl_error err = {0};
    const char nul[] = "{\"model_type\": \"be\0rt\"}";
    CHECK(cl_config_parse(&c, nul, sizeof nul - 1, "dir/config.json", &err) != 0, "%s", "check");
    /* deeply nested JSON does not overflow the stack */
    size_t dn = 200000;
    char *deep = malloc(2 * dn + 1);
    for (size_t i = 0; i < dn; i++) { deep[i] = '['; deep[dn + i] = ']'; }
    deep[2 * dn] = 0;
    CHECK(cl_config_parse(&c, deep, 2 * dn, "dir/config.json", &err) != 0, "%s", "check");
    free(deep);
    /* architectures instead of model_type */
    const char *arch = "{\"architectures\": [\"RobertaForMaskedLM\"]}";
    CHECK(cl_config_parse(&c, arch, strlen(arch), "x", &err) == 0 && c.arch == CL_ARCH_ROBERTA, "%s", err.msg);
    cl_config_free(&c);
}

/* MPNet (all-mpnet-base-v2's config.json keys): defaults, no token types, the head's dropout, the bucket count */
TEST(mpnet_config) {
    cl_config c;
    cl_error err = {0};
    const char *js = "{\"model_type\": \"mpnet\", \"architectures\": [\"MPNetForMaskedLM\"], \"hidden_size\": 768, "
                     "\"num_hidden_layers\": 12, \"num_attention_heads\": 12, \"intermediate_size\": 3072, "
                     "\"max_position_embeddings\": 514, \"layer_norm_eps\": 1e-05, \"pad_token_id\": 1, "
                     "\"relative_attention_num_buckets\": 32, \"vocab_size\": 30527, \"classifier_dropout\": 0.5, "
                     "\"type_vocab_size\": 2}";
    CHECK(cl_config_parse(&c, js, strlen(js), "mpnet/config.json", &err) == 0, "%s", err.msg);
    CHECK(c.arch == CL_ARCH_MPNET && !strcmp(c.model_type, "mpnet") && c.type_vocab_size == 0 && c.rel_buckets == 32 &&
          c.classifier_dropout < 0 && c.pad_token_id == 1, "mpnet config fields");
    CHECK(cl_config_position_pad(&c) == 1 && cl_config_max_tokens(&c) == 512, "positions");
    /* MPNetForSequenceClassification (2 labels) has 109,488,002 parameters (PyTorch's count, MPNET.md) */
    const uint64_t H = 768, head = H * H + H + 2 * H + 2;
    CHECK(cl_config_n_params_encoder(&c) + head == 109488002ull, "MPNet parameters %llu",
          (unsigned long long)(cl_config_n_params_encoder(&c) + head));
    cl_config_free(&c);
    /* transformers' MPNetConfig defaults: vocab 30527, pad 1, eps 1e-12 */
    const char *d = "{\"model_type\": \"mpnet\"}";
    CHECK(cl_config_parse(&c, d, strlen(d), "x", &err) == 0 && c.vocab_size == 30527 && c.pad_token_id == 1 &&
          c.layer_norm_eps == 1e-12f && c.max_position == 512, "%s", err.msg);
    cl_config_free(&c);
    const char *a = "{\"architectures\": [\"MPNetForSequenceClassification\"]}";
    CHECK(cl_config_parse(&c, a, strlen(a), "x", &err) == 0 && c.arch == CL_ARCH_MPNET, "%s", err.msg);
    cl_config_free(&c);
    /* a bucket count the model code does not use is refused, naming the file and the key */
    const char *nb = "{\"model_type\": \"mpnet\", \"relative_attention_num_buckets\": 64}";
    CHECK(cl_config_parse(&c, nb, strlen(nb), "dir/config.json", &err) != 0 && strstr(err.msg, "dir/config.json") &&
          strstr(err.msg, "relative_attention_num_buckets") && strstr(err.msg, "64"), "%s", err.msg);
    /* an unknown model_type lists the supported ones */
    const char *un = "{\"model_type\": \"deberta\"}";
    CHECK(cl_config_parse(&c, un, strlen(un), "dir/config.json", &err) != 0 && strstr(err.msg, "mpnet") &&
          strstr(err.msg, "'model_type'"), "%s", err.msg);
}

int main(void) {
    RUN(config_cases_match_transformers);
    RUN(fixture_configs_written_by_transformers);
    RUN(module_names);
    RUN(param_formula_roberta_base);
    RUN(broken_configs_rejected);
    RUN(mpnet_config);
    return tst_summary(__FILE__);
}
