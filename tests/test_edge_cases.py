"""Defined behaviour at the edges: k = 1, k = 2, zero tau^2, missing values, non-convergence."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from metaanalysis import models
from metaanalysis.models import ConvergenceWarning, MissingDataWarning, rma


def test_one_effect():
    r = rma([0.4], [0.04])
    assert r.k == 1 and r.tau2 == 0 and r.Q == 0 and r.I2 == 0
    assert r.estimate == pytest.approx(0.4) and r.se[0] == pytest.approx(0.2)
    assert math.isnan(r.tau2_ci[0])
    assert "k = 1" in str(r)


def test_two_effects_with_knapp_hartung():
    r = rma([0.1, 0.5], [0.02, 0.03], test="knha")
    assert r.dfs == 1 and np.isfinite(r.pval[0])
    assert r.ci_ub[0] - r.ci_lb[0] > 0


@pytest.mark.parametrize("method", models.METHODS)
def test_zero_heterogeneity(method):
    r = rma([0.3, 0.3, 0.3, 0.3], [0.01, 0.02, 0.03, 0.04], method=method)
    assert r.tau2 == 0 and r.I2 == 0
    assert r.estimate == pytest.approx(0.3)


def test_missing_values_are_dropped_with_a_warning_naming_them():
    d = pd.DataFrame({"key": ["a", "b", "c", "d"], "yi": [0.1, np.nan, 0.3, 0.2],
                      "vi": [0.01, 0.02, np.nan, 0.02]})
    with pytest.warns(MissingDataWarning, match="dropped: b, c"):
        r = rma(data=d)
    assert r.k == 2 and r.slab == ["a", "d"]


Y = np.array([0.1, 0.9, -0.4, 0.6, 0.2, 1.4])
V = np.array([0.01, 0.02, 0.05, 0.03, 0.02, 0.04])


def test_fisher_scoring_failure_falls_back_to_the_likelihood(monkeypatch):
    expected = rma(Y, V, method="REML").tau2
    monkeypatch.setattr(models, "MAXITER", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = rma(Y, V, method="REML")
    assert r.tau2 == pytest.approx(expected, abs=1e-7)


def test_non_convergence_warns_and_gives_nan(monkeypatch):
    monkeypatch.setattr(models, "MAXITER", 1)
    monkeypatch.setattr(models, "_tau2_direct", lambda *a: math.nan)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        r = rma(Y, V, method="REML")
    assert math.isnan(r.tau2) and math.isnan(r.estimate)


def test_collinear_moderators_are_refused():
    d = pd.DataFrame({"yi": [0.1, 0.2, 0.3, 0.4], "vi": [0.01] * 4, "a": [1, 2, 3, 4],
                      "b": [2, 4, 6, 8]})
    with pytest.raises(ValueError, match="collinear"):
        rma(data=d, mods=["a", "b"])


def test_mixed_measures_are_refused():
    d = pd.DataFrame({"yi": [0.1, 0.2], "vi": [0.01, 0.02], "measure": ["RR", "OR"]})
    with pytest.raises(ValueError, match="mix measures"):
        rma(data=d)


def test_weights_reproduce_the_pooled_estimate():
    """The percent weights shown in forest plots are the effects' shares in the estimate."""
    from metaanalysis.multilevel import rma_mv
    from metaanalysis.rve import che

    rng = np.random.default_rng(5)
    cl = np.repeat(np.arange(12), 3)
    v = rng.uniform(0.01, 0.1, 36)
    y = rng.normal(0.2, 0.3, 36)
    for fit in (rma(y, v), rma_mv(y, v, cluster=cl), che(y, v, cluster=cl)):
        assert fit.weights.sum() == pytest.approx(100)
        assert float(np.sum(fit.weights / 100 * fit.yi)) == pytest.approx(fit.estimate, abs=1e-12)


def test_number_labels_read_as_the_strings_they_stand_for():
    """Effects given without names are labelled 1 ... k, built only when read; iterated at
    once (pandas builds an influence() table's index from them), sliced, or one by one."""
    from metaanalysis.models import NumberLabels

    labels = NumberLabels(5)
    assert list(labels) == ["1", "2", "3", "4", "5"] == [labels[i] for i in range(5)]
    assert labels[-1] == "5" and labels[1:3] == ["2", "3"] and len(labels) == 5
    assert list(pd.Index(labels)) == list(labels) and labels == ["1", "2", "3", "4", "5"]
    with pytest.raises(IndexError):
        labels[5]
    r = rma(np.array([0.1, 0.3, 0.2, 0.5]), np.array([0.01, 0.02, 0.015, 0.03]))
    from metaanalysis.sensitivity import influence

    assert list(influence(r).index) == ["1", "2", "3", "4"]


