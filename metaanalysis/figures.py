"""The figures a reviewer expects beside the forest plot, in the house style of :mod:`plots`.

- :func:`funnel`: contour-enhanced funnel plot (Peters et al., 2008), trim-and-fill effects
  marked when given;
- :func:`rob_traffic_light` and :func:`rob_summary`: risk of bias per study and domain, and
  weighted summary bars (as robvis; McGuinness & Higgins, 2021);
- :func:`prisma`: the PRISMA 2020 flow diagram counted from the screening annotations
  (Page et al., 2021);
- :func:`gap_map`: an evidence gap map (3ie style) across themes and outcomes.

Each function computes a plain table first (``*_table``) and draws from it, so the numbers a
figure shows can be checked directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .grammar import RATIO_MEASURES, natural_scale, rob_level
from .plots import PALETTE, Plot, new_figure, styled
from .text import WORDS, axis_label, counted, num, t

ROB_LEVELS = ("low", "some concerns", "high", "no information")
ROB_COLOURS = {"low": PALETTE["green"], "some concerns": "#F0E442", "high": PALETTE["vermillion"],
               "no information": "#BBBBBB"}
ROB_SYMBOLS = {"low": "+", "some concerns": "?", "high": "−", "no information": ""}


@dataclass(repr=False)
class PrismaPlot(Plot):
    """The PRISMA flow diagram and its ``counts`` (:func:`prisma2020`)."""

    counts: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- funnel
@styled
def funnel(res, *, lang: str = "en", trimfill=None, outcome: str = "", ax=None):
    """Contour-enhanced funnel plot: effects against their standard errors, with shaded
    regions of two-sided p-values (0.10, 0.05, 0.01) around the null; trim-and-fill effects
    as open circles when ``trimfill`` (a :class:`~metaanalysis.bias.TrimFillResult`) is given.
    With ``ax``, drawn into that matplotlib Axes. Returns a :class:`~metaanalysis.plots.Plot`."""
    ratio = res.measure in RATIO_MEASURES
    tf = natural_scale(res.measure)
    sei = np.sqrt(res.vi)
    top = float(sei.max()) * 1.05 if len(sei) else 1.0
    fig, ax = new_figure((6.4, 4.6), ax)
    se_grid = np.linspace(0, top, 100)
    for z, shade in ((2.576, "#F2F2F2"), (1.960, "#D9D9D9"), (1.645, "#BFBFBF")):
        ax.fill_betweenx(se_grid, tf(-z * se_grid), tf(z * se_grid), color=shade, lw=0)
    ax.fill_betweenx(se_grid, tf(-1.645 * se_grid), tf(1.645 * se_grid), color="white", lw=0)
    ax.axvline(tf(res.estimate), color=PALETTE["vermillion"], lw=1)
    ax.axvline(tf(0.0), color=PALETTE["black"], lw=0.6, ls=":")
    ax.scatter(tf(res.yi), sei, s=18, color=PALETTE["blue"], zorder=3, label=t("observed", lang))
    n_filled = 0
    if trimfill is not None and trimfill.k0 > 0:
        n_filled = trimfill.k0
        ax.scatter(tf(trimfill.filled_yi), np.sqrt(trimfill.filled_vi), s=22,
                   facecolors="white", edgecolors=PALETTE["black"], zorder=3,
                   label=t("filled", lang))
    ax.set_ylim(top, 0)
    xs = np.r_[res.yi, trimfill.filled_yi if trimfill is not None and trimfill.k0 else []]
    span = max(float(np.max(np.abs(xs - res.estimate))), 1.96 * top) * 1.1
    if ratio:
        from .plots import log_ticks
        ax.set_xscale("log")
        log_ticks(ax, math.exp(min(res.estimate - span, -0.1)),
                  math.exp(max(res.estimate + span, 0.1)), lang)
    else:
        ax.set_xlim(min(res.estimate - span, -0.1), max(res.estimate + span, 0.1))
    ax.set_ylabel(t("standard_error", lang))
    ax.set_xlabel(axis_label(res.measure, lang))
    from matplotlib.patches import Patch
    handles = [Patch(color="white", label="p > 0,10" if lang == "fr" else "p > 0.10"),
               Patch(color="#BFBFBF", label="0,05 < p < 0,10" if lang == "fr" else "0.05 < p < 0.10"),
               Patch(color="#D9D9D9", label="0,01 < p < 0,05" if lang == "fr" else "0.01 < p < 0.05"),
               Patch(color="#F2F2F2", label="p < 0,01" if lang == "fr" else "p < 0.01")]
    h, _ = ax.get_legend_handles_labels()
    ax.legend(handles=h + handles, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7,
              frameon=False)
    ax.spines["left"].set_visible(True)
    return Plot(fig, t("funnel_alt", lang, k=counted(res.k, "effect", lang),
                       outcome=outcome or res.measure,
                       filled=counted(n_filled, "imputed_study", lang)))


# --------------------------------------------------------------------------- risk of bias
def rob_table(effects: pd.DataFrame) -> pd.DataFrame:
    """One row per study, one column per risk-of-bias domain (``rob_*``) and ``overall``.

    Judgements are normalised by :func:`~metaanalysis.grammar.rob_level` (low / some
    concerns / high / no information). Without an overall
    judgement, the overall is the worst domain (Cochrane RoB 2's rule).
    """
    cols = [c for c in effects.columns if c.startswith("rob_")]
    has_overall = "risk_of_bias" in effects.columns
    if not cols and not has_overall:
        return pd.DataFrame()
    studies = effects.groupby("key", sort=False).first()
    out = pd.DataFrame(index=studies.index)
    for c in cols:
        out[c[4:].replace("_", " ")] = studies[c].map(rob_level)
    if has_overall:
        out["overall"] = studies["risk_of_bias"].map(rob_level)
    else:
        order = {lev: i for i, lev in enumerate(("low", "some concerns", "high"))}
        out["overall"] = out.apply(lambda r: max((v for v in r if v in order),
                                                 key=order.get, default="no information"), axis=1)
    return out


@styled
def rob_traffic_light(effects: pd.DataFrame, *, lang: str = "en", labels: dict | None = None,
                      ax=None):
    """Traffic-light plot: a coloured, symbol-marked cell per study and domain (a
    :class:`~metaanalysis.plots.Plot`; None without risk-of-bias data). With ``ax``, drawn
    into that matplotlib Axes."""
    table = rob_table(effects)
    if table.empty:
        return None
    n, m = table.shape
    fig, ax = new_figure((1.6 + 0.9 * m + 1.8, 0.9 + 0.28 * n), ax)
    for i, (_, row) in enumerate(table.iterrows()):
        for j, value in enumerate(row):
            ax.scatter(j, i, s=150, color=ROB_COLOURS[value], edgecolors="#333333",
                       linewidths=0.4)
            ax.text(j, i, ROB_SYMBOLS[value], ha="center", va="center", fontsize=8,
                    color="black")
    ax.set_xticks(range(m), [_wrap(c) for c in table.columns], fontsize=7)
    ax.xaxis.tick_top()
    shown = labels or {}
    ax.set_yticks(range(n), [shown.get(s, s) for s in table.index], fontsize=7)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(-0.6, m - 0.4)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    counts = table["overall"].value_counts()
    return Plot(fig, t("rob_alt", lang, n=counted(n, "study", lang),
                       low=int(counts.get("low", 0)), high=int(counts.get("high", 0))))


def rob_summary_table(effects: pd.DataFrame, weights: pd.Series | None = None) -> pd.DataFrame:
    """Percent of studies (or of weight) at each level, per domain."""
    table = rob_table(effects)
    if table.empty:
        return table
    w = (weights.reindex(table.index).fillna(0) if weights is not None
         else pd.Series(1.0, index=table.index))
    rows = {}
    for dom in table.columns:
        rows[dom] = {lev: 100 * w[table[dom] == lev].sum() / w.sum() for lev in ROB_LEVELS}
    return pd.DataFrame(rows).T


@styled
def rob_summary(effects: pd.DataFrame, *, weights=None, lang: str = "en", ax=None):
    """Stacked bars: the share of studies (or weight) at low, some concerns and high risk (a
    :class:`~metaanalysis.plots.Plot`); with ``ax``, drawn into that matplotlib Axes."""
    summary = rob_summary_table(effects, weights)
    if summary.empty:
        return None
    fig, ax = new_figure((7, 0.8 + 0.35 * len(summary)), ax)
    left = np.zeros(len(summary))
    for lev in ROB_LEVELS:
        vals = summary[lev].to_numpy()
        ax.barh(range(len(summary)), vals, left=left, color=ROB_COLOURS[lev],
                edgecolor="white", label=t(f"rob.{lev}", lang))
        left += vals
    ax.set_yticks(range(len(summary)), [_wrap(s, 30) for s in summary.index], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(t("rob_share_weight" if weights is not None else "rob_share", lang))
    ax.legend(ncol=4, fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    return Plot(fig, t("rob_summary_alt", lang, low=num(summary.loc["overall", "low"], lang, 0)))


def _wrap(s: str, width: int = 14) -> str:
    """Lines of at most about ``width`` characters (breaking at spaces and hyphens); a word
    longer than a line is cut with a hyphen ("Institutional-/isation"), never silently."""
    import textwrap

    lines = []
    for line in textwrap.wrap(str(s), width, break_long_words=False):
        while len(line) > width + 3 and " " not in line:
            lines.append(line[:width - 1] + "-")
            line = line[width - 1:]
        lines.append(line)
    return "\n".join(lines) or str(s)


# --------------------------------------------------------------------------- PRISMA
def prisma2020(studies: pd.DataFrame) -> dict:
    """The PRISMA 2020 flow (Page et al., 2021) counted from the bibliography, with the keys
    of ``metaanalysis prisma --json``; a count the bibliography cannot tell is None, never 0.

    ``identified``: records per database (from ``searches``; records without one under "not
    recorded"), None when no record has its search; ``duplicates_removed``; ``screened``
    (records after duplicates); ``excluded_screening`` (at title/abstract); ``sought``
    (reports sought at full text); ``not_retrieved``; ``assessed``; ``excluded_fulltext``
    (reason -> reports); ``included``. Exclusions typed in ``screening`` without a logged
    stage cannot be placed: their stage counts are None and they are listed under
    ``excluded_stage_unknown``. A bibliography with no search and no logged decision (the
    studies a published review kept) tells only ``included`` and ``records_in_bibliography``.
    ``awaiting_screening`` and ``awaiting_fulltext`` count the records still pending.
    """
    s = studies
    dup = (s["duplicate_of"].fillna("").astype(str) != "") if "duplicate_of" in s else \
        pd.Series(False, index=s.index)
    dup |= (s["screening"] == "excluded") & s["reason"].fillna("").astype(str).str.lower() \
        .str.startswith("duplicate")
    searched = s["databases"].fillna("").astype(str) != "" if "databases" in s else \
        pd.Series(False, index=s.index)
    identified = None
    if searched.any():
        identified = {}
        for value in s["databases"].fillna("").astype(str):
            for db in (d.strip() for d in value.split(";") if d.strip()):
                identified[db] = identified.get(db, 0) + 1
        if (~searched).any():
            identified["not recorded"] = int((~searched).sum())
        identified = dict(sorted(identified.items()))
    known_dups = bool(searched.any() or dup.any())
    decided = s["decided"].astype(bool) if "decided" in s else pd.Series(False, index=s.index)
    # a bibliography with no search and no logged decision holds the studies a review kept:
    # how many records it screened and excluded is not in it
    tracked = bool(searched.any() or decided.any())
    rest = s[~dup]
    stage = rest["stage"].fillna("").astype(str) if "stage" in rest else \
        pd.Series("", index=rest.index)
    excluded = rest["screening"] == "excluded"
    pending = rest["screening"] == "pending"
    legacy_excl = excluded & (stage == "")
    title_excl = excluded & (stage == "title")
    full_excl = excluded & (stage == "fulltext")
    not_retrieved = full_excl & (rest["reason"] == "not retrieved")
    included = rest["screening"] == "included"
    awaiting_title = pending & (stage.isin(["", "title"]))
    unknown_stage = bool(legacy_excl.any()) or not tracked
    by_reason = rest.loc[full_excl & ~not_retrieved, "reason"].value_counts()
    legacy_reasons = rest.loc[legacy_excl, "reason"].replace("", "no reason given").value_counts()
    awaiting_full = pending & (stage == "fulltext")
    # assessed: a full-text decision (or a study included); sought: those, the reports not
    # retrieved and the reports still awaiting their full-text decision
    assessed = int((included | (full_excl & ~not_retrieved)).sum())
    sought = assessed + int(not_retrieved.sum()) + int(awaiting_full.sum())
    out = {
        "identified": identified,
        "duplicates_removed": int(dup.sum()) if known_dups else None,
        "screened": int(len(rest) - awaiting_title.sum()) if tracked else None,
        "excluded_screening": None if unknown_stage else int(title_excl.sum()),
        "sought": None if unknown_stage else sought,
        "not_retrieved": None if unknown_stage else int(not_retrieved.sum()),
        "assessed": None if unknown_stage else assessed,
        "excluded_fulltext": None if unknown_stage else {str(k): int(v) for k, v in
                                                         sorted(by_reason.items())},
        "included": int(included.sum()),
        "awaiting_screening": int(awaiting_title.sum()),
        "awaiting_fulltext": int(awaiting_full.sum()),
    }
    if not tracked:
        out["records_in_bibliography"] = int(len(s))
    if legacy_excl.any():
        out["excluded_stage_unknown"] = {str(k): int(v) for k, v in sorted(legacy_reasons.items())}
    return out


@styled
def prisma(studies: pd.DataFrame, *, lang: str = "en", ax=None):
    """The PRISMA 2020 flow diagram (identification, screening, retrieval, eligibility,
    inclusion), every number from :func:`prisma2020`; a count the bibliography cannot tell
    reads "unknown", never 0. A :class:`PrismaPlot` (with the ``counts``); with ``ax``,
    drawn into that matplotlib Axes."""
    from matplotlib.patches import FancyBboxPatch

    c = prisma2020(studies)
    unknown = t("prisma.unknown", lang)

    def n(v):
        if v is None:
            return unknown
        return str(sum(v.values())) if isinstance(v, dict) else str(v)

    def lines(d):
        return "".join(f"\n{k}: {v}" for k, v in (d or {}).items())

    if c["identified"] is None:
        first = t("prisma.in_bibliography", lang, n=c.get("records_in_bibliography", "?"))
    else:
        import textwrap
        first = t("prisma.identified", lang, n=n(c["identified"])) + "\n" + textwrap.fill(
            ", ".join(f"{k}: {v}" for k, v in c["identified"].items()), 44)
    right = t("prisma.excluded_screening", lang, n=n(c["excluded_screening"]))
    if c.get("excluded_stage_unknown"):
        right += "\n" + t("prisma.stage_unknown", lang,
                           n=n(c["excluded_stage_unknown"])) + lines(c["excluded_stage_unknown"])
    included = t("prisma.included", lang, n=c["included"])
    if c["awaiting_screening"] or c["awaiting_fulltext"]:
        included += "\n" + t("prisma.awaiting", lang, title=c["awaiting_screening"],
                             full=c["awaiting_fulltext"])
    grid = [  # (left box, right box or None, colour), top to bottom
        (first, t("prisma.duplicates", lang, n=n(c["duplicates_removed"])), "#EEF5FB"),
        (t("prisma.screened", lang, n=n(c["screened"])), right, "#FFFFFF"),
        (t("prisma.sought", lang, n=n(c["sought"])),
         t("prisma.not_retrieved", lang, n=n(c["not_retrieved"])), "#FFFFFF"),
        (t("prisma.assessed", lang, n=n(c["assessed"])),
         t("prisma.excluded_fulltext", lang, n=n(c["excluded_fulltext"]))
         + lines(c["excluded_fulltext"]), "#FFFFFF"),
        (included, None, "#E6F4EA")]
    # each row as tall as its longest text (0.42 units a line), rows 0.9 apart
    heights = [max(1.7, 0.42 * (1 + max(x.count("\n") for x in (a, b or "")))) for a, b, _ in grid]
    gap = 0.9
    total = sum(heights) + gap * (len(grid) - 1) + 0.4
    fixed = ax is None
    fig, ax = new_figure((7.6, 0.5 * total), ax)
    if fixed:
        fig.subplots_adjust(0, 0, 1, 1)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, total)
    ax.axis("off")

    def box(x, y, w, h, text, colour="#FFFFFF"):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05",
                                    fc=colour, ec="#333333", lw=0.8))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8)

    def arrow(x1, y1, x2, y2):
        ax.annotate("", (x2, y2), (x1, y1), arrowprops={"arrowstyle": "-|>", "lw": 0.8,
                                                        "color": "#333333"})

    top = total - 0.2
    previous = None
    for (left_text, right_text, colour), h in zip(grid, heights):
        y = top - h
        box(0.3, y, 4.4, h, left_text, colour)
        if right_text is not None:
            box(5.5, y, 4.2, h, right_text)
            arrow(4.7, y + h / 2, 5.5, y + h / 2)
        if previous is not None:
            arrow(2.5, previous, 2.5, top)
        previous = y
        top = y - gap
    def said(key, value):  # "2 doublons retirés", "doublons retirés : non connu"
        none, one, many = WORDS[key][lang]
        if value is None:
            return t("prisma_alt_unknown", lang, what=none)
        count = int(n(value))
        return (one if (count < 2 if lang == "fr" else count == 1) else many).format(n=count)

    records = (sum(c["identified"].values()) if c["identified"] is not None
               else c.get("records_in_bibliography", 0))
    alt = t("prisma_alt", lang, parts=", ".join([
        counted(int(records), "record", lang), said("prisma_alt_duplicates",
                                                    c["duplicates_removed"]),
        said("prisma_alt_screened", c["screened"]),
        counted(c["included"], "included_study", lang)]))
    return PrismaPlot(fig, alt, fixed_layout=fixed, counts=c)


# --------------------------------------------------------------------------- gap map
def gap_map_table(site_data: dict, themes: dict, lang: str = "en") -> pd.DataFrame:
    """One row per intervention and outcome: its outcome domain, studies, direction, strength.

    ``site_data`` maps a theme to its published summary (``site/data/THEME.json``). The
    ``intervention`` is the outcome's own (``themes.json``), else the theme's; the ``domain``
    groups outcomes across themes (see ``text.WORDS["domain"]``). ``direction`` is +1 when the
    pooled effect favours the intervention and its CI excludes the null, -1 when it favours
    the control likewise, 0 otherwise; ``strength`` is the pooled effect on the favourable
    side, as a standardised mean difference for SMD and log odds ratios (times sqrt(3)/pi,
    Chinn 2000), as it is otherwise.
    """
    rows = []
    for slug, c in themes.items():
        d = site_data.get(slug, {})
        results = {o["outcome"]: o for o in d.get("outcomes", [])}
        for o in c.get("outcomes", []):
            r = results.get(o["outcome"], {})
            est = r.get("estimate")
            lo, hi = r.get("ci_lb"), r.get("ci_ub")
            sign = 1 if o.get("favours", "higher") == "higher" else -1
            direction, strength = 0, float("nan")
            if est is not None:
                if lo is not None and hi is not None and (lo > 0 or hi < 0):
                    direction = sign * (1 if est > 0 else -1)
                strength = sign * est * (math.sqrt(3) / math.pi if r.get("measure") == "OR"
                                         else 1.0)
            intervention = o.get("intervention") or c.get("intervention") or {lang: slug}
            domain = o.get("domain", "")
            rows.append({"intervention": intervention[lang],
                         "domain": t(f"domain.{domain}", lang) if domain in WORDS["domain"]
                         else o["label"][lang],
                         "outcome": o["label"][lang], "n_studies": int(r.get("n_studies", 0)),
                         "direction": direction, "strength": strength})
    return pd.DataFrame(rows)


@styled
def gap_map(table: pd.DataFrame, *, lang: str = "en", ax=None):
    """Interventions by outcome domains: a bubble per outcome studied (size = studies,
    colour = direction), a dashed ring where an outcome of interest has no study yet, and
    an empty cell where nothing was looked at: the gaps are visible at a glance. A
    :class:`~metaanalysis.plots.Plot`; with ``ax``, drawn into that matplotlib Axes."""
    interventions = list(dict.fromkeys(table["intervention"]))
    domains = [t(f"domain.{k}", lang) for k in WORDS["domain"]]
    domains += [d for d in dict.fromkeys(table["domain"]) if d not in domains]
    fig, ax = new_figure((max(7.0, 1.05 * len(domains) + 2.6),
                          1.3 + 0.75 * len(interventions)), ax)
    colour = {1: PALETTE["blue"], 0: "#999999", -1: PALETTE["vermillion"]}
    for x in range(len(domains) + 1):
        ax.axvline(x - 0.5, color="#E5E5E5", lw=0.6, zorder=0)
    for y in range(len(interventions) + 1):
        ax.axhline(y - 0.5, color="#E5E5E5", lw=0.6, zorder=0)
    for (iv, dom), cell in table.groupby(["intervention", "domain"], sort=False):
        x0, y = domains.index(dom), interventions.index(iv)
        offsets = np.linspace(-0.22, 0.22, len(cell)) if len(cell) > 1 else [0.0]
        for dx, (_, r) in zip(offsets, cell.iterrows()):
            x = x0 + dx
            if r["n_studies"] == 0:
                ax.scatter(x, y, s=300, facecolors="none", edgecolors="#777777",
                           linestyle="--", linewidths=0.9)
                ax.text(x, y, t("gap", lang), ha="center", va="center", fontsize=6.5,
                        color="#555555")
            else:
                ax.scatter(x, y, s=min(650, 90 + 12 * r["n_studies"]),
                           color=colour[int(r["direction"])], alpha=0.9, edgecolors="white")
                ax.text(x, y, str(r["n_studies"]), ha="center", va="center", fontsize=7,
                        color="white", weight="bold")
    ax.set_xticks(range(len(domains)), [_wrap(d, 14) for d in domains], fontsize=7.5)
    ax.set_yticks(range(len(interventions)), [_wrap(i, 28) for i in interventions], fontsize=8)
    ax.set_xlim(-0.5, len(domains) - 0.5)
    ax.set_ylim(len(interventions) - 0.5, -0.5)
    ax.xaxis.tick_top()
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], marker="o", ls="", color=colour[1], label=t("gap_benefit", lang)),
               Line2D([], [], marker="o", ls="", color=colour[0], label=t("gap_unclear", lang)),
               Line2D([], [], marker="o", ls="", color=colour[-1], label=t("gap_harm", lang)),
               Line2D([], [], marker="o", ls="", mfc="none", mec="#777777",
                      label=t("gap", lang))]
    ax.legend(handles=handles, ncol=4, fontsize=7, frameon=False, loc="upper center",
              bbox_to_anchor=(0.5, -0.02))
    gaps = int((table["n_studies"] == 0).sum())
    return Plot(fig, t("gap_alt", lang, cells=len(interventions) * len(domains),
                       gaps=counted(gaps, "gap_outcome", lang)))
