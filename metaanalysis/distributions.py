"""The few probability functions the engine needs, as scipy.stats computes them, without
importing scipy.stats.

Importing ``scipy.stats`` takes about a second (it builds the docstrings of a hundred
distributions), paid by every note's kernel; the engine needs only the normal, t, chi-squared
and F tails and quantiles. Each function below calls the same ``scipy.special`` routine that
the scipy.stats method calls (``scipy/stats/_continuous_distns.py``: ``norm._sf`` is
``ndtr(-x)``, ``t._isf`` is ``-stdtrit(df, q)``, ``chi2._ppf`` is ``2 * gammaincinv(df / 2,
q)`` ...), with the method's handling of the ends of the support, so the results are the same
to the last bit (tests/test_distributions.py compares them over a grid and random values).
"""

from __future__ import annotations

import numpy as np
from scipy import special as _sc

_LOG_SQRT_2PI = np.log(2 * np.pi) / 2


def _out(x):
    """numpy's scalar for a 0-d result, as scipy.stats returns."""
    x = np.asarray(x, dtype=float)
    return x[()] if x.ndim == 0 else x


def norm_cdf(x):
    return _out(_sc.ndtr(np.asarray(x, dtype=float)))


def norm_sf(x):
    return _out(_sc.ndtr(-np.asarray(x, dtype=float)))


def _quantile(q, value, at_0, at_1, valid=True):
    """scipy.stats's ends of a quantile function: ``at_0`` and ``at_1`` for q = 0 and 1,
    NaN outside [0, 1] or for invalid parameters."""
    value = np.where(q == 0, at_0, np.where(q == 1, at_1, value))
    return _out(np.where(valid & (q >= 0) & (q <= 1), value, np.nan))


def norm_ppf(q):
    q = np.asarray(q, dtype=float)
    return _quantile(q, _sc.ndtri(q), -np.inf, np.inf)


def norm_isf(q):
    q = np.asarray(q, dtype=float)
    return _quantile(q, -_sc.ndtri(q), np.inf, -np.inf)


def norm_logpdf(x, loc=0.0, scale=1.0):
    x, loc, scale = (np.asarray(a, dtype=float) for a in (x, loc, scale))
    z = (x - loc) / scale
    return _out(np.where(scale > 0, -z**2 / 2.0 - _LOG_SQRT_2PI - np.log(scale), np.nan))


def t_sf(x, df):
    x, df = np.asarray(x, dtype=float), np.asarray(df, dtype=float)
    return _out(np.where(df > 0, _sc.stdtr(df, -x), np.nan))


def t_isf(q, df):
    q, df = np.asarray(q, dtype=float), np.asarray(df, dtype=float)
    return _quantile(q, -_sc.stdtrit(df, q), np.inf, -np.inf, df > 0)


def _numbers(*args) -> bool:
    """All of ``args`` are single numbers (Python's or numpy's floats and ints): the
    functions below then take the same branches in Python, without numpy's array wrappers
    (a few microseconds a call, most of the cost of a model's p-value or quantile)."""
    return all(isinstance(a, (float, int, np.floating, np.integer)) and not isinstance(a, bool)
               for a in args)


def chi2_sf(x, df):
    if _numbers(x, df):
        x, df = float(x), float(df)
        if not df > 0:
            return np.float64(np.nan)
        return np.float64(1.0) if x <= 0 else np.float64(_sc.chdtrc(df, x))
    x, df = np.asarray(x, dtype=float), np.asarray(df, dtype=float)
    return _out(np.where(df > 0, np.where(x <= 0, 1.0, _sc.chdtrc(df, x)), np.nan))


def chi2_cdf(x, df):
    x, df = np.asarray(x, dtype=float), np.asarray(df, dtype=float)
    return _out(np.where(df > 0, np.where(x <= 0, 0.0, _sc.chdtr(df, x)), np.nan))


def chi2_isf(q, df):
    q, df = np.asarray(q, dtype=float), np.asarray(df, dtype=float)
    return _quantile(q, _sc.chdtri(df, q), np.inf, 0.0, df > 0)


def chi2_ppf(q, df):
    if _numbers(q, df):
        q, df = float(q), float(df)
        if not (df > 0 and 0 <= q <= 1):
            return np.float64(np.nan)
        return np.float64(0.0 if q == 0 else np.inf if q == 1
                          else 2 * _sc.gammaincinv(df / 2, q))
    q, df = np.asarray(q, dtype=float), np.asarray(df, dtype=float)
    return _quantile(q, 2 * _sc.gammaincinv(df / 2, q), 0.0, np.inf, df > 0)


def f_sf(x, dfn, dfd):
    x, dfn, dfd = (np.asarray(a, dtype=float) for a in (x, dfn, dfd))
    return _out(np.where((dfn > 0) & (dfd > 0),
                         np.where(x <= 0, 1.0, _sc.fdtrc(dfn, dfd, x)), np.nan))
