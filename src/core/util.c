#include "util.h"
#include <cblas.h>
#include <omp.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void *cl_alloc(size_t n, size_t size, cl_error *err) {
    uint64_t bytes;
    if (!cl_mul_ok(n, size, &bytes) || bytes > (uint64_t)SIZE_MAX - 64) {
        cl_errf(err, CL_ENOMEM, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    if (bytes == 0) bytes = 64;
    bytes = (bytes + 63) & ~(uint64_t)63;
    void *p = aligned_alloc(64, bytes);
    if (!p) cl_errf(err, CL_ENOMEM, "out of memory allocating %llu bytes", (unsigned long long)bytes);
    return p;
}

void *cl_zalloc(size_t n, size_t size, cl_error *err) {
    void *p = cl_alloc(n, size, err);
    if (p) memset(p, 0, n * size);
    return p;
}

void cl_free(void *p) { free(p); }

int cl_read_file(const char *path, char **out, size_t *len, cl_error *err) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return cl_errf(err, errno == ENOENT ? CL_EMISSING : CL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return cl_errf(err, CL_EIO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) { fclose(f); return cl_errf(err, CL_ENOMEM, "%s: out of memory reading %zu bytes", path, n); }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) { free(buf); return cl_errf(err, CL_EIO, "%s: read error after %zu of %zu bytes", path, got, n); }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}

int cl_fsync_dir(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int cl_atomic_open(cl_atomic_file *af, const char *path, cl_error *err) {
    memset(af, 0, sizeof *af);
    if (strlen(path) + 32 >= sizeof af->tmp) return cl_errf(err, CL_EINVAL, "%s: path too long", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) return cl_errf(err, CL_EIO, "%s: cannot create %s: %s", path, af->tmp, strerror(errno));
    return 0;
}

void cl_atomic_abort(cl_atomic_file *af) {
    if (af->f) fclose(af->f);
    af->f = NULL;
    if (af->tmp[0]) unlink(af->tmp);
}

int cl_atomic_commit(cl_atomic_file *af, cl_error *err) {
    int e = 0;
    const char *what = NULL;
    if (ferror(af->f)) { e = errno ? errno : EIO; what = "write"; }
    else if (fflush(af->f) != 0) { e = errno; what = "flush"; }
    else if (fsync(fileno(af->f)) != 0) { e = errno; what = "fsync"; }
    if (fclose(af->f) != 0 && !what) { e = errno; what = "close"; }
    af->f = NULL;
    if (!what && rename(af->tmp, af->path) != 0) { e = errno; what = "rename"; }
    if (what) {
        unlink(af->tmp);
        return cl_errf(err, CL_EIO, "%s: %s failed: %s (the previous file, if any, is unchanged)", af->path, what,
                       strerror(e));
    }
    cl_fsync_dir(af->path);
    return 0;
}

int cl_atomic_write(const char *path, const void *data, size_t len, cl_error *err) {
    cl_atomic_file af;
    int rc = cl_atomic_open(&af, path, err);
    if (rc) return rc;
    if (len && fwrite(data, 1, len, af.f) != len) {
        int e = errno;
        cl_atomic_abort(&af);
        return cl_errf(err, CL_EIO, "%s: write failed: %s (the previous file, if any, is unchanged)", path,
                       strerror(e ? e : EIO));
    }
    return cl_atomic_commit(&af, err);
}

int cl_mkdir_p(const char *path, cl_error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) return cl_errf(err, CL_EINVAL, "%s: path too long", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return cl_errf(err, CL_EIO, "%s: cannot create: %s", tmp, strerror(errno));
            *p = '/';
        }
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return cl_errf(err, CL_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)ftw;
    return (flag == FTW_DP ? rmdir(p) : unlink(p)) ? -1 : 0;
}

int cl_remove_tree(const char *path, cl_error *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : cl_errf(err, CL_EIO, "%s: %s", path, strerror(errno));
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return cl_errf(err, CL_EIO, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

int cl_dir_nonempty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d))) any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

