/* Tokenizer loading (tokenizer.json, vocab.json + merges.txt, vocab.txt), added-token splitting, truncation,
 * post-processing, hash maps and UTF-8 helpers. The models live in bpe.c and wordpiece.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "core/util.h"
#include "tokenizer/tok_internal.h"

/* ------------------------------------------------------------------------------------------------------------ */
/* growable vectors and maps                                                                                     */

int tok_ivec_reserve(tok_ivec *v, size_t need, cl_error *err) {
    if (need <= v->cap) return 0;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < need) cap *= 2;
    int32_t *p = realloc(v->v, cap * sizeof *p);
    if (!p) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory (%zu ids)", cap);
    v->v = p;
    v->cap = cap;
    return 0;
}

uint32_t tok_hash(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        h = (h ^ x) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
    }
    uint64_t x = 0;
    for (size_t k = 0; i < n; i++, k++) x |= (uint64_t)(unsigned char)s[i] << (8 * k);
    h = (h ^ x) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return (uint32_t)(h >> 32);
}

static int strmap_grow(tok_strmap *m, cl_error *err) {
    size_t ns = m->nslots ? m->nslots * 2 : 1024;
    uint32_t *slots = calloc(ns, sizeof *slots);
    if (!slots) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory (hash table)");
    for (size_t e = 0; e < m->n; e++) {
        size_t i = m->hash[e] & (ns - 1);
        while (slots[i]) i = (i + 1) & (ns - 1);
        slots[i] = (uint32_t)e + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = ns;
    return 0;
}

int tok_strmap_get(const tok_strmap *m, const char *k, size_t n, int32_t *v) {
    if (!m->nslots) return 0;
    uint32_t h = tok_hash(k, n);
    size_t mask = m->nslots - 1, i = h & mask;
    for (;;) {
        uint32_t s = m->slots[i];
        if (!s) return 0;
        s--;
        if (m->hash[s] == h && m->len[s] == n && !memcmp(m->arena + m->off[s], k, n)) {
            *v = m->val[s];
            return 1;
        }
        i = (i + 1) & mask;
    }
}

int tok_strmap_put(tok_strmap *m, const char *k, size_t n, int32_t v, cl_error *err) {
    if (n > UINT32_MAX / 2) return cl_errf(err, CL_EINVAL, "tokenizer: token too long");
    if ((m->n + 1) * 2 > m->nslots && strmap_grow(m, err)) return -1;
    uint32_t h = tok_hash(k, n);
    size_t mask = m->nslots - 1, i = h & mask;
    for (;;) {
        uint32_t s = m->slots[i];
        if (!s) break;
        s--;
        if (m->hash[s] == h && m->len[s] == n && !memcmp(m->arena + m->off[s], k, n)) {
            m->val[s] = v;
            return 0;
        }
        i = (i + 1) & mask;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 512;
        uint32_t *off = realloc(m->off, cap * sizeof *off);
        if (off) m->off = off;
        uint32_t *len = realloc(m->len, cap * sizeof *len);
        if (len) m->len = len;
        uint32_t *hash = realloc(m->hash, cap * sizeof *hash);
        if (hash) m->hash = hash;
        int32_t *val = realloc(m->val, cap * sizeof *val);
        if (val) m->val = val;
        if (!off || !len || !hash || !val) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory (hash table)");
        m->cap = cap;
    }
    if (m->alen + n + 1 > m->acap) {
        size_t cap = m->acap ? m->acap : 4096;
        while (cap < m->alen + n + 1) cap *= 2;
        if (cap > UINT32_MAX) return cl_errf(err, CL_EINVAL, "tokenizer: vocabulary text over 4 GiB");
        char *a = realloc(m->arena, cap);
        if (!a) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory (hash table)");
        m->arena = a;
        m->acap = cap;
    }
    memcpy(m->arena + m->alen, k, n);
    m->arena[m->alen + n] = 0;
    size_t e = m->n++;
    m->off[e] = (uint32_t)m->alen;
    m->len[e] = (uint32_t)n;
    m->hash[e] = h;
    m->val[e] = v;
    m->alen += n + 1;
    m->slots[i] = (uint32_t)e + 1;
    return 0;
}

void tok_strmap_clear(tok_strmap *m) {
    if (m->slots) memset(m->slots, 0, m->nslots * sizeof *m->slots);
    m->n = 0;
    m->alen = 0;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots); free(m->off); free(m->len); free(m->hash); free(m->val); free(m->arena);
    memset(m, 0, sizeof *m);
}

int tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id, cl_error *err) {
    if ((m->n + 1) * 2 > m->nslots) {
        size_t ns = m->nslots ? m->nslots * 2 : 4096;
        tok_pair *s = malloc(ns * sizeof *s);
        if (!s) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory (merges)");
        for (size_t i = 0; i < ns; i++) s[i].key = UINT64_MAX;
        for (size_t i = 0; i < m->nslots; i++) {
            if (m->slots[i].key == UINT64_MAX) continue;
            size_t j = (size_t)((m->slots[i].key * 0x9E3779B97F4A7C15ull) >> 32) & (ns - 1);
            while (s[j].key != UINT64_MAX) j = (j + 1) & (ns - 1);
            s[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = s;
        m->nslots = ns;
    }
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = m->nslots - 1, i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
    while (m->slots[i].key != UINT64_MAX) {
        if (m->slots[i].key == key) return 0; /* a repeated merge keeps its first (lowest) rank */
        i = (i + 1) & mask;
    }
    m->slots[i].key = key;
    m->slots[i].rank = rank;
    m->slots[i].id = id;
    m->n++;
    return 0;
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* UTF-8                                                                                                         */

int tok_utf8_put(char *d, uint32_t cp) {
    if (cp < 0x80) { d[0] = (char)cp; return 1; }
    if (cp < 0x800) { d[0] = (char)(0xC0 | (cp >> 6)); d[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12)); d[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18)); d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the well-formed sequence starting at s (1..4), or -(bytes of the maximal ill-formed prefix). */
static int utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return -1;
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n) return -k;
        unsigned b = s[k];
        if (b < lo || b > hi) return -k;
        lo = 0x80; hi = 0xBF;
    }
    return need + 1;
}

