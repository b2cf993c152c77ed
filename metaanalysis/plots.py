"""Figures in the house style: vector, colour-blind-safe (Okabe & Ito palette), bilingual.

:func:`forest` draws metafor's forest plot from a fitted model: one row per study with its
effect and CI as numbers and its weight, the pooled diamond, the prediction interval, a null
line and, under the axis, which side favours the intervention. Ratio measures are shown on
their natural scale on a log axis.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from .grammar import COMMON_EFFECT_METHODS, RATIO_MEASURES, natural_scale
from .text import axis_label, counted, estimate_ci, num, percent, t

#: Okabe & Ito (2008) colours, readable with every common colour-vision deficiency.
PALETTE = {"blue": "#0072B2", "orange": "#E69F00", "vermillion": "#D55E00",
           "sky": "#56B4E9", "green": "#009E73", "grey": "#666666", "black": "#000000"}
FONT = "DejaVu Sans"


#: The house style: fonts, sizes, SVG text as text, fixed SVG ids. Applied only inside the
#: figure functions and when a figure is saved (:func:`house_style`), never to the session.
HOUSE_STYLE = {
    "font.family": FONT, "font.size": 9, "axes.spines.top": False,
    "axes.spines.right": False, "axes.spines.left": False, "svg.fonttype": "none",
    "svg.hashsalt": "metaanalysis", "figure.dpi": 100, "savefig.bbox": "tight",
}


def house_style():
    """``with house_style(): ...``: matplotlib's settings for the project's figures, restored
    on exit (matplotlib's ``rc_context``), so a researcher's own plots keep theirs."""
    import matplotlib

    return matplotlib.rc_context(HOUSE_STYLE)


def styled(draw):
    """Decorator: run a figure function inside :func:`house_style`."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with house_style():
            return draw(*args, **kwargs)

    return wrapper


def _study_rows(res, max_rows: int, group: str | None, idx=None):
    """Labels, yi, vi and weights of the rows to draw (of the effects ``idx``, default all);
    aggregated per group beyond max_rows."""
    idx = np.arange(len(res.yi)) if idx is None else np.asarray(idx)
    yi, vi = np.asarray(res.yi)[idx], np.asarray(res.vi)[idx]
    w = np.asarray(res.weights)[idx]
    labels = [res.slab[i] for i in idx]
    if res.data is not None:
        d = res.data.iloc[idx]
        if "author" in d and "year" in d:
            # once per study: its effects share its author, year and key (education's 1,334
            # effects are 195 studies), and parsing names is most of a label's work
            made = {}
            labels = [made[k] if k in made else made.setdefault(k, _label(*k))
                      for k in zip(d["author"], d["year"], labels)]
    if len(yi) <= max_rows:
        return labels, yi, vi, w, False
    keys = (list(res.data[group].iloc[idx]) if group and res.data is not None
            and group in res.data else labels)
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
    from .citations import short

    return short(author, year, fallback)


#: How a forest plot shows a negative weight (a CHE model can give one): not a percentage.
NEGATIVE_WEIGHT = "–*"


def new_figure(figsize, ax=None):
    """A new matplotlib figure and axes outside pyplot (no global state: nothing to close,
    nothing shown twice in a notebook), or the caller's ``ax`` and its figure."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


@dataclass
class Plot:
    """A drawn figure and what a reader needs to know about it: the matplotlib ``figure``,
    its ``alt`` text (one sentence), and whether it was laid out by hand in its own figure
    (``fixed_layout``: the house layout, not drawn into a caller's ``ax``); every figure is
    saved with the house style's tight box. Shows itself as SVG in a notebook; ``svg()``
    gives the :class:`SVGFigure` the site uses, ``savefig`` saves in the house style."""

    figure: object
    alt: str
    fixed_layout: bool = False

    def svg(self, caption: str = "") -> "SVGFigure":
        return svg_figure(self, caption)

    def savefig(self, fname, **kwargs):
        kwargs.setdefault("bbox_inches", "tight")
        with house_style():
            self.figure.savefig(fname, **kwargs)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.svg()._repr_mimebundle_(include, exclude)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.alt!r})"


@dataclass(repr=False)
class ForestPlot(Plot):
    """A forest plot: the labels of the ``rows`` drawn (studies or groups), whether effects
    were ``grouped`` by study, and the labels of the ``subgroups``' diamonds."""

    rows: list = field(default_factory=list)
    grouped: bool = False
    subgroups: list = field(default_factory=list)
    #: rows drawn with a negative weight (shown as NEGATIVE_WEIGHT, explained in the caption)
    negative_weights: int = 0


@styled
def forest(res, *, lang: str = "en", favours: str = "higher", outcome: str = "",
           max_rows: int = 40, group: str | None = "key", subgroup: str | None = None,
           digits: int = 2, ax=None):
    """A forest plot of a fitted :class:`~metaanalysis.models.RMAResult`, as a
    :class:`ForestPlot` (the matplotlib ``figure``, its ``alt`` text, the ``rows`` drawn and the
    ``subgroups``' diamonds).

    ``favours`` says which side is good for the intervention: ``"higher"`` (e.g. functional
    improvement) or ``"lower"`` (e.g. mortality); anything else (``""``: not known) draws no
    "favours" labels under the axis. Beyond ``max_rows`` effects, the effects of
    each ``group`` (a study, by default) are drawn as one row, their inverse-variance mean.
    With ``subgroup`` (a column of the model's data), the studies are shown by subgroup, each
    with its own diamond (the same model fitted to the subgroup). With ``ax`` (a matplotlib
    Axes, as statsmodels' ``plot_forest``), the plot is drawn into it: the study labels,
    estimates and weights go left and right of the axes (leave about 0.6 and 1.1 axes widths
    of room). Without, a new figure outside pyplot (nothing is left open or shown twice).
    """

    ratio = res.measure in RATIO_MEASURES
    tf = natural_scale(res.measure)
    from .distributions import norm_isf
    crit = float(norm_isf((1 - res.level / 100) / 2))
    # the rows, top to bottom: ("study", label, yi, vi, weight), ("header", text) or
    # ("diamond", label, prediction)
    rows, grouped, all_lo, all_hi = [], False, [], []
    sub = (_group_labels(res.data[subgroup], lang) if subgroup and res.data is not None
           and subgroup in res.data else None)
    missing = t("not_reported", lang)
    levels = sorted(set(sub) - {missing}) + ([missing] if missing in set(sub) else []) \
        if sub is not None else [None]
    for level_name in levels:
        idx = np.flatnonzero(sub == level_name) if sub is not None else None
        labels, yi, vi, w, g = _study_rows(res, max_rows, group, idx)
        grouped |= g
        if sub is not None:
            rows.append(("header", level_name))
        rows += [("study", lab, y, v, wt) for lab, y, v, wt in zip(labels, yi, vi, w)]
        all_lo += list(yi - crit * np.sqrt(vi))
        all_hi += list(yi + crit * np.sqrt(vi))
        if sub is not None and len(idx) >= 1:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                part = _refit_subset(res, idx)
            for w in caught:  # said with the subgroup it concerns, never silenced
                from .models import in_context

                warnings.warn(in_context(w.message, "in_subgroup", group=str(level_name)),
                              stacklevel=2)
            rows.append(("diamond", f"{level_name} (k = {len(idx)})", part.predict()))
    n = len(rows)
    pooled = res.predict() if len(res.beta) == 1 else None
    height = 1.5 + 0.22 * (n + 3)
    fixed = ax is None
    from matplotlib.transforms import BboxTransformTo, blended_transform_factory
    if ax is None:
        fig, ax = new_figure((9.0, height))
        fig.subplots_adjust(left=0.25, right=0.66, top=1 - 0.3 / height, bottom=0.95 / height)
        # the house layout: text columns at fractions of the figure's width (of its box as
        # made, as matplotlib's "figure fraction" coordinates are)
        across = BboxTransformTo(fig.figbbox)

        def col(f):
            return f
    else:
        fig = ax.figure
        # in the caller's axes: the same columns relative to the axes (in the house layout
        # the axes span 0.25 to 0.66 of the figure: 0.02 of it is (0.02 - 0.25) / 0.41)
        across = ax.transAxes

        def col(f):
            return (f - 0.25) / 0.41
    # the table's cells: a column's x, a row's y (data). Plain texts, not annotations: the
    # same place, to the byte, for half the work (an annotation recomputes its transform at
    # every measure and draw)
    cells = blended_transform_factory(across, ax.transData)

    def cell(text, x, y, **style):
        # ax.text's steps, with a Text that lays itself out once per SVG (see _cell_class),
        # but for the clip path ax.text gives every text: a cell is never clipped
        # (clip_on=False), so neither its drawing nor its tight box reads it, and setting it
        # composed a new transform per cell, a child of the axes' own (about 30 ms of
        # education's two forest plots)
        txt = _cell_class()(col(x), y, text, verticalalignment="center", transform=cells,
                            clip_on=False, **style)
        ax._add_text(txt)
    null = 1.0 if ratio else 0.0
    ax.axvline(null, color=PALETTE["black"], lw=0.8, ls="-")
    level = f"{res.level:g}"
    wmax = max([r[4] for r in rows if r[0] == "study"], default=1.0)

    def ci_text(e, a, b_):
        return f"{num(tf(e), lang, digits)} [{num(tf(a), lang, digits)}; {num(tf(b_), lang, digits)}]"

    def diamond(y, pred, colour, label, bold=True, weight_text=""):
        d = np.array([[pred["ci_lb"], y], [pred["pred"], y + 0.3], [pred["ci_ub"], y],
                      [pred["pred"], y - 0.3]])
        ax.fill(tf(d[:, 0]), d[:, 1], color=colour, zorder=4)
        cell(label, 0.02, y, weight="bold" if bold else "normal")
        cell(ci_text(pred["pred"], pred["ci_lb"], pred["ci_ub"]), 0.68, y,
             weight="bold" if bold else "normal")
        if weight_text:
            cell(weight_text, 0.985, y, ha="right", weight="bold")

    labels_drawn = []
    marks = []  # (x, row position, size, low, high) of each study row, drawn at once below
    for pos, row in zip(np.arange(n, 0, -1) + 2.0, rows):
        if row[0] == "header":
            cell(_shorten(row[1], 40), 0.02, pos, weight="bold", style="italic")
        elif row[0] == "diamond":
            diamond(pos, row[2], PALETTE["sky"], _shorten(row[1], 38), bold=False)
        else:
            _, lab, y, v, wt = row
            a, b_ = y - crit * math.sqrt(v), y + crit * math.sqrt(v)
            size = 4 + 10 * math.sqrt(max(wt, 0.0) / wmax)  # a correlated effect can weigh < 0
            marks.append((tf(y), pos, size**2 / 2, tf(a), tf(b_)))
            cell(_shorten(lab, 38), 0.02, pos)
            cell(ci_text(y, a, b_), 0.68, pos, family=FONT)
            # a negative weight (possible in a CHE model) is not a share: a dash and a note
            cell(percent(wt, lang, 1) if wt >= 0 else NEGATIVE_WEIGHT, 0.985, pos, ha="right")
            labels_drawn.append(lab)
    if marks:
        x_, p_, s_, a_, b_ = map(np.array, zip(*marks))
        ax.hlines(p_, a_, b_, color=PALETTE["grey"], lw=0.9)
        ax.scatter(x_, p_, marker="s", s=s_, color=PALETTE["blue"], zorder=3, linewidths=0)
    has_pi = (pooled is not None and res.method not in COMMON_EFFECT_METHODS
              and np.isfinite(pooled["pi_lb"]))
    if pooled is not None:
        diamond(1, pooled, PALETTE["vermillion"], t("pooled", lang, method=res.model_name),
                weight_text="100" + ("\u00a0%" if lang == "fr" else "%"))
        ax.axvline(tf(pooled["pred"]), color=PALETTE["vermillion"], lw=0.6, ls=":", zorder=1)
        if has_pi:
            ax.hlines(0.25, tf(pooled["pi_lb"]), tf(pooled["pi_ub"]), color=PALETTE["orange"],
                      lw=2.2)
            cell(t("prediction", lang), 0.02, 0.25, color=PALETTE["grey"])
            cell(f"[{num(tf(pooled['pi_lb']), lang, digits)}; "
                 f"{num(tf(pooled['pi_ub']), lang, digits)}]", 0.68, 0.25, color=PALETTE["grey"])
    _x_axis(ax, ratio, lang, np.array(all_lo), np.array(all_hi), pooled)
    ax.set_ylim(-0.4, n + 3.6)
    ax.set_yticks([])
    ax.set_xlabel(axis_label(res.measure, lang))
    cell(t("study", lang), 0.02, n + 3.1, weight="bold")
    cell(t("estimate_ci", lang, level=level), 0.68, n + 3.1, weight="bold")
    cell(t("weight", lang), 0.985, n + 3.1, weight="bold", ha="right")
    # which side favours the intervention, under the axis (unsaid where the outcome does
    # not say which way is good)
    good_right = favours == "higher"
    sides = (("left", "right", "\u2190 "), ("right", "left", " \u2192"))
    for side, ha, arrow in sides if favours in ("higher", "lower") else ():
        good = (side == "right") == good_right
        text = t("favours_intervention" if good else "favours_control", lang)
        ax.annotate(arrow + text if side == "left" else text + arrow, (null, 0),
                    xycoords=("data", "axes fraction"), textcoords="offset points",
                    xytext=(-4 if side == "left" else 4, -40), ha=ha, fontsize=7.5,
                    color=PALETTE["grey"], annotation_clip=False)
    est_txt = (estimate_ci(tf(pooled["pred"]), tf(pooled["ci_lb"]), tf(pooled["ci_ub"]), lang,
                           digits, res.level) if pooled is not None else "")
    negative = sum(1 for r in rows if r[0] == "study" and r[4] < 0)
    return ForestPlot(fig, t("forest_alt", lang, k=counted(res.k, "effect", lang),
                             outcome=outcome or res.measure, est=est_txt),
                      fixed_layout=fixed, rows=labels_drawn,
                      grouped=grouped, subgroups=[r[1] for r in rows if r[0] == "diamond"],
                      negative_weights=negative)


@functools.cache
def _cell_class():
    """The texts of a forest plot's table (hundreds of them): matplotlib Texts that keep
    their layout between the SVG's two passes over them (its tight box measures every text,
    then its drawing lays each out again: the same layout, from the same measurements).
    Kept only for the renderers of :func:`_svg_canvas` (their measurements, shared by the
    two passes, are the key, with the dpi); any other renderer lays them out as usual. A
    cell is never changed once made (its text and font are the layout's inputs)."""
    from matplotlib.text import Text

    class Cell(Text):
        _layout = None

        def _get_layout(self, renderer):
            metrics = getattr(renderer, "_metrics", None)
            if metrics is None:
                return super()._get_layout(renderer)
            key = (id(metrics), self.get_figure(root=True).dpi)
            if self._layout is None or self._layout[0] != key:
                self._layout = (key, super()._get_layout(renderer))
            return self._layout[1]

    return Cell


def _refit_subset(res, idx):
    """The same kind of model fitted to the effects ``idx`` (a subgroup's diamond)."""
    from .grammar import TWO_BY_TWO_METHODS
    from .models import RMAResult, refit

    if getattr(res, "rho", None) is not None:  # CHE with robust variance
        from .rve import che
        cl = np.asarray(res.cluster)[idx]
        if len(set(cl)) >= 2:
            return che(res.yi[idx], res.vi[idx], cluster=cl, rho=res.rho, level=res.level)
    elif hasattr(res, "sigma2_between"):
        from .multilevel import rma_mv
        cl = res.data["key"].to_numpy()[idx] if res.data is not None and "key" in res.data \
            else np.asarray(res.slab)[idx]
        if len(set(cl)) >= 2:
            return rma_mv(res.yi[idx], res.vi[idx], cluster=cl, level=res.level)
    if isinstance(res, RMAResult) and res.method in TWO_BY_TWO_METHODS:
        from .models import _fit
        return _fit(res.yi[idx], res.vi[idx], np.ones((len(idx), 1)), ["intercept"], "FE",
                    "z", res.level, res.measure, qprofile=False, r2=False)
    if isinstance(res, RMAResult) and not hasattr(res, "sigma2_between"):
        return refit(res, res.yi[idx], res.vi[idx])
    from .models import _fit  # a single cluster: a random-effects model of its effects
    return _fit(res.yi[idx], res.vi[idx], np.ones((len(idx), 1)), ["intercept"], "REML", "z",
                res.level, res.measure, qprofile=False, r2=False)


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


def _group_labels(column, lang: str) -> np.ndarray:
    """A subgroup column as text labels; a missing or empty value is its own group, "not
    reported" (never dropped, never a crash)."""
    import pandas as pd

    missing = t("not_reported", lang)
    return np.array([missing if (v is None or (not isinstance(v, str) and pd.isna(v))
                                 or (isinstance(v, str) and not v.strip())) else str(v)
                     for v in column], dtype=object)


#: The key of a figure's output metadata: its alt text and caption, from which the site
#: builds the ``<figure>`` around the SVG (see :func:`figure_html`).
FIGURE_METADATA = "metaanalysis/figure"


#: The smallest text a reader gets on any screen, in CSS pixels: a figure is never shown so
#: narrow that its smallest text falls below it; on a phone it scrolls sideways in its box.
MIN_TEXT_PX = 9
SCROLL_CUE = {"fr": "Faites défiler la figure vers la droite →",
              "en": "Scroll the figure sideways →"}


def figure_html(svg: str, alt: str, caption: str = "", lang: str | None = None) -> str:
    """A figure as the site shows it: the inline SVG in a ``<figure>``, with its alt text
    (``role='img'``) and its caption, both escaped. The SVG gets a minimum width at which its
    smallest text is :data:`MIN_TEXT_PX` pixels (on a narrow screen the figure scrolls within
    its box, with a cue in ``lang``, rather than shrinking to unreadable text)."""
    import html
    import math
    import re

    cue = ""
    box = re.search(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) [\d.]+"', svg)
    sizes = [float(x) for x in re.findall(r"font-size: ?([\d.]+)px", svg)]
    if box and sizes and min(sizes) > 0:
        width = math.ceil(MIN_TEXT_PX * float(box.group(1)) / min(sizes))
        svg = svg.replace("<svg ", f'<svg style="min-width: {width}px" ', 1)
        if lang in SCROLL_CUE and width > 400:
            cue = f"<p class='scroll-cue'>{html.escape(SCROLL_CUE[lang])}</p>"
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f"<figure class='figure'>{cue}<div role='img' aria-label=\"{html.escape(alt)}\">"
            f"{svg}</div>{cap}</figure>")


class SVGFigure:
    """A figure: its SVG, alt text and caption; shows itself in any notebook viewer.

    Its output holds ``image/svg+xml`` (JupyterLab), ``image/png`` (VS Code, GitHub,
    nbviewer, an untrusted notebook in the lab; drawn only when the kernel's PNG formatter is
    on, so a render that turns it off never pays for it) and ``text/plain`` (the alt text),
    with the alt text and caption in the output's metadata; the site turns them into the
    ``<figure>`` of :func:`figure_html`. No HTML form: a viewer that sanitizes HTML would
    strip the SVG and show its text."""

    def __init__(self, svg: str, alt: str, caption: str = "", figure=None, dpi: int = 100):
        self.svg, self.alt, self.caption = svg, alt, caption
        self._figure, self.dpi = figure, dpi

    def html(self) -> str:
        """The figure as the site shows it (:func:`figure_html`)."""
        return figure_html(self.svg, self.alt, self.caption)

    def png(self) -> bytes | None:
        """The figure as PNG (None if the matplotlib figure is not kept)."""
        if self._figure is None:
            return None
        import io

        buf = io.BytesIO()
        with house_style():
            self._figure.savefig(buf, format="png", dpi=self.dpi, bbox_inches="tight",
                                 metadata={"Software": None})
        return buf.getvalue()

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = {"image/svg+xml": self.svg, "text/plain": repr(self)}
        wanted = (not include or "image/png" in include) and "image/png" not in (exclude or ())
        if wanted and _png_formatter_on():
            png = self.png()
            if png is not None:
                import base64

                data["image/png"] = base64.b64encode(png).decode("ascii")  # as IPython sends
        return data, {FIGURE_METADATA: {"alt": self.alt, "caption": self.caption}}

    def __repr__(self) -> str:
        text = self.alt or "figure"
        return f"{text} ({self.caption})" if self.caption and self.caption not in text else text


def _png_formatter_on() -> bool:
    """Whether the running IPython computes PNG forms (``--PNGFormatter.enabled=False``
    turns it off, as the site's render does); True outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return True
    ip = get_ipython()
    if ip is None:
        return True
    formatter = ip.display_formatter.formatters.get("image/png")
    return formatter is None or formatter.enabled


#: An SVG's user unit is the point: matplotlib draws every SVG at 72 dpi.
SVG_DPI = 72


def _vector_only(fig) -> bool:
    """No raster image and nothing rasterized: the figure's SVG does not depend on the dpi."""
    return not any(getattr(ax, "images", None) for ax in fig.axes) and not any(
        a.get_rasterized() for a in fig.findobj() if hasattr(a, "get_rasterized"))


def _svg_canvas(fig):
    """A canvas printing ``fig`` to SVG as matplotlib's own does, byte for byte, but whose
    renderers share their texts' measurements.

    matplotlib caches a text's size per renderer, and measuring the tight box (one renderer)
    then drawing (another) measured every text twice: the two forest plots of a note spent
    most of their time there (FreeType lays out each string). An SVG renderer's measurement
    depends only on the string, its font properties, whether it is mathtext and the
    settings in force (font lists, kerning), which hold for one save: the canvas keeps one
    cache for the renderers of its saves, and is made for one :func:`svg_figure`. Sets
    itself as the figure's canvas (restore the former one after)."""
    return _svg_classes()[0](fig)


@functools.cache
def _svg_classes():
    """The canvas and renderer classes of :func:`_svg_canvas` (matplotlib imported lazily)."""
    import codecs

    from matplotlib import cbook
    from matplotlib.backends.backend_mixed import MixedModeRenderer
    from matplotlib.backends.backend_svg import FigureCanvasSVG, RendererSVG

    class Renderer(RendererSVG):
        def __init__(self, *args, metrics: dict, heights: dict, figure, **kwargs):
            super().__init__(*args, **kwargs)
            self._metrics, self._heights, self._figure = metrics, heights, figure

        def get_text_width_height_descent(self, s, prop, ismath):
            key = (s, prop.copy(), ismath)  # a copy: FontProperties is mutable
            if key not in self._metrics:
                self._metrics[key] = super().get_text_width_height_descent(s, prop, ismath)
            return self._metrics[key]

        def _get_font_height_metrics(self, prop):
            # Text._get_layout (matplotlib 3.11) asks a renderer that has this method for a
            # font's ascent, descent and line gap, else finds the font and reads its tables
            # itself, for every text it lays out (twice a text: measured, then drawn): the
            # same numbers, by the same arithmetic at the figure's dpi, once per font
            dpi = self._figure.dpi
            key = (prop.copy(), dpi)
            if key not in self._heights:
                self._heights[key] = _font_height_metrics(prop, dpi)
            return self._heights[key]

    class Canvas(FigureCanvasSVG):
        def __init__(self, figure):
            super().__init__(figure)
            self._metrics, self._heights = {}, {}

        def print_svg(self, filename, *, bbox_inches_restore=None, metadata=None, **_):
            # FigureCanvasSVG.print_svg (matplotlib 3.11) with the renderer above; print_figure
            # passes a canvas not of matplotlib's own the options SVG ignores (dpi, colours)
            with cbook.open_file_cm(filename, "w", encoding="utf-8") as fh:
                if not cbook.file_requires_unicode(fh):
                    fh = codecs.getwriter("utf-8")(fh)
                dpi = self.figure.dpi
                self.figure.dpi = 72
                width, height = self.figure.get_size_inches()
                renderer = MixedModeRenderer(
                    self.figure, width, height, dpi,
                    Renderer(width * 72, height * 72, fh, image_dpi=dpi, metadata=metadata,
                             metrics=self._metrics, heights=self._heights,
                             figure=self.figure),
                    bbox_inches_restore=bbox_inches_restore)
                self.figure.draw(renderer)
                renderer.finalize()

    return Canvas, Renderer


def _font_height_metrics(prop, dpi):
    """The ascent, descent and line gap that matplotlib 3.11's ``Text._get_layout`` computes
    for a font (``prop``) at ``dpi`` when its renderer does not give them: from the font's
    OS/2 table, else its hhea table, else (None, None, None) (the text then measures "lp")."""
    from matplotlib.font_manager import fontManager, get_font

    font = get_font(fontManager._find_fonts_by_props(prop))
    for table_name, linegap_key, ascent_key, descent_key in (
            ("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
            ("hhea", "lineGap", "ascent", "descent")):
        table = font.get_sfnt_table(table_name)
        if table is None:
            continue
        fontsize = prop.get_size_in_points()
        units_per_em = font.get_sfnt_table("head")["unitsPerEm"]
        scale = 1 / units_per_em * fontsize * dpi / 72
        return table[ascent_key] * scale, -table[descent_key] * scale, table[linegap_key] * scale
    return None, None, None


def _tight_bbox(fig):
    """The bounding box that matplotlib's ``bbox_inches="tight"`` gives the figure's SVG (the
    house style's, for every figure), measured without the drawing pass matplotlib makes
    first: so each SVG is drawn once. matplotlib's "tight" draws the whole figure with drawing
    disabled, then measures; measuring alone sizes the same texts, ticks and artists with
    the same SVG renderer at the SVG's 72 dpi. Saved at 72 dpi (the dpi matplotlib's SVG
    backend draws at anyway; it matters only for raster images, see _vector_only), the file
    is the same to the byte (tests/test_figures.py compares every kind of figure; the site's
    pages were compared byte for byte). Needs the house style (``savefig.pad_inches``) and
    the canvas of :func:`_svg_canvas` (whose texts' sizes the drawing then reuses)."""
    from matplotlib import rcParams
    from matplotlib.backend_bases import _get_renderer

    dpi = fig.dpi
    try:
        # the renderer print_svg would draw with (it sets the figure to 72 dpi)
        renderer = _get_renderer(fig, fig.canvas.print_svg)
        bbox = fig.get_tightbbox(renderer)
    finally:
        fig.dpi = dpi
    pad = rcParams["savefig.pad_inches"]
    return bbox.padded(pad, pad)


def svg_figure(plot, caption: str = "") -> SVGFigure:
    """Render a :class:`Plot` (or a bare matplotlib figure) to deterministic SVG (no date,
    fixed ids); a figure made through pyplot is closed."""
    import io
    import re

    fig = getattr(plot, "figure", plot)
    buf = io.StringIO()
    with house_style():
        if _vector_only(fig):  # drawn once (see _tight_bbox), texts measured once
            canvas = fig.canvas
            _svg_canvas(fig)
            try:
                fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None},
                            bbox_inches=_tight_bbox(fig), dpi=SVG_DPI)
            finally:
                fig.set_canvas(canvas)
        else:
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None},
                        bbox_inches="tight")
    if getattr(fig.canvas, "manager", None) is not None:  # made with pyplot: close it
        import matplotlib.pyplot as plt

        plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and DOCTYPE for inline use
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    # SVG 2's href (every browser) rather than xlink:href; matplotlib's <style> element
    # (round line joins) lives in note.css, so the page's allowlist needs neither
    svg = svg.replace("xlink:href=", "href=").replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "")
    svg = re.sub(r"<style[^>]*>.*?</style>", "", svg, flags=re.S)
    svg = IDENTITY_ROTATION.sub(r"\1", svg)
    return SVGFigure(svg, getattr(plot, "alt", ""), caption, figure=fig)


#: matplotlib gives every aligned text (x, y and text-anchor) a rotation about its anchor,
#: by 0 degrees for a horizontal text: ``transform="rotate(-0 12.96 1588.4177)"``. A rotation
#: by 0 is no transform, but a browser draws each transformed text apart: with them, the
#: 800 texts of education's page made it 11% larger and Chromium's print of it 5-10% slower.
#: Dropped from the texts (what a reader sees is the same, to the pixel: tested).
IDENTITY_ROTATION = re.compile(
    r'(<text\b[^>]*?) transform="rotate\(-?0 -?[\d.]+(?:e[-+]?\d+)? -?[\d.]+(?:e[-+]?\d+)?\)"')
