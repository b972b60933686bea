/* Model-directory loader: config.json + model.safetensors (or model.safetensors.index.json and its shards).
 *
 * Files are mapped copy-on-write (PROT_READ|PROT_WRITE, MAP_PRIVATE) and validated with cl_st_open_memory. F32
 * tensors whose data is 4-byte aligned are used in place (writes touch private pages only, never the file); other
 * tensors (F16, BF16, F64, unaligned F32) are converted into one cl_alloc'd arena, which also holds freshly
 * initialised pooler / head weights. Every float pointer of the model is writable. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/log.h"
#include "core/util.h"
#include "io/safetensors.h"
#include "model/gemm_bf16.h"
#include "model/model.h"

typedef struct {
    uint8_t *map;
    size_t size;
} mapping;

typedef struct {
    int loaded;         /* 1: from cl_model_load (report valid) */
    mapping *maps;
    int nmaps;
    float *arena;
    char **files, **missing, **unexpected, **notes;
    int nfiles, nmissing, nunexpected, nnotes;
    int capmissing, capunexpected, capnotes;
    cl_load_report rep;
} priv_t;

/* ---- string lists ---- */
static int list_add(char ***list, int *n, int *cap, cl_error *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int list_add(char ***list, int *n, int *cap, cl_error *err, const char *fmt, ...) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        char **nl = realloc(*list, (size_t)nc * sizeof *nl);
        if (!nl) return cl_errf(err, CL_ENOMEM, "out of memory");
        *list = nl;
        *cap = nc;
    }
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0 || !s) return cl_errf(err, CL_ENOMEM, "out of memory");
    (*list)[(*n)++] = s;
    return 0;
}

static void list_free(char **l, int n) {
    for (int i = 0; i < n; i++) free(l[i]);
    free(l);
}

static void priv_free(priv_t *p) {
    if (!p) return;
    for (int i = 0; i < p->nmaps; i++)
        if (p->maps[i].map) munmap(p->maps[i].map, p->maps[i].size);
    free(p->maps);
    cl_free(p->arena);
    list_free(p->files, p->nfiles);
    list_free(p->missing, p->nmissing);
    list_free(p->unexpected, p->nunexpected);
    list_free(p->notes, p->nnotes);
    free(p);
}

void cl_model_free(cl_weights *m) {
    if (!m) return;
    cl_model_bf16_free(m); /* bf16 mode's packed weights (model/gemm_bf16.c) */
    priv_free(m->priv);
    free(m->layers);
    cl_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
}

const cl_load_report *cl_model_load_report(const cl_weights *m) {
    if (!m || !m->priv) return NULL;
    priv_t *p = m->priv;
    if (!p->loaded) return NULL;
    p->rep.n_files = p->nfiles;
    p->rep.files = (const char *const *)p->files;
    p->rep.n_missing = p->nmissing;
    p->rep.missing = (const char *const *)p->missing;
    p->rep.n_unexpected = p->nunexpected;
    p->rep.unexpected = (const char *const *)p->unexpected;
    p->rep.n_notes = p->nnotes;
    p->rep.notes = (const char *const *)p->notes;
    return &p->rep;
}

/* ---- expected tensors ---- */
enum { K_ENC = 0, K_POOLER, K_HEAD };
typedef struct {
    char *name;            /* transformers name without prefix */
    int ndim;
    int64_t shape[2];      /* -1: any (label count) */
    float **dst;
    int kind;
    const cl_st_tensor *src;
    const char *src_file;  /* path of the shard */
    char *src_name;        /* name as written */
    int from_map;          /* shard index */
} want_t;

typedef struct {
    want_t *w;
    int n, cap;
} want_list;

static int want_add(want_list *wl, cl_error *err, int kind, float **dst, int ndim, int64_t d0, int64_t d1,
                    const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static int want_add(want_list *wl, cl_error *err, int kind, float **dst, int ndim, int64_t d0, int64_t d1,
                    const char *fmt, ...) {
    if (wl->n == wl->cap) {
        int nc = wl->cap ? wl->cap * 2 : 64;
        want_t *nw = realloc(wl->w, (size_t)nc * sizeof *nw);
        if (!nw) return cl_errf(err, CL_ENOMEM, "out of memory");
        wl->w = nw;
        wl->cap = nc;
    }
    want_t *w = &wl->w[wl->n];
    memset(w, 0, sizeof *w);
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&w->name, fmt, ap);
    va_end(ap);
    if (r < 0) return cl_errf(err, CL_ENOMEM, "out of memory");
    w->ndim = ndim;
    w->shape[0] = d0;
    w->shape[1] = d1;
    w->dst = dst;
    w->kind = kind;
    wl->n++;
    return 0;
}

