/* safetensors reader and writer against the Python `safetensors` package (scripts/gen_safetensors_refs.py wrote the
 * files in tests/data/safetensors and recorded what Python read), plus the malformed corpus through the library and
 * through `condlora inspect`.
 * `test_safetensors --emit PATH` writes the C writer's reference file (the generator script calls it, then records
 * what Python's safe_open reads from it in c_written_pyread.json). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "io/safetensors.h"
#include "test.h"

#define DIR "tests/data/safetensors"
#define CHK(cond) CHECK(cond, "%s", "") /* the condition itself is the message */

static cJSON *load_json(const char *path) {
    char *buf;
    size_t len;
    cl_error err = {0};
    if (cl_read_file(path, &buf, &len, &err)) return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    return j;
}

static int hexdecode(const char *hex, uint8_t **out, size_t *n) {
    size_t l = strlen(hex);
    *n = l / 2;
    *out = malloc(*n + 1);
    for (size_t i = 0; i < *n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
        (*out)[i] = (uint8_t)v;
    }
    return 0;
}

static int have_refs(void) {
    if (access(DIR "/py_mixed.json", R_OK) != 0) {
        SKIP("tests/data/safetensors missing: run /usr/bin/python3 scripts/gen_safetensors_refs.py");
        return 0;
    }
    return 1;
}

/* Every tensor Python described (dtype, shape, raw bytes, float32 conversion) is read identically. */
static void check_against(const cl_safetensors *st, const cJSON *ref) {
    const cJSON *tens = cJSON_GetObjectItem(ref, "tensors"), *meta = cJSON_GetObjectItem(ref, "metadata");
    CHECK(st->n == cJSON_GetArraySize(tens), "%s: %d tensors, Python saw %d", st->path, st->n,
          cJSON_GetArraySize(tens));
    for (const cJSON *e = tens ? tens->child : NULL; e; e = e->next) {
        const cl_st_tensor *t = cl_st_find(st, e->string);
        CHECK(t != NULL, "%s: tensor '%s' not found", st->path, e->string);
        if (!t) continue;
        CHECK(!strcmp(cl_dtype_name(t->dtype), cJSON_GetObjectItem(e, "dtype")->valuestring), "%s dtype", t->name);
        const cJSON *shape = cJSON_GetObjectItem(e, "shape");
        CHECK(t->ndim == cJSON_GetArraySize(shape), "%s ndim", t->name);
        uint64_t numel = 1;
        for (int i = 0; i < t->ndim && i < cJSON_GetArraySize(shape); i++) {
            CHECK(t->shape[i] == (int64_t)cJSON_GetArrayItem(shape, i)->valuedouble, "%s shape[%d]", t->name, i);
            numel *= (uint64_t)t->shape[i];
        }
        CHECK(t->numel == numel, "%s numel", t->name);
        uint8_t *bytes;
        size_t nb;
        CHK(hexdecode(cJSON_GetObjectItem(e, "hex")->valuestring, &bytes, &nb) == 0);
        CHECK(nb == t->end - t->begin && (nb == 0 || !memcmp(bytes, t->data, nb)), "%s bytes", t->name);
        free(bytes);
        const cJSON *f32 = cJSON_GetObjectItem(e, "f32_bits");
        if (f32) {
            float *out = malloc((t->numel + 1) * sizeof *out);
            cl_error err = {0};
            CHECK(cl_st_to_f32(st, t, out, &err) == 0, "%s", err.msg);
            int bad = 0, i = 0;
            for (const cJSON *b = f32->child; b; b = b->next, i++) {
                uint32_t u;
                memcpy(&u, &out[i], 4);
                if (u != (uint32_t)b->valuedouble) bad++;
            }
            CHECK(bad == 0 && i == (int)t->numel, "%s: %d of %d float32 conversions differ from Python's", t->name,
                  bad, i);
            free(out);
        }
    }
    int nm = meta ? cJSON_GetArraySize(meta) : 0;
    CHECK(st->nmeta == nm, "%s: %d metadata entries, Python saw %d", st->path, st->nmeta, nm);
    for (const cJSON *m = meta ? meta->child : NULL; m; m = m->next) {
        const char *v = cl_st_meta(st, m->string);
        CHECK(v && !strcmp(v, m->valuestring), "metadata '%s'", m->string);
    }
}

