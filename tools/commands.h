/* One function per CLI sub-command, each in tools/cmd_<name>.c; tools/condlora.c dispatches. */
#ifndef CL_COMMANDS_H
#define CL_COMMANDS_H
#include "core/error.h"

/* The exit status of a failed library call, as the README documents it: 2 for a usage error (an option's value is
 * invalid: CL_EUSAGE), 1 for every other error (files, data, models, the machine). */
static inline int cl_exit_status(const cl_error *e) { return e && e->code == CL_EUSAGE ? 2 : 1; }

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the sub-command name */
    const char *summary;
} cl_command;

/* Sub-commands (declare yours here and add it to the table in tools/condlora.c). */
int cmd_analyze(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_split(int argc, char **argv);

#endif