static void want_free(want_list *wl) {
    for (int i = 0; i < wl->n; i++) { free(wl->w[i].name); free(wl->w[i].src_name); }
    free(wl->w);
}

static int want_cmp(const void *a, const void *b) {
    return strcmp(((const want_t *)a)->name, ((const want_t *)b)->name);
}

typedef struct {
    want_list *wl;
    cl_error *err;
} want_ctx;

static int want_one(void *user, const cl_model_tensor *t) {
    want_ctx *x = user;
    static const int kinds[] = {[CL_TENSOR_ENCODER] = K_ENC, [CL_TENSOR_POOLER] = K_POOLER, [CL_TENSOR_HEAD] = K_HEAD};
    return want_add(x->wl, x->err, kinds[t->kind], t->ptr, t->ndim, t->shape[0], t->ndim > 1 ? t->shape[1] : 0, "%s",
                    t->name);
}

/* the expected tensors: the architecture table's list (model/arch.c) with the head of its classifier */
static int build_wants(cl_weights *m, want_list *wl, cl_error *err) {
    const cl_config *c = &m->cfg;
    for (int l = 0; l < c->num_layers; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++) {
            m->layers[l].lin[k].d_out = k == CL_MOD_INTER ? c->intermediate_size : c->hidden_size;
            m->layers[l].lin[k].d_in = k == CL_MOD_OUT ? c->intermediate_size : c->hidden_size;
        }
    want_ctx x = {wl, err};
    if (cl_model_tensors(m, cl_model_arch(m)->head, 1, want_one, &x)) return CL_ENOMEM;
    qsort(wl->w, (size_t)wl->n, sizeof *wl->w, want_cmp);
    return 0;
}

static want_t *want_find(want_list *wl, const char *name) {
    want_t key;
    key.name = (char *)name;
    return bsearch(&key, wl->w, (size_t)wl->n, sizeof *wl->w, want_cmp);
}

/* Transformers' name for a checkpoint name: strip the architecture's prefix ("bert.", "roberta.", "mpnet.") and map
 * old LayerNorm.gamma/beta. */
static char *normalise_name(const char *s, const char *prefix) {
    size_t pl = strlen(prefix);
    if (!strncmp(s, prefix, pl) && s[pl] == '.') s += pl + 1;
    size_t n = strlen(s);
    char *out = malloc(n + 8);
    if (!out) return NULL;
    memcpy(out, s, n + 1);
    if (n >= 16 && !strcmp(out + n - 16, ".LayerNorm.gamma")) strcpy(out + n - 6, ".weight");
    else if (n >= 15 && !strcmp(out + n - 15, ".LayerNorm.beta")) strcpy(out + n - 5, ".bias");
    return out;
}

