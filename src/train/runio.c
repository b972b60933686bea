/* Run files: run.json, checkpoints (PEFT adapter + head, adapter_config.json, condlora_state), reload, curve.svg. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/util.h"
#include "io/safetensors.h"
#include "train/train_internal.h"

static const char *proto_name(cl_protocol p) { return p == CL_PROTOCOL_PAPER ? "paper" : "glue"; }

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

/* A float option as the decimal a user typed (0.3, not 0.300000011920929): shortest form that round-trips in float. */
static double f32_json(float v) {
    char b[32];
    snprintf(b, sizeof b, "%.7g", v);
    return strtod(b, NULL);
}

static cJSON *adapter_json(const cl_adapter_opts *a) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "method", cl_method_names[a->method]);
    cJSON_AddStringToObject(j, "target_modules", a->target_modules && *a->target_modules ? a->target_modules
                                                                                         : "query,value");
    cJSON_AddStringToObject(j, "layers", a->layers ? a->layers : "");
    cJSON_AddNumberToObject(j, "r", a->r);
    cJSON_AddNumberToObject(j, "alpha", f32_json(a->alpha));
    cJSON_AddNumberToObject(j, "dropout", f32_json(a->dropout));
    cJSON_AddNumberToObject(j, "rslora", a->rslora);
    cJSON_AddNumberToObject(j, "condlora_paper", a->condlora_paper);
    cJSON_AddNumberToObject(j, "condlora_use_x", a->condlora_use_x);
    cJSON_AddNumberToObject(j, "condlora_lambda_x", f32_json(a->condlora_lambda_x));
    cJSON_AddNumberToObject(j, "salora_budget", f32_json(a->salora_budget));
    cJSON_AddNumberToObject(j, "salora_warmup", f32_json(a->salora_warmup));
    cJSON_AddNumberToObject(j, "salora_lambda_lr", f32_json(a->salora_lambda_lr));
    cJSON_AddNumberToObject(j, "salora_orth", f32_json(a->salora_orth));
    cJSON_AddNumberToObject(j, "salora_log_alpha_init", f32_json(a->salora_log_alpha_init));
    cJSON_AddNumberToObject(j, "ada_target_r", a->ada_target_r);
    cJSON_AddNumberToObject(j, "ada_tinit", a->ada_tinit);
    cJSON_AddNumberToObject(j, "ada_tfinal", a->ada_tfinal);
    cJSON_AddNumberToObject(j, "ada_deltaT", a->ada_deltaT);
    cJSON_AddNumberToObject(j, "ada_beta1", f32_json(a->ada_beta1));
    cJSON_AddNumberToObject(j, "ada_beta2", f32_json(a->ada_beta2));
    cJSON_AddNumberToObject(j, "ada_orth", f32_json(a->ada_orth));
    return j;
}

static int save_json(cJSON *root, const char *path, cl_error *err) {
    char *s = cJSON_Print(root);
    if (!s) return cl_errf(err, CL_ENOMEM, "%s: out of memory", path);
    size_t n = strlen(s);
    s[n] = '\n';
    int rc = cl_atomic_write(path, s, n + 1, err);
    free(s);
    return rc;
}

