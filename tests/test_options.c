/* The options table (src/train/options.h), walked row by row: every default is what cl_train_opts_default and
 * cl_adapter_opts_default give, every typed option refuses an out-of-range value naming --NAME (in the library and
 * through `condlora train`, exit status 2), every option survives run.json (to_json -> from_json) with a
 * non-default value, and every option is reachable from the command line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test.h"
#include "train/options.h"

static int same_text(const cl_train_opts *a, const cl_train_opts *b, const cl_train_option *p) {
    char x[4096], y[4096];
    cl_train_option_get(a, p, x, sizeof x);
    cl_train_option_get(b, p, y, sizeof y);
    return !strcmp(x, y);
}

TEST(defaults_are_the_tables) {
    cl_train_opts d;
    cl_train_opts_default(&d);
    size_t n = cl_train_option_count();
    CHECK(n >= 60, "%zu options", n);
    for (size_t i = 0; i < n; i++) {
        const cl_train_option *p = cl_train_option_at(i);
        CHECK(p->name && p->key && p->help && p->group && p->def, "option %zu described", i);
        cl_train_opts t = d;
        cl_error e = {0};
        if (!strcmp(p->name, "method") || !strcmp(p->name, "preset")) { /* setters with effects: the text only */
            char v[64];
            cl_train_option_get(&d, p, v, sizeof v);
            CHECK(!strcmp(v, p->def), "--%s default %s, table %s", p->name, v, p->def);
            continue;
        }
        if (p->type == CL_OT_STRING || p->type == CL_OT_PATH) {
            char v[4096];
            cl_train_option_get(&d, p, v, sizeof v);
            CHECK(!strcmp(v, p->def), "--%s default '%s', table '%s'", p->name, v, p->def);
            continue;
        }
        CHECK(cl_train_option_set(&t, p, p->def, &e) == 0, "--%s %s: %s", p->name, p->def, e.msg);
        CHECK(!memcmp(&t, &d, sizeof t) || same_text(&t, &d, p), "--%s: the table's default %s is not the code's",
              p->name, p->def);
        if (p->size) CHECK(!memcmp((char *)&t + p->off, (char *)&d + p->off, (size_t)p->size),
                           "--%s: default %s differs bitwise", p->name, p->def);
    }
    /* names are unique, keys too, and lookups work both ways */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            const cl_train_option *a = cl_train_option_at(i), *b = cl_train_option_at(j);
            CHECK(strcmp(a->name, b->name) && strcmp(a->key, b->key), "%s / %s twice", a->name, a->key);
        }
    CHECK(cl_train_option_find("batch_size") == cl_train_option_find("batch-size") &&
          cl_train_option_find("salora_budget") && !cl_train_option_find("no-such"), "lookup");
}

/* an invalid value of P, or NULL when every text is valid (strings, paths) */
static const char *bad_value(const cl_train_option *p, char *buf, size_t n) {
    switch (p->type) {
    case CL_OT_INT:
    case CL_OT_BOOL:
    case CL_OT_FLAG:
        snprintf(buf, n, "%.0f", p->hi + 1);
        return buf;
    case CL_OT_FLOAT:
        snprintf(buf, n, "%.9g", p->lo > 0 ? p->lo / 2 : p->lo - 1);
        return buf;
    case CL_OT_CHOICE:
        return "bogus";
    default:
        return NULL;
    }
}

TEST(out_of_range_named) {
    for (size_t i = 0; i < cl_train_option_count(); i++) {
        const cl_train_option *p = cl_train_option_at(i);
        char b[64], dn[80];
        const char *v = bad_value(p, b, sizeof b);
        if (!v) continue;
        snprintf(dn, sizeof dn, "--%s", p->name);
        cl_train_opts o;
        cl_train_opts_default(&o);
        cl_error e = {0};
        CHECK(cl_train_option_set(&o, p, v, &e) == CL_EUSAGE && strstr(e.msg, dn), "--%s %s: %s", p->name, v,
              e.msg);
        if (p->type == CL_OT_FLOAT) {
            CHECK(cl_train_option_set(&o, p, "nan", &e) == CL_EUSAGE && strstr(e.msg, dn), "--%s nan", p->name);
            snprintf(b, sizeof b, "%.9g", p->hi * 2 + 1);
            CHECK(cl_train_option_set(&o, p, b, &e) == CL_EUSAGE && strstr(e.msg, dn), "--%s %s", p->name, b);
        }
        if (p->type == CL_OT_INT) {
            snprintf(b, sizeof b, "%.0f", p->lo - 1);
            CHECK(cl_train_option_set(&o, p, b, &e) == CL_EUSAGE && strstr(e.msg, dn), "--%s %s", p->name, b);
            CHECK(cl_train_option_set(&o, p, "1.5", &e) == CL_EUSAGE, "--%s 1.5", p->name);
        }
    }
}

/* a valid value of P that differs from its default */
static const char *other_value(const cl_train_option *p, char *buf, size_t n) {
    switch (p->type) {
    case CL_OT_STRING:
        snprintf(buf, n, "x_%s", p->key);
        return buf;
    case CL_OT_PATH:
        snprintf(buf, n, "/nonexistent/x_%s", p->key);
        return buf;
    case CL_OT_INT:
    case CL_OT_BOOL:
    case CL_OT_FLAG: {
        double d = atof(p->def), v = d + 1 <= p->hi ? d + 1 : p->lo;
        snprintf(buf, n, "%.0f", v);
        return buf;
    }
    case CL_OT_FLOAT: {
        double d = atof(p->def), v = p->lo + (fmin(p->hi, p->lo + 10) - p->lo) * 0.37;
        if (fabs(v - d) < 1e-9) v = p->lo;
        snprintf(buf, n, "%.9g", v);
        return buf;
    }
    case CL_OT_CHOICE: { /* the first word that is not the default */
        const char *c = p->choices;
        while (c) {
            const char *e = strchr(c, '|');
            size_t len = e ? (size_t)(e - c) : strlen(c);
            if (len != strlen(p->def) || strncmp(c, p->def, len)) {
                snprintf(buf, n, "%.*s", (int)len, c);
                return buf;
            }
            c = e ? e + 1 : NULL;
        }
    }
    }
    return NULL;
}

