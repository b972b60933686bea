/* GLUE metrics against scikit-learn / scipy.stats (scripts/gen_metric_refs.py -> tests/data/metrics/refs.json) and
 * against small hand computations. */
#include <cjson/cJSON.h>
#include "core/util.h"
#include "data/glue.h"
#include "data/metrics.h"
#include "test.h"

static cJSON *load_refs(void) {
    char *buf;
    size_t len;
    cl_error err = {0};
    if (cl_read_file("tests/data/metrics/refs.json", &buf, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    return j;
}

static int *ints(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    int *v = malloc((size_t)(*n ? *n : 1) * sizeof *v);
    for (int i = 0; i < *n; i++) v[i] = cJSON_GetArrayItem(a, i)->valueint;
    return v;
}

static double *dbls(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    double *v = malloc((size_t)(*n ? *n : 1) * sizeof *v);
    for (int i = 0; i < *n; i++) v[i] = cJSON_GetArrayItem(a, i)->valuedouble;
    return v;
}

/* CHECK_NEAR that also names the reference case on failure. */
#define NEAR_CASE(a, b, tol, name)                                                                             \
    do {                                                                                                       \
        int _before = tst_fail;                                                                                \
        CHECK_NEAR(a, b, tol);                                                                                 \
        if (tst_fail != _before) fprintf(stderr, "  (case %s)\n", name);                                      \
    } while (0)

static double num(const cJSON *c, const char *k) { return cJSON_GetObjectItem(c, k)->valuedouble; }

TEST(sklearn_classification) {
    cJSON *refs = load_refs();
    CHECK(refs != NULL, "tests/data/metrics/refs.json");
    if (!refs) return;
    int ncases = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, refs) {
        if (strcmp(cJSON_GetObjectItem(c, "kind")->valuestring, "cls") != 0) continue;
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        int n, n2, k = cJSON_GetObjectItem(c, "num_classes")->valueint;
        int *p = ints(cJSON_GetObjectItem(c, "pred"), &n), *g = ints(cJSON_GetObjectItem(c, "gold"), &n2);
        CHECK(n == n2, "-");
        NEAR_CASE(cl_accuracy(p, g, (size_t)n), num(c, "accuracy"), 1e-12, name);
        double m = -9;
        cl_error err = {0};
        CHECK(cl_mcc(p, g, (size_t)n, k, &m, &err) == 0, "%s", err.msg);
        NEAR_CASE(m, num(c, "mcc"), 1e-12, name);
        if (cJSON_GetObjectItem(c, "f1")) NEAR_CASE(cl_f1_binary(p, g, (size_t)n, 1), num(c, "f1"), 1e-12, name);
        free(p), free(g);
        ncases++;
    }
    CHECK(ncases == 8, "%d classification cases", ncases);
    cJSON_Delete(refs);
}

TEST(scipy_correlation) {
    cJSON *refs = load_refs();
    if (!refs) return;
    int ncases = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, refs) {
        if (strcmp(cJSON_GetObjectItem(c, "kind")->valuestring, "reg") != 0) continue;
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        int n, n2, n3;
        double *x = dbls(cJSON_GetObjectItem(c, "x"), &n), *y = dbls(cJSON_GetObjectItem(c, "y"), &n2);
        double *rx = dbls(cJSON_GetObjectItem(c, "rank_x"), &n3);
        CHECK(n == n2 && n == n3, "-");
        NEAR_CASE(cl_pearson(x, y, (size_t)n), num(c, "pearson"), 1e-12, name);
        double s = -9, *r = malloc((size_t)n * sizeof *r);
        cl_error err = {0};
        CHECK(cl_spearman(x, y, (size_t)n, &s, &err) == 0, "%s", err.msg);
        NEAR_CASE(s, num(c, "spearman"), 1e-12, name);
        CHECK(cl_rankdata(x, (size_t)n, r, &err) == 0, "-");
        int same = 1;
        for (int i = 0; i < n; i++) same &= r[i] == rx[i];
        CHECK(same, "%s: ranks equal scipy.stats.rankdata", name);
        free(x), free(y), free(rx), free(r);
        ncases++;
    }
    CHECK(ncases == 5, "%d regression cases", ncases);
    cJSON_Delete(refs);
}

