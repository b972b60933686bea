/* The two split protocols (see glue.h). The paper protocol's shuffle: Fisher-Yates from the last position down,
 * j = cl_rng_below(rng, i + 1), with rng = cl_rng_seed(seed) (xoshiro256** seeded by splitmix64). It is the same on
 * every machine for the same seed and train file, but it is NOT Hugging Face datasets' shuffle stream, so the rows
 * chosen as dev differ from the paper's (the sizes and the procedure are the same). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/util.h"
#include "data/glue.h"

int cl_protocol_parse(const char *s, cl_protocol *out, cl_error *err) {
    if (s && strcasecmp(s, "paper") == 0) { *out = CL_PROTOCOL_PAPER; return 0; }
    if (s && strcasecmp(s, "glue") == 0) { *out = CL_PROTOCOL_GLUE; return 0; }
    return cl_errf(err, CL_EUSAGE, "unknown protocol '%s' (expected 'paper' or 'glue')", s ? s : "(null)");
}

size_t cl_paper_dev_size(size_t n) { return n / 10 + (n % 10 >= 5); }

void cl_glue_splits_free(cl_glue_splits *s) {
    if (!s) return;
    cl_dataset_free(&s->train);
    cl_dataset_free(&s->dev);
    cl_dataset_free(&s->test);
    s->skipped = 0;
}

/* The official dev file(s): MNLI matched ++ mismatched (origin 0 / 1), the others their dev.tsv. */
static int load_official_dev(const cl_glue_task *t, const char *dir, const cl_glue_read_opts *opts, cl_dataset *out,
                             cl_error *err) {
    int rc = cl_glue_load(t, dir, CL_SPLIT_DEV, opts, out, err);
    if (rc || !t->files[CL_SPLIT_DEV_MM]) return rc;
    cl_dataset mm, both;
    if ((rc = cl_glue_load(t, dir, CL_SPLIT_DEV_MM, opts, &mm, err))) { cl_dataset_free(out); return rc; }
    rc = cl_dataset_concat(out, &mm, &both, err);
    if (!rc) {
        snprintf(both.skip_msg, sizeof both.skip_msg, "%s", out->skip_msg[0] ? out->skip_msg : mm.skip_msg);
    }
    cl_dataset_free(out);
    cl_dataset_free(&mm);
    if (rc) return rc;
    *out = both;
    return 0;
}

int cl_glue_make_splits(const cl_glue_task *t, const char *dir, cl_protocol p, uint64_t seed,
                        const cl_glue_read_opts *opts, cl_glue_splits *out, cl_error *err) {
    memset(out, 0, sizeof *out);
    if (p != CL_PROTOCOL_PAPER && p != CL_PROTOCOL_GLUE)
        return cl_errf(err, CL_EINVAL, "unknown protocol %d", (int)p);
    cl_dataset full, official_dev;
    int rc = cl_glue_load(t, dir, CL_SPLIT_TRAIN, opts, &full, err);
    if (rc) return rc;
    if ((rc = load_official_dev(t, dir, opts, &official_dev, err))) { cl_dataset_free(&full); return rc; }
    out->skipped = full.skipped + official_dev.skipped;
    snprintf(out->skip_msg, sizeof out->skip_msg, "%s", full.skip_msg[0] ? full.skip_msg : official_dev.skip_msg);
    if (p == CL_PROTOCOL_GLUE) {
        out->train = full;
        out->dev = official_dev;
        return 0;
    }
    out->test = official_dev;
    char what[4200];
    snprintf(what, sizeof what, "%s/%s", dir, t->files[CL_SPLIT_TRAIN]);
    if ((rc = cl_paper_split(&full, seed, &out->train, &out->dev, what, err))) {
        cl_glue_splits_free(out);
        return rc;
    }
    return 0;
}

int cl_paper_split(cl_dataset *full, uint64_t seed, cl_dataset *train, cl_dataset *dev, const char *what,
                   cl_error *err) {
    memset(train, 0, sizeof *train);
    memset(dev, 0, sizeof *dev);
    size_t n = full->n, ndev = cl_paper_dev_size(n);
    if (ndev == 0 || ndev >= n) {
        cl_dataset_free(full);
        return cl_errf(err, CL_EFORMAT, "%s: %zu training rows are too few to hold out 10%% as dev", what, n);
    }
    cl_error e2 = {0};
    size_t *perm = cl_alloc(n, sizeof *perm, &e2);
    if (!perm) {
        cl_dataset_free(full);
        return cl_errf(err, CL_ENOMEM, "%s", e2.msg);
    }
    for (size_t i = 0; i < n; i++) perm[i] = i;
    cl_rng rng;
    cl_rng_seed(&rng, seed);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)cl_rng_below(&rng, (uint64_t)i + 1);
        size_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    int rc = cl_dataset_subset(full, perm, ndev, dev, err);
    if (!rc) rc = cl_dataset_subset(full, perm + ndev, n - ndev, train, err);
    cl_free(perm);
    cl_dataset_free(full);
    if (rc) cl_dataset_free(train), cl_dataset_free(dev);
    return rc;
}
