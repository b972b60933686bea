/* Private to src/train: the state shared by the loop (trainer.c) and the run files (runio.c). */
#ifndef CL_TRAIN_INTERNAL_H
#define CL_TRAIN_INTERNAL_H
#include <stdio.h>
#include "adapters/adapter.h"
#include "core/util.h"
#include "data/batch.h"
#include "data/glue.h"
#include "model/encoder.h"
#include "tokenizer/tokenizer.h"
#include "data/userdata.h"
#include "train/trainer.h"


/* One split, tokenized once: example i is ids[off[i] .. off[i] + len[i]). */
typedef struct {
    size_t n;
    int32_t *ids, *types;
    size_t *off;
    int *len;
    int32_t *label;
    float *score;
    const char **multi; /* multi-label tasks: each example's label set ("0101", in the dataset's arena), else NULL */
    long long tokens;  /* sum of len */
    int truncated;     /* examples cut to max_length */
    cl_batch_plan seq; /* sequential evaluation plan */
} cl_tokset;

typedef struct {
    cl_train_opts o;
    char run_id[33];   /* the run's identity: run.json "run_id", and every checkpoint's trainer_state.json */
    char task_dir[4096];
    const cl_glue_task *task;  /* a GLUE task's, or &utask.task for the user's own files */
    cl_user_task utask;
    cl_glue_splits splits;
    cl_tokenizer *tok;
    cl_weights model;
    int model_loaded;
    cl_tokset tr, dev, test;
    cl_adapter *ad;
    cl_params P;
    cl_head_params hp;
    cl_head_grads hg;
    cl_lin_hook hook;
    cl_encoder *enc;
    int maxT;
    int32_t *b_ids, *b_types, *b_len, *b_lab;
    float *b_tgt;      /* regression targets (B), or multi-label targets (B x num_labels) */
    int *pred;         /* predicted class ids (n), or multi-label sets (n x num_labels 0/1) */
    float *pred_score;
    float *best_param; /* copy of P.param at the best evaluation */
    cl_threads_saved threads_saved; /* the caller's thread counts, restored by tctx_free */
    double comm_s;     /* data parallel: seconds in the gradient sums of this invocation, and how many */
    int64_t comm_n;
} cl_tctx;

/* Where a run stands after a finished step: what a checkpoint must hold besides the tensors to continue exactly. */
typedef struct {
    int64_t step;            /* optimizer steps taken */
    int64_t total, warmup;   /* schedule (checked against the options on resume) */
    int epoch;               /* next batch: batch `batch` of epoch `epoch`'s plan (a pure function of seed, epoch) */
    int64_t batch;
    int epochs_run;
    double best_main;        /* -inf before the first improvement */
    int64_t best_step;       /* -1 before */
    int bad_evals;
    cl_metric_set best_dev;
    double win_loss, final_loss;
    long long win_n, tok_total, ex_total;
    double train_s, elapsed_s;
    long metrics_offset;     /* bytes of metrics.jsonl written up to this step */
} cl_train_pos;

/* runio.c */
int cl_run_write_json(const cl_tctx *c, const char *path, const cl_train_result *res, const char *status,
                      cl_error *err);
/* run.json's options into O (strings in STRBUF); its run_id into RUN_ID (may be NULL; "" for runs from before run
 * ids). Paths recorded absolute and relative to the run directory: the absolute one when it exists, else the
 * relative one resolved against RUN_JSON's directory (a run that moved with its data), else the absolute one. */
int cl_run_read_opts(const char *run_json, cl_train_opts *o, char *strbuf, size_t strbuf_len, char *run_id,
                     cl_error *err);
int cl_run_save_checkpoint(cl_tctx *c, const char *dir, int64_t step, const cl_metric_set *dev, cl_error *err);
int cl_run_load_state(cl_tctx *c, const char *dir, cl_error *err);
/* RUN/checkpoint-STEP with everything needed to resume (trainer.h); old checkpoints beyond save_limit removed. */
int cl_run_save_resume_checkpoint(cl_tctx *c, const char *run_dir, const cl_train_pos *pos, cl_error *err);
int cl_run_load_resume_checkpoint(cl_tctx *c, const char *ckpt_dir, cl_train_pos *pos, cl_error *err);
/* Removes the checkpoint directories of RUN without a COMPLETE marker (leftovers of a crash); returns how many. */
int cl_run_remove_incomplete(const char *run_dir);
void cl_run_json_metrics(FILE *f, const cl_metric_set *m);
/* curve.svg from metrics.jsonl */
int cl_run_write_curve(const char *metrics_jsonl, const char *svg_path, const char *metric_name, cl_error *err);

#endif
