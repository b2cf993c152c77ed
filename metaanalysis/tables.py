"""The summary-of-findings table (GRADE style), computed as a DataFrame, shown as HTML.

One row per outcome: studies and participants, the relative effect with its CI, the absolute
effect per 1,000 for binary outcomes (from an assumed control-group risk, by default the median
risk of the control groups), heterogeneity, and a *suggested* certainty of the evidence with its
reasons. The suggestion follows GRADE's domains (Guyatt et al., 2011; Schünemann et al., 2013):
randomised evidence starts high, other designs low; one level is taken off for serious risk of
bias (more than half the weight from studies at high risk), inconsistency (I² of 50% or more,
or a prediction interval that crosses the null when the CI does not), imprecision (a CI that
includes the null, or fewer than 400 participants for a binary outcome) and suspected
publication bias (Egger's p < 0.10 with at least 10 studies). It is a starting point for the
authors' judgement, and the table says so.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from .grammar import RATIO_MEASURES, natural_scale, rob_level
from .text import SOF_WORDS as WORDS
from .text import estimate_ci, num, percent, pvalue, scrolling

LEVELS = ("very low", "low", "moderate", "high")


def participants(rows: pd.DataFrame) -> int:
    """Participants summed over studies, each study counted once (its largest effect)."""
    n = pd.Series(np.nan, index=rows.index)
    for a, b in (("n1i", "n2i"), ("n_treatment", "n_control"), ("n_intervention", "n_control")):
        if a in rows and b in rows:
            n = n.fillna(pd.to_numeric(rows[a], errors="coerce")
                         + pd.to_numeric(rows[b], errors="coerce"))
    if "ni" in rows:
        n = n.fillna(pd.to_numeric(rows["ni"], errors="coerce"))
    if all(c in rows for c in ("ai", "bi", "ci", "di")):  # a 2x2 table: its four cells
        n = n.fillna(sum(pd.to_numeric(rows[c], errors="coerce") for c in ("ai", "bi", "ci", "di")))
    per_study = n.groupby(rows["key"]).max()
    return int(per_study.sum()) if per_study.notna().any() else 0


def control_risk(rows: pd.DataFrame) -> float:
    """The median risk in the control groups of the 2x2 tables (NaN without them)."""
    if "ci" not in rows:
        return math.nan
    n2 = rows["n2i"] if "n2i" in rows else rows["ci"] + rows.get("di", np.nan)
    risk = (pd.to_numeric(rows["ci"], errors="coerce") / pd.to_numeric(n2, errors="coerce"))
    risk = risk.dropna()
    return float(risk.median()) if len(risk) else math.nan


def _treated_risk(measure: str, acr: float, effect: float) -> float:
    if measure == "RR":
        return min(1.0, acr * effect)
    if measure == "OR":
        return effect * acr / (1 - acr + effect * acr)
    return math.nan


def _rob_share(rows: pd.DataFrame, result) -> float:
    cols = [c for c in rows.columns if c == "risk_of_bias" or c.startswith("rob_")]
    if not cols:
        return math.nan
    high = np.zeros(len(rows), dtype=bool)
    for c in cols:
        high |= (rows[c].map(rob_level) == "high").to_numpy()
    w = np.asarray(result.weights)
    if len(w) != len(rows):
        return math.nan
    return float(w[high].sum() / w.sum())


def summary_of_findings(outcomes, lang: str = "en", baseline_risk: float | None = None,
                        egger=None) -> pd.DataFrame:
    """The table's rows for a list of :class:`~metaanalysis.notes.OutcomeResult`.

    ``baseline_risk`` overrides the assumed control-group risk (a proportion). ``egger`` maps
    an outcome's index to Egger's p-value where the test applies.
    """
    W = WORDS[lang]
    rows = []
    for i, o in enumerate(outcomes):
        r = o.result
        if r is None:
            continue
        d = o.data
        ratio = r.measure in RATIO_MEASURES
        tf = natural_scale(r.measure)
        pred = r.predict()
        est, lo, hi = tf(pred["pred"]), tf(pred["ci_lb"]), tf(pred["ci_ub"])
        null = 1.0 if ratio else 0.0
        n_part = participants(d)
        absolute = ""
        acr = math.nan
        if r.measure in ("RR", "OR"):
            acr = baseline_risk if baseline_risk is not None else control_risk(d)
            if np.isfinite(acr):
                risks = [_treated_risk(r.measure, acr, x) for x in (est, lo, hi)]
                diffs = [1000 * (x - acr) for x in risks]
                absolute = W["per1000"].format(control=num(1000 * acr, lang, 0),
                                               diff=_signed(diffs[0], lang),
                                               lo=_signed(diffs[1], lang),
                                               hi=_signed(diffs[2], lang))
        design = (d["design"].fillna("").astype(str).str.strip().str.upper() if "design" in d
                  else pd.Series("", index=d.index))
        randomised = bool(len(design)) and design.str.contains("RCT").all()
        level = 3 if randomised else 1
        # starting low, and saying why: designs that are not randomised, or not reported
        reasons = [] if randomised else [
            W["design_unknown"] if (design == "").any() and not (
                (design != "") & ~design.str.contains("RCT")).any() else W["nonrandomised"]]
        share = _rob_share(d, r)
        if np.isfinite(share) and share > 0.5:
            level -= 1
            reasons.append(W["rob"].format(share=percent(100 * share, lang, 0)))
        i2 = r.I2
        pi_cross = np.isfinite(pred["pi_lb"]) and tf(pred["pi_lb"]) < null < tf(pred["pi_ub"])
        ci_cross = lo < null < hi
        if np.isfinite(i2) and i2 >= 50:
            level -= 1
            reasons.append(W["inconsistency"].format(why=W["i2"].format(i2=percent(i2, lang, 0))))
        elif pi_cross and not ci_cross:
            level -= 1
            reasons.append(W["inconsistency"].format(why=W["pi_null"]))
        if ci_cross:
            level -= 1
            reasons.append(W["imprecision"].format(why=W["ci_null"]))
        elif r.measure in ("RR", "OR", "RD") and 0 < n_part < 400:
            level -= 1
            reasons.append(W["imprecision"].format(why=W["small"]))
        p_egger = (egger or {}).get(i)
        if p_egger is not None and o.n_studies >= 10 and p_egger < 0.10:
            level -= 1
            reasons.append(W["publication"].format(p=pvalue(p_egger, lang)))
        level = max(0, level)
        het = ("–" if r.k < 2 else  # one effect: nothing to be heterogeneous
               f"I² = {percent(i2, lang, 0)}" if np.isfinite(i2)
               else f"τ² = {num(r.tau2, lang, 3)}")
        rows.append({"index": i, "outcome": o.label, "n_studies": o.n_studies,
                     "participants": n_part,
                     "measure": r.measure, "estimate": est, "ci_lb": lo, "ci_ub": hi,
                     "relative": estimate_ci(est, lo, hi, lang, 2, r.level),
                     "control_risk": acr, "absolute": absolute, "heterogeneity": het,
                     "certainty": LEVELS[level], "reasons": reasons})
    return pd.DataFrame(rows)


def _signed(x: float, lang: str) -> str:
    s = num(abs(x), lang, 0)
    return ("+" if x > 0 else "\u2212" if x < 0 else "") + s


def summary_of_findings_html(table: pd.DataFrame, lang: str = "en") -> str:
    """The table as escaped HTML with the suggestion's caveat under it."""
    W = WORDS[lang]
    head = [W["outcome"], W["studies"], W["relative"], W["absolute"], W["heterogeneity"],
            W["certainty"]]
    body = []
    for _, r in table.iterrows():
        reasons = (" ; " if lang == "fr" else "; ").join(r["reasons"]) or W["none"]
        cells = [html.escape(r["outcome"]),
                 f"{r['n_studies']} ({num(r['participants'], lang, 0) if r['participants'] else '–'})",
                 html.escape(r["relative"]), html.escape(r["absolute"] or "–"),
                 html.escape(r["heterogeneity"]),
                 f"<strong>{html.escape(W[r['certainty']])}</strong><br><small>"
                 f"{html.escape(reasons)}</small>"]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (scrolling("<table class='sof'><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
                      + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>", lang)
            + f"<p class='caveat'><small>{html.escape(W['note'])}</small></p>")
