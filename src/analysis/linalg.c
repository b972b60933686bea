/* LU solves with condition estimates, SVDs and the subspace similarity phi, through LAPACKE (double precision). */
#include "analysis/linalg.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "core/util.h"

int cl_sv_side_parse(const char *s, cl_sv_side *out) {
    if (!s || !out) return -1;
    if (!strcmp(s, "left")) { *out = CL_SV_LEFT; return 0; }
    if (!strcmp(s, "right")) { *out = CL_SV_RIGHT; return 0; }
    return -1;
}

const char *cl_sv_side_name(cl_sv_side s) { return s == CL_SV_RIGHT ? "right" : "left"; }

/* cl_err_prefix that never reports success: returns the error's code (CL_ENOMEM when err is NULL). */
#define pfx(err, ...) (cl_err_prefix((err), __VA_ARGS__), (err) && (err)->code ? (int)(err)->code : (int)CL_ENOMEM)

static double *dalloc(size_t n, cl_error *err) { return cl_alloc(n ? n : 1, sizeof(double), err); }

/* ---------------------------------------------------------------------------------------------------------- LU */

int cl_lu_factor(cl_lu *f, int n, const double *w, const char *what, cl_error *err) {
    memset(f, 0, sizeof *f);
    if (!what) what = "matrix";
    if (n <= 0 || !w) return cl_errf(err, CL_EINVAL, "cl_lu_factor(%s): bad size n = %d", what, n);
    f->n = n;
    f->lu = dalloc((size_t)n * n, err);
    f->ipiv = cl_alloc((size_t)n, sizeof(int), err);
    if (!f->lu || !f->ipiv) {
        cl_lu_free(f);
        return pfx(err, "cl_lu_factor(%s, n = %d)", what, n);
    }
    memcpy(f->lu, w, sizeof(double) * n * n);
    for (size_t k = 0; k < (size_t)n * n; k++)
        if (!isfinite(w[k])) {
            cl_lu_free(f);
            return cl_errf(err, CL_EINVAL, "%s: element (%zu, %zu) is not finite (%g)", what,
                           k / (size_t)n, k % (size_t)n, w[k]);
        }
    f->anorm = LAPACKE_dlange(LAPACK_ROW_MAJOR, '1', n, n, f->lu, n);
    lapack_int info = LAPACKE_dgetrf(LAPACK_ROW_MAJOR, n, n, f->lu, n, f->ipiv);
    if (info < 0) {
        cl_lu_free(f);
        return cl_errf(err, CL_EINVAL, "%s: dgetrf argument %d invalid", what, (int)-info);
    }
    if (info > 0) {
        cl_lu_free(f);
        return cl_errf(err, CL_EINVAL,
                       "%s (%d x %d) is singular: dgetrf found U(%d,%d) = 0 exactly, so W^-1 does not "
                       "exist and the conversion matrices are undefined",
                       what, n, n, (int)info, (int)info);
    }
    double rcond = 0;
    info = LAPACKE_dgecon(LAPACK_ROW_MAJOR, '1', n, f->lu, n, f->anorm, &rcond);
    if (info != 0) {
        cl_lu_free(f);
        return cl_errf(err, CL_EINVAL, "%s: dgecon failed (info %d)", what, (int)info);
    }
    f->rcond = rcond;
    if (!(rcond >= (double)n * DBL_EPSILON)) {
        double c = rcond > 0 ? 1.0 / rcond : INFINITY;
        cl_lu_free(f);
        return cl_errf(err, CL_EINVAL,
                       "%s (%d x %d) is singular to double precision: 1-norm condition number %.3g "
                       "(reciprocal %.3g < n * eps = %.3g); refusing to compute W^-1 X",
                       what, n, n, c, rcond, (double)n * DBL_EPSILON);
    }
    return 0;
}

int cl_lu_solve(const cl_lu *f, int nrhs, const double *b, double *x, cl_error *err) {
    if (!f || !f->lu || nrhs <= 0)
        return cl_errf(err, CL_EINVAL, "cl_lu_solve: no factorisation or nrhs = %d", nrhs);
    if (x != b) memcpy(x, b, sizeof(double) * (size_t)f->n * nrhs);
    lapack_int info = LAPACKE_dgetrs(LAPACK_ROW_MAJOR, 'N', f->n, nrhs, f->lu, f->n, f->ipiv, x, nrhs);
    if (info != 0) return cl_errf(err, CL_EINVAL, "cl_lu_solve: dgetrs failed (info %d)", (int)info);
    return 0;
}

double cl_lu_cond(const cl_lu *f) { return f && f->rcond > 0 ? 1.0 / f->rcond : INFINITY; }

void cl_lu_free(cl_lu *f) {
    if (!f) return;
    cl_free(f->lu);
    cl_free(f->ipiv);
    f->lu = NULL;
    f->ipiv = NULL;
}

/* --------------------------------------------------------------------------------------------------------- SVD */

