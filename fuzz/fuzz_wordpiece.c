/* libFuzzer target: arbitrary bytes through the WordPiece (BERT) tokenizer, loaded once from $CL_TOKENIZER_DIR or
 * ../shared/data/tokenizers/bert-base-uncased (run from the repository root). */
#define FUZZ_NAME "fuzz_wordpiece"
#define FUZZ_TOKENIZER_DIR "../shared/data/tokenizers/bert-base-uncased"
#include "tokenizer_target.h"
