"""Sensitivity analyses: leave-one-out, influence diagnostics, cumulative and permutation tests.

As metafor's ``leave1out``, ``influence`` (Viechtbauer & Cheung, 2010), ``cumul`` and
``permutest`` (Follmann & Proschan, 1999; Higgins & Thompson, 2004). Each returns a
DataFrame (or a small result) so a researcher can look at it directly.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .models import BATCH_METHODS, RMAResult, batch_fit, refit


def _drop(res: RMAResult, i: int):
    keep = np.arange(res.k) != i
    return res.yi[keep], res.vi[keep], res.X[keep]


def _batched(res: RMAResult) -> bool:
    return res.X.shape[1] == 1 and res.method in BATCH_METHODS


_COLUMNS = ("estimate", "se", "zval", "pval", "ci_lb", "ci_ub", "Q", "Q_pvalue", "tau2", "I2",
            "H2")


def _row(r) -> dict:
    return {"estimate": r.estimate, "se": float(r.se[0]), "zval": float(r.zval[0]),
            "pval": float(r.pval[0]), "ci_lb": float(r.ci_lb[0]), "ci_ub": float(r.ci_ub[0]),
            "Q": r.Q, "Q_pvalue": r.Q_pvalue, "tau2": r.tau2, "I2": r.I2, "H2": r.H2}


def _refit_or_nan(res, y, v, X=None):
    """The refit, or None where it cannot be estimated (a moderator left all zero by the
    deletion: metafor gives NA for that row and goes on)."""
    try:
        return refit(res, y, v, X)
    except ValueError as exc:
        if "collinear" in str(exc) or "cannot estimate" in str(exc):
            return None
        raise


def _refuse_multilevel(res, what: str) -> None:
    from .multilevel import MVResult

    if isinstance(res, MVResult):
        raise ValueError(f"{what} of a three-level model would refit two-level models and "
                         "flag every study; it is not available for rma_mv fits (metafor "
                         "deletes whole clusters): use rma() on one effect per study, or the "
                         "robust (CHE) model's sensitivity over rho")


def _two_by_two(res) -> bool:
    return hasattr(res, "refit_tables")


def leave_one_out(res: RMAResult) -> pd.DataFrame:
    """The model refitted without each effect in turn: estimate, se, CI, tau2, I2, Q.

    Intercept-only models are fitted all at once in O(k) (:mod:`metaanalysis.deletion`).
    Mantel-Haenszel and Peto fits leave out each 2x2 table and refit the same method (as
    metafor's ``leave1out.rma.mh``); a deletion that leaves a moderator all zero gives a row
    of NaN, as metafor's NA.
    """
    _refuse_multilevel(res, "leave-one-out")
    if _two_by_two(res):
        import warnings

        n = len(res.tables)
        rows = []
        for i in range(n):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an undefined subset is its NaN row
                r = res.refit_tables(np.arange(n) != i)
            row = _row(r)
            row["tau2"] = math.nan  # no tau^2 in a common-effect model (metafor: not shown)
            rows.append({"omitted": res.table_slab[i], **row})
        return pd.DataFrame(rows)
    if _batched(res) and res.k > 1:
        from .deletion import leave_one_out_fits

        b = leave_one_out_fits(res.yi, res.vi, method=res.method, test=res.test,
                               level=res.level, tau2=res.tau2)
        out = pd.DataFrame({"omitted": res.slab, **{c: b[c] for c in (
            "estimate", "se", "zval", "pval", "ci_lb", "ci_ub", "Q", "Q_pvalue", "tau2", "I2",
            "H2")}})
        return out
    rows = []
    for i in range(res.k):
        y, v, X = _drop(res, i)
        if len(y) < X.shape[1]:
            continue
        r = _refit_or_nan(res, y, v, X)
        rows.append({"omitted": res.slab[i], **(_row(r) if r is not None else
                                                 dict.fromkeys(_COLUMNS, math.nan))})
    return pd.DataFrame(rows)


def _deleted(res: RMAResult, i: int, r: RMAResult, y, v, X):
    """Effect i against the fit ``r`` without it: (resid, se, s2w, delpred), with metafor's
    Knapp-Hartung scaling s2w of the sampling and between-study variances."""
    s2w = 1.0
    if res.test == "knha" and r.dfs > 0:
        wd = 1 / (v + r.tau2)
        s2w = float(np.sum(wd * (y - X @ r.beta) ** 2)) / r.dfs
    xi = res.X[i]
    delpred = float(xi @ r.beta)
    vdelpred = float(xi @ r.vb @ xi)
    tau2_del = 0.0 if res.method == "FE" else r.tau2
    se = math.sqrt(res.vi[i] * s2w + vdelpred + tau2_del * s2w)
    return res.yi[i] - delpred, se, s2w, delpred


def deleted_residuals(res: RMAResult) -> tuple[np.ndarray, np.ndarray]:
    """Each effect's deleted residual and its standard error (see
    :func:`metaanalysis.diagnostics.rstudent`); NaN where the deletion cannot be fitted."""
    resid, se = np.full(res.k, np.nan), np.full(res.k, np.nan)
    for i in range(res.k):
        y, v, X = _drop(res, i)
        r = _refit_or_nan(res, y, v, X)
        if r is not None:
            resid[i], se[i] = _deleted(res, i, r, y, v, X)[:2]
    return resid, se


def influence(res: RMAResult) -> pd.DataFrame:
    """Case diagnostics as metafor's influence(): rstudent, dffits, cook_d, cov_r, tau2_del,
    QE_del, hat and weight, with ``influential`` flagged by metafor's rules."""
    _refuse_multilevel(res, "influence()")
    if _two_by_two(res):
        raise ValueError(f"influence() is not defined for {res.method} fits (as in metafor): "
                         "use leave_one_out()")
    k, p = res.X.shape
    tau2 = 0.0 if res.method == "FE" else res.tau2
    w = 1 / (res.vi + tau2)
    XtWX_inv = np.linalg.inv(res.X.T @ (w[:, None] * res.X))
    hat = np.einsum("ij,jk,ik->i", res.X, XtWX_inv, res.X) * w
    pred_full = res.X @ res.beta
    # metafor's influence() uses every coefficient, the intercept included (btt = 1:p)
    svb = np.linalg.inv(res.vb)
    btt = slice(0, p)
    out = {k_: np.full(k, np.nan) for k_ in
           ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "QE_del")}
    det_full = np.linalg.det(res.vb[btt, btt])
    dfbs = np.full((k, p), np.nan)
    # intercept-only: every left-out fit at once; otherwise one refit per effect
    at_once = _batched(res) and k >= 3
    if at_once:
        _influence_intercept(res, hat, pred_full, out, dfbs)
    for i in range(0 if at_once else k):
        y, v, X = _drop(res, i)
        r = _refit_or_nan(res, y, v, X)
        if r is None:  # the deletion leaves a moderator all zero: NA, as metafor
            continue
        resid, se, s2w, delpred = _deleted(res, i, r, y, v, X)
        tau2_del = 0.0 if res.method == "FE" else r.tau2
        out["rstudent"][i] = resid / se
        out["dffits"][i] = (pred_full[i] - delpred) / math.sqrt(s2w * hat[i] * (tau2_del + res.vi[i]))
        dfb = res.beta[btt] - r.beta[btt]
        out["cook_d"][i] = float(dfb @ svb @ dfb)
        out["cov_r"][i] = np.linalg.det(r.vb[btt, btt]) / det_full
        vb_del = np.linalg.inv(res.X.T @ (res.X / (res.vi + tau2_del)[:, None]))
        dfbs[i] = (res.beta - r.beta) / np.sqrt(s2w * np.diag(vb_del))
        out["tau2_del"][i] = r.tau2
        out["QE_del"][i] = r.Q
    from . import distributions as dist

    out["hat"] = hat
    out["weight"] = res.weights
    for j, name in enumerate(res.names):
        out[f"dfbs_{name}"] = dfbs[:, j]
    out["influential"] = ((np.abs(out["dffits"]) > 3 * math.sqrt(p / (k - p)))
                          | (dist.chi2_cdf(out["cook_d"], p) > 0.5)
                          | (hat > 3 * p / k)
                          | (np.abs(dfbs) > 1).any(axis=1))
    # one frame built from its columns (a column added to a frame copies it again)
    return pd.DataFrame(out, index=pd.Index(res.slab, name="slab"))


