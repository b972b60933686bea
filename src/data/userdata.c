/* Users' own datasets (see userdata.h). */
#include "data/userdata.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/util.h"

int cl_file_format_parse(const char *s, cl_file_format *out, cl_error *err) {
    if (s && !strcmp(s, "tsv")) *out = CL_FMT_TSV;
    else if (s && !strcmp(s, "csv")) *out = CL_FMT_CSV;
    else if (s && (!strcmp(s, "jsonl") || !strcmp(s, "json"))) *out = CL_FMT_JSONL;
    else return cl_errf(err, CL_EUSAGE, "option --format: '%s' is not tsv, csv or jsonl", s ? s : "");
    return 0;
}

int cl_problem_parse(const char *s, cl_problem *out, cl_error *err) {
    if (s && (!strcmp(s, "classification") || !strcmp(s, "single_label_classification"))) *out = CL_PROBLEM_CLASSIFY;
    else if (s && !strcmp(s, "regression")) *out = CL_PROBLEM_REGRESS;
    else if (s && (!strcmp(s, "multi_label") || !strcmp(s, "multi_label_classification")))
        *out = CL_PROBLEM_MULTILABEL;
    else
        return cl_errf(err, CL_EUSAGE, "option --problem: '%s' is not classification, regression or multi_label",
                       s ? s : "");
    return 0;
}

const char *cl_problem_name(cl_problem p) {
    return p == CL_PROBLEM_REGRESS ? "regression"
           : p == CL_PROBLEM_MULTILABEL ? "multi_label_classification" : "single_label_classification";
}

/* ---- rows --------------------------------------------------------------------------------------------------- */
/* A multi-label row's label is its list of labels joined by LIST_SEP (a JSON array, or a TSV/CSV field split at its
 * commas); "" is the empty set. */
#define LIST_SEP '\x1f'

typedef struct {
    char *a, *b, *label; /* owned; b NULL for one text column, label NULL when unlabelled */
    int line;
    int list;            /* the label was a JSON array */
} urow;

typedef struct {
    urow *r;
    size_t n, cap;
} rows_t;

static void rows_free(rows_t *t) {
    for (size_t i = 0; i < t->n; i++) free(t->r[i].a), free(t->r[i].b), free(t->r[i].label);
    free(t->r);
    memset(t, 0, sizeof *t);
}

static int rows_push(rows_t *t, urow r, cl_error *err) {
    if (t->n == t->cap) {
        size_t nc = t->cap ? 2 * t->cap : 256;
        urow *nr = realloc(t->r, nc * sizeof *nr);
        if (!nr) return cl_errf(err, CL_ENOMEM, "out of memory (%zu rows)", t->n);
        t->r = nr, t->cap = nc;
    }
    t->r[t->n++] = r;
    return 0;
}

static long bad_utf8(const unsigned char *s, size_t n) { return (long)cl_utf8_invalid_at(s, n); }

typedef struct {
    const char *path;
    int ncols;           /* requested: text columns (1 or 2), then the label when wanted */
    const char *names[3];
    int want_label;
    int multi;           /* --problem multi_label: a TSV/CSV label field is a comma-separated list */
    cl_error *err;
} rctx;

/* a TSV/CSV multi-label field "a, b,c" -> "a" SEP "b" SEP "c" (in place; spaces around each label dropped); an
 * empty field is the empty set */
static int split_list_field(rctx *x, char *l, int line, const char *col) {
    char *w = l, *r = l;
    int first = 1;
    while (*r == ' ' || *r == '\t') r++;
    if (!*r) return *l = 0, 0;
    for (;;) {
        while (*r == ' ' || *r == '\t') r++;
        char *start = w;
        if (!first) *w++ = LIST_SEP, start = w;
        while (*r && *r != ',') *w++ = *r++;
        while (w > start && (w[-1] == ' ' || w[-1] == '\t')) w--;
        if (w == start)
            return cl_errf(x->err, CL_EFORMAT, "%s:%d: column '%s': an empty label in the list (labels are separated "
                           "by commas)", x->path, line, col);
        first = 0;
        if (!*r) break;
        r++; /* the comma */
    }
    *w = 0;
    return 0;
}

