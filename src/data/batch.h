/* Batching order over already-tokenized lengths: length-bucketed random batches for training, sequential batches
 * for evaluation. Each batch is padded (by the caller) to its longest member: cl_batch_max_len.
 *
 * Training order for epoch e (cl_batch_plan_epoch), a pure function of (lengths, batch_size, mega, seed, e):
 *   1. rng = cl_rng_seed(splitmix64(seed) ^ splitmix64(e + 1)): one independent stream per epoch, so an epoch's
 *      order never depends on how many random numbers earlier epochs or the model used;
 *   2. perm = Fisher-Yates shuffle of 0..n-1 with rng (from the last position down, j = cl_rng_below(i + 1));
 *   3. perm is cut into mega-batches of mega * batch_size examples; each is sorted by length, longest first, ties
 *      kept in shuffled order (so the sort is deterministic on every libc);
 *   4. each mega-batch is cut into batches of batch_size (only the very last batch of the epoch may be short);
 *   5. the order of all batches of the epoch is shuffled with rng (Fisher-Yates again).
 * Similar lengths share a batch (little padding) while every epoch still sees a fresh random order. Resuming at
 * (epoch, batch b) = rebuilding the plan for that epoch and starting at b: no RNG state needs saving.
 * mega <= 1 turns bucketing off (plain shuffled batches). */
#ifndef CL_DATA_BATCH_H
#define CL_DATA_BATCH_H
#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

typedef struct {
    size_t batch_size; /* examples per batch (> 0) */
    size_t mega;       /* batches per mega-batch (length bucket); e.g. 50; 0 or 1 = no bucketing */
    uint64_t seed;
} cl_batch_opts;

typedef struct {
    size_t n;        /* examples */
    size_t nbatches;
    size_t *order;   /* n example indices; batch b is order[start[b] .. start[b + 1]) */
    size_t *start;   /* nbatches + 1 offsets */
} cl_batch_plan;

/* The training order for `epoch` (0-based) over n examples with the given token lengths. */
int cl_batch_plan_epoch(const int *lengths, size_t n, const cl_batch_opts *o, uint64_t epoch, cl_batch_plan *out,
                        cl_error *err);
/* Evaluation: examples 0..n-1 in order, batches of batch_size (the last may be short). */
int cl_batch_plan_sequential(size_t n, size_t batch_size, cl_batch_plan *out, cl_error *err);
void cl_batch_plan_free(cl_batch_plan *p);

/* Batch b: *idx points at its example indices, returns its size (0 when b >= nbatches). */
size_t cl_batch_get(const cl_batch_plan *p, size_t b, const size_t **idx);
/* The longest length in batch b: the padded length of that batch. */
int cl_batch_max_len(const cl_batch_plan *p, size_t b, const int *lengths);

#endif