@pytest.mark.parametrize("start", [None, 1e-9, 0.02, 0.5, 40.0])
@pytest.mark.parametrize("spread", [0.05, 0.6, 8.0])
def test_the_q_profile_roots_are_brents_from_any_start(start, spread):
    """The intercept-only Q-profile bounds, found by Newton's steps from the model's tau^2
    (or without it), whatever that start: far below the roots (the steps then reach up,
    without a bracket fixed beforehand), between them, above both; the same roots as a
    bracketing solver's on Q(tau^2) = target, to 1e-12."""
    from scipy import optimize

    rng = np.random.default_rng(4)
    k = 30
    v = rng.uniform(0.01, 0.2, k)
    y = rng.normal(0.2, spread, k)
    df = k - 1
    targets = models.dist.chi2_ppf([0.975, 0.025], df)
    roots = models._q_roots_intercept(y, v, tuple(targets), start)

    def q(t):
        w = 1 / (v + t)
        return float(np.sum(w * (y - np.sum(w * y) / w.sum()) ** 2))

    for root, target in zip(roots, targets):
        if q(0.0) <= target:
            assert root == 0.0
            continue
        expected = optimize.brentq(lambda t: q(t) - target, 0.0, 1e6, xtol=1e-15,
                                   rtol=4 * np.finfo(float).eps)
        assert root == pytest.approx(expected, rel=1e-12, abs=1e-15), (start, spread, target)


@pytest.mark.parametrize("method", ["REML", "ML", "PM", "DL", "EB"])
@pytest.mark.parametrize("data, moderator", [("bcg", False), ("bcg", True), ("two", False)])
def test_tau2_and_its_interval_follow_the_effects_unit(method, data, moderator):
    """Effects in another unit (euros instead of thousands of euros: y times s, variances
    times s^2) give tau^2 and its Q-profile interval times s^2, whatever s: the searches
    for the interval's bounds (and PM's estimate) once gave up at tau^2 = 1e12, and the
    upper bound of effects in euros was NaN, without a word ("two": tau^2 = 0, its upper
    bound 246 in the data's unit). Smaller units too (rates per person-year, say): the
    iterative estimators stop at an absolute step (1e-10, as metafor's) and the interval's
    searches at 1e-15, which at sampling variances of 1e-10 left tau^2 and its bounds 1e-3
    off; every estimator now works in the effects' working unit (models._working_unit)."""
    import json
    from pathlib import Path

    d = json.loads((Path(__file__).parent / "reference" / "rma.json").read_text())[
        "datasets"][data]
    y, v = np.array(d["yi"]), np.array(d["vi"])
    mods = np.column_stack([np.arange(len(y), dtype=float)]) if moderator else None
    base = rma(y, v, method=method, mods=mods)
    assert np.all(np.isfinite(base.tau2_ci)) and base.tau2_ci[1] > 0
    for s in (1e3, 1e6, 1e8, 1e-3, 1e-5, 1e-7):
        scaled = rma(y * s, v * s * s, method=method, mods=mods)
        assert scaled.tau2 == pytest.approx(base.tau2 * s * s, rel=1e-9)
        assert scaled.tau2_ci == pytest.approx(tuple(b * s * s for b in base.tau2_ci),
                                               rel=1e-9)
        assert scaled.beta == pytest.approx(base.beta * s, rel=1e-9)
        assert scaled.se == pytest.approx(base.se * s, rel=1e-9)


