/* Tokenizers against Hugging Face `tokenizers`: reference ids, type ids and decodes in tests/data/tokenizer/refs.json
 * (scripts/gen_tokenizer_refs.py) for RoBERTa (vocab.json + merges.txt) and BERT (vocab.txt, uncased and cased)
 * from ../shared/data/tokenizers, and for two tiny tokenizer.json files written by `tokenizers` itself. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "core/error.h"
#include "core/util.h"
#include "tokenizer/tokenizer.h"
#include "test.h"

static cJSON *refs;

static size_t unhex(const char *h, char *out) {
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    out[n] = 0;
    return n;
}

static int load_refs(void) {
    if (refs) return 1;
    char *text;
    size_t len;
    cl_error err = {0};
    if (cl_read_file("tests/data/tokenizer/refs.json", &text, &len, &err)) return 0;
    refs = cJSON_ParseWithLength(text, len);
    free(text);
    return refs != NULL;
}

static int ids_equal(const cl_tok_encoding *e, const cJSON *ids, const int32_t *have, int n) {
    if (cJSON_GetArraySize(ids) != n) return 0;
    int i = 0;
    for (const cJSON *x = ids->child; x; x = x->next, i++)
        if ((int)x->valuedouble != have[i]) return 0;
    (void)e;
    return 1;
}

static void print_ids(const char *what, const int32_t *v, int n) {
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

/* 0: compare ids only (see mpnet_tokenizer_class) */
static int g_check_types = 1;

/* Compares every case of refs.json under key `name` with tokenizer t. Returns the number of mismatching cases. */
static int check_refs(cl_tokenizer *t, const char *name, int check_decode) {
    cJSON *cases = cJSON_GetObjectItem(refs, "cases");
    int bad = 0, n = 0;
    cl_tok_encoding enc = {0};
    char *a = malloc(1 << 16), *b = malloc(1 << 16);
    for (cJSON *c = cases->child; c; c = c->next, n++) {
        cJSON *r = cJSON_GetObjectItem(c, name);
        size_t la = unhex(cJSON_GetObjectItem(c, "a_hex")->valuestring, a);
        cJSON *bh = cJSON_GetObjectItem(c, "b_hex");
        size_t lb = cJSON_IsString(bh) ? unhex(bh->valuestring, b) : 0;
        int maxlen = (int)cJSON_GetObjectItem(c, "max_length")->valuedouble;
        cl_error err = {0};
        int rc = cl_tokenizer_encode(t, a, la, cJSON_IsString(bh) ? b : NULL, lb, maxlen, &enc, &err);
        CHECK(rc == 0, "%s case %d: %s", name, n, err.msg);
        if (rc) { bad++; continue; }
        int ok = ids_equal(&enc, cJSON_GetObjectItem(r, "ids"), enc.ids, enc.len) &&
                 (!g_check_types || ids_equal(&enc, cJSON_GetObjectItem(r, "type_ids"), enc.type_ids, enc.len));
        CHECK(ok, "%s case %d (%.60s): ids differ from Hugging Face", name, n, a);
        if (!ok) {
            bad++;
            print_ids("condlora", enc.ids, enc.len);
            cJSON *ids = cJSON_GetObjectItem(r, "ids");
            fprintf(stderr, "  hf      :");
            int k = 0;
            for (cJSON *x = ids->child; x && k < 40; x = x->next, k++) fprintf(stderr, " %d", (int)x->valuedouble);
            fprintf(stderr, "\n");
            continue;
        }
        if (!check_decode) continue;
        for (int skip = 0; skip < 2; skip++) {
            char *text = NULL;
            rc = cl_tokenizer_decode(t, enc.ids, enc.len, skip, &text, &err);
            const char *want = cJSON_GetObjectItem(r, skip ? "decode_skip" : "decode")->valuestring;
            CHECK(rc == 0 && !strcmp(text, want), "%s case %d decode(skip=%d): got '%s', want '%s'", name, n, skip,
                  text ? text : err.msg, want);
            free(text);
        }
    }
    free(a);
    free(b);
    cl_tok_encoding_free(&enc);
    return bad;
}

