"""Univariate meta-analysis models: common effect, random effects, meta-regression.

:func:`rma` mirrors metafor's ``rma.uni`` (Viechtbauer, 2010): the same estimators of tau^2,
the same defaults, the same test statistics. Everything is written in O(k p^2) with the
diagonal weight matrix kept as a vector, never as a k x k matrix, so a fit on a million
effects takes well under a second.

Estimators of tau^2 (formulas as in ``rma.uni`` and the references of ``?rma``):

- ``DL``: DerSimonian & Laird (1986), ``(Q - (k-p)) / tr(P)`` with fixed-effect weights.
- ``HE``: Hedges (1983), ``(RSS_ols - tr(P_ols V)) / (k-p)``.
- ``HS``: Hunter & Schmidt (2004), ``(Q - k) / sum(w)``.
- ``SJ``: Sidik & Jonkman (2005), one step from ``tau0 = var(y) (k-1)/k``.
- ``ML``, ``REML``: Fisher scoring from the HE value, step halving at 0 (Raudenbush, 2009).
- ``EB``: Morris (1983) empirical Bayes, Fisher-scoring-type iteration.
- ``PM``: Paule & Mandel (1982), root of the generalised Q statistic = k - p.

All estimates are truncated at 0. PyMARE offers DL/HE/ML/REML for intercept models but not
the other estimators, Knapp-Hartung or the Q-profile interval, so this module does not call it;
the benchmarks compare against it and the tests check that both agree where they overlap.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize

from . import distributions as dist

from .grammar import (COMMON_EFFECT_METHODS, METHODS, TESTS,  # noqa: E402, F401
                      TWO_BY_TWO_METHODS)
THRESHOLD = 1e-10
MAXITER = 1000


class FitWarning(UserWarning):
    """A fit's warning that a note says in its own language: ``key`` names its sentence in
    :data:`metaanalysis.text.WORDS` (``warning.KEY``), ``fields`` fill it; the message
    Python shows is the English one."""

    def __init__(self, key: str, **fields):
        from .text import WORDS

        if key not in WORDS["warning"]:  # warnings.warn("a sentence", ConvergenceWarning):
            key, fields = "other", {"message": key, **fields}  # said as any other warning
        self.key, self.fields = key, fields
        super().__init__(self.said("en"))

    def said(self, lang: str) -> str:
        """The warning in ``lang`` ("fr" or "en"): a field that is itself a warning in
        ``lang`` too (see :func:`in_context`), a float as the language writes it."""
        from .text import t

        shown = {k: said(v, lang) if isinstance(v, Warning) else
                 (f"{v:g}".replace(".", ",") if lang == "fr" else f"{v:g}")
                 if isinstance(v, float) else v for k, v in self.fields.items()}
        return t(f"warning.{self.key}", lang, **shown)


class ConvergenceWarning(FitWarning):
    """An iterative estimate did not converge; the affected values are NaN."""


class MissingDataWarning(FitWarning):
    """Rows with missing values were dropped; the message names them."""


def in_context(message: Warning, key: str, **fields) -> FitWarning:
    """``message`` (a caught warning's) said where it arose, e.g. ``in_context(m, "at_rho",
    rho=0.8)``: "rho = 0.8: ...", "avec ρ = 0,8 : ..."; of the same category when it is a
    :class:`FitWarning` (a ConvergenceWarning stays one)."""
    cls = type(message) if isinstance(message, FitWarning) else FitWarning
    return cls(key, **fields, said=message)


def said(warning, lang: str) -> str:
    """A caught warning (``warnings.catch_warnings(record=True)``'s item, or its message) in
    ``lang``: a :class:`FitWarning` in its words; any other (numpy's, a library's) as its
    own English message, introduced as such in a French note."""
    from .text import t

    message = getattr(warning, "message", warning)
    if isinstance(message, FitWarning):
        return message.said(lang)
    return t("warning.other", lang, message=str(message))


# --------------------------------------------------------------------------- linear algebra
def _wls(y, w, X):
    """Weighted least squares: coefficients and inv(X'WX)."""
    XtWX = X.T @ (w[:, None] * X)
    inv = np.linalg.inv(XtWX)
    return inv @ (X.T @ (w * y)), inv


def _intercept_only(X) -> bool:
    """X is a single column of ones (a pooled effect): sums stand for its matrix products."""
    return X.shape[1] == 1 and bool(np.all(X == 1.0))


def _wls_intercept(y, w, sw: float | None = None):
    """:func:`_wls` for X a column of ones: the weighted mean and 1 / sum w (``sw``, if
    known)."""
    sw = float(w.sum()) if sw is None else sw
    return np.array([float(w @ y) / sw]), np.array([[1.0 / sw]])


def _tr_P(w, X, inv):
    """tr(P), P = W - W X inv(X'WX) X' W, without forming P."""
    return w.sum() - np.trace(inv @ (X.T @ ((w**2)[:, None] * X)))


def _tr_PP(w, X, inv):
    """tr(P P) in O(k p^2)."""
    B = X.T @ ((w**2)[:, None] * X)
    MB = inv @ B
    return (w**2).sum() - 2 * np.trace(inv @ (X.T @ ((w**3)[:, None] * X))) + np.trace(MB @ MB)


#: The Fisher information's sums cancel when one weight dominates (one study 1e6+ times
#: more precise than the others at tau^2 near 0): below this fraction of sum w^2 it is
#: computed again from P's entries (:func:`_traces_exact`, :func:`_intercept_traces`).
CANCELLED = 1e-6
#: One effect dominates a set when its weight^3 is more than this share of the sum of
#: weights^3 (a study 1e4+ times more precise than a few others): the batched, leave-one-out
#: and cumulative sums are then not used for the fits it dominates (rma()'s own fit is).
DOMINANT = 0.99


def _traces_exact(w, X, inv):
    """tr(P) and tr(PP) from P's entries, a block of rows at a time: every term of tr(PP) =
    sum P_ij^2 is positive, so nothing cancels, where :func:`_tr_P` and :func:`_tr_PP`
    subtract terms of the order of max w^2 and lose every digit when one weight is 1e6
    times the others' (rma raised ZeroDivisionError, or stopped at a wrong tau^2). O(k^2 p)
    time, O(k) memory per row: used only then."""
    k = len(w)
    WX = w[:, None] * X
    G = WX @ inv
    tr_p = tr_pp = 0.0
    for a in range(0, k, 512):
        b = min(k, a + 512)
        block = -(G[a:b] @ WX.T)  # (W X inv X' W) rows a..b, negated
        rows = np.arange(b - a)
        block[rows, rows + a] += w[a:b]
        tr_p += float(block[rows, rows + a].sum())
        tr_pp += float(np.einsum("ij,ij->", block, block))
    return tr_p, tr_pp


def _intercept_traces(w, s1, s2):
    """tr(P) and tr(PP) of an intercept-only model without cancellation (see
    :func:`_traces_exact`), in O(k): P_ii = w_i r_i / s1 and P_ij = -w_i w_j / s1 with r_i =
    sum_{j != i} w_j; so tr(P) = sum w r / s1 and tr(PP) = sum w^2 (r^2 + q) / s1^2 with q_i =
    sum_{j != i} w_j^2. The largest weight's r and q are summed from the others, not taken
    as a difference (every other weight is at most half of s1: no digit lost there)."""
    i = int(np.argmax(w))
    r, q = s1 - w, s2 - w * w
    others = np.delete(w, i)
    r[i], q[i] = others.sum(), others @ others
    return float(w @ r) / s1, float((w * w) @ (r * r + q)) / (s1 * s1)


def _rss(y, w, X):
    """The generalised Q statistic sum w (y - X b)^2 for weights w."""
    b, _ = _wls(y, w, X)
    r = y - X @ b
    return float(np.sum(w * r**2))


# --------------------------------------------------------------------------- tau^2
def _tau2_he(y, v, X, intercept: bool | None = None):
    """The Hedges (HE) estimator; ``intercept``: whether X is a column of ones, if known
    (:func:`_intercept_only`)."""
    k, p = X.shape
    if _intercept_only(X) if intercept is None else intercept:  # the mean and two sums
        r = y - float(y.sum()) / k  # (np.mean's value, without its wrappers)
        sv = v.sum()  # (the same sum twice: taken once)
        return (float(r @ r) - (sv - sv / k)) / (k - 1)
    b, inv = _wls(y, np.ones(k), X)
    r = y - X @ b
    # tr(P_ols V) = sum(v) - tr(inv X' V X)
    tr_pv = v.sum() - np.trace(inv @ (X.T @ (v[:, None] * X)))
    return (float(r @ r) - tr_pv) / (k - p)


def _tau2_dl(y, v, X):
    k, p = X.shape
    w = 1 / v
    _, inv = _wls(y, w, X)
    return (_rss(y, w, X) - (k - p)) / _tr_P(w, X, inv)


def _tau2_hs(y, v, X):
    w = 1 / v
    return (_rss(y, w, X) - len(y)) / w.sum()


def _tau2_sj(y, v, X):
    k, p = X.shape
    tau0 = np.var(y) if k > 1 else 0.0  # var(y) (k-1)/k = population variance
    return tau0 * _rss(y, 1 / (v + tau0), X) / (k - p)


def _working_unit(v) -> float:
    """The unit in which the estimators and optimisers work (tau^2 and its Q-profile
    interval, the batched and leave-one-out fits, three-level and CHE fits and their
    profile intervals, the selection model): 1, or, for effects whose sampling variances
    are far from 1 (median below 2^-14 or above 2^14: effects in euros, or rates per
    person-year), the power of two nearest their typical standard error. Their starts and
    convergence rules are absolute, made for effects of the order of 1: in euros, a
    three-level fit stopped at its start, with no warning (variance components 0, a wrong
    CI); in rates of the order of 1e-5, REML's tau^2 stopped at a step of 1e-10, its
    interval's searches at 1e-15, 1e-3 of their size. Dividing by a power of two changes
    no digit of the effects."""
    v = np.asarray(v)
    if not v.size or 2.0**-14 <= v.min() and v.max() <= 2.0**14:  # (two passes, no copy:
        return 1.0  # the median, a partition of a copy, only when it may matter)
    m = float(np.median(v))
    if not (m > 0 and math.isfinite(m)) or 2.0**-14 <= m <= 2.0**14:
        return 1.0
    return 2.0 ** round(math.log2(math.sqrt(m)))


def _q_ceiling(y, X, target) -> float:
    """A tau^2 at which the generalised Q is at most ``target``, whatever the variances: with
    w = 1/(v + t) <= 1/t, Q(t) = min_b sum w (y - Xb)^2 <= RSS_ols / t, so Q(t) <= target
    from t = RSS_ols / target on. The roots' searches give up only beyond it
    (:func:`_beyond_search`), not at a fixed tau^2 (1e12 was reached by effects in euros,
    whose tau^2 is of the order of 1e12)."""
    if X is None:  # intercept only
        rss = float(np.sum((y - y.mean()) ** 2))
    else:
        rss = _rss(y, np.ones(len(y)), X)  # the unweighted (OLS) residual sum of squares
    return rss / target if target > 0 else math.inf


def _beyond_search(t, y, X, target) -> bool:
    """Whether a root's search has gone too far at ``t`` (it then gives up: NaN): beyond 1e12
    and ten times :func:`_q_ceiling` (``X`` None: intercept only), which the search never
    passes but through rounding. The ceiling is computed only beyond 1e12 (a pass over the
    data that the searches of effects of ordinary size never need)."""
    return t > 1e12 and t > 10 * _q_ceiling(y, X, target)


def _q_root(y, v, X, target) -> float:
    """The tau^2 at which the generalised Q statistic equals ``target`` (0 if already below
    at 0). Q decreases in tau^2, so the root is unique (and below :func:`_q_ceiling`)."""
    if X.shape[1] == 1 and np.all(X == 1):
        return _q_root_intercept(y, v, target)

    def f(t):
        return _rss(y, 1 / (v + t), X) - target

    if f(0.0) <= 0:
        return 0.0
    hi = max(100.0, 10 * np.var(y))
    while f(hi) > 0:
        hi *= 10
        if _beyond_search(hi, y, X, target):
            return math.nan
    return optimize.brentq(f, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)


def _q_root_intercept(y, v, target, start=None) -> float:
    """:func:`_q_root` for an intercept-only model (see :func:`_q_roots_intercept`)."""
    return _q_roots_intercept(y, v, (target,), start)[0]


#: The intercept-only searches take their sums over at most this many effects at a time: the
#: weights of a block (2 x 32,768 values, 512 KB: a core's L2 cache here) stay in cache
#: while its sums are taken, and OpenBLAS's product of a block's weights with the effects'
#: rows stays fast (beyond about 150,000 effects it packs the operands and takes ten times
#: as long). Measured at 10^5 effects beside PyMARE's fits (which leave the heap to be
#: faulted in again): 1.8 ms, 2.8 ms with blocks of 65,536; 10^6 and 10^7 effects 10-15%
#: slower than with those.
BLOCK = 1 << 15


def _weights(v, t, out):
    """``out`` = 1 / (v + t): a division, which numpy vectorises where its reciprocal does
    not (twice as fast, the same correctly rounded quotients)."""
    np.add(v, t, out=out)
    return np.divide(1.0, out, out=out)


#: A sum of weights at tau2 = t is taken from its value and derivative at t0, to first order,
#: where |t - t0| is at most NEAR of the smallest v + t0: the next term is then at most
#: NEAR^2 = 1e-16 of the sum, its rounding (rma()'s fit at its estimate, from the last Fisher
#: step's sums: :meth:`_Centred.at_estimate`; the cumulative fits': deletion._final_sums).
NEAR = 1e-8


class _Centred:
    """An intercept-only model's data as its searches (REML and ML's Fisher steps, the
    Q-profile) and its fit use them: the rows (1, yc, yc^2), yc = y centred at its
    common-effect mean (sum y/v / sum 1/v, or ``centre`` if already computed: nothing
    cancels in the sums), and the work arrays of :meth:`sums`. Made once per fit
    (:func:`_fit`) for the estimate, its interval and Q."""

    def __init__(self, y, v, centre: float | None = None):
        if centre is None:
            w = 1 / v
            centre = float(w @ y) / float(w.sum())
        self.v = v
        self.v_min = float(v.min())
        self.rows = np.empty((3, len(y)))
        _, self.yc, self.y2 = self.rows
        self.rows[0] = 1.0
        np.subtract(y, centre, out=self.yc)
        np.multiply(self.yc, self.yc, out=self.y2)
        self._T = self.rows.T
        self._W = np.empty((2, min(len(y), BLOCK)))
        self._w, self._w2 = self._W
        self.last = None  # (t, sums) of the last evaluation

    def sums(self, t, cubes: bool = False) -> tuple:
        """With w = 1/(v + t): (sum w, sum w yc, sum w y2, sum w^2, sum w^2 yc, sum w^2 y2)
        and, with ``cubes``, sum w^3 (a Fisher step's sums; the Q statistic and its slope at
        t follow from the first six: :func:`_q_and_slope`). The weights and their squares
        are the two rows of a work array (for k <= BLOCK they hold them afterwards:
        :meth:`weights`), the six sums one product of those rows with the effects' three:
        one call and one read of the data where six dot products took 1.9 times as long.
        Over blocks of :data:`BLOCK` effects."""
        v, W, w, w2 = self.v, self._W, self._w, self._w2
        k = len(v)
        if k <= BLOCK:  # (one block: numpy's calls only)
            _weights(v, t, w)
            np.multiply(w, w, out=w2)
            sums = (W @ self._T).ravel().tolist()  # w's sums, then w^2's
            if cubes:
                sums.append(float(w2 @ w))
            self.last = (t, tuple(sums))
            return self.last[1]
        totals = np.zeros(7)
        for a in range(0, k, BLOCK):
            b = min(k, a + BLOCK)
            Wb = W[:, :b - a]
            _weights(v[a:b], t, Wb[0])
            np.multiply(Wb[0], Wb[0], out=Wb[1])
            totals[:6] += (Wb @ self._T[a:b]).ravel()
            if cubes:
                totals[6] += Wb[1] @ Wb[0]
        self.last = (t, tuple(totals.tolist() if cubes else totals[:6].tolist()))
        return self.last[1]

    def at_estimate(self, t) -> tuple:
        """The fit's sums at its estimate t, (sum w, sum w yc, sum w y2), and the evaluation
        they come from, (t0, Q(t0), dQ/dt(t0)), where the Q-profile's searches then start.
        When t is next to the Fisher steps' last evaluation t0 (|t - t0| at most NEAR of the
        smallest v + t0), from that evaluation's sums to first order, S(t) = S(t0) - d S'(t0)
        with d = t - t0 (sum w^m y^p has the derivative -m sum w^(m+1) y^p): the next term is
        at most (d / min(v + t0))^2 <= 1e-16 of the sum, its rounding, and the evaluation at
        t is spared. The last Fisher step being at most 1e-10 max(1, tau2), it is near
        enough unless the smallest v + tau2 is below 1e-2 max(1, tau2) (one study far more
        precise than the others). Else evaluated at t."""
        if self.last is not None and len(self.last[1]) == 7:
            t0, s = self.last
            d = t - t0
            if abs(d) <= NEAR * (self.v_min + t0):
                return (s[0] - d * s[3], s[1] - d * s[4], s[2] - d * s[5]), (t0, *_q_and_slope(s))
        s = self.sums(t)
        return s[:3], (t, *_q_and_slope(s))

    def weights(self, t):
        """The weights 1/(v + t) of the last :meth:`sums` at ``t`` if it kept them, else
        computed."""
        return self._w if len(self._w) == len(self.v) else 1 / (self.v + t)


def _q_and_slope(sums):
    """Q(t) = sum w y^2 - (sum w y)^2 / sum w (y centred) and dQ/dt = -sum w^2 (y - mu)^2
    from the first six sums of :meth:`_Centred.sums`."""
    sw, swy, swy2, sw2, sw2y, sw2y2 = sums[:6]
    mu = swy / sw
    return swy2 - swy * mu, -(sw2y2 - 2 * mu * sw2y + mu * mu * sw2)


def _q_roots_intercept(y, v, targets, start=None, centred=None, q0=None, at=None) -> list:
    """:func:`_q_root` of each target for an intercept-only model, in a few passes over the
    data: Q(t) = sum w y^2 - (sum w y)^2 / sum w with w = 1/(v + t) (y centred first, so
    nothing cancels), dQ/dt = -sum w^2 (y - mu)^2; Newton's method inside a bracket that it
    keeps, bisecting whenever a step would leave it (Q is decreasing, so the bracket always
    holds the root). With ``start`` (the model's tau^2, between the two bounds of an
    interval) each root starts from there: Q is convex, so Newton from either side reaches
    the root in a few steps, and Q at 0 and at ``start`` are computed once for all targets
    (Q at 0 is the common-effect Q: ``q0`` when the caller has it; ``at``: (t, Q(t),
    dQ/dt(t)) computed by the fit near ``start``, the searches' start then; ``centred``: a
    :class:`_Centred` of y and v)."""
    centred = _Centred(y, v) if centred is None else centred
    cache = {}
    if at is not None:
        start = at[0]
        cache[start] = tuple(at[1:])

    def q_and_slope(t):
        if t in cache:
            return cache[t]
        q, slope = _q_and_slope(centred.sums(t))
        if t == 0.0 or t == start:
            cache[t] = (q, slope)
        return q, slope

    return [_newton_q_root(q_and_slope, target, y, start, q0) for target in targets]


#: :func:`_settled`'s margins: the last Newton step at most SHRUNK times the one before it,
#: the step predicted after it at most SETTLED times the rounding threshold of the root.
SHRUNK = 1e-2
SETTLED = 1e-3


def _settled(previous: float, step: float, threshold: float) -> bool:
    """Whether Newton's step after ``step`` is sure to be below the search's rounding
    ``threshold`` where ``step`` took it, so that this point is the root and Q need not be
    evaluated there only to see it (one evaluation of the 4-5 of each bound).
    Converging quadratically, the error after a step is C e^2 and each step is about the
    error before it, so the step after ``step`` is about step^3 / previous^2 (C = step /
    previous^2). Trusted only well inside that regime (the step SHRUNK from the one before
    it) and far below the threshold (SETTLED of it). Where evaluating Q at ``new`` would
    have moved the root, it is by the rounding of Q itself (a step of at most 1.6e-14 of the
    root: in 4,500 random fits at units 1e-6 ... 1e6, 6 of 1,500 PM estimates and 18 of
    9,000 interval bounds); everywhere else the root is the one the extra evaluation
    returned, to the bit."""
    if not abs(step) <= SHRUNK * abs(previous):
        return False
    return abs(step) ** 3 / previous**2 <= SETTLED * threshold


#: The roots' relative tolerance (brentq's default rtol).
TOLERANCE = 4 * np.finfo(float).eps


def _newton_q_root(q_and_slope, target, y, start, q0=None):
    if q0 is None:
        q0 = q_and_slope(0.0)[0]
    if q0 - target <= 0:
        return 0.0
    if start is not None and math.isfinite(start) and start > 0:
        qs, slope_s = q_and_slope(float(start))
        if qs - target > 0:  # the root is above the start: the bracket's top is found by
            # the steps themselves (Q falls to 0, so a step past the root sets it)
            lo, hi = float(start), math.inf
            t, f, slope = lo, qs - target, slope_s
        else:  # between 0 and the start: Newton from the start lands below the root
            lo, hi = 0.0, float(start)
            t, f, slope = hi, qs - target, slope_s
    else:
        lo, hi = 0.0, max(100.0, 10 * float(np.var(y)))
        while q_and_slope(hi)[0] - target > 0:
            lo, hi = hi, hi * 10
            if _beyond_search(hi, y, None, target):
                return math.nan
        q, slope = q_and_slope(lo)
        t, f = lo, q - target
    tol = TOLERANCE
    previous = None  # the last step, if it was Newton's (not a bisection or a reach)
    for _ in range(200):
        # Newton on 1/Q (Q falls like 1/(b + tau2), so 1/Q is nearly straight): the step on
        # Q scaled by Q / target; fewer evaluations than Newton on Q, the same root
        step = -f / slope * ((f + target) / target) if slope < 0 else math.inf
        if abs(step) <= 1e-15 + tol * abs(t):
            return t  # the next step is below the rounding of t: t is the root
        new = t + step
        if not lo < new < hi:  # a step outside the bracket: bisect, or reach further up
            if math.isfinite(hi):
                new = 0.5 * (lo + hi)  # inside the bracket, whatever its scale
            else:
                new = max(10 * lo, 100.0)
                if _beyond_search(new, y, None, target):
                    return math.nan
            previous = None
        else:
            if previous is not None and _settled(previous, step, 1e-15 + tol * abs(new)):
                return new  # (what evaluating Q at new would find: see _settled)
            previous = step
        q, slope = q_and_slope(new)
        f = q - target
        if f > 0:
            lo = new
        else:
            hi = new
        if f == 0 or abs(new - t) <= 1e-15 + tol * abs(new) or (
                math.isfinite(hi) and hi - lo <= 1e-15 + tol * hi):  # (inf <= inf is true)
            return new
        t = new
    if not math.isfinite(hi):
        return math.nan
    return optimize.brentq(lambda x: q_and_slope(x)[0] - target, lo, hi, xtol=1e-15,
                           rtol=4 * np.finfo(float).eps, maxiter=500)


def _tau2_pm(y, v, X):
    k, p = X.shape
    return _q_root(y, v, X, k - p)


def _tau2_fisher(y, v, X, method, centred=None, intercept: bool | None = None):
    """ML, REML and EB by Fisher scoring from the HE value, as in metafor's rma.uni."""
    k, p = X.shape
    intercept = _intercept_only(X) if intercept is None else intercept
    tau2 = max(0.0, _tau2_he(y, v, X, intercept))
    if method in ("REML", "ML") and intercept:
        tau2 = _fisher_intercept(y, v, tau2, method, centred)
        if tau2 is not None:
            return tau2
        tau2 = max(0.0, _tau2_he(y, v, X, intercept))
    for _ in range(MAXITER):
        w = 1 / (v + tau2)
        b, inv = _wls(y, w, X)
        Py = w * (y - X @ b)
        if method == "ML":
            adj = (Py @ Py - w.sum()) / (w**2).sum()
        elif method == "REML":
            tr_p, tr_pp = _tr_P(w, X, inv), _tr_PP(w, X, inv)
            if not tr_pp > CANCELLED * float(w @ w):
                tr_p, tr_pp = _traces_exact(w, X, inv)
            adj = (Py @ Py - tr_p) / tr_pp
        else:  # EB
            adj = (float(Py @ (y - X @ b)) * k / (k - p) - k) / w.sum()
        tau2, done = _fisher_step(tau2, adj)
        if done:
            return tau2
    # Fisher scoring can oscillate (metafor stops with an error there); the estimate is then
    # found directly: EB's fixed point is the root of Q(tau^2) = k - p, and REML/ML maximise
    # their (restricted) likelihood, found by a bounded scalar search
    tau2 = _tau2_direct(y, v, X, method)
    if not np.isfinite(tau2):
        warnings.warn(ConvergenceWarning("tau2_not_converged", method=method), stacklevel=3)
    return tau2


def _fisher_intercept(y, v, tau2, method, centred=None):
    """:func:`_tau2_fisher`'s iterations for an intercept-only model (REML, ML) in a few
    passes per step: with w = 1/(v + tau2) and y centred at its common-effect mean, sum w,
    sum w^2, sum w^3, sum w y, sum w^2 y, sum w^2 y^2 give the estimate b, y'PPy = sum w^2
    (y - b)^2, tr(P) = sum w - sum w^2 / sum w and tr(PP) = sum w^2 - 2 sum w^3 / sum w +
    (sum w^2 / sum w)^2 (the general formulas with X = 1). Where one weight dominates so
    that tr(PP) cancels (below CANCELLED of sum w^2), y'PPy and the traces are computed
    without differences of large sums (:func:`_intercept_traces`). The same steps and
    stopping rule; None if the steps do not settle (the general loop then decides).
    ``centred``: a :class:`_Centred` of y and v."""
    centred = _Centred(y, v) if centred is None else centred
    for _ in range(MAXITER):
        s1, swy, _, s2, s2y, s2y2, s3 = centred.sums(tau2, cubes=True)
        b = swy / s1
        tr_p, tr_pp = s1 - s2 / s1, s2 - 2 * s3 / s1 + (s2 / s1) ** 2
        if tr_pp > CANCELLED * s2:
            yPPy = s2y2 - 2 * b * s2y + b * b * s2
        else:  # one weight dominates: no differences of large sums
            whole = centred.weights(tau2)
            wr = whole * (centred.yc - b)
            yPPy = float(wr @ wr)
            tr_p, tr_pp = _intercept_traces(whole, s1, s2)
        adj = (yPPy - s1) / s2 if method == "ML" else (yPPy - tr_p) / tr_pp
        tau2, done = _fisher_step(tau2, adj)
        if done:
            return tau2
    return None


def _fisher_step(tau2, adj):
    """tau2 after a Fisher step ``adj`` (none if not finite), halved until tau2 stays >= 0
    as metafor does, and whether the iterations have converged."""
    if not np.isfinite(adj):
        adj = 0.0
    while tau2 + adj < 0:
        adj /= 2
    tau2 += adj
    return tau2, abs(adj) <= THRESHOLD * max(1.0, tau2)


def _loglik(tau2, y, v, X, method):
    w = 1 / (v + tau2)
    b, inv = _wls(y, w, X)
    r = y - X @ b
    ll = -0.5 * (np.sum(np.log(v + tau2)) + float(np.sum(w * r * r)))
    if method == "REML":
        ll -= 0.5 * np.linalg.slogdet(X.T @ (w[:, None] * X))[1]
    return ll


def _tau2_direct(y, v, X, method) -> float:
    """tau^2 without Fisher scoring: the root of Q = k - p (EB), or the maximum of the
    (restricted) log-likelihood over [0, hi] (ML, REML); NaN if it cannot be bracketed."""
    k, p = X.shape
    if method == "EB":
        return _q_root(y, v, X, k - p)
    hi = max(100.0, 10 * float(np.var(y)))
    for _ in range(6):
        res = optimize.minimize_scalar(lambda t: -_loglik(t, y, v, X, method), bounds=(0, hi),
                                       method="bounded", options={"xatol": 1e-13,
                                                                  "maxiter": 2000})
        if res.x < 0.999 * hi:
            t = float(res.x)
            # the bounded search does not evaluate the end point: compare with tau2 = 0
            return 0.0 if _loglik(0.0, y, v, X, method) >= -res.fun else t
        hi *= 100
    return math.nan


def estimate_tau2(y, v, X, method: str, unit: float | None = None, centred=None,
                  intercept: bool | None = None) -> float:
    """tau^2 by the named estimator (see the module docstring), truncated at 0; computed in
    the effects' working unit (``unit``, by default :func:`_working_unit` of ``v``).
    ``centred`` (a :class:`_Centred` of y and v, in unit 1) spares intercept-only REML and ML
    fits computing it again, ``intercept`` (whether X is a column of ones) looking at X."""
    k, p = X.shape
    if method == "FE" or k <= p:
        return 0.0
    u = _working_unit(v) if unit is None else unit
    if u != 1.0:
        y, v, centred = y / u, v / (u * u), None
    fn = {"DL": _tau2_dl, "HE": _tau2_he, "HS": _tau2_hs, "SJ": _tau2_sj, "PM": _tau2_pm}.get(
        method)
    if fn is _tau2_he:
        tau2 = _tau2_he(y, v, X, intercept)
    else:
        tau2 = fn(y, v, X) if fn else _tau2_fisher(y, v, X, method, centred, intercept)
    return max(0.0, tau2) * (u * u) if np.isfinite(tau2) else math.nan


def tau2_qprofile(y, v, X, level: float = 95, tau2: float | None = None,
                  unit: float | None = None, centred=None,
                  Q: float | None = None, intercept: bool | None = None,
                  at: tuple | None = None) -> tuple[float, float]:
    """Q-profile confidence interval of tau^2 (Viechtbauer, 2007), as metafor's confint.

    The bounds solve Q(tau^2) = chi2 quantiles with k - p degrees of freedom; a bound whose
    Q at 0 is already below the quantile is 0. ``tau2`` (the model's estimate, optional) is
    where an intercept-only model's root search starts. The searches run in the effects'
    working unit (``unit``, by default :func:`_working_unit` of ``v``). For an
    intercept-only model, ``centred`` (a :class:`_Centred`, in unit 1) and ``Q`` (the
    common-effect Q statistic, Q at tau^2 = 0) spare computing them again, ``intercept``
    (whether X is a column of ones) looking at X, ``at`` ((t, Q(t), dQ/dt(t)) at or next to
    ``tau2``, in unit 1, computed by the fit) the first evaluation of the searches.
    """
    k, p = X.shape
    if k - p < 1:
        return math.nan, math.nan
    alpha = 1 - level / 100
    q_lo, q_hi = dist.chi2_ppf(1 - alpha / 2, k - p), dist.chi2_ppf(alpha / 2, k - p)
    u = _working_unit(v) if unit is None else unit
    if u != 1.0:
        y, v = y / u, v / (u * u)
        tau2 = None if tau2 is None else tau2 / (u * u)
        centred = at = None  # (Q, a ratio of sums of squares, is the same in any unit)
    if _intercept_only(X) if intercept is None else intercept:
        lo, hi = _q_roots_intercept(y, v, (q_lo, q_hi), tau2, centred, Q, at)
    else:
        lo, hi = _q_root(y, v, X, q_lo), _q_root(y, v, X, q_hi)
    return lo * (u * u), hi * (u * u)


# --------------------------------------------------------------------------- design
def _no_moderators(mods) -> bool:
    """``mods`` names no moderator: the design is the intercept's column of ones."""
    return mods is None or (isinstance(mods, (list, tuple)) and not mods)


def design_matrix(data: pd.DataFrame | None, mods, k: int, intercept: bool = True):
    """The model matrix and its column names, metafor style.

    ``mods`` is a list of column names of ``data`` (or an array). Text columns are coded as
    indicator variables against their first level in sorted order (R's treatment contrasts),
    named ``column=level``.
    """
    if _no_moderators(mods):
        # (built in place: a column_stack of one column copies it, 80 MB at 10^7 effects)
        if not intercept:
            raise ValueError("no intercept and no moderators: a model needs one of them")
        return np.ones((k, 1)), ["intercept"]
    cols, names = [], []
    if intercept:
        cols.append(np.ones(k))
        names.append("intercept")
    if isinstance(mods, str):
        mods = [mods]
    if isinstance(mods, (list, tuple)) and all(isinstance(m, str) for m in mods):
        if data is None:
            raise ValueError("mods given by name need data=")
        for m in mods:
            if m not in data.columns:
                raise ValueError(f"moderator {m!r} is not a column; columns are "
                                 f"{', '.join(map(str, data.columns))}")
            col = data[m]
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                cols.append(col.to_numpy(dtype=float))
                names.append(m)
            else:
                levels = sorted(col.dropna().astype(str).unique())
                for lev in levels[1:]:
                    cols.append(np.where(col.isna(), np.nan, (col.astype(str) == lev) * 1.0))
                    names.append(f"{m}={lev}")
    else:
        arr = np.asarray(mods, dtype=float)
        arr = arr.reshape(k, -1)
        for j in range(arr.shape[1]):
            cols.append(arr[:, j])
            names.append(f"x{j + 1}")
    return np.column_stack(cols), names


# --------------------------------------------------------------------------- result
@dataclass
class RMAResult:
    """A fitted model, with metafor's names. Print it for a summary like metafor's."""

    k: int
    method: str
    test: str
    level: float
    measure: str
    names: list
    beta: np.ndarray
    vb: np.ndarray
    tau2: float
    Q: float
    Q_pvalue: float
    I2: float
    H2: float
    tau2_ci: tuple
    dfs: float
    QM: float = math.nan
    QM_pvalue: float = math.nan
    R2: float = math.nan
    yi: np.ndarray = field(default=None, repr=False)
    vi: np.ndarray = field(default=None, repr=False)
    X: np.ndarray = field(default=None, repr=False)
    slab: list = field(default=None, repr=False)
    data: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def model_name(self) -> str:
        """The model's short name for a reader (a forest plot's pooled row): the estimation
        method (REML, DL, FE, MH ...), or ``CHE`` for the robust CHE working model."""
        return self.method

    # --- the main numbers, for an intercept-only model
    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vb))

    @property
    def zval(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.beta / self.se

    @property
    def crit(self) -> float:
        a = 1 - self.level / 100
        if self.test == "knha":
            return float(dist.t_isf(a / 2, self.dfs)) if self.dfs > 0 else math.nan
        return float(dist.norm_isf(a / 2))

    @property
    def pval(self) -> np.ndarray:
        if self.test == "knha":
            return 2 * dist.t_sf(np.abs(self.zval), self.dfs) if self.dfs > 0 else np.full(
                len(self.beta), np.nan)
        return 2 * dist.norm_sf(np.abs(self.zval))

    @property
    def ci_lb(self) -> np.ndarray:
        return self.beta - self.crit * self.se

    @property
    def ci_ub(self) -> np.ndarray:
        return self.beta + self.crit * self.se

    @property
    def estimate(self) -> float:
        return float(self.beta[0])

    @property
    def weights(self) -> np.ndarray:
        """Percent weights of the effects in the fit (metafor's weights())."""
        w = 1 / (self.vi + (0 if self.method == "FE" else self.tau2))
        return 100 * w / w.sum()

    @property
    def se_tau2(self) -> float:
        """Standard error of tau², as metafor's ``se.tau2`` for the estimator: the inverse
        Fisher information for ML and REML, the moment estimators' own variance formulas for
        DL, HS, HE, and 2 k² / ((k - p) (sum w)²) for EB and PM; NaN for FE and SJ."""
        if self.method in ("FE", "MH", "PETO", "SJ"):
            return math.nan
        v, X = self.vi, self.X
        k, p = X.shape
        if k - p < 1:
            return math.nan
        t2 = max(float(self.tau2), 0.0)

        def proj(w):
            inv = np.linalg.inv(X.T @ (w[:, None] * X))
            return np.diag(w) - (w[:, None] * X) @ inv @ (X * w[:, None]).T

        if self.method in ("ML", "REML"):
            w = 1 / (v + t2)
            if self.method == "ML":
                return math.sqrt(2 / float(np.sum(w ** 2)))
            P = proj(w)
            return math.sqrt(2 / float(np.sum(P * P)))
        if self.method in ("EB", "PM"):
            w = 1 / (v + t2)
            return math.sqrt(2 * k ** 2 / (k - p) / float(np.sum(w)) ** 2)
        if self.method == "HE":
            P = np.eye(k) - X @ np.linalg.inv(X.T @ X) @ X.T
            PV = P * v[None, :]
            return math.sqrt(1 / (k - p) ** 2 * (2 * float(np.sum(PV * PV.T))
                                                 + 4 * t2 * float(np.trace(PV))
                                                 + 2 * t2 ** 2 * (k - p)))
        w = 1 / v  # DL and HS: the fixed-effect weights
        P = proj(w)
        trP = float(np.trace(P))
        core = 2 * (k - p) + 4 * t2 * trP + 2 * t2 ** 2 * float(np.sum(P * P))
        scale = 1 / trP ** 2 if self.method == "DL" else 1 / float(np.sum(w)) ** 2
        return math.sqrt(scale * core)

    def fitted(self) -> np.ndarray:
        """Fitted values x_i' b (metafor's ``fitted``)."""
        return self.X @ self.beta

    def resid(self) -> np.ndarray:
        """Residuals y_i - x_i' b (metafor's ``residuals``)."""
        return self.yi - self.fitted()

    def fit_stats(self, REML: bool | None = None) -> dict:
        """Log-likelihood, deviance, AIC, BIC and AICc, as metafor's ``fitstats``: the
        restricted likelihood for REML fits (or ``REML=True``), the full likelihood otherwise
        (FE, ML, and the other estimators at their tau^2). Parameters counted: the
        coefficients, plus tau^2 unless the model is common-effect; with REML, n = k - p."""
        if self.method in ("MH", "PETO"):
            raise ValueError("fit statistics are not defined for Mantel-Haenszel or Peto fits")
        reml = self.method == "REML" if REML is None else bool(REML)
        y, v, X = self.yi, self.vi, self.X
        k, p = X.shape
        tau2 = 0.0 if self.method == "FE" else float(self.tau2)
        w = 1 / (v + tau2)
        b, _ = _wls(y, w, X)
        rss = float(np.sum(w * (y - X @ b) ** 2))
        if reml:
            n = k - p
            ll = (-0.5 * n * math.log(2 * math.pi) + 0.5 * np.linalg.slogdet(X.T @ X)[1]
                  - 0.5 * float(np.sum(np.log(v + tau2)))
                  - 0.5 * np.linalg.slogdet(X.T @ (w[:, None] * X))[1] - 0.5 * rss)
            deviance = -2 * ll
        else:
            n = k
            ll = -0.5 * k * math.log(2 * math.pi) - 0.5 * float(np.sum(np.log(v + tau2))) \
                - 0.5 * rss
            saturated = float(np.sum(-0.5 * np.log(2 * math.pi * v)))
            deviance = -2 * (ll - saturated)
        parms = p + (0 if self.method == "FE" else 1)
        m = max(n, parms + 2)
        ll, deviance = float(ll), float(deviance)
        return {"logLik": ll, "deviance": deviance, "AIC": -2 * ll + 2 * parms,
                "BIC": -2 * ll + parms * math.log(n),
                "AICc": -2 * ll + 2 * parms * m / (m - parms - 1)}

    def predict(self, newmods=None) -> dict:
        """Predicted effect with CI and prediction interval (metafor's predict.rma)."""
        x = np.r_[1.0, np.atleast_1d(newmods).astype(float)] if newmods is not None else (
            np.eye(len(self.beta))[0] if len(self.beta) == 1 else None)
        if x is None:
            raise ValueError("give newmods for a meta-regression")
        pred = float(x @ self.beta)
        se = float(np.sqrt(x @ self.vb @ x))
        # a common-effect model has no prediction interval (metafor gives NA)
        tau2 = math.nan if self.method in COMMON_EFFECT_METHODS else self.tau2
        half_pi = self.crit * math.sqrt(se**2 + tau2)
        return {"pred": pred, "se": se, "ci_lb": pred - self.crit * se,
                "ci_ub": pred + self.crit * se, "pi_lb": pred - half_pi,
                "pi_ub": pred + half_pi}

    def coefficients(self) -> pd.DataFrame:
        """One row per coefficient: estimate, se, zval (tval for knha), pval, ci_lb, ci_ub."""
        return pd.DataFrame({"estimate": self.beta, "se": self.se, "zval": self.zval,
                             "pval": self.pval, "ci_lb": self.ci_lb, "ci_ub": self.ci_ub},
                            index=pd.Index(self.names, name="term"))

    def to_frame(self) -> pd.DataFrame:
        """The coefficients table (alias of :meth:`coefficients`)."""
        return self.coefficients()

    def to_dict(self) -> dict:
        """The JSON-ready summary used by ``metaanalysis pool --json``."""
        d = {"k": self.k, "estimate": _f(self.beta[0]), "se": _f(self.se[0]),
             "ci_lb": _f(self.ci_lb[0]), "ci_ub": _f(self.ci_ub[0]),
             "pval": _f(self.pval[0]), "tau2": _f(self.tau2),
             "tau2_ci_lb": _f(self.tau2_ci[0]), "tau2_ci_ub": _f(self.tau2_ci[1]),
             "Q": _f(self.Q), "Q_pvalue": _f(self.Q_pvalue), "I2": _f(self.I2),
             "H2": _f(self.H2), "method": self.method, "measure": self.measure,
             "test": self.test, "level": self.level}
        if len(self.beta) == 1:
            pi = self.predict()
            d["pi_lb"], d["pi_ub"] = _f(pi["pi_lb"]), _f(pi["pi_ub"])
        else:
            d["pi_lb"] = d["pi_ub"] = None
            d["coefficients"] = {n: {"estimate": _f(b), "se": _f(s), "ci_lb": _f(lo),
                                     "ci_ub": _f(hi), "pval": _f(pv)}
                                 for n, b, s, lo, hi, pv in zip(
                                     self.names, self.beta, self.se, self.ci_lb, self.ci_ub,
                                     self.pval)}
            d.update({"QM": _f(self.QM), "QM_pvalue": _f(self.QM_pvalue), "QE": _f(self.Q),
                      "R2": _f(self.R2)})
        return d

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    def summary(self) -> str:
        return format_result(self)

    def __str__(self) -> str:
        return format_result(self)

    def _repr_html_(self) -> str:
        import html
        return f"<pre>{html.escape(format_result(self))}</pre>"

    def plot(self, **kw):
        """Forest plot of the fit (see :func:`metaanalysis.plots.forest`)."""
        from .plots import forest
        return forest(self, **kw)


def _f(x):
    x = float(x)
    return None if math.isnan(x) else x


def format_result(r: RMAResult) -> str:
    """A summary in the layout of metafor's print.rma.uni."""
    label = {"FE": "Fixed-Effects Model", "MH": "Fixed-Effects Model (Mantel-Haenszel)",
             "PETO": "Fixed-Effects Model (Peto)"}.get(
        r.method, f"{'Mixed' if len(r.beta) > 1 else 'Random'}-Effects Model")
    estimator = "" if r.method in COMMON_EFFECT_METHODS else f"tau^2 estimator: {r.method}; "
    out = [f"{label} (k = {r.k}; {estimator}measure: {r.measure})", ""]
    if r.method not in COMMON_EFFECT_METHODS:
        lo, hi = r.tau2_ci
        out.append(f"tau^2 (estimated amount of {'residual ' if len(r.beta) > 1 else ''}"
                   f"heterogeneity): {r.tau2:.4f} (CI {r.level:g}%: {lo:.4f}, {hi:.4f})")
        out.append(f"tau (square root of estimated tau^2 value): {math.sqrt(r.tau2):.4f}")
    out.append(f"I^2 (total heterogeneity / total variability): {r.I2:.2f}%")
    out.append(f"H^2 (total variability / sampling variability): {r.H2:.2f}")
    if len(r.beta) > 1 and not math.isnan(r.R2):
        out.append(f"R^2 (amount of heterogeneity accounted for): {r.R2:.2f}%")
    out += ["", f"Test for {'Residual ' if len(r.beta) > 1 else ''}Heterogeneity:",
            f"Q(df = {r.k - len(r.beta)}) = {r.Q:.4f}, p-val = {_p(r.Q_pvalue)}"]
    if len(r.beta) > 1:
        m = len(r.beta) - 1
        df2 = getattr(r, "model_dfs", r.dfs)  # a robust fit's dfs are per coefficient
        stat = (f"F(df1 = {m}, df2 = {df2:g}) = {r.QM:.4f}" if r.test == "knha"
                else f"QM(df = {m}) = {r.QM:.4f}")
        out += ["", f"Test of Moderators (coefficients 2:{m + 1}):",
                f"{stat}, p-val = {_p(r.QM_pvalue)}"]
    table = r.coefficients().rename(columns={"zval": "tval" if r.test == "knha" else "zval"})
    table = table.astype(object)
    table["pval"] = [_p(float(x)) for x in r.coefficients()["pval"]]  # "<.0001" as metafor
    out += ["", "Model Results:", "", table.to_string(
        formatters={c: (lambda x: f"{x:.4f}") for c in table.columns if c != "pval"})]
    if len(r.beta) == 1 and r.method not in TWO_BY_TWO_METHODS:
        pi = r.predict()
        out += ["", f"Prediction interval ({r.level:g}%): {pi['pi_lb']:.4f} to "
                f"{pi['pi_ub']:.4f}"]
    return "\n".join(out)


def _p(p: float) -> str:
    return "<.0001" if p < 1e-4 else f"{p:.4f}"


# --------------------------------------------------------------------------- input handling
class NumberLabels(Sequence):
    """The labels "1", "2" ... "k" of effects given without names, made only when read (a
    million-effect fit does not build a million strings it never shows)."""

    def __init__(self, k: int):
        self.k = int(k)

    def __len__(self) -> int:
        return self.k

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [str(j + 1) for j in range(self.k)[i]]
        i = int(i)
        if i < 0:
            i += self.k
        if not 0 <= i < self.k:
            raise IndexError(f"label {i} of {self.k}")
        return str(i + 1)

    def __iter__(self):  # (Sequence's own reads them one __getitem__ at a time: 5x slower)
        return map(str, range(1, self.k + 1))

    def __eq__(self, other) -> bool:
        return len(self) == len(other) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"NumberLabels({self.k})"


def _prepare(yi, vi, sei, data, mods, slab, keep_mask=False):
    """Arrays from names or values; drop rows with missing values with a warning naming them.
    With ``keep_mask``, also the boolean mask of the rows kept (to subset a covariance matrix
    or a cluster array the same way)."""
    def col(x):
        if isinstance(x, str):
            if data is None or x not in data.columns:
                raise ValueError(f"column {x!r} not found")
            return pd.to_numeric(data[x], errors="coerce").to_numpy(dtype=float)
        return None if x is None else np.asarray(x, dtype=float).ravel()

    if yi is None and data is not None:
        yi = "yi"
    if vi is None and sei is None and data is not None:
        vi = "vi" if "vi" in data.columns else None
        sei = "sei" if vi is None and "sei" in data.columns else None
    y = col(yi)
    v = col(vi) if vi is not None else (col(sei) ** 2 if sei is not None else None)
    if y is None or v is None:
        raise ValueError("give yi and vi (or sei)")
    k = len(y)
    if len(v) != k:
        raise ValueError(f"{k} effect(s) but {len(v)} variance(s): give one per effect")
    frame = data.reset_index(drop=True) if data is not None else None
    X, names = design_matrix(frame, mods, k)
    if slab is None:
        slab = (frame["key"].astype(str).tolist() if frame is not None and "key" in frame
                else NumberLabels(k))
    elif isinstance(slab, str):
        slab = frame[slab].astype(str).tolist()
    if not isinstance(slab, NumberLabels):
        slab = list(slab)
    ones = _no_moderators(mods)  # X is design_matrix's column of ones: nothing to check
    # (y @ v is finite only if every y and v is: an infinity or NaN makes its term, and so
    # the sum, infinite or NaN; an overflow is only looked at again, element by element)
    finite = ((math.isfinite(float(y @ v)) or np.isfinite(y).all() and np.isfinite(v).all())
              and (ones or np.isfinite(X).all()))
    bad = np.zeros(k, bool) if finite else (
        ~np.isfinite(y) | ~np.isfinite(v) | ~np.all(np.isfinite(X), axis=1))
    keep = ~bad
    if not finite:
        dropped = [slab[i] for i in np.flatnonzero(bad)]
        warnings.warn(MissingDataWarning("rows_dropped", n=int(bad.sum()),
                                         keys=", ".join(dropped)), stacklevel=3)
        y, v, X = y[keep], v[keep], X[keep]
        slab = [s for s, b in zip(slab, bad) if not b]
        if frame is not None:
            frame = frame.loc[keep].reset_index(drop=True)
    if len(v) and not v.min() > 0:  # (every v finite here)
        raise ValueError("sampling variances must be positive")
    if not ones:
        # drop columns of X that are constant zero after dropping rows (unused factor levels)
        used = np.any(X != 0, axis=0)
        used[0] = True
        X = X[:, used]  # (a copy in Fortran order, which BLAS's last bits depend on: kept)
        names = [n for n, u in zip(names, used) if u]
    if keep_mask:
        return y, v, X, names, slab, frame, keep
    return y, v, X, names, slab, frame


def rma(yi=None, vi=None, *, sei=None, data: pd.DataFrame | None = None, mods=None,
        method: str = "REML", test: str = "z", level: float = 95, measure: str = "GEN",
        slab=None) -> RMAResult:
    """Fit a common-effect, random-effects or mixed-effects (meta-regression) model.

    Like metafor's ``rma(yi, vi, mods=, method=, test=, level=)``. ``yi``/``vi``/``sei`` are
    arrays or column names of ``data`` (by default ``data.yi`` and ``data.vi``); ``mods`` a list
    of column names (text columns become indicators). Rows with a missing value are dropped
    with a :class:`MissingDataWarning` that names them.
    """
    method, test = method.upper(), test.lower()
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}: use z or knha")
    if not 0 < level < 100:
        raise ValueError("level is a percentage, e.g. 95")
    if measure == "GEN" and data is not None and "measure" in data.columns:
        measures = data["measure"].dropna().unique()
        if len(measures) == 1:
            measure = str(measures[0])
        elif len(measures) > 1:
            raise ValueError(f"the data mix measures ({', '.join(map(str, measures))}): pool "
                             "one measure at a time")
    y, v, X, names, slab, frame = _prepare(yi, vi, sei, data, mods, slab)
    return _fit(y, v, X, names, method, test, level, measure, slab, frame,
                intercept=True if _no_moderators(mods) else None)


