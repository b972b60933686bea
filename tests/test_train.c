/* The training loop end to end on a tiny random BERT (written by this test, with the tiny WordPiece tokenizer of
 * tests/data/tokenizer) and tiny GLUE-format TSV files the test writes: schedule, learning, determinism, early
 * stopping, best-checkpoint reload, bad input. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/util.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "test.h"
#include "tiny_run.h"
#include "train/options.h"
#include "train/trainer.h"

static char ROOT[256], MODEL[300], GLUE[300];

static const char CONFIG[] =
    "{\"model_type\":\"bert\",\"vocab_size\":378,\"hidden_size\":32,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":2,\"intermediate_size\":64,\"max_position_embeddings\":64,\"type_vocab_size\":2,"
    "\"pad_token_id\":0,\"layer_norm_eps\":1e-12,\"hidden_act\":\"gelu\",\"hidden_dropout_prob\":0.1,"
    "\"attention_probs_dropout_prob\":0.1}";

static int read_all(const char *path, char **out, size_t *n) {
    cl_error e = {0};
    return cl_read_file(path, out, n, &e);
}

static int files_equal(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int eq = !read_all(a, &x, &nx) && !read_all(b, &y, &ny) && nx == ny && memcmp(x, y, nx) == 0;
    free(x), free(y);
    return eq;
}

/* A model directory: config.json + model.safetensors (random encoder + pooler, no classifier) + tokenizer.json */
static int make_model(void) {
    cl_error e = {0};
    cl_config cfg;
    if (cl_config_parse(&cfg, CONFIG, strlen(CONFIG), "test", &e)) return -1;
    cl_weights m;
    if (cl_model_init_random(&m, &cfg, CL_HEAD_POOLER, 2, 7, &e)) return -1;
    cl_config_free(&cfg);
    int H = 32;
    /* std 0.2 instead of 0.02 (initializer_range of the test fixtures), so that the tokens of a random model
     * actually mix into [CLS] and the toy task is learnable in a few dozen steps */
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++) {
            cl_linear *li = &m.layers[l].lin[k];
            for (size_t i = 0; i < (size_t)li->d_out * (size_t)li->d_in; i++) li->w[i] *= 10.0f;
        }
    for (int i = 0; i < H * H; i++) m.pooler.w[i] *= 10.0f;
    int rc = tr_write_model_dir(MODEL, &m, CONFIG);
    cl_model_free(&m);
    (void)e;
    return rc;
}

static cl_train_opts base_opts(const char *out) {
    cl_train_opts o;
    cl_train_opts_default(&o);
    o.model_dir = MODEL;
    o.task = "SST-2";
    o.data_dir = GLUE;
    o.out_dir = out;
    o.protocol = CL_PROTOCOL_GLUE;
    o.batch_size = 8;
    o.max_length = 32;
    o.lr = 5e-3f;
    o.epochs = 1;
    o.quiet = 1;
    o.threads = 1;
    o.log_every = 1;
    return o;
}

/* every "type":"train" line's loss and lr, every dev eval's main */
typedef struct { double loss[512], lr[512]; int n; double dev[512]; int ndev; } logged;

static void read_metrics(const char *run, logged *L) {
    memset(L, 0, sizeof *L);
    char p[400], line[4096];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    FILE *f = fopen(p, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        char *q;
        if (strstr(line, "\"type\":\"train\"") && L->n < 512) {
            q = strstr(line, "\"loss\":");
            L->loss[L->n] = q ? strtod(q + 7, NULL) : NAN;
            q = strstr(line, "\"lr\":");
            L->lr[L->n++] = q ? strtod(q + 5, NULL) : NAN;
        } else if (strstr(line, "\"split\":\"dev\"") && L->ndev < 512) {
            q = strstr(line, "\"main\":");
            L->dev[L->ndev++] = q ? strtod(q + 7, NULL) : NAN;
        }
    }
    fclose(f);
}

TEST(schedule_by_hand) {
    /* ratio 0.1 of 20 steps: warm-up ceil(2.0) = 2 */
    CHECK(cl_train_warmup_steps(0.1, 20) == 2);
    CHECK(cl_train_warmup_steps(0.15, 10) == 2, "ceil(1.5)");
    CHECK(cl_train_warmup_steps(0.0, 10) == 0);
    double lr = 1e-3;
    CHECK_NEAR(cl_train_lr_at(lr, 0, 2, 20), 0.0, 0);
    CHECK_NEAR(cl_train_lr_at(lr, 1, 2, 20), 0.5e-3, 1e-18);
    CHECK_NEAR(cl_train_lr_at(lr, 2, 2, 20), 1e-3, 1e-18);
    CHECK_NEAR(cl_train_lr_at(lr, 11, 2, 20), 1e-3 * 9.0 / 18.0, 1e-18);
    CHECK_NEAR(cl_train_lr_at(lr, 19, 2, 20), 1e-3 / 18.0, 1e-18);
    CHECK_NEAR(cl_train_lr_at(lr, 20, 2, 20), 0.0, 0);
    CHECK_NEAR(cl_train_lr_at(lr, 0, 0, 4), 1e-3, 0, "no warm-up starts at the peak");
    CHECK(cl_paper_eval_every(1499) == 0 && cl_paper_eval_every(1500) == 1500 && cl_paper_eval_every(24545) == 1500);
    const cl_paper_preset *p = cl_paper_preset_find("rte");
    CHECK(p && p->lr_condlora == 1.61750047409374e-4 && p->lr_lora == 7.70943216980477e-5 && p->epochs == 100 &&
          p->patience == 0);
    p = cl_paper_preset_find("sst2");
    CHECK(p && p->epochs == 60 && p->patience == 30 && p->lr_condlora == 4.1369967560273e-4);
    CHECK(cl_paper_preset_find("WNLI") == NULL);
    /* the preset trains the whole head: RoBERTa's dense + out_proj, BERT's pooler + classifier */
    cl_train_opts po;
    cl_train_opts_default(&po);
    CHECK(po.train_pooler == 0, "PEFT's default: the BERT pooler frozen");
    po.task = "RTE";
    po.ad.method = CL_METHOD_CONDLORA;
    cl_error pe = {0};
    CHECK(cl_train_apply_paper_preset(&po, &pe) == 0 && po.train_pooler == 1 && po.lr == (float)1.61750047409374e-4 &&
              po.epochs == 100 && po.max_length == 512,
          "%s", pe.msg);
}

