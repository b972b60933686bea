/* GLUE task registry and TSV readers (see glue.h for the file conventions). */
#include "data/glue.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/util.h"

/* Official formats (GLUE download script / Hugging Face `glue` loader):
 *   CoLA  train/dev: no header, 4 columns (source, label, original label, sentence); test: index, sentence
 *   SST-2 sentence, label;                        test: index, sentence
 *   MRPC  Quality, #1 ID, #2 ID, #1 String, #2 String (BOM);  test: index, #1 ID, #2 ID, #1 String, #2 String
 *   STS-B index genre filename year old_index source1 source2 sentence1 sentence2 score;  test: without score
 *   QQP   id qid1 qid2 question1 question2 is_duplicate;     test: id, question1, question2
 *   MNLI  train 12 columns, dev_{matched,mismatched} 16 (index promptID pairID genre sentence1_binary_parse
 *         sentence2_binary_parse sentence1_parse sentence2_parse sentence1 sentence2 label1 [label2..label5]
 *         gold_label); test_{matched,mismatched}: the first 10
 *   QNLI  index question sentence label;  RTE, WNLI index sentence1 sentence2 label;  tests without label */
static const cl_glue_task TASKS[] = {
    {.name = "CoLA", .files = {"train.tsv", "dev.tsv", NULL, "test.tsv", NULL}, .labelled_header = 0,
     .nh_ncols = 4, .nh_col_a = 3, .nh_col_label = 1, .col_a = "sentence", .col_b = NULL, .col_label = NULL,
     .col_id = "index", .regression = 0, .num_labels = 2, .label_values = (const char *const[]){"0", "1"},
     .label_names = (const char *const[]){"unacceptable", "acceptable"}, .main_metric = "mcc"},
    {.name = "SST-2", .files = {"train.tsv", "dev.tsv", NULL, "test.tsv", NULL}, .labelled_header = 1,
     .col_a = "sentence", .col_b = NULL, .col_label = "label", .col_id = "index", .num_labels = 2,
     .label_values = (const char *const[]){"0", "1"}, .label_names = (const char *const[]){"negative", "positive"}, .main_metric = "acc"},
    {.name = "MRPC", .files = {"train.tsv", "dev.tsv", NULL, "test.tsv", NULL}, .labelled_header = 1,
     .col_a = "#1 String", .col_b = "#2 String", .col_label = "Quality", .col_id = "index", .num_labels = 2,
     .label_values = (const char *const[]){"0", "1"}, .label_names = (const char *const[]){"not_equivalent", "equivalent"}, .main_metric = "acc"},
    {.name = "STS-B", .files = {"train.tsv", "dev.tsv", NULL, "test.tsv", NULL}, .labelled_header = 1,
     .col_a = "sentence1", .col_b = "sentence2", .col_label = "score", .col_id = "index", .regression = 1,
     .num_labels = 1, .main_metric = "pearson"},
    {.name = "QQP", .files = {"train.tsv", "dev.tsv", NULL, "test.tsv", NULL}, .labelled_header = 1,
     .col_a = "question1", .col_b = "question2", .col_label = "is_duplicate", .col_id = "id", .num_labels = 2,
     .label_values = (const char *const[]){"0", "1"}, .label_names = (const char *const[]){"not_duplicate", "duplicate"}, .main_metric = "acc"},
    {.name = "MNLI",
     .files = {"train.tsv", "dev_matched.tsv", "dev_mismatched.tsv", "test_matched.tsv", "test_mismatched.tsv"},
     .labelled_header = 1, .col_a = "sentence1", .col_b = "sentence2", .col_label = "gold_label",
     .col_id = "index", .num_labels = 3, .label_values = (const char *const[]){"entailment", "neutral", "contradiction"},
     .label_names = (const char *const[]){"entailment", "neutral", "contradiction"}, .main_metric = "acc"},
    {.name = "QNLI", .files = {"train.tsv", "dev.tsv", NULL, "test.tsv", NULL}, .labelled_header = 1,
     .col_a = "question", .col_b = "sentence", .col_label = "label", .col_id = "index", .num_labels = 2,
     .label_values = (const char *const[]){"entailment", "not_entailment"}, .label_names = (const char *const[]){"entailment", "not_entailment"},
     .main_metric = "acc"},
    {.name = "RTE", .files = {"train.tsv", "dev.tsv", NULL, "test.tsv", NULL}, .labelled_header = 1,
     .col_a = "sentence1", .col_b = "sentence2", .col_label = "label", .col_id = "index", .num_labels = 2,
     .label_values = (const char *const[]){"entailment", "not_entailment"}, .label_names = (const char *const[]){"entailment", "not_entailment"},
     .main_metric = "acc"},
    {.name = "WNLI", .files = {"train.tsv", "dev.tsv", NULL, "test.tsv", NULL}, .labelled_header = 1,
     .col_a = "sentence1", .col_b = "sentence2", .col_label = "label", .col_id = "index", .num_labels = 2,
     .label_values = (const char *const[]){"0", "1"}, .label_names = (const char *const[]){"not_entailment", "entailment"}, .main_metric = "acc"},
};
#define NTASKS (sizeof TASKS / sizeof TASKS[0])

