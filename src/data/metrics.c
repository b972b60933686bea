/* GLUE metrics (see metrics.h). */
#include "data/metrics.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/util.h"
#include "data/glue.h"

double cl_accuracy(const int *pred, const int *gold, size_t n) {
    if (n == 0) return NAN;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) ok += pred[i] == gold[i];
    return (double)ok / (double)n;
}

double cl_f1_binary(const int *pred, const int *gold, size_t n, int positive) {
    size_t tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < n; i++) {
        int p = pred[i] == positive, g = gold[i] == positive;
        tp += p && g;
        fp += p && !g;
        fn += !p && g;
    }
    size_t den = 2 * tp + fp + fn;
    return den ? 2.0 * (double)tp / (double)den : 0.0;
}

int cl_mcc(const int *pred, const int *gold, size_t n, int num_classes, double *out, cl_error *err) {
    *out = 0.0;
    if (num_classes < 2 || num_classes > 1024)
        return cl_errf(err, CL_EINVAL, "MCC needs 2..1024 classes, got %d", num_classes);
    double tk[1024] = {0}, pk[1024] = {0}, c = 0;
    for (size_t i = 0; i < n; i++) {
        if (pred[i] < 0 || pred[i] >= num_classes || gold[i] < 0 || gold[i] >= num_classes)
            return cl_errf(err, CL_EINVAL, "MCC: example %zu has label %d / prediction %d outside 0..%d",
                           i, gold[i], pred[i], num_classes - 1);
        tk[gold[i]] += 1;
        pk[pred[i]] += 1;
        c += pred[i] == gold[i];
    }
    double s = (double)n, tp = 0, pp = 0, tt = 0;
    for (int k = 0; k < num_classes; k++) {
        tp += tk[k] * pk[k];
        pp += pk[k] * pk[k];
        tt += tk[k] * tk[k];
    }
    double cov_tp = c * s - tp, cov_pp = s * s - pp, cov_tt = s * s - tt;
    double den = cov_pp * cov_tt;
    *out = den > 0 ? cov_tp / sqrt(den) : 0.0;
    return 0;
}

double cl_pearson(const double *x, const double *y, size_t n) {
    if (n < 2) return NAN;
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= (double)n, my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy, sxx += dx * dx, syy += dy * dy;
    }
    if (!(sxx > 0) || !(syy > 0)) return NAN;
    double r = sxy / sqrt(sxx * syy);
    return r > 1 ? 1 : r < -1 ? -1 : r;
}

typedef struct {
    double v;
    size_t i;
} vi;

static int cmp_vi(const void *pa, const void *pb) {
    const vi *a = pa, *b = pb;
    if (a->v != b->v) return a->v < b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

int cl_rankdata(const double *x, size_t n, double *ranks, cl_error *err) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i])) return cl_errf(err, CL_EINVAL, "rankdata: value %zu is NaN", i);
    cl_error e2 = {0};
    vi *v = cl_alloc(n, sizeof *v, &e2);
    if (!v) return cl_errf(err, CL_ENOMEM, "rankdata: %s", e2.msg);
    for (size_t i = 0; i < n; i++) v[i] = (vi){x[i], i};
    qsort(v, n, sizeof *v, cmp_vi);
    for (size_t a = 0; a < n;) {
        size_t b = a + 1;
        while (b < n && v[b].v == v[a].v) b++;
        double r = 0.5 * ((double)(a + 1) + (double)b); /* average of ranks a+1 .. b */
        for (size_t k = a; k < b; k++) ranks[v[k].i] = r;
        a = b;
    }
    cl_free(v);
    return 0;
}

int cl_spearman(const double *x, const double *y, size_t n, double *out, cl_error *err) {
    *out = NAN;
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i]) || isnan(y[i])) return 0; /* as scipy: NaN in, NaN out */
    if (n < 2) return 0;
    cl_error e2 = {0};
    double *rx = cl_alloc(n, sizeof *rx, &e2), *ry = cl_alloc(n, sizeof *ry, &e2);
    if (!rx || !ry) {
        cl_free(rx), cl_free(ry);
        return cl_errf(err, CL_ENOMEM, "spearman: %s", e2.msg);
    }
    int rc = cl_rankdata(x, n, rx, err);
    if (!rc) rc = cl_rankdata(y, n, ry, err);
    if (!rc) *out = cl_pearson(rx, ry, n);
    cl_free(rx), cl_free(ry);
    return rc;
}

static void put(cl_metric_set *s, const char *name, double v) {
    if (s->n < CL_MAX_METRICS) s->m[s->n++] = (cl_metric){name, v};
}

double cl_metric_get(const cl_metric_set *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->m[i].name, name) == 0) return s->m[i].value;
    return NAN;
}