def refit(res: "RMAResult", y, v, X=None, *, qprofile: bool = False, r2: bool = False):
    """The same model (method, test, level) on other data; the Q-profile skipped by default."""
    X = np.ones((len(y), 1)) if X is None else X
    return _fit(np.asarray(y, float), np.asarray(v, float), X, res.names[:X.shape[1]],
                res.method, res.test, res.level, res.measure, qprofile=qprofile, r2=r2)


def _fit(y, v, X, names, method, test, level, measure, slab=None, frame=None, r2=True,
         qprofile=True, intercept: bool | None = None):
    k, p = X.shape
    if k == 0:
        raise ValueError("no effects to pool")
    if k < p:
        raise ValueError(f"{k} effect(s) cannot estimate {p} coefficients")
    # an intercept-only model (a column of ones) has sums where the general one has matrix
    # products: the same quantities, fewer passes over a large k (1 is never collinear)
    intercept = _intercept_only(X) if intercept is None else intercept  # (rma's X of ones)
    if not intercept and (not np.any(X) if p == 1 else np.linalg.matrix_rank(X) < p):
        raise ValueError("the moderators are collinear: drop one of them")
    unit = _working_unit(v)
    wf = 1 / v
    dfs = k - p
    swf = float(wf.sum()) if intercept else None  # (the same sum, taken once)
    # an intercept-only model's searches (REML/ML and the Q-profile) share y centred at its
    # common-effect mean; its fit and its Q follow from them (:meth:`_Centred.sums`)
    centred = None
    if intercept and unit == 1.0 and dfs > 0 and (
            method in ("REML", "ML") or (qprofile and method != "FE")):
        (bf,), invf = _wls_intercept(y, wf, swf)
        centred = _Centred(y, v, bf)
    tau2 = estimate_tau2(y, v, X, method, unit, centred, intercept)
    at = None  # (t, Q, dQ/dt) at or next to tau2, where the Q-profile's searches start
    if centred is not None:  # the random-effects fit from the sums at tau2: beta = the
        # common-effect mean + sum w yc / sum w; sum w (y - beta)^2 = Q(tau2)
        (sw, swy, swy2), at = centred.at_estimate(tau2 if np.isfinite(tau2) else np.nan)
        beta, vb = np.array([bf + swy / sw]), np.array([[1.0 / sw]])
        rss = swy2 - swy * (swy / sw)
    else:
        w = _weights(v, tau2 if np.isfinite(tau2) else np.nan, np.empty(k))
        beta, vb = _wls_intercept(y, w) if intercept else _wls(y, w, X)
        rss = None
    if test == "knha" and dfs > 0:
        if rss is None:
            rss = float(np.sum(w * (y - (beta[0] if intercept else X @ beta)) ** 2))
        s2w = rss / dfs
        vb = vb * (s2w if s2w > np.finfo(float).eps else 0.0)
    # heterogeneity with fixed-effect weights
    if dfs > 0:
        if centred is not None:
            Q = max(0.0, float(wf @ centred.y2))  # sum wf (y - bf)^2
        else:
            bf, invf = _wls_intercept(y, wf, swf) if intercept else _wls(y, wf, X)
            rf = y - (bf[0] if intercept else X @ bf)
            np.multiply(rf, rf, out=rf)
            np.multiply(wf, rf, out=rf)  # wf rf^2 in place: the same products as wf * rf**2
            Q = max(0.0, float(np.sum(rf)))  # _rss(y, wf, X), its fit not made twice
        Qp = float(dist.chi2_sf(Q, dfs))
        if method == "FE":
            I2 = max(0.0, 100 * (Q - dfs) / Q) if Q > 0 else 0.0
            H2 = Q / dfs
        else:
            # tr(P) with X = 1: sum w - sum w^2 / sum w
            trP = float(swf - (wf @ wf) * invf[0, 0]) if intercept else _tr_P(wf, X, invf)
            vt = dfs / trP
            I2, H2 = 100 * tau2 / (vt + tau2), tau2 / vt + 1
        tci = (tau2_qprofile(y, v, X, level, tau2, unit, centred, Q, intercept, at)
               if method != "FE" and qprofile
               else (math.nan, math.nan))
    else:
        Q, Qp, I2, H2, tci = 0.0, 1.0, 0.0, 1.0, (math.nan, math.nan)
    res = RMAResult(k=k, method=method, test=test, level=level, measure=measure, names=names,
                    beta=beta, vb=vb, tau2=tau2, Q=Q, Q_pvalue=Qp, I2=I2, H2=H2, tau2_ci=tci,
                    dfs=dfs, yi=y, vi=v, X=X, slab=slab, data=frame)
    if p > 1:
        b, V = beta[1:], vb[1:, 1:]
        QM = float(b @ np.linalg.solve(V, b))
        if test == "knha":
            res.QM = QM / (p - 1)
            res.QM_pvalue = float(dist.f_sf(res.QM, p - 1, dfs)) if dfs > 0 else math.nan
        else:
            res.QM, res.QM_pvalue = QM, float(dist.chi2_sf(QM, p - 1))
        if r2 and method != "FE":
            tau2_0 = estimate_tau2(y, v, X[:, :1], method, unit)
            res.R2 = 0.0 if tau2_0 == 0 else max(0.0, 100 * (tau2_0 - tau2) / tau2_0)
    return res


