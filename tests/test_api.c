/* The public API (include/condlora.h) as a program embedding the library uses it: options by name, a training run
 * with progress callbacks and a cancel flag (checkpoint, then resume), evaluation, inference with the run's adapter,
 * PEFT export, tokenization against Hugging Face tokenizers' ids, errors through cl_last_error (per thread), and
 * the library's manners: nothing written to stderr, the caller's thread counts left as they were. Only condlora.h
 * is included: the test sees what a user sees. */
#include "condlora.h"
#include <cblas.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test.h"

#define API "tests/data/api"
static char TMP[128];

static int exists(const char *dir, const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    struct stat st;
    return stat(p, &st) == 0;
}

TEST(options_by_name) {
    size_t n = cl_option_count();
    CHECK(n >= 60, "%zu options", n);
    cl_option_info info;
    int have_budget = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(cl_option_at(i, &info) == CL_OK && info.name && info.help && info.def, "option %zu", i);
        have_budget |= !strcmp(info.name, "salora-budget") && info.type == CL_OPTION_FLOAT && info.max == 1;
    }
    CHECK(have_budget, "salora-budget listed with its range");
    CHECK(cl_option_at(n, &info) == CL_EINVAL && *cl_last_error(), "past the end: %s", cl_last_error());
    cl_train_params *p = cl_train_params_new();
    char v[64];
    CHECK(cl_train_params_get(p, "batch_size", v, sizeof v) == CL_OK && !strcmp(v, "16"), "default batch %s", v);
    CHECK(cl_train_params_set(p, "batch-size", "8") == CL_OK && cl_train_params_get(p, "batch-size", v, sizeof v) == 0 &&
          !strcmp(v, "8"), "set %s", v);
    CHECK(cl_train_params_set(p, "lr", "nan") == CL_EUSAGE && strstr(cl_last_error(), "--lr"), "%s", cl_last_error());
    CHECK(cl_last_status() == CL_EUSAGE, "status");
    CHECK(cl_train_params_set(p, "salora_budget", "1.5") == CL_EUSAGE && strstr(cl_last_error(), "--salora-budget"),
          "%s", cl_last_error());
    CHECK(cl_train_params_set(p, "no-such", "1") == CL_EUSAGE && strstr(cl_last_error(), "no-such"), "%s",
          cl_last_error());
    /* the method resets the adapter options to its defaults: AdaLoRA's r is 12 */
    CHECK(cl_train_params_set(p, "method", "adalora") == 0 && cl_train_params_get(p, "r", v, sizeof v) == 0 &&
          !strcmp(v, "12"), "adalora r %s", v);
    /* a value is copied: the caller's buffer may change */
    char dir[32] = "some/dir";
    cl_train_params_set(p, "out", dir);
    strcpy(dir, "changed");
    CHECK(cl_train_params_get(p, "out", v, sizeof v) == 0 && !strcmp(v, "some/dir"), "copied: %s", v);
    cl_train_params_free(p);
    cl_train_params_free(NULL);
}

typedef struct {
    int start, steps, evals, checkpoints;
    int cancel_at; /* set *cancel when this many STEP events were seen */
    volatile sig_atomic_t *cancel;
    int threads_inside;
} seen;

static void on_event(const cl_train_event *ev, void *user) {
    seen *s = user;
    s->threads_inside = omp_get_max_threads();
    if (!ev->message || !*ev->message) s->start = -1000;
    switch (ev->type) {
    case CL_TRAIN_EV_START: s->start++; break;
    case CL_TRAIN_EV_STEP:
        s->steps++;
        if (s->cancel && s->steps == s->cancel_at) *s->cancel = 42;
        break;
    case CL_TRAIN_EV_EVAL: s->evals += ev->metrics && ev->metrics->n > 0; break;
    case CL_TRAIN_EV_CHECKPOINT: s->checkpoints++; break;
    default: break;
    }
}

