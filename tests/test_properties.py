"""Invariants that must hold for any data (hypothesis)."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metaanalysis.effects import escalc
from metaanalysis.models import rma

counts = st.integers(min_value=1, max_value=200)


@st.composite
def two_by_two(draw):
    n1, n2 = draw(counts), draw(counts)
    return draw(st.integers(0, n1)), n1, draw(st.integers(0, n2)), n2


@given(two_by_two(), st.sampled_from(["OR", "RR", "RD"]))
def test_swapping_groups_negates_difference_and_inverts_ratio(table, measure):
    a, n1, c, n2 = table
    one = escalc(measure, ai=a, n1i=n1, ci=c, n2i=n2)
    two = escalc(measure, ai=c, n1i=n2, ci=a, n2i=n1)
    # on the analysis scale (log for ratios) a swap negates; the variance is unchanged
    assert math.isclose(one.yi[0], -two.yi[0], abs_tol=1e-9)
    assert math.isclose(one.vi[0], two.vi[0], rel_tol=1e-9)


@given(st.floats(-50, 50), st.floats(-50, 50), st.floats(0.5, 20), st.floats(0.5, 20),
       st.integers(2, 300), st.integers(2, 300), st.sampled_from(["SMD", "MD"]))
def test_swapping_groups_negates_mean_differences(m1, m2, s1, s2, n1, n2, measure):
    one = escalc(measure, m1i=m1, sd1i=s1, n1i=n1, m2i=m2, sd2i=s2, n2i=n2)
    two = escalc(measure, m1i=m2, sd1i=s2, n1i=n2, m2i=m1, sd2i=s1, n2i=n1)
    assert math.isclose(one.yi[0], -two.yi[0], abs_tol=1e-9)
    assert math.isclose(one.vi[0], two.vi[0], rel_tol=1e-9)


effects = st.lists(st.tuples(st.floats(-3, 3), st.floats(0.001, 2)), min_size=2, max_size=30)


@settings(max_examples=60)
@given(effects, st.sampled_from(["DL", "REML", "ML", "PM", "SJ", "HE", "HS", "EB"]),
       st.sampled_from(["z", "knha"]))
def test_ci_contains_estimate_and_tau2_nonnegative(data, method, test):
    y, v = np.array(data).T
    r = rma(y, v, method=method, test=test)
    assert r.tau2 >= 0
    assert r.ci_lb[0] <= r.estimate <= r.ci_ub[0]
    pi = r.predict()
    assert pi["pi_lb"] <= r.ci_lb[0] + 1e-12 and pi["pi_ub"] >= r.ci_ub[0] - 1e-12


@settings(max_examples=60)
@given(st.floats(-2, 2), st.lists(st.floats(0.01, 1), min_size=2, max_size=20),
       st.sampled_from(["DL", "REML", "PM"]))
def test_fixed_and_random_coincide_when_tau2_is_zero(mu, v, method):
    v = np.array(v)
    y = np.full_like(v, mu)  # identical effects: Q = 0, so every estimator gives tau2 = 0
    fe, re = rma(y, v, method="FE"), rma(y, v, method=method)
    assert re.tau2 == 0
    assert math.isclose(fe.estimate, re.estimate, abs_tol=1e-12)
    assert math.isclose(fe.se[0], re.se[0], rel_tol=1e-12)


@settings(max_examples=60)
@given(effects, st.sampled_from(["FE", "DL", "REML"]))
def test_adding_the_pooled_estimate_with_tiny_variance_keeps_it(data, method):
    y, v = np.array(data).T
    r = rma(y, v, method=method)
    r2 = rma(np.r_[y, r.estimate], np.r_[v, 1e-8], method=method)
    # the weights of the others change with tau^2, but the estimate stays well inside its CI;
    # with a common-effect model the new effect dominates and the estimate does not move
    tol = 1e-6 if method == "FE" else float(r.se[0])
    assert abs(r2.estimate - r.estimate) <= tol
