"""Common-effect models for 2x2 tables: Mantel-Haenszel (OR, RR, RD) and Peto's odds ratio.

As metafor's ``rma.mh`` and ``rma.peto``: the pooled estimate comes from the raw counts
(no continuity correction); the variance is Robins, Breslow & Greenland (1986) for the MH
OR, Greenland & Robins (1985) for the MH RR and RD; Peto's one-step OR (Yusuf et al., 1985).
The heterogeneity test uses the study effects from ``escalc`` (1/2 added to tables with a
zero cell, tables with no event in either group left out), as metafor does.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .effects import escalc
from .models import RMAResult


def _counts(data: pd.DataFrame | None, ai, bi, ci, di, n1i, n2i):
    def col(x):
        if isinstance(x, str):
            return pd.to_numeric(data[x], errors="coerce").to_numpy(dtype=float)
        return None if x is None else np.asarray(x, dtype=float)

    if data is not None and ai is None:
        has = set(data.columns)
        if not ({"ai", "ci"} <= has and ({"bi", "di"} <= has or {"n1i", "n2i"} <= has)):
            raise ValueError("Mantel-Haenszel and Peto need 2x2 counts: columns ai, bi, ci, di "
                             "or ai, n1i, ci, n2i")
        ai, ci = "ai", "ci"
        bi = "bi" if "bi" in data else None
        di = "di" if "di" in data else None
        n1i = "n1i" if "n1i" in data else None
        n2i = "n2i" if "n2i" in data else None
    a, c = col(ai), col(ci)
    b = col(bi) if bi is not None else None
    d = col(di) if di is not None else None
    n1, n2 = col(n1i), col(n2i)
    if b is None or (n1 is not None and np.isnan(b).any()):
        b = np.where(np.isnan(b), n1 - a, b) if b is not None else n1 - a
    if d is None or (n2 is not None and np.isnan(d).any()):
        d = np.where(np.isnan(d), n2 - c, d) if d is not None else n2 - c
    keep = ~(np.isnan(a) | np.isnan(b) | np.isnan(c) | np.isnan(d))
    return a[keep], b[keep], c[keep], d[keep], keep


def _escalc_q(measure, a, b, c, d):
    """Study effects for the Q test: metafor's defaults with drop00=TRUE."""
    both_zero = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0))
    res = escalc(measure, ai=a, bi=b, ci=c, di=d)
    yi, vi = res["yi"].to_numpy(copy=True), res["vi"].to_numpy(copy=True)
    yi[both_zero], vi[both_zero] = np.nan, np.nan
    return yi, vi


def _result(method, measure, beta, se, yi, vi, Q, k_yi, level, slab):
    ok = np.isfinite(yi)
    dfs = k_yi - 1
    if dfs > 0:
        Qp = float(stats.chi2.sf(Q, dfs))
        I2 = max(0.0, 100 * (Q - dfs) / Q) if Q > 0 else 0.0
        H2 = Q / dfs
    else:
        Q, Qp, I2, H2 = 0.0, 1.0, 0.0, 1.0
    return RMAResult(k=len(yi), method=method, test="z", level=level, measure=measure,
                     names=["intercept"], beta=np.array([beta]), vb=np.array([[se**2]]),
                     tau2=0.0, Q=Q, Q_pvalue=Qp, I2=I2, H2=H2, tau2_ci=(math.nan, math.nan),
                     dfs=dfs, yi=yi[ok], vi=vi[ok], X=np.ones((int(ok.sum()), 1)),
                     slab=[s for s, o in zip(slab, ok) if o])