def test_three_level_che_profile_and_selection_fits_follow_the_effects_unit():
    """The optimisers' starts and convergence rules are absolute, made for effects of the
    order of 1: effects in euros (sampling variances of the order of 1e10) once stopped a
    three-level or CHE fit at its start, with no warning (variance components 0 or 0.2, a
    wrong se). Each works in a power-of-two unit near the effects' (models._working_unit)
    and gives its results back in theirs."""
    from metaanalysis.diagnostics import confint
    from metaanalysis.multilevel import rma_mv
    from metaanalysis.rve import che
    from metaanalysis.selection import selmodel

    rng = np.random.default_rng(5)
    cl = np.repeat(np.arange(15), 3)
    y = 0.2 + rng.normal(0, 0.3, 15)[cl] + rng.normal(0, 0.2, 45)
    v = rng.uniform(0.01, 0.05, 45)

    def results(s):
        ml, rv = rma_mv(y * s, v * s * s, cluster=cl), che(y * s, v * s * s, cluster=cl)
        sel = selmodel(rma(y * s, v * s * s), steps=[0.025])
        return np.r_[ml.sigma2_between / s**2, ml.sigma2_within / s**2, ml.beta / s,
                     ml.se / s, rv.sigma2_between / s**2, rv.sigma2_within / s**2,
                     rv.beta / s, rv.se / s,
                     confint(ml).random[["ci_lb", "ci_ub"]].to_numpy()[[0, 2]].ravel() / s**2,
                     sel.beta / s, sel.se / s, sel.tau2 / s**2, sel.delta[1:]]

    base = results(1.0)
    assert np.all(np.isfinite(base)) and base[0] > 0.01 and base[1] > 0.001
    for s in (1e4, 1e6, 1e-4):
        assert results(s) == pytest.approx(base, rel=1e-5)



def _exact_score(y, v, x, method):
    """The (restricted) log-likelihood's derivative in tau^2 (times 2) in exact rational
    arithmetic (fractions): y'PPy - tr(P) for REML, y'PPy - sum w for ML, with X = [1, x]
    (x None: intercept only). The reference for fits whose floating-point traces cancel."""
    from fractions import Fraction as F

    def score(t):
        w = [1 / (F(vi) + F(t)) for vi in v]
        cols = [[F(1)] * len(y)] + ([[F(xi) for xi in x]] if x is not None else [])
        p = len(cols)
        A = [[sum(wi * a * b for wi, a, b in zip(w, ci, cj)) for cj in cols] for ci in cols]
        c = [sum(wi * a * F(yi) for wi, a, yi in zip(w, ci, y)) for ci in cols]
        if p == 1:
            inv = [[1 / A[0][0]]]
        else:
            det = A[0][0] * A[1][1] - A[0][1] * A[1][0]
            inv = [[A[1][1] / det, -A[0][1] / det], [-A[1][0] / det, A[0][0] / det]]
        b = [sum(inv[i][j] * c[j] for j in range(p)) for i in range(p)]
        fit = [sum(b[j] * cols[j][n] for j in range(p)) for n in range(len(y))]
        yppy = sum((wi * (F(yi) - f)) ** 2 for wi, yi, f in zip(w, y, fit))
        if method == "ML":
            return yppy - sum(w)
        B = [[sum(wi * wi * a * bb for wi, a, bb in zip(w, ci, cj)) for cj in cols]
             for ci in cols]
        return yppy - (sum(w) - sum(inv[i][j] * B[j][i] for i in range(p) for j in range(p)))

    return score


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("moderator", [False, True])
def test_one_study_far_more_precise_than_the_others(method, moderator):
    """One study whose sampling variance is 1e5 ... 1e9 times the others' (a registry of
    millions beside small trials, or a variance typed in the wrong unit), few studies,
    tau^2 near 0: the Fisher information sum w^2 - 2 sum w^3 / sum w + (sum w^2 / sum w)^2
    then cancels to nothing (rma raised ZeroDivisionError, or stopped at a wrong tau^2).
    tau^2 is a maximum of the (restricted) likelihood to 1e-8: its score, in exact rational
    arithmetic, changes sign from + to - there (or is not positive at tau^2 = 0, where the
    steps stop within 1e-10)."""
    import warnings as w

    rng = np.random.default_rng(11)
    checked = 0
    for trial in range(12):
        k = int(rng.integers(4, 10))
        v = rng.uniform(0.01, 0.2, k)
        y = 0.3 + rng.normal(0, np.sqrt(v)) * rng.uniform(0.3, 2.0)
        x = np.arange(k, dtype=float) if moderator else None
        for tiny in (1e-6, 1e-8, 1e-10):
            vt = v.copy()
            vt[trial % k] = tiny
            with w.catch_warnings():
                w.simplefilter("error")  # no warning either: these are ordinary data
                t = rma(y, vt, method=method, mods=None if x is None else x[:, None]).tau2
            score = _exact_score(y, vt, x, method)
            if t <= models.THRESHOLD:  # (the steps towards 0 stop below 1e-10, metafor's
                assert score(0.0) <= 0, (trial, tiny)  # rule, which is 1e-5 there)
            else:
                assert score(t * (1 - 1e-8)) > 0 > score(t * (1 + 1e-8)), (trial, tiny, t)
                checked += 1
    assert checked >= 10  # most sets have tau^2 > 0: the test is not only about 0


