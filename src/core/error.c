#include "error.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cl_errf(cl_error *err, cl_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return (int)code;
}

int cl_err_prefix(cl_error *err, const char *fmt, ...) {
    if (!err) return 0;
    char prefix[CL_ERRMSG_MAX], old[CL_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t k = strnlen(prefix, sizeof err->msg - 3); /* the prefix, ": ", then as much of the old message as fits */
    memcpy(err->msg, prefix, k);
    memcpy(err->msg + k, ": ", 2);
    size_t room = sizeof err->msg - k - 3, lo = strnlen(old, room);
    memcpy(err->msg + k + 2, old, lo);
    err->msg[k + 2 + lo] = 0;
    return (int)err->code;
}

void cl_err_clear(cl_error *err) {
    if (err) { err->code = CL_OK; err->msg[0] = 0; }
}

const char *cl_status_name(cl_status s) {
    switch (s) {
    case CL_OK: return "ok";
    case CL_EINVAL: return "invalid argument";
    case CL_EIO: return "I/O error";
    case CL_EFORMAT: return "malformed input";
    case CL_ESHAPE: return "shape mismatch";
    case CL_ENOMEM: return "out of memory";
    case CL_EMISSING: return "missing";
    case CL_EUNSUP: return "unsupported";
    case CL_EUSAGE: return "usage";
    }
    return "unknown error";
}
