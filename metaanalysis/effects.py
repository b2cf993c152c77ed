"""Effect sizes: metafor's ``escalc`` for the grammar's measures, vectorised over a table.

Formulas and defaults follow metafor 3.8 ``escalc`` (Viechtbauer, 2010, J Stat Softw 36(3);
the help page ``?escalc`` cites each): ``vtype = "LS"``, and for 2x2 tables and proportions
``add = 1/2, to = "only0"`` (1/2 added to every cell of a table that has a zero cell, to both
``yi`` and ``vi``). SMD is Hedges' g with the exact correction factor
``c(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))``, ``m = n1i + n2i - 2`` (Hedges, 1981).

Reported estimates are converted the way metafor's ``conv.wald`` does: ratio measures are
logged, the SE comes from the CI width ``(ub - lb) / (2 z)`` on the analysis scale, or from a
two-sided p-value as ``|yi| / z(1 - p/2)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import gammaln
from scipy.stats import norm

from .grammar import DATA_FORMS, DATA_KEYS, GENERIC_FORMS, MEASURES, RATIO_MEASURES

ADD = 0.5


def hedges_correction(m):
    """Exact small-sample correction factor c(m) of Hedges (1981); NaN for m <= 1."""
    m = np.asarray(m, dtype=float)
    with np.errstate(invalid="ignore"):
        out = np.exp(gammaln(m / 2) - np.log(np.sqrt(m / 2)) - gammaln((m - 1) / 2))
    return np.where(m > 1, out, np.nan)


def _means(measure, m1i, sd1i, n1i, m2i, sd2i, n2i):
    if measure == "MD":
        return m1i - m2i, sd1i**2 / n1i + sd2i**2 / n2i
    if measure == "ROM":
        return (np.log(m1i / m2i),
                sd1i**2 / (n1i * m1i**2) + sd2i**2 / (n2i * m2i**2))
    sdp = np.sqrt(((n1i - 1) * sd1i**2 + (n2i - 1) * sd2i**2) / (n1i + n2i - 2))
    yi = hedges_correction(n1i + n2i - 2) * (m1i - m2i) / sdp
    return yi, 1 / n1i + 1 / n2i + yi**2 / (2 * (n1i + n2i))


TO = ("only0", "all", "if0all", "none")


def _added(zero, add: float, to: str):
    """What metafor's ``add``/``to`` add to each row: ``only0`` rows with a zero cell,
    ``all`` every row, ``if0all`` every row if any has a zero cell, ``none`` nothing."""
    if to == "all":
        return np.full(zero.shape, add)
    if to == "if0all":
        return np.full(zero.shape, add if zero.any() else 0.0)
    if to == "none":
        return np.zeros(zero.shape)
    return np.where(zero, add, 0.0)


def _two_by_two(measure, ai, bi, ci, di, add=ADD, to="only0", drop00=False):
    if drop00:  # no event in either group, or no non-event in either group: not estimable
        both = ((ai == 0) & (ci == 0)) | ((bi == 0) & (di == 0))
        ai = np.where(both, np.nan, ai)
    zero = (ai == 0) | (bi == 0) | (ci == 0) | (di == 0)
    add = _added(zero, add, to)
    ai, bi, ci, di = ai + add, bi + add, ci + add, di + add
    n1i, n2i = ai + bi, ci + di
    p1, p2 = ai / n1i, ci / n2i
    if measure == "OR":
        return np.log(p1 / (1 - p1)) - np.log(p2 / (1 - p2)), 1 / ai + 1 / bi + 1 / ci + 1 / di
    if measure == "RR":
        return np.log(p1) - np.log(p2), 1 / ai - 1 / n1i + 1 / ci - 1 / n2i
    return p1 - p2, p1 * (1 - p1) / n1i + p2 * (1 - p2) / n2i


def _correlation(measure, ri, ni):
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "ZCOR":
            yi, vi = np.arctanh(ri), 1 / (ni - 3)
        else:
            yi, vi = ri, (1 - ri**2) ** 2 / (ni - 1)
    return yi, np.where(ni > 3, vi, np.nan)


def _proportion(measure, xi, ni, add=ADD, to="only0"):
    mi = ni - xi
    add = _added((xi == 0) | (mi == 0), add, to)
    xi, mi = xi + add, mi + add
    ni = xi + mi
    p = xi / ni
    if measure == "PR":
        return p, p * (1 - p) / ni
    return np.log(p / (1 - p)), 1 / xi + 1 / mi


def _transform(measure, x):
    """A reported value on the analysis scale of a measure."""
    if measure in RATIO_MEASURES:
        return np.log(x)
    if measure == "ZCOR":
        return np.arctanh(x)
    if measure == "PLO":
        return np.log(x / (1 - x))
    return x


def _reported(measure, d: dict, form):
    yi = _transform(measure, d["estimate"])
    if "ci_lb" in form:
        level = d.get("ci_level", np.full_like(yi, 95.0))
        level = np.where(np.isnan(level), 95.0, level)
        z = norm.ppf(1 - (1 - level / 100) / 2)
        sei = (_transform(measure, d["ci_ub"]) - _transform(measure, d["ci_lb"])) / (2 * z)
    elif "sei" in form:
        sei = d["sei"]
    else:
        sei = np.abs(yi) / norm.isf(d["pval"] / 2)
    return yi, sei**2


def escalc(measure: str, *, add: float = ADD, to: str = "only0", drop00: bool = False,
           include=None, **data) -> pd.DataFrame:
    """Effect sizes ``yi`` and sampling variances ``vi`` for one measure, like metafor's escalc.

    Pass the data with metafor's names (``m1i=..., sd1i=...``; ``ai, bi, ci, di`` or
    ``ai, n1i, ci, n2i``; ``ri, ni``; ``xi, ni``), or ``yi`` with ``vi``/``sei``, or
    ``estimate`` with ``ci_lb``/``ci_ub``, ``sei`` or ``pval`` as reported (ratios as ratios).
    Arrays may mix forms row by row (NaN where a value is absent): each row uses its first
    complete form, raw data first.

    Options, as metafor's: ``add`` (1/2) added to the cells of 2x2 tables and proportions
    ``to`` "only0" (rows with a zero cell), "all", "if0all" or "none"; ``drop00`` leaves out
    2x2 tables with no event (or no non-event) in both groups; ``include`` (booleans) keeps
    only those rows (the others get NaN). Any other keyword is an error.
    """
    measure = measure.upper()
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}: use one of {', '.join(MEASURES)}")
    unknown = sorted(set(data) - set(DATA_KEYS))
    if unknown:
        raise TypeError(f"escalc() got unknown argument(s) {', '.join(unknown)}: the data are "
                        f"{', '.join(sorted(DATA_KEYS))}; the options are add, to, drop00, "
                        "include")
    if to not in TO:
        raise ValueError(f"to = {to!r}: use one of {', '.join(TO)}")
    add = float(add)
    cols = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in data.items()
            if v is not None}
    if not cols:
        raise ValueError("no data given")
    k = max(len(v) for v in cols.values())
    cols = {name: np.broadcast_to(v, (k,)).astype(float) for name, v in cols.items()}
    yi, vi = np.full(k, np.nan), np.full(k, np.nan)
    todo = np.ones(k, dtype=bool)
    if include is not None:
        keep = np.broadcast_to(np.asarray(include, dtype=bool), (k,))
        todo &= keep
        # metafor applies "if0all" to the included rows only
        cols = {name: np.where(keep, v, np.nan) for name, v in cols.items()}
    for form in DATA_FORMS[measure] + GENERIC_FORMS:
        if not all(name in cols for name in form):
            continue
        rows = todo & np.all([~np.isnan(cols[name]) for name in form], axis=0)
        if not rows.any():
            continue
        d = {name: v[rows] for name, v in cols.items()}
        if form == ("ai", "n1i", "ci", "n2i"):
            d["bi"], d["di"] = d["n1i"] - d["ai"], d["n2i"] - d["ci"]
            form = ("ai", "bi", "ci", "di")
        with np.errstate(divide="ignore", invalid="ignore"):
            if form[0] == "m1i":
                y, v = _means(measure, *(d[n] for n in form))
            elif form == ("ai", "bi", "ci", "di"):
                y, v = _two_by_two(measure, *(d[n] for n in form), add=add, to=to,
                                   drop00=drop00)
            elif form == ("ri", "ni"):
                y, v = _correlation(measure, d["ri"], d["ni"])
            elif form == ("xi", "ni"):
                y, v = _proportion(measure, d["xi"], d["ni"], add=add, to=to)
            elif form[0] == "yi":
                y = d["yi"]
                v = d["vi"] if form[1] == "vi" else d["sei"] ** 2
            else:
                y, v = _reported(measure, d, form)
        yi[rows], vi[rows] = y, v
        todo &= ~rows
    # as metafor: an infinite effect or variance (a zero cell with to = "none") is missing
    yi[np.isinf(yi)], vi[np.isinf(vi)] = np.nan, np.nan
    return pd.DataFrame({"yi": yi, "vi": vi})


def add_effect_sizes(table: pd.DataFrame, measure: str | None = None) -> pd.DataFrame:
    """Return a copy of a table with ``yi`` and ``vi`` computed row by row from its data.

    The measure is the table's ``measure`` column, or ``measure`` for every row when given.
    Rows whose ``yi``/``vi`` cannot be computed keep NaN.
    """
    out = table.copy()
    measures = (pd.Series(measure.upper(), index=out.index) if measure
                else out["measure"].astype(str).str.upper())
    yi = pd.Series(np.nan, index=out.index)
    vi = pd.Series(np.nan, index=out.index)
    data_cols = [c for c in out.columns if c in DATA_KEYS]
    for m, rows in out.groupby(measures, sort=False).groups.items():
        sub = out.loc[rows, data_cols]
        res = escalc(m, **{c: pd.to_numeric(sub[c], errors="coerce").to_numpy()
                           for c in data_cols})
        yi.loc[rows], vi.loc[rows] = res["yi"].to_numpy(), res["vi"].to_numpy()
    out["measure"] = measures
    out["yi"], out["vi"] = yi, vi
    return out

