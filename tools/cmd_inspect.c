/* condlora inspect PATH: what is in a .safetensors file, a model directory, or a config.json.
 *   file:      tensor count, parameter count, dtype histogram, metadata; --tensors lists every tensor.
 *   directory: the configuration (model_type, layers, hidden, heads, FFN, vocab, head and labels), the parameter
 *              counts the loader found (encoder without pooler/head, and total), dtypes, missing / unexpected
 *              tensors and the loader's notes; --tensors lists the tensors of every weight file.
 *   config:    the configuration and the encoder parameter count by formula (no weights read).
 * Exit status: 0 on success, 1 on any error (the message names the file and the problem), 2 on usage errors. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/model.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: condlora inspect [--tensors] PATH\n"
            "PATH is a .safetensors file, a model directory (config.json + model.safetensors or a sharded\n"
            "model.safetensors.index.json) or a config.json.\n"
            "  file:      tensor and parameter counts, dtypes, __metadata__\n"
            "  directory: architecture, layers, hidden, heads, FFN, vocab, head and labels, parameter counts\n"
            "             (encoder without pooler and head, and total), dtypes, missing/unexpected tensors\n"
            "  config:    the architecture and the encoder parameter count by formula\n"
            "options:\n"
            "  --tensors  list every tensor: name, dtype, shape, byte offsets in the data section\n"
            "  --help     this text\n"
            "Exit status: 0 ok, 1 error (malformed or missing input), 2 usage error.\n");
}

static const char *commas(uint64_t v, char *buf) { /* buf >= 32 */
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v), o = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
    return buf;
}

