/* bf16 mode (`--precision bf16`, src/model/gemm_bf16.h). Every test SKIPs on a CPU without AVX512_BF16.
 *   1. the software rounding (used to pack weights) equals the instruction that rounds activations, bit for bit;
 *   2. the kernel against a double-precision reference computed from the bf16-rounded inputs, for awkward shapes
 *      (1 row, 1 input, 1 output, sizes off the 8 x 48 register block and off the cache blocks) and the MiniLM /
 *      roberta-base shapes, forward and transposed packing, with and without bias, overwrite and accumulate; and
 *      bitwise the same result with 1 and 2 threads. Only the summation order differs from the reference (the
 *      products of two bf16 are exact in fp32), so the error is fp32 rounding of the sum: bounded here by 4e-6 x
 *      (sum of |terms|) -- a K-term sum's worst case is K x 2^-24 of it, a random-sign one ~ sqrt(K) x 2^-24;
 *   3. a tiny random BERT (sizes off every block) in bf16 against fp32: logits, loss and the LoRA / CondLoRA /
 *      head gradients (see the tolerance note there), with dropout on (same masks in both);
 *   4. a few AdamW steps in bf16 lower the loss; cl_model_to_bf16 releases the fp32 W except what CondLoRA
 *      keeps, and fails with a clear message on a CPU without AVX512_BF16 (simulated by CONDLORA_NO_BF16);
 *   5. `condlora train --precision bf16` end to end on a tiny model directory: it learns, run.json records the
 *      precision, `eval` reloads it in bf16 by default and the best dev metric is reproduced exactly. */
#include <omp.h>
#include <unistd.h>
#include "adapters/adapter.h"
#include "core/util.h"
#include "io/safetensors.h"
#include "model/encoder.h"
#include "model/gemm_bf16.h"
#include "model/ops.h"
#include "test.h"
#include "tiny_run.h"
#include "train/trainer.h"

static char ROOT[256], MODEL[300], GLUE[300];

static int have_bf16(void) {
    if (cl_bf16_supported()) return 1;
    SKIP("the CPU lacks AVX512_BF16");
    return 0;
}

/* ---- 1. rounding ------------------------------------------------------------------------------------------ */
TEST(rounding_matches_the_instruction) {
    if (!have_bf16()) return;
    /* out (n, 1) = [x_n, 0] . [1, 0]: the kernel rounds x with VCVTNE2PS2BF16, the weight 1 is exact */
    enum { n = 4096 };
    float *x = calloc(2 * n, sizeof(float)), *out = calloc(n, sizeof(float)), w[2] = {1.0f, 0.0f};
    cl_error e = {0};
    uint16_t *buf = cl_alloc(cl_bf16_pack_elems(1, 2), 2, &e);
    uint32_t *ws = cl_alloc(cl_bf16_ws_elems(n, 2), 4, &e);
    const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, 1.00390625f /* tie: 1 + 2^-8 -> even = 1 */,
                              1.01171875f /* tie 1 + 3 * 2^-8 -> 1 + 2^-6 */, 3.4028235e38f /* rounds to inf */,
                              1e-40f /* denormal -> 0 */, -1e-45f, 1.1754944e-38f /* smallest normal */, 65504.0f,
                              0.1f, -3.14159265f, 1e30f, -1e-30f};
    const int ns = (int)(sizeof specials / sizeof specials[0]);
    cl_rng r;
    cl_rng_seed(&r, 3);
    for (int i = 0; i < n; i++) {
        float v;
        if (i < ns) v = specials[i];
        else {
            uint32_t u = (uint32_t)cl_rng_next(&r);
            if ((u & 0x7f800000u) == 0x7f800000u) u &= 0xbfffffffu; /* no inf / NaN: the sum would be NaN */
            memcpy(&v, &u, 4);
        }
        x[2 * i] = v;
    }
    cl_bf16_w pw;
    cl_bf16_pack(&pw, buf, w, 1, 2, 0);
    cl_bf16_gemm(out, x, &pw, NULL, n, 0, ws);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        float want = cl_bf16_round(x[2 * i]);
        uint32_t a, b;
        memcpy(&a, &out[i], 4);
        memcpy(&b, &want, 4);
        if (a != b && !(want == 0.0f && out[i] == 0.0f)) {
            if (bad++ < 5) fprintf(stderr, "x %.9g (0x%08x): kernel %.9g, cl_bf16_round %.9g\n", x[2 * i],
                                   *(uint32_t *)&x[2 * i], out[i], want);
        }
    }
    CHECK(bad == 0, "%d of %d values round differently", bad, n);
    CHECK(cl_bf16_round(1.00390625f) == 1.0f && cl_bf16_round(1.01171875f) == 1.015625f, "ties to even");
    CHECK(cl_bf16_round(1e-40f) == 0.0f && isinf(cl_bf16_round(3.4028235e38f)) && isnan(cl_bf16_round(NAN)) &&
          cl_bf16_round(3.3895314e38f) == 3.3895314e38f, "denormal, overflow, NaN, the largest bf16");
    free(x), free(out), cl_free(buf), cl_free(ws);
}

