/* Batching order (see batch.h for the algorithm and how randomness is kept). */
#include "data/batch.h"
#include <stdlib.h>
#include <string.h>
#include "core/util.h"

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void cl_batch_plan_free(cl_batch_plan *p) {
    if (!p) return;
    cl_free(p->order);
    cl_free(p->start);
    memset(p, 0, sizeof *p);
}

static int plan_alloc(size_t n, size_t nbatches, cl_batch_plan *out, cl_error *err) {
    memset(out, 0, sizeof *out);
    cl_error e2 = {0};
    out->order = cl_alloc(n ? n : 1, sizeof *out->order, &e2);
    out->start = cl_alloc(nbatches + 1, sizeof *out->start, &e2);
    if (!out->order || !out->start) {
        cl_batch_plan_free(out);
        return cl_errf(err, CL_ENOMEM, "batch plan for %zu examples: %s", n, e2.msg);
    }
    out->n = n;
    out->nbatches = nbatches;
    return 0;
}

int cl_batch_plan_sequential(size_t n, size_t batch_size, cl_batch_plan *out, cl_error *err) {
    memset(out, 0, sizeof *out);
    if (batch_size == 0) return cl_errf(err, CL_EINVAL, "batch size must be positive");
    size_t nb = (n + batch_size - 1) / batch_size;
    if (plan_alloc(n, nb, out, err)) return err ? (int)err->code : CL_ENOMEM;
    for (size_t i = 0; i < n; i++) out->order[i] = i;
    for (size_t b = 0; b <= nb; b++) out->start[b] = b * batch_size < n ? b * batch_size : n;
    return 0;
}

typedef struct {
    int len;
    size_t pos; /* position in the shuffled permutation: the tie-break */
    size_t idx;
} keyed;

static int cmp_keyed(const void *pa, const void *pb) {
    const keyed *a = pa, *b = pb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

int cl_batch_plan_epoch(const int *lengths, size_t n, const cl_batch_opts *o, uint64_t epoch, cl_batch_plan *out,
                        cl_error *err) {
    memset(out, 0, sizeof *out);
    if (!o || o->batch_size == 0)
        return cl_errf(err, CL_EINVAL, "batch size must be positive");
    size_t B = o->batch_size, M = o->mega > 1 ? o->mega : 1;
    uint64_t chunk64;
    if (!cl_mul_ok(B, M, &chunk64) || chunk64 > SIZE_MAX)
        return cl_errf(err, CL_EINVAL, "batch size %zu x mega %zu overflows", B, M);
    size_t chunk = (size_t)chunk64;
    for (size_t i = 0; i < n; i++)
        if (lengths[i] < 0)
            return cl_errf(err, CL_EINVAL, "example %zu has negative length %d", i,
                           lengths[i]);
    size_t nb = (n + B - 1) / B;
    if (plan_alloc(n, nb, out, err)) return err ? (int)err->code : CL_ENOMEM;
    cl_error e2 = {0};
    keyed *k = cl_alloc(chunk < n ? chunk : (n ? n : 1), sizeof *k, &e2);
    size_t *bstart = cl_alloc(nb ? nb : 1, sizeof *bstart, &e2); /* start of each batch in the bucketed order */
    size_t *border = cl_alloc(nb ? nb : 1, sizeof *border, &e2);
    size_t *tmp = cl_alloc(n ? n : 1, sizeof *tmp, &e2);
    if (!k || !bstart || !border || !tmp) {
        cl_free(k), cl_free(bstart), cl_free(border), cl_free(tmp);
        cl_batch_plan_free(out);
        return cl_errf(err, CL_ENOMEM, "batch plan: %s", e2.msg);
    }
    cl_rng rng;
    cl_rng_seed(&rng, splitmix64(o->seed) ^ splitmix64(epoch + 1));
    /* 2. shuffle */
    for (size_t i = 0; i < n; i++) tmp[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)cl_rng_below(&rng, i);
        size_t t = tmp[i - 1];
        tmp[i - 1] = tmp[j];
        tmp[j] = t;
    }
    /* 3-4. sort each mega-batch by length (longest first), then cut into batches */
    size_t nbat = 0;
    for (size_t c0 = 0; c0 < n; c0 += chunk) {
        size_t cn = n - c0 < chunk ? n - c0 : chunk;
        for (size_t i = 0; i < cn; i++) k[i] = (keyed){.len = lengths[tmp[c0 + i]], .pos = i, .idx = tmp[c0 + i]};
        if (M > 1) qsort(k, cn, sizeof *k, cmp_keyed);
        for (size_t i = 0; i < cn; i++) tmp[c0 + i] = k[i].idx;
        for (size_t b0 = 0; b0 < cn; b0 += B) bstart[nbat++] = c0 + b0;
    }
    /* 5. shuffle the batch order */
    for (size_t b = 0; b < nb; b++) border[b] = b;
    for (size_t i = nb; i > 1; i--) {
        size_t j = (size_t)cl_rng_below(&rng, i);
        size_t t = border[i - 1];
        border[i - 1] = border[j];
        border[j] = t;
    }
    size_t w = 0;
    for (size_t b = 0; b < nb; b++) {
        size_t s = bstart[border[b]];
        size_t e = s + B < n ? s + B : n;
        out->start[b] = w;
        for (size_t i = s; i < e; i++) out->order[w++] = tmp[i];
    }
    out->start[nb] = w;
    cl_free(k), cl_free(bstart), cl_free(border), cl_free(tmp);
    return 0;
}

size_t cl_batch_get(const cl_batch_plan *p, size_t b, const size_t **idx) {
    if (b >= p->nbatches) { *idx = NULL; return 0; }
    *idx = p->order + p->start[b];
    return p->start[b + 1] - p->start[b];
}

int cl_batch_max_len(const cl_batch_plan *p, size_t b, const int *lengths) {
    const size_t *idx;
    size_t m = cl_batch_get(p, b, &idx);
    int mx = 0;
    for (size_t i = 0; i < m; i++)
        if (lengths[idx[i]] > mx) mx = lengths[idx[i]];
    return mx;
}
