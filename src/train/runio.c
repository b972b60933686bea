/* Run files: run.json, checkpoints (PEFT adapter + head, adapter_config.json, condlora_state), reload, curve.svg. */
#include <cblas.h>
#include <dirent.h>
#include <signal.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "core/jsonio.h"
#include "core/log.h"
#include "core/util.h"
#include "adapters/peft_io.h"
#include "io/safetensors.h"
#include "model/gemm_bf16.h" /* cl_precision_parse */
#include "train/options.h"
#include "train/train_internal.h"


static cJSON *metrics_obj(const cl_metric_set *m) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < m->n; i++)
        if (isfinite(m->m[i].value)) cJSON_AddNumberToObject(o, m->m[i].name, m->m[i].value);
        else cJSON_AddNullToObject(o, m->m[i].name);
    return o;
}

void cl_run_json_metrics(FILE *f, const cl_metric_set *m) {
    fprintf(f, "\"metrics\":{");
    for (int i = 0; i < m->n; i++) {
        if (isfinite(m->m[i].value)) fprintf(f, "%s\"%s\":%.10g", i ? "," : "", m->m[i].name, m->m[i].value);
        else fprintf(f, "%s\"%s\":null", i ? "," : "", m->m[i].name);
    }
    fprintf(f, "}");
}

/* a path option: KEY absolute, KEY_rel relative to the run directory (so that a run moved together with its data
 * still finds it), "" stays "" */
static void add_path(cJSON *op, const char *key, const char *path, const char *run_dir) {
    char abs[4096], rel[4096], k[64];
    if (!path || !*path) {
        cJSON_AddStringToObject(op, key, "");
        return;
    }
    cJSON_AddStringToObject(op, key, cl_path_abs(path, abs, sizeof abs) ? path : abs);
    snprintf(k, sizeof k, "%s_rel", key);
    if (run_dir && !cl_path_relative(run_dir, path, rel, sizeof rel)) cJSON_AddStringToObject(op, k, rel);
}

/* result.ranks: the rank of every adapted (layer, module) of the parameters the run ends with (the best
 * checkpoint's): SaLoRA's components with a non-zero evaluation gate, AdaLoRA's kept triplets, r for LoRA and
 * CondLoRA. One array per adapted module type, indexed by layer (null where that layer is not adapted), and the
 * kept and full totals: the learned structure, without opening the adapter. */
static void add_ranks(cJSON *rs, const cl_tctx *c) {
    int L = c->model.cfg.num_layers, n = L * CL_MOD_COUNT;
    int *rk = c->ad && L > 0 ? malloc((size_t)n * sizeof(int)) : NULL;
    if (!rk) return;
    int kept = cl_adapter_ranks(c->ad, rk);
    cJSON *ro = cJSON_AddObjectToObject(rs, "ranks");
    cJSON_AddNumberToObject(ro, "kept", kept);
    cJSON_AddNumberToObject(ro, "full", cl_adapter_full_rank(c->ad));
    for (int m = 0; m < CL_MOD_COUNT; m++) {
        int used = 0;
        for (int l = 0; l < L; l++) used |= rk[l * CL_MOD_COUNT + m] >= 0;
        if (!used) continue;
        cJSON *a = cJSON_AddArrayToObject(ro, cl_module_names[m]);
        for (int l = 0; l < L; l++) {
            int r = rk[l * CL_MOD_COUNT + m];
            cJSON_AddItemToArray(a, r < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(r));
        }
    }
    free(rk);
}