TEST(learns_and_logs_schedule) {
    char out[400];
    snprintf(out, sizeof out, "%s/run_learn", ROOT);
    cl_train_opts o = base_opts(out);
    o.epochs = 3; /* 160 / 8 = 20 steps per epoch, 60 steps */
    o.ad.method = CL_METHOD_LORA;
    cl_error e = {0};
    cl_train_result r;
    int rc = cl_train_run(&o, &r, &e);
    CHECK(rc == 0, "%s", e.msg);
    if (rc) return;
    CHECK(r.steps == 60 && r.epochs_run == 3, "%lld steps", (long long)r.steps);
    logged L;
    read_metrics(out, &L);
    CHECK(L.n == 60, "%d logged steps", L.n);
    CHECK(L.ndev == 3, "%d evaluations (one per epoch)", L.ndev);
    double first = 0, last = 0;
    for (int i = 0; i < 10; i++) first += L.loss[i], last += L.loss[L.n - 10 + i];
    CHECK(last < 0.8 * first, "mean loss of the first 10 steps %g, of the last 10 %g", first / 10, last / 10);
    CHECK(r.best_dev.main > 0.7, "dev accuracy %g on a learnable toy task", r.best_dev.main);
    /* the logged lr of step k (1-based line k+1) is the hand formula at k: warm-up ceil(6.0) = 6 */
    int ok = 1;
    for (int k = 0; k < L.n; k++) {
        double lr0 = (double)o.lr; /* the float 5e-3f */
        double want = k < 6 ? lr0 * k / 6.0 : lr0 * (60.0 - k) / 54.0;
        if (fabs(L.lr[k] - want) > 1e-8 * 5e-3) ok = 0, fprintf(stderr, "step %d lr %g want %g\n", k, L.lr[k], want);
    }
    CHECK(ok, "logged learning rates follow warm-up 6 then linear decay over 54 steps");
    /* files a user expects */
    char p[500];
    const char *files[] = {"run.json", "curve.svg", "best/adapter_model.safetensors", "best/adapter_config.json",
                           "best/condlora_state.safetensors", "final/adapter_model.safetensors"};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        CHECK(access(p, R_OK) == 0, "%s", p);
    }
    /* PEFT names in the exported adapter: LoRA A/B of query and value in both layers + the BERT classifier */
    snprintf(p, sizeof p, "%s/best/adapter_model.safetensors", out);
    cl_safetensors st;
    if (cl_st_open(&st, p, &e) == 0) {
        CHECK(st.n == 2 * 2 * 2 + 2, "%d tensors", st.n);
        CHECK(cl_st_find(&st, "base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight") != NULL);
        CHECK(cl_st_find(&st, "base_model.model.classifier.weight") != NULL);
        cl_st_close(&st);
    } else CHECK(0, "%s", e.msg);
    /* run.json counts as plain integers: adapter = 2 layers x 2 modules x (8x32 + 32x8), head = 2x32 + 2 */
    char *js = NULL;
    size_t jn = 0;
    snprintf(p, sizeof p, "%s/run.json", out);
    CHECK(read_all(p, &js, &jn) == 0);
    CHECK(js && strstr(js, "\"adapter\":\t2048") && strstr(js, "\"head\":\t66"), "trainable counts in run.json");
    free(js);
    CHECK(r.n_adapter == 2048 && r.n_head == 66);
}

TEST(same_seed_same_run) {
    char a[400], b[400], c[400], pa[500], pb[500];
    snprintf(a, sizeof a, "%s/run_det_a", ROOT);
    snprintf(b, sizeof b, "%s/run_det_b", ROOT);
    snprintf(c, sizeof c, "%s/run_det_c", ROOT);
    cl_error e = {0};
    cl_train_result r1, r2, r3;
    cl_train_opts o = base_opts(a);
    o.ad.dropout = 0.1f; /* adapter dropout and encoder dropout both drawn from the seed */
    o.max_steps = 25;
    CHECK(cl_train_run(&o, &r1, &e) == 0, "%s", e.msg);
    o.out_dir = b;
    CHECK(cl_train_run(&o, &r2, &e) == 0, "%s", e.msg);
    o.out_dir = c;
    o.seed = 2;
    CHECK(cl_train_run(&o, &r3, &e) == 0, "%s", e.msg);
    logged L1, L2, L3;
    read_metrics(a, &L1), read_metrics(b, &L2), read_metrics(c, &L3);
    int same = L1.n == L2.n && L1.n == 25, diff = 0;
    for (int i = 0; i < L1.n && i < L3.n; i++) {
        if (L1.loss[i] != L2.loss[i]) same = 0;
        if (L1.loss[i] != L3.loss[i]) diff = 1;
    }
    CHECK(same, "same seed: identical logged losses");
    CHECK(diff, "another seed: other losses");
    snprintf(pa, sizeof pa, "%s/final/condlora_state.safetensors", a);
    snprintf(pb, sizeof pb, "%s/final/condlora_state.safetensors", b);
    CHECK(files_equal(pa, pb), "same seed: bit-identical adapter + head");
    snprintf(pa, sizeof pa, "%s/final/adapter_model.safetensors", a);
    snprintf(pb, sizeof pb, "%s/final/adapter_model.safetensors", b);
    CHECK(files_equal(pa, pb), "same seed: bit-identical PEFT export");
}

TEST(early_stopping) {
    char out[400];
    snprintf(out, sizeof out, "%s/run_early", ROOT);
    cl_train_opts o = base_opts(out);
    o.lr = 1e-12f; /* the dev metric cannot move: only the first evaluation improves */
    o.epochs = 5;  /* 100 steps available */
    o.eval_every = 2;
    o.patience = 3;
    cl_error e = {0};
    cl_train_result r;
    CHECK(cl_train_run(&o, &r, &e) == 0, "%s", e.msg);
    CHECK(r.stopped_early, "stopped early");
    CHECK(r.steps == 2 * (1 + 3), "stopped at step %lld = after 1 + patience evaluations", (long long)r.steps);
    CHECK(r.best_step == 2, "best step %lld", (long long)r.best_step);
    logged L;
    read_metrics(out, &L);
    CHECK(L.ndev == 4, "%d evaluations logged", L.ndev);
}

TEST(best_reloads_exactly) {
    char out[400], best[500];
    snprintf(out, sizeof out, "%s/run_reload", ROOT);
    cl_train_opts o = base_opts(out);
    o.protocol = CL_PROTOCOL_PAPER; /* dev = 10% of train, test = the dev file */
    o.ad.method = CL_METHOD_CONDLORA;
    o.epochs = 2;
    o.eval_every = 5;
    cl_error e = {0};
    cl_train_result r;
    int rc = cl_train_run(&o, &r, &e);
    CHECK(rc == 0, "%s", e.msg);
    if (rc) return;
    logged L;
    read_metrics(out, &L);
    double mx = -1;
    for (int i = 0; i < L.ndev; i++)
        if (L.dev[i] > mx) mx = L.dev[i];
    CHECK(L.ndev >= 4 && mx == r.best_dev.main, "best logged dev %g vs result %g", mx, r.best_dev.main);
    cl_metric_set m;
    size_t n = 0;
    CHECK(cl_eval_run(out, "dev", NULL, NULL, 1, &m, &n, &e) == 0, "%s", e.msg);
    CHECK(m.main == r.best_dev.main && n == r.n_dev, "eval of best/ on dev %.10g vs logged %.10g", m.main, mx);
    snprintf(best, sizeof best, "%s/best", out);
    CHECK(cl_eval_run(best, "test", NULL, NULL, 1, &m, &n, &e) == 0, "%s", e.msg);
    CHECK(r.have_test && m.main == r.test.main && n == 40, "eval of best/ on test %.10g vs %.10g", m.main,
          r.test.main);
    /* CLI: condlora eval prints the same number */
    const char *bin = getenv("CL_BIN");
    if (bin) {
        char cmd[1200], buf[512] = {0}, want[64];
        snprintf(cmd, sizeof cmd, "%s eval --run %s --split dev --threads 1", bin, out);
        FILE *p = popen(cmd, "r");
        size_t got = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
        (void)got;
        CHECK(p && pclose(p) == 0);
        snprintf(want, sizeof want, "\"main\":%.10g", r.best_dev.main);
        CHECK(strstr(buf, want) != NULL, "%s lacks %s", buf, want);
    }
}

static void expect_fail(cl_train_opts o, const char *what, const char *needle1, const char *needle2) {
    cl_error e = {0};
    cl_train_result r;
    int rc = cl_train_run(&o, &r, &e);
    CHECK(rc != 0, "%s: accepted", what);
    CHECK(strstr(e.msg, needle1) != NULL && (!needle2 || strstr(e.msg, needle2)), "%s: message '%s'", what, e.msg);
    CHECK(access(o.out_dir, F_OK) != 0, "%s: the run directory was created before the checks", what);
}