/* ---- 2. the kernel ---------------------------------------------------------------------------------------- */
/* max over outputs of |out - ref| / (sum_k |x_k w_k| + |bias| + |out0|), ref in double from the rounded inputs;
 * *same_threads: 1 when 1 and 2 threads give the same bits */
static double kernel_err(int N, int C, int OC, int transpose, int accumulate, int with_bias, uint64_t seed,
                         int *same_threads) {
    cl_rng r;
    cl_rng_seed(&r, seed);
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)OC * 4), *o0 = malloc(no * 4);
    float *o1 = malloc(no * 4), *o2 = malloc(no * 4);
    for (size_t i = 0; i < nx; i++) x[i] = (float)cl_rng_normal(&r);
    for (size_t i = 0; i < nw; i++) w[i] = (float)(0.05 * cl_rng_normal(&r));
    for (int i = 0; i < OC; i++) b[i] = (float)cl_rng_normal(&r);
    for (size_t i = 0; i < no; i++) o0[i] = (float)cl_rng_normal(&r);
    cl_error e = {0};
    uint16_t *buf = cl_alloc(cl_bf16_pack_elems(OC, C), 2, &e);
    uint32_t *ws = cl_alloc(cl_bf16_ws_elems(N, C), 4, &e);
    cl_bf16_w pw;
    /* transpose: w is stored (C, OC) and the product is x w */
    cl_bf16_pack(&pw, buf, w, transpose ? C : OC, transpose ? OC : C, transpose);
    int nt = omp_get_max_threads();
    memcpy(o1, o0, no * 4);
    memcpy(o2, o0, no * 4);
    omp_set_num_threads(1);
    cl_bf16_gemm(o1, x, &pw, with_bias ? b : NULL, N, accumulate, ws);
    omp_set_num_threads(2);
    cl_bf16_gemm(o2, x, &pw, with_bias ? b : NULL, N, accumulate, ws);
    omp_set_num_threads(nt);
    *same_threads = memcmp(o1, o2, no * 4) == 0;
    double worst = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OC; j++) {
            double s = 0, a = 0;
            if (accumulate) s += o0[(size_t)n * OC + j], a += fabs(o0[(size_t)n * OC + j]);
            if (with_bias) s += b[j], a += fabs(b[j]);
            for (int k = 0; k < C; k++) {
                double wv = cl_bf16_round(transpose ? w[(size_t)k * OC + j] : w[(size_t)j * C + k]);
                double t = (double)cl_bf16_round(x[(size_t)n * C + k]) * wv;
                s += t, a += fabs(t);
            }
            double d = fabs(o1[(size_t)n * OC + j] - s) / (a > 0 ? a : 1.0);
            if (!(d <= worst)) worst = d; /* NaN propagates */
        }
    free(x), free(w), free(b), free(o0), free(o1), free(o2), cl_free(buf), cl_free(ws);
    return worst;
}

TEST(kernel_against_double_reference) {
    if (!have_bf16()) return;
    /* N, C, OC: one of everything, odd C, sizes off the 8-row / 48-column register block, more rows than a 256-row
     * tile, more inputs than a 256-input cache block, more outputs than a 4-panel column tile, the MiniLM and
     * roberta-base shapes */
    static const int shapes[][3] = {{1, 1, 1},     {1, 2, 1},      {1, 8, 1},      {3, 7, 5},       {9, 33, 49},
                                    {8, 48, 48},   {17, 96, 97},   {25, 130, 47},  {300, 100, 30},  {20, 300, 200},
                                    {7, 257, 250}, {1, 768, 768},  {64, 384, 384}, {40, 384, 1536}, {24, 1536, 384},
                                    {16, 768, 3072}, {9, 3072, 768}, {130, 768, 768}};
    const int ns = (int)(sizeof shapes / sizeof shapes[0]);
    double worst = 0;
    int all_same = 1;
    for (int s = 0; s < ns; s++)
        for (int v = 0; v < 4; v++) {
            int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2], same = 0;
            int transpose = v & 1, acc = (v >> 1) & 1, bias = (s + v) % 2;
            double err = kernel_err(N, C, OC, transpose, acc, bias, 100 + (uint64_t)s * 4 + v, &same);
            CHECK(err <= 4e-6, "N %d C %d OC %d transpose %d accumulate %d bias %d: relative error %.3g", N, C, OC,
                  transpose, acc, bias, err);
            CHECK(same, "N %d C %d OC %d: 1 and 2 threads differ", N, C, OC);
            all_same &= same;
            if (err > worst) worst = err;
        }
    if (getenv("CL_TEST_VERBOSE"))
        fprintf(stderr, "kernel: worst relative error %.3g (of the sum of |terms|), %s\n", worst,
                cl_bf16_amx() ? "every block on AMX tiles" : "AVX-512 only");
}

