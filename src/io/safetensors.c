/* safetensors reader (validating, over mmap) and writer. See safetensors.h for what is validated.
 *
 * The header is checked in three passes:
 *  1. the raw bytes: strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF);
 *  2. a strict RFC 8259 grammar scan of the text that also records every number token exactly (as an unsigned
 *     64-bit integer, or why it is not one: negative, fractional, exponent, too large) -- cJSON keeps only a double;
 *  3. cJSON builds the tree; each number node is tagged with its token index (valueint) in document order, so shape
 *     and data_offsets values are read from the exact tokens. Duplicate keys (cJSON keeps both) are found by sorting. */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

#define ST_MAX_HEADER 100000000ull
#define ST_MAX_DEPTH 128

static const char *const dtype_names[CL_DT_COUNT] = {"BOOL", "U8",   "I8",  "F8_E5M2", "F8_E4M3",
                                                      "I16",  "U16",  "F16", "BF16",    "I32",
                                                      "U32",  "F32",  "F64", "I64",     "U64"};
static const unsigned char dtype_sizes[CL_DT_COUNT] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};

const char *cl_dtype_name(cl_dtype dt) { return (unsigned)dt < CL_DT_COUNT ? dtype_names[dt] : "?"; }
size_t cl_dtype_size(cl_dtype dt) { return (unsigned)dt < CL_DT_COUNT ? dtype_sizes[dt] : 0; }
int cl_dtype_parse(const char *s, cl_dtype *out) {
    if (!s) return -1;
    for (int i = 0; i < CL_DT_COUNT; i++)
        if (!strcmp(s, dtype_names[i])) { *out = (cl_dtype)i; return 0; }
    return -1;
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* Pass 1: UTF-8 (cl_utf8_invalid_at, core/util.h). */
#define utf8_invalid_at cl_utf8_invalid_at

/* Pass 2: strict JSON grammar scan with exact number tokens. */
enum { NUM_OK = 0, NUM_NEGATIVE, NUM_FRACTION, NUM_EXPONENT, NUM_TOO_LARGE };
typedef struct {
    uint64_t value;
    uint32_t status;
    uint32_t pos; /* byte offset in the header (header is <= 1e8 bytes) */
} num_tok;

typedef struct {
    const char *s;
    size_t n, i;
    num_tok *nums;
    size_t nnums, cap;
    const char *why; /* first error */
    size_t where;
} scan;

static int sc_fail(scan *sc, const char *why) {
    if (!sc->why) { sc->why = why; sc->where = sc->i; }
    return -1;
}
static void sc_ws(scan *sc) {
    while (sc->i < sc->n) {
        char c = sc->s[sc->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') sc->i++;
        else break;
    }
}
static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
static int sc_u4(scan *sc, unsigned *out) {
    if (sc->n - sc->i < 4) return sc_fail(sc, "truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(sc->s[sc->i + k]);
        if (h < 0) return sc_fail(sc, "invalid \\u escape");
        v = v * 16 + (unsigned)h;
    }
    sc->i += 4;
    *out = v;
    return 0;
}
static int sc_string(scan *sc) {
    sc->i++; /* opening quote */
    while (sc->i < sc->n) {
        unsigned char c = (unsigned char)sc->s[sc->i];
        if (c == '"') { sc->i++; return 0; }
        if (c < 0x20) return sc_fail(sc, "unescaped control character in a string");
        if (c != '\\') { sc->i++; continue; }
        sc->i++;
        if (sc->i >= sc->n) break;
        char e = sc->s[sc->i++];
        if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') continue;
        if (e != 'u') { sc->i--; return sc_fail(sc, "invalid escape sequence in a string"); }
        unsigned u;
        if (sc_u4(sc, &u)) return -1;
        if (u == 0) return sc_fail(sc, "\\u0000 in a string (not supported)");
        if (u >= 0xDC00 && u <= 0xDFFF) return sc_fail(sc, "lone low surrogate \\u escape");
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (sc->n - sc->i < 2 || sc->s[sc->i] != '\\' || sc->s[sc->i + 1] != 'u')
                return sc_fail(sc, "lone high surrogate \\u escape");
            sc->i += 2;
            unsigned lo;
            if (sc_u4(sc, &lo)) return -1;
            if (lo < 0xDC00 || lo > 0xDFFF) return sc_fail(sc, "high surrogate not followed by a low surrogate");
        }
    }
    return sc_fail(sc, "unterminated string");
}
static int sc_number(scan *sc) {
    size_t start = sc->i;
    int neg = 0, frac = 0, expo = 0, big = 0;
    uint64_t v = 0;
    if (sc->s[sc->i] == '-') { neg = 1; sc->i++; }
    if (sc->i >= sc->n || sc->s[sc->i] < '0' || sc->s[sc->i] > '9') return sc_fail(sc, "invalid number");
    if (sc->s[sc->i] == '0') {
        sc->i++;
        if (sc->i < sc->n && sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9')
            return sc_fail(sc, "number with a leading zero");
    } else {
        while (sc->i < sc->n && sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9') {
            unsigned d = (unsigned)(sc->s[sc->i] - '0');
            if (v > (UINT64_MAX - d) / 10) big = 1;
            else v = v * 10 + d;
            sc->i++;
        }
    }
    if (sc->i < sc->n && sc->s[sc->i] == '.') {
        frac = 1;
        sc->i++;
        if (sc->i >= sc->n || sc->s[sc->i] < '0' || sc->s[sc->i] > '9') return sc_fail(sc, "invalid number");
        while (sc->i < sc->n && sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9') sc->i++;
    }
    if (sc->i < sc->n && (sc->s[sc->i] == 'e' || sc->s[sc->i] == 'E')) {
        expo = 1;
        sc->i++;
        if (sc->i < sc->n && (sc->s[sc->i] == '+' || sc->s[sc->i] == '-')) sc->i++;
        if (sc->i >= sc->n || sc->s[sc->i] < '0' || sc->s[sc->i] > '9') return sc_fail(sc, "invalid number");
        while (sc->i < sc->n && sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9') sc->i++;
    }
    if (sc->nnums == sc->cap) {
        size_t nc = sc->cap ? sc->cap * 2 : 64;
        num_tok *p = realloc(sc->nums, nc * sizeof *p);
        if (!p) return sc_fail(sc, "out of memory");
        sc->nums = p;
        sc->cap = nc;
    }
    num_tok *t = &sc->nums[sc->nnums++];
    t->value = v;
    t->pos = (uint32_t)start;
    t->status = neg && !(v == 0 && !frac && !expo && !big) ? NUM_NEGATIVE
                : frac                                     ? NUM_FRACTION
                : expo                                     ? NUM_EXPONENT
                : big                                      ? NUM_TOO_LARGE
                                                           : NUM_OK;
    return 0;
}
static int sc_lit(scan *sc, const char *lit) {
    size_t l = strlen(lit);
    if (sc->n - sc->i < l || memcmp(sc->s + sc->i, lit, l)) return sc_fail(sc, "invalid literal");
    sc->i += l;
    return 0;
}
static int sc_value(scan *sc, int depth) {
    sc_ws(sc);
    if (sc->i >= sc->n) return sc_fail(sc, "unexpected end of the header");
    if (depth > ST_MAX_DEPTH) return sc_fail(sc, "nesting deeper than 128 levels");
    char c = sc->s[sc->i];
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        sc->i++;
        sc_ws(sc);
        if (sc->i < sc->n && sc->s[sc->i] == close) { sc->i++; return 0; }
        for (;;) {
            if (c == '{') {
                sc_ws(sc);
                if (sc->i >= sc->n || sc->s[sc->i] != '"') return sc_fail(sc, "expected a string key");
                if (sc_string(sc)) return -1;
                sc_ws(sc);
                if (sc->i >= sc->n || sc->s[sc->i] != ':') return sc_fail(sc, "expected ':' after a key");
                sc->i++;
            }
            if (sc_value(sc, depth + 1)) return -1;
            sc_ws(sc);
            if (sc->i >= sc->n) return sc_fail(sc, "unexpected end of the header");
            if (sc->s[sc->i] == ',') { sc->i++; continue; }
            if (sc->s[sc->i] == close) { sc->i++; return 0; }
            return sc_fail(sc, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    if (c == '"') return sc_string(sc);
    if (c == '-' || (c >= '0' && c <= '9')) return sc_number(sc);
    if (c == 't') return sc_lit(sc, "true");
    if (c == 'f') return sc_lit(sc, "false");
    if (c == 'n') return sc_lit(sc, "null");
    return sc_fail(sc, "unexpected character");
}

/* Pass 3 helper: tag number nodes with their token index, in document order. */
static void tag_numbers(cJSON *node, size_t *idx) {
    for (; node; node = node->next) {
        if (cJSON_IsNumber(node)) node->valueint = (int)(*idx)++;
        if (node->child) tag_numbers(node->child, idx);
    }
}

/* ---------------------------------------------------------------------------------------------------------------- */
typedef struct {
    const char *name;
    const cJSON *node;
} named;
static int cmp_named(const void *a, const void *b) {
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}
static int cmp_offsets(const void *a, const void *b) {
    const cl_st_tensor *x = *(cl_st_tensor *const *)a, *y = *(cl_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static char *xstrdup(const char *s) {
    size_t l = strlen(s);
    char *p = malloc(l + 1);
    if (p) memcpy(p, s, l + 1);
    return p;
}

static const char *num_problem(uint32_t status) {
    switch (status) {
    case NUM_NEGATIVE: return "a negative number";
    case NUM_FRACTION: return "a fractional number";
    case NUM_EXPONENT: return "a number with an exponent";
    case NUM_TOO_LARGE: return "a number larger than 2^64-1";
    }
    return "a bad number";
}

/* Reads a non-negative integer from a number node (exact, from the token). */
static int get_uint(const cJSON *v, const scan *sc, uint64_t *out, const char *file, const char *tname,
                    const char *field, cl_error *err) {
    if (!cJSON_IsNumber(v))
        return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': %s must hold integers, found a non-number", file, tname,
                       field);
    size_t k = (size_t)v->valueint;
    if (v->valueint < 0 || k >= sc->nnums)
        return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': internal number-token mismatch in %s", file, tname, field);
    const num_tok *t = &sc->nums[k];
    if (t->status != NUM_OK)
        return cl_errf(err, CL_EFORMAT,
                       "%s: tensor '%s': %s holds %s at header byte %u (non-negative integers only)", file, tname,
                       field, num_problem(t->status), (unsigned)t->pos + 8);
    *out = t->value;
    return 0;
}

static int parse_tensor(cl_st_tensor *t, const char *tname, const cJSON *info, const scan *sc, const char *file,
                        cl_error *err) {
    if (!cJSON_IsObject(info))
        return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': entry is not an object", file, tname);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *c = info->child; c; c = c->next) {
        const cJSON **slot = !strcmp(c->string, "dtype")          ? &dtype
                             : !strcmp(c->string, "shape")        ? &shape
                             : !strcmp(c->string, "data_offsets") ? &offs
                                                                  : NULL;
        if (!slot) continue; /* unknown fields are ignored, as the reference implementation does */
        if (*slot) return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': duplicate field '%s'", file, tname, c->string);
        *slot = c;
    }
    if (!dtype) return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': missing field 'dtype'", file, tname);
    if (!shape) return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': missing field 'shape'", file, tname);
    if (!offs) return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': missing field 'data_offsets'", file, tname);
    if (!cJSON_IsString(dtype))
        return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': dtype is not a string", file, tname);
    if (cl_dtype_parse(dtype->valuestring, &t->dtype))
        return cl_errf(err, CL_EFORMAT,
                       "%s: tensor '%s': unknown dtype \"%.40s\" (expected one of BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 "
                       "F16 BF16 I32 U32 F32 F64 I64 U64)",
                       file, tname, dtype->valuestring);
    if (!cJSON_IsArray(shape))
        return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': shape is not an array", file, tname);
    int nd = cJSON_GetArraySize(shape);
    if (nd > CL_ST_MAX_DIMS)
        return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': shape has %d dimensions (condlora supports at most %d)",
                       file, tname, nd, CL_ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0, i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++) {
        uint64_t v;
        if (get_uint(d, sc, &v, file, tname, "shape", err)) return err ? (int)err->code : CL_EFORMAT;
        if (v > (uint64_t)INT64_MAX)
            return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': shape dimension %d = %llu is too large", file, tname,
                           i, (unsigned long long)v);
        t->shape[i] = (int64_t)v;
        if (!overflow && !cl_mul_ok(numel, v, &numel)) overflow = 1;
    }
    /* a zero dimension makes the product 0 whatever the others are; the reference uses checked multiplication in
     * order, so an overflow before the zero is still an error there. We follow it. */
    if (overflow)
        return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': the product of the shape overflows 64 bits", file, tname);
    t->numel = numel;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': data_offsets must be an array [BEGIN, END]", file, tname);
    if (get_uint(offs->child, sc, &t->begin, file, tname, "data_offsets", err) ||
        get_uint(offs->child->next, sc, &t->end, file, tname, "data_offsets", err))
        return err ? (int)err->code : CL_EFORMAT;
    if (t->end < t->begin)
        return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] has END < BEGIN", file, tname,
                       (unsigned long long)t->begin, (unsigned long long)t->end);
    uint64_t nbytes;
    if (!cl_mul_ok(numel, cl_dtype_size(t->dtype), &nbytes))
        return cl_errf(err, CL_EFORMAT, "%s: tensor '%s': byte size of %llu %s elements overflows 64 bits", file,
                       tname, (unsigned long long)numel, cl_dtype_name(t->dtype));
    if (t->end - t->begin != nbytes)
        return cl_errf(err, CL_EFORMAT,
                       "%s: tensor '%s': size mismatch: data_offsets [%llu, %llu] span %llu bytes but %llu %s "
                       "elements need %llu",
                       file, tname, (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)(t->end - t->begin), (unsigned long long)numel, cl_dtype_name(t->dtype),
                       (unsigned long long)nbytes);
    return 0;
}

static int validate(cl_safetensors *st, const char *file, cl_error *err) {
    const uint8_t *buf = st->map;
    size_t size = st->size;
    if (size < 8)
        return cl_errf(err, CL_EFORMAT, "%s: file too small (%zu bytes) to hold the 8-byte header length", file,
                       size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
    if (n > ST_MAX_HEADER)
        return cl_errf(err, CL_EFORMAT, "%s: header length N = %llu exceeds the 100,000,000-byte limit", file,
                       (unsigned long long)n);
    if (n + 8 > size)
        return cl_errf(err, CL_EFORMAT,
                       "%s: header length N = %llu but the file has only %zu bytes after the 8-byte length (truncated "
                       "file?)",
                       file, (unsigned long long)n, size - 8);
    st->header_len = n;
    const uint8_t *h = buf + 8;
    long long bad = utf8_invalid_at(h, (size_t)n);
    if (bad >= 0)
        return cl_errf(err, CL_EFORMAT, "%s: header is not valid UTF-8 (invalid byte 0x%02x at file offset %lld)",
                       file, h[bad], bad + 8);
    scan sc = {.s = (const char *)h, .n = (size_t)n};
    int rc = 0;
    char *text = NULL;
    cJSON *root = NULL;
    named *names = NULL;
    cl_st_tensor **order = NULL;
    sc_ws(&sc);
    if (sc.i >= sc.n) {
        rc = cl_errf(err, CL_EFORMAT, "%s: header is empty (expected a JSON object)", file);
        goto out;
    }
    if (sc.s[sc.i] != '{') {
        rc = cl_errf(err, CL_EFORMAT, "%s: header is not a JSON object (starts with '%c' at file offset %zu)", file,
                     sc.s[sc.i] >= 0x20 && sc.s[sc.i] < 0x7f ? sc.s[sc.i] : '?', sc.i + 8);
        goto out;
    }
    if (sc_value(&sc, 0) == 0) {
        sc_ws(&sc);
        if (sc.i < sc.n) sc_fail(&sc, "trailing characters after the JSON object");
    }
    if (sc.why) {
        rc = cl_errf(err, sc.why[0] == 'o' ? CL_ENOMEM : CL_EFORMAT, "%s: invalid JSON header: %s at file offset %zu",
                     file, sc.why, sc.where + 8);
        goto out;
    }
    text = malloc((size_t)n + 1);
    if (!text) { rc = cl_errf(err, CL_ENOMEM, "%s: out of memory for a %llu-byte header", file, (unsigned long long)n); goto out; }
    memcpy(text, h, (size_t)n);
    text[n] = 0;
    root = cJSON_ParseWithLength(text, (size_t)n);
    if (!root || !cJSON_IsObject(root)) {
        rc = cl_errf(err, CL_EFORMAT, "%s: invalid JSON header (rejected by the JSON parser)", file);
        goto out;
    }
    size_t ntok = 0;
    tag_numbers(root->child, &ntok);
    if (ntok != sc.nnums) {
        rc = cl_errf(err, CL_EFORMAT, "%s: invalid JSON header (number tokens disagree: %zu vs %zu)", file, ntok,
                     sc.nnums);
        goto out;
    }
    int nkeys = cJSON_GetArraySize(root);
    names = calloc((size_t)nkeys + 1, sizeof *names);
    if (!names) { rc = cl_errf(err, CL_ENOMEM, "%s: out of memory", file); goto out; }
    int k = 0;
    for (const cJSON *c = root->child; c; c = c->next) names[k++] = (named){c->string, c};
    qsort(names, (size_t)nkeys, sizeof *names, cmp_named);
    for (int i = 1; i < nkeys; i++)
        if (!strcmp(names[i].name, names[i - 1].name)) {
            rc = cl_errf(err, CL_EFORMAT, "%s: duplicate tensor name '%s' in the header", file, names[i].name);
            goto out;
        }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    int ntensors = nkeys - (meta ? 1 : 0);
    if (meta && !cJSON_IsNull(meta)) {
        if (!cJSON_IsObject(meta)) {
            rc = cl_errf(err, CL_EFORMAT, "%s: __metadata__ is not an object of strings", file);
            goto out;
        }
        int nm = cJSON_GetArraySize(meta);
        named *mk = calloc((size_t)nm + 1, sizeof *mk);
        st->meta_keys = calloc((size_t)nm + 1, sizeof(char *));
        st->meta_vals = calloc((size_t)nm + 1, sizeof(char *));
        if (!mk || !st->meta_keys || !st->meta_vals) {
            free(mk);
            rc = cl_errf(err, CL_ENOMEM, "%s: out of memory", file);
            goto out;
        }
        int j = 0;
        for (const cJSON *c = meta->child; c; c = c->next, j++) {
            if (!cJSON_IsString(c)) {
                free(mk);
                rc = cl_errf(err, CL_EFORMAT, "%s: __metadata__ value of '%s' is not a string", file, c->string);
                goto out;
            }
            mk[j] = (named){c->string, c};
            st->meta_keys[j] = xstrdup(c->string);
            st->meta_vals[j] = xstrdup(c->valuestring);
            st->nmeta = j + 1;
            if (!st->meta_keys[j] || !st->meta_vals[j]) {
                free(mk);
                rc = cl_errf(err, CL_ENOMEM, "%s: out of memory", file);
                goto out;
            }
        }
        qsort(mk, (size_t)nm, sizeof *mk, cmp_named);
        for (int i = 1; i < nm; i++)
            if (!strcmp(mk[i].name, mk[i - 1].name)) {
                rc = cl_errf(err, CL_EFORMAT, "%s: duplicate __metadata__ key '%s'", file, mk[i].name);
                free(mk);
                goto out;
            }
        free(mk);
    }
    st->t = calloc((size_t)ntensors + 1, sizeof *st->t);
    if (!st->t) { rc = cl_errf(err, CL_ENOMEM, "%s: out of memory", file); goto out; }
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!strcmp(c->string, "__metadata__")) continue;
        cl_st_tensor *t = &st->t[st->n];
        t->name = xstrdup(c->string);
        if (!t->name) { rc = cl_errf(err, CL_ENOMEM, "%s: out of memory", file); goto out; }
        st->n++;
        if ((rc = parse_tensor(t, c->string, c, &sc, file, err))) goto out;
    }
    /* contiguity: sorted by (begin, end), each range starts where the previous one ended */
    order = malloc(((size_t)st->n + 1) * sizeof *order);
    if (!order) { rc = cl_errf(err, CL_ENOMEM, "%s: out of memory", file); goto out; }
    for (int i = 0; i < st->n; i++) order[i] = &st->t[i];
    qsort(order, (size_t)st->n, sizeof *order, cmp_offsets);
    uint64_t pos = 0;
    for (int i = 0; i < st->n; i++) {
        const cl_st_tensor *t = order[i];
        if (t->begin < pos) {
            rc = cl_errf(err, CL_EFORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' (which ends at %llu)", file,
                         t->name, (unsigned long long)t->begin, (unsigned long long)t->end, order[i - 1]->name,
                         (unsigned long long)pos);
            goto out;
        }
        if (t->begin > pos) {
            rc = cl_errf(err, CL_EFORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] leave a gap (the previous data ends at %llu)",
                         file, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                         (unsigned long long)pos);
            goto out;
        }
        pos = t->end;
    }
    uint64_t avail = (uint64_t)size - 8 - n;
    if (pos > avail) {
        rc = cl_errf(err, CL_EFORMAT,
                     "%s: truncated data: the tensors need %llu bytes after the header but the file holds %llu", file,
                     (unsigned long long)pos, (unsigned long long)avail);
        goto out;
    }
    if (pos < avail) {
        rc = cl_errf(err, CL_EFORMAT, "%s: %llu trailing bytes after the last tensor's data (file size %zu, expected %llu)",
                     file, (unsigned long long)(avail - pos), size, (unsigned long long)(pos + 8 + n));
        goto out;
    }
    for (int i = 0; i < st->n; i++) st->t[i].data = buf + 8 + n + st->t[i].begin;
out:
    free(order);
    free(names);
    cJSON_Delete(root);
    free(text);
    free(sc.nums);
    return rc;
}

