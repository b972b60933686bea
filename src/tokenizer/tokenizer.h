/* Tokenizers that give exactly Hugging Face `tokenizers`' ids: byte-level BPE (GPT-2 / RoBERTa) and WordPiece
 * (BERT), loaded from a directory of tokenizer files.
 *
 * Loading (cl_tokenizer_load) looks in DIR for, in order:
 *   tokenizer.json            a Hugging Face tokenizer file; model type "BPE" (with a ByteLevel pre-tokenizer) or
 *                             "WordPiece" (BertNormalizer + BertPreTokenizer); its added tokens (lstrip/rstrip and
 *                             normalized flags honoured) and post-processor (RobertaProcessing, BertProcessing or
 *                             TemplateProcessing) are used. Its "truncation"/"padding" sections are ignored: the
 *                             caller gives max_length.
 *   vocab.json + merges.txt   byte-level BPE as RobertaTokenizerFast builds it: special tokens <s> <pad> </s> <unk>
 *                             <mask> (<mask> absorbs the whitespace before it), `<s> A </s>` / `<s> A </s></s> B </s>`.
 *   vocab.txt                 WordPiece as BertTokenizerFast builds it: uncased (lowercase + strip accents) unless
 *                             tokenizer_config.json says "do_lower_case": false; `[CLS] A [SEP] B [SEP]`.
 *
 * Input text is UTF-8. Invalid UTF-8 is replaced by U+FFFD, one per maximal ill-formed subsequence (the same policy
 * as Python's bytes.decode("utf-8", "replace")), so every byte sequence is accepted and nothing crashes. Note that
 * BERT's normalizer then drops U+FFFD, as Hugging Face's does.
 *
 * Truncation follows `tokenizers`' "longest_first" strategy exactly (HF `tokenizer(a, b, truncation=True,
 * max_length=N)`): the special tokens are subtracted from N first; with a pair the longer sequence loses tokens
 * first, and when both must lose, they are cut to N/2 each (the longer one, or B on a tie, keeps the odd token).
 * Like `tokenizers`, a max_length smaller than the number of special tokens truncates nothing.
 *
 * Thread safety: a loaded cl_tokenizer is read-only; cl_tokenizer_encode may run concurrently on one tokenizer as long
 * as each thread passes its own cl_tok_encoding (which holds the scratch buffers and the BPE word cache).
 */
#ifndef CL_TOKENIZER_H
#define CL_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

typedef enum { CL_TOK_WORDPIECE = 1, CL_TOK_BPE = 2 } cl_tok_kind;

typedef struct cl_tokenizer cl_tokenizer;

/* The result of an encode, reused across calls: initialise with {0} (or cl_tok_encoding_init), free with
 * cl_tok_encoding_free. ids/type_ids stay valid until the next encode into the same struct. */
typedef struct {
    int32_t *ids;      /* len token ids, special tokens included */
    int32_t *type_ids; /* len token type ids: 0 for A and its specials, 1 for B in BERT; all 0 in RoBERTa */
    int len;
    int len_a, len_b;  /* content tokens of A and B kept after truncation (specials not counted) */
    int truncated;     /* 1 when tokens were dropped to fit max_length */
    int cap;
    void *work;        /* private: scratch buffers and the BPE word cache */
} cl_tok_encoding;

int cl_tokenizer_load(cl_tokenizer **out, const char *dir, cl_error *err);
void cl_tokenizer_free(cl_tokenizer *t);

void cl_tok_encoding_init(cl_tok_encoding *e);
void cl_tok_encoding_free(cl_tok_encoding *e);

/* Encodes text A (alen bytes) or the pair A, B (b != NULL) with the special tokens of the post-processor.
 * max_length <= 0: no truncation. Texts need not be NUL-terminated and may contain NUL bytes. An empty B is no
 * pair, as in transformers' tokenizer(a, "") (its falsy text_pair). */
int cl_tokenizer_encode(const cl_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                        int max_length, cl_tok_encoding *enc, cl_error *err);
/* The same for NUL-terminated strings (b may be NULL). */
int cl_tokenizer_encode_str(const cl_tokenizer *t, const char *a, const char *b, int max_length,
                            cl_tok_encoding *enc, cl_error *err);
/* Ids of one text without special tokens or truncation (appended to enc, which is overwritten). */
int cl_tokenizer_encode_raw(const cl_tokenizer *t, const char *a, size_t alen, cl_tok_encoding *enc, cl_error *err);

/* Decodes ids to text like `tokenizers`' decode (ByteLevel or WordPiece decoder); skip_special drops special tokens.
 * *out is a NUL-terminated heap string (free()). Unknown ids are an error. */
int cl_tokenizer_decode(const cl_tokenizer *t, const int32_t *ids, int n, int skip_special, char **out,
                        cl_error *err);

cl_tok_kind cl_tokenizer_kind(const cl_tokenizer *t);
int cl_tokenizer_vocab_size(const cl_tokenizer *t); /* largest id + 1 (the embedding rows the model needs) */
int cl_tokenizer_pad_id(const cl_tokenizer *t);     /* -1 when the tokenizer has none */
int cl_tokenizer_cls_id(const cl_tokenizer *t);     /* [CLS] or <s> */
int cl_tokenizer_sep_id(const cl_tokenizer *t);     /* [SEP] or </s> */
int cl_tokenizer_unk_id(const cl_tokenizer *t);
int cl_tokenizer_mask_id(const cl_tokenizer *t);
/* Number of special tokens the post-processor adds to a single text (pair = 0) or a pair (pair = 1). */
int cl_tokenizer_num_special(const cl_tokenizer *t, int pair);
int cl_tokenizer_token_to_id(const cl_tokenizer *t, const char *token); /* -1 if absent */
const char *cl_tokenizer_id_to_token(const cl_tokenizer *t, int id);   /* NULL if absent; not NUL-safe */

#endif