def rma_mh(ai=None, bi=None, ci=None, di=None, *, n1i=None, n2i=None, data=None,
           measure: str = "OR", level: float = 95, slab=None) -> RMAResult:
    """Mantel-Haenszel common-effect model for OR, RR or RD (metafor's ``rma.mh``)."""
    measure = measure.upper()
    if measure not in ("OR", "RR", "RD"):
        raise ValueError("Mantel-Haenszel pools OR, RR or RD")
    a, b, c, d, keep = _counts(data, ai, bi, ci, di, n1i, n2i)
    if len(a) == 0:
        raise ValueError("Mantel-Haenszel needs 2x2 counts (ai, bi, ci, di or ai, n1i, ci, n2i)")
    n1, n2 = a + b, c + d
    N = n1 + n2
    if measure == "OR":
        R, S = np.sum(a * d / N), np.sum(b * c / N)
        if R == 0 or S == 0:
            raise ValueError("the Mantel-Haenszel odds ratio is not defined: no events or no "
                             "non-events in one of the arms of every table")
        P, Qv = (a + d) / N, (b + c) / N
        Ri, Si = a * d / N, b * c / N
        beta = math.log(R / S)
        se = math.sqrt(0.5 * (np.sum(P * Ri) / R**2 + np.sum(P * Si + Qv * Ri) / (R * S)
                              + np.sum(Qv * Si) / S**2))
    elif measure == "RR":
        R, S = np.sum(a * n2 / N), np.sum(c * n1 / N)
        if a.sum() == 0 or c.sum() == 0:
            raise ValueError("the Mantel-Haenszel risk ratio is not defined: no events in one "
                             "arm of every table")
        beta = math.log(R / S)
        se = math.sqrt(np.sum(n1 / N * n2 / N * (a + c) - a / N * c) / (R * S))
    else:
        W = np.sum(n1 * n2 / N)
        beta = float(np.sum(a * n2 / N - c * n1 / N) / W)
        se = math.sqrt((beta * np.sum(c * (n1 / N) ** 2 - a * (n2 / N) ** 2
                                      + n1 / N * n2 / N * (n2 - n1) / 2)
                        + np.sum(a * (n2 - c) / N + c * (n1 - a) / N) / 2) / W**2)
    yi, vi = _escalc_q(measure, a, b, c, d)
    ok = np.isfinite(yi)
    Q = max(0.0, float(np.sum((yi[ok] - beta) ** 2 / vi[ok])))
    labels = _labels(slab, data, keep)
    return _result("MH", measure, beta, se, yi, vi, Q, int(ok.sum()), level, labels)


def rma_peto(ai=None, bi=None, ci=None, di=None, *, n1i=None, n2i=None, data=None,
             level: float = 95, slab=None) -> RMAResult:
    """Peto's one-step odds ratio (metafor's ``rma.peto``)."""
    a, b, c, d, keep = _counts(data, ai, bi, ci, di, n1i, n2i)
    n1, n2 = a + b, c + d
    N = n1 + n2
    xt, yt = a + c, b + d
    E = xt * n1 / N
    with np.errstate(invalid="ignore", divide="ignore"):
        V = xt * yt * (n1 / N) * (n2 / N) / (N - 1)
    if np.nansum(V) == 0:
        raise ValueError("Peto's odds ratio is not defined: no table has events and non-events")
    beta = float(np.sum(a - E) / np.sum(V))
    se = math.sqrt(1 / np.sum(V))
    pos = V > 0
    Q = max(0.0, float(np.sum((a - E)[pos] ** 2 / V[pos]) - np.sum(a - E) ** 2 / np.sum(V[pos])))
    with np.errstate(invalid="ignore", divide="ignore"):
        yi, vi = (a - E) / V, 1 / V
    both_zero = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0))
    yi[both_zero | ~pos], vi[both_zero | ~pos] = np.nan, np.nan
    labels = _labels(slab, data, keep)
    return _result("PETO", "OR", beta, se, yi, vi, Q, int(np.isfinite(yi).sum()), level, labels)


def _labels(slab, data, keep):
    if slab is None:
        if data is not None and "key" in data:
            slab = data["key"].astype(str).tolist()
        else:
            slab = [str(i + 1) for i in range(len(keep))]
    elif isinstance(slab, str):
        slab = data[slab].astype(str).tolist()
    return [s for s, k in zip(slab, keep) if k]
