/* Heat maps as SVG and PNG with a built-in 5x7 bitmap font, and a string builder for Markdown reports. */
#include "analysis/heatmap.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "core/util.h"

/* ------------------------------------------------------------------------------------------------ the 5x7 font */

/* Printable ASCII 32..126, 5 columns each, bit 0 = top row (the classic HD44780-style 5x7 glyphs). */
static const uint8_t font5x7[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00}, /*  !" */
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62}, /* #$% */
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, {0x00, 0x1C, 0x22, 0x41, 0x00}, /* &'( */
    {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x14, 0x08, 0x3E, 0x08, 0x14}, {0x08, 0x08, 0x3E, 0x08, 0x08}, /* )*+ */
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x60, 0x60, 0x00, 0x00}, /* ,-. */
    {0x20, 0x10, 0x08, 0x04, 0x02}, {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00}, /* /01 */
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31}, {0x18, 0x14, 0x12, 0x7F, 0x10}, /* 234 */
    {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03}, /* 567 */
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x36, 0x36, 0x00, 0x00}, /* 89: */
    {0x00, 0x56, 0x36, 0x00, 0x00}, {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14}, /* ;<= */
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06}, {0x32, 0x49, 0x79, 0x41, 0x3E}, /* >?@ */
    {0x7E, 0x11, 0x11, 0x11, 0x7E}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22}, /* ABC */
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x09, 0x01}, /* DEF */
    {0x3E, 0x41, 0x49, 0x49, 0x7A}, {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00}, /* GHI */
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, {0x7F, 0x40, 0x40, 0x40, 0x40}, /* JKL */
    {0x7F, 0x02, 0x0C, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E}, /* MNO */
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46}, /* PQR */
    {0x46, 0x49, 0x49, 0x49, 0x31}, {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F}, /* STU */
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F}, {0x63, 0x14, 0x08, 0x14, 0x63}, /* VWX */
    {0x07, 0x08, 0x70, 0x08, 0x07}, {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x00}, /* YZ[ */
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7F, 0x00}, {0x04, 0x02, 0x01, 0x02, 0x04}, /* \]^ */
    {0x40, 0x40, 0x40, 0x40, 0x40}, {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78}, /* _`a */
    {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20}, {0x38, 0x44, 0x44, 0x48, 0x7F}, /* bcd */
    {0x38, 0x54, 0x54, 0x54, 0x18}, {0x08, 0x7E, 0x09, 0x01, 0x02}, {0x0C, 0x52, 0x52, 0x52, 0x3E}, /* efg */
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00}, {0x20, 0x40, 0x44, 0x3D, 0x00}, /* hij */
    {0x7F, 0x10, 0x28, 0x44, 0x00}, {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x18, 0x04, 0x78}, /* klm */
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38}, {0x7C, 0x14, 0x14, 0x14, 0x08}, /* nop */
    {0x08, 0x14, 0x14, 0x18, 0x7C}, {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20}, /* qrs */
    {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C}, {0x1C, 0x20, 0x40, 0x20, 0x1C}, /* tuv */
    {0x3C, 0x40, 0x30, 0x40, 0x3C}, {0x44, 0x28, 0x10, 0x28, 0x44}, {0x0C, 0x50, 0x50, 0x50, 0x3C}, /* wxy */
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00}, {0x00, 0x00, 0x7F, 0x00, 0x00}, /* z{| */
    {0x00, 0x41, 0x36, 0x08, 0x00}, {0x10, 0x08, 0x08, 0x10, 0x08},                                 /* }~  */
};

const uint8_t *cl_font5x7(int ch) { return ch >= 32 && ch <= 126 ? font5x7[ch - 32] : NULL; }

/* ------------------------------------------------------------------------------------------------- colour map */

void cl_colormap(double t, uint8_t rgb[3]) {
    static const uint8_t stops[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},
                                        {44, 113, 142}, {33, 144, 141}, {39, 173, 129},
                                        {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
    if (!(t > 0)) t = 0; /* also NaN */
    if (t > 1) t = 1;
    double x = t * 8;
    int i = (int)x;
    if (i > 7) i = 7;
    double f = x - i;
    for (int k = 0; k < 3; k++) rgb[k] = (uint8_t)lround(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]));
}

static int dark(const uint8_t rgb[3]) { return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 128; }

/* ----------------------------------------------------------------------------------------------------- layout */

