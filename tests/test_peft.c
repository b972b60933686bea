/* PEFT interoperability without Python: adapters saved by PEFT 0.10 (tests/data/peft, scripts/gen_peft_refs.py) are
 * loaded with cl_peft_load and must give PEFT's logits (and the same once merged into W); condlora adapters written
 * with cl_peft_write_config reload exactly; bad adapter directories fail with messages naming the file. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include "adapters/peft_io.h"
#include "core/util.h"
#include "io/safetensors.h"
#include "model/encoder.h"
#include "ref.h"
#include "test.h"

#define DATA "tests/data/peft"
static char TMP[256];
static double max_diff_all, max_diff_merged;

typedef struct {
    int32_t ids[64], types[64], len[8];
    int B, T;
} tbatch;

static int load_batch(const cl_safetensors *st, const char *arch, tbatch *b) {
    char n[64];
    snprintf(n, sizeof n, "%s.input_ids", arch);
    const cl_st_tensor *t = cl_st_find(st, n);
    snprintf(n, sizeof n, "%s.lengths", arch);
    const cl_st_tensor *l = cl_st_find(st, n);
    snprintf(n, sizeof n, "%s.token_type_ids", arch);
    const cl_st_tensor *ty = cl_st_find(st, n);
    if (!t || !l || t->ndim != 2 || t->numel > 64 || l->numel > 8) return -1;
    b->B = (int)t->shape[0], b->T = (int)t->shape[1];
    memcpy(b->ids, t->data, t->numel * 4);
    memcpy(b->len, l->data, l->numel * 4);
    if (ty) memcpy(b->types, ty->data, ty->numel * 4);
    else memset(b->types, 0, sizeof b->types);
    return 0;
}

/* logits (B x L) of model with hook (may be NULL) into out; 0 on success */
static int run(cl_weights *m, const tbatch *b, const cl_lin_hook *hook, float *out) {
    cl_encoder *e = NULL;
    cl_error err = {0};
    int rc = cl_encoder_new(&e, m, b->B, b->T, 0, &err);
    const float *lg = NULL;
    cl_fwd_opts fo = {0};
    fo.hook = hook;
    cl_batch bt = {b->ids, m->cfg.type_vocab_size > 1 ? b->types : NULL, b->len, b->B, b->T};
    if (!rc) rc = cl_encoder_forward(e, &bt, &fo, &lg, NULL, &err);
    if (!rc) memcpy(out, lg, (size_t)b->B * m->head_out.d_out * sizeof(float));
    else CHECK(0, "forward: %s", err.msg);
    cl_encoder_free(e);
    return rc;
}

static double maxdiff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
    return d;
}

static int load_base(cl_weights *m, const char *arch, const char *adapter_dir) {
    cl_error err = {0};
    int L = 0;
    if (adapter_dir && cl_peft_num_labels(adapter_dir, &L, &err)) {
        CHECK(0, "cl_peft_num_labels(%s): %s", adapter_dir, err.msg);
        return -1;
    }
    char d[256];
    snprintf(d, sizeof d, DATA "/%s", arch);
    cl_load_opts lo = {.num_labels = L};
    if (cl_model_load(m, d, &lo, &err)) {
        CHECK(0, "load %s: %s", d, err.msg);
        return -1;
    }
    return 0;
}

/* PEFT's logits for adapter NAME, unmerged and merged */
static void check_adapter(const cl_safetensors *refs, const char *name, const char *arch, const char *dir_override) {
    tbatch b;
    CHECK(load_batch(refs, arch, &b) == 0, "batch %s", arch);
    char dir[300], key[96];
    snprintf(dir, sizeof dir, DATA "/%s", name);
    if (dir_override) snprintf(dir, sizeof dir, "%s", dir_override);
    cl_weights m;
    if (load_base(&m, arch, dir)) return;
    float want[64], got[64], base[64];
    snprintf(key, sizeof key, "logits.%s", name);
    size_t n = (size_t)b.B * 2;
    if (ref_load(refs, key, want, n)) {
        cl_model_free(&m);
        return;
    }
    cl_error err = {0};
    cl_peft *pf = NULL;
    int rc = cl_peft_load(&pf, dir, &m, &err);
    CHECK(rc == 0, "cl_peft_load(%s): %s", dir, err.msg);
    if (rc) {
        cl_model_free(&m);
        return;
    }
    cl_lin_hook h = cl_adapter_hook(pf->ad);
    if (!run(&m, &b, &h, got)) {
        double d = maxdiff(got, want, n);
        if (d > max_diff_all) max_diff_all = d;
        CHECK(d <= 1e-4, "%s: max |condlora - PEFT| logit difference %.3g", name, d);
        if (getenv("CL_TEST_VERBOSE")) fprintf(stderr, "  %s: max |diff| %.3g\n", name, d);
    }
    /* merged: W += delta, no hook */
    rc = cl_adapter_merge(pf->ad, &err);
    CHECK(rc == 0, "merge %s: %s", name, err.msg);
    if (!rc && !run(&m, &b, NULL, got)) {
        double d = maxdiff(got, want, n);
        if (d > max_diff_merged) max_diff_merged = d;
        CHECK(d <= 1e-4, "%s merged: max |condlora - PEFT| logit difference %.3g", name, d);
    }
    if (!rc) CHECK(cl_adapter_unmerge(pf->ad, &err) == 0, "%s", err.msg);
    cl_peft_free(pf);
    /* the model is the base model again (W restored, head pointers back) */
    snprintf(key, sizeof key, "logits.%s", arch);
    if (!ref_load(refs, key, base, n) && !run(&m, &b, NULL, got))
        CHECK(maxdiff(got, base, n) <= 1e-4, "%s: base logits after cl_peft_free (diff %.3g)", name,
              maxdiff(got, base, n));
    cl_model_free(&m);
}

