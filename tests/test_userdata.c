/* Users' own datasets (src/data/userdata.h): TSV, CSV (RFC 4180 quoting) and JSON Lines read by column name into
 * the same examples, the label set and problem inferred from train, the paper's split without --dev, and every bad
 * input refused with the file, the line and the column. The files are written here, field by field, so the
 * expected values are known by construction. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "data/userdata.h"
#include "test.h"

static char DIR_[128];

static const char *wr(const char *name, const char *text) {
    static char paths[16][256];
    static int k;
    char *p = paths[k++ % 16];
    snprintf(p, 256, "%s/%s", DIR_, name);
    FILE *f = fopen(p, "wb");
    if (f) fputs(text, f), fclose(f);
    return p;
}

/* the same 20 rows in the three formats: text "s<i>", with a comma, a quote and a line break in row 3 */
static void same_rows(const char *path, cl_file_format fmt) {
    cl_user_opts o = {.train = path, .text_columns = "premise,hypothesis", .label_column = "y", .format = fmt,
                      .dev = NULL};
    cl_user_task t;
    cl_glue_splits s;
    cl_error e = {0};
    o.dev = path; /* dev = the same file: every row checked in order */
    int rc = cl_user_load(&o, 1, &t, &s, &e);
    CHECK(rc == 0, "%s: %s", path, e.msg);
    if (rc) return;
    CHECK(t.task.num_labels == 3 && !strcmp(t.labels[0], "ant") && !strcmp(t.labels[1], "bee") &&
          !strcmp(t.labels[2], "cat") && !t.task.regression, "%s: labels sorted", path);
    CHECK(s.dev.n == 20, "%s: %zu rows", path, s.dev.n);
    int ok = 1;
    static const char *lab[3] = {"ant", "bee", "cat"};
    for (size_t i = 0; i < s.dev.n; i++) {
        char a[64], b[64];
        snprintf(a, sizeof a, i == 3 ? "s3, \"quoted\"\nline" : "s%zu", i);
        snprintf(b, sizeof b, "h%zu", i);
        ok &= !strcmp(s.dev.ex[i].text_a, a) && !strcmp(s.dev.ex[i].text_b, b) &&
              s.dev.ex[i].label == (int)(i % 3);
        (void)lab;
    }
    CHECK(ok, "%s: every field as written", path);
    cl_glue_splits_free(&s);
    cl_user_task_free(&t);
}

TEST(three_formats_same_examples) {
    char tsv[4096] = "premise\thypothesis\ty\textra\n", csv[4096] = "y,premise,extra,hypothesis\n", jl[4096] = "";
    static const char *lab[3] = {"ant", "bee", "cat"};
    for (int i = 0; i < 20; i++) {
        char a[64];
        snprintf(a, sizeof a, "s%d", i);
        if (i == 3) { /* TSV has no quoting: a tab-free text */
            snprintf(tsv + strlen(tsv), sizeof tsv - strlen(tsv), "s3, \"quoted\"\nline\th3\t%s\tx\n", lab[0]);
        } else {
            snprintf(tsv + strlen(tsv), sizeof tsv - strlen(tsv), "%s\th%d\t%s\tx\n", a, i, lab[i % 3]);
        }
        if (i == 3) snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "ant,\"s3, \"\"quoted\"\"\nline\",x,h3\r\n");
        else snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "%s,%s,x,h%d\n", lab[i % 3], a, i);
        snprintf(jl + strlen(jl), sizeof jl - strlen(jl), "{\"premise\": \"%s\", \"hypothesis\": \"h%d\", \"y\": \"%s\"}\n",
                 i == 3 ? "s3, \\\"quoted\\\"\\nline" : a, i, lab[i % 3]);
    }
    /* the TSV's row 3 holds a raw line break, which TSV cannot: it must be refused there, read in CSV and JSONL */
    const char *pt = wr("d.tsv", tsv);
    cl_user_opts o = {.train = pt, .text_columns = "premise,hypothesis", .label_column = "y"};
    cl_user_task t;
    cl_glue_splits s;
    cl_error e = {0};
    CHECK(cl_user_load(&o, 1, &t, &s, &e) != 0 && strstr(e.msg, "d.tsv:"), "TSV with a raw line break: %s", e.msg);
    same_rows(wr("d.csv", csv), CL_FMT_AUTO);
    same_rows(wr("d.jsonl", jl), CL_FMT_AUTO);
    same_rows(wr("d.txt", csv), CL_FMT_CSV); /* --format csv for a name without the extension */
}