static void shape_str(const cl_st_tensor *t, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->ndim && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, d ? ", %" PRId64 : "%" PRId64, t->shape[d]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

typedef struct {
    uint64_t tensors[CL_DT_COUNT], params[CL_DT_COUNT];
} dt_hist;

static void hist_add(dt_hist *h, const cl_safetensors *st) {
    for (int i = 0; i < st->n; i++) {
        h->tensors[st->t[i].dtype]++;
        h->params[st->t[i].dtype] += st->t[i].numel;
    }
}

static void hist_print(const dt_hist *h) {
    char b[32];
    printf("dtypes:");
    int any = 0;
    for (int d = CL_DT_COUNT - 1; d >= 0; d--)
        if (h->tensors[d]) {
            printf("%s %s %" PRIu64 " tensor%s, %s elements", any ? ";" : "", cl_dtype_name((cl_dtype)d),
                   h->tensors[d], h->tensors[d] == 1 ? "" : "s", commas(h->params[d], b));
            any = 1;
        }
    printf("%s\n", any ? "" : " (none)");
}

/* A guess at what a bare file holds, from its tensor names (the architecture table's prefixes and module names). */
static const char *guess_kind(const cl_safetensors *st, char *buf, size_t n) {
    int lora = 0;
    const cl_arch_desc *pre = NULL, *bare = NULL;
    for (int i = 0; i < st->n; i++) {
        const char *nm = st->t[i].name;
        if (strstr(nm, "lora_")) lora = 1;
        int prefixed = 0;
        const cl_arch_desc *a = cl_arch_of_tensor_name(nm, &prefixed);
        if (a && prefixed && !pre) pre = a;
        if (a && !prefixed && !bare) bare = a;
    }
    if (lora) return "adapter weights (LoRA-style)";
    if (pre) snprintf(buf, n, "%s weights", pre->name);
    else if (bare) snprintf(buf, n, "%s-style encoder weights (no base-model prefix)", bare->name);
    else snprintf(buf, n, "tensors");
    return buf;
}

static void list_tensors(const cl_safetensors *st) {
    char sh[256];
    size_t w = 4;
    for (int i = 0; i < st->n; i++) {
        size_t l = strlen(st->t[i].name);
        if (l > w) w = l;
    }
    if (w > 80) w = 80;
    printf("%-*s  %-7s  %-20s  %s\n", (int)w, "name", "dtype", "shape", "data_offsets");
    for (int i = 0; i < st->n; i++) {
        const cl_st_tensor *t = &st->t[i];
        shape_str(t, sh, sizeof sh);
        printf("%-*s  %-7s  %-20s  [%" PRIu64 ", %" PRIu64 "]\n", (int)w, t->name, cl_dtype_name(t->dtype), sh,
               t->begin, t->end);
    }
}

static void print_meta(const cl_safetensors *st) {
    printf("metadata: %d entr%s\n", st->nmeta, st->nmeta == 1 ? "y" : "ies");
    for (int i = 0; i < st->nmeta; i++) printf("  %s = %s\n", st->meta_keys[i], st->meta_vals[i]);
}

static int inspect_file(const char *path, int tensors) {
    cl_safetensors st;
    cl_error err = {0};
    if (cl_st_open(&st, path, &err)) {
        fprintf(stderr, "condlora inspect: %s\n", err.msg);
        return 1;
    }
    char b[32], b2[32];
    uint64_t params = 0;
    for (int i = 0; i < st.n; i++) params += st.t[i].numel;
    dt_hist h = {0};
    hist_add(&h, &st);
    printf("file: %s\n", path);
    printf("size: %s bytes (header %s bytes)\n", commas(st.size, b), commas(st.header_len, b2));
    char kind[96];
    printf("contents: %s\n", guess_kind(&st, kind, sizeof kind));
    printf("tensors: %d\n", st.n);
    printf("parameters: %s\n", commas(params, b));
    hist_print(&h);
    print_meta(&st);
    if (tensors) list_tensors(&st);
    cl_st_close(&st);
    return 0;
}

static const char *act_name(cl_act a) {
    return a == CL_ACT_GELU ? "gelu (erf)" : a == CL_ACT_GELU_TANH ? "gelu (tanh)" : a == CL_ACT_RELU ? "relu" : "?";
}

static void print_config(const cl_config *c) {
    char b[32];
    printf("model_type: %s (%s encoder)\n", c->model_type, cl_arch_get(c->arch)->name);
    printf("layers: %d  hidden: %d  heads: %d  FFN: %d  vocab: %s\n", c->num_layers, c->hidden_size, c->num_heads,
           c->intermediate_size, commas((uint64_t)c->vocab_size, b));
    printf("max positions: %d  type vocab: %d  pad id: %d  layer-norm eps: %g  activation: %s\n", c->max_position,
           c->type_vocab_size, c->pad_token_id, (double)c->layer_norm_eps, act_name(c->act));
    if (c->rel_buckets)
        printf("relative attention bias: %d buckets, max distance %d (shared by every layer)\n", c->rel_buckets,
               cl_arch_get(c->arch)->rel_max_distance);
    if (c->num_labels) {
        printf("labels: %d", c->num_labels);
        if (c->id2label) {
            printf(" (");
            for (int i = 0; i < c->num_labels; i++) printf("%s%d=%s", i ? ", " : "", i, c->id2label[i]);
            printf(")");
        }
        if (c->problem_type[0]) printf(", problem type %s", c->problem_type);
        printf("\n");
    } else printf("labels: none named in the config\n");
}

static int inspect_config(const char *path) {
    cl_config c;
    cl_error err = {0};
    if (cl_config_load(&c, path, &err)) {
        fprintf(stderr, "condlora inspect: %s\n", err.msg);
        return 1;
    }
    char b[32];
    printf("config: %s\n", path);
    print_config(&c);
    printf("parameters (by formula): encoder without pooler and head %s\n", commas(cl_config_n_params_encoder(&c), b));
    cl_config_free(&c);
    return 0;
}

static const char *head_name(cl_head_kind k) {
    const cl_head_layout *h = cl_head_layout_of(k);
    return h ? h->description : "none";
}

static int inspect_dir(const char *dir, int tensors) {
    cl_weights m;
    cl_error err = {0};
    cl_load_opts opts = {0};
    if (cl_model_load(&m, dir, &opts, &err)) {
        fprintf(stderr, "condlora inspect: %s\n", err.msg);
        return 1;
    }
    char b[32];
    const cl_config *c = &m.cfg;
    printf("directory: %s\n", dir);
    print_config(c);
    printf("head: %s", head_name(m.head));
    if (m.head != CL_HEAD_NONE)
        printf(", %d label%s, %s", m.head_out.d_out, m.head_out.d_out == 1 ? "" : "s",
               m.head_from_file ? "read from the checkpoint" : "freshly initialised");
    printf("\npooler: %s\n", m.pooler.w ? "present" : "absent");
    printf("parameters: encoder without pooler and head %s\n", commas(m.n_params_encoder, b));
    printf("parameters: total %s\n", commas(m.n_params_total, b));
    const cl_load_report *r = cl_model_load_report(&m);
    int rc = 0;
    if (r) {
        printf("weights: %d file%s, dtype %s\n", r->n_files, r->n_files == 1 ? "" : "s", r->dtype);
        dt_hist h = {0};
        for (int f = 0; f < r->n_files; f++) {
            cl_safetensors st;
            if (cl_st_open(&st, r->files[f], &err)) {
                fprintf(stderr, "condlora inspect: %s\n", err.msg);
                rc = 1;
                continue;
            }
            hist_add(&h, &st);
            printf("  %s: %d tensors, %d metadata entr%s\n", r->files[f], st.n, st.nmeta, st.nmeta == 1 ? "y" : "ies");
            for (int i = 0; i < st.nmeta; i++) printf("    %s = %s\n", st.meta_keys[i], st.meta_vals[i]);
            if (tensors) list_tensors(&st);
            cl_st_close(&st);
        }
        hist_print(&h);
        printf("missing (optional, initialised): %d\n", r->n_missing);
        for (int i = 0; i < r->n_missing; i++) printf("  %s\n", r->missing[i]);
        printf("unexpected (ignored): %d\n", r->n_unexpected);
        for (int i = 0; i < r->n_unexpected; i++) printf("  %s\n", r->unexpected[i]);
        if (r->n_notes) printf("notes:\n");
        for (int i = 0; i < r->n_notes; i++) printf("  %s\n", r->notes[i]);
    }
    cl_model_free(&m);
    return rc;
}

int cmd_inspect(int argc, char **argv) {
    static const struct option lo[] = {{"tensors", 0, 0, 't'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int tensors = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "th", lo, NULL)) != -1) {
        if (c == 't') tensors = 1;
        else if (c == 'h') { usage(stdout); return 0; }
        else {
            fprintf(stderr, "condlora inspect: unknown option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "condlora inspect: expected exactly one PATH\n");
        usage(stderr);
        return 2;
    }
    const char *path = argv[optind];
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "condlora inspect: %s: no such file or directory\n", path);
        return 1;
    }
    if (S_ISDIR(sb.st_mode)) return inspect_dir(path, tensors);
    size_t l = strlen(path);
    if (l >= 5 && !strcmp(path + l - 5, ".json")) return inspect_config(path);
    return inspect_file(path, tensors);
}
