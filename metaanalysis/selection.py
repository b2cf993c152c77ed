"""Step-function selection models for publication bias: metafor's ``selmodel(res,
type="stepfun", steps=...)`` (Vevea & Hedges, 1995; the three-parameter selection model with
one cut-point at p = .025, McShane, Böckenholt & Hansen, 2016).

Studies are assumed published with a probability that depends on their one-sided p-value
(``alternative = "greater"``: p_i = 1 - Phi(y_i / sqrt(v_i))), constant within the intervals
that the ``steps`` cut: 1 for the first (the most significant), ``delta_j`` for the others.
The likelihood of each effect is its random-effects density times its weight, divided by the
expected weight under the model; the coefficients, tau² and the deltas are estimated jointly
by maximum likelihood, and the likelihood-ratio test compares with the same model without
selection (all deltas 1).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from . import distributions as dist

from .models import ConvergenceWarning, RMAResult


@dataclass
class SelectionResult:
    """The fitted selection model: ``beta`` and ``se`` (adjusted for selection), ``tau2``
    and ``se_tau2``, the ``delta`` of each interval of p-values (the first fixed at 1) with
    ``se_delta``, and the likelihood-ratio test of selection ``LRT`` (``LRTdf``, ``LRTp``)."""

    names: list
    beta: np.ndarray
    se: np.ndarray
    tau2: float
    se_tau2: float
    steps: tuple
    delta: np.ndarray
    se_delta: np.ndarray
    LRT: float
    LRTdf: int
    LRTp: float
    logLik: float
    k: int
    level: float
    counts: np.ndarray  # effects in each interval of p-values

    @property
    def zval(self):
        return self.beta / self.se

    @property
    def pval(self):
        return 2 * dist.norm_sf(np.abs(self.zval))

    @property
    def ci_lb(self):
        return self.beta - dist.norm_isf((1 - self.level / 100) / 2) * self.se

    @property
    def ci_ub(self):
        return self.beta + dist.norm_isf((1 - self.level / 100) / 2) * self.se

    @property
    def estimate(self) -> float:
        return float(self.beta[0])

    def table(self) -> pd.DataFrame:
        """The selection weights: one row per interval of p-values."""
        lower = (0.0,) + self.steps[:-1]
        return pd.DataFrame({"p_lb": lower, "p_ub": self.steps, "k": self.counts,
                             "delta": self.delta, "se": self.se_delta})

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "se": float(self.se[0]),
                "ci_lb": float(self.ci_lb[0]), "ci_ub": float(self.ci_ub[0]),
                "pval": float(self.pval[0]), "tau2": self.tau2, "se_tau2": self.se_tau2,
                "steps": list(self.steps), "delta": self.delta.tolist(),
                "se_delta": self.se_delta.tolist(), "LRT": self.LRT, "LRTdf": self.LRTdf,
                "LRTp": self.LRTp, "logLik": self.logLik}

    def __str__(self):
        coef = pd.DataFrame({"estimate": self.beta, "se": self.se, "zval": self.zval,
                             "pval": self.pval, "ci_lb": self.ci_lb, "ci_ub": self.ci_ub},
                            index=pd.Index(self.names, name="term"))
        return (f"Random-effects model with a step-function selection model (k = {self.k}; "
                f"ML)\n\ntau^2: {self.tau2:.4f} (se {self.se_tau2:.4f})\n\n"
                f"Test for selection: LRT(df = {self.LRTdf}) = {self.LRT:.4f}, "
                f"p-val = {self.LRTp:.4f}\n\nModel results (adjusted for selection):\n\n"
                f"{coef.to_string(float_format=lambda x: f'{x:.4f}')}\n\n"
                f"Selection weights:\n\n"
                f"{self.table().to_string(index=False, float_format=lambda x: f'{x:.4f}')}")


def _loglik(theta, y, v, X, cuts, group, p):
    beta, tau2, delta = theta[:p], theta[p], np.r_[1.0, theta[p + 1:]]
    mu = X @ beta
    s = np.sqrt(v + tau2)
    # P(p <= s_j) for each effect and cut-point s_j: y >= sqrt(v) z_(1 - s_j)
    upper = dist.norm_sf((np.sqrt(v)[:, None] * cuts[None, :] - mu[:, None]) / s[:, None])
    probs = np.diff(np.c_[np.zeros(len(y)), upper], axis=1)
    A = probs @ delta
    ll = (np.log(delta[group]) + dist.norm_logpdf(y, mu, s) - np.log(A))
    return float(np.sum(ll))


def _hessian(f, x, scale):
    """Central finite-difference Hessian of f at x."""
    n = len(x)
    h = 1e-4 * np.maximum(np.abs(x), scale)
    H = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.eye(n)[i] * h[i], np.eye(n)[j] * h[j]
            H[i, j] = H[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej)
                                 + f(x - ei - ej)) / (4 * h[i] * h[j])
    return H


def selmodel(res: RMAResult, type: str = "stepfun", steps=(0.025,)) -> SelectionResult:
    """Fit a step-function selection model to the effects and moderators of ``res`` (an
    ``rma`` fit), as metafor's ``selmodel(res, type="stepfun", steps=steps)`` by ML.

    ``steps``: the cut-points of the one-sided p-values (1 is added); with the default
    (0.025) this is the three-parameter selection model. An interval without any effect
    cannot be estimated: choose fewer steps."""
    if type != "stepfun":
        raise ValueError("only type='stepfun' (step-function selection) is offered")
    if not isinstance(res, RMAResult) or hasattr(res, "refit_tables"):
        raise TypeError("selmodel() needs a model fitted by rma()")
    cuts = tuple(sorted(float(s) for s in np.atleast_1d(steps) if s < 1)) + (1.0,)
    if any(not 0 < s <= 1 for s in cuts):
        raise ValueError("steps are p-values between 0 and 1, e.g. steps=[0.025]")
    y, v, X = np.asarray(res.yi, float), np.asarray(res.vi, float), res.X
    k, p = X.shape
    pvals = dist.norm_sf(y / np.sqrt(v))
    group = np.searchsorted(np.asarray(cuts), pvals, side="left")
    counts = np.bincount(group, minlength=len(cuts))
    if (counts == 0).any():
        empty = [f"({([0.0] + list(cuts))[j]:g}, {cuts[j]:g}]" for j in np.flatnonzero(counts == 0)]
        raise ValueError(f"no effect has a one-sided p-value in {', '.join(empty)}: its "
                         "selection weight cannot be estimated; choose other steps")
    z = dist.norm_isf(np.asarray(cuts))  # z_(1 - s_j); -inf for s = 1
    m = len(cuts) - 1
    # fitted in the working unit (the starts, bounds and steps below are absolute, made for
    # effects of the order of 1), then given back in the effects' own
    from .models import _fit, _working_unit

    unit = _working_unit(v)
    if unit != 1:
        y, v = y / unit, v / unit**2
    # start from the ML random-effects fit
    ml = res if res.method == "ML" and unit == 1 else _fit(
        y, v, X, res.names, "ML", "z", res.level, res.measure, r2=False, qprofile=False)
    start = np.r_[ml.beta, max(ml.tau2, 1e-4), np.ones(m)]

    def nll(theta):
        return -_loglik(theta, y, v, X, z, group, p)

    bounds = [(None, None)] * p + [(0.0, None)] + [(1e-8, None)] * m
    best = None
    for s in (start, np.r_[ml.beta, max(ml.tau2, 1e-4), np.full(m, 0.5)]):
        r = optimize.minimize(nll, s, method="L-BFGS-B", bounds=bounds,
                              options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10000})
        if best is None or r.fun < best.fun:
            best = r
    if not best.success:
        warnings.warn(ConvergenceWarning("selection_not_converged", reason=str(best.message)),
                      stacklevel=2)
    theta = best.x
    free = np.ones(len(theta), bool)
    if theta[p] < 1e-6:  # tau² on its bound: no se, as metafor
        free[p] = False
    H = _hessian(lambda t: nll(_embed(t, theta, free)), theta[free],
                 np.full(int(free.sum()), 1e-2))
    cov = np.full((len(theta), len(theta)), np.nan)
    with np.errstate(invalid="ignore"):
        cov[np.ix_(free, free)] = np.linalg.pinv(H)
    se_all = np.sqrt(np.diag(cov))
    ll_sel = -best.fun
    ll_ml = _loglik(np.r_[ml.beta, ml.tau2, np.ones(m)], y, v, X, z, group, p)
    lrt = max(0.0, 2 * (ll_sel - ll_ml))
    if unit != 1:  # back in the effects' unit (each density divided by the unit)
        ll_sel -= k * math.log(unit)
    return SelectionResult(names=list(res.names), beta=theta[:p] * unit, se=se_all[:p] * unit,
                           tau2=float(theta[p]) * unit**2, se_tau2=float(se_all[p]) * unit**2,
                           steps=cuts, delta=np.r_[1.0, theta[p + 1:]],
                           se_delta=np.r_[math.nan, se_all[p + 1:]], LRT=lrt, LRTdf=m,
                           LRTp=float(dist.chi2_sf(lrt, m)), logLik=ll_sel, k=k,
                           level=res.level, counts=counts)


def _embed(t, theta, free):
    out = theta.copy()
    out[free] = t
    return out