/* the fields of one record (TSV / CSV) -> a row, by the header's column indices idx[]; list: -1 for a TSV/CSV record,
 * 0 for a JSON object with a scalar label, 1 with an array (already joined by LIST_SEP) */
static int take(rctx *x, rows_t *out, char **fields, int nf, const int *idx, int line, int list) {
    urow r = {0};
    r.line = line;
    r.list = list == 1;
    for (int k = 0; k < x->ncols; k++) {
        if (idx[k] >= nf)
            return cl_errf(x->err, CL_EFORMAT, "%s:%d: %d fields, but column '%s' is field %d of the header", x->path,
                           line, nf, x->names[k], idx[k] + 1);
        const char *v = fields[idx[k]];
        long bad = bad_utf8((const unsigned char *)v, strlen(v));
        if (bad >= 0)
            return cl_errf(x->err, CL_EFORMAT, "%s:%d: column '%s': invalid UTF-8 at byte %ld of the field", x->path,
                           line, x->names[k], bad);
    }
    int nt = x->ncols - x->want_label;
    char *a = strdup(fields[idx[0]]), *b = nt > 1 ? strdup(fields[idx[1]]) : NULL;
    char *l = x->want_label ? strdup(fields[idx[nt]]) : NULL;
    if (!a || (nt > 1 && !b) || (x->want_label && !l)) {
        free(a), free(b), free(l);
        return cl_errf(x->err, CL_ENOMEM, "%s: out of memory", x->path);
    }
    r.a = a, r.b = b, r.label = l;
    int lrc = 0;
    if (l && list != 1 && strchr(l, LIST_SEP))
        lrc = cl_errf(x->err, CL_EFORMAT, "%s:%d: column '%s': the label holds the control character U+001F", x->path,
                      line, x->names[nt]);
    else if (l && list == -1 && x->multi)
        lrc = split_list_field(x, l, line, x->names[nt]);
    else if (l && !*l && list != 1)
        lrc = cl_errf(x->err, CL_EFORMAT, "%s:%d: column '%s': empty label", x->path, line, x->names[nt]);
    if (lrc) {
        free(a), free(b), free(l);
        return lrc;
    }
    int rc = rows_push(out, r, x->err);
    if (rc) free(a), free(b), free(l);
    return rc;
}

/* header fields -> the index of each wanted column; duplicates and absences are errors */
static int map_header(rctx *x, char **h, int nh, int *idx) {
    for (int i = 0; i < nh; i++) {
        if (!*h[i]) continue;
        for (int j = 0; j < i; j++)
            if (!strcmp(h[i], h[j]))
                return cl_errf(x->err, CL_EFORMAT, "%s:1: column '%s' appears twice in the header (fields %d and %d)",
                               x->path, h[i], j + 1, i + 1);
    }
    for (int k = 0; k < x->ncols; k++) {
        idx[k] = -1;
        for (int i = 0; i < nh; i++)
            if (!strcmp(h[i], x->names[k])) idx[k] = i;
        if (idx[k] < 0) {
            char have[512] = "";
            for (int i = 0; i < nh && strlen(have) < 400; i++)
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s'%.40s'", i ? ", " : "", h[i]);
            return cl_errf(x->err, CL_EFORMAT, "%s:1: no column '%s' (the header has %s)", x->path, x->names[k], have);
        }
    }
    return 0;
}