TEST(run_json_round_trip) {
    cl_train_opts o;
    cl_train_opts_default(&o);
    /* the method first (it resets the adapter options), the preset's effect left out: its mark only */
    const cl_train_option *m = cl_train_option_find("method");
    cl_error e = {0};
    CHECK(cl_train_option_set(&o, m, "salora", &e) == 0, "%s", e.msg);
    static char vals[128][256];
    size_t n = cl_train_option_count();
    for (size_t i = 0; i < n && i < 128; i++) {
        const cl_train_option *p = cl_train_option_at(i);
        if (p == m) continue;
        if (!strcmp(p->name, "preset")) { o.preset_paper = 1; continue; }
        const char *v = other_value(p, vals[i], sizeof vals[i]);
        CHECK(v && cl_train_option_set(&o, p, v, &e) == 0, "--%s %s: %s", p->name, v ? v : "-", e.msg);
        char got[4096];
        cl_train_option_get(&o, p, got, sizeof got);
        char def[4096];
        cl_train_opts d;
        cl_train_opts_default(&d);
        cl_train_option_get(&d, p, def, sizeof def);
        CHECK(strcmp(got, def), "--%s: %s is not a non-default value", p->name, got);
    }
    cJSON *op = cJSON_CreateObject(), *ad = cJSON_CreateObject();
    cl_train_options_to_json(&o, op, ad, "/tmp");
    cl_train_opts b;
    cl_train_opts_default(&b);
    char buf[65536], *bp = buf;
    size_t left = sizeof buf;
    static const char *const req[] = {"model_dir", "lr", "salora_budget", NULL};
    CHECK(cl_train_options_from_json(&b, op, ad, "/tmp", &bp, &left, req, "run.json", &e) == 0, "%s", e.msg);
    for (size_t i = 0; i < n; i++) {
        const cl_train_option *p = cl_train_option_at(i);
        char x[4096], y[4096];
        cl_train_option_get(&o, p, x, sizeof x);
        cl_train_option_get(&b, p, y, sizeof y);
        CHECK(!strcmp(x, y), "--%s: %s written, %s read back", p->name, x, y);
        CHECK(cJSON_GetObjectItemCaseSensitive(p->flags & CL_OF_ADAPTER ? ad : op, p->key) != NULL,
              "run.json has %s", p->key);
    }
    CHECK(cl_train_opts_diff(&o, &b) == NULL, "diff: %s", cl_train_opts_diff(&o, &b));
    /* a required key that is missing, and a bad value, are named */
    cJSON_DeleteItemFromObjectCaseSensitive(op, "lr");
    CHECK(cl_train_options_from_json(&b, op, ad, "/tmp", &bp, &left, req, "run.json", &e) == CL_EFORMAT &&
          strstr(e.msg, "lr"), "%s", e.msg);
    cJSON_AddNumberToObject(op, "lr", -1);
    CHECK(cl_train_options_from_json(&b, op, ad, "/tmp", &bp, &left, req, "run.json", &e) == CL_EFORMAT &&
          strstr(e.msg, "run.json option lr"), "%s", e.msg);
    cJSON_Delete(op), cJSON_Delete(ad);
}

/* through the CLI: every option is a --NAME that `condlora train` knows; typed ones refuse a bad value with exit
 * status 2 and the option's name */
TEST(cli_reaches_every_option) {
    const char *bin = getenv("CL_BIN");
    if (!bin) {
        SKIP("CL_BIN not set");
        return;
    }
    char errf[128], cmd[2048];
    snprintf(errf, sizeof errf, "/tmp/cl_test_options_%d.txt", (int)getpid());
    for (size_t i = 0; i < cl_train_option_count(); i++) {
        const cl_train_option *p = cl_train_option_at(i);
        char b[64];
        const char *bad = bad_value(p, b, sizeof b);
        if (p->type == CL_OT_FLAG) { /* a flag: known, no argument; then a bad --r is still reported */
            snprintf(cmd, sizeof cmd, "'%s' train --%s --r 0 > /dev/null 2> %s", bin, p->name, errf);
            bad = NULL;
        } else if (bad) {
            snprintf(cmd, sizeof cmd, "'%s' train --%s '%s' > /dev/null 2> %s", bin, p->name, bad, errf);
        } else {
            snprintf(cmd, sizeof cmd, "'%s' train --%s x --r 0 > /dev/null 2> %s", bin, p->name, errf);
        }
        int st = system(cmd);
        FILE *f = fopen(errf, "r");
        char msg[2048] = "";
        size_t got = f ? fread(msg, 1, sizeof msg - 1, f) : 0;
        msg[got] = 0;
        if (f) fclose(f);
        char dn[80];
        snprintf(dn, sizeof dn, "--%s", bad ? p->name : "r");
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && !strstr(msg, "unrecognized") && strstr(msg, dn),
              "condlora train --%s: status %d: %s", p->name, WIFEXITED(st) ? WEXITSTATUS(st) : -1, msg);
    }
    unlink(errf);
}

int main(void) {
    RUN(defaults_are_the_tables);
    RUN(out_of_range_named);
    RUN(run_json_round_trip);
    RUN(cli_reaches_every_option);
    return tst_summary(__FILE__);
}