int cl_run_write_json(const cl_tctx *c, const char *path, const cl_train_result *res, const char *status,
                      cl_error *err) {
    const cl_train_opts *o = &c->o;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "status", status);
    cJSON_AddStringToObject(r, "run_id", c->run_id);
    cJSON *op = cJSON_AddObjectToObject(r, "options");
    cJSON *ad = cJSON_CreateObject();
    /* every option of the table (train/options.c), then what the run resolved */
    cl_train_options_to_json(o, op, ad, o->out_dir);
    cJSON_ReplaceItemInObjectCaseSensitive(op, "task", cJSON_CreateString(c->task->name));
    cJSON_ReplaceItemInObjectCaseSensitive(op, "threads", cJSON_CreateNumber(omp_get_max_threads()));
    if (o->train_file) { /* the user's own files: the problem as resolved, the label set inferred from train */
        cJSON_ReplaceItemInObjectCaseSensitive(op, "problem", cJSON_CreateString(cl_problem_name(c->utask.problem)));
        cJSON *ls = cJSON_AddArrayToObject(r, "labels");
        for (int k = 0; c->utask.labels && k < c->task->num_labels; k++)
            cJSON_AddItemToArray(ls, cJSON_CreateString(c->utask.labels[k]));
    } else {
        add_path(op, "task_dir", c->task_dir, o->out_dir);
    }
    /* the adapter's own record (PEFT-side names, per-module ranks), with the table's adapter options */
    cJSON *aj = cl_adapter_opts_json(&o->ad);
    for (cJSON *it = ad->child; it; it = it->next)
        if (!cJSON_ReplaceItemInObjectCaseSensitive(aj, it->string, cJSON_Duplicate(it, 1)))
            cJSON_AddItemToObject(aj, it->string, cJSON_Duplicate(it, 1));
    cJSON_Delete(ad);
    cJSON_AddItemToObject(op, "adapter", aj);
    cJSON *v = cJSON_AddObjectToObject(r, "versions");
    cJSON_AddStringToObject(v, "condlora", CONDLORA_VERSION);
    cJSON_AddStringToObject(v, "compiler", __VERSION__);
    cJSON_AddStringToObject(v, "openblas", openblas_get_config());
    if (o->bf16) /* which kernel ran the bf16 products: results differ in the order of fp32 additions */
        cJSON_AddStringToObject(v, "bf16_kernel", cl_bf16_amx() ? "amx+avx512bf16" : "avx512bf16");
    /* data parallelism: the processes that ran the steps of this invocation (1: one process) */
    cJSON_AddNumberToObject(r, "world_size", c->o.comm && c->o.comm->size > 1 ? c->o.comm->size : 1);
    if (c->o.comm && c->o.comm->size > 1 && c->comm_n > 0) { /* what the gradient sums cost (this invocation) */
        cJSON *dp = cJSON_AddObjectToObject(r, "data_parallel");
        cJSON_AddNumberToObject(dp, "allreduce_bytes_per_step", (double)c->P.numel * sizeof(float));
        cJSON_AddNumberToObject(dp, "allreduce_steps", (double)c->comm_n);
        cJSON_AddNumberToObject(dp, "allreduce_s_mean", c->comm_s / (double)c->comm_n);
    }
    cJSON *pc = cJSON_AddObjectToObject(r, "trainable_parameters");
    cJSON_AddNumberToObject(pc, "adapter", (double)c->P.count[CL_PART_ADAPTER]);
    cJSON_AddNumberToObject(pc, "head", (double)c->P.count[CL_PART_HEAD]);
    cJSON_AddNumberToObject(pc, "gate", (double)c->P.count[CL_PART_GATE]);
    cJSON_AddNumberToObject(pc, "total", (double)cl_params_count_total(&c->P));
    cJSON_AddNumberToObject(r, "model_parameters_encoder", (double)c->model.n_params_encoder);
    cJSON *d = cJSON_AddObjectToObject(r, "data");
    cJSON_AddNumberToObject(d, "train", (double)c->tr.n);
    cJSON_AddNumberToObject(d, "dev", (double)c->dev.n);
    cJSON_AddNumberToObject(d, "test", (double)c->test.n);
    cJSON_AddNumberToObject(d, "train_tokens", (double)c->tr.tokens);
    cJSON_AddNumberToObject(d, "train_truncated", c->tr.truncated);
    if (res && strcmp(status, "running")) {
        cJSON *rs = cJSON_AddObjectToObject(r, "result");
        cJSON_AddNumberToObject(rs, "steps", (double)res->steps);
        cJSON_AddNumberToObject(rs, "epochs_run", res->epochs_run);
        cJSON_AddBoolToObject(rs, "stopped_early", res->stopped_early);
        cJSON_AddNumberToObject(rs, "best_step", (double)res->best_step);
        cJSON_AddItemToObject(rs, "best_dev", metrics_obj(&res->best_dev));
        cJSON_AddStringToObject(rs, "main_metric", c->task->main_metric); /* the one model selection used */
        if (res->have_test) cJSON_AddItemToObject(rs, "test", metrics_obj(&res->test));
        cJSON_AddNumberToObject(rs, "final_train_loss", res->final_loss);
        cJSON_AddNumberToObject(rs, "wall_s", res->wall_s);
        cJSON_AddNumberToObject(rs, "train_s", res->train_s);
        cJSON_AddNumberToObject(rs, "examples_per_s", res->examples_per_s);
        cJSON_AddNumberToObject(rs, "tokens_per_s", res->tokens_per_s);
        cJSON_AddNumberToObject(rs, "peak_rss_mib", cl_peak_rss_kib() / 1024.0);
        add_ranks(rs, c);
    }
    int rc = cl_json_save(r, path, err);
    cJSON_Delete(r);
    return rc;
}

/* ---- reading run.json back ---- */

