"""Leave-one-out in O(k) (metaanalysis.deletion): every column equals the direct refit without
the effect (sums over the k - 1 others, batch_fit) to 1e-10, and rma() refits to 1e-8 (rma
stops when a step is below 1e-10, so its own tau2 can be 2e-10 (relative) from the root;
the O(k) root is nearer: test_the_root_is_the_score_equations), for every batched estimator
and both tests, including the fits out of the series' reach and fits at tau2 = 0."""

import numpy as np
import pytest

from metaanalysis import deletion
from metaanalysis.models import batch_fit, rma
from metaanalysis.sensitivity import leave_one_out

COLUMNS = ("estimate", "se", "zval", "pval", "ci_lb", "ci_ub", "Q", "Q_pvalue", "tau2", "I2",
           "H2")


def data(kind, k=40, seed=3):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.2, k)
    y = 0.3 + rng.normal(0, 0.25, k) + rng.normal(0, np.sqrt(v))
    if kind == "outlier":  # one precise, far effect: leaving it out moves tau2 a long way
        y[5], v[5] = 4.0, 0.0005
    elif kind == "homogeneous":  # tau2 = 0 with and without most effects
        y = 0.3 + rng.normal(0, np.sqrt(v)) * 0.3
    elif kind == "small":
        y, v = y[:4], v[:4]
    elif kind == "large_mean":  # a mean far from 0: the centred sums lose no digits
        y = y + 1e4
    return y, v


def exact(y, v, method, test):
    rows = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        r = rma(y[keep], v[keep], method=method, test=test)
        rows.append({"estimate": float(r.beta[0]), "se": float(r.se[0]),
                     "zval": float(r.zval[0]), "pval": float(r.pval[0]),
                     "ci_lb": float(r.ci_lb[0]), "ci_ub": float(r.ci_ub[0]), "Q": r.Q,
                     "Q_pvalue": r.Q_pvalue, "tau2": r.tau2, "I2": r.I2, "H2": r.H2})
    return rows


