/* condlora search: the paper's learning-rate search. N trials with learning rates drawn log-uniform in
 * [lr-min, lr-max] from a seeded generator (Optuna's TPE draws its first 10 trials at random, so the paper's 5-trial
 * search is this draw), each a full `condlora train` run under OUT/trial-K; the trial with the best dev metric (the
 * held-out split: the test labels are never read for the choice) gives the learning rate, which then runs on every
 * seed of --seeds (the trials ran on the first). Resumable: the same command again keeps finished runs and continues
 * unfinished ones from their checkpoints. Trials run as child processes (the condlora binary itself), --jobs K at a
 * time with the threads split between them; a child dies with its parent's death (SIGTERM: it checkpoints first).
 * Writes OUT/search.json and OUT/search.md. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <time.h>
#include "commands.h"
#include "mpi_comm.h"
#include "core/jsonio.h"
#include "core/util.h"
#include "data/glue.h"
#include "train/options.h"
#include "train/trainer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: condlora search --out DIR [--trials N] [--lr-min A] [--lr-max B] [--search-seed S] [--jobs K]\n"
            "                       [--seeds 1,2,3] [--threads T] [--deadline EPOCH] [--dry-run] TRAIN OPTIONS...\n"
            "The paper's learning-rate search: N trials (default 5), learning rates log-uniform in [A, B] (default\n"
            "5e-5, 5e-3) drawn from seed S (default 1), each a full `condlora train` run with the TRAIN OPTIONS (every\n"
            "option of `condlora train` but --lr, --seed, --out, --resume) in DIR/trial-K. The trial with the best dev\n"
            "metric (never the test set) gives the learning rate, which then runs on each seed of --seeds (default 1;\n"
            "the trials use the first) in DIR/seed-S. Run the same command again to continue a stopped search.\n"
            "  --jobs K     trials side by side, the threads split between them (default 1)\n"
            "  --threads T  threads in all (default: the machine's cores)\n"
            "  --deadline EPOCH  start no run that would end after this time (seconds since 1970, e.g. $(date +%%s -d\n"
            "               16:50)): a run is taken to last as long as the longest run of the search finished so far\n"
            "               (without one, runs start). The search then stops, resumable, with exit status 75\n"
            "  --dry-run    print the trials' learning rates and exit\n"
            "Writes DIR/search.json and DIR/search.md (trial, lr, best dev metric and step, wall time; the chosen\n"
            "learning rate's dev and test metrics per seed, mean and sd). Trials get --save-every 200 --save-limit 1\n"
            "unless given, so that a stopped search loses little.\n");
}

typedef struct {
    const char *dir_name; /* "trial-3", "seed-2" */
    double lr;
    long long seed;
    pid_t pid;
    int done;             /* finished (run.json status done / stopped_early) */
    double main, wall_s;
    char main_metric[32]; /* the task's model-selection metric (run.json result.main_metric) */
    long long best_step;
    cJSON *dev, *test;    /* metrics from run.json */
    char dir[4200];
    int reused;           /* seed run = the chosen trial itself */
} job;

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) { g_stop = sig; }

/* run.json of DIR: 1 finished (metrics filled), 0 started but unfinished (resumable), -1 none */
static int run_state(job *j) {
    char p[4400], *txt = NULL;
    size_t len = 0;
    cl_error e = {0};
    snprintf(p, sizeof p, "%s/run.json", j->dir);
    if (access(p, F_OK) != 0 || cl_read_file(p, &txt, &len, &e)) return -1;
    cJSON *r = cJSON_ParseWithLength(txt, len);
    free(txt);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "status");
    int fin = cJSON_IsString(st) && (!strcmp(st->valuestring, "done") || !strcmp(st->valuestring, "stopped_early"));
    if (fin) {
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(r, "result");
        cJSON_Delete(j->dev), cJSON_Delete(j->test);
        j->dev = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(res, "best_dev"), 1);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(res, "test");
        j->test = t ? cJSON_Duplicate(t, 1) : NULL;
        const cJSON *bs = cJSON_GetObjectItemCaseSensitive(res, "best_step");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(res, "wall_s");
        j->best_step = cJSON_IsNumber(bs) ? (long long)bs->valuedouble : -1;
        const cJSON *mm = cJSON_GetObjectItemCaseSensitive(res, "main_metric");
        snprintf(j->main_metric, sizeof j->main_metric, "%s", cJSON_IsString(mm) ? mm->valuestring : "");
        j->wall_s = cJSON_IsNumber(w) ? w->valuedouble : 0;
    }
    cJSON_Delete(r);
    return fin ? 1 : 0;
}