static void st_free_parsed(cl_safetensors *st) {
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    for (int i = 0; i < st->nmeta; i++) { free(st->meta_keys[i]); free(st->meta_vals[i]); }
    free(st->meta_keys);
    free(st->meta_vals);
    st->t = NULL;
    st->n = 0;
    st->meta_keys = st->meta_vals = NULL;
    st->nmeta = 0;
}

void cl_st_close(cl_safetensors *st) {
    if (!st) return;
    st_free_parsed(st);
    if (st->owns_map && st->map && st->size) munmap(st->map, st->size);
    free(st->path);
    memset(st, 0, sizeof *st);
}

int cl_st_open_memory(cl_safetensors *st, const uint8_t *buf, size_t size, const char *name, cl_error *err) {
    memset(st, 0, sizeof *st);
    if (!name) name = "<memory>";
    st->path = xstrdup(name);
    if (!st->path) return cl_errf(err, CL_ENOMEM, "%s: out of memory", name);
    st->map = (uint8_t *)buf;
    st->size = size;
    int rc = validate(st, name, err);
    if (rc) cl_st_close(st);
    return rc;
}

int cl_st_open(cl_safetensors *st, const char *path, cl_error *err) {
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cl_errf(err, errno == ENOENT ? CL_EMISSING : CL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return cl_errf(err, CL_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return cl_errf(err, CL_EIO, "%s: not a regular file", path);
    }
    st->path = xstrdup(path);
    if (!st->path) {
        close(fd);
        return cl_errf(err, CL_ENOMEM, "%s: out of memory", path);
    }
    st->size = (size_t)sb.st_size;
    if (st->size > 0) {
        /* MAP_PRIVATE: read-only use; copy-on-write lets a loader patch a private copy if it ever needs to */
        void *m = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(st->path);
            memset(st, 0, sizeof *st);
            return cl_errf(err, CL_EIO, "%s: cannot mmap %lld bytes: %s", path, (long long)sb.st_size, strerror(e));
        }
        st->map = m;
        st->owns_map = 1;
    }
    close(fd);
    int rc = validate(st, path, err);
    if (rc) cl_st_close(st);
    return rc;
}

