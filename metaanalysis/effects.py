"""Effect sizes: metafor's ``escalc`` for the grammar's measures, vectorised over a table.

Formulas and defaults follow metafor 3.8 ``escalc`` (Viechtbauer, 2010, J Stat Softw 36(3);
the help page ``?escalc`` cites each): ``vtype = "LS"``, and for 2x2 tables and proportions
``add = 1/2, to = "only0"`` (1/2 added to every cell of a table that has a zero cell, to both
``yi`` and ``vi``). SMD is Hedges' g with the exact correction factor
``c(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))``, ``m = n1i + n2i - 2`` (Hedges, 1981).

Reported estimates are converted the way metafor's ``conv.wald`` does: ratio measures are
logged, the SE comes from the CI width ``(ub - lb) / (2 z)`` on the analysis scale, or from a
two-sided p-value as ``|yi| / z(1 - p/2)``.

The other measures follow the same source: UCOR (Olkin & Pratt, 1958), SMDH (Bonett, 2009), SMCC and SMCR (Becker, 1988;
Morris, 2008), PCOR, ZPCOR and SPCOR from a regression's t statistic (Aloe & Thompson, 2013),
PETO (Yusuf et al., 1985), PHI, the incidence rates IRR, IRD, IR, IRLN, and the transformed
proportions PLN, PAS, PFT (Freeman & Tukey, 1950); ``add`` is 0 by default for PHI, PAS and
PFT, as metafor's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import gammaln

from . import distributions as dist
from .grammar import (DATA_FORMS, DATA_KEYS, GENERIC_FORMS, LOG_MEASURES, MEASURES,
                      RATIO_MEASURES)

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
    if measure == "SMDH":
        cm = hedges_correction(n1i + n2i - 2)
        s2 = sd1i**2 + sd2i**2
        yi = cm * (m1i - m2i) / np.sqrt(s2 / 2)
        vi = yi**2 * (sd1i**4 / (n1i - 1) + sd2i**4 / (n2i - 1)) / (2 * s2**2) \
            + (sd1i**2 / (n1i - 1) + sd2i**2 / (n2i - 1)) / (s2 / 2)
        return yi, cm**2 * vi
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
    if measure == "PETO":
        ni = n1i + n2i
        xt, yt = ai + ci, bi + di
        e = xt * n1i / ni
        v = xt * yt * (n1i / ni) * (n2i / ni) / (ni - 1)
        return (ai - e) / v, 1 / v
    if measure == "PHI":
        ni = n1i + n2i
        yi = (ai * di - bi * ci) / np.sqrt((ai + bi) * (ci + di) * (ai + ci) * (bi + di))
        r1, r2, c1, c2 = (ai + bi) / ni, (ci + di) / ni, (ai + ci) / ni, (bi + di) / ni
        vi = 1 / ni * (1 - yi**2 + yi * (1 + yi**2 / 2) * (r1 - r2) * (c1 - c2)
                       / np.sqrt(r1 * r2 * c1 * c2)
                       - 3 / 4 * yi**2 * ((r1 - r2)**2 / (r1 * r2) + (c1 - c2)**2 / (c1 * c2)))
        return yi, vi
    return p1 - p2, p1 * (1 - p1) / n1i + p2 * (1 - p2) / n2i


def _change(measure, m1i, m2i, sd1i, ni, ri, sd2i=None):
    """Standardised mean change of a pre-post design: by the SD of the change (SMCC) or of
    the first time point (SMCR), with the exact correction for m = n - 1."""
    cm = hedges_correction(ni - 1)
    if measure == "SMCC":
        yi = cm * (m1i - m2i) / np.sqrt(sd1i**2 + sd2i**2 - 2 * ri * sd1i * sd2i)
        return yi, 1 / ni + yi**2 / (2 * ni)
    yi = cm * (m1i - m2i) / sd1i
    return yi, 2 * (1 - ri) / ni + yi**2 / (2 * ni)


def _partial(measure, ti, ni, mi, r2i=None):
    """(Semi-)partial correlation of a predictor from its t statistic in a regression on
    ``ni`` observations with ``mi`` other predictors (Aloe & Thompson, 2013)."""
    df = ni - mi - 1
    if measure == "SPCOR":
        yi = ti * np.sqrt(1 - r2i) / np.sqrt(df)
        d = r2i - yi**2
        return yi, (r2i**2 - 2 * r2i + d + 1 - d**2) / ni
    yi = ti / np.sqrt(ti**2 + df)
    if measure == "ZPCOR":
        return np.arctanh(yi), 1 / df
    return yi, (1 - yi**2) ** 2 / df


def _rates(measure, x1i, x2i, t1i, t2i, add=ADD, to="only0"):
    add = _added((x1i == 0) | (x2i == 0), add, to)
    x1i, x2i = x1i + add, x2i + add
    ir1, ir2 = x1i / t1i, x2i / t2i
    if measure == "IRR":
        return np.log(ir1) - np.log(ir2), 1 / x1i + 1 / x2i
    return ir1 - ir2, ir1 / t1i + ir2 / t2i


def _rate(measure, xi, ti, add=ADD, to="only0"):
    xi = xi + _added(xi == 0, add, to)
    ir = xi / ti
    if measure == "IR":
        return ir, ir / ti
    return np.log(ir), 1 / xi


def _correlation(measure, ri, ni):
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "ZCOR":
            yi, vi = np.arctanh(ri), 1 / (ni - 3)
        else:
            yi = ri
            if measure == "UCOR":  # Olkin & Pratt (1958): r 2F1(1/2, 1/2; (n-2)/2; 1-r^2)
                g = (ni - 2) / 2
                yi = np.where(g > 1, ri * _hyp2f1_half(g, 1 - ri**2), np.nan)
            vi = (1 - yi**2) ** 2 / (ni - 1)
    return yi, np.where(ni > (4 if measure == "UCOR" else 3), vi, np.nan)


def _hyp2f1_half(c, x):
    """2F1(1/2, 1/2; c; x) for c > 1 and 0 <= x <= 1: scipy's, or where scipy gives no finite
    value (large c with x near 1) the hypergeometric series summed to double precision."""
    from scipy.special import hyp2f1

    c, x = np.broadcast_arrays(np.asarray(c, float), np.asarray(x, float))
    out = np.asarray(hyp2f1(0.5, 0.5, c, x), float).copy()
    for i in np.flatnonzero(~np.isfinite(out) & (c > 1) & (x >= 0) & (x <= 1)):
        term, total, n = 1.0, 1.0, 0
        while n < 1_000_000:
            term *= (0.5 + n) ** 2 / ((c[i] + n) * (n + 1)) * x[i]
            total += term
            n += 1
            if term < 1e-17 * total:
                break
        out[i] = total
    return out


def _proportion(measure, xi, ni, add=ADD, to="only0"):
    mi = ni - xi
    add = _added((xi == 0) | (mi == 0), add, to)
    xi, mi = xi + add, mi + add
    ni = xi + mi
    p = xi / ni
    if measure == "PR":
        return p, p * (1 - p) / ni
    if measure == "PLN":
        return np.log(p), 1 / xi - 1 / ni
    if measure == "PAS":
        return np.arcsin(np.sqrt(p)), 1 / (4 * ni)
    if measure == "PFT":
        return (0.5 * (np.arcsin(np.sqrt(xi / (ni + 1))) + np.arcsin(np.sqrt((xi + 1) / (ni + 1)))),
                1 / (4 * ni + 2))
    return np.log(p / (1 - p)), 1 / xi + 1 / mi


def _transform(measure, x):
    """A reported value on the analysis scale of a measure."""
    if measure in RATIO_MEASURES or measure in LOG_MEASURES:
        return np.log(x)
    if measure in ("ZCOR", "ZPCOR"):
        return np.arctanh(x)
    if measure == "PLO":
        return np.log(x / (1 - x))
    return x


def _reported(measure, d: dict, form):
    yi = _transform(measure, d["estimate"])
    if "ci_lb" in form:
        level = d.get("ci_level", np.full_like(yi, 95.0))
        level = np.where(np.isnan(level), 95.0, level)
        z = dist.norm_ppf(1 - (1 - level / 100) / 2)
        sei = (_transform(measure, d["ci_ub"]) - _transform(measure, d["ci_lb"])) / (2 * z)
    elif "sei" in form:
        sei = d["sei"]
    else:
        sei = np.abs(yi) / dist.norm_isf(d["pval"] / 2)
    return yi, sei**2


#: Measures whose default ``add`` is 0, as metafor's.
NO_ADD = frozenset({"PHI", "PAS", "PFT"})


def escalc(measure: str, *, add: float | None = None, to: str = "only0", drop00: bool = False,
           include=None, **data) -> pd.DataFrame:
    """Effect sizes ``yi`` and sampling variances ``vi`` for one measure, like metafor's escalc.

    Pass the data with metafor's names (``m1i=..., sd1i=...``; ``ai, bi, ci, di`` or
    ``ai, n1i, ci, n2i``; ``ri, ni``; ``xi, ni``), or ``yi`` with ``vi``/``sei``, or
    ``estimate`` with ``ci_lb``/``ci_ub``, ``sei`` or ``pval`` as reported (ratios as ratios).
    Arrays may mix forms row by row (NaN where a value is absent): each row uses its first
    complete form, raw data first.

    Options, as metafor's: ``add`` (1/2; 0 for PHI, PAS, PFT) added to the cells of 2x2 tables and proportions
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
    add = (0.0 if measure in NO_ADD else ADD) if add is None else float(add)
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
            if measure in ("SMCC", "SMCR") and form[0] == "m1i":
                y, v = _change(measure, d["m1i"], d["m2i"], d["sd1i"], d["ni"], d["ri"],
                               d.get("sd2i"))
            elif form[0] == "m1i":
                y, v = _means(measure, *(d[n] for n in form))
            elif form[0] == "ti" and form[1] == "ni":
                y, v = _partial(measure, d["ti"], d["ni"], d["mi"], d.get("r2i"))
            elif form == ("x1i", "x2i", "t1i", "t2i"):
                y, v = _rates(measure, *(d[n] for n in form), add=add, to=to)
            elif form == ("xi", "ti"):
                y, v = _rate(measure, d["xi"], d["ti"], add=add, to=to)
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
            if form[0] != "yi":  # as metafor: a variance computed below 0 (rounding, where
                v = np.where(v < 0, np.nan, v)  # it is 0: PHI of a perfect table) is missing
        yi[rows], vi[rows] = y, v
        todo &= ~rows
    # as metafor: an infinite effect or variance (a zero cell with to = "none") is missing
    yi[np.isinf(yi)], vi[np.isinf(vi)] = np.nan, np.nan
    return pd.DataFrame({"yi": yi, "vi": vi})