/* AMX is used wherever the CPU has it and the kernel grants it (this machine's flags say whether it should), and
 * the tile path gives the AVX-512 path's results up to the order of the fp32 additions */
TEST(amx_where_the_cpu_has_it) {
    if (!have_bf16()) return;
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    int flags = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            flags = strstr(line, " amx_tile") && strstr(line, " amx_bf16");
            break;
        }
    if (f) fclose(f);
#ifdef CL_BF16_EMULATE
    flags = 0; /* the emulated build has no tile path */
#endif
    if (getenv("CONDLORA_NO_AMX")) flags = 0;
    CHECK(cl_bf16_amx() == flags, "cl_bf16_amx() %d, the CPU flags (amx_tile, amx_bf16) %d", cl_bf16_amx(), flags);
}

/* ---- 2b. bf16 mode's attention and element-wise ops against ops.c ------------------------------------------ */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fabs(a[i] - b[i]) > d ? fabs(a[i] - b[i]) : d;
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    }
    return m > 0 ? d / m : d;
}

TEST(attention_and_elementwise_vs_ops) {
    if (!have_bf16()) return;
    /* T off every block (37: rows cross the 64-element hash chunks, 12-row and 32-column blocks), sequences of
     * every length class, heads of 8 and 40 */
    /* cfg 2: with MPNet's relative-position bias (NH, 2T - 1), std 2 so that a missed bias would show */
    for (int cfg = 0; cfg < 3; cfg++) {
        const int Bb = 3, T = 37, NH = cfg == 1 ? 2 : 3, HS = cfg == 1 ? 40 : 8, C = NH * HS, nt = 2;
        const int32_t len[3] = {37, 20, 1};
        const size_t n = (size_t)Bb * T * C, na = (size_t)Bb * NH * T * T;
        cl_rng r;
        cl_rng_seed(&r, 40 + (uint64_t)cfg);
        float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *g = malloc(n * 4);
        for (size_t i = 0; i < n; i++) q[i] = (float)cl_rng_normal(&r), k[i] = (float)cl_rng_normal(&r),
                                       v[i] = (float)cl_rng_normal(&r), g[i] = (float)cl_rng_normal(&r);
        float *o32 = calloc(n, 4), *o16 = calloc(n, 4), *a32 = calloc(na, 4), *a16 = calloc(na, 4);
        float *dq32 = calloc(n, 4), *dk32 = calloc(n, 4), *dv32 = calloc(n, 4);
        float *dq16 = calloc(n, 4), *dk16 = calloc(n, 4), *dv16 = calloc(n, 4);
        float *s32 = calloc((size_t)nt * 2 * T * T, 4);
        cl_error e = {0};
        float *s16 = cl_zalloc((size_t)nt * cl_bf16_attention_scratch(T, HS), 4, &e);
        float *relb = NULL;
        if (cfg == 2) {
            relb = malloc((size_t)NH * (2 * T - 1) * 4);
            for (int i = 0; i < NH * (2 * T - 1); i++) relb[i] = (float)(2.0 * cl_rng_normal(&r));
        }
        cl_dropout d = {1234, 99, 0.3f, 0};
        cl_attention_forward(o32, a32, s32, q, k, v, relb, len, Bb, T, NH, HS, &d, nt);
        cl_bf16_attention_forward(o16, a16, s16, q, k, v, relb, len, Bb, T, NH, HS, &d, nt);
        cl_attention_backward(dq32, dk32, dv32, s32, g, q, k, v, a32, relb, len, Bb, T, NH, HS, &d, nt);
        cl_bf16_attention_backward(dq16, dk16, dv16, s16, g, q, k, v, a16, len, Bb, T, NH, HS, &d, nt);
        /* bf16 products: ~0.5% (2^-9 per rounded operand); a different dropout mask would differ by O(1) */
        double ea = rel_diff(a32, a16, na), eo = rel_diff(o32, o16, n);
        double eq = rel_diff(dq32, dq16, n), ek = rel_diff(dk32, dk16, n), ev = rel_diff(dv32, dv16, n);
        CHECK(ea < 0.02 && eo < 0.02 && eq < 0.02 && ek < 0.02 && ev < 0.02,
              "heads of %d: att %.3g out %.3g dq %.3g dk %.3g dv %.3g (of max)", HS, ea, eo, eq, ek, ev);
        int zeros = 1; /* keys past a sequence's length get exactly 0 */
        for (int b = 0; b < Bb; b++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < T; i++)
                    for (int j = len[b]; j < T; j++) zeros &= a16[(((size_t)b * NH + h) * T + i) * T + j] == 0.0f;
        CHECK(zeros, "masked keys");
        /* inference (att NULL, dropout off) */
        cl_attention_forward(o32, NULL, s32, q, k, v, relb, len, Bb, T, NH, HS, NULL, nt);
        cl_bf16_attention_forward(o16, NULL, s16, q, k, v, relb, len, Bb, T, NH, HS, NULL, nt);
        CHECK(rel_diff(o32, o16, n) < 0.02, "inference: %.3g", rel_diff(o32, o16, n));
        if (relb) { /* the bias must matter: without it the output moves by far more than bf16's rounding */
            float *o0 = calloc(n, 4);
            cl_bf16_attention_forward(o0, NULL, s16, q, k, v, NULL, len, Bb, T, NH, HS, NULL, nt);
            CHECK(rel_diff(o0, o16, n) > 0.2, "the bias changes the output (%.3g)", rel_diff(o0, o16, n));
            free(o0);
        }
        free(relb);
        if (getenv("CL_TEST_VERBOSE"))
            fprintf(stderr, "attention (heads of %d): att %.2g out %.2g dq %.2g dk %.2g dv %.2g of max\n", HS, ea,
                    eo, eq, ek, ev);
        free(q), free(k), free(v), free(g), free(o32), free(o16), free(a32), free(a16), free(dq32), free(dk32);
        free(dv32), free(dq16), free(dk16), free(dv16), free(s32), cl_free(s16);
    }
    /* dropout: the same bits (same mask, same product); residual + layer norm and its backward: fp32 rounding */
    const int N = 19, C = 75;
    const size_t n = (size_t)N * C;
    cl_rng r;
    cl_rng_seed(&r, 8);
    float *x = malloc(n * 4), *res = malloc(n * 4), *y32 = malloc(n * 4), *y16 = malloc(n * 4), *w = malloc(C * 4);
    float *b = malloc(C * 4), *in32 = malloc(n * 4), *in16 = malloc(n * 4), *m32 = malloc(N * 4), *m16 = malloc(N * 4);
    float *r32 = malloc(N * 4), *r16 = malloc(N * 4), *g = malloc(n * 4), *dx32 = calloc(n, 4), *dx16 = calloc(n, 4);
    for (size_t i = 0; i < n; i++) x[i] = (float)cl_rng_normal(&r), res[i] = (float)cl_rng_normal(&r),
                                   g[i] = (float)cl_rng_normal(&r);
    for (int i = 0; i < C; i++) w[i] = 1.0f + 0.1f * (float)cl_rng_normal(&r), b[i] = 0.1f * (float)cl_rng_normal(&r);
    cl_dropout d = {77, 5, 0.25f, 0};
    cl_dropout_forward(y32, x, n, &d);
    cl_bf16_dropout_forward(y16, x, n, &d);
    CHECK(memcmp(y32, y16, n * 4) == 0, "dropout: the same mask and values");
    memcpy(y16, x, n * 4);
    cl_bf16_dropout_forward(y16, y16, n, &d);
    CHECK(memcmp(y32, y16, n * 4) == 0, "dropout in place");
    cl_residual_layernorm_forward(y32, m32, r32, in32, res, x, &d, w, b, N, C, 1e-5f);
    cl_bf16_residual_layernorm_forward(y16, m16, r16, in16, res, x, &d, w, b, N, C, 1e-5f);
    CHECK(memcmp(in32, in16, n * 4) == 0, "residual + dropout: the same bits");
    CHECK(rel_diff(y32, y16, n) < 1e-5 && rel_diff(m32, m16, N) < 1e-5 && rel_diff(r32, r16, N) < 1e-5,
          "layer norm: %.3g", rel_diff(y32, y16, n));
    cl_layernorm_backward(dx32, NULL, NULL, g, in32, w, m32, r32, N, C);
    cl_bf16_layernorm_backward(dx16, g, in32, w, m32, r32, N, C);
    CHECK(rel_diff(dx32, dx16, n) < 1e-5, "layer norm backward: %.3g", rel_diff(dx32, dx16, n));
    free(x), free(res), free(y32), free(y16), free(w), free(b), free(in32), free(in16), free(m32), free(m16);
    free(r32), free(r16), free(g), free(dx32), free(dx16);
}

