/* bf16 mode: packed bf16 weights and the AVX512_BF16 product (see gemm_bf16.h). */
#include "model/gemm_bf16.h"
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "core/util.h"
#include "model/ops.h"

/* Everything that executes AVX-512 instructions carries this attribute, so the file builds (and the fp32 path runs)
 * whatever -march says; cl_bf16_supported() guards every call. */
#ifndef CL_BF16_EMULATE
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#else
/* The tests' build (make builds build/emu/gemm_bf16.o with -DCL_BF16_EMULATE for build/tests/test_bf16_emu): the
 * three AVX512_BF16 instructions done with AVX-512F as the SDM defines them, so that bf16 mode's code (packing,
 * blocking, attention, softmax with MPNet's bias, dropout) runs and is checked on AVX-512 CPUs without them.
 * VCVTNE(2)PS2BF16: round to nearest even, denormal inputs to signed zero, NaN quietened. VDPBF16PS: per fp32 lane
 * acc += a[odd] b[odd], then acc += a[even] b[even], inputs and results with denormals flushed (DAZ, FTZ); a
 * product of two bf16 values is exact in fp32, so each step is one fused multiply-add. */
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
TGT static inline __m512i emu_bf16_of(__m512 x) { /* 16 floats -> their bf16 bits in the low half of each lane */
    const __m512i u = _mm512_castps_si512(x), expo = _mm512_set1_epi32(0x7f800000);
    const __mmask16 normal = _mm512_test_epi32_mask(u, expo);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), expo);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                     _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
    r = _mm512_srli_epi32(r, 16);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    return _mm512_mask_mov_epi32(_mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x8000)), normal, r);
}
TGT static inline __m512bh emu_cvtne2ps_pbh(__m512 hi, __m512 lo) {
    return (__m512bh)_mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(emu_bf16_of(lo))),
                                        _mm512_cvtepi32_epi16(emu_bf16_of(hi)), 1);
}
TGT static inline __m256bh emu_cvtneps_pbh(__m512 x) { return (__m256bh)_mm512_cvtepi32_epi16(emu_bf16_of(x)); }
TGT static inline __m512 emu_flush(__m512 x) { /* denormals to zero */
    return _mm512_maskz_mov_ps(_mm512_test_epi32_mask(_mm512_castps_si512(x), _mm512_set1_epi32(0x7f800000)), x);
}
TGT static inline __m512 emu_dpbf16_ps(__m512 acc, __m512bh a, __m512bh b) {
    const __m512i ai = (__m512i)a, bi = (__m512i)b, hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512 a1 = emu_flush(_mm512_castsi512_ps(_mm512_and_si512(ai, hi)));
    __m512 b1 = emu_flush(_mm512_castsi512_ps(_mm512_and_si512(bi, hi)));
    __m512 a0 = emu_flush(_mm512_castsi512_ps(_mm512_slli_epi32(ai, 16)));
    __m512 b0 = emu_flush(_mm512_castsi512_ps(_mm512_slli_epi32(bi, 16)));
    acc = emu_flush(_mm512_fmadd_ps(a1, b1, emu_flush(acc)));
    return emu_flush(_mm512_fmadd_ps(a0, b0, acc));
}
#define _mm512_cvtne2ps_pbh emu_cvtne2ps_pbh
#define _mm512_cvtneps_pbh emu_cvtneps_pbh
#define _mm512_dpbf16_ps emu_dpbf16_ps
#endif

/* Blocking of the weights' product. The micro-kernel computes MR rows x NR = 16 NV columns of out over KCP input
 * pairs at a time with MR * NV accumulators (8 x 48: 24 zmm + 3 weight vectors + a broadcast); a KCP x NR weight
 * sliver (128 x 48 x 4 = 24 KiB) stays in L1 while the micro-kernel walks MC rows of the converted input (256 x 128
 * x 4 = 128 KiB, in L2); threads (OpenMP, dynamic) take out tiles of MC rows x NCP panels, the k loop inside a
 * tile, so a result does not depend on the thread count. Measured on this Zen 5 (one thread, N = 2048 rows, the
 * MiniLM and roberta-base shapes): 190-212 GFLOPS against 100-106 for OpenBLAS SGEMM in the same process and
 * ~230 for a register-only VDPBF16PS loop; 12 x 32, 6 x 64, 14 x 32 blocks and KCP 64 / 192 measured within noise
 * or slower, and a transposing pack of the input as fast as broadcasting from its row-major copy (kept: simpler). */
#ifndef BF_MR
#define BF_MR 8
#endif
#ifndef BF_NV
#define BF_NV 3
#endif
#ifndef BF_KCP
#define BF_KCP 128
#endif
#ifndef BF_MC
#define BF_MC 256
#endif
#ifndef BF_NCP
#define BF_NCP 4
#endif
#define BF_NR (16 * BF_NV)

int cl_bf16_supported(void) {
    if (getenv("CONDLORA_NO_BF16")) return 0; /* tests: behave as on a CPU without AVX512_BF16 */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
#ifndef CL_BF16_EMULATE
           && __builtin_cpu_supports("avx512bf16")
#endif
        ;
}

/* fp32 -> bf16 bits exactly as VCVTNE2PS2BF16: round to nearest even, zero and denormal inputs give a signed zero,
 * NaN stays NaN (quietened), infinities stay. */