/* runs F with fd 2 sent to a file; returns the bytes written there */
static long stderr_bytes_during(void (*f)(void *), void *arg) {
    char path[200];
    snprintf(path, sizeof path, "%s/stderr.txt", TMP);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    dup2(fd, 2);
    close(fd);
    f(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

typedef struct {
    cl_train_params *p;
    cl_train_callbacks cb;
    cl_run *run;
} train_call;
static void do_train(void *a) {
    train_call *t = a;
    t->run = cl_train(t->p, &t->cb);
}

static cl_train_params *params(const char *out) {
    cl_train_params *p = cl_train_params_new();
    const char *kv[][2] = {{"method", "lora"}, {"model", API "/model"}, {"train", API "/train.tsv"},
                           {"dev", API "/dev.tsv"}, {"out", out}, {"max-length", "32"}, {"batch-size", "8"},
                           {"max-steps", "24"}, {"eval-every", "8"}, {"log-every", "2"}, {"lr", "5e-3"},
                           {"save-every", "8"}, {"threads", "1"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (cl_train_params_set(p, kv[i][0], kv[i][1])) fprintf(stderr, "%s: %s\n", kv[i][0], cl_last_error());
    return p;
}

TEST(train_cancel_resume_eval_predict) {
    char out[256];
    snprintf(out, sizeof out, "%s/run", TMP);
    /* the caller's thread counts, which the run must leave as they are */
    omp_set_num_threads(2);
    openblas_set_num_threads(2);
    volatile sig_atomic_t cancel = 0;
    seen s = {0};
    s.cancel = &cancel;
    s.cancel_at = 5; /* step 10 */
    train_call t = {params(out), {on_event, &s, &cancel}, NULL};
    long err_bytes = stderr_bytes_during(do_train, &t);
    CHECK(t.run != NULL, "%s", cl_last_error());
    if (!t.run) return;
    const cl_train_result *r = cl_run_result(t.run);
    CHECK(r->interrupted == 42 && r->steps == 10 && exists(out, "checkpoint-10/COMPLETE"),
          "cancelled: interrupted %d at step %lld", r->interrupted, (long long)r->steps);
    CHECK(s.start == 1 && s.steps == 5 && s.evals == 1 && s.checkpoints >= 2, "events: start %d steps %d evals %d "
          "checkpoints %d", s.start, s.steps, s.evals, s.checkpoints);
    CHECK(err_bytes == 0, "the library wrote %ld bytes to stderr", err_bytes);
    CHECK(s.threads_inside == 1, "threads during the run: %d", s.threads_inside);
    CHECK(omp_get_max_threads() == 2 && openblas_get_num_threads() == 2, "thread counts after: omp %d, blas %d",
          omp_get_max_threads(), openblas_get_num_threads());
    cl_run_free(t.run);
    cl_train_params_free(t.p);
    /* resume to the end */
    cl_train_params *rp = cl_train_params_new();
    CHECK(cl_train_params_set(rp, "resume", out) == 0 && cl_train_params_set(rp, "threads", "1") == 0, "%s",
          cl_last_error());
    cancel = 0;
    seen s2 = {0};
    train_call t2 = {rp, {on_event, &s2, &cancel}, NULL};
    err_bytes = stderr_bytes_during(do_train, &t2);
    CHECK(t2.run && cl_run_result(t2.run)->steps == 24 && !cl_run_result(t2.run)->interrupted &&
          cl_run_result(t2.run)->resumed_from == 10 && exists(out, "final/adapter_model.safetensors"), "%s",
          t2.run ? "resumed" : cl_last_error());
    CHECK(err_bytes == 0 && !strcmp(cl_run_dir(t2.run), out), "resume: stderr %ld, dir %s", err_bytes,
          cl_run_dir(t2.run));
    double best = t2.run ? cl_run_result(t2.run)->best_dev.main : -1;
    CHECK(best > 0.8, "the toy task is learned: dev acc %.3f", best);
    cl_run_free(t2.run);
    cl_train_params_free(rp);

    /* evaluation of the run = its best dev metrics */
    cl_metric_set m;
    size_t n = 0;
    cl_eval_params ep = cl_eval_default_params();
    ep.threads = 1;
    CHECK(cl_eval(out, "dev", &ep, &m, &n) == CL_OK && n == 40 && m.main == best, "eval: %s (%zu, %.4f vs %.4f)",
          cl_last_error(), n, m.main, best);
    CHECK(cl_eval(out, "validation", &ep, &m, &n) == CL_EUSAGE && strstr(cl_last_error(), "--split"), "%s",
          cl_last_error());

    /* inference with the run's adapter: cl_predict = cl_tokenize + cl_model_logits, and the dev accuracy again */
    cl_model_params mp = cl_model_default_params();
    mp.adapter = out;
    mp.threads = 1;
    cl_model *mo = cl_model_open(API "/model", &mp);
    cl_tokenizer *tk = cl_tokenizer_open(API "/model");
    CHECK(mo && tk, "%s", cl_last_error());
    if (!mo || !tk) return;
    CHECK(cl_model_num_labels(mo) == 2 && !strcmp(cl_model_arch_name(mo), "bert") && !cl_model_is_multi_label(mo) &&
          !strcmp(cl_model_label_name(mo, 1), "1") && cl_model_hidden_size(mo) == 32, "model accessors");
    FILE *f = fopen(API "/dev.tsv", "r");
    char line[512];
    const char *texts[40];
    char store[40][512];
    int gold[40], k = 0;
    while (f && fgets(line, sizeof line, f) && k < 40) {
        char *tab = strchr(line, '\t');
        if (!tab || !strcmp(line, "sentence\tlabel\n")) continue;
        *tab = 0;
        snprintf(store[k], sizeof store[k], "%s", line);
        texts[k] = store[k];
        gold[k++] = atoi(tab + 1);
    }
    if (f) fclose(f);
    float lg[80], one[2];
    CHECK(k == 40 && cl_predict(mo, tk, texts, NULL, 40, 32, lg) == CL_OK, "%s", cl_last_error());
    int right = 0;
    for (int i = 0; i < 40; i++) right += (lg[2 * i + 1] > lg[2 * i]) == gold[i];
    CHECK(right / 40.0 == best, "predict's accuracy %.3f = eval's %.3f", right / 40.0, best);
    int32_t ids[64], types[64], len;
    len = cl_tokenize(tk, texts[3], NULL, 32, ids, types, 64);
    CHECK(len > 2 && cl_model_logits(mo, ids, types, &len, 1, len, one) == CL_OK &&
          fabsf(one[0] - lg[6]) < 1e-5f && fabsf(one[1] - lg[7]) < 1e-5f, "cl_model_logits alone = in a batch of 40");
    CHECK(cl_model_logits(mo, ids, types, &len, 0, len, one) == CL_EINVAL, "B = 0 refused");
    cl_tokenizer_close(tk);
    cl_model_close(mo);

    /* PEFT export: the three files of best/ */
    char exp[300];
    snprintf(exp, sizeof exp, "%s/exported", TMP);
    CHECK(cl_export_peft(out, exp) == CL_OK && exists(exp, "adapter_model.safetensors") &&
          exists(exp, "adapter_config.json") && exists(exp, "labels.json"), "%s", cl_last_error());
    CHECK(cl_export_peft(API, exp) == CL_EMISSING && strstr(cl_last_error(), "adapter_model.safetensors"), "%s",
          cl_last_error());
}

TEST(tokenize_like_hugging_face) {
    cl_tokenizer *t = cl_tokenizer_open("tests/data/tokenizer/tiny_wordpiece");
    CHECK(t != NULL, "%s", cl_last_error());
    FILE *f = fopen("tests/data/tokenizer/refs.json", "rb");
    static char buf[1 << 22];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf), *c;
    int cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
        const cJSON *ah = cJSON_GetObjectItem(c, "a_hex"), *bh = cJSON_GetObjectItem(c, "b_hex");
        const cJSON *ref = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "tiny_wordpiece"), "ids");
        if (!t || !cJSON_IsString(ah) || !ref) continue;
        char a[4096] = "", b[4096] = "";
        int nul = 0;
        for (size_t i = 0; 2 * i < strlen(ah->valuestring) && i < sizeof a - 1; i++) {
            unsigned v;
            sscanf(ah->valuestring + 2 * i, "%2x", &v);
            a[i] = (char)v, a[i + 1] = 0, nul |= v == 0;
        }
        if (cJSON_IsString(bh))
            for (size_t i = 0; 2 * i < strlen(bh->valuestring) && i < sizeof b - 1; i++) {
                unsigned v;
                sscanf(bh->valuestring + 2 * i, "%2x", &v);
                b[i] = (char)v, b[i + 1] = 0, nul |= v == 0;
            }
        if (nul) continue; /* C strings: the NUL-byte cases are test_tokenizer's */
        int ml = cJSON_GetObjectItem(c, "max_length")->valueint;
        int32_t ids[4096];
        int len = cl_tokenize(t, a, cJSON_IsString(bh) ? b : NULL, ml > 0 ? ml : 1 << 20, ids, NULL, 4096);
        int same = len == cJSON_GetArraySize(ref);
        for (int i = 0; same && i < len; i++) same = ids[i] == cJSON_GetArrayItem(ref, i)->valueint;
        CHECK(same, "case %d: %d tokens, Hugging Face %d", cases, len, cJSON_GetArraySize(ref));
        cases++;
    }
    CHECK(cases > 40, "%d cases", cases);
    cJSON_Delete(j);
    cl_tokenizer_close(t);
}

