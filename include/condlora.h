/* condlora: parameter-efficient fine-tuning of transformer encoders (LoRA, CondLoRA, SaLoRA, AdaLoRA) in C.
 *
 * The public API of libcondlora (libcondlora.so / libcondlora.a, `pkg-config --cflags --libs condlora`). Everything
 * else in the library is internal: the shared library exports only the functions declared here.
 *
 * Conventions:
 *   - Handles are opaque: cl_model (an encoder, optionally with a PEFT adapter applied), cl_tokenizer, cl_run (a
 *     finished, paused or cancelled training run), cl_train_params (the options of a run). Each has an open/new and
 *     a close/free; NULL is accepted by every close/free.
 *   - A function that can fail returns a cl_status (0 = CL_OK) or NULL; the reason is then cl_last_error() (a
 *     message naming the file and the place, e.g. "train.csv:14: column 'label': empty label"), kept per thread
 *     until the thread's next failing call.
 *   - The library never prints, never installs signal handlers and never leaves a thread count changed: logging
 *     goes to cl_log_set's callback, training progress to cl_train_callbacks.on_event, and a run stops when
 *     *cl_train_callbacks.cancel becomes non-zero (set it from a signal handler if you like). A `threads` > 0 in
 *     any params applies to that call only (the calling thread's OpenMP and OpenBLAS counts are restored).
 *   - A handle may be used by one thread at a time; different handles in different threads are independent.
 *
 * Options as data: cl_option_count / cl_option_at list every training option (name, type, default, range, help),
 * and cl_train_params_set takes any of them by name with its value as text, exactly as `condlora train --NAME
 * VALUE` does (the CLI and the Python binding are built on the same table). */
#ifndef CONDLORA_H
#define CONDLORA_H
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define CONDLORA_VERSION_MAJOR 0
#define CONDLORA_VERSION_MINOR 2
#define CONDLORA_VERSION_PATCH 0
#define CONDLORA_VERSION "0.2.0"

#if defined(CONDLORA_BUILD) && defined(__GNUC__)
#define CL_API __attribute__((visibility("default")))
#else
#define CL_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors, version, logging -------------------------------------------------------------------------------- */
typedef enum {
    CL_OK = 0,
    CL_EINVAL = 1,   /* bad argument or option */
    CL_EIO = 2,      /* open/read/write/fsync/rename failed */
    CL_EFORMAT = 3,  /* malformed file contents */
    CL_ESHAPE = 4,   /* tensor shape does not match the configuration */
    CL_ENOMEM = 5,   /* allocation failed */
    CL_EMISSING = 6, /* a required tensor, file or key is absent */
    CL_EUNSUP = 7,   /* valid input that condlora does not support */
    CL_EUSAGE = 8,   /* an option's value is invalid in itself (the CLI exits with 2 for these) */
} cl_status;

CL_API const char *cl_version(void);            /* CONDLORA_VERSION of the library actually linked */
CL_API const char *cl_status_name(cl_status s); /* "malformed input", "I/O error", ... */
CL_API const char *cl_last_error(void);         /* this thread's last failure message ("" when none) */
CL_API cl_status cl_last_status(void);          /* and its status */

typedef enum { CL_LOG_DEBUG = 0, CL_LOG_INFO = 1, CL_LOG_WARN = 2, CL_LOG_ERROR = 3 } cl_log_level;
typedef void (*cl_log_callback)(cl_log_level level, const char *message, void *user_data);
/* Where the library's notes go (a model file's ignored tensors, ...); NULL (the default): nowhere. Process-wide:
 * set it before other threads use the library. */
CL_API void cl_log_set(cl_log_callback cb, void *user_data);

/* ---- metrics --------------------------------------------------------------------------------------------------- */
#define CL_MAX_METRICS 8
typedef struct {
    const char *name; /* "acc", "f1", "mcc", "pearson", "spearman", "acc_m", "acc_mm", "f1_micro", "f1_macro",
                         "exact_match" */
    double value;
} cl_metric;
typedef struct {
    int n;
    cl_metric m[CL_MAX_METRICS];
    double main; /* the task's model-selection metric */
} cl_metric_set;

/* ---- models and tokenizers ------------------------------------------------------------------------------------ */
typedef struct cl_model cl_model;
typedef struct cl_tokenizer cl_tokenizer;