int cl_run_write_json(const cl_tctx *c, const char *path, const cl_train_result *res, const char *status,
                      cl_error *err) {
    const cl_train_opts *o = &c->o;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "status", status);
    cJSON *op = cJSON_AddObjectToObject(r, "options");
    cJSON_AddStringToObject(op, "model_dir", o->model_dir);
    cJSON_AddStringToObject(op, "tokenizer_dir", o->tokenizer_dir ? o->tokenizer_dir : "");
    cJSON_AddStringToObject(op, "task", c->task->name);
    cJSON_AddStringToObject(op, "data_dir", o->data_dir);
    cJSON_AddStringToObject(op, "task_dir", c->task_dir);
    cJSON_AddStringToObject(op, "out_dir", o->out_dir ? o->out_dir : "");
    cJSON_AddStringToObject(op, "protocol", proto_name(o->protocol));
    cJSON_AddNumberToObject(op, "lr", o->lr);
    cJSON_AddNumberToObject(op, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(op, "warmup_ratio", o->warmup_ratio);
    cJSON_AddNumberToObject(op, "beta1", o->beta1);
    cJSON_AddNumberToObject(op, "beta2", o->beta2);
    cJSON_AddNumberToObject(op, "eps", o->eps);
    cJSON_AddNumberToObject(op, "max_grad_norm", o->max_grad_norm);
    cJSON_AddNumberToObject(op, "batch_size", o->batch_size);
    cJSON_AddNumberToObject(op, "max_length", o->max_length);
    cJSON_AddNumberToObject(op, "epochs", o->epochs);
    cJSON_AddNumberToObject(op, "max_steps", (double)o->max_steps);
    cJSON_AddNumberToObject(op, "eval_every", (double)o->eval_every);
    cJSON_AddNumberToObject(op, "patience", o->patience);
    cJSON_AddNumberToObject(op, "seed", (double)o->seed);
    cJSON_AddNumberToObject(op, "threads", omp_get_max_threads());
    cJSON_AddNumberToObject(op, "mega", o->mega);
    cJSON_AddNumberToObject(op, "log_every", o->log_every);
    cJSON_AddNumberToObject(op, "max_train", (double)o->max_train);
    cJSON_AddNumberToObject(op, "max_eval", (double)o->max_eval);
    cJSON_AddItemToObject(op, "adapter", adapter_json(&o->ad));
    cJSON *v = cJSON_AddObjectToObject(r, "versions");
    cJSON_AddStringToObject(v, "condlora", CONDLORA_VERSION);
    cJSON_AddStringToObject(v, "compiler", __VERSION__);
    cJSON_AddStringToObject(v, "openblas", openblas_get_config());
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
        if (res->have_test) cJSON_AddItemToObject(rs, "test", metrics_obj(&res->test));
        cJSON_AddNumberToObject(rs, "final_train_loss", res->final_loss);
        cJSON_AddNumberToObject(rs, "wall_s", res->wall_s);
        cJSON_AddNumberToObject(rs, "train_s", res->train_s);
        cJSON_AddNumberToObject(rs, "examples_per_s", res->examples_per_s);
        cJSON_AddNumberToObject(rs, "tokens_per_s", res->tokens_per_s);
        cJSON_AddNumberToObject(rs, "peak_rss_mib", cl_peak_rss_kib() / 1024.0);
    }
    int rc = save_json(r, path, err);
    cJSON_Delete(r);
    return rc;
}

/* ---- reading run.json back ---- */

static const char *jstr(cJSON *o, const char *k, char **buf, size_t *left) {
    cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(it)) return NULL;
    size_t n = strlen(it->valuestring) + 1;
    if (n > *left) return NULL;
    memcpy(*buf, it->valuestring, n);
    const char *r = *buf;
    *buf += n, *left -= n;
    return r;
}

static int jnum(cJSON *o, const char *k, double *out) {
    cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(it)) return -1;
    *out = it->valuedouble;
    return 0;
}

int cl_run_read_opts(const char *path, cl_train_opts *o, char *buf, size_t left, cl_error *err) {
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
    const char *meth = jstr(ad, "method", &buf, &left);
    rc = meth ? cl_method_parse(meth, &o->ad.method, err) : cl_errf(err, CL_EFORMAT, "%s: no adapter method", path);
    if (rc) { cJSON_Delete(r); return rc; }
    cl_adapter_opts_default(&o->ad, o->ad.method);
    o->model_dir = jstr(op, "model_dir", &buf, &left);
    o->tokenizer_dir = jstr(op, "tokenizer_dir", &buf, &left);
    o->task = jstr(op, "task", &buf, &left);
    o->data_dir = jstr(op, "data_dir", &buf, &left);
    const char *proto = jstr(op, "protocol", &buf, &left);
    o->ad.target_modules = jstr(ad, "target_modules", &buf, &left);
    o->ad.layers = jstr(ad, "layers", &buf, &left);
    double v;
    int bad = !o->model_dir || !o->task || !o->data_dir || !proto || !o->ad.target_modules;
#define NUM(obj, key, dst, type) bad |= jnum(obj, key, &v) != 0; if (!bad) dst = (type)v
    NUM(op, "lr", o->lr, float);
    NUM(op, "batch_size", o->batch_size, int);
    NUM(op, "max_length", o->max_length, int);
    NUM(op, "seed", o->seed, uint64_t);
    NUM(op, "max_eval", o->max_eval, size_t);
    NUM(op, "max_train", o->max_train, size_t);
    NUM(ad, "r", o->ad.r, int);
    NUM(ad, "alpha", o->ad.alpha, float);
    NUM(ad, "dropout", o->ad.dropout, float);
    NUM(ad, "rslora", o->ad.rslora, int);
    NUM(ad, "condlora_paper", o->ad.condlora_paper, int);
    NUM(ad, "condlora_use_x", o->ad.condlora_use_x, int);
    NUM(ad, "condlora_lambda_x", o->ad.condlora_lambda_x, float);
    NUM(ad, "salora_budget", o->ad.salora_budget, float);
    NUM(ad, "salora_warmup", o->ad.salora_warmup, float);
    NUM(ad, "salora_lambda_lr", o->ad.salora_lambda_lr, float);
    NUM(ad, "salora_orth", o->ad.salora_orth, float);
    NUM(ad, "salora_log_alpha_init", o->ad.salora_log_alpha_init, float);
    NUM(ad, "ada_target_r", o->ad.ada_target_r, int);
    NUM(ad, "ada_tinit", o->ad.ada_tinit, int);
    NUM(ad, "ada_tfinal", o->ad.ada_tfinal, int);
    NUM(ad, "ada_deltaT", o->ad.ada_deltaT, int);
    NUM(ad, "ada_beta1", o->ad.ada_beta1, float);
    NUM(ad, "ada_beta2", o->ad.ada_beta2, float);
    NUM(ad, "ada_orth", o->ad.ada_orth, float);
#undef NUM
    if (!bad && cl_protocol_parse(proto, &o->protocol, err)) bad = 1;
    cJSON_Delete(r);
    if (bad) return cl_errf(err, CL_EFORMAT, "%s: run.json lacks an option or has a bad value (or it is too long)",
                            path);
    if (o->tokenizer_dir && !*o->tokenizer_dir) o->tokenizer_dir = NULL;
    return 0;
}

