/* Every op's backward against central finite differences of a random projection of its forward (scale-free error
 * |analytic - numeric| / max(|analytic|, |numeric|) of directional derivatives), plus attention against a naive
 * double-precision loop and dropout statistics. */
#include <stdint.h>
#include "core/util.h"
#include "model/ops.h"
#include "test.h"

static cl_rng rng;
static void fill(float *x, size_t n, double s) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(s * cl_rng_normal(&rng));
}
static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
static double scale_free(double a, double n) { return fabs(a - n) / fmax(fmax(fabs(a), fabs(n)), 1e-12); }

/* op: a closure computing out = f(params) */
typedef void (*fwd_fn)(void *ctx, float *out);
/* directional derivative along u of L = <w, f(x)> for the parameter x (n), vs analytic <grad, u> */
static double fd_check(fwd_fn f, void *ctx, float *x, size_t n, const float *grad, float *out, size_t nout,
                       const float *w, float eps) {
    float *u = malloc(n * 4), *save = malloc(n * 4);
    fill(u, n, 1.0);
    memcpy(save, x, n * 4);
    for (size_t i = 0; i < n; i++) x[i] = save[i] + eps * u[i];
    f(ctx, out);
    double lp = dot(w, out, nout);
    for (size_t i = 0; i < n; i++) x[i] = save[i] - eps * u[i];
    f(ctx, out);
    double lm = dot(w, out, nout);
    memcpy(x, save, n * 4);
    double num = (lp - lm) / (2.0 * eps), an = dot(grad, u, n);
    free(u), free(save);
    return scale_free(an, num);
}

/* ---- layernorm ---- */
typedef struct { float *x, *w, *b, *mean, *rstd; int N, C; } ln_ctx;
static void ln_fwd(void *c, float *out) {
    ln_ctx *k = c;
    cl_layernorm_forward(out, k->mean, k->rstd, k->x, k->w, k->b, k->N, k->C, 1e-5f);
}
TEST(layernorm) {
    enum { N = 5, C = 24 };
    float x[N * C], w[C], b[C], mean[N], rstd[N], out[N * C], g[N * C], dx[N * C] = {0}, dw[C] = {0}, db[C] = {0};
    fill(x, N * C, 2.0), fill(w, C, 1.0), fill(b, C, 0.5), fill(g, N * C, 1.0);
    for (int i = 0; i < C; i++) x[i] += 3.0f; /* an offset row */
    ln_ctx k = {x, w, b, mean, rstd, N, C};
    ln_fwd(&k, out);
    cl_layernorm_backward(dx, dw, db, g, x, w, mean, rstd, N, C);
    CHECK(fd_check(ln_fwd, &k, x, N * C, dx, out, N * C, g, 1e-2f) < 2e-3, "dx");
    CHECK(fd_check(ln_fwd, &k, w, C, dw, out, N * C, g, 1e-2f) < 2e-3, "dw");
    CHECK(fd_check(ln_fwd, &k, b, C, db, out, N * C, g, 1e-2f) < 2e-3, "db");
    /* backward accumulates */
    float dx2[N * C];
    for (int i = 0; i < N * C; i++) dx2[i] = 1.0f;
    cl_layernorm_backward(dx2, NULL, NULL, g, x, w, mean, rstd, N, C);
    double d = 0;
    for (int i = 0; i < N * C; i++) d = fmax(d, fabs(dx2[i] - 1.0f - dx[i]));
    CHECK(d < 1e-5, "accumulates: %g", d);
    /* normalised rows: mean 0, variance 1 before the affine part */
    float ones[C], zeros[C] = {0};
    for (int i = 0; i < C; i++) ones[i] = 1.0f;
    cl_layernorm_forward(out, NULL, NULL, x, ones, zeros, N, C, 0.0f);
    double m = 0, v = 0;
    for (int i = 0; i < C; i++) m += out[i], v += (double)out[i] * out[i];
    CHECK(fabs(m / C) < 1e-5 && fabs(v / C - 1) < 1e-4, "mean %g var %g", m / C, v / C);
}

