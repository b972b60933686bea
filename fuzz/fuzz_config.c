/* libFuzzer target for the config.json reader: any byte string is either accepted with every field in its
 * documented range or rejected with a message naming the file; never a crash, leak or undefined behaviour. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cl_config c;
    cl_error err = {0};
    if (cl_config_parse(&c, (const char *)data, size, "fuzz/config.json", &err) == 0) {
        if (c.hidden_size <= 0 || c.hidden_size % c.num_heads || c.num_layers <= 0 || c.num_layers > 1000 ||
            c.vocab_size <= 0 || c.vocab_size > 10000000 || c.intermediate_size <= 0 || c.max_position <= 0 ||
            c.type_vocab_size <= 0 || !(c.layer_norm_eps > 0) || c.pad_token_id >= c.vocab_size ||
            c.num_labels < 0 || (c.id2label && c.num_labels <= 0))
            abort();
        for (int i = 0; c.id2label && i < c.num_labels; i++)
            if (!c.id2label[i]) abort();
        (void)cl_config_n_params_encoder(&c);
        cl_config_free(&c);
    } else if (!strstr(err.msg, "fuzz/config.json")) {
        abort();
    }
    return 0;
}