@dataclass
class SubgroupResult:
    """Pooled effects per subgroup and the tests of subgroup differences."""

    by: str
    fits: dict
    Q_between: float  # separate tau^2 per subgroup: Q of the subgroup estimates
    Q_between_df: int
    Q_between_pvalue: float
    QM: float  # mixed-effects meta-regression with a common tau^2
    QM_pvalue: float

    def table(self) -> pd.DataFrame:
        rows = [{"subgroup": g, "k": r.k, "estimate": r.estimate, "se": float(r.se[0]),
                 "ci_lb": float(r.ci_lb[0]), "ci_ub": float(r.ci_ub[0]), "pval": float(r.pval[0]),
                 "tau2": r.tau2, "I2": r.I2} for g, r in self.fits.items()]
        return pd.DataFrame(rows)

    def __str__(self):
        return (f"Subgroups by {self.by}\n{self.table().to_string(index=False)}\n\n"
                f"Test of subgroup differences (separate tau^2): Q = {self.Q_between:.4f}, "
                f"df = {self.Q_between_df}, p = {_p(self.Q_between_pvalue)}\n"
                f"Meta-regression with a common tau^2: QM = {self.QM:.4f}, "
                f"p = {_p(self.QM_pvalue)}")


def subgroups(data: pd.DataFrame, by: str, *, method: str = "REML", test: str = "z",
              level: float = 95, measure: str = "GEN") -> SubgroupResult:
    """Pool each subgroup of ``by`` and test the differences between subgroups two ways.

    With a separate tau^2 per subgroup (Borenstein et al., 2009, ch. 19): a common-effect
    Q test on the subgroup estimates and their standard errors. With a common tau^2: the QM
    test of the mixed-effects meta-regression on ``by`` (metafor's ``rma(mods = ~ factor)``).
    """
    if by not in data.columns:
        raise ValueError(f"no column {by!r} to define subgroups")
    d = data[data[by].notna()]
    if len(d) < len(data):
        warnings.warn(f"{len(data) - len(d)} effect(s) with no {by} are left out of the "
                      "subgroup test (as metafor drops missing moderators)")
    fits = {}
    for g, rows in d.groupby(d[by].astype(str), sort=True):
        fits[g] = rma(data=rows, method=method, test=test, level=level, measure=measure)
    if len(fits) < 2:
        raise ValueError(f"{by} has fewer than two subgroups")
    est = np.array([f.estimate for f in fits.values()])
    se = np.array([float(f.se[0]) for f in fits.values()])
    w = 1 / se**2
    Qb = float(np.sum(w * (est - np.sum(w * est) / w.sum()) ** 2))
    dfb = len(fits) - 1
    mixed = rma(data=d.assign(**{by: d[by].astype(str)}), mods=[by], method=method, test=test,
                level=level, measure=measure)
    return SubgroupResult(by, fits, Qb, dfb, float(dist.chi2_sf(Qb, dfb)), mixed.QM,
                          mixed.QM_pvalue)