@pytest.mark.parametrize("kind", ["plain", "outlier", "homogeneous", "small", "large_mean"])
@pytest.mark.parametrize("method", ["REML", "ML", "DL", "HE", "FE"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_every_left_out_fit_is_the_exact_refit(kind, method, test):
    y, v = data(kind)
    res = rma(y, v, method=method, test=test)
    table = leave_one_out(res)
    k = len(y)
    direct = batch_fit(np.broadcast_to(y, (k, k)), np.broadcast_to(v, (k, k)),
                       ~np.eye(k, dtype=bool), method=method, test=test, start=res.tau2)
    for i, want in enumerate(exact(y, v, method, test)):
        for c in COLUMNS:
            got = float(table[c].iloc[i])
            assert got == pytest.approx(direct[c][i], rel=1e-10, abs=1e-8), (kind, i, c)
            # I2 is in percent: a tau2 of 1e-11 where rma stops at 0 is 3e-8 percentage points
            assert got == pytest.approx(want[c], rel=1e-8, abs=1e-6 if c == "I2" else 1e-8), (kind, i, c)


def test_the_root_is_the_score_equations():
    """Each REML tau2 solves the restricted score equation of its k - 1 effects (found here
    by bisection to 1e-15): within 1e-12 for the fits through the series, within 1e-9
    (batch_fit's and rma's own precision) for a fit refitted directly."""
    from scipy.optimize import brentq

    y, v = data("plain")
    res = rma(y, v)
    out = deletion.leave_one_out_fits(y, v, tau2=res.tau2)
    close = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        yy, vv = y[keep], v[keep]

        def score(t):
            w = 1 / (vv + t)
            b = np.sum(w * yy) / w.sum()
            return np.sum(w * w * (yy - b) ** 2) - (w.sum() - np.sum(w * w) / w.sum())
        root = brentq(score, 0.0, 2.0, xtol=1e-16, rtol=1e-15)
        assert out["tau2"][i] == pytest.approx(root, rel=1e-9), i
        close.append(abs(out["tau2"][i] - root) <= 1e-12 * root)
    assert sum(close) >= 0.9 * len(y)  # the fits through the series


def test_fits_out_of_the_series_reach_are_refitted_directly(monkeypatch):
    """The outlier's own deletion moves tau2 beyond the series' radius: that one fit goes to
    batch_fit directly, the others through the series."""
    y, v = data("outlier")
    res = rma(y, v)
    direct = []
    original = deletion.batch_fit
    monkeypatch.setattr(deletion, "batch_fit",
                        lambda Y, V, mask, **kw: (direct.append((~mask).nonzero()[1].tolist()),
                                                  original(Y, V, mask, **kw))[1])
    out = deletion.leave_one_out_fits(y, v, tau2=res.tau2)
    assert direct and 5 in direct[0] and len(direct[0]) < len(y) // 4
    assert out["tau2"][5] < res.tau2 / 5


def many_effects(k, seed):
    """k effects around 0.3 with between-study spread 0.2 and variances 0.01-0.2."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.2, k)
    return 0.3 + rng.normal(0, 0.2, k) + rng.normal(0, np.sqrt(v)), v


def test_a_million_effects_leave_one_out_needs_no_k_by_k_array():
    """O(k) memory: k = 200,000 would need 320 GB as a k x k array."""
    k = 200_000
    y, v = many_effects(k, seed=1)
    res = rma(y, v)
    out = deletion.leave_one_out_fits(y, v, tau2=res.tau2)
    assert np.all(np.isfinite(out["tau2"])) and np.allclose(out["tau2"], res.tau2, rtol=1e-3)
    for i in (0, 12345):
        keep = np.arange(k) != i
        r = rma(y[keep], v[keep])
        assert out["estimate"][i] == pytest.approx(float(r.beta[0]), rel=1e-10)
        assert out["tau2"][i] == pytest.approx(r.tau2, rel=1e-9)


@pytest.mark.parametrize("kind", ["plain", "outlier", "homogeneous", "small", "large_mean"])
@pytest.mark.parametrize("method", ["REML", "ML", "DL", "HE", "FE"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_influence_from_the_o_k_fits_is_the_refit_loop(kind, method, test, monkeypatch):
    """influence() of an intercept-only model takes every left-out fit from the O(k) fits;
    each column equals the one refit per effect (the general loop) to 1e-10 (1e-8 of rma's
    own convergence where its tau2 enters)."""
    from metaanalysis import sensitivity

    y, v = data(kind)
    res = rma(y, v, method=method, test=test)
    fast = sensitivity.influence(res)
    monkeypatch.setattr(sensitivity, "_batched", lambda r: False)
    loop = sensitivity.influence(res)
    assert list(fast.columns) == list(loop.columns)
    for c in fast.columns:
        if c == "influential":
            assert fast[c].tolist() == loop[c].tolist()
            continue
        np.testing.assert_allclose(fast[c].to_numpy(float), loop[c].to_numpy(float),
                                   rtol=1e-8, atol=1e-9, err_msg=f"{kind} {c}")


@pytest.mark.parametrize("kind", ["plain", "outlier", "homogeneous", "small", "large_mean"])
@pytest.mark.parametrize("method", ["REML", "ML", "DL", "HE", "FE"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_every_cumulative_fit_is_the_direct_fit_of_its_prefix(kind, method, test):
    """cumulative(): each prefix's fit equals the direct fit of the first j effects (batch_fit
    with tri(k)) to 1e-9 (ML's reference converges linearly: 2e-10 from its root) and rma()
    on the prefix to 1e-8, in the order given."""
    from metaanalysis.sensitivity import cumulative

    y, v = data(kind)
    k = len(y)
    order = np.random.default_rng(7).permutation(k)
    res = rma(y, v, method=method, test=test)
    table = cumulative(res, order=order)
    idx = np.argsort(order, kind="stable")
    ys, vs = y[idx], v[idx]
    with np.errstate(all="ignore"):
        direct = batch_fit(np.broadcast_to(ys, (k, k)), np.broadcast_to(vs, (k, k)),
                           np.tri(k, dtype=bool), method=method, test=test)
    assert table["k"].tolist() == list(range(1, k + 1))
    for j in range(k):
        r = rma(ys[:j + 1], vs[:j + 1], method=method, test=test) if j >= 1 else None
        for c in ("estimate", "se", "ci_lb", "ci_ub", "pval", "tau2", "I2", "Q"):
            got = float(table[c].iloc[j])
            assert got == pytest.approx(direct[c][j], rel=1e-9, abs=1e-8, nan_ok=True), (kind, j, c)
        if r is not None:
            assert float(table["estimate"].iloc[j]) == pytest.approx(float(r.beta[0]),
                                                                   rel=1e-8, abs=1e-10)
            assert float(table["tau2"].iloc[j]) == pytest.approx(r.tau2, rel=1e-8, abs=1e-10)


def test_a_long_cumulative_analysis_needs_no_k_by_k_array():
    """k = 100,000 prefixes (a k x k array would be 80 GB): spot checks against rma()."""
    k = 100_000
    y, v = many_effects(k, seed=2)
    res = rma(y, v)
    out = deletion.cumulative_fits(y, v, tau2=res.tau2)
    for j in (2, 50, 4_321, k - 1):
        r = rma(y[:j + 1], v[:j + 1])
        assert out["estimate"][j] == pytest.approx(float(r.beta[0]), rel=1e-9)
        assert out["tau2"][j] == pytest.approx(r.tau2, rel=1e-8, abs=1e-10)


def test_fits_refitted_directly_go_a_few_at_a_time(monkeypatch):
    """With the series trusted nowhere, every fit is refitted directly, in chunks of a few
    rows (never a k x k mask): the same numbers as the series gives."""
    y, v = data("plain")
    res = rma(y, v)
    expected = deletion.leave_one_out_fits(y, v, tau2=res.tau2)
    expected_cum = deletion.cumulative_fits(y, v, tau2=res.tau2)
    shapes = []
    original = deletion.batch_fit
    monkeypatch.setattr(deletion, "batch_fit", lambda Y, V, mask, **kw: (
        shapes.append(mask.shape), original(Y, V, mask, **kw))[1])
    monkeypatch.setattr(deletion, "RATIO", 0.0)
    monkeypatch.setattr(deletion, "DIRECT_CELLS", 3 * len(y))
    out = deletion.leave_one_out_fits(y, v, tau2=res.tau2)
    assert len(shapes) == -(-len(y) // 3) and max(s[0] for s in shapes) == 3
    for c in ("estimate", "se", "tau2", "Q", "I2", "sw", "s2w"):
        np.testing.assert_allclose(out[c], expected[c], rtol=1e-9, atol=1e-12, err_msg=c)
    shapes.clear()
    cum = deletion.cumulative_fits(y, v, tau2=res.tau2)
    assert max(r * w for r, w in shapes) <= 3 * len(y)
    for c in ("estimate", "se", "tau2", "Q"):
        np.testing.assert_allclose(cum[c], expected_cum[c], rtol=1e-9, atol=1e-9, err_msg=c)


@pytest.mark.parametrize("cached", [True, False])
def test_each_prefix_sum_takes_the_terms_its_own_distance_needs(monkeypatch, cached):
    """The prefix sums S[m, p] = sum_{l <= j} (v_l + t_j)^-m y_l^p, evaluated in groups by
    the terms each fit needs, equal the direct sums to 1e-13 for distances |t_j - tau2|
    spanning every group (from 0 to the series' limit), kept or recomputed."""
    if not cached:
        monkeypatch.setattr(deletion, "CACHED_CELLS", 0)
    rng = np.random.default_rng(11)
    k = 300
    v = rng.uniform(0.01, 0.2, k)
    y = rng.normal(0.2, 0.4, k)
    tau2 = 0.05
    series = deletion._PrefixSeries(y, v, tau2)
    assert (series.cum is not None) == cached
    # each fit's distance, as a share of the series' limit RATIO * min(a), both signs
    share = np.concatenate([[0.0, 1e-9, 1e-4], rng.uniform(0, 1, k - 3)])
    sign = np.where(rng.uniform(size=k) < 0.5, -1.0, 1.0)
    t = tau2 + sign * share * deletion.RATIO * series.a_min
    idx = np.concatenate([[2, 0, 1], 3 + rng.permutation(k - 3)[:200]])  # a subset, any order
    S = series.sums(t[idx], idx)
    groups = np.searchsorted(deletion._GROUP_RATIO, np.abs(t[idx] - tau2) / series.a_min[idx])
    assert len(np.unique(groups)) == len(deletion.TERM_GROUPS) + 1  # every group was used
    for n, j in enumerate(idx):
        a = v[:j + 1] + t[j]
        for m in (1, 2, 3):
            for p in range(3):
                direct = np.sum(a**-m * y[:j + 1]**p)
                assert S[m, p, n] == pytest.approx(direct, rel=1e-13, abs=1e-13 * np.sum(
                    a**-m * np.abs(y[:j + 1])**p)), (j, m, p)


@pytest.mark.parametrize("method", ["REML", "ML", "DL"])
@pytest.mark.parametrize("s", [1e-5, 1e-3, 1e5])
def test_leave_one_out_and_cumulative_fits_follow_the_effects_unit(method, s):
    """Effects in another unit (y times s, variances times s^2): every left-out and
    cumulative fit is the unit-1 fit in that unit (estimates and bounds times s, tau2 times
    s^2, z, p, I2 unchanged) to 1e-9. The convergence rule (a step below 1e-10) once held
    in absolute terms: at sampling variances of 1e-10 each fit stopped at its start."""
    from metaanalysis.sensitivity import cumulative

    y, v = data("plain")
    base, scaled = rma(y, v, method=method), rma(y * s, v * s * s, method=method)
    power = {"estimate": 1, "se": 1, "ci_lb": 1, "ci_ub": 1, "tau2": 2}
    for table, want in ((leave_one_out(scaled), leave_one_out(base)),
                        (cumulative(scaled), cumulative(base))):
        for c in ("estimate", "se", "pval", "ci_lb", "ci_ub", "tau2", "I2", "Q"):
            np.testing.assert_allclose(table[c].to_numpy(float),
                                       want[c].to_numpy(float) * s ** power.get(c, 0),
                                       rtol=1e-9, atol=0, err_msg=f"{method} {s} {c}")
    k = len(y)
    direct = batch_fit(np.broadcast_to(y * s, (k, k)), np.broadcast_to(v * s * s, (k, k)),
                       ~np.eye(k, dtype=bool), method=method)
    np.testing.assert_allclose(direct["tau2"], leave_one_out(base)["tau2"].to_numpy() * s * s,
                               rtol=1e-9, atol=0)


@pytest.mark.parametrize("method", ["REML", "ML", "DL", "HE", "FE"])
def test_one_study_far_more_precise_leave_one_out_and_cumulative_are_the_refits(method):
    """One study 1e5 ... 1e9 times more precise than the others (a registry beside small
    trials): the fits are rma()'s refits without each effect and of each prefix (tau2 to
    1e-6, or both within the convergence step of 0; estimates and se to 1e-6), with no
    numpy warning. Sums from which its term was removed once lost every digit (the
    leave-one-out tau2 without it was 0.8 off, DL's 19%), power sums overflowed, and
    Fisher's steps on the sums it dominates stopped far from the root."""
    import warnings

    from metaanalysis.models import THRESHOLD
    from metaanalysis.sensitivity import cumulative

    rng = np.random.default_rng(3)
    for trial in range(8):
        k = int(rng.integers(5, 25))
        v = rng.uniform(0.01, 0.2, k)
        y = 0.3 + rng.normal(0, np.sqrt(v)) * rng.uniform(0.3, 2)
        for tiny in (1e-6, 1e-8, 1e-10):
            vt = v.copy()
            vt[(3 * trial) % k] = tiny
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                res = rma(y, vt, method=method)
                loo, cum = leave_one_out(res), cumulative(res)
            subsets = [(np.arange(k) != i, loo.iloc[i]) for i in range(k)]
            subsets += [(np.arange(k) <= j, cum.iloc[j]) for j in range(1, k)]
            for keep, got in subsets:
                want = rma(y[keep], vt[keep], method=method)
                if max(got["tau2"], want.tau2) > THRESHOLD:
                    assert got["tau2"] == pytest.approx(want.tau2, rel=1e-6), (trial, tiny)
                if tiny >= 1e-8:  # (within 1e-10 of 0, tau2 still moves a 1e-10 variance)
                    assert got["estimate"] == pytest.approx(want.beta[0], rel=1e-6)
                    assert got["se"] == pytest.approx(want.se[0], rel=1e-6), (trial, tiny)