/* The time a started run still needs: the rate of its own steps so far (the last train line of metrics.jsonl: step,
 * elapsed_s) times the steps left of run.json's schedule. -1 when that cannot be read. */
static double remaining_s(const job *j, int64_t cstep) {
    char p[4400], *txt = NULL;
    size_t len = 0;
    cl_error e = {0};
    snprintf(p, sizeof p, "%s/run.json", j->dir);
    if (cl_read_file(p, &txt, &len, &e)) return -1;
    cJSON *r = cJSON_ParseWithLength(txt, len);
    free(txt);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(r, "options"), *d = cJSON_GetObjectItemCaseSensitive(r, "data");
    const cJSON *ep = cJSON_GetObjectItemCaseSensitive(o, "epochs"), *ms = cJSON_GetObjectItemCaseSensitive(o, "max_steps");
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(o, "batch_size"), *n = cJSON_GetObjectItemCaseSensitive(d, "train");
    double total = -1;
    if (cJSON_IsNumber(ms) && ms->valuedouble > 0) total = ms->valuedouble;
    else if (cJSON_IsNumber(ep) && cJSON_IsNumber(bs) && cJSON_IsNumber(n) && bs->valuedouble > 0)
        total = ep->valuedouble * ceil(n->valuedouble / bs->valuedouble);
    cJSON_Delete(r);
    snprintf(p, sizeof p, "%s/metrics.jsonl", j->dir);
    FILE *f = fopen(p, "r");
    if (!f || total <= 0) { if (f) fclose(f); return -1; }
    char line[2048];
    double step = 0, el = 0;
    while (fgets(line, sizeof line, f)) {
        const char *a = strstr(line, "\"type\":\"train\""), *b = strstr(line, "\"step\":"), *c = strstr(line, "\"elapsed_s\":");
        if (a && b && c) step = atof(b + 7), el = atof(c + 12);
    }
    fclose(f);
    if (step <= 0 || el <= 0 || step > (double)cstep + 1e9) return -1;
    return el / step * (total - (double)cstep);
}

/* the main metric's value in a metrics object (the task's main metric name) */
static double metric(const cJSON *m, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, name);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static char g_self[4096];

/* starts `condlora train` for J: a fresh run, or --resume of a started one */
static pid_t launch(job *j, int resume, char *const *pass, int npass, int threads, int quiet, const char *logdir) {
    char lr[64], seed[32], th[32];
    snprintf(lr, sizeof lr, "%.17g", j->lr);
    snprintf(seed, sizeof seed, "%lld", j->seed);
    snprintf(th, sizeof th, "%d", threads);
    char **argv = calloc((size_t)npass + 16, sizeof *argv);
    if (!argv) return -1;
    int n = 0;
    argv[n++] = g_self, argv[n++] = "train";
    if (resume) {
        argv[n++] = "--resume", argv[n++] = j->dir;
    } else {
        for (int i = 0; i < npass; i++) argv[n++] = pass[i];
        argv[n++] = "--lr", argv[n++] = lr, argv[n++] = "--seed", argv[n++] = seed, argv[n++] = "--out";
        argv[n++] = j->dir, argv[n++] = "--overwrite"; /* a trial directory without any checkpoint starts over */
    }
    argv[n++] = "--threads", argv[n++] = th;
    if (quiet) argv[n++] = "--quiet";
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* the search killed: the trial checkpoints and stops */
        if (getppid() == 1) _exit(143);
        if (quiet) {
            char lp[4400];
            snprintf(lp, sizeof lp, "%s/%s.log", logdir, j->dir_name);
            if (!freopen(lp, "a", stderr)) _exit(1);
        }
        dup2(2, 1); /* a trial's own summary goes with its progress: the search's stdout is its summary */
        setenv("CONDLORA_NO_MPI", "1", 1); /* under mpirun: a trial is one process of its own (tools/mpi_comm.c) */
        execv(g_self, argv);
        _exit(127);
    }
    free(argv);
    return pid;
}