static inline uint16_t bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t ex = u & 0x7f800000u;
    if (ex == 0) return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    if (ex == 0x7f800000u) return (uint16_t)(u >> 16);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float cl_bf16_round(float x) {
    uint32_t u = (uint32_t)bf16_bits(x) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- weights ---------------------------------------------------------------------------------------------- */
/* input pairs of a packed weight and of a converted input row: ceil(C / 2) rounded up to 16 (AMX's tile depth),
 * the padding zero, so that every product is whole tiles; ROWS: the converted input's rows, N rounded up to 16 */
static inline size_t kpairs(int C) { return (((size_t)C + 1) / 2 + 15) & ~(size_t)15; }
#define ROWS 16
static inline size_t npanels(int OC) { return ((size_t)OC + BF_NR - 1) / BF_NR; }

size_t cl_bf16_pack_elems(int OC, int C) { return npanels(OC) * kpairs(C) * BF_NR * 2; }

void cl_bf16_pack(cl_bf16_w *dst, uint16_t *buf, const float *w, int rows, int cols, int transpose) {
    const int OC = transpose ? cols : rows, C = transpose ? rows : cols;
    const size_t KP = kpairs(C), np = npanels(OC);
    /* element (output j, input k) of the product's right operand */
    const size_t sj = transpose ? 1 : (size_t)cols, sk = transpose ? (size_t)cols : 1;
#pragma omp parallel for schedule(static)
    for (size_t jp = 0; jp < np; jp++) {
        uint16_t *pan = buf + jp * KP * BF_NR * 2;
        for (size_t p = 0; p < KP; p++) {
            uint16_t *d = pan + p * BF_NR * 2;
            for (int jj = 0; jj < BF_NR; jj++) {
                size_t j = jp * BF_NR + (size_t)jj, k = 2 * p;
                int in = j < (size_t)OC;
                d[2 * jj] = in && k < (size_t)C ? bf16_bits(w[j * sj + k * sk]) : 0;
                d[2 * jj + 1] = in && k + 1 < (size_t)C ? bf16_bits(w[j * sj + (k + 1) * sk]) : 0;
            }
        }
    }
    dst->data = buf;
    dst->OC = OC;
    dst->C = C;
}

/* ---- the product ------------------------------------------------------------------------------------------ */
size_t cl_bf16_ws_elems(int N, int C) { return (((size_t)N + ROWS - 1) / ROWS) * ROWS * kpairs(C); }

static inline __mmask16 tail_mask(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* inp (N, C) fp32 -> ws (N rounded up to ROWS rows, KP) uint32: row-major bf16 pairs, padding rows and pairs zero */
TGT static void convert_rows(uint32_t *ws, const float *inp, int N, int C) {
    const size_t KP = kpairs(C), KC = ((size_t)C + 1) / 2;
    const int Np = (N + ROWS - 1) / ROWS * ROWS;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < Np; r++) {
        uint32_t *d = ws + (size_t)r * KP;
        if (r >= N) {
            memset(d, 0, KP * sizeof(uint32_t));
            continue;
        }
        const float *x = inp + (size_t)r * C;
        for (int k = 0; k < C; k += 32) {
            const int rem = C - k;
            __m512 lo = _mm512_maskz_loadu_ps(tail_mask(rem), x + k);
            __m512 hi = _mm512_maskz_loadu_ps(tail_mask(rem - 16), x + k + 16);
            const int np2 = rem >= 32 ? 16 : (rem + 1) / 2;
            _mm512_mask_storeu_epi32(d + k / 2, tail_mask(np2), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
        if (KP > KC) memset(d + KC, 0, (KP - KC) * sizeof(uint32_t));
    }
}

/* out tile (m <= MR rows, n <= 16 NV columns, row stride ldc) [+]= a-sliver x b-sliver over kp input pairs:
 * the bf16 pair p of a's row i is a[AIDX] (packed panels or row-major with lda), b is kp x 16 NV pairs (64-byte
 * aligned). load: start from out (else 0); bias (16 NV) added when not NULL. Rows past m are computed (a must hold
 * MR readable rows) but not stored.
 * Defined as a macro so that the weights' 8 x 48 kernel and attention's 12 x 32 one share the code with their
 * sizes as constants (the accumulators must stay in registers). */
#define DEFINE_UKERNEL(NAME, MR, NV, AIDX)                                                                        \
    TGT static inline __attribute__((always_inline)) void NAME(int kp, const uint32_t *restrict a, size_t lda,  \
                                                               const uint16_t *restrict b, float *restrict c,   \
                                                               size_t ldc, int m, int n, int load,              \
                                                               const float *bias) {                             \
        __m512 acc[MR][NV];                                                                                     \
        __mmask16 mk[NV];                                                                                       \
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) mk[v] = tail_mask(n - 16 * v);                    \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                                  \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[i][v] =                                   \
                load && i < m ? _mm512_maskz_loadu_ps(mk[v], c + (size_t)i * ldc + 16 * v) : _mm512_setzero_ps(); \
        if (bias) {                                                                                             \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) {                                             \
                __m512 bv = _mm512_maskz_loadu_ps(mk[v], bias + 16 * v);                                        \
                _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) acc[i][v] = _mm512_add_ps(acc[i][v], bv); \
            }                                                                                                   \
        }                                                                                                       \
        for (int p = 0; p < kp; p++) {                                                                          \
            __m512i bv[NV];                                                                                     \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) bv[v] =                                       \
                _mm512_load_si512((const void *)(b + (size_t)p * NV * 32 + 32 * v));                            \
            _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                                            \
                __m512i av = _mm512_set1_epi32((int)a[AIDX]);                                                   \
                _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[i][v] =                               \
                    _mm512_dpbf16_ps(acc[i][v], (__m512bh)av, (__m512bh)bv[v]);                                 \
            }                                                                                                   \
        }                                                                                                       \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) if (i < m)                                       \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)                                               \
                _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16 * v, mk[v], acc[i][v]);                          \
    }
/* the weights' kernel: a row-major, pair p of row i at a[i * lda + p] (broadcast straight from the converted input,
 * no transposing pack: measured as fast as a packed a) */
DEFINE_UKERNEL(ukernel, BF_MR, BF_NV, (size_t)i * lda + p)

/* attention's products: K and N are a head size (32, 64) or a sequence length, a 12 x 32 block wastes less */
#define AT_MR 12
#define AT_NV 2
#define AT_NR (16 * AT_NV)
DEFINE_UKERNEL(ukernel_at, AT_MR, AT_NV, (size_t)p * AT_MR + i)      /* a packed in panels of AT_MR rows */
DEFINE_UKERNEL(ukernel_at_rm, AT_MR, AT_NV, (size_t)i * lda + p)     /* a row-major */