/* ---- linear ---- */
typedef struct { float *x, *w, *b; int N, C, OC; } lin_ctx;
static void lin_fwd(void *c, float *out) {
    lin_ctx *k = c;
    cl_linear_forward(out, k->x, k->w, k->b, k->N, k->C, k->OC);
}
TEST(linear) {
    enum { N = 7, C = 13, OC = 9 };
    float x[N * C], w[OC * C], b[OC], out[N * OC], g[N * OC], dx[N * C] = {0}, dw[OC * C] = {0}, db[OC] = {0};
    fill(x, N * C, 1.0), fill(w, OC * C, 0.5), fill(b, OC, 1.0), fill(g, N * OC, 1.0);
    lin_ctx k = {x, w, b, N, C, OC};
    lin_fwd(&k, out);
    /* against a naive loop */
    double md = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b[o];
            for (int i = 0; i < C; i++) s += (double)x[n * C + i] * w[o * C + i];
            md = fmax(md, fabs(s - out[n * OC + o]));
        }
    CHECK(md < 1e-5, "forward vs naive %g", md);
    cl_linear_backward(dx, dw, db, g, x, w, N, C, OC);
    CHECK(fd_check(lin_fwd, &k, x, N * C, dx, out, N * OC, g, 1e-2f) < 1e-3, "dx");
    CHECK(fd_check(lin_fwd, &k, w, OC * C, dw, out, N * OC, g, 1e-2f) < 1e-3, "dw");
    CHECK(fd_check(lin_fwd, &k, b, OC, db, out, N * OC, g, 1e-2f) < 1e-3, "db");
}

/* ---- activations ---- */
typedef struct { float *x; size_t n; cl_act act; int tanh_; } act_ctx;
static void act_fwd(void *c, float *out) {
    act_ctx *k = c;
    if (k->tanh_) cl_tanh_forward(out, k->x, k->n);
    else cl_act_forward(out, k->x, k->n, k->act);
}
TEST(activations) {
    enum { n = 64 };
    float x[n], out[n], g[n];
    fill(x, n, 2.0), fill(g, n, 1.0);
    for (int a = 0; a < 4; a++) {
        float dx[n] = {0};
        act_ctx k = {x, n, (cl_act)(a < 3 ? a : 0), a == 3};
        act_fwd(&k, out);
        if (a == 3) cl_tanh_backward(dx, g, out, n);
        else cl_act_backward(dx, g, x, n, k.act);
        double e = fd_check(act_fwd, &k, x, n, dx, out, n, g, a == CL_ACT_RELU ? 1e-4f : 1e-2f);
        CHECK(e < 2e-3, "activation %d: %g", a, e);
    }
    /* exact values: GELU(1) = 0.8413447461 (erf), 0.8411919906 (tanh form) */
    CHECK(fabs(cl_gelu(1.0f, CL_ACT_GELU) - 0.8413447461) < 1e-6, "gelu erf");
    CHECK(fabs(cl_gelu(1.0f, CL_ACT_GELU_TANH) - 0.8411919906) < 1e-6, "gelu tanh");
    /* fused bias + activation equals the two steps */
    float xb[2 * 8], bias[8], o1[2 * 8], o2[2 * 8];
    fill(xb, 16, 1.0), fill(bias, 8, 1.0);
    for (int i = 0; i < 16; i++) o2[i] = cl_gelu(xb[i] + bias[i % 8], CL_ACT_GELU);
    cl_bias_act_forward(o1, xb, bias, 2, 8, CL_ACT_GELU);
    CHECK(!memcmp(o1, o2, sizeof o1), "fused bias+gelu");
}

