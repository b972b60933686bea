/* The training options, described once as data: one table (name, type, default, range, help, run.json key) that the
 * CLI parser and `condlora train --help`, the validation of each value, run.json (written and read back on
 * --resume), cl_train_opts_diff and the public API (cl_train_params_set, cl_option_info, hence the Python binding)
 * all read. Adding an option = one field in cl_train_opts + one row here.
 *
 * Values are text on the way in and out: cl_train_option_set parses and range-checks (a bad value is a usage
 * error naming the option: "option --lr: 'nan' is not a finite number"), cl_train_option_get gives the canonical
 * text (numbers round-trip exactly: floats with 9 significant digits, doubles with 17). */
#ifndef CL_TRAIN_OPTIONS_H
#define CL_TRAIN_OPTIONS_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include "train/trainer.h"

typedef enum {
    CL_OT_STRING = 0, /* text (NULL = unset) */
    CL_OT_PATH,       /* a file or directory: run.json keeps it absolute as KEY and relative to the run as KEY_rel */
    CL_OT_INT,        /* integers in [lo, hi] */
    CL_OT_FLOAT,      /* finite numbers in [lo, hi] */
    CL_OT_BOOL,       /* 0 | 1 (also true | false) */
    CL_OT_FLAG,       /* takes no argument on the command line (value 1 when given) */
    CL_OT_CHOICE,     /* one of the words in `choices` ("paper|glue") */
} cl_opt_type;

/* flags */
#define CL_OF_ADAPTER 1u    /* run.json: under options.adapter (else options) */
#define CL_OF_RESUME 2u     /* may be given anew on --resume (threads, checkpoint schedule); kept from run.json
                               when not given */
#define CL_OF_INVOCATION 4u /* belongs to one invocation (quiet, stop-after, overwrite): recorded in run.json but
                               back to its default on --resume unless given anew */
#define CL_OF_NO_REL 8u     /* a path recorded without KEY_rel (out: the run directory itself) */

typedef struct cl_train_option {
    const char *name;    /* --name on the command line; the public API accepts name or key ('-' or '_') */
    const char *key;     /* run.json key */
    cl_opt_type type;
    unsigned flags;
    const char *group;   /* --help section: "model and data", "adapter", "optimizer", "schedule", "run" */
    const char *arg;     /* metavar for --help: DIR, FILE, N, X, ... (NULL for flags) */
    const char *def;     /* the default, as text ("" = unset), which cl_train_opts_default gives */
    double lo, hi;       /* CL_OT_INT / CL_OT_FLOAT range (inclusive) */
    const char *choices; /* CL_OT_CHOICE words, '|'-separated */
    const char *help;
    size_t off;          /* offset of the field in cl_train_opts (generic types) */
    int size;            /* its size in bytes (CL_OT_INT: 4 or 8) */
    /* CL_OT_CHOICE and options whose setting does more than store a value (preset, method) */
    int (*set)(cl_train_opts *o, const char *value, cl_error *err);
    void (*get)(const cl_train_opts *o, char *buf, size_t n);
} cl_train_option;

size_t cl_train_option_count(void);
const cl_train_option *cl_train_option_at(size_t i);
/* by name ("batch-size") or run.json key ("batch_size"); NULL when there is none */
const cl_train_option *cl_train_option_find(const char *name);

/* Parses VALUE (NULL for a flag = "1") into O. A value outside the option's type or range: CL_EUSAGE, the message
 * naming --NAME. */
int cl_train_option_set(cl_train_opts *o, const cl_train_option *opt, const char *value, cl_error *err);
/* The value's canonical text ("" when unset). */
void cl_train_option_get(const cl_train_opts *o, const cl_train_option *opt, char *buf, size_t n);

/* run.json: every option into OP (options) and AD (options.adapter); paths absolute, plus KEY_rel against RUN_DIR
 * (when not NULL). */
void cl_train_options_to_json(const cl_train_opts *o, cJSON *op, cJSON *ad, const char *run_dir);
/* Back: every option present in OP / AD into O (strings copied into BUF); paths as cl_run_read_opts resolves them
 * (absolute when it exists, else KEY_rel against RUN_DIR). Options absent are left as they are; REQUIRED (a NULL-
 * terminated list of keys) must be present. A bad value is CL_EFORMAT naming the key. */
int cl_train_options_from_json(cl_train_opts *o, cJSON *op, cJSON *ad, const char *run_dir, char **buf,
                               size_t *left, const char *const *required, const char *path, cl_error *err);

/* `condlora train --help`'s option list, generated from the table. */
void cl_train_options_help(FILE *f);

#endif
