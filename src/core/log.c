/* Logging (see log.h). */
#include "core/log.h"
#include <stdarg.h>
#include <stdio.h>

static cl_log_callback g_cb;
static void *g_user;

void cl_log_set(cl_log_callback cb, void *user_data) {
    g_cb = cb;
    g_user = user_data;
}

void cl_log(cl_log_level level, const char *fmt, ...) {
    cl_log_callback cb = g_cb;
    if (!cb) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cb(level, msg, g_user);
}