# --------------------------------------------------------------------------- batched fits
BATCH_METHODS = ("FE", "DL", "HE", "REML", "ML")


def batch_fit(Y, V, mask=None, *, method: str = "REML", test: str = "z",
              level: float = 95, start: float | None = None,
              unit: float | None = None) -> dict:
    """Many intercept-only fits at once: row j of ``Y``/``V`` (m x k) is one dataset.

    ``mask`` (m x k, True = use) selects each row's effects, so leave-one-out, cumulative
    and permutation analyses run as one vectorised computation instead of m separate fits.
    Same estimators and algorithm as :func:`rma` (Fisher scoring from the HE value for
    REML and ML, step halving at 0), so the numbers are the same; ``start`` replaces the HE
    starting value (e.g. the full-data tau^2 for leave-one-out: fewer iterations, the same
    root to within the convergence threshold). ``unit``: the effects' working unit, in
    which the convergence rule is read (by default :func:`_working_unit` of the first row's
    variances). Returns a dict of arrays
    (estimate, se, zval, pval, ci_lb, ci_ub, tau2, Q, Q_pvalue, I2, H2, k).
    """
    method = method.upper()
    if method not in BATCH_METHODS:
        raise ValueError(f"batched fits support {', '.join(BATCH_METHODS)}")
    Y = np.atleast_2d(np.asarray(Y, float))
    V = np.broadcast_to(np.atleast_2d(np.asarray(V, float)), Y.shape)
    M = np.ones(Y.shape, bool) if mask is None else np.asarray(mask, bool)
    if unit is None:
        unit = _working_unit(V[0]) if len(V) else 1.0
    threads = min(os.cpu_count() or 1, 8)
    if Y.size >= 1_000_000 and threads > 1 and len(Y) >= 2 * threads:
        # numpy releases the GIL in elementwise work: rows split across cores
        from concurrent.futures import ThreadPoolExecutor

        chunks = np.array_split(np.arange(len(Y)), threads)
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda ix: _batch_fit(Y[ix], V[ix], M[ix], method, test,
                                                        level, start, unit), chunks))
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return _batch_fit(Y, V, M, method, test, level, start, unit)