size_t cl_glue_num_tasks(void) { return NTASKS; }
const cl_glue_task *cl_glue_task_at(size_t i) { return i < NTASKS ? &TASKS[i] : NULL; }
int cl_glue_is_pair(const cl_glue_task *t) { return t->col_b != NULL; }

const char *cl_task_problem_type(const cl_glue_task *t) {
    return t->regression ? "regression" : t->multi_label ? "multi_label_classification" : "single_label_classification";
}

/* Compares ignoring case, '-' and '_'. */
static int name_eq(const char *a, const char *b) {
    for (;;) {
        while (*a == '-' || *a == '_') a++;
        while (*b == '-' || *b == '_') b++;
        if (!*a || !*b) return !*a && !*b;
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
        a++, b++;
    }
}

const cl_glue_task *cl_glue_find_task(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < NTASKS; i++)
        if (name_eq(name, TASKS[i].name)) return &TASKS[i];
    return NULL;
}

int cl_glue_task_lookup(const char *name, const cl_glue_task **out, cl_error *err) {
    *out = cl_glue_find_task(name);
    if (*out) return 0;
    char list[256] = "";
    for (size_t i = 0; i < NTASKS; i++) {
        strncat(list, TASKS[i].name, sizeof list - strlen(list) - 1);
        if (i + 1 < NTASKS) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return cl_errf(err, CL_EUSAGE, "unknown GLUE task '%s' (known: %s)", name ? name : "(null)", list);
}

void cl_dataset_free(cl_dataset *d) {
    if (!d) return;
    cl_free(d->ex);
    free(d->arena);
    memset(d, 0, sizeof *d);
}

/* ---- reader ---- */

typedef struct {
    int ncols;
    int a, b, label, id; /* column indices, -1 when absent */
} layout;

/* Splits line (NUL-terminated, modified in place) at tabs into cols[0..max). Returns the column count (which may
 * exceed max; then only max are stored). */
static int split_tabs(char *line, char **cols, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n < max) cols[n] = p;
        n++;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = 0;
        p = t + 1;
    }
    return n;
}

static int find_col(char **cols, int n, const char *name) {
    if (!name) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(cols[i], name) == 0) return i;
    return -1;
}

/* Parses a class label; returns the id or -1. */
static int parse_label(const cl_glue_task *t, const char *s) {
    for (int k = 0; t->label_values && k < t->num_labels; k++)
        if (t->label_values[k] && strcmp(s, t->label_values[k]) == 0) return k;
    return -1;
}