/* ---- attention ---- */
typedef struct { float *q, *k, *v, *att, *scratch; const int32_t *len; int B, T, NH, HS; cl_dropout d; } att_ctx;
static void att_fwd(void *c, float *out) {
    att_ctx *k = c;
    cl_attention_forward(out, k->att, k->scratch, k->q, k->k, k->v, NULL, k->len, k->B, k->T, k->NH, k->HS, &k->d, 1);
}
TEST(attention) {
    enum { B = 2, T = 6, NH = 3, HS = 4, C = NH * HS, N = B * T };
    int32_t len[B] = {6, 4};
    float q[N * C], k[N * C], v[N * C], att[B * NH * T * T], scratch[4 * T * T], out[N * C], g[N * C];
    fill(q, N * C, 1.0), fill(k, N * C, 1.0), fill(v, N * C, 1.0), fill(g, N * C, 1.0);
    for (int drop = 0; drop < 2; drop++) {
        att_ctx a = {q, k, v, att, scratch, len, B, T, NH, HS, {99, 3, drop ? 0.3f : 0.0f, 0}};
        att_fwd(&a, out);
        /* naive double reference */
        double md = 0;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < T; i++) {
                    double s[T], mx = -1e300, sum = 0;
                    for (int j = 0; j < len[b]; j++) {
                        s[j] = 0;
                        for (int d = 0; d < HS; d++) s[j] += (double)q[(b * T + i) * C + h * HS + d] * k[(b * T + j) * C + h * HS + d];
                        s[j] /= sqrt(HS);
                        mx = fmax(mx, s[j]);
                    }
                    for (int j = 0; j < len[b]; j++) sum += (s[j] = exp(s[j] - mx));
                    for (int d = 0; d < HS; d++) {
                        double o = 0;
                        for (int j = 0; j < len[b]; j++)
                            o += s[j] / sum * cl_dropout_scale(&a.d, ((uint64_t)(b * NH + h) * T + i) * T + j) *
                                 v[(b * T + j) * C + h * HS + d];
                        md = fmax(md, fabs(o - out[(b * T + i) * C + h * HS + d]));
                    }
                }
        CHECK(md < 1e-5, "dropout %d: forward vs naive %g", drop, md);
        float dq[N * C] = {0}, dk[N * C] = {0}, dv[N * C] = {0}, bs[4 * 3 * T * T];
        cl_attention_backward(dq, dk, dv, bs, g, q, k, v, att, NULL, len, B, T, NH, HS, &a.d, 1);
        CHECK(fd_check(att_fwd, &a, q, N * C, dq, out, N * C, g, 1e-2f) < 2e-3, "dq (dropout %d)", drop);
        CHECK(fd_check(att_fwd, &a, k, N * C, dk, out, N * C, g, 1e-2f) < 2e-3, "dk (dropout %d)", drop);
        CHECK(fd_check(att_fwd, &a, v, N * C, dv, out, N * C, g, 1e-2f) < 2e-3, "dv (dropout %d)", drop);
        /* keys past the length get no gradient */
        double pad = 0;
        for (int t = len[1]; t < T; t++)
            for (int i = 0; i < C; i++) pad += fabs(dk[(T + t) * C + i]) + fabs(dv[(T + t) * C + i]);
        CHECK(pad == 0, "padded keys get gradient %g", pad);
        /* att NULL: the backward recomputes the probabilities, with and without a relative bias (MPNet), and gets
         * the same bits as from the saved ones, on 1 and on 3 threads */
        float relb[NH * (2 * T - 1)];
        fill(relb, NH * (2 * T - 1), 2.0);
        for (int rb = 0; rb < 2; rb++)
            for (int nt = 1; nt <= 3; nt += 2) {
                const float *bias = rb ? relb : NULL;
                float o2[N * C], dq1[N * C] = {0}, dk1[N * C] = {0}, dv1[N * C] = {0}, dq2[N * C] = {0},
                                 dk2[N * C] = {0}, dv2[N * C] = {0};
                cl_attention_forward(out, att, scratch, q, k, v, bias, len, B, T, NH, HS, &a.d, 1);
                cl_attention_forward(o2, NULL, bs, q, k, v, bias, len, B, T, NH, HS, &a.d, nt);
                CHECK(!memcmp(out, o2, sizeof o2), "relb %d, %d threads: the forward without att", rb, nt);
                cl_attention_backward(dq1, dk1, dv1, bs, g, q, k, v, att, bias, len, B, T, NH, HS, &a.d, 1);
                cl_attention_backward(dq2, dk2, dv2, bs, g, q, k, v, NULL, bias, len, B, T, NH, HS, &a.d, nt);
                CHECK(!memcmp(dq1, dq2, sizeof dq1) && !memcmp(dk1, dk2, sizeof dk1) && !memcmp(dv1, dv2, sizeof dv1),
                      "relb %d, %d threads: recomputed probabilities give the saved ones' gradients", rb, nt);
            }
    }
}

