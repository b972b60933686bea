/* condlora tokenize: prints the token ids of each input line (a text, or two tab-separated texts with --pair). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f, "usage: condlora tokenize --tokenizer DIR [--pair] [--max-length N] [--type-ids] < FILE\n\n"
               "Reads lines from standard input (one text per line, or two tab-separated texts with --pair) and\n"
               "prints the token ids of each line, space-separated, one output line per input line, special tokens\n"
               "included. DIR holds tokenizer.json, or vocab.json + merges.txt (byte-level BPE, RoBERTa), or\n"
               "vocab.txt (WordPiece, BERT). --max-length truncates as Hugging Face's longest_first does.\n"
               "--type-ids adds a tab and the token type ids. Invalid UTF-8 is replaced by U+FFFD.\n");
}

static char *put_int(char *p, int v) {
    char tmp[12];
    int n = 0;
    unsigned u = v < 0 ? (unsigned)(-(long)v) : (unsigned)v;
    if (v < 0) *p++ = '-';
    do { tmp[n++] = (char)('0' + u % 10); u /= 10; } while (u);
    while (n) *p++ = tmp[--n];
    return p;
}

int cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL;
    int pair = 0, max_len = 0, type_ids = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--pair")) pair = 1;
        else if (!strcmp(argv[i], "--type-ids")) type_ids = 1;
        else if (!strcmp(argv[i], "--max-length") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1000000000) {
                fprintf(stderr, "condlora tokenize: --max-length must be a positive integer, not '%s'\n", argv[i]);
                return 2;
            }
            max_len = (int)v;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        else { fprintf(stderr, "condlora tokenize: unknown or incomplete option '%s'\n", argv[i]); usage(stderr); return 2; }
    }
    if (!dir) { fprintf(stderr, "condlora tokenize: --tokenizer DIR is required\n"); usage(stderr); return 2; }
    cl_error err = {0};
    cl_tokenizer *tok;
    if (cl_tokenizer_load(&tok, dir, &err)) { fprintf(stderr, "condlora tokenize: %s\n", err.msg); return 1; }
    cl_tok_encoding enc = {0};
    char *line = NULL, *out = NULL;
    size_t cap = 0, out_cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n') n--;
        const char *b = NULL;
        size_t alen = (size_t)n, blen = 0;
        if (pair) {
            char *tab = memchr(line, '\t', (size_t)n);
            if (!tab) {
                fprintf(stderr, "condlora tokenize: stdin line %ld: --pair needs two tab-separated texts\n", lineno);
                rc = 1;
                break;
            }
            alen = (size_t)(tab - line);
            b = tab + 1;
            blen = (size_t)n - alen - 1;
        }
        if (cl_tokenizer_encode(tok, line, alen, b, blen, max_len, &enc, &err)) {
            fprintf(stderr, "condlora tokenize: stdin line %ld: %s\n", lineno, err.msg);
            rc = 1;
            break;
        }
        size_t need = (size_t)enc.len * 24 + 4;
        if (need > out_cap) {
            char *p = realloc(out, need);
            if (!p) { fprintf(stderr, "condlora tokenize: out of memory\n"); rc = 1; break; }
            out = p;
            out_cap = need;
        }
        char *p = out;
        for (int i = 0; i < enc.len; i++) {
            if (i) *p++ = ' ';
            p = put_int(p, enc.ids[i]);
        }
        if (type_ids) {
            *p++ = '\t';
            for (int i = 0; i < enc.len; i++) {
                if (i) *p++ = ' ';
                p = put_int(p, enc.type_ids[i]);
            }
        }
        *p++ = '\n';
        fwrite(out, 1, (size_t)(p - out), stdout);
    }
    if (fflush(stdout)) { fprintf(stderr, "condlora tokenize: write error\n"); rc = 1; }
    free(line);
    free(out);
    cl_tok_encoding_free(&enc);
    cl_tokenizer_free(tok);
    return rc;
}
