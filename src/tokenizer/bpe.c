/* Byte-level BPE as GPT-2 / RoBERTa and Hugging Face `tokenizers` do it:
 *  - the ByteLevel pre-tokenizer's pattern
 *      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *    matched by hand over UTF-8 with utf8proc's categories (no regex engine in the hot path);
 *  - each piece's bytes mapped to GPT-2's printable alphabet (bytes_to_unicode) and merged by rank, lowest first and
 *    leftmost on ties, with a binary heap (O(n log n) on long words) exactly as `tokenizers`' BPE::merge_word;
 *  - a per-encoding word cache so that repeated words cost one hash lookup. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "tokenizer/tok_internal.h"

enum { C_L = 0, C_N = 1, C_S = 2, C_O = 3 };

static int cp_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp | 32) >= 'a' && (cp | 32) <= 'z') return C_L;
        if (cp >= '0' && cp <= '9') return C_N;
        if (cp == ' ' || (cp >= 9 && cp <= 13)) return C_S;
        return C_O;
    }
    if (tok_is_ws(cp)) return C_S;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return C_L;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: return C_N;
    default: return C_O;
    }
}

void tok_bpe_init_alphabet(cl_tokenizer *t) {
    int n = 0;
    for (int i = 0; i < 512; i++) t->cp2byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        t->byte2cp[b] = (uint16_t)(printable ? b : 256 + n++);
        t->cp2byte[t->byte2cp[b]] = (int16_t)b;
    }
}

int tok_bpe_finish(cl_tokenizer *t, cl_error *err) {
    for (int b = 0; b < 256; b++) {
        char buf[4];
        int k = tok_utf8_put(buf, t->byte2cp[b]);
        int32_t id;
        t->byte_id[b] = tok_strmap_get(&t->vocab, buf, (size_t)k, &id) ? id : -1;
    }
    (void)err;
    return 0;
}

/* ---- merging one word ---- */

static int heap_less(const tok_heap_item *a, const tok_heap_item *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(tok_heap_item *h, size_t *n, tok_heap_item x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&x, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static tok_heap_item heap_pop(tok_heap_item *h, size_t *n) {
    tok_heap_item top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const tok_heap_item *best = &x;
        if (l < *n && heap_less(&h[l], best)) { m = l; best = &h[l]; }
        if (r < *n && heap_less(&h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = x;
    return top;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem, cl_error *err) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory (BPE word of %zu bytes)", need);
    *p = q;
    *cap = c;
    return 0;
}

/* BPE over the bytes of one pre-token; the ids are appended to out. */
static int bpe_word(const cl_tokenizer *t, tok_work *w, const unsigned char *s, size_t n, tok_ivec *out,
                    cl_error *err) {
    if (t->ignore_merges) { /* the whole word as one token when the vocabulary has it */
        char buf[1024];
        if (n * 2 <= sizeof buf) {
            size_t k = 0;
            for (size_t i = 0; i < n; i++) k += (size_t)tok_utf8_put(buf + k, t->byte2cp[s[i]]);
            int32_t id;
            if (tok_strmap_get(&t->vocab, buf, k, &id)) return tok_ivec_push(out, id, err);
        }
    }
    if (grow((void **)&w->syms, &w->syms_cap, n, sizeof *w->syms, err) ||
        grow((void **)&w->heap, &w->heap_cap, 2 * n + 2, sizeof *w->heap, err))
        return -1;
    tok_sym *sy = w->syms;
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[s[i]];
        if (id < 0) {
            if (t->unk_id < 0) continue; /* no unk token: the character is dropped, as in `tokenizers` */
            if (t->fuse_unk && m > 0 && sy[m - 1].c == t->unk_id) { sy[m - 1].len++; continue; }
            id = t->unk_id;
        }
        sy[m] = (tok_sym){id, m - 1, m + 1, 1};
        m++;
    }
    if (m == 0) return 0;
    sy[m - 1].next = -1;
    size_t hn = 0;
    tok_heap_item *h = w->heap;
    for (int32_t i = 0; i + 1 < m; i++) {
        const tok_pair *p = tok_pairmap_get(&t->merges, sy[i].c, sy[i + 1].c);
        if (p) heap_push(h, &hn, (tok_heap_item){p->rank, i, p->id});
    }
    while (hn) {
        tok_heap_item top = heap_pop(h, &hn);
        tok_sym *a = &sy[top.pos];
        if (a->len == 0 || a->next < 0) continue;
        tok_sym *b = &sy[a->next];
        const tok_pair *p = tok_pairmap_get(&t->merges, a->c, b->c);
        if (!p || p->id != top.id) continue;
        a->c = top.id;
        a->len += b->len;
        a->next = b->next;
        b->len = 0;
        if (a->next >= 0) sy[a->next].prev = top.pos;
        if (a->prev >= 0) {
            const tok_pair *q = tok_pairmap_get(&t->merges, sy[a->prev].c, a->c);
            if (q) heap_push(h, &hn, (tok_heap_item){q->rank, a->prev, q->id});
        }
        if (a->next >= 0) {
            const tok_pair *q = tok_pairmap_get(&t->merges, a->c, sy[a->next].c);
            if (q) heap_push(h, &hn, (tok_heap_item){q->rank, top.pos, q->id});
        }
    }
    for (int32_t i = 0; i >= 0; i = sy[i].next)
        if (tok_ivec_push(out, sy[i].c, err)) return -1;
    return 0;
}

enum { CACHE_MAX_WORD = 128, CACHE_MAX_ENTRIES = 1 << 16 };

static int bpe_cached(const cl_tokenizer *t, tok_work *w, const char *s, size_t n, tok_ivec *out, cl_error *err) {
    if (n > CACHE_MAX_WORD) return bpe_word(t, w, (const unsigned char *)s, n, out, err);
    int32_t off;
    if (tok_strmap_get(&w->cache, s, n, &off)) {
        int32_t cnt = w->pool.v[off];
        if (tok_ivec_reserve(out, out->n + (size_t)cnt, err)) return -1;
        memcpy(out->v + out->n, w->pool.v + off + 1, (size_t)cnt * sizeof(int32_t));
        out->n += (size_t)cnt;
        return 0;
    }
    size_t before = out->n;
    if (bpe_word(t, w, (const unsigned char *)s, n, out, err)) return -1;
    if (w->cache.n >= CACHE_MAX_ENTRIES) { tok_strmap_clear(&w->cache); w->pool.n = 0; }
    size_t cnt = out->n - before;
    if (w->pool.n + cnt + 1 > INT32_MAX) { tok_strmap_clear(&w->cache); w->pool.n = 0; }
    if (tok_ivec_reserve(&w->pool, w->pool.n + cnt + 1, err)) return -1;
    off = (int32_t)w->pool.n;
    w->pool.v[w->pool.n++] = (int32_t)cnt;
    memcpy(w->pool.v + w->pool.n, out->v + before, cnt * sizeof(int32_t));
    w->pool.n += cnt;
    return tok_strmap_put(&w->cache, s, n, off, err);
}

/* ---- the ByteLevel pre-tokenizer ---- */

static inline int next_cp(const char *s, size_t n, size_t i, uint32_t *cp) {
    return tok_utf8_next((const unsigned char *)s + i, n - i, cp);
}

/* End of the run of characters of class cls starting at i. */
static size_t run_end(const char *s, size_t n, size_t i, int cls) {
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            int k = cp_class(c);
            if (k != cls) break;
            i++;
            continue;
        }
        uint32_t cp;
        int k = next_cp(s, n, i, &cp);
        if (cp_class(cp) != cls) break;
        i += (size_t)k;
    }
    return i;
}