TEST(problems_labels_and_split) {
    char buf[8192] = "text\tlabel\n";
    for (int i = 0; i < 50; i++) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "t%d\t%d\n", i, (i * 7) % 11);
    const char *p = wr("ints.tsv", buf);
    cl_user_opts o = {.train = p, .text_columns = "text"};
    cl_user_task t;
    cl_glue_splits s;
    cl_error e = {0};
    CHECK(cl_user_load(&o, 3, &t, &s, &e) == 0, "%s", e.msg);
    /* integer labels: classification, sorted numerically (10 after 9); 90/10 split of 50 rows */
    CHECK(t.task.num_labels == 11 && !strcmp(t.labels[9], "9") && !strcmp(t.labels[10], "10"), "numeric order");
    CHECK(s.train.n == 45 && s.dev.n == 5 && s.test.n == 0, "split %zu / %zu", s.train.n, s.dev.n);
    cl_glue_splits_free(&s), cl_user_task_free(&t);
    o.problem = CL_PROBLEM_REGRESS;
    CHECK(cl_user_load(&o, 3, &t, &s, &e) == 0 && t.task.regression && t.task.num_labels == 1, "%s", e.msg);
    int ok = 1;
    for (size_t i = 0; i < s.train.n; i++) ok &= s.train.ex[i].score == floorf(s.train.ex[i].score);
    CHECK(ok, "regression targets");
    cl_glue_splits_free(&s), cl_user_task_free(&t);
    /* non-integer numbers: regression by default */
    const char *r = wr("reg.csv", "text,label\na,0.5\nb,1.25\nc,3\nd,2\ne,1\nf,0\ng,4\nh,2.5\ni,1\nj,3.5\nk,0\n");
    cl_user_opts ro = {.train = r, .text_columns = "text"};
    CHECK(cl_user_load(&ro, 1, &t, &s, &e) == 0 && t.task.regression, "%s", e.msg);
    cl_glue_splits_free(&s), cl_user_task_free(&t);
}

/* the label set of example I of D as written ("0110"), or "" */
static const char *mset(const cl_dataset *d, size_t i) { return d->ex[i].multi ? d->ex[i].multi : ""; }

