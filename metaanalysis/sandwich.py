"""Cluster-robust inference for any fitted model: metafor's ``robust(res, cluster,
clubSandwich=TRUE)``.

The coefficients stay the model's; their variance becomes the CR2 sandwich (Bell &
McCaffrey, 2002; Pustejovsky & Tipton, 2018) with the model as working covariance, and each
coefficient is tested with t and its Satterthwaite degrees of freedom, as
``clubSandwich::coef_test(res, vcov = "CR2", cluster = cluster)``. The result is the same kind
of object as the model (an :class:`~metaanalysis.models.RMAResult`, or a three-level
:class:`~metaanalysis.multilevel.MVResult`), so it prints, predicts and converts like it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from types import SimpleNamespace

import numpy as np
import pandas as pd
from . import distributions as dist

from .models import RMAResult
from .multilevel import MVResult, _v_blocks


def _sqrtm_inv(G):
    """Symmetric inverse square roots of a stack of symmetric positive matrices."""
    w, U = np.linalg.eigh(G)
    w = np.where(w > 1e-12 * w.max(axis=-1, keepdims=True), w, np.inf)
    return (U / np.sqrt(w)[..., None, :]) @ np.swapaxes(U, -1, -2)


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



class _Robust:
    """What a robust result changes: ``vb`` is the CR2 sandwich, ``df`` the Satterthwaite
    degrees of freedom of each coefficient, tests and intervals use t(df)."""

    def _crits(self) -> np.ndarray:
        a = 1 - self.level / 100
        return dist.t_isf(a / 2, self.df)

    @property
    def crit(self) -> float:
        # for predict(): the intercept's
        return float(self._crits()[0])

    @property
    def pval(self) -> np.ndarray:
        return 2 * dist.t_sf(np.abs(self.zval), self.df)

    @property
    def ci_lb(self) -> np.ndarray:
        return self.beta - self._crits() * self.se

    @property
    def ci_ub(self) -> np.ndarray:
        return self.beta + self._crits() * self.se

    @property
    def dfs(self):
        """The Satterthwaite degrees of freedom of each coefficient (metafor's ``dfs`` of a
        robust fit; the same as ``df``); the model's own k - p is ``model_dfs``."""
        return self.df

    @dfs.setter
    def dfs(self, value):  # the dataclass sets the model's k - p: kept as model_dfs
        self.__dict__["model_dfs"] = value

    @property
    def se_model(self) -> np.ndarray:
        """The model-based standard errors (before the sandwich)."""
        return np.sqrt(np.diag(self.vb_model))

    @property
    def tval(self) -> np.ndarray:
        return self.zval

    @property
    def model_name(self) -> str:
        """``CHE`` for the correlated-and-hierarchical-effects working model (a three-level
        model whose V assumes a correlation ``rho``) with robust variance."""
        return "CHE" if getattr(self, "rho", None) is not None else super().model_name

    def coefficients(self) -> pd.DataFrame:
        return pd.DataFrame({"estimate": self.beta, "se": self.se, "tval": self.zval,
                             "df": self.df, "pval": self.pval, "ci_lb": self.ci_lb,
                             "ci_ub": self.ci_ub}, index=pd.Index(self.names, name="term"))

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update({"model": self.model_name, "robust": "CR2", "df": float(self.df[0]),
                  "n_robust_clusters": self.n_robust_clusters, "test": "t"})
        if "coefficients" in d:
            for name, dfi in zip(self.names, self.df):
                d["coefficients"][name]["df"] = float(dfi)
        return d

    def __str__(self):
        text = super().__str__()
        return (text + f"\n\nRobust variance (CR2) with {self.n_robust_clusters} clusters; "
                "t tests with Satterthwaite degrees of freedom (df); the omnibus test of "
                "moderators is not given (it needs an HTZ test)")


@dataclass
class RobustRMAResult(_Robust, RMAResult):
    df: np.ndarray = field(default=None, repr=False)
    vb_model: np.ndarray = field(default=None, repr=False)
    n_robust_clusters: int = 0
    cluster: np.ndarray = field(default=None, repr=False)


@dataclass
class RobustMVResult(_Robust, MVResult):
    df: np.ndarray = field(default=None, repr=False)
    vb_model: np.ndarray = field(default=None, repr=False)
    n_robust_clusters: int = 0
    robust_cluster: np.ndarray = field(default=None, repr=False)