static size_t contraction(const char *s, size_t n, size_t i) { /* s[i] == '\'' */
    if (i + 1 >= n) return 0;
    char a = s[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 >= n) return 0;
    char b = s[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

int tok_bpe_encode_segment(const cl_tokenizer *t, tok_work *w, const char *s, size_t n, tok_ivec *out,
                           cl_error *err) {
    if (t->add_prefix_space && (n == 0 || s[0] != ' ')) {
        if (n + 2 > w->norm_cap) {
            char *p = realloc(w->norm, n + 2);
            if (!p) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory");
            w->norm = p;
            w->norm_cap = n + 2;
        }
        w->norm[0] = ' ';
        memcpy(w->norm + 1, s, n);
        s = w->norm;
        n++;
    }
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = next_cp(s, n, i, &cp);
        size_t start = i, end;
        if (cp == '\'' && (end = contraction(s, n, i))) {
            end += i;
        } else {
            int cls = cp_class(cp);
            if (cls == C_S) {
                size_t j = i + (size_t)k, last = i;
                while (j < n) {
                    uint32_t c2;
                    int k2 = next_cp(s, n, j, &c2);
                    if (!tok_is_ws(c2)) break;
                    last = j;
                    j += (size_t)k2;
                }
                if (j == n) end = n;                  /* \s+(?!\S) up to the end */
                else if (last > i) end = last;        /* \s+(?!\S) leaves the last space to the next token */
                else if (cp == ' ') {                 /* ' ?X+' */
                    uint32_t c2;
                    next_cp(s, n, j, &c2);
                    end = run_end(s, n, j, cp_class(c2));
                } else end = j;                       /* \s+ */
            } else {
                end = run_end(s, n, i + (size_t)k, cls);
            }
        }
        if (bpe_cached(t, w, s + start, end - start, out, err)) return -1;
        i = end;
    }
    return 0;
}

/* ---- decoding: tokens back to bytes through the inverse alphabet ---- */

int tok_bpe_decode(const cl_tokenizer *t, const int32_t *ids, int n, int skip_special, char **out, cl_error *err) {
    size_t total = 1;
    for (int i = 0; i < n; i++) total += (size_t)t->id2len[ids[i]];
    unsigned char *raw = malloc(total);
    char *res = raw ? malloc(3 * total + 1) : NULL;
    if (!raw || !res) {
        free(raw);
        return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory (decode)");
    }
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (skip_special && t->id_special[ids[i]]) continue;
        const char *tk = t->id2tok[ids[i]];
        size_t tl = (size_t)t->id2len[ids[i]], j = 0, o0 = o;
        int ok = 1;
        while (j < tl) {
            uint32_t cp;
            j += (size_t)tok_utf8_next((const unsigned char *)tk + j, tl - j, &cp);
            if (cp >= 512 || t->cp2byte[cp] < 0) { ok = 0; break; }
            raw[o++] = (unsigned char)t->cp2byte[cp];
        }
        if (!ok) { /* a character outside the alphabet: the token's own bytes, as `tokenizers` does */
            o = o0;
            memcpy(raw + o, tk, tl);
            o += tl;
        }
    }
    size_t m = tok_utf8_sanitize(raw, o, res);
    res[m] = 0;
    free(raw);
    *out = res;
    return 0;
}