TEST(multi_label_three_formats) {
    /* the same 5 rows: label sets {news,sport}, {}, {tech}, {sport,tech,news}, {sport} (a repeat is one label) */
    const char *jl = wr("m.jsonl", "{\"text\": \"a\", \"tags\": [\"news\", \"sport\"]}\n"
                                   "{\"text\": \"b\", \"tags\": []}\n"
                                   "{\"text\": \"c\", \"tags\": \"tech\"}\n"
                                   "{\"text\": \"d\", \"tags\": [\"sport\", \"tech\", \"news\"]}\n"
                                   "{\"text\": \"e\", \"tags\": [\"sport\", \"sport\"]}\n");
    const char *csv = wr("m.csv", "text,tags\na,\"news, sport\"\nb,\nc,tech\nd,\"sport,tech ,news\"\ne,\"sport,sport\"\n");
    const char *tsv = wr("m.tsv", "text\ttags\na\tnews,sport\nb\t\nc\ttech\nd\tsport, tech, news\ne\tsport,sport\n");
    static const char *want[5] = {"110", "000", "001", "111", "010"};
    const char *files[3] = {jl, csv, tsv};
    for (int f = 0; f < 3; f++) {
        /* JSON Lines: a list makes the problem multi-label by itself; TSV / CSV need --problem multi_label */
        cl_user_opts o = {.train = files[f], .dev = files[f], .text_columns = "text", .label_column = "tags",
                          .problem = f == 0 ? CL_PROBLEM_AUTO : CL_PROBLEM_MULTILABEL};
        cl_user_task t;
        cl_glue_splits s;
        cl_error e = {0};
        int rc = cl_user_load(&o, 1, &t, &s, &e);
        CHECK(rc == 0, "%s: %s", files[f], e.msg);
        if (rc) continue;
        CHECK(t.problem == CL_PROBLEM_MULTILABEL && t.task.multi_label && t.task.num_labels == 3 &&
              !strcmp(t.labels[0], "news") && !strcmp(t.labels[1], "sport") && !strcmp(t.labels[2], "tech") &&
              !strcmp(t.task.main_metric, "f1_micro"), "%s: the label set, sorted", files[f]);
        int ok = s.dev.n == 5;
        for (size_t i = 0; ok && i < 5; i++) ok &= !strcmp(mset(&s.dev, i), want[i]) && s.dev.ex[i].label == -1;
        CHECK(ok, "%s: every row's set", files[f]);
        /* the sets survive the paper's split (a subset copy) */
        cl_glue_splits_free(&s), cl_user_task_free(&t);
        o.dev = NULL;
        CHECK(cl_user_load(&o, 1, &t, &s, &e) == 0 && s.train.n + s.dev.n == 5, "%s", e.msg);
        ok = 1;
        for (size_t i = 0; i < s.train.n; i++) ok &= strlen(mset(&s.train, i)) == 3;
        CHECK(ok && strlen(mset(&s.dev, 0)) == 3, "%s: sets kept by the split", files[f]);
        cl_glue_splits_free(&s), cl_user_task_free(&t);
    }
    /* without --problem multi_label a CSV field "news, sport" is one label of a single-label task */
    cl_user_opts o = {.train = csv, .text_columns = "text", .label_column = "tags"};
    cl_user_task t;
    cl_glue_splits s;
    cl_error e = {0};
    CHECK(cl_user_load(&o, 1, &t, &s, &e) != 0 && strstr(e.msg, "m.csv:3") && strstr(e.msg, "empty label"), "%s",
          e.msg);
    /* integer labels in lists: sorted numerically */
    const char *ints = wr("mi.jsonl", "{\"text\": \"a\", \"label\": [10, 2]}\n{\"text\": \"b\", \"label\": [9]}\n");
    cl_user_opts oi = {.train = ints, .dev = ints, .text_columns = "text"};
    CHECK(cl_user_load(&oi, 1, &t, &s, &e) == 0 && t.task.num_labels == 3 && !strcmp(t.labels[0], "2") &&
          !strcmp(t.labels[2], "10") && !strcmp(mset(&s.dev, 0), "101"), "%s", e.msg);
    cl_glue_splits_free(&s), cl_user_task_free(&t);
}

/* NAME (and DEV_TEXT as dev.csv or dev.jsonl, by NAME's extension) must be refused with N1 and N2 in the message */
static void bad_p(const char *name, const char *text, const char *dev_text, cl_problem p, const char *n1,
                  const char *n2) {
    const char *f = wr(name, text), *d = dev_text ? wr(strstr(name, ".jsonl") ? "dev.jsonl" : "dev.csv", dev_text)
                                                  : NULL;
    cl_user_opts o = {.train = f, .dev = d, .text_columns = "text", .problem = p};
    cl_user_task t;
    cl_glue_splits s;
    cl_error e = {0};
    int rc = cl_user_load(&o, 1, &t, &s, &e);
    CHECK(rc != 0 && strstr(e.msg, n1) && (!n2 || strstr(e.msg, n2)), "%s: '%s' / '%s' not in: %s", name, n1,
          n2 ? n2 : "", e.msg);
    if (!rc) cl_glue_splits_free(&s), cl_user_task_free(&t);
}

static void bad(const char *name, const char *text, const char *dev_text, const char *n1, const char *n2) {
    bad_p(name, text, dev_text, CL_PROBLEM_AUTO, n1, n2);
}