def _labels(res, cluster) -> np.ndarray:
    if isinstance(cluster, str):
        if res.data is None or cluster not in res.data:
            raise ValueError(f"cluster column {cluster!r} not found in the model's data")
        return res.data[cluster].astype(str).to_numpy()
    cl = np.asarray(cluster).astype(str)
    if len(cl) != res.k:
        raise ValueError(f"cluster: one value per effect is needed ({res.k}), got {len(cl)}")
    return cl


def _working_covariances(res, idx: np.ndarray) -> np.ndarray:
    """The model's marginal covariance of the effects of each row of ``idx`` (m, n):
    an (m, n, n) stack."""
    n = idx.shape[1]
    if isinstance(res, MVResult):
        cl = res.cluster[idx]
        between = res.sigma2_between * (cl[:, :, None] == cl[:, None, :])
        if res.V is not None:
            return _v_blocks(res.V, idx) + between + res.sigma2_within * np.eye(n)
        return (res.vi[idx] + res.sigma2_within)[:, :, None] * np.eye(n) + between
    tau2 = 0.0 if res.method == "FE" else float(res.tau2)
    return (res.vi[idx] + tau2)[:, :, None] * np.eye(n)


def robust(res, cluster, clubSandwich: bool = True):
    """Cluster-robust (CR2) standard errors, t tests with Satterthwaite df and intervals for
    the coefficients of ``res`` (an ``rma`` or ``rma_mv`` fit), with ``cluster`` a column of
    the model's data or one label per effect; as metafor's ``robust(res, cluster,
    clubSandwich=TRUE)``. For a three-level model, its clusters must nest in ``cluster``."""
    if not clubSandwich:
        raise ValueError("only the CR2 estimator is offered (clubSandwich=True): metafor's "
                         "default CR1 has poorer small-sample behaviour (Pustejovsky & Tipton, "
                         "2018)")
    if not isinstance(res, RMAResult) or hasattr(res, "refit_tables"):
        raise TypeError("robust() needs a model fitted by rma() or rma_mv()")
    if isinstance(res, _Robust):
        raise ValueError("this result is already robust")
    cl = _labels(res, cluster)
    codes, labels = pd.factorize(pd.Series(cl), sort=False)
    if len(labels) < 2:
        raise ValueError("cluster-robust variance needs at least 2 clusters")
    if isinstance(res, MVResult):
        if res.cluster is None:
            raise ValueError("this three-level fit does not know its clusters: refit it")
        # each of the model's clusters inside one robust cluster
        pairs = pd.DataFrame({"m": res.cluster, "r": cl}).drop_duplicates()
        if pairs["m"].duplicated().any():
            raise ValueError("the model's clusters must nest in the robust clusters: a "
                             "cluster of the model spans several of them")
    k, p = res.X.shape
    sizes = np.bincount(codes)
    order = np.argsort(codes, kind="stable")
    groups, cache = [], []
    XtMX = np.zeros((p, p))
    XtMy = np.zeros(p)
    for n in np.unique(sizes):
        members = np.flatnonzero(sizes == n)
        idx = order[np.isin(codes[order], members)].reshape(len(members), n)
        M = _working_covariances(res, idx)
        Minv = np.linalg.inv(M)
        X, y = res.X[idx], res.yi[idx]
        A = Minv @ X
        XtMX += np.einsum("mnp,mnq->pq", X, A)
        XtMy += np.einsum("mnp,mn->p", A, y)
        groups.append({"idx": idx, "X": X, "y": y, "n": n})
        cache.append((Minv, A, M))
    C = np.linalg.inv(XtMX)
    beta = C @ XtMy
    vcov, df = _cr2(SimpleNamespace(groups=groups), beta, C, cache, p)
    values = {f.name: getattr(res, f.name) for f in fields(res)}
    values.update(vb=vcov, vb_model=res.vb, QM=math.nan, QM_pvalue=math.nan)
    if isinstance(res, MVResult):
        return RobustMVResult(**values, df=df, n_robust_clusters=len(labels),
                              robust_cluster=cl)
    return RobustRMAResult(**values, df=df, n_robust_clusters=len(labels), cluster=cl)