TEST(bad_input_fails_before_training) {
    char out[400], d[400], p[500];
    snprintf(out, sizeof out, "%s/run_bad", ROOT);
    cl_train_opts o = base_opts(out);
    cl_error e = {0};
    /* missing model directory */
    o.model_dir = "/nonexistent/model";
    expect_fail(o, "missing model", "/nonexistent/model", NULL);
    o.model_dir = MODEL;
    /* model without tokenizer files */
    snprintf(d, sizeof d, "%s/model_notok", ROOT);
    cl_mkdir_p(d, &e);
    snprintf(p, sizeof p, "%s/config.json", d);
    tr_write_text(p, CONFIG);
    o.model_dir = d;
    expect_fail(o, "no tokenizer", d, NULL);
    o.model_dir = MODEL;
    /* a directory that is not a GLUE task */
    snprintf(d, sizeof d, "%s/notglue", ROOT);
    cl_mkdir_p(d, &e);
    snprintf(p, sizeof p, "%s/train.tsv", d);
    tr_write_text(p, "foo\tbar\n1\t2\n");
    snprintf(p, sizeof p, "%s/dev.tsv", d);
    tr_write_text(p, "foo\tbar\n1\t2\n");
    o.data_dir = d;
    expect_fail(o, "not a GLUE task", d, NULL);
    /* empty train file */
    snprintf(d, sizeof d, "%s/bad_empty/SST-2", ROOT);
    tr_write_sst2(d, 8, 8, 3);
    snprintf(p, sizeof p, "%s/train.tsv", d);
    tr_write_text(p, "");
    snprintf(d, sizeof d, "%s/bad_empty", ROOT);
    o.data_dir = d;
    expect_fail(o, "empty file", "train.tsv", NULL);
    /* a row with too few columns, line 3 */
    snprintf(d, sizeof d, "%s/bad_cols/SST-2", ROOT);
    tr_write_sst2(d, 8, 8, 3);
    snprintf(p, sizeof p, "%s/train.tsv", d);
    tr_write_text(p, "sentence\tlabel\na good one\t1\nno label here\n");
    o.data_dir = d;
    expect_fail(o, "too few columns", "train.tsv:3", NULL);
    /* an unknown label, line 2 of dev */
    snprintf(d, sizeof d, "%s/bad_label/SST-2", ROOT);
    tr_write_sst2(d, 8, 8, 3);
    snprintf(p, sizeof p, "%s/dev.tsv", d);
    tr_write_text(p, "sentence\tlabel\nthe movie\tmaybe\n");
    o.data_dir = d;
    expect_fail(o, "unknown label", "dev.tsv:2", NULL);
    /* a NaN score in STS-B */
    snprintf(d, sizeof d, "%s/bad_nan/STS-B", ROOT);
    cl_mkdir_p(d, &e);
    const char *hdr = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
    char rows[1024];
    snprintf(rows, sizeof rows, "%s0\tg\tf\t2012\t0\ts\ts\ta man\ta dog\t2.5\n1\tg\tf\t2012\t1\ts\ts\tx\ty\tnan\n", hdr);
    snprintf(p, sizeof p, "%s/train.tsv", d);
    tr_write_text(p, rows);
    snprintf(rows, sizeof rows, "%s0\tg\tf\t2012\t0\ts\ts\ta man\ta dog\t2.5\n", hdr);
    snprintf(p, sizeof p, "%s/dev.tsv", d);
    tr_write_text(p, rows);
    snprintf(d, sizeof d, "%s/bad_nan", ROOT);
    o.data_dir = d;
    o.task = "STS-B";
    expect_fail(o, "NaN score", "train.tsv:3", NULL);
    o.task = "SST-2";
    o.data_dir = GLUE;
    /* missing data directory */
    o.data_dir = "/nonexistent/glue";
    expect_fail(o, "missing data", "/nonexistent/glue", NULL);
    o.data_dir = GLUE;
    /* options */
    o.max_length = 100;
    expect_fail(o, "max length beyond the positions", "max-length", NULL);
    o.max_length = 32;
    o.ad.r = 0;
    expect_fail(o, "rank 0", "r", NULL);
    o.ad.r = 8;
    o.task = "NOPE";
    expect_fail(o, "unknown task", "NOPE", NULL);
    o.task = "SST-2";
    /* the CLI exits non-zero with the message */
    const char *bin = getenv("CL_BIN");
    if (bin) {
        char cmd[1400], buf[1024] = {0};
        snprintf(cmd, sizeof cmd, "%s train --model %s --task SST-2 --data %s/bad_cols --method lora --out %s "
                                  "--threads 1 --max-length 32 2>&1", bin, MODEL, ROOT, out);
        FILE *f = popen(cmd, "r");
        size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        (void)got;
        int st = f ? pclose(f) : 0;
        CHECK(st != 0 && strstr(buf, "train.tsv:3"), "CLI: exit %d, '%s'", st, buf);
        CHECK(access(out, F_OK) != 0, "CLI created the run directory");
        snprintf(cmd, sizeof cmd, "%s train --model %s --task SST-2 --data %s --method nope --out %s 2>&1", bin, MODEL,
                 GLUE, out);
        f = popen(cmd, "r");
        st = f ? pclose(f) : 0;
        CHECK(st != 0, "CLI: unknown method accepted");
    }
}


/* ---- checkpoints and resume (issue 7) ---- */

static int same_file(const char *run_a, const char *run_b, const char *rel) {
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/%s", run_a, rel);
    snprintf(pb, sizeof pb, "%s/%s", run_b, rel);
    return files_equal(pa, pb);
}

static int same_losses(const char *a, const char *b, int expect_n) {
    logged *L1 = malloc(sizeof *L1), *L2 = malloc(sizeof *L2);
    read_metrics(a, L1), read_metrics(b, L2);
    int same = L1->n == L2->n && L1->n == expect_n && L1->ndev == L2->ndev;
    for (int i = 0; same && i < L1->n; i++) same = L1->loss[i] == L2->loss[i] && L1->lr[i] == L2->lr[i];
    for (int i = 0; same && i < L1->ndev; i++) same = L1->dev[i] == L2->dev[i];
    free(L1), free(L2);
    return same;
}

static int exists(const char *run, const char *rel) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", run, rel);
    return access(p, F_OK) == 0;
}

static cJSON *load_json(const char *run, const char *rel) {
    char p[600], *txt = NULL;
    size_t n = 0;
    snprintf(p, sizeof p, "%s/%s", run, rel);
    if (read_all(p, &txt, &n)) return NULL;
    cJSON *j = cJSON_ParseWithLength(txt, n);
    free(txt);
    return j;
}

/* run.json's result.ranks against the exported PEFT adapter of best/ (whose loading PEFT itself checks in
 * tests/py/test_peft_interop.py): a module rank_pattern lists has that rank, any other adapted module r; the
 * kept total is their sum, and no entry exceeds the rank it was created with */
static int ranks_match_peft(const char *run, char *why, size_t wn) {
    cJSON *rj = load_json(run, "run.json"), *cj = load_json(run, "best/adapter_config.json");
    cJSON *rk = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(rj, "result"), "ranks"), "query");
    cJSON *rp = cJSON_GetObjectItem(cj, "rank_pattern"), *r0 = cJSON_GetObjectItem(cj, "r");
    cJSON *ro = rk ? cJSON_GetObjectItem(cJSON_GetObjectItem(rj, "result"), "ranks") : NULL;
    int ok = ro && cJSON_IsObject(rp) && cJSON_IsNumber(r0), sum = 0;
    if (!ok) snprintf(why, wn, "no result.ranks or no rank_pattern");
    static const char *mods[] = {"query", "value"};
    for (int m = 0; ok && m < 2; m++) {
        cJSON *a = cJSON_GetObjectItem(ro, mods[m]);
        ok = cJSON_IsArray(a);
        for (int l = 0; ok && l < cJSON_GetArraySize(a); l++) {
            cJSON *v = cJSON_GetArrayItem(a, l);
            if (cJSON_IsNull(v)) continue;
            int want = r0->valueint, have = v->valueint;
            char suffix[64];
            snprintf(suffix, sizeof suffix, "layer.%d.attention.self.%s", l, mods[m]);
            for (cJSON *it = rp->child; it; it = it->next) {
                size_t kl = strlen(it->string), sl = strlen(suffix);
                if (kl >= sl && !strcmp(it->string + kl - sl, suffix)) want = it->valueint;
            }
            sum += have;
            if (have != want) ok = 0, snprintf(why, wn, "layer %d %s: run.json %d, PEFT %d", l, mods[m], have, want);
        }
    }
    cJSON *kept = cJSON_GetObjectItem(ro, "kept"), *full = cJSON_GetObjectItem(ro, "full");
    if (ok && !(cJSON_IsNumber(kept) && kept->valueint == sum && cJSON_IsNumber(full) && sum <= full->valueint))
        ok = 0, snprintf(why, wn, "kept %d, full %d, sum %d", kept ? kept->valueint : -1,
                          full ? full->valueint : -1, sum);
    cJSON_Delete(rj), cJSON_Delete(cj);
    return ok;
}