static void *fail_in_thread(void *arg) {
    (void)arg;
    cl_model_open("/nonexistent/model", NULL);
    return NULL;
}

TEST(errors_per_thread) {
    cl_model *m = cl_model_open("/nonexistent/dir", NULL);
    CHECK(!m && strstr(cl_last_error(), "/nonexistent/dir") && cl_last_status() != CL_OK, "%s", cl_last_error());
    char mine[1024];
    snprintf(mine, sizeof mine, "%s", cl_last_error());
    pthread_t th;
    pthread_create(&th, NULL, fail_in_thread, NULL);
    pthread_join(th, NULL);
    CHECK(!strcmp(mine, cl_last_error()), "another thread's failure left this thread's message: %s", cl_last_error());
    CHECK(cl_tokenizer_open("/nonexistent/tok") == NULL && strstr(cl_last_error(), "/nonexistent/tok"), "%s",
          cl_last_error());
    cl_train_params *p = cl_train_params_new();
    cl_train_params_set(p, "model", API "/model");
    cl_train_params_set(p, "task", "SST-2");
    cl_train_params_set(p, "data", "/nonexistent/glue");
    char out[256];
    snprintf(out, sizeof out, "%s/never", TMP);
    cl_train_params_set(p, "out", out);
    CHECK(cl_train(p, NULL) == NULL && strstr(cl_last_error(), "/nonexistent/glue") && !exists(out, "."),
          "bad data refused before the run directory exists: %s", cl_last_error());
    cl_train_params_free(p);
    CHECK(!strcmp(cl_version(), CONDLORA_VERSION) && !strcmp(cl_status_name(CL_EFORMAT), "malformed input"), "version %s",
          cl_version());
    cl_model_close(NULL), cl_tokenizer_close(NULL), cl_run_free(NULL);
}

int main(void) {
    snprintf(TMP, sizeof TMP, "/tmp/cl_test_api_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", TMP, TMP);
    if (system(cmd)) return 1;
    RUN(options_by_name);
    RUN(train_cancel_resume_eval_predict);
    RUN(tokenize_like_hugging_face);
    RUN(errors_per_thread);
    snprintf(cmd, sizeof cmd, "rm -rf %s", TMP);
    if (system(cmd)) {}
    return tst_summary(__FILE__);
}