typedef struct {
    int cs;      /* cell side */
    int ts;      /* text scale of cell values and labels (glyph 6*ts x 8*ts) */
    int tts;     /* title scale */
    int left, top, gw, gh;
    int bar_x, bar_w;
    int width, height;
    int dec;
} layout;

enum { PAD = 12, GAP = 8 };

static int text_w(const char *s, int scale) { int n = (int)strlen(s); return n ? (6 * n - 1) * scale : 0; }

static void fmt_val(char *buf, size_t n, double v, int dec) {
    if (isnan(v)) buf[0] = 0;
    else snprintf(buf, n, "%.*f", dec, v);
}

static void label(const cl_heatmap *h, int row, int i, char *buf, size_t n) {
    const char *const *l = row ? h->row_labels : h->col_labels;
    if (l && l[i]) snprintf(buf, n, "%s", l[i]);
    else snprintf(buf, n, "%d", i + 1);
}

static int decimals(const cl_heatmap *h) { return h->decimals < 0 ? 0 : h->decimals > 6 ? 6 : h->decimals; }

static void compute_layout(const cl_heatmap *h, layout *L) {
    memset(L, 0, sizeof *L);
    L->dec = decimals(h);
    char buf[64];
    int maxv = 1;
    for (int k = 0; k < h->rows * h->cols; k++) {
        fmt_val(buf, sizeof buf, h->v[k], L->dec);
        int n = (int)strlen(buf);
        if (n > maxv) maxv = n;
    }
    L->ts = h->cols <= 16 && h->rows <= 16 ? 2 : 1;
    L->tts = 2;
    L->cs = (6 * maxv - 1) * L->ts + 4 * L->ts + 4;
    if (L->cs < 10 * L->ts + 6) L->cs = 10 * L->ts + 6;
    int maxrl = 0;
    for (int r = 0; r < h->rows; r++) {
        label(h, 1, r, buf, sizeof buf);
        if (text_w(buf, L->ts) > maxrl) maxrl = text_w(buf, L->ts);
    }
    L->top = PAD + 8 * L->tts + 2 * GAP;
    L->left = PAD + (h->ylabel && *h->ylabel ? 8 * L->ts + GAP : 0) + maxrl + GAP;
    L->gw = h->cols * L->cs;
    L->gh = h->rows * L->cs;
    L->bar_x = L->left + L->gw + 2 * GAP;
    L->bar_w = 10 * L->ts;
    char t0[32], t1[32];
    fmt_val(t0, sizeof t0, h->vmin, L->dec);
    fmt_val(t1, sizeof t1, h->vmax, L->dec);
    int tw = text_w(t0, L->ts) > text_w(t1, L->ts) ? text_w(t0, L->ts) : text_w(t1, L->ts);
    L->width = L->bar_x + L->bar_w + 4 + 4 * L->ts + tw + PAD;
    int title_w = h->title ? text_w(h->title, L->tts) + 2 * PAD : 0;
    if (L->width < title_w) L->width = title_w;
    int xl_w = h->xlabel ? L->left + text_w(h->xlabel, L->ts) + PAD : 0;
    if (L->width < xl_w) L->width = xl_w;
    L->height = L->top + L->gh + GAP + 8 * L->ts + (h->xlabel && *h->xlabel ? GAP + 8 * L->ts : 0) + PAD;
    int ylab_h = h->ylabel ? L->top + text_w(h->ylabel, L->ts) + PAD : 0;
    if (L->height < ylab_h) L->height = ylab_h;
}

void cl_heatmap_png_size(const cl_heatmap *h, int *width, int *height) {
    layout L;
    compute_layout(h, &L);
    *width = L.width;
    *height = L.height;
}

void cl_heatmap_cell_rect(const cl_heatmap *h, int r, int c, int *x0, int *y0, int *side) {
    layout L;
    compute_layout(h, &L);
    *x0 = L.left + c * L.cs;
    *y0 = L.top + r * L.cs;
    *side = L.cs;
}

/* colour-bar tick intervals: 4 when the labels fit, else only the ends */
static int ticks(const layout *L) { return L->gh >= 4 * (8 * L->ts + 4) ? 4 : 1; }

static double norm_t(const cl_heatmap *h, double v) { return (v - h->vmin) / (h->vmax - h->vmin); }

static int check_map(const cl_heatmap *h, const char *path, cl_error *err) {
    if (!h || h->rows < 1 || h->cols < 1 || h->rows > 4096 || h->cols > 4096 || !h->v)
        return cl_errf(err, CL_EINVAL, "%s: bad heat map (%d x %d)", path, h ? h->rows : 0,
                       h ? h->cols : 0);
    if (!(h->vmax > h->vmin) || !isfinite(h->vmin) || !isfinite(h->vmax))
        return cl_errf(err, CL_EINVAL, "%s: colour scale [%g, %g] is empty", path, h->vmin, h->vmax);
    return 0;
}

