/* The analysis of [P1] (METHODS.md section 3) on trained adapters in Hugging Face PEFT's format.
 *
 * Adapter directory: adapter_config.json (r, lora_alpha, target_modules, fan_in_fan_out, use_rslora, peft_type) and
 * adapter_model.safetensors with keys "<anything>.encoder.layer.L.<module path>.lora_A[.NAME].weight" (r x d_in) and
 * "...lora_B[.NAME].weight" (d_out x r) (<anything> is e.g. "base_model.model.roberta"; module paths
 * attention.self.query|key|value, attention.output.dense, intermediate.dense, output.dense). AdaLoRA's
 * "...lora_E" (r x 1) is folded into A (A <- diag(E) A, so B A is PEFT's B (A * E) up to the scale) and the
 * components it pruned (E_i = 0) are dropped, so each pair's r is its effective rank. Other tensors
 * (the classifier, modules_to_save) are ignored. CondLoRA runs are read through their materialised per-layer
 * A_l = ThA W^T, B_l = W ThB^T, which is what condlora and the CondLoRA fork export.
 *
 * Conversion matrices of layer l and module m with frozen square W = W0[m, l] (d x d, PyTorch (d_out, d_in)):
 *   C_A = W^-1 A^T (d x r),  C_B = W^-1 B (d x r),  C_BA = W^-1 B A = C_B A (d x d)
 * from one LU factorisation of W per module (dgetrf + dgetrs on [A^T | B]); the 1-norm condition number of W is
 * reported (dgecon) and a singular W refused. Layer-by-layer phi matrices: PHI[a][b] = phi(C_X(layer a),
 * C_X(layer b), i, j) with left or right singular vectors; summary = mean of the strict upper triangle. Baseline:
 * seeded i.i.d. N(0, 1) matrices of the shape of C_A and C_B (d x r); for C_BA, the product of two Gaussian
 * factors (d x r)(r x d), the shape and rank of C_BA (its top singular subspaces are uniformly distributed, as those
 * of a full Gaussian d x d matrix are, at O(d r^2) instead of O(d^3)). Expected phi of random subspaces:
 * i j / (d min(i, j)).
 *
 * Similarity of two adapters on the same base model, per layer: A with right singular vectors, B and B A with left
 * ones (as [P1] Table 3), against a random-orthogonal baseline (Gaussian matrices of the same shapes, whose singular
 * subspaces are uniformly distributed). */
#ifndef CL_ANALYSIS_CONVERSION_H
#define CL_ANALYSIS_CONVERSION_H
#include <stdint.h>
#include <stdio.h>
#include "analysis/linalg.h"
#include "core/error.h"
#include "model/model.h"

#define CL_AN_MAX_LAYERS 256

typedef struct {
    int present;      /* 1 when the adapter adapts (layer, module) */
    int r, d_out, d_in;
    float *a;         /* r x d_in (A, with AdaLoRA's E folded in) */
    float *b;         /* d_out x r */
} cl_lora_pair;

typedef struct {
    char dir[1024];
    char peft_type[32];
    int r;                 /* adapter_config.json "r" */
    double alpha;          /* "lora_alpha" */
    int rslora;            /* "use_rslora" */
    int has_e;             /* AdaLoRA lora_E found and folded into A */
    int num_layers;        /* 1 + the largest layer index found */
    int mod_present[CL_MOD_COUNT];
    cl_lora_pair *pairs;   /* num_layers x CL_MOD_COUNT */
} cl_lora_adapter;

/* Loads an adapter directory (see above). Messages name the file and the tensor. */
int cl_lora_adapter_load(cl_lora_adapter *a, const char *dir, cl_error *err);
void cl_lora_adapter_free(cl_lora_adapter *a);
const cl_lora_pair *cl_lora_adapter_get(const cl_lora_adapter *a, int layer, cl_module m); /* NULL if absent */
/* Checks every pair's shapes against the model ("maybe the adapter was trained on another base model?"). */
int cl_lora_adapter_check(const cl_lora_adapter *a, const cl_weights *model, cl_error *err);