def _batch_fit(Y, V, M, method, test, level, start, unit):
    # left-out effects get an infinite variance (zero weight) and a zero effect, so every
    # sum below runs over whole rows without a mask (np.where on large arrays is slow)
    out = ~M
    Vm = np.array(V, dtype=float, copy=True)
    Yz = np.array(Y, dtype=float, copy=True)
    if out.any():
        np.putmask(Vm, out, np.inf)
        np.putmask(Yz, out, 0.0)
    k = M.sum(axis=1).astype(float)
    dfs = k - 1
    wf = 1.0 / Vm
    sw = wf.sum(axis=1)
    bf = np.einsum("ij,ij->i", wf, Yz) / sw
    rf = Yz - bf[:, None]
    Q = np.einsum("ij,ij->i", wf, rf * rf)
    trP_fe = sw - np.einsum("ij,ij->i", wf, wf) / sw
    if method == "FE":
        tau2 = np.zeros(len(Y))
    elif method == "DL":
        tau2 = np.maximum(0.0, (Q - dfs) / trP_fe)
    else:
        if method in ("REML", "ML") and start is not None:
            tau2 = np.full(len(Y), float(start))
        else:
            ybar = Yz.sum(axis=1) / k
            ro = Yz - ybar[:, None]
            if out.any():
                np.putmask(ro, out, 0.0)
            rss = np.einsum("ij,ij->i", ro, ro)
            sv = np.where(np.isfinite(Vm), Vm, 0.0).sum(axis=1) if out.any() else Vm.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                tau2 = np.where(dfs > 0, np.maximum(0.0, (rss - sv * (1 - 1 / k)) / dfs), 0.0)
        if method in ("REML", "ML"):
            tau2 = _batch_fisher(Yz, Vm, tau2, method, unit)
    tau2 = np.where(dfs > 0, tau2, 0.0)  # one effect: no heterogeneity to estimate
    w = 1.0 / (Vm + tau2[:, None])
    s1 = w.sum(axis=1)
    est = np.einsum("ij,ij->i", w, Yz) / s1
    s2w = None
    if test == "knha":
        re = Yz - est[:, None]
        s2w = np.einsum("ij,ij->i", w, re * re) / dfs
    return batch_results(est, 1 / s1, s2w, tau2, Q, trP_fe, k, method, test, level)


