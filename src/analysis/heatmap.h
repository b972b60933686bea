/* Heat maps a person can read (every cell's value written in it, row and column labels, axis names, a colour bar,
 * a title) as SVG and as PNG (libpng, text drawn with a built-in 5x7 bitmap font), plus a small string builder for
 * the Markdown reports that embed them. Both writers are crash-safe (temporary file, fsync, rename). */
#ifndef CL_ANALYSIS_HEATMAP_H
#define CL_ANALYSIS_HEATMAP_H
#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

typedef struct {
    int rows, cols;
    const double *v;                 /* rows x cols, row-major; NaN = empty (grey) cell */
    const char *const *row_labels;   /* rows strings, or NULL for 1..rows */
    const char *const *col_labels;   /* cols strings, or NULL for 1..cols */
    const char *title;               /* printable ASCII; others are drawn as '?' in the PNG */
    const char *xlabel, *ylabel;     /* may be NULL */
    double vmin, vmax;               /* colour scale (vmax > vmin); values outside are clamped */
    int decimals;                    /* digits after the point in the cells (0..6) */
} cl_heatmap;

/* Viridis, t in [0, 1] (clamped) -> RGB. */
void cl_colormap(double t, uint8_t rgb[3]);

int cl_heatmap_svg(const cl_heatmap *h, const char *path, cl_error *err);
int cl_heatmap_png(const cl_heatmap *h, const char *path, cl_error *err);
/* The PNG's size in pixels, and the pixel rectangle of cell (r, c) (x0, y0, side), for tests and callers. */
void cl_heatmap_png_size(const cl_heatmap *h, int *width, int *height);
void cl_heatmap_cell_rect(const cl_heatmap *h, int r, int c, int *x0, int *y0, int *side);

/* The 5x7 font: 5 column bytes (bit 0 = top row) for printable ASCII 32..126; NULL otherwise. */
const uint8_t *cl_font5x7(int ch);

/* A growable string (Markdown reports, JSON-free text). On allocation failure `failed` is set and further appends
 * are ignored; check it before saving. */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} cl_sb;
void cl_sb_printf(cl_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cl_sb_free(cl_sb *b);
/* Saves the builder's text crash-safely to PATH. */
int cl_sb_save(const cl_sb *b, const char *path, cl_error *err);

#endif