/* 30 steps straight vs 13 steps, stop (a checkpoint), resume, 17 steps: the same losses, evaluations and bytes
 * (the stop falls inside the second epoch of 20 batches, so the data position matters) */
TEST(resume_is_exact) {
    const cl_method methods[] = {CL_METHOD_LORA, CL_METHOD_CONDLORA, CL_METHOD_SALORA, CL_METHOD_ADALORA};
    uint64_t head_h = 0;
    for (int mi = 0; mi < 4; mi++) {
        char a[400], b[400];
        snprintf(a, sizeof a, "%s/resume_%s_straight", ROOT, cl_method_names[methods[mi]]);
        snprintf(b, sizeof b, "%s/resume_%s_stopped", ROOT, cl_method_names[methods[mi]]);
        cl_train_opts o = base_opts(a);
        o.ad.method = methods[mi];
        cl_adapter_opts_default(&o.ad, methods[mi]);
        o.ad.dropout = 0.1f;
        o.max_steps = 30;
        o.eval_every = 4;
        o.save_every = 10;
        if (methods[mi] == CL_METHOD_SALORA) o.ad.salora_budget = 0.5f;
        if (methods[mi] == CL_METHOD_CONDLORA) o.train_pooler = 1; /* the pooler's state resumes too */
        cl_error e = {0};
        cl_train_result r1, r2, r3;
        CHECK(cl_train_run(&o, &r1, &e) == 0, "%s: %s", cl_method_names[methods[mi]], e.msg);
        /* the classifier has 2 H + 2 values (LoRA, the first run), the pooler H^2 + H more when trained */
        if (mi == 0) head_h = (r1.n_head - 2) / 2;
        uint64_t want_head = 2 * head_h + 2 + (o.train_pooler ? head_h * head_h + head_h : 0);
        CHECK(r1.n_head == want_head, "%s: head parameters %llu, expected %llu", cl_method_names[methods[mi]],
              (unsigned long long)r1.n_head, (unsigned long long)want_head);
        o.out_dir = b;
        o.stop_after = 13;
        CHECK(cl_train_run(&o, &r2, &e) == 0, "%s", e.msg);
        CHECK(r2.paused && r2.steps == 13, "%s: paused at %lld", cl_method_names[methods[mi]], (long long)r2.steps);
        CHECK(exists(b, "checkpoint-10/COMPLETE") && exists(b, "checkpoint-13/COMPLETE") && !exists(b, "final"));
        cl_train_opts ro;
        memset(&ro, 0, sizeof ro);
        ro.resume = b, ro.quiet = 1, ro.save_final = 1;
        CHECK(cl_train_run(&ro, &r3, &e) == 0, "%s", e.msg);
        CHECK(r3.resumed_from == 13 && r3.steps == 30, "%s: resumed from %lld, %lld steps",
              cl_method_names[methods[mi]], (long long)r3.resumed_from, (long long)r3.steps);
        CHECK(same_losses(a, b, 30), "%s: logged losses, learning rates and dev metrics equal",
              cl_method_names[methods[mi]]);
        CHECK(same_file(a, b, "final/adapter_model.safetensors") &&
              same_file(a, b, "final/condlora_state.safetensors"), "%s: final adapter bytes",
              cl_method_names[methods[mi]]);
        CHECK(same_file(a, b, "best/adapter_model.safetensors") && same_file(a, b, "best/adapter_config.json"),
              "%s: best/ bytes", cl_method_names[methods[mi]]);
        CHECK(same_file(a, b, "checkpoint-30/optimizer.safetensors"), "%s: optimizer state at step 30",
              cl_method_names[methods[mi]]);
        CHECK(r1.best_step == r3.best_step && r1.best_dev.main == r3.best_dev.main, "%s: best %lld vs %lld",
              cl_method_names[methods[mi]], (long long)r1.best_step, (long long)r3.best_step);
        char why[200] = "";
        CHECK(ranks_match_peft(a, why, sizeof why), "%s: run.json ranks: %s", cl_method_names[methods[mi]], why);
    }
}

/* runs the CLI with argv (NULL-terminated), stderr into errfile; fsize > 0: RLIMIT_FSIZE in bytes; fault: the
 * CONDLORA_FAULT value; signal_when: send sig as soon as that file exists. Returns the wait status. */
