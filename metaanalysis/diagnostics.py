"""Case-level and heterogeneity diagnostics of a fitted model, with metafor's names.

- :func:`confint`: intervals of tau², tau, I² and H² (Q-profile, Viechtbauer 2007) beside
  those of the coefficients, as ``confint.rma.uni``; for a three-level model, profile
  likelihood intervals of both variance components, as ``confint.rma.mv``;
- :func:`blup` and :func:`ranef`: best linear unbiased predictions of the true effects and of
  the random effects (Raudenbush & Bryk, 1985), as ``blup.rma.uni`` / ``ranef.rma.uni``;
  ``ranef`` of a three-level model gives the cluster and the effect levels (``ranef.rma.mv``);
- :func:`rstandard` (internally standardised residuals, ``type="marginal"``) and
  :func:`rstudent` (externally standardised, each effect left out in turn), as metafor's
  (Viechtbauer & Cheung, 2010).

Each returns a DataFrame indexed by the effects' labels (or a small result object), so a
researcher can stop and look at it. ``res.fitted()`` and ``res.resid()`` are on the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import math
import warnings

import numpy as np
import pandas as pd
from scipy import optimize, sparse

from . import distributions as dist

from .models import RMAResult, _tr_P, _wls


def _univariate(res, what: str) -> RMAResult:
    if not isinstance(res, RMAResult) or hasattr(res, "refit_tables"):
        raise TypeError(f"{what} needs a model fitted by rma() (not {type(res).__name__}; "
                        "Mantel-Haenszel and Peto fits have no random effects)")
    if hasattr(res, "sigma2_between"):
        raise TypeError(f"{what} of a three-level model (rma_mv) is not available: its "
                        "random effects are per cluster and per effect and the univariate "
                        "formulas would give wrong numbers; use ranef(res) for both levels "
                        "and res.fitted() for the fixed part (metafor has no blup.rma.mv)")
    return res


def _index(res: RMAResult) -> pd.Index:
    labels = res.slab if res.slab is not None else [str(i + 1) for i in range(res.k)]
    return pd.Index(labels, name="slab")


def _tau2(res: RMAResult) -> float:
    return 0.0 if res.method == "FE" else float(res.tau2)


def _xvx(res: RMAResult) -> np.ndarray:
    """x_i' vb x_i for every effect: the variance of its fitted value."""
    return np.einsum("ij,jk,ik->i", res.X, res.vb, res.X)


@dataclass
class ConfintResult:
    """Intervals of the coefficients (``fixed``) and of the heterogeneity (``random``: rows
    tau2, tau, I2, H2; columns estimate, ci_lb, ci_ub)."""

    fixed: pd.DataFrame
    random: pd.DataFrame
    level: float

    def to_dict(self) -> dict:
        return {"level": self.level,
                "fixed": self.fixed.reset_index().to_dict(orient="records"),
                "random": self.random.reset_index().to_dict(orient="records")}

    def __str__(self) -> str:
        return (f"{self.level:g}% confidence intervals\n\n{self.fixed.to_string()}\n\n"
                f"{self.random.to_string()}")


def confint(res: RMAResult) -> ConfintResult:
    """Confidence intervals of the coefficients and of tau², tau, I² and H².

    tau²'s interval is the Q-profile one (Viechtbauer, 2007), whatever the estimator; I² and
    H² are the same transformation of tau² as their estimates, with the "typical" sampling
    variance (k - p) / tr(P) of the fixed-effect weights (Higgins & Thompson, 2002), as
    metafor's ``confint.rma.uni``. Bounds of tau² are truncated at 0.

    For a three-level model (``rma_mv``), the random part has the rows ``sigma2_between``,
    ``sigma_between``, ``sigma2_within`` and ``sigma_within``: profile-likelihood intervals
    (the other component re-estimated at each value; restricted likelihood for REML), as
    ``confint.rma.mv``."""
    if hasattr(res, "sigma2_between") and isinstance(res, RMAResult):
        return _confint_mv(res)
    res = _univariate(res, "confint()")
    fixed = pd.DataFrame({"estimate": res.beta, "ci_lb": res.ci_lb, "ci_ub": res.ci_ub},
                         index=pd.Index(res.names, name="term"))
    if res.method == "FE":
        raise ValueError("a common-effect (FE) model has no heterogeneity to give an "
                         "interval for: fit it with a random-effects method (REML, DL ...)")
    k, p = res.X.shape
    if k - p < 1:
        raise ValueError("the intervals of tau² need more effects than coefficients")
    lb, ub = res.tau2_ci
    if not (np.isfinite(lb) and np.isfinite(ub)):
        from .models import tau2_qprofile

        lb, ub = tau2_qprofile(res.yi, res.vi, res.X, res.level)
    w = 1 / res.vi
    _, inv = _wls(res.yi, w, res.X)
    vt = (k - p) / _tr_P(w, res.X, inv)
    t2 = np.array([res.tau2, lb, ub], dtype=float)
    rows = {"tau2": t2, "tau": np.sqrt(t2), "I2": 100 * t2 / (vt + t2), "H2": 1 + t2 / vt}
    random = pd.DataFrame(rows, index=["estimate", "ci_lb", "ci_ub"]).T
    random.index.name = "parameter"
    return ConfintResult(fixed, random, res.level)