/* splits the TSV or CSV text into records of fields; calls the header once, then every record */
static int parse_delimited(rctx *x, char *text, size_t len, int csv, rows_t *out) {
    size_t cap = 16;
    char **f = malloc(cap * sizeof *f);
    if (!f) return cl_errf(x->err, CL_ENOMEM, "out of memory");
    int idx[3] = {0, 0, 0}, have_header = 0, rc = 0, line = 1;
    size_t i = 0;
    char *w = text; /* fields are unescaped in place (an unescaped field is never longer than its source) */
    while (i < len && !rc) {
        int start_line = line, nf = 0;
        /* one record */
        for (;;) {
            if ((size_t)nf == cap) {
                char **nfp = realloc(f, 2 * cap * sizeof *f);
                if (!nfp) { rc = cl_errf(x->err, CL_ENOMEM, "out of memory"); break; }
                f = nfp, cap *= 2;
            }
            char *field = w;
            if (csv && i < len && text[i] == '"') {
                i++;
                for (;;) {
                    if (i >= len) {
                        rc = cl_errf(x->err, CL_EFORMAT, "%s:%d: a quoted field is never closed", x->path, start_line);
                        break;
                    }
                    if (text[i] == '"') {
                        if (i + 1 < len && text[i + 1] == '"') { *w++ = '"'; i += 2; continue; }
                        i++;
                        break;
                    }
                    if (text[i] == '\n') line++;
                    *w++ = text[i++];
                }
                if (rc) break;
                if (i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
                    rc = cl_errf(x->err, CL_EFORMAT, "%s:%d: field %d: text after a closing quote", x->path, line,
                                 nf + 1);
                    break;
                }
            } else {
                while (i < len && text[i] != (csv ? ',' : '\t') && text[i] != '\n') {
                    if (csv && text[i] == '"') {
                        rc = cl_errf(x->err, CL_EFORMAT, "%s:%d: field %d: a quote inside an unquoted field (quote "
                                     "the whole field, and write a quote as \"\")", x->path, line, nf + 1);
                        break;
                    }
                    *w++ = text[i++];
                }
                if (rc) break;
                if (w > field && w[-1] == '\r' && (i >= len || text[i] == '\n')) w--;
            }
            /* the delimiter is read before the terminator is written: both may be the same byte */
            const char next = i < len ? text[i] : '\n', after = i + 1 < len ? text[i + 1] : '\n';
            *w++ = 0;
            f[nf++] = field;
            if (next == (csv ? ',' : '\t')) { i++; continue; }
            if (next == '\r') {
                i++;
                if (after == '\n') i++;
                line++;
            } else if (next == '\n') {
                i++, line++;
            }
            break;
        }
        if (rc) break;
        if (nf == 1 && !*f[0]) continue; /* a blank line */
        if (!have_header) {
            rc = map_header(x, f, nf, idx);
            have_header = nf;
            continue;
        }
        if (nf != have_header) {
            rc = cl_errf(x->err, CL_EFORMAT, "%s:%d: %d field%s, but the header names %d columns%s", x->path,
                         start_line, nf, nf == 1 ? "" : "s", have_header,
                         csv ? " (a field holding a comma must be in double quotes)" : "");
            break;
        }
        rc = take(x, out, f, nf, idx, start_line, -1);
    }
    free(f);
    if (!rc && !have_header) rc = cl_errf(x->err, CL_EFORMAT, "%s: the file is empty (expected a header row)", x->path);
    return rc;
}

/* a JSON array of labels (strings or integers) -> one string, the labels joined by LIST_SEP */
static int join_list(rctx *x, const cJSON *arr, int line, const char *key, char **out) {
    size_t cap = 64, n = 0;
    char *s = malloc(cap);
    if (!s) return cl_errf(x->err, CL_ENOMEM, "%s: out of memory", x->path);
    int k = 0;
    for (const cJSON *e = arr->child; e; e = e->next, k++) {
        char num[64];
        const char *v = NULL;
        if (cJSON_IsString(e)) {
            v = e->valuestring;
        } else if (cJSON_IsNumber(e) && e->valuedouble == floor(e->valuedouble) && fabs(e->valuedouble) < 1e15) {
            snprintf(num, sizeof num, "%lld", (long long)e->valuedouble);
            v = num;
        } else {
            free(s);
            return cl_errf(x->err, CL_EFORMAT, "%s:%d: key '%s': element %d of the list is not a string or an "
                           "integer", x->path, line, key, k);
        }
        if (!*v || strchr(v, LIST_SEP)) {
            free(s);
            return cl_errf(x->err, CL_EFORMAT, "%s:%d: key '%s': element %d of the list is %s", x->path, line, key, k,
                           *v ? "a label holding the control character U+001F" : "an empty label");
        }
        size_t lv = strlen(v);
        if (n + lv + 2 > cap) {
            while (n + lv + 2 > cap) cap *= 2;
            char *ns = realloc(s, cap);
            if (!ns) { free(s); return cl_errf(x->err, CL_ENOMEM, "%s: out of memory", x->path); }
            s = ns;
        }
        if (k) s[n++] = LIST_SEP;
        memcpy(s + n, v, lv), n += lv;
    }
    s[n] = 0;
    *out = s;
    return 0;
}

