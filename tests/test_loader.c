/* Model-directory loader against checkpoints written by transformers (tests/data/model, made by
 * scripts/gen_model_fixtures.py): parameter counts equal PyTorch's sum(p.numel()), tensor checksums equal the values
 * transformers loaded (after F16/BF16 conversion, prefix stripping, gamma/beta renaming), sharded checkpoints, heads
 * kept / re-initialised, broken checkpoints rejected by name; the real all-MiniLM-L6-v2 when it is in the cache. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/util.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "test.h"

#define FIX "tests/data/model/"

static cJSON *read_json(const char *path) {
    char *buf;
    size_t len;
    cl_error err = {0};
    if (cl_read_file(path, &buf, &len, &err)) return NULL;
    cJSON *r = cJSON_Parse(buf);
    free(buf);
    return r;
}

/* The model's pointer for a transformers parameter name (no prefix); *n its element count. */
static const float *param(const cl_weights *m, const char *name, uint64_t *n) {
    const cl_config *c = &m->cfg;
    uint64_t H = (uint64_t)c->hidden_size, I = (uint64_t)c->intermediate_size;
    int l;
    char rest[200];
    *n = H;
    if (!strcmp(name, "embeddings.word_embeddings.weight")) { *n = (uint64_t)c->vocab_size * H; return m->word_emb; }
    if (!strcmp(name, "embeddings.position_embeddings.weight")) { *n = (uint64_t)c->max_position * H; return m->pos_emb; }
    if (!strcmp(name, "embeddings.token_type_embeddings.weight")) { *n = (uint64_t)c->type_vocab_size * H; return m->type_emb; }
    if (!strcmp(name, "embeddings.LayerNorm.weight")) return m->emb_ln_w;
    if (!strcmp(name, "embeddings.LayerNorm.bias")) return m->emb_ln_b;
    if (!strcmp(name, "pooler.dense.weight")) { *n = H * H; return m->pooler.w; }
    if (!strcmp(name, "pooler.dense.bias")) return m->pooler.b;
    uint64_t L = (uint64_t)m->head_out.d_out;
    if (!strcmp(name, "classifier.dense.weight")) { *n = H * H; return m->head_dense.w; }
    if (!strcmp(name, "classifier.dense.bias")) return m->head_dense.b;
    if (!strcmp(name, "classifier.out_proj.weight") || !strcmp(name, "classifier.weight")) { *n = L * H; return m->head_out.w; }
    if (!strcmp(name, "classifier.out_proj.bias") || !strcmp(name, "classifier.bias")) { *n = L; return m->head_out.b; }
    if (sscanf(name, "encoder.layer.%d.%199s", &l, rest) != 2 || l < 0 || l >= c->num_layers) return NULL;
    const cl_layer_weights *w = &m->layers[l];
    static const char *mods[CL_MOD_COUNT] = {"attention.self.query", "attention.self.key", "attention.self.value",
                                             "attention.output.dense", "intermediate.dense", "output.dense"};
    for (int k = 0; k < CL_MOD_COUNT; k++) {
        size_t ml = strlen(mods[k]);
        if (!strncmp(rest, mods[k], ml) && rest[ml] == '.') {
            uint64_t dout = k == CL_MOD_INTER ? I : H, din = k == CL_MOD_OUT ? I : H;
            if (!strcmp(rest + ml, ".weight")) { *n = dout * din; return w->lin[k].w; }
            if (!strcmp(rest + ml, ".bias")) { *n = dout; return w->lin[k].b; }
        }
    }
    if (!strcmp(rest, "attention.output.LayerNorm.weight")) return w->ln1_w;
    if (!strcmp(rest, "attention.output.LayerNorm.bias")) return w->ln1_b;
    if (!strcmp(rest, "output.LayerNorm.weight")) return w->ln2_w;
    if (!strcmp(rest, "output.LayerNorm.bias")) return w->ln2_b;
    return NULL;
}