static int ignorable(const char *norm) {
    size_t n = strlen(norm);
    return (n >= 13 && !strcmp(norm + n - 13, ".position_ids")) || !strcmp(norm, "position_ids") ||
           (n >= 15 && !strcmp(norm + n - 15, ".token_type_ids"));
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* ---- files ---- */
static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int map_file(const char *path, mapping *mp, cl_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return cl_errf(err, errno == ENOENT ? CL_EMISSING : CL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cl_errf(err, CL_EIO, "%s: not a regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return cl_errf(err, CL_EFORMAT, "%s: %lld bytes is too short for a safetensors file", path, (long long)st.st_size);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return cl_errf(err, CL_EIO, "%s: mmap failed: %s", path, strerror(errno));
    mp->map = p;
    mp->size = (size_t)st.st_size;
    return 0;
}

static int valid_shard_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 255 || s[0] == '.' || strchr(s, '/') || strchr(s, '\\')) return 0;
    return 1;
}

/* Reads the index; fills the distinct shard file names (in first-seen order) and keeps the parsed JSON for checks. */
static int read_index(const char *path, cJSON **out_root, char ***shards, int *nshards, cl_error *err) {
    *out_root = NULL;
    *shards = NULL;
    *nshards = 0;
    char *buf;
    size_t len;
    int rc = cl_read_file(path, &buf, &len, err);
    if (rc) return rc;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!root) return cl_errf(err, CL_EFORMAT, "%s: not valid JSON", path);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm) || cJSON_GetArraySize(wm) == 0) {
        cJSON_Delete(root);
        return cl_errf(err, CL_EFORMAT, "%s: key 'weight_map': expected a non-empty object", path);
    }
    int cap = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it) || !valid_shard_name(it->valuestring)) {
            rc = cl_errf(err, CL_EFORMAT, "%s: key 'weight_map': entry '%.200s' must name a file in the same directory",
                         path, it->string ? it->string : "");
            break;
        }
        int seen = 0;
        for (int i = 0; i < *nshards && !seen; i++) seen = !strcmp((*shards)[i], it->valuestring);
        if (seen) continue;
        if (*nshards == cap) {
            cap = cap ? cap * 2 : 8;
            char **ns = realloc(*shards, (size_t)cap * sizeof *ns);
            if (!ns) { rc = cl_errf(err, CL_ENOMEM, "out of memory"); break; }
            *shards = ns;
        }
        if (!((*shards)[*nshards] = strdup(it->valuestring))) { rc = cl_errf(err, CL_ENOMEM, "out of memory"); break; }
        (*nshards)++;
    }
    if (rc) {
        list_free(*shards, *nshards);
        *shards = NULL;
        *nshards = 0;
        cJSON_Delete(root);
        return rc;
    }
    *out_root = root;
    return 0;
}

static void fill_normal(cl_rng *r, float *x, size_t n, float std) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(cl_rng_normal(r) * std);
}

static size_t round16(uint64_t n) { return (size_t)((n + 15) & ~(uint64_t)15); }

/* Counts parameters of the pointers the model holds. */
static void count_params(cl_weights *m) {
    const cl_config *c = &m->cfg;
    m->n_params_encoder = cl_config_n_params_encoder(c);
    uint64_t H = (uint64_t)c->hidden_size;
    uint64_t tot = m->n_params_encoder;
    if (m->pooler.w) tot += H * H + H;
    if (m->head_dense.w) tot += H * H + H;
    if (m->head_out.w) tot += (uint64_t)m->head_out.d_out * H + (uint64_t)m->head_out.d_out;
    m->n_params_total = tot;
}

static int set_labels(cl_config *c, int L) {
    if (c->num_labels == L) return 0;
    if (c->id2label) {
        for (int i = 0; i < c->num_labels; i++) free(c->id2label[i]);
        free(c->id2label);
        c->id2label = NULL;
    }
    c->num_labels = L;
    return 0;
}