static int parse_score(const char *s, float *out) {
    if (!*s || isspace((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v) || v < 0.0 || v > 5.0) return -1;
    *out = (float)v;
    return 0;
}

#define MAX_COLS 64

int cl_glue_read_file(const cl_glue_task *t, const char *path, int labelled, const cl_glue_read_opts *opts,
                      cl_dataset *out, cl_error *err) {
    memset(out, 0, sizeof *out);
    int skip_bad = opts && opts->skip_bad_rows;
    char *buf = NULL;
    size_t len = 0;
    if (cl_read_file(path, &buf, &len, err)) return err ? (int)err->code : CL_EIO;
    char *p = buf, *end = buf + len;
    if (len >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF) p += 3;
    /* trailing empty lines are ignored */
    while (end > p && (end[-1] == '\n' || end[-1] == '\r')) end--;
    *end = 0;
    if (end == p) {
        free(buf);
        return cl_errf(err, CL_EFORMAT, "%s:1: empty file (expected GLUE %s data)", path, t->name);
    }
    size_t nlines = 1;
    for (char *q = p; q < end; q++) nlines += *q == '\n';

    layout L = {.ncols = 0, .a = -1, .b = -1, .label = -1, .id = -1};
    char *cols[MAX_COLS];
    int line_no = 0;
    char *next = p;
    /* Fetches the next line into `cur` (NUL-terminated, '\r' stripped); NULL at the end. */
#define NEXT_LINE(cur)                                                                                       \
    do {                                                                                                     \
        if (!next) { cur = NULL; break; }                                                                    \
        cur = next;                                                                                          \
        char *nl = strchr(cur, '\n');                                                                        \
        if (nl) { *nl = 0; next = nl + 1; } else next = NULL;                                                \
        size_t ll = strlen(cur);                                                                             \
        if (ll && cur[ll - 1] == '\r') cur[ll - 1] = 0;                                                      \
        line_no++;                                                                                           \
    } while (0)

    int has_header = labelled ? t->labelled_header : 1;
    if (has_header) {
        char *hdr;
        NEXT_LINE(hdr);
        int n = split_tabs(hdr, cols, MAX_COLS);
        if (n > MAX_COLS) {
            free(buf);
            return cl_errf(err, CL_EFORMAT, "%s:1: header has %d columns (more than %d): not a GLUE %s file", path,
                           n, MAX_COLS, t->name);
        }
        L.ncols = n;
        L.a = find_col(cols, n, t->col_a);
        L.b = find_col(cols, n, t->col_b);
        L.id = find_col(cols, n, t->col_id);
        if (labelled) L.label = find_col(cols, n, t->col_label);
        const char *missing = L.a < 0 ? t->col_a : (t->col_b && L.b < 0) ? t->col_b
                              : (labelled && L.label < 0)           ? t->col_label
                                                                    : NULL;
        if (missing) {
            cl_errf(err, CL_EFORMAT, "%s:1: header lacks column '%s': not a GLUE %s %s file (first column: '%.120s')",
                    path, missing, t->name, labelled ? "train/dev" : "test", cols[0]);
            free(buf);
            return CL_EFORMAT;
        }
    } else {
        L.ncols = t->nh_ncols;
        L.a = t->nh_col_a;
        L.label = t->nh_col_label;
    }

    cl_error e2 = {0};
    out->ex = cl_alloc(nlines, sizeof *out->ex, &e2);
    if (!out->ex) {
        free(buf);
        return cl_errf(err, CL_ENOMEM, "%s: cannot allocate %zu examples: %s", path, nlines, e2.msg);
    }
    out->arena = buf;
    size_t n = 0;
    for (;;) {
        char *cur;
        NEXT_LINE(cur);
        if (!cur) break;
        char msg[200];
        msg[0] = 0;
        int nc = split_tabs(cur, cols, MAX_COLS);
        cl_example ex = {.text_a = NULL, .text_b = NULL, .id = NULL, .label = -1, .score = NAN, .line = line_no,
                         .origin = 0};
        if (nc != L.ncols) {
            snprintf(msg, sizeof msg, "expected %d tab-separated columns, found %d", L.ncols, nc);
        } else {
            ex.text_a = cols[L.a];
            ex.text_b = L.b >= 0 ? cols[L.b] : NULL;
            ex.id = L.id >= 0 ? cols[L.id] : NULL;
            if (labelled) {
                const char *lab = cols[L.label];
                if (t->regression) {
                    if (parse_score(lab, &ex.score))
                        snprintf(msg, sizeof msg, "bad score '%.40s' (expected a number in [0, 5])", lab);
                } else if ((ex.label = parse_label(t, lab)) < 0) {
                    char vals[96] = "";
                    for (int k = 0; k < t->num_labels; k++) {
                        strncat(vals, t->label_values[k], sizeof vals - strlen(vals) - 1);
                        if (k + 1 < t->num_labels) strncat(vals, ", ", sizeof vals - strlen(vals) - 1);
                    }
                    snprintf(msg, sizeof msg, "unknown label '%.40s' (expected one of: %s)", lab, vals);
                }
            }
        }
        if (msg[0]) {
            if (!skip_bad) {
                cl_dataset_free(out);
                return cl_errf(err, CL_EFORMAT, "%s:%d: %s", path, line_no, msg);
            }
            if (!out->skipped) snprintf(out->skip_msg, sizeof out->skip_msg, "%s:%d: %s", path, line_no, msg);
            out->skipped++;
            continue;
        }
        out->ex[n++] = ex;
    }
#undef NEXT_LINE
    out->n = n;
    if (n == 0) {
        size_t sk = out->skipped;
        cl_dataset_free(out);
        if (sk) return cl_errf(err, CL_EFORMAT, "%s: all %zu data rows are malformed", path, sk);
        return cl_errf(err, CL_EFORMAT, "%s:%d: no data rows (expected GLUE %s data)", path, line_no + 1, t->name);
    }
    return 0;
}

static int task_path(const cl_glue_task *t, const char *dir, cl_glue_split which, char *path, size_t cap,
                     cl_error *err) {
    if ((int)which < 0 || which > CL_SPLIT_TEST_MM || !t->files[which])
        return cl_errf(err, CL_EINVAL, "GLUE %s has no split %d", t->name, (int)which);
    int w = snprintf(path, cap, "%s/%s", dir, t->files[which]);
    if (w < 0 || (size_t)w >= cap) return cl_errf(err, CL_EINVAL, "%s/%s: path too long", dir, t->files[which]);
    return 0;
}

int cl_glue_load(const cl_glue_task *t, const char *dir, cl_glue_split which, const cl_glue_read_opts *opts,
                 cl_dataset *out, cl_error *err) {
    memset(out, 0, sizeof *out);
    char path[4096];
    if (task_path(t, dir, which, path, sizeof path, err)) return err ? (int)err->code : CL_EINVAL;
    int labelled = which != CL_SPLIT_TEST && which != CL_SPLIT_TEST_MM;
    int rc = cl_glue_read_file(t, path, labelled, opts, out, err);
    if (rc) return rc;
    if (which == CL_SPLIT_DEV_MM || which == CL_SPLIT_TEST_MM)
        for (size_t i = 0; i < out->n; i++) out->ex[i].origin = 1;
    return 0;
}

/* Checks a header-bearing labelled file's first line (or, for CoLA, the first row's column count). */
static int check_file(const cl_glue_task *t, const char *path, cl_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        struct stat st;
        int isdir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        return cl_errf(err, CL_EMISSING, "%s: cannot open: %s (not a GLUE %s directory?)", path,
                       isdir ? "is a directory" : strerror(errno), t->name);
    }
    char line[8192];
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return cl_errf(err, CL_EFORMAT, "%s:1: empty file (expected GLUE %s data)", path, t->name);
    }
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    char *p = line;
    if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF) p += 3;
    char *cols[MAX_COLS];
    int n = split_tabs(p, cols, MAX_COLS);
    if (n > MAX_COLS) n = MAX_COLS;
    if (!t->labelled_header) {
        if (n != t->nh_ncols)
            return cl_errf(err, CL_EFORMAT, "%s:1: expected %d tab-separated columns, found %d: not a GLUE %s file",
                           path, t->nh_ncols, n, t->name);
        return 0;
    }
    const char *need[3] = {t->col_a, t->col_b, t->col_label};
    for (int k = 0; k < 3; k++)
        if (need[k] && find_col(cols, n, need[k]) < 0)
            return cl_errf(err, CL_EFORMAT, "%s:1: header lacks column '%s': not a GLUE %s train/dev file", path,
                           need[k], t->name);
    return 0;
}