static double now_s(void) { return cl_now(); }

int cmd_search(int argc, char **argv) {
    const char *out = NULL, *seeds_s = "1";
    long long trials = 5, search_seed = 1, jobs = 1, threads = 0, deadline = 0;
    double lr_min = 5e-5, lr_max = 5e-3;
    int dry = 0;
    /* the search's own options; everything else is passed to each trial (checked by the options table) */
    char **pass = calloc((size_t)argc + 8, sizeof *pass);
    int npass = 0, given_save = 0, given_limit = 0;
    const char *task = NULL, *train_file = NULL;
    if (!pass) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(pass); return 0; }
        if (!strcmp(a, "--dry-run")) { dry = 1; continue; }
        int is_own = !strcmp(a, "--out") || !strcmp(a, "--trials") || !strcmp(a, "--lr-min") ||
                     !strcmp(a, "--lr-max") || !strcmp(a, "--search-seed") || !strcmp(a, "--jobs") ||
                     !strcmp(a, "--seeds") || !strcmp(a, "--threads") || !strcmp(a, "--deadline");
        if (is_own) {
            if (!v) { fprintf(stderr, "condlora search: option %s needs a value\n", a); free(pass); return 2; }
            i++;
            errno = 0;
            int bad = 0;
            if (!strcmp(a, "--out")) out = v;
            else if (!strcmp(a, "--seeds")) seeds_s = v;
            else if (!strcmp(a, "--lr-min") || !strcmp(a, "--lr-max")) {
                double d = strtod(v, &end);
                bad = !*v || *end || !isfinite(d) || d <= 0;
                if (!strcmp(a, "--lr-min")) lr_min = d;
                else lr_max = d;
                if (bad) fprintf(stderr, "condlora search: option %s: '%s' is not a positive number\n", a, v);
            } else {
                long long x = strtoll(v, &end, 10);
                long long lo = !strcmp(a, "--search-seed") ? 0 : 1, hi = !strcmp(a, "--trials") ? 1000 : 1LL << 40;
                bad = !*v || *end || errno || x < lo || x > hi;
                if (bad) fprintf(stderr, "condlora search: option %s: '%s' is not an integer in %lld..%lld\n", a, v, lo,
                                 hi);
                if (!strcmp(a, "--trials")) trials = x;
                else if (!strcmp(a, "--search-seed")) search_seed = x;
                else if (!strcmp(a, "--jobs")) jobs = x;
                else if (!strcmp(a, "--deadline")) deadline = x;
                else threads = x;
            }
            if (bad) { free(pass); return 2; }
            continue;
        }
        if (!strncmp(a, "--", 2)) {
            const cl_train_option *p = cl_train_option_find(a + 2);
            if (!p || !strcmp(a + 2, "lr") || !strcmp(a + 2, "seed") || !strcmp(a + 2, "resume") ||
                !strcmp(a + 2, "out")) {
                fprintf(stderr, "condlora search: option %s: %s\n", a,
                        !p ? "not an option of condlora train (see condlora search --help)"
                           : "the search sets it (--lr-min/--lr-max, --seeds, --out)");
                free(pass);
                return 2;
            }
            /* the value is checked now, by the table, so that a bad option fails before any trial */
            cl_train_opts t;
            cl_train_opts_default(&t);
            cl_error e = {0};
            const char *val = p->type == CL_OT_FLAG ? NULL : v;
            if (p->type != CL_OT_FLAG && !v) {
                fprintf(stderr, "condlora search: option %s needs a value\n", a);
                free(pass);
                return 2;
            }
            if (strcmp(p->name, "preset") && cl_train_option_set(&t, p, val, &e)) {
                fprintf(stderr, "condlora search: %s\n", e.msg);
                free(pass);
                return 2;
            }
            if (!strcmp(p->name, "task")) task = v;
            if (!strcmp(p->name, "train")) train_file = v;
            given_save |= !strcmp(p->name, "save-every"), given_limit |= !strcmp(p->name, "save-limit");
            pass[npass++] = argv[i];
            if (val) pass[npass++] = argv[++i];
            continue;
        }
        fprintf(stderr, "condlora search: unexpected argument '%s'\n", a);
        free(pass);
        return 2;
    }
    if (!(lr_min < lr_max)) {
        fprintf(stderr, "condlora search: options --lr-min / --lr-max: %g is not below %g\n", lr_min, lr_max);
        free(pass);
        return 2;
    }
    cl_error err = {0};
    if (task && !train_file && cl_glue_task_lookup(task, &(const cl_glue_task *){NULL}, &err)) {
        fprintf(stderr, "condlora search: option --task: %s\n", err.msg);
        free(pass);
        return 2;
    }
    if (!task && !train_file) {
        fprintf(stderr, "condlora search: give the data as condlora train takes it (--task NAME --data DIR, or "
                        "--train FILE)\n");
        free(pass);
        return 2;
    }
    /* the seeds */
    long long seeds[64];
    int nseeds = 0;
    {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", seeds_s);
        for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
            char *end;
            long long s = strtoll(t, &end, 10);
            if (!*t || *end || s < 0 || nseeds == 64) {
                fprintf(stderr, "condlora search: option --seeds: '%s' is not a list of seeds (1,2,3)\n", seeds_s);
                free(pass);
                return 2;
            }
            seeds[nseeds++] = s;
        }
        if (!nseeds) {
            fprintf(stderr, "condlora search: option --seeds: empty\n");
            free(pass);
            return 2;
        }
    }
    /* the learning rates: log-uniform from the search seed */
    job *tj = calloc((size_t)trials + (size_t)nseeds, sizeof *tj);
    if (!tj) { free(pass); return 1; }
    cl_rng rng;
    cl_rng_seed(&rng, (uint64_t)search_seed);
    static char names[1100][24];
    for (long long k = 0; k < trials; k++) {
        double u = cl_rng_uniform(&rng);
        tj[k].lr = exp(log(lr_min) + u * (log(lr_max) - log(lr_min)));
        tj[k].seed = seeds[0];
        snprintf(names[k], sizeof names[k], "trial-%lld", k + 1);
        tj[k].dir_name = names[k];
    }
    if (dry) {
        for (long long k = 0; k < trials; k++) printf("trial %lld\tlr %.6g\n", k + 1, tj[k].lr);
        free(tj), free(pass);
        return 0;
    }
    if (!out) {
        fprintf(stderr, "condlora search: option --out is required\n");
        free(tj), free(pass);
        return 2;
    }
    ssize_t sl = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    if (sl <= 0) { fprintf(stderr, "condlora search: cannot find the condlora binary\n"); return 1; }
    g_self[sl] = 0;
    if (cl_mkdir_p(out, &err)) { fprintf(stderr, "condlora search: %s\n", err.msg); return 1; }
    char logdir[4200];
    snprintf(logdir, sizeof logdir, "%s/logs", out);
    if (cl_mkdir_p(logdir, &err)) { fprintf(stderr, "condlora search: %s\n", err.msg); return 1; }
    /* the settings: a search directory holds one search; the same command continues it */
    cJSON *set = cJSON_CreateObject(), *pa = cJSON_AddArrayToObject(set, "train_options");
    cJSON_AddNumberToObject(set, "trials", (double)trials);
    cJSON_AddNumberToObject(set, "lr_min", lr_min);
    cJSON_AddNumberToObject(set, "lr_max", lr_max);
    cJSON_AddNumberToObject(set, "search_seed", (double)search_seed);
    cJSON_AddStringToObject(set, "seeds", seeds_s);
    for (int i = 0; i < npass; i++) cJSON_AddItemToArray(pa, cJSON_CreateString(pass[i]));
    char sp[4300];
    snprintf(sp, sizeof sp, "%s/search.json", out);
    if (access(sp, F_OK) == 0) {
        char *txt = NULL;
        size_t len = 0;
        cJSON *old = NULL;
        if (!cl_read_file(sp, &txt, &len, &err)) old = cJSON_ParseWithLength(txt, len);
        free(txt);
        cJSON *os = old ? cJSON_GetObjectItemCaseSensitive(old, "settings") : NULL;
        if (!os || !cJSON_Compare(os, set, 1)) {
            fprintf(stderr, "condlora search: %s holds a search with other settings; give another --out (or the "
                            "same options as before to continue it)\n", sp);
            cJSON_Delete(old), cJSON_Delete(set);
            return 2;
        }
        cJSON_Delete(old);
    }
    /* mpirun -np N condlora search: the ranks share the runs of each phase (run k on rank k % N); they meet after
     * each phase and read each other's results from the run directories (a shared file system) */
    char mmsg[512];
    cl_comm *comm = cl_mpi_start(&argc, &argv, mmsg, sizeof mmsg);
    if (mmsg[0]) { fprintf(stderr, "condlora search: %s\n", mmsg); cJSON_Delete(set); return 1; }
    const int R0 = !comm || comm->rank == 0;
    if (comm && threads <= 0) { /* the machine's cores shared by the ranks on it */
        const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        long nl = ls ? atol(ls) : 1, nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc > 0 && nl > 0 && nc / nl > 0 ? nc / nl : 1;
    }
    /* trials get checkpoints unless the user chose */
    if (!given_save) pass[npass++] = "--save-every", pass[npass++] = "200";
    if (!given_limit) pass[npass++] = "--save-limit", pass[npass++] = "1";
    if (threads <= 0) threads = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    int per = (int)(threads / jobs) > 0 ? (int)(threads / jobs) : 1, quiet = jobs > 1;
    for (long long k = 0; k < trials; k++) snprintf(tj[k].dir, sizeof tj[k].dir, "%s/%s", out, tj[k].dir_name);

    struct sigaction sa, oi, ot;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &oi);
    sigaction(SIGTERM, &sa, &ot);
    int rc = 0, deadline_hit = 0;
    const char *main_name = NULL;
    double t0 = now_s();
    /* phase 1: the trials; phase 2: the chosen learning rate on every seed */
    for (int phase = 0; phase < 2 && !rc && !g_stop; phase++) {
        long long first = phase ? trials : 0, n = phase ? nseeds : trials;
        if (phase) {
            long long best = -1;
            for (long long k = 0; k < trials; k++) {
                double v = tj[k].main;
                if (isfinite(v) && (best < 0 || v > tj[best].main)) best = k;
            }
            if (best < 0) { fprintf(stderr, "condlora search: no trial has a finite dev metric\n"); rc = 1; break; }
            fprintf(stderr, "search: chose trial %lld, lr %.6g (dev %s %.4f)\n", best + 1, tj[best].lr,
                    main_name ? main_name : "main", tj[best].main);
            for (int s = 0; s < nseeds; s++) {
                job *j = &tj[trials + s];
                j->lr = tj[best].lr, j->seed = seeds[s];
                snprintf(names[trials + s], sizeof names[0], "seed-%lld", seeds[s]);
                j->dir_name = names[trials + s];
                if (seeds[s] == tj[best].seed) { /* the chosen trial is this seed's run */
                    snprintf(j->dir, sizeof j->dir, "%s", tj[best].dir);
                    j->reused = 1;
                } else {
                    snprintf(j->dir, sizeof j->dir, "%s/%s", out, j->dir_name);
                }
            }
        }
        long long next = first, running = 0;
        while ((next < first + n || running) && !rc) {
            while (next < first + n && running < jobs && !g_stop) {
                job *j = &tj[next++];
                if (comm && (next - 1 - first) % comm->size != comm->rank) continue; /* another rank's */
                int st = run_state(j);
                if (st == 1) {
                    j->done = 1;
                    fprintf(stderr, "search: %s (lr %.6g, seed %lld) already finished\n", j->dir_name, j->lr, j->seed);
                    continue;
                }
                char ck[4400];
                int64_t cstep = 0;
                int resumable = st == 0 && !cl_train_latest_checkpoint(j->dir, ck, sizeof ck, &cstep, &(cl_error){0});
                if (deadline > 0) { /* a started run: its own rate times the steps left; a new one: the longest run */
                    double est = resumable ? remaining_s(j, cstep) : 0;
                    if (est <= 0)
                        for (long long k = 0; k < trials + nseeds; k++)
                            if (tj[k].done && tj[k].wall_s > est) est = tj[k].wall_s;
                    if (est > 0 && (double)time(NULL) + est > (double)deadline) {
                        fprintf(stderr, "search: %s not started: it would take %.0f min more and end after the "
                                        "deadline\n", j->dir_name, est / 60);
                        deadline_hit = 1;
                        next = first + n;
                        break;
                    }
                }
                fprintf(stderr, "search: %s %s (lr %.6g, seed %lld)%s\n", j->dir_name, resumable ? "resumes" : "starts",
                        j->lr, j->seed, quiet ? " [log: logs/]" : "");
                j->pid = launch(j, resumable, pass, npass, per, quiet, logdir);
                if (j->pid < 0) { rc = 1; break; }
                running++;
            }
            if (!running) break;
            int status = 0;
            pid_t pid = waitpid(-1, &status, 0);
            if (pid < 0) {
                if (errno == EINTR) {
                    if (g_stop)
                        for (long long k = 0; k < trials + nseeds; k++)
                            if (tj[k].pid > 0) kill(tj[k].pid, SIGTERM);
                    continue;
                }
                break;
            }
            for (long long k = 0; k < trials + nseeds; k++) {
                job *j = &tj[k];
                if (j->pid != pid) continue;
                j->pid = 0, running--;
                int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                if (code == 0 && run_state(j) == 1) {
                    j->done = 1;
                } else if (code == 0 && g_stop == 0) { /* paused (a --stop-after among the options) */
                    fprintf(stderr, "search: %s stopped before the end (paused); run the search again\n", j->dir_name);
                    rc = 3;
                } else if (code == 130 || code == 143 || g_stop) {
                    rc = 3; /* interrupted: its checkpoint is there */
                } else {
                    fprintf(stderr, "condlora search: %s failed (exit %d)%s%s%s\n", j->dir_name, code,
                            quiet ? "; see " : "", quiet ? logdir : "", quiet ? "/" : "");
                    rc = 1;
                }
            }
        }
        if (deadline_hit && rc == 0) rc = 3; /* before the ranks meet, so that they all stop */
        if (comm) { /* every rank's runs of this phase are over: all see all results */
            double v[2] = {rc ? 1.0 : 0.0, rc == 3 ? 1.0 : 0.0};
            if (comm->sum_f64(comm, v, 2)) {
                fprintf(stderr, "condlora search: rank %d lost contact with the other ranks\n", comm->rank);
                cl_mpi_stop(1);
            }
            if (!rc && v[0] > 0) rc = v[1] > 0 ? 3 : 1;
            for (long long k = first; k < first + n; k++)
                if (!tj[k].done && (k < trials || !tj[k].reused)) tj[k].done = run_state(&tj[k]) == 1;
        }
        /* the trials' metrics */
        for (long long k = first; k < first + n; k++) {
            job *j = &tj[k];
            if (!j->done && j->reused) j->done = run_state(j) == 1;
            if (!j->done) continue;
            if (!main_name) main_name = *j->main_metric ? j->main_metric : j->dev && j->dev->child ? j->dev->child->string
                                                                                            : "main";
            j->main = metric(j->dev, main_name);
        }
        if (!phase && rc == 0)
            for (long long k = 0; k < trials; k++)
                if (!tj[k].done) rc = 3;
    }
    sigaction(SIGINT, &oi, NULL);
    sigaction(SIGTERM, &ot, NULL);

    /* the summary: JSON and Markdown */
    cJSON *sj = cJSON_CreateObject();
    cJSON_AddItemToObject(sj, "settings", set);
    cJSON_AddStringToObject(sj, "metric", main_name ? main_name : "");
    cJSON *ta = cJSON_AddArrayToObject(sj, "trials"), *sa2 = cJSON_AddArrayToObject(sj, "seeds");
    char md[65536];
    size_t mn = 0;
    mn += (size_t)snprintf(md + mn, sizeof md - mn, "# Learning-rate search\n\n%lld trials, lr log-uniform in [%g, %g] "
                           "(search seed %lld); selection on the dev split by %s.\n\n| trial | lr | dev %s | best step | "
                           "wall s |\n|---|---|---|---|---|\n", trials, lr_min, lr_max, search_seed,
                           main_name ? main_name : "-", main_name ? main_name : "");
    for (long long k = 0; k < trials + nseeds; k++) {
        job *j = &tj[k];
        if (k >= trials && !j->dir_name) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "run", j->dir_name);
        cJSON_AddNumberToObject(o, "lr", j->lr);
        cJSON_AddNumberToObject(o, "seed", (double)j->seed);
        cJSON_AddStringToObject(o, "dir", j->dir);
        cJSON_AddStringToObject(o, "status", j->done ? "done" : "unfinished");
        if (j->done) {
            cJSON_AddItemToObject(o, "dev", cJSON_Duplicate(j->dev, 1));
            if (k >= trials && j->test) cJSON_AddItemToObject(o, "test", cJSON_Duplicate(j->test, 1));
            cJSON_AddNumberToObject(o, "best_step", (double)j->best_step);
            cJSON_AddNumberToObject(o, "wall_s", j->wall_s);
        }
        cJSON_AddItemToArray(k < trials ? ta : sa2, o);
        if (k < trials && mn < sizeof md - 200)
            mn += (size_t)snprintf(md + mn, sizeof md - mn, j->done ? "| %lld | %.4g | %.4f | %lld | %.0f |\n"
                                                                    : "| %lld | %.4g | unfinished | | |\n",
                                   k + 1, j->lr, j->main, j->best_step, j->wall_s);
    }
    /* the chosen learning rate over the seeds: mean and sd of dev and test */
    int ns = 0;
    double sd[2] = {0}, mean[2] = {0}, vals[2][64];
    for (int s = 0; s < nseeds; s++) {
        job *j = &tj[trials + s];
        if (!j->dir_name || !j->done) continue;
        vals[0][ns] = metric(j->dev, main_name), vals[1][ns] = j->test ? metric(j->test, main_name) : NAN;
        ns++;
    }
    for (int w = 0; w < 2; w++) {
        for (int i = 0; i < ns; i++) mean[w] += vals[w][i] / ns;
        for (int i = 0; i < ns; i++) sd[w] += ns > 1 ? (vals[w][i] - mean[w]) * (vals[w][i] - mean[w]) / (ns - 1) : 0;
        sd[w] = sqrt(sd[w]);
    }
    if (ns) {
        cJSON *sm = cJSON_AddObjectToObject(sj, "chosen");
        cJSON_AddNumberToObject(sm, "lr", tj[trials].lr);
        cJSON_AddNumberToObject(sm, "seeds_done", ns);
        cJSON_AddNumberToObject(sm, "dev_mean", mean[0]);
        cJSON_AddNumberToObject(sm, "dev_sd", sd[0]);
        if (isfinite(mean[1])) {
            cJSON_AddNumberToObject(sm, "test_mean", mean[1]);
            cJSON_AddNumberToObject(sm, "test_sd", sd[1]);
        }
        mn += (size_t)snprintf(md + mn, sizeof md - mn, "\nChosen lr %.4g on %d seed(s): dev %s %.4f +- %.4f, test "
                               "%.4f +- %.4f.\n", tj[trials].lr, ns, main_name, mean[0], sd[0], mean[1], sd[1]);
    }
    cJSON_AddNumberToObject(sj, "wall_s_this_invocation", now_s() - t0);
    cl_error e2 = {0};
    if (R0 && cl_json_save(sj, sp, &e2)) { fprintf(stderr, "condlora search: %s\n", e2.msg); rc = rc ? rc : 1; }
    snprintf(sp, sizeof sp, "%s/search.md", out);
    if (R0 && cl_atomic_write(sp, md, mn, &e2)) { fprintf(stderr, "condlora search: %s\n", e2.msg); rc = rc ? rc : 1; }
    cJSON_Delete(sj);
    cl_mpi_stop(0);
    if (rc == 3) {
        fprintf(stderr, "search: stopped; run the same command again to continue (finished runs are kept, unfinished "
                        "ones resume from their checkpoints)\n");
        rc = g_stop ? 128 + g_stop : deadline_hit ? 75 : 1;
    } else if (!rc && R0) {
        printf("%s", md);
    }
    for (long long k = 0; k < trials + nseeds; k++) cJSON_Delete(tj[k].dev), cJSON_Delete(tj[k].test);
    free(tj), free(pass);
    return rc;
}
