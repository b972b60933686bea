/* condlora: the command-line tool. `condlora help` lists the sub-commands; `condlora CMD --help` explains one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "commands.h"
#include "mpi_comm.h"
#include "core/log.h"


static const cl_command commands[] = {
    /* {"name", cmd_name, "one-line summary"}, */
    {"train", cmd_train, "fine-tune an encoder with LoRA / CondLoRA / SaLoRA / AdaLoRA on a GLUE task"},
    {"eval", cmd_eval, "reload a saved training run and compute its metrics on a split"},
    {"search", cmd_search, "the paper's learning-rate search: trials of train, then the chosen lr on more seeds"},
    {"bench", cmd_bench, "time training steps or inference of a random-weight encoder (one JSON line)"},
    {"predict", cmd_predict, "logits of a classification model (+ a PEFT adapter) for every row of a TSV file"},
    {"merge", cmd_merge, "merge a PEFT / condlora adapter into its base model: a Hugging Face model directory"},
    {"analyze", cmd_analyze, "conversion matrices and subspace similarity of trained adapters (heat maps)"},
    {"inspect", cmd_inspect, "what a .safetensors file, model directory or config.json holds (validates it)"},
    {"split", cmd_split, "the rows of a task's train / dev / test splits, as train makes them (for other tools)"},
    {"tokenize", cmd_tokenize, "print the token ids of text lines (byte-level BPE or WordPiece, as Hugging Face)"},
    {NULL, NULL, NULL},
};

/* Both libraries read their settings when they load, so the process re-executes itself once with them:
 * - OpenBLAS picks its kernels from OPENBLAS_CORETYPE. Some machines export OPENBLAS_CORETYPE=Haswell, which on an
 *   AVX-512 CPU selects AVX2 kernels at half the speed; with the variable unset, OpenBLAS 0.3.21 does not recognise
 *   Zen 5 and falls back to generic kernels (4x slower). On CPUs with AVX-512 (unless CONDLORA_KEEP_CORETYPE=1):
 *   OPENBLAS_CORETYPE=SkylakeX, OpenBLAS's AVX-512 kernels.
 * - libgomp's idle threads spin GOMP_SPINCOUNT (300,000) times before they sleep. On a shared machine the spinning
 *   threads take the cores the working ones need. bench/threads_under_load.sh, 2 threads beside two busy processes
 *   on 2 cores (AMD EPYC, MiniLM shape): libgomp's default 289 tokens/s, GOMP_SPINCOUNT=10000 988,
 *   OMP_WAIT_POLICY=passive 1,546; idle, all within 3% (3,316-3,392). Unless the user set GOMP_SPINCOUNT or
 *   OMP_WAIT_POLICY: OMP_WAIT_POLICY=passive (README, "Threads on a shared machine"). */
static void fix_thread_and_kernel_env(char **argv) {
    if (getenv("CONDLORA_REEXECED")) return;
    int again = 0;
    const char *ct = getenv("OPENBLAS_CORETYPE");
    __builtin_cpu_init();
    if (!getenv("CONDLORA_KEEP_CORETYPE") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && !(ct && strcmp(ct, "SkylakeX") == 0)) {
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
        again = 1;
    }
    if (!getenv("GOMP_SPINCOUNT") && !getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        again = 1;
    }
    if (!again) return;
    setenv("CONDLORA_REEXECED", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the library defaults */
}

static void usage(FILE *f) {
    fprintf(f, "condlora %s: parameter-efficient fine-tuning of BERT/RoBERTa encoders (LoRA, CondLoRA, SaLoRA, "
               "AdaLoRA)\n\nusage: condlora COMMAND [OPTIONS]\n\ncommands:\n", CONDLORA_VERSION);
    for (const cl_command *c = commands; c->name; c++) fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "  %-10s %s\n", "version", "print the version");
    fprintf(f, "\n`condlora COMMAND --help` describes a command's options.\n");
}

/* the library's log lines (it prints nothing itself) */
static void log_to_stderr(cl_log_level level, const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "condlora: %s%s\n", level >= CL_LOG_WARN ? "warning: " : "", msg);
}

int main(int argc, char **argv) {
    fix_thread_and_kernel_env(argv);
    cl_log_set(log_to_stderr, NULL);
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("condlora %s\n", CONDLORA_VERSION);
        const char *mpi = cl_mpi_version();
        printf("MPI: %s\n", mpi ? mpi : "not built in (install libopenmpi-dev, then rebuild)");
        return 0;
    }
    for (const cl_command *c = commands; c->name; c++)
        if (!strcmp(c->name, argv[1])) return c->run(argc - 1, argv + 1);
    fprintf(stderr, "condlora: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