TEST(peft_adapters_match_peft_logits) {
    cl_safetensors refs;
    cl_error err = {0};
    if (cl_st_open(&refs, DATA "/refs.safetensors", &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    static const char *names[][2] = {{"bert_lora", "bert"},       {"bert_pattern", "bert"}, {"bert_regex", "bert"},
                                     {"bert_layers", "bert"},     {"bert_adalora", "bert"}, {"roberta_lora", "roberta"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) check_adapter(&refs, names[i][0], names[i][1], NULL);
    /* the base models alone */
    for (int a = 0; a < 2; a++) {
        const char *arch = a ? "roberta" : "bert";
        tbatch b;
        cl_weights m;
        float want[64], got[64];
        char key[64];
        snprintf(key, sizeof key, "logits.%s", arch);
        if (load_batch(&refs, arch, &b) || load_base(&m, arch, NULL)) continue;
        if (!ref_load(&refs, key, want, (size_t)b.B * 2) && !run(&m, &b, NULL, got))
            CHECK(maxdiff(got, want, (size_t)b.B * 2) <= 1e-4, "%s base", arch);
        cl_model_free(&m);
    }
    cl_st_close(&refs);
}

/* MPNet (tests/data/peft/mpnet*, scripts/gen_peft_refs.py --mpnet): PEFT's LoRA on q, v and on q, k, v, o */
TEST(peft_mpnet_adapters) {
    cl_safetensors refs;
    cl_error err = {0};
    if (cl_st_open(&refs, DATA "/refs_mpnet.safetensors", &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    check_adapter(&refs, "mpnet_lora", "mpnet", NULL);
    check_adapter(&refs, "mpnet_o", "mpnet", NULL);
    tbatch b;
    cl_weights m;
    float want[64], got[64];
    if (!load_batch(&refs, "mpnet", &b) && !load_base(&m, "mpnet", NULL)) {
        if (!ref_load(&refs, "logits.mpnet", want, (size_t)b.B * 2) && !run(&m, &b, NULL, got))
            CHECK(maxdiff(got, want, (size_t)b.B * 2) <= 1e-4, "mpnet base");
        /* mpnet_o adapts exactly q, k, v and o (attention.attn.o), not the FFN's output.dense */
        cl_peft *pf = NULL;
        int L = 0;
        cl_peft_num_labels(DATA "/mpnet_o", &L, &err);
        if (cl_peft_load(&pf, DATA "/mpnet_o", &m, &err) == 0) {
            int rk[64];
            cl_adapter_ranks(pf->ad, rk);
            for (int l = 0; l < 2; l++)
                for (int k = 0; k < CL_MOD_COUNT; k++)
                    CHECK(rk[l * CL_MOD_COUNT + k] == (k <= CL_MOD_ATTN_OUT ? 4 : -1), "mpnet_o layer %d %s rank %d", l,
                          cl_module_names[k], rk[l * CL_MOD_COUNT + k]);
            cl_peft_free(pf);
        } else CHECK(0, "%s", err.msg);
        cl_model_free(&m);
    }
    cl_st_close(&refs);
}

/* what was built: modules, ranks and scales of the rank_pattern / regex / layers_to_transform adapters */
TEST(module_selection_and_ranks) {
    cl_error err = {0};
    cl_weights m;
    if (load_base(&m, "bert", DATA "/bert_pattern")) return;
    cl_peft *pf = NULL;
    if (cl_peft_load(&pf, DATA "/bert_pattern", &m, &err)) {
        CHECK(0, "%s", err.msg);
        cl_model_free(&m);
        return;
    }
    int rk[2 * CL_MOD_COUNT];
    cl_adapter_ranks(pf->ad, rk);
    /* query, value, intermediate.dense, output.dense and (suffix "output.dense") attention.output.dense */
    CHECK(pf->n_modules == 10, "%d modules", pf->n_modules);
    CHECK(rk[CL_MOD_QUERY] == 4 && rk[CL_MOD_VALUE] == 2 && rk[CL_MOD_KEY] == -1 && rk[CL_MOD_ATTN_OUT] == 4 &&
          rk[CL_MOD_INTER] == 6 && rk[CL_MOD_OUT] == 4, "layer 0 ranks %d %d %d %d %d %d", rk[0], rk[1], rk[2], rk[3],
          rk[4], rk[5]);
    CHECK(rk[CL_MOD_COUNT + CL_MOD_VALUE] == 4 && rk[CL_MOD_COUNT + CL_MOD_INTER] == 6, "layer 1 ranks");
    CHECK(pf->has_head && pf->num_labels == 2 && !strcmp(pf->peft_type, "LORA"));
    cl_peft_free(pf);
    pf = NULL;
    if (cl_peft_load(&pf, DATA "/bert_regex", &m, &err) == 0) {
        cl_adapter_ranks(pf->ad, rk);
        int n = 0;
        for (int i = 0; i < 2 * CL_MOD_COUNT; i++) n += rk[i] >= 0;
        CHECK(n == 2 && rk[CL_MOD_COUNT + CL_MOD_KEY] == 3 && rk[CL_MOD_COUNT + CL_MOD_VALUE] == 3, "regex: %d", n);
        cl_peft_free(pf);
    } else CHECK(0, "%s", err.msg);
    pf = NULL;
    if (cl_peft_load(&pf, DATA "/bert_layers", &m, &err) == 0) {
        cl_adapter_ranks(pf->ad, rk);
        CHECK(rk[CL_MOD_QUERY] == -1 && rk[CL_MOD_COUNT + CL_MOD_QUERY] == 4 && rk[CL_MOD_COUNT + CL_MOD_KEY] == 4,
              "layers_to_transform [1]");
        cl_peft_free(pf);
    } else CHECK(0, "%s", err.msg);
    cl_model_free(&m);
}

/* ---- helpers writing adapter directories ---- */
static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (f) fputs(s, f), fclose(f);
}

static char *read_text(const char *path) {
    char *s = NULL;
    size_t n = 0;
    cl_error e = {0};
    return cl_read_file(path, &s, &n, &e) ? NULL : s;
}

/* copies SRC's tensors into DIR/adapter_model.safetensors through fn(name) -> new name (NULL drops it) plus an
 * optional extra tensor; shape of the tensor named reshape_name becomes (5, d_in) */
typedef const char *(*rename_fn)(const char *name, char *buf, size_t n);
static int copy_adapter(const char *src, const char *dir, rename_fn fn, const char *extra, const char *reshape_name,
                        const char *config_text) {
    cl_error e = {0};
    char p[512];
    cl_mkdir_p(dir, &e);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", src);
    cl_safetensors st;
    if (cl_st_open(&st, p, &e)) return -1;
    cl_st_writer *w = cl_st_writer_new();
    float buf[8192];
    for (int i = 0; i < st.n; i++) {
        char nb[256];
        const char *nn = fn ? fn(st.t[i].name, nb, sizeof nb) : st.t[i].name;
        if (!nn || st.t[i].numel > 8192) continue;
        cl_st_to_f32(&st, &st.t[i], buf, &e);
        int64_t sh[2] = {st.t[i].shape[0], st.t[i].ndim > 1 ? st.t[i].shape[1] : 0};
        if (reshape_name && !strcmp(nn, reshape_name)) sh[0] = 5;
        cl_st_writer_add_f32(w, nn, st.t[i].ndim, sh, buf, &e);
    }
    if (extra) {
        int64_t sh[2] = {4, 32};
        cl_st_writer_add_f32(w, extra, 2, sh, buf, &e);
    }
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    int rc = cl_st_writer_save(w, p, &e);
    cl_st_writer_free(w);
    cl_st_close(&st);
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    if (config_text) write_text(p, config_text);
    else {
        char s[512];
        snprintf(s, sizeof s, "%s/adapter_config.json", src);
        char *t = read_text(s);
        if (t) write_text(p, t);
        free(t);
    }
    return rc;
}

static const char *to_default(const char *name, char *buf, size_t n) {
    /* PEFT's in-memory names: lora_A.default.weight, classifier.modules_to_save.default.weight */
    const char *q = strstr(name, ".lora_");
    if (q) snprintf(buf, n, "%.*s.%.6s.default%s", (int)(q - name), name, q + 1, q + 7);
    else if (!strncmp(name, "base_model.model.classifier.", 28))
        snprintf(buf, n, "base_model.model.classifier.modules_to_save.default.%s", name + 28);
    else snprintf(buf, n, "%s", name);
    return buf;
}

static const char *drop_one(const char *name, char *buf, size_t n) {
    return strstr(name, "layer.1.attention.self.value.lora_B") ? NULL : name;
}

TEST(default_names_accepted) {
    cl_safetensors refs;
    cl_error err = {0};
    if (cl_st_open(&refs, DATA "/refs.safetensors", &err)) return;
    char d[400];
    snprintf(d, sizeof d, "%s/bert_lora_default", TMP);
    CHECK(copy_adapter(DATA "/bert_lora", d, to_default, NULL, NULL, NULL) == 0);
    check_adapter(&refs, "bert_lora", "bert", d);
    cl_st_close(&refs);
}

/* a failing load: non-zero, the message names NEEDLE1 (and NEEDLE2) */
static void expect_fail(const char *dir, const char *arch, int num_labels, const char *n1, const char *n2,
                        const char *what) {
    cl_weights m;
    cl_error err = {0};
    char d[256];
    snprintf(d, sizeof d, DATA "/%s", arch);
    cl_load_opts lo = {.num_labels = num_labels};
    if (cl_model_load(&m, d, &lo, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    cl_peft *pf = NULL;
    int rc = cl_peft_load(&pf, dir, &m, &err);
    CHECK(rc != 0 && pf == NULL, "%s: accepted", what);
    if (getenv("CL_TEST_VERBOSE")) fprintf(stderr, "  %s: %s\n", what, err.msg);
    CHECK(strstr(err.msg, n1) && (!n2 || strstr(err.msg, n2)), "%s: message '%s' lacks '%s' / '%s'", what, err.msg,
          n1, n2 ? n2 : "");
    cl_peft_free(pf);
    cl_model_free(&m);
}

TEST(bad_adapter_directories) {
    char d[400];
    const char *okcfg = NULL;
    char *cfg = read_text(DATA "/bert_lora/adapter_config.json");
    okcfg = cfg;
    CHECK(cfg != NULL);
    if (!cfg) return;
    /* missing tensor */
    snprintf(d, sizeof d, "%s/bad_missing", TMP);
    copy_adapter(DATA "/bert_lora", d, drop_one, NULL, NULL, NULL);
    expect_fail(d, "bert", 2, "bad_missing/adapter_model.safetensors",
                "base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight", "missing tensor");
    /* wrong shape */
    snprintf(d, sizeof d, "%s/bad_shape", TMP);
    copy_adapter(DATA "/bert_lora", d, NULL, NULL,
                 "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight", NULL);
    expect_fail(d, "bert", 2, "bad_shape/adapter_model.safetensors", "layer.0.attention.self.query.lora_A", "shape");
    /* unexpected tensor */
    snprintf(d, sizeof d, "%s/bad_extra", TMP);
    copy_adapter(DATA "/bert_lora", d, NULL, "base_model.model.bert.encoder.layer.0.attention.self.key.lora_A.weight",
                 NULL, NULL);
    expect_fail(d, "bert", 2, "bad_extra/adapter_model.safetensors", "self.key.lora_A", "unexpected tensor");
    /* bad JSON */
    snprintf(d, sizeof d, "%s/bad_json", TMP);
    copy_adapter(DATA "/bert_lora", d, NULL, NULL, NULL, "{\"peft_type\": \"LORA\", \"r\": 4,,}");
    expect_fail(d, "bert", 2, "bad_json/adapter_config.json", "JSON", "bad JSON");
    /* unsupported peft_type, bias, DoRA, r */
    struct { const char *from, *to, *needle, *what; } edits[] = {
        {"\"peft_type\": \"LORA\"", "\"peft_type\": \"IA3\"", "peft_type", "IA3"},
        {"\"bias\": \"none\"", "\"bias\": \"all\"", "bias", "bias all"},
        {"\"use_dora\": false", "\"use_dora\": true", "use_dora", "DoRA"},
        {"\"r\": 4", "\"r\": 0", "'r'", "r 0"},
        {"\"r\": 4", "\"r\": 5", "shape", "r 5 against rank-4 tensors"},
        {"\"r\": 4", "\"r\": \"four\"", "'r'", "r a string"},
        {"\"query\"", "\"(query\"", "regular expression", "bad regex"},
        {"\"query\"", "\"dense\"", "pooler.dense", "target on the pooler"},
        {"\"query\"", "\"nothing\"", "target_modules", "no module matches"},
        {"\"peft_type\": \"LORA\"", "\"peft_typo\": \"LORA\"", "peft_type", "no peft_type"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        const char *at = strstr(okcfg, edits[i].from);
        CHECK(at != NULL, "%s: '%s' not in the config", edits[i].what, edits[i].from);
        if (!at) continue;
        char text[4096];
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - okcfg), okcfg, edits[i].to, at + strlen(edits[i].from));
        const char *tm = strstr(okcfg, "\"target_modules\""), *end = tm ? strchr(tm, ']') : NULL;
        if (!strcmp(edits[i].what, "bad regex") && end) /* a regex target_modules string */
            snprintf(text, sizeof text, "%.*s\"target_modules\": \"(query\"%s", (int)(tm - okcfg), okcfg, end + 1);
        if (!strcmp(edits[i].what, "no module matches") && end)
            snprintf(text, sizeof text, "%.*s\"target_modules\": [\"nothing\"]%s", (int)(tm - okcfg), okcfg, end + 1);
        snprintf(d, sizeof d, "%s/bad_cfg_%zu", TMP, i);
        copy_adapter(DATA "/bert_lora", d, NULL, NULL, NULL, text);
        expect_fail(d, "bert", 2, "adapter_config.json", edits[i].needle, edits[i].what);
    }
    /* head with another label count than the model's */
    expect_fail(DATA "/bert_lora", "bert", 3, "adapter_model.safetensors", "labels", "3-label model");
    /* a RoBERTa adapter on BERT; BERT and MPNet adapters on each other */
    expect_fail(DATA "/roberta_lora", "bert", 2, "roberta_lora/adapter_model.safetensors", "RoBERTa", "wrong arch");
    expect_fail(DATA "/bert_lora", "mpnet", 2, "bert_lora/adapter_model.safetensors", "base model is MPNet",
                "BERT adapter on MPNet");
    expect_fail(DATA "/mpnet_lora", "bert", 2, "mpnet_lora/adapter_model.safetensors", "an MPNet model",
                "MPNet adapter on BERT");
    /* MPNet: PEFT has no default target modules (null is refused as PEFT refuses it), and BERT's names match nothing */
    {
        char *mc = read_text(DATA "/mpnet_lora/adapter_config.json");
        const char *tm = mc ? strstr(mc, "\"target_modules\"") : NULL, *end = tm ? strchr(tm, ']') : NULL;
        CHECK(end != NULL, "mpnet_lora config");
        if (end) {
            char text[4096];
            snprintf(text, sizeof text, "%.*s\"target_modules\": null%s", (int)(tm - mc), mc, end + 1);
            snprintf(d, sizeof d, "%s/mpnet_null", TMP);
            copy_adapter(DATA "/mpnet_lora", d, NULL, NULL, NULL, text);
            expect_fail(d, "mpnet", 2, "mpnet_null/adapter_config.json", "'target_modules' is null", "null on MPNet");
            snprintf(text, sizeof text, "%.*s\"target_modules\": [\"query\", \"value\"]%s", (int)(tm - mc), mc,
                     end + 1);
            snprintf(d, sizeof d, "%s/mpnet_bertnames", TMP);
            copy_adapter(DATA "/mpnet_lora", d, NULL, NULL, NULL, text);
            expect_fail(d, "mpnet", 2, "mpnet_bertnames/adapter_config.json", "end in q, k, v, o",
                        "BERT names on MPNet");
        }
        free(mc);
    }
    /* not an adapter directory */
    expect_fail("/nonexistent/adapter", "bert", 2, "/nonexistent/adapter", NULL, "missing directory");
    expect_fail(DATA "/bert", "bert", 2, "adapter_config.json", NULL, "a model directory");
    snprintf(d, sizeof d, "%s/bad_nost", TMP);
    cl_error e = {0};
    cl_mkdir_p(d, &e);
    char p[500];
    snprintf(p, sizeof p, "%s/adapter_config.json", d);
    write_text(p, okcfg);
    expect_fail(d, "bert", 2, "bad_nost/adapter_model.safetensors", NULL, "no safetensors");
    free(cfg);
}

static int export_cb(void *user, const char *name, int ndim, const int64_t *shape, const float *data, cl_error *err) {
    return cl_st_writer_add_f32((cl_st_writer *)user, name, ndim, shape, data, err);
}

/* cl_peft_write_config: a condlora adapter exported (as runio.c does) + the config reloads to the same logits */
/* an adapter with options o on m, its parameters in P (initialised by the caller) */
static int make_adapter(cl_adapter **ad, const cl_adapter_opts *o, cl_weights *m, cl_params *P, cl_error *err) {
    int rc = cl_adapter_create(ad, o, m, err);
    if (!rc) rc = cl_adapter_register(*ad, P, err);
    if (!rc) rc = cl_params_alloc(P, err);
    if (!rc) rc = cl_adapter_bind(*ad, P, err);
    return rc;
}

static void roundtrip_arch(const char *arch, cl_method method, const char *layers, int zero_module, const char *tag,
                           const char *want1, const char *want2) {
    cl_safetensors refs;
    cl_error err = {0};
    if (cl_st_open(&refs, strcmp(arch, "mpnet") ? DATA "/refs.safetensors" : DATA "/refs_mpnet.safetensors", &err))
        return;
    tbatch b;
    load_batch(&refs, arch, &b);
    cl_st_close(&refs);
    cl_weights m;
    if (load_base(&m, arch, NULL)) return;
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, method);
    o.target_modules = "query,value,output.dense";
    o.layers = layers;
    o.r = 4;
    o.alpha = 6;
    o.ada_target_r = 2;
    cl_adapter *ad = NULL;
    cl_params P;
    cl_params_init(&P);
    int rc = make_adapter(&ad, &o, &m, &P, &err);
    CHECK(rc == 0, "%s: %s", tag, err.msg);
    if (rc) goto out;
    cl_adapter_init(ad, 5);
    cl_rng rng;
    cl_rng_seed(&rng, 9);
    char v1[96], q0[96]; /* "layer.1.attention.self.value" in this architecture's names */
    snprintf(v1, sizeof v1, "layer.1.%s", cl_model_arch(&m)->lin[CL_MOD_VALUE]);
    snprintf(q0, sizeof q0, "layer.0.%s", cl_model_arch(&m)->lin[CL_MOD_QUERY]);
    for (int i = 0; i < P.n; i++) {
        const cl_param_tensor *t = &P.t[i];
        float *x = P.param + t->offset;
        if (strstr(t->name, "lora_B") || strstr(t->name, "theta_B"))
            for (size_t k = 0; k < t->numel; k++) x[k] = 0.3f * (float)cl_rng_normal(&rng);
        if (strstr(t->name, "lora_E")) { /* AdaLoRA: as the SaLoRA gates below, E = 0 removes a component */
            for (size_t k = 0; k < t->numel; k++) x[k] = 0.5f + 0.25f * (float)k;
            if (strstr(t->name, v1)) x[0] = x[2] = 0.0f;
            if (zero_module && strstr(t->name, q0))
                for (size_t k = 0; k < t->numel; k++) x[k] = 0.0f;
        }
        if (strstr(t->name, "salora_log_alpha")) { /* layer 1 value keeps 2 of 4 components; zero_module: layer
                                                      * 0 query keeps none */
            for (size_t k = 0; k < t->numel; k++) x[k] = 3.0f + (float)k;
            if (strstr(t->name, v1)) x[0] = x[2] = -10.0f;
            if (zero_module && strstr(t->name, q0))
                for (size_t k = 0; k < t->numel; k++) x[k] = -10.0f;
        }
    }
    cl_adapter_materialise(ad);
    float want[64], got[64];
    cl_lin_hook h = cl_adapter_hook(ad);
    if (run(&m, &b, &h, want)) goto out;
    char dir[400], p[500];
    snprintf(dir, sizeof dir, "%s/rt_%s", TMP, tag);
    cl_mkdir_p(dir, &err);
    cl_st_writer *w = cl_st_writer_new();
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    rc = cl_adapter_export(ad, export_cb, w, &err);
    if (!rc) rc = cl_st_writer_save(w, p, &err);
    cl_st_writer_free(w);
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    char base_dir[64];
    snprintf(base_dir, sizeof base_dir, "tests/data/peft/%s", arch);
    if (!rc) rc = cl_peft_write_config(p, ad, base_dir, 0, &err);
    CHECK(rc == 0, "%s: %s", tag, err.msg);
    char *txt = read_text(p);
    CHECK(txt && strstr(txt, want1) && (!want2 || strstr(txt, want2)), "%s: config lacks '%s' / '%s':\n%s", tag,
          want1, want2 ? want2 : "", txt ? txt : "");
    CHECK(txt && !strstr(txt, "\"condlora\""), "%s: PEFT 0.10 refuses unknown keys in adapter_config.json", tag);
    free(txt);
    snprintf(p, sizeof p, "%s/condlora_adapter.json", dir);
    txt = read_text(p);
    CHECK(txt && strstr(txt, cl_method_names[method]), "%s: condlora_adapter.json", tag);
    free(txt);
    cl_adapter_free(ad);
    ad = NULL;
    cl_peft *pf = NULL;
    rc = cl_peft_load(&pf, dir, &m, &err);
    CHECK(rc == 0, "%s reload: %s", tag, err.msg);
    if (!rc) {
        cl_lin_hook h2 = cl_adapter_hook(pf->ad);
        if (!run(&m, &b, &h2, got))
            CHECK(maxdiff(got, want, (size_t)b.B * 2) <= 1e-5, "%s: reloaded logits differ by %.3g", tag,
                  maxdiff(got, want, (size_t)b.B * 2));
        cl_peft_free(pf);
    }
out:
    cl_adapter_free(ad);
    cl_params_free(&P);
    cl_model_free(&m);
}

static void roundtrip(cl_method method, const char *layers, int zero_module, const char *tag, const char *want1,
                      const char *want2) {
    roundtrip_arch("bert", method, layers, zero_module, tag, want1, want2);
}

TEST(write_config_roundtrip) {
    /* targets query, value, output.dense: a regex string, since the list entry "output.dense" would also name
     * attention.output.dense for PEFT; no rank_pattern for plain LoRA */
    roundtrip(CL_METHOD_LORA, "", 0, "lora", "\"target_modules\":\t\"(?:.*\\\\.)?encoder", "\"rank_pattern\":\t{\n\t}");
    /* SaLoRA: layer 1 value keeps 2 of 4 components (rank_pattern); then also layer 0 query none (left out) */
    roundtrip(CL_METHOD_SALORA, "", 0, "salora", "\"encoder.layer.1.attention.self.value\":\t2", "\"r\":\t4");
    roundtrip(CL_METHOD_SALORA, "", 1, "salora_zero", "0\\\\.attention\\\\.self\\\\.value|", "rank_pattern");
    roundtrip(CL_METHOD_LORA, "1", 0, "lora_layer1", "1\\\\.attention\\\\.self\\\\.query", NULL);
    /* AdaLoRA as plain LoRA: E zeroed as SaLoRA's gates above (2 of 4 kept in layer 1 value; none in layer 0 query) */
    roundtrip(CL_METHOD_ADALORA, "", 0, "adalora", "\"encoder.layer.1.attention.self.value\":\t2", "\"LORA\"");
    roundtrip(CL_METHOD_ADALORA, "", 1, "adalora_zero", "0\\\\.attention\\\\.self\\\\.value|", "rank_pattern");
    /* MPNet: PEFT's names q, v; "output.dense" names only the FFN output there (the attention output is "o"), so
     * the same three targets export as a list */
    roundtrip_arch("mpnet", CL_METHOD_LORA, "", 0, "mpnet_lora",
                   "\"target_modules\":\t[\"q\", \"v\", \"output.dense\"]", "\"rank_pattern\":\t{\n\t}");
    roundtrip_arch("mpnet", CL_METHOD_SALORA, "", 0, "mpnet_salora", "\"encoder.layer.1.attention.attn.v\":\t2", NULL);
}

TEST(write_config_list_form) {
    /* query + value on layer 1: a list and layers_to_transform */
    cl_error err = {0};
    cl_weights m;
    if (load_base(&m, "bert", NULL)) return;
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, CL_METHOD_CONDLORA);
    o.layers = "1";
    cl_adapter *ad = NULL;
    cl_params P;
    cl_params_init(&P);
    int rc = make_adapter(&ad, &o, &m, &P, &err);
    char p[400];
    snprintf(p, sizeof p, "%s/cfg_list.json", TMP);
    if (!rc) rc = cl_peft_write_config(p, ad, "base", 0, &err);
    CHECK(rc == 0, "%s", err.msg);
    char *t = read_text(p);
    CHECK(t && strstr(t, "\"target_modules\":\t[\"query\", \"value\"]") && strstr(t, "\"layers_to_transform\":\t[1]") &&
              strstr(t, "\"peft_type\":\t\"LORA\"") && strstr(t, "\"base_model_name_or_path\":\t\"base\""),
          "%s", t ? t : "");
    free(t);
    cl_adapter_free(ad);
    cl_params_free(&P);
    cl_model_free(&m);
}

/* condlora's configurations from before cl_peft_write_config ("condlora" object, no rank_pattern): SaLoRA ranks from
 * the tensors, layers from condlora.options */
TEST(old_condlora_config) {
    char d[400], p[500], src[400];
    snprintf(src, sizeof src, "%s/rt_salora_zero", TMP);
    snprintf(d, sizeof d, "%s/rt_salora_zero_old", TMP);
    snprintf(p, sizeof p, "%s/adapter_config.json", src);
    if (access(p, F_OK)) return; /* write_config_roundtrip failed */
    copy_adapter(src, d, NULL, NULL, NULL, NULL);
    snprintf(p, sizeof p, "%s/adapter_config.json", d);
    const char *old =
        "{\"peft_type\":\"LORA\",\"task_type\":\"SEQ_CLS\",\"base_model_name_or_path\":\"x\",\"r\":4,\"lora_alpha\":6,"
        "\"lora_dropout\":0,\"use_rslora\":false,\"bias\":\"none\",\"inference_mode\":true,\"fan_in_fan_out\":false,"
        "\"target_modules\":[\"query\",\"value\",\"output.dense\"],\"modules_to_save\":[\"classifier\",\"score\"],"
        "\"condlora\":{\"method\":\"salora\",\"options\":{\"method\":\"salora\",\"target_modules\":"
        "\"query,value,output.dense\",\"layers\":\"\"},\"note\":\"\"}}";
    cl_weights m;
    if (load_base(&m, "bert", NULL)) return;
    cl_error err = {0};
    cl_peft *pf = NULL;
    CHECK(cl_peft_load(&pf, d, &m, &err) == 0, "%s", err.msg);
    float want[64], got[64];
    cl_safetensors refs;
    tbatch b;
    if (cl_st_open(&refs, DATA "/refs.safetensors", &err)) return;
    load_batch(&refs, "bert", &b);
    cl_st_close(&refs);
    int ok = pf != NULL;
    if (pf) {
        cl_lin_hook h = cl_adapter_hook(pf->ad);
        ok = !run(&m, &b, &h, want);
        cl_peft_free(pf);
        pf = NULL;
    }
    write_text(p, old);
    CHECK(cl_peft_load(&pf, d, &m, &err) == 0, "old format: %s", err.msg);
    if (pf && ok) {
        int rk[2 * CL_MOD_COUNT];
        cl_adapter_ranks(pf->ad, rk);
        CHECK(rk[CL_MOD_QUERY] == -1 && rk[CL_MOD_COUNT + CL_MOD_VALUE] == 2 && rk[CL_MOD_OUT] == 4 &&
                  rk[CL_MOD_ATTN_OUT] == -1, "ranks from the tensors, modules from condlora.options");
        cl_lin_hook h = cl_adapter_hook(pf->ad);
        if (!run(&m, &b, &h, got)) CHECK(maxdiff(got, want, (size_t)b.B * 2) <= 1e-6);
    }
    cl_peft_free(pf);
    cl_model_free(&m);
}

/* a condlora run directory resolves to RUN/best */
TEST(run_directory_resolves_to_best) {
    char d[400], out[4096];
    cl_error err = {0};
    snprintf(d, sizeof d, "%s/run/best", TMP);
    CHECK(copy_adapter(DATA "/bert_lora", d, NULL, NULL, NULL, NULL) == 0);
    snprintf(d, sizeof d, "%s/run", TMP);
    CHECK(cl_peft_resolve_dir(d, out, sizeof out, &err) == 0 && strstr(out, "/run/best"), "%s", err.msg);
    int L = 0;
    CHECK(cl_peft_num_labels(d, &L, &err) == 0 && L == 2, "%s", err.msg);
    CHECK(cl_peft_num_labels(DATA "/bert_regex", &L, &err) == 0 && L == 2, "%s", err.msg);
}

/* popen CMD; stdout+stderr into buf; returns the exit status */
static int sh(const char *cmd, char *buf, size_t n) {
    FILE *p = popen(cmd, "r");
    size_t got = p ? fread(buf, 1, n - 1, p) : 0;
    buf[got] = 0;
    return p ? pclose(p) : -1;
}

/* parses N rows of L tab-separated floats (after skip lines) */
static int parse_rows(const char *s, int skip, int n, int L, float *out) {
    for (int k = 0; k < skip; k++) {
        s = strchr(s, '\n');
        if (!s) return -1;
        s++;
    }
    for (int i = 0; i < n * L; i++) {
        char *e;
        out[i] = strtof(s, &e);
        if (e == s) return -1;
        s = e;
    }
    return 0;
}

/* condlora predict --adapter and condlora merge through the CLI */
TEST(cli_predict_and_merge) {
    const char *bin = getenv("CL_BIN");
    if (!bin) {
        SKIP("CL_BIN not set (make test sets it)");
        return;
    }
    cl_safetensors refs;
    cl_error err = {0};
    if (cl_st_open(&refs, DATA "/refs.safetensors", &err)) return;
    tbatch b;
    load_batch(&refs, "bert", &b);
    float want[64], got[64];
    ref_load(&refs, "logits.bert_pattern", want, (size_t)b.B * 2);
    cl_st_close(&refs);
    char in[400], cmd[2048], buf[8192], merged[400];
    snprintf(in, sizeof in, "%s/ids.tsv", TMP);
    FILE *f = fopen(in, "w");
    for (int r = 0; r < b.B; r++) /* pair columns: type-0 ids, then type-1 ids */
        for (int part = 0; part < 2; part++) {
            int first = 1;
            for (int t = 0; t < b.len[r]; t++)
                if (b.types[r * b.T + t] == part) fprintf(f, "%s%d", first ? "" : " ", b.ids[r * b.T + t]), first = 0;
            fputc(part ? '\n' : '\t', f);
        }
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s predict --model " DATA "/bert --adapter " DATA "/bert_pattern --input %s --ids "
                              "--text-columns 0,1 2>&1", bin, in);
    int st = sh(cmd, buf, sizeof buf);
    CHECK(st == 0 && parse_rows(buf, 0, b.B, 2, got) == 0, "%s: %s", cmd, buf);
    if (st == 0) CHECK(maxdiff(got, want, (size_t)b.B * 2) <= 1e-4, "predict --adapter: %.3g",
                       maxdiff(got, want, (size_t)b.B * 2));
    /* GLUE format: header, index, argmax */
    snprintf(cmd, sizeof cmd, "%s predict --model " DATA "/bert --adapter " DATA "/bert_pattern --input %s --ids "
                              "--text-columns 0,1 --format glue --task rte 2>&1", bin, in);
    st = sh(cmd, buf, sizeof buf);
    char expect[512] = "index\tprediction\n";
    for (int r = 0; r < b.B; r++)
        snprintf(expect + strlen(expect), sizeof expect - strlen(expect), "%d\t%s\n", r,
                 want[2 * r + 1] > want[2 * r] ? "not_entailment" : "entailment");
    CHECK(st == 0 && !strcmp(buf, expect), "glue format: '%s', expected '%s'", buf, expect);
    /* merge, then predict with the merged model alone */
    snprintf(merged, sizeof merged, "%s/merged", TMP);
    snprintf(cmd, sizeof cmd, "%s merge --model " DATA "/bert --adapter " DATA "/bert_pattern --out %s 2>&1", bin,
             merged);
    st = sh(cmd, buf, sizeof buf);
    CHECK(st == 0 && strstr(buf, "merged 10 adapted modules"), "%s: %s", cmd, buf);
    snprintf(cmd, sizeof cmd, "%s predict --model %s --input %s --ids --text-columns 0,1 2>&1", bin, merged, in);
    st = sh(cmd, buf, sizeof buf);
    CHECK(st == 0 && parse_rows(buf, 0, b.B, 2, got) == 0, "%s: %s", cmd, buf);
    if (st == 0) CHECK(maxdiff(got, want, (size_t)b.B * 2) <= 1e-4, "merged model: %.3g",
                       maxdiff(got, want, (size_t)b.B * 2));
    char p[500];
    snprintf(p, sizeof p, "%s/tokenizer.json", merged);
    CHECK(access(p, R_OK) == 0, "tokenizer copied");
    snprintf(p, sizeof p, "%s/config.json", merged);
    char *cfg = read_text(p);
    CHECK(cfg && strstr(cfg, "BertForSequenceClassification") && strstr(cfg, "\"LABEL_1\"") &&
          strstr(cfg, "\"hidden_size\":\t32"), "%s", cfg ? cfg : "");
    free(cfg);
    /* errors: exit non-zero, the message names the file */
    snprintf(cmd, sizeof cmd, "%s predict --model " DATA "/bert --adapter %s/bad_cfg_0 --input %s --ids 2>&1", bin,
             TMP, in);
    st = sh(cmd, buf, sizeof buf);
    CHECK(st != 0 && strstr(buf, "bad_cfg_0/adapter_config.json") && strstr(buf, "IA3"), "%s", buf);
    snprintf(cmd, sizeof cmd, "%s merge --model " DATA "/bert --adapter %s/bad_shape --out %s/m2 2>&1", bin, TMP, TMP);
    st = sh(cmd, buf, sizeof buf);
    CHECK(st != 0 && strstr(buf, "bad_shape/adapter_model.safetensors"), "%s", buf);
    snprintf(p, sizeof p, "%s/m2/model.safetensors", TMP);
    CHECK(access(p, F_OK) != 0, "no output after a failed merge");
    snprintf(cmd, sizeof cmd, "%s merge --model " DATA "/bert --adapter /nonexistent --out %s/m3 2>&1", bin, TMP);
    CHECK(sh(cmd, buf, sizeof buf) != 0 && strstr(buf, "/nonexistent"), "%s", buf);
    snprintf(cmd, sizeof cmd, "%s merge --model " DATA "/bert --adapter " DATA "/bert_lora --out " DATA "/bert 2>&1",
             bin);
    CHECK(sh(cmd, buf, sizeof buf) != 0, "merge over the base model refused: %s", buf);
    snprintf(cmd, sizeof cmd, "%s predict --model " DATA "/bert --adapter " DATA "/bert_lora --input %s --ids "
                              "--format glue --task stsb 2>&1", bin, in);
    CHECK(sh(cmd, buf, sizeof buf) != 0 && strstr(buf, "STS-B"), "2-label head for STS-B: %s", buf);
}

int main(void) {
    /* CL_PEFT_EXPORT_DIR: write (and keep) the directories there; tests/py/test_peft_interop.py loads the
     * cl_peft_write_config round-trip adapters (rt_*) in PEFT */
    const char *keep = getenv("CL_PEFT_EXPORT_DIR");
    snprintf(TMP, sizeof TMP, "%s", keep ? keep : "");
    if (!keep) snprintf(TMP, sizeof TMP, "/tmp/cl_test_peft_%d", (int)getpid());
    cl_error e = {0};
    cl_mkdir_p(TMP, &e);
    RUN(peft_adapters_match_peft_logits);
    RUN(peft_mpnet_adapters);
    RUN(module_selection_and_ranks);
    RUN(default_names_accepted);
    RUN(bad_adapter_directories);
    RUN(write_config_roundtrip);
    RUN(write_config_list_form);
    RUN(old_condlora_config);
    RUN(run_directory_resolves_to_best);
    RUN(cli_predict_and_merge);
    printf("max |condlora - PEFT| logit difference: %.3g (adapters), %.3g (merged)\n", max_diff_all, max_diff_merged);
    if (!getenv("CL_KEEP_TMP") && !keep) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMP);
        if (system(cmd)) {}
    }
    return tst_summary(__FILE__);
}