/* Compares counts and checksums of a loaded model with a reference object. */
static void check_against(const cl_weights *m, const cJSON *ref, const char *what) {
    const cJSON *t = cJSON_GetObjectItem(ref, "n_params_total"), *e = cJSON_GetObjectItem(ref, "n_params_encoder");
    CHECK((double)m->n_params_total == t->valuedouble, "%s: n_params_total %llu, PyTorch %.0f", what,
          (unsigned long long)m->n_params_total, t->valuedouble);
    CHECK((double)m->n_params_encoder == e->valuedouble, "%s: n_params_encoder %llu, PyTorch %.0f", what,
          (unsigned long long)m->n_params_encoder, e->valuedouble);
    const cJSON *ts = cJSON_GetObjectItem(ref, "tensors"), *it;
    int nt = 0;
    cJSON_ArrayForEach(it, ts) {
        uint64_t n = 0;
        const float *p = param(m, it->string, &n);
        CHECK(p != NULL, "%s: no tensor %s in the model", what, it->string);
        if (!p) continue;
        CHECK((double)n == cJSON_GetObjectItem(it, "numel")->valuedouble, "%s: %s numel %llu", what, it->string,
              (unsigned long long)n);
        double s = 0, ws = 0;
        for (uint64_t i = 0; i < n; i++) { s += p[i]; ws += p[i] * (double)(i % 7 + 1); }
        double rs = cJSON_GetObjectItem(it, "sum")->valuedouble, rw = cJSON_GetObjectItem(it, "wsum")->valuedouble;
        CHECK(fabs(s - rs) <= 1e-9 * (1 + fabs(rs)) + 1e-7, "%s: %s sum %.12g, transformers %.12g", what, it->string, s, rs);
        CHECK(fabs(ws - rw) <= 1e-9 * (1 + fabs(rw)) + 1e-7, "%s: %s wsum %.12g, transformers %.12g", what, it->string, ws, rw);
        const cJSON *f = cJSON_GetObjectItem(it, "first");
        for (int i = 0; i < cJSON_GetArraySize(f) && (uint64_t)i < n; i++)
            CHECK(p[i] == (float)cJSON_GetArrayItem(f, i)->valuedouble, "%s: %s[%d] = %.9g, transformers %.9g", what,
                  it->string, i, p[i], cJSON_GetArrayItem(f, i)->valuedouble);
        nt++;
    }
    CHECK(nt >= 8, "%s: only %d reference tensors", what, nt);
}

static int in_list(const char *const *l, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(l[i], s)) return 1;
    return 0;
}

TEST(fixtures_match_transformers) {
    cJSON *ref = read_json(FIX "reference.json");
    CHECK(ref != NULL, "tests/data/model/reference.json");
    if (!ref) return;
    static const struct { const char *name; cl_head_kind head; int labels; const char *dtype; } fx[] = {
        {"bert_base", CL_HEAD_NONE, 0, "F32"},      {"bert_cls", CL_HEAD_POOLER, 3, "F32"},
        {"roberta_cls", CL_HEAD_DENSE, 2, "F32"}, {"roberta_shard", CL_HEAD_NONE, 0, "F32"},
        {"roberta_f16", CL_HEAD_NONE, 0, "F16"},    {"bert_bf16", CL_HEAD_NONE, 0, "BF16"},
        {"bert_gamma", CL_HEAD_NONE, 0, "F32"},     {"bert_unaligned", CL_HEAD_NONE, 0, "F32"},
    };
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, FIX "%s", fx[i].name);
        const cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "fixtures"), fx[i].name);
        cl_weights m;
        cl_error err = {0};
        cl_load_opts o = {0};
        int rc = cl_model_load(&m, dir, &o, &err);
        CHECK(rc == 0, "%s: %s", fx[i].name, err.msg);
        if (rc) continue;
        check_against(&m, r, fx[i].name);
        CHECK(m.head == fx[i].head, "%s: head %d", fx[i].name, m.head);
        if (fx[i].head != CL_HEAD_NONE) {
            CHECK(m.head_from_file == 1 && m.head_out.d_out == fx[i].labels && m.cfg.num_labels == fx[i].labels,
                  "%s", fx[i].name);
        }
        const cl_load_report *rep = cl_model_load_report(&m);
        CHECK(rep != NULL, "%s", "check");
        if (rep) {
            CHECK(!strcmp(rep->dtype, fx[i].dtype), "%s: dtype %s", fx[i].name, rep->dtype);
            const cJSON *ux = cJSON_GetObjectItem(r, "unexpected");
            int nu = ux ? cJSON_GetArraySize(ux) : 0;
            CHECK(rep->n_unexpected == nu, "%s: %d unexpected, reference %d", fx[i].name, rep->n_unexpected, nu);
            for (int k = 0; k < nu; k++)
                CHECK(in_list(rep->unexpected, rep->n_unexpected, cJSON_GetArrayItem(ux, k)->valuestring), "%s: %s",
                      fx[i].name, cJSON_GetArrayItem(ux, k)->valuestring);
            CHECK(rep->n_missing == 0, "%s", fx[i].name);
            if (!strcmp(fx[i].name, "roberta_shard"))
                CHECK(rep->n_files == cJSON_GetObjectItem(r, "n_shards")->valueint && rep->n_files > 1, "%d", rep->n_files);
            if (!strcmp(fx[i].name, "bert_unaligned")) CHECK(rep->n_inplace == 0, "%llu", (unsigned long long)rep->n_inplace);
            if (!strcmp(fx[i].name, "bert_base"))
                CHECK(rep->n_inplace == 5 + 16 * 2 + 2, "all F32 tensors used in place: %llu",
                      (unsigned long long)rep->n_inplace);
        }
        if (!strcmp(fx[i].name, "bert_cls"))
            CHECK(m.cfg.id2label && !strcmp(m.cfg.id2label[1], "neu"), "id2label kept");
        cl_model_free(&m);
    }
    cJSON_Delete(ref);
}