static void read_ref(const char *name) {
    char sp[256], jp[256];
    snprintf(sp, sizeof sp, DIR "/%s.safetensors", name);
    snprintf(jp, sizeof jp, DIR "/%s.json", name);
    cJSON *ref = load_json(jp);
    CHECK(ref != NULL, "%s", jp);
    cl_safetensors st;
    cl_error err = {0};
    int rc = cl_st_open(&st, sp, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc == 0 && ref) check_against(&st, ref);
    cl_st_close(&st);
    cJSON_Delete(ref);
}

TEST(dtype_table) {
    static const char *names[] = {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16",
                                  "BF16", "I32", "U32", "F32", "F64", "I64", "U64"};
    static const size_t sizes[] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};
    for (int i = 0; i < CL_DT_COUNT; i++) {
        cl_dtype d;
        CHECK(cl_dtype_parse(names[i], &d) == 0 && d == (cl_dtype)i && cl_dtype_size(d) == sizes[i] &&
                  !strcmp(cl_dtype_name(d), names[i]), "%s", names[i]);
    }
    cl_dtype d;
    CHK(cl_dtype_parse("f32", &d) != 0 && cl_dtype_parse("", &d) != 0 && cl_dtype_parse(NULL, &d) != 0);
}

TEST(read_python_files) {
    if (!have_refs()) return;
    read_ref("py_mixed");
    read_ref("py_meta");
    read_ref("py_bf16");
}

/* All 65,536 half-precision bit patterns against numpy's float16 -> float32 (subnormals, inf, NaN payloads). */
TEST(f16_all_patterns) {
    if (!have_refs()) return;
    cl_safetensors st;
    cl_error err = {0};
    if (cl_st_open(&st, DIR "/f16_all.safetensors", &err)) { CHECK(0, "%s", err.msg); return; }
    const cl_st_tensor *h = cl_st_find(&st, "h"), *f = cl_st_find(&st, "f");
    CHK(h && f && h->numel == 65536 && f->numel == 65536 && h->dtype == CL_DT_F16 && f->dtype == CL_DT_F32);
    if (h && f && h->numel == 65536) {
        float *out = malloc(65536 * sizeof *out);
        CHECK(cl_st_to_f32(&st, h, out, &err) == 0, "%s", err.msg);
        int bad = 0;
        for (int i = 0; i < 65536; i++) {
            uint32_t a, b;
            memcpy(&a, &out[i], 4);
            memcpy(&b, f->data + 4 * i, 4);
            if (a != b && bad++ < 5) fprintf(stderr, "f16 0x%04x: C 0x%08x numpy 0x%08x\n", i, a, b);
        }
        CHECK(bad == 0, "%d of 65536 patterns differ from numpy", bad);
        free(out);
    }
    cl_st_close(&st);
}

