#!/usr/bin/env python3
"""A small SVG line chart from a TSV (standard library only): the first column is x, every other column a series
(header = names; '-' or empty = missing). Log2 x axis when --logx.

usage: bench/plot_lines.py IN.tsv OUT.svg --title T --xlabel X --ylabel Y [--logx]
"""
import argparse
import math

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv")
    ap.add_argument("svg")
    ap.add_argument("--title", default="")
    ap.add_argument("--xlabel", default="")
    ap.add_argument("--ylabel", default="")
    ap.add_argument("--logx", action="store_true")
    a = ap.parse_args()
    with open(a.tsv) as f:
        rows = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    head, rows = rows[0], rows[1:]
    xs = [float(r[0]) for r in rows]
    series = []
    for j in range(1, len(head)):
        pts = [(x, float(r[j])) for x, r in zip(xs, rows) if j < len(r) and r[j] not in ("", "-")]
        series.append((head[j], pts))
    ys = [y for _, pts in series for _, y in pts] or [0, 1]
    y0, y1 = 0.0, max(ys) * 1.08
    fx = (lambda x: math.log2(x)) if a.logx else (lambda x: x)
    x0, x1 = fx(min(xs)), fx(max(xs))
    W, H, L, T, R, B = 760, 440, 80, 50, 190, 60
    pw, ph = W - L - R, H - T - B
    px = lambda x: L + pw * (fx(x) - x0) / ((x1 - x0) or 1)
    py = lambda y: T + ph - ph * (y - y0) / ((y1 - y0) or 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="28" font-size="16">{a.title}</text>',
           f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>']
    for k in range(6):
        y = y0 + (y1 - y0) * k / 5
        out.append(f'<line x1="{L}" x2="{L + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{L - 6}" y="{py(y) + 4:.1f}" font-size="11" text-anchor="end">{y:.0f}</text>')
    for x in xs:
        out.append(f'<text x="{px(x):.1f}" y="{T + ph + 16}" font-size="11" text-anchor="middle">{x:g}</text>')
    out.append(f'<text x="{L + pw / 2}" y="{H - 18}" font-size="12" text-anchor="middle">{a.xlabel}</text>')
    out.append(f'<text x="18" y="{T + ph / 2}" font-size="12" text-anchor="middle" '
               f'transform="rotate(-90 18 {T + ph / 2})">{a.ylabel}</text>')
    for i, (name, pts) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        if pts:
            out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="' +
                       " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts) + '"/>')
            out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>' for x, y in pts]
        out.append(f'<rect x="{L + pw + 15}" y="{T + 10 + 20 * i}" width="12" height="12" fill="{c}"/>')
        out.append(f'<text x="{L + pw + 32}" y="{T + 21 + 20 * i}" font-size="12">{name}</text>')
    out.append("</svg>")
    with open(a.svg, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
