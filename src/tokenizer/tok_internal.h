/* Private to src/tokenizer: the tokenizer's structure, hash maps, UTF-8 helpers and the per-encoding workspace. */
#ifndef CL_TOK_INTERNAL_H
#define CL_TOK_INTERNAL_H
#include <stdint.h>
#include <stddef.h>
#include "core/error.h"
#include "tokenizer/tokenizer.h"

/* ---- growable int vector ---- */
typedef struct {
    int32_t *v;
    size_t n, cap;
} tok_ivec;
int tok_ivec_reserve(tok_ivec *v, size_t need, cl_error *err);
static inline int tok_ivec_push(tok_ivec *v, int32_t x, cl_error *err) {
    if (v->n == v->cap && tok_ivec_reserve(v, v->n + 1, err)) return -1;
    v->v[v->n++] = x;
    return 0;
}

/* ---- string -> int32 map (open addressing; keys copied into an arena) ---- */
typedef struct {
    uint32_t *slots; /* entry index + 1, 0 = empty */
    size_t nslots;   /* power of two */
    uint32_t *off, *len, *hash;
    int32_t *val;
    size_t n, cap;
    char *arena;
    size_t alen, acap;
} tok_strmap;
uint32_t tok_hash(const char *s, size_t n);
int tok_strmap_put(tok_strmap *m, const char *k, size_t n, int32_t v, cl_error *err); /* overwrites */
int tok_strmap_get(const tok_strmap *m, const char *k, size_t n, int32_t *v);          /* 1 found, 0 not */
void tok_strmap_clear(tok_strmap *m);
void tok_strmap_free(tok_strmap *m);

/* ---- (int32, int32) -> (rank, id) map for BPE merges ---- */
typedef struct {
    uint64_t key;
    int32_t rank, id;
} tok_pair;
typedef struct {
    tok_pair *slots;
    size_t nslots, n;
} tok_pairmap;
int tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id, cl_error *err);
static inline const tok_pair *tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b) {
    if (!m->nslots) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t mask = m->nslots - 1, i = (size_t)(h >> 32) & mask;
    for (;;) {
        const tok_pair *p = &m->slots[i];
        if (p->key == key) return p;
        if (p->key == UINT64_MAX) return NULL;
        i = (i + 1) & mask;
    }
}
void tok_pairmap_free(tok_pairmap *m);

/* ---- UTF-8 ---- */
/* Decodes one code point of valid UTF-8 at s (n bytes left, n >= 1); returns its byte length. */
static inline int tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80 || n < 2) { *cp = c; return 1; }
    if (c < 0xE0) { *cp = ((c & 0x1F) << 6) | (s[1] & 0x3F); return 2; }
    if (c < 0xF0 || n < 4) {
        if (n < 3) { *cp = c; return 1; }
        *cp = ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}
int tok_utf8_put(char *dst, uint32_t cp); /* writes 1..4 bytes, returns the count */
/* Length of the valid UTF-8 prefix of s. */
size_t tok_utf8_valid_prefix(const unsigned char *s, size_t n);
/* Writes s with every maximal ill-formed subsequence replaced by U+FFFD into dst (capacity >= 3 * n); returns the
 * output length. */
size_t tok_utf8_sanitize(const unsigned char *s, size_t n, char *dst);
int tok_is_ws(uint32_t cp); /* Unicode White_Space (Rust char::is_whitespace, Oniguruma \s) */

/* ---- the tokenizer ---- */
typedef struct {
    char *s;
    int len;
    char *norm; /* normalized content (normalized tokens with a normalizer) */
    int norm_len;
    int id;
    int special, lstrip, rstrip, normalized, single_word;
} tok_added;

enum { TMPL_SPECIAL = 0, TMPL_A = 1, TMPL_B = 2 };
typedef struct {
    int what, id, type_id;
} tok_tmpl;

struct cl_tokenizer {
    cl_tok_kind kind;
    tok_strmap vocab;  /* model vocabulary: token -> id */
    char **id2tok;     /* id -> token (model vocab and added tokens), NULL for holes */
    int *id2len;
    uint8_t *id_special;
    int vocab_size;
    tok_added *added;
    int n_added;
    uint8_t first_raw[32], first_norm[32]; /* bitmaps of the first bytes of added tokens (raw / normalized) */
    tok_tmpl single[8], pair[16];
    int n_single, n_pair;
    int pad_id, cls_id, sep_id, unk_id, mask_id;
    /* BertNormalizer */
    int has_norm, clean_text, chinese, strip_accents, lowercase;
    /* byte-level BPE */
    tok_pairmap merges;
    int32_t byte_id[256];   /* id of each byte's alphabet character, -1 when absent */
    uint16_t byte2cp[256];  /* GPT-2 bytes_to_unicode */
    int16_t cp2byte[512];   /* its inverse, -1 when the code point is not in the alphabet */
    int add_prefix_space, ignore_merges, fuse_unk;
    /* WordPiece */
    tok_strmap cont;  /* continuing pieces, keyed without the prefix */
    char prefix[32];
    int prefix_len, max_chars, max_tok_bytes;
    int wp_cleanup; /* WordPiece decoder cleanup */
};

/* The per-encoding workspace (cl_tok_encoding.work). */
typedef struct {
    int32_t c, prev, next, len;
} tok_sym;
typedef struct {
    int32_t rank, pos, id;
} tok_heap_item;
typedef struct {
    tok_ivec a, b;
    char *san;  /* sanitized input */
    size_t san_cap;
    char *norm; /* normalized segment */
    size_t norm_cap;
    uint32_t *cps;
    size_t cps_cap;
    tok_sym *syms;
    size_t syms_cap;
    tok_heap_item *heap;
    size_t heap_cap;
    tok_strmap cache;
    tok_ivec pool; /* cache values: pool[off] = count, then the ids */
} tok_work;

/* bpe.c */
void tok_bpe_init_alphabet(cl_tokenizer *t);
int tok_bpe_finish(cl_tokenizer *t, cl_error *err); /* fills byte_id once the vocabulary is known */
int tok_bpe_encode_segment(const cl_tokenizer *t, tok_work *w, const char *s, size_t n, tok_ivec *out,
                           cl_error *err);
int tok_bpe_decode(const cl_tokenizer *t, const int32_t *ids, int n, int skip_special, char **out, cl_error *err);

/* wordpiece.c */
int tok_wp_finish(cl_tokenizer *t, cl_error *err); /* builds the continuing-piece map */
/* BertNormalizer on s[0..n) into w->norm; returns the length or -1. */
long tok_bert_normalize(const cl_tokenizer *t, tok_work *w, const char *s, size_t n, cl_error *err);
int tok_wp_encode_segment(const cl_tokenizer *t, tok_work *w, const char *s, size_t n, tok_ivec *out,
                          cl_error *err);
int tok_wp_decode(const cl_tokenizer *t, const int32_t *ids, int n, int skip_special, char **out, cl_error *err);

#endif