/* jobz 'A' (full), 'S' (thin) or 'N'; u is m x m ('A') or m x min ('S'), vt n x n or min x n. a is destroyed. */
static int svd_raw(char jobz, int m, int n, double *a, double *u, double *s, double *vt, cl_error *err) {
    int mn = m < n ? m : n;
    int ldu = jobz == 'A' ? m : mn, ldvt = n;
    double *keep = dalloc((size_t)m * n, err);
    if (!keep) return pfx(err, "svd %d x %d", m, n);
    memcpy(keep, a, sizeof(double) * (size_t)m * n);
    double dummy = 0;
    /* with jobz 'N' the vectors are not referenced, but LAPACKE still checks the leading dimensions */
    lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, jobz, m, n, a, n, s, u ? u : &dummy, ldu, vt ? vt : &dummy,
                                     ldvt);
    if (info > 0) { /* divide and conquer did not converge: the QR-iteration driver */
        memcpy(a, keep, sizeof(double) * (size_t)m * n);
        double *superb = dalloc((size_t)mn, err);
        if (!superb) { cl_free(keep); return pfx(err, "svd %d x %d", m, n); }
        info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, jobz, jobz, m, n, a, n, s, u ? u : &dummy, ldu, vt ? vt : &dummy,
                              ldvt, superb);
        cl_free(superb);
    }
    cl_free(keep);
    if (info != 0)
        return cl_errf(err, CL_EINVAL, "SVD of a %d x %d matrix failed (dgesdd/dgesvd info %d)", m, n,
                       (int)info);
    return 0;
}

static int check_finite(int m, int n, const double *a, const char *where, cl_error *err) {
    for (size_t k = 0; k < (size_t)m * n; k++)
        if (!isfinite(a[k]))
            return cl_errf(err, CL_EINVAL, "%s: element (%zu, %zu) of the %d x %d matrix is not finite",
                           where, k / (size_t)n, k % (size_t)n, m, n);
    return 0;
}

int cl_svd(int m, int n, const double *a, double *u, double *s, double *vt, cl_error *err) {
    if (m <= 0 || n <= 0 || !a || !s) return cl_errf(err, CL_EINVAL, "cl_svd: bad size %d x %d", m, n);
    if (check_finite(m, n, a, "cl_svd", err)) return err ? err->code : CL_EINVAL;
    double *w = dalloc((size_t)m * n, err);
    if (!w) return pfx(err, "cl_svd %d x %d", m, n);
    memcpy(w, a, sizeof(double) * (size_t)m * n);
    int rc;
    if (!u && !vt) {
        rc = svd_raw('N', m, n, w, NULL, s, NULL, err);
    } else {
        double *uu = u ? u : dalloc((size_t)m * m, err);
        double *vv = vt ? vt : dalloc((size_t)n * n, err);
        if (!uu || !vv) {
            rc = pfx(err, "cl_svd %d x %d", m, n);
        } else {
            rc = svd_raw('A', m, n, w, uu, s, vv, err);
        }
        if (!u) cl_free(uu);
        if (!vt) cl_free(vv);
    }
    cl_free(w);
    return rc;
}

int cl_sv_basis(int m, int n, const double *a, cl_sv_side side, int k, double *out, cl_error *err) {
    int dim = side == CL_SV_LEFT ? m : n, mn = m < n ? m : n;
    if (m <= 0 || n <= 0 || k < 1 || k > dim)
        return cl_errf(err, CL_EINVAL,
                       "cl_sv_basis: %d %s singular vectors asked of a %d x %d matrix (1..%d possible)", k,
                       cl_sv_side_name(side), m, n, dim);
    if (check_finite(m, n, a, "cl_sv_basis", err)) return err ? err->code : CL_EINVAL;
    char jobz = k <= mn ? 'S' : 'A';
    int ucols = jobz == 'A' ? m : mn, vrows = jobz == 'A' ? n : mn;
    double *w = dalloc((size_t)m * n, err), *s = dalloc((size_t)mn, err);
    double *u = dalloc((size_t)m * ucols, err), *vt = dalloc((size_t)vrows * n, err);
    int rc = 0;
    if (!w || !s || !u || !vt) {
        rc = pfx(err, "cl_sv_basis %d x %d", m, n);
        goto done;
    }
    memcpy(w, a, sizeof(double) * (size_t)m * n);
    if ((rc = svd_raw(jobz, m, n, w, u, s, vt, err))) goto done;
    for (int t = 0; t < dim; t++)
        for (int c = 0; c < k; c++)
            out[(size_t)t * k + c] = side == CL_SV_LEFT ? u[(size_t)t * ucols + c] : vt[(size_t)c * n + t];
done:
    cl_free(w); cl_free(s); cl_free(u); cl_free(vt);
    return rc;
}

/* Thin QR of X (rows x r, rows >= r): Q (rows x r, overwrites x) and R (r x r upper triangular). */
static int thin_qr(int rows, int r, double *x, double *rr, cl_error *err) {
    double *tau = dalloc((size_t)r, err);
    if (!tau) return pfx(err, "thin QR");
    lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, rows, r, x, r, tau);
    if (info == 0) {
        for (int i = 0; i < r; i++)
            for (int j = 0; j < r; j++) rr[(size_t)i * r + j] = j >= i ? x[(size_t)i * r + j] : 0.0;
        info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, rows, r, r, x, r, tau);
    }
    cl_free(tau);
    if (info != 0) return cl_errf(err, CL_EINVAL, "QR of a %d x %d matrix failed (info %d)", rows, r,
                                  (int)info);
    return 0;
}

