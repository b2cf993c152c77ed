"""The correlated-and-hierarchical-effects (CHE) model with robust variance.

The CHE working model (Pustejovsky & Tipton, 2022) is a three-level model whose sampling
errors correlate with a constant ``rho`` within a cluster: ``V = vcalc(vi, cluster, rho)``
(``clubSandwich::impute_covariance_matrix``), ``rma_mv(yi, V=V, cluster=cluster)`` fitted by
REML (``rma.mv(yi, V, random = ~ 1 | cluster/effect)``), and its coefficients tested with the
CR2 cluster-robust variance and Satterthwaite degrees of freedom (``robust(fit, cluster)``, as
``clubSandwich::coef_test(fit, vcov = "CR2")``). :func:`che` is exactly those three steps, so
its result is an ordinary robust three-level result: it prints, predicts, converts and plots
like any other model.
"""

from __future__ import annotations

import warnings

import pandas as pd

from .models import _prepare, in_context
from .multilevel import _fit_mv, cluster_labels, vcalc
from .sandwich import RobustMVResult, robust


def che(yi=None, vi=None, *, cluster, data: pd.DataFrame | None = None, mods=None,
        rho: float = 0.6, level: float = 95, measure: str = "GEN",
        slab=None) -> RobustMVResult:
    """Fit the CHE working model by REML and test its coefficients with CR2 and Satterthwaite.

    The same as ``robust(rma_mv(yi, V=vcalc(vi, cluster, rho), cluster=cluster), cluster)``;
    agrees with ``V <- impute_covariance_matrix(vi, cluster, r = rho)``, ``rma.mv(yi, V,
    random = ~ 1 | cluster/effect)`` and ``coef_test(fit, vcov = "CR2")``. The result keeps
    ``rho`` (for :func:`rho_sensitivity`) and the model-based ``se_model``.
    """
    if not -1 < rho < 1:
        raise ValueError("rho is a correlation: give a value between -1 and 1, e.g. 0.6")
    y, v, X, names, slab, frame, keep = _prepare(yi, vi, None, data, mods, slab,
                                                  keep_mask=True)
    cl = cluster_labels(cluster, frame, keep)
    if len(set(cl)) < 2:
        raise ValueError("robust variance estimation needs at least 2 clusters")
    V = vcalc(v, cl, rho, sparse=True)
    fit = _fit_mv(y, v, V, X, names, slab, frame, cl, "REML", "z", level, measure, rho=rho)
    return robust(fit, cl)


#: The correlations between effects of a study that :func:`rho_sensitivity` tries.
RHOS = (0.0, 0.2, 0.4, 0.6, 0.8)


def rho_sensitivity(res, rhos=RHOS) -> pd.DataFrame:
    """The CHE model refitted for each assumed correlation ``rho`` between the sampling errors
    of a study's effects (Pustejovsky & Tipton, 2022, recommend checking it): one row per rho
    with the estimate, its CR2 se, df, CI and p, and both variance components. An
    intercept-only CHE fit (a note's pooled effect)."""
    if getattr(res, "rho", None) is None:
        raise ValueError("rho_sensitivity() refits a CHE model (che()): this fit assumes no "
                         "correlation rho")
    if len(res.beta) != 1:
        raise ValueError("rho_sensitivity() refits the pooled effect: fit the model without "
                         "moderators")
    rows = []
    for rho in rhos:
        if rho == res.rho:  # the fit itself: the same data and rho give the same numbers
            fit = res
        else:
            fit = _refit(res, rho)
        rows.append({"rho": rho, "estimate": float(fit.beta[0]), "se": float(fit.se[0]),
                     "df": float(fit.df[0]), "ci_lb": float(fit.ci_lb[0]),
                     "ci_ub": float(fit.ci_ub[0]), "pval": float(fit.pval[0]),
                     "sigma2_between": fit.sigma2_between,
                     "sigma2_within": fit.sigma2_within})
    return pd.DataFrame(rows)


def _refit(res, rho):
    """The intercept-only CHE model of ``res``'s effects with another ``rho``; a refit's
    warning is shown with its rho, never silenced."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = che(res.yi, res.vi, cluster=res.cluster, rho=rho, level=res.level,
                  measure=res.measure)
    for w in caught:
        warnings.warn(in_context(w.message, "at_rho", rho=float(rho)), stacklevel=3)
    return fit
