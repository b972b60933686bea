/* GLUE registry, readers, splits and batching order.
 * Real files: ../shared/data/glue, compared with what Python's csv module (QUOTE_NONE) read from them
 * (scripts/gen_glue_refs.py -> tests/data/glue/refs.json) and with the row counts of the data README.
 * MNLI and QQP (not available here): small files in the official format written by the test. */
#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/util.h"
#include "data/batch.h"
#include "data/glue.h"
#include "test.h"

static int have_glue(char *dir, size_t cap) {
    snprintf(dir, cap, "%s/data/glue", tst_shared());
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) { fprintf(stderr, "cannot write %s\n", path); return; }
    fputs(text, f);
    fclose(f);
}

static int streq_or_null(const char *a, const cJSON *j) {
    if (cJSON_IsNull(j)) return a == NULL;
    return a && cJSON_IsString(j) && strcmp(a, j->valuestring) == 0;
}

TEST(registry) {
    CHECK(cl_glue_num_tasks() == 9, "%zu tasks", cl_glue_num_tasks());
    const char *names[] = {"sst2", "SST-2", "sst-2", "Sst_2"};
    for (int i = 0; i < 4; i++) {
        const cl_glue_task *t = cl_glue_find_task(names[i]);
        CHECK(t && strcmp(t->name, "SST-2") == 0, "%s", names[i]);
    }
    CHECK(cl_glue_find_task("stsb") && cl_glue_find_task("stsb")->regression, "-");
    CHECK(cl_glue_find_task("mnli") && cl_glue_find_task("MNLI")->num_labels == 3, "-");
    CHECK(cl_glue_find_task("cola") && !cl_glue_is_pair(cl_glue_find_task("cola")), "-");
    CHECK(cl_glue_find_task("qnli") && cl_glue_is_pair(cl_glue_find_task("qnli")), "-");
    CHECK(cl_glue_find_task("sst") == NULL && cl_glue_find_task("sst22") == NULL && cl_glue_find_task("") == NULL, "-");
    const cl_glue_task *t;
    cl_error err = {0};
    CHECK(cl_glue_task_lookup("imdb", &t, &err) == CL_EUSAGE && strstr(err.msg, "unknown GLUE task 'imdb'") &&
              !strstr(err.msg, "glue.c:") && strstr(err.msg, "WNLI"),
          "%s", err.msg);
    const char *all[] = {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"};
    for (int i = 0; i < 9; i++) CHECK(cl_glue_find_task(all[i]) != NULL, "%s", all[i]);
    CHECK(strcmp(cl_glue_find_task("mnli")->files[CL_SPLIT_DEV_MM], "dev_mismatched.tsv") == 0, "-");
}

/* Every real file against the csv-module references, and against the README's row counts. */
TEST(real_files) {
    char dir[512];
    if (!have_glue(dir, sizeof dir)) { SKIP("%s absent", dir); return; }
    char *buf;
    size_t len;
    cl_error err = {0};
    CHECK(cl_read_file("tests/data/glue/refs.json", &buf, &len, &err) == 0, "%s", err.msg);
    cJSON *refs = cJSON_Parse(buf);
    free(buf);
    CHECK(refs != NULL, "-");
    if (!refs) return;
    struct { const char *task; long train, dev; } readme[] = {
        {"CoLA", 8551, 1043}, {"SST-2", 67349, 872}, {"MRPC", 3668, 408}, {"STS-B", 5749, 1500},
        {"RTE", 2490, 277},   {"WNLI", 635, 71},    {"QNLI", -1, 5463},
    };
    int nfiles = 0;
    for (size_t r = 0; r < sizeof readme / sizeof readme[0]; r++) {
        const cl_glue_task *t = cl_glue_find_task(readme[r].task);
        cJSON *tj = cJSON_GetObjectItem(refs, readme[r].task);
        CHECK(t && tj, "%s", readme[r].task);
        if (!t || !tj) continue;
        char tdir[600];
        snprintf(tdir, sizeof tdir, "%s/%s", dir, t->name);
        const char *fn[3] = {"train.tsv", "dev.tsv", "test.tsv"};
        cl_glue_split sp[3] = {CL_SPLIT_TRAIN, CL_SPLIT_DEV, CL_SPLIT_TEST};
        for (int k = 0; k < 3; k++) {
            cJSON *fj = cJSON_GetObjectItem(tj, fn[k]);
            if (!fj) { CHECK(k == 0 && readme[r].train < 0, "%s %s missing from refs", t->name, fn[k]); continue; }
            cl_dataset d;
            if (cl_glue_load(t, tdir, sp[k], NULL, &d, &err)) { CHECK(0, "%s", err.msg); continue; }
            nfiles++;
            long want = cJSON_GetObjectItem(fj, "rows")->valueint;
            CHECK((long)d.n == want, "%s/%s: %zu rows, csv module %ld", t->name, fn[k], d.n, want);
            if (k < 2) CHECK((long)d.n == (k ? readme[r].dev : readme[r].train), "%s/%s vs README", t->name, fn[k]);
            CHECK(d.skipped == 0, "-");
            const char *which[2] = {"first", "last"};
            for (int w = 0; w < 2 && d.n; w++) {
                const cl_example *e = &d.ex[w ? d.n - 1 : 0];
                cJSON *ej = cJSON_GetObjectItem(fj, which[w]);
                CHECK(streq_or_null(e->text_a, cJSON_GetObjectItem(ej, "a")), "%s/%s %s a: '%s'", t->name, fn[k],
                      which[w], e->text_a);
                CHECK(streq_or_null(e->text_b, cJSON_GetObjectItem(ej, "b")), "%s/%s %s b", t->name, fn[k], which[w]);
                CHECK(streq_or_null(e->id, cJSON_GetObjectItem(ej, "id")), "%s/%s %s id", t->name, fn[k], which[w]);
                CHECK(e->line == cJSON_GetObjectItem(ej, "line")->valueint, "%s/%s %s line %d", t->name, fn[k],
                      which[w], e->line);
                cJSON *lj = cJSON_GetObjectItem(ej, "label"), *sj = cJSON_GetObjectItem(ej, "score");
                if (lj) CHECK(e->label == lj->valueint, "%s/%s %s label %d", t->name, fn[k], which[w], e->label);
                else if (sj) CHECK(e->score == (float)sj->valuedouble && e->label == -1, "-");
                else CHECK(e->label == -1 && isnan(e->score), "unlabelled");
            }
            /* whole-file checks: label counts, text bytes, score sum */
            long counts[3] = {0, 0, 0}, bytes = 0;
            double ssum = 0;
            for (size_t i = 0; i < d.n; i++) {
                if (d.ex[i].label >= 0 && d.ex[i].label < 3) counts[d.ex[i].label]++;
                bytes += (long)strlen(d.ex[i].text_a) + (d.ex[i].text_b ? (long)strlen(d.ex[i].text_b) : 0);
                if (!isnan(d.ex[i].score)) ssum += d.ex[i].score;
            }
            CHECK(bytes == (long)cJSON_GetObjectItem(fj, "text_bytes")->valuedouble, "%s/%s: %ld text bytes",
                  t->name, fn[k], bytes);
            CHECK_NEAR(ssum, cJSON_GetObjectItem(fj, "score_sum")->valuedouble, 1e-3);
            cJSON *cj = cJSON_GetObjectItem(fj, "label_counts");
            for (int c = 0; c < 3; c++) {
                char key[4];
                snprintf(key, sizeof key, "%d", c);
                cJSON *v = cJSON_GetObjectItem(cj, key);
                CHECK(counts[c] == (v ? v->valueint : 0), "%s/%s label %d: %ld", t->name, fn[k], c, counts[c]);
            }
            cl_dataset_free(&d);
        }
        CHECK(readme[r].train < 0 || cl_glue_check_dir(t, tdir, &err) == 0, "%s", err.msg);
    }
    CHECK(nfiles == 20, "%d files read", nfiles);
    cJSON_Delete(refs);
}

static const char *MNLI_TRAIN_HDR =
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
    "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n";
static const char *MNLI_DEV_HDR =
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
    "sentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n";
static const char *MNLI_TEST_HDR =
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
    "sentence2_parse\tsentence1\tsentence2\n";

/* n MNLI rows in the official layout; labels cycle entailment, neutral, contradiction. */
static void mnli_rows(char *out, size_t cap, const char *hdr, int n, int ncols_extra_labels, int labelled,
                      const char *tag) {
    static const char *labs[3] = {"entailment", "neutral", "contradiction"};
    size_t w = (size_t)snprintf(out, cap, "%s", hdr);
    for (int i = 0; i < n && w < cap; i++) {
        w += (size_t)snprintf(out + w, cap - w, "%d\t%d\t%de\tfiction\t( ( A b ) )\t( c )\t(ROOT (S))\t(ROOT (S))\t"
                              "\"%s premise %d\"\t%s hypothesis %d",
                              i, 1000 + i, 1000 + i, tag, i, tag, i);
        if (labelled) {
            for (int k = 0; k < ncols_extra_labels; k++)
                w += (size_t)snprintf(out + w, cap - w, "\t%s", labs[(i + k) % 3]);
            w += (size_t)snprintf(out + w, cap - w, "\t%s", labs[i % 3]);
        }
        w += (size_t)snprintf(out + w, cap - w, "\n");
    }
}

static void tmpdir(char *dir) {
    strcpy(dir, "/tmp/cl_test_glue_XXXXXX");
    if (!mkdtemp(dir)) fprintf(stderr, "mkdtemp failed\n");
}

static void rm_dir(const char *dir, const char *const *files) {
    char p[512];
    for (int i = 0; files[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

TEST(mnli_official_format) {
    char dir[64], path[256];
    tmpdir(dir);
    static char buf[1 << 16];
    const cl_glue_task *t = cl_glue_find_task("MNLI");
    mnli_rows(buf, sizeof buf, MNLI_TRAIN_HDR, 40, 1, 1, "tr");
    snprintf(path, sizeof path, "%s/train.tsv", dir), write_file(path, buf);
    mnli_rows(buf, sizeof buf, MNLI_DEV_HDR, 7, 5, 1, "m");
    snprintf(path, sizeof path, "%s/dev_matched.tsv", dir), write_file(path, buf);
    mnli_rows(buf, sizeof buf, MNLI_DEV_HDR, 5, 5, 1, "mm");
    snprintf(path, sizeof path, "%s/dev_mismatched.tsv", dir), write_file(path, buf);
    mnli_rows(buf, sizeof buf, MNLI_TEST_HDR, 3, 0, 0, "tm");
    snprintf(path, sizeof path, "%s/test_matched.tsv", dir), write_file(path, buf);
    mnli_rows(buf, sizeof buf, MNLI_TEST_HDR, 2, 0, 0, "tmm");
    snprintf(path, sizeof path, "%s/test_mismatched.tsv", dir), write_file(path, buf);

    cl_error err = {0};
    cl_dataset d;
    CHECK(cl_glue_check_dir(t, dir, &err) == 0, "%s", err.msg);
    CHECK(cl_glue_load(t, dir, CL_SPLIT_TRAIN, NULL, &d, &err) == 0, "%s", err.msg);
    CHECK(d.n == 40, "-");
    if (d.n == 40) {
        CHECK(strcmp(d.ex[0].text_a, "\"tr premise 0\"") == 0, "%s", d.ex[0].text_a); /* quote kept, no quoting */
        CHECK(strcmp(d.ex[5].text_b, "tr hypothesis 5") == 0, "-");
        CHECK(d.ex[0].label == 0 && d.ex[1].label == 1 && d.ex[2].label == 2 && d.ex[5].label == 2, "-");
        CHECK(d.ex[39].line == 41 && strcmp(d.ex[39].id, "39") == 0, "-");
    }
    cl_dataset_free(&d);
    CHECK(cl_glue_load(t, dir, CL_SPLIT_DEV_MM, NULL, &d, &err) == 0, "%s", err.msg);
    CHECK(d.n == 5 && d.ex[0].origin == 1 && d.ex[4].label == 1, "-"); /* gold_label, not label1..5 */
    cl_dataset_free(&d);
    CHECK(cl_glue_load(t, dir, CL_SPLIT_TEST_MM, NULL, &d, &err) == 0, "%s", err.msg);
    CHECK(d.n == 2 && d.ex[1].label == -1 && strcmp(d.ex[1].text_b, "tmm hypothesis 1") == 0 && d.ex[1].origin == 1, "-");
    cl_dataset_free(&d);
    CHECK(cl_glue_load(t, dir, CL_SPLIT_TEST, NULL, &d, &err) == 0 && d.n == 3 && d.ex[0].origin == 0, "-");
    cl_dataset_free(&d);

    /* glue protocol: dev = matched ++ mismatched; paper: test = m ++ mm, dev = round(10%) of train */
    cl_glue_splits s;
    CHECK(cl_glue_make_splits(t, dir, CL_PROTOCOL_GLUE, 1, NULL, &s, &err) == 0, "%s", err.msg);
    CHECK(s.train.n == 40 && s.dev.n == 12 && s.test.n == 0, "-");
    if (s.dev.n == 12)
        CHECK(s.dev.ex[6].origin == 0 && s.dev.ex[7].origin == 1 && strcmp(s.dev.ex[7].text_a, "\"mm premise 0\"") == 0, "-");
    cl_glue_splits_free(&s);
    CHECK(cl_glue_make_splits(t, dir, CL_PROTOCOL_PAPER, 1, NULL, &s, &err) == 0, "%s", err.msg);
    CHECK(s.dev.n == 4 && s.train.n == 36 && s.test.n == 12, "-");
    int nm = 0, nmm = 0;
    for (size_t i = 0; i < s.test.n; i++) if (s.test.ex[i].origin) nmm++; else nm++;
    CHECK(nm == 7 && nmm == 5, "-");
    cl_glue_splits_free(&s);
    const char *files[] = {"train.tsv", "dev_matched.tsv", "dev_mismatched.tsv", "test_matched.tsv",
                           "test_mismatched.tsv", NULL};
    rm_dir(dir, files);
}

TEST(qqp_official_format_and_skip) {
    char dir[64], path[256];
    tmpdir(dir);
    const cl_glue_task *t = cl_glue_find_task("qqp");
    snprintf(path, sizeof path, "%s/train.tsv", dir);
    write_file(path, "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                     "133273\t213221\t213222\tHow is the life of a math student?\tWhich level of prepration?\t0\n"
                     "402555\t536040\t536041\tHow do I control my horny emotions?\tHow do you control your horniness?\t1\n"
                     "360472\t364011\t490273\tWhat causes stool color to change?\n"
                     "150662\t155721\t7256\tWhat can one do after MBBS?\tWhat do i do after my MBBS ?\t1\n");
    cl_error err = {0};
    cl_dataset d;
    CHECK(cl_glue_read_file(t, path, 1, NULL, &d, &err) == CL_EFORMAT, "-");
    char want[400];
    snprintf(want, sizeof want, "%s:4: expected 6 tab-separated columns, found 4", path);
    CHECK(strcmp(err.msg, want) == 0, "%s", err.msg);
    cl_glue_read_opts o = {.skip_bad_rows = 1};
    CHECK(cl_glue_read_file(t, path, 1, &o, &d, &err) == 0, "%s", err.msg);
    CHECK(d.n == 3 && d.skipped == 1 && strcmp(d.skip_msg, want) == 0, "%zu %zu %s", d.n, d.skipped, d.skip_msg);
    if (d.n == 3) {
        CHECK(d.ex[1].label == 1 && d.ex[0].label == 0 && strcmp(d.ex[2].id, "150662") == 0 && d.ex[2].line == 5, "-");
        CHECK(strcmp(d.ex[1].text_b, "How do you control your horniness?") == 0, "-");
    }
    cl_dataset_free(&d);
    snprintf(path, sizeof path, "%s/test.tsv", dir);
    write_file(path, "id\tquestion1\tquestion2\n0\tWhy?\tWhy not?\n1\tHow?\tWho?\n");
    CHECK(cl_glue_load(t, dir, CL_SPLIT_TEST, NULL, &d, &err) == 0, "%s", err.msg);
    CHECK(d.n == 2 && strcmp(d.ex[1].id, "1") == 0 && strcmp(d.ex[1].text_b, "Who?") == 0 && d.ex[1].label == -1, "-");
    cl_dataset_free(&d);
    const char *files[] = {"train.tsv", "test.tsv", NULL};
    rm_dir(dir, files);
}

/* BOM, CRLF, a row starting with a double quote, a last line without newline. */
TEST(format_details) {
    char dir[64], path[256];
    tmpdir(dir);
    snprintf(path, sizeof path, "%s/x.tsv", dir);
    write_file(path, "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n"
                     "1\t1\t2\t\" The quote\tstarts \"here\r\n"
                     "0\t3\t4\tA\tB");
    cl_error err = {0};
    cl_dataset d;
    CHECK(cl_glue_read_file(cl_glue_find_task("mrpc"), path, 1, NULL, &d, &err) == 0, "%s", err.msg);
    CHECK(d.n == 2, "-");
    if (d.n == 2) {
        CHECK(strcmp(d.ex[0].text_a, "\" The quote") == 0 && strcmp(d.ex[0].text_b, "starts \"here") == 0, "-");
        CHECK(d.ex[0].label == 1 && d.ex[1].label == 0 && strcmp(d.ex[1].text_b, "B") == 0 && d.ex[1].line == 3, "-");
        CHECK(d.ex[0].id == NULL, "-"); /* MRPC's train/dev have no index column */
    }
    /* subset and concat copy strings: they outlive the source */
    cl_dataset s, c;
    size_t idx[2] = {1, 0};
    CHECK(cl_dataset_subset(&d, idx, 2, &s, &err) == 0, "-");
    CHECK(cl_dataset_concat(&d, &s, &c, &err) == 0, "-");
    cl_dataset_free(&d);
    CHECK(s.n == 2 && strcmp(s.ex[0].text_a, "A") == 0 && strcmp(s.ex[1].text_b, "starts \"here") == 0, "-");
    CHECK(c.n == 4 && strcmp(c.ex[3].text_a, "\" The quote") == 0 && c.ex[2].line == 3, "-");
    idx[0] = 7;
    cl_dataset bad;
    CHECK(cl_dataset_subset(&s, idx, 2, &bad, &err) == CL_EINVAL, "-");
    cl_dataset_free(&s);
    cl_dataset_free(&c);
    unlink(path);
    rmdir(dir);
}

/* Each bad input: a clear "PATH:LINE: ..." error. */
TEST(bad_inputs) {
    char dir[64], path[256], want[400];
    tmpdir(dir);
    cl_error err = {0};
    cl_dataset d;
    const cl_glue_task *rte = cl_glue_find_task("rte"), *sts = cl_glue_find_task("sts-b");
    const cl_glue_task *cola = cl_glue_find_task("cola");
    /* missing file */
    snprintf(path, sizeof path, "%s/nope.tsv", dir);
    CHECK(cl_glue_read_file(rte, path, 1, NULL, &d, &err) == CL_EMISSING, "-");
    CHECK(strstr(err.msg, path) && strstr(err.msg, "No such file"), "%s", err.msg);
    /* empty file */
    snprintf(path, sizeof path, "%s/empty.tsv", dir);
    write_file(path, "");
    CHECK(cl_glue_read_file(rte, path, 1, NULL, &d, &err) == CL_EFORMAT, "-");
    snprintf(want, sizeof want, "%s:1: empty file", path);
    CHECK(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
    /* header only */
    write_file(path, "index\tsentence1\tsentence2\tlabel\n");
    CHECK(cl_glue_read_file(rte, path, 1, NULL, &d, &err) == CL_EFORMAT, "-");
    snprintf(want, sizeof want, "%s:2: no data rows", path);
    CHECK(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
    /* too few columns */
    snprintf(path, sizeof path, "%s/rows.tsv", dir);
    write_file(path, "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tnot_entailment\n");
    CHECK(cl_glue_read_file(rte, path, 1, NULL, &d, &err) == CL_EFORMAT, "-");
    snprintf(want, sizeof want, "%s:3: expected 4 tab-separated columns, found 3", path);
    CHECK(strcmp(err.msg, want) == 0, "%s", err.msg);
    /* unknown label */
    write_file(path, "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tcontradiction\n");
    CHECK(cl_glue_read_file(rte, path, 1, NULL, &d, &err) == CL_EFORMAT, "-");
    snprintf(want, sizeof want, "%s:3: unknown label 'contradiction' (expected one of: entailment, not_entailment)",
             path);
    CHECK(strcmp(err.msg, want) == 0, "%s", err.msg);
    /* CoLA: label 2 */
    write_file(path, "gj04\t1\t\tFine.\ngj04\t2\t*\tBad.\n");
    CHECK(cl_glue_read_file(cola, path, 1, NULL, &d, &err) == CL_EFORMAT, "-");
    snprintf(want, sizeof want, "%s:2: unknown label '2'", path);
    CHECK(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
    /* NaN, empty, out-of-range and trailing-garbage scores */
    const char *scores[] = {"nan", "", "5.5", "-0.1", "3.0x", "inf"};
    for (int i = 0; i < 6; i++) {
        char txt[400];
        snprintf(txt, sizeof txt,
                 "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                 "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA.\tB.\t5.000\n"
                 "1\tmain-captions\tMSRvid\t2012test\t0002\tnone\tnone\tA.\tB.\t%s\n", scores[i]);
        write_file(path, txt);
        CHECK(cl_glue_read_file(sts, path, 1, NULL, &d, &err) == CL_EFORMAT, "score '%s'", scores[i]);
        snprintf(want, sizeof want, "%s:3: bad score '%s'", path, scores[i]);
        CHECK(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
    }
    /* skip_bad_rows counts them; a file with only bad rows is still an error */
    cl_glue_read_opts o = {.skip_bad_rows = 1};
    CHECK(cl_glue_read_file(sts, path, 1, &o, &d, &err) == 0 && d.n == 1 && d.skipped == 1 &&
              d.ex[0].score == 5.0f, "-");
    cl_dataset_free(&d);
    write_file(path, "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tyes\n1\ta\tb\n");
    CHECK(cl_glue_read_file(rte, path, 1, &o, &d, &err) == CL_EFORMAT && strstr(err.msg, "all 2 data rows"),
          "%s", err.msg);
    /* a file of another task: the header names the missing column */
    write_file(path, "sentence\tlabel\nit 's fine\t1\n");
    CHECK(cl_glue_read_file(rte, path, 1, NULL, &d, &err) == CL_EFORMAT, "-");
    snprintf(want, sizeof want, "%s:1: header lacks column 'sentence1': not a GLUE RTE train/dev file", path);
    CHECK(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
    /* a directory that is not a GLUE task: check_dir and the split loader fail before anything is trained */
    cl_glue_splits s;
    CHECK(cl_glue_check_dir(rte, dir, &err) == CL_EMISSING && strstr(err.msg, "train.tsv"), "%s", err.msg);
    CHECK(cl_glue_make_splits(rte, dir, CL_PROTOCOL_PAPER, 1, NULL, &s, &err) == CL_EMISSING, "%s", err.msg);
    snprintf(path, sizeof path, "%s/train.tsv", dir);
    write_file(path, "sentence\tlabel\nit 's fine\t1\n");
    CHECK(cl_glue_check_dir(rte, dir, &err) == CL_EFORMAT && strstr(err.msg, "header lacks column"), "%s", err.msg);
    unlink(path);
    snprintf(path, sizeof path, "%s/not-a-dir", dir);
    CHECK(cl_glue_check_dir(rte, path, &err) == CL_EMISSING && strstr(err.msg, path), "%s", err.msg);
    /* a directory given as a file */
    CHECK(cl_glue_read_file(rte, dir, 1, NULL, &d, &err) != 0 && strstr(err.msg, dir), "%s", err.msg);
    /* the unlabelled reader refuses a split the task lacks */
    CHECK(cl_glue_load(rte, dir, CL_SPLIT_DEV_MM, NULL, &d, &err) == CL_EINVAL, "%s", err.msg);
    cl_protocol p;
    CHECK(cl_protocol_parse("paper", &p, &err) == 0 && p == CL_PROTOCOL_PAPER, "-");
    CHECK(cl_protocol_parse("GLUE", &p, &err) == 0 && p == CL_PROTOCOL_GLUE, "-");
    CHECK(cl_protocol_parse("hf", &p, &err) == CL_EUSAGE && strstr(err.msg, "'hf'"), "%s", err.msg);
    const char *files[] = {"empty.tsv", "rows.tsv", NULL};
    rm_dir(dir, files);
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

TEST(paper_splits_real) {
    char dir[512];
    if (!have_glue(dir, sizeof dir)) { SKIP("%s absent", dir); return; }
    /* round(10%) half up: CoLA 855.1 -> 855, SST-2 6734.9 -> 6735, MRPC 366.8 -> 367, STS-B 574.9 -> 575,
     * RTE 249, WNLI 63.5 -> 64 */
    struct { const char *task; size_t dev, train, test; } want[] = {
        {"CoLA", 855, 7696, 1043}, {"MRPC", 367, 3301, 408}, {"STS-B", 575, 5174, 1500},
        {"RTE", 249, 2241, 277},   {"WNLI", 64, 571, 71},    {"SST-2", 6735, 60614, 872},
    };
    cl_error err = {0};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        const cl_glue_task *t = cl_glue_find_task(want[k].task);
        char tdir[600];
        snprintf(tdir, sizeof tdir, "%s/%s", dir, t->name);
        cl_glue_splits a, b, c, g;
        if (cl_glue_make_splits(t, tdir, CL_PROTOCOL_PAPER, 1, NULL, &a, &err)) { CHECK(0, "%s", err.msg); continue; }
        CHECK(a.dev.n == want[k].dev && a.train.n == want[k].train && a.test.n == want[k].test, "%s: %zu %zu %zu",
              t->name, a.dev.n, a.train.n, a.test.n);
        CHECK(cl_paper_dev_size(want[k].dev + want[k].train) == want[k].dev, "-");
        /* dev and train partition the train file: their line numbers are exactly 1..n (+1 with a header) */
        size_t n = a.dev.n + a.train.n;
        int *lines = malloc(n * sizeof *lines);
        for (size_t i = 0; i < a.dev.n; i++) lines[i] = a.dev.ex[i].line;
        for (size_t i = 0; i < a.train.n; i++) lines[a.dev.n + i] = a.train.ex[i].line;
        qsort(lines, n, sizeof *lines, cmp_int);
        int ok = 1, off = t->labelled_header ? 2 : 1;
        for (size_t i = 0; i < n; i++) ok &= lines[i] == (int)i + off;
        CHECK(ok, "%s: dev + train = the train file", t->name);
        free(lines);
        /* the shuffle is not the identity, is reproducible, and depends on the seed */
        int moved = 0;
        for (size_t i = 0; i < a.dev.n; i++) moved += a.dev.ex[i].line != (int)i + off;
        CHECK(moved > (int)a.dev.n / 2, "%s: shuffled", t->name);
        CHECK(cl_glue_make_splits(t, tdir, CL_PROTOCOL_PAPER, 1, NULL, &b, &err) == 0, "-");
        CHECK(cl_glue_make_splits(t, tdir, CL_PROTOCOL_PAPER, 2, NULL, &c, &err) == 0, "-");
        int same = b.dev.n == a.dev.n, diff = 0;
        for (size_t i = 0; same && i < a.dev.n; i++)
            same &= a.dev.ex[i].line == b.dev.ex[i].line && strcmp(a.dev.ex[i].text_a, b.dev.ex[i].text_a) == 0;
        for (size_t i = 0; i < a.dev.n && i < c.dev.n; i++) diff += a.dev.ex[i].line != c.dev.ex[i].line;
        CHECK(same, "%s: seed 1 twice", t->name);
        CHECK(diff > (int)a.dev.n / 2, "%s: seed 2 differs", t->name);
        /* test = the official dev file in order */
        CHECK(a.test.ex[0].line == off && a.test.ex[a.test.n - 1].line == (int)a.test.n - 1 + off, "-");
        CHECK(cl_glue_make_splits(t, tdir, CL_PROTOCOL_GLUE, 1, NULL, &g, &err) == 0, "-");
        CHECK(g.train.n == n && g.dev.n == want[k].test && g.test.n == 0 && g.train.ex[0].line == off, "-");
        cl_glue_splits_free(&a), cl_glue_splits_free(&b), cl_glue_splits_free(&c), cl_glue_splits_free(&g);
    }
    CHECK(cl_paper_dev_size(635) == 64 && cl_paper_dev_size(634) == 63 && cl_paper_dev_size(5) == 1 &&
          cl_paper_dev_size(4) == 0, "-");
}

/* ---- batching order ---- */

static int check_partition(const cl_batch_plan *p, size_t n) {
    char *seen = calloc(n ? n : 1, 1);
    int ok = p->n == n && p->start[0] == 0 && p->start[p->nbatches] == n;
    for (size_t i = 0; ok && i < n; i++) {
        ok &= p->order[i] < n && !seen[p->order[i]];
        if (ok) seen[p->order[i]] = 1;
    }
    free(seen);
    return ok;
}

TEST(batch_order) {
    size_t n = 1003;
    int *len = malloc(n * sizeof *len);
    cl_rng r;
    cl_rng_seed(&r, 5);
    for (size_t i = 0; i < n; i++) len[i] = 3 + (int)cl_rng_below(&r, 120);
    cl_error err = {0};
    cl_batch_opts o = {.batch_size = 16, .mega = 50, .seed = 1};
    cl_batch_plan a, b, c, flat, all;
    CHECK(cl_batch_plan_epoch(len, n, &o, 0, &a, &err) == 0, "%s", err.msg);
    CHECK(a.nbatches == 63 && check_partition(&a, n), "-");
    int short_batches = 0;
    for (size_t bi = 0; bi < a.nbatches; bi++) short_batches += a.start[bi + 1] - a.start[bi] != 16;
    CHECK(short_batches == 1, "only the epoch's last batch (1003 = 62 x 16 + 11) is short");
    /* reproducible from (seed, epoch): a resumed run rebuilds the same plan; other epochs / seeds differ */
    CHECK(cl_batch_plan_epoch(len, n, &o, 0, &b, &err) == 0, "-");
    CHECK(memcmp(a.order, b.order, n * sizeof *a.order) == 0 && memcmp(a.start, b.start, 64 * sizeof *a.start) == 0, "-");
    cl_batch_plan_free(&b);
    CHECK(cl_batch_plan_epoch(len, n, &o, 1, &b, &err) == 0 && check_partition(&b, n), "-");
    o.seed = 2;
    CHECK(cl_batch_plan_epoch(len, n, &o, 0, &c, &err) == 0 && check_partition(&c, n), "-");
    int d1 = 0, d2 = 0;
    for (size_t i = 0; i < n; i++) d1 += a.order[i] != b.order[i], d2 += a.order[i] != c.order[i];
    CHECK(d1 > (int)n / 2 && d2 > (int)n / 2, "%d %d", d1, d2);
    /* bucketing reduces padding against plain shuffled batches (mega = 1) */
    o.seed = 1, o.mega = 1;
    CHECK(cl_batch_plan_epoch(len, n, &o, 0, &flat, &err) == 0 && check_partition(&flat, n), "-");
    long pad_a = 0, pad_f = 0, tok = 0;
    for (size_t i = 0; i < n; i++) tok += len[i];
    for (size_t bi = 0; bi < a.nbatches; bi++)
        pad_a += (long)cl_batch_max_len(&a, bi, len) * (long)(a.start[bi + 1] - a.start[bi]);
    for (size_t bi = 0; bi < flat.nbatches; bi++)
        pad_f += (long)cl_batch_max_len(&flat, bi, len) * (long)(flat.start[bi + 1] - flat.start[bi]);
    CHECK(pad_a - tok < (pad_f - tok) / 4, "padding %ld vs %ld", pad_a - tok, pad_f - tok);
    /* one mega-batch spanning everything: batches are consecutive runs of the globally sorted lengths */
    o.mega = 1000;
    CHECK(cl_batch_plan_epoch(len, n, &o, 3, &all, &err) == 0 && check_partition(&all, n), "-");
    int *sorted = malloc(n * sizeof *sorted);
    memcpy(sorted, len, n * sizeof *len);
    qsort(sorted, n, sizeof *sorted, cmp_int);
    int runs_ok = 1;
    for (size_t bi = 0; bi < all.nbatches; bi++) {
        const size_t *idx;
        size_t m = cl_batch_get(&all, bi, &idx);
        int mn = 1 << 30, mx = 0;
        for (size_t i = 0; i < m; i++) mn = len[idx[i]] < mn ? len[idx[i]] : mn, mx = len[idx[i]] > mx ? len[idx[i]] : mx;
        /* number of examples strictly longer than the batch's longest + the batch itself must reach its shortest */
        size_t longer = 0, atleast = 0;
        for (size_t i = 0; i < n; i++) longer += sorted[i] > mx, atleast += sorted[i] >= mn;
        runs_ok &= atleast - longer <= m + 2 * 16 && atleast >= m; /* no foreign length strictly between mn and mx */
        size_t between = 0;
        for (size_t i = 0; i < n; i++) between += sorted[i] > mn && sorted[i] < mx;
        size_t mine = 0;
        for (size_t i = 0; i < m; i++) mine += len[idx[i]] > mn && len[idx[i]] < mx;
        runs_ok &= between == mine;
    }
    CHECK(runs_ok, "sorted runs");
    free(sorted);
    /* sequential evaluation batches, and bad options */
    cl_batch_plan s;
    CHECK(cl_batch_plan_sequential(10, 4, &s, &err) == 0 && s.nbatches == 3 && s.start[2] == 8 && s.start[3] == 10, "-");
    const size_t *idx;
    CHECK(cl_batch_get(&s, 2, &idx) == 2 && idx[0] == 8 && idx[1] == 9 && cl_batch_get(&s, 3, &idx) == 0, "-");
    cl_batch_plan_free(&s);
    o.batch_size = 0;
    CHECK(cl_batch_plan_epoch(len, n, &o, 0, &s, &err) == CL_EINVAL && !strstr(err.msg, "batch.c:"), "%s", err.msg);
    CHECK(cl_batch_plan_sequential(3, 0, &s, &err) == CL_EINVAL, "-");
    o.batch_size = 4;
    CHECK(cl_batch_plan_epoch(len, 0, &o, 0, &s, &err) == 0 && s.nbatches == 0, "-");
    cl_batch_plan_free(&s);
    cl_batch_plan_free(&a), cl_batch_plan_free(&b), cl_batch_plan_free(&c), cl_batch_plan_free(&flat);
    cl_batch_plan_free(&all);
    free(len);
}

int main(void) {
    RUN(registry);
    RUN(real_files);
    RUN(mnli_official_format);
    RUN(qqp_official_format_and_skip);
    RUN(format_details);
    RUN(bad_inputs);
    RUN(paper_splits_real);
    RUN(batch_order);
    return tst_summary(__FILE__);
}
