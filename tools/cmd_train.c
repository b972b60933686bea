/* condlora train: fine-tune an encoder with an adapter method on a GLUE task (src/train/trainer.h). */
#include <getopt.h>
#include <unistd.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "mpi_comm.h"
#include "condlora.h"
#include "model/gemm_bf16.h"
#include "train/options.h"
#include "train/trainer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: condlora train --model DIR --task NAME --data DIR --method lora|condlora|salora|adalora\n"
            "                      --out RUN_DIR [options]\n"
            "       condlora train --model DIR --train FILE [--dev FILE] [--test FILE] --method ... --out RUN_DIR\n"
            "       condlora train --resume RUN_DIR [--threads K] [--save-every N] [--save-limit N] [--stop-after N]\n"
            "Checks every input first (model, tokenizer, data rows, options), then trains and writes RUN_DIR/run.json,\n"
            "metrics.jsonl, curve.svg, best/ and final/ (PEFT adapter_model.safetensors + adapter_config.json).\n"
            "  --resume RUN_DIR       continue RUN_DIR from its newest complete checkpoint with the options of its\n"
            "                         run.json (other options may be repeated with the run's values; only --threads,\n"
            "                         --quiet, --save-every, --save-limit, --stop-after may change); same thread\n"
            "                         count = the same losses and bytes as a run never stopped\n\n");
    cl_train_options_help(f);
    fprintf(f, "\nSIGINT (Ctrl-C) and SIGTERM finish the current step, write a checkpoint and exit with 130 / 143.\n");
}

/* the CLI's side of the library's callbacks: SIGINT / SIGTERM set the cancel flag (the run checkpoints and returns),
 * progress events become lines on stderr (the step line rewritten in place on a terminal) */
static volatile sig_atomic_t g_cancel = 0;
static void on_signal(int sig) { g_cancel = sig; }

typedef struct {
    int tty, quiet, midline;
} printer;

static void print_event(const cl_train_event *ev, void *user) {
    printer *p = user;
    if (p->quiet) return;
    if (ev->type == CL_TRAIN_EV_STEP && p->tty) {
        fprintf(stderr, "\r%s\033[K", ev->message);
        p->midline = 1;
        return;
    }
    fprintf(stderr, "%s%s\n", p->midline ? "\r\033[K" : "", ev->message);
    p->midline = 0;
}