int cl_model_load(cl_weights *m, const char *dir, const cl_load_opts *opts, cl_error *err) {
    memset(m, 0, sizeof *m);
    cl_load_opts dflt = {0};
    if (!opts) opts = &dflt;
    if (!dir) return cl_errf(err, CL_EINVAL, "cl_model_load: no directory given");
    if (opts->num_labels < 0 || opts->num_labels > 100000)
        return cl_errf(err, CL_EINVAL, "%s: num_labels %d out of range [0, 100000]", dir, opts->num_labels);
    char path[4096];
    struct stat dst;
    if (stat(dir, &dst) != 0)
        return cl_errf(err, CL_EMISSING, "%s: model directory not found: %s", dir, strerror(errno));
    if (!S_ISDIR(dst.st_mode)) return cl_errf(err, CL_EINVAL, "%s: not a directory", dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = cl_config_load(&m->cfg, path, err);
    if (rc) return rc;

    priv_t *p = calloc(1, sizeof *p);
    if (!p) { cl_config_free(&m->cfg); return cl_errf(err, CL_ENOMEM, "out of memory"); }
    p->loaded = 1;
    m->priv = p;
    want_list wl = {0};
    cl_safetensors *sts = NULL;
    char **shards = NULL;
    int nshards = 0, capfiles = 0;
    cJSON *index = NULL;
    const cl_config *c = &m->cfg;
    int H = c->hidden_size;

    m->layers = calloc((size_t)c->num_layers, sizeof *m->layers);
    if (!m->layers) { rc = cl_errf(err, CL_ENOMEM, "%s: out of memory for %d layers", dir, c->num_layers); goto fail; }

    /* which files */
    char single[4096], idxpath[4096];
    snprintf(single, sizeof single, "%s/model.safetensors", dir);
    snprintf(idxpath, sizeof idxpath, "%s/model.safetensors.index.json", dir);
    if (file_exists(single)) {
        if (!(shards = malloc(sizeof *shards)) || !(shards[0] = strdup("model.safetensors"))) {
            free(shards);
            shards = NULL;
            rc = cl_errf(err, CL_ENOMEM, "out of memory");
            goto fail;
        }
        nshards = 1;
    } else if (file_exists(idxpath)) {
        if ((rc = read_index(idxpath, &index, &shards, &nshards, err))) goto fail;
    } else {
        char bin[4096];
        snprintf(bin, sizeof bin, "%s/pytorch_model.bin", dir);
        if (file_exists(bin))
            rc = cl_errf(err, CL_EMISSING,
                         "%s: no model.safetensors, only pytorch_model.bin; convert it with "
                         "`/usr/bin/python3 scripts/convert_bin_to_safetensors.py %s`", dir, dir);
        else
            rc = cl_errf(err, CL_EMISSING, "%s: no model.safetensors or model.safetensors.index.json", dir);
        goto fail;
    }

    /* map and validate */
    p->maps = calloc((size_t)nshards, sizeof *p->maps);
    sts = calloc((size_t)nshards, sizeof *sts);
    if (!p->maps || !sts) { rc = cl_errf(err, CL_ENOMEM, "out of memory"); goto fail; }
    p->nmaps = nshards;
    for (int s = 0; s < nshards; s++) {
        snprintf(path, sizeof path, "%s/%s", dir, shards[s]);
        if ((rc = list_add(&p->files, &p->nfiles, &capfiles, err, "%s", path))) goto fail;
        if ((rc = map_file(path, &p->maps[s], err))) goto fail;
        if ((rc = cl_st_open_memory(&sts[s], p->maps[s].map, p->maps[s].size, p->files[s], err))) goto fail;
    }
    if (index) { /* every entry of the weight map must be in the file it names */
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(index, "weight_map")) {
            int s = 0;
            while (s < nshards && strcmp(shards[s], it->valuestring)) s++;
            if (s == nshards || !cl_st_find(&sts[s], it->string)) {
                rc = cl_errf(err, CL_EMISSING, "%s: key 'weight_map': tensor '%.200s' is not in %s", idxpath,
                             it->string, it->valuestring);
                goto fail;
            }
        }
    }

    /* match tensors */
    if ((rc = build_wants(m, &wl, err))) goto fail;
    for (int s = 0; s < nshards; s++) {
        for (int i = 0; i < sts[s].n; i++) {
            const cl_st_tensor *t = &sts[s].t[i];
            char *norm = normalise_name(t->name, cl_model_arch(m)->prefix);
            if (!norm) { rc = cl_errf(err, CL_ENOMEM, "out of memory"); goto fail; }
            want_t *w = want_find(&wl, norm);
            if (!w) {
                if (!ignorable(norm) &&
                    (rc = list_add(&p->unexpected, &p->nunexpected, &p->capunexpected, err, "%s", t->name))) {
                    free(norm);
                    goto fail;
                }
                free(norm);
                continue;
            }
            free(norm);
            if (w->src) {
                rc = cl_errf(err, CL_EFORMAT, "%s: tensor '%s' duplicates '%s' of %s (same parameter)", p->files[s],
                             t->name, w->src_name, w->src_file);
                goto fail;
            }
            w->src = t;
            w->src_file = p->files[s];
            w->from_map = s;
            if (!(w->src_name = strdup(t->name))) { rc = cl_errf(err, CL_ENOMEM, "out of memory"); goto fail; }
        }
    }

    /* missing encoder tensors: an error listing them */
    {
        int nmiss = 0;
        char msg[700] = "";
        size_t o = 0;
        for (int i = 0; i < wl.n; i++)
            if (wl.w[i].kind == K_ENC && !wl.w[i].src) {
                if (nmiss < 8 && o < sizeof msg)
                    o += (size_t)snprintf(msg + o, sizeof msg - o, "%s%s", nmiss ? ", " : "", wl.w[i].name);
                nmiss++;
            }
        if (nmiss) {
            rc = cl_errf(err, CL_EMISSING, "%s: %d tensor%s missing from the checkpoint (%s%s)%s", dir, nmiss,
                         nmiss > 1 ? "s" : "", msg, nmiss > 8 ? ", ..." : "",
                         p->nunexpected ? "; it holds unexpected tensors, e.g. a different architecture" : "");
            goto fail;
        }
    }

    /* shapes and dtypes; head label count */
    int64_t Lfile = -1;
    int head_found = 0, head_total = 0, pooler_found = 0;
    for (int i = 0; i < wl.n; i++) {
        want_t *w = &wl.w[i];
        if (w->kind == K_HEAD) head_total++;
        if (!w->src) continue;
        const cl_st_tensor *t = w->src;
        if (w->kind == K_HEAD) {
            head_found++;
            if (w->shape[0] == -1 && t->ndim >= 1 && t->shape[0] >= 1 && t->shape[0] <= 100000) {
                if (Lfile == -1) Lfile = t->shape[0];
                w->shape[0] = Lfile;
            }
        }
        if (w->kind == K_POOLER) pooler_found++;
        int ok = t->ndim == w->ndim;
        for (int d = 0; ok && d < w->ndim; d++) ok = t->shape[d] == w->shape[d];
        if (!ok) {
            char got[128], exp[128];
            fmt_shape(got, sizeof got, t->ndim, t->shape);
            fmt_shape(exp, sizeof exp, w->ndim, w->shape);
            rc = cl_errf(err, CL_ESHAPE,
                         "%s: tensor '%s' has shape %s but config.json (hidden_size %d, intermediate_size %d, "
                         "vocab_size %d, max_position_embeddings %d, type_vocab_size %d, num_attention_heads %d) "
                         "expects %s", w->src_file, t->name, got, c->hidden_size, c->intermediate_size, c->vocab_size,
                         c->max_position, c->type_vocab_size, c->num_heads, exp);
            goto fail;
        }
        if (t->dtype != CL_DT_F32 && t->dtype != CL_DT_F16 && t->dtype != CL_DT_BF16 && t->dtype != CL_DT_F64) {
            rc = cl_errf(err, CL_EUNSUP, "%s: tensor '%s' has dtype %s; only F32, F16, BF16, F64 weights are supported",
                         w->src_file, t->name, cl_dtype_name(t->dtype));
            goto fail;
        }
    }
    if (pooler_found == 1) {
        rc = cl_errf(err, CL_EMISSING, "%s: the pooler is incomplete (%s.weight and .bias go together)", dir,
                     cl_model_arch(m)->pooler);
        goto fail;
    }
    if (head_found && head_found != head_total) {
        char which[256] = "";
        size_t o = 0;
        for (int i = 0; i < wl.n; i++)
            if (wl.w[i].kind == K_HEAD && !wl.w[i].src && o < sizeof which)
                o += (size_t)snprintf(which + o, sizeof which - o, "%s%s", o ? ", " : "", wl.w[i].name);
        rc = cl_errf(err, CL_EMISSING, "%s: the classification head is incomplete: missing %s", dir, which);
        goto fail;
    }

    /* head decision */
    const cl_head_kind hk = cl_model_arch(m)->head;
    const int hk_dense = cl_head_layout_of(hk)->dense != NULL; /* else the pooler is the dense layer */
    int use_file_head = 0, init_head = 0, init_pooler = 0, L = 0;
    if (opts->num_labels > 0) {
        L = opts->num_labels;
        if (head_found && Lfile == L) use_file_head = 1;
        else {
            init_head = 1;
            if (head_found)
                rc = list_add(&p->notes, &p->nnotes, &p->capnotes, err,
                              "the checkpoint's head has %lld labels, %d were asked for: initialised a new head "
                              "(seed %llu)", (long long)Lfile, L, (unsigned long long)opts->head_seed);
            else
                rc = list_add(&p->notes, &p->nnotes, &p->capnotes, err,
                              "no classification head in the checkpoint: initialised a new one for %d labels (seed %llu)",
                              L, (unsigned long long)opts->head_seed);
            if (rc) goto fail;
        }
    } else if (head_found) {
        if (c->num_labels > 0 && c->num_labels != Lfile) {
            rc = cl_errf(err, CL_ESHAPE, "%s: the checkpoint's head has %lld labels but config.json names %d", dir,
                         (long long)Lfile, c->num_labels);
            goto fail;
        }
        use_file_head = 1;
        L = (int)Lfile;
    }
    if ((use_file_head || init_head) && !hk_dense && !pooler_found) {
        const char *pn = cl_model_arch(m)->pooler;
        init_pooler = 1;
        rc = list_add(&p->notes, &p->nnotes, &p->capnotes, err,
                      "no pooler in the checkpoint: initialised %s for the %s head (seed %llu)", pn,
                      cl_model_arch(m)->name, (unsigned long long)opts->head_seed);
        if (!rc) rc = list_add(&p->missing, &p->nmissing, &p->capmissing, err, "%s.weight", pn);
        if (!rc) rc = list_add(&p->missing, &p->nmissing, &p->capmissing, err, "%s.bias", pn);
        if (rc) goto fail;
    }
    if (init_head) {
        for (int i = 0; i < wl.n; i++)
            if (wl.w[i].kind == K_HEAD &&
                (rc = list_add(&p->missing, &p->nmissing, &p->capmissing, err, "%s", wl.w[i].name)))
                goto fail;
    }

    /* arena: converted tensors + initialised ones */
    uint64_t arena_n = 0;
    int n_f32 = 0, n_f16 = 0, n_bf16 = 0, n_f64 = 0;
    for (int i = 0; i < wl.n; i++) {
        want_t *w = &wl.w[i];
        if (!w->src || (w->kind == K_HEAD && !use_file_head)) continue;
        const cl_st_tensor *t = w->src;
        n_f32 += t->dtype == CL_DT_F32;
        n_f16 += t->dtype == CL_DT_F16;
        n_bf16 += t->dtype == CL_DT_BF16;
        n_f64 += t->dtype == CL_DT_F64;
        if (!(t->dtype == CL_DT_F32 && ((uintptr_t)t->data & 3) == 0)) arena_n += round16(t->numel);
    }
    if (init_pooler) arena_n += round16((uint64_t)H * H) + round16((uint64_t)H);
    if (init_head) {
        if (hk_dense) arena_n += round16((uint64_t)H * H) + round16((uint64_t)H);
        arena_n += round16((uint64_t)L * H) + round16((uint64_t)L);
    }
    snprintf(p->rep.dtype, sizeof p->rep.dtype, "%s",
             (n_f32 > 0) + (n_f16 > 0) + (n_bf16 > 0) + (n_f64 > 0) > 1 ? "mixed"
             : n_f16 ? "F16" : n_bf16 ? "BF16" : n_f64 ? "F64" : "F32");
    if (arena_n) {
        p->arena = cl_alloc(arena_n, sizeof(float), err);
        if (!p->arena) { cl_err_prefix(err, "%s", dir); rc = CL_ENOMEM; goto fail; }
    }
    float *ap = p->arena;
    for (int i = 0; i < wl.n; i++) {
        want_t *w = &wl.w[i];
        if (!w->src || (w->kind == K_HEAD && !use_file_head)) continue;
        const cl_st_tensor *t = w->src;
        if (t->dtype == CL_DT_F32 && ((uintptr_t)t->data & 3) == 0) {
            *w->dst = (float *)(uintptr_t)t->data; /* writable: private copy-on-write mapping */
            p->rep.n_inplace++;
        } else {
            if ((rc = cl_st_to_f32(&sts[w->from_map], t, ap, err))) goto fail;
            *w->dst = ap;
            ap += round16(t->numel);
        }
    }
    cl_rng rng;
    cl_rng_seed(&rng, opts->head_seed);
    if (init_pooler) {
        m->pooler.w = ap; ap += round16((uint64_t)H * H);
        m->pooler.b = ap; ap += round16((uint64_t)H);
        fill_normal(&rng, m->pooler.w, (size_t)H * H, 0.02f);
        memset(m->pooler.b, 0, (size_t)H * sizeof(float));
    }
    if (init_head) {
        if (hk_dense) {
            m->head_dense.w = ap; ap += round16((uint64_t)H * H);
            m->head_dense.b = ap; ap += round16((uint64_t)H);
            fill_normal(&rng, m->head_dense.w, (size_t)H * H, 0.02f);
            memset(m->head_dense.b, 0, (size_t)H * sizeof(float));
        } else {
            m->head_dense.w = m->head_dense.b = NULL;
        }
        m->head_out.w = ap; ap += round16((uint64_t)L * H);
        m->head_out.b = ap; ap += round16((uint64_t)L);
        fill_normal(&rng, m->head_out.w, (size_t)L * H, 0.02f);
        memset(m->head_out.b, 0, (size_t)L * sizeof(float));
    }
    if (m->pooler.w) { m->pooler.d_out = H; m->pooler.d_in = H; }
    if (use_file_head || init_head) {
        m->head = hk;
        m->head_from_file = use_file_head;
        m->head_out.d_out = L;
        m->head_out.d_in = H;
        if (hk_dense) { m->head_dense.d_out = H; m->head_dense.d_in = H; }
        set_labels(&m->cfg, L);
    } else {
        m->head = CL_HEAD_NONE;
        m->head_dense.w = m->head_dense.b = m->head_out.w = m->head_out.b = NULL;
    }
    count_params(m);

    if (opts->verbose) {
        for (int i = 0; i < p->nunexpected; i++)
            cl_log(CL_LOG_WARN, "%s: unexpected tensor '%s' (ignored)", dir, p->unexpected[i]);
        for (int i = 0; i < p->nnotes; i++) cl_log(CL_LOG_INFO, "%s: %s", dir, p->notes[i]);
    }
    for (int s = 0; s < nshards; s++) cl_st_close(&sts[s]);
    free(sts);
    list_free(shards, nshards);
    cJSON_Delete(index);
    want_free(&wl);
    return 0;

fail:
    if (sts)
        for (int s = 0; s < nshards; s++) cl_st_close(&sts[s]);
    free(sts);
    list_free(shards, nshards);
    cJSON_Delete(index);
    want_free(&wl);
    cl_model_free(m);
    return rc ? rc : CL_EFORMAT;
}