def batch_results(est, var, s2w, tau2, Q, trP_fe, k, method, test, level) -> dict:
    """batch_fit's columns from each fit's estimate, its variance 1 / sum w, the
    Knapp-Hartung factor ``s2w`` (sum w (y - b)^2 / (k - 1); used with test "knha"), tau2,
    the common-effect Q and tr(P), and the number of effects ``k`` (arrays); also used by
    the O(k) leave-one-out and cumulative fits (:mod:`metaanalysis.deletion`)."""
    dfs = k - 1
    crit = dist.norm_isf((1 - level / 100) / 2)
    if test == "knha":
        var = var * np.where(s2w > np.finfo(float).eps, s2w, 0.0)
        crit = dist.t_isf((1 - level / 100) / 2, dfs)
    with np.errstate(divide="ignore", invalid="ignore"):  # one effect, or se = 0: NaN, inf
        se = np.sqrt(var)
        z = est / se
        p = 2 * (dist.t_sf(np.abs(z), dfs) if test == "knha" else dist.norm_sf(np.abs(z)))
        if method == "FE":
            I2 = np.where(Q > 0, np.maximum(0.0, 100 * (Q - dfs) / Q), 0.0)
            H2 = Q / dfs
        else:
            vt = dfs / trP_fe
            I2, H2 = 100 * tau2 / (vt + tau2), tau2 / vt + 1
    one = dfs == 0
    Qp = np.where(one, 1.0, dist.chi2_sf(Q, np.maximum(dfs, 1)))
    I2, H2 = np.where(one, 0.0, I2), np.where(one, 1.0, H2)
    return {"estimate": est, "se": se, "zval": z, "pval": p, "ci_lb": est - crit * se,
            "ci_ub": est + crit * se, "tau2": tau2, "Q": Q, "Q_pvalue": Qp, "I2": I2,
            "H2": H2, "k": k}


