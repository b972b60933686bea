/* Dense linear algebra for the analysis of [P1] (METHODS.md section 3), in double precision through LAPACK.
 * Every matrix here is row-major double, like the rest of condlora; LAPACKE's row-major interface is used so the
 * matrix LAPACK factors is the one the caller stored. No explicit inverse is ever formed: W^-1 X is an LU solve.
 *
 * Normalised subspace similarity (LoRA paper, [P1]):
 *   phi(X, Y, i, j) = || U_X[:, :i]^T U_Y[:, :j] ||_F^2 / min(i, j)   in [0, 1]
 * with U the left (or right) singular vectors of X and Y in the order of decreasing singular values. Beyond the rank
 * of a matrix its singular vectors are any orthonormal completion (a full SVD picks one), so i, j above the rank give
 * values that depend on that choice; [P1] uses i = j = r, the rank. */
#ifndef CL_ANALYSIS_LINALG_H
#define CL_ANALYSIS_LINALG_H
#include "core/error.h"

typedef enum { CL_SV_LEFT = 0, CL_SV_RIGHT = 1 } cl_sv_side;
int cl_sv_side_parse(const char *s, cl_sv_side *out); /* "left" | "right"; 0 on success */
const char *cl_sv_side_name(cl_sv_side s);

/* LU factorisation P W = L U of a square n x n matrix (dgetrf) with the 1-norm condition number estimated by dgecon.
 * Refuses (CL_EINVAL, message naming WHAT and the condition number) a matrix that is exactly singular or whose
 * reciprocal condition number is below n * DBL_EPSILON, i.e. singular to double precision. */
typedef struct {
    int n;
    double *lu;    /* n x n, row-major LAPACKE layout */
    int *ipiv;     /* n */
    double anorm;  /* ||W||_1 */
    double rcond;  /* dgecon's estimate of 1 / (||W||_1 ||W^-1||_1) */
} cl_lu;
int cl_lu_factor(cl_lu *f, int n, const double *w, const char *what, cl_error *err);
/* X = W^-1 B for B n x nrhs (row-major); x may alias b. */
int cl_lu_solve(const cl_lu *f, int nrhs, const double *b, double *x, cl_error *err);
double cl_lu_cond(const cl_lu *f); /* 1 / rcond: the estimated 1-norm condition number */
void cl_lu_free(cl_lu *f);

/* Singular value decomposition of the m x n matrix A = U diag(s) V^T (dgesdd; dgesvd if dgesdd does not converge).
 * s gets min(m, n) values, decreasing. u (m x m) and vt (n x n) may be NULL when not wanted. */
int cl_svd(int m, int n, const double *a, double *u, double *s, double *vt, cl_error *err);

/* The first k left (k <= m) or right (k <= n) singular vectors of A as the columns of OUT (dim x k, row-major),
 * dim = m (left) or n (right). A thin SVD is used when k <= min(m, n), a full one otherwise. */
int cl_sv_basis(int m, int n, const double *a, cl_sv_side side, int k, double *out, cl_error *err);
/* The same for a product P = L R^T of rank <= r (L: m x r, R: n x r; e.g. B A = B (A^T)^T) without forming P when
 * k <= r <= min(m, n): thin QR of L and R, then an SVD of the r x r core (O((m + n) r^2) instead of O(m n min)).
 * Otherwise P is formed and cl_sv_basis used. */
int cl_sv_basis_lowrank(int m, int n, int r, const double *l, const double *rm, cl_sv_side side, int k, double *out,
                        cl_error *err);

/* phi from two orthonormal bases: UX (dim x *, row stride ldx) first i columns, UY first j columns. */
double cl_phi_bases(int dim, const double *ux, int ldx, int i, const double *uy, int ldy, int j);
/* phi(X, Y, i, j) for two m x n matrices (1 <= i, j <= m for left, <= n for right). */
int cl_phi(int m, int n, const double *x, const double *y, int i, int j, cl_sv_side side, double *out,
           cl_error *err);

/* Mean of the strict upper triangle of an n x n matrix (the summary [P1] gives a layer-by-layer heat map);
 * NaN when n < 2. */
double cl_upper_mean(int n, const double *a);

#endif