static int parse_jsonl(rctx *x, char *text, size_t len, rows_t *out) {
    int line = 0, rc = 0;
    char *p = text, *end = text + len;
    while (p < end && !rc) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        line++;
        size_t n = (size_t)(le - p);
        char *s = p;
        p = le + 1;
        while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
        size_t lead = 0;
        while (lead < n && (s[lead] == ' ' || s[lead] == '\t')) lead++;
        if (lead == n) continue;
        long bad = bad_utf8((const unsigned char *)s, n);
        if (bad >= 0) {
            rc = cl_errf(x->err, CL_EFORMAT, "%s:%d: invalid UTF-8 at byte %ld of the line", x->path, line, bad);
            break;
        }
        cJSON *o = cJSON_ParseWithLength(s, n);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            rc = cl_errf(x->err, CL_EFORMAT, "%s:%d: not a JSON object", x->path, line);
            break;
        }
        char *vals[3] = {NULL, NULL, NULL};
        char num[64], *joined = NULL;
        int list = 0;
        for (int k = 0; k < x->ncols && !rc; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, x->names[k]);
            int is_label = x->want_label && k == x->ncols - 1;
            if (!v) {
                rc = cl_errf(x->err, CL_EFORMAT, "%s:%d: no key '%s'", x->path, line, x->names[k]);
            } else if (cJSON_IsString(v)) {
                vals[k] = v->valuestring;
            } else if (is_label && cJSON_IsNumber(v)) {
                double d = v->valuedouble;
                if (d == floor(d) && fabs(d) < 1e15) snprintf(num, sizeof num, "%lld", (long long)d);
                else snprintf(num, sizeof num, "%.9g", d);
                vals[k] = num;
            } else if (is_label && cJSON_IsBool(v)) {
                vals[k] = cJSON_IsTrue(v) ? "true" : "false";
            } else if (is_label && cJSON_IsArray(v)) {
                rc = join_list(x, v, line, x->names[k], &joined);
                vals[k] = joined, list = 1;
            } else {
                rc = cl_errf(x->err, CL_EFORMAT, "%s:%d: key '%s': expected a %s", x->path, line, x->names[k],
                             is_label ? "string, a number or a list of labels" : "string");
            }
        }
        if (!rc) {
            int idx[3] = {0, 1, 2};
            rc = take(x, out, vals, x->ncols, idx, line, list);
        }
        free(joined);
        cJSON_Delete(o);
    }
    return rc;
}

static int detect_format(const char *path, cl_file_format f, cl_file_format *out, cl_error *err) {
    if (f != CL_FMT_AUTO) return *out = f, 0;
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash)) {
        if (!strcasecmp(dot, ".tsv") || !strcasecmp(dot, ".tab")) return *out = CL_FMT_TSV, 0;
        if (!strcasecmp(dot, ".csv")) return *out = CL_FMT_CSV, 0;
        if (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".ndjson") || !strcasecmp(dot, ".json"))
            return *out = CL_FMT_JSONL, 0;
    }
    return cl_errf(err, CL_EUSAGE, "%s: cannot tell the format from the name (.tsv, .csv, .jsonl); give --format",
                   path);
}

