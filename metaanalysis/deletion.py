"""Every leave-one-out fit, and every cumulative fit, of an intercept-only model in O(k)
time and memory.

Refitting without effect i needs sums over the other effects of functions of the weights
``w_j = 1 / (v_j + tau2_i)`` at that fit's own tau2_i, which differs from fit to fit: done
directly, that is k sums of k terms (O(k^2); :func:`~metaanalysis.models.batch_fit`). Here
each sum is expanded around the full-data tau2 (``a_j = v_j + tau2``, ``d = tau2_i - tau2``):

    sum_j (a_j + d)^-m y_j^p = sum_n C(m + n - 1, n) (-d)^n sum_j a_j^-(m + n) y_j^p,

so the k-term power sums ``sum_j a_j^-q y_j^p`` are computed once, every fit's sums cost
O(terms), and effect i's own term is then removed exactly. The series converges when
``|d| < min_j a_j``; with :data:`TERMS` terms it is used only where ``|d| / min_j a_j`` is
at most :data:`RATIO` (truncation error below 1e-15 of the sum); any other fit (tau2 moving
far when one effect leaves, or a non-finite step) is refitted directly, row by row, by
:func:`~metaanalysis.models.batch_fit`. The estimators, Fisher scoring with Newton steps,
step halving at 0 are batch_fit's, so the roots are the same (polished by two more steps
once converged); tests compare every column with direct refits to 1e-10. Cumulative fits
(the first j effects, j = 1 ... k) use cumulative power sums the same way
(:func:`cumulative_fits`).
"""

from __future__ import annotations

import numpy as np

from .models import (DOMINANT, MAXITER, NEAR, SETTLED, SHRUNK, _working_unit, batch_fit,
                     batch_results, halve_at_zero)

EPS = np.finfo(float).eps

#: Convergence: rma()'s threshold (a step below 1e-10, relative), then POLISH more steps
#: (each fit costs O(terms) per step here): the roots come nearer than rma's own.
THRESHOLD = 1e-10
POLISH = 2

#: The fits refitted directly are refitted a few at a time: at most this many mask cells.
DIRECT_CELLS = 4_000_000

#: Cumulative power sums are kept (not recomputed at each step) up to this many numbers.
CACHED_CELLS = 5_000_000

#: Terms of the series and the largest |d| / min(a) at which they are trusted:
#: RATIO ** TERMS * TERMS**2 < 1e-15.
TERMS = 40
RATIO = 0.35

#: Cumulative fits are evaluated in groups taking this many terms (the fewest at which
#: every fit of the group is within 1e-17 by :func:`_terms`' bound), or TERMS.
TERM_GROUPS = (4, 8, 12, 16, 24, 32)