/* Packs x (nrows x K, fp32) into panels of W rows: dst[panel][p][W] = the bf16 pair (x(r, 2p), x(r, 2p + 1)) as
 * one uint32 (low half first), zeros past nrows and K. colwise = 0: x(r, k) = src[r * ld + k] (pairs are adjacent
 * in memory); 1: x(r, k) = src[k * ld + r] (rows are). W <= 32. Single-threaded. */
TGT static void pack_pairs(uint32_t *dst, const float *src, int nrows, int K, size_t ld, int W, int colwise) {
    const int KP = (K + 1) / 2, np = (nrows + W - 1) / W;
    for (int ip = 0; ip < np; ip++) {
        uint32_t *pan = dst + (size_t)ip * KP * W;
        const int r0 = ip * W, nr = nrows - r0 < W ? nrows - r0 : W;
        if (!colwise) {
            uint32_t tmp[16] __attribute__((aligned(64)));
            for (int i = 0; i < W; i++) {
                if (i >= nr) {
                    for (int p = 0; p < KP; p++) pan[(size_t)p * W + i] = 0;
                    continue;
                }
                const float *x = src + (size_t)(r0 + i) * ld;
                for (int k = 0; k < K; k += 32) {
                    const int rem = K - k;
                    __m512 lo = _mm512_maskz_loadu_ps(tail_mask(rem), x + k);
                    __m512 hi = _mm512_maskz_loadu_ps(tail_mask(rem - 16), x + k + 16);
                    _mm512_store_si512((void *)tmp, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
                    const int np2 = rem >= 32 ? 16 : (rem + 1) / 2;
                    uint32_t *d = pan + (size_t)(k / 2) * W + i;
                    for (int q = 0; q < np2; q++) d[(size_t)q * W] = tmp[q];
                }
            }
        } else {
            for (int p = 0; p < KP; p++) {
                const float *x0 = src + (size_t)(2 * p) * ld + r0, *x1 = x0 + ld;
                const int has1 = 2 * p + 1 < K;
                for (int i = 0; i < W; i += 16) {
                    const __mmask16 in = tail_mask(nr - i), st = tail_mask(W - i);
                    __m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(in, x0 + i));
                    __m256i hi = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(has1 ? in : 0, has1 ? x1 + i : x0));
                    __m512i pr = _mm512_or_si512(_mm512_cvtepu16_epi32(lo),
                                                 _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
                    _mm512_mask_storeu_epi32(pan + (size_t)p * W + i, st, pr);
                }
            }
        }
    }
}

/* uint32 values pack_pairs writes for nrows x K in panels of W */
static inline size_t pairs_elems(int nrows, int K, int W) { return (size_t)((nrows + W - 1) / W) * W * ((K + 1) / 2); }

/* c (M x N, row stride ldc) [+]= A B, M x K times K x N, B packed (as N rows x K) in panels of AT_NR and A either
 * row-major (rm: conv_rows, M rounded up to AT_MR rows) or packed in panels of AT_MR rows. Single-threaded
 * (attention runs one head per thread). */
TGT static void small_gemm(float *c, size_t ldc, const uint32_t *ap, int rm, const uint32_t *bp, int M, int N, int K,
                           int load) {
    const int KP = (K + 1) / 2;
    for (int j0 = 0; j0 < N; j0 += AT_NR) {
        const uint16_t *b = (const uint16_t *)(bp + (size_t)(j0 / AT_NR) * KP * AT_NR);
        const int n = N - j0 < AT_NR ? N - j0 : AT_NR;
        for (int i0 = 0; i0 < M; i0 += AT_MR) {
            const int m = M - i0 < AT_MR ? M - i0 : AT_MR;
            float *ct = c + (size_t)i0 * ldc + j0;
            if (rm) ukernel_at_rm(KP, ap + (size_t)i0 * KP, (size_t)KP, b, ct, ldc, m, n, load, NULL);
            else ukernel_at(KP, ap + (size_t)(i0 / AT_MR) * KP * AT_MR, 0, b, ct, ldc, m, n, load, NULL);
        }
    }
}

/* x (nrows x K, row stride ld) -> dst row-major bf16 pairs ((K + 1) / 2 per row), rows up to a multiple of AT_MR
 * zero. Single-threaded. */