int cl_model_init_random(cl_weights *m, const cl_config *cfg, cl_head_kind head, int num_labels, uint64_t seed,
                         cl_error *err) {
    memset(m, 0, sizeof *m);
    if (!cfg) return cl_errf(err, CL_EINVAL, "cl_model_init_random: no config");
    if (head != CL_HEAD_NONE && (num_labels <= 0 || num_labels > 100000))
        return cl_errf(err, CL_EINVAL, "cl_model_init_random: a head needs num_labels in 1..100000, got %d", num_labels);
    if (cfg->hidden_size <= 0 || cfg->num_layers <= 0 || cfg->num_heads <= 0 || cfg->intermediate_size <= 0 ||
        cfg->vocab_size <= 0 || cfg->max_position <= 0 || cfg->type_vocab_size < 0 || !cl_arch_get(cfg->arch) ||
        (cl_arch_get(cfg->arch)->type_emb != NULL) != (cfg->type_vocab_size > 0) ||
        cfg->rel_buckets != cl_arch_get(cfg->arch)->rel_buckets ||
        cfg->hidden_size % cfg->num_heads)
        return cl_errf(err, CL_EINVAL, "cl_model_init_random: invalid config sizes");
    m->cfg = *cfg;
    m->cfg.id2label = NULL;
    m->cfg.num_labels = 0;
    if (cfg->id2label && cfg->num_labels > 0 && (head == CL_HEAD_NONE || cfg->num_labels == num_labels)) {
        m->cfg.id2label = calloc((size_t)cfg->num_labels, sizeof(char *));
        if (!m->cfg.id2label) return cl_errf(err, CL_ENOMEM, "out of memory");
        m->cfg.num_labels = cfg->num_labels;
        for (int i = 0; i < cfg->num_labels; i++)
            if (!(m->cfg.id2label[i] = strdup(cfg->id2label[i] ? cfg->id2label[i] : ""))) {
                cl_model_free(m);
                return cl_errf(err, CL_ENOMEM, "out of memory");
            }
    } else if (head == CL_HEAD_NONE) {
        m->cfg.num_labels = cfg->num_labels;
    }
    if (head != CL_HEAD_NONE) m->cfg.num_labels = num_labels;
    priv_t *p = calloc(1, sizeof *p);
    if (!p) { cl_model_free(m); return cl_errf(err, CL_ENOMEM, "out of memory"); }
    m->priv = p;
    const cl_config *c = &m->cfg;
    uint64_t H = (uint64_t)c->hidden_size, I = (uint64_t)c->intermediate_size, L = (uint64_t)num_labels;
    m->layers = calloc((size_t)c->num_layers, sizeof *m->layers);
    if (!m->layers) { cl_model_free(m); return cl_errf(err, CL_ENOMEM, "out of memory for %d layers", c->num_layers); }
    const cl_arch_desc *ad = cl_model_arch(m);
    const cl_head_layout *hl = cl_head_layout_of(head);
    int pooler = ad->pooler_in_seqcls || (hl && !hl->dense);
    uint64_t n = round16((uint64_t)c->vocab_size * H) + round16((uint64_t)c->max_position * H) +
                 round16((uint64_t)c->type_vocab_size * H) + 2 * round16(H) +
                 round16((uint64_t)c->rel_buckets * (uint64_t)c->num_heads);
    uint64_t per = 4 * (round16(H * H) + round16(H)) + round16(I * H) + round16(I) + round16(H * I) + round16(H) +
                   4 * round16(H);
    n += (uint64_t)c->num_layers * per;
    if (pooler) n += round16(H * H) + round16(H);
    if (hl && hl->dense) n += round16(H * H) + round16(H);
    if (hl) n += round16(L * H) + round16(L);
    p->arena = cl_alloc(n, sizeof(float), err);
    if (!p->arena) { cl_model_free(m); return CL_ENOMEM; }
    float *ap = p->arena;
    cl_rng rng;
    cl_rng_seed(&rng, seed);
#define TAKE(ptr, cnt) do { (ptr) = ap; ap += round16(cnt); } while (0)
#define NORMAL(ptr, cnt) do { TAKE(ptr, cnt); fill_normal(&rng, (ptr), (size_t)(cnt), 0.02f); } while (0)
#define CONST(ptr, cnt, v) do { TAKE(ptr, cnt); for (uint64_t _i = 0; _i < (cnt); _i++) (ptr)[_i] = (v); } while (0)
    NORMAL(m->word_emb, (uint64_t)c->vocab_size * H);
    NORMAL(m->pos_emb, (uint64_t)c->max_position * H);
    if (c->type_vocab_size) NORMAL(m->type_emb, (uint64_t)c->type_vocab_size * H);
    /* nn.Embedding(padding_idx=pad) rows are zero after transformers' _init_weights */
    if (c->pad_token_id >= 0 && c->pad_token_id < c->vocab_size)
        memset(m->word_emb + (size_t)c->pad_token_id * H, 0, H * sizeof(float));
    const int ppad = cl_config_position_pad(c);
    if (ppad >= 0 && ppad < c->max_position) memset(m->pos_emb + (size_t)ppad * H, 0, H * sizeof(float));
    CONST(m->emb_ln_w, H, 1.0f);
    CONST(m->emb_ln_b, H, 0.0f);
    for (int l = 0; l < c->num_layers; l++) {
        cl_layer_weights *Lw = &m->layers[l];
        for (int k = 0; k < CL_MOD_COUNT; k++) {
            uint64_t dout = k == CL_MOD_INTER ? I : H, din = k == CL_MOD_OUT ? I : H;
            Lw->lin[k].d_out = (int)dout;
            Lw->lin[k].d_in = (int)din;
            NORMAL(Lw->lin[k].w, dout * din);
            CONST(Lw->lin[k].b, dout, 0.0f);
        }
        CONST(Lw->ln1_w, H, 1.0f);
        CONST(Lw->ln1_b, H, 0.0f);
        CONST(Lw->ln2_w, H, 1.0f);
        CONST(Lw->ln2_b, H, 0.0f);
    }
    if (c->rel_buckets) NORMAL(m->rel_bias, (uint64_t)c->rel_buckets * (uint64_t)c->num_heads);
    if (pooler) {
        NORMAL(m->pooler.w, H * H);
        CONST(m->pooler.b, H, 0.0f);
        m->pooler.d_out = m->pooler.d_in = (int)H;
    }
    if (hl && hl->dense) {
        NORMAL(m->head_dense.w, H * H);
        CONST(m->head_dense.b, H, 0.0f);
        m->head_dense.d_out = m->head_dense.d_in = (int)H;
    }
    if (head != CL_HEAD_NONE) {
        NORMAL(m->head_out.w, L * H);
        CONST(m->head_out.b, L, 0.0f);
        m->head_out.d_out = (int)L;
        m->head_out.d_in = (int)H;
    }
#undef TAKE
#undef NORMAL
#undef CONST
    m->head = head;
    m->head_from_file = 0;
    count_params(m);
    return 0;
}