TEST(weights_writable_file_untouched) {
    cl_weights m;
    cl_error err = {0};
    CHECK(cl_model_load(&m, FIX "bert_base", NULL, &err) == 0, "%s", err.msg);
    if (!m.word_emb) return;
    float orig = m.layers[1].lin[CL_MOD_VALUE].w[3];
    m.layers[1].lin[CL_MOD_VALUE].w[3] = 12345.0f; /* merge writes W in place */
    m.word_emb[0] += 1.0f;
    CHECK(m.layers[1].lin[CL_MOD_VALUE].w[3] == 12345.0f, "%s", "check");
    cl_weights m2;
    CHECK(cl_model_load(&m2, FIX "bert_base", NULL, &err) == 0, "%s", err.msg);
    if (m2.layers) CHECK(m2.layers[1].lin[CL_MOD_VALUE].w[3] == orig, "the file must not change");
    cl_model_free(&m2);
    cl_model_free(&m);
}

static void head_stats(const float *w, uint64_t n, double *mean, double *sd) {
    double s = 0, s2 = 0;
    for (uint64_t i = 0; i < n; i++) { s += w[i]; s2 += (double)w[i] * w[i]; }
    *mean = s / (double)n;
    *sd = sqrt(s2 / (double)n - *mean * *mean);
}