size_t tok_utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) { /* ASCII fast path */
            uint64_t x;
            memcpy(&x, s + i, 8);
            if (x & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) { i++; continue; }
        int k = utf8_seq(s + i, n - i);
        if (k < 0) return i;
        i += (size_t)k;
    }
    return n;
}

size_t tok_utf8_sanitize(const unsigned char *s, size_t n, char *dst) {
    size_t i = 0, o = 0;
    while (i < n) {
        int k = utf8_seq(s + i, n - i);
        if (k > 0) { memcpy(dst + o, s + i, (size_t)k); o += (size_t)k; i += (size_t)k; }
        else { memcpy(dst + o, "\xEF\xBF\xBD", 3); o += 3; i += (size_t)(-k); }
    }
    return o;
}

int tok_is_ws(uint32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85) return 0;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* loading                                                                                                       */

static int file_exists(const char *dir, const char *name, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static tok_added *find_added(cl_tokenizer *t, const char *s) {
    for (int i = 0; i < t->n_added; i++)
        if ((size_t)t->added[i].len == strlen(s) && !memcmp(t->added[i].s, s, (size_t)t->added[i].len))
            return &t->added[i];
    return NULL;
}

static int add_token(cl_tokenizer *t, const char *s, int id, int special, int lstrip, int rstrip, int normalized,
                     int single_word, cl_error *err) {
    if (!*s) return 0; /* an empty added token never matches */
    tok_added *p = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *p);
    if (!p) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory");
    t->added = p;
    tok_added *a = &p[t->n_added];
    memset(a, 0, sizeof *a);
    a->s = strdup(s);
    if (!a->s) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory");
    a->len = (int)strlen(s);
    a->id = id;
    a->special = special;
    a->lstrip = lstrip;
    a->rstrip = rstrip;
    a->normalized = normalized;
    a->single_word = single_word;
    t->n_added++;
    return 0;
}

static int vocab_id(const cl_tokenizer *t, const char *s) {
    int32_t v;
    return tok_strmap_get(&t->vocab, s, strlen(s), &v) ? v : -1;
}

/* Ids of the well-known special tokens, from the added tokens and the vocabulary. */
static int special_id(cl_tokenizer *t, const char *a, const char *b) {
    tok_added *x = find_added(t, a);
    if (!x && b) x = find_added(t, b);
    if (x) return x->id;
    int id = vocab_id(t, a);
    if (id < 0 && b) id = vocab_id(t, b);
    return id;
}

static void set_bert_template(cl_tokenizer *t, int cls, int sep, int roberta) {
    t->n_single = 0;
    t->single[t->n_single++] = (tok_tmpl){TMPL_SPECIAL, cls, 0};
    t->single[t->n_single++] = (tok_tmpl){TMPL_A, 0, 0};
    t->single[t->n_single++] = (tok_tmpl){TMPL_SPECIAL, sep, 0};
    t->n_pair = 0;
    t->pair[t->n_pair++] = (tok_tmpl){TMPL_SPECIAL, cls, 0};
    t->pair[t->n_pair++] = (tok_tmpl){TMPL_A, 0, 0};
    t->pair[t->n_pair++] = (tok_tmpl){TMPL_SPECIAL, sep, 0};
    if (roberta) t->pair[t->n_pair++] = (tok_tmpl){TMPL_SPECIAL, sep, 0};
    t->pair[t->n_pair++] = (tok_tmpl){TMPL_B, 0, roberta ? 0 : 1};
    t->pair[t->n_pair++] = (tok_tmpl){TMPL_SPECIAL, sep, roberta ? 0 : 1};
}

static void set_plain_template(cl_tokenizer *t) {
    t->n_single = 1;
    t->single[0] = (tok_tmpl){TMPL_A, 0, 0};
    t->n_pair = 2;
    t->pair[0] = (tok_tmpl){TMPL_A, 0, 0};
    t->pair[1] = (tok_tmpl){TMPL_B, 0, 1};
}

/* id -> token table over the model vocabulary and the added tokens; vocab_size = largest id + 1. */
static int build_id_table(cl_tokenizer *t, cl_error *err) {
    int maxid = -1;
    for (size_t e = 0; e < t->vocab.n; e++)
        if (t->vocab.val[e] > maxid) maxid = t->vocab.val[e];
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id > maxid) maxid = t->added[i].id;
    if (maxid < 0) return cl_errf(err, CL_EFORMAT, "tokenizer: empty vocabulary");
    t->vocab_size = maxid + 1;
    t->id2tok = calloc((size_t)t->vocab_size, sizeof *t->id2tok);
    t->id2len = calloc((size_t)t->vocab_size, sizeof *t->id2len);
    t->id_special = calloc((size_t)t->vocab_size, 1);
    if (!t->id2tok || !t->id2len || !t->id_special) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory");
    for (size_t e = 0; e < t->vocab.n; e++) {
        int id = t->vocab.val[e];
        if (id < 0) continue;
        t->id2tok[id] = t->vocab.arena + t->vocab.off[e];
        t->id2len[id] = (int)t->vocab.len[e];
    }
    for (int i = 0; i < t->n_added; i++) {
        int id = t->added[i].id;
        if (id < 0) continue;
        t->id2tok[id] = t->added[i].s;
        t->id2len[id] = t->added[i].len;
        t->id_special[id] = (uint8_t)t->added[i].special;
    }
    return 0;
}