/* ---- 3. the encoder --------------------------------------------------------------------------------------- */
/* sizes off every block: H 40 (4 heads of 10), I 72, vocab 378 (the tiny WordPiece tokenizer's) */
static const char CONFIG[] =
    "{\"model_type\":\"bert\",\"vocab_size\":378,\"hidden_size\":40,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"intermediate_size\":72,\"max_position_embeddings\":64,\"type_vocab_size\":2,"
    "\"pad_token_id\":0,\"layer_norm_eps\":1e-12,\"hidden_act\":\"gelu\",\"hidden_dropout_prob\":0.1,"
    "\"attention_probs_dropout_prob\":0.1}";

/* a random model whose tokens mix (std 0.2 as test_train.c), with a 3-label head */
static int tiny_model(cl_weights *m, int labels) {
    cl_error e = {0};
    cl_config cfg;
    if (cl_config_parse(&cfg, CONFIG, strlen(CONFIG), "test", &e)) return -1;
    int rc = cl_model_init_random(m, &cfg, CL_HEAD_POOLER, labels, 7, &e);
    cl_config_free(&cfg);
    if (rc) return -1;
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++) {
            cl_linear *li = &m->layers[l].lin[k];
            for (size_t i = 0; i < (size_t)li->d_out * li->d_in; i++) li->w[i] *= 10.0f;
            for (int i = 0; i < li->d_out; i++) li->b[i] = 0.01f * (float)((i * 7 + k) % 11 - 5);
        }
    for (int i = 0; i < m->cfg.hidden_size * m->cfg.hidden_size; i++) m->pooler.w[i] *= 10.0f;
    return 0;
}