/* Reading Python's file and writing every tensor and the metadata back gives Python's bytes exactly. */
static void rewrite_identical(const char *name) {
    char sp[256], op[256];
    snprintf(sp, sizeof sp, DIR "/%s.safetensors", name);
    snprintf(op, sizeof op, "/tmp/cl_test_st_%d_%s.safetensors", (int)getpid(), name);
    cl_safetensors st;
    cl_error err = {0};
    if (cl_st_open(&st, sp, &err)) { CHECK(0, "%s", err.msg); return; }
    cl_st_writer *w = cl_st_writer_new();
    for (int i = st.n - 1; i >= 0; i--) /* reverse order: the writer must sort */
        CHECK(cl_st_writer_add(w, st.t[i].name, st.t[i].dtype, st.t[i].ndim, st.t[i].shape, st.t[i].data, &err) == 0,
              "%s", err.msg);
    for (int i = 0; i < st.nmeta; i++) CHK(cl_st_writer_meta(w, st.meta_keys[i], st.meta_vals[i], &err) == 0);
    CHECK(cl_st_writer_save(w, op, &err) == 0, "%s", err.msg);
    cl_st_writer_free(w);
    char *a, *b;
    size_t la, lb;
    CHK(cl_read_file(op, &a, &la, &err) == 0 && cl_read_file(sp, &b, &lb, &err) == 0);
    CHECK(la == lb && !memcmp(a, b, la), "%s: C writer's bytes differ from Python's (%zu vs %zu bytes)", name, la,
          lb);
    free(a);
    free(b);
    cl_st_close(&st);
    unlink(op);
}

TEST(writer_matches_python_bytes) {
    if (!have_refs()) return;
    rewrite_identical("py_mixed");
    rewrite_identical("py_bf16");
    rewrite_identical("f16_all");
}

/* The C writer's reference content (deterministic). */
static int emit_c_file(const char *path, cl_error *err) {
    cl_st_writer *w = cl_st_writer_new();
    if (!w) return cl_errf(err, CL_ENOMEM, "writer");
    float f32[6];
    for (int i = 0; i < 6; i++) f32[i] = (float)i * 0.5f - 1.0f;
    uint16_t bf16[5] = {0x3F80, 0xC020, 0x7F80, 0x0001, 0x7FC1};
    uint16_t f16[6] = {0x3C00, 0x0001, 0x03FF, 0x7C00, 0xFC00, 0x7E00};
    int64_t i64[3] = {INT64_MIN, -1, (int64_t)1 << 53 | 1};
    uint8_t u8[10], bools[4] = {1, 0, 0, 1};
    for (int i = 0; i < 10; i++) u8[i] = (uint8_t)(i * 25);
    double f64[2] = {3.141592653589793, -1e300};
    int32_t i32[2] = {INT32_MIN, 123456};
    float sc = 42.0f;
    int rc = 0;
    rc |= cl_st_writer_add_f32(w, "z.weight", 2, (int64_t[]){2, 3}, f32, err);
    rc |= cl_st_writer_add(w, "bf", CL_DT_BF16, 1, (int64_t[]){5}, bf16, err);
    rc |= cl_st_writer_add(w, "half", CL_DT_F16, 2, (int64_t[]){2, 3}, f16, err);
    rc |= cl_st_writer_add(w, "ints", CL_DT_I64, 1, (int64_t[]){3}, i64, err);
    rc |= cl_st_writer_add(w, "bytes", CL_DT_U8, 1, (int64_t[]){10}, u8, err);
    rc |= cl_st_writer_add(w, "mask", CL_DT_BOOL, 2, (int64_t[]){2, 2}, bools, err);
    rc |= cl_st_writer_add_f32(w, "scalar", 0, NULL, &sc, err);
    rc |= cl_st_writer_add_f32(w, "empty", 2, (int64_t[]){0, 4}, NULL, err);
    rc |= cl_st_writer_add(w, "d", CL_DT_F64, 1, (int64_t[]){2}, f64, err);
    rc |= cl_st_writer_add(w, "i32", CL_DT_I32, 1, (int64_t[]){2}, i32, err);
    rc |= cl_st_writer_add_f32(w, "quo\"te\\name\ttab", 1, (int64_t[]){1}, &sc, err);
    rc |= cl_st_writer_add_f32(w, "\xc3\xbcn\xc3\xaf.\xe6\x9d\x83", 1, (int64_t[]){1}, &sc, err);
    rc |= cl_st_writer_meta(w, "format", "pt", err);
    rc |= cl_st_writer_meta(w, "quote", "say \"hi\" \\ back\nslash\x01", err);
    rc |= cl_st_writer_meta(w, "unicode", "\xe6\x97\xa5\xe6\x9c\xac", err);
    if (!rc) rc = cl_st_writer_save(w, path, err);
    cl_st_writer_free(w);
    return rc;
}

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

