/* Loading reference tensors that scripts/ wrote with Python's safetensors into test buffers. */
#ifndef CL_TEST_REF_H
#define CL_TEST_REF_H
#include "io/safetensors.h"
#include "test.h"

/* Fills out[n] with the tensor NAME converted to fp32; a missing tensor or another size counts as a failed check. */
static inline int ref_load(const cl_safetensors *st, const char *name, float *out, size_t n) {
    const cl_st_tensor *t = cl_st_find(st, name);
    cl_error err = {0};
    if (!t || t->numel != n || cl_st_to_f32(st, t, out, &err)) {
        CHECK(0, "reference tensor %s missing or of another size (%s)", name, err.msg);
        return -1;
    }
    return 0;
}

#endif