static int jnum(cJSON *o, const char *k, double *out) {
    cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(it)) return -1;
    *out = it->valuedouble;
    return 0;
}

int cl_run_read_opts(const char *path, cl_train_opts *o, char *buf, size_t left, char *run_id, cl_error *err) {
    char *text = NULL;
    size_t len = 0;
    int rc = cl_read_file(path, &text, &len, err);
    if (rc) return cl_err_prefix(err, "not a condlora run (no run.json)"), rc;
    cJSON *r = cJSON_ParseWithLength(text, len);
    free(text);
    cJSON *op = r ? cJSON_GetObjectItemCaseSensitive(r, "options") : NULL;
    cJSON *ad = op ? cJSON_GetObjectItemCaseSensitive(op, "adapter") : NULL;
    if (!op || !ad) {
        cJSON_Delete(r);
        return cl_errf(err, CL_EFORMAT, "%s: not a condlora run.json (no options.adapter object)", path);
    }
    cl_train_opts_default(o);
    char run_dir[4096];
    snprintf(run_dir, sizeof run_dir, "%s", path);
    char *slash = strrchr(run_dir, '/');
    if (slash) *slash = 0;
    else snprintf(run_dir, sizeof run_dir, ".");
    if (run_id) {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "run_id");
        snprintf(run_id, 33, "%s", cJSON_IsString(id) ? id->valuestring : "");
    }
    static const char *const required[] = {
        "model_dir", "protocol", "lr", "batch_size", "max_length", "seed", "max_eval", "max_train", "weight_decay",
        "warmup_ratio", "beta1", "beta2", "eps", "max_grad_norm", "epochs", "max_steps", "eval_every", "patience",
        "threads", "mega", "log_every", "method", "target_modules", "r", "alpha", "dropout", "rslora",
        "condlora_paper", "condlora_use_x", "condlora_lambda_x", "salora_budget", "salora_warmup", "salora_lambda_lr",
        "salora_orth", "salora_log_alpha_init", "ada_target_r", "ada_tinit", "ada_tfinal", "ada_deltaT", "ada_beta1",
        "ada_beta2", "ada_orth", NULL};
    rc = cl_train_options_from_json(o, op, ad, run_dir, &buf, &left, required, path, err);
    cJSON_Delete(r);
    if (rc) return rc;
    if (o->train_file) o->task = NULL; /* the user's own files ("task": "custom") */
    else if (!o->task || !o->data_dir)
        return cl_errf(err, CL_EFORMAT, "%s: run.json names neither a GLUE task and its data nor a training file",
                       path);
    /* one invocation's options do not carry over to the next */
    o->quiet = 0, o->stop_after = 0, o->overwrite = 0;
    if (o->tokenizer_dir && !*o->tokenizer_dir) o->tokenizer_dir = NULL;
    return 0;
}

/* ---- checkpoints ---- */

static int export_cb(void *user, const char *name, int ndim, const int64_t *shape, const float *data, cl_error *err) {
    return cl_st_writer_add_f32((cl_st_writer *)user, name, ndim, shape, data, err);
}

int cl_run_save_checkpoint(cl_tctx *c, const char *dir, int64_t step, const cl_metric_set *dev, cl_error *err) {
    int rc = cl_mkdir_p(dir, err);
    if (rc) return rc;
    char path[4300], sbuf[64];
    cl_adapter_materialise(c->ad);
    /* PEFT adapter + head */
    cl_st_writer *w = cl_st_writer_new();
    if (!w) return cl_errf(err, CL_ENOMEM, "%s: out of memory", dir);
    rc = cl_adapter_export(c->ad, export_cb, w, err);
    for (int i = 0; !rc && i < c->P.n; i++) {
        const cl_param_tensor *t = &c->P.t[i];
        if (t->part == CL_PART_HEAD)
            rc = cl_st_writer_add_f32(w, t->name, t->ndim, t->shape, c->P.param + t->offset, err);
    }
    if (!rc) rc = cl_st_writer_meta(w, "format", "pt", err);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (!rc) rc = cl_st_writer_save(w, path, err);
    cl_st_writer_free(w);
    if (rc) return rc;
    /* condlora's own state: every trainable tensor by name */
    w = cl_st_writer_new();
    if (!w) return cl_errf(err, CL_ENOMEM, "%s: out of memory", dir);
    for (int i = 0; !rc && i < c->P.n; i++) {
        const cl_param_tensor *t = &c->P.t[i];
        rc = cl_st_writer_add_f32(w, t->name, t->ndim, t->shape, c->P.param + t->offset, err);
    }
    snprintf(sbuf, sizeof sbuf, "%lld", (long long)step);
    if (!rc) rc = cl_st_writer_meta(w, "step", sbuf, err);
    if (!rc) rc = cl_st_writer_meta(w, "method", cl_method_names[c->o.ad.method], err);
    if (!rc && dev) {
        snprintf(sbuf, sizeof sbuf, "%.10g", dev->main);
        rc = cl_st_writer_meta(w, "dev_main", sbuf, err);
    }
    snprintf(path, sizeof path, "%s/condlora_state.safetensors", dir);
    if (!rc) rc = cl_st_writer_save(w, path, err);
    cl_st_writer_free(w);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if ((rc = cl_peft_write_config(path, c->ad, c->o.model_dir, c->o.train_pooler, err))) return rc;
    /* labels.json: the head's label names (GLUE's, or those inferred from the user's training file) and
     * transformers' problem_type, for predict and merge (adapter_config.json cannot carry them: PEFT refuses
     * unknown keys) */
    cJSON *lj = cJSON_CreateObject(), *i2l = cJSON_AddObjectToObject(lj, "id2label");
    cJSON_AddStringToObject(lj, "problem_type", cl_task_problem_type(c->task));
    for (int k = 0; !c->task->regression && c->task->label_names && k < c->task->num_labels; k++) {
        char key[24];
        snprintf(key, sizeof key, "%d", k);
        cJSON_AddStringToObject(i2l, key, c->task->label_names[k] ? c->task->label_names[k] : "");
    }
    snprintf(path, sizeof path, "%s/labels.json", dir);
    rc = cl_json_save(lj, path, err);
    cJSON_Delete(lj);
    return rc;
}