int cl_glue_check_dir(const cl_glue_task *t, const char *dir, cl_error *err) {
    struct stat st;
    if (stat(dir, &st) != 0)
        return cl_errf(err, CL_EMISSING, "%s: cannot open GLUE %s directory: %s", dir, t->name, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return cl_errf(err, CL_EINVAL, "%s: not a directory (expected GLUE %s)", dir, t->name);
    cl_glue_split need[3] = {CL_SPLIT_TRAIN, CL_SPLIT_DEV, CL_SPLIT_DEV_MM};
    for (int k = 0; k < 3; k++) {
        if (!t->files[need[k]]) continue;
        char path[4096];
        if (task_path(t, dir, need[k], path, sizeof path, err)) return err ? (int)err->code : CL_EINVAL;
        if (check_file(t, path, err)) return err ? (int)err->code : CL_EFORMAT;
    }
    return 0;
}

/* ---- subset / concat: copy strings into a fresh arena ---- */

static size_t slen(const char *s) { return s ? strlen(s) + 1 : 0; }
static const char *scopy(char **dst, const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    memcpy(*dst, s, n);
    const char *r = *dst;
    *dst += n;
    return r;
}

static int copy_examples(const cl_example *const *src, size_t n, cl_dataset *out, cl_error *err) {
    memset(out, 0, sizeof *out);
    size_t bytes = 1;
    for (size_t i = 0; i < n; i++)
        bytes += slen(src[i]->text_a) + slen(src[i]->text_b) + slen(src[i]->id) + slen(src[i]->multi);
    cl_error e2 = {0};
    out->ex = cl_alloc(n ? n : 1, sizeof *out->ex, &e2);
    out->arena = malloc(bytes);
    if (!out->ex || !out->arena) {
        cl_dataset_free(out);
        return cl_errf(err, CL_ENOMEM, "cannot allocate a dataset of %zu examples (%zu bytes of text)",
                       n, bytes);
    }
    char *w = out->arena;
    for (size_t i = 0; i < n; i++) {
        cl_example e = *src[i];
        e.text_a = scopy(&w, src[i]->text_a);
        e.text_b = scopy(&w, src[i]->text_b);
        e.id = scopy(&w, src[i]->id);
        e.multi = scopy(&w, src[i]->multi);
        out->ex[i] = e;
    }
    out->n = n;
    return 0;
}

int cl_dataset_subset(const cl_dataset *src, const size_t *idx, size_t n, cl_dataset *out, cl_error *err) {
    memset(out, 0, sizeof *out);
    const cl_example **v = malloc((n ? n : 1) * sizeof *v);
    if (!v) return cl_errf(err, CL_ENOMEM, "out of memory (%zu examples)", n);
    for (size_t i = 0; i < n; i++) {
        if (idx[i] >= src->n) {
            free(v);
            return cl_errf(err, CL_EINVAL, "subset index %zu out of range (%zu examples)", idx[i], src->n);
        }
        v[i] = &src->ex[idx[i]];
    }
    int rc = copy_examples(v, n, out, err);
    free(v);
    return rc;
}

int cl_dataset_concat(const cl_dataset *a, const cl_dataset *b, cl_dataset *out, cl_error *err) {
    memset(out, 0, sizeof *out);
    size_t n = a->n + b->n;
    const cl_example **v = malloc((n ? n : 1) * sizeof *v);
    if (!v) return cl_errf(err, CL_ENOMEM, "out of memory (%zu examples)", n);
    for (size_t i = 0; i < a->n; i++) v[i] = &a->ex[i];
    for (size_t i = 0; i < b->n; i++) v[a->n + i] = &b->ex[i];
    int rc = copy_examples(v, n, out, err);
    free(v);
    if (!rc) out->skipped = a->skipped + b->skipped;
    return rc;
}
