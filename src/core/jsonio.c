#include "core/jsonio.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "core/util.h"

int cl_json_save(const cJSON *root, const char *path, cl_error *err) {
    char *s = root ? cJSON_Print(root) : NULL;
    if (!s) return cl_errf(err, CL_ENOMEM, "%s: out of memory", path);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return cl_errf(err, CL_ENOMEM, "%s: out of memory", path);
    }
    t[n] = '\n';
    int rc = cl_atomic_write(path, t, n + 1, err);
    free(t);
    return rc;
}
