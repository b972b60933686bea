/* Finite-difference gradient checks of every trainable parameter kind of every adapter method.
 * Part 1 (always): the adapter hooks of every adapted (layer, module) of a tiny random model, chained as the encoder
 * uses them: loss = sum_{l,m} <R_lm, delta_lm(x_lm)> + extra loss, so CondLoRA's shared maps (used by both layers)
 * and SaLoRA's gates (with stochastic training gates, fixed by the batch seed) are checked through several layers.
 * Part 2 (when the encoder exists): the same through the whole tiny encoder and head.
 * Central differences; the error is scale-free: ||g - g_fd|| / ||g_fd|| per tensor. */
#include <math.h>
#include <string.h>
#include "adapters/adapter.h"
#include "core/util.h"
#include "test.h"

/* A model with only the layers' linear weights (what the adapters read), allocated here. */
static int fake_model(cl_weights *m, const cl_config *c) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    m->layers = calloc((size_t)c->num_layers, sizeof *m->layers);
    if (!m->layers) return -1;
    int H = c->hidden_size, F = c->intermediate_size;
    for (int l = 0; l < c->num_layers; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++) {
            cl_linear *lin = &m->layers[l].lin[k];
            lin->d_out = k == CL_MOD_INTER ? F : H;
            lin->d_in = k == CL_MOD_OUT ? F : H;
            lin->w = calloc((size_t)lin->d_out * lin->d_in, sizeof(float));
            lin->b = calloc((size_t)lin->d_out, sizeof(float));
            if (!lin->w || !lin->b) return -1;
        }
    return 0;
}
static void fake_model_free(cl_weights *m) {
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++) free(m->layers[l].lin[k].w), free(m->layers[l].lin[k].b);
    free(m->layers);
}

static void tiny_cfg(cl_config *c, int H, int F) {
    memset(c, 0, sizeof *c);
    c->arch = CL_ARCH_ROBERTA;
    strcpy(c->model_type, "roberta");
    c->vocab_size = 20, c->hidden_size = H, c->num_layers = 2, c->num_heads = 2, c->intermediate_size = F;
    c->max_position = 16, c->type_vocab_size = 1, c->pad_token_id = 1, c->layer_norm_eps = 1e-5f;
    c->act = CL_ACT_GELU, c->classifier_dropout = -1, c->num_labels = 2;
}

typedef struct {
    cl_weights model;
    cl_adapter *ad;
    cl_params p;
    int T, B, S;
    float *x[2][CL_MOD_COUNT], *R[2][CL_MOD_COUNT], *y, *dx;
} rig;