TGT static void conv_rows(uint32_t *dst, const float *src, int nrows, int K, size_t ld) {
    const int KP = (K + 1) / 2, np = (nrows + AT_MR - 1) / AT_MR * AT_MR;
    for (int r = 0; r < np; r++) {
        uint32_t *d = dst + (size_t)r * KP;
        if (r >= nrows) {
            memset(d, 0, (size_t)KP * sizeof(uint32_t));
            continue;
        }
        const float *x = src + (size_t)r * ld;
        for (int k = 0; k < K; k += 32) {
            const int rem = K - k;
            __m512 lo = _mm512_maskz_loadu_ps(tail_mask(rem), x + k);
            __m512 hi = _mm512_maskz_loadu_ps(tail_mask(rem - 16), x + k + 16);
            const int np2 = rem >= 32 ? 16 : (rem + 1) / 2;
            _mm512_mask_storeu_epi32(d + k / 2, tail_mask(np2), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

/* ---- AMX (Intel's tile unit: AMX-TILE + AMX-BF16, Sapphire Rapids and later) --------------------------------
 * TDPBF16PS multiplies a 16-row x 16-pair tile of bf16 by a 16-pair x 16-column tile in the pair-interleaved
 * ("VNNI") layout and accumulates into a 16 x 16 fp32 tile: exactly the layouts above. A converted input row holds
 * its pairs contiguously (an A tile is 16 rows of 16 pairs, row stride KP * 4 bytes), and a weight panel holds for
 * each input pair its 48 outputs' pairs (a B tile is 16 pairs of 16 outputs at 32-value offsets, row stride 192
 * bytes). So a 16 x 48 block of out takes one A tile and three B tiles per 16 pairs, into three C tiles. The result
 * is again the dot product of the rounded operands in fp32 (a different order of the fp32 additions than
 * VDPBF16PS). When the tiles are there, every block of every product runs on them (pairs are padded to 16 with
 * zeros, blocks past N rows or OC columns go through a scratch), so that a row's result never depends on where it
 * sits in a batch: a data-parallel shard computes its rows exactly as the whole batch does. Measured on a 2-core
 * Xeon with AMX (one thread, roberta-base, LoRA training, b16 x s128): 2.40 CPU-s a step against 8.23 with
 * AVX512_BF16 alone. Linux hands the tile state out per process on request (arch_prctl ARCH_REQ_XCOMP_PERM);
 * CONDLORA_NO_AMX=1 keeps to AVX-512. */
#ifndef CL_BF16_EMULATE
#define TGT_AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16")))
static int amx_state = -1; /* -1 unknown, 0 no, 1 yes */
static int amx_usable(void) {
    if (amx_state >= 0) return amx_state;
    int ok = 0;
    if (!getenv("CONDLORA_NO_AMX")) {
        __builtin_cpu_init();
        unsigned a, b, c, d;
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
        int has = ((d >> 22) & 1) && ((d >> 24) & 1); /* AMX-BF16, AMX-TILE */
        /* the kernel must grant this process the tile data state (XFEATURE_XTILEDATA = 18) */
        ok = has && syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18) == 0;
    }
    __atomic_store_n(&amx_state, ok, __ATOMIC_RELEASE);
    return ok;
}
int cl_bf16_amx(void) { return amx_usable(); }

/* tiles 0-2: C (16 x 16 fp32), 3: A (16 rows x 16 pairs), 4-6: B (16 pairs x 16 columns); 64 bytes a row */
/* A constant, not stores into a stack buffer: GCC 12 does not see LDTILECFG read its operand, and where it did not
 * inline this function it dropped the stores (the tiles then took whatever the stack held: a #GP). */
static const unsigned char amx_cfg[64] __attribute__((aligned(64))) = {
    [0] = 1, /* palette 1 */
    [16] = 64, [18] = 64, [20] = 64, [22] = 64, [24] = 64, [26] = 64, [28] = 64, /* bytes per row, tiles 0-6 */
    [48] = 16, [49] = 16, [50] = 16, [51] = 16, [52] = 16, [53] = 16, [54] = 16, /* rows */
};
TGT_AMX static void amx_config(void) { _tile_loadconfig(amx_cfg); }

/* out (16 x 48 block, row stride ldc) [+]= a (16 rows of kp pairs, stride lda) x b (a panel's kp x 48 pairs), kp a
 * multiple of 16. load = 0: start from bias (48) or zero; 1: from out, plus bias when not NULL. */
TGT_AMX static void amx_block(int kp, const uint32_t *a, size_t lda, const uint16_t *b, float *c, size_t ldc, int load,
                              const float *bias) {
    if (!load || bias) {
        for (int i = 0; i < 16; i++)
            for (int v = 0; v < 3; v++) {
                float *o = c + (size_t)i * ldc + 16 * v;
                __m512 x = load ? _mm512_loadu_ps(o) : _mm512_setzero_ps();
                if (bias) x = _mm512_add_ps(x, _mm512_loadu_ps(bias + 16 * v));
                _mm512_storeu_ps(o, x);
            }
    }
    const size_t sc = ldc * sizeof(float), sa = lda * sizeof(uint32_t), sb = (size_t)BF_NR * 2 * sizeof(uint16_t);
    _tile_loadd(0, c, sc);
    _tile_loadd(1, c + 16, sc);
    _tile_loadd(2, c + 32, sc);
    for (int q = 0; q < kp; q += 16) {
        const uint16_t *bq = b + (size_t)q * BF_NR * 2;
        _tile_loadd(3, a + q, sa);
        _tile_loadd(4, bq, sb);
        _tile_loadd(5, bq + 32, sb);
        _tile_loadd(6, bq + 64, sb);
        _tile_dpbf16ps(0, 3, 4);
        _tile_dpbf16ps(1, 3, 5);
        _tile_dpbf16ps(2, 3, 6);
    }
    _tile_stored(0, c, sc);
    _tile_stored(1, c + 16, sc);
    _tile_stored(2, c + 32, sc);
}
#else
int cl_bf16_amx(void) { return 0; }
#endif

TGT static void gemm_tiles(float *out, const uint32_t *ws, const cl_bf16_w *w, const float *bias, int N,
                           int accumulate) {
    const int OC = w->OC;
    const size_t KP = kpairs(w->C);
    const int npb = (int)npanels(OC), npa = (N + BF_MR - 1) / BF_MR;
    const int mcp = BF_MC / BF_MR; /* row panels per tile */
    const int nrb = (npa + mcp - 1) / mcp, ncb = (npb + BF_NCP - 1) / BF_NCP;
#ifndef CL_BF16_EMULATE
    const int amx = amx_usable();
#else
    const int amx = 0;
    (void)amx;
#endif
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (nrb * ncb > 1)
    for (int rb = 0; rb < nrb; rb++)
        for (int cb = 0; cb < ncb; cb++) {
#ifndef CL_BF16_EMULATE
            if (amx) amx_config(); /* per thread; cheap next to a tile of out */
#endif
            const int ip1 = (rb + 1) * mcp < npa ? (rb + 1) * mcp : npa;
            const int jp1 = (cb + 1) * BF_NCP < npb ? (cb + 1) * BF_NCP : npb;
            for (size_t p0 = 0; p0 < KP; p0 += BF_KCP) {
                const int kp = (int)(KP - p0 < BF_KCP ? KP - p0 : BF_KCP);
                const int load = p0 > 0 || accumulate;
                for (int jp = cb * BF_NCP; jp < jp1; jp++) {
                    const uint16_t *bs = w->data + ((size_t)jp * KP + p0) * BF_NR * 2;
                    const int j0 = jp * BF_NR, n = OC - j0 < BF_NR ? OC - j0 : BF_NR;
                    const float *bb = bias && p0 == 0 ? bias + j0 : NULL;
                    for (int ip = rb * mcp; ip < ip1; ip++) {
                        const int i0 = ip * BF_MR, m = N - i0 < BF_MR ? N - i0 : BF_MR;
#ifndef CL_BF16_EMULATE
                        /* AMX: every row of the product on the tiles, 16 rows (two 8-row panels) at a time, so that
                         * a row's result does not depend on where it sits in the batch; a block past N rows or OC
                         * columns goes through a 16 x 48 scratch */
                        if (amx) {
                            if ((ip - rb * mcp) % 2) continue;
                            float *c = out + (size_t)i0 * OC + j0;
                            const int mm = N - i0 < 16 ? N - i0 : 16;
                            if (mm == 16 && n == BF_NR) {
                                amx_block(kp, ws + (size_t)i0 * KP + p0, KP, bs, c, (size_t)OC, load, bb);
                                continue;
                            }
                            float t[16 * BF_NR] __attribute__((aligned(64)));
                            for (int i = 0; i < 16; i++)
                                for (int j = 0; j < BF_NR; j++)
                                    t[i * BF_NR + j] = i < mm && j < n ? (load ? c[(size_t)i * OC + j] : 0.0f) +
                                                                             (bb ? bb[j] : 0.0f)
                                                                       : 0.0f;
                            amx_block(kp, ws + (size_t)i0 * KP + p0, KP, bs, t, BF_NR, 1, NULL);
                            for (int i = 0; i < mm; i++) memcpy(c + (size_t)i * OC, t + i * BF_NR, (size_t)n * 4);
                            continue;
                        }
#endif
                        ukernel(kp, ws + (size_t)i0 * KP + p0, KP, bs, out + (size_t)i0 * OC + j0, (size_t)OC, m, n,
                                load, bb);
                    }
                }
            }
        }
}

TGT void cl_bf16_gemm(float *out, const float *inp, const cl_bf16_w *w, const float *bias, int N, int accumulate,
                  uint32_t *ws) {
    if (N <= 0 || w->OC <= 0) return;
    convert_rows(ws, inp, N, w->C);
    gemm_tiles(out, ws, w, bias, N, accumulate);
}

/* ---- a model in bf16 mode --------------------------------------------------------------------------------- */
typedef struct {
    uint16_t *buf;  /* every packed matrix */
    size_t bytes;
    cl_bf16_w *mats; /* num_layers x CL_MOD_COUNT x (forward, transposed) */
} bf16_store;

/* Gives the whole pages inside [p, p + bytes) back to the system (the caller forgets the pointer). Anonymous
 * memory reads back as zeros afterwards, a private file mapping as the file: either way nobody may read it. */
static void release_pages(void *p, size_t bytes) {
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), b = ((uintptr_t)p + bytes) & ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* values a packed (OC, C) weight occupies in the store, rounded up to keep every matrix 64-byte aligned */
static size_t pack_span(int OC, int C) { return (cl_bf16_pack_elems(OC, C) + 31) & ~(size_t)31; }

int cl_bf16_keep_adapted(void *hook, int layer, cl_module m) {
    const cl_lin_hook *h = hook;
    return h && h->adapted && h->adapted(h->ctx, layer, m);
}

int cl_model_to_bf16(cl_weights *m, const cl_bf16_opts *o, cl_error *err) {
    static const cl_bf16_opts dflt = {0};
    if (!o) o = &dflt;
    if (m->bf16) return cl_errf(err, CL_EINVAL, "bf16: the model is already converted");
    if (!cl_bf16_supported())
        return cl_errf(err, CL_EUNSUP, "--precision bf16 needs a CPU with AVX512_BF16 (and AVX512F/BW/VL/DQ); this one "
                                       "lacks it: use --precision fp32");
    const int NL = m->cfg.num_layers;
    size_t tot = 0;
    for (int l = 0; l < NL; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++) {
            const cl_linear *lin = &m->layers[l].lin[k];
            if (!lin->w) return cl_errf(err, CL_EMISSING, "bf16: layer %d %s has no weight", l, cl_module_names[k]);
            tot += pack_span(lin->d_out, lin->d_in) + (o->backward ? pack_span(lin->d_in, lin->d_out) : 0);
        }
    bf16_store *s = calloc(1, sizeof *s);
    if (!s) return cl_errf(err, CL_ENOMEM, "bf16: out of memory");
    s->mats = calloc((size_t)NL * CL_MOD_COUNT * 2, sizeof *s->mats);
    s->buf = tot ? cl_alloc(tot, sizeof(uint16_t), err) : NULL;
    if (!s->mats || (tot && !s->buf)) {
        free(s->mats);
        cl_free(s->buf);
        free(s);
        return cl_errf(err, CL_ENOMEM, "bf16: out of memory for %.1f MiB of packed weights",
                       tot * 2.0 / 1048576.0);
    }
    s->bytes = tot * sizeof(uint16_t);
    uint16_t *q = s->buf;
    for (int l = 0; l < NL; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++) {
            cl_linear *lin = &m->layers[l].lin[k];
            cl_bf16_w *mw = &s->mats[((size_t)l * CL_MOD_COUNT + k) * 2];
            cl_bf16_pack(&mw[0], q, lin->w, lin->d_out, lin->d_in, 0);
            m->layers[l].w16[k] = &mw[0];
            q += pack_span(lin->d_out, lin->d_in);
            if (o->backward) { /* W^T: d_in outputs, d_out inputs */
                cl_bf16_pack(&mw[1], q, lin->w, lin->d_out, lin->d_in, 1);
                m->layers[l].w16t[k] = &mw[1];
                q += pack_span(lin->d_in, lin->d_out);
            }
            /* one matrix at a time, so that the fp32 and bf16 copies are never all resident together */
            if (!o->keep_all && !(o->keep && o->keep(o->keep_ctx, l, (cl_module)k))) {
                release_pages(lin->w, (size_t)lin->d_out * lin->d_in * sizeof(float));
                lin->w = NULL;
            }
        }
    m->bf16 = s;
    return 0;
}

void cl_model_bf16_free(cl_weights *m) {
    bf16_store *s = m ? m->bf16 : NULL;
    if (!s) return;
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++) m->layers[l].w16[k] = m->layers[l].w16t[k] = NULL;
    cl_free(s->buf);
    free(s->mats);
    free(s);
    m->bf16 = NULL;
}

size_t cl_model_bf16_bytes(const cl_weights *m) {
    const bf16_store *s = m ? m->bf16 : NULL;
    return s ? s->bytes : 0;
}

int cl_precision_parse(const char *s, int *bf16, cl_error *err) {
    if (s && !strcmp(s, "fp32")) *bf16 = 0;
    else if (s && !strcmp(s, "bf16")) *bf16 = 1;
    else return cl_errf(err, CL_EUSAGE, "option --precision: '%s' is not fp32 or bf16", s ? s : "");
    return 0;
}

/* ---- attention in bf16 mode ------------------------------------------------------------------------------- */
/* cl_attention_forward / _backward's computation (the same dropout masks) with the batched products in bf16 (the
 * 12 x 32 kernel on operands packed per head) and the element-wise work vectorised: the mask's hashes 8 at a time,
 * softmax and its backward 16 lanes at a time. */
TGT extern __m512 _ZGVeN16v_expf(__m512); /* libmvec's 16-lane expf (the Makefile links -lmvec), as ops.c's softmax */

TGT static inline __m512i vmix64(__m512i z) {
    z = _mm512_add_epi64(z, _mm512_set1_epi64((long long)0x9e3779b97f4a7c15ULL));
    const __m512i c1 = _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ULL);
    const __m512i c2 = _mm512_set1_epi64((long long)0x94d049bb133111ebULL);
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), c1);
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), c2);
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