int cl_run_load_state(cl_tctx *c, const char *dir, cl_error *err) {
    char path[4300];
    snprintf(path, sizeof path, "%s/condlora_state.safetensors", dir);
    cl_safetensors st;
    int rc = cl_st_open(&st, path, err);
    if (rc) return rc;
    for (int i = 0; !rc && i < c->P.n; i++) {
        const cl_param_tensor *t = &c->P.t[i];
        const cl_st_tensor *s = cl_st_find(&st, t->name);
        if (!s) {
            rc = cl_errf(err, CL_EMISSING, "%s: tensor %s is missing (a checkpoint of other options?)", path, t->name);
            break;
        }
        int same = s->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = s->shape[d] == t->shape[d];
        if (!same) {
            rc = cl_errf(err, CL_ESHAPE, "%s: tensor %s has another shape than the run's options give", path,
                         t->name);
            break;
        }
        rc = cl_st_to_f32(&st, s, c->P.param + t->offset, err);
    }
    if (!rc && st.n != c->P.n)
        rc = cl_errf(err, CL_EFORMAT, "%s: %d tensors where the run's options give %d", path, st.n, c->P.n);
    cl_st_close(&st);
    if (!rc) cl_adapter_materialise(c->ad);
    return rc;
}

/* ---- curve.svg ---- */

typedef struct { double *x, *y; size_t n, cap; } series;

static int series_push(series *s, double x, double y) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        double *a = realloc(s->x, nc * sizeof(double)), *b = a ? realloc(s->y, nc * sizeof(double)) : NULL;
        if (a) s->x = a;
        if (b) s->y = b;
        if (!a || !b) return -1;
        s->cap = nc;
    }
    s->x[s->n] = x, s->y[s->n++] = y;
    return 0;
}

static void panel(FILE *f, const series *s, double xmax, int top, const char *title, const char *color) {
    const double X0 = 60, W = 700, H = 200;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < s->n; i++) {
        if (s->y[i] < lo) lo = s->y[i];
        if (s->y[i] > hi) hi = s->y[i];
    }
    if (!(hi > lo)) lo -= 0.5, hi += 0.5;
    fprintf(f, "<text x=\"%g\" y=\"%d\" font-size=\"14\">%s</text>\n", X0, top - 8, title);
    fprintf(f, "<rect x=\"%g\" y=\"%d\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#888\"/>\n", X0, top, W, H);
    fprintf(f, "<text x=\"%g\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%.4g</text>\n", X0 - 4, top + 10, hi);
    fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"11\" text-anchor=\"end\">%.4g</text>\n", X0 - 4, top + H, lo);
    fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"11\" text-anchor=\"end\">step %.0f</text>\n", X0 + W,
            top + H + 14, xmax);
    if (!s->n) return;
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
    for (size_t i = 0; i < s->n; i++)
        fprintf(f, "%.1f,%.1f ", X0 + W * s->x[i] / (xmax > 0 ? xmax : 1), top + H - H * (s->y[i] - lo) / (hi - lo));
    fprintf(f, "\"/>\n");
    if (s->n == 1)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", X0 + W * s->x[0] / (xmax > 0 ? xmax : 1),
                top + H / 2, color);
}