/* multi-label: f1_micro, f1_macro and exact_match of cl_task_metrics on a multi-label task against sklearn */
TEST(sklearn_multi_label) {
    cJSON *refs = load_refs();
    if (!refs) return;
    int ncases = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, refs) {
        if (strcmp(cJSON_GetObjectItem(c, "kind")->valuestring, "multi") != 0) continue;
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const cJSON *P = cJSON_GetObjectItem(c, "pred"), *G = cJSON_GetObjectItem(c, "gold");
        int n = cJSON_GetArraySize(G), K = cJSON_GetObjectItem(c, "num_labels")->valueint;
        int *pred = malloc((size_t)n * K * sizeof *pred);
        char *sets = malloc((size_t)n * (K + 1));
        cl_example *ex = calloc((size_t)n, sizeof *ex);
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < K; k++) {
                pred[i * K + k] = cJSON_GetArrayItem(cJSON_GetArrayItem(P, i), k)->valueint;
                sets[i * (K + 1) + k] = cJSON_GetArrayItem(cJSON_GetArrayItem(G, i), k)->valueint ? '1' : '0';
            }
            sets[i * (K + 1) + K] = 0;
            ex[i].multi = sets + i * (K + 1);
            ex[i].label = -1;
            ex[i].line = i + 2;
        }
        cl_glue_task t = {.name = "custom", .multi_label = 1, .num_labels = K, .main_metric = "f1_micro"};
        cl_dataset d = {.ex = ex, .n = (size_t)n};
        cl_metric_set ms;
        cl_error err = {0};
        CHECK(cl_task_metrics(&t, &d, pred, NULL, &ms, &err) == 0, "%s", err.msg);
        NEAR_CASE(cl_metric_get(&ms, "f1_micro"), num(c, "f1_micro"), 1e-12, name);
        NEAR_CASE(cl_metric_get(&ms, "f1_macro"), num(c, "f1_macro"), 1e-12, name);
        NEAR_CASE(cl_metric_get(&ms, "exact_match"), num(c, "exact_match"), 1e-12, name);
        NEAR_CASE(ms.main, num(c, "f1_micro"), 1e-12, name);
        /* a gold row without its set is an error naming the example's line */
        ex[1].multi = NULL;
        CHECK(cl_task_metrics(&t, &d, pred, NULL, &ms, &err) == CL_EINVAL && strstr(err.msg, "line 3"), "%s",
              err.msg);
        free(pred), free(sets), free(ex);
        ncases++;
    }
    CHECK(ncases == 5, "%d multi-label cases", ncases);
    cJSON_Delete(refs);
}

TEST(hand_computed) {
    /* TP=3 TN=2 FP=1 FN=2: MCC = (6 - 2) / sqrt(4*5*3*4) = 4 / sqrt(240); F1 = 6 / (6 + 3) */
    int p[] = {1, 1, 1, 1, 0, 0, 0, 0}, g[] = {1, 1, 1, 0, 1, 1, 0, 0};
    double m;
    cl_error err = {0};
    CHECK(cl_mcc(p, g, 8, 2, &m, &err) == 0, "-");
    CHECK_NEAR(m, 4.0 / sqrt(240.0), 1e-15);
    CHECK_NEAR(cl_f1_binary(p, g, 8, 1), 6.0 / 9.0, 1e-15);
    CHECK_NEAR(cl_accuracy(p, g, 8), 5.0 / 8.0, 1e-15);
    /* ties: [10, 20, 20, 30, 20] -> ranks [1, 3, 3, 5, 3] */
    double x[] = {10, 20, 20, 30, 20}, r[5];
    CHECK(cl_rankdata(x, 5, r, &err) == 0, "-");
    CHECK(r[0] == 1 && r[1] == 3 && r[2] == 3 && r[3] == 5 && r[4] == 3, "%g %g %g %g %g", r[0], r[1], r[2], r[3], r[4]);
    /* Pearson of (1,2,3) and (2,4,7): cov = 5/... computed by hand: dx = (-1,0,1), dy = (-7/3,-1/3,8/3) */
    double a[] = {1, 2, 3}, b[] = {2, 4, 7};
    double sxy = 7.0 / 3 + 8.0 / 3, sxx = 2, syy = (49.0 + 1 + 64) / 9;
    CHECK_NEAR(cl_pearson(a, b, 3), sxy / sqrt(sxx * syy), 1e-15);
    /* degenerate: constant input gives NaN (as scipy), a label out of range is an error */
    double k3[] = {1, 1, 1};
    CHECK(isnan(cl_pearson(k3, b, 3)), "-");
    int bad[] = {0, 2};
    CHECK(cl_mcc(bad, bad, 2, 2, &m, &err) == CL_EINVAL && strstr(err.msg, "metrics.c:") == NULL, "%s", err.msg);
    double nanv[] = {1, NAN, 2}, s;
    CHECK(cl_spearman(nanv, b, 3, &s, &err) == 0 && isnan(s), "-");
}