def halve_at_zero(t, adj):
    """The steps ``adj`` from ``t`` halved, as metafor does, until tau2 stays >= 0 (at 0 the
    step vanishes)."""
    neg = t + adj < 0
    if neg.any():
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            h = np.where(t > 0, np.ceil(np.log2(-adj / t)), np.inf)
            adj = np.where(neg, np.where(np.isfinite(h), adj / 2.0**h, 0.0), adj)
        adj = np.where(neg & (t + adj < 0), adj / 2, adj)
    return adj


def _batch_fisher(Y, V, tau2, method, unit=1.0):
    """Fisher scoring on every row at once; V holds inf where an effect is left out.

    The convergence rule is rma()'s in the working ``unit`` (a power of two: a step below
    THRESHOLD times max(unit^2, tau2) is that rule on the effects divided by the unit, to
    the bit). The k-wide work arrays are allocated once and reused (allocating them anew at
    each iteration costs more than the arithmetic)."""
    scale = unit * unit
    tau2 = tau2.copy()
    active = np.ones(len(tau2), bool)
    hard = np.zeros(len(tau2), bool)
    w, w2, r = np.empty_like(V), np.empty_like(V), np.empty_like(V)
    for _ in range(MAXITER):
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        n = len(idx)
        t = tau2[idx]
        Yi = Y if n == len(Y) else Y[idx]
        Vi = V if n == len(V) else V[idx]
        wi, w2i, ri = w[:n], w2[:n], r[:n]
        np.add(Vi, t[:, None], out=wi)
        np.divide(1.0, wi, out=wi)  # (see _weights)
        np.multiply(wi, wi, out=w2i)
        s1, s2 = wi.sum(axis=1), w2i.sum(axis=1)
        b = np.einsum("ij,ij->i", wi, Yi) / s1
        np.subtract(Yi, b[:, None], out=ri)
        sw2r = np.einsum("ij,ij->i", w2i, ri) if method != "ML" else None  # sum w^2 r
        np.multiply(ri, ri, out=ri)
        yPPy = np.einsum("ij,ij->i", w2i, ri)  # y'PPy = sum (w r)^2
        s3 = np.einsum("ij,ij->i", w2i, wi)
        # rows where one effect's weight dominates (its cube over DOMINANT of their sum):
        # Fisher's steps there are far shorter than the distance to the root (the expected
        # information is inflated; at tau2 near 0 it cancels to nothing: see
        # _fisher_intercept), so each is fitted alone below, as rma() fits it
        dominated = wi.max(axis=1) ** 3 > DOMINANT * s3
        if dominated.any():
            hard[idx[dominated]] = True
        if method == "ML":
            adj = (yPPy - s1) / s2
        else:
            trP = s1 - s2 / s1
            trPP = s2 - 2 * s3 / s1 + (s2 / s1) ** 2
            with np.errstate(divide="ignore", invalid="ignore"):  # (a dominated row's
                adj = (yPPy - trP) / trPP  # tr(PP) can cancel to 0: that row is refitted)
            # Newton's step on the same score (derivative -2 y'PPPy + tr(PP)) converges
            # quadratically near the root; taken only where it agrees with the Fisher step
            # and is not more than twice as long, so the root reached is the same. With
            # Py = W r, y'PPPy = r'W P W r = sum w^3 r^2 - (sum w^2 r)^2 / sum w (without
            # the second term, an approximation: the steps converged linearly)
            yPPPy = np.einsum("ij,ij->i", w2i * wi, ri) if n * V.shape[1] >= 1_000_000 else \
                np.einsum("ij,ij,ij->i", w2i, wi, ri)
            yPPPy -= sw2r * sw2r / s1
            with np.errstate(divide="ignore", invalid="ignore"):
                newton = (yPPy - trP) / (2 * yPPPy - trPP)
            use = (np.sign(newton) == np.sign(adj)) & (np.abs(newton) <= 2 * np.abs(adj))
            adj = np.where(use & np.isfinite(newton), newton, adj)
        adj = halve_at_zero(t, np.where(np.isfinite(adj), adj, 0.0))
        tau2[idx] = t + adj
        active[idx] = (np.abs(adj) > THRESHOLD * np.maximum(scale, tau2[idx])) & ~hard[idx]
    for i in np.flatnonzero(hard):
        keep = np.isfinite(V[i])
        tau2[i] = estimate_tau2(Y[i, keep], V[i, keep], np.ones((int(keep.sum()), 1)), method,
                                unit)
    for i in np.flatnonzero(active):  # oscillating rows: the direct search, row by row
        keep = np.isfinite(V[i])
        tau2[i] = scale * _tau2_direct(Y[i, keep] / unit, V[i, keep] / scale,
                                       np.ones((int(keep.sum()), 1)), method)
    if np.isnan(tau2[active]).any():
        warnings.warn(ConvergenceWarning("batch_not_converged", n=int(np.isnan(tau2).sum()),
                                         method=method), stacklevel=3)
    return tau2


