/* WordPiece as BERT and Hugging Face `tokenizers` do it:
 *  - BertNormalizer: drop NUL, U+FFFD and control/format/private-use characters (Cc Cf Co; unassigned ones stay, as in `tokenizers`) (tab, CR, LF kept),
 *    map whitespace to ' ', put spaces around CJK ideographs, NFD + drop nonspacing marks (strip accents), then
 *    lowercase (full Unicode lowercase: U+0130 becomes "i\u0307");
 *    the character classes are those of `tokenizers` itself (bert_unicode.h, measured from it by
 *    scripts/gen_tokenizer_unicode.py), since it mixes tables of several Unicode versions;
 *  - BertPreTokenizer: split on whitespace, each punctuation character (ASCII punctuation or Unicode P*) alone;
 *  - WordPiece: greedy longest match from the left, continuing pieces looked up with the "##" prefix; a word with
 *    an unmatched remainder, or over max_input_chars_per_word characters, becomes one [UNK]. */
#include <stdlib.h>
#include <string.h>
#include "tokenizer/bert_unicode.h"
#include "tokenizer/tok_internal.h"

int tok_wp_finish(cl_tokenizer *t, cl_error *err) {
    t->max_tok_bytes = 1;
    for (size_t e = 0; e < t->vocab.n; e++) {
        const char *k = t->vocab.arena + t->vocab.off[e];
        size_t n = t->vocab.len[e];
        if ((int)n > t->max_tok_bytes) t->max_tok_bytes = (int)n;
        if (n > (size_t)t->prefix_len && !memcmp(k, t->prefix, (size_t)t->prefix_len) &&
            tok_strmap_put(&t->cont, k + t->prefix_len, n - (size_t)t->prefix_len, t->vocab.val[e], err))
            return -1;
    }
    if (t->unk_id < 0) return cl_errf(err, CL_EFORMAT, "tokenizer: WordPiece vocabulary without an unk token");
    return 0;
}

/* ---- BertNormalizer ---- */

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid][0]) hi = mid;
        else if (c > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}
#define IN(tab, c) in_ranges(tab, sizeof tab / sizeof tab[0], c)

/* Row of a (code point, ...) table sorted by code point, or NULL. */
static const uint32_t *find_row(const uint32_t *tab, size_t rows, size_t width, uint32_t c) {
    size_t lo = 0, hi = rows;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t k = tab[mid * width];
        if (c < k) hi = mid;
        else if (c > k) lo = mid + 1;
        else return tab + mid * width;
    }
    return NULL;
}

static int is_control(uint32_t c) {
    if (c < 0x80) return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F;
    return IN(bert_control, c);
}

static int ccc(uint32_t c) {
    if (c < 0x300) return 0;
    size_t lo = 0, hi = sizeof bert_ccc / sizeof bert_ccc[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < bert_ccc[mid][0]) hi = mid;
        else if (c > bert_ccc[mid][1]) lo = mid + 1;
        else return (int)bert_ccc[mid][2];
    }
    return 0;
}

static int is_chinese(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int push_cp(tok_work *w, size_t *n, uint32_t c, cl_error *err) {
    if (*n == w->cps_cap) {
        size_t cap = w->cps_cap ? w->cps_cap * 2 : 256;
        uint32_t *p = realloc(w->cps, cap * sizeof *p);
        if (!p) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory (normalizer)");
        w->cps = p;
        w->cps_cap = cap;
    }
    w->cps[(*n)++] = c;
    return 0;
}

long tok_bert_normalize(const cl_tokenizer *t, tok_work *w, const char *s, size_t n, cl_error *err) {
    size_t m = 0;
    int nonascii = 0;
    /* clean text, CJK spacing, NFD (when stripping accents) into w->cps */
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += (size_t)tok_utf8_next((const unsigned char *)s + i, n - i, &c);
        if (t->clean_text) {
            if (c == 0 || c == 0xFFFD || is_control(c)) continue;
            if (tok_is_ws(c)) c = ' ';
        }
        if (c < 0x80) {
            if (push_cp(w, &m, c, err)) return -1;
            continue;
        }
        nonascii = 1;
        int cjk = t->chinese && is_chinese(c);
        if (cjk && push_cp(w, &m, ' ', err)) return -1;
        if (t->strip_accents) {
            if (c >= 0xAC00 && c <= 0xD7A3) { /* Hangul syllable: algorithmic decomposition */
                uint32_t si = c - 0xAC00, l = 0x1100 + si / 588, v = 0x1161 + (si % 588) / 28, tt = si % 28;
                if (push_cp(w, &m, l, err) || push_cp(w, &m, v, err) || (tt && push_cp(w, &m, 0x11A7 + tt, err)))
                    return -1;
            } else {
                const uint32_t *row = find_row(&bert_nfd[0][0], sizeof bert_nfd / sizeof bert_nfd[0], 5, c);
                if (!row) { if (push_cp(w, &m, c, err)) return -1; }
                else for (int j = 1; j < 5 && row[j]; j++)
                    if (push_cp(w, &m, row[j], err)) return -1;
            }
        } else if (push_cp(w, &m, c, err)) return -1;
        if (cjk && push_cp(w, &m, ' ', err)) return -1;
    }
    if (t->strip_accents && nonascii) { /* canonical ordering of combining marks, then drop the Mn ones */
        for (size_t i = 1; i < m; i++) {
            if (w->cps[i] < 0x300) continue;
            for (size_t j = i; j > 0; j--) {
                int cb = ccc(w->cps[j]), ca = ccc(w->cps[j - 1]);
                if (cb == 0 || ca <= cb) break;
                uint32_t x = w->cps[j]; w->cps[j] = w->cps[j - 1]; w->cps[j - 1] = x;
            }
        }
        size_t o = 0;
        for (size_t i = 0; i < m; i++)
            if (w->cps[i] < 0x300 || !IN(bert_mark, w->cps[i]))
                w->cps[o++] = w->cps[i];
        m = o;
    }
    /* lowercase and encode */
    size_t need = 12 * m + 8; /* a lowercase mapping may give 3 code points of 4 bytes */
    if (need > w->norm_cap) {
        char *p = realloc(w->norm, need);
        if (!p) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory (normalizer)");
        w->norm = p;
        w->norm_cap = need;
    }
    size_t o = 0;
    for (size_t i = 0; i < m; i++) {
        uint32_t c = w->cps[i];
        if (t->lowercase) {
            if (c < 0x80) {
                if (c >= 'A' && c <= 'Z') c += 32;
            } else {
                const uint32_t *row = find_row(&bert_lower[0][0], sizeof bert_lower / sizeof bert_lower[0], 4, c);
                if (row) { /* full lowercase: one to three code points */
                    int last = row[3] ? 3 : row[2] ? 2 : 1;
                    for (int j = 1; j < last; j++) o += (size_t)tok_utf8_put(w->norm + o, row[j]);
                    c = row[last];
                }
            }
        }
        if (c < 0x80) w->norm[o++] = (char)c;
        else o += (size_t)tok_utf8_put(w->norm + o, c);
    }
    return (long)o;
}

