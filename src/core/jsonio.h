/* JSON files written the one way the project writes them: cJSON's pretty print plus a newline, crash-safe
 * (temporary file, fsync, rename; see cl_atomic_write). */
#ifndef CL_JSONIO_H
#define CL_JSONIO_H
#include "core/error.h"

struct cJSON;
int cl_json_save(const struct cJSON *root, const char *path, cl_error *err);

#endif