@dataclass
class WaldTest:
    """A Wald test of some coefficients of a fit (metafor's ``anova(res, btt=...)``): ``QM``
    with ``QMdf`` (an int, or (df1, df2) for the F-test of a Knapp-Hartung fit) and ``QMp``."""

    btt: list
    QM: float
    QMdf: object
    QMp: float

    def __str__(self):
        names = ", ".join(map(str, self.btt))
        if isinstance(self.QMdf, tuple):
            return (f"Test of moderators (coefficients {names}):\n"
                    f"F(df1 = {self.QMdf[0]}, df2 = {self.QMdf[1]:g}) = {self.QM:.4f}, "
                    f"p-val = {_p(self.QMp)}")
        return (f"Test of moderators (coefficients {names}):\n"
                f"QM(df = {self.QMdf}) = {self.QM:.4f}, p-val = {_p(self.QMp)}")


@dataclass
class ContrastTest:
    """Linear combinations X b of a fit's coefficients (metafor's ``anova(res, X=...)``):
    one row per combination in ``table`` (estimate, se, zval or tval, pval, ci_lb, ci_ub)
    and the joint Wald test ``QM`` (``QMdf``, ``QMp``) that they are all zero."""

    table: pd.DataFrame
    QM: float
    QMdf: object
    QMp: float

    def __str__(self):
        df = (f"F(df1 = {self.QMdf[0]}, df2 = {self.QMdf[1]:g})" if isinstance(self.QMdf, tuple)
              else f"QM(df = {self.QMdf})")
        return (f"Hypotheses:\n{self.table.to_string()}\n\nOmnibus test of hypotheses:\n"
                f"{df} = {self.QM:.4f}, p-val = {_p(self.QMp)}")


@dataclass
class LikelihoodRatioTest:
    """Likelihood-ratio test of two nested fits (metafor's ``anova(full, reduced)``):
    ``LRT`` = 2 (logLik full - logLik reduced) on ``df`` = the difference in parameters, with
    both fits' ``fit_stats`` and tau²."""

    LRT: float
    df: int
    pval: float
    fit_stats_full: dict
    fit_stats_reduced: dict
    tau2_full: float
    tau2_reduced: float

    def __str__(self):
        return (f"Likelihood-ratio test: LRT = {self.LRT:.4f} on {self.df} df, "
                f"p-val = {_p(self.pval)}\n"
                f"full:    logLik = {self.fit_stats_full['logLik']:.4f}, AIC = "
                f"{self.fit_stats_full['AIC']:.4f}, tau2 = {self.tau2_full:.4f}\n"
                f"reduced: logLik = {self.fit_stats_reduced['logLik']:.4f}, AIC = "
                f"{self.fit_stats_reduced['AIC']:.4f}, tau2 = {self.tau2_reduced:.4f}")


def _parameters(res) -> int:
    if hasattr(res, "sigma2_between"):  # a three-level model: two variance components
        return res.X.shape[1] + 2
    return res.X.shape[1] + (0 if res.method == "FE" else 1)


def _lrt(full: "RMAResult", reduced: "RMAResult") -> LikelihoodRatioTest:
    import warnings

    if full.method != reduced.method or full.method not in ("FE", "ML", "REML"):
        raise ValueError("a likelihood-ratio test compares two fits by the same likelihood: "
                         "both method='ML' (or both 'REML', or both 'FE'); these are "
                         f"{full.method} and {reduced.method}")
    if len(full.yi) != len(reduced.yi) or not np.allclose(full.yi, reduced.yi):
        raise ValueError("the two fits are not of the same effects: a likelihood-ratio test "
                         "needs the same data")
    if _parameters(full) < _parameters(reduced):
        full, reduced = reduced, full
    df = _parameters(full) - _parameters(reduced)
    if df == 0:
        raise ValueError("the two fits have as many parameters: they are not nested")
    if full.method == "REML" and full.X.shape[1] != reduced.X.shape[1]:
        warnings.warn("REML comparisons of models with different fixed effects are not "
                      "meaningful (the restricted likelihoods differ): refit both with "
                      "method='ML'", UserWarning, stacklevel=3)
    ff, fr = full.fit_stats(), reduced.fit_stats()
    lrt = max(0.0, 2 * (ff["logLik"] - fr["logLik"]))
    return LikelihoodRatioTest(lrt, df, float(dist.chi2_sf(lrt, df)), ff, fr,
                               float(full.tau2), float(reduced.tau2))


def _contrasts(res: "RMAResult", X) -> ContrastTest:
    L = np.atleast_2d(np.asarray(X, dtype=float))
    if L.shape[1] != len(res.beta):
        raise ValueError(f"X: each row needs {len(res.beta)} values, one per coefficient "
                         f"({', '.join(res.names)}); got {L.shape[1]}")
    est = L @ res.beta
    V = L @ res.vb @ L.T
    se = np.sqrt(np.diag(V))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    knha = res.test == "knha"
    if knha:
        p = 2 * dist.t_sf(np.abs(z), res.dfs)
    else:
        p = 2 * dist.norm_sf(np.abs(z))
    crit = res.crit
    table = pd.DataFrame({"estimate": est, "se": se, "tval" if knha else "zval": z, "pval": p,
                          "ci_lb": est - crit * se, "ci_ub": est + crit * se})
    m = L.shape[0]
    if int(np.linalg.matrix_rank(L)) < m:
        # as metafor: dependent combinations have no joint test
        return ContrastTest(table, math.nan, (m, res.dfs) if knha else m, math.nan)
    QM = float(est @ np.linalg.solve(V, est))
    if knha:
        return ContrastTest(table, QM / m, (m, res.dfs),
                            float(dist.f_sf(QM / m, m, res.dfs)) if res.dfs > 0 else math.nan)
    return ContrastTest(table, QM, m, float(dist.chi2_sf(QM, m)))


def anova(res: "RMAResult", btt=None, *, X=None):
    """Tests on a fit, as metafor's ``anova``:

    - ``anova(res, btt=...)``: Wald test that the coefficients ``btt`` (0-based positions or
      names) are all zero: QM = b' V^-1 b, chi-square with as many df; with Knapp-Hartung
      (test = "knha"), F = QM / m on (m, k - p) df (a :class:`WaldTest`);
    - ``anova(res, X=...)``: the linear combinations X b (one row of X per combination), each
      with its se, test and CI, and their joint test (a :class:`ContrastTest`);
    - ``anova(full, reduced)``: likelihood-ratio test of two nested fits of the same effects
      by ML (or REML with the same moderators) (a :class:`LikelihoodRatioTest`).
    """
    if isinstance(btt, RMAResult):
        return _lrt(res, btt)
    if hasattr(res, "vb_model"):  # a robust() result
        raise ValueError("a Wald test with a cluster-robust variance needs clubSandwich's "
                         "HTZ small-sample test, which is not offered: test each coefficient "
                         "with its robust t (res.coefficients()), or use the model before "
                         "robust()")
    if X is not None:
        if btt is not None:
            raise ValueError("give btt or X, not both")
        return _contrasts(res, X)
    if btt is None:
        btt = list(range(1, len(res.beta))) or [0]
    items = [btt] if isinstance(btt, (int, str, np.integer)) else list(btt)
    idx = []
    for b in items:
        if isinstance(b, str):
            if b not in res.names:
                raise ValueError(f"btt: no coefficient {b!r}; coefficients are "
                                 f"{', '.join(res.names)}")
            idx.append(res.names.index(b))
        else:
            if not 0 <= int(b) < len(res.beta):
                raise ValueError(f"btt: {b} is not a coefficient position (0 to "
                                 f"{len(res.beta) - 1})")
            idx.append(int(b))
    idx = sorted(set(idx))
    b = res.beta[idx]
    V = res.vb[np.ix_(idx, idx)]
    QM = float(b @ np.linalg.solve(V, b))
    m = len(idx)
    if res.test == "knha":
        F = QM / m
        p = float(dist.f_sf(F, m, res.dfs)) if res.dfs > 0 else math.nan
        return WaldTest([res.names[i] for i in idx], F, (m, res.dfs), p)
    return WaldTest([res.names[i] for i in idx], QM, m, float(dist.chi2_sf(QM, m)))
