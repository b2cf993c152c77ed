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
from scipy import stats

from .models import RMAResult
from .multilevel import MVResult
from .rve import _cr2


class _Robust:
    """What a robust result changes: ``vb`` is the CR2 sandwich, ``df`` the Satterthwaite
    degrees of freedom of each coefficient, tests and intervals use t(df)."""

    def _crits(self) -> np.ndarray:
        a = 1 - self.level / 100
        return stats.t.isf(a / 2, self.df)

    @property
    def crit(self) -> float:
        # for predict(): the intercept's
        return float(self._crits()[0])

    @property
    def pval(self) -> np.ndarray:
        return 2 * stats.t.sf(np.abs(self.zval), self.df)

    @property
    def ci_lb(self) -> np.ndarray:
        return self.beta - self._crits() * self.se

    @property
    def ci_ub(self) -> np.ndarray:
        return self.beta + self._crits() * self.se

    def coefficients(self) -> pd.DataFrame:
        return pd.DataFrame({"estimate": self.beta, "se": self.se, "tval": self.zval,
                             "df": self.df, "pval": self.pval, "ci_lb": self.ci_lb,
                             "ci_ub": self.ci_ub}, index=pd.Index(self.names, name="term"))

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update({"robust": "CR2", "df": float(self.df[0]),
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
    n_robust_clusters: int = 0
    cluster: np.ndarray = field(default=None, repr=False)


@dataclass
class RobustMVResult(_Robust, MVResult):
    df: np.ndarray = field(default=None, repr=False)
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


def _working_covariance(res, idx: np.ndarray) -> np.ndarray:
    """The model's marginal covariance of the effects ``idx``."""
    v = res.vi[idx]
    if isinstance(res, MVResult):
        same = res.cluster[idx][:, None] == res.cluster[idx][None, :]
        return np.diag(v + res.sigma2_within) + res.sigma2_between * same
    tau2 = 0.0 if res.method == "FE" else float(res.tau2)
    return np.diag(v + tau2)


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
    groups, cache = [], []
    XtMX = np.zeros((p, p))
    XtMy = np.zeros(p)
    for n in np.unique(sizes):
        members = np.flatnonzero(sizes == n)
        idx = np.stack([np.flatnonzero(codes == c) for c in members])
        M = np.stack([_working_covariance(res, row) for row in idx])
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
    values.update(vb=vcov, QM=math.nan, QM_pvalue=math.nan)
    if isinstance(res, MVResult):
        return RobustMVResult(**values, df=df, n_robust_clusters=len(labels),
                              robust_cluster=cl)
    return RobustRMAResult(**values, df=df, n_robust_clusters=len(labels), cluster=cl)