int cl_task_metrics(const cl_glue_task *t, const cl_dataset *gold, const int *pred_label, const float *pred_score,
                    cl_metric_set *out, cl_error *err) {
    memset(out, 0, sizeof *out);
    out->main = NAN;
    size_t n = gold->n;
    if (n == 0) return cl_errf(err, CL_EINVAL, "%s metrics over an empty set", t->name);
    int rc = 0;
    cl_error e2 = {0};
    if (t->multi_label) {
        if (!pred_label) return cl_errf(err, CL_EINVAL, "%s needs label-set predictions", t->name);
        const int K = t->num_labels;
        for (size_t i = 0; i < n; i++)
            if (!gold->ex[i].multi || strlen(gold->ex[i].multi) != (size_t)K)
                return cl_errf(err, CL_EINVAL, "%s metrics: example %zu (line %d) has no gold label set", t->name, i,
                               gold->ex[i].line);
        size_t *tp = cl_alloc((size_t)K, sizeof *tp, &e2), *fp = cl_alloc((size_t)K, sizeof *fp, &e2),
               *fn = cl_alloc((size_t)K, sizeof *fn, &e2);
        if (!tp || !fp || !fn) {
            cl_free(tp), cl_free(fp), cl_free(fn);
            return cl_errf(err, CL_ENOMEM, "%s", e2.msg);
        }
        memset(tp, 0, (size_t)K * sizeof *tp), memset(fp, 0, (size_t)K * sizeof *fp);
        memset(fn, 0, (size_t)K * sizeof *fn);
        size_t exact = 0;
        for (size_t i = 0; i < n; i++) {
            int same = 1;
            for (int k = 0; k < K; k++) {
                int g = gold->ex[i].multi[k] == '1', p = pred_label[i * (size_t)K + k] != 0;
                tp[k] += g && p, fp[k] += !g && p, fn[k] += g && !p;
                same &= g == p;
            }
            exact += same;
        }
        size_t TP = 0, FP = 0, FN = 0;
        double macro = 0;
        for (int k = 0; k < K; k++) {
            TP += tp[k], FP += fp[k], FN += fn[k];
            size_t d = 2 * tp[k] + fp[k] + fn[k];
            macro += d ? 2.0 * (double)tp[k] / (double)d : 0.0;
        }
        size_t d = 2 * TP + FP + FN;
        put(out, "f1_micro", d ? 2.0 * (double)TP / (double)d : 0.0);
        put(out, "f1_macro", macro / K);
        put(out, "exact_match", (double)exact / (double)n);
        cl_free(tp), cl_free(fp), cl_free(fn);
    } else if (t->regression) {
        if (!pred_score)
            return cl_errf(err, CL_EINVAL, "%s needs score predictions", t->name);
        double *x = cl_alloc(n, sizeof *x, &e2), *y = cl_alloc(n, sizeof *y, &e2);
        if (!x || !y) {
            cl_free(x), cl_free(y);
            return cl_errf(err, CL_ENOMEM, "%s", e2.msg);
        }
        for (size_t i = 0; i < n && !rc; i++) {
            x[i] = pred_score[i];
            y[i] = gold->ex[i].score;
            if (isnan(y[i]))
                rc = cl_errf(err, CL_EINVAL, "%s metrics: example %zu (line %d) has no gold score", t->name, i, gold->ex[i].line);
        }
        double sp = NAN;
        if (!rc) rc = cl_spearman(x, y, n, &sp, err);
        if (!rc) {
            put(out, "pearson", cl_pearson(x, y, n));
            put(out, "spearman", sp);
        }
        cl_free(x), cl_free(y);
    } else {
        if (!pred_label)
            return cl_errf(err, CL_EINVAL, "%s needs label predictions", t->name);
        int *g = cl_alloc(n, sizeof *g, &e2);
        if (!g) return cl_errf(err, CL_ENOMEM, "%s", e2.msg);
        for (size_t i = 0; i < n && !rc; i++) {
            g[i] = gold->ex[i].label;
            if (g[i] < 0 || g[i] >= t->num_labels)
                rc = cl_errf(err, CL_EINVAL, "%s metrics: example %zu (line %d) has no gold label", t->name, i, gold->ex[i].line);
        }
        if (!rc && strcmp(t->main_metric, "mcc") == 0) {
            double m;
            if (!(rc = cl_mcc(pred_label, g, n, t->num_labels, &m, err))) put(out, "mcc", m);
        } else if (!rc) {
            put(out, "acc", cl_accuracy(pred_label, g, n));
            if (strcmp(t->name, "MRPC") == 0 || strcmp(t->name, "QQP") == 0)
                put(out, "f1", cl_f1_binary(pred_label, g, n, 1));
            if (t->files[CL_SPLIT_DEV_MM]) { /* MNLI: per origin */
                size_t cnt[2] = {0, 0}, ok[2] = {0, 0};
                for (size_t i = 0; i < n; i++) {
                    int o = gold->ex[i].origin ? 1 : 0;
                    cnt[o]++;
                    ok[o] += pred_label[i] == g[i];
                }
                if (cnt[0]) put(out, "acc_m", (double)ok[0] / (double)cnt[0]);
                if (cnt[1]) put(out, "acc_mm", (double)ok[1] / (double)cnt[1]);
            }
        }
        cl_free(g);
    }
    if (!rc) out->main = cl_metric_get(out, t->main_metric);
    return rc;
}
