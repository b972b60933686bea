/* Logging: the library prints nothing. What it has to say (a model file's ignored tensors, notes while resuming) goes
 * to the callback set by cl_log_set (the public API's, include/condlora.h), or nowhere when none is set. The CLI
 * sets one that writes "condlora: MESSAGE" to stderr. */
#ifndef CL_LOG_H
#define CL_LOG_H

#include "condlora.h" /* cl_log_level, cl_log_callback, cl_log_set (process-wide, as llama_log_set) */

void cl_log(cl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
