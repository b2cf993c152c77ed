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

from . import distributions as dist

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
    "EK/Egger sandwich"). ``res`` is a CHE fit (:func:`~metaanalysis.rve.che`)."""
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
    from scipy import stats  # only here: scipy.stats takes a second to import

    tau, p = stats.kendalltau(ystar, v, method=method)
    return BeggResult(float(tau), float(p))


def _ordinal_ranks(x):
    """1 ... n in the order of ``x``, ties in their order of appearance (scipy's
    ``rankdata(x, method="ordinal")``)."""
    ranks = np.empty(len(x), dtype=np.int64)
    ranks[np.argsort(x, kind="stable")] = np.arange(1, len(x) + 1)
    return ranks


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
        ranks = _ordinal_ranks(np.abs(centred))
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


@dataclass
class RegtestResult:
    """metafor's ``regtest``: the test of the ``predictor``'s coefficient (``zval``, ``pval``,
    ``dfs``: t under Knapp-Hartung), the model with it (``fit``) and the limit estimate
    ``est`` with its CI (the effect as the predictor goes to 0: PET with ``sei``, PEESE with
    ``vi``; NaN for ``ni``, which does not go to 0, and for models with moderators)."""

    predictor: str
    zval: float
    pval: float
    dfs: float
    est: float
    ci_lb: float
    ci_ub: float
    fit: RMAResult

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("predictor", "zval", "pval", "dfs", "est",
                                               "ci_lb", "ci_ub")}

    def __str__(self):
        stat = "t" if math.isfinite(self.dfs) else "z"
        out = (f"Regression test for funnel plot asymmetry (predictor: {self.predictor}): "
               f"{stat} = {self.zval:.4f}, p = {self.pval:.4f}")
        if math.isfinite(self.est):
            out += (f"\nLimit estimate (as {self.predictor} -> 0): {self.est:.4f} "
                    f"[{self.ci_lb:.4f}, {self.ci_ub:.4f}]")
        return out


PREDICTORS = ("sei", "vi", "ni", "ninv", "sqrtninv")


def regtest(res: RMAResult, predictor: str = "sei", ni=None) -> RegtestResult:
    """Regression test for funnel plot asymmetry with metafor's predictors: ``sei`` (Egger;
    its limit estimate is PET), ``vi`` (its limit estimate is PEESE), ``ni``, ``ninv`` (1/n)
    or ``sqrtninv`` (1/sqrt(n)); ``ni`` (sample sizes, one per effect) is needed for the last
    three. The predictor is added to the model's own moderators and fitted with its method
    and test (Sterne & Egger, 2005; Stanley & Doucouliagos, 2014)."""
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor = {predictor!r}: use one of {', '.join(PREDICTORS)}")
    if predictor in ("sei", "vi"):
        x = np.sqrt(res.vi) if predictor == "sei" else np.asarray(res.vi, float)
    else:
        if ni is None:
            raise ValueError(f"predictor = {predictor!r} needs the sample sizes: "
                             "regtest(res, predictor, ni=...)")
        n = np.asarray(ni, float)
        if n.shape != (res.k,) or not np.all(np.isfinite(n) & (n > 0)):
            raise ValueError(f"ni: {res.k} positive sample sizes are needed, one per effect")
        x = {"ni": n, "ninv": 1 / n, "sqrtninv": 1 / np.sqrt(n)}[predictor]
    X = np.column_stack([res.X, x])
    fit = _fit(res.yi, res.vi, X, res.names + [predictor], res.method, res.test, res.level,
               res.measure, r2=False, qprofile=False)
    j = X.shape[1] - 1
    limit = res.X.shape[1] == 1 and predictor != "ni"
    est, lb, ub = ((float(fit.beta[0]), float(fit.ci_lb[0]), float(fit.ci_ub[0])) if limit
                   else (math.nan, math.nan, math.nan))
    return RegtestResult(predictor, float(fit.zval[j]), float(fit.pval[j]),
                         fit.dfs if res.test == "knha" else math.inf, est, lb, ub, fit)


@dataclass
class FsnResult:
    """metafor's ``fsn``: the fail-safe number ``fsnum`` of the ``type``, with the p-value of
    the observed effects (Rosenthal, Rosenberg), their mean (Orwin, Rosenberg) and Orwin's
    ``target``."""

    type: str
    fsnum: float
    alpha: float
    pval: float
    meanes: float
    target: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def __str__(self):
        return (f"Fail-safe N ({self.type}): {self.fsnum:g}"
                + (f" (target {self.target:.4f})" if math.isfinite(self.target) else ""))


def fsn(yi, vi=None, *, sei=None, type: str = "Rosenthal", alpha: float = 0.05,
        target: float | None = None, weighted: bool = False) -> FsnResult:
    """Fail-safe N, as metafor's ``fsn``: ``Rosenthal`` (Stouffer's z: how many null studies
    bring the one-sided p above ``alpha``), ``Orwin`` (how many null studies bring the
    unweighted, or with ``weighted`` the inverse-variance, mean effect down to ``target``,
    default half the mean) and ``Rosenberg`` (the weighted, fixed-effect version, two-sided).
    A rough gauge, criticised as such (Becker, 2005): report it beside the selection model or
    PET-PEESE, never alone."""
    from scipy import stats as st

    y = np.asarray(yi, float)
    v = (np.asarray(vi, float) if vi is not None
         else np.asarray(sei, float) ** 2 if sei is not None else None)
    if v is None and (type != "Orwin" or weighted):
        raise ValueError(f"fsn(type={type!r}{', weighted=True' if weighted else ''}) needs "
                         "the sampling variances: vi=... (or sei=...)")
    k = len(y)
    pval, meanes, tgt = math.nan, math.nan, math.nan
    if type == "Rosenthal":
        z_avg = abs(np.sum(y / np.sqrt(v)) / math.sqrt(k))
        pval = float(st.norm.sf(z_avg))
        n = max(0.0, k * (z_avg / st.norm.isf(alpha)) ** 2 - k)
    elif type == "Orwin":
        meanes = float(np.sum(y / v) / np.sum(1 / v)) if weighted else float(np.mean(y))
        tgt = meanes / 2 if target is None else float(target)
        if tgt == 0:
            n = math.inf
        else:
            if np.sign(tgt) != np.sign(meanes):
                tgt = -tgt
            n = max(0.0, k * (meanes - tgt) / tgt)
    elif type == "Rosenberg":
        w = 1 / v
        meanes = float(np.sum(w * y) / w.sum())
        zval = meanes / math.sqrt(1 / w.sum())
        wp = (np.sum(w * y) / st.norm.isf(alpha / 2)) ** 2 - w.sum()
        pval = float(2 * st.norm.sf(abs(zval)))
        n = max(0.0, k * wp / w.sum())
    else:
        raise ValueError(f"type = {type!r}: use Rosenthal, Orwin or Rosenberg")
    if math.isfinite(n) and abs(n - round(n)) >= np.finfo(float).eps ** 0.5:
        n = math.ceil(n)
    elif math.isfinite(n):
        n = round(n)
    return FsnResult(type, float(n), alpha, pval, meanes, tgt)