def leave_one_out_fits(y, v, *, method: str = "REML", test: str = "z", level: float = 95,
                       tau2: float | None = None) -> dict:
    """The intercept-only model of ``y`` (variances ``v``) fitted without each effect in turn,
    as :func:`~metaanalysis.models.batch_fit` with the mask ``~eye(k)`` returns it (a dict of
    arrays, one value per left-out effect), in O(k). ``tau2`` is the full-data estimate
    (computed if not given)."""
    y, v = np.asarray(y, float), np.asarray(v, float)
    unit = _working_unit(v)
    if unit != 1.0:
        return _in_unit(leave_one_out_fits, unit, y, v, method, test, level, tau2)
    k = len(y)
    method = method.upper()
    if k < 3 or method not in ("FE", "DL", "HE", "REML", "ML"):
        return batch_fit(np.broadcast_to(y, (k, k)), np.broadcast_to(v, (k, k)),
                         ~np.eye(k, dtype=bool), method=method, test=test, level=level,
                         start=tau2)
    if tau2 is None:
        tau2 = float(batch_fit(y[None], v[None], method=method)["tau2"][0])
    kk = float(k - 1)
    dfs = kk - 1
    # common-effect quantities with each effect removed (fixed weights): Q and tr(P)
    wf = 1 / v
    sw = wf.sum()
    centre = float(np.sum(wf * y) / sw)
    yc = y - centre  # centred: the sums below lose no digits to a large mean
    swy, swyy, sww = np.sum(wf * yc), np.sum(wf * yc * yc), np.sum(wf * wf)
    sw_i = sw - wf
    swy_i = swy - wf * yc
    Q = np.maximum(0.0, (swyy - wf * yc * yc) - swy_i**2 / sw_i)
    trP_fe = sw_i - (sww - wf * wf) / sw_i
    if method == "FE":
        t = np.zeros(k)
    elif method == "DL":
        t = np.maximum(0.0, (Q - dfs) / trP_fe)
    elif method == "HE":
        sy, syy, sv = np.sum(yc), np.sum(yc * yc), np.sum(v)
        ybar = (sy - yc) / kk
        rss = (syy - yc * yc) - kk * ybar**2
        t = np.maximum(0.0, (rss - (sv - v) * (1 - 1 / kk)) / dfs)
    else:
        t = np.full(k, float(tau2))
    exact = np.zeros(k, bool)
    exact[_dominant(wf)] = True  # removing its term from sums it dominates loses every digit
    if method in ("REML", "ML") and _dominant(1 / (v + tau2)):
        exact[:] = True  # and Fisher's steps on sums it dominates stop short: refitted
    with np.errstate(all="ignore"):  # (non-finite sums and steps: refitted directly)
        series = _Series(yc, v, float(tau2))
        if method in ("REML", "ML"):
            t, exact = _fisher(series, t, method, skip=exact)
        exact |= ~series.trusted(t)
        sums = series.sums(t)
    exact |= ~np.isfinite(sums).all(axis=(0, 1))
    s1, s2w, est = _estimates(sums, centre, dfs)
    out = batch_results(est, 1 / s1, s2w, t, Q, trP_fe, np.full(k, kk), method, test, level)
    # for the case diagnostics: each fit's sum of weights and Knapp-Hartung factor
    out.update(sw=s1, s2w=s2w)
    # the fits the series does not reach: refitted directly, a few at a time (each row of
    # the mask is k wide, so never more than a few million cells at once)
    rows = np.flatnonzero(exact)
    step = max(1, DIRECT_CELLS // k)
    for chunk in (rows[a:a + step] for a in range(0, len(rows), step)):
        mask = np.ones((len(chunk), k), bool)
        mask[np.arange(len(chunk)), chunk] = False
        direct = batch_fit(np.broadcast_to(y, mask.shape), np.broadcast_to(v, mask.shape),
                           mask, method=method, test=test, level=level, start=tau2)
        direct["sw"], direct["s2w"] = np.empty(len(chunk)), np.empty(len(chunk))
        for n, keep in enumerate(mask):
            w = 1 / (v[keep] + direct["tau2"][n])
            b = np.sum(w * y[keep]) / w.sum()
            direct["sw"][n] = w.sum()
            direct["s2w"][n] = np.sum(w * (y[keep] - b)**2) / dfs
        for key in out:
            out[key] = np.asarray(out[key], float).copy()
            out[key][chunk] = direct[key]
    return out


#: How each column of the fits scales with the effects' unit u (the others do not change).
UNIT_POWERS = {"estimate": 1, "se": 1, "ci_lb": 1, "ci_ub": 1, "tau2": 2, "sw": -2}


def _in_unit(fits, unit, y, v, method, test, level, tau2):
    """``fits`` (leave-one-out or cumulative) computed on the effects in their working unit
    (:func:`~metaanalysis.models._working_unit`, a power of two: dividing changes no digit)
    and given back in theirs. The series' power sums reach (v + tau2)^-43: effects with
    sampling variances of 1e-10 would overflow them, and every convergence rule is absolute;
    in the working unit neither happens."""
    out = fits(y / unit, v / (unit * unit), method=method, test=test, level=level,
               tau2=None if tau2 is None else tau2 / (unit * unit))
    for key, power in UNIT_POWERS.items():
        if key in out:
            out[key] = out[key] * unit**power
    return out


def _dominant(wf):
    """The effect with the largest weight ``wf`` if its weight^3 is more than DOMINANT of the
    sum of weights^3 (one study 1e4+ times more precise than a few others), as a list; else
    an empty list. Removing its term from sums it dominates loses every digit (the
    leave-one-out tau2 without it was 0.8 off); every other weight is at most half of any
    sum it is part of."""
    i = int(np.argmax(wf))
    cubes = wf ** 3
    return [i] if cubes[i] > DOMINANT * float(cubes.sum()) else []


def _estimates(sums, centre, dfs):
    """Each fit's sum of weights, Knapp-Hartung factor and estimate from its sums."""
    s1 = sums[1, 0]
    est_c = sums[1, 1] / s1
    with np.errstate(divide="ignore", invalid="ignore"):  # one effect: no factor
        s2w = (sums[1, 2] - 2 * est_c * sums[1, 1] + est_c**2 * s1) / dfs
    return s1, s2w, est_c + centre


class _Series:
    """The sums ``S[m, p] = sum_{j != i} (v_j + tau2_i)^-m y_j^p`` (m = 1, 2, 3; p = 0, 1, 2)
    for every i at once, by the expansion around ``tau2`` of the module docstring."""

    def __init__(self, y, v, tau2):
        self.y, self.v, self.tau2 = y, v, tau2
        a = v + tau2
        self.a_min = float(a.min())
        inv = 1 / a
        # power sums P[q, p] = sum_j a_j^-q y_j^p, q = 1 ... 3 + TERMS
        powers = np.empty((3 + TERMS, len(a)))
        powers[0] = inv
        for q in range(1, 3 + TERMS):
            powers[q] = powers[q - 1] * inv
        self.P = np.stack([powers.sum(axis=1), powers @ y, powers @ (y * y)], axis=1)
        # C(m + n - 1, n) for m = 1, 2, 3 and n = 0 ... TERMS - 1
        n = np.arange(TERMS)
        self.coef = np.stack([np.ones(TERMS), n + 1.0, (n + 1.0) * (n + 2) / 2])

    def trusted(self, t, idx=None):
        return np.abs(t - self.tau2) <= RATIO * self.a_min

    def sums(self, t, idx=None):
        """S[m, p] as an array (4, 3, len(t)), m = 1, 2, 3, for the fits without the effects
        ``idx`` (default all, in order) at their ``t``."""
        y, v = (self.y, self.v) if idx is None else (self.y[idx], self.v[idx])
        d = -(np.asarray(t, float) - self.tau2)
        terms = _terms(np.abs(d) / self.a_min)
        D = np.empty((terms, len(d)))
        D[0] = 1.0
        for n in range(1, terms):
            D[n] = D[n - 1] * d
        S = np.zeros((4, 3, len(d)))
        own_w = 1 / (v + t)
        for m in (1, 2, 3):
            block = self.P[m - 1:m - 1 + terms] * self.coef[m - 1][:terms, None]  # (terms, 3)
            S[m] = block.T @ D
            own = own_w**m
            S[m, 0] -= own
            S[m, 1] -= own * y
            S[m, 2] -= own * y * y
        return S


def _terms(ratio) -> int:
    """Terms of the series for the largest |d| / min(a) among the fits evaluated: the term n
    is at most C(n + 2, 2) ratio^n of the sum (m <= 3), so stop where that is below 1e-17."""
    r = float(np.max(ratio, initial=0.0))
    if not r < 1:
        return TERMS
    n = 1
    while n < TERMS and (n + 2) * (n + 1) / 2 * r**n > 1e-17:
        n += 1
    return n


#: The largest ratio |d| / min(a) each of TERM_GROUPS is enough for (the bound of _terms).
_GROUP_RATIO = np.array([(1e-17 / ((n + 2) * (n + 1) / 2)) ** (1 / n) for n in TERM_GROUPS])


def _fisher(series, t, method, skip=None, last=None):
    """batch_fit's Fisher scoring (with its Newton steps and step halving) on every fit at
    once, through the series (leave-one-out or prefixes); returns tau2 and the fits to refit
    directly (out of the series' reach, or not converged); ``skip``: fits refitted directly
    anyway; ``last``: a pair of arrays (k values, (2, 3, k)) given to be filled with each
    fit's last evaluation, its tau2 and its sums S[1] and S[2] (NaN: none)."""
    t = t.copy()
    exact = np.zeros(len(t), bool) if skip is None else skip.copy()
    active = np.ones(len(t), bool)
    left = np.full(len(t), POLISH + 1)  # steps still to take once below the threshold
    previous = np.full(len(t), np.nan)  # each fit's last step, if it was Newton's
    for _ in range(MAXITER):
        idx = np.flatnonzero(active & ~exact)
        if not len(idx):
            break
        ti = t[idx]
        far = ~series.trusted(ti, idx)
        if far.any():
            exact[idx[far]] = True
            idx, ti = idx[~far], ti[~far]
            if not len(idx):
                break
        S = series.sums(ti, idx)
        if last is not None:
            last[0][idx], last[1][:, :, idx] = ti, S[1:3]
        s1, s2, s3 = S[1, 0], S[2, 0], S[3, 0]
        b = S[1, 1] / s1
        yPPy = S[2, 2] - 2 * b * S[2, 1] + b * b * s2  # sum w^2 (y - b)^2
        if method == "ML":
            adj = (yPPy - s1) / s2
        else:
            trP = s1 - s2 / s1
            trPP = s2 - 2 * s3 / s1 + (s2 / s1) ** 2
            adj = (yPPy - trP) / trPP
            sw2r = S[2, 1] - b * s2  # sum w^2 (y - b)
            yPPPy = S[3, 2] - 2 * b * S[3, 1] + b * b * s3 - sw2r * sw2r / s1  # (_batch_fisher)
            newton = (yPPy - trP) / (2 * yPPPy - trPP)
            use = (np.sign(newton) == np.sign(adj)) & (np.abs(newton) <= 2 * np.abs(adj))
            use &= np.isfinite(newton)
            adj = np.where(use, newton, adj)
        bad = ~np.isfinite(adj)
        adj = np.where(bad, 0.0, adj)
        exact[idx[bad]] = True
        adj = halve_at_zero(ti, adj)
        new = ti + adj
        t[idx] = new
        small = np.abs(adj) <= THRESHOLD * np.maximum(1.0, new)
        left[idx] = np.where(small, left[idx] - 1, POLISH + 1)
        # a step that leaves t as it was would be taken again at the same t, the same step:
        # the fit is settled, to the bit, without the polishing steps left. So is a fit whose
        # next Newton step is sure to be below t's rounding (models._settled's prediction,
        # step^3 / previous^2, trusted only for two Newton steps in a row, the second a
        # hundredth of the first or less): evaluating it would not move t
        with np.errstate(invalid="ignore"):
            settled = small & (np.abs(adj) <= SHRUNK * np.abs(previous[idx])) & (
                np.abs(adj) ** 3 <= SETTLED * 4 * EPS * np.abs(new) * previous[idx] ** 2)
        if method != "ML":
            previous[idx] = np.where(use & ~bad, adj, np.nan)
        active[idx] = (left[idx] > 0) & (new != ti) & ~settled
    exact |= active
    return t, exact


def cumulative_fits(y, v, *, method: str = "REML", test: str = "z", level: float = 95,
                    tau2: float | None = None) -> dict:
    """The intercept-only model fitted to the first 1, 2, ..., k effects of ``y`` (in their
    order), as :func:`~metaanalysis.models.batch_fit` with the mask ``tri(k)`` returns it,
    in O(k) memory and O(k x terms) time: the same expansion around ``tau2`` (the full-data
    estimate) with cumulative power sums; prefixes out of the series' reach (usually the
    first few, whose tau2 is far from the final one) are refitted directly."""
    y, v = np.asarray(y, float), np.asarray(v, float)
    unit = _working_unit(v)
    if unit != 1.0:
        return _in_unit(cumulative_fits, unit, y, v, method, test, level, tau2)
    k = len(y)
    method = method.upper()
    if k < 3 or method not in ("FE", "DL", "HE", "REML", "ML"):
        return batch_fit(np.broadcast_to(y, (k, k)), np.broadcast_to(v, (k, k)),
                         np.tri(k, dtype=bool), method=method, test=test, level=level)
    if tau2 is None:
        tau2 = float(batch_fit(y[None], v[None], method=method)["tau2"][0])
    kk = np.arange(1, k + 1, dtype=float)
    dfs = kk - 1
    wf = 1 / v
    centre = float(np.sum(wf * y) / wf.sum())
    yc = y - centre
    sw, swy = np.cumsum(wf), np.cumsum(wf * yc)
    swyy, sww = np.cumsum(wf * yc * yc), np.cumsum(wf * wf)
    with np.errstate(divide="ignore", invalid="ignore"):
        Q = np.maximum(0.0, swyy - swy**2 / sw)
        trP_fe = sw - sww / sw
        if method == "FE":
            t = np.zeros(k)
        elif method == "DL":
            t = np.maximum(0.0, (Q - dfs) / trP_fe)
        elif method == "HE":
            ybar = np.cumsum(yc) / kk
            rss = np.cumsum(yc * yc) - kk * ybar**2
            t = np.maximum(0.0, (rss - np.cumsum(v) * (1 - 1 / kk)) / dfs)
        else:
            t = np.full(k, float(tau2))
    t = np.where(dfs > 0, t, 0.0)
    exact = np.zeros(k, bool)
    exact[:2] = True  # one or two effects: nothing to expand, refitted directly
    if method in ("REML", "ML"):  # prefixes one effect dominates (see _dominant): refitted
        cubes = (1 / (v + tau2)) ** 3
        exact |= np.maximum.accumulate(cubes) > DOMINANT * np.cumsum(cubes)
    with np.errstate(all="ignore"):  # (non-finite sums and steps: refitted directly)
        series = _PrefixSeries(yc, v, float(tau2))
        last = (np.full(k, np.nan), np.full((2, 3, k), np.nan))
        if method in ("REML", "ML"):
            t, not_reached = _fisher(series, t, method, skip=exact, last=last)
            exact |= not_reached
        exact |= ~series.trusted(t)
        sums = _final_sums(series, t, *last)
    exact |= ~np.isfinite(sums).all(axis=(0, 1))
    s1, s2w, est = _estimates(sums, centre, dfs)
    out = batch_results(est, 1 / s1, s2w, t, Q, trP_fe, kk, method, test, level)
    rows = np.flatnonzero(exact)
    # refitted directly, a few prefixes at a time (each needs only its own first j columns)
    for chunk in _chunks(rows, k):
        width = int(chunk.max()) + 1
        mask = np.arange(width)[None, :] <= chunk[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):  # one effect: NaN where undefined
            direct = batch_fit(np.broadcast_to(y[:width], mask.shape),
                               np.broadcast_to(v[:width], mask.shape), mask, method=method,
                               test=test, level=level)
        for key in out:
            out[key] = np.asarray(out[key], float).copy()
            out[key][chunk] = direct[key]
    return out


def _final_sums(series, t, t_eval, S_eval):
    """The sums S[1] of every prefix at its tau2 ``t`` (all _estimates needs), from its last
    Fisher evaluation (at ``t_eval``, sums ``S_eval`` = S[1], S[2]) to first order where the
    last step is within models.NEAR of the prefix's smallest v + t: S1(t) = S1(t0) - d S2(t0);
    the others evaluated at t. Shape (4, 3, k) as the series' sums, S[2] and S[3] zeros."""
    k = len(t)
    d = t - t_eval
    with np.errstate(invalid="ignore"):
        near = np.abs(d) <= NEAR * (series.a_min - series.tau2 + t_eval)
    sums = np.zeros((4, 3, k))
    sums[1][:, near] = S_eval[0][:, near] - d[near] * S_eval[1][:, near]
    far = np.flatnonzero(~near)
    if len(far):
        sums[:, :, far] = series.sums(t[far], far)
    return sums


def _chunks(rows, k, cells: int | None = None):
    """``rows`` (prefix indices, increasing) in groups of at most ``cells`` array cells."""
    cells = cells or DIRECT_CELLS
    start = 0
    while start < len(rows):
        end = start + 1
        while end < len(rows) and (end - start + 1) * (rows[end] + 1) <= cells:
            end += 1
        yield rows[start:end]
        start = end


class _PrefixSeries:
    """``S[m, p] = sum_{l <= j} (v_l + tau2_j)^-m y_l^p`` for every prefix j at once: the
    expansion of the module docstring with cumulative power sums (O(k) memory). Each fit
    takes only the terms its own ratio needs (fits are evaluated in groups of
    :data:`TERM_GROUPS` terms): most prefixes' tau2 is near the final one and needs a few
    terms, the first few are far and need many (and only the first columns of the sums)."""

    def __init__(self, y, v, tau2):
        self.y, self.v, self.tau2 = y, v, tau2
        self.inv = 1 / (v + tau2)
        self.a_min = np.minimum.accumulate(v + tau2)  # of each prefix
        n = np.arange(TERMS)
        self.coef = np.stack([np.ones(TERMS), n + 1.0, (n + 1.0) * (n + 2) / 2])
        self.cum = None
        if (3 + TERMS) * 3 * len(y) <= CACHED_CELLS:  # kept for every evaluation
            self.cum = self._cumulative_powers(2 + TERMS, len(y))

    def _cumulative_powers(self, q, width):
        """(q, 3, width): the cumulative sums of inv^q, inv^q y, inv^q y^2 (q = 1 ... q) over
        the first ``width`` effects."""
        inv, y = self.inv[:width], self.y[:width]
        powers = np.empty((q, 3, width))
        powers[0, 0] = inv
        for n in range(1, q):
            np.multiply(powers[n - 1, 0], inv, out=powers[n, 0])
        np.multiply(powers[:, 0], y, out=powers[:, 1])
        np.multiply(powers[:, 1], y, out=powers[:, 2])
        return np.cumsum(powers, axis=2, out=powers)

    def trusted(self, t, idx=None):
        a_min = self.a_min if idx is None else self.a_min[idx]
        return np.abs(np.asarray(t) - self.tau2) <= RATIO * a_min

    def sums(self, t, idx=None):
        """S as an array (4, 3, len(t)) for the prefixes ``idx`` (default all) at their t."""
        x = -(np.asarray(t, float) - self.tau2)
        idx = np.arange(len(self.y)) if idx is None else np.asarray(idx)
        S = np.zeros((4, 3, len(idx)))
        group = np.searchsorted(_GROUP_RATIO, np.abs(x) / self.a_min[idx])
        if self.cum is not None:  # at the series' own tau2 (x = 0: the first Fisher step's
            at = np.flatnonzero(x == 0)  # start), the sums are the cumulative ones, exactly
            S[1:, :, at] = self.cum[:3, :, idx[at]]
            group[at] = -1
        for g in np.unique(group[group >= 0]):
            terms = TERM_GROUPS[g] if g < len(TERM_GROUPS) else TERMS
            members = np.flatnonzero(group == g)
            sel, xs = idx[members], x[members]
            if self.cum is not None:
                block = self.cum[:2 + terms, :, sel]
            else:  # only the prefixes' own columns, up to the longest of them
                width = int(sel.max()) + 1
                block = self._cumulative_powers(2 + terms, width)[:, :, sel]
            xn = np.empty((terms, len(sel)))  # x^n, n = 0 ... terms - 1, by doubling:
            xn[0] = 1.0  # x^(n + h) = x^n x^h for the h powers known (log2(terms) calls)
            h, xh = 1, xs
            while h < terms:
                np.multiply(xn[:min(h, terms - h)], xh, out=xn[h:min(2 * h, terms)])
                h, xh = 2 * h, xh * xh
            # each fit's S[1:4] is a product of two small matrices: its weights (3, 2 + terms),
            # row m - 1 holding C(m + n - 1, n) x^n at column m - 1 + n, and its cumulative
            # sums (2 + terms, 3); numpy's matmul takes a group's at once (2.3 times faster
            # than an einsum per m: 336 against 762 us for 2,000 fits of 24 terms)
            weights = np.zeros((3, 2 + terms, len(sel)))
            for m in (1, 2, 3):
                np.multiply(self.coef[m - 1][:terms, None], xn,
                            out=weights[m - 1, m - 1:m - 1 + terms])
            S[1:, :, members] = np.matmul(weights.transpose(2, 0, 1),
                                          block.transpose(2, 0, 1)).transpose(1, 2, 0)
        return S