/* ---- checkpoints ---- */

static int export_cb(void *user, const char *name, int ndim, const int64_t *shape, const float *data, cl_error *err) {
    return cl_st_writer_add_f32((cl_st_writer *)user, name, ndim, shape, data, err);
}

static int write_adapter_config(const cl_tctx *c, const char *path, cl_error *err) {
    const cl_adapter_opts *a = &c->o.ad;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "peft_type", a->method == CL_METHOD_ADALORA ? "ADALORA" : "LORA");
    cJSON_AddStringToObject(j, "task_type", "SEQ_CLS");
    cJSON_AddStringToObject(j, "base_model_name_or_path", c->o.model_dir);
    cJSON_AddNumberToObject(j, "r", a->r);
    cJSON_AddNumberToObject(j, "lora_alpha", a->alpha);
    cJSON_AddNumberToObject(j, "lora_dropout", a->dropout);
    cJSON_AddBoolToObject(j, "use_rslora", a->rslora);
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 0);
    cJSON *tm = cJSON_AddArrayToObject(j, "target_modules");
    const char *s = a->target_modules && *a->target_modules ? a->target_modules : "query,value";
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        char tmp[128];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(n < 127 ? n : 127), s);
        if (*tmp) cJSON_AddItemToArray(tm, cJSON_CreateString(tmp));
        s += n + (e ? 1 : 0);
    }
    cJSON *ms = cJSON_AddArrayToObject(j, "modules_to_save");
    cJSON_AddItemToArray(ms, cJSON_CreateString("classifier"));
    cJSON_AddItemToArray(ms, cJSON_CreateString("score"));
    if (a->method == CL_METHOD_ADALORA) {
        cJSON_AddNumberToObject(j, "init_r", a->r);
        cJSON_AddNumberToObject(j, "target_r", a->ada_target_r);
        cJSON_AddNumberToObject(j, "tinit", a->ada_tinit);
        cJSON_AddNumberToObject(j, "tfinal", a->ada_tfinal);
        cJSON_AddNumberToObject(j, "deltaT", a->ada_deltaT);
        cJSON_AddNumberToObject(j, "beta1", a->ada_beta1);
        cJSON_AddNumberToObject(j, "beta2", a->ada_beta2);
        cJSON_AddNumberToObject(j, "orth_reg_weight", a->ada_orth);
    }
    cJSON *cj = cJSON_AddObjectToObject(j, "condlora");
    cJSON_AddStringToObject(cj, "method", cl_method_names[a->method]);
    cJSON_AddItemToObject(cj, "options", adapter_json(a));
    cJSON_AddStringToObject(cj, "note", a->method == CL_METHOD_CONDLORA
                                            ? "CondLoRA exported as plain per-layer LoRA (A_l, B_l materialised)"
                                            : "");
    int rc = save_json(j, path, err);
    cJSON_Delete(j);
    return rc;
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
    return write_adapter_config(c, path, err);
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