/* text columns of O: 1 or 2 names */
static int text_cols(const cl_user_opts *o, char *buf, size_t n, const char **a, const char **b, cl_error *err) {
    snprintf(buf, n, "%s", o->text_columns && *o->text_columns ? o->text_columns : "sentence");
    *a = buf, *b = NULL;
    char *comma = strchr(buf, ',');
    if (comma) {
        *comma = 0;
        *b = comma + 1;
        if (strchr(*b, ',') || !**b || !**a)
            return cl_errf(err, CL_EUSAGE, "option --text-columns: '%s' is not one column or two (A,B)",
                           o->text_columns);
    }
    return 0;
}

static int read_rows(const char *path, const cl_user_opts *o, int want_label, rows_t *out, cl_error *err) {
    memset(out, 0, sizeof *out);
    cl_file_format fmt = CL_FMT_TSV;
    int rc = detect_format(path, o->format, &fmt, err);
    if (rc) return rc;
    char cb[512];
    const char *ca, *cb2;
    if ((rc = text_cols(o, cb, sizeof cb, &ca, &cb2, err))) return rc;
    rctx x = {path, 0, {NULL, NULL, NULL}, want_label, o->problem == CL_PROBLEM_MULTILABEL, err};
    x.names[x.ncols++] = ca;
    if (cb2) x.names[x.ncols++] = cb2;
    if (want_label) x.names[x.ncols++] = o->label_column && *o->label_column ? o->label_column : "label";
    for (int i = 0; i < x.ncols; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(x.names[i], x.names[j]))
                return cl_errf(err, CL_EUSAGE, "option --text-columns / --label-column: column '%s' is named twice",
                               x.names[i]);
    char *text = NULL;
    size_t len = 0;
    if ((rc = cl_read_file(path, &text, &len, err))) return rc;
    char *t = text;
    if (len >= 3 && (unsigned char)t[0] == 0xEF && (unsigned char)t[1] == 0xBB && (unsigned char)t[2] == 0xBF)
        t += 3, len -= 3;
    if (memchr(t, 0, len)) rc = cl_errf(err, CL_EFORMAT, "%s: holds a NUL byte (not a text file)", path);
    else if (fmt == CL_FMT_JSONL) rc = parse_jsonl(&x, t, len, out);
    else rc = parse_delimited(&x, t, len, fmt == CL_FMT_CSV, out);
    free(text);
    if (!rc && out->n == 0) rc = cl_errf(err, CL_EFORMAT, "%s: no data rows", path);
    if (rc) rows_free(out);
    return rc;
}

/* ---- rows -> dataset --------------------------------------------------------------------------------------- */
/* MULTI: a multi-label task's label sets, K + 1 bytes per row ("0101\0"), or NULL */
static int to_dataset(const rows_t *r, const int *labels, const float *scores, const char *multi, int K,
                      cl_dataset *out, cl_error *err) {
    memset(out, 0, sizeof *out);
    size_t bytes = 0;
    for (size_t i = 0; i < r->n; i++) bytes += strlen(r->r[i].a) + 1 + (r->r[i].b ? strlen(r->r[i].b) + 1 : 0);
    if (multi) bytes += r->n * (size_t)(K + 1);
    out->ex = calloc(r->n ? r->n : 1, sizeof *out->ex);
    out->arena = malloc(bytes ? bytes : 1);
    if (!out->ex || !out->arena) {
        cl_dataset_free(out);
        return cl_errf(err, CL_ENOMEM, "out of memory (%zu examples)", r->n);
    }
    char *w = out->arena;
    for (size_t i = 0; i < r->n; i++) {
        cl_example *e = &out->ex[i];
        size_t la = strlen(r->r[i].a) + 1;
        memcpy(w, r->r[i].a, la), e->text_a = w, w += la;
        if (r->r[i].b) {
            size_t lb = strlen(r->r[i].b) + 1;
            memcpy(w, r->r[i].b, lb), e->text_b = w, w += lb;
        }
        if (multi) {
            memcpy(w, multi + i * (size_t)(K + 1), (size_t)K + 1);
            e->multi = w, w += K + 1;
        }
        e->label = labels ? labels[i] : -1;
        e->score = scores ? scores[i] : NAN;
        e->line = r->r[i].line;
    }
    out->n = r->n;
    return 0;
}