static cl_tokenizer *load_shared(const char *sub) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/data/tokenizers/%s", tst_shared(), sub);
    if (access(dir, R_OK)) {
        SKIP("%s is absent", dir);
        return NULL;
    }
    cl_tokenizer *t = NULL;
    cl_error err = {0};
    CHECK(cl_tokenizer_load(&t, dir, &err) == 0, "%s", err.msg);
    return t;
}

TEST(roberta_matches_hf) {
    if (!load_refs()) { CHECK(0, "tests/data/tokenizer/refs.json unreadable"); return; }
    cl_tokenizer *t = load_shared("roberta-base");
    if (!t) return;
    CHECK(cl_tokenizer_kind(t) == CL_TOK_BPE, "unexpected");
    CHECK(cl_tokenizer_vocab_size(t) == 50265, "%d", cl_tokenizer_vocab_size(t));
    CHECK(cl_tokenizer_cls_id(t) == 0 && cl_tokenizer_pad_id(t) == 1 && cl_tokenizer_sep_id(t) == 2, "unexpected");
    CHECK(cl_tokenizer_mask_id(t) == 50264, "%d", cl_tokenizer_mask_id(t));
    CHECK(cl_tokenizer_num_special(t, 0) == 2 && cl_tokenizer_num_special(t, 1) == 4, "unexpected");
    CHECK(cl_tokenizer_token_to_id(t, "<unk>") == 3, "unexpected");
    CHECK(check_refs(t, "roberta", 1) == 0, "unexpected");
    cl_tokenizer_free(t);
}

TEST(bert_uncased_matches_hf) {
    if (!load_refs()) { CHECK(0, "refs.json unreadable"); return; }
    cl_tokenizer *t = load_shared("bert-base-uncased");
    if (!t) return;
    CHECK(cl_tokenizer_kind(t) == CL_TOK_WORDPIECE, "unexpected");
    CHECK(cl_tokenizer_vocab_size(t) == 30522, "unexpected");
    CHECK(cl_tokenizer_pad_id(t) == 0 && cl_tokenizer_unk_id(t) == 100 && cl_tokenizer_cls_id(t) == 101 &&
          cl_tokenizer_sep_id(t) == 102 && cl_tokenizer_mask_id(t) == 103, "unexpected");
    CHECK(cl_tokenizer_num_special(t, 0) == 2 && cl_tokenizer_num_special(t, 1) == 3, "unexpected");
    CHECK(check_refs(t, "bert", 1) == 0, "unexpected");
    cl_tokenizer_free(t);
}

/* vocab.txt + tokenizer_config.json {"do_lower_case": false}: the cased path. */
TEST(bert_cased_matches_hf) {
    if (!load_refs()) { CHECK(0, "refs.json unreadable"); return; }
    char src[1024], dir[] = "/tmp/cl_test_tok_XXXXXX", p[1200];
    snprintf(src, sizeof src, "%s/data/tokenizers/bert-base-uncased/vocab.txt", tst_shared());
    if (access(src, R_OK)) { SKIP("%s is absent", src); return; }
    CHECK(mkdtemp(dir) != NULL, "unexpected");
    char abs[4096];
    CHECK(realpath(src, abs) != NULL, "unexpected");
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    CHECK(symlink(abs, p) == 0, "unexpected");
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    cl_error err = {0};
    const char *cfg = "{\"do_lower_case\": false}";
    CHECK(cl_atomic_write(p, cfg, strlen(cfg), &err) == 0, "%s", err.msg);
    cl_tokenizer *t = NULL;
    CHECK(cl_tokenizer_load(&t, dir, &err) == 0, "%s", err.msg);
    if (t) CHECK(check_refs(t, "bert_cased", 1) == 0, "unexpected");
    cl_tokenizer_free(t);
    unlink(p);
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    unlink(p);
    rmdir(dir);
}

