/* Errors: every library function that can fail takes a cl_error * and returns a non-zero cl_status on failure,
 * with a message that names the file and the place (tensor name, byte offset, TSV line). The library never
 * exit()s or abort()s on bad input; the CLI prints err.msg and exits non-zero. */
#ifndef CL_ERROR_H
#define CL_ERROR_H
#include <stddef.h>
#include "condlora.h" /* cl_status, cl_status_name */


#define CL_ERRMSG_MAX 1024
typedef struct {
    cl_status code;
    char msg[CL_ERRMSG_MAX];
} cl_error;

/* Sets err (if not NULL) to code and the formatted message; returns code. */
int cl_errf(cl_error *err, cl_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to an existing message (to add context on the way up). */
int cl_err_prefix(cl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cl_err_clear(cl_error *err);

#endif
