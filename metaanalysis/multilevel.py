"""Dependent effects: the three-level model and robust variance estimation.

:func:`rma_mv` fits metafor's ``rma.mv(yi, vi, random = ~ 1 | cluster/effect)`` by REML
(Konstantopoulos, 2011; Cheung, 2014): each cluster's marginal covariance is
``diag(vi + sigma2_within) + sigma2_between J``, inverted per cluster in closed form
(Sherman-Morrison), so a fit costs O(k p^2) per iteration and never builds a k x k matrix.
The REML criterion is maximised over both variance components with its analytic gradient.
With a known sampling covariance V (the CHE working model), each cluster's V is decomposed
once into its eigenvectors; in that basis the marginal covariance is diagonal plus
``sigma2_between`` times a rank-one term, so the criterion and its gradient are again a few
sums over the effects (:func:`_stacked_eigen`), with no per-cluster inverse at each step.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, sparse

from . import distributions as dist

from .models import (ConvergenceWarning, RMAResult, _prepare, _rss, _tr_P, _wls,
                     _working_unit)


class _Blocks:
    """Per-cluster operations on sorted data: sums, and M^-1 applied to vectors."""

    def __init__(self, cluster):
        codes, self.labels = pd.factorize(pd.Series(cluster), sort=False)
        self.order = np.argsort(codes, kind="stable")
        sorted_codes = codes[self.order]
        self.starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        self.group = sorted_codes
        self.n = len(self.starts)

    def sums(self, a):
        return np.add.reduceat(a, self.starts, axis=0)

    def expand(self, s):
        return s[self.group] if s.ndim == 1 else s[self.group, :]


def _pieces(s2b, s2w, v, blocks):
    d = 1 / (v + s2w)
    s = blocks.sums(d)
    c = s2b / (1 + s2b * s)  # per cluster

    def minv(z):
        if z.ndim == 1:
            dz = d * z
            return dz - d * blocks.expand(c * blocks.sums(dz))
        dz = d[:, None] * z
        return dz - d[:, None] * blocks.expand(c[:, None] * blocks.sums(dz))

    logdet = float(np.sum(np.log(v + s2w)) + np.sum(np.log1p(s2b * s)))
    return d, s, c, minv, logdet


def _reml(params, y, v, X, blocks, grad=True):
    s2b, s2w = params
    k, p = X.shape
    d, s, c, minv, logdet = _pieces(s2b, s2w, v, blocks)
    A = minv(X)
    XtMX = X.T @ A
    C = np.linalg.inv(XtMX)
    beta = C @ (A.T @ y)
    r = y - X @ beta
    Pr = minv(r)
    _, logdet_x = np.linalg.slogdet(XtMX)
    nll = 0.5 * ((k - p) * math.log(2 * math.pi) + logdet + logdet_x + float(r @ Pr))
    if not grad:
        return nll, beta, C
    # tr(P V1), tr(P V2), y'P V1 P y, y'P V2 P y
    tr_minv_v1 = float(np.sum(s / (1 + s2b * s)))
    SA = blocks.sums(A)  # per cluster 1'A_j
    tr_p_v1 = tr_minv_v1 - float(np.sum((SA @ C) * SA))
    d2 = blocks.sums(d**2)
    tr_minv = float(np.sum(d) - np.sum(c * d2))
    tr_p_v2 = tr_minv - float(np.sum((A @ C) * A))
    q1 = float(np.sum(blocks.sums(Pr) ** 2))
    q2 = float(Pr @ Pr)
    g = np.array([0.5 * (tr_p_v1 - q1), 0.5 * (tr_p_v2 - q2)])
    return nll, g


def _ml(params, y, v, X, blocks, grad=True):
    """Minus the full log-likelihood (beta profiled out) and its gradient in (s2b, s2w)."""
    s2b, s2w = params
    k, p = X.shape
    d, s, c, minv, logdet = _pieces(s2b, s2w, v, blocks)
    A = minv(X)
    C = np.linalg.inv(X.T @ A)
    beta = C @ (A.T @ y)
    r = y - X @ beta
    Pr = minv(r)
    nll = 0.5 * (k * math.log(2 * math.pi) + logdet + float(r @ Pr))
    if not grad:
        return nll, beta, C
    # envelope: d nll / d theta = (tr(M^-1 V_theta) - r'M^-1 V_theta M^-1 r) / 2
    tr_minv_v1 = float(np.sum(s / (1 + s2b * s)))
    tr_minv = float(np.sum(d) - np.sum(c * blocks.sums(d**2)))
    q1 = float(np.sum(blocks.sums(Pr) ** 2))
    q2 = float(Pr @ Pr)
    return nll, np.array([0.5 * (tr_minv_v1 - q1), 0.5 * (tr_minv - q2)])


def minimise_components(objective, args, starts):
    """Minimise a criterion over two variance components (>= 0) from several starts.

    Returns the best fit and whether it converged. L-BFGS-B may stop "abnormally" in a line
    search at the optimum, where rounding dominates: a fit counts as converged if it says so
    or if its projected gradient is tiny (|g| < 1e-3 means a distance to the optimum far
    below 1e-4 for any data with a usable amount of information).
    """
    fits = [optimize.minimize(objective, np.array(start), args=args, jac=True,
                              method="L-BFGS-B", bounds=[(0, None), (0, None)],
                              options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 1000})
            for start in starts]
    converged = [f for f in fits if f.success or np.max(np.abs(
        np.where(f.x > 0, f.jac, np.minimum(f.jac, 0.0)))) < 1e-3]
    return min(converged or fits, key=lambda f: f.fun), bool(converged)


@dataclass
class MVResult(RMAResult):
    """A three-level model: ``sigma2_between`` (clusters), ``sigma2_within`` (effects)."""

    sigma2_between: float = math.nan
    sigma2_within: float = math.nan
    n_clusters: int = 0
    effect_weights: np.ndarray = field(default=None, repr=False)
    #: the cluster of each effect, in the data's order
    cluster: np.ndarray = field(default=None, repr=False)
    #: the known sampling covariance matrix given as ``V`` (None: the diagonal ``vi``)
    V: object = field(default=None, repr=False)
    #: the correlation that built ``V`` in :func:`~metaanalysis.rve.che` (None otherwise)
    rho: float | None = None

    @property
    def weights(self) -> np.ndarray:
        """Percent weight of each effect in the pooled estimate (see :func:`rma_mv`)."""
        return self.effect_weights

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update({"sigma2_between": self.sigma2_between, "sigma2_within": self.sigma2_within,
                  "n_clusters": self.n_clusters})
        if self.rho is not None:
            d["rho"] = self.rho
        return d

    @property
    def se_tau2(self) -> float:
        """Not defined: a three-level model has two variance components (none is tau²)."""
        return math.nan

    def fit_stats(self, REML: bool | None = None) -> dict:
        """logLik, deviance, AIC, BIC and AICc of the three-level model, as metafor's
        ``fitstats`` for ``rma.mv``: the restricted likelihood for a REML fit, the full one for
        ML; parameters: the coefficients and the two variance components."""
        reml = self.method == "REML" if REML is None else bool(REML)
        k, p = self.X.shape
        ll = -self._nll(reml, (self.sigma2_between, self.sigma2_within))
        if reml:  # metafor's restricted likelihood keeps the constant 1/2 log|X'X|
            ll += 0.5 * float(np.linalg.slogdet(self.X.T @ self.X)[1])
        n = k - p if reml else k
        parms = p + 2
        if reml:
            deviance = -2 * ll
        else:  # against the saturated model, as metafor (each effect its own mean)
            deviance = -2 * (ll - self._saturated_loglik())
        m = max(n, parms + 2)
        return {"logLik": ll, "deviance": deviance, "AIC": -2 * ll + 2 * parms,
                "BIC": -2 * ll + parms * math.log(n),
                "AICc": -2 * ll + 2 * parms * m / (m - parms - 1)}

    def _objective(self, reml: bool, unit: float = 1.0):
        """The criterion minimised by the fit and its arguments (:func:`_criterion`)."""
        return _criterion(self.yi, self.vi, self.V, self.X, self.cluster, reml, unit)

    def _nll(self, reml: bool, params) -> float:
        """Minus the (restricted) log-likelihood at the variance components ``params``."""
        objective, args = self._objective(reml)
        return float(objective(params, *args, grad=False)[0])

    def _saturated_loglik(self) -> float:
        """Each effect its own mean: -1/2 (k log 2 pi + log|V|)."""
        if self.V is None:
            return float(np.sum(-0.5 * np.log(2 * math.pi * self.vi)))
        stacks = _Stacks(self.yi, self.X, self.V, self.cluster)
        logdet = sum(float(np.sum(np.linalg.slogdet(g["V"])[1])) for g in stacks.groups)
        return -0.5 * (self.k * math.log(2 * math.pi) + logdet)

    def predict(self, newmods=None) -> dict:
        out = super().predict(newmods)
        half = self.crit * math.sqrt(out["se"] ** 2 + self.sigma2_between + self.sigma2_within)
        out["pi_lb"], out["pi_ub"] = out["pred"] - half, out["pred"] + half
        return out

    def __str__(self):
        head = (f"Multilevel Model (k = {self.k} effects in {self.n_clusters} clusters; "
                f"{self.method})\n\nsigma^2 between clusters: {self.sigma2_between:.4f}\n"
                f"sigma^2 within clusters:  {self.sigma2_within:.4f}\n\n")
        body = super().__str__().split("\n", 2)[2]
        # tau², I² and H² are univariate summaries: the two components above replace them
        body = "\n".join(line for line in body.split("\n")
                         if not line.startswith(("tau^2 (", "tau (", "I^2 (", "H^2 (")))
        if self.rho is not None:
            head += (f"Sampling errors of a cluster's effects correlated with rho = "
                     f"{self.rho:g} (CHE working model)\n")
        return re.sub(r"\n{3,}", "\n\n", head + body)


def cluster_labels(cluster, frame, keep) -> np.ndarray:
    """The cluster of each kept effect, as text: a column of the model's (already subset)
    data, or one value per effect given (subset with ``keep``, the rows kept by _prepare)."""
    if isinstance(cluster, str):
        if frame is None or cluster not in frame:
            raise ValueError(f"cluster column {cluster!r} not found")
        return frame[cluster].astype(str).to_numpy()
    cl = np.asarray(cluster).astype(str).ravel()
    if len(cl) != len(keep):
        raise ValueError(f"cluster must have one value per effect ({len(keep)}), got "
                         f"{len(cl)}")
    return cl[keep]


def rma_mv(yi=None, vi=None, *, cluster, V=None, data: pd.DataFrame | None = None, mods=None,
           test: str = "z", level: float = 95, measure: str = "GEN", slab=None,
           method: str = "REML") -> MVResult:
    """Three-level random-effects model (effects nested in clusters), fitted by REML (or ML
    with ``method="ML"``, e.g. to compare models with different moderators by a
    likelihood-ratio test).

    As metafor's ``rma.mv(yi, vi, random = ~ 1 | cluster/effect, test=, method=)``:
    ``test="t"`` (or ``"knha"``) uses t and F distributions with k - p degrees of freedom.

    ``V``, instead of ``vi``: the known sampling covariance matrix of the effects (a k x k
    numpy array or scipy sparse matrix, as :func:`vcalc` builds), as metafor's
    ``rma.mv(yi, V, ...)``; effects of different clusters must be uncorrelated. Rows dropped
    for missing values are dropped from ``V`` too.
    """
    method = method.upper()
    if method not in ("REML", "ML"):
        raise ValueError(f"method = {method!r}: a three-level model is fitted by REML or ML")
    test = {"knha": "t"}.get(test.lower(), test.lower())
    if test not in ("z", "t"):
        raise ValueError(f"test = {test!r}: use 'z' or 't' (alias 'knha')")
    if V is not None:
        if vi is not None:
            raise ValueError("give vi or V, not both (V's diagonal is the sampling variances)")
        V = _as_covariance(V)
        vi = V.diagonal().astype(float)
    y, v, X, names, slab, frame, keep = _prepare(yi, vi, None, data, mods, slab,
                                                  keep_mask=True)
    cl = cluster_labels(cluster, frame, keep)
    if V is not None and not keep.all():
        rows = np.flatnonzero(keep)
        V = V[rows][:, rows] if sparse.issparse(V) else V[np.ix_(rows, rows)]
    return _fit_mv(y, v, V, X, names, slab, frame, cl, method, test, level, measure)


def _criterion(y, v, V, X, cluster, reml: bool, unit: float = 1.0):
    """The criterion a three-level fit minimises (minus the restricted or full
    log-likelihood, with its gradient in the two components) and its arguments: the effects
    sorted by cluster (no V) or stacked per cluster (a known V), expressed in ``unit`` (a
    power of two, :func:`_working_unit`: the components are then divided by its square)."""
    if unit != 1:
        y, v, V = y / unit, v / unit**2, (None if V is None else V / unit**2)
    if V is None:
        blocks = _Blocks(cluster)
        o = blocks.order
        return (_reml if reml else _ml), (y[o], v[o], X[o], blocks)
    return (_stacked_reml if reml else _stacked_ml), (_Stacks(y, X, V, cluster),)


def _fit_mv(y, v, V, X, names, slab, frame, cl, method, test, level, measure,
            rho=None) -> MVResult:
    k, p = X.shape
    reml = method == "REML"
    objective, args = _criterion(y, v, V, X, cl, reml)
    # the components are searched for in a working unit (see _working_unit), then given
    # back in the effects' own
    unit = _working_unit(v)
    search = args if unit == 1 else _criterion(y, v, V, X, cl, reml, unit)[1]
    if V is None:  # start from a univariate REML-like split of the DL tau^2
        ys, vs, Xs, blocks = args
        o = blocks.order
        n_clusters = blocks.n
        wy, wv = search[:2]
        w = 1 / wv
        tau0 = (max(0.0, (_rss(wy, w, Xs) - (k - p)) / _tr_P(w, Xs, _wls(wy, w, Xs)[1]))
                if k > p else 0)
        starts = ((tau0 / 2 + 1e-4, tau0 / 2 + 1e-4), (tau0 + 1e-4, 1e-4), (1e-4, tau0 + 1e-4))
    else:  # the CHE notes' starts since they were first published (same optimum, same digits)
        stacks, = args
        n_clusters = stacks.n_clusters
        starts = ((0.05, 0.05), (0.2, 1e-3), (1e-3, 0.2))
    best, converged = minimise_components(objective, search, starts)
    if not converged:
        warnings.warn(ConvergenceWarning("three_level_not_converged", method=method,
                                         reason=str(best.message)), stacklevel=3)
        s2b = s2w = math.nan
    else:
        s2b, s2w = (float(x) * unit**2 for x in best.x)
    _, beta, C = objective((s2b, s2w), *args, grad=False)[:3]
    weights = np.empty(k)
    if V is None:
        # weight of each effect in the pooled estimate: (1'M_j^-1)_i = d_i (1 - c_j s_j)
        d, s_, c, _, _ = _pieces(s2b, s2w, vs, blocks)
        w_sorted = d * (1 - blocks.expand(c * s_))
        weights[o] = 100 * w_sorted / w_sorted.sum()
    else:  # M_j^-1 is symmetric: its column sums are its row sums
        for g, Minv in zip(stacks.groups, stacks.inverses(s2b, s2w)):
            weights[g["idx"]] = Minv.sum(axis=1)
        weights = 100 * weights / weights.sum()
    dfs = k - p
    if V is None:
        wf = 1 / vs
        Q = max(0.0, _rss(ys, wf, Xs)) if dfs > 0 else 0.0
        vt = dfs / _tr_P(wf, Xs, _wls(ys, wf, Xs)[1]) if dfs > 0 else math.nan
        total = s2b + s2w
        I2 = 100 * total / (total + vt) if dfs > 0 else 0.0
    else:  # metafor's QE: the residuals of the fit weighted by V^-1; no I2 (V is not diagonal)
        Q = max(0.0, stacks.residual_q()) if dfs > 0 else 0.0
        I2 = math.nan
    Qp = float(dist.chi2_sf(Q, dfs)) if dfs > 0 else 1.0
    res = MVResult(k=k, method=method, test="knha" if test == "t" else "z", level=level,
                   measure=measure, names=names, beta=beta, vb=C, tau2=s2b + s2w, Q=Q,
                   Q_pvalue=Qp, I2=I2, H2=math.nan, tau2_ci=(math.nan, math.nan), dfs=dfs,
                   yi=y, vi=v, X=X, slab=slab, data=frame, sigma2_between=s2b,
                   sigma2_within=s2w, n_clusters=n_clusters, effect_weights=weights,
                   cluster=cl, V=V, rho=rho)
    if p > 1:
        b, Vb = beta[1:], C[1:, 1:]
        QM = float(b @ np.linalg.solve(Vb, b))
        if test == "t":
            res.QM, res.QM_pvalue = QM / (p - 1), float(dist.f_sf(QM / (p - 1), p - 1, dfs))
        else:
            res.QM, res.QM_pvalue = QM, float(dist.chi2_sf(QM, p - 1))
    return res


# ----------------------------------------------------------------------------- a known V
def _as_covariance(V):
    """A square matrix of sampling covariances, dense or scipy sparse (CSR)."""
    if sparse.issparse(V):
        V = sparse.csr_array(V, dtype=float)
    else:
        V = np.asarray(V, dtype=float)
        if V.ndim != 2:
            raise ValueError(f"V must be a k x k matrix, got an array of shape {V.shape}")
    if V.shape[0] != V.shape[1]:
        raise ValueError(f"V must be square, got {V.shape[0]} x {V.shape[1]}")
    asym = abs(V - V.T)
    if (asym.max() if asym.size else 0) > 1e-10 * max(abs(V).max(), 1e-300):
        raise ValueError("V must be symmetric (a covariance matrix)")
    return V


def _v_blocks(V, idx: np.ndarray) -> np.ndarray:
    """The (m, n, n) blocks V[idx_j, idx_j] of a dense or sparse V for clusters ``idx`` (m, n)."""
    m, n = idx.shape
    rows = np.repeat(idx, n, axis=1).ravel()
    cols = np.tile(idx, (1, n)).ravel()
    if sparse.issparse(V):
        return np.asarray(V[rows, cols]).reshape(m, n, n)
    return V[rows, cols].reshape(m, n, n)


class _Stacks:
    """Effects grouped by cluster, clusters of equal size stacked, each with its block of the
    sampling covariance V: arrays (m, n), (m, n, p) and (m, n, n). Every per-cluster inverse
    and determinant is one batched numpy call per cluster size, never a k x k matrix."""

    def __init__(self, y, X, V, cluster):
        codes, labels = pd.factorize(pd.Series(cluster), sort=False)
        self.n_clusters = len(labels)
        if sparse.issparse(V):
            coo = V.tocoo()
            across = (codes[coo.row] != codes[coo.col]) & (coo.data != 0)
            pairs = list(zip(coo.row[across], coo.col[across]))
        else:
            across = (codes[:, None] != codes[None, :]) & (V != 0)
            pairs = list(zip(*np.nonzero(across)))
        if pairs:
            i, j = pairs[0]
            raise ValueError(f"V gives a covariance between effects {i + 1} and {j + 1}, which "
                             f"are in different clusters ({labels[codes[i]]!r}, "
                             f"{labels[codes[j]]!r}): sampling errors may be correlated within "
                             "a cluster only")
        sizes = np.bincount(codes)
        self.groups = []
        for n in np.unique(sizes):
            members = np.flatnonzero(sizes == n)
            order = np.argsort(codes, kind="stable")
            by_cluster = order[np.isin(codes[order], members)].reshape(len(members), n)
            self.groups.append({"idx": by_cluster, "y": y[by_cluster], "X": X[by_cluster],
                                "V": _v_blocks(V, by_cluster), "n": n})
        self._eigen = None
        for g in self.groups:
            # each block's eigenvectors, kept for the criterion (eigen()); its eigenvalues
            # say whether it is a covariance matrix
            g["lam"], g["Q"] = np.linalg.eigh(g["V"])  # Q[j, :, i]: eigenvector i of j
            if np.any(g["lam"][:, 0] <= 0):
                raise ValueError("V is not positive definite within a cluster (check its "
                                 "correlations)")

    def eigen(self) -> dict:
        """Each cluster's V = Q diag(lam) Q' (decomposed once, when checked): in that basis
        M = V + s2w I + s2b 11' is a diagonal matrix plus a rank-one term, so the criterion
        needs no inverse (:func:`_stacked_eigen`). Arrays over all effects, cluster after
        cluster: ``lam``, ``u`` = Q'1, ``y`` = Q'y, ``X`` = Q'X, ``starts`` (where each
        cluster begins) and ``cluster`` (each effect's cluster number)."""
        if self._eigen is None:
            lam, u, yt, Xt, sizes = [], [], [], [], []
            for g in self.groups:
                Q = g["Q"]
                lam.append(g["lam"].ravel())
                u.append(Q.sum(axis=1).ravel())
                yt.append(np.einsum("mji,mj->mi", Q, g["y"]).ravel())
                Xt.append(np.einsum("mji,mjp->mip", Q, g["X"]).reshape(-1, g["X"].shape[2]))
                sizes.append(np.full(len(g["idx"]), g["n"]))
            sizes = np.concatenate(sizes)
            self._eigen = {"lam": np.concatenate(lam), "u": np.concatenate(u),
                           "y": np.concatenate(yt), "X": np.concatenate(Xt),
                           "starts": np.r_[0, np.cumsum(sizes)[:-1]],
                           "cluster": np.repeat(np.arange(len(sizes)), sizes)}
        return self._eigen

    def inverses(self, s2b, s2w):
        return [np.linalg.inv(g["V"] + s2b + s2w * np.eye(g["n"])) for g in self.groups]

    def residual_q(self) -> float:
        """r' V^-1 r for the common-effect fit weighted by V^-1 (metafor's QE)."""
        _, _, _, cache = _stacked((0.0, 0.0), self, reml=False, grad=False)
        return float(sum(np.sum(r * Pr) for r, Pr in cache["resid"]))


def _stacked(params, stacks, reml, grad=True):
    """Minus the (restricted) log-likelihood of the model with known V, with beta profiled
    out, and its gradient in (sigma2_between, sigma2_within); or, without ``grad``, the value,
    beta, (X'M^-1X)^-1 and the pieces the robust variance needs."""
    s2b, s2w = params
    p = stacks.groups[0]["X"].shape[2]
    XtMX = np.zeros((p, p))
    XtMy = np.zeros(p)
    logdet = 0.0
    parts = []
    for g in stacks.groups:
        M = g["V"] + s2b + s2w * np.eye(g["n"])
        Minv = np.linalg.inv(M)
        logdet += float(np.sum(np.linalg.slogdet(M)[1]))
        A = Minv @ g["X"]  # (m, n, p)
        XtMX += np.einsum("mnp,mnq->pq", g["X"], A)
        XtMy += np.einsum("mnp,mn->p", A, g["y"])
        parts.append((Minv, A, M))
    C = np.linalg.inv(XtMX)
    beta = C @ XtMy
    k = sum(g["idx"].size for g in stacks.groups)
    quad = 0.0
    resid = []
    for g, (Minv, A, _M) in zip(stacks.groups, parts):
        r = g["y"] - g["X"] @ beta
        Pr = np.einsum("mij,mj->mi", Minv, r)
        quad += float(np.sum(r * Pr))
        resid.append((r, Pr))
    if reml:
        logdet_x = float(np.linalg.slogdet(XtMX)[1])
        nll = 0.5 * ((k - p) * math.log(2 * math.pi) + logdet + logdet_x + quad)
    else:
        nll = 0.5 * (k * math.log(2 * math.pi) + logdet + quad)
    if not grad:
        return nll, beta, C, {"parts": parts, "resid": resid}
    tr1 = tr2 = q1 = q2 = 0.0
    for (Minv, A, _M), (_r, Pr) in zip(parts, resid):
        if reml:  # tr(P V_theta) = tr(M^-1 V_theta) - tr(C X'M^-1 V_theta M^-1 X)
            one_A = A.sum(axis=1)  # (m, p)
            tr1 += float(Minv.sum()) - float(np.sum((one_A @ C) * one_A))
            tr2 += float(np.trace(Minv, axis1=1, axis2=2).sum()) - float(
                np.einsum("mnp,pq,mnq->", A, C, A))
        else:
            tr1 += float(Minv.sum())
            tr2 += float(np.trace(Minv, axis1=1, axis2=2).sum())
        q1 += float(np.sum(Pr.sum(axis=1) ** 2))
        q2 += float(np.sum(Pr**2))
    return nll, np.array([0.5 * (tr1 - q1), 0.5 * (tr2 - q2)])


def _stacked_eigen(params, stacks, reml):
    """:func:`_stacked`'s value and gradient from the clusters' eigenvectors of V (one
    decomposition per fit, :meth:`_Stacks.eigen`): with D = (lam + s2w)^-1 and u = Q'1,
    M^-1 = Q (D - c D u u' D) Q' with c = s2b / (1 + s2b u'Du) (Sherman-Morrison), and
    log|M| = sum log(lam + s2w) + log(1 + s2b u'Du); every quantity is then a few sums over
    the effects (O(k p^2)), with no per-cluster inverse or determinant. The same criterion
    as :func:`_stacked`, to rounding."""
    s2b, s2w = params
    e = stacks.eigen()
    lam, u, y, X, starts = e["lam"], e["u"], e["y"], e["X"], e["starts"]
    k, p = X.shape
    D = 1.0 / (lam + s2w)
    Du = D * u
    s = np.add.reduceat(Du * u, starts)  # u'Du per cluster
    c = s2b / (1.0 + s2b * s)
    DX = D[:, None] * X
    uDX = np.add.reduceat(Du[:, None] * X, starts)  # (clusters, p)
    uDy = np.add.reduceat(Du * y, starts)
    XtMX = X.T @ DX - (uDX.T * c) @ uDX
    XtMy = DX.T @ y - uDX.T @ (c * uDy)
    C = np.linalg.inv(XtMX)
    beta = C @ XtMy
    r = y - X @ beta
    uDr = uDy - uDX @ beta
    quad = float(r @ (D * r)) - float(c @ (uDr * uDr))
    logdet = float(np.sum(np.log(lam + s2w)) + np.sum(np.log1p(s2b * s)))
    if reml:
        logdet_x = float(np.linalg.slogdet(XtMX)[1])
        nll = 0.5 * ((k - p) * math.log(2 * math.pi) + logdet + logdet_x + quad)
    else:
        nll = 0.5 * (k * math.log(2 * math.pi) + logdet + quad)
    shrink = 1.0 - c * s  # 1'M^-1 = (1 - c u'Du) u'D Q' per cluster
    q1 = float(np.sum((shrink * uDr) ** 2))  # sum over clusters of (1'M^-1 r)^2
    cl = e["cluster"]
    z = D * r - Du * (c * uDr)[cl]  # Q'M^-1 r
    q2 = float(z @ z)
    tr1 = float(np.sum(s * shrink))  # tr(M^-1 11') = 1'M^-1 1
    tr2 = float(np.sum(D) - c @ np.add.reduceat(Du * Du, starts))  # tr(M^-1)
    if reml:  # tr(P V_theta) = tr(M^-1 V_theta) - tr(C X'M^-1 V_theta M^-1 X)
        oneA = shrink[:, None] * uDX  # 1'M^-1 X per cluster
        tr1 -= float(np.sum((oneA @ C) * oneA))
        A = DX - Du[:, None] * (c[:, None] * uDX)[cl]  # Q'M^-1 X
        tr2 -= float(np.sum((A @ C) * A))
    return nll, np.array([0.5 * (tr1 - q1), 0.5 * (tr2 - q2)])


def _stacked_reml(params, stacks, grad=True):
    if grad:
        return _stacked_eigen(params, stacks, True)
    return _stacked(params, stacks, True, grad)


def _stacked_ml(params, stacks, grad=True):
    if grad:
        return _stacked_eigen(params, stacks, False)
    return _stacked(params, stacks, False, grad)


def vcalc(vi, cluster, rho: float, obs=None, data: pd.DataFrame | None = None,
          sparse: bool = False):
    """The sampling covariance matrix of effects that share a sample: two effects of the same
    ``cluster`` on different outcomes (``obs``) correlate with ``rho``, two on the same
    outcome are the same measurement (correlation 1), effects of different clusters are
    uncorrelated; so ``V[i, j] = r_ij * sqrt(vi[i] * vi[j])`` and ``V[i, i] = vi[i]``.

    As metafor's ``vcalc(vi, cluster, obs, rho = rho, data = data, sparse = sparse)``, except
    that without ``obs`` every effect is its own outcome (metafor then takes the rows of a
    cluster as the same outcome, correlation 1), so ``vcalc(vi, cluster, rho)`` is
    ``clubSandwich::impute_covariance_matrix(vi, cluster, r = rho)``, the CHE working model's
    V. ``vi``, ``cluster`` and ``obs`` are arrays or column names of ``data``. Returns a k x k
    numpy array, or a scipy sparse (CSR) array with ``sparse=True`` (for many effects)."""
    import scipy.sparse as sp

    if not -1 < rho < 1:
        raise ValueError(f"rho = {rho!r}: a correlation between -1 and 1 (e.g. 0.6) is needed")

    def column(x, what):
        if isinstance(x, str):
            if data is None or x not in data:
                raise ValueError(f"{what} column {x!r} not found")
            x = data[x]
        return np.asarray(x).ravel()

    v = np.asarray(pd.to_numeric(pd.Series(column(vi, "vi")), errors="coerce"), dtype=float)
    cl = column(cluster, "cluster").astype(str)
    ob = column(obs, "obs").astype(str) if obs is not None else np.arange(len(v)).astype(str)
    for name, x in (("cluster", cl), ("obs", ob)):
        if len(x) != len(v):
            raise ValueError(f"{name} must have one value per effect ({len(v)}), got {len(x)}")
    codes = pd.factorize(pd.Series(cl), sort=False)[0]
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1], True])
    rows, cols = [], []
    for a, b in zip(starts[:-1], starts[1:]):
        members = order[a:b]
        rows.append(np.repeat(members, len(members)))
        cols.append(np.tile(members, len(members)))
    r, c = (np.concatenate(rows), np.concatenate(cols)) if rows else (np.empty(0, int),) * 2
    s = np.sqrt(v)
    values = np.where(ob[r] == ob[c], 1.0, rho) * s[r] * s[c]
    values[r == c] = v[r[r == c]]
    V = sp.csr_array((values, (r, c)), shape=(len(v), len(v)))
    return V if sparse else V.toarray()
