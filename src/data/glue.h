/* GLUE: the task registry, TSV readers and the two split protocols.
 *
 * Files are read as tab-separated text with NO quoting (GLUE rows may begin with a double quote that is part of the
 * text), one row per '\n'-terminated line ("\r\n" is accepted; the last line may lack its newline). A UTF-8 BOM at
 * the start of a file is skipped (MRPC's header has one). Files with a header are read by column NAME (the header
 * must name every column the task needs, otherwise the file is "not a GLUE <task> file"); CoLA's train/dev files
 * have no header and are read by index. Every row must have as many columns as the header (CoLA: 4).
 *
 * A malformed row (wrong column count, unknown label, a score that is not a finite number in [0, 5]) is an error
 * "PATH:LINE: ..." unless cl_glue_read_opts.skip_bad_rows is set, in which case the row is skipped, counted in
 * cl_dataset.skipped and the first such message kept in cl_dataset.skip_msg for the caller to report.
 *
 * Labels are stored as class ids in the order of cl_glue_task.label_values (the Hugging Face `glue` order:
 * RTE/QNLI entailment=0, MNLI entailment=0 neutral=1 contradiction=2, the 0/1 tasks as written). STS-B is
 * regression: label = -1, score = the float in the last column. Unlabelled test files give label -1, score NAN. */
#ifndef CL_DATA_GLUE_H
#define CL_DATA_GLUE_H
#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#define CL_GLUE_MAX_LABELS 3

typedef enum {
    CL_SPLIT_TRAIN = 0,
    CL_SPLIT_DEV = 1,     /* MNLI: dev_matched */
    CL_SPLIT_DEV_MM = 2,  /* MNLI only: dev_mismatched */
    CL_SPLIT_TEST = 3,    /* unlabelled; MNLI: test_matched */
    CL_SPLIT_TEST_MM = 4, /* MNLI only: test_mismatched */
} cl_glue_split;

typedef struct cl_glue_task {
    const char *name;       /* canonical name, also the directory name under glue/: "CoLA", "SST-2", ... */
    const char *files[5];   /* file names indexed by cl_glue_split; NULL where the task has none */
    int labelled_header;    /* 1 if train/dev files start with a header row (all but CoLA) */
    /* Header-less labelled files (CoLA): column count and indices. */
    int nh_ncols, nh_col_a, nh_col_label;
    /* Column names in files with a header (labelled files and the test files). */
    const char *col_a, *col_b; /* col_b NULL for single-sentence tasks */
    const char *col_label;     /* label column of labelled files */
    const char *col_id;        /* id column of test files ("index", "id") */
    int regression;            /* STS-B */
    int multi_label;           /* users' data only: every example has a set of labels (BCEWithLogitsLoss, a sigmoid
                                  per label, as transformers' problem_type "multi_label_classification") */
    int num_labels;            /* classes (1 for regression; the number of labels for multi-label) */
    const char *const *label_values; /* num_labels strings as written in the files, by class id (NULL: regression) */
    const char *const *label_names;  /* num_labels human-readable names, by class id */
    const char *main_metric;   /* the metric used for model selection (a name from cl_task_metrics) */
} cl_glue_task;

/* One example. Strings point into the owning cl_dataset's arena. */
typedef struct {
    const char *text_a;
    const char *text_b; /* NULL for single-sentence tasks */
    const char *id;     /* the index/id column where the file has one (test files: for predictions), else NULL */
    int label;          /* class id; -1 for regression and unlabelled rows */
    float score;        /* regression target (STS-B); NAN otherwise */
    const char *multi;  /* multi-label tasks: num_labels characters '0' / '1' by label id (the example's label set),
                           NUL-terminated; NULL otherwise and for unlabelled rows */
    int line;           /* 1-based line in the source file */
    int origin;         /* which file: 0, or 1 for MNLI mismatched */
} cl_example;

typedef struct cl_dataset {
    cl_example *ex;
    size_t n;
    char *arena;        /* owns every string of ex[] */
    size_t skipped;     /* rows skipped with skip_bad_rows */
    char skip_msg[256]; /* the first skipped row's message ("" when none) */
} cl_dataset;