static void make_bitmaps(cl_tokenizer *t) {
    memset(t->first_raw, 0, sizeof t->first_raw);
    memset(t->first_norm, 0, sizeof t->first_norm);
    for (int i = 0; i < t->n_added; i++) {
        unsigned char c = (unsigned char)t->added[i].s[0];
        if (t->has_norm && t->added[i].normalized) t->first_norm[c >> 3] |= (uint8_t)(1u << (c & 7));
        else t->first_raw[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
}

/* Normalized added tokens are matched on normalized text, so their content is normalized once here. */
static int normalize_added(cl_tokenizer *t, cl_error *err) {
    if (!t->has_norm) return 0;
    tok_work w;
    memset(&w, 0, sizeof w);
    int rc = 0;
    for (int i = 0; i < t->n_added && !rc; i++) {
        tok_added *a = &t->added[i];
        if (!a->normalized) continue;
        long n = tok_bert_normalize(t, &w, a->s, (size_t)a->len, err);
        if (n < 0) { rc = -1; break; }
        if (n == 0) { a->normalized = 0; continue; } /* normalizes to nothing: match it raw */
        a->norm = malloc((size_t)n + 1);
        if (!a->norm) { rc = cl_errf(err, CL_ENOMEM, "tokenizer: out of memory"); break; }
        memcpy(a->norm, w.norm, (size_t)n);
        a->norm[n] = 0;
        a->norm_len = (int)n;
    }
    free(w.norm);
    free(w.cps);
    return rc;
}

static int load_bpe_files(cl_tokenizer *t, const char *dir, cl_error *err) {
    char path[4200];
    char *text = NULL;
    size_t len;
    t->kind = CL_TOK_BPE;
    tok_bpe_init_alphabet(t);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    if (cl_read_file(path, &text, &len, err)) return -1;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(j)) { cJSON_Delete(j); return cl_errf(err, CL_EFORMAT, "%s: not a JSON object", path); }
    for (cJSON *e = j->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e8) {
            cJSON_Delete(j);
            return cl_errf(err, CL_EFORMAT, "%s: token '%.40s' has no valid id", path, e->string ? e->string : "");
        }
        if (tok_strmap_put(&t->vocab, e->string, strlen(e->string), (int32_t)e->valuedouble, err)) {
            cJSON_Delete(j);
            return -1;
        }
    }
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    if (cl_read_file(path, &text, &len, err)) return -1;
    int rank = 0, line = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        line++;
        size_t ll = (size_t)(le - p);
        if (ll && p[ll - 1] == '\r') ll--;
        if (ll == 0 || (line == 1 && ll >= 8 && !memcmp(p, "#version", 8))) { p = le + 1; continue; }
        char *sp = memchr(p, ' ', ll);
        if (!sp || memchr(sp + 1, ' ', ll - (size_t)(sp + 1 - p))) {
            free(text);
            return cl_errf(err, CL_EFORMAT, "%s:%d: a merge is two tokens separated by one space", path, line);
        }
        int32_t a, b, m;
        size_t la = (size_t)(sp - p), lb = ll - la - 1;
        char buf[512];
        if (la + lb >= sizeof buf || !tok_strmap_get(&t->vocab, p, la, &a) ||
            !tok_strmap_get(&t->vocab, sp + 1, lb, &b)) {
            free(text);
            return cl_errf(err, CL_EFORMAT, "%s:%d: merge of tokens not in vocab.json", path, line);
        }
        memcpy(buf, p, la);
        memcpy(buf + la, sp + 1, lb);
        if (!tok_strmap_get(&t->vocab, buf, la + lb, &m)) {
            free(text);
            return cl_errf(err, CL_EFORMAT, "%s:%d: merged token '%.*s' not in vocab.json", path, line,
                           (int)(la + lb), buf);
        }
        if (tok_pairmap_put(&t->merges, a, b, rank++, m, err)) { free(text); return -1; }
        p = le + 1;
    }
    free(text);
    static const char *const sp_tokens[] = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"};
    for (int i = 0; i < 5; i++) {
        int id = vocab_id(t, sp_tokens[i]);
        if (id >= 0 && add_token(t, sp_tokens[i], id, 1, i == 4, 0, 1, 0, err)) return -1;
    }
    t->cls_id = special_id(t, "<s>", NULL);
    t->sep_id = special_id(t, "</s>", NULL);
    t->pad_id = special_id(t, "<pad>", NULL);
    t->unk_id = -1; /* RobertaTokenizerFast's BPE model has no unk: every byte is in the alphabet */
    t->mask_id = special_id(t, "<mask>", NULL);
    if (t->cls_id < 0 || t->sep_id < 0) return cl_errf(err, CL_EFORMAT, "%s/vocab.json: no <s> or </s> token", dir);
    set_bert_template(t, t->cls_id, t->sep_id, 1);
    return tok_bpe_finish(t, err);
}