int cl_run_write_curve(const char *metrics_jsonl, const char *svg_path, const char *metric_name, cl_error *err) {
    FILE *in = fopen(metrics_jsonl, "r");
    if (!in) return cl_errf(err, CL_EIO, "%s: cannot open", metrics_jsonl);
    series loss = {0}, dev = {0};
    char line[8192];
    double xmax = 1;
    int rc = 0;
    while (fgets(line, sizeof line, in)) {
        cJSON *j = cJSON_Parse(line);
        if (!j) continue;
        cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type"), *sp = cJSON_GetObjectItemCaseSensitive(j, "split");
        double step = 0, v = 0;
        jnum(j, "step", &step);
        if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "train") && !jnum(j, "loss", &v)) {
            rc |= series_push(&loss, step, v);
        } else if (cJSON_IsString(ty) && !strcmp(ty->valuestring, "eval") && cJSON_IsString(sp) &&
                   !strcmp(sp->valuestring, "dev") && !jnum(j, "main", &v)) {
            rc |= series_push(&dev, step, v);
        }
        if (step > xmax) xmax = step;
        cJSON_Delete(j);
    }
    fclose(in);
    cl_atomic_file af;
    if (!rc && !(rc = cl_atomic_open(&af, svg_path, err))) {
        FILE *f = af.f;
        fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"560\" "
                   "font-family=\"sans-serif\">\n<rect width=\"800\" height=\"560\" fill=\"white\"/>\n");
        panel(f, &loss, xmax, 30, "training loss", "#1f77b4");
        char t[128];
        snprintf(t, sizeof t, "dev %s", metric_name);
        panel(f, &dev, xmax, 300, t, "#d62728");
        fprintf(f, "</svg>\n");
        rc = cl_atomic_commit(&af, err);
    } else if (rc > 0 && rc != CL_EIO) {
        rc = cl_errf(err, CL_ENOMEM, "%s: out of memory", svg_path);
    }
    free(loss.x), free(loss.y), free(dev.x), free(dev.y);
    return rc;
}

/* ---- resumable checkpoints ---- */

static const char *metric_canon(const char *name) {
    static const char *const names[] = {"acc", "f1", "mcc", "pearson", "spearman", "acc_m", "acc_mm", "loss"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(names[i], name)) return names[i];
    return NULL;
}

/* CONDLORA_FAULT=kill-in-checkpoint:N: SIGKILL in the middle of the N-th checkpoint of this process */
static void fault_point(void) {
    static int count = 0;
    const char *f = getenv("CONDLORA_FAULT");
    const char *key = "kill-in-checkpoint:";
    if (!f || strncmp(f, key, strlen(key))) return;
    if (++count == atoi(f + strlen(key))) {
        cl_log(CL_LOG_WARN, "CONDLORA_FAULT: killing the process in the middle of checkpoint %d", count);
        raise(SIGKILL);
    }
}

static int ckpt_is_complete(const char *dir) {
    char p[4400];
    if ((size_t)snprintf(p, sizeof p, "%s/COMPLETE", dir) >= sizeof p) return 0;
    return access(p, F_OK) == 0;
}

/* rm -r of a checkpoint directory (flat: files only) */
static void remove_flat_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4400];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* checkpoint-STEP directories of run_dir: steps (sorted ascending) and completeness */
typedef struct { int64_t step; int complete; } ckpt_ent;

static int list_checkpoints(const char *run_dir, ckpt_ent **out, int *n) {
    *out = NULL, *n = 0;
    DIR *d = opendir(run_dir);
    if (!d) return -1;
    struct dirent *e;
    int cap = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "checkpoint-", 11)) continue;
        char *end = NULL;
        long long s = strtoll(e->d_name + 11, &end, 10);
        if (end == e->d_name + 11 || *end || s < 0) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            ckpt_ent *a = realloc(*out, (size_t)cap * sizeof *a);
            if (!a) break;
            *out = a;
        }
        char p[4300];
        snprintf(p, sizeof p, "%s/%s", run_dir, e->d_name);
        (*out)[*n].step = s, (*out)[*n].complete = ckpt_is_complete(p);
        (*n)++;
    }
    closedir(d);
    for (int i = 1; i < *n; i++) /* insertion sort by step */
        for (int j = i; j > 0 && (*out)[j - 1].step > (*out)[j].step; j--) {
            ckpt_ent t = (*out)[j];
            (*out)[j] = (*out)[j - 1], (*out)[j - 1] = t;
        }
    return 0;
}

