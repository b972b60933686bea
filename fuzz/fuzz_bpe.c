/* libFuzzer target: arbitrary bytes through the byte-level BPE (RoBERTa) tokenizer, loaded once from $CL_TOKENIZER_DIR or
 * ../shared/data/tokenizers/roberta-base (run from the repository root). */
#define FUZZ_NAME "fuzz_bpe"
#define FUZZ_TOKENIZER_DIR "../shared/data/tokenizers/roberta-base"
#include "tokenizer_target.h"