/* tokenizer.json files written by `tokenizers` (tiny vocabularies trained on the test corpus). */
TEST(tokenizer_json_tiny_models) {
    if (!load_refs()) { CHECK(0, "refs.json unreadable"); return; }
    static const char *const names[] = {"tiny_bpe", "tiny_wordpiece"};
    for (int i = 0; i < 2; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, "tests/data/tokenizer/%s", names[i]);
        cl_tokenizer *t = NULL;
        cl_error err = {0};
        CHECK(cl_tokenizer_load(&t, dir, &err) == 0, "%s", err.msg);
        if (!t) continue;
        CHECK(cl_tokenizer_kind(t) == (i == 0 ? CL_TOK_BPE : CL_TOK_WORDPIECE), "unexpected");
        CHECK(check_refs(t, names[i], 1) == 0, "%s", names[i]);
        cl_tokenizer_free(t);
    }
}

/* The real all-MiniLM-L6-v2 tokenizer.json gives the same ids as its vocab.txt (and, with bert-base-uncased's
 * vocabulary, the bert references). */
/* A real model's tokenizer.json (equal to Hugging Face's, `make parity`) against its vocab.txt alone, plus the
 * tokenizer_config.json when with_config (MPNet: tokenizer_class MPNetTokenizer selects the RoBERTa template) */
static void json_vs_vocab(const char *model, int with_config, const char *refs_key) {
    const char *home = getenv("HOME");
    char dir[1024], p[1200], tmp[] = "/tmp/cl_test_tokm_XXXXXX";
    snprintf(dir, sizeof dir, "%s/.cache/condlora/models/%s", home ? home : "/root", model);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (access(p, R_OK)) { SKIP("%s is absent (scripts/fetch_model.sh %s fetches it)", p, model); return; }
    if (!load_refs()) { CHECK(0, "refs.json unreadable"); return; }
    cl_error err = {0};
    cl_tokenizer *tj = NULL, *tv = NULL;
    CHECK(cl_tokenizer_load(&tj, dir, &err) == 0, "%s", err.msg);
    CHECK(mkdtemp(tmp) != NULL, "unexpected");
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    char q[1200];
    snprintf(q, sizeof q, "%s/vocab.txt", tmp);
    CHECK(symlink(p, q) == 0, "unexpected");
    char pc[1200], qc[1200];
    snprintf(pc, sizeof pc, "%s/tokenizer_config.json", dir);
    snprintf(qc, sizeof qc, "%s/tokenizer_config.json", tmp);
    if (with_config) CHECK(symlink(pc, qc) == 0, "unexpected");
    CHECK(cl_tokenizer_load(&tv, tmp, &err) == 0, "%s", err.msg);
    if (tj && tv) {
        CHECK(cl_tokenizer_kind(tj) == CL_TOK_WORDPIECE, "unexpected");
        CHECK(cl_tokenizer_vocab_size(tj) == cl_tokenizer_vocab_size(tv), "unexpected");
        cJSON *cases = cJSON_GetObjectItem(refs, "cases");
        cl_tok_encoding e1 = {0}, e2 = {0};
        char *a = malloc(1 << 16), *b = malloc(1 << 16);
        int n = 0, same = 0;
        for (cJSON *c = cases->child; c; c = c->next, n++) {
            size_t la = unhex(cJSON_GetObjectItem(c, "a_hex")->valuestring, a);
            cJSON *bh = cJSON_GetObjectItem(c, "b_hex");
            size_t lb = cJSON_IsString(bh) ? unhex(bh->valuestring, b) : 0;
            int m = (int)cJSON_GetObjectItem(c, "max_length")->valuedouble;
            /* MPNet: special-token strings typed in the text (<unk>, <MASK>) are where Hugging Face's own slow
             * MPNetTokenizer and its tokenizer.json disagree (the fast one adds <unk> as a special token, the slow
             * one lowercases before matching); there is no single answer to match */
            if (with_config && strcasestr(a, "<unk>")) { same++; continue; }
            cl_tokenizer_encode(tj, a, la, cJSON_IsString(bh) ? b : NULL, lb, m, &e1, &err);
            cl_tokenizer_encode(tv, a, la, cJSON_IsString(bh) ? b : NULL, lb, m, &e2, &err);
            int eq = e1.len == e2.len && !memcmp(e1.ids, e2.ids, (size_t)e1.len * 4) &&
                     !memcmp(e1.type_ids, e2.type_ids, (size_t)e1.len * 4);
            CHECK(eq, "%s case %d: tokenizer.json and vocab.txt disagree", model, n);
            same += eq;
        }
        CHECK(same == n, "unexpected");
        free(a);
        free(b);
        cl_tok_encoding_free(&e1);
        cl_tok_encoding_free(&e2);
        if (refs_key) CHECK(check_refs(tj, refs_key, 1) == 0, "unexpected");
    }
    cl_tokenizer_free(tj);
    cl_tokenizer_free(tv);
    unlink(q);
    if (with_config) unlink(qc);
    rmdir(tmp);
}