/* "/a/./b/../c/" -> "/a/c" (lexically) */
static void path_clean(char *p) {
    char *seg[512];
    int n = 0;
    char *save = NULL, buf[4096];
    snprintf(buf, sizeof buf, "%s", p);
    for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (!strcmp(t, ".")) continue;
        if (!strcmp(t, "..")) { if (n) n--; continue; }
        if (n < 512) seg[n++] = t;
    }
    size_t o = 0;
    p[0] = 0;
    for (int i = 0; i < n; i++) o += (size_t)sprintf(p + o, "/%s", seg[i]);
    if (!n) strcpy(p, "/");
}

int cl_path_abs(const char *path, char *abs, size_t n) {
    char rp[PATH_MAX];
    if (realpath(path, rp)) return snprintf(abs, n, "%s", rp) < (int)n ? 0 : -1;
    char cwd[PATH_MAX], tmp[8192];
    if (path[0] == '/') snprintf(tmp, sizeof tmp, "%s", path);
    else if (getcwd(cwd, sizeof cwd)) snprintf(tmp, sizeof tmp, "%s/%s", cwd, path);
    else return -1;
    if (strlen(tmp) >= 4096) return -1;
    path_clean(tmp);
    return snprintf(abs, n, "%s", tmp) < (int)n ? 0 : -1;
}

int cl_path_relative(const char *base_dir, const char *path, char *rel, size_t n) {
    char b[4096], p[4096];
    if (cl_path_abs(base_dir, b, sizeof b) || cl_path_abs(path, p, sizeof p)) return -1;
    char *bs[512], *ps[512], *save = NULL;
    int nb = 0, np = 0;
    for (char *t = strtok_r(b, "/", &save); t && nb < 512; t = strtok_r(NULL, "/", &save)) bs[nb++] = t;
    for (char *t = strtok_r(p, "/", &save); t && np < 512; t = strtok_r(NULL, "/", &save)) ps[np++] = t;
    int k = 0;
    while (k < nb && k < np && !strcmp(bs[k], ps[k])) k++;
    size_t o = 0;
    rel[0] = 0;
    for (int i = k; i < nb; i++) o += (size_t)snprintf(rel + o, o < n ? n - o : 0, "%s..", o ? "/" : "");
    for (int i = k; i < np; i++) o += (size_t)snprintf(rel + o, o < n ? n - o : 0, "%s%s", o ? "/" : "", ps[i]);
    if (!o) o = (size_t)snprintf(rel, n, ".");
    return o < n ? 0 : -1;
}

long long cl_utf8_invalid_at(const void *p, size_t n) {
    const unsigned char *s = p;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return (long long)i;
        if (n - i < len) return (long long)i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return (long long)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (long long)i;
        i += len;
    }
    return -1;
}

void cl_random_id(char out[33]) {
    unsigned char b[16];
    int ok = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        ok = read(fd, b, sizeof b) == (ssize_t)sizeof b;
        close(fd);
    }
    if (!ok) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
        for (int i = 0; i < 16; i++) {
            x += 0x9e3779b97f4a7c15ULL;
            uint64_t z = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
            b[i] = (unsigned char)(z >> 56);
        }
    }
    for (int i = 0; i < 16; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

double cl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

long cl_peak_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void cl_rng_seed(cl_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t cl_rng_next(cl_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cl_rng_uniform(cl_rng *r) { return (cl_rng_next(r) >> 11) * 0x1.0p-53; }
float cl_rng_uniformf(cl_rng *r) { return (float)(cl_rng_next(r) >> 40) * 0x1.0p-24f; }

double cl_rng_normal(cl_rng *r) {
    double u1 = cl_rng_uniform(r), u2 = cl_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t cl_rng_below(cl_rng *r, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = cl_rng_next(r); while (x >= lim);
    return x % n;
}

void cl_threads_enter(int n, cl_threads_saved *s) {
    s->set = 0;
    if (n <= 0) return;
    s->omp = omp_get_max_threads();
    s->blas = openblas_get_num_threads();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    s->set = 1;
}

void cl_threads_leave(cl_threads_saved *s) {
    if (!s->set) return;
    omp_set_num_threads(s->omp);
    openblas_set_num_threads(s->blas);
    s->set = 0;
}