/* --------------------------------------------------------------------------------------------- string builder */

void cl_sb_printf(cl_sb *b, const char *fmt, ...) {
    if (b->failed) return;
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = b->s ? vsnprintf(b->s + b->len, room, fmt, ap) : -2;
        va_end(ap);
        if (n == -1) { b->failed = 1; return; }
        if (n >= 0 && (size_t)n < room) { b->len += (size_t)n; return; }
        size_t need = b->len + (n > 0 ? (size_t)n : 0) + 1, cap = b->cap ? b->cap : 1024;
        while (cap < need) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) { b->failed = 1; return; }
        b->s = s;
        b->cap = cap;
    }
}

void cl_sb_free(cl_sb *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

int cl_sb_save(const cl_sb *b, const char *path, cl_error *err) {
    if (b->failed) return cl_errf(err, CL_ENOMEM, "%s: out of memory while building the text", path);
    return cl_atomic_write(path, b->s ? b->s : "", b->len, err);
}

/* ------------------------------------------------------------------------------------------------------- SVG */

static void xml_text(cl_sb *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': cl_sb_printf(b, "&amp;"); break;
        case '<': cl_sb_printf(b, "&lt;"); break;
        case '>': cl_sb_printf(b, "&gt;"); break;
        case '"': cl_sb_printf(b, "&quot;"); break;
        default:
            if ((unsigned char)*s >= 32 || *s == '\t') cl_sb_printf(b, "%c", *s);
        }
    }
}

int cl_heatmap_svg(const cl_heatmap *h, const char *path, cl_error *err) {
    int rc = check_map(h, path, err);
    if (rc) return rc;
    layout L;
    compute_layout(h, &L);
    int fs = 9 * L.ts + 1, tfs = 9 * L.tts + 2; /* font sizes close to the PNG's glyphs */
    cl_sb b = {0};
    cl_sb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                     "font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\">\n",
                 L.width, L.height, L.width, L.height);
    cl_sb_printf(&b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", L.width, L.height);
    if (h->title) {
        cl_sb_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"%d\" text-anchor=\"middle\" font-weight=\"bold\">",
                     L.width / 2, PAD + 8 * L.tts, tfs);
        xml_text(&b, h->title);
        cl_sb_printf(&b, "</text>\n");
    }
    char buf[64];
    cl_sb_printf(&b, "<g class=\"cells\" font-size=\"%d\" text-anchor=\"middle\" dominant-baseline=\"central\">\n",
                 fs);
    for (int r = 0; r < h->rows; r++)
        for (int c = 0; c < h->cols; c++) {
            double v = h->v[(size_t)r * h->cols + c];
            uint8_t rgb[3] = {200, 200, 200};
            if (!isnan(v)) cl_colormap(norm_t(h, v), rgb);
            int x = L.left + c * L.cs, y = L.top + r * L.cs;
            cl_sb_printf(&b, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                             "fill=\"#%02x%02x%02x\"><title>(%d, %d) %.6g</title></rect>\n",
                         x, y, L.cs, L.cs, rgb[0], rgb[1], rgb[2], r + 1, c + 1, v);
            fmt_val(buf, sizeof buf, v, L.dec);
            if (buf[0])
                cl_sb_printf(&b, "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", x + L.cs / 2, y + L.cs / 2,
                             dark(rgb) ? "#ffffff" : "#000000", buf);
        }
    cl_sb_printf(&b, "</g>\n<g font-size=\"%d\">\n", fs);
    for (int r = 0; r < h->rows; r++) {
        label(h, 1, r, buf, sizeof buf);
        cl_sb_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" dominant-baseline=\"central\">", L.left - GAP,
                     L.top + r * L.cs + L.cs / 2);
        xml_text(&b, buf);
        cl_sb_printf(&b, "</text>\n");
    }
    for (int c = 0; c < h->cols; c++) {
        label(h, 0, c, buf, sizeof buf);
        cl_sb_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", L.left + c * L.cs + L.cs / 2,
                     L.top + L.gh + GAP + 7 * L.ts);
        xml_text(&b, buf);
        cl_sb_printf(&b, "</text>\n");
    }
    if (h->xlabel && *h->xlabel) {
        cl_sb_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", L.left + L.gw / 2,
                     L.top + L.gh + 2 * GAP + 15 * L.ts);
        xml_text(&b, h->xlabel);
        cl_sb_printf(&b, "</text>\n");
    }
    if (h->ylabel && *h->ylabel) {
        int x = PAD + 7 * L.ts, y = L.top + L.gh / 2;
        cl_sb_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 %d %d)\">", x, y, x,
                     y);
        xml_text(&b, h->ylabel);
        cl_sb_printf(&b, "</text>\n");
    }
    cl_sb_printf(&b, "</g>\n<defs><linearGradient id=\"cbar\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n");
    for (int k = 0; k <= 8; k++) {
        uint8_t rgb[3];
        cl_colormap(k / 8.0, rgb);
        cl_sb_printf(&b, "<stop offset=\"%.3f\" stop-color=\"#%02x%02x%02x\"/>\n", k / 8.0, rgb[0], rgb[1], rgb[2]);
    }
    cl_sb_printf(&b, "</linearGradient></defs>\n");
    cl_sb_printf(&b, "<rect class=\"colorbar\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"url(#cbar)\" "
                     "stroke=\"#000000\" stroke-width=\"1\"/>\n",
                 L.bar_x, L.top, L.bar_w, L.gh);
    cl_sb_printf(&b, "<g font-size=\"%d\" dominant-baseline=\"central\">\n", fs);
    for (int k = 0, nt = ticks(&L); k <= nt; k++) {
        double v = h->vmin + (h->vmax - h->vmin) * k / nt;
        int y = L.top + L.gh - (int)lround((double)L.gh * k / nt);
        fmt_val(buf, sizeof buf, v, L.dec);
        cl_sb_printf(&b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000000\"/>", L.bar_x + L.bar_w, y,
                     L.bar_x + L.bar_w + 3, y);
        cl_sb_printf(&b, "<text x=\"%d\" y=\"%d\">%s</text>\n", L.bar_x + L.bar_w + 4 + 2 * L.ts, y, buf);
    }
    cl_sb_printf(&b, "</g>\n</svg>\n");
    rc = cl_sb_save(&b, path, err);
    cl_sb_free(&b);
    return rc;
}

