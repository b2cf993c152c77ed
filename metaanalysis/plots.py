"""Figures in the house style: vector, colour-blind-safe (Okabe & Ito palette), bilingual.

:func:`forest` draws metafor's forest plot from a fitted model: one row per study with its
effect and CI as numbers and its weight, the pooled diamond, the prediction interval, a null
line and, under the axis, which side favours the intervention. Ratio measures are shown on
their natural scale on a log axis.
"""

from __future__ import annotations

import math

import numpy as np

from .grammar import RATIO_MEASURES
from .text import estimate_ci, num, percent, t

#: Okabe & Ito (2008) colours, readable with every common colour-vision deficiency.
PALETTE = {"blue": "#0072B2", "orange": "#E69F00", "vermillion": "#D55E00",
           "sky": "#56B4E9", "green": "#009E73", "grey": "#666666", "black": "#000000"}
FONT = "DejaVu Sans"


def style():
    """Apply the house style to matplotlib (fonts, sizes, SVG text as text, no metadata date)."""
    import matplotlib

    matplotlib.rcParams.update({
        "font.family": FONT, "font.size": 9, "axes.spines.top": False,
        "axes.spines.right": False, "axes.spines.left": False, "svg.fonttype": "none",
        "svg.hashsalt": "metaanalysis", "figure.dpi": 100, "savefig.bbox": "tight",
    })


def _study_rows(res, max_rows: int, group: str | None):
    """Labels, yi, vi and weights of the rows to draw; aggregated per group beyond max_rows."""
    yi, vi = np.asarray(res.yi), np.asarray(res.vi)
    w = res.weights
    labels = list(res.slab)
    if res.data is not None:
        d = res.data
        if "author" in d and "year" in d:
            labels = [_label(a, y, s) for a, y, s in zip(d["author"], d["year"], labels)]
    if len(yi) <= max_rows:
        return labels, yi, vi, w, False
    keys = list(res.data[group]) if group and res.data is not None and group in res.data else labels
    order, agg = [], {}
    for i, g in enumerate(keys):
        if g not in agg:
            order.append(g)
            agg[g] = []
        agg[g].append(i)
    out_l, out_y, out_v, out_w = [], [], [], []
    for g in order:
        idx = np.array(agg[g])
        wi = 1 / vi[idx]
        out_y.append(float(np.sum(wi * yi[idx]) / wi.sum()))
        out_v.append(float(1 / wi.sum()))
        out_w.append(float(w[idx].sum()))
        out_l.append(f"{labels[idx[0]]} ({len(idx)})" if len(idx) > 1 else labels[idx[0]])
    return out_l, np.array(out_y), np.array(out_v), np.array(out_w), True


def _label(author, year, fallback) -> str:
    from .bibliography import latex_to_text

    a = latex_to_text(str(author or "")).strip()
    if not a:
        return str(fallback)
    names = [n.strip() for n in a.split(" and ") if n.strip()]
    first = names[0].split(",")[0].strip()
    if len(names) > 2 or "others" in a:
        first += " et al."
    elif len(names) == 2:
        first += " & " + names[1].split(",")[0].strip()
    y = "" if year is None or (isinstance(year, float) and math.isnan(year)) else (
        f" {int(year)}" if isinstance(year, (int, float)) else f" {year}")
    return first + y