/* ---- dropout, residual + layernorm ---- */
TEST(dropout) {
    enum { n = 100000 };
    float *x = malloc(n * 4), *y = malloc(n * 4), *dx = calloc(n, 4);
    for (int i = 0; i < n; i++) x[i] = 1.0f;
    cl_dropout d = {1234, 7, 0.1f, 0};
    cl_dropout_forward(y, x, n, &d);
    int kept = 0;
    for (int i = 0; i < n; i++) kept += y[i] != 0;
    CHECK(fabs(kept / (double)n - 0.9) < 0.005, "keep rate %g", kept / (double)n);
    CHECK(fabs(y[0] - (y[0] ? 1 / 0.9f : 0)) < 1e-6, "scale");
    cl_dropout_backward(dx, x, n, &d);
    CHECK(!memcmp(dx, y, n * 4), "backward uses the forward's mask");
    cl_dropout d2 = {1234, 8, 0.1f, 0};
    cl_dropout_forward(dx, x, n, &d2);
    CHECK(memcmp(dx, y, n * 4) != 0, "another site, another mask");
    free(x), free(y), free(dx);
}

typedef struct { float *x, *r, *w, *b, *inp, *mean, *rstd; cl_dropout d; int N, C; } rln_ctx;
static void rln_fwd(void *c, float *out) {
    rln_ctx *k = c;
    cl_residual_layernorm_forward(out, k->mean, k->rstd, k->inp, k->r, k->x, &k->d, k->w, k->b, k->N, k->C, 1e-12f);
}
TEST(residual_layernorm) {
    enum { N = 4, C = 16 };
    float x[N * C], r[N * C], w[C], b[C], inp[N * C], mean[N], rstd[N], out[N * C], g[N * C];
    fill(x, N * C, 1.0), fill(r, N * C, 1.0), fill(w, C, 1.0), fill(b, C, 1.0), fill(g, N * C, 1.0);
    rln_ctx k = {x, r, w, b, inp, mean, rstd, {5, 1, 0.25f, 0}, N, C};
    rln_fwd(&k, out);
    float dinp[N * C] = {0}, dx[N * C] = {0};
    cl_layernorm_backward(dinp, NULL, NULL, g, inp, w, mean, rstd, N, C);
    cl_dropout_backward(dx, dinp, N * C, &k.d);
    CHECK(fd_check(rln_fwd, &k, x, N * C, dx, out, N * C, g, 1e-2f) < 2e-3, "d x through dropout");
    CHECK(fd_check(rln_fwd, &k, r, N * C, dinp, out, N * C, g, 1e-2f) < 2e-3, "d residual");
}