TEST(head_options) {
    cJSON *ref = read_json(FIX "reference.json");
    if (!ref) { CHECK(0, "reference.json"); return; }
    const cJSON *fx = cJSON_GetObjectItem(ref, "fixtures");
    cl_error err = {0};
    cl_weights m, m2;
    /* BertModel checkpoint + 4 labels: a new BERT head on the file's pooler */
    cl_load_opts o = {.num_labels = 4, .head_seed = 11};
    CHECK(cl_model_load(&m, FIX "bert_base", &o, &err) == 0, "%s", err.msg);
    CHECK(m.head == CL_HEAD_POOLER && m.head_from_file == 0 && m.head_out.d_out == 4 && m.cfg.num_labels == 4, "%s", "check");
    double base = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "bert_base"), "n_params_total")->valuedouble;
    CHECK((double)m.n_params_total == base + 4 * 32 + 4, "%llu", (unsigned long long)m.n_params_total);
    double mu, sd;
    head_stats(m.head_out.w, 4 * 32, &mu, &sd);
    CHECK(fabs(mu) < 0.01 && sd > 0.014 && sd < 0.026, "normal(0, 0.02): mean %g sd %g", mu, sd);
    CHECK(m.head_out.b[0] == 0 && m.head_out.b[3] == 0, "%s", "check");
    const cl_load_report *rep = cl_model_load_report(&m);
    CHECK(rep && rep->n_notes >= 1 && in_list(rep->missing, rep->n_missing, "classifier.weight"), "%s", "check");
    CHECK(cl_model_load(&m2, FIX "bert_base", &o, &err) == 0, "%s", err.msg);
    CHECK(!memcmp(m.head_out.w, m2.head_out.w, 4 * 32 * sizeof(float)), "same seed, same head");
    cl_model_free(&m2);
    o.head_seed = 12;
    CHECK(cl_model_load(&m2, FIX "bert_base", &o, &err) == 0, "%s", err.msg);
    CHECK(memcmp(m.head_out.w, m2.head_out.w, 4 * 32 * sizeof(float)) != 0, "another seed, another head");
    cl_model_free(&m2);
    cl_model_free(&m);

    /* MLM checkpoint without pooler + BERT head: pooler initialised and reported */
    o.num_labels = 2;
    CHECK(cl_model_load(&m, FIX "bert_gamma", &o, &err) == 0, "%s", err.msg);
    CHECK(m.pooler.w != NULL && m.head == CL_HEAD_POOLER && !m.head_from_file, "%s", "check");
    rep = cl_model_load_report(&m);
    CHECK(rep && in_list(rep->missing, rep->n_missing, "pooler.dense.weight"), "%s", "check");
    CHECK(m.pooler.b && m.pooler.b[0] == 0, "%s", "check");
    cl_model_free(&m);

    /* RoBERTa head from the file when the label count agrees, re-initialised when not */
    CHECK(cl_model_load(&m, FIX "roberta_cls", &o, &err) == 0, "%s", err.msg);
    CHECK(m.head == CL_HEAD_DENSE && m.head_from_file == 1 && m.head_out.d_out == 2, "%s", "check");
    cl_model_free(&m);
    o.num_labels = 3;
    CHECK(cl_model_load(&m, FIX "roberta_cls", &o, &err) == 0, "%s", err.msg);
    CHECK(m.head == CL_HEAD_DENSE && m.head_from_file == 0 && m.head_out.d_out == 3 && m.head_dense.w, "%s", "check");
    double rc = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "roberta_cls"), "n_params_total")->valuedouble;
    CHECK((double)m.n_params_total == rc + 33, "one more label: %llu", (unsigned long long)m.n_params_total);
    cl_model_free(&m);
    cJSON_Delete(ref);
}

static void expect_fail(const char *dir, int code, const char *a, const char *b) {
    cl_weights m;
    cl_error err = {0};
    int rc = cl_model_load(&m, dir, NULL, &err);
    CHECK(rc != 0, "%s accepted", dir);
    if (code) CHECK(rc == code, "%s: code %d (%s)", dir, rc, err.msg);
    CHECK(strstr(err.msg, a) != NULL, "%s: '%s' not in: %s", dir, a, err.msg);
    if (b) CHECK(strstr(err.msg, b) != NULL, "%s: '%s' not in: %s", dir, b, err.msg);
    CHECK(m.layers == NULL && m.priv == NULL, "nothing left allocated");
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (f) { fputs(s, f); fclose(f); }
}