def _influence_intercept(res, hat, pred_full, out, dfbs):
    """influence()'s loop for an intercept-only model, from every leave-one-out fit at once
    (O(k), :mod:`metaanalysis.deletion`): the same quantities as :func:`_deleted` and the
    loop, with X = 1 (the left-out fit's variance is its se^2, the prediction its estimate)."""
    from .deletion import leave_one_out_fits

    b = leave_one_out_fits(res.yi, res.vi, method=res.method, test=res.test,
                           level=res.level, tau2=res.tau2)
    tau2_del = np.zeros(res.k) if res.method == "FE" else b["tau2"]
    s2w = b["s2w"] if res.test == "knha" else np.ones(res.k)
    vb_del = b["se"] ** 2
    se = np.sqrt(res.vi * s2w + vb_del + tau2_del * s2w)
    out["rstudent"][:] = (res.yi - b["estimate"]) / se
    out["dffits"][:] = (pred_full - b["estimate"]) / np.sqrt(s2w * hat * (tau2_del + res.vi))
    dfb = float(res.beta[0]) - b["estimate"]
    out["cook_d"][:] = dfb * dfb * float(np.linalg.inv(res.vb)[0, 0])
    out["cov_r"][:] = vb_del / float(res.vb[0, 0])
    # all k effects weighted at the left-out fit's tau2: its k - 1 weights and effect i's
    sw_all = b["sw"] + 1 / (res.vi + tau2_del)
    dfbs[:, 0] = dfb / np.sqrt(s2w / sw_all)
    out["tau2_del"][:] = b["tau2"]
    out["QE_del"][:] = b["Q"]