const cl_st_tensor *cl_st_find(const cl_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

const char *cl_st_meta(const cl_safetensors *st, const char *key) {
    for (int i = 0; i < st->nmeta; i++)
        if (!strcmp(st->meta_keys[i], key)) return st->meta_vals[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------------------------------- */
float cl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
    if (exp == 0x1F) bits = sign | 0x7F800000u | (mant << 13); /* inf, nan (payload kept) */
    else if (exp != 0) bits = sign | ((exp + 112) << 23) | (mant << 13);
    else if (mant == 0) bits = sign;
    else { /* subnormal: normalise */
        int e = -1;
        do { mant <<= 1; e++; } while (!(mant & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float cl_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int cl_st_to_f32(const cl_safetensors *st, const cl_st_tensor *t, float *out, cl_error *err) {
    const char *file = st && st->path ? st->path : "<safetensors>";
    const uint8_t *p = t->data;
    if (!p && t->numel) return cl_errf(err, CL_EINVAL, "%s: tensor '%s' has no data", file, t->name);
    switch (t->dtype) {
    case CL_DT_F32: if (t->numel) memcpy(out, p, t->numel * 4); return 0;
    case CL_DT_F16:
    case CL_DT_BF16:
        for (uint64_t i = 0; i < t->numel; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            out[i] = t->dtype == CL_DT_F16 ? cl_f16_to_f32(h) : cl_bf16_to_f32(h);
        }
        return 0;
    case CL_DT_F64:
        for (uint64_t i = 0; i < t->numel; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        return 0;
    default:
        return cl_errf(err, CL_EUNSUP, "%s: tensor '%s' has dtype %s, which does not convert to F32", file, t->name,
                       cl_dtype_name(t->dtype));
    }
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* Writer */
typedef struct {
    char *name;
    cl_dtype dtype;
    int ndim;
    int64_t shape[CL_ST_MAX_DIMS];
    uint64_t nbytes;
    uint8_t *data;
} wr_tensor;

struct cl_st_writer {
    wr_tensor *t;
    int n, cap;
    char **mk, **mv;
    int nmeta, capmeta;
};

cl_st_writer *cl_st_writer_new(void) { return calloc(1, sizeof(cl_st_writer)); }

void cl_st_writer_free(cl_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) { free(w->t[i].name); free(w->t[i].data); }
    free(w->t);
    for (int i = 0; i < w->nmeta; i++) { free(w->mk[i]); free(w->mv[i]); }
    free(w->mk);
    free(w->mv);
    free(w);
}

static int check_text(const char *s, const char *what, cl_error *err) {
    if (utf8_invalid_at((const uint8_t *)s, strlen(s)) >= 0)
        return cl_errf(err, CL_EINVAL, "safetensors writer: %s is not valid UTF-8", what);
    return 0;
}

int cl_st_writer_add(cl_st_writer *w, const char *name, cl_dtype dt, int ndim, const int64_t *shape,
                     const void *data, cl_error *err) {
    if (!w || !name) return cl_errf(err, CL_EINVAL, "safetensors writer: NULL writer or name");
    if (check_text(name, "a tensor name", err)) return CL_EINVAL;
    if (!strcmp(name, "__metadata__"))
        return cl_errf(err, CL_EINVAL, "safetensors writer: '__metadata__' is reserved, not a tensor name");
    if ((unsigned)dt >= CL_DT_COUNT) return cl_errf(err, CL_EINVAL, "safetensors writer: tensor '%s': bad dtype", name);
    if (ndim < 0 || ndim > CL_ST_MAX_DIMS || (ndim > 0 && !shape))
        return cl_errf(err, CL_EINVAL, "safetensors writer: tensor '%s': %d dimensions (0..%d allowed)", name, ndim,
                       CL_ST_MAX_DIMS);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return cl_errf(err, CL_EINVAL, "safetensors writer: duplicate tensor name '%s'", name);
    uint64_t numel = 1, nbytes;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return cl_errf(err, CL_EINVAL, "safetensors writer: tensor '%s': negative dimension %lld", name,
                           (long long)shape[i]);
        if (!cl_mul_ok(numel, (uint64_t)shape[i], &numel))
            return cl_errf(err, CL_EINVAL, "safetensors writer: tensor '%s': shape product overflows", name);
    }
    if (!cl_mul_ok(numel, cl_dtype_size(dt), &nbytes) || nbytes > (uint64_t)SIZE_MAX / 2)
        return cl_errf(err, CL_EINVAL, "safetensors writer: tensor '%s': size overflows", name);
    if (nbytes && !data) return cl_errf(err, CL_EINVAL, "safetensors writer: tensor '%s': NULL data", name);
    if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 16;
        wr_tensor *p = realloc(w->t, (size_t)nc * sizeof *p);
        if (!p) return cl_errf(err, CL_ENOMEM, "safetensors writer: out of memory");
        w->t = p;
        w->cap = nc;
    }
    wr_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->data = malloc(nbytes ? (size_t)nbytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return cl_errf(err, CL_ENOMEM, "safetensors writer: tensor '%s': out of memory (%llu bytes)", name,
                       (unsigned long long)nbytes);
    }
    if (nbytes) memcpy(t->data, data, (size_t)nbytes);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->nbytes = nbytes;
    w->n++;
    return 0;
}

int cl_st_writer_add_f32(cl_st_writer *w, const char *name, int ndim, const int64_t *shape, const float *data,
                         cl_error *err) {
    return cl_st_writer_add(w, name, CL_DT_F32, ndim, shape, data, err);
}

int cl_st_writer_meta(cl_st_writer *w, const char *key, const char *value, cl_error *err) {
    if (!w || !key || !value) return cl_errf(err, CL_EINVAL, "safetensors writer: NULL metadata key or value");
    if (check_text(key, "a metadata key", err) || check_text(value, "a metadata value", err)) return CL_EINVAL;
    for (int i = 0; i < w->nmeta; i++)
        if (!strcmp(w->mk[i], key)) { /* replace */
            char *v = xstrdup(value);
            if (!v) return cl_errf(err, CL_ENOMEM, "safetensors writer: out of memory");
            free(w->mv[i]);
            w->mv[i] = v;
            return 0;
        }
    if (w->nmeta == w->capmeta) {
        int nc = w->capmeta ? w->capmeta * 2 : 8;
        char **a = realloc(w->mk, (size_t)nc * sizeof *a);
        if (!a) return cl_errf(err, CL_ENOMEM, "safetensors writer: out of memory");
        w->mk = a;
        char **b = realloc(w->mv, (size_t)nc * sizeof *b);
        if (!b) return cl_errf(err, CL_ENOMEM, "safetensors writer: out of memory");
        w->mv = b;
        w->capmeta = nc;
    }
    w->mk[w->nmeta] = xstrdup(key);
    w->mv[w->nmeta] = xstrdup(value);
    if (!w->mk[w->nmeta] || !w->mv[w->nmeta]) {
        free(w->mk[w->nmeta]);
        free(w->mv[w->nmeta]);
        return cl_errf(err, CL_ENOMEM, "safetensors writer: out of memory");
    }
    w->nmeta++;
    return 0;
}

/* A growable byte buffer for the header. */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;
static void sb_put(sbuf *b, const char *s, size_t l) {
    if (b->oom) return;
    if (b->n + l + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + l + 1) nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, l);
    b->n += l;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
/* JSON string as serde_json writes it: \" \\ \b \f \n \r \t, other controls as \u00xx, everything else raw. */
static void sb_json(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                sb_put(b, esc, 6);
            } else sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static int cmp_wr(const void *a, const void *b) {
    const wr_tensor *x = *(wr_tensor *const *)a, *y = *(wr_tensor *const *)b;
    /* the reference sorts by its Dtype enum (declared in cl_dtype's order, which groups dtypes by size) descending */
    if (x->dtype != y->dtype) return x->dtype > y->dtype ? -1 : 1;
    return strcmp(x->name, y->name);
}

int cl_st_writer_save(cl_st_writer *w, const char *path, cl_error *err) {
    if (!w || !path) return cl_errf(err, CL_EINVAL, "safetensors writer: NULL writer or path");
    wr_tensor **ord = malloc(((size_t)w->n + 1) * sizeof *ord);
    if (!ord) return cl_errf(err, CL_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < w->n; i++) ord[i] = &w->t[i];
    qsort(ord, (size_t)w->n, sizeof *ord, cmp_wr);
    sbuf b = {0};
    char num[64];
    sb_str(&b, "{");
    int first = 1;
    if (w->nmeta) {
        sb_str(&b, "\"__metadata__\":{");
        for (int i = 0; i < w->nmeta; i++) {
            if (i) sb_str(&b, ",");
            sb_json(&b, w->mk[i]);
            sb_str(&b, ":");
            sb_json(&b, w->mv[i]);
        }
        sb_str(&b, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const wr_tensor *t = ord[i];
        if (!first) sb_str(&b, ",");
        first = 0;
        sb_json(&b, t->name);
        sb_str(&b, ":{\"dtype\":");
        sb_json(&b, cl_dtype_name(t->dtype));
        sb_str(&b, ",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            sb_str(&b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + t->nbytes));
        sb_str(&b, num);
        off += t->nbytes;
    }
    sb_str(&b, "}");
    while (!b.oom && b.n % 8) sb_str(&b, " ");
    if (b.oom) {
        free(b.p);
        free(ord);
        return cl_errf(err, CL_ENOMEM, "%s: out of memory building the header", path);
    }
    if (b.n > ST_MAX_HEADER) {
        free(b.p);
        free(ord);
        return cl_errf(err, CL_EINVAL, "%s: header of %zu bytes exceeds the 100,000,000-byte limit", path, b.n);
    }
    cl_atomic_file af;
    int rc = cl_atomic_open(&af, path, err);
    if (rc) { free(b.p); free(ord); return rc; }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)b.n >> (8 * i));
    int ok = fwrite(len8, 1, 8, af.f) == 8 && fwrite(b.p, 1, b.n, af.f) == b.n;
    for (int i = 0; ok && i < w->n; i++)
        if (ord[i]->nbytes && fwrite(ord[i]->data, 1, (size_t)ord[i]->nbytes, af.f) != ord[i]->nbytes) ok = 0;
    free(b.p);
    free(ord);
    if (!ok) {
        int e = errno;
        cl_atomic_abort(&af);
        return cl_errf(err, CL_EIO, "%s: write failed: %s", path, strerror(e));
    }
    return cl_atomic_commit(&af, err);
}