/* ------------------------------------------------------------------------------------------------------- PNG */

typedef struct {
    int w, h;
    uint8_t *px; /* RGB */
} canvas;

static void fill(canvas *cv, int x0, int y0, int w, int h, const uint8_t rgb[3]) {
    for (int y = y0 < 0 ? 0 : y0; y < y0 + h && y < cv->h; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x0 + w && x < cv->w; x++) memcpy(cv->px + 3 * ((size_t)y * cv->w + x), rgb, 3);
}

/* Draws S with its top-left corner at (x, y); rotated: reads bottom-to-top with the top-left corner of the first
 * glyph at (x, y) being the bottom-left of the text's bounding box. */
static void draw_text(canvas *cv, int x, int y, const char *s, int scale, const uint8_t rgb[3], int rotated) {
    for (int i = 0; s[i]; i++) {
        const uint8_t *g = cl_font5x7((unsigned char)s[i]);
        if (!g) g = cl_font5x7('?');
        for (int col = 0; col < 5; col++)
            for (int row = 0; row < 7; row++) {
                if (!(g[col] >> row & 1)) continue;
                int gx = 6 * i + col, gy = row;
                if (!rotated) fill(cv, x + gx * scale, y + gy * scale, scale, scale, rgb);
                else fill(cv, x + gy * scale, y - (gx + 1) * scale, scale, scale, rgb);
            }
    }
}

typedef struct {
    jmp_buf jb;
    char msg[256];
} png_ctx;

static void png_err_cb(png_structp p, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(p);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jb, 1);
}
static void png_warn_cb(png_structp p, png_const_charp msg) { (void)p; (void)msg; }

/* Writes an RGB image (w x h) crash-safely. */
static int write_png(const char *path, int w, int h, const uint8_t *px, cl_error *err) {
    cl_atomic_file af;
    int rc = cl_atomic_open(&af, path, err);
    if (rc) return rc;
    png_ctx ctx;
    ctx.msg[0] = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_err_cb, png_warn_cb);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        cl_atomic_abort(&af);
        return cl_errf(err, CL_ENOMEM, "%s: libpng could not allocate its state", path);
    }
    if (setjmp(ctx.jb)) {
        png_destroy_write_struct(&png, &info);
        cl_atomic_abort(&af);
        return cl_errf(err, CL_EIO, "%s: libpng: %s", path, ctx.msg);
    }
    png_init_io(png, af.f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(px + 3 * (size_t)y * w));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return cl_atomic_commit(&af, err);
}

