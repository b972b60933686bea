/* Private to src/train: the state shared by the loop (trainer.c) and the run files (runio.c). */
#ifndef CL_TRAIN_INTERNAL_H
#define CL_TRAIN_INTERNAL_H
#include <stdio.h>
#include "adapters/adapter.h"
#include "data/batch.h"
#include "data/glue.h"
#include "model/encoder.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

#ifndef CONDLORA_VERSION
#define CONDLORA_VERSION "0.1.0"
#endif

/* One split, tokenized once: example i is ids[off[i] .. off[i] + len[i]). */
typedef struct {
    size_t n;
    int32_t *ids, *types;
    size_t *off;
    int *len;
    int32_t *label;
    float *score;
    long long tokens;  /* sum of len */
    int truncated;     /* examples cut to max_length */
    cl_batch_plan seq; /* sequential evaluation plan */
} cl_tokset;

typedef struct {
    cl_train_opts o;
    char task_dir[4096];
    const cl_glue_task *task;
    cl_glue_splits splits;
    cl_tokenizer *tok;
    cl_model model;
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
    float *b_tgt;
    int *pred;
    float *pred_score;
    float *best_param; /* copy of P.param at the best evaluation */
} cl_tctx;

/* runio.c */
int cl_run_write_json(const cl_tctx *c, const char *path, const cl_train_result *res, const char *status,
                      cl_error *err);
int cl_run_read_opts(const char *run_json, cl_train_opts *o, char *strbuf, size_t strbuf_len, cl_error *err);
int cl_run_save_checkpoint(cl_tctx *c, const char *dir, int64_t step, const cl_metric_set *dev, cl_error *err);
int cl_run_load_state(cl_tctx *c, const char *dir, cl_error *err);
void cl_run_json_metrics(FILE *f, const cl_metric_set *m);
/* curve.svg from metrics.jsonl */
int cl_run_write_curve(const char *metrics_jsonl, const char *svg_path, const char *metric_name, cl_error *err);

#endif
