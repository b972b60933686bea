/* The CLI's exit statuses, as the README documents them (0 ok, 1 error, 2 usage error), walked over every
 * sub-command: no arguments, an unknown option, --help, option values that are invalid in themselves (2), inputs
 * that are missing or bad (1); and no message shows a source location (file.c:LINE). */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test.h"

static const char *BIN;

/* runs BIN with the NULL-terminated args, stdin from /dev/null; stderr into buf; returns the exit status (-1 when
 * killed by a signal) */
static int run(char *const *args, char *buf, size_t n) {
    char errf[] = "/tmp/cl_test_cli_XXXXXX";
    int fd = mkstemp(errf);
    if (fd < 0) return -2;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 2);
        if (!freopen("/dev/null", "r", stdin) || !freopen("/dev/null", "w", stdout)) _exit(126);
        char *argv[32];
        int k = 0;
        argv[k++] = (char *)BIN;
        for (int i = 0; args[i] && k < 31; i++) argv[k++] = args[i];
        argv[k] = NULL;
        execv(BIN, argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ssize_t got = pread(fd, buf, n - 1, 0);
    buf[got > 0 ? got : 0] = 0;
    close(fd);
    unlink(errf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static regex_t srcloc;

static void expect(int want, const char *needle, char *const *args) {
    char buf[8192], what[512] = "";
    for (int i = 0; args[i]; i++) snprintf(what + strlen(what), sizeof what - strlen(what), " %s", args[i]);
    int st = run(args, buf, sizeof buf);
    CHECK(st == want, "condlora%s: exit %d, want %d (%.300s)", what, st, want, buf);
    if (needle) CHECK(strstr(buf, needle) != NULL, "condlora%s: '%s' not in: %.300s", what, needle, buf);
    CHECK(regexec(&srcloc, buf, 0, NULL, 0) != 0, "condlora%s: a source location in: %.300s", what, buf);
}

#define E(want, needle, ...) expect(want, needle, (char *const[]){__VA_ARGS__, NULL})

TEST(every_subcommand) {
    const char *cmds[] = {"train", "eval", "predict", "merge", "tokenize", "inspect", "analyze", "bench"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *c = (char *)cmds[i];
        E(0, NULL, c, "--help");
        E(2, NULL, c, "--no-such-option");
        if (strcmp(c, "bench")) E(2, NULL, c); /* bench alone runs a benchmark */
    }
    E(2, NULL, "no-such-command");
    E(2, NULL, "");
    E(0, NULL, "--help");
}

TEST(usage_errors_exit_2) {
    char *M = "tests/data/encoder/bert_cls", *D = "tests/data/glue";
    /* train: option values invalid in themselves, however the rest of the command line looks */
    E(2, "option --lr", "train", "--model", M, "--task", "SST-2", "--data", D, "--out", "/tmp/x", "--lr", "0");
    E(2, "option --lr", "train", "--model", M, "--task", "SST-2", "--data", D, "--out", "/tmp/x", "--lr", "nan");
    E(2, "unknown GLUE task", "train", "--model", M, "--task", "NOPE", "--data", D, "--out", "/tmp/x");
    E(2, "option --batch-size", "train", "--model", M, "--task", "SST-2", "--data", D, "--out", "/tmp/x",
      "--batch-size", "0");
    E(2, "option --max-length", "train", "--model", M, "--task", "SST-2", "--data", D, "--out", "/tmp/x",
      "--max-length", "1");
    E(2, "protocol", "train", "--model", M, "--task", "SST-2", "--data", D, "--out", "/tmp/x", "--protocol", "x");
    E(2, "method", "train", "--method", "nope", "--model", M, "--task", "SST-2", "--data", D, "--out", "/tmp/x");
    E(2, "option --model", "train", "--task", "SST-2", "--data", D, "--out", "/tmp/x");
    E(2, "precision", "train", "--model", M, "--task", "SST-2", "--data", D, "--out", "/tmp/x", "--precision", "x");
    E(2, "--epochs", "train", "--model", M, "--task", "SST-2", "--data", D, "--out", "/tmp/x", "--epochs", "0");
    /* predict */
    E(2, "option --task", "predict", "--model", M, "--input", "/dev/null", "--task", "NOPE");
    E(2, "option --max-length", "predict", "--model", M, "--input", "/dev/null", "--max-length", "1");
    E(2, "option --max-length", "predict", "--model", M, "--input", "/dev/null", "--max-length", "600");
    E(2, "option --format", "predict", "--model", M, "--input", "/dev/null", "--format", "x");
    E(2, "precision", "predict", "--model", M, "--input", "/dev/null", "--precision", "x");
    E(2, NULL, "predict", "--model", M);
    /* eval, merge, analyze, bench, tokenize, inspect */
    E(2, "option --split", "eval", "--run", "/nonexistent", "--split", "nope");
    E(2, NULL, "merge", "--model", M, "--adapter", "tests/data/peft/bert_lora");
    E(2, NULL, "analyze", "nope");
    E(2, NULL, "bench", "--mode", "nope");
    E(2, NULL, "bench", "--precision", "x");
    E(2, NULL, "tokenize");
    E(2, NULL, "inspect", "a", "b");
}

TEST(errors_exit_1) {
    char *M = "tests/data/encoder/bert_cls";
    E(1, "/nonexistent", "train", "--model", M, "--task", "SST-2", "--data", "/nonexistent", "--out",
      "/tmp/cl_test_cli_never");
    CHECK(access("/tmp/cl_test_cli_never", F_OK) != 0, "no run directory made for a failing run");
    E(1, "/nonexistent", "predict", "--model", "/nonexistent", "--input", "/dev/null");
    E(1, "/nonexistent/input.tsv", "predict", "--model", M, "--input", "/nonexistent/input.tsv", "--ids");
    E(1, "run.json", "eval", "--run", "/nonexistent");
    E(1, "/nonexistent", "inspect", "/nonexistent");
    E(1, "/nonexistent", "tokenize", "--tokenizer", "/nonexistent");
    E(1, "/nonexistent", "merge", "--model", M, "--adapter", "/nonexistent", "--out", "/tmp/cl_test_cli_never");
    E(1, "/nonexistent", "analyze", "conversion", "--model", M, "--adapter", "/nonexistent", "--out",
      "/tmp/cl_test_cli_never");
    E(1, "/nonexistent.json", "bench", "--config", "/nonexistent.json", "--steps", "1");
}

int main(void) {
    BIN = getenv("CL_BIN");
    regcomp(&srcloc, "[A-Za-z_]+\\.c:[0-9]+", REG_EXTENDED | REG_NOSUB);
    if (!BIN || access(BIN, X_OK)) {
        SKIP("CL_BIN not set (make test sets it)");
        return tst_summary(__FILE__);
    }
    RUN(every_subcommand);
    RUN(usage_errors_exit_2);
    RUN(errors_exit_1);
    regfree(&srcloc);
    return tst_summary(__FILE__);
}
