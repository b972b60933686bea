/* Core utilities: RNG statistics, crash-safe writes, error formatting. */
#include <sys/stat.h>
#include <unistd.h>
#include "core/error.h"
#include "core/util.h"
#include "test.h"

TEST(rng_uniform_moments) {
    cl_rng r;
    cl_rng_seed(&r, 42);
    double s = 0, s2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) { double u = cl_rng_uniform(&r); s += u; s2 += u * u; }
    CHECK_NEAR(s / n, 0.5, 0.005);
    CHECK_NEAR(s2 / n - (s / n) * (s / n), 1.0 / 12, 0.002);
    cl_rng a, b;
    cl_rng_seed(&a, 7); cl_rng_seed(&b, 7);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= cl_rng_next(&a) == cl_rng_next(&b);
    CHECK(same, "same seed, same stream");
}

TEST(rng_normal_moments) {
    cl_rng r;
    cl_rng_seed(&r, 1);
    double s = 0, s2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) { double x = cl_rng_normal(&r); s += x; s2 += x * x; }
    CHECK_NEAR(s / n, 0.0, 0.01);
    CHECK_NEAR(s2 / n, 1.0, 0.01);
}

TEST(atomic_write_roundtrip_and_failure) {
    char dir[] = "/tmp/cl_test_core_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/file.bin", dir);
    cl_error err = {0};
    CHECK(cl_atomic_write(path, "hello", 5, &err) == 0, "%s", err.msg);
    char *buf; size_t len;
    CHECK(cl_read_file(path, &buf, &len, &err) == 0 && len == 5 && !memcmp(buf, "hello", 5));
    free(buf);
    /* a read-only directory: the write fails with a message naming the file, the old content stays */
    if (geteuid() != 0) {
        chmod(dir, 0500);
        CHECK(cl_atomic_write(path, "world", 5, &err) != 0);
        CHECK(strstr(err.msg, path) != NULL, "%s", err.msg);
        chmod(dir, 0700);
    }
    /* a path in a missing directory */
    char bad[300];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x", dir);
    CHECK(cl_atomic_write(bad, "x", 1, &err) == CL_EIO);
    CHECK(strstr(err.msg, "no/such/dir") != NULL, "%s", err.msg);
    CHECK(cl_read_file(path, &buf, &len, &err) == 0 && len == 5 && !memcmp(buf, "hello", 5));
    free(buf);
    unlink(path);
    rmdir(dir);
}

TEST(read_missing_file) {
    cl_error err = {0};
    char *buf;
    CHECK(cl_read_file("/nonexistent/condlora.json", &buf, NULL, &err) == CL_EMISSING);
    CHECK(strstr(err.msg, "/nonexistent/condlora.json") != NULL);
}

int main(void) {
    RUN(rng_uniform_moments);
    RUN(rng_normal_moments);
    RUN(atomic_write_roundtrip_and_failure);
    RUN(read_missing_file);
    return tst_summary(__FILE__);
}