TEST(bad_input_named) {
    bad("empty.csv", "", NULL, "empty.csv", "empty");
    bad("header.csv", "text,label\n", NULL, "header.csv", "no data rows");
    bad("dup.csv", "text,label,text\na,b,c\n", NULL, "dup.csv:1", "appears twice");
    bad("miss.csv", "sentence,label\na,b\n", NULL, "miss.csv:1", "no column 'text'");
    bad("short.csv", "label,x,text\nx,y,z\na,b\n", NULL, "short.csv:3", "2 fields");
    bad("long.csv", "text,label\na,b,c\n", NULL, "long.csv:2", "double quotes");
    bad("quote.csv", "text,label\n\"open,1\n", NULL, "quote.csv:2", "never closed");
    bad("inner.csv", "text,label\na\"b,1\n", NULL, "inner.csv:2", "quote");
    bad("utf.csv", "text,label\n\xc3\x28,1\nb,0\n", NULL, "utf.csv:2", "invalid UTF-8");
    bad("emptylab.csv", "text,label\na,\nb,1\n", NULL, "emptylab.csv:2", "empty label");
    bad("onelabel.csv", "text,label\na,x\nb,x\n", NULL, "onelabel.csv", "at least two");
    bad("devonly.csv", "text,label\na,x\nb,y\n", "text,label\nc,z\n", "dev.csv:2", "label 'z' does not occur");
    bad("obj.jsonl", "{\"text\": \"a\", \"label\": 1}\n[1, 2]\n", NULL, "obj.jsonl:2", "not a JSON object");
    bad("key.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"label\": 0}\n", NULL, "key.jsonl:2", "no key 'text'");
    bad("type.jsonl", "{\"text\": 5, \"label\": 1}\n", NULL, "type.jsonl:1", "key 'text'");
    bad("noext", "text,label\na,1\n", NULL, "noext", "--format");
}

TEST(multi_label_bad_input_named) {
    const cl_problem M = CL_PROBLEM_MULTILABEL;
    bad_p("ml1.csv", "text,label\na,\"x,,y\"\nb,y\n", NULL, M, "ml1.csv:2", "empty label in the list");
    bad_p("ml2.jsonl", "{\"text\": \"a\", \"label\": [\"x\", \"\"]}\n", NULL, M, "ml2.jsonl:1",
              "element 1 of the list is an empty label");
    bad_p("ml3.jsonl", "{\"text\": \"a\", \"label\": [\"x\", 1.5]}\n", NULL, M, "ml3.jsonl:1",
              "element 1 of the list is not a string or an integer");
    bad_p("ml4.jsonl", "{\"text\": \"a\", \"label\": [\"x\"]}\n{\"text\": \"b\", \"label\": [\"y\"]}\n",
              NULL, CL_PROBLEM_CLASSIFY, "ml4.jsonl:1", "--problem multi_label");
    bad_p("ml5.jsonl", "{\"text\": \"a\", \"label\": [\"x\"]}\n{\"text\": \"b\", \"label\": []}\n", NULL,
              CL_PROBLEM_AUTO, "ml5.jsonl", "needs at least two labels");
    bad_p("ml6.jsonl", "{\"text\": \"a\", \"label\": [\"x\"]}\n{\"text\": \"b\", \"label\": [\"y\"]}\n",
              "{\"text\": \"c\", \"label\": [\"x\", \"z\"]}\n", CL_PROBLEM_AUTO, "dev.jsonl:1", "label 'z' does not occur");
    bad_p("ml7.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"y\"}\n",
              "{\"text\": \"c\", \"label\": [\"x\"]}\n", CL_PROBLEM_AUTO, "dev.jsonl:1", "one label per row");
    bad_p("ml8.csv", "text,label\na,x\nb,\"y\x1fz\"\n", NULL, M, "ml8.csv:3", "U+001F");
}

int main(void) {
    snprintf(DIR_, sizeof DIR_, "/tmp/cl_test_userdata_%d", (int)getpid());
    cl_error e = {0};
    (void)e;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", DIR_);
    if (system(cmd)) return 1;
    RUN(three_formats_same_examples);
    RUN(problems_labels_and_split);
    RUN(bad_input_named);
    RUN(multi_label_three_formats);
    RUN(multi_label_bad_input_named);
    snprintf(cmd, sizeof cmd, "rm -rf %s", DIR_);
    if (system(cmd)) {}
    return tst_summary(__FILE__);
}