TEST(broken_checkpoints) {
    expect_fail(FIX "broken_missing", CL_EMISSING, "encoder.layer.0.output.dense.weight", NULL);
    expect_fail(FIX "broken_shape", CL_ESHAPE, "encoder.layer.0.intermediate.dense.weight", "[12, 8]");
    expect_fail(FIX "broken_head", CL_EMISSING, "classifier.out_proj.bias", NULL);
    expect_fail(FIX "bin_only", CL_EMISSING, "convert_bin_to_safetensors", NULL);
    expect_fail(FIX "does_not_exist", 0, "does_not_exist", NULL);
    expect_fail(FIX "reference.json", 0, "not a directory", NULL);

    cl_weights m;
    cl_error err = {0};
    cl_load_opts o = {.verbose = 0};
    CHECK(cl_model_load(&m, FIX "broken_unexpected", &o, &err) == 0, "an unexpected tensor is reported, not fatal: %s",
          err.msg);
    const cl_load_report *rep = cl_model_load_report(&m);
    CHECK(rep && rep->n_unexpected == 1 &&
          !strcmp(rep->unexpected[0], "encoder.layer.0.attention.self.rotary.weight"), "%s", "check");
    cl_model_free(&m);

    /* directories built here: broken config, truncated weights, hostile index */
    char dir[] = "/tmp/cl_test_loader_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    char p[512], q[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, "{\"model_type\": \"bert\", \"hidden_size\": 8, \"num_attention_heads\": 3}");
    expect_fail(dir, CL_EFORMAT, "config.json", "num_attention_heads");

    /* a good config with a truncated model.safetensors */
    char *cfg; size_t len;
    CHECK(cl_read_file(FIX "broken_missing/config.json", &cfg, &len, &err) == 0, "%s", "check");
    cl_atomic_write(p, cfg, len, &err);
    free(cfg);
    char *st;
    CHECK(cl_read_file(FIX "broken_missing/model.safetensors", &st, &len, &err) == 0, "%s", "check");
    snprintf(q, sizeof q, "%s/model.safetensors", dir);
    cl_atomic_write(q, st, len / 2, &err);
    expect_fail(dir, 0, "model.safetensors", NULL);
    cl_atomic_write(q, st, 5, &err);
    expect_fail(dir, 0, "model.safetensors", NULL);
    unlink(q);
    /* index escaping the directory, index naming a tensor its shard lacks, index that is not JSON */
    snprintf(q, sizeof q, "%s/model.safetensors.index.json", dir);
    write_text(q, "{\"weight_map\": {\"embeddings.word_embeddings.weight\": \"../../etc/passwd\"}}");
    expect_fail(dir, CL_EFORMAT, "model.safetensors.index.json", "weight_map");
    char shard[512];
    snprintf(shard, sizeof shard, "%s/s1.safetensors", dir);
    cl_atomic_write(shard, st, len, &err);
    write_text(q, "{\"weight_map\": {\"no.such.tensor\": \"s1.safetensors\"}}");
    expect_fail(dir, CL_EMISSING, "no.such.tensor", "s1.safetensors");
    write_text(q, "{\"weight_map\": ");
    expect_fail(dir, CL_EFORMAT, "index.json", NULL);
    free(st);
    unlink(q);
    unlink(shard);
    unlink(p);
    rmdir(dir);
}

/* MPNet (tests/data/encoder/mpnet_cls, MPNetForSequenceClassification saved by transformers): the model writer's
 * output reloads bit for bit with MPNet's names (mpnet. prefix, the relative-attention bias, no pooler); a
 * checkpoint without the bias, or MPNet weights under a BERT config, are refused naming the tensors */
static int copy_without(const char *src, const char *dst, const char *skip, cl_error *err) {
    cl_safetensors st;
    int rc = cl_st_open(&st, src, err);
    if (rc) return rc;
    cl_st_writer *w = cl_st_writer_new();
    for (int i = 0; i < st.n && !rc; i++)
        if (strcmp(st.t[i].name, skip))
            rc = cl_st_writer_add(w, st.t[i].name, st.t[i].dtype, st.t[i].ndim, st.t[i].shape, st.t[i].data, err);
    if (!rc) rc = cl_st_writer_save(w, dst, err);
    cl_st_writer_free(w);
    cl_st_close(&st);
    return rc;
}