def cumulative(res: RMAResult, order=None) -> pd.DataFrame:
    """The pooled estimate as effects are added one by one (by ``order``, e.g. the years)."""
    _refuse_multilevel(res, "a cumulative meta-analysis")
    if _two_by_two(res):
        import warnings

        n = len(res.tables)
        idx = np.argsort(np.asarray(order), kind="stable") if order is not None else np.arange(n)
        rows = []
        for j in range(1, n + 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = res.refit_tables(idx[:j])
            rows.append({"added": res.table_slab[idx[j - 1]], "k": j, "estimate": r.estimate,
                         "se": float(r.se[0]), "ci_lb": float(r.ci_lb[0]),
                         "ci_ub": float(r.ci_ub[0]), "pval": float(r.pval[0]),
                         "tau2": math.nan, "I2": r.I2, "Q": r.Q})
        return pd.DataFrame(rows)
    idx = np.argsort(np.asarray(order), kind="stable") if order is not None else np.arange(res.k)
    if _batched(res):
        from .deletion import cumulative_fits

        b = cumulative_fits(res.yi[idx], res.vi[idx], method=res.method, test=res.test,
                            level=res.level, tau2=res.tau2)
        return pd.DataFrame({"added": [res.slab[i] for i in idx], "k": np.arange(1, res.k + 1),
                             **{c: b[c] for c in ("estimate", "se", "ci_lb", "ci_ub", "pval",
                                                  "tau2", "I2", "Q")}})
    rows = []
    for j in range(1, res.k + 1):
        sel = idx[:j]
        r = refit(res, res.yi[sel], res.vi[sel])
        rows.append({"added": res.slab[idx[j - 1]], "k": j, "estimate": r.estimate,
                     "se": float(r.se[0]), "ci_lb": float(r.ci_lb[0]),
                     "ci_ub": float(r.ci_ub[0]), "pval": float(r.pval[0]), "tau2": r.tau2,
                     "I2": r.I2, "Q": r.Q})
    return pd.DataFrame(rows)


@dataclass
class PermutationResult:
    pval: np.ndarray  # one per coefficient
    QM_pvalue: float
    iterations: int
    exact: bool

    def __str__(self):
        kind = "exact" if self.exact else f"{self.iterations} random"
        return (f"Permutation test ({kind} permutations): p = "
                + ", ".join(f"{p:.4f}" for p in self.pval)
                + (f"; QM p = {self.QM_pvalue:.4f}" if np.isfinite(self.QM_pvalue) else ""))


def permutest(res: RMAResult, iter: int = 1000, seed: int = 1, exact: bool | None = None,
              tol: float = 1.4901161193847656e-08) -> PermutationResult:
    """Permutation test of the coefficients (metafor's permutest, two-sided, ``abs``).

    Without moderators the signs of the effects are permuted; with moderators the rows of
    the model matrix. The test is exact (all permutations) when their number is at most
    ``iter``, as in metafor; otherwise ``iter`` random permutations, the first being the
    observed data, drawn from numpy's generator seeded with ``seed``.
    """
    rng = np.random.default_rng(seed)
    k, p = res.X.shape
    intercept_only = p == 1
    if intercept_only:
        n_exact = 2**k
    else:
        n_exact = math.factorial(k)
    use_exact = exact if exact is not None else n_exact <= iter
    stats_z, stats_qm = [], []

    def record(r):
        stats_z.append(np.abs(r.zval))
        stats_qm.append(r.QM)

    if intercept_only:
        if use_exact:
            signs = np.array(list(itertools.product((1.0, -1.0), repeat=k)))
        else:
            signs = rng.choice((-1.0, 1.0), size=(iter, k))
            signs[0] = 1.0
        if _batched(res):
            b = batch_fit(signs * res.yi, np.broadcast_to(res.vi, signs.shape),
                          method=res.method, test=res.test, level=res.level)
            stats_z.extend(np.abs(b["zval"])[:, None])
            stats_qm.extend([np.nan] * len(signs))
        else:
            for s in signs:
                record(refit(res, s * res.yi, res.vi))
    else:
        if use_exact:
            seen, perms = set(), []
            for perm in itertools.permutations(range(k)):
                key = res.X[list(perm)].tobytes()
                if key not in seen:
                    seen.add(key)
                    perms.append(perm)
        else:
            perms = [np.arange(k)] + [rng.permutation(k) for _ in range(iter - 1)]
        for perm in perms:
            record(refit(res, res.yi, res.vi, res.X[list(perm)]))
    z = np.array(stats_z)
    pval = np.mean(z >= np.abs(res.zval) - tol, axis=0)
    qm = np.array(stats_qm, dtype=float)
    qm_p = float(np.mean(qm >= res.QM - tol)) if not intercept_only else math.nan
    return PermutationResult(np.minimum(pval, 1.0), qm_p, len(z), bool(use_exact))