def other_measure(table: pd.DataFrame, measure: str | None) -> pd.Series:
    """Rows whose own ``measure`` (the table's column) is not ``measure``: their computed
    effects (``yi``, an estimate with its CI ...) cannot stand for it. False everywhere
    when no measure is asked for or the table has no measure column."""
    if not measure or "measure" not in table:
        return pd.Series(False, index=table.index)
    own = table["measure"].astype("string").str.strip().str.upper()
    return (own.notna() & (own != "") & (own != measure.upper())).fillna(False).astype(bool)


def add_effect_sizes(table: pd.DataFrame, measure: str | None = None) -> pd.DataFrame:
    """Return a copy of a table with ``yi`` and ``vi`` computed row by row from its data.

    The measure is the table's ``measure`` column, or ``measure`` for every row when given;
    then a row of another measure is computed from its raw data only (its 2x2 table for an
    odds ratio, its means and SDs for a mean difference), never by reading its own ``yi`` as
    the new measure's. Rows whose ``yi``/``vi`` cannot be computed keep NaN
    (:func:`other_measure` tells which rows had a measure of their own); with ``measure``,
    the table's own measures are kept as ``reported_measure`` (:func:`measure_losses`).
    """
    out = table.copy()
    measures = (pd.Series(measure.upper(), index=out.index) if measure
                else out["measure"].astype(str).str.upper())
    yi = pd.Series(np.nan, index=out.index)
    vi = pd.Series(np.nan, index=out.index)
    data_cols = [c for c in out.columns if c in DATA_KEYS]
    # an effect given as computed (yi and vi, an estimate with its CI ...) is in its own
    # measure: it is that effect only for that measure (an SMD's yi is not a log odds ratio).
    # Rows of another measure need the raw data of the one asked for, else they stay NaN.
    computed = sorted({c for form in GENERIC_FORMS for c in form} & set(data_cols))
    own = other_measure(table, measure)
    if measure and "measure" in out:  # what each effect was reported as, kept beside it
        out["reported_measure"] = out["measure"]
    for m, rows in out.groupby(measures, sort=False).groups.items():
        sub = out.loc[rows, data_cols].copy()
        sub.loc[own.loc[rows], computed] = np.nan
        res = escalc(m, **{c: pd.to_numeric(sub[c], errors="coerce").to_numpy()
                           for c in data_cols})
        yi.loc[rows], vi.loc[rows] = res["yi"].to_numpy(), res["vi"].to_numpy()
    out["measure"] = measures
    out["yi"], out["vi"] = yi, vi
    return out



def measure_losses(table: pd.DataFrame, measure: str | None, lang: str = "en") -> str | None:
    """What :func:`add_effect_sizes` with ``measure`` could not convert, in words, or None:
    the effects reported in another measure whose data cannot give ``measure`` (an SMD's
    means and SDs give no odds ratio), counted by the measure they were reported as."""
    if not measure or "reported_measure" not in table or not len(table):
        return None
    measure = measure.upper()
    own = table["reported_measure"].astype("string").str.strip().str.upper()
    lost = ((own.notna() & (own != "") & (own != measure)).fillna(False).astype(bool)
            & ~np.isfinite(pd.to_numeric(table["yi"], errors="coerce")))
    if not lost.any():
        return None
    from .text import t

    counts = own[lost].value_counts()
    n = int(lost.sum())
    what = ", ".join(t("measure_lost_as", lang, k=k, s="s" if k > 1 else "", m=m)
                     for m, k in counts.items())
    raw = t("or", lang).join("+".join(f) for f in DATA_FORMS.get(measure, ()))
    return t("measure_lost", lang, n=n, s="s" if n > 1 else "", what=what, measure=measure,
             needs=t("measure_lost_needs", lang, raw=raw) if raw else "")