int cl_sv_basis_lowrank(int m, int n, int r, const double *l, const double *rm, cl_sv_side side, int k, double *out,
                        cl_error *err) {
    int dim = side == CL_SV_LEFT ? m : n;
    if (m <= 0 || n <= 0 || r <= 0 || k < 1 || k > dim)
        return cl_errf(err, CL_EINVAL,
                       "cl_sv_basis_lowrank: %d %s singular vectors asked of a %d x %d product of rank <= "
                       "%d",
                       k, cl_sv_side_name(side), m, n, r);
    if (check_finite(m, r, l, "cl_sv_basis_lowrank (left factor)", err) ||
        check_finite(n, r, rm, "cl_sv_basis_lowrank (right factor)", err))
        return err ? err->code : CL_EINVAL;
    int rc = 0;
    if (k > r || r > m || r > n) { /* the general path: form P = L R^T */
        double *p = dalloc((size_t)m * n, err);
        if (!p) return pfx(err, "cl_sv_basis_lowrank %d x %d", m, n);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, r, 1.0, l, r, rm, r, 0.0, p, n);
        rc = cl_sv_basis(m, n, p, side, k, out, err);
        cl_free(p);
        return rc;
    }
    double *ql = dalloc((size_t)m * r, err), *qr = dalloc((size_t)n * r, err);
    double *r1 = dalloc((size_t)r * r, err), *r2 = dalloc((size_t)r * r, err), *core = dalloc((size_t)r * r, err);
    double *cu = dalloc((size_t)r * r, err), *cs = dalloc((size_t)r, err), *cvt = dalloc((size_t)r * r, err);
    if (!ql || !qr || !r1 || !r2 || !core || !cu || !cs || !cvt) {
        rc = pfx(err, "cl_sv_basis_lowrank %d x %d, r = %d", m, n, r);
        goto done;
    }
    memcpy(ql, l, sizeof(double) * (size_t)m * r);
    memcpy(qr, rm, sizeof(double) * (size_t)n * r);
    if ((rc = thin_qr(m, r, ql, r1, err)) || (rc = thin_qr(n, r, qr, r2, err))) goto done;
    /* P = QL (R1 R2^T) QR^T; core = R1 R2^T = CU diag(CS) CVT, so P's singular vectors are QL CU and QR CVT^T. */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, r, r, 1.0, r1, r, r2, r, 0.0, core, r);
    if ((rc = svd_raw('A', r, r, core, cu, cs, cvt, err))) goto done;
    if (side == CL_SV_LEFT) /* out (m x k) = QL (m x r) CU[:, :k] */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, r, 1.0, ql, r, cu, r, 0.0, out, k);
    else /* out (n x k) = QR (n x r) CVT[:k, :]^T */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, k, r, 1.0, qr, r, cvt, r, 0.0, out, k);
done:
    cl_free(ql); cl_free(qr); cl_free(r1); cl_free(r2); cl_free(core); cl_free(cu); cl_free(cs); cl_free(cvt);
    return rc;
}

/* --------------------------------------------------------------------------------------------------------- phi */

double cl_phi_bases(int dim, const double *ux, int ldx, int i, const double *uy, int ldy, int j) {
    double tot = 0;
    for (int a = 0; a < i; a++)
        for (int b = 0; b < j; b++) {
            double dot = 0;
            for (int t = 0; t < dim; t++) dot += ux[(size_t)t * ldx + a] * uy[(size_t)t * ldy + b];
            tot += dot * dot;
        }
    return tot / (i < j ? i : j);
}

int cl_phi(int m, int n, const double *x, const double *y, int i, int j, cl_sv_side side, double *out,
           cl_error *err) {
    int dim = side == CL_SV_LEFT ? m : n;
    if (i < 1 || j < 1 || i > dim || j > dim)
        return cl_errf(err, CL_EINVAL, "phi: i = %d, j = %d out of range 1..%d for %s vectors of %d x %d",
                       i, j, dim, cl_sv_side_name(side), m, n);
    double *bx = dalloc((size_t)dim * i, err), *by = dalloc((size_t)dim * j, err);
    int rc = 0;
    if (!bx || !by) rc = pfx(err, "phi");
    else if (!(rc = cl_sv_basis(m, n, x, side, i, bx, err)) && !(rc = cl_sv_basis(m, n, y, side, j, by, err)))
        *out = cl_phi_bases(dim, bx, i, i, by, j, j);
    cl_free(bx);
    cl_free(by);
    return rc;
}

double cl_upper_mean(int n, const double *a) {
    if (n < 2) return NAN;
    double s = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) s += a[(size_t)i * n + j];
    return s / ((double)n * (n - 1) / 2);
}
