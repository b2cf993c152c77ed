"""metaanalysis.distributions gives scipy.stats's values to the last bit (it calls the same
scipy.special routines without importing scipy.stats, a second of every note's start)."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from metaanalysis import distributions as d

X = np.array([-np.inf, -40.0, -8.5, -1.959963984540054, -1.0, -1e-300, -0.0, 0.0, 1e-300, 1e-8,
              0.3, 1.0, 1.959963984540054, 3.84, 12.0, 40.0, 1e6, np.inf, np.nan])
Q = np.array([-0.1, 0.0, 1e-300, 1e-12, 0.001, 0.025, 0.05, 0.5, 0.95, 0.975, 1 - 1e-12, 1.0,
              1.1, np.nan])
DF = np.array([0.0, -1.0, 0.5, 1.0, 2.0, 3.7, 10.0, 194.0, 1e5])


def same(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True), (a, b)
    # -0.0 and 0.0 alike, but the bits of every other value equal
    return True


@pytest.mark.filterwarnings("ignore")
def test_each_function_is_scipy_stats_to_the_last_bit_over_a_grid():
    same(d.norm_cdf(X), stats.norm.cdf(X))
    same(d.norm_sf(X), stats.norm.sf(X))
    same(d.norm_ppf(Q), stats.norm.ppf(Q))
    same(d.norm_isf(Q), stats.norm.isf(Q))
    for loc, scale in ((0.0, 1.0), (0.3, 0.02), (-2.0, 7.5)):
        same(d.norm_logpdf(X, loc, scale), stats.norm.logpdf(X, loc, scale))
    for df in DF:
        same(d.t_sf(X, df), stats.t.sf(X, df))
        same(d.t_isf(Q, df), stats.t.isf(Q, df))
        same(d.chi2_sf(X, df), stats.chi2.sf(X, df))
        same(d.chi2_cdf(X, df), stats.chi2.cdf(X, df))
        same(d.chi2_isf(Q, df), stats.chi2.isf(Q, df))
        same(d.chi2_ppf(Q, df), stats.chi2.ppf(Q, df))
        for dfd in DF:
            same(d.f_sf(X, df, dfd), stats.f.sf(X, df, dfd))


@pytest.mark.filterwarnings("ignore")
def test_single_numbers_take_the_same_branches_as_arrays():
    """chi2_sf and chi2_ppf answer single numbers without numpy's array wrappers: the same
    value and type as scipy.stats over the grid's ends and inside (NaN, infinities, zero and
    negative degrees of freedom, q outside [0, 1]), whatever kind of number is given."""
    for df in DF:
        kinds = [float(df), np.float64(df)] + ([int(df), np.int64(df)] if df == int(df) else [])
        for df_ in kinds:
            for x in X:
                ours, theirs = d.chi2_sf(float(x), df_), stats.chi2.sf(float(x), float(df))
                assert type(ours) is type(theirs) and same(ours, theirs), (x, df_)
            for q in Q:
                ours, theirs = d.chi2_ppf(float(q), df_), stats.chi2.ppf(float(q), float(df))
                assert type(ours) is type(theirs) and same(ours, theirs), (q, df_)


def test_scalars_come_back_as_numpy_scalars_like_scipy_stats():
    for ours, theirs in ((d.norm_isf(0.025), stats.norm.isf(0.025)),
                         (d.t_sf(2.1, 9), stats.t.sf(2.1, 9)),
                         (d.chi2_sf(3.0, 1), stats.chi2.sf(3.0, 1))):
        assert type(ours) is type(theirs) and ours == theirs


@settings(max_examples=300, deadline=None)
@given(x=st.floats(-60, 60), q=st.floats(0, 1), df=st.floats(0.05, 1e4),
       dfd=st.floats(0.05, 1e4))
def test_random_values_agree_to_the_last_bit(x, q, df, dfd):
    same(d.norm_sf(x), stats.norm.sf(x))
    same(d.norm_isf(q), stats.norm.isf(q))
    same(d.t_sf(x, df), stats.t.sf(x, df))
    same(d.t_isf(q, df), stats.t.isf(q, df))
    same(d.chi2_sf(abs(x), df), stats.chi2.sf(abs(x), df))
    same(d.chi2_ppf(q, df), stats.chi2.ppf(q, df))
    same(d.f_sf(abs(x), df, dfd), stats.f.sf(abs(x), df, dfd))


def test_a_note_does_not_import_scipy_stats():
    """The modules a note's kernel imports leave scipy.stats alone (its import is a second)."""
    code = ("import sys, metaanalysis.notes, metaanalysis.effects, metaanalysis.plots, "
            "metaanalysis.figures, metaanalysis.rve, metaanalysis.bias, metaanalysis.models, "
            "metaanalysis.multilevel, metaanalysis.sandwich, metaanalysis.judgements, "
            "metaanalysis.diagnostics, metaanalysis.sensitivity, metaanalysis.binary; "
            "print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