/* The 16-bit uniforms of dropout elements e0 .. e0 + 63: element e's is field (e & 3) of mix64(key + (e >> 2)) (as
 * ops.c's drop_keep), i.e. the hashes of e0 >> 2, e0 >> 2 + 1, .. laid end to end as 16-bit words. h: 24 words. */
TGT static inline const uint16_t *drop_u16(uint64_t *h, uint64_t key, uint64_t e0) {
    const uint64_t a = e0 >> 2;
    const __m512i step = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    for (int q = 0; q < 24; q += 8)
        _mm512_storeu_si512(h + q, vmix64(_mm512_add_epi64(_mm512_set1_epi64((long long)(key + a + (uint64_t)q)),
                                                           step)));
    return (const uint16_t *)h + (e0 - 4 * a);
}

/* y[j] = keep_j ? x[j] * s : 0 for the n elements of dropout element e0.. (in place allowed) */
TGT static void drop_row(float *y, const float *x, int n, uint64_t key, uint32_t thr, float s, uint64_t e0) {
    uint64_t h[24];
    const __m256i tv = _mm256_set1_epi16((short)(uint16_t)(thr > 65535 ? 65535 : thr));
    const __m512 sv = _mm512_set1_ps(s);
    for (int j0 = 0; j0 < n; j0 += 64) {
        const uint16_t *u = drop_u16(h, key, e0 + (uint64_t)j0);
        for (int j = j0; j < n && j < j0 + 64; j += 16) {
            __mmask16 in = tail_mask(n - j);
            __mmask16 keep = _mm256_mask_cmpge_epu16_mask(in, _mm256_loadu_si256((const void *)(u + (j - j0))), tv);
            _mm512_mask_storeu_ps(y + j, in, _mm512_maskz_mul_ps(keep, _mm512_maskz_loadu_ps(in, x + j), sv));
        }
    }
}