typedef struct {
    const char *adapter; /* a PEFT LoRA / AdaLoRA directory or a condlora run (= RUN/best) applied on top, or NULL */
    int bf16;            /* 1: the frozen linear layers in bf16 (AVX512_BF16 CPUs), logits within ~1e-3 */
    int threads;         /* > 0: threads for this model's calls */
} cl_model_params;
CL_API cl_model_params cl_model_default_params(void);
/* DIR: a Hugging Face model directory (config.json + model.safetensors) of BERT, RoBERTa or MPNet. */
CL_API cl_model *cl_model_open(const char *dir, const cl_model_params *params);
CL_API void cl_model_close(cl_model *m);
CL_API const char *cl_model_arch_name(const cl_model *m); /* "bert", "roberta", "mpnet" */
CL_API int cl_model_hidden_size(const cl_model *m);
CL_API int cl_model_num_layers(const cl_model *m);
CL_API int cl_model_max_length(const cl_model *m);  /* the tokens a sequence may have (the model's positions) */
CL_API int cl_model_pad_id(const cl_model *m);      /* the id to pad batches with */
CL_API int cl_model_type_vocab_size(const cl_model *m); /* token types (BERT 2; RoBERTa, MPNet: 1 = none) */
CL_API int cl_model_num_labels(const cl_model *m);  /* the classification head's outputs (0: no head) */
CL_API int cl_model_is_multi_label(const cl_model *m);
CL_API const char *cl_model_label_name(const cl_model *m, int i); /* the adapter's / config's label names */

CL_API cl_tokenizer *cl_tokenizer_open(const char *dir); /* tokenizer.json, or vocab.txt / vocab.json+merges.txt */
CL_API void cl_tokenizer_close(cl_tokenizer *t);
/* Token ids (with the special tokens) of TEXT_A, or of the pair (TEXT_A, TEXT_B), truncated to MAX_LENGTH (<= 0:
 * 512) as Hugging Face tokenizers would give them. Writes at most CAPACITY ids and token types (TYPE_IDS may be
 * NULL); returns the number of tokens, or -1 on error. */
CL_API int cl_tokenize(const cl_tokenizer *t, const char *text_a, const char *text_b, int max_length, int32_t *ids,
                       int32_t *type_ids, int capacity);

/* Logits of B sequences padded to T tokens (lengths[b] <= T real tokens; type_ids may be NULL) into
 * logits[B * num_labels]. The workspace grows to the largest B x T seen. */
CL_API cl_status cl_model_logits(cl_model *m, const int32_t *ids, const int32_t *type_ids, const int32_t *lengths,
                                 int B, int T, float *logits);
/* Tokenizes N texts (or pairs: text_b may be NULL, or hold NULLs) with T and computes their logits
 * (logits[n * num_labels]), in batches of 32. */
CL_API cl_status cl_predict(cl_model *m, const cl_tokenizer *t, const char *const *text_a,
                            const char *const *text_b, size_t n, int max_length, float *logits);

/* ---- training -------------------------------------------------------------------------------------------------- */
typedef enum {
    CL_OPTION_STRING = 0,
    CL_OPTION_PATH,
    CL_OPTION_INT,
    CL_OPTION_FLOAT,
    CL_OPTION_BOOL,
    CL_OPTION_FLAG,
    CL_OPTION_CHOICE,
} cl_option_type;
typedef struct {
    const char *name;    /* as the CLI spells it: "batch-size" (cl_train_params_set also takes "batch_size") */
    const char *key;     /* run.json's key */
    cl_option_type type;
    const char *def;     /* the default as text ("" = unset) */
    double min, max;     /* INT / FLOAT range (inclusive) */
    const char *choices; /* CHOICE: "paper|glue" */
    const char *group;   /* "model and data", "adapter", "optimizer", "schedule and evaluation", "run" */
    const char *help;
    int resumable;       /* may be given anew when resuming (threads, checkpoint schedule) */
} cl_option_info;
CL_API size_t cl_option_count(void);
CL_API cl_status cl_option_at(size_t i, cl_option_info *out);

typedef struct cl_train_params cl_train_params;
CL_API cl_train_params *cl_train_params_new(void); /* every option at its default */
CL_API void cl_train_params_free(cl_train_params *p);
/* Sets option NAME to VALUE (text, copied; NULL for a flag): CL_EUSAGE with the option named when out of range.
 * "method" resets the adapter options to the method's defaults: set it first. "resume" names a run directory to
 * continue (its run.json supplies the other options). */
CL_API cl_status cl_train_params_set(cl_train_params *p, const char *name, const char *value);
/* The value's canonical text into BUF (N bytes). */
CL_API cl_status cl_train_params_get(const cl_train_params *p, const char *name, char *buf, size_t n);

/* Data parallelism: a run spread over `size` processes, each calling cl_train with the same params and its own
 * cl_comm (the CLI implements one over MPI: `mpirun -np N condlora train ...`). Each process takes its share of
 * every global batch (--batch-size stays the global batch) and of every evaluation; once a step the gradients of the
 * trainable parameters are summed with sum_f32, so that every process applies the same AdamW step; only rank 0
 * writes files. Every function returns 0, or non-zero when the communication failed (the run then stops with an
 * error). The structure must outlive the run. */
