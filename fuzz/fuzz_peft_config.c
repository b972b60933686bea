/* libFuzzer target for PEFT adapter_config.json as cl_peft_load reads it (with a fixed, valid adapter_model.safetensors
 * and base model from tests/data/peft): any bytes are either loaded into an adapter that passes its own checks or
 * rejected with a message naming the config file; never a crash, leak, hang or undefined behaviour (hostile regular
 * expressions in target_modules / rank_pattern included). Run from the repository root. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "adapters/peft_io.h"
#include "core/util.h"
#include "model/model.h"

static cl_weights model;
static char dir[256];

static void setup(void) {
    static int done = 0;
    if (done) return;
    done = 1;
    cl_error err = {0};
    cl_load_opts lo = {.num_labels = 2, .head_seed = 1};
    if (cl_model_load(&model, "tests/data/peft/bert", &lo, &err)) {
        fprintf(stderr, "fuzz_peft_config: %s (run from the repository root)\n", err.msg);
        exit(1);
    }
    snprintf(dir, sizeof dir, "/tmp/fuzz_peft_%d", (int)getpid());
    if (cl_mkdir_p(dir, &err)) exit(1);
    char *st = NULL, p[400];
    size_t n = 0;
    if (cl_read_file("tests/data/peft/bert_lora/adapter_model.safetensors", &st, &n, &err)) exit(1);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    if (cl_atomic_write(p, st, n, &err)) exit(1);
    free(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    char p[400];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    if (size) fwrite(data, 1, size, f);
    fclose(f);
    cl_peft *pf = NULL;
    cl_error err = {0};
    if (cl_peft_load(&pf, dir, &model, &err) == 0) {
        cl_peft_free(pf);
    } else if (!strstr(err.msg, dir)) {
        fprintf(stderr, "message without the directory: %s\n", err.msg);
        abort();
    }
    return 0;
}