static int run_cli(char *const argv[], const char *errfile, long fsize, const char *fault, int sig,
                   const char *signal_when) {
    pid_t pid = fork();
    if (pid == 0) {
        FILE *ef = freopen(errfile, "w", stderr);
        (void)ef;
        if (!freopen("/dev/null", "w", stdout)) _exit(126);
        if (fsize > 0) {
            struct rlimit rl = {(rlim_t)fsize, (rlim_t)fsize};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        if (fault) setenv("CONDLORA_FAULT", fault, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid < 0) return -1;
    if (signal_when) {
        struct timespec ts = {0, 200000L};
        for (int i = 0; i < 300000 && access(signal_when, F_OK) != 0; i++) nanosleep(&ts, NULL);
        kill(pid, sig);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static int file_has(const char *path, const char *needle) {
    char *t = NULL;
    size_t n = 0;
    if (read_all(path, &t, &n)) return 0;
    int r = strstr(t, needle) != NULL;
    free(t);
    return r;
}

TEST(cli_signals_faults_and_full_disk) {
    const char *bin = getenv("CL_BIN");
    if (!bin) {
        SKIP("CL_BIN not set (run through make test)");
        return;
    }
    char a[400], b[400], c[400], d[400], errf[500], steps[16] = "200";
#define ARGS(out, extra...)                                                                                        \
    {(char *)bin, "train", "--model", MODEL, "--task", "SST-2", "--data", GLUE, "--method", "condlora", "--out", \
     out, "--protocol", "glue", "--batch-size", "8", "--max-length", "32", "--lr", "5e-3", "--threads", "1",     \
     "--quiet", "--log-every", "5", "--eval-every", "20", "--max-steps", steps, "--save-every", "5", ##extra, NULL}
    snprintf(a, sizeof a, "%s/cli_straight", ROOT);
    snprintf(b, sizeof b, "%s/cli_sigterm", ROOT);
    snprintf(c, sizeof c, "%s/cli_fault", ROOT);
    snprintf(d, sizeof d, "%s/cli_fsize", ROOT);
    snprintf(errf, sizeof errf, "%s/cli_stderr.txt", ROOT);
    char *straight[] = ARGS(a);
    int st = run_cli(straight, errf, 0, NULL, 0, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "straight run: status %d", st);
    /* SIGTERM while training: checkpoint of the finished step, exit 143, then --resume finishes it exactly */
    char when[600];
    snprintf(when, sizeof when, "%s/checkpoint-5/COMPLETE", b);
    char *sigterm[] = ARGS(b);
    st = run_cli(sigterm, errf, 0, NULL, SIGTERM, when);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 143, "SIGTERM: status %d (exit %d)", st, WEXITSTATUS(st));
    CHECK(file_has(errf, "terminated (SIGTERM) at step") && file_has(errf, "--resume"), "SIGTERM message");
    char rj[500];
    snprintf(rj, sizeof rj, "%s/run.json", b);
    CHECK(file_has(rj, "\"interrupted\""), "run.json says interrupted");
    char *resume_b[] = {(char *)bin, "train", "--resume", b, "--quiet", NULL};
    st = run_cli(resume_b, errf, 0, NULL, 0, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "resume after SIGTERM: status %d", st);
    CHECK(same_losses(a, b, 40) && same_file(a, b, "final/adapter_model.safetensors"),
          "SIGTERM + resume = straight run");
    /* SIGINT: exit 130 */
    char b2[400];
    snprintf(b2, sizeof b2, "%s/cli_sigint", ROOT);
    snprintf(when, sizeof when, "%s/checkpoint-5/COMPLETE", b2);
    char *sigint[] = ARGS(b2);
    st = run_cli(sigint, errf, 0, NULL, SIGINT, when);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 130, "SIGINT: status %d", st);
    /* SIGKILL in the middle of writing the 3rd checkpoint (step 15): checkpoint-10 stays the newest complete one,
     * checkpoint-15 has no marker; --resume drops it and continues from 10 to the same result */
    char *fault[] = ARGS(c);
    st = run_cli(fault, errf, 0, "kill-in-checkpoint:3", 0, NULL);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "fault injection: status %d", st);
    CHECK(exists(c, "checkpoint-10/COMPLETE") && exists(c, "checkpoint-15") && !exists(c, "checkpoint-15/COMPLETE"),
          "checkpoint-15 incomplete, checkpoint-10 complete");
    char latest[600];
    int64_t ls = -1;
    cl_error e = {0};
    CHECK(cl_train_latest_checkpoint(c, latest, sizeof latest, &ls, &e) == 0 && ls == 10, "latest %lld", (long long)ls);
    char *resume_c[] = {(char *)bin, "train", "--resume", c, "--quiet", NULL};
    st = run_cli(resume_c, errf, 0, NULL, 0, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "resume after SIGKILL: status %d", st);
    CHECK(same_losses(a, c, 40) && same_file(a, c, "final/adapter_model.safetensors") &&
          same_file(a, c, "best/adapter_model.safetensors"), "SIGKILL + resume = straight run");
    /* a file-size limit (as a full disk): the first checkpoint is written without it; with 12 KiB per file the
     * optimizer state (3 copies of the trainable floats) cannot be written: a clear error naming the checkpoint and
     * the intact previous one, a non-zero exit, and --resume without the limit still ends as the straight run */
    char *stop5[] = ARGS(d, "--stop-after", "5");
    st = run_cli(stop5, errf, 0, NULL, 0, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && exists(d, "checkpoint-5/COMPLETE"), "paused at 5: %d", st);
    char *resume_d[] = {(char *)bin, "train", "--resume", d, "--quiet", NULL};
    st = run_cli(resume_d, errf, 12 * 1024, NULL, 0, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "file-size limit: status %d", st);
    CHECK(file_has(errf, "checkpoint-10") && file_has(errf, "File too large") &&
          file_has(errf, "the previous checkpoint") && file_has(errf, "checkpoint-5 is intact"),
          "file-size limit message");
    CHECK(exists(d, "checkpoint-5/COMPLETE") && !exists(d, "checkpoint-10/COMPLETE"), "checkpoint-5 intact");
    st = run_cli(resume_d, errf, 0, NULL, 0, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "resume without the limit: %d", st);
    CHECK(same_losses(a, d, 40) && same_file(a, d, "final/adapter_model.safetensors"), "full disk + resume = straight");
    /* --resume with other options is refused; a run without checkpoints cannot be resumed */
    char *bad[] = {(char *)bin, "train", "--resume", d, "--lr", "1", NULL};
    st = run_cli(bad, errf, 0, NULL, 0, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && file_has(errf, "option --lr"), "resume + --lr: %d", st);
    char nock[400];
    snprintf(nock, sizeof nock, "%s/run_det_a", ROOT);
    char *none[] = {(char *)bin, "train", "--resume", nock, NULL};
    st = run_cli(none, errf, 0, NULL, 0, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1 && file_has(errf, "no complete checkpoint"), "no checkpoint: %d", st);
#undef ARGS
}

/* run_cli in directory CWD */
static int run_cli_in(const char *cwd, char *const argv[], const char *errfile) {
    pid_t pid = fork();
    if (pid == 0) {
        FILE *ef = freopen(errfile, "w", stderr);
        (void)ef;
        if (!freopen("/dev/null", "w", stdout) || chdir(cwd)) _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    if (pid > 0) waitpid(pid, &st, 0);
    return st;
}

static int json_string(const char *path, const char *key, char *out, size_t n) {
    char *t = NULL, pat[64];
    size_t len = 0;
    out[0] = 0;
    if (read_all(path, &t, &len)) return -1;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    char *q = strstr(t, pat);
    if (q && (q = strchr(q + strlen(pat), '"'))) {
        char *e = strchr(q + 1, '"');
        if (e) snprintf(out, n, "%.*s", (int)(e - q - 1), q + 1);
    }
    free(t);
    return out[0] ? 0 : -1;
}

/* --out on an existing run, checkpoints of another run, --overwrite, options on --resume, paths that move */
TEST(run_directory_safety) {
    char binabs[4096];
    const char *bin = getenv("CL_BIN") && realpath(getenv("CL_BIN"), binabs) ? binabs : NULL;
    char a[400], b[400], errf[500], p[700], q[700], id1[64], id2[64];
    snprintf(a, sizeof a, "%s/safe_a", ROOT);
    snprintf(b, sizeof b, "%s/safe_b", ROOT);
    snprintf(errf, sizeof errf, "%s/safe_err.txt", ROOT);
    cl_error e = {0};
    cl_train_result r;
    cl_train_opts o = base_opts(a);
    o.max_steps = 6, o.save_every = 3, o.stop_after = 3;
    CHECK(cl_train_run(&o, &r, &e) == 0 && r.paused, "%s", e.msg);
    o.out_dir = b;
    CHECK(cl_train_run(&o, &r, &e) == 0 && r.paused, "%s", e.msg);
    snprintf(p, sizeof p, "%s/run.json", a);
    snprintf(q, sizeof q, "%s/run.json", b);
    CHECK(!json_string(p, "run_id", id1, sizeof id1) && !json_string(q, "run_id", id2, sizeof id2) &&
          strlen(id1) == 32 && strcmp(id1, id2), "run ids '%s' '%s'", id1, id2);
    /* a second run into an existing run is refused before anything is touched */
    o.out_dir = a;
    o.stop_after = 0;
    int rc = cl_train_run(&o, &r, &e);
    CHECK(rc != 0 && strstr(e.msg, a) && strstr(e.msg, "--overwrite") && strstr(e.msg, "--resume"), "%s", e.msg);
    CHECK(exists(a, "checkpoint-3/COMPLETE"), "the old run is untouched");
    if (bin) {
        char *again[] = {(char *)bin, "train", "--model", MODEL, "--task", "SST-2", "--data", GLUE, "--out", a,
                         "--quiet", "--max-steps", "2", NULL};
        int st = run_cli(again, errf, 0, NULL, 0, NULL);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1 && file_has(errf, "already holds a run"), "CLI: status %d", st);
    }
    /* a checkpoint of another run (b's) in a's directory: --resume refuses it, naming the checkpoint */
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/checkpoint-3' && cp -r '%s/checkpoint-3' '%s/'", a, b, a);
    CHECK(system(cmd) == 0, "%s", cmd);
    cl_train_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.resume = a, ro.quiet = 1;
    rc = cl_train_run(&ro, &r, &e);
    CHECK(rc != 0 && strstr(e.msg, "checkpoint-3") && strstr(e.msg, "belongs to run") && strstr(e.msg, id2) &&
          strstr(e.msg, id1), "%s", e.msg);
    /* --overwrite replaces the run: the old checkpoints are gone, a new run id */
    o.overwrite = 1;
    o.max_steps = 4;
    o.save_every = 0;
    CHECK(cl_train_run(&o, &r, &e) == 0 && r.steps == 4, "%s", e.msg);
    CHECK(!exists(a, "checkpoint-3") && exists(a, "final/adapter_model.safetensors"), "old run removed");
    CHECK(!json_string(p, "run_id", q, sizeof q) && strcmp(q, id1), "new run id");
    /* a directory that is not a run is never removed, with or without --overwrite */
    char junk[400];
    snprintf(junk, sizeof junk, "%s/not_a_run", ROOT);
    cl_mkdir_p(junk, &e);
    snprintf(p, sizeof p, "%s/precious.txt", junk);
    tr_write_text(p, "keep me");
    o.out_dir = junk;
    rc = cl_train_run(&o, &r, &e);
    CHECK(rc != 0 && strstr(e.msg, "not a condlora run") && access(p, F_OK) == 0, "%s", e.msg);
    o.overwrite = 0;
    rc = cl_train_run(&o, &r, &e);
    CHECK(rc != 0 && access(p, F_OK) == 0, "%s", e.msg);
    if (!bin) {
        SKIP("CL_BIN not set: the CLI parts");
        return;
    }
    /* relative paths from ROOT; --resume from another directory; then the whole tree moved */
    char mv1[400], mv2[400];
    snprintf(mv1, sizeof mv1, "%s/tree1", ROOT);
    snprintf(mv2, sizeof mv2, "%s/tree2", ROOT);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp -r '%s' '%s' '%s/'", mv1, MODEL, GLUE, mv1);
    CHECK(system(cmd) == 0, "%s", cmd);
    char *rel[] = {(char *)bin, "train", "--model", "model", "--task", "SST-2", "--data", "glue", "--out", "run",
                   "--protocol", "glue", "--batch-size", "8", "--max-length", "32", "--threads", "1", "--quiet",
                   "--max-steps", "6", "--save-every", "3", "--stop-after", "3", NULL};
    int st = run_cli_in(mv1, rel, errf);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "relative run: %d", st);
    snprintf(p, sizeof p, "%s/run/run.json", mv1);
    char md[600];
    CHECK(!json_string(p, "model_dir", md, sizeof md) && md[0] == '/' && strstr(md, "tree1/model") &&
          file_has(p, "\"model_dir_rel\":\t\"../model\""), "run.json paths: %s", md);
    /* options equal to run.json's are accepted on --resume (here --batch-size 8 --protocol glue), from / */
    snprintf(q, sizeof q, "%s/run", mv1);
    char *res_same[] = {(char *)bin, "train", "--resume", q, "--quiet", "--batch-size", "8", "--protocol", "glue",
                        "--stop-after", "1", NULL};
    st = run_cli_in("/", res_same, errf);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "resume from / with equal options: %d", st);
    char *res_diff[] = {(char *)bin, "train", "--resume", q, "--batch-size", "4", NULL};
    st = run_cli_in("/", res_diff, errf);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && file_has(errf, "option --batch-size 4"), "different: %d", st);
    /* the tree moves: run.json's absolute paths are gone, the relative ones find the model and data */
    snprintf(cmd, sizeof cmd, "mv '%s' '%s'", mv1, mv2);
    CHECK(system(cmd) == 0, "%s", cmd);
    snprintf(q, sizeof q, "%s/run", mv2);
    char *res_moved[] = {(char *)bin, "train", "--resume", q, "--quiet", NULL};
    st = run_cli_in("/", res_moved, errf);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && exists(q, "final/adapter_model.safetensors"),
          "resume after moving the tree: %d", st);
    char *ev[] = {(char *)bin, "eval", "--run", q, "--split", "dev", NULL};
    st = run_cli_in("/", ev, errf);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "eval of the moved run: %d", st);
}