typedef struct cl_comm {
    int rank, size;
    void *user;
    int (*sum_f32)(struct cl_comm *c, float *buf, size_t n);  /* in place: the element-wise sum over the processes */
    int (*sum_f64)(struct cl_comm *c, double *buf, size_t n);
    int (*bcast)(struct cl_comm *c, void *buf, size_t bytes); /* rank 0's bytes to every process */
} cl_comm;
/* NULL (the default) or size 1: one process. */
CL_API cl_status cl_train_params_set_comm(cl_train_params *p, cl_comm *comm);

typedef enum {
    CL_TRAIN_EV_START = 0,  /* the run's summary (sizes, steps, lr, threads) */
    CL_TRAIN_EV_STEP,       /* every log_every steps: step, total, epoch, epochs, loss, lr, rates, eta_s */
    CL_TRAIN_EV_EVAL,       /* a dev evaluation: step, metrics, improved, best (best_step) */
    CL_TRAIN_EV_CHECKPOINT, /* a checkpoint written: step, path */
    CL_TRAIN_EV_PROGRESS,   /* a long evaluation, every 10 s: split, done of n examples, eta_s */
    CL_TRAIN_EV_NOTE,       /* anything else worth a line: early stopping, incomplete checkpoints removed, ... */
} cl_train_event_type;
typedef struct {
    cl_train_event_type type;
    int64_t step, total;
    int epoch, epochs; /* 1-based */
    double loss, lr, tokens_per_s, examples_per_s, eta_s;
    const cl_metric_set *metrics; /* EVAL */
    int improved;                 /* EVAL: a new best */
    double best;                  /* EVAL: the best main metric so far, at best_step */
    int64_t best_step;
    const char *split;            /* EVAL, PROGRESS: "dev", "test", "train" */
    size_t done, n;               /* PROGRESS */
    const char *path;             /* CHECKPOINT */
    const char *message;          /* the line `condlora train` prints for the event */
} cl_train_event;
typedef void (*cl_train_event_fn)(const cl_train_event *ev, void *user);

typedef struct {
    cl_train_event_fn on_event;    /* NULL: no progress */
    void *user;
    volatile sig_atomic_t *cancel; /* non-zero: finish the step, write a checkpoint, return (cl_run_result's
                                      interrupted = the value) */
} cl_train_callbacks;

typedef struct {
    int64_t steps;          /* optimizer steps taken */
    int epochs_run;
    int stopped_early;
    int64_t best_step;      /* step of the best evaluation (-1 when none) */
    cl_metric_set best_dev; /* dev metrics of the best checkpoint */
    cl_metric_set test;     /* test metrics of the best checkpoint (n == 0 without a test split) */
    int have_test;
    double final_loss;      /* mean training loss of the last logging window */
    double wall_s, train_s, examples_per_s, tokens_per_s;
    uint64_t n_adapter, n_head, n_gate;
    size_t n_train, n_dev, n_test;
    int interrupted;        /* the cancel value that stopped the run after a checkpoint, else 0 */
    int paused;             /* 1: stopped by stop-after after writing a checkpoint */
    int64_t resumed_from;   /* step of the checkpoint a resumed run started from (-1: a fresh run) */
} cl_train_result;

typedef struct cl_run cl_run;
/* Trains (or resumes) a run: every input is checked before the run directory is created. NULL on error. */
CL_API cl_run *cl_train(const cl_train_params *p, const cl_train_callbacks *cb);
CL_API void cl_run_free(cl_run *r);
CL_API const char *cl_run_dir(const cl_run *r);
CL_API const cl_train_result *cl_run_result(const cl_run *r);

typedef struct {
    const char *model_dir, *data_dir; /* override the paths in run.json (NULL: the run's) */
    int threads;                      /* > 0: for this call */
    int precision;                    /* -1: the run's, 0: fp32, 1: bf16 */
    cl_train_event_fn on_event;       /* progress of a long evaluation, or NULL */
    void *user;
} cl_eval_params;
CL_API cl_eval_params cl_eval_default_params(void);
/* Metrics of RUN (a run directory = its best/, or RUN/best, RUN/final, RUN/checkpoint-N) on SPLIT ("dev", "test",
 * "train" as the run's protocol defines them); *n_examples (may be NULL) the examples evaluated. */
CL_API cl_status cl_eval(const char *run, const char *split, const cl_eval_params *p, cl_metric_set *out,
                         size_t *n_examples);

/* Copies the PEFT adapter of RUN (a run directory = best/, or a checkpoint directory, or a PEFT directory) to
 * OUT_DIR: adapter_model.safetensors, adapter_config.json and labels.json, which PeftModel.from_pretrained reads. */
CL_API cl_status cl_export_peft(const char *run, const char *out_dir);

#ifdef __cplusplus
}
#endif
#endif