/* ---- losses ---- */
TEST(losses) {
    enum { B = 4, L = 3 };
    float z[B * L], dz[B * L] = {0};
    int32_t lab[B] = {0, 2, 1, 2};
    fill(z, B * L, 2.0);
    double l0 = cl_crossentropy_forward_backward(dz, z, lab, B, L, 1.0f);
    double ref = 0;
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int j = 0; j < L; j++) s += exp(z[b * L + j]);
        ref += log(s) - z[b * L + lab[b]];
    }
    CHECK(fabs(l0 - ref / B) < 1e-9, "cross-entropy value");
    for (int i = 0; i < B * L; i++) {
        float s = z[i];
        z[i] = s + 1e-3f;
        double lp = cl_crossentropy_forward_backward(NULL, z, lab, B, L, 1.0f);
        z[i] = s - 1e-3f;
        double lm = cl_crossentropy_forward_backward(NULL, z, lab, B, L, 1.0f);
        z[i] = s;
        double num = (lp - lm) / (2.0 * ((double)(s + 1e-3f) - s));
        CHECK(scale_free(dz[i], num) < 2e-3 || fabs(dz[i] - num) < 1e-5, "dCE %d: %g vs %g", i, dz[i], num);
    }
    float y[B], t[B] = {0.5f, -1, 2, 0}, dy[B] = {0};
    fill(y, B, 1.0);
    double m = cl_mse_forward_backward(dy, y, t, B, 1.0f);
    double mref = 0;
    for (int b = 0; b < B; b++) mref += ((double)y[b] - t[b]) * ((double)y[b] - t[b]);
    CHECK(fabs(m - mref / B) < 1e-9, "mse value");
    for (int b = 0; b < B; b++) CHECK(fabs(dy[b] - 2.0 * (y[b] - t[b]) / B) < 1e-6, "dmse");
    /* BCEWithLogits: the value by its definition (-y log s - (1 - y) log(1 - s), stable for |x| = 40 where the naive
     * form overflows), the gradient by central differences */
    float x[B * L], yt[B * L], dx[B * L] = {0};
    fill(x, B * L, 3.0);
    x[0] = 40.0f, x[1] = -40.0f;
    for (int i = 0; i < B * L; i++) yt[i] = (float)((i * 5) % 3 == 0);
    yt[2] = 0.25f; /* soft targets are allowed */
    double bce = cl_bce_logits_forward_backward(dx, x, yt, B * L, 1.0f), bref = 0;
    for (int i = 0; i < B * L; i++) {
        double sp = log1p(exp(-fabs((double)x[i]))) + (x[i] > 0 ? x[i] : 0); /* softplus(x) = -log(1 - s) */
        bref += sp - yt[i] * (double)x[i];                                    /* -y log s - (1-y) log(1-s) */
    }
    CHECK(fabs(bce - bref / (B * L)) < 1e-9 && isfinite(bce), "bce value %.12g vs %.12g", bce, bref / (B * L));
    for (int i = 0; i < B * L; i++) {
        float s0 = x[i];
        x[i] = s0 + 1e-2f;
        double lp = cl_bce_logits_forward_backward(NULL, x, yt, B * L, 1.0f);
        x[i] = s0 - 1e-2f;
        double lm = cl_bce_logits_forward_backward(NULL, x, yt, B * L, 1.0f);
        x[i] = s0;
        double num = (lp - lm) / ((double)(s0 + 1e-2f) - (double)(s0 - 1e-2f));
        CHECK(scale_free(dx[i], num) < 2e-3 || fabs(dx[i] - num) < 1e-6, "dBCE %d: %g vs %g", i, dx[i], num);
    }
}

TEST(positions) {
    /* transformers: create_position_ids_from_input_ids(ids, padding_idx=1) */
    int32_t ids[2 * 5] = {0, 7, 8, 2, 1, 0, 2, 1, 1, 1}, pos[10];
    int32_t want[10] = {2, 3, 4, 5, 1, 2, 3, 1, 1, 1};
    cl_position_ids(pos, ids, 2, 5, 1);
    CHECK(!memcmp(pos, want, sizeof pos), "roberta positions");
    cl_position_ids(pos, ids, 2, 5, -1);
    CHECK(pos[4] == 4 && pos[9] == 4 && pos[5] == 0, "bert positions");
}

int main(void) {
    cl_rng_seed(&rng, 2024);
    RUN(layernorm);
    RUN(linear);
    RUN(activations);
    RUN(attention);
    RUN(dropout);
    RUN(residual_layernorm);
    RUN(losses);
    RUN(positions);
    return tst_summary(__FILE__);
}
