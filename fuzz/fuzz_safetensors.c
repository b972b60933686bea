/* libFuzzer target for the safetensors reader: any byte string is either accepted (and then every tensor lies
 * inside the buffer and converts, when floating, without reading past it) or rejected with CL_EFORMAT and a
 * message; never a crash, leak or undefined behaviour. Seeds: fuzz/corpus/fuzz_safetensors (written by
 * scripts/gen_safetensors_refs.py: small valid files from Python and the malformed corpus). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy with no slack after it, so ASan catches any read past the end */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    cl_safetensors st;
    cl_error err = {0};
    int rc = cl_st_open_memory(&st, buf, size, "fuzz", &err);
    if (rc == 0) {
        for (int i = 0; i < st.n; i++) {
            const cl_st_tensor *t = &st.t[i];
            if (t->data < buf + 8 || t->data + (t->end - t->begin) > buf + size) __builtin_trap();
            if (cl_st_find(&st, t->name) == NULL) __builtin_trap();
            if ((t->dtype == CL_DT_F32 || t->dtype == CL_DT_F16 || t->dtype == CL_DT_BF16 || t->dtype == CL_DT_F64) &&
                t->numel <= (1u << 16)) {
                float *out = malloc((size_t)t->numel * sizeof *out + 1);
                if (out && cl_st_to_f32(&st, t, out, &err) != 0) __builtin_trap();
                free(out);
            }
        }
        for (int i = 0; i < st.nmeta; i++)
            if (cl_st_meta(&st, st.meta_keys[i]) == NULL) __builtin_trap();
    } else if (rc != CL_EFORMAT && rc != CL_ENOMEM) {
        __builtin_trap();
    } else if (err.msg[0] == 0 || strstr(err.msg, "fuzz") == NULL) {
        __builtin_trap(); /* every rejection carries a message naming the input */
    }
    cl_st_close(&st);
    free(buf);
    return 0;
}