/* uint32 values of the larger of attention's two packed operands: every product has M, N in {T, L <= T, HS} and
 * K in the same set */
static size_t at_pack_elems(int T, int HS) {
    const int n = T > HS ? T : HS;
    size_t a = pairs_elems(n, n, AT_MR), b = pairs_elems(n, n, AT_NR);
    return a > b ? a : b;
}

static inline size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t cl_bf16_attention_scratch(int T, int HS) {
    return round16(2 * (size_t)T * T) + 2 * round16(at_pack_elems(T, HS));
}

TGT static inline float hmax(__m512 v) { return _mm512_reduce_max_ps(v); }
TGT static inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

/* row (T) = softmax(scale * row[0..L) + bias[0..L)), zeros after (bias NULL: none) */
TGT static void softmax_row(float *row, const float *bias, int L, int T, float scale) {
    const __m512 sc = _mm512_set1_ps(scale);
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < L; j += 16) {
        __mmask16 in = tail_mask(L - j);
        __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(in, row + j), sc);
        if (bias) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(in, bias + j));
        _mm512_mask_storeu_ps(row + j, in, x);
        mx = _mm512_mask_max_ps(mx, in, mx, x);
    }
    const __m512 m = _mm512_set1_ps(hmax(mx));
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < L; j += 16) {
        __mmask16 in = tail_mask(L - j);
        __m512 e = _mm512_maskz_mov_ps(in, _ZGVeN16v_expf(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, row + j), m)));
        _mm512_mask_storeu_ps(row + j, in, e);
        sum = _mm512_add_ps(sum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / hsum(sum));
    for (int j = 0; j < L; j += 16) {
        __mmask16 in = tail_mask(L - j);
        _mm512_mask_storeu_ps(row + j, in, _mm512_mul_ps(_mm512_maskz_loadu_ps(in, row + j), inv));
    }
    if (T > L) memset(row + L, 0, (size_t)(T - L) * sizeof(float));
}

