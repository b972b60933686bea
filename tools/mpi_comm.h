/* The CLI's MPI (tools/mpi_comm.c). */
#ifndef CL_MPI_COMM_H
#define CL_MPI_COMM_H
#include <stddef.h>
#include "condlora.h"

/* Under a launcher with more than one process: MPI initialised, the world communicator as a cl_comm. Else NULL;
 * MSG (N bytes) then says why when that is an error (several processes but no MPI built in), else it is empty. */
cl_comm *cl_mpi_start(int *argc, char ***argv, char *msg, size_t n);
/* MPI_Finalize; failed != 0 aborts the whole job instead (the other processes may be blocked in a collective). */
void cl_mpi_stop(int failed);
/* The MPI library's name and version when built with MPI, else NULL. */
const char *cl_mpi_version(void);
#endif
