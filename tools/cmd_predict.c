/* condlora predict: logits of a sequence-classification model for every row of a TSV file. */
#include <cblas.h>
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "core/util.h"
#include "model/encoder.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: condlora predict --model DIR --input FILE.tsv [--text-columns C | C1,C2] [--output OUT.tsv]\n"
            "                        [--skip-header] [--ids] [--tokenizer DIR] [--max-length N] [--batch B]\n"
            "                        [--threads K]\n"
            "Writes one line per input row: the model's logits, tab-separated (one value for a regression head).\n"
            "  --model DIR         a model directory with a classification head (config.json + model.safetensors)\n"
            "  --text-columns      0-based tab-separated column(s) holding the text, or the two texts of a pair\n"
            "                      (default 0)\n"
            "  --skip-header       ignore the first line of the input\n"
            "  --ids               the columns hold token ids (space-separated, special tokens included) instead of\n"
            "                      text; the ids of a pair are concatenated, BERT token types 0 then 1\n"
            "  --tokenizer DIR     tokenizer files (default: the model directory)\n"
            "  --max-length N      truncate to N tokens (default: the model's positions, at most 512)\n"
            "  --batch B           sequences per forward (default 32)\n");
}

typedef struct {
    int32_t *ids, *types;
    int n, cap;
} seq;

static int seq_push(seq *s, int32_t id, int32_t type) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 64;
        int32_t *a = realloc(s->ids, (size_t)nc * 4), *b = a ? realloc(s->types, (size_t)nc * 4) : NULL;
        if (a) s->ids = a;
        if (b) s->types = b;
        if (!a || !b) return -1;
        s->cap = nc;
    }
    s->ids[s->n] = id;
    s->types[s->n++] = type;
    return 0;
}

/* the k-th tab-separated field of line (in place: fields are NUL-terminated by the caller's split) */
static int split_tabs(char *line, char **f, int maxf) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p; p++)
        if (*p == '\t') {
            *p = 0;
            if (n < maxf) f[n++] = p + 1;
            else return -1;
        }
    return n;
}

static int parse_ids(const char *s, seq *out, int32_t type, const char *file, long line, cl_error *err) {
    const char *p = s;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 0x7fffffff || (*end && *end != ' '))
            return cl_errf(err, CL_EFORMAT, "%s:%ld: '%.32s' is not a token id", file, line, p);
        if (seq_push(out, (int32_t)v, type)) return cl_errf(err, CL_ENOMEM, "out of memory");
        p = end;
    }
    return 0;
}