int cl_heatmap_png(const cl_heatmap *h, const char *path, cl_error *err) {
    int rc = check_map(h, path, err);
    if (rc) return rc;
    layout L;
    compute_layout(h, &L);
    canvas cv = {L.width, L.height, NULL};
    cv.px = cl_alloc((size_t)L.width * L.height, 3, err);
    if (!cv.px) return cl_err_prefix(err, "%s (%d x %d pixels)", path, L.width, L.height), CL_ENOMEM;
    memset(cv.px, 255, (size_t)L.width * L.height * 3);
    static const uint8_t black[3] = {0, 0, 0}, white[3] = {255, 255, 255}, grey[3] = {200, 200, 200};
    if (h->title) draw_text(&cv, (L.width - text_w(h->title, L.tts)) / 2, PAD, h->title, L.tts, black, 0);
    char buf[64];
    for (int r = 0; r < h->rows; r++)
        for (int c = 0; c < h->cols; c++) {
            double v = h->v[(size_t)r * h->cols + c];
            uint8_t rgb[3];
            if (isnan(v)) memcpy(rgb, grey, 3);
            else cl_colormap(norm_t(h, v), rgb);
            int x = L.left + c * L.cs, y = L.top + r * L.cs;
            fill(&cv, x, y, L.cs, L.cs, rgb);
            fmt_val(buf, sizeof buf, v, L.dec);
            if (buf[0])
                draw_text(&cv, x + (L.cs - text_w(buf, L.ts)) / 2, y + (L.cs - 7 * L.ts) / 2, buf, L.ts,
                          dark(rgb) ? white : black, 0);
        }
    for (int r = 0; r < h->rows; r++) {
        label(h, 1, r, buf, sizeof buf);
        draw_text(&cv, L.left - GAP - text_w(buf, L.ts), L.top + r * L.cs + (L.cs - 7 * L.ts) / 2, buf, L.ts, black,
                  0);
    }
    for (int c = 0; c < h->cols; c++) {
        label(h, 0, c, buf, sizeof buf);
        draw_text(&cv, L.left + c * L.cs + (L.cs - text_w(buf, L.ts)) / 2, L.top + L.gh + GAP, buf, L.ts, black, 0);
    }
    if (h->xlabel && *h->xlabel)
        draw_text(&cv, L.left + (L.gw - text_w(h->xlabel, L.ts)) / 2, L.top + L.gh + 2 * GAP + 8 * L.ts, h->xlabel,
                  L.ts, black, 0);
    if (h->ylabel && *h->ylabel) {
        int tw = text_w(h->ylabel, L.ts), y = L.top + L.gh / 2 + tw / 2;
        if (y > L.height - PAD) y = L.height - PAD;
        draw_text(&cv, PAD, y, h->ylabel, L.ts, black, 1);
    }
    /* colour bar: value increases upwards; black frame and ticks */
    for (int y = 0; y < L.gh; y++) {
        uint8_t rgb[3];
        cl_colormap(L.gh > 1 ? 1.0 - (double)y / (L.gh - 1) : 1.0, rgb);
        fill(&cv, L.bar_x, L.top + y, L.bar_w, 1, rgb);
    }
    fill(&cv, L.bar_x - 1, L.top - 1, L.bar_w + 2, 1, black);
    fill(&cv, L.bar_x - 1, L.top + L.gh, L.bar_w + 2, 1, black);
    fill(&cv, L.bar_x - 1, L.top - 1, 1, L.gh + 2, black);
    fill(&cv, L.bar_x + L.bar_w, L.top - 1, 1, L.gh + 2, black);
    for (int k = 0, nt = ticks(&L); k <= nt; k++) {
        double v = h->vmin + (h->vmax - h->vmin) * k / nt;
        int y = L.top + L.gh - (int)lround((double)L.gh * k / nt);
        fill(&cv, L.bar_x + L.bar_w, y, 4, 1, black);
        fmt_val(buf, sizeof buf, v, L.dec);
        draw_text(&cv, L.bar_x + L.bar_w + 4 + 2 * L.ts, y - (7 * L.ts) / 2, buf, L.ts, black, 0);
    }
    rc = write_png(path, cv.w, cv.h, cv.px, err);
    cl_free(cv.px);
    return rc;
}