TGT void cl_bf16_attention_forward(float *out, float *att, float *scratch, const float *q, const float *k,
                               const float *v, const float *relb, const int32_t *len, int B, int T, int NH, int HS,
                               const cl_dropout *drop, int nthreads) {
    const int C = NH * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    const cl_dropout_plan dp = cl_dropout_plan_of(drop);
    const size_t stride = cl_bf16_attention_scratch(T, HS), pk = round16(at_pack_elems(T, HS));
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH, L = len[b];
        float *tmp = scratch + (size_t)omp_get_thread_num() * stride;
        uint32_t *pa = (uint32_t *)(tmp + round16(2 * (size_t)T * T)), *pb = pa + pk;
        float *P = att ? att + (size_t)bh * T * T : tmp;
        const size_t off = (size_t)b * T * C + (size_t)h * HS;
        /* S (T, L) = q_bh k_bh^T; the scale goes in with the softmax */
        conv_rows(pa, q + off, T, HS, C);
        pack_pairs(pb, k + off, L, HS, C, AT_NR, 0);
        small_gemm(P, T, pa, 1, pb, T, L, HS, 0);
        for (int i = 0; i < T; i++)
            softmax_row(P + (size_t)i * T, relb ? relb + (size_t)h * (2 * T - 1) + (T - 1 - i) : NULL, L, T, scale);
        const float *Pd = P;
        if (dp.on) {
            float *D = P == tmp ? P : tmp; /* inference: drop in place; training: keep att pre-dropout */
            const uint64_t base = (uint64_t)bh * T * T;
            for (int i = 0; i < T; i++)
                drop_row(D + (size_t)i * T, P + (size_t)i * T, L, dp.key, dp.thr, dp.scale, base + (uint64_t)i * T);
            Pd = D;
        }
        /* out_bh (T, HS) = Pd (T, L) v_bh (L, HS) */
        conv_rows(pa, Pd, T, L, T);
        pack_pairs(pb, v + off, HS, L, C, AT_NR, 1);
        small_gemm(out + off, C, pa, 1, pb, T, HS, L, 0);
    }
}

TGT void cl_bf16_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *q,
                                const float *k, const float *v, const float *att, const int32_t *len, int B, int T,
                                int NH, int HS, const cl_dropout *drop, int nthreads) {
    const int C = NH * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    const cl_dropout_plan dp = cl_dropout_plan_of(drop);
    const size_t stride = cl_bf16_attention_scratch(T, HS), pk = round16(at_pack_elems(T, HS));
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH, L = len[b];
        float *dP = scratch + (size_t)omp_get_thread_num() * stride;
        uint32_t *pa = (uint32_t *)(dP + round16(2 * (size_t)T * T)), *pb = pa + pk;
        float *Pd = dP + (size_t)T * T;
        const float *P = att + (size_t)bh * T * T;
        const size_t off = (size_t)b * T * C + (size_t)h * HS;
        const uint64_t base = (uint64_t)bh * T * T;
        if (dp.on)
            for (int i = 0; i < T; i++)
                drop_row(Pd + (size_t)i * T, P + (size_t)i * T, L, dp.key, dp.thr, dp.scale, base + (uint64_t)i * T);
        /* dPd (T, L) = dout_bh (T, HS) v_bh^T ; dv_bh (L, HS) += Pd^T dout_bh */
        conv_rows(pa, dout + off, T, HS, C);
        pack_pairs(pb, v + off, L, HS, C, AT_NR, 0);
        small_gemm(dP, T, pa, 1, pb, T, L, HS, 0);
        pack_pairs(pa, dp.on ? Pd : P, L, T, T, AT_MR, 1);
        pack_pairs(pb, dout + off, HS, T, C, AT_NR, 1);
        small_gemm(dv + off, C, pa, 0, pb, L, HS, T, 1);
        /* through dropout and softmax: dS = P * (dP - sum_j P dP) * scale */
        const __m512 sc = _mm512_set1_ps(scale);
        for (int i = 0; i < T; i++) {
            float *g = dP + (size_t)i * T;
            const float *p = P + (size_t)i * T;
            if (dp.on) drop_row(g, g, L, dp.key, dp.thr, dp.scale, base + (uint64_t)i * T);
            __m512 acc = _mm512_setzero_ps();
            for (int j = 0; j < L; j += 16) {
                __mmask16 in = tail_mask(L - j);
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(in, p + j), _mm512_maskz_loadu_ps(in, g + j), acc);
            }
            const __m512 dot = _mm512_set1_ps(hsum(acc));
            for (int j = 0; j < L; j += 16) {
                __mmask16 in = tail_mask(L - j);
                __m512 pv = _mm512_maskz_loadu_ps(in, p + j), gv = _mm512_maskz_loadu_ps(in, g + j);
                _mm512_mask_storeu_ps(g + j, in, _mm512_mul_ps(_mm512_mul_ps(pv, _mm512_sub_ps(gv, dot)), sc));
            }
        }
        /* dq_bh (T, HS) += dS k_bh ; dk_bh (L, HS) += dS^T q_bh */
        conv_rows(pa, dP, T, L, T);
        pack_pairs(pb, k + off, HS, L, C, AT_NR, 1);
        small_gemm(dq + off, C, pa, 1, pb, T, HS, L, 1);
        pack_pairs(pa, dP, L, T, T, AT_MR, 1);
        pack_pairs(pb, q + off, HS, T, C, AT_NR, 1);
        small_gemm(dk + off, C, pa, 0, pb, L, HS, T, 1);
    }
}

/* ---- bf16 mode's element-wise ops ------------------------------------------------------------------------- */
/* cl_dropout_forward, cl_residual_layernorm_forward, cl_layernorm_backward (model/ops.h) vectorised: the same
 * masks; the layer-norm statistics in fp32 lanes instead of scalar double sums (bf16 mode only). */

/* y = a + b (n) */
TGT static void add_rows(float *y, const float *a, const float *b, int n) {
    for (int j = 0; j < n; j += 16) {
        __mmask16 in = tail_mask(n - j);
        __m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(in, a + j), _mm512_maskz_loadu_ps(in, b + j));
        _mm512_mask_storeu_ps(y + j, in, s);
    }
}