/* applies option NAME with argument A to O: 0, or 2 after a message (a usage error) */
static int apply_opt(cl_train_opts *o, const char *n, const char *a, cl_error *err) {
    const cl_train_option *p = cl_train_option_find(n);
    if (!p || cl_train_option_set(o, p, a, err)) {
        if (!p) cl_errf(err, CL_EUSAGE, "unknown option --%s", n);
        fprintf(stderr, "condlora train: %s\n", err->msg);
        return 2;
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    cl_train_opts o;
    cl_train_opts_default(&o);
    /* the long options: the table's (train/options.c), then --resume and --help */
    const size_t nopt = cl_train_option_count();
    struct option *lo = calloc(nopt + 3, sizeof *lo);
    if (!lo) {
        fprintf(stderr, "condlora train: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nopt; i++) {
        const cl_train_option *p = cl_train_option_at(i);
        lo[i] = (struct option){p->name, p->type == CL_OT_FLAG ? 0 : 1, 0, 0};
    }
    lo[nopt] = (struct option){"resume", 1, 0, 0};
    lo[nopt + 1] = (struct option){"help", 0, 0, 'h'};
    /* first pass: method and task (the preset and the adapter defaults depend on them) */
    const char *method = "condlora";
    int c, li;
    for (int i = 1; i < argc - 1; i++) {
        if (!strcmp(argv[i], "--method")) method = argv[i + 1];
        if (!strcmp(argv[i], "--task")) o.task = argv[i + 1];
    }
    cl_error err = {0};
    if (cl_train_option_set(&o, cl_train_option_find("method"), method, &err)) {
        fprintf(stderr, "condlora train: %s\n", err.msg);
        free(lo);
        return 2;
    }
    cl_adapter_opts_default(&o.ad, o.ad.method);
    /* the options given, in order (a resumed run checks them against its run.json) */
    const char **gn = calloc((size_t)argc + 1, sizeof *gn), **ga = calloc((size_t)argc + 1, sizeof *ga);
    int ng = 0;
    if (!gn || !ga) {
        free(gn), free(ga), free(lo);
        fprintf(stderr, "condlora train: out of memory\n");
        return 1;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, &li)) != -1) {
        if (c == 'h') { usage(stdout); free(gn), free(ga), free(lo); return 0; }
        if (c != 0) { usage(stderr); free(gn), free(ga), free(lo); return 2; }
        const char *n = lo[li].name, *a = optarg;
        gn[ng] = n, ga[ng++] = a;
        if (!strcmp(n, "method")) continue;
        if (!strcmp(n, "resume")) { o.resume = a; continue; }
        if (apply_opt(&o, n, a, &err)) { free(gn), free(ga), free(lo); return 2; }
    }
    free(lo);
    if (optind < argc) {
        fprintf(stderr, "condlora train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o.resume) {
        /* options equal to the run's are accepted; a different one is refused, naming it */
        cl_train_opts ro;
        char buf[16384];
        if (cl_train_read_run_opts(o.resume, &ro, buf, sizeof buf, &err)) {
            fprintf(stderr, "condlora train: option --resume: %s\n", err.msg);
            free(gn), free(ga);
            return 1;
        }
        for (int i = 0; i < ng; i++) {
            const cl_train_option *p = cl_train_option_find(gn[i]);
            if (!strcmp(gn[i], "resume") ||
                (p && (p->flags & (CL_OF_RESUME | CL_OF_INVOCATION)) && strcmp(gn[i], "overwrite")))
                continue; /* --threads, --quiet, the checkpoint schedule */
            cl_train_opts t = ro;
            const char *diff = NULL;
            if (!strcmp(gn[i], "method")) {
                cl_method m;
                if (cl_method_parse(ga[i], &m, &err) || m != ro.ad.method) diff = "method";
            } else if (!strcmp(gn[i], "overwrite")) {
                diff = "overwrite";
            } else if (apply_opt(&t, gn[i], ga[i], &err)) {
                free(gn), free(ga);
                return 2;
            } else {
                diff = cl_train_opts_diff(&ro, &t);
            }
            if (diff) {
                fprintf(stderr, "condlora train: option --%s%s%s: %s (run.json) continues with its own options; this "
                        "one differs from them (only --threads, --quiet, --save-every, --save-limit and --stop-after "
                        "may change)\n", gn[i], ga[i] ? " " : "", ga[i] ? ga[i] : "", o.resume);
                free(gn), free(ga);
                return 2;
            }
        }
    }
    /* the run, through the public API (include/condlora.h): the same options in the same order (the method and the
     * task first: the adapter defaults and the preset depend on them) */
    cl_train_params *tp = cl_train_params_new();
    int prc = !tp || cl_train_params_set(tp, "method", method) || (o.task && cl_train_params_set(tp, "task", o.task));
    for (int i = 0; i < ng && !prc; i++) prc = cl_train_params_set(tp, gn[i], ga[i]);
    free(gn), free(ga);
    if (prc) {
        fprintf(stderr, "condlora train: %s\n", cl_last_error());
        cl_train_params_free(tp);
        return 2;
    }
    /* mpirun -np N condlora train: data parallelism over the N processes (only rank 0 prints and writes) */
    char mmsg[512];
    cl_comm *comm = cl_mpi_start(&argc, &argv, mmsg, sizeof mmsg);
    if (mmsg[0]) {
        fprintf(stderr, "condlora train: %s\n", mmsg);
        cl_train_params_free(tp);
        return 1;
    }
    if (comm) {
        cl_train_params_set_comm(tp, comm);
        if (comm->rank != 0) o.quiet = 1;
    }
    /* a file-size limit (ulimit -f) must give a write error, not kill the process mid-checkpoint */
    signal(SIGXFSZ, SIG_IGN);
    printer pr = {isatty(2) && (!comm || comm->rank == 0), o.quiet, 0};
    cl_train_callbacks cb = {print_event, &pr, &g_cancel};
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    cl_run *run = cl_train(tp, &cb);
    cl_train_params_free(tp);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (pr.midline) fputc('\n', stderr);
    if (!run) {
        const char *m = cl_last_error();
        int st = cl_last_status() == CL_EUSAGE ? 2 : 1;
        /* a rank that stopped only because another did says nothing more (the failed rank's message is the one) */
        if (!comm || !strstr(m, "so rank")) {
            if (comm && comm->rank) fprintf(stderr, "condlora train: rank %d: %s\n", comm->rank, m);
            else fprintf(stderr, "condlora train: %s\n", m);
        }
        /* a lost process: the collectives are broken, so MPI_Finalize could wait forever; end the job instead */
        cl_mpi_stop(comm && strstr(m, "lost contact") ? 1 : 0);
        return st;
    }
    cl_mpi_stop(0);
    if (comm && comm->rank) { /* rank 0 reports */
        const cl_train_result rr = *cl_run_result(run);
        cl_run_free(run);
        return rr.interrupted ? 128 + rr.interrupted : 0;
    }
    const cl_train_result r = *cl_run_result(run);
    cl_run_free(run);
    const char *out_dir = o.resume ? o.resume : o.out_dir;
    if (r.interrupted || r.paused) { /* a checkpoint of the last finished step was written */
        fprintf(stderr, "%s at step %lld: continue with condlora train --resume %s\n",
                r.interrupted == SIGINT ? "interrupted (SIGINT)" : r.interrupted ? "terminated (SIGTERM)" : "paused",
                (long long)r.steps, out_dir);
        return r.interrupted ? 128 + r.interrupted : 0; /* 130 SIGINT, 143 SIGTERM */
    }
    /* summary table */
    printf("\n%-8s %-10s %-8s %s\n", "split", "examples", "step", "metrics");
    for (int s = 0; s < 1 + r.have_test; s++) {
        const cl_metric_set *m = s ? &r.test : &r.best_dev;
        printf("%-8s %-10zu %-8lld", s ? "test" : "dev", s ? r.n_test : r.n_dev, (long long)r.best_step);
        for (int i = 0; i < m->n; i++) printf(" %s %.4f", m->m[i].name, m->m[i].value);
        printf("\n");
    }
    printf("steps %lld, epochs %d%s, %.1f examples/s, %.0f tokens/s, wall %.1f s; run: %s\n", (long long)r.steps,
           r.epochs_run, r.stopped_early ? " (stopped early)" : "", r.examples_per_s, r.tokens_per_s, r.wall_s,
           out_dir);
    return 0;
}