def _confint_mv(res) -> ConfintResult:
    fixed = pd.DataFrame({"estimate": res.beta, "ci_lb": res.ci_lb, "ci_ub": res.ci_ub},
                         index=pd.Index(res.names, name="term"))
    from .models import _working_unit

    reml = res.method == "REML"
    # profiled in the fit's working unit (effects in euros: components of the order of 1e12,
    # which the searches' absolute starts and limits below are not made for), then given
    # back in the effects' own
    unit = _working_unit(res.vi)
    objective, args = res._objective(reml, unit)
    est = np.array([res.sigma2_between, res.sigma2_within], dtype=float) / unit**2
    if not np.all(np.isfinite(est)):
        raise ValueError("the model did not converge: its variance components have no "
                         "interval")
    best = float(objective(est, *args, grad=False)[0])
    half = float(dist.chi2_isf(1 - res.level / 100, 1)) / 2
    rows = {}
    for j, name in enumerate(("sigma2_between", "sigma2_within")):
        other = 1 - j

        def profile(value, j=j, other=other):
            """Minus the log-likelihood with component j fixed at value, the other one
            re-estimated, minus the threshold: 0 at a bound."""
            def f(x):
                params = np.empty(2)
                params[j], params[other] = value, x[0]
                nll, g = objective(params, *args)
                return nll, np.array([g[other]])
            fits = [optimize.minimize(f, np.array([start]), jac=True, method="L-BFGS-B",
                                      bounds=[(0, None)],
                                      options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500})
                    for start in (est[other], 1e-4 + est[other] / 10, 2 * est[other] + 1e-3)]
            return min(f.fun for f in fits) - best - half

        lb = 0.0 if profile(0.0) <= 0 else optimize.brentq(profile, 0.0, est[j], xtol=1e-14,
                                                              rtol=1e-12)
        hi = max(2 * est[j], 0.01)
        while profile(hi) < 0 and hi < 1e8:
            hi *= 4
        if profile(hi) < 0:
            warnings.warn(f"the upper bound of {name} was not found (the likelihood stays "
                          "flat): it is NaN", RuntimeWarning, stacklevel=3)
            ub = math.nan
        else:
            ub = optimize.brentq(profile, est[j], hi, xtol=1e-14, rtol=1e-12)
        t2 = np.array([est[j], lb, ub]) * unit**2
        rows[name] = t2
        rows[name.replace("sigma2", "sigma")] = np.sqrt(t2)
    random = pd.DataFrame(rows, index=["estimate", "ci_lb", "ci_ub"]).T
    random.index.name = "parameter"
    return ConfintResult(fixed, random, res.level)


def blup(res: RMAResult) -> pd.DataFrame:
    """Best linear unbiased predictions of the true effects: each effect shrunk towards its
    fitted value by l_i = tau² / (tau² + v_i), with ``se``, ``pi_lb`` and ``pi_ub`` (t
    quantiles under Knapp-Hartung), as metafor's ``blup.rma.uni``."""
    res = _univariate(res, "blup()")
    li = _tau2(res) / (_tau2(res) + res.vi)
    fit = res.X @ res.beta
    pred = li * res.yi + (1 - li) * fit
    se = np.sqrt(li * res.vi + (1 - li) ** 2 * _xvx(res))
    return _with_interval(res, pred, se)


def ranef(res: RMAResult) -> pd.DataFrame:
    """Best linear unbiased predictions of the random effects u_i = l_i (y_i - x_i b), with
    ``se``, ``pi_lb`` and ``pi_ub``, as metafor's ``ranef.rma.uni`` (zero for an FE fit)."""
    if hasattr(res, "sigma2_between") and isinstance(res, RMAResult):
        return _ranef_mv(res)
    res = _univariate(res, "ranef()")
    if res.method == "FE":
        zero = np.zeros(res.k)
        return _with_interval(res, zero, zero)
    li = _tau2(res) / (_tau2(res) + res.vi)
    pred = li * (res.yi - res.X @ res.beta)
    se = np.sqrt(li * res.vi + li ** 2 * _xvx(res))
    return _with_interval(res, pred, se)