/* Matrix types of the analysis. */
typedef enum { CL_AN_A = 0, CL_AN_B = 1, CL_AN_BA = 2, CL_AN_NTYPES = 3 } cl_an_type;
extern const char *const cl_an_type_names[CL_AN_NTYPES]; /* "A", "B", "BA" */

typedef struct {
    int i, j;              /* phi's column counts; 0 = the rank r of each matrix (the default, as [P1]) */
    cl_sv_side side;       /* conversion: left (default); similarity ignores it (A right, B and BA left) */
    uint64_t seed;         /* baseline RNG seed */
    unsigned module_mask;  /* bit m set: analyse module m; 0 = every module the adapter has */
    int keep_cba;          /* conversion: keep each d x d C_BA in the result (memory d^2 per layer and module) */
} cl_an_opts;
void cl_an_opts_default(cl_an_opts *o); /* i = j = 0 (r), left, seed 0, all modules, keep_cba 0 */

typedef struct {
    int layer;
    int d, r;
    double cond1;          /* estimated 1-norm condition number of W */
    double *ca, *cb;       /* d x r each */
    double *cba;           /* d x d when keep_cba, else NULL */
} cl_conv_entry;

typedef struct {
    cl_module mod;
    int n;                 /* adapted layers of this module */
    int layers[CL_AN_MAX_LAYERS];
    cl_conv_entry *e;      /* n */
    double *phi[CL_AN_NTYPES];   /* n x n each */
    double mean[CL_AN_NTYPES];   /* mean of the strict upper triangle (NaN when n < 2) */
    int i, j, dim;         /* the resolved i, j and the dimension of the singular vectors */
} cl_conv_module;

typedef struct {
    int nmod;
    cl_conv_module mods[CL_MOD_COUNT];
    /* Gaussian baseline of n_base matrices (the largest n of the modules) of the first module's shape */
    int n_base, base_d, base_r;
    double *base_phi[CL_AN_NTYPES];
    double base_mean[CL_AN_NTYPES];
    double expected_random; /* i j / (dim min(i, j)) for the baseline's i, j */
    int i, j;
    cl_sv_side side;
    uint64_t seed;
} cl_conv_result;

int cl_conversion_run(const cl_weights *model, const cl_lora_adapter *ad, const cl_an_opts *o, cl_conv_result *res,
                      cl_error *err);
void cl_conv_result_free(cl_conv_result *res);

typedef struct {
    cl_module mod;
    int n;
    int layers[CL_AN_MAX_LAYERS];
    double *phi[CL_AN_NTYPES];   /* n values each: phi(X_l, Y_l) */
    double *base[CL_AN_NTYPES];  /* n values each: the random-orthogonal baseline */
    double mean[CL_AN_NTYPES], base_mean[CL_AN_NTYPES];
    int d, r;
} cl_sim_module;

typedef struct {
    int nmod;
    cl_sim_module mods[CL_MOD_COUNT];
    int i, j;
    uint64_t seed;
} cl_sim_result;

/* Per-layer phi between adapters X and Y (same layers, modules and shapes; ranks may differ). */
int cl_similarity_run(const cl_lora_adapter *x, const cl_lora_adapter *y, const cl_an_opts *o, cl_sim_result *res,
                      cl_error *err);
void cl_sim_result_free(cl_sim_result *res);

/* Writers: OUT_DIR/conversion.json (every phi matrix, condition numbers, summaries), conversion.safetensors (C_A,
 * C_B and, when kept, C_BA, F64, keys "<module>.layer.L.C_A"), heat maps <module>_<A|B|BA>.svg/.png and
 * baseline_<A|B|BA>.svg/.png, and report.md embedding them; similarity.json, similarity.svg/.png and report.md for
 * the similarity. All files are written crash-safely. label_x/label_y name the adapters in the report. */
int cl_conversion_write(const cl_conv_result *res, const cl_lora_adapter *ad, const char *model_dir,
                        const char *out_dir, cl_error *err);
int cl_similarity_write(const cl_sim_result *res, const char *label_x, const char *label_y, const char *out_dir,
                        cl_error *err);
/* Prints the similarity like [P1] Table 3 (rows A, B, dW per module, one column per layer, baseline rows). */
void cl_similarity_print(const cl_sim_result *res, FILE *f);

#endif