/* eval prints valid JSON whatever the run's path holds; eval checks the PEFT adapter file too; analyze takes a run
 * directory as predict, merge and eval do */
TEST(cli_eval_and_analyze_of_a_run) {
    char binabs[4096];
    const char *bin = getenv("CL_BIN") && realpath(getenv("CL_BIN"), binabs) ? binabs : NULL;
    if (!bin) {
        SKIP("CL_BIN not set");
        return;
    }
    char run[400], errf[500], outf[500], cmd[10000];
    snprintf(run, sizeof run, "%s/a \"quoted\" run\\dir", ROOT);
    snprintf(errf, sizeof errf, "%s/small_err.txt", ROOT);
    snprintf(outf, sizeof outf, "%s/small_out.txt", ROOT);
    cl_train_opts o = base_opts(run);
    o.max_steps = 4;
    cl_error e = {0};
    cl_train_result r;
    CHECK(cl_train_run(&o, &r, &e) == 0, "%s", e.msg);
    snprintf(cmd, sizeof cmd, "'%s' eval --run '%s' --split dev > '%s' 2> '%s'", bin, run, outf, errf);
    CHECK(system(cmd) == 0, "%s", cmd);
    char *txt = NULL;
    size_t n = 0;
    CHECK(read_all(outf, &txt, &n) == 0, "eval output");
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    cJSON *rj = j ? cJSON_GetObjectItem(j, "run") : NULL;
    CHECK(cJSON_IsString(rj) && !strcmp(rj->valuestring, run) && cJSON_IsNumber(cJSON_GetObjectItem(j, "main")),
          "eval's JSON (run path with a quote and a backslash): %s", txt ? txt : "");
    cJSON_Delete(j);
    free(txt);
    /* analyze conversion --adapter RUN: the run's best/ */
    char an[400];
    snprintf(an, sizeof an, "%s/small_analysis", ROOT);
    snprintf(cmd, sizeof cmd, "'%s' analyze conversion --model '%s' --adapter '%s' --out '%s' > /dev/null 2> '%s'",
             bin, MODEL, run, an, errf);
    CHECK(system(cmd) == 0 && exists(an, "conversion.json"), "analyze of a run directory: %s", cmd);
    /* a damaged best/adapter_model.safetensors: eval fails naming it */
    snprintf(cmd, sizeof cmd, "truncate -s 20 '%s/best/adapter_model.safetensors'", run);
    CHECK(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "'%s' eval --run '%s' --split dev > /dev/null 2> '%s'", bin, run, errf);
    int st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1 && file_has(errf, "adapter_model.safetensors"),
          "eval of a damaged adapter: status %d", st);
}

/* TSV rows "text<TAB>0|1" of the toy SST-2 file -> CSV with string labels (the first as "bad, really" to need
 * quoting) and JSON Lines */
static void convert_sst2(const char *tsv, const char *csv, const char *jsonl) {
    FILE *in = fopen(tsv, "r"), *c = fopen(csv, "w"), *j = fopen(jsonl, "w");
    char line[1024];
    int first = 1;
    fprintf(c, "id,review,sentiment\n");
    for (int i = 0; in && c && j && fgets(line, sizeof line, in); i++) {
        if (first) { first = 0; continue; }
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        int lab = atoi(tab + 1);
        fprintf(c, "%d,\"%s\",%s\n", i, line, lab ? "good" : "\"bad, really\"");
        fprintf(j, "{\"review\": \"%s\", \"sentiment\": %d}\n", line, lab);
    }
    if (in) fclose(in);
    if (c) fclose(c);
    if (j) fclose(j);
}

/* own data end to end through the CLI: train on CSV, TSV and JSON Lines, the label set in run.json and labels.json,
 * predict --format labels (names, probabilities that sum to 1, the argmax label), resume and eval of such a run */