static int rig_make(rig *g, cl_adapter_opts *o, uint64_t seed) {
    memset(g, 0, sizeof *g);
    cl_error err = {0};
    cl_config c;
    tiny_cfg(&c, 8, 12);
    if (fake_model(&g->model, &c)) return -1;
    /* larger weights than 0.02 so CondLoRA's A_l, B_l are not tiny */
    cl_rng rng;
    cl_rng_seed(&rng, seed + 1);
    for (int l = 0; l < 2; l++)
        for (int m = 0; m < CL_MOD_COUNT; m++) {
            cl_linear *lin = &g->model.layers[l].lin[m];
            for (int i = 0; i < lin->d_out * lin->d_in; i++) lin->w[i] = (float)(0.4 * cl_rng_normal(&rng));
        }
    if (cl_adapter_create(&g->ad, o, &g->model, &err) || cl_adapter_register(g->ad, &g->p, &err) ||
        cl_params_alloc(&g->p, &err) || cl_adapter_bind(g->ad, &g->p, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    cl_adapter_init(g->ad, seed);
    /* every trainable value random and non-zero (B too) */
    for (int k = 0; k < g->p.n; k++) {
        const cl_param_tensor *t = &g->p.t[k];
        for (size_t i = 0; i < t->numel; i++) {
            float v = (float)(0.5 * cl_rng_normal(&rng));
            if (strstr(t->name, "log_alpha")) v = (float)(0.5 + 1.5 * cl_rng_normal(&rng));
            g->p.param[t->offset + i] = v;
        }
    }
    cl_adapter_materialise(g->ad);
    g->B = 2, g->S = 3, g->T = 6;
    for (int l = 0; l < 2; l++)
        for (int m = 0; m < CL_MOD_COUNT; m++) {
            cl_linear *lin = &g->model.layers[l].lin[m];
            g->x[l][m] = malloc(sizeof(float) * g->T * lin->d_in);
            g->R[l][m] = malloc(sizeof(float) * g->T * lin->d_out);
            for (int i = 0; i < g->T * lin->d_in; i++) g->x[l][m][i] = (float)cl_rng_normal(&rng);
            for (int i = 0; i < g->T * lin->d_out; i++) g->R[l][m][i] = (float)cl_rng_normal(&rng);
        }
    g->y = malloc(sizeof(float) * g->T * 64);
    g->dx = malloc(sizeof(float) * g->T * 64);
    return 0;
}

static void rig_free(rig *g) {
    for (int l = 0; l < 2; l++)
        for (int m = 0; m < CL_MOD_COUNT; m++) free(g->x[l][m]), free(g->R[l][m]);
    free(g->y), free(g->dx);
    cl_adapter_free(g->ad);
    cl_params_free(&g->p);
    fake_model_free(&g->model);
}

/* loss in double; with grads = 1 also runs backward (reverse order) and the extra loss gradient */
static double rig_loss(rig *g, int grads, float dropout_on) {
    cl_lin_hook h = cl_adapter_hook(g->ad);
    cl_adapter_materialise(g->ad);
    cl_adapter_begin_batch(g->ad, g->B, g->S, 77, NULL);
    double L = 0;
    for (int l = 0; l < 2; l++)
        for (int m = 0; m < CL_MOD_COUNT; m++) {
            if (!h.adapted(h.ctx, l, (cl_module)m)) continue;
            int dout = g->model.layers[l].lin[m].d_out;
            memset(g->y, 0, sizeof(float) * g->T * dout);
            h.forward(h.ctx, l, (cl_module)m, g->x[l][m], g->y, g->T, 1);
            for (int i = 0; i < g->T * dout; i++) L += (double)g->y[i] * g->R[l][m][i];
            if (grads) { /* backward right after forward of the same module keeps SaLoRA's gates of this module */
                memset(g->dx, 0, sizeof(float) * g->T * 64);
                h.backward(h.ctx, l, (cl_module)m, g->x[l][m], g->R[l][m], g->dx, g->T);
            }
        }
    L += cl_adapter_extra_loss(g->ad, grads ? 1.0f : 0.0f);
    return L;
}

/* checks every tensor of P by central differences; returns the worst relative error */
static double fd_check_all(rig *g, const char *what, double eps, double tol) {
    cl_params_zero_grad(&g->p);
    rig_loss(g, 1, 0);
    float *ga = malloc(sizeof(float) * g->p.numel);
    memcpy(ga, g->p.grad, sizeof(float) * g->p.numel);
    double worst = 0;
    for (int k = 0; k < g->p.n; k++) {
        const cl_param_tensor *t = &g->p.t[k];
        double num = 0, den = 0;
        for (size_t i = 0; i < t->numel; i++) {
            float *w = &g->p.param[t->offset + i], w0 = *w;
            *w = (float)(w0 + eps);
            double lp = rig_loss(g, 0, 0);
            *w = (float)(w0 - eps);
            double lm = rig_loss(g, 0, 0);
            *w = w0;
            double fd = (lp - lm) / (2 * eps), an = ga[t->offset + i];
            num += (fd - an) * (fd - an), den += fd * fd;
        }
        double rel = sqrt(num) / (sqrt(den) + 1e-12);
        if (den == 0) rel = sqrt(num);
        if (rel > worst) worst = rel;
        CHECK(rel < tol, "%s: tensor %s: relative gradient error %.3g (|g_fd| %.3g)", what, t->name, rel, sqrt(den));
    }
    free(ga);
    return worst;
}

/* d loss / d x of one module by central differences against hook->backward's dx */
static void fd_check_dx(rig *g, const char *what, int l, cl_module m) {
    cl_lin_hook h = cl_adapter_hook(g->ad);
    if (!h.adapted(h.ctx, l, m)) return;
    int din = g->model.layers[l].lin[m].d_in, dout = g->model.layers[l].lin[m].d_out;
    cl_adapter_materialise(g->ad);
    cl_adapter_begin_batch(g->ad, g->B, g->S, 77, NULL);
    memset(g->y, 0, sizeof(float) * g->T * dout);
    h.forward(h.ctx, l, m, g->x[l][m], g->y, g->T, 1);
    memset(g->dx, 0, sizeof(float) * g->T * din);
    cl_params_zero_grad(&g->p);
    h.backward(h.ctx, l, m, g->x[l][m], g->R[l][m], g->dx, g->T);
    double num = 0, den = 0, eps = 1e-2;
    for (int i = 0; i < g->T * din; i++) {
        float x0 = g->x[l][m][i];
        double lv[2];
        for (int s = 0; s < 2; s++) {
            g->x[l][m][i] = (float)(x0 + (s ? -eps : eps));
            memset(g->y, 0, sizeof(float) * g->T * dout);
            h.forward(h.ctx, l, m, g->x[l][m], g->y, g->T, 1);
            lv[s] = 0;
            for (int j = 0; j < g->T * dout; j++) lv[s] += (double)g->y[j] * g->R[l][m][j];
        }
        g->x[l][m][i] = x0;
        double fd = (lv[0] - lv[1]) / (2 * eps);
        num += (fd - g->dx[i]) * (fd - g->dx[i]), den += fd * fd;
    }
    double rel = sqrt(num) / (sqrt(den) + 1e-12);
    CHECK(rel < 2e-3, "%s: dx of layer %d %s: relative error %.3g", what, l, cl_module_names[m], rel);
}

static void run_method(const char *what, cl_adapter_opts *o, double eps, double tol) {
    rig g;
    if (rig_make(&g, o, 5)) {
        CHECK(0, "%s: setup failed", what);
        return;
    }
    if (o->method == CL_METHOD_SALORA) { /* non-zero Lagrange multipliers, target below the expected L0 */
        for (int s = 0; s < 3; s++) cl_adapter_post_step(g.ad, 90 + s, 100);
        cl_adapter_stats st;
        cl_adapter_stats_get(g.ad, &st);
        CHECK(st.lambda1 != 0 && st.lambda2 != 0, "%s: multipliers moved (%g, %g)", what, st.lambda1, st.lambda2);
    }
    fd_check_all(&g, what, eps, tol);
    fd_check_dx(&g, what, 0, CL_MOD_QUERY);
    fd_check_dx(&g, what, 1, CL_MOD_VALUE);
    fd_check_dx(&g, what, 1, CL_MOD_INTER);
    rig_free(&g);
}

TEST(fd_lora) {
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, CL_METHOD_LORA);
    o.r = 3, o.alpha = 6, o.target_modules = "query,value,intermediate.dense,output.dense";
    run_method("lora", &o, 1e-2, 2e-3);
    o.dropout = 0.3f, o.rslora = 1;
    run_method("lora dropout rslora", &o, 1e-2, 2e-3);
}

TEST(fd_condlora) {
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, CL_METHOD_CONDLORA);
    o.r = 3, o.alpha = 6, o.target_modules = "query,key,value,attention.output.dense";
    run_method("condlora code", &o, 1e-2, 2e-3);
    o.condlora_paper = 1;
    run_method("condlora paper", &o, 1e-2, 2e-3);
    o.condlora_paper = 0, o.condlora_use_x = 1;
    run_method("condlora use_x type1", &o, 1e-2, 2e-3);
    o.condlora_use_x = 2;
    run_method("condlora use_x type2", &o, 1e-2, 2e-3);
    o.condlora_use_x = 0, o.dropout = 0.25f;
    run_method("condlora dropout", &o, 1e-2, 2e-3);
}

TEST(fd_salora) {
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, CL_METHOD_SALORA);
    o.r = 3, o.alpha = 6, o.target_modules = "query,value,output.dense";
    o.salora_budget = 0.3f, o.salora_lambda_lr = 2.0f, o.salora_orth = 0.1f;
    run_method("salora", &o, 1e-3, 5e-3);
}

TEST(fd_adalora) {
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, CL_METHOD_ADALORA);
    o.r = 4, o.ada_target_r = 2, o.alpha = 8, o.target_modules = "query,value,intermediate.dense";
    run_method("adalora", &o, 1e-3, 5e-3);
}

int main(void) {
    RUN(fd_lora);
    RUN(fd_condlora);
    RUN(fd_salora);
    RUN(fd_adalora);
    return tst_summary(__FILE__);
}