int cl_train_latest_checkpoint(const char *run_dir, char *out, size_t n, int64_t *step, cl_error *err) {
    ckpt_ent *c = NULL;
    int k = 0;
    if (list_checkpoints(run_dir, &c, &k)) return cl_errf(err, CL_EMISSING, "%s: cannot open the run directory", run_dir);
    int found = -1;
    for (int i = 0; i < k; i++)
        if (c[i].complete) found = i;
    if (found < 0) {
        free(c);
        return cl_errf(err, CL_EMISSING, "%s: no complete checkpoint (checkpoint-STEP/ with its COMPLETE marker); "
                                         "train with --save-every N to write them", run_dir);
    }
    snprintf(out, n, "%s/checkpoint-%lld", run_dir, (long long)c[found].step);
    if (step) *step = c[found].step;
    free(c);
    return 0;
}

int cl_run_remove_incomplete(const char *run_dir) {
    ckpt_ent *c = NULL;
    int k = 0, removed = 0;
    if (list_checkpoints(run_dir, &c, &k)) return 0;
    for (int i = 0; i < k; i++)
        if (!c[i].complete) {
            char p[4300];
            snprintf(p, sizeof p, "%s/checkpoint-%lld", run_dir, (long long)c[i].step);
            remove_flat_dir(p);
            removed++;
        }
    free(c);
    return removed;
}

static int write_trainer_state(const cl_tctx *c, const char *path, const cl_train_pos *pos, cl_error *err) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "format", 1);
    cJSON_AddStringToObject(j, "run_id", c->run_id);
    cJSON_AddNumberToObject(j, "step", (double)pos->step);
    cJSON_AddNumberToObject(j, "total_steps", (double)pos->total);
    cJSON_AddNumberToObject(j, "warmup_steps", (double)pos->warmup);
    cJSON_AddNumberToObject(j, "lr_next", cl_train_lr_at(c->o.lr, pos->step, pos->warmup, pos->total));
    cJSON *dp = cJSON_AddObjectToObject(j, "data_position");
    cJSON_AddNumberToObject(dp, "epoch", pos->epoch);
    cJSON_AddNumberToObject(dp, "batch", (double)pos->batch);
    cJSON_AddNumberToObject(dp, "epochs_run", pos->epochs_run);
    cJSON *rng = cJSON_AddObjectToObject(j, "rng");
    cJSON_AddStringToObject(rng, "kind", "counter-based: every draw is a pure function of (seed, step, stream)");
    cJSON_AddNumberToObject(rng, "seed", (double)c->o.seed);
    cJSON_AddNumberToObject(rng, "next_step", (double)pos->step);
    cJSON *ev = cJSON_AddObjectToObject(j, "evaluation");
    cJSON_AddNumberToObject(ev, "best_step", (double)pos->best_step);
    if (isfinite(pos->best_main)) cJSON_AddNumberToObject(ev, "best_main", pos->best_main);
    else cJSON_AddNullToObject(ev, "best_main");
    cJSON_AddNumberToObject(ev, "bad_evals", pos->bad_evals);
    cJSON_AddItemToObject(ev, "best_dev", metrics_obj(&pos->best_dev));
    cJSON *lg = cJSON_AddObjectToObject(j, "log");
    cJSON_AddNumberToObject(lg, "window_loss_sum", pos->win_loss);
    cJSON_AddNumberToObject(lg, "window_steps", (double)pos->win_n);
    cJSON_AddNumberToObject(lg, "final_loss", pos->final_loss);
    cJSON_AddNumberToObject(lg, "tokens", (double)pos->tok_total);
    cJSON_AddNumberToObject(lg, "examples", (double)pos->ex_total);
    cJSON_AddNumberToObject(lg, "train_s", pos->train_s);
    cJSON_AddNumberToObject(lg, "elapsed_s", pos->elapsed_s);
    cJSON_AddNumberToObject(lg, "metrics_jsonl_bytes", (double)pos->metrics_offset);
    int rc = cl_json_save(j, path, err);
    cJSON_Delete(j);
    return rc;
}