/* What Python read from the C writer's file: the file we write now is byte-identical to the one Python verified,
 * Python saw every tensor's exact bytes, shape and dtype, the metadata, and the writer's order. */
TEST(python_reads_c_file) {
    if (!have_refs()) return;
    cJSON *ref = load_json(DIR "/c_written_pyread.json");
    if (!ref) { SKIP("c_written_pyread.json missing: rerun scripts/gen_safetensors_refs.py after building"); return; }
    char op[256];
    snprintf(op, sizeof op, "/tmp/cl_test_st_%d_c.safetensors", (int)getpid());
    cl_error err = {0};
    CHECK(emit_c_file(op, &err) == 0, "%s", err.msg);
    char *now, *committed;
    size_t ln, lc;
    CHK(cl_read_file(op, &now, &ln, &err) == 0 && cl_read_file(DIR "/c_written.safetensors", &committed, &lc, &err) == 0);
    CHECK(ln == lc && !memcmp(now, committed, ln), "C writer output differs from the file Python verified");
    CHK(lc == (size_t)cJSON_GetObjectItem(ref, "file_len")->valuedouble);
    CHK(crc32_of((uint8_t *)committed, lc) == (uint32_t)cJSON_GetObjectItem(ref, "crc32")->valuedouble);
    CHECK((uint64_t)cJSON_GetObjectItem(ref, "header_len")->valuedouble % 8 == 0, "header padded to 8");
    free(now);
    free(committed);
    /* what Python read equals what we put in: re-read our file with our reader and compare with the verdict */
    cl_safetensors st;
    if (cl_st_open(&st, op, &err) == 0) {
        check_against(&st, ref);
        /* order: dtype descending (U64 I64 F64 F32 U32 I32 BF16 F16 ... U8 BOOL), then name */
        const cJSON *ord = cJSON_GetObjectItem(ref, "offset_order");
        static const char *expect[] = {"ints", "d", "empty", "quo\"te\\name\ttab", "scalar", "z.weight",
                                       "\xc3\xbcn\xc3\xaf.\xe6\x9d\x83", "i32", "bf", "half", "bytes", "mask"};
        int i = 0;
        for (const cJSON *o = ord ? ord->child : NULL; o; o = o->next, i++)
            CHECK(i < 12 && !strcmp(o->valuestring, expect[i]), "order[%d] = %s", i, o->valuestring);
        CHK(i == 12);
        /* and the data Python saw is the data we gave (hex in the verdict vs the source values) */
        const cl_st_tensor *t = cl_st_find(&st, "ints");
        int64_t v[3];
        if (t) memcpy(v, t->data, sizeof v);
        CHK(t && v[0] == INT64_MIN && v[1] == -1 && v[2] == ((int64_t)1 << 53 | 1));
        t = cl_st_find(&st, "scalar");
        CHK(t && t->ndim == 0 && t->numel == 1);
        t = cl_st_find(&st, "empty");
        CHK(t && t->numel == 0 && t->begin == t->end);
        const char *q = cl_st_meta(&st, "quote");
        CHK(q && !strcmp(q, "say \"hi\" \\ back\nslash\x01"));
    } else CHECK(0, "%s", err.msg);
    cl_st_close(&st);
    unlink(op);
    cJSON_Delete(ref);
}

/* Each malformed file: CL_EFORMAT naming the file and the problem, from the path and from memory; and `condlora
 * inspect FILE` exits 1 with the message on stderr. */