def forest(res, *, lang: str = "en", favours: str = "higher", outcome: str = "",
           max_rows: int = 40, group: str | None = "key", digits: int = 2):
    """A forest plot of a fitted :class:`~metaanalysis.models.RMAResult`; returns the figure.

    ``favours`` says which side is good for the intervention: ``"higher"`` (e.g. functional
    improvement) or ``"lower"`` (e.g. mortality). Beyond ``max_rows`` effects, the effects of
    each ``group`` (a study, by default) are drawn as one row, their inverse-variance mean.
    The figure's ``alt`` attribute holds a sentence describing it.
    """
    import matplotlib.pyplot as plt

    style()
    ratio = res.measure in RATIO_MEASURES
    tf = np.exp if ratio else (lambda x: x)
    labels, yi, vi, w, grouped = _study_rows(res, max_rows, group)
    n = len(yi)
    crit = 1.959963984540054 if res.level == 95 else float(
        __import__("scipy.stats", fromlist=["norm"]).norm.isf((1 - res.level / 100) / 2))
    lo, hi = yi - crit * np.sqrt(vi), yi + crit * np.sqrt(vi)
    pooled = res.predict() if len(res.beta) == 1 else None
    height = 1.5 + 0.22 * (n + 3)
    fig, ax = plt.subplots(figsize=(9.0, height))
    fig.subplots_adjust(left=0.25, right=0.66, top=1 - 0.3 / height, bottom=0.95 / height)
    ys = np.arange(n, 0, -1) + 2.0
    sizes = 4 + 10 * np.sqrt(w / w.max()) if n else []
    ax.hlines(ys, tf(lo), tf(hi), color=PALETTE["grey"], lw=0.9)
    ax.scatter(tf(yi), ys, marker="s", s=np.asarray(sizes) ** 2 / 2, color=PALETTE["blue"],
               zorder=3, linewidths=0)
    null = 1.0 if ratio else 0.0
    ax.axvline(null, color=PALETTE["black"], lw=0.8, ls="-")
    level = f"{res.level:g}"
    if pooled is not None:
        b, l_, u_ = pooled["pred"], pooled["ci_lb"], pooled["ci_ub"]
        diamond = np.array([[l_, 1], [b, 1.3], [u_, 1], [b, 0.7]])
        ax.fill(tf(diamond[:, 0]), diamond[:, 1], color=PALETTE["vermillion"], zorder=4)
        ax.axvline(tf(b), color=PALETTE["vermillion"], lw=0.6, ls=":", zorder=1)
        if res.method not in ("FE", "MH", "PETO") and np.isfinite(pooled["pi_lb"]):
            ax.hlines(0.25, tf(pooled["pi_lb"]), tf(pooled["pi_ub"]), color=PALETTE["orange"],
                      lw=2.2)
    _x_axis(ax, ratio, lang, lo, hi, pooled)
    ax.set_ylim(-0.4, n + 3.6)
    ax.set_yticks([])
    ax.set_xlabel(t(f"axis.{res.measure}", lang) if res.measure in
                  ("OR", "RR", "ROM", "SMD", "MD", "RD", "COR", "ZCOR", "PR", "PLO") else
                  t("axis.GEN", lang))
    # columns of text: labels on the left, effect [CI] and weight on the right
    left = ("figure fraction", "data")
    ax.annotate(t("study", lang), (0.02, n + 3.1), xycoords=left, weight="bold", va="center")
    ax.annotate(t("estimate_ci", lang, level=level), (0.68, n + 3.1), xycoords=left,
                weight="bold", va="center")
    ax.annotate(t("weight", lang), (0.985, n + 3.1), xycoords=left, weight="bold",
                va="center", ha="right")
    for y, lab, e, a, b_, wt in zip(ys, labels, yi, lo, hi, w):
        ax.annotate(_shorten(lab, 38), (0.02, y), xycoords=left, va="center")
        ax.annotate(f"{num(tf(e), lang, digits)} [{num(tf(a), lang, digits)}; "
                    f"{num(tf(b_), lang, digits)}]", (0.68, y), xycoords=left, va="center",
                    family=FONT)
        ax.annotate(percent(wt, lang, 1), (0.985, y), xycoords=left, va="center", ha="right")
    if pooled is not None:
        ax.annotate(t("pooled", lang, method=res.method), (0.02, 1), xycoords=left,
                    va="center", weight="bold")
        ax.annotate(f"{num(tf(pooled['pred']), lang, digits)} [{num(tf(pooled['ci_lb']), lang, digits)}; "
                    f"{num(tf(pooled['ci_ub']), lang, digits)}]", (0.68, 1), xycoords=left,
                    va="center", weight="bold")
        ax.annotate("100" + ("\u00a0%" if lang == "fr" else "%"), (0.985, 1), xycoords=left,
                    va="center", ha="right", weight="bold")
        if res.method not in ("FE", "MH", "PETO") and np.isfinite(pooled["pi_lb"]):
            ax.annotate(t("prediction", lang), (0.02, 0.25), xycoords=left, va="center",
                        color=PALETTE["grey"])
            ax.annotate(f"[{num(tf(pooled['pi_lb']), lang, digits)}; "
                        f"{num(tf(pooled['pi_ub']), lang, digits)}]", (0.68, 0.25),
                        xycoords=left, va="center", color=PALETTE["grey"])
    # which side favours the intervention, under the axis
    good_right = favours == "higher"
    for side, ha, arrow in (("left", "right", "\u2190 "), ("right", "left", " \u2192")):
        good = (side == "right") == good_right
        text = t("favours_intervention" if good else "favours_control", lang)
        ax.annotate(arrow + text if side == "left" else text + arrow, (null, 0),
                    xycoords=("data", "axes fraction"), textcoords="offset points",
                    xytext=(-4 if side == "left" else 4, -40), ha=ha, fontsize=7.5,
                    color=PALETTE["grey"], annotation_clip=False)
    est_txt = (estimate_ci(tf(pooled["pred"]), tf(pooled["ci_lb"]), tf(pooled["ci_ub"]), lang,
                           digits, res.level) if pooled is not None else "")
    fig.alt = t("forest_alt", lang, k=res.k, outcome=outcome or res.measure, est=est_txt)
    fig.grouped = grouped
    fig.rows = labels
    fig.fixed_layout = True
    return fig