TEST(mpnet_checkpoints) {
    const char *src = "tests/data/encoder/mpnet_cls";
    cl_weights a, b;
    cl_error err = {0};
    if (cl_model_load(&a, src, NULL, &err)) { CHECK(0, "%s", err.msg); return; }
    char dir[] = "/tmp/cl_test_loader_mpnet_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); cl_model_free(&a); return; }
    char p[512], q[512], from[512];
    char *cfg;
    size_t len;
    snprintf(from, sizeof from, "%s/config.json", src);
    snprintf(p, sizeof p, "%s/config.json", dir);
    snprintf(q, sizeof q, "%s/model.safetensors", dir);
    CHECK(cl_read_file(from, &cfg, &len, &err) == 0 && cl_atomic_write(p, cfg, len, &err) == 0, "%s", err.msg);
    CHECK(cl_model_save_weights(&a, q, CL_DT_F32, &err) == 0, "%s", err.msg);
    cl_safetensors st;
    if (!cl_st_open(&st, q, &err)) {
        CHECK(cl_st_find(&st, "mpnet.encoder.relative_attention_bias.weight") &&
              cl_st_find(&st, "mpnet.encoder.layer.1.attention.attn.o.weight") &&
              cl_st_find(&st, "mpnet.encoder.layer.0.attention.LayerNorm.bias") &&
              cl_st_find(&st, "classifier.out_proj.weight") && !cl_st_find(&st, "mpnet.pooler.dense.weight") &&
              !cl_st_find(&st, "mpnet.embeddings.token_type_embeddings.weight"), "MPNet names written");
        cl_st_close(&st);
    } else CHECK(0, "%s", err.msg);
    if (cl_model_load(&b, dir, NULL, &err) == 0) {
        const cl_load_report *rep = cl_model_load_report(&b);
        CHECK(rep && rep->n_unexpected == 0 && a.n_params_total == b.n_params_total, "reload report");
        const size_t H = (size_t)a.cfg.hidden_size;
        int same = !memcmp(a.rel_bias, b.rel_bias, 32 * (size_t)a.cfg.num_heads * 4) &&
                   !memcmp(a.word_emb, b.word_emb, (size_t)a.cfg.vocab_size * H * 4) &&
                   !memcmp(a.head_dense.w, b.head_dense.w, H * H * 4) &&
                   !memcmp(a.head_out.w, b.head_out.w, (size_t)a.head_out.d_out * H * 4);
        for (int l = 0; l < a.cfg.num_layers; l++)
            for (int k = 0; k < CL_MOD_COUNT; k++)
                same &= !memcmp(a.layers[l].lin[k].w, b.layers[l].lin[k].w,
                                (size_t)a.layers[l].lin[k].d_out * a.layers[l].lin[k].d_in * 4);
        CHECK(same, "written and reloaded tensors equal bit for bit");
        cl_model_free(&b);
    } else CHECK(0, "reload: %s", err.msg);
    /* without the relative-attention bias */
    snprintf(from, sizeof from, "%s/model.safetensors", src);
    CHECK(copy_without(from, q, "mpnet.encoder.relative_attention_bias.weight", &err) == 0, "%s", err.msg);
    expect_fail(dir, CL_EMISSING, "encoder.relative_attention_bias.weight", NULL);
    /* MPNet weights under a BERT config */
    CHECK(copy_without(from, q, "", &err) == 0, "%s", err.msg);
    write_text(p, "{\"model_type\": \"bert\", \"hidden_size\": 32, \"num_attention_heads\": 4, \"num_hidden_layers\": 2, "
                  "\"intermediate_size\": 64, \"vocab_size\": 64, \"max_position_embeddings\": 130}");
    expect_fail(dir, CL_EMISSING, "missing from the checkpoint", "different architecture");
    free(cfg);
    unlink(p), unlink(q), rmdir(dir);
    cl_model_free(&a);
}