typedef struct {
    int skip_bad_rows; /* skip malformed rows (counted) instead of failing */
} cl_glue_read_opts;

/* Registry. Names are matched case-insensitively ignoring '-' and '_': "sst2", "SST-2", "sst-2", "STS_B", "mnli". */
const cl_glue_task *cl_glue_find_task(const char *name);
int cl_glue_task_lookup(const char *name, const cl_glue_task **out, cl_error *err); /* error lists known tasks */
size_t cl_glue_num_tasks(void);
const cl_glue_task *cl_glue_task_at(size_t i);
int cl_glue_is_pair(const cl_glue_task *t);
/* transformers' problem_type of the task's head: "regression", "multi_label_classification" or
 * "single_label_classification" */
const char *cl_task_problem_type(const cl_glue_task *t);

/* Reads one file. labelled: 1 for train/dev files, 0 for unlabelled test files. */
int cl_glue_read_file(const cl_glue_task *t, const char *path, int labelled, const cl_glue_read_opts *opts,
                      cl_dataset *out, cl_error *err);
/* Reads split `which` of task `t` from dir (the task's directory, e.g. ../shared/data/glue/SST-2). */
int cl_glue_load(const cl_glue_task *t, const char *dir, cl_glue_split which, const cl_glue_read_opts *opts,
                 cl_dataset *out, cl_error *err);
/* Checks before training that dir holds the task's train and dev files and that their headers fit the task
 * (catches a directory that is not a GLUE task). */
int cl_glue_check_dir(const cl_glue_task *t, const char *dir, cl_error *err);
void cl_dataset_free(cl_dataset *d);

/* New dataset holding copies of src->ex[idx[i]] (strings copied into its own arena). */
int cl_dataset_subset(const cl_dataset *src, const size_t *idx, size_t n, cl_dataset *out, cl_error *err);
/* New dataset a ++ b; origins are kept as they are in a and b. */
int cl_dataset_concat(const cl_dataset *a, const cl_dataset *b, cl_dataset *out, cl_error *err);

/* ---- Splits (split.c) ----
 * CL_PROTOCOL_PAPER ([P1], METHODS.md section 4): the official train file is shuffled with `seed` (Fisher-Yates
 *   driven by condlora's xoshiro256** cl_rng seeded with `seed`; the paper's seed 1 went through Hugging Face
 *   datasets' NumPy stream, which we do not reproduce, so the membership differs from the paper's while the sizes
 *   and the procedure are the same); the first round(10%) (half up: (n + 5) / 10) of the shuffled rows are `dev`
 *   (model selection), the rest `train`, in shuffled order; the official dev file(s) are `test`
 *   (MNLI: dev_matched ++ dev_mismatched, origin 0 / 1 kept for the per-part metrics).
 * CL_PROTOCOL_GLUE: train = the train file, dev = the official dev file(s) (MNLI m ++ mm), no test. */
typedef enum { CL_PROTOCOL_PAPER = 0, CL_PROTOCOL_GLUE = 1 } cl_protocol;

typedef struct {
    cl_dataset train, dev, test; /* test.n == 0 under the glue protocol */
    size_t skipped;              /* rows skipped over all files read (skip_bad_rows) */
    char skip_msg[256];          /* the first skipped row's "PATH:LINE: reason" ("" when none) */
} cl_glue_splits;

int cl_protocol_parse(const char *s, cl_protocol *out, cl_error *err); /* "paper" | "glue" */
/* Size of the paper protocol's dev part for a train file of n rows: round(n / 10), half up. */
size_t cl_paper_dev_size(size_t n);
int cl_glue_make_splits(const cl_glue_task *t, const char *dir, cl_protocol p, uint64_t seed,
                        const cl_glue_read_opts *opts, cl_glue_splits *out, cl_error *err);
void cl_glue_splits_free(cl_glue_splits *s);
/* The paper protocol's split of FULL (consumed): dev = the first round(10%) of FULL shuffled with SEED, train the
 * rest, in shuffled order. WHAT names the source in messages. */
int cl_paper_split(cl_dataset *full, uint64_t seed, cl_dataset *train, cl_dataset *dev, const char *what,
                   cl_error *err);

#endif
