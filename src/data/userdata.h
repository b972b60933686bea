/* Users' own datasets: TSV, CSV or JSON Lines files read by column NAME into the GLUE data structures, so that the
 * trainer, the batching and the metrics treat them as they treat a GLUE task.
 *
 * Formats (by the file's extension unless given: .tsv/.tab, .csv, .jsonl/.ndjson/.json):
 *   TSV    a header row naming the columns, then one row per line, fields separated by tabs, no quoting (as GLUE);
 *   CSV    RFC 4180: a header row, fields separated by commas, a field in double quotes may hold commas, quotes
 *          written twice and line breaks (a row's line number is the line where it starts);
 *   JSONL  one JSON object per line (blank lines skipped); text columns are strings, the label a string, a number
 *          or (multi-label) an array.
 * A UTF-8 byte order mark is skipped, "\r\n" accepted. Text must be valid UTF-8. Every error names the file, the
 * line and the column ("train.csv:14: column 'label': empty label"); empty files, a header without rows, duplicate
 * or missing columns are errors too.
 *
 * Problems: classification (labels are strings or integers; the label set is the training file's, sorted
 * numerically when every label is an integer, else by byte value), regression (every label a number), or
 * multi-label: a JSON array of strings or integers (any array in the training file makes the problem multi-label
 * unless --problem says otherwise; a scalar is then a one-label set), or with CL_PROBLEM_MULTILABEL a TSV/CSV field
 * of labels separated by commas (spaces around each dropped; an empty field is the empty set); the label set is
 * every label of every training row, sorted as above, at least two; cl_example.multi holds each row's set. A dev or
 * test label the training file lacks is an error. */
#ifndef CL_DATA_USERDATA_H
#define CL_DATA_USERDATA_H
#include "data/glue.h"

typedef enum { CL_FMT_AUTO = 0, CL_FMT_TSV, CL_FMT_CSV, CL_FMT_JSONL } cl_file_format;
typedef enum { CL_PROBLEM_AUTO = 0, CL_PROBLEM_CLASSIFY, CL_PROBLEM_REGRESS, CL_PROBLEM_MULTILABEL } cl_problem;

typedef struct {
    const char *train, *dev, *test; /* files; dev NULL: the paper's 90/10 split of train; test may be NULL */
    const char *text_columns;       /* "sentence" or "premise,hypothesis" (default "sentence" / "text") */
    const char *label_column;       /* default "label" */
    cl_problem problem;             /* AUTO: regression when every training label is a number that is not always
                                       an integer, else classification */
    cl_file_format format;          /* AUTO: from each file's extension */
} cl_user_opts;

/* The task a dataset defines: a cl_glue_task record ("custom") with the label set, owned here. */
typedef struct {
    cl_glue_task task;
    char **labels;   /* num_labels label strings, by class id (NULL for regression) */
    cl_problem problem;
} cl_user_task;

int cl_file_format_parse(const char *s, cl_file_format *out, cl_error *err);   /* "tsv" | "csv" | "jsonl" */
int cl_problem_parse(const char *s, cl_problem *out, cl_error *err);           /* "classification" | ... */
const char *cl_problem_name(cl_problem p); /* transformers' problem_type spelling */

/* Reads the files of O into the splits (train / dev / test as the paper protocol defines them: without O->dev,
 * dev = 10% of train shuffled with SEED, as cl_glue_make_splits; test = O->test or none) and the task. A labelled
 * test file is required to have the label column. */
int cl_user_load(const cl_user_opts *o, uint64_t seed, cl_user_task *task, cl_glue_splits *out, cl_error *err);
/* Reads one unlabelled (or labelled, the label ignored) file for prediction with the columns of O. */
int cl_user_read_inputs(const char *path, const cl_user_opts *o, cl_dataset *out, cl_error *err);
void cl_user_task_free(cl_user_task *t);

#endif
