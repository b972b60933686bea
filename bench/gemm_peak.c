/* How close the GEMMs run to this core's limit (issue 21): the peak measured here with independent chains of
 * vfmadd231ps (fp32) and vdpbf16ps (bf16) on registers, then a linear layer's products at a training step's shapes
 * (N = batch x seq rows): condlora's bf16 kernel (cl_bf16_gemm, packed W) and OpenBLAS's sgemm (what condlora fp32
 * and PyTorch fp32 both call). One JSON line per measurement on stdout. Built and run by bench/bench_gemm.sh.
 * usage: gemm_peak [N] [threads] */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>
#include "core/util.h"
#include "model/gemm_bf16.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* 24 independent accumulators per thread (in registers: the loops are unrolled) hide a latency of up to 12 cycles at
 * 2 issues a cycle; 2 flops per lane (FMA) */
#define CHAINS 24
__attribute__((target("avx512f"))) static double peak_fma(long iters) {
    double t0 = now();
#pragma omp parallel
    {
        __m512 acc[CHAINS], a = _mm512_set1_ps(1.0f + 1e-7f), b = _mm512_set1_ps(0.999999f);
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
        for (long it = 0; it < iters; it++)
#pragma GCC unroll 24
            for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
        float s = 0;
        for (int i = 0; i < CHAINS; i++) s += _mm512_reduce_add_ps(acc[i]);
        if (s == 12345.678f) printf("#\n"); /* keeps the loop */
    }
    return (double)iters * CHAINS * 16 * 2 * omp_get_max_threads() / (now() - t0);
}

/* vdpbf16ps: per lane two bf16 products added to the fp32 accumulator, 4 flops per lane */
__attribute__((target("avx512f,avx512bf16"))) static double peak_dpbf16(long iters) {
    double t0 = now();
#pragma omp parallel
    {
        __m512 acc[CHAINS];
        const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
        const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(3e-3f), _mm512_set1_ps(1e-3f));
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
        for (long it = 0; it < iters; it++)
#pragma GCC unroll 24
            for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
        float s = 0;
        for (int i = 0; i < CHAINS; i++) s += _mm512_reduce_add_ps(acc[i]);
        if (s == 12345.678f) printf("#\n");
    }
    return (double)iters * CHAINS * 16 * 4 * omp_get_max_threads() / (now() - t0);
}

static float *randn(size_t n, unsigned seed) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
    if (!p) exit(1);
    srand(seed);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX - 0.5f;
    return p;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define REPS 7
int main(int argc, char **argv) {
    const int N = argc > 1 ? atoi(argv[1]) : 2048, th = argc > 2 ? atoi(argv[2]) : 1;
    if (N <= 0 || th <= 0) {
        fprintf(stderr, "usage: gemm_peak [N > 0] [threads > 0]\n");
        return 2;
    }
    omp_set_num_threads(th);
    const int bf16 = cl_bf16_supported();
    peak_fma(1000000); /* the first parallel region starts the threads: not timed */
    const double pf = peak_fma(20000000 / 8), pb = bf16 ? peak_dpbf16(20000000 / 8) : 0;
    printf("{\"what\":\"peak\",\"threads\":%d,\"fp32_fma_gflops\":%.1f,\"bf16_dpbf16_gflops\":%.1f}\n", th, pf / 1e9,
           pb / 1e9);
    /* a roberta-base layer's products: q/k/v/attention.output (768 -> 768), intermediate (768 -> 3072), output
     * (3072 -> 768) */
    const int shapes[][2] = {{768, 768}, {768, 3072}, {3072, 768}};
    for (int s = 0; s < 3; s++) {
        const int C = shapes[s][0], OC = shapes[s][1];
        float *x = randn((size_t)N * C, 1), *w = randn((size_t)OC * C, 2), *y = randn((size_t)N * OC, 3);
        const double flop = 2.0 * N * C * OC;
        double tf[REPS], tb[REPS];
        for (int r = 0; r < REPS; r++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, x, C, w, C, 0.0f, y, OC);
            tf[r] = now() - t0;
        }
        qsort(tf, REPS, sizeof(double), cmp);
        double gb = 0;
        if (bf16) {
            cl_bf16_w pw;
            uint16_t *buf = aligned_alloc(64, (cl_bf16_pack_elems(OC, C) * 2 + 63) & ~(size_t)63);
            uint32_t *ws = aligned_alloc(64, (cl_bf16_ws_elems(N, C) * 4 + 63) & ~(size_t)63);
            if (!buf || !ws) return 1;
            cl_bf16_pack(&pw, buf, w, OC, C, 0);
            for (int r = 0; r < REPS; r++) {
                double t0 = now();
                cl_bf16_gemm(y, x, &pw, NULL, N, 0, ws);
                tb[r] = now() - t0;
            }
            qsort(tb, REPS, sizeof(double), cmp);
            gb = flop / tb[REPS / 2];
            free(buf);
            free(ws);
        }
        const double gf = flop / tf[REPS / 2];
        printf("{\"what\":\"gemm\",\"threads\":%d,\"N\":%d,\"C\":%d,\"OC\":%d,\"openblas_sgemm_gflops\":%.1f,"
               "\"of_fp32_peak\":%.3f,\"cl_bf16_gemm_gflops\":%.1f,\"of_bf16_peak\":%.3f}\n",
               th, N, C, OC, gf / 1e9, gf / pf, gb / 1e9, pb > 0 ? gb / pb : 0.0);
        free(x);
        free(w);
        free(y);
    }
    return 0;
}