TEST(malformed_corpus) {
    if (!have_refs()) return;
    cJSON *idx = load_json(DIR "/bad/index.json");
    CHECK(idx && cJSON_GetArraySize(idx) >= 20, "bad/index.json");
    const char *bin = getenv("CL_BIN");
    if (!bin || access(bin, X_OK) != 0) SKIP("CL_BIN not set: `condlora inspect` not exercised on the malformed files");
    int n = 0;
    for (const cJSON *e = idx ? idx->child : NULL; e; e = e->next, n++) {
        const char *file = cJSON_GetObjectItem(e, "file")->valuestring;
        const char *expect = cJSON_GetObjectItem(e, "expect")->valuestring;
        char path[512];
        snprintf(path, sizeof path, DIR "/bad/%s", file);
        cl_safetensors st;
        cl_error err = {0};
        int rc = cl_st_open(&st, path, &err);
        CHECK(rc == CL_EFORMAT, "%s: rc %d (%s)", file, rc, err.msg);
        CHECK(strstr(err.msg, path) && strstr(err.msg, expect), "%s: message '%s' should name the file and '%s'",
              file, err.msg, expect);
        CHECK(st.n == 0 && st.t == NULL && st.map == NULL, "%s: st left empty", file);
        cl_st_close(&st);
        char *buf;
        size_t len;
        if (cl_read_file(path, &buf, &len, &err) == 0) {
            rc = cl_st_open_memory(&st, (uint8_t *)buf, len, file, &err);
            CHECK(rc == CL_EFORMAT && strstr(err.msg, expect), "%s from memory: %s", file, err.msg);
            cl_st_close(&st);
            free(buf);
        }
        if (bin && access(bin, X_OK) == 0) {
            char cmd[1200];
            snprintf(cmd, sizeof cmd, "'%s' inspect '%s' 2>&1 >/dev/null", bin, path);
            FILE *p = popen(cmd, "r");
            char out[4096] = {0};
            size_t got = p ? fread(out, 1, sizeof out - 1, p) : 0;
            out[got] = 0;
            int status = p ? pclose(p) : -1;
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "inspect %s: status %d", file, status);
            CHECK(strstr(out, expect) != NULL, "inspect %s: stderr '%s' should contain '%s'", file, out, expect);
        }
    }
    CHECK(n >= 20, "%d malformed cases", n);
    cJSON_Delete(idx);
}

/* Every truncation of a valid file is rejected; single-byte corruptions never crash (ASan/UBSan check the rest). */
TEST(truncations_and_corruptions) {
    if (!have_refs()) return;
    char *buf;
    size_t len;
    cl_error err = {0};
    if (cl_read_file(DIR "/py_mixed.safetensors", &buf, &len, &err)) { CHECK(0, "%s", err.msg); return; }
    int rejected = 0;
    for (size_t l = 0; l < len; l++) {
        uint8_t *cp = malloc(l + 1);
        memcpy(cp, buf, l);
        cl_safetensors st;
        if (cl_st_open_memory(&st, cp, l, "trunc", &err) == CL_EFORMAT) rejected++;
        cl_st_close(&st);
        free(cp);
    }
    CHECK(rejected == (int)len, "%d of %zu truncations rejected", rejected, len);
    uint8_t *cp = malloc(len);
    int ok = 0, bad = 0, other = 0;
    for (size_t i = 0; i < len; i += 3) {
        static const uint8_t vals[] = {0x00, 0xFF, '"', '-', '9', '.', '}', 0x80};
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(cp, buf, len);
            cp[i] = vals[v];
            cl_safetensors st;
            int rc = cl_st_open_memory(&st, cp, len, "corrupt", &err);
            if (rc == 0) ok++;
            else if (rc == CL_EFORMAT && strstr(err.msg, "corrupt")) bad++;
            else other++;
            cl_st_close(&st);
        }
    }
    CHECK(other == 0, "%d corruptions gave an unexpected status", other);
    CHECK(ok > 0 && bad > 0, "ok %d rejected %d", ok, bad);
    free(cp);
    free(buf);
}

