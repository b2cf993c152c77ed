"""Common-effect models for 2x2 tables: Mantel-Haenszel (OR, RR, RD) and Peto's odds ratio.

As metafor's ``rma.mh`` and ``rma.peto``: the pooled estimate comes from the raw counts
(no continuity correction); the variance is Robins, Breslow & Greenland (1986) for the MH
OR, Greenland & Robins (1985) for the MH RR and RD; Peto's one-step OR (Yusuf et al., 1985).
The heterogeneity test uses the study effects from ``escalc`` (1/2 added to tables with a
zero cell, tables with no event in either group left out), as metafor does.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from . import distributions as dist

from .effects import escalc
from .models import FitWarning, RMAResult


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


def _result(method, measure, beta, se, yi, vi, Q, k_yi, level, slab, tables, weights):
    ok = np.isfinite(yi)
    dfs = k_yi - 1
    if dfs > 0:
        Qp = float(dist.chi2_sf(Q, dfs))
        I2 = max(0.0, 100 * (Q - dfs) / Q) if Q > 0 else 0.0
        H2 = Q / dfs
    else:
        Q, Qp, I2, H2 = 0.0, 1.0, 0.0, 1.0
    return TwoByTwoResult(
        k=len(yi), method=method, test="z", level=level, measure=measure,
        names=["intercept"], beta=np.array([beta]), vb=np.array([[se**2]]),
        tau2=0.0, Q=Q, Q_pvalue=Qp, I2=I2, H2=H2, tau2_ci=(math.nan, math.nan),
        dfs=dfs, yi=yi[ok], vi=vi[ok], X=np.ones((int(ok.sum()), 1)),
        slab=[s for s, o in zip(slab, ok) if o], tables=tables, table_slab=list(slab),
        table_weights=weights)


@dataclass
class TwoByTwoResult(RMAResult):
    """A Mantel-Haenszel or Peto fit: as :class:`RMAResult`, with the 2x2 tables it was
    computed from, so that leave-one-out and cumulative analyses refit the same method, and
    its own weights (metafor's ``weights.rma.mh`` / ``weights.rma.peto``)."""

    tables: np.ndarray = field(default=None, repr=False)  # k x 4: ai, bi, ci, di
    table_slab: list = field(default=None, repr=False)
    table_weights: np.ndarray = field(default=None, repr=False)

    @property
    def weights(self) -> np.ndarray:
        """Percent weights of the tables with an effect: the Mantel-Haenszel weights
        (OR: bi ci / Ni; RR: ci n1i / Ni; RD: n1i n2i / Ni) or Peto's (the hypergeometric
        variances), as metafor gives them, not inverse-variance weights."""
        ok = np.isfinite(self._all_yi)
        w = self.table_weights
        return (100 * w / np.sum(w))[ok]

    @property
    def _all_yi(self):
        yi, _ = (_escalc_q(self.measure, *self.tables.T) if self.method == "MH"
                 else _peto_effects(*self.tables.T))
        return yi

    def refit_tables(self, keep) -> "TwoByTwoResult":
        """The same method on a subset of the tables (a boolean mask or indices)."""
        a, b, c, d = self.tables[keep].T
        slab = list(np.asarray(self.table_slab, dtype=object)[keep])
        if self.method == "MH":
            return rma_mh(a, b, c, d, measure=self.measure, level=self.level, slab=slab)
        return rma_peto(a, b, c, d, level=self.level, slab=slab)


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
        weights = b * c / N
        if R == 0 or S == 0:
            # metafor gives NA (with a warning), not an error
            warnings.warn(FitWarning("mh_or_undefined"))
            beta, se = math.nan, math.nan
        else:
            P, Qv = (a + d) / N, (b + c) / N
            Ri, Si = a * d / N, b * c / N
            beta = math.log(R / S)
            se = math.sqrt(0.5 * (np.sum(P * Ri) / R**2 + np.sum(P * Si + Qv * Ri) / (R * S)
                                  + np.sum(Qv * Si) / S**2))
    elif measure == "RR":
        R, S = np.sum(a * n2 / N), np.sum(c * n1 / N)
        weights = c * n1 / N
        if R == 0 or S == 0:
            warnings.warn(FitWarning("mh_rr_undefined"))
            beta, se = math.nan, math.nan
        else:
            beta = math.log(R / S)
            se = math.sqrt(np.sum(n1 / N * n2 / N * (a + c) - a / N * c) / (R * S))
    else:
        weights = n1 * n2 / N
        W = np.sum(n1 * n2 / N)
        beta = float(np.sum(a * n2 / N - c * n1 / N) / W)
        se = math.sqrt((beta * np.sum(c * (n1 / N) ** 2 - a * (n2 / N) ** 2
                                      + n1 / N * n2 / N * (n2 - n1) / 2)
                        + np.sum(a * (n2 - c) / N + c * (n1 - a) / N) / 2) / W**2)
    yi, vi = _escalc_q(measure, a, b, c, d)
    ok = np.isfinite(yi)
    Q = max(0.0, float(np.sum((yi[ok] - beta) ** 2 / vi[ok]))) if np.isfinite(beta) \
        else math.nan
    labels = _labels(slab, data, keep)
    return _result("MH", measure, beta, se, yi, vi, Q, int(ok.sum()), level, labels,
                   np.column_stack([a, b, c, d]), weights)


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
    yi, vi = _peto_effects(a, b, c, d)
    labels = _labels(slab, data, keep)
    return _result("PETO", "OR", beta, se, yi, vi, Q, int(np.isfinite(yi).sum()), level, labels,
                   np.column_stack([a, b, c, d]), np.nan_to_num(V))


def _peto_effects(a, b, c, d):
    """Each table's Peto log odds ratio (O - E) / V and its variance 1 / V; NaN for tables
    with no event or no non-event in both groups."""
    n1, n2 = a + b, c + d
    N = n1 + n2
    xt, yt = a + c, b + d
    E = xt * n1 / N
    with np.errstate(invalid="ignore", divide="ignore"):
        V = xt * yt * (n1 / N) * (n2 / N) / (N - 1)
        yi, vi = (a - E) / V, 1 / V
    both_zero = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0)) | ~(V > 0)
    yi[both_zero], vi[both_zero] = np.nan, np.nan
    return yi, vi


def _labels(slab, data, keep):
    if slab is None:
        if data is not None and "key" in data:
            slab = data["key"].astype(str).tolist()
        else:
            slab = [str(i + 1) for i in range(len(keep))]
    elif isinstance(slab, str):
        slab = data[slab].astype(str).tolist()
    return [s for s, k in zip(slab, keep) if k]