TEST(minilm_tokenizer_json) { json_vs_vocab("all-MiniLM-L6-v2", 0, "bert"); }
/* a vocab.txt-only directory whose tokenizer_config.json names MPNetTokenizer: transformers' MPNetTokenizer ids
 * (tests/data/tokenizer/tiny_mpnet_vocab, scripts/gen_tokenizer_refs.py --mpnet) */
TEST(mpnet_tokenizer_class) {
    char *text;
    size_t len;
    cl_error err = {0};
    if (cl_read_file("tests/data/tokenizer/tiny_mpnet_vocab/refs.json", &text, &len, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    cJSON *mine = cJSON_ParseWithLength(text, len), *saved = refs;
    free(text);
    cl_tokenizer *t = NULL;
    CHECK(cl_tokenizer_load(&t, "tests/data/tokenizer/tiny_mpnet_vocab", &err) == 0, "%s", err.msg);
    if (t && mine) {
        /* ids only: MPNetTokenizerFast converted from a vocab.txt numbers a pair's second part 1, where the slow
         * MPNetTokenizer and all-mpnet-base-v2's own tokenizer.json give 0 everywhere; MPNet has no token types
         * (the encoder refuses non-zero ones), so condlora gives 0, checked here */
        refs = mine;
        g_check_types = 0;
        CHECK(check_refs(t, "mpnet", 0) == 0, "MPNetTokenizer ids");
        g_check_types = 1;
        refs = saved;
        cl_tok_encoding e = {0};
        CHECK(cl_tokenizer_encode_str(t, "the cat", "a dog", 0, &e, &err) == 0, "%s", err.msg);
        int zeros = e.len > 0;
        for (int i = 0; i < e.len; i++) zeros &= e.type_ids[i] == 0;
        CHECK(zeros && e.len >= 4 && e.ids[0] == 0 && e.ids[e.len - 1] == 2, "pair type ids all 0");
        cl_tok_encoding_free(&e);
        CHECK(cl_tokenizer_cls_id(t) == 0 && cl_tokenizer_sep_id(t) == 2 && cl_tokenizer_pad_id(t) == 1,
              "<s> </s> <pad> ids");
    }
    cl_tokenizer_free(t);
    cJSON_Delete(mine);
}
/* all-mpnet-base-v2: vocab.txt + tokenizer_config.json (MPNetTokenizer) gives <s> A </s></s> B </s>, type ids 0 */
TEST(mpnet_vocab_txt_template) { json_vs_vocab("all-mpnet-base-v2", 1, NULL); }

/* Any byte sequence: no failure, and the ids equal those of the text with ill-formed sequences replaced by U+FFFD
 * (checked against an independent decoder written here). */
static size_t ref_sanitize(const unsigned char *s, size_t n, char *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned c = s[i];
        int need = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : -1;
        if (need < 0) { memcpy(out + o, "\xEF\xBF\xBD", 3); o += 3; i++; continue; }
        size_t k = 1;
        for (; k <= (size_t)need && i + k < n; k++) {
            unsigned b = s[i + k];
            unsigned lo = 0x80, hi = 0xBF;
            if (k == 1 && c == 0xE0) lo = 0xA0;
            if (k == 1 && c == 0xED) hi = 0x9F;
            if (k == 1 && c == 0xF0) lo = 0x90;
            if (k == 1 && c == 0xF4) hi = 0x8F;
            if (b < lo || b > hi) break;
        }
        if (k == (size_t)need + 1) { memcpy(out + o, s + i, k); o += k; }
        else { memcpy(out + o, "\xEF\xBF\xBD", 3); o += 3; }
        i += k;
    }
    return o;
}

TEST(arbitrary_bytes) {
    cl_tokenizer *ts[2] = {load_shared("roberta-base"), load_shared("bert-base-uncased")};
    cl_rng r;
    cl_rng_seed(&r, 1234);
    cl_tok_encoding e1 = {0}, e2 = {0};
    unsigned char buf[512];
    char clean[2048];
    for (int k = 0; k < 2; k++) {
        if (!ts[k]) continue;
        int fails = 0, diff = 0;
        for (int it = 0; it < 3000; it++) {
            size_t n = cl_rng_below(&r, sizeof buf);
            int mode = it % 3; /* random bytes, UTF-8-ish bytes, ASCII with spaces */
            for (size_t i = 0; i < n; i++) {
                uint64_t x = cl_rng_next(&r);
                buf[i] = mode == 0 ? (unsigned char)x : mode == 1 ? (unsigned char)(x % 3 ? 0x80 + x % 0x78 : x % 128)
                                                                   : (unsigned char)(x % 5 ? 'a' + x % 26 : ' ');
            }
            cl_error err = {0};
            fails += cl_tokenizer_encode(ts[k], (char *)buf, n, NULL, 0, 0, &e1, &err) != 0;
            size_t m = ref_sanitize(buf, n, clean);
            fails += cl_tokenizer_encode(ts[k], clean, m, NULL, 0, 0, &e2, &err) != 0;
            diff += e1.len != e2.len || memcmp(e1.ids, e2.ids, (size_t)e1.len * 4);
            char *text = NULL;
            fails += cl_tokenizer_decode(ts[k], e1.ids, e1.len, 0, &text, &err) != 0;
            free(text);
        }
        CHECK(fails == 0, "%d failures", fails);
        CHECK(diff == 0, "%d inputs differ from their U+FFFD-replaced text", diff);
        cl_tokenizer_free(ts[k]);
    }
    cl_tok_encoding_free(&e1);
    cl_tok_encoding_free(&e2);
}

/* A long word without spaces: BPE's heap merge keeps this near-linear, WordPiece gives [UNK]. */
TEST(long_inputs) {
    cl_tokenizer *t = load_shared("roberta-base");
    if (!t) return;
    size_t n = 1 << 20;
    char *s = malloc(n);
    for (size_t i = 0; i < n; i++) s[i] = "abcdefgh"[(i * 7 + i / 3) % 8];
    cl_tok_encoding e = {0};
    cl_error err = {0};
    double t0 = cl_now();
    CHECK(cl_tokenizer_encode(t, s, n, NULL, 0, 512, &e, &err) == 0, "%s", err.msg);
    CHECK(e.len == 512 && e.truncated == 1, "len %d", e.len);
    CHECK(cl_now() - t0 < 10.0, "1 MiB word took %.1f s", cl_now() - t0);
    free(s);
    cl_tok_encoding_free(&e);
    cl_tokenizer_free(t);
}

TEST(load_errors) {
    cl_tokenizer *t = NULL;
    cl_error err = {0};
    CHECK(cl_tokenizer_load(&t, "/nonexistent/tokdir", &err) == CL_EMISSING && t == NULL, "unexpected");
    CHECK(strstr(err.msg, "/nonexistent/tokdir") != NULL, "%s", err.msg);
    char dir[] = "/tmp/cl_test_tokerr_XXXXXX", p[256];
    CHECK(mkdtemp(dir) != NULL, "unexpected");
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    static const char *const bad[] = {
        "{not json",
        "{\"model\": {\"type\": \"Unigram\", \"vocab\": {}}}",
        "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(cl_atomic_write(p, bad[i], strlen(bad[i]), &err) == 0, "unexpected");
        int rc = cl_tokenizer_load(&t, dir, &err);
        CHECK(rc != 0 && t == NULL, "case %zu loaded", i);
        CHECK(strstr(err.msg, "tokenizer") != NULL, "case %zu: %s", i, err.msg);
    }
    unlink(p);
    rmdir(dir);
    /* a Unigram tokenizer.json (XLM-R, CamemBERT): the type is named as unsupported, before the vocab is read */
    {
        char d[] = "/tmp/cl_test_tok_unigram_XXXXXX", p[300];
        cl_error e = {0};
        cl_tokenizer *u = NULL;
        if (mkdtemp(d)) {
            snprintf(p, sizeof p, "%s/tokenizer.json", d);
            FILE *f = fopen(p, "w");
            if (f) {
                fputs("{\"version\":\"1.0\",\"model\":{\"type\":\"Unigram\",\"unk_id\":3,"
                      "\"vocab\":[[\"<s>\",0.0],[\"<pad>\",0.0]]}}", f);
                fclose(f);
            }
            CHECK(cl_tokenizer_load(&u, d, &e) == CL_EUNSUP && strstr(e.msg, "Unigram") &&
                  strstr(e.msg, "not supported") && !strstr(e.msg, "model.vocab"), "%s", e.msg);
            cl_tokenizer_free(u);
            unlink(p);
            rmdir(d);
        }
    }
}

/* The CLI: condlora tokenize --pair --max-length on the pair cases without tabs or newlines. */
TEST(cli_tokenize) {
    const char *bin = getenv("CL_BIN");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/data/tokenizers/bert-base-uncased", tst_shared());
    if (!bin || access(bin, X_OK)) { SKIP("CL_BIN not set"); return; }
    if (access(dir, R_OK)) { SKIP("%s is absent", dir); return; }
    if (!load_refs()) { CHECK(0, "refs.json unreadable"); return; }
    char in[] = "/tmp/cl_test_tokcli_XXXXXX";
    int fd = mkstemp(in);
    CHECK(fd >= 0, "unexpected");
    FILE *f = fdopen(fd, "w");
    cJSON *cases = cJSON_GetObjectItem(refs, "cases"), *want[64];
    int n = 0;
    char a[4096], b[4096];
    for (cJSON *c = cases->child; c && n < 64; c = c->next) {
        cJSON *bh = cJSON_GetObjectItem(c, "b_hex");
        if (!cJSON_IsString(bh) || cJSON_GetObjectItem(c, "max_length")->valuedouble != 12) continue;
        unhex(cJSON_GetObjectItem(c, "a_hex")->valuestring, a);
        unhex(bh->valuestring, b);
        fprintf(f, "%s\t%s\n", a, b);
        want[n++] = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "bert"), "ids");
    }
    fclose(f);
    CHECK(n == 2, "%d pair cases at max_length 12", n);
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s --pair --max-length 12 < %s", bin, dir, in);
    FILE *p = popen(cmd, "r");
    char line[8192];
    int k = 0;
    while (p && fgets(line, sizeof line, p) && k < n) {
        char expect[8192] = "";
        for (cJSON *x = want[k]->child; x; x = x->next)
            snprintf(expect + strlen(expect), sizeof expect - strlen(expect), "%s%d", x == want[k]->child ? "" : " ",
                     (int)x->valuedouble);
        strcat(expect, "\n");
        CHECK(!strcmp(line, expect), "line %d: '%s' want '%s'", k, line, expect);
        k++;
    }
    CHECK(p && pclose(p) == 0 && k == n, "unexpected");
    unlink(in);
}

int main(void) {
    RUN(roberta_matches_hf);
    RUN(bert_uncased_matches_hf);
    RUN(bert_cased_matches_hf);
    RUN(tokenizer_json_tiny_models);
    RUN(minilm_tokenizer_json);
    RUN(mpnet_vocab_txt_template);
    RUN(mpnet_tokenizer_class);
    RUN(arbitrary_bytes);
    RUN(long_inputs);
    RUN(load_errors);
    RUN(cli_tokenize);
    cJSON_Delete(refs);
    return tst_summary(__FILE__);
}