typedef struct {
    cl_weights m;
    cl_adapter *ad;
    cl_params p;
    cl_head_params hp;
    cl_head_grads hg;
    cl_lin_hook hook;
    cl_encoder *e;
} rig;

enum { B = 3, T = 17 };
static int32_t IDS[B * T], TYPES[B * T], LEN[B] = {17, 9, 1}, LABELS[B] = {2, 0, 1};

static void rig_free(rig *g) {
    cl_encoder_free(g->e);
    cl_adapter_free(g->ad);
    cl_params_free(&g->p);
    cl_model_free(&g->m);
    memset(g, 0, sizeof *g);
}

/* model + adapter (method, targets) + head in one cl_params, parameters set to seeded random values (B != 0, so
 * every gradient is non-zero); bf16: converted (W^T too; CondLoRA keeps its fp32 targets) */
static int rig_new(rig *g, cl_method method, const char *targets, int bf16, cl_error *e) {
    memset(g, 0, sizeof *g);
    if (tiny_model(&g->m, 3)) return cl_errf(e, CL_EINVAL, "tiny model");
    cl_adapter_opts ao;
    cl_adapter_opts_default(&ao, method);
    ao.r = 4;
    ao.target_modules = targets;
    cl_params_init(&g->p);
    int rc = cl_adapter_create(&g->ad, &ao, &g->m, e);
    if (!rc) rc = cl_adapter_register(g->ad, &g->p, e);
    if (!rc) rc = cl_head_register(&g->p, &g->m, 0, &g->hp, e);
    if (!rc) rc = cl_params_alloc(&g->p, e);
    if (!rc) rc = cl_adapter_bind(g->ad, &g->p, e);
    if (rc) return rc;
    cl_head_bind(&g->p, &g->m, &g->hp, &g->hg);
    cl_adapter_init(g->ad, 5);
    cl_rng r;
    cl_rng_seed(&r, 77);
    for (size_t i = 0; i < g->p.numel; i++) g->p.param[i] = (float)(0.1 * cl_rng_normal(&r));
    g->hook = cl_adapter_hook(g->ad);
    if (bf16) {
        cl_bf16_opts bo = {.backward = 1, .keep = method == CL_METHOD_CONDLORA ? cl_bf16_keep_adapted : NULL,
                           .keep_ctx = &g->hook};
        if ((rc = cl_model_to_bf16(&g->m, &bo, e))) return rc;
    }
    return cl_encoder_new(&g->e, &g->m, B, T, 1, e);
}