static int parse_number(const char *s, double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    while (end && (*end == ' ' || *end == '\t')) end++;
    if (!*s || !end || *end || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int label_cmp_num;
static int cmp_label(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    if (label_cmp_num) {
        double u = strtod(x, NULL), v = strtod(y, NULL);
        return u < v ? -1 : u > v;
    }
    return strcmp(x, y);
}

void cl_user_task_free(cl_user_task *t) {
    if (!t) return;
    if (t->labels)
        for (int i = 0; i < t->task.num_labels; i++) free(t->labels[i]);
    free(t->labels);
    memset(t, 0, sizeof *t);
}

static int find_label(const cl_user_task *t, const char *s) {
    for (int k = 0; k < t->task.num_labels; k++)
        if (!strcmp(t->labels[k], s)) return k;
    return -1;
}

/* the number of labels in a multi-label row's list (LIST_SEP-joined; "" is the empty set) */
static size_t list_len(const char *l) {
    if (!*l) return 0;
    size_t n = 1;
    for (; *l; l++) n += *l == LIST_SEP;
    return n;
}

static const char *label_col(const cl_user_opts *o) {
    return o->label_column && *o->label_column ? o->label_column : "label";
}

/* the label set (classification, multi-label) or the check that every label is a number (regression), from TRAIN */
static int make_task(const cl_user_opts *o, const rows_t *tr, cl_user_task *t, cl_error *err) {
    memset(t, 0, sizeof *t);
    cl_problem p = o->problem;
    size_t first_list = tr->n;
    for (size_t i = 0; i < tr->n && first_list == tr->n; i++)
        if (tr->r[i].list) first_list = i;
    if (p == CL_PROBLEM_AUTO && first_list < tr->n) p = CL_PROBLEM_MULTILABEL;
    if (p != CL_PROBLEM_MULTILABEL && first_list < tr->n)
        return cl_errf(err, CL_EFORMAT, "%s:%d: key '%s': a list of labels, but --problem is %s (a list needs "
                       "--problem multi_label)", o->train, tr->r[first_list].line, label_col(o),
                       p == CL_PROBLEM_REGRESS ? "regression" : "classification");
    /* the label strings: one per row, or (multi-label) every element of every row's list, split in a copy */
    const int multi = p == CL_PROBLEM_MULTILABEL;
    size_t nv = 0, pool_n = 0;
    for (size_t i = 0; i < tr->n; i++) {
        nv += multi ? list_len(tr->r[i].label) : 1;
        pool_n += strlen(tr->r[i].label) + 1;
    }
    const char **v = malloc((nv ? nv : 1) * sizeof *v);
    char *pool = multi ? malloc(pool_n ? pool_n : 1) : NULL;
    if (!v || (multi && !pool)) {
        free(v), free(pool);
        return cl_errf(err, CL_ENOMEM, "out of memory");
    }
    size_t k = 0;
    char *w = pool;
    for (size_t i = 0; i < tr->n; i++) {
        const char *l = tr->r[i].label;
        if (!multi) { v[k++] = l; continue; }
        if (!*l) continue;
        size_t n = strlen(l) + 1;
        memcpy(w, l, n);
        v[k++] = w;
        for (char *q = w; *q; q++)
            if (*q == LIST_SEP) *q = 0, v[k++] = q + 1;
        w += n;
    }
    int all_num = 1, all_int = 1, rc = 0;
    for (size_t i = 0; i < nv && all_num; i++) {
        double d;
        if (parse_number(v[i], &d)) all_num = 0;
        else if (d != floor(d) || fabs(d) > 1e9) all_int = 0;
    }
    if (p == CL_PROBLEM_AUTO) p = all_num && !all_int ? CL_PROBLEM_REGRESS : CL_PROBLEM_CLASSIFY;
    t->problem = p;
    t->task.name = "custom";
    t->task.main_metric = p == CL_PROBLEM_REGRESS ? "pearson" : multi ? "f1_micro" : "acc";
    t->task.regression = p == CL_PROBLEM_REGRESS;
    t->task.multi_label = multi;
    if (p == CL_PROBLEM_REGRESS) {
        for (size_t i = 0; i < tr->n && !rc; i++) {
            double d;
            if (parse_number(tr->r[i].label, &d))
                rc = cl_errf(err, CL_EFORMAT, "%s:%d: column '%s': '%.40s' is not a number (a regression target)",
                             o->train, tr->r[i].line, label_col(o), tr->r[i].label);
        }
        t->task.num_labels = 1;
        free(v), free(pool);
        return rc;
    }
    /* classification: the distinct labels, sorted */
    label_cmp_num = all_num && all_int;
    qsort(v, nv, sizeof *v, cmp_label);
    size_t nu = 0;
    for (size_t i = 0; i < nv; i++)
        if (!nu || strcmp(v[i], v[nu - 1])) v[nu++] = v[i];
    if (nu < 2)
        rc = multi ? cl_errf(err, CL_EFORMAT, "%s: the training rows' lists hold %s: a multi-label classifier needs at "
                             "least two labels", o->train, nu ? "a single label" : "no label at all")
                   : cl_errf(err, CL_EFORMAT, "%s: every training row has the label '%.40s': a classifier needs at "
                             "least two (for a numeric target, --problem regression)", o->train, nu ? v[0] : "");
    else if (nu > 100000)
        rc = cl_errf(err, CL_EFORMAT, "%s: %zu distinct labels is more than 100000", o->train, nu);
    else if (!(t->labels = calloc(nu, sizeof *t->labels)))
        rc = cl_errf(err, CL_ENOMEM, "out of memory");
    for (size_t j = 0; j < nu && !rc; j++)
        if (!(t->labels[j] = strdup(v[j]))) {
            t->task.num_labels = (int)j;
            cl_user_task_free(t);
            rc = cl_errf(err, CL_ENOMEM, "out of memory");
        }
    free(v), free(pool);
    if (rc) return rc;
    t->task.num_labels = (int)nu;
    t->task.label_values = (const char *const *)t->labels;
    t->task.label_names = (const char *const *)t->labels;
    return 0;
}

/* "a, b, c (its labels: ...)" for messages */
static void label_list(const cl_user_task *t, char *have, size_t n) {
    have[0] = 0;
    for (int k = 0; k < t->task.num_labels && strlen(have) < n - 60; k++)
        snprintf(have + strlen(have), n - strlen(have), "%s%.30s", k ? ", " : "", t->labels[k]);
    if (t->task.num_labels > 8) snprintf(have + strlen(have), n - strlen(have), ", ...");
}

/* ROWS of FILE -> dataset with the task's labels */
static int labelled_dataset(const cl_user_opts *o, const cl_user_task *t, const char *file, const rows_t *r,
                            cl_dataset *out, cl_error *err) {
    int *lab = NULL;
    float *sc = NULL;
    char *multi = NULL, have[300];
    int rc = 0;
    const int K = t->task.num_labels;
    const char *lc = label_col(o);
    for (size_t i = 0; i < r->n; i++)
        if (r->r[i].list && !t->task.multi_label)
            return cl_errf(err, CL_EFORMAT, "%s:%d: key '%s': a list of labels, but the training file %s has one "
                           "label per row", file, r->r[i].line, lc, o->train);
    if (t->task.regression) {
        if (!(sc = malloc((r->n ? r->n : 1) * sizeof *sc))) return cl_errf(err, CL_ENOMEM, "out of memory");
        for (size_t i = 0; i < r->n && !rc; i++) {
            double v;
            if (parse_number(r->r[i].label, &v))
                rc = cl_errf(err, CL_EFORMAT, "%s:%d: column '%s': '%.40s' is not a number (a regression target)",
                             file, r->r[i].line, lc, r->r[i].label);
            else sc[i] = (float)v;
        }
    } else if (t->task.multi_label) {
        if (!(multi = malloc(r->n * (size_t)(K + 1) + 1))) return cl_errf(err, CL_ENOMEM, "out of memory");
        for (size_t i = 0; i < r->n && !rc; i++) {
            char *m = multi + i * (size_t)(K + 1);
            memset(m, '0', (size_t)K), m[K] = 0;
            const char *l = r->r[i].label;
            char one[512];
            while (*l && !rc) {
                const char *e = strchr(l, LIST_SEP);
                size_t n = e ? (size_t)(e - l) : strlen(l);
                snprintf(one, sizeof one, "%.*s", (int)(n < sizeof one - 1 ? n : sizeof one - 1), l);
                int id = n < sizeof one - 1 ? find_label(t, one) : -1;
                if (id >= 0) m[id] = '1';
                else {
                    label_list(t, have, sizeof have);
                    rc = cl_errf(err, CL_EFORMAT, "%s:%d: column '%s': label '%.40s' does not occur in the training "
                                 "file %s (its labels: %s)", file, r->r[i].line, lc, one, o->train, have);
                }
                l = e ? e + 1 : l + n;
            }
        }
    } else {
        if (!(lab = malloc((r->n ? r->n : 1) * sizeof *lab))) return cl_errf(err, CL_ENOMEM, "out of memory");
        for (size_t i = 0; i < r->n && !rc; i++)
            if ((lab[i] = find_label(t, r->r[i].label)) < 0) {
                label_list(t, have, sizeof have);
                rc = cl_errf(err, CL_EFORMAT, "%s:%d: column '%s': label '%.40s' does not occur in the training file "
                             "%s (its labels: %s)", file, r->r[i].line, lc, r->r[i].label, o->train, have);
            }
    }
    if (!rc) rc = to_dataset(r, lab, sc, multi, K, out, err);
    free(lab), free(sc), free(multi);
    return rc;
}

int cl_user_load(const cl_user_opts *o, uint64_t seed, cl_user_task *task, cl_glue_splits *out, cl_error *err) {
    memset(out, 0, sizeof *out);
    memset(task, 0, sizeof *task);
    if (!o->train) return cl_errf(err, CL_EUSAGE, "option --train: a training file is required");
    rows_t tr, dv = {0}, te = {0};
    int rc = read_rows(o->train, o, 1, &tr, err);
    if (rc) return rc;
    if (o->dev && (rc = read_rows(o->dev, o, 1, &dv, err))) goto done;
    if (o->test && (rc = read_rows(o->test, o, 1, &te, err))) goto done;
    if ((rc = make_task(o, &tr, task, err))) goto done;
    cl_dataset full;
    if ((rc = labelled_dataset(o, task, o->train, &tr, &full, err))) goto done;
    if (o->dev) {
        out->train = full;
        if ((rc = labelled_dataset(o, task, o->dev, &dv, &out->dev, err))) goto done;
    } else if ((rc = cl_paper_split(&full, seed, &out->train, &out->dev, o->train, err))) {
        goto done;
    }
    if (o->test && (rc = labelled_dataset(o, task, o->test, &te, &out->test, err))) goto done;
done:
    rows_free(&tr), rows_free(&dv), rows_free(&te);
    if (rc) cl_glue_splits_free(out), cl_user_task_free(task);
    return rc;
}

int cl_user_read_inputs(const char *path, const cl_user_opts *o, cl_dataset *out, cl_error *err) {
    rows_t r;
    int rc = read_rows(path, o, 0, &r, err);
    if (rc) return rc;
    rc = to_dataset(&r, NULL, NULL, NULL, 0, out, err);
    rows_free(&r);
    return rc;
}