int cmd_predict(int argc, char **argv) {
    const char *model_dir = NULL, *input = NULL, *output = NULL, *tokdir = NULL, *cols = "0";
    int use_ids = 0, skip_header = 0, batch = 32, max_len = 0, threads = 0;
    static const struct option lo[] = {
        {"model", 1, 0, 'm'},  {"input", 1, 0, 'i'},       {"output", 1, 0, 'o'},     {"text-columns", 1, 0, 'c'},
        {"ids", 0, 0, 'I'},    {"skip-header", 0, 0, 'H'}, {"tokenizer", 1, 0, 'k'},  {"max-length", 1, 0, 'x'},
        {"batch", 1, 0, 'b'},  {"threads", 1, 0, 't'},     {"help", 0, 0, 'h'},       {0, 0, 0, 0}};
    int c, li = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, &li)) != -1) {
        if (c == 'x' || c == 'b' || c == 't') {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < (c == 't' ? 0 : 1) || v > 1000000) {
                fprintf(stderr, "condlora predict: option --%s: '%s' is not a valid count\n", lo[li].name, optarg);
                return 2;
            }
            if (c == 'x') max_len = (int)v;
            else if (c == 'b') batch = (int)v;
            else threads = (int)v;
            continue;
        }
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case 'c': cols = optarg; break;
        case 'I': use_ids = 1; break;
        case 'H': skip_header = 1; break;
        case 'k': tokdir = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model_dir || !input || optind < argc) {
        if (optind < argc) fprintf(stderr, "condlora predict: unexpected argument '%s'\n", argv[optind]);
        else fprintf(stderr, "condlora predict: --model and --input are required\n");
        usage(stderr);
        return 2;
    }
    int col[2] = {0, -1}, ncol;
    {
        char *end;
        long a = strtol(cols, &end, 10), b = -1;
        if (end != cols && *end == ',') {
            char *e2;
            b = strtol(end + 1, &e2, 10);
            if (e2 == end + 1 || *e2) a = -1;
        } else if (end == cols || *end) a = -1;
        if (a < 0 || a > 1000 || (b != -1 && (b < 0 || b > 1000))) {
            fprintf(stderr, "condlora predict: option --text-columns: '%s' is not C or C1,C2 (0-based)\n", cols);
            return 2;
        }
        col[0] = (int)a;
        col[1] = (int)b;
        ncol = b >= 0 ? 2 : 1;
    }
    if (threads > 0) {
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }
    cl_error err = {0};
    cl_model m;
    cl_load_opts mo = {0};
    if (cl_model_load(&m, model_dir, &mo, &err)) {
        fprintf(stderr, "condlora predict: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    cl_tokenizer *tok = NULL;
    cl_encoder *enc = NULL;
    char *text = NULL;
    seq *seqs = NULL;
    int32_t *ids = NULL, *types = NULL, *lens = NULL;
    cl_tok_encoding te;
    cl_tok_encoding_init(&te);
    cl_atomic_file af = {0};
    FILE *out = stdout;
    if (m.head == CL_HEAD_NONE || !m.head_from_file) {
        fprintf(stderr, "condlora predict: %s holds no classification head (classifier.* tensors)\n", model_dir);
        goto done;
    }
    int maxpos = m.cfg.max_position - (m.cfg.arch == CL_ARCH_ROBERTA ? m.cfg.pad_token_id + 1 : 0);
    if (maxpos > 512) maxpos = 512;
    if (max_len <= 0 || max_len > maxpos) max_len = maxpos;
    if (!use_ids && cl_tokenizer_load(&tok, tokdir ? tokdir : model_dir, &err)) {
        fprintf(stderr, "condlora predict: %s (or pass --ids with pre-tokenized input)\n", err.msg);
        goto done;
    }
    size_t tlen;
    if (cl_read_file(input, &text, &tlen, &err)) {
        fprintf(stderr, "condlora predict: %s\n", err.msg);
        goto done;
    }
    if (cl_encoder_new(&enc, &m, batch, max_len, 0, &err)) {
        fprintf(stderr, "condlora predict: %s\n", err.msg);
        goto done;
    }
    seqs = calloc((size_t)batch, sizeof *seqs);
    ids = malloc((size_t)batch * max_len * 4);
    types = malloc((size_t)batch * max_len * 4);
    lens = malloc((size_t)batch * 4);
    if (!seqs || !ids || !types || !lens) {
        fprintf(stderr, "condlora predict: out of memory\n");
        goto done;
    }
    if (output) {
        if (cl_atomic_open(&af, output, &err)) {
            fprintf(stderr, "condlora predict: %s\n", err.msg);
            goto done;
        }
        out = af.f;
    }
    const int L = m.head_out.d_out, bert_types = m.cfg.type_vocab_size > 1;
    char *p = text, *endt = text + tlen;
    long lineno = 0;
    int nb = 0, failed = 0;
    while (!failed && (p < endt || nb > 0)) {
        /* fill a batch */
        while (p < endt && nb < batch) {
            char *nl = memchr(p, '\n', (size_t)(endt - p));
            char *line = p;
            if (nl) *nl = 0;
            p = nl ? nl + 1 : endt;
            lineno++;
            size_t ll = strlen(line);
            if (ll && line[ll - 1] == '\r') line[--ll] = 0;
            if ((lineno == 1 && skip_header) || (!ll && p >= endt)) continue;
            char *f[1024];
            int nf = split_tabs(line, f, 1024);
            int need = (col[0] > col[1] ? col[0] : col[1]) + 1;
            if (nf < need) {
                fprintf(stderr, "condlora predict: %s:%ld: %d column(s), --text-columns needs column %d\n", input,
                        lineno, nf < 0 ? 1024 : nf, need - 1);
                failed = 1;
                break;
            }
            seq *s = &seqs[nb];
            s->n = 0;
            if (use_ids) {
                for (int k = 0; k < ncol && !failed; k++)
                    if (parse_ids(f[col[k]], s, bert_types ? k : 0, input, lineno, &err)) failed = 1;
                if (!failed && s->n == 0) {
                    cl_errf(&err, CL_EFORMAT, "%s:%ld: no token ids", input, lineno);
                    failed = 1;
                }
                if (!failed && s->n > max_len) s->n = max_len;
            } else {
                if (cl_tokenizer_encode_str(tok, f[col[0]], ncol == 2 ? f[col[1]] : NULL, max_len, &te, &err)) {
                    cl_err_prefix(&err, "%s:%ld", input, lineno);
                    failed = 1;
                }
                for (int i = 0; !failed && i < te.len && i < max_len; i++)
                    if (seq_push(s, te.ids[i], bert_types ? te.type_ids[i] : 0)) {
                        cl_errf(&err, CL_ENOMEM, "out of memory");
                        failed = 1;
                    }
            }
            if (failed) {
                fprintf(stderr, "condlora predict: %s\n", err.msg);
                break;
            }
            nb++;
        }
        if (failed || nb == 0) break;
        int T = 1;
        for (int b = 0; b < nb; b++) T = seqs[b].n > T ? seqs[b].n : T;
        for (int b = 0; b < nb; b++) {
            lens[b] = seqs[b].n;
            for (int t = 0; t < T; t++) {
                ids[b * T + t] = t < seqs[b].n ? seqs[b].ids[t] : m.cfg.pad_token_id;
                types[b * T + t] = t < seqs[b].n ? seqs[b].types[t] : 0;
            }
        }
        cl_batch bt = {ids, bert_types ? types : NULL, lens, nb, T};
        const float *logits;
        if (cl_encoder_forward(enc, &bt, NULL, &logits, NULL, &err)) {
            fprintf(stderr, "condlora predict: %s: batch ending at line %ld: %s\n", input, lineno, err.msg);
            failed = 1;
            break;
        }
        for (int b = 0; b < nb; b++)
            for (int j = 0; j < L; j++) fprintf(out, "%.7g%c", logits[b * L + j], j + 1 < L ? '\t' : '\n');
        nb = 0;
    }
    if (failed) {
        if (output) cl_atomic_abort(&af);
        goto done;
    }
    if (output) {
        if (cl_atomic_commit(&af, &err)) {
            fprintf(stderr, "condlora predict: %s\n", err.msg);
            goto done;
        }
    } else if (fflush(stdout)) {
        fprintf(stderr, "condlora predict: cannot write the output\n");
        goto done;
    }
    rc = 0;
done:
    if (seqs)
        for (int b = 0; b < batch; b++) free(seqs[b].ids), free(seqs[b].types);
    free(seqs), free(ids), free(types), free(lens), free(text);
    cl_tok_encoding_free(&te);
    cl_tokenizer_free(tok);
    cl_encoder_free(enc);
    cl_model_free(&m);
    return rc;
}
