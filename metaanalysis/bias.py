"""Small-study effects and publication bias: Egger's test, Begg's test, trim-and-fill.

As metafor's ``regtest`` (default: a meta-regression on the standard error, with the model's
own estimator and test; Egger et al., 1997; Sterne & Egger, 2005), ``ranktest`` (Kendall's tau
between standardised effects and their variances; Begg & Mazumdar, 1994) and ``trimfill``
(Duval & Tweedie, 2000, estimator L0, side from the sign of Egger's slope).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .models import RMAResult, _fit, refit


@dataclass
class EggerResult:
    zval: float
    pval: float
    slope: float
    limit_estimate: float  # the intercept: the effect as the standard error goes to 0
    dfs: float

    def __str__(self):
        stat = "t" if math.isfinite(self.dfs) else "z"
        return (f"Regression test for funnel plot asymmetry (Egger): {stat} = {self.zval:.4f}, "
                f"p = {self.pval:.4f}; limit estimate (as sei -> 0): {self.limit_estimate:.4f}")


@dataclass
class BeggResult:
    tau: float
    pval: float

    def __str__(self):
        return f"Rank correlation test for funnel plot asymmetry (Begg): Kendall's tau = " \
               f"{self.tau:.4f}, p = {self.pval:.4f}"


@dataclass
class TrimFillResult:
    k0: int
    side: str
    se_k0: float
    filled_yi: np.ndarray
    filled_vi: np.ndarray
    result: RMAResult  # the model on the observed and filled effects

    @property
    def estimate(self) -> float:
        return self.result.estimate

    def __str__(self):
        return (f"Trim-and-fill (L0): {self.k0} effect(s) imputed on the {self.side} side; "
                f"adjusted estimate {self.result.estimate:.4f} "
                f"[{self.result.ci_lb[0]:.4f}, {self.result.ci_ub[0]:.4f}]")


def egger(res: RMAResult) -> EggerResult:
    """Egger's regression test: the model's coefficient on sqrt(vi) (metafor's regtest)."""
    X = np.column_stack([res.X, np.sqrt(res.vi)])
    fit = _fit(res.yi, res.vi, X, res.names + ["sei"], res.method, res.test, res.level,
               res.measure, r2=False, qprofile=False)
    j = X.shape[1] - 1
    return EggerResult(float(fit.zval[j]), float(fit.pval[j]), float(fit.beta[j]),
                       float(fit.beta[0]), fit.dfs if res.test == "knha" else math.inf)


def egger_robust(res) -> EggerResult:
    """Egger-type test for dependent effects: the CHE model with the standard error as a
    moderator, its slope tested with CR2 and Satterthwaite df (Rodgers & Pustejovsky, 2021,
    "EK/Egger sandwich"). ``res`` is a :class:`~metaanalysis.rve.RVEResult`."""
    from .rve import che

    cluster = np.asarray(res.cluster)
    fit = che(res.yi, res.vi, cluster=cluster, mods=np.sqrt(res.vi), rho=res.rho,
              level=res.level)
    return EggerResult(float(fit.tval[1]), float(fit.pval[1]), float(fit.beta[1]),
                       float(fit.beta[0]), float(fit.df[1]))


def begg(res: RMAResult) -> BeggResult:
    """Begg & Mazumdar's rank correlation test (metafor's ranktest).

    The p-value is exact when k < 50 and there are no ties, as R's ``cor.test``.
    """
    y, v = res.yi, res.vi
    w = 1 / v
    theta = np.sum(w * y) / w.sum()
    ystar = (y - theta) / np.sqrt(v - 1 / w.sum())
    ties = len(np.unique(ystar)) < len(ystar) or len(np.unique(v)) < len(v)
    method = "exact" if len(y) < 50 and not ties else "asymptotic"
    tau, p = stats.kendalltau(ystar, v, method=method)
    return BeggResult(float(tau), float(p))


def trimfill(res: RMAResult, side: str | None = None, maxiter: int = 100) -> TrimFillResult:
    """Duval & Tweedie's trim-and-fill with the L0 estimator, as metafor's trimfill."""
    if len(res.beta) != 1:
        raise ValueError("trim-and-fill applies to models without moderators")
    if res.k < 2:
        raise ValueError("trim-and-fill needs at least 2 effects")
    if side is None:
        side = "right" if egger_slope(res) < 0 else "left"
    y = -res.yi if side == "right" else res.yi.copy()
    order = np.argsort(y, kind="stable")
    y, v = y[order], res.vi[order]
    k = len(y)
    k0, previous, it = 0, -1, 0
    while k0 != previous:
        previous = k0
        it += 1
        if it > maxiter:
            raise RuntimeError("trim-and-fill did not converge")
        beta = refit(res, y[: k - k0], v[: k - k0]).estimate
        centred = y - beta
        ranks = stats.rankdata(np.abs(centred), method="ordinal")
        Sr = float(np.sum(ranks[centred > 0]))
        k0_raw = (4 * Sr - k * (k + 1)) / (2 * k - 1)
        var_sr = (k * (k + 1) * (2 * k + 1) + 10 * k0_raw**3 + 27 * k0_raw**2 + 17 * k0_raw
                  - 18 * k * k0_raw**2 - 18 * k * k0_raw + 6 * k**2 * k0_raw) / 24
        se_k0 = max(0.0, 4 * math.sqrt(max(var_sr, 0)) / (2 * k - 1))
        k0 = max(0, int(_round_half_even(k0_raw)))
    if k0 == 0:
        return TrimFillResult(0, side, se_k0, np.array([]), np.array([]), res)
    filled = 2 * beta - y[k - k0:]
    filled_yi = -filled if side == "right" else filled
    filled_vi = v[k - k0:]
    full = _fit(np.r_[res.yi, filled_yi], np.r_[res.vi, filled_vi], np.ones((res.k + k0, 1)),
                ["intercept"], res.method, res.test, res.level, res.measure,
                slab=list(res.slab) + [f"Filled {i + 1}" for i in range(k0)])
    return TrimFillResult(k0, side, se_k0, filled_yi, filled_vi, full)


def egger_slope(res: RMAResult) -> float:
    X = np.column_stack([np.ones(res.k), np.sqrt(res.vi)])
    return float(_fit(res.yi, res.vi, X, ["intercept", "sei"], res.method, res.test, res.level,
                      res.measure, r2=False, qprofile=False).beta[1])


def _round_half_even(x: float) -> float:
    """R's round(): halves go to the even neighbour."""
    return float(np.round(x))
