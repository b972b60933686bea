/* Fixtures shared by the tests that train end to end (test_train.c, test_bf16.c): a Hugging Face model directory
 * written from a cl_weights built in memory, and a toy SST-2-format task. Header-only (static functions). */
#ifndef CL_TINY_RUN_H
#define CL_TINY_RUN_H
#include <stdio.h>
#include <string.h>
#include "core/util.h"
#include "io/safetensors.h"
#include "model/model.h"

static void tr_write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (f) fputs(s, f), fclose(f);
}

static void tr_add(cl_st_writer *w, const char *name, const float *p, int64_t d0, int64_t d1) {
    int64_t sh[2] = {d0, d1};
    cl_error e = {0};
    cl_st_writer_add_f32(w, name, d1 ? 2 : 1, sh, p, &e);
}

/* DIR: config.json (config_text) + model.safetensors (m's encoder and pooler, without a classifier, BERT names
 * without prefix) + the tiny WordPiece tokenizer.json of tests/data/tokenizer. */
static int tr_write_model_dir(const char *dir, const cl_weights *m, const char *config_text) {
    cl_error e = {0};
    const int H = m->cfg.hidden_size;
    cl_st_writer *w = cl_st_writer_new();
    tr_add(w, "embeddings.word_embeddings.weight", m->word_emb, m->cfg.vocab_size, H);
    tr_add(w, "embeddings.position_embeddings.weight", m->pos_emb, m->cfg.max_position, H);
    tr_add(w, "embeddings.token_type_embeddings.weight", m->type_emb, m->cfg.type_vocab_size, H);
    tr_add(w, "embeddings.LayerNorm.weight", m->emb_ln_w, H, 0);
    tr_add(w, "embeddings.LayerNorm.bias", m->emb_ln_b, H, 0);
    static const char *lin[CL_MOD_COUNT] = {"attention.self.query", "attention.self.key", "attention.self.value",
                                            "attention.output.dense", "intermediate.dense", "output.dense"};
    static const char *ln[4] = {"attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
                                "output.LayerNorm.weight", "output.LayerNorm.bias"};
    char n[256];
    for (int l = 0; l < m->cfg.num_layers; l++) {
        const cl_layer_weights *L = &m->layers[l];
        for (int k = 0; k < CL_MOD_COUNT; k++) {
            snprintf(n, sizeof n, "encoder.layer.%d.%s.weight", l, lin[k]);
            tr_add(w, n, L->lin[k].w, L->lin[k].d_out, L->lin[k].d_in);
            snprintf(n, sizeof n, "encoder.layer.%d.%s.bias", l, lin[k]);
            tr_add(w, n, L->lin[k].b, L->lin[k].d_out, 0);
        }
        const float *lp[4] = {L->ln1_w, L->ln1_b, L->ln2_w, L->ln2_b};
        for (int i = 0; i < 4; i++) {
            snprintf(n, sizeof n, "encoder.layer.%d.%s", l, ln[i]);
            tr_add(w, n, lp[i], H, 0);
        }
    }
    tr_add(w, "pooler.dense.weight", m->pooler.w, H, H);
    tr_add(w, "pooler.dense.bias", m->pooler.b, H, 0);
    cl_mkdir_p(dir, &e);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    int rc = cl_st_writer_save(w, p, &e);
    cl_st_writer_free(w);
    snprintf(p, sizeof p, "%s/config.json", dir);
    tr_write_text(p, config_text);
    char *tok = NULL;
    size_t tn = 0;
    if (cl_read_file("tests/data/tokenizer/tiny_wordpiece/tokenizer.json", &tok, &tn, &e)) return -1;
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    cl_atomic_write(p, tok, tn, &e);
    free(tok);
    return rc;
}

/* SST-2-format toy task in DIR (train.tsv, dev.tsv): label 1 for sentences made mostly of "good", 0 of "bad". */
static void tr_write_sst2(const char *dir, int ntrain, int ndev, uint64_t seed) {
    static const char *words[] = {"the", "a", "movie", "film", "was", "is", "very", "plot", "actor", "fun",
                                  "slow", "long", "story", "ok", "and"};
    cl_error e = {0};
    cl_mkdir_p(dir, &e);
    cl_rng r;
    cl_rng_seed(&r, seed);
    for (int s = 0; s < 2; s++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, s ? "dev.tsv" : "train.tsv");
        FILE *f = fopen(p, "w");
        if (!f) return;
        fprintf(f, "sentence\tlabel\n");
        int n = s ? ndev : ntrain;
        for (int i = 0; i < n; i++) {
            int lab = (int)cl_rng_below(&r, 2);
            int len = 3 + (int)cl_rng_below(&r, 6);
            for (int k = 0; k < len; k++) { /* mostly the label's word, some filler */
                int key = cl_rng_below(&r, 10) < 7;
                fprintf(f, "%s%s", k ? " " : "", key ? (lab ? "good" : "bad") : words[cl_rng_below(&r, 15)]);
            }
            fprintf(f, "\t%d\n", lab);
        }
        fclose(f);
    }
}

#endif