TEST(init_random_shapes_and_counts) {
    cJSON *ref = read_json(FIX "reference.json");
    if (!ref) { CHECK(0, "reference.json"); return; }
    const cJSON *fx = cJSON_GetObjectItem(ref, "fixtures");
    cl_config c;
    cl_error err = {0};
    cl_weights m, m2;
    /* BertModel of bert_base's config (with pooler) has PyTorch's parameter count */
    CHECK(cl_config_load(&c, FIX "bert_base/config.json", &err) == 0, "%s", err.msg);
    CHECK(cl_model_init_random(&m, &c, CL_HEAD_NONE, 0, 5, &err) == 0, "%s", err.msg);
    CHECK((double)m.n_params_total ==
          cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "bert_base"), "n_params_total")->valuedouble, "%s", "check");
    CHECK(cl_model_load_report(&m) == NULL, "%s", "check");
    for (int i = 0; i < 32; i++) CHECK(m.word_emb[c.pad_token_id * 32 + i] == 0.0f, "padding row zero");
    CHECK(m.layers[1].ln2_w[31] == 1.0f && m.layers[1].ln2_b[31] == 0.0f && m.layers[0].lin[CL_MOD_OUT].b[5] == 0.0f, "%s", "check");
    CHECK(m.layers[1].lin[CL_MOD_INTER].d_out == 37 && m.layers[1].lin[CL_MOD_OUT].d_in == 37, "%s", "check");
    double mu, sd;
    head_stats(m.layers[0].lin[CL_MOD_INTER].w, 37 * 32, &mu, &sd);
    CHECK(fabs(mu) < 0.003 && fabs(sd - 0.02) < 0.002, "normal(0, 0.02): %g %g", mu, sd);
    CHECK(cl_model_init_random(&m2, &c, CL_HEAD_NONE, 0, 5, &err) == 0, "%s", "check");
    CHECK(!memcmp(m.layers[1].lin[CL_MOD_KEY].w, m2.layers[1].lin[CL_MOD_KEY].w, 32 * 32 * sizeof(float)), "%s", "check");
    cl_model_free(&m2);
    cl_model_free(&m);
    cl_config_free(&c);
    /* RobertaForSequenceClassification of roberta_cls's config */
    CHECK(cl_config_load(&c, FIX "roberta_cls/config.json", &err) == 0, "%s", err.msg);
    CHECK(cl_model_init_random(&m, &c, CL_HEAD_DENSE, 2, 1, &err) == 0, "%s", err.msg);
    CHECK((double)m.n_params_total ==
          cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "roberta_cls"), "n_params_total")->valuedouble,
          "%llu", (unsigned long long)m.n_params_total);
    CHECK(m.pooler.w == NULL && m.head_dense.w && m.head_out.d_out == 2 && m.cfg.num_labels == 2, "%s", "check");
    for (int i = 0; i < 32; i++) CHECK(m.pos_emb[1 * 32 + i] == 0.0f, "RoBERTa padding position row zero");
    cl_model_free(&m);
    CHECK(cl_model_init_random(&m, &c, CL_HEAD_DENSE, 0, 1, &err) != 0, "a head needs labels");
    cl_config_free(&c);
    cJSON_Delete(ref);
}

TEST(real_minilm) {
    const char *cache = getenv("CONDLORA_CACHE");
    char dir[1024];
    if (cache) snprintf(dir, sizeof dir, "%s/models/all-MiniLM-L6-v2", cache);
    else snprintf(dir, sizeof dir, "%s/.cache/condlora/models/all-MiniLM-L6-v2", getenv("HOME") ? getenv("HOME") : "");
    char st[1100];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    if (access(st, R_OK) != 0) {
        SKIP("%s not present (run scripts/fetch_model.sh)", st);
        return;
    }
    cJSON *ref = read_json(FIX "minilm_reference.json");
    CHECK(ref != NULL, "tests/data/model/minilm_reference.json");
    if (!ref) return;
    cl_weights m;
    cl_error err = {0};
    double t0 = cl_now();
    int rc = cl_model_load(&m, dir, NULL, &err);
    double t1 = cl_now();
    CHECK(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(m.cfg.num_layers == 6 && m.cfg.hidden_size == 384 && m.cfg.num_heads == 12 &&
              m.cfg.intermediate_size == 1536 && m.cfg.arch == CL_ARCH_BERT && m.cfg.act == CL_ACT_GELU, "%s", "check");
        check_against(&m, ref, "all-MiniLM-L6-v2");
        CHECK(m.n_params_total == 22713216ull, "%llu", (unsigned long long)m.n_params_total);
        const cl_load_report *rep = cl_model_load_report(&m);
        CHECK(rep && rep->n_unexpected == 0 && rep->n_missing == 0, "%s", "check");
        if (getenv("CL_TEST_VERBOSE")) fprintf(stderr, "MiniLM loaded in %.1f ms\n", (t1 - t0) * 1e3);
        cl_model_free(&m);
    }
    cJSON_Delete(ref);
}

int main(void) {
    RUN(fixtures_match_transformers);
    RUN(weights_writable_file_untouched);
    RUN(head_options);
    RUN(broken_checkpoints);
    RUN(mpnet_checkpoints);
    RUN(init_random_shapes_and_counts);
    RUN(real_minilm);
    return tst_summary(__FILE__);
}