TEST(errors_and_writer_validation) {
    cl_safetensors st;
    cl_error err = {0};
    CHK(cl_st_open(&st, "/nonexistent/x.safetensors", &err) == CL_EMISSING && strstr(err.msg, "/nonexistent"));
    cl_st_close(&st);
    CHECK(cl_st_open(&st, "/tmp", &err) == CL_EIO && strstr(err.msg, "/tmp"), "%s", err.msg);
    cl_st_close(&st);
    cl_st_writer *w = cl_st_writer_new();
    float x[2] = {1, 2};
    CHK(cl_st_writer_add_f32(w, "a", 1, (int64_t[]){2}, x, &err) == 0);
    CHK(cl_st_writer_add_f32(w, "a", 1, (int64_t[]){2}, x, &err) == CL_EINVAL && strstr(err.msg, "duplicate"));
    CHK(cl_st_writer_add_f32(w, "__metadata__", 1, (int64_t[]){2}, x, &err) == CL_EINVAL);
    CHK(cl_st_writer_add_f32(w, "neg", 1, (int64_t[]){-2}, x, &err) == CL_EINVAL && strstr(err.msg, "neg"));
    CHK(cl_st_writer_add_f32(w, "big", 2, (int64_t[]){INT64_MAX, 4}, x, &err) == CL_EINVAL);
    CHK(cl_st_writer_add_f32(w, "nine", 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, x, &err) == CL_EINVAL);
    CHK(cl_st_writer_add_f32(w, "bad\xff", 1, (int64_t[]){2}, x, &err) == CL_EINVAL && strstr(err.msg, "UTF-8"));
    CHK(cl_st_writer_meta(w, "k", "v1", &err) == 0 && cl_st_writer_meta(w, "k", "v2", &err) == 0);
    CHECK(cl_st_writer_save(w, "/nonexistent/dir/out.safetensors", &err) == CL_EIO &&
          strstr(err.msg, "/nonexistent/dir"), "%s", err.msg);
    char path[128];
    snprintf(path, sizeof path, "/tmp/cl_test_st_%d_w.safetensors", (int)getpid());
    CHECK(cl_st_writer_save(w, path, &err) == 0, "%s", err.msg);
    cl_st_writer_free(w);
    if (cl_st_open(&st, path, &err) == 0) {
        CHK(st.n == 1 && st.nmeta == 1 && !strcmp(cl_st_meta(&st, "k"), "v2") && cl_st_meta(&st, "x") == NULL);
        CHK(st.header_len % 8 == 0);
        int64_t i64[1];
        (void)i64;
        const cl_st_tensor *t = cl_st_find(&st, "a");
        float y[2];
        CHK(t && cl_st_to_f32(&st, t, y, &err) == 0 && y[0] == 1 && y[1] == 2);
    } else CHECK(0, "%s", err.msg);
    cl_st_close(&st);
    /* a non-float tensor does not convert */
    w = cl_st_writer_new();
    int64_t v = 5;
    CHK(cl_st_writer_add(w, "i", CL_DT_I64, 1, (int64_t[]){1}, &v, &err) == 0);
    CHK(cl_st_writer_save(w, path, &err) == 0);
    cl_st_writer_free(w);
    if (cl_st_open(&st, path, &err) == 0) {
        float y;
        CHECK(cl_st_to_f32(&st, &st.t[0], &y, &err) == CL_EUNSUP && strstr(err.msg, "I64"), "%s", err.msg);
    }
    cl_st_close(&st);
    /* an empty file set: no tensors, header "{}" padded */
    w = cl_st_writer_new();
    CHK(cl_st_writer_save(w, path, &err) == 0);
    cl_st_writer_free(w);
    CHECK(cl_st_open(&st, path, &err) == 0 && st.n == 0 && st.header_len == 8, "%s", err.msg);
    cl_st_close(&st);
    unlink(path);
}

/* Runs a shell command, captures stdout and stderr together; returns the exit status (-1 if it did not exit). */
static int run_capture(const char *cmd, char *out, size_t cap) {
    char full[2048];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t got = fread(out, 1, cap - 1, p);
    out[got] = 0;
    while (fgetc(p) != EOF) {}
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void with_commas(unsigned long long v, char *buf) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", v), o = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
}