int cl_run_save_resume_checkpoint(cl_tctx *c, const char *run_dir, const cl_train_pos *pos, cl_error *err) {
    char dir[4200], path[4400], prev[4300] = "";
    int64_t prev_step = -1;
    if (cl_train_latest_checkpoint(run_dir, prev, sizeof prev, &prev_step, &(cl_error){0})) prev[0] = 0;
    snprintf(dir, sizeof dir, "%s/checkpoint-%lld", run_dir, (long long)pos->step);
    /* a leftover of an earlier attempt at this step loses its marker first: it is rewritten from scratch */
    snprintf(path, sizeof path, "%s/COMPLETE", dir);
    unlink(path);
    int rc = cl_run_save_checkpoint(c, dir, pos->step, pos->best_step >= 0 ? &pos->best_dev : NULL, err);
    if (!rc) fault_point();
    cl_st_writer *w = NULL;
    if (!rc && !(w = cl_st_writer_new())) rc = cl_errf(err, CL_ENOMEM, "%s: out of memory", dir);
    size_t ns = cl_adapter_state_size(c->ad);
    double *st = rc ? NULL : malloc(ns * sizeof(double));
    if (!rc && !st) rc = cl_errf(err, CL_ENOMEM, "%s: out of memory", dir);
    if (!rc) {
        int64_t n = (int64_t)c->P.numel, nst = (int64_t)ns;
        char sb[32];
        cl_adapter_state_get(c->ad, st);
        rc = cl_st_writer_add_f32(w, "exp_avg", 1, &n, c->P.m, err);
        if (!rc) rc = cl_st_writer_add_f32(w, "exp_avg_sq", 1, &n, c->P.v, err);
        if (!rc) rc = cl_st_writer_add_f32(w, "best_param", 1, &n, c->best_param, err);
        if (!rc) rc = cl_st_writer_add(w, "adapter_state", CL_DT_F64, 1, &nst, st, err);
        snprintf(sb, sizeof sb, "%lld", (long long)c->P.step);
        if (!rc) rc = cl_st_writer_meta(w, "adam_step", sb, err);
        snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
        if (!rc) rc = cl_st_writer_save(w, path, err);
    }
    free(st);
    cl_st_writer_free(w);
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    if (!rc) rc = write_trainer_state(c, path, pos, err);
    if (!rc) {
        char mk[64];
        int n = snprintf(mk, sizeof mk, "%lld\n", (long long)pos->step);
        snprintf(path, sizeof path, "%s/COMPLETE", dir);
        cl_fsync_dir(dir);
        rc = cl_atomic_write(path, mk, (size_t)n, err);
    }
    if (rc) {
        if (prev[0] && prev_step != pos->step)
            cl_err_prefix(err, "writing checkpoint %s failed (the previous checkpoint %s is intact)", dir, prev);
        else
            cl_err_prefix(err, "writing checkpoint %s failed (no earlier complete checkpoint)", dir);
        return rc;
    }
    /* rotation: keep the newest save_limit complete checkpoints */
    if (c->o.save_limit > 0) {
        ckpt_ent *ce = NULL;
        int k = 0;
        if (!list_checkpoints(run_dir, &ce, &k)) {
            int complete = 0;
            for (int i = k - 1; i >= 0; i--) {
                if (!ce[i].complete) continue;
                if (++complete > c->o.save_limit) {
                    snprintf(path, sizeof path, "%s/checkpoint-%lld", run_dir, (long long)ce[i].step);
                    char mkp[4500];
                    snprintf(mkp, sizeof mkp, "%s/COMPLETE", path);
                    unlink(mkp); /* incomplete first, so a crash mid-removal leaves nothing --resume would trust */
                    remove_flat_dir(path);
                }
            }
            free(ce);
        }
    }
    return 0;
}

static int jget(cJSON *o, const char *k, double *v) {
    cJSON *it = o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
    if (!cJSON_IsNumber(it)) return -1;
    *v = it->valuedouble;
    return 0;
}