TGT void cl_bf16_layernorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                                    const float *mean, const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *g = dout + (size_t)n * C, *x = inp + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        const __m512 m = _mm512_set1_ps(mean[n]), s = _mm512_set1_ps(rstd[n]);
        __m512 a = _mm512_setzero_ps(), bs = _mm512_setzero_ps(); /* sum(dnorm), sum(dnorm * norm) */
        for (int j = 0; j < C; j += 16) {
            __mmask16 in = tail_mask(C - j);
            __m512 nrm = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, x + j), m), s);
            __m512 dn = _mm512_mul_ps(_mm512_maskz_loadu_ps(in, g + j), _mm512_maskz_loadu_ps(in, w + j));
            a = _mm512_add_ps(a, dn);
            bs = _mm512_fmadd_ps(dn, nrm, bs);
        }
        const __m512 am = _mm512_set1_ps(hsum(a) / (float)C), bm = _mm512_set1_ps(hsum(bs) / (float)C);
        for (int j = 0; j < C; j += 16) {
            __mmask16 in = tail_mask(C - j);
            __m512 nrm = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, x + j), m), s);
            __m512 dn = _mm512_mul_ps(_mm512_maskz_loadu_ps(in, g + j), _mm512_maskz_loadu_ps(in, w + j));
            __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(dn, am), _mm512_mul_ps(nrm, bm)), s);
            _mm512_mask_storeu_ps(dx + j, in, _mm512_add_ps(_mm512_maskz_loadu_ps(in, dx + j), t));
        }
    }
}

/* A stored layer's FFN pre-activation in bf16 (half the bytes of the largest saved activation). Forward: x += bias,
 * pre16 = bf16(x), out = act(x) from the fp32 x, row by row while the row is in cache. Backward: g *= act'(pre16
 * widened), chunk by chunk. */
TGT void cl_bf16_bias_act_store(float *out, uint16_t *pre16, float *x, const float *bias, int N, int C, cl_act act) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *xr = x + (size_t)n * C;
        uint16_t *pr = pre16 + (size_t)n * C;
        for (int i = 0; i < C; i += 16) {
            const __mmask16 m = tail_mask(C - i);
            __m512 v = _mm512_maskz_loadu_ps(m, xr + i);
            if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + i)), _mm512_mask_storeu_ps(xr + i, m, v);
            _mm256_mask_storeu_epi16(pr + i, m, (__m256i)_mm512_cvtneps_pbh(v));
        }
        cl_act_row(out + (size_t)n * C, xr, (size_t)C, act);
    }
}

#define WIDEN_CHUNK 4096
TGT void cl_bf16_act_grad_mul16(float *g, const uint16_t *pre16, size_t n, cl_act act) {
    const size_t nc = (n + WIDEN_CHUNK - 1) / WIDEN_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nc; c++) {
        const size_t a = c * WIDEN_CHUNK, len = n - a < WIDEN_CHUNK ? n - a : WIDEN_CHUNK;
        float x[WIDEN_CHUNK] __attribute__((aligned(64)));
        for (size_t i = 0; i < len; i += 16) {
            const __mmask16 m = tail_mask((int)(len - i));
            const __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, pre16 + a + i));
            _mm512_mask_storeu_ps(x + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
        }
        cl_act_grad_row(g + a, x, len, act);
    }
}

TGT void cl_bf16_dropout_forward(float *y, const float *x, size_t n, const cl_dropout *d) {
    if (!d || d->p <= 0.0f) {
        if (y != x) memcpy(y, x, n * sizeof(float));
        return;
    }
    const uint64_t key = cl_dropout_key(d);
    const uint32_t thr = cl_dropout_thr(d->p);
    const float s = d->p >= 1.0f ? 0.0f : 1.0f / (1.0f - d->p);
    const size_t chunk = 4096, nc = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nc; c++) {
        const size_t c0 = c * chunk, m = n - c0 < chunk ? n - c0 : chunk;
        drop_row(y + c0, x + c0, (int)m, key, thr, s, c0);
    }
}

TGT static void ln_row(float *o, float *mean, float *rstd, const float *x, const float *w, const float *b, int C,
                       float eps) {
    __m512 acc = _mm512_setzero_ps();
    for (int j = 0; j < C; j += 16) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(tail_mask(C - j), x + j));
    const float m = hsum(acc) / (float)C;
    const __m512 mv = _mm512_set1_ps(m);
    acc = _mm512_setzero_ps();
    for (int j = 0; j < C; j += 16) {
        __mmask16 in = tail_mask(C - j);
        __m512 d = _mm512_maskz_sub_ps(in, _mm512_maskz_loadu_ps(in, x + j), mv);
        acc = _mm512_fmadd_ps(d, d, acc);
    }
    const float rs = (float)(1.0 / sqrt((double)(hsum(acc) / (float)C) + (double)eps));
    const __m512 sv = _mm512_set1_ps(rs);
    for (int j = 0; j < C; j += 16) {
        __mmask16 in = tail_mask(C - j);
        __m512 xn = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, x + j), mv), sv);
        __m512 y = _mm512_fmadd_ps(xn, _mm512_maskz_loadu_ps(in, w + j), _mm512_maskz_loadu_ps(in, b + j));
        _mm512_mask_storeu_ps(o + j, in, y);
    }
    if (mean) *mean = m;
    if (rstd) *rstd = rs;
}

TGT void cl_bf16_residual_layernorm_forward(float *out, float *mean, float *rstd, float *inp, const float *resid,
                                        const float *x, const cl_dropout *drop, const float *w, const float *b,
                                        int N, int C, float eps) {
    const int dp = drop && drop->p > 0.0f;
    const uint64_t key = dp ? cl_dropout_key(drop) : 0;
    const uint32_t thr = dp ? cl_dropout_thr(drop->p) : 0;
    const float s = dp ? (drop->p >= 1.0f ? 0.0f : 1.0f / (1.0f - drop->p)) : 1.0f;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *in = inp + (size_t)n * C;
        const float *r = resid + (size_t)n * C, *xx = x + (size_t)n * C;
        if (dp) drop_row(in, xx, C, key, thr, s, (uint64_t)n * C);
        add_rows(in, dp ? in : xx, r, C);
        ln_row(out + (size_t)n * C, mean ? mean + n : NULL, rstd ? rstd + n : NULL, in, w, b, C, eps);
    }
}
