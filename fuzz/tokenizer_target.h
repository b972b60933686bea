/* The body shared by the two tokenizer fuzz targets: arbitrary bytes as single texts and pairs (split at the first
 * tab), truncated to a max length taken from the first byte, then decoded. Define FUZZ_NAME and FUZZ_TOKENIZER_DIR
 * (the default tokenizer directory, overridden by $CL_TOKENIZER_DIR) before including it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tokenizer/tokenizer.h"

static cl_tokenizer *tok;
static cl_tok_encoding enc;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *dir = getenv("CL_TOKENIZER_DIR");
    if (!dir) dir = FUZZ_TOKENIZER_DIR;
    cl_error err = {0};
    if (cl_tokenizer_load(&tok, dir, &err)) {
        fprintf(stderr, FUZZ_NAME ": %s\n", err.msg);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int max_length = data[0] & 0x80 ? 0 : data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    const char *tab = data[0] & 0x40 ? memchr(s, '\t', n) : NULL;
    cl_error err = {0};
    int rc = tab ? cl_tokenizer_encode(tok, s, (size_t)(tab - s), tab + 1, n - (size_t)(tab - s) - 1, max_length,
                                       &enc, &err)
                 : cl_tokenizer_encode(tok, s, n, NULL, 0, max_length, &enc, &err);
    if (rc) { fprintf(stderr, "encode failed: %s\n", err.msg); abort(); }
    if (max_length >= cl_tokenizer_num_special(tok, tab != NULL) && max_length > 0 && enc.len > max_length) abort();
    for (int i = 0; i < enc.len; i++)
        if (enc.ids[i] < 0 || enc.ids[i] >= cl_tokenizer_vocab_size(tok)) abort();
    char *text = NULL;
    if (cl_tokenizer_decode(tok, enc.ids, enc.len, data[0] & 1, &text, &err)) abort();
    free(text);
    return 0;
}