@pytest.mark.parametrize("method", ["REML", "ML", "PM", "DL"])
@pytest.mark.parametrize("block", [1, 7, 16])
@pytest.mark.parametrize("dominant", [False, True])
def test_sums_taken_a_block_at_a_time_are_the_whole_arrays_sums(monkeypatch, method, block,
                                                                  dominant):
    """Above models.BLOCK effects the intercept-only searches (Fisher steps, Q-profile) take
    their sums a block at a time, the last block shorter: the same estimate, interval and
    se as from whole arrays, to 1e-12 (the order of the additions differs); also with one
    study far more precise than the others, the Fisher steps then taken with the traces
    that need the whole weights (at every step here: models.CANCELLED raised)."""
    rng = np.random.default_rng(8)
    k = 50
    v = rng.uniform(0.01, 0.2, k)
    y = 0.3 + rng.normal(0, 0.3, k) * (0.4 if dominant else 1)
    if dominant:
        v[17] = 1e-9
    if dominant:
        monkeypatch.setattr(models, "CANCELLED", 2.0)  # (the exact traces at every step)
    whole = rma(y, v, method=method)
    monkeypatch.setattr(models, "BLOCK", block)
    blocked = rma(y, v, method=method)
    assert blocked.tau2 == pytest.approx(whole.tau2, rel=1e-12)
    assert blocked.tau2_ci == pytest.approx(whole.tau2_ci, rel=1e-12)
    assert blocked.se == pytest.approx(whole.se, rel=1e-12)
    assert blocked.beta == pytest.approx(whole.beta, rel=1e-12)


def test_a_design_without_intercept_or_moderators_is_refused_with_a_reason():
    """design_matrix(intercept=False) without moderators: a clear refusal (numpy's "need at
    least one array to concatenate" once), and the intercept-only design is a column of
    ones."""
    X, names = models.design_matrix(None, None, 4)
    assert X.shape == (4, 1) and np.all(X == 1.0) and names == ["intercept"]
    with pytest.raises(ValueError, match="no intercept and no moderators"):
        models.design_matrix(None, None, 4, intercept=False)


def test_effects_and_variances_of_different_lengths_are_refused_with_their_counts():
    """One variance per effect: a shorter vi is refused saying both counts (numpy's
    "matmul: Input operand 1 has a mismatch in its core dimension" before)."""
    with pytest.raises(ValueError, match=r"3 effect\(s\) but 2 variance\(s\)"):
        rma(np.array([0.1, 0.2, 0.3]), np.array([0.01, 0.02]))


@pytest.mark.parametrize("tiny", [None, 1e-4, 1e-7, 1e-10])
def test_the_fit_at_the_estimate_is_its_weighted_mean_to_the_rounding(tiny):
    """rma()'s estimate, its se and the Knapp-Hartung scale of an intercept-only fit are the
    weighted mean, 1/sqrt(sum w) and sum w (y - b)^2 at the estimated tau2, to 1e-14, where
    they come from the last Fisher step's sums (next to tau2) as where they are evaluated
    at tau2 (one study's variance far below the others' puts that step too far)."""
    rng = np.random.default_rng(21)
    for _ in range(30):
        k = int(rng.integers(3, 400))
        v = rng.uniform(0.005, 0.3, k)
        if tiny is not None:
            v[rng.integers(k)] = tiny
        y = rng.normal(0.2, rng.uniform(0.05, 0.8), k)
        for method in ("REML", "ML", "PM"):
            for test in ("z", "knha"):
                res = rma(y, v, method=method, test=test)
                w = 1 / (v + res.tau2)
                b = float(np.sum(w * y) / np.sum(w))
                assert res.beta[0] == pytest.approx(b, rel=1e-14, abs=1e-15)
                se = np.sqrt(1 / np.sum(w))
                if test == "knha":
                    se *= np.sqrt(max(np.sum(w * (y - b) ** 2) / (k - 1), np.finfo(float).eps))
                assert res.se[0] == pytest.approx(se, rel=1e-13)