def _ranef_mv(res) -> dict:
    """The two levels of a three-level model: u = D Z' M^-1 e with variance of the prediction
    error D - D Z' P Z D (P = M^-1 - M^-1 X (X'M^-1X)^-1 X'M^-1), as ``ranef.rma.mv``."""
    from .multilevel import _Stacks

    V = res.V if res.V is not None else sparse.diags_array(res.vi).tocsr()
    stacks = _Stacks(res.yi, res.X, V, res.cluster)
    s2b, s2w = res.sigma2_between, res.sigma2_within
    C = np.asarray(res.vb_model if hasattr(res, "vb_model") else res.vb)
    e = res.yi - res.X @ res.beta
    u_eff, v_eff = np.empty(res.k), np.empty(res.k)
    clusters, u_cl, v_cl = [], [], []
    for g, Minv in zip(stacks.groups, stacks.inverses(s2b, s2w)):
        A = Minv @ g["X"]  # (m, n, p)
        We = np.einsum("mij,mj->mi", Minv, e[g["idx"]])
        one_A = A.sum(axis=1)  # (m, p)
        one_P_one = Minv.sum(axis=(1, 2)) - np.einsum("mp,pq,mq->m", one_A, C, one_A)
        P_ii = (np.diagonal(Minv, axis1=1, axis2=2)
                - np.einsum("mnp,pq,mnq->mn", A, C, A))
        clusters.extend(res.cluster[g["idx"][:, 0]])
        u_cl.append(s2b * We.sum(axis=1))
        v_cl.append(s2b - s2b**2 * one_P_one)
        u_eff[g["idx"]] = s2w * We
        v_eff[g["idx"]] = s2w - s2w**2 * P_ii
    dfs = getattr(res, "model_dfs", res.dfs)  # a robust fit's own dfs are per coefficient
    crit = float(dist.t_isf((1 - res.level / 100) / 2, dfs)) if res.test == "knha" \
        else float(dist.norm_isf((1 - res.level / 100) / 2))

    def table(pred, var, index):
        se = np.sqrt(np.maximum(var, 0))
        return pd.DataFrame({"pred": pred, "se": se, "pi_lb": pred - crit * se,
                             "pi_ub": pred + crit * se}, index=index)

    cl = table(np.concatenate(u_cl), np.concatenate(v_cl), pd.Index(clusters, name="cluster"))
    return {"cluster": cl.loc[pd.unique(res.cluster)],
            "effect": table(u_eff, v_eff, _index(res))}


def _with_interval(res, pred, se) -> pd.DataFrame:
    crit = res.crit
    return pd.DataFrame({"pred": pred, "se": se, "pi_lb": pred - crit * se,
                         "pi_ub": pred + crit * se}, index=_index(res))


def hat_matrix(res: RMAResult) -> np.ndarray:
    """H = X (X'WX)^-1 X'W with W = diag(1 / (v_i + tau²)): fitted values are H y."""
    w = 1 / (res.vi + _tau2(res))
    inv = np.linalg.inv(res.X.T @ (w[:, None] * res.X))
    return res.X @ inv @ (res.X * w[:, None]).T


def rstandard(res: RMAResult) -> pd.DataFrame:
    """Internally standardised residuals: ``resid`` = y_i - x_i b, its ``se`` from
    (I - H) M (I - H)' with M = diag(v_i + tau²), and ``z``, as metafor's
    ``rstandard.rma.uni`` (marginal)."""
    res = _univariate(res, "rstandard()")
    H = hat_matrix(res)
    ImH = np.eye(res.k) - H
    e = res.yi - res.X @ res.beta
    e[np.abs(e) < 100 * np.finfo(float).eps] = 0.0
    ve = ImH @ np.diag(res.vi + _tau2(res)) @ ImH.T
    se = np.sqrt(np.diag(ve))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = e / se
    return pd.DataFrame({"resid": e, "se": se, "z": z}, index=_index(res))


def rstudent(res: RMAResult) -> pd.DataFrame:
    """Externally standardised (studentized deleted) residuals: each effect against the
    model fitted without it, ``resid`` = y_i - x_i b(-i), ``se`` = sqrt(v_i + tau²(-i) +
    x_i' vb(-i) x_i) (scaled as metafor under Knapp-Hartung), and ``z``; NaN where the
    deletion leaves the model unestimable, as metafor's ``rstudent.rma.uni``."""
    from .sensitivity import _refuse_multilevel, deleted_residuals

    _refuse_multilevel(res, "rstudent()")
    res = _univariate(res, "rstudent()")
    resid, se = deleted_residuals(res)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = resid / se
    return pd.DataFrame({"resid": resid, "se": se, "z": z}, index=_index(res))


__all__ = ["ConfintResult", "confint", "blup", "ranef", "rstandard", "rstudent",
           "hat_matrix"]