/* a training forward (dropout on, seed 9) + backward; logits (B x 3) and loss out; gradients in g->p.grad */
static int rig_step(rig *g, float *logits, float *loss, cl_error *e) {
    cl_params_zero_grad(&g->p);
    cl_adapter_materialise(g->ad);
    int rc = cl_adapter_begin_batch(g->ad, B, T, 9, e);
    cl_batch bt = {IDS, TYPES, LEN, B, T};
    cl_fwd_opts fo = {.train = 1, .seed = 9, .hook = &g->hook, .labels = LABELS};
    const float *lg = NULL;
    if (!rc) rc = cl_encoder_forward(g->e, &bt, &fo, &lg, loss, e);
    if (!rc) memcpy(logits, lg, sizeof(float) * B * 3);
    if (!rc) rc = cl_encoder_backward(g->e, 1.0f, &g->hg, e);
    return rc;
}

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* Tolerance. bf16 keeps 8 significant bits: every rounding of an input or weight errs by at most 2^-9 = 0.2%
 * relative. A linear output sums products with two such errors each and random signs, so it errs by ~0.2-0.3% of
 * its magnitude; the six products of a layer, two layers (with std-0.2 weights that amplify), attention and GELU
 * compound that to about 1% of the logits and 1-2% of the gradients (measured: logits 1.1%, loss 0.3%, gradients
 * at most 2.2% of each tensor's largest entry, cosines >= 0.9997; CL_TEST_VERBOSE=1 prints them). The checks
 * allow 3% for logits and loss and 5% for gradients (max |diff| / max |fp32|), and ask every gradient to point
 * the same way (cosine > 0.999); a wrong kernel (a dropped pair, a transposed panel, a missing bias) errs by
 * 10-100% here. */
static void compare_paths(cl_method method, const char *targets) {
    rig a, b;
    cl_error e = {0};
    int rc = rig_new(&a, method, targets, 0, &e);
    CHECK(rc == 0, "fp32 rig: %s", e.msg);
    rc = rc ? rc : rig_new(&b, method, targets, 1, &e);
    CHECK(rc == 0, "bf16 rig: %s", e.msg);
    if (rc) return;
    float la[B * 3], lb[B * 3], lossa = 0, lossb = 0;
    CHECK(rig_step(&a, la, &lossa, &e) == 0, "%s", e.msg);
    CHECK(rig_step(&b, lb, &lossb, &e) == 0, "%s", e.msg);
    double dl = 0;
    for (int i = 0; i < B * 3; i++) dl = fabs(la[i] - lb[i]) > dl ? fabs(la[i] - lb[i]) : dl;
    double lm = max_abs(la, B * 3);
    CHECK(lm > 0.1, "the fp32 logits are not degenerate (max %g)", lm);
    CHECK(dl <= 0.03 * lm, "%s logits: max |bf16 - fp32| %.3g of max |logit| %.3g", cl_method_names[method], dl, lm);
    CHECK(fabs(lossa - lossb) <= 0.03 * fabs(lossa), "loss fp32 %.6g bf16 %.6g", lossa, lossb);
    /* every tensor's gradient */
    double worst = 0, cosmin = 1;
    for (int t = 0; t < a.p.n; t++) {
        const cl_param_tensor *ta = &a.p.t[t];
        const float *ga = a.p.grad + ta->offset, *gb = b.p.grad + ta->offset;
        double d = 0, dot = 0, na = 0, nb = 0, m = max_abs(ga, ta->numel);
        for (size_t i = 0; i < ta->numel; i++) {
            d = fabs(ga[i] - gb[i]) > d ? fabs(ga[i] - gb[i]) : d;
            dot += (double)ga[i] * gb[i], na += (double)ga[i] * ga[i], nb += (double)gb[i] * gb[i];
        }
        double cs = dot / sqrt(na * nb + 1e-300);
        CHECK(m > 0, "%s: zero fp32 gradient", ta->name);
        CHECK(d <= 0.05 * m && cs > 0.999, "%s: max |bf16 - fp32| %.3g of max %.3g, cosine %.6f", ta->name, d, m, cs);
        if (m > 0 && d / m > worst) worst = d / m;
        if (getenv("CL_TEST_BF16_TENSORS")) fprintf(stderr, "  %s %.3g%% cos %.6f\n", ta->name, 100 * d / m, cs);
        if (cs < cosmin) cosmin = cs;
    }
    if (getenv("CL_TEST_VERBOSE"))
        fprintf(stderr, "%s: logits max diff %.3g of %.3g (%.2f%%), loss %.6g vs %.6g, gradients worst %.2f%% of max, "
                        "min cosine %.6f\n", cl_method_names[method], dl, lm, 100 * dl / lm, lossa, lossb,
                100 * worst, cosmin);
    rig_free(&a);
    rig_free(&b);
}

TEST(encoder_bf16_vs_fp32) {
    if (!have_bf16()) return;
    cl_rng r;
    cl_rng_seed(&r, 1);
    for (int i = 0; i < B * T; i++) IDS[i] = 1 + (int)cl_rng_below(&r, 377), TYPES[i] = (i % T) > 8;
    /* LoRA on every kind of module (intermediate.dense takes the hook path) and CondLoRA on its square targets */
    compare_paths(CL_METHOD_LORA, "query,key,value,attention.output.dense,intermediate.dense,output.dense");
    compare_paths(CL_METHOD_CONDLORA, "query,value");
}

/* MPNet (tests/data/encoder/mpnet_cls: the relative-attention bias at std 2, T = 105): bf16 mode's logits within the
 * documented ~1-2% of fp32's, which equal transformers' (tests/test_encoder.c) */
TEST(mpnet_bf16_vs_fp32) {
    if (!have_bf16()) return;
    cl_safetensors st;
    cl_error e = {0};
    if (cl_st_open(&st, "tests/data/encoder/mpnet_cls/ref.safetensors", &e)) { CHECK(0, "%s", e.msg); return; }
    const cl_st_tensor *ti = cl_st_find(&st, "input_ids"), *tl = cl_st_find(&st, "lengths"),
                       *tr = cl_st_find(&st, "logits");
    cl_weights m;
    cl_load_opts lo = {0};
    if (!ti || !tl || !tr || cl_model_load(&m, "tests/data/encoder/mpnet_cls", &lo, &e)) {
        CHECK(0, "fixture: %s", e.msg);
        cl_st_close(&st);
        return;
    }
    const int Bm = (int)ti->shape[0], Tm = (int)ti->shape[1];
    cl_bf16_opts bo = {0};
    CHECK(cl_model_to_bf16(&m, &bo, &e) == 0, "%s", e.msg);
    cl_encoder *enc = NULL;
    CHECK(cl_encoder_new(&enc, &m, Bm, Tm, 0, &e) == 0, "%s", e.msg);
    if (enc) {
        cl_batch bt = {(const int32_t *)ti->data, NULL, (const int32_t *)tl->data, Bm, Tm};
        const float *lg = NULL;
        CHECK(cl_encoder_forward(enc, &bt, NULL, &lg, NULL, &e) == 0, "%s", e.msg);
        if (lg) {
            double d = rel_diff(lg, (const float *)tr->data, (size_t)Bm * 2);
            CHECK(d < 0.05, "MPNet bf16 logits vs transformers' fp32: %.3g of max", d);
            if (getenv("CL_TEST_VERBOSE")) fprintf(stderr, "MPNet bf16 vs fp32 logits: %.3g of max\n", d);
        }
        cl_encoder_free(enc);
    }
    cl_model_free(&m);
    cl_st_close(&st);
}

/* ---- 4. training, memory, errors -------------------------------------------------------------------------- */
TEST(steps_lower_the_loss) {
    if (!have_bf16()) return;
    rig g;
    cl_error e = {0};
    int rc = rig_new(&g, CL_METHOD_LORA, "query,value", 1, &e);
    CHECK(rc == 0, "%s", e.msg);
    if (rc) return;
    float lg[B * 3], first = 0, loss = 0;
    for (int s = 0; s < 30 && !rc; s++) {
        rc = rig_step(&g, lg, &loss, &e);
        if (s == 0) first = loss;
        cl_params_adamw_step(&g.p, 3e-3f, 0.9f, 0.999f, 1e-8f, 0.0f);
    }
    CHECK(rc == 0, "%s", e.msg);
    CHECK(loss < 0.5f * first, "loss %g after 30 steps, %g at the first", loss, first);
    rig_free(&g);
}

TEST(release_keep_and_errors) {
    if (!have_bf16()) return;
    cl_error e = {0};
    rig g;
    int rc = rig_new(&g, CL_METHOD_CONDLORA, "query,value", 1, &e);
    CHECK(rc == 0, "%s", e.msg);
    if (rc) return;
    int ok = 1;
    for (int l = 0; l < g.m.cfg.num_layers; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++) {
            const cl_linear *li = &g.m.layers[l].lin[k];
            int kept = k == CL_MOD_QUERY || k == CL_MOD_VALUE;
            ok &= g.m.layers[l].w16[k] && g.m.layers[l].w16t[k] && (kept ? li->w != NULL : li->w == NULL);
        }
    CHECK(ok, "CondLoRA's targets keep their fp32 W, the other W are released, both packs exist");
    CHECK(cl_model_bf16_bytes(&g.m) > 0);
    rc = cl_model_to_bf16(&g.m, NULL, &e);
    CHECK(rc == CL_EINVAL, "converting twice: %d", rc);
    /* an inference-only conversion cannot train through the layers: a message, not a crash */
    cl_weights m;
    CHECK(tiny_model(&m, 3) == 0);
    cl_bf16_opts bo = {0};
    CHECK(cl_model_to_bf16(&m, &bo, &e) == 0, "%s", e.msg);
    cl_encoder *enc = NULL;
    CHECK(cl_encoder_new(&enc, &m, B, T, 1, &e) == 0, "%s", e.msg);
    cl_batch bt = {IDS, TYPES, LEN, B, T};
    cl_fwd_opts fo = {.train = 1, .seed = 1, .labels = LABELS, .need_input_grad = 1};
    rc = enc ? cl_encoder_forward(enc, &bt, &fo, NULL, NULL, &e) : -1;
    CHECK(rc == CL_EINVAL && strstr(e.msg, "backward"), "%d %s", rc, e.msg);
    fo.need_input_grad = 0; /* head-only training needs no W^T */
    CHECK(enc && cl_encoder_forward(enc, &bt, &fo, NULL, NULL, &e) == 0, "%s", e.msg);
    cl_encoder_free(enc);
    cl_model_free(&m);
    /* a CPU without AVX512_BF16 */
    setenv("CONDLORA_NO_BF16", "1", 1);
    CHECK(tiny_model(&m, 3) == 0);
    e.msg[0] = 0;
    rc = cl_model_to_bf16(&m, NULL, &e);
    CHECK(rc == CL_EUNSUP && strstr(e.msg, "AVX512_BF16") && strstr(e.msg, "--precision"), "%d: %s", rc, e.msg);
    CHECK(m.bf16 == NULL && m.layers[0].lin[0].w != NULL, "the model is untouched");
    unsetenv("CONDLORA_NO_BF16");
    cl_model_free(&m);
    int p = 0;
    CHECK(cl_precision_parse("bf16", &p, &e) == 0 && p == 1 && cl_precision_parse("fp32", &p, &e) == 0 && p == 0);
    CHECK(cl_precision_parse("fp16", &p, &e) == CL_EUSAGE && strstr(e.msg, "--precision"), "%s", e.msg);
    rig_free(&g);
}

/* ---- 5. condlora train / eval --precision bf16 ------------------------------------------------------------ */
/* MODEL: config.json + model.safetensors (tiny_model without its head) + the tiny WordPiece tokenizer.json */
static int make_model_dir(void) {
    cl_error e = {0};
    cl_weights m;
    if (tiny_model(&m, 2)) return -1;
    int rc = tr_write_model_dir(MODEL, &m, CONFIG);
    cl_model_free(&m);
    (void)e;
    return rc;
}

TEST(train_and_eval_in_bf16) {
    if (!have_bf16()) return;
    char d[400], out[400];
    snprintf(d, sizeof d, "%s/SST-2", GLUE);
    tr_write_sst2(d, 160, 40, 11);
    if (make_model_dir()) {
        CHECK(0, "could not write the test model");
        return;
    }
    snprintf(out, sizeof out, "%s/run_bf16", ROOT);
    cl_train_opts o;
    cl_train_opts_default(&o);
    o.model_dir = MODEL, o.task = "SST-2", o.data_dir = GLUE, o.out_dir = out;
    o.protocol = CL_PROTOCOL_GLUE, o.batch_size = 8, o.max_length = 32, o.lr = 5e-3f, o.epochs = 3;
    o.quiet = 1, o.threads = 1, o.log_every = 1;
    o.ad.method = CL_METHOD_CONDLORA; /* the method that keeps fp32 W for its targets */
    o.bf16 = 1;
    cl_error e = {0};
    cl_train_result r;
    int rc = cl_train_run(&o, &r, &e);
    CHECK(rc == 0, "%s", e.msg);
    if (rc) return;
    CHECK(r.best_dev.main > 0.7, "dev accuracy %g on a learnable toy task", r.best_dev.main);
    char p[500], *js = NULL;
    size_t jn = 0;
    snprintf(p, sizeof p, "%s/run.json", out);
    CHECK(cl_read_file(p, &js, &jn, &e) == 0 && strstr(js, "\"precision\":\t\"bf16\""), "run.json records bf16");
    free(js);
    /* eval reloads in bf16 (the run's precision) and reproduces the best dev metric exactly */
    cl_metric_set m;
    size_t n = 0;
    CHECK(cl_eval_run(out, "dev", NULL, NULL, 1, &m, &n, &e) == 0, "%s", e.msg);
    CHECK(m.main == r.best_dev.main, "eval %.10g, training's best dev %.10g", m.main, r.best_dev.main);
    /* and in fp32 on request: close (the weights are the same) */
    CHECK(cl_eval_run_precision(out, "dev", NULL, NULL, 1, 0, NULL, NULL, &m, &n, &e) == 0, "%s", e.msg);
    CHECK(fabs(m.main - r.best_dev.main) <= 0.1, "fp32 eval of a bf16 run %.4g vs %.4g", m.main, r.best_dev.main);
}

int main(void) {
    snprintf(ROOT, sizeof ROOT, "/tmp/cl_test_bf16_%d", (int)getpid());
    snprintf(MODEL, sizeof MODEL, "%s/model", ROOT);
    snprintf(GLUE, sizeof GLUE, "%s/glue", ROOT);
    RUN(rounding_matches_the_instruction);
    RUN(kernel_against_double_reference);
    RUN(amx_where_the_cpu_has_it);
    RUN(attention_and_elementwise_vs_ops);
    RUN(encoder_bf16_vs_fp32);
    RUN(mpnet_bf16_vs_fp32);
    RUN(steps_lower_the_loss);
    RUN(release_keep_and_errors);
    RUN(train_and_eval_in_bf16);
    if (!getenv("CL_KEEP_TMP")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", ROOT);
        if (system(cmd)) {}
    }
#ifdef CL_BF16_EMULATE /* build/tests/test_bf16_emu: the same checks with the three instructions emulated */
    return tst_summary(__FILE__ "[AVX512_BF16-emulated]");
#else
    return tst_summary(__FILE__);
#endif
}
