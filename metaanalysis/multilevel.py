"""Dependent effects: the three-level model and robust variance estimation.

:func:`rma_mv` fits metafor's ``rma.mv(yi, vi, random = ~ 1 | cluster/effect)`` by REML
(Konstantopoulos, 2011; Cheung, 2014): each cluster's marginal covariance is
``diag(vi + sigma2_within) + sigma2_between J``, inverted per cluster in closed form
(Sherman-Morrison), so a fit costs O(k p^2) per iteration and never builds a k x k matrix.
The REML criterion is maximised over both variance components with its analytic gradient.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .models import ConvergenceWarning, RMAResult, _prepare, _rss, _tr_P, _wls


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

    @property
    def weights(self) -> np.ndarray:
        """Percent weight of each effect in the pooled estimate (see :func:`rma_mv`)."""
        return self.effect_weights

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update({"sigma2_between": self.sigma2_between, "sigma2_within": self.sigma2_within,
                  "n_clusters": self.n_clusters})
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
        blocks = _Blocks(self.cluster)
        o = blocks.order
        y, v, X = self.yi[o], self.vi[o], self.X[o]
        k, p = X.shape
        nll = (_reml if reml else _ml)((self.sigma2_between, self.sigma2_within), y, v, X,
                                       blocks, grad=False)[0]
        ll = -float(nll)
        if reml:  # metafor's restricted likelihood keeps the constant 1/2 log|X'X|
            ll += 0.5 * float(np.linalg.slogdet(X.T @ X)[1])
        n = k - p if reml else k
        parms = p + 2
        if reml:
            deviance = -2 * ll
        else:  # against the saturated model, as metafor (each effect its own mean)
            deviance = -2 * (ll - float(np.sum(-0.5 * np.log(2 * math.pi * v))))
        m = max(n, parms + 2)
        return {"logLik": ll, "deviance": deviance, "AIC": -2 * ll + 2 * parms,
                "BIC": -2 * ll + parms * math.log(n),
                "AICc": -2 * ll + 2 * parms * m / (m - parms - 1)}

    def predict(self, newmods=None) -> dict:
        out = super().predict(newmods)
        half = self.crit * math.sqrt(out["se"] ** 2 + self.sigma2_between + self.sigma2_within)
        out["pi_lb"], out["pi_ub"] = out["pred"] - half, out["pred"] + half
        return out

    def __str__(self):
        head = (f"Multilevel Model (k = {self.k} effects in {self.n_clusters} clusters; "
                f"{self.method})\n\nsigma^2 between clusters: {self.sigma2_between:.4f}\n"
                f"sigma^2 within clusters:  {self.sigma2_within:.4f}\n\n")
        return head + super().__str__().split("\n", 2)[2]


def rma_mv(yi=None, vi=None, *, cluster, data: pd.DataFrame | None = None, mods=None,
           test: str = "z", level: float = 95, measure: str = "GEN", slab=None,
           method: str = "REML") -> MVResult:
    """Three-level random-effects model (effects nested in clusters), fitted by REML (or ML
    with ``method="ML"``, e.g. to compare models with different moderators by a
    likelihood-ratio test).

    As metafor's ``rma.mv(yi, vi, random = ~ 1 | cluster/effect, test=, method=)``:
    ``test="t"`` (or ``"knha"``) uses t and F distributions with k - p degrees of freedom.
    """
    method = method.upper()
    if method not in ("REML", "ML"):
        raise ValueError(f"method = {method!r}: a three-level model is fitted by REML or ML")
    objective = _reml if method == "REML" else _ml
    test = {"knha": "t"}.get(test.lower(), test.lower())
    y, v, X, names, slab, frame = _prepare(yi, vi, None, data, mods, slab)
    if isinstance(cluster, str):
        if frame is None or cluster not in frame:
            raise ValueError(f"cluster column {cluster!r} not found")
        cl = frame[cluster].astype(str).to_numpy()
    else:
        cl = np.asarray(cluster).astype(str)
        if len(cl) != len(y):
            raise ValueError("cluster must have one value per effect")
    blocks = _Blocks(cl)
    o = blocks.order
    ys, vs, Xs = y[o], v[o], X[o]
    k, p = X.shape
    # start from a univariate REML-like split of the DL tau^2
    w = 1 / vs
    tau0 = max(0.0, (_rss(ys, w, Xs) - (k - p)) / _tr_P(w, Xs, _wls(ys, w, Xs)[1])) if k > p else 0
    starts = ((tau0 / 2 + 1e-4, tau0 / 2 + 1e-4), (tau0 + 1e-4, 1e-4), (1e-4, tau0 + 1e-4))
    best, converged = minimise_components(objective, (ys, vs, Xs, blocks), starts)
    if not converged:
        warnings.warn(f"the three-level REML fit did not converge ({best.message}); results "
                      "are NaN", ConvergenceWarning, stacklevel=2)
        s2b = s2w = math.nan
    else:
        s2b, s2w = (float(x) for x in best.x)
    _, beta, C = objective((s2b, s2w), ys, vs, Xs, blocks, grad=False)
    # weight of each effect in the pooled estimate: (1'M_j^-1)_i = d_i (1 - c_j s_j)
    d, s_, c, _, _ = _pieces(s2b, s2w, vs, blocks)
    w_sorted = d * (1 - blocks.expand(c * s_))
    weights = np.empty(k)
    weights[o] = 100 * w_sorted / w_sorted.sum()
    dfs = k - p
    wf = 1 / vs
    Q = max(0.0, _rss(ys, wf, Xs)) if dfs > 0 else 0.0
    Qp = float(stats.chi2.sf(Q, dfs)) if dfs > 0 else 1.0
    vt = dfs / _tr_P(wf, Xs, _wls(ys, wf, Xs)[1]) if dfs > 0 else math.nan
    total = s2b + s2w
    I2 = 100 * total / (total + vt) if dfs > 0 else 0.0
    res = MVResult(k=k, method=method, test="knha" if test == "t" else "z", level=level,
                   measure=measure, names=names, beta=beta, vb=C, tau2=total, Q=Q, Q_pvalue=Qp,
                   I2=I2, H2=math.nan, tau2_ci=(math.nan, math.nan), dfs=dfs, yi=y, vi=v, X=X,
                   slab=slab, data=frame, sigma2_between=s2b, sigma2_within=s2w,
                   n_clusters=blocks.n, effect_weights=weights, cluster=cl)
    if p > 1:
        b, V = beta[1:], C[1:, 1:]
        QM = float(b @ np.linalg.solve(V, b))
        if test == "t":
            res.QM, res.QM_pvalue = QM / (p - 1), float(stats.f.sf(QM / (p - 1), p - 1, dfs))
        else:
            res.QM, res.QM_pvalue = QM, float(stats.chi2.sf(QM, p - 1))
    return res