static int json_bool(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}
static const char *json_str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) { /* {"content": "[UNK]", ...} in tokenizer_config.json */
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

static int load_wp_vocab_txt(cl_tokenizer *t, const char *dir, cl_error *err) {
    char path[4200];
    char *text = NULL;
    size_t len;
    t->kind = CL_TOK_WORDPIECE;
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    if (cl_read_file(path, &text, &len, err)) return -1;
    int id = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        size_t ll = (size_t)(le - p);
        while (ll && (p[ll - 1] == '\r' || p[ll - 1] == ' ' || p[ll - 1] == '\t')) ll--;
        if (tok_strmap_put(&t->vocab, p, ll, id++, err)) { free(text); return -1; }
        p = le + 1;
    }
    free(text);
    /* tokenizer_config.json (optional) */
    int lower = 1, chinese = 1, strip = -1, pair_roberta = 0;
    const char *names[5] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
    static const char *const keys[5] = {"unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
    cJSON *cfg = NULL;
    if (file_exists(dir, "tokenizer_config.json", path, sizeof path)) {
        if (cl_read_file(path, &text, &len, err)) return -1;
        cfg = cJSON_ParseWithLength(text, len);
        free(text);
        if (!cJSON_IsObject(cfg)) { cJSON_Delete(cfg); return cl_errf(err, CL_EFORMAT, "%s: not a JSON object", path); }
        /* MPNetTokenizer: BERT's WordPiece with RoBERTa's specials and pair template (<s> A </s></s> B </s>, all
         * type ids 0); its defaults are <s>, </s>, <pad>, [UNK], <mask> */
        const char *cls = json_str(cfg, "tokenizer_class");
        if (cls && (!strcmp(cls, "MPNetTokenizer") || !strcmp(cls, "MPNetTokenizerFast"))) {
            static const char *const mp[5] = {"[UNK]", "</s>", "<pad>", "<s>", "<mask>"};
            for (int i = 0; i < 5; i++) names[i] = mp[i];
            pair_roberta = 1;
        }
        lower = json_bool(cfg, "do_lower_case", 1);
        chinese = json_bool(cfg, "tokenize_chinese_chars", 1);
        strip = json_bool(cfg, "strip_accents", -1);
        for (int i = 0; i < 5; i++)
            if (json_str(cfg, keys[i])) names[i] = json_str(cfg, keys[i]);
    }
    int rc = 0;
    for (int i = 0; i < 5 && !rc; i++) {
        int vid = vocab_id(t, names[i]);
        /* MPNetTokenizerFast makes its mask token AddedToken("<mask>", lstrip=True), matched after normalisation */
        int mask_mp = pair_roberta && i == 4;
        if (vid >= 0 && !find_added(t, names[i])) rc = add_token(t, names[i], vid, 1, mask_mp, 0, mask_mp, 0, err);
    }
    if (!rc) {
        t->has_norm = 1;
        t->clean_text = 1;
        t->chinese = chinese;
        t->lowercase = lower;
        t->strip_accents = strip < 0 ? lower : strip;
        snprintf(t->prefix, sizeof t->prefix, "##");
        t->prefix_len = 2;
        t->max_chars = 100;
        t->wp_cleanup = 1;
        t->unk_id = vocab_id(t, names[0]);
        t->sep_id = vocab_id(t, names[1]);
        t->pad_id = vocab_id(t, names[2]);
        t->cls_id = vocab_id(t, names[3]);
        t->mask_id = vocab_id(t, names[4]);
        if (t->cls_id < 0 || t->sep_id < 0)
            rc = cl_errf(err, CL_EFORMAT, "%s/vocab.txt: no %s or %s token", dir, names[3], names[1]);
        else set_bert_template(t, t->cls_id, t->sep_id, pair_roberta);
    }
    cJSON_Delete(cfg);
    return rc ? rc : tok_wp_finish(t, err);
}

static int json_special_id(const cJSON *pp, const char *key, int *id) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(pp, key);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2) return -1;
    const cJSON *n = cJSON_GetArrayItem(v, 1);
    if (!cJSON_IsNumber(n)) return -1;
    *id = (int)n->valuedouble;
    return 0;
}

static int parse_template(cl_tokenizer *t, const cJSON *pp, const char *key, tok_tmpl *out, int *n, int cap,
                          const char *path, cl_error *err) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(pp, key);
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    *n = 0;
    if (!cJSON_IsArray(arr)) return cl_errf(err, CL_EFORMAT, "%s: post_processor.%s is not a list", path, key);
    for (const cJSON *it = arr->child; it; it = it->next) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        const cJSON *o = s ? s : q;
        const char *id = json_str(o, "id");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type_id");
        if (!o || !id) return cl_errf(err, CL_EFORMAT, "%s: bad post_processor.%s item", path, key);
        int type_id = cJSON_IsNumber(ty) ? (int)ty->valuedouble : 0;
        if (q) {
            if (*n >= cap) return cl_errf(err, CL_EUNSUP, "%s: post_processor.%s too long", path, key);
            out[(*n)++] = (tok_tmpl){!strcmp(id, "B") ? TMPL_B : TMPL_A, 0, type_id};
            continue;
        }
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(sp, id);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids");
        if (!cJSON_IsArray(ids))
            return cl_errf(err, CL_EFORMAT, "%s: post_processor special token '%s' has no ids", path, id);
        for (const cJSON *x = ids->child; x; x = x->next) {
            if (!cJSON_IsNumber(x)) return cl_errf(err, CL_EFORMAT, "%s: bad id of '%s'", path, id);
            if (*n >= cap) return cl_errf(err, CL_EUNSUP, "%s: post_processor.%s too long", path, key);
            out[(*n)++] = (tok_tmpl){TMPL_SPECIAL, (int)x->valuedouble, type_id};
        }
    }
    (void)t;
    return 0;
}

