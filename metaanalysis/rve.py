"""Robust variance estimation with the correlated-and-hierarchical-effects (CHE) model.

The CHE working model (Pustejovsky & Tipton, 2022): within a cluster the sampling errors are
correlated with a constant ``r`` (``clubSandwich::impute_covariance_matrix``), and the model is
``rma.mv(yi, V, random = ~ 1 | cluster/effect)`` fitted by REML. Inference uses the CR2
cluster-robust variance (Bell & McCaffrey, 2002; Pustejovsky & Tipton, 2018) with
Satterthwaite degrees of freedom, as ``clubSandwich::coef_test(fit, vcov = "CR2")``.

Clusters of the same size are stacked, so every per-cluster inverse, determinant and square
root is one batched numpy call per cluster size, never a k x k matrix.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .models import ConvergenceWarning, _prepare
from .multilevel import minimise_components


class _Stacks:
    """Effects grouped by cluster, clusters of equal size stacked: (m, n) and (m, n, n)."""

    def __init__(self, y, v, X, cluster, r):
        codes, labels = pd.factorize(pd.Series(cluster), sort=False)
        self.labels = labels
        self.n_clusters = len(labels)
        sizes = np.bincount(codes)
        self.groups = []
        for n in np.unique(sizes):
            members = np.flatnonzero(sizes == n)
            idx = np.stack([np.flatnonzero(codes == c) for c in members])  # (m, n)
            s = np.sqrt(v[idx])
            V = r * s[:, :, None] * s[:, None, :]
            V[:, np.arange(n), np.arange(n)] = v[idx]
            self.groups.append({"idx": idx, "y": y[idx], "X": X[idx], "V": V, "n": n})


def _marginal_inverse(g, s2b, s2w):
    n = g["n"]
    M = g["V"] + s2b + s2w * np.eye(n)
    sign, logdet = np.linalg.slogdet(M)
    return np.linalg.inv(M), float(np.sum(logdet)), M


def _reml(params, stacks, p, grad=True):
    s2b, s2w = params
    XtMX = np.zeros((p, p))
    XtMy = np.zeros(p)
    logdet = 0.0
    cache = []
    for g in stacks.groups:
        Minv, ld, M = _marginal_inverse(g, s2b, s2w)
        logdet += ld
        A = Minv @ g["X"]  # (m, n, p)
        XtMX += np.einsum("mnp,mnq->pq", g["X"], A)
        XtMy += np.einsum("mnp,mn->p", A, g["y"])
        cache.append((Minv, A, M))
    C = np.linalg.inv(XtMX)
    beta = C @ XtMy
    k = sum(g["idx"].size for g in stacks.groups)
    quad = 0.0
    parts = []
    for g, (Minv, A, _M) in zip(stacks.groups, cache):
        r = g["y"] - g["X"] @ beta
        Pr = np.einsum("mij,mj->mi", Minv, r)
        quad += float(np.sum(r * Pr))
        parts.append((Minv, A, Pr))
    _, logdet_x = np.linalg.slogdet(XtMX)
    nll = 0.5 * ((k - p) * math.log(2 * math.pi) + logdet + logdet_x + quad)
    if not grad:
        return nll, beta, C, cache
    tr1 = tr2 = q1 = q2 = 0.0
    for Minv, A, Pr in parts:
        one_A = A.sum(axis=1)  # (m, p)
        tr1 += float(Minv.sum()) - float(np.sum((one_A @ C) * one_A))
        tr2 += float(np.trace(Minv, axis1=1, axis2=2).sum()) - float(
            np.einsum("mnp,pq,mnq->", A, C, A))
        q1 += float(np.sum(Pr.sum(axis=1) ** 2))
        q2 += float(np.sum(Pr**2))
    return nll, np.array([0.5 * (tr1 - q1), 0.5 * (tr2 - q2)])


def _sqrtm_inv(G):
    """Symmetric inverse square roots of a stack of symmetric positive matrices."""
    w, U = np.linalg.eigh(G)
    w = np.where(w > 1e-12 * w.max(axis=-1, keepdims=True), w, np.inf)
    return (U / np.sqrt(w)[..., None, :]) @ np.swapaxes(U, -1, -2)


@dataclass
class RVEResult:
    """The CHE model with CR2 robust standard errors and Satterthwaite degrees of freedom."""

    k: int
    n_clusters: int
    names: list
    beta: np.ndarray
    se: np.ndarray
    df: np.ndarray
    se_model: np.ndarray
    sigma2_between: float
    sigma2_within: float
    rho: float
    level: float
    measure: str = "GEN"
    vcov: np.ndarray = field(default=None, repr=False)
    yi: np.ndarray = field(default=None, repr=False)
    vi: np.ndarray = field(default=None, repr=False)
    slab: list = field(default=None, repr=False)
    data: pd.DataFrame | None = field(default=None, repr=False)
    method: str = "CHE"
    test: str = "t"
    cluster: np.ndarray = field(default=None, repr=False)
    effect_weights: np.ndarray = field(default=None, repr=False)

    @property
    def tau2(self) -> float:
        return self.sigma2_between + self.sigma2_within

    @property
    def I2(self) -> float:
        return math.nan

    @property
    def weights(self) -> np.ndarray:
        """Percent weight of each effect in the pooled estimate: the estimate is
        sum_j 1'M_j^-1 y_j / sum_j 1'M_j^-1 1, so effect i weighs (1'M_j^-1)_i."""
        return self.effect_weights

    def predict(self) -> dict:
        """Pooled effect with its CI and a prediction interval (t with the Satterthwaite df)."""
        crit = float(stats.t.isf((1 - self.level / 100) / 2, self.df[0]))
        b, se = float(self.beta[0]), float(self.se[0])
        half = crit * math.sqrt(se**2 + self.tau2)
        return {"pred": b, "se": se, "ci_lb": float(self.ci_lb[0]), "ci_ub": float(self.ci_ub[0]),
                "pi_lb": b - half, "pi_ub": b + half}

    @property
    def tval(self):
        return self.beta / self.se

    @property
    def pval(self):
        return 2 * stats.t.sf(np.abs(self.tval), self.df)

    @property
    def ci_lb(self):
        return self.beta - stats.t.isf((1 - self.level / 100) / 2, self.df) * self.se

    @property
    def ci_ub(self):
        return self.beta + stats.t.isf((1 - self.level / 100) / 2, self.df) * self.se

    @property
    def estimate(self) -> float:
        return float(self.beta[0])

    def coefficients(self) -> pd.DataFrame:
        return pd.DataFrame({"estimate": self.beta, "se": self.se, "tval": self.tval,
                             "df": self.df, "pval": self.pval, "ci_lb": self.ci_lb,
                             "ci_ub": self.ci_ub}, index=pd.Index(self.names, name="term"))

    def to_dict(self) -> dict:
        d = {"k": self.k, "n_clusters": self.n_clusters, "estimate": float(self.beta[0]),
             "se": float(self.se[0]), "df": float(self.df[0]),
             "ci_lb": float(self.ci_lb[0]), "ci_ub": float(self.ci_ub[0]),
             "pval": float(self.pval[0]), "sigma2_between": self.sigma2_between,
             "sigma2_within": self.sigma2_within, "rho": self.rho,
             "method": "CHE-RVE (CR2)", "measure": self.measure}
        if len(self.beta) > 1:
            d["coefficients"] = {n: {"estimate": float(b), "se": float(s), "df": float(f),
                                     "ci_lb": float(lo), "ci_ub": float(hi),
                                     "pval": float(pv)}
                                 for n, b, s, f, lo, hi, pv in zip(
                                     self.names, self.beta, self.se, self.df, self.ci_lb,
                                     self.ci_ub, self.pval)}
        return d

    def __str__(self):
        return (f"Correlated and hierarchical effects model with robust variance (CR2)\n"
                f"k = {self.k} effects in {self.n_clusters} clusters; rho = {self.rho:g}\n"
                f"sigma^2 between clusters: {self.sigma2_between:.4f}; within: "
                f"{self.sigma2_within:.4f}\n\n"
                + self.coefficients().to_string(float_format=lambda x: f"{x:.4f}"))


def che(yi=None, vi=None, *, cluster, data: pd.DataFrame | None = None, mods=None,
        rho: float = 0.6, level: float = 95, measure: str = "GEN", slab=None) -> RVEResult:
    """Fit the CHE working model by REML and test its coefficients with CR2 and Satterthwaite.

    Agrees with ``V <- impute_covariance_matrix(vi, cluster, r = rho)``, ``rma.mv(yi, V,
    random = ~ 1 | cluster/effect)`` and ``coef_test(fit, vcov = "CR2")``.
    """
    if not -1 < rho < 1:
        raise ValueError("rho is a correlation: give a value between -1 and 1, e.g. 0.6")
    y, v, X, names, slab, frame = _prepare(yi, vi, None, data, mods, slab)
    cl = (frame[cluster] if isinstance(cluster, str) else pd.Series(cluster)).astype(str)
    cl = cl.to_numpy()
    stacks = _Stacks(y, v, X, cl, rho)
    if stacks.n_clusters < 2:
        raise ValueError("robust variance estimation needs at least 2 clusters")
    k, p = X.shape
    best, converged = minimise_components(_reml, (stacks, p),
                                          ((0.05, 0.05), (0.2, 1e-3), (1e-3, 0.2)))
    if not converged:
        warnings.warn(f"the CHE model's REML fit did not converge ({best.message}): results "
                      "are NaN", ConvergenceWarning, stacklevel=2)
    s2b, s2w = (float(x) for x in best.x)
    _, beta, C, cache = _reml((s2b, s2w), stacks, p, grad=False)
    weights = np.empty(k)
    for g, (Minv, _A, _M) in zip(stacks.groups, cache):
        weights[g["idx"]] = Minv.sum(axis=1)  # M_j^-1 is symmetric: column sums = row sums
    weights = 100 * weights / weights.sum()
    vcov, df = _cr2(stacks, beta, C, cache, p)
    se = np.sqrt(np.diag(vcov))
    if not converged:
        nan = np.full(p, np.nan)
        beta, se, df, C, s2b, s2w = nan, nan, nan, np.full((p, p), np.nan), math.nan, math.nan
    return RVEResult(k=k, n_clusters=stacks.n_clusters, names=names, beta=beta, se=se, df=df,
                     se_model=np.sqrt(np.diag(C)), sigma2_between=s2b, sigma2_within=s2w,
                     rho=rho, level=level, measure=measure, vcov=vcov, yi=y, vi=v, slab=slab,
                     data=frame, cluster=cl, effect_weights=weights)


def _cr2(stacks, beta, C, cache, p):
    """CR2 sandwich and per-coefficient Satterthwaite df, as clubSandwich with inverse-variance
    weights: A_j = R_j' G_j^(-1/2) R_j with G_j = R_j (I - H)_jj Theta_j R_j', Theta_j = M_j."""
    meat = np.zeros((p, p))
    Lc = np.linalg.cholesky(C)  # C = Lc Lc'
    g_rows, h_mats = [], []
    for g, (_Minv, A, M) in zip(stacks.groups, cache):
        Xj = g["X"]
        L = np.linalg.cholesky(M)  # M_j = L L' (R_j = L')
        Lt = np.swapaxes(L, 1, 2)
        # (I - H)_jj Theta_j = M_j - X_j C X_j'
        G = Lt @ (M - Xj @ C @ np.swapaxes(Xj, 1, 2)) @ L
        Aj = L @ _sqrtm_inv(G) @ Lt
        E = np.swapaxes(A, 1, 2) @ Aj  # X_j' W_j A_j: (m, p, n)
        comp = np.einsum("mpn,mn->mp", E, g["y"] - Xj @ beta)
        meat += comp.T @ comp
        ME = C @ E
        g_rows.append(np.sum((ME @ L) ** 2, axis=2))  # (m, p)
        h_mats.append(ME @ Xj @ Lc)  # (m, p, p)
    vcov = C @ meat @ C
    g2 = np.concatenate(g_rows)
    Hs = np.concatenate(h_mats)
    df = np.empty(p)
    for i in range(p):
        h = Hs[:, i, :]
        hh = np.sum(h**2, axis=1)
        gi = g2[:, i]
        trace = float(np.sum(gi - hh))
        sum_sq = float(np.sum(gi**2) - 2 * np.sum(gi * hh) + np.sum((h.T @ h) ** 2))
        df[i] = trace**2 / sum_sq
    return vcov, df


#: The correlations between effects of a study that :func:`rho_sensitivity` tries.
RHOS = (0.0, 0.2, 0.4, 0.6, 0.8)


def rho_sensitivity(res: RVEResult, rhos=RHOS) -> pd.DataFrame:
    """The CHE model refitted for each assumed correlation ``rho`` between the sampling errors
    of a study's effects (Pustejovsky & Tipton, 2022, recommend checking it): one row per rho
    with the estimate, its CR2 se, df, CI and p, and both variance components. An
    intercept-only model (a note's pooled effect)."""
    if len(res.beta) != 1:
        raise ValueError("rho_sensitivity() refits the pooled effect: fit the model without "
                         "moderators")
    rows = []
    for rho in rhos:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = che(res.yi, res.vi, cluster=res.cluster, rho=rho, level=res.level,
                      measure=res.measure)
        for w in caught:  # a refit's warning stays visible, never silenced
            warnings.warn(f"rho = {rho:g}: {w.message}", w.category, stacklevel=2)
        rows.append({"rho": rho, "estimate": fit.estimate, "se": float(fit.se[0]),
                     "df": float(fit.df[0]), "ci_lb": float(fit.ci_lb[0]),
                     "ci_ub": float(fit.ci_ub[0]), "pval": float(fit.pval[0]),
                     "sigma2_between": fit.sigma2_between,
                     "sigma2_within": fit.sigma2_within})
    return pd.DataFrame(rows)