/* ---- BertPreTokenizer + WordPiece ---- */

static int is_punct(uint32_t c) {
    if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    return IN(bert_punct, c);
}

static int wp_word(const cl_tokenizer *t, const char *s, size_t n, tok_ivec *out, cl_error *err) {
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    if (chars > (size_t)t->max_chars) return tok_ivec_push(out, t->unk_id, err);
    size_t before = out->n, start = 0;
    while (start < n) {
        size_t end = n;
        if (end - start > (size_t)t->max_tok_bytes) {
            end = start + (size_t)t->max_tok_bytes;
            while (end > start && ((unsigned char)s[end] & 0xC0) == 0x80) end--;
        }
        int32_t id = -1;
        while (end > start) {
            if (tok_strmap_get(start ? &t->cont : &t->vocab, s + start, end - start, &id)) break;
            id = -1;
            do end--; while (end > start && ((unsigned char)s[end] & 0xC0) == 0x80);
        }
        if (id < 0) {
            out->n = before;
            return tok_ivec_push(out, t->unk_id, err);
        }
        if (tok_ivec_push(out, id, err)) return -1;
        start = end;
    }
    return 0;
}

int tok_wp_encode_segment(const cl_tokenizer *t, tok_work *w, const char *s, size_t n, tok_ivec *out,
                          cl_error *err) {
    (void)w;
    size_t i = 0, word = 0;
    while (i < n) {
        uint32_t c;
        int k = tok_utf8_next((const unsigned char *)s + i, n - i, &c);
        if (tok_is_ws(c)) {
            if (i > word && wp_word(t, s + word, i - word, out, err)) return -1;
            word = i + (size_t)k;
        } else if (is_punct(c)) {
            if (i > word && wp_word(t, s + word, i - word, out, err)) return -1;
            if (wp_word(t, s + i, (size_t)k, out, err)) return -1;
            word = i + (size_t)k;
        }
        i += (size_t)k;
    }
    if (n > word) return wp_word(t, s + word, n - word, out, err);
    return 0;
}

/* ---- the WordPiece decoder ---- */

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static int sb_add(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* Replaces every occurrence of from by to in b[start..] (left to right, non-overlapping, like str::replace). */
static int sb_replace(sbuf *b, size_t start, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to);
    if (b->n - start < fl || !memmem(b->p + start, b->n - start, from, fl)) return 0;
    sbuf r = {0};
    size_t i = start;
    while (i < b->n) {
        const char *hit = memmem(b->p + i, b->n - i, from, fl);
        size_t upto = hit ? (size_t)(hit - b->p) : b->n;
        if (sb_add(&r, b->p + i, upto - i)) { free(r.p); return -1; }
        if (!hit) break;
        if (sb_add(&r, to, tl)) { free(r.p); return -1; }
        i = upto + fl;
    }
    b->n = start;
    int rc = sb_add(b, r.p ? r.p : "", r.n);
    free(r.p);
    return rc;
}

int tok_wp_decode(const cl_tokenizer *t, const int32_t *ids, int n, int skip_special, char **out, cl_error *err) {
    static const char *const rep[][2] = {{" .", "."},     {" ?", "?"},     {" !", "!"},       {" ,", ","},
                                         {" ' ", "'"},    {" n't", "n't"}, {" 'm", "'m"},     {" do not", " don't"},
                                         {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"}};
    sbuf b = {0};
    if (sb_add(&b, "", 0)) return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory (decode)");
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (skip_special && t->id_special[ids[i]]) continue;
        const char *tk = t->id2tok[ids[i]];
        size_t tl = (size_t)t->id2len[ids[i]], start = b.n;
        int rc = 0;
        if (k > 0) {
            if (tl >= (size_t)t->prefix_len && !memcmp(tk, t->prefix, (size_t)t->prefix_len)) {
                tk += t->prefix_len;
                tl -= (size_t)t->prefix_len;
            } else rc = sb_add(&b, " ", 1);
        }
        if (!rc) rc = sb_add(&b, tk, tl);
        for (size_t r = 0; !rc && t->wp_cleanup && r < sizeof rep / sizeof rep[0]; r++)
            rc = sb_replace(&b, start, rep[r][0], rep[r][1]);
        if (rc) { free(b.p); return cl_errf(err, CL_ENOMEM, "tokenizer: out of memory (decode)"); }
        k++;
    }
    *out = b.p;
    return 0;
}