static int load_json(cl_tokenizer *t, const char *path, cl_error *err) {
    char *text;
    size_t len;
    if (cl_read_file(path, &text, &len, err)) return -1;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    int rc = 0;
    if (!cJSON_IsObject(j)) { cJSON_Delete(j); return cl_errf(err, CL_EFORMAT, "%s: not a JSON object", path); }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const char *type = json_str(model, "type");
    if (!type) type = merges ? "BPE" : "WordPiece";
    /* the model type first: a Unigram tokenizer (XLM-R, CamemBERT) has an array vocab, and its message must say
     * that the type is not supported, not that the vocab is malformed */
    if (!strcmp(type, "BPE")) t->kind = CL_TOK_BPE;
    else if (!strcmp(type, "WordPiece")) t->kind = CL_TOK_WORDPIECE;
    else {
        rc = cl_errf(err, CL_EUNSUP, "%s: key 'model.type': this tokenizer type ('%s'%s) is not supported; condlora "
                     "reads BPE (RoBERTa's) and WordPiece (BERT's, MPNet's) tokenizers", path, type,
                     !strcmp(type, "Unigram") ? ", the SentencePiece model of XLM-R and CamemBERT" : "");
        goto out;
    }
    if (!cJSON_IsObject(vocab)) { rc = cl_errf(err, CL_EFORMAT, "%s: model.vocab is not an object", path); goto out; }
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e8) {
            rc = cl_errf(err, CL_EFORMAT, "%s: model.vocab: token '%.40s' has no valid id", path, e->string);
            goto out;
        }
        if ((rc = tok_strmap_put(&t->vocab, e->string, strlen(e->string), (int32_t)e->valuedouble, err))) goto out;
    }
    /* added tokens */
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    for (const cJSON *a = added ? added->child : NULL; a; a = a->next) {
        const char *content = json_str(a, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (!content || !cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 1e8) {
            rc = cl_errf(err, CL_EFORMAT, "%s: bad entry in added_tokens", path);
            goto out;
        }
        if ((rc = add_token(t, content, (int)id->valuedouble, json_bool(a, "special", 0), json_bool(a, "lstrip", 0),
                            json_bool(a, "rstrip", 0), json_bool(a, "normalized", 1), json_bool(a, "single_word", 0),
                            err)))
            goto out;
    }
    /* normalizer */
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(j, "normalizer");
    if (norm && !cJSON_IsNull(norm)) {
        const char *nt = json_str(norm, "type");
        if (!nt || strcmp(nt, "BertNormalizer")) {
            rc = cl_errf(err, CL_EUNSUP, "%s: normalizer '%s' is not supported (BertNormalizer or none)", path,
                         nt ? nt : "?");
            goto out;
        }
        t->has_norm = 1;
        t->clean_text = json_bool(norm, "clean_text", 1);
        t->chinese = json_bool(norm, "handle_chinese_chars", 1);
        t->lowercase = json_bool(norm, "lowercase", 1);
        t->strip_accents = json_bool(norm, "strip_accents", t->lowercase);
    }
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer");
    const char *pt = json_str(pre, "type");
    if (t->kind == CL_TOK_BPE) {
        if (t->has_norm) { rc = cl_errf(err, CL_EUNSUP, "%s: a normalizer with a BPE model is not supported", path); goto out; }
        if (!pt || strcmp(pt, "ByteLevel") || !json_bool(pre, "use_regex", 1)) {
            rc = cl_errf(err, CL_EUNSUP, "%s: BPE needs the ByteLevel pre-tokenizer with use_regex (got '%s')", path,
                         pt ? pt : "none");
            goto out;
        }
        t->add_prefix_space = json_bool(pre, "add_prefix_space", 0);
        const char *csp = json_str(model, "continuing_subword_prefix"), *eow = json_str(model, "end_of_word_suffix");
        const cJSON *drop = cJSON_GetObjectItemCaseSensitive(model, "dropout");
        if ((csp && *csp) || (eow && *eow) || json_bool(model, "byte_fallback", 0) ||
            (cJSON_IsNumber(drop) && drop->valuedouble > 0)) {
            rc = cl_errf(err, CL_EUNSUP, "%s: BPE with a subword prefix/suffix, byte fallback or dropout is not "
                                         "supported", path);
            goto out;
        }
        t->ignore_merges = json_bool(model, "ignore_merges", 0);
        t->fuse_unk = json_bool(model, "fuse_unk", 0);
        const char *unk = json_str(model, "unk_token");
        t->unk_id = unk ? vocab_id(t, unk) : -1;
        tok_bpe_init_alphabet(t);
        int rank = 0;
        for (const cJSON *m = cJSON_IsArray(merges) ? merges->child : NULL; m; m = m->next, rank++) {
            const char *l, *r;
            size_t la, lb;
            char tmp[1024];
            if (cJSON_IsString(m)) {
                const char *sp = strchr(m->valuestring, ' ');
                if (!sp || strchr(sp + 1, ' ')) { rc = cl_errf(err, CL_EFORMAT, "%s: merge %d is not 'a b'", path, rank); goto out; }
                l = m->valuestring; la = (size_t)(sp - l); r = sp + 1; lb = strlen(r);
            } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                       cJSON_IsString(m->child->next)) {
                l = m->child->valuestring; la = strlen(l); r = m->child->next->valuestring; lb = strlen(r);
            } else { rc = cl_errf(err, CL_EFORMAT, "%s: merge %d is malformed", path, rank); goto out; }
            int32_t a, b, id;
            if (la + lb >= sizeof tmp || !tok_strmap_get(&t->vocab, l, la, &a) || !tok_strmap_get(&t->vocab, r, lb, &b)) {
                rc = cl_errf(err, CL_EFORMAT, "%s: merge %d uses a token not in the vocabulary", path, rank);
                goto out;
            }
            memcpy(tmp, l, la);
            memcpy(tmp + la, r, lb);
            if (!tok_strmap_get(&t->vocab, tmp, la + lb, &id)) {
                rc = cl_errf(err, CL_EFORMAT, "%s: merge %d makes a token not in the vocabulary", path, rank);
                goto out;
            }
            if ((rc = tok_pairmap_put(&t->merges, a, b, rank, id, err))) goto out;
        }
    } else {
        if (!pt || strcmp(pt, "BertPreTokenizer")) {
            rc = cl_errf(err, CL_EUNSUP, "%s: WordPiece needs the BertPreTokenizer (got '%s')", path, pt ? pt : "none");
            goto out;
        }
        const char *csp = json_str(model, "continuing_subword_prefix");
        if (!csp) csp = "##";
        if (strlen(csp) >= sizeof t->prefix) { rc = cl_errf(err, CL_EUNSUP, "%s: subword prefix too long", path); goto out; }
        snprintf(t->prefix, sizeof t->prefix, "%s", csp);
        t->prefix_len = (int)strlen(csp);
        const cJSON *mc = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
        t->max_chars = cJSON_IsNumber(mc) ? (int)mc->valuedouble : 100;
        const char *unk = json_str(model, "unk_token");
        t->unk_id = vocab_id(t, unk ? unk : "[UNK]");
        if (t->unk_id < 0) { rc = cl_errf(err, CL_EFORMAT, "%s: the WordPiece unk token is not in the vocabulary", path); goto out; }
        const cJSON *dec = cJSON_GetObjectItemCaseSensitive(j, "decoder");
        t->wp_cleanup = json_bool(dec, "cleanup", 1);
    }
    /* post-processor */
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(j, "post_processor");
    const char *ppt = json_str(pp, "type");
    int is_bpe = t->kind == CL_TOK_BPE;
    t->cls_id = special_id(t, is_bpe ? "<s>" : "[CLS]", is_bpe ? "[CLS]" : "<s>");
    t->sep_id = special_id(t, is_bpe ? "</s>" : "[SEP]", is_bpe ? "[SEP]" : "</s>");
    if (!ppt) set_plain_template(t);
    else if (!strcmp(ppt, "RobertaProcessing") || !strcmp(ppt, "BertProcessing")) {
        if (json_special_id(pp, "cls", &t->cls_id) || json_special_id(pp, "sep", &t->sep_id)) {
            rc = cl_errf(err, CL_EFORMAT, "%s: post_processor without cls/sep", path);
            goto out;
        }
        set_bert_template(t, t->cls_id, t->sep_id, ppt[0] == 'R');
    } else if (!strcmp(ppt, "TemplateProcessing")) {
        if ((rc = parse_template(t, pp, "single", t->single, &t->n_single, 8, path, err)) ||
            (rc = parse_template(t, pp, "pair", t->pair, &t->n_pair, 16, path, err)))
            goto out;
    } else {
        rc = cl_errf(err, CL_EUNSUP, "%s: post_processor '%s' is not supported", path, ppt);
        goto out;
    }
    t->pad_id = special_id(t, is_bpe ? "<pad>" : "[PAD]", is_bpe ? "[PAD]" : "<pad>");
    t->mask_id = special_id(t, is_bpe ? "<mask>" : "[MASK]", is_bpe ? "[MASK]" : "<mask>");
    if (t->unk_id < 0 && !is_bpe) t->unk_id = special_id(t, "[UNK]", NULL);
    rc = is_bpe ? tok_bpe_finish(t, err) : tok_wp_finish(t, err);