/* `condlora inspect`: a file (every tensor listed, the parameter count Python's shapes give), model directories
 * (parameter counts transformers computed, tests/data/model/reference.json), a config (roberta-base: 124,055,040
 * without pooler and head), usage errors. */
TEST(inspect_cli) {
    const char *bin = getenv("CL_BIN");
    if (!bin || access(bin, X_OK) != 0) { SKIP("CL_BIN not set"); return; }
    if (!have_refs()) return;
    static char out[1 << 16];
    char cmd[1024], want[128], num[32];
    snprintf(cmd, sizeof cmd, "'%s' inspect --tensors " DIR "/py_mixed.safetensors", bin);
    CHECK(run_capture(cmd, out, sizeof out) == 0, "%s", out);
    cJSON *ref = load_json(DIR "/py_mixed.json");
    unsigned long long params = 0;
    int nt = 0;
    for (const cJSON *e = ref ? cJSON_GetObjectItem(ref, "tensors")->child : NULL; e; e = e->next, nt++) {
        unsigned long long n = 1;
        for (const cJSON *d = cJSON_GetObjectItem(e, "shape")->child; d; d = d->next) n *= (unsigned long long)d->valuedouble;
        params += n;
        snprintf(want, sizeof want, "\n%s ", e->string);
        CHECK(strstr(out, want) != NULL, "tensor '%s' not listed", e->string);
    }
    cJSON_Delete(ref);
    with_commas(params, num);
    snprintf(want, sizeof want, "parameters: %s\n", num);
    CHECK(strstr(out, want) != NULL, "want '%s' in:\n%s", want, out);
    snprintf(want, sizeof want, "tensors: %d\n", nt);
    CHECK(strstr(out, want) != NULL, "want '%s'", want);
    CHK(strstr(out, "format = pt") != NULL);

    cJSON *mref = load_json("tests/data/model/reference.json");
    const cJSON *fx = mref ? cJSON_GetObjectItem(mref, "fixtures") : NULL;
    static const char *dirs[] = {"roberta_cls", "bert_cls", "roberta_shard", "bert_bf16"};
    for (int i = 0; i < 4; i++) {
        const cJSON *f = fx ? cJSON_GetObjectItem(fx, dirs[i]) : NULL;
        if (!f) { SKIP("tests/data/model/%s not in reference.json", dirs[i]); continue; }
        snprintf(cmd, sizeof cmd, "'%s' inspect tests/data/model/%s", bin, dirs[i]);
        CHECK(run_capture(cmd, out, sizeof out) == 0, "%s: %s", dirs[i], out);
        with_commas((unsigned long long)cJSON_GetObjectItem(f, "n_params_encoder")->valuedouble, num);
        snprintf(want, sizeof want, "encoder without pooler and head %s\n", num);
        CHECK(strstr(out, want) != NULL, "%s: want '%s' in:\n%s", dirs[i], want, out);
        with_commas((unsigned long long)cJSON_GetObjectItem(f, "n_params_total")->valuedouble, num);
        snprintf(want, sizeof want, "total %s\n", num);
        CHECK(strstr(out, want) != NULL, "%s: want '%s'", dirs[i], want);
    }
    cJSON_Delete(mref);
    /* the real all-MiniLM-L6-v2 when scripts/fetch_model.sh has put it in the cache (counts from transformers) */
    const char *home = getenv("HOME"), *cache = getenv("CONDLORA_CACHE");
    char mdir[512];
    if (cache) snprintf(mdir, sizeof mdir, "%s/models/all-MiniLM-L6-v2", cache);
    else snprintf(mdir, sizeof mdir, "%s/.cache/condlora/models/all-MiniLM-L6-v2", home ? home : "");
    cJSON *mini = load_json("tests/data/model/minilm_reference.json");
    char mfile[600];
    snprintf(mfile, sizeof mfile, "%s/model.safetensors", mdir);
    if (!mini || access(mfile, R_OK) != 0) SKIP("all-MiniLM-L6-v2 not in the cache (scripts/fetch_model.sh)");
    else {
        snprintf(cmd, sizeof cmd, "'%s' inspect '%s'", bin, mdir);
        CHECK(run_capture(cmd, out, sizeof out) == 0, "%s", out);
        with_commas((unsigned long long)cJSON_GetObjectItem(mini, "n_params_encoder")->valuedouble, num);
        snprintf(want, sizeof want, "encoder without pooler and head %s\n", num);
        CHECK(strstr(out, want) != NULL, "MiniLM: want '%s' in:\n%s", want, out);
        with_commas((unsigned long long)cJSON_GetObjectItem(mini, "n_params_total")->valuedouble, num);
        snprintf(want, sizeof want, "total %s\n", num);
        CHECK(strstr(out, want) != NULL, "MiniLM: want '%s'", want);
        snprintf(want, sizeof want, ": %d tensors", (int)cJSON_GetObjectItem(mini, "n_tensors_file")->valuedouble);
        CHECK(strstr(out, want) != NULL, "MiniLM: want '%s'", want);
    }
    cJSON_Delete(mini);
    snprintf(cmd, sizeof cmd, "'%s' inspect tests/data/model/broken_shape", bin);
    if (access("tests/data/model/broken_shape", R_OK) == 0)
        CHECK(run_capture(cmd, out, sizeof out) == 1 && strstr(out, "shape"), "%s", out);

    char cfg[128];
    snprintf(cfg, sizeof cfg, "/tmp/cl_test_st_%d_config.json", (int)getpid());
    static const char rb[] =
        "{\"model_type\":\"roberta\",\"vocab_size\":50265,\"hidden_size\":768,\"num_hidden_layers\":12,"
        "\"num_attention_heads\":12,\"intermediate_size\":3072,\"max_position_embeddings\":514,\"type_vocab_size\":1,"
        "\"pad_token_id\":1,\"layer_norm_eps\":1e-05,\"hidden_act\":\"gelu\"}";
    cl_error err = {0};
    CHK(cl_atomic_write(cfg, rb, sizeof rb - 1, &err) == 0);
    snprintf(cmd, sizeof cmd, "'%s' inspect %s", bin, cfg);
    CHECK(run_capture(cmd, out, sizeof out) == 0 && strstr(out, "124,055,040"), "%s", out);
    unlink(cfg);

    snprintf(cmd, sizeof cmd, "'%s' inspect", bin);
    CHECK(run_capture(cmd, out, sizeof out) == 2 && strstr(out, "usage"), "%s", out);
    snprintf(cmd, sizeof cmd, "'%s' inspect --bogus " DIR "/py_mixed.safetensors", bin);
    CHECK(run_capture(cmd, out, sizeof out) == 2 && strstr(out, "--bogus"), "%s", out);
    snprintf(cmd, sizeof cmd, "'%s' inspect --help", bin);
    CHECK(run_capture(cmd, out, sizeof out) == 0 && strstr(out, "--tensors"), "%s", out);
    snprintf(cmd, sizeof cmd, "'%s' inspect /nonexistent/m.safetensors", bin);
    CHECK(run_capture(cmd, out, sizeof out) == 1 && strstr(out, "/nonexistent/m.safetensors"), "%s", out);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--emit")) {
        cl_error err = {0};
        if (emit_c_file(argv[2], &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        return 0;
    }
    RUN(dtype_table);
    RUN(read_python_files);
    RUN(f16_all_patterns);
    RUN(writer_matches_python_bytes);
    RUN(python_reads_c_file);
    RUN(malformed_corpus);
    RUN(truncations_and_corruptions);
    RUN(errors_and_writer_validation);
    RUN(inspect_cli);
    return tst_summary(__FILE__);
}
