/* condlora: the command-line tool. `condlora help` lists the sub-commands; `condlora CMD --help` explains one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "commands.h"

#ifndef CONDLORA_VERSION
#define CONDLORA_VERSION "0.1.0"
#endif

static const cl_command commands[] = {
    /* {"name", cmd_name, "one-line summary"}, */
    {"train", cmd_train, "fine-tune an encoder with LoRA / CondLoRA / SaLoRA / AdaLoRA on a GLUE task"},
    {"eval", cmd_eval, "reload a saved training run and compute its metrics on a split"},
    {"bench", cmd_bench, "time training steps or inference of a random-weight encoder (one JSON line)"},
    {"predict", cmd_predict, "logits of a classification model (+ a PEFT adapter) for every row of a TSV file"},
    {"merge", cmd_merge, "merge a PEFT / condlora adapter into its base model: a Hugging Face model directory"},
    {"analyze", cmd_analyze, "conversion matrices and subspace similarity of trained adapters (heat maps)"},
    {"inspect", cmd_inspect, "what a .safetensors file, model directory or config.json holds (validates it)"},
    {"tokenize", cmd_tokenize, "print the token ids of text lines (byte-level BPE or WordPiece, as Hugging Face)"},
    {NULL, NULL, NULL},
};

/* OpenBLAS picks its kernels when it is loaded, from OPENBLAS_CORETYPE if set. Some machines export
 * OPENBLAS_CORETYPE=Haswell, which on an AVX-512 CPU selects AVX2 kernels at half the speed; with the variable unset,
 * OpenBLAS 0.3.21 does not recognise Zen 5 and falls back to generic kernels (4x slower). When the CPU has
 * AVX-512 and the user has not asked us to keep the variable (CONDLORA_KEEP_CORETYPE=1), re-execute once with
 * OPENBLAS_CORETYPE=SkylakeX (OpenBLAS's AVX-512 kernels). */
static void fix_openblas_coretype(char **argv) {
    const char *ct = getenv("OPENBLAS_CORETYPE");
    if (getenv("CONDLORA_KEEP_CORETYPE") || getenv("CONDLORA_REEXECED")) return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || (ct && strcmp(ct, "SkylakeX") == 0))
        return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    setenv("CONDLORA_REEXECED", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slower kernels */
}

static void usage(FILE *f) {
    fprintf(f, "condlora %s: parameter-efficient fine-tuning of BERT/RoBERTa encoders (LoRA, CondLoRA, SaLoRA, "
               "AdaLoRA)\n\nusage: condlora COMMAND [OPTIONS]\n\ncommands:\n", CONDLORA_VERSION);
    for (const cl_command *c = commands; c->name; c++) fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "  %-10s %s\n", "version", "print the version");
    fprintf(f, "\n`condlora COMMAND --help` describes a command's options.\n");
}

int main(int argc, char **argv) {
    fix_openblas_coretype(argv);
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("condlora %s\n", CONDLORA_VERSION);
        return 0;
    }
    for (const cl_command *c = commands; c->name; c++)
        if (!strcmp(c->name, argv[1])) return c->run(argc - 1, argv + 1);
    fprintf(stderr, "condlora: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
