/* GLUE metrics (METHODS.md section 7).
 *   accuracy      fraction of pred == gold
 *   F1            of the positive class (label 1): 2 TP / (2 TP + FP + FN), 0 when there is no TP, FP or FN
 *                 (sklearn's zero_division=0)
 *   MCC           Matthews correlation; binary (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)); for more
 *                 classes the multiclass (Gorodkin) form sklearn uses; 0 when the denominator is 0
 *   Pearson       on the raw values, accumulated in double; NAN when either side has zero variance or n < 2
 *                 (as scipy); a model-selection "greater than" is then false
 *   Spearman      Pearson of the ranks, ties given their average rank
 * cl_task_metrics fills the task's dictionary: CoLA mcc; SST-2, QNLI, RTE, WNLI acc; MRPC, QQP acc, f1;
 * STS-B pearson, spearman; MNLI acc (all), acc_m, acc_mm (by cl_example.origin).
 * Multi-label tasks (users' data; predicted sets against cl_example.multi), as scikit-learn with zero_division=0:
 *   f1_micro      f1_score(average="micro"): 2 TP / (2 TP + FP + FN) over every (example, label) pair
 *   f1_macro      f1_score(average="macro"): the mean over labels of each label's F1 (0 for a label never predicted
 *                 nor gold)
 *   exact_match   accuracy_score on multi-hot rows (subset accuracy): the fraction of examples whose predicted set is
 *                 exactly the gold set
 * A user task: acc (classification, main), pearson and spearman (regression, main pearson), f1_micro (multi-label,
 * main). */
#ifndef CL_DATA_METRICS_H
#define CL_DATA_METRICS_H
#include <stddef.h>
#include "core/error.h" /* condlora.h: cl_metric, cl_metric_set */

struct cl_glue_task;
struct cl_dataset;

double cl_accuracy(const int *pred, const int *gold, size_t n);
double cl_f1_binary(const int *pred, const int *gold, size_t n, int positive);
/* Matthews correlation over labels 0..num_classes-1 (labels outside are an error). */
int cl_mcc(const int *pred, const int *gold, size_t n, int num_classes, double *out, cl_error *err);
double cl_pearson(const double *x, const double *y, size_t n);
/* Average (fractional) ranks, 1-based, as scipy.stats.rankdata(method="average"). */
int cl_rankdata(const double *x, size_t n, double *ranks, cl_error *err);
int cl_spearman(const double *x, const double *y, size_t n, double *out, cl_error *err);


/* Metrics of predictions against a labelled dataset of task t: pred_label[n] for classification tasks, pred_score[n]
 * for regression (the other may be NULL); a multi-label task reads pred_label as n x num_labels 0/1 values (the
 * predicted sets, row-major). */
int cl_task_metrics(const struct cl_glue_task *t, const struct cl_dataset *gold, const int *pred_label,
                    const float *pred_score, cl_metric_set *out, cl_error *err);
/* A metric by name, NAN when absent. */
double cl_metric_get(const cl_metric_set *s, const char *name);

#endif