def _x_axis(ax, ratio, lang, lo, hi, pooled):
    """Limits wide enough for most intervals (very wide ones are cut) and readable ticks."""
    centre = pooled["pred"] if pooled is not None else float(np.median((lo + hi) / 2))
    span = 3.0 if ratio else max(4 * float(np.median(hi - lo)), 1e-9)
    a = max(float(np.min(lo)), centre - span)
    b = min(float(np.max(hi)), centre + span)
    if pooled is not None and np.isfinite(pooled["pi_lb"]):
        a, b = min(a, pooled["pi_lb"]), max(b, pooled["pi_ub"])
    null = 0.0
    a, b = min(a, null), max(b, null)
    pad = 0.05 * (b - a)
    from matplotlib.ticker import FuncFormatter, MaxNLocator
    if ratio:
        ax.set_xscale("log")
        log_ticks(ax, math.exp(a - pad), math.exp(b + pad), lang)
    else:
        ax.set_xlim(a - pad, b + pad)
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _tick(x, lang)))


def log_ticks(ax, lo: float, hi: float, lang: str) -> None:
    """Readable ticks on a log x axis between lo and hi (0.5, 1, 2 ... never 2 x 10^-1)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    ax.set_xlim(lo, hi)
    ticks = [x for x in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
             if lo <= x <= hi]
    if len(ticks) < 4:
        ticks = sorted(set(ticks) | {x for x in (0.25, 0.33, 0.67, 0.8, 1.25, 1.5, 3, 4)
                                     if lo <= x <= hi})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _tick(x, lang)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _tick(x: float, lang: str) -> str:
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    s = s.replace("-", "\u2212")
    return s.replace(".", ",") if lang == "fr" else s


def _shorten(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


class SVGFigure:
    """A figure as inline SVG with alt text and a caption; shows itself in Jupyter."""

    def __init__(self, svg: str, alt: str, caption: str = ""):
        self.svg, self.alt, self.caption = svg, alt, caption

    def _repr_html_(self) -> str:
        import html

        cap = f"<figcaption>{html.escape(self.caption)}</figcaption>" if self.caption else ""
        return (f"<figure class='figure'><div role='img' aria-label=\"{html.escape(self.alt)}\">"
                f"{self.svg}</div>{cap}</figure>")


def svg_figure(fig, caption: str = "") -> SVGFigure:
    """Render a matplotlib figure to deterministic SVG (no date, fixed ids) and close it."""
    import io
    import re

    import matplotlib.pyplot as plt

    buf = io.StringIO()
    # figures laid out by hand skip the "tight" bounding box, which costs a second drawing
    bbox = None if getattr(fig, "fixed_layout", False) else "tight"
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches=bbox)
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and DOCTYPE for inline use
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    return SVGFigure(svg, getattr(fig, "alt", ""), caption)