static void mk(cl_dataset *d, cl_example *ex, size_t n) {
    memset(d, 0, sizeof *d);
    d->ex = ex;
    d->n = n;
}

TEST(task_metrics) {
    cl_error err = {0};
    cl_metric_set ms;
    /* MNLI: 4 matched (3 right), 2 mismatched (1 right): acc 4/6, m 3/4, mm 1/2 */
    cl_example ex[6];
    int gold[6] = {0, 1, 2, 0, 1, 2}, org[6] = {0, 0, 0, 0, 1, 1}, pred[6] = {0, 1, 2, 1, 1, 0};
    for (int i = 0; i < 6; i++) ex[i] = (cl_example){.label = gold[i], .score = NAN, .origin = org[i], .line = i + 2};
    cl_dataset d;
    mk(&d, ex, 6);
    const cl_glue_task *mnli = cl_glue_find_task("mnli");
    CHECK(cl_task_metrics(mnli, &d, pred, NULL, &ms, &err) == 0, "%s", err.msg);
    CHECK_NEAR(cl_metric_get(&ms, "acc"), 4.0 / 6, 1e-15);
    CHECK_NEAR(cl_metric_get(&ms, "acc_m"), 3.0 / 4, 1e-15);
    CHECK_NEAR(cl_metric_get(&ms, "acc_mm"), 1.0 / 2, 1e-15);
    CHECK_NEAR(ms.main, 4.0 / 6, 1e-15);
    /* MRPC: acc + f1 of class 1 */
    int g2[4] = {1, 1, 0, 0}, p2[4] = {1, 0, 1, 0};
    for (int i = 0; i < 4; i++) ex[i] = (cl_example){.label = g2[i], .score = NAN};
    mk(&d, ex, 4);
    CHECK(cl_task_metrics(cl_glue_find_task("MRPC"), &d, p2, NULL, &ms, &err) == 0, "%s", err.msg);
    CHECK(ms.n == 2, "-");
    CHECK_NEAR(cl_metric_get(&ms, "acc"), 0.5, 1e-15);
    CHECK_NEAR(cl_metric_get(&ms, "f1"), 0.5, 1e-15);
    /* CoLA: mcc only, main = mcc */
    CHECK(cl_task_metrics(cl_glue_find_task("cola"), &d, p2, NULL, &ms, &err) == 0, "%s", err.msg);
    CHECK(ms.n == 1 && strcmp(ms.m[0].name, "mcc") == 0, "-");
    CHECK_NEAR(ms.main, 0.0, 1e-15);
    /* STS-B: pearson + spearman, main = pearson */
    float ps[4] = {0.5f, 1.0f, 4.0f, 4.5f};
    float gs[4] = {0.0f, 2.0f, 3.0f, 5.0f};
    for (int i = 0; i < 4; i++) ex[i] = (cl_example){.label = -1, .score = gs[i]};
    CHECK(cl_task_metrics(cl_glue_find_task("sts-b"), &d, NULL, ps, &ms, &err) == 0, "%s", err.msg);
    CHECK_NEAR(cl_metric_get(&ms, "spearman"), 1.0, 1e-15);
    double x[4] = {0.5, 1.0, 4.0, 4.5}, y[4] = {0, 2, 3, 5};
    CHECK_NEAR(ms.main, cl_pearson(x, y, 4), 1e-15);
    CHECK(cl_task_metrics(cl_glue_find_task("sts-b"), &d, NULL, NULL, &ms, &err) == CL_EINVAL, "-");
    /* unlabelled gold is an error, not a silent zero */
    ex[0].label = -1;
    CHECK(cl_task_metrics(cl_glue_find_task("rte"), &d, p2, NULL, &ms, &err) == CL_EINVAL, "%s", err.msg);
}

int main(void) {
    RUN(sklearn_classification);
    RUN(scipy_correlation);
    RUN(sklearn_multi_label);
    RUN(hand_computed);
    RUN(task_metrics);
    return tst_summary(__FILE__);
}