out:
    cJSON_Delete(j);
    return rc;
}

int cl_tokenizer_load(cl_tokenizer **out, const char *dir, cl_error *err) {
    *out = NULL;
    cl_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory");
    t->pad_id = t->cls_id = t->sep_id = t->unk_id = t->mask_id = -1;
    char path[4200], p2[4200];
    int rc;
    if (file_exists(dir, "tokenizer.json", path, sizeof path)) rc = load_json(t, path, err);
    else if (file_exists(dir, "vocab.json", path, sizeof path) && file_exists(dir, "merges.txt", p2, sizeof p2))
        rc = load_bpe_files(t, dir, err);
    else if (file_exists(dir, "vocab.txt", path, sizeof path)) rc = load_wp_vocab_txt(t, dir, err);
    else rc = cl_errf(err, CL_EMISSING, "%s: no tokenizer.json, vocab.json + merges.txt or vocab.txt", dir);
    if (!rc) rc = build_id_table(t, err);
    if (!rc) rc = normalize_added(t, err);
    if (rc) {
        cl_tokenizer_free(t);
        return rc;
    }
    make_bitmaps(t);
    *out = t;
    return 0;
}

void cl_tokenizer_free(cl_tokenizer *t) {
    if (!t) return;
    tok_strmap_free(&t->vocab);
    tok_strmap_free(&t->cont);
    tok_pairmap_free(&t->merges);
    for (int i = 0; i < t->n_added; i++) { free(t->added[i].s); free(t->added[i].norm); }
    free(t->added);
    free(t->id2tok);
    free(t->id2len);
    free(t->id_special);
    free(t);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* encoding                                                                                                      */

void cl_tok_encoding_init(cl_tok_encoding *e) { memset(e, 0, sizeof *e); }

void cl_tok_encoding_free(cl_tok_encoding *e) {
    if (!e) return;
    tok_work *w = e->work;
    if (w) {
        free(w->a.v); free(w->b.v); free(w->san); free(w->norm); free(w->cps); free(w->syms); free(w->heap);
        tok_strmap_free(&w->cache);
        free(w->pool.v);
        free(w);
    }
    free(e->ids);
    free(e->type_ids);
    memset(e, 0, sizeof *e);
}

static int model_segment(const cl_tokenizer *t, tok_work *w, const char *s, size_t n, tok_ivec *out, cl_error *err) {
    if (!n) return 0;
    return t->kind == CL_TOK_BPE ? tok_bpe_encode_segment(t, w, s, n, out, err)
                                 : tok_wp_encode_segment(t, w, s, n, out, err);
}

static int is_word_byte(unsigned char c) { return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z'); }

/* Splits s on the added tokens of one pass (normalized or not), leftmost-longest like `tokenizers`; calls the
 * next stage on the text between matches. */
static int split_added(const cl_tokenizer *t, tok_work *w, const char *s, size_t n, int norm_pass, tok_ivec *out,
                       cl_error *err);

static int segment(const cl_tokenizer *t, tok_work *w, const char *s, size_t n, tok_ivec *out, cl_error *err) {
    if (!t->has_norm) return model_segment(t, w, s, n, out, err);
    long m = tok_bert_normalize(t, w, s, n, err);
    if (m < 0) return -1;
    /* the normalized text lives in w->norm; the next stages must not normalize again, so hand them a copy only
     * when normalized added tokens exist (their matching calls model_segment on pieces of w->norm) */
    return split_added(t, w, w->norm, (size_t)m, 1, out, err);
}

static int split_added(const cl_tokenizer *t, tok_work *w, const char *s, size_t n, int norm_pass, tok_ivec *out,
                       cl_error *err) {
    const uint8_t *bm = norm_pass ? t->first_norm : t->first_raw;
    size_t seg = 0, i = 0;
    int any = 0;
    for (int k = 0; k < 32; k++) any |= bm[k];
    if (any) {
        while (i < n) {
            unsigned char c = (unsigned char)s[i];
            if (!(bm[c >> 3] & (1u << (c & 7)))) { i++; continue; }
            const tok_added *best = NULL;
            int blen = 0;
            for (int k = 0; k < t->n_added; k++) {
                const tok_added *a = &t->added[k];
                int an = (t->has_norm && a->normalized) != 0;
                if (an != norm_pass) continue;
                const char *ts = norm_pass ? a->norm : a->s;
                int tl = norm_pass ? a->norm_len : a->len;
                if (tl > blen && (size_t)tl <= n - i && !memcmp(s + i, ts, (size_t)tl)) {
                    if (a->single_word && ((i > 0 && is_word_byte((unsigned char)s[i - 1])) ||
                                           (i + (size_t)tl < n && is_word_byte((unsigned char)s[i + (size_t)tl]))))
                        continue;
                    best = a;
                    blen = tl;
                }
            }
            if (!best) { i++; continue; }
            size_t ms = i, me = i + (size_t)blen;
            if (best->lstrip) {
                while (ms > seg) { /* step back over whitespace characters */
                    size_t p = ms - 1;
                    while (p > seg && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
                    uint32_t cp;
                    tok_utf8_next((const unsigned char *)s + p, ms - p, &cp);
                    if (!tok_is_ws(cp)) break;
                    ms = p;
                }
            }
            if (best->rstrip) {
                while (me < n) {
                    uint32_t cp;
                    int k = tok_utf8_next((const unsigned char *)s + me, n - me, &cp);
                    if (!tok_is_ws(cp)) break;
                    me += (size_t)k;
                }
            }
            if (ms > seg) {
                if ((norm_pass ? model_segment(t, w, s + seg, ms - seg, out, err)
                               : segment(t, w, s + seg, ms - seg, out, err)))
                    return -1;
            }
            if (tok_ivec_push(out, best->id, err)) return -1;
            seg = i = me;
        }
    }
    if (seg < n)
        return norm_pass ? model_segment(t, w, s + seg, n - seg, out, err) : segment(t, w, s + seg, n - seg, out, err);
    return 0;
}

static tok_work *get_work(cl_tok_encoding *e, cl_error *err) {
    if (!e->work) {
        e->work = calloc(1, sizeof(tok_work));
        if (!e->work) cl_errf(err, CL_ENOMEM, "tokenizer: out of memory");
    }
    return e->work;
}

/* Ids of one text (no special tokens) appended to out. */
static int encode_text(const cl_tokenizer *t, tok_work *w, const char *s, size_t n, tok_ivec *out, cl_error *err) {
    size_t ok = tok_utf8_valid_prefix((const unsigned char *)s, n);
    if (ok < n) {
        if (n > (SIZE_MAX - 16) / 3) return cl_errf(err, CL_EINVAL, "tokenizer: input too large");
        if (w->san_cap < 3 * n + 16) {
            char *p = realloc(w->san, 3 * n + 16);
            if (!p) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory (%zu bytes of text)", n);
            w->san = p;
            w->san_cap = 3 * n + 16;
        }
        n = tok_utf8_sanitize((const unsigned char *)s, n, w->san);
        s = w->san;
    }
    return split_added(t, w, s, n, 0, out, err);
}

static int enc_reserve(cl_tok_encoding *e, size_t need, cl_error *err) {
    if (need > INT32_MAX) return cl_errf(err, CL_EINVAL, "tokenizer: encoding of %zu tokens is too long", need);
    if ((size_t)e->cap >= need) return 0;
    size_t cap = e->cap ? (size_t)e->cap : 128;
    while (cap < need) cap *= 2;
    if (cap > INT32_MAX) cap = INT32_MAX;
    int32_t *a = realloc(e->ids, cap * sizeof *a);
    if (a) e->ids = a;
    int32_t *b = realloc(e->type_ids, cap * sizeof *b);
    if (b) e->type_ids = b;
    if (!a || !b) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory");
    e->cap = (int)cap;
    return 0;
}

int cl_tokenizer_num_special(const cl_tokenizer *t, int pair) {
    int n = 0;
    const tok_tmpl *tm = pair ? t->pair : t->single;
    for (int i = 0, m = pair ? t->n_pair : t->n_single; i < m; i++) n += tm[i].what == TMPL_SPECIAL;
    return n;
}

int cl_tokenizer_encode(const cl_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                        int max_length, cl_tok_encoding *e, cl_error *err) {
    tok_work *w = get_work(e, err);
    if (!w) return -1;
    e->len = e->len_a = e->len_b = e->truncated = 0;
    w->a.n = w->b.n = 0;
    if (!a && alen) return cl_errf(err, CL_EINVAL, "tokenizer: NULL text");
    if (b && blen == 0) b = NULL; /* transformers' tokenizer(a, "") encodes a alone */
    if (encode_text(t, w, a ? a : "", alen, &w->a, err)) return -1;
    if (b && encode_text(t, w, b, blen, &w->b, err)) return -1;
    size_t na = w->a.n, nb = w->b.n;
    int pair = b != NULL;
    int added = cl_tokenizer_num_special(t, pair);
    /* truncation, exactly as tokenizers' truncate_encodings (LongestFirst, stride 0, right) */
    if (max_length > 0 && max_length >= added) {
        size_t m = (size_t)(max_length - added);
        if (na + nb > m) {
            e->truncated = 1;
            if (!pair) na = m;
            else {
                size_t n1 = na, n2 = nb;
                int swap = 0;
                if (n1 > n2) { swap = 1; size_t x = n1; n1 = n2; n2 = x; }
                if (n1 > m) n2 = n1;
                else n2 = n1 > m - n1 ? n1 : m - n1;
                if (n1 + n2 > m) { n1 = m / 2; n2 = n1 + m % 2; }
                if (swap) { size_t x = n1; n1 = n2; n2 = x; }
                if (n1 < na) na = n1;
                if (n2 < nb) nb = n2;
            }
        }
    }
    if (enc_reserve(e, na + nb + (size_t)added, err)) return -1;
    const tok_tmpl *tm = pair ? t->pair : t->single;
    int nt = pair ? t->n_pair : t->n_single, k = 0;
    for (int i = 0; i < nt; i++) {
        if (tm[i].what == TMPL_SPECIAL) {
            e->ids[k] = tm[i].id;
            e->type_ids[k++] = tm[i].type_id;
        } else {
            const int32_t *src = tm[i].what == TMPL_A ? w->a.v : w->b.v;
            size_t cnt = tm[i].what == TMPL_A ? na : nb;
            if (tm[i].what == TMPL_B && !pair) cnt = 0;
            for (size_t j = 0; j < cnt; j++) {
                e->ids[k] = src[j];
                e->type_ids[k++] = tm[i].type_id;
            }
        }
    }
    e->len = k;
    e->len_a = (int)na;
    e->len_b = (int)nb;
    return 0;
}

int cl_tokenizer_encode_str(const cl_tokenizer *t, const char *a, const char *b, int max_length,
                            cl_tok_encoding *enc, cl_error *err) {
    return cl_tokenizer_encode(t, a, a ? strlen(a) : 0, b, b ? strlen(b) : 0, max_length, enc, err);
}

int cl_tokenizer_encode_raw(const cl_tokenizer *t, const char *a, size_t alen, cl_tok_encoding *e, cl_error *err) {
    tok_work *w = get_work(e, err);
    if (!w) return -1;
    e->len = e->len_a = e->len_b = e->truncated = 0;
    w->a.n = 0;
    if (encode_text(t, w, a ? a : "", a ? alen : 0, &w->a, err)) return -1;
    if (enc_reserve(e, w->a.n, err)) return -1;
    memcpy(e->ids, w->a.v, w->a.n * sizeof *e->ids);
    memset(e->type_ids, 0, w->a.n * sizeof *e->type_ids);
    e->len = e->len_a = (int)w->a.n;
    return 0;
}

int cl_tokenizer_decode(const cl_tokenizer *t, const int32_t *ids, int n, int skip_special, char **out,
                        cl_error *err) {
    *out = NULL;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->vocab_size || !t->id2tok[ids[i]])
            return cl_errf(err, CL_EINVAL, "tokenizer: decode: id %d at position %d is not in the vocabulary",
                           ids[i], i);
    return t->kind == CL_TOK_BPE ? tok_bpe_decode(t, ids, n, skip_special, out, err)
                                 : tok_wp_decode(t, ids, n, skip_special, out, err);
}

cl_tok_kind cl_tokenizer_kind(const cl_tokenizer *t) { return t->kind; }
int cl_tokenizer_vocab_size(const cl_tokenizer *t) { return t->vocab_size; }
int cl_tokenizer_pad_id(const cl_tokenizer *t) { return t->pad_id; }
int cl_tokenizer_cls_id(const cl_tokenizer *t) { return t->cls_id; }
int cl_tokenizer_sep_id(const cl_tokenizer *t) { return t->sep_id; }
int cl_tokenizer_unk_id(const cl_tokenizer *t) { return t->unk_id; }
int cl_tokenizer_mask_id(const cl_tokenizer *t) { return t->mask_id; }

int cl_tokenizer_token_to_id(const cl_tokenizer *t, const char *token) {
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].s, token)) return t->added[i].id;
    return vocab_id(t, token);
}

const char *cl_tokenizer_id_to_token(const cl_tokenizer *t, int id) {
    return id >= 0 && id < t->vocab_size ? t->id2tok[id] : NULL;
}