int cl_run_load_resume_checkpoint(cl_tctx *c, const char *dir, cl_train_pos *pos, cl_error *err) {
    char path[4400];
    int rc = cl_run_load_state(c, dir, err);
    if (rc) return rc;
    /* optimizer state */
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    cl_safetensors st;
    if ((rc = cl_st_open(&st, path, err))) return rc;
    const char *names[3] = {"exp_avg", "exp_avg_sq", "best_param"};
    float *dst[3] = {c->P.m, c->P.v, c->best_param};
    for (int i = 0; !rc && i < 3; i++) {
        const cl_st_tensor *t = cl_st_find(&st, names[i]);
        if (!t || t->ndim != 1 || t->shape[0] != (int64_t)c->P.numel)
            rc = cl_errf(err, CL_ESHAPE, "%s: tensor %s is missing or has not the run's %zu values", path, names[i],
                         c->P.numel);
        else rc = cl_st_to_f32(&st, t, dst[i], err);
    }
    size_t ns = cl_adapter_state_size(c->ad);
    const cl_st_tensor *t = rc ? NULL : cl_st_find(&st, "adapter_state");
    if (!rc && (!t || t->dtype != CL_DT_F64 || t->ndim != 1 || t->shape[0] != (int64_t)ns))
        rc = cl_errf(err, CL_ESHAPE, "%s: tensor adapter_state is missing or has not %zu F64 values", path, ns);
    if (!rc) {
        double *buf = malloc(ns * sizeof(double));
        if (!buf) rc = cl_errf(err, CL_ENOMEM, "%s: out of memory", path);
        else {
            memcpy(buf, t->data, ns * sizeof(double));
            cl_adapter_state_set(c->ad, buf);
            free(buf);
        }
    }
    const char *as = rc ? NULL : cl_st_meta(&st, "adam_step");
    if (!rc && !as) rc = cl_errf(err, CL_EFORMAT, "%s: metadata adam_step is missing", path);
    if (!rc) c->P.step = strtoll(as, NULL, 10);
    cl_st_close(&st);
    if (rc) return rc;
    /* trainer state */
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    char *text = NULL;
    size_t len = 0;
    if ((rc = cl_read_file(path, &text, &len, err))) return rc;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) return cl_errf(err, CL_EFORMAT, "%s: not valid JSON", path);
    /* the checkpoint must belong to this run (a run written over an old one's directory must not continue the old
     * run's checkpoint under the new options) */
    cJSON *rid = cJSON_GetObjectItemCaseSensitive(j, "run_id");
    const char *ck_id = cJSON_IsString(rid) ? rid->valuestring : "";
    if (strcmp(ck_id, c->run_id)) {
        rc = cl_errf(err, CL_EFORMAT, "%s: this checkpoint belongs to run '%s', but run.json is run '%s' (the "
                     "directory holds checkpoints of an earlier run): refusing to resume", dir,
                     *ck_id ? ck_id : "(no run id)", *c->run_id ? c->run_id : "(no run id)");
        cJSON_Delete(j);
        return rc;
    }
    cJSON *dp = cJSON_GetObjectItemCaseSensitive(j, "data_position"), *ev = cJSON_GetObjectItemCaseSensitive(j, "evaluation"),
          *lg = cJSON_GetObjectItemCaseSensitive(j, "log");
    double v[20] = {0};
    int bad = jget(j, "step", &v[0]) | jget(j, "total_steps", &v[1]) | jget(j, "warmup_steps", &v[2]) |
              jget(dp, "epoch", &v[3]) | jget(dp, "batch", &v[4]) | jget(dp, "epochs_run", &v[5]) |
              jget(ev, "best_step", &v[6]) | jget(ev, "bad_evals", &v[7]) | jget(lg, "window_loss_sum", &v[8]) |
              jget(lg, "window_steps", &v[9]) | jget(lg, "final_loss", &v[10]) | jget(lg, "tokens", &v[11]) |
              jget(lg, "examples", &v[12]) | jget(lg, "train_s", &v[13]) | jget(lg, "elapsed_s", &v[14]) |
              jget(lg, "metrics_jsonl_bytes", &v[15]);
    memset(pos, 0, sizeof *pos);
    if (!bad) {
        pos->step = (int64_t)v[0], pos->total = (int64_t)v[1], pos->warmup = (int64_t)v[2];
        pos->epoch = (int)v[3], pos->batch = (int64_t)v[4], pos->epochs_run = (int)v[5];
        pos->best_step = (int64_t)v[6], pos->bad_evals = (int)v[7];
        pos->win_loss = v[8], pos->win_n = (long long)v[9], pos->final_loss = v[10];
        pos->tok_total = (long long)v[11], pos->ex_total = (long long)v[12];
        pos->train_s = v[13], pos->elapsed_s = v[14], pos->metrics_offset = (long)v[15];
        pos->best_main = -INFINITY;
        if (pos->best_step >= 0 && jget(ev, "best_main", &pos->best_main)) bad = 1;
        cJSON *bd = cJSON_GetObjectItemCaseSensitive(ev, "best_dev");
        cJSON *it;
        if (!cJSON_IsObject(bd)) bad = 1;
        else
            cJSON_ArrayForEach(it, bd) {
                const char *nm = metric_canon(it->string);
                if (!nm || pos->best_dev.n >= CL_MAX_METRICS) { bad = 1; break; }
                pos->best_dev.m[pos->best_dev.n].name = nm;
                pos->best_dev.m[pos->best_dev.n++].value = cJSON_IsNumber(it) ? it->valuedouble : NAN;
            }
        pos->best_dev.main = pos->best_main;
    }
    cJSON_Delete(j);
    if (bad) return cl_errf(err, CL_EFORMAT, "%s: a field is missing or has a bad value", path);
    if (pos->step < 0 || pos->metrics_offset < 0 || pos->epoch < 0 || pos->batch < 0)
        return cl_errf(err, CL_EFORMAT, "%s: negative step or position", path);
    cl_adapter_materialise(c->ad);
    return 0;
}
