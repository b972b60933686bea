/* Small shared utilities: checked allocation, whole-file reads, crash-safe writes, timers, a seeded RNG. */
#ifndef CL_UTIL_H
#define CL_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "error.h"

/* 64-byte aligned allocation (free with cl_free); returns NULL and sets err on failure or size overflow. */
void *cl_alloc(size_t n, size_t size, cl_error *err);
void *cl_zalloc(size_t n, size_t size, cl_error *err);
void cl_free(void *p);

/* Reads a whole file into a NUL-terminated heap buffer (free()). */
int cl_read_file(const char *path, char **out, size_t *len, cl_error *err);

/* Crash-safe write: data goes to PATH.tmp.PID, is flushed and fsynced, then renamed over PATH and the directory
 * fsynced. On any failure (full disk, read-only directory, RLIMIT_FSIZE) the temporary is removed, PATH is left as
 * it was, and err names the file. cl_atomic_open/commit let a caller stream into the temporary file. */
typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4096];
} cl_atomic_file;
int cl_atomic_open(cl_atomic_file *af, const char *path, cl_error *err);
int cl_atomic_commit(cl_atomic_file *af, cl_error *err); /* closes; renames on success, removes tmp on failure */
void cl_atomic_abort(cl_atomic_file *af);
int cl_atomic_write(const char *path, const void *data, size_t len, cl_error *err);
int cl_fsync_dir(const char *dir_or_file_path);
int cl_mkdir_p(const char *path, cl_error *err);
/* Removes the tree at PATH (files, directories, symbolic links as links, never followed). */
int cl_remove_tree(const char *path, cl_error *err);
/* 1 when PATH is a directory holding at least one entry; 0 when empty; -1 when it does not exist (or is no dir) */
int cl_dir_nonempty(const char *path);
/* ABS: PATH made absolute (realpath when it exists, else cwd + "/" + PATH); REL: PATH relative to directory BASE
 * ("../data/glue"), both from absolute forms. Return 0, or -1 when a result does not fit. */
int cl_path_abs(const char *path, char *abs, size_t n);
int cl_path_relative(const char *base_dir, const char *path, char *rel, size_t n);
/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF): the byte offset of the first invalid sequence, or -1 */
long long cl_utf8_invalid_at(const void *s, size_t n);
/* 32 hex digits from the kernel's random source (a run's identity), or from time and pid where it is absent */
void cl_random_id(char out[33]);

double cl_now(void); /* monotonic seconds */

/* Thread counts for one call, restored after it: cl_threads_enter(n > 0) sets the calling thread's OpenMP count
 * (omp_set_num_threads: the nthreads ICV of this thread only) and OpenBLAS's (which its OpenMP build follows), after
 * saving both in *s; cl_threads_leave puts them back. n <= 0 changes nothing. The only place the library sets
 * them, so that a program embedding it keeps its own settings. */
typedef struct {
    int set, omp, blas;
} cl_threads_saved;
void cl_threads_enter(int n, cl_threads_saved *s);
void cl_threads_leave(cl_threads_saved *s);
long cl_peak_rss_kib(void);

/* xoshiro256** seeded by splitmix64: fast, reproducible across machines for the same seed. */
typedef struct { uint64_t s[4]; } cl_rng;
void cl_rng_seed(cl_rng *r, uint64_t seed);
uint64_t cl_rng_next(cl_rng *r);
double cl_rng_uniform(cl_rng *r);    /* [0, 1) with 53 random bits */
float cl_rng_uniformf(cl_rng *r);    /* [0, 1) with 24 random bits */
double cl_rng_normal(cl_rng *r);     /* N(0, 1), Box-Muller */
uint64_t cl_rng_below(cl_rng *r, uint64_t n); /* uniform in [0, n), unbiased */

/* Checked multiplication for sizes: returns 0 on overflow. */
static inline int cl_mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

#endif
