/* Fine-tuning loop: `condlora train` and `condlora eval` (METHODS.md section 4 for the paper's protocol).
 *
 * cl_train_run checks everything first (options, model directory, tokenizer, the task's data files, every row) and
 * only then creates RUN_DIR and takes the first step, so bad input fails before any training.
 *
 * Step k (0-based) of an optimizer run with total steps N and warm-up W = ceil(warmup_ratio * N) (transformers'
 * get_warmup_steps) uses lr_k = lr * (k < W ? k / max(1, W) : max(0, (N - k) / max(1, N - W))) (transformers'
 * get_linear_schedule_with_warmup). N = max_steps when > 0, else epochs * batches per epoch.
 *
 * Randomness, all derived from `seed` (same seed and thread count = bit-identical run; the dropout masks are
 * counter-based and do not depend on the thread count either, so in practice only OpenBLAS's reduction order can):
 *   - the paper protocol's train/dev split: cl_glue_make_splits(seed);
 *   - a new classification head: head_seed = seed (transformers' normal(0, 0.02));
 *   - adapter initialisation: cl_adapter_init(seed);
 *   - batch order of epoch e: cl_batch_plan_epoch(seed, e) (length buckets of `mega` batches, each batch padded to
 *     its longest member; the plan is a pure function of (seed, e), see data/batch.h);
 *   - encoder dropout of step k: cl_train_step_seed(seed, k, 0); adapter dropout / gates: cl_train_step_seed(.., 1).
 *
 * Outputs under RUN_DIR: run.json (options, versions, counts, data sizes; rewritten with the results at the end),
 * metrics.jsonl (one JSON object per logged step and per evaluation), curve.svg (training loss and dev metric),
 * best/ and final/ (adapter_model.safetensors with PEFT key names + the head under PEFT's modules_to_save names,
 * adapter_config.json, and condlora_state.safetensors: condlora's own trainable tensors by name, used by
 * `condlora eval` to reload the run exactly). */
#ifndef CL_TRAINER_H
#define CL_TRAINER_H
#include <signal.h>
#include <stdint.h>
#include "adapters/adapter.h"
#include "core/error.h"
#include "data/glue.h"
#include "data/userdata.h"
#include "data/metrics.h"
#include "condlora.h" /* cl_comm */

/* Progress events (cl_train_event, cl_train_event_fn) and cl_train_result are the public API's (condlora.h). */

typedef struct {
    const char *model_dir;     /* Hugging Face model directory */
    const char *tokenizer_dir; /* NULL: model_dir */
    const char *task;          /* GLUE task name */
    const char *data_dir;      /* the GLUE root (holding TASK/) or the task's own directory */
    /* or the user's own files instead of task + data_dir (data/userdata.h): train, dev (NULL: 10% of train held
     * out), test (optional, labelled); text and label columns by name; problem (auto, classification,
     * regression, multi-label); format (auto: by extension) */
    const char *train_file, *dev_file, *test_file;
    const char *text_columns, *label_column;
    cl_problem problem;
    cl_file_format format;
    int preset_paper;          /* --preset paper was given */
    const char *out_dir;       /* RUN_DIR: new or empty; an existing run only with overwrite */
    int overwrite;             /* --overwrite: an existing run in out_dir is removed (after every input has been
                                  checked, just before the new run starts); a non-run directory is never removed */
    cl_adapter_opts ad;        /* method, r, alpha, dropout, target_modules, ... */
    float lr;                  /* peak learning rate (default 5e-4) */
    float weight_decay;        /* 0 */
    double warmup_ratio;       /* 0.1 (double: ceil(0.1 * 60) must be 6, as in Python) */
    float beta1, beta2, eps;   /* 0.9, 0.999, 1e-8 */
    float max_grad_norm;       /* <= 0: no clipping (default 0) */
    int batch_size;            /* 16 */
    int max_length;            /* 128 (512 under the paper preset) */
    int epochs;                /* 3 */
    int64_t max_steps;         /* > 0: stop after this many optimizer steps (overrides epochs) */
    int64_t eval_every;        /* > 0: evaluate every N steps; 0: every epoch */
    int patience;              /* > 0: stop after this many evaluations without improvement; 0: never */
    uint64_t seed;             /* 1 */
    int threads;               /* > 0: OpenMP and OpenBLAS threads */
    cl_protocol protocol;      /* paper (default) | glue */
    int mega;                  /* batches per length bucket (50) */
    int log_every;             /* progress line / metrics.jsonl every N steps (10) */
    int quiet;                 /* no progress lines */
    size_t max_train;          /* > 0: use only the first N training examples (quick runs) */
    size_t max_eval;           /* > 0: use only the first N dev / test examples */
    int save_final;            /* write RUN/final (1) */
    int64_t save_every;        /* > 0: write RUN/checkpoint-STEP every N steps (0: never) */
    int save_limit;            /* > 0: keep only the newest N complete checkpoints (0: keep all) */
    int64_t stop_after;        /* > 0: after N steps of this invocation write a checkpoint and return (paused) */
    const char *resume;        /* RUN_DIR to continue from its newest complete checkpoint; the options then come from
                                  RUN_DIR/run.json (only threads, quiet, save_every, save_limit, stop_after may be
                                  given anew) */
    int bf16;                  /* --precision bf16: the encoder's frozen linear layers in bf16 with fp32 accumulation
                                  (model/gemm_bf16.h); adapters, head and optimizer stay fp32. 0: fp32 (default).
                                  run.json options.precision records it ("fp32" when absent) */
    int train_pooler;          /* BERT heads: train pooler.dense too (PEFT modules_to_save "pooler"); BERT's pooler +
                                  classifier is RoBERTa's classifier.dense + out_proj, the head the paper trains, so
                                  the paper preset sets it. Ignored for RoBERTa. run.json options.train_pooler */
    /* not options (train/options.c): how the caller follows and stops the run */
    cl_train_event_fn on_event; /* progress (NULL: none); called on the training thread */
    void *event_user;
    volatile sig_atomic_t *cancel; /* when *cancel becomes non-zero (a signal handler may set it), the run finishes
                                      its step, writes a checkpoint and returns 0 with res->interrupted = *cancel */
    struct cl_comm *comm;       /* data parallelism over size > 1 processes (NULL or size 1: one process) */
} cl_train_opts;