TEST(own_data_end_to_end) {
    char binabs[4096];
    const char *bin = getenv("CL_BIN") && realpath(getenv("CL_BIN"), binabs) ? binabs : NULL;
    if (!bin) {
        SKIP("CL_BIN not set");
        return;
    }
    char tsv[400], csv[400], jl[400], run[400], errf[500], outf[500], cmd[9000];
    snprintf(tsv, sizeof tsv, "%s/SST-2/train.tsv", GLUE);
    snprintf(csv, sizeof csv, "%s/own.csv", ROOT);
    snprintf(jl, sizeof jl, "%s/own.jsonl", ROOT);
    snprintf(errf, sizeof errf, "%s/own_err.txt", ROOT);
    snprintf(outf, sizeof outf, "%s/own_pred.tsv", ROOT);
    convert_sst2(tsv, csv, jl);
    const char *files[3] = {csv, tsv, jl}, *cols[3] = {"review", "sentence", "review"},
               *labs[3] = {"sentiment", "label", "sentiment"};
    for (int f = 0; f < 3; f++) {
        snprintf(run, sizeof run, "%s/own_run_%d", ROOT, f);
        snprintf(cmd, sizeof cmd, "'%s' train --model '%s' --train '%s' --text-columns %s --label-column %s --method "
                 "lora --out '%s' --batch-size 8 --max-length 32 --lr 5e-3 --threads 1 --quiet --epochs 2 "
                 "--save-every 10 --stop-after 10 > /dev/null 2> '%s'", bin, MODEL, files[f], cols[f], labs[f], run,
                 errf);
        int st = system(cmd);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "train on %s: %d", files[f], st);
        snprintf(cmd, sizeof cmd, "'%s' train --resume '%s' --quiet > /dev/null 2> '%s'", bin, run, errf);
        st = system(cmd);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && exists(run, "final/adapter_model.safetensors"),
              "resume %s: %d", run, st);
        char p[600];
        snprintf(p, sizeof p, "%s/run.json", run);
        CHECK(file_has(p, f == 0 ? "\"labels\":\t[\"bad, really\", \"good\"]" : "\"labels\":\t[\"0\", \"1\"]"),
              "%s: run.json labels", run);
        snprintf(p, sizeof p, "%s/best/labels.json", run);
        CHECK(file_has(p, f == 0 ? "\"bad, really\"" : "\"1\""), "%s: labels.json", run);
    }
    /* predict the CSV by column name with the CSV run: label names and probabilities */
    snprintf(run, sizeof run, "%s/own_run_0", ROOT);
    snprintf(cmd, sizeof cmd, "'%s' predict --model '%s' --adapter '%s' --input '%s' --text-columns review --format "
             "labels > '%s' 2> '%s'", bin, MODEL, run, csv, outf, errf);
    int st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "predict: %d", st);
    FILE *f = fopen(outf, "r");
    char line[512];
    int rows = 0, ok = 1, right = 0;
    if (f && fgets(line, sizeof line, f)) CHECK(!strcmp(line, "index\tlabel\tbad, really\tgood\n"), "header: %s", line);
    while (f && fgets(line, sizeof line, f)) {
        char name[64];
        int idx;
        double p0, p1;
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t1 || !t2 || sscanf(line, "%d", &idx) != 1 || sscanf(t2 + 1, "%lf\t%lf", &p0, &p1) != 2) { ok = 0; break; }
        snprintf(name, sizeof name, "%.*s", (int)(t2 - t1 - 1), t1 + 1);
        ok &= idx == rows && fabs(p0 + p1 - 1) < 1e-5 && !strcmp(name, p0 > p1 ? "bad, really" : "good");
        rows++;
        right += 1;
    }
    if (f) fclose(f);
    CHECK(ok && rows == 160, "predictions: %d rows, consistent %d", rows, ok);
    (void)right;
    /* eval of the JSONL run (its files by the paths in run.json) */
    snprintf(run, sizeof run, "%s/own_run_2", ROOT);
    snprintf(cmd, sizeof cmd, "'%s' eval --run '%s' --split dev > '%s' 2> '%s'", bin, run, outf, errf);
    st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && file_has(outf, "\"acc\""), "eval of an own-data run: %d", st);
    /* --task with --train is a usage error */
    snprintf(cmd, sizeof cmd, "'%s' train --model '%s' --train '%s' --task SST-2 --out '%s/x' 2> '%s'", bin, MODEL, csv,
             ROOT, errf);
    st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && file_has(errf, "not both"), "--train with --task: %d", st);
}

/* multi-label own data through the CLI: SST-2 sentences tagged "pos" (label 1) and "film" (holding "actor" or "story"), a
 * set that may be empty, as JSON Lines lists. Train, resume, eval (f1_micro), predict --format labels (the set where
 * sigmoid > 0.5, each probability = sigmoid of the logit predict --format tsv prints), merge (problem_type in
 * config.json) and predict with the merged model (same output without the adapter). */
TEST(own_data_multi_label) {
    char binabs[4096];
    const char *bin = getenv("CL_BIN") && realpath(getenv("CL_BIN"), binabs) ? binabs : NULL;
    if (!bin) {
        SKIP("CL_BIN not set");
        return;
    }
    char tsv[400], jl[400], run[400], errf[500], lab[500], lg[500], merged[500], lab2[500], cmd[20000], p[600];
    snprintf(tsv, sizeof tsv, "%s/SST-2/train.tsv", GLUE);
    snprintf(jl, sizeof jl, "%s/multi.jsonl", ROOT);
    snprintf(run, sizeof run, "%s/multi_run", ROOT);
    snprintf(errf, sizeof errf, "%s/multi_err.txt", ROOT);
    snprintf(lab, sizeof lab, "%s/multi_labels.tsv", ROOT);
    snprintf(lab2, sizeof lab2, "%s/multi_labels_merged.tsv", ROOT);
    snprintf(lg, sizeof lg, "%s/multi_logits.tsv", ROOT);
    snprintf(merged, sizeof merged, "%s/multi_merged", ROOT);
    FILE *in = fopen(tsv, "r"), *o = fopen(jl, "w");
    char line[1024];
    int nrows = 0;
    for (int i = 0; in && o && fgets(line, sizeof line, in); i++) {
        char *tab = strchr(line, '\t');
        if (!i || !tab) continue;
        *tab = 0;
        int pos = atoi(tab + 1), lng = strstr(line, "actor") || strstr(line, "story");
        fprintf(o, "{\"text\": \"%s\", \"tags\": [%s%s%s]}\n", line, pos ? "\"pos\"" : "", pos && lng ? ", " : "",
                lng ? "\"film\"" : "");
        nrows++;
    }
    if (in) fclose(in);
    if (o) fclose(o);
    snprintf(cmd, sizeof cmd, "'%s' train --model '%s' --train '%s' --text-columns text --label-column tags --method "
             "lora --out '%s' --batch-size 8 --max-length 32 --lr 5e-3 --threads 1 --quiet --epochs 2 --save-every 10 "
             "--stop-after 10 > /dev/null 2> '%s'", bin, MODEL, jl, run, errf);
    int st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "train multi-label: %d", st);
    snprintf(cmd, sizeof cmd, "'%s' train --resume '%s' --quiet > /dev/null 2> '%s'", bin, run, errf);
    st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && exists(run, "final/adapter_model.safetensors"), "resume: %d", st);
    snprintf(p, sizeof p, "%s/run.json", run);
    CHECK(file_has(p, "\"problem\":\t\"multi_label_classification\"") && file_has(p, "\"labels\":\t[\"film\", \"pos\"]")
          && file_has(p, "\"f1_micro\""), "run.json: problem, labels, f1_micro");
    snprintf(p, sizeof p, "%s/best/labels.json", run);
    CHECK(file_has(p, "\"multi_label_classification\""), "labels.json problem_type");
    snprintf(cmd, sizeof cmd, "'%s' eval --run '%s' --split dev > '%s' 2> '%s'", bin, run, lg, errf);
    st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && file_has(lg, "\"f1_micro\"") && file_has(lg, "\"f1_macro\"") &&
          file_has(lg, "\"exact_match\""), "eval of a multi-label run: %d", st);
    /* predict: labels and logits */
    snprintf(cmd, sizeof cmd, "'%s' predict --model '%s' --adapter '%s' --input '%s' --text-columns text --format labels"
             " > '%s' 2> '%s' && '%s' predict --model '%s' --adapter '%s' --input '%s' --text-columns text > '%s' 2>> "
             "'%s'", bin, MODEL, run, jl, lab, errf, bin, MODEL, run, jl, lg, errf);
    st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "predict: %d", st);
    FILE *fl = fopen(lab, "r"), *fg = fopen(lg, "r");
    char l1[512], l2[512];
    int rows = 0, ok = 1, sets = 0;
    if (fl && fgets(l1, sizeof l1, fl)) CHECK(!strcmp(l1, "index\tlabels\tfilm\tpos\n"), "header: %s", l1);
    while (fl && fg && fgets(l1, sizeof l1, fl) && fgets(l2, sizeof l2, fg)) {
        int idx;
        double p0, p1, z0, z1;
        char *t1 = strchr(l1, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2 || sscanf(l1, "%d", &idx) != 1 || sscanf(t2 + 1, "%lf\t%lf", &p0, &p1) != 2 ||
            sscanf(l2, "%lf\t%lf", &z0, &z1) != 2) { ok = 0; break; }
        char set[64];
        snprintf(set, sizeof set, "%.*s", (int)(t2 - t1 - 1), t1 + 1);
        const char *want = p0 > 0.5 && p1 > 0.5 ? "film,pos" : p0 > 0.5 ? "film" : p1 > 0.5 ? "pos" : "";
        ok &= idx == rows && !strcmp(set, want) && fabs(p0 - 1 / (1 + exp(-z0))) < 2e-6 &&
              fabs(p1 - 1 / (1 + exp(-z1))) < 2e-6;
        sets += *set != 0;
        rows++;
    }
    if (fl) fclose(fl);
    if (fg) fclose(fg);
    CHECK(ok && rows == nrows, "multi-label predictions: %d of %d rows, consistent %d", rows, nrows, ok);
    (void)sets;
    /* merge: a multi-label transformers model; predict with it alone gives the same labels */
    snprintf(cmd, sizeof cmd, "'%s' merge --model '%s' --adapter '%s' --out '%s' > /dev/null 2> '%s' && '%s' predict "
             "--model '%s' --input '%s' --text-columns text --format labels > '%s' 2>> '%s'", bin, MODEL, run, merged,
             errf, bin, merged, jl, lab2, errf);
    st = system(cmd);
    snprintf(p, sizeof p, "%s/config.json", merged);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && file_has(p, "\"multi_label_classification\"") &&
          file_has(p, "\"pos\""), "merge + predict: %d", st);
    fl = fopen(lab, "r"), fg = fopen(lab2, "r");
    int same = fl && fg, n = 0;
    while (same && fgets(l1, sizeof l1, fl)) {
        same = fgets(l2, sizeof l2, fg) != NULL;
        if (same && n++ == 0) { /* the header */
            same = !strcmp(l1, l2);
            continue;
        }
        char *a = strchr(l1, '\t'), *b = same ? strchr(l2, '\t') : NULL;
        a = a ? strchr(a + 1, '\t') : NULL, b = b ? strchr(b + 1, '\t') : NULL;
        same &= a && b && !strncmp(l1, l2, (size_t)(a - l1)); /* index and set equal */
        double x0, x1, y0, y1;
        same &= a && b && sscanf(a, "%lf\t%lf", &x0, &x1) == 2 && sscanf(b, "%lf\t%lf", &y0, &y1) == 2 &&
                fabs(x0 - y0) < 1e-5 && fabs(x1 - y1) < 1e-5;
    }
    if (fl) fclose(fl);
    if (fg) fclose(fg);
    CHECK(same && n == nrows + 1, "merged model predicts the same sets (%d lines)", n);
}

