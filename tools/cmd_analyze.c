/* condlora analyze conversion|similarity: the analysis of Kim et al. 2024 (METHODS.md section 3) on trained
 * adapters in PEFT's format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/peft_io.h"
#include "analysis/conversion.h"
#include "commands.h"
#include "core/error.h"
#include "model/model.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: condlora analyze conversion --model DIR --adapter DIR --out DIR [options]\n"
            "       condlora analyze similarity [--model DIR] --adapter DIR_X --adapter DIR_Y --out DIR [options]\n"
            "\n"
            "conversion: for every adapted layer l and module with square W0, the conversion matrices\n"
            "  C_A = W0^-1 A^T, C_B = W0^-1 B and C_BA = W0^-1 B A (LAPACK LU solves; cond(W0) reported, singular W0\n"
            "  refused), the subspace similarity phi between every pair of layers, and the same for Gaussian\n"
            "  matrices of the same shape. Writes conversion.json, conversion.safetensors, heat maps (SVG, PNG) and\n"
            "  report.md into --out.\n"
            "similarity: phi per layer between two adapters of the same base model (e.g. LoRA and CondLoRA): A with\n"
            "  right singular vectors, B and dW = BA with left ones, with a random-orthogonal baseline; printed like\n"
            "  Table 3 of the paper. Writes similarity.json, <module>_similarity.svg/.png and report.md.\n"
            "\n"
            "options:\n"
            "  --i N, --j N        numbers of singular vectors compared (default r, the rank)\n"
            "  --side left|right   conversion only: left (default) or right singular vectors\n"
            "  --seed N            baseline seed (default 0)\n"
            "  --modules LIST      comma-separated modules to analyse (default: every adapted module), e.g.\n"
            "                      query,value\n"
            "  --save-cba          conversion only: also store each d x d C_BA in conversion.safetensors\n");
}

static int parse_int(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo || x > hi) {
        fprintf(stderr, "condlora analyze: %s: expected an integer in [%ld, %ld], got '%s'\n", opt, lo, hi,
                v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_modules(const char *s, unsigned *mask) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    *mask = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        cl_module m;
        if (cl_module_parse(tok, &m) != 0) {
            fprintf(stderr,
                    "condlora analyze: --modules: unknown module '%s' (query, key, value, attention.output.dense, "
                    "intermediate.dense, output.dense)\n",
                    tok);
            return -1;
        }
        *mask |= 1u << m;
    }
    if (!*mask) {
        fprintf(stderr, "condlora analyze: --modules: empty list\n");
        return -1;
    }
    return 0;
}

int cmd_analyze(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *what = argv[1];
    int conv = !strcmp(what, "conversion");
    if (!conv && strcmp(what, "similarity")) {
        fprintf(stderr, "condlora analyze: unknown analysis '%s' (conversion or similarity)\n\n", what);
        usage(stderr);
        return 2;
    }
    const char *model_dir = NULL, *out = NULL, *adapters[2] = {NULL, NULL};
    int nad = 0;
    cl_an_opts o;
    cl_an_opts_default(&o);
    for (int k = 2; k < argc; k++) {
        const char *a = argv[k];
        const char *v = k + 1 < argc ? argv[k + 1] : NULL;
        long x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--save-cba")) { o.keep_cba = 1; continue; }
        if (!v) {
            fprintf(stderr, "condlora analyze: %s needs a value\n", a);
            return 2;
        }
        k++;
        if (!strcmp(a, "--model")) model_dir = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--adapter")) {
            if (nad == 2) {
                fprintf(stderr, "condlora analyze: at most two --adapter\n");
                return 2;
            }
            adapters[nad++] = v;
        } else if (!strcmp(a, "--i") || !strcmp(a, "-i")) {
            if (parse_int("--i", v, 1, 1 << 20, &x)) return 2;
            o.i = (int)x;
        } else if (!strcmp(a, "--j") || !strcmp(a, "-j")) {
            if (parse_int("--j", v, 1, 1 << 20, &x)) return 2;
            o.j = (int)x;
        } else if (!strcmp(a, "--seed")) {
            if (parse_int("--seed", v, 0, 0x7fffffffL, &x)) return 2;
            o.seed = (uint64_t)x;
        } else if (!strcmp(a, "--side")) {
            if (cl_sv_side_parse(v, &o.side)) {
                fprintf(stderr, "condlora analyze: --side: expected left or right, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--modules")) {
            if (parse_modules(v, &o.module_mask)) return 2;
        } else {
            fprintf(stderr, "condlora analyze: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!out || (conv && (!model_dir || nad != 1)) || (!conv && nad != 2)) {
        fprintf(stderr, conv ? "condlora analyze conversion: --model, one --adapter and --out are required\n"
                             : "condlora analyze similarity: two --adapter and --out are required\n");
        return 2;
    }
    cl_error err = {0};
    cl_weights model;
    memset(&model, 0, sizeof model);
    cl_lora_adapter ad[2];
    memset(ad, 0, sizeof ad);
    int rc = 0, have_model = 0;
    if (model_dir) {
        cl_load_opts lo = {0, 0, 0};
        if ((rc = cl_model_load(&model, model_dir, &lo, &err))) goto done;
        have_model = 1;
    }
    char resolved[2][4096];
    for (int k = 0; k < nad; k++) {
        /* a PEFT adapter directory, or a condlora run directory (its best/), as predict, merge and eval take */
        if ((rc = cl_peft_resolve_dir(adapters[k], resolved[k], sizeof resolved[k], &err))) goto done;
        adapters[k] = resolved[k];
        if ((rc = cl_lora_adapter_load(&ad[k], adapters[k], &err))) goto done;
        if (have_model && (rc = cl_lora_adapter_check(&ad[k], &model, &err))) goto done;
    }
    if (conv) {
        cl_conv_result res;
        if ((rc = cl_conversion_run(&model, &ad[0], &o, &res, &err))) goto done;
        rc = cl_conversion_write(&res, &ad[0], model_dir, out, &err);
        if (!rc) {
            printf("%-24s %6s %10s %10s %10s %12s\n", "module", "layers", "phi C_A", "phi C_B", "phi C_BA",
                   "max cond W0");
            for (int k = 0; k < res.nmod; k++) {
                const cl_conv_module *cm = &res.mods[k];
                double cmax = 0;
                for (int l = 0; l < cm->n; l++)
                    if (cm->e[l].cond1 > cmax) cmax = cm->e[l].cond1;
                printf("%-24s %6d %10.4f %10.4f %10.4f %12.4g\n", cl_module_names[cm->mod], cm->n, cm->mean[0],
                       cm->mean[1], cm->mean[2], cmax);
            }
            printf("%-24s %6d %10.4f %10.4f %10.4f\n", "Gaussian baseline", res.n_base, res.base_mean[0],
                   res.base_mean[1], res.base_mean[2]);
            printf("(mean phi over pairs of layers; random subspaces: %.4f)\nwrote %s/conversion.json, "
                   "conversion.safetensors, heat maps and report.md\n",
                   res.expected_random, out);
        }
        cl_conv_result_free(&res);
    } else {
        cl_sim_result res;
        if ((rc = cl_similarity_run(&ad[0], &ad[1], &o, &res, &err))) goto done;
        rc = cl_similarity_write(&res, adapters[0], adapters[1], out, &err);
        if (!rc) {
            cl_similarity_print(&res, stdout);
            printf("wrote %s/similarity.json, heat maps and report.md\n", out);
        }
        cl_sim_result_free(&res);
    }
done:
    if (rc) fprintf(stderr, "condlora analyze %s: %s\n", what, err.msg);
    for (int k = 0; k < 2; k++) cl_lora_adapter_free(&ad[k]);
    if (have_model) cl_model_free(&model);
    return rc ? 1 : 0;
}