/* data parallelism: struct cl_comm is the public API's (include/condlora.h, cl_train_params_set_comm) */

void cl_train_opts_default(cl_train_opts *o);
/* The first option (as the CLI names it: "lr", "batch-size", "model", ...) whose value differs between A and B,
 * or NULL when they describe the same run. Paths compare as absolute paths; threads, quiet and the checkpoint
 * schedule (save-every, save-limit, stop-after) are not compared: a resumed run may change them. */
const char *cl_train_opts_diff(const cl_train_opts *a, const cl_train_opts *b);
/* RUN_DIR/run.json's options (strings in BUF), with out_dir = RUN_DIR */
int cl_train_read_run_opts(const char *run_dir, cl_train_opts *o, char *buf, size_t n, cl_error *err);

/* The paper's per-task settings (METHODS.md 4): lr by method (LoRA / CondLoRA; other methods take LoRA's), epochs,
 * patience 30 for MRPC, QNLI, SST-2, STS-B, r = alpha = 8, dropout 0, max length 512, batch 16, warm-up 0.1. */
typedef struct {
    const char *task;
    double lr_lora, lr_condlora;
    int epochs;
    int patience;
} cl_paper_preset;
const cl_paper_preset *cl_paper_preset_find(const char *task); /* NULL when the task has no entry */
int cl_train_apply_paper_preset(cl_train_opts *o, cl_error *err);
/* Evaluation interval of the paper: every 1500 steps where an epoch has >= 1500 steps, else every epoch (0). */
int64_t cl_paper_eval_every(size_t batches_per_epoch);

/* Schedule */
int64_t cl_train_warmup_steps(double warmup_ratio, int64_t total);
double cl_train_lr_at(double lr, int64_t step, int64_t warmup, int64_t total);
uint64_t cl_train_step_seed(uint64_t seed, int64_t step, int stream);


/* Runs (or, with o->resume, continues) a training run. Returns 0 also when the run was cancelled through o->cancel
 * (res->interrupted: its value; a checkpoint of the last finished step was written first) or paused by stop_after
 * (res->paused). The library installs no signal handler; with o->threads > 0 the calling thread's OpenMP and
 * OpenBLAS thread counts are set for the run and restored when it returns. Checkpoints (RUN/checkpoint-STEP/): the files of best/ plus optimizer.safetensors (AdamW
 * moments and step, the best parameters so far, the adapter's own state) and trainer_state.json (step, data
 * position = epoch and batch index, evaluation history, loss window, counters, the metrics.jsonl length; the RNG
 * state is the seed and the step: every random draw is a pure function of them), and last the marker file
 * COMPLETE: a checkpoint without it is ignored by --resume (and removed). Every file is written to a temporary name,
 * fsynced and renamed. Fault injection for tests: CONDLORA_FAULT=kill-in-checkpoint:N raises SIGKILL in the middle
 * of the N-th checkpoint this process writes (after its adapter files, before the optimizer state and marker). */
int cl_train_run(const cl_train_opts *o, cl_train_result *res, cl_error *err);
/* The newest complete checkpoint of RUN (its path into out); CL_EMISSING when there is none. */
int cl_train_latest_checkpoint(const char *run_dir, char *out, size_t n, int64_t *step, cl_error *err);

/* condlora eval: reloads RUN (a run directory's best/ or final/, or the run directory itself = its best/) and
 * evaluates `split` ("dev", "test" or "train", as the run's protocol defines them). model_dir / data_dir override
 * the paths recorded in run.json when not NULL; threads > 0 sets the thread count. */
int cl_eval_run(const char *run, const char *split, const char *model_dir, const char *data_dir, int threads,
                cl_metric_set *out, size_t *n_out, cl_error *err);
/* cl_eval_run with a precision (-1 = the run's, run.json options.precision; 0 = fp32; 1 = bf16) and progress events
 * (CL_TRAIN_EV_PROGRESS every 10 s of a long evaluation; on_event may be NULL) */
int cl_eval_run_precision(const char *run, const char *split, const char *model_dir, const char *data_dir,
                          int threads, int bf16, cl_train_event_fn on_event, void *event_user, cl_metric_set *out,
                          size_t *n_out, cl_error *err);

#endif