/* the adapter options that only the options table made reachable (SaLoRA's budget and gates, AdaLoRA's schedule,
 * rsLoRA, dropout): given to `condlora train`, recorded in run.json, read back by --resume, which continues */
TEST(adapter_options_through_the_cli) {
    char binabs[4096];
    const char *bin = getenv("CL_BIN") && realpath(getenv("CL_BIN"), binabs) ? binabs : NULL;
    if (!bin) {
        SKIP("CL_BIN not set");
        return;
    }
    static const char *cases[2][2] = {
        {"salora", "--salora-budget 0.7 --salora-warmup 0.2 --salora-lambda-lr 0.02 --salora-orth 0.25 "
                   "--salora-log-alpha-init 2.5 --rslora 1 --dropout 0.1 --r 4 --alpha 16 --layers 1"},
        {"adalora", "--ada-target-r 3 --ada-tinit 1 --ada-tfinal 1 --ada-delta-t 2 --ada-beta1 0.8 --ada-beta2 0.7 "
                    "--ada-orth 0.3 --r 6 --targets query,value,intermediate.dense"}};
    for (int k = 0; k < 2; k++) {
        char run[400], errf[500], cmd[20000];
        snprintf(run, sizeof run, "%s/adopts_%s", ROOT, cases[k][0]);
        snprintf(errf, sizeof errf, "%s/adopts_err.txt", ROOT);
        snprintf(cmd, sizeof cmd, "'%s' train --model '%s' --task SST-2 --data '%s' --protocol glue --method %s %s "
                 "--out '%s' --batch-size 8 --max-length 32 --max-steps 6 --threads 1 --quiet --save-every 2 "
                 "--stop-after 2 > /dev/null 2> '%s'", bin, MODEL, GLUE, cases[k][0], cases[k][1], run, errf);
        int st = system(cmd);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %d", cmd, st);
        /* what the command line says, parsed by the same table, against what run.json gives back */
        cl_train_opts want;
        cl_train_opts_default(&want);
        cl_error e = {0};
        cl_train_option_set(&want, cl_train_option_find("method"), cases[k][0], &e);
        char args[1024];
        snprintf(args, sizeof args, "%s", cases[k][1]);
        for (char *t = strtok(args, " "); t; t = strtok(NULL, " ")) {
            const cl_train_option *p = cl_train_option_find(t + 2);
            char *v = strtok(NULL, " ");
            CHECK(p && v && cl_train_option_set(&want, p, v, &e) == 0, "%s: %s", t, e.msg);
        }
        cl_train_opts got;
        char buf[16384];
        CHECK(cl_train_read_run_opts(run, &got, buf, sizeof buf, &e) == 0, "%s", e.msg);
        for (size_t i = 0; i < cl_train_option_count(); i++) {
            const cl_train_option *p = cl_train_option_at(i);
            if (!(p->flags & CL_OF_ADAPTER)) continue;
            char x[512], y[512];
            cl_train_option_get(&want, p, x, sizeof x);
            cl_train_option_get(&got, p, y, sizeof y);
            CHECK(!strcmp(x, y), "%s --%s: given %s, run.json %s", cases[k][0], p->name, x, y);
        }
        snprintf(cmd, sizeof cmd, "'%s' train --resume '%s' --quiet > /dev/null 2> '%s'", bin, run, errf);
        st = system(cmd);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && exists(run, "final/adapter_model.safetensors"),
              "resume %s: %d", run, st);
        /* a different value on --resume is refused, naming the option */
        snprintf(cmd, sizeof cmd, "'%s' train --resume '%s' --%s 0.5 > /dev/null 2> '%s'", bin, run,
                 k ? "ada-beta1" : "salora-budget", errf);
        st = system(cmd);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && file_has(errf, k ? "--ada-beta1" : "--salora-budget"),
              "changed option on resume: %d", st);
    }
}

int main(void) {
    snprintf(ROOT, sizeof ROOT, "/tmp/cl_test_train_%d", (int)getpid());
    snprintf(MODEL, sizeof MODEL, "%s/model", ROOT);
    snprintf(GLUE, sizeof GLUE, "%s/glue", ROOT);
    char d[400];
    snprintf(d, sizeof d, "%s/SST-2", GLUE);
    tr_write_sst2(d, 160, 40, 11);
    if (make_model()) {
        CHECK(0, "could not write the test model");
        return tst_summary(__FILE__);
    }
    RUN(schedule_by_hand);
    RUN(learns_and_logs_schedule);
    RUN(same_seed_same_run);
    RUN(early_stopping);
    RUN(best_reloads_exactly);
    RUN(bad_input_fails_before_training);
    RUN(resume_is_exact);
    RUN(cli_signals_faults_and_full_disk);
    RUN(run_directory_safety);
    RUN(cli_eval_and_analyze_of_a_run);
    RUN(own_data_end_to_end);
    RUN(own_data_multi_label);
    RUN(adapter_options_through_the_cli);
    if (!getenv("CL_KEEP_TMP")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", ROOT);
        if (system(cmd)) {}
    }
    return tst_summary(__FILE__);
}
