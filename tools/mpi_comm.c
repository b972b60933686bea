/* The CLI's data parallelism over MPI (issue 18): a cl_comm (include/condlora.h) on MPI_COMM_WORLD. Built with MPI
 * when the Makefile finds mpicc (-DCONDLORA_MPI); without it, a process is always alone (cl_mpi_start returns
 * NULL) and a launch under mpirun with several processes is refused with a clear message. */
#include "mpi_comm.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Is this process one of several that a launcher (mpirun, srun) started? */
static int launched_size(void) {
    if (getenv("CONDLORA_NO_MPI")) return 0; /* a search's trial, started by one rank: a process of its own */
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

#ifdef CONDLORA_MPI
#include <mpi.h>

static int started;
static cl_comm world;

/* MPI counts are ints: long buffers go in pieces (elements of `size` bytes); sum = 0 broadcasts from rank 0 */
#define PIECE ((size_t)1 << 28)
static int in_pieces(void *buf, size_t n, size_t size, MPI_Datatype t, int sum) {
    for (size_t o = 0; o < n; o += PIECE) {
        int k = (int)(n - o < PIECE ? n - o : PIECE);
        char *p = (char *)buf + o * size;
        int rc = sum ? MPI_Allreduce(MPI_IN_PLACE, p, k, t, MPI_SUM, MPI_COMM_WORLD)
                     : MPI_Bcast(p, k, t, 0, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return -1;
    }
    return 0;
}
static int sum_f32(cl_comm *c, float *buf, size_t n) { (void)c; return in_pieces(buf, n, sizeof *buf, MPI_FLOAT, 1); }
static int sum_f64(cl_comm *c, double *buf, size_t n) { (void)c; return in_pieces(buf, n, sizeof *buf, MPI_DOUBLE, 1); }
static int bcast(cl_comm *c, void *buf, size_t bytes) { (void)c; return in_pieces(buf, bytes, 1, MPI_BYTE, 0); }

cl_comm *cl_mpi_start(int *argc, char ***argv, char *msg, size_t n) {
    msg[0] = 0;
    if (launched_size() <= 1) return NULL; /* not under a launcher, or alone: no MPI at all */
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        snprintf(msg, n, "MPI_Init_thread failed");
        return NULL;
    }
    started = 1;
    /* errors come back as return codes (the run stops with a message) instead of aborting in the library */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    memset(&world, 0, sizeof world);
    MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    world.sum_f32 = sum_f32, world.sum_f64 = sum_f64, world.bcast = bcast;
    return &world;
}

void cl_mpi_stop(int failed) {
    if (!started) return;
    started = 0;
    if (failed && world.size > 1) {
        /* the others may be waiting in a collective that will never complete: end the whole job */
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, failed);
    }
    MPI_Finalize();
}

const char *cl_mpi_version(void) {
    static char v[MPI_MAX_LIBRARY_VERSION_STRING + 16];
    int len = 0;
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    if (MPI_Get_library_version(lib, &len) != MPI_SUCCESS) return "MPI (version unknown)";
    char *nl = strchr(lib, ','); /* "Open MPI v4.1.4, package: ..." -> its first part */
    if (nl) *nl = 0;
    snprintf(v, sizeof v, "%s", lib);
    return v;
}
#else
cl_comm *cl_mpi_start(int *argc, char ***argv, char *msg, size_t n) {
    (void)argc, (void)argv;
    msg[0] = 0;
    int k = launched_size();
    if (k > 1)
        snprintf(msg, n, "started as one of %d processes (mpirun), but this condlora was built without MPI: install "
                 "libopenmpi-dev and openmpi-bin (scripts/setup.sh does), then make clean && make", k);
    return NULL;
}
void cl_mpi_stop(int failed) { (void)failed; }
const char *cl_mpi_version(void) { return NULL; }
#endif
