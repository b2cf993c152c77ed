"""rma_mv with a known sampling covariance V (vcalc), the CHE model as rma_mv + robust, and the
three-level model's profile intervals (confint) and random effects (ranef), against metafor
3.8.1 (tests/reference/known_v.json, written by tests/reference/make_reference.R)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from metaanalysis import che, confint, ranef, rma_mv, robust, vcalc
from metaanalysis.multilevel import MVResult
from metaanalysis.sandwich import RobustMVResult

REF = json.loads((Path(__file__).parent / "reference" / "known_v.json").read_text())
DAL = pd.DataFrame(json.loads((Path(__file__).parent / "reference" / "rve.json").read_text())
                   ["data"])
KON = pd.DataFrame(json.loads((Path(__file__).parent / "reference" / "multilevel.json")
                              .read_text())["data"])


def close(ours, theirs, tol, what):
    ours = np.atleast_1d(np.asarray(ours, dtype=float))
    theirs = np.atleast_1d(np.asarray([np.nan if t is None else t
                                       for t in np.atleast_1d(theirs)], dtype=float))
    assert ours.shape == theirs.shape, what
    bad = ~((np.isnan(ours) & np.isnan(theirs))
            | (np.abs(ours - theirs) <= tol * np.maximum(1, np.abs(theirs))))
    assert not bad.any(), f"{what}: ours {ours[bad]} metafor {theirs[bad]}"


def test_vcalc_is_metafors_with_one_outcome_per_row():
    V = vcalc(DAL["vi"], DAL["studyid"], rho=0.6)
    close(V[:12, :12].ravel(), np.asarray(REF["V_first"]).ravel(), 1e-12, "V")
    close(V.sum(), REF["V_sum"], 1e-10, "sum")
    assert np.count_nonzero(V) == REF["V_nonzero"]
    S = vcalc("vi", "studyid", rho=0.6, data=DAL, sparse=True)
    assert sp.issparse(S) and np.array_equal(S.toarray(), V)


def test_vcalc_same_outcome_is_correlation_one_and_bad_input_is_refused():
    V = vcalc([1.0, 4.0, 9.0], ["a", "a", "b"], rho=0.5, obs=["x", "x", "y"])
    assert V[0, 1] == pytest.approx(2.0) and V[0, 2] == 0 and V[2, 2] == 9
    V = vcalc([1.0, 4.0, 9.0], ["a", "a", "b"], rho=0.5)
    assert V[0, 1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="rho"):
        vcalc([1.0], ["a"], rho=1.0)
    with pytest.raises(ValueError, match="one value per effect"):
        vcalc([1.0, 2.0], ["a"], rho=0.5)


def _fit(ref):
    if ref["data"] == "dalgaard":
        V = vcalc(DAL["vi"], DAL["studyid"], rho=0.6)
        return rma_mv(DAL["yi"], V=V, cluster=DAL["studyid"], data=DAL,
                      mods=ref["mods"] or None, method=ref["method"], test=ref["test"])
    return rma_mv(data=KON, cluster="district", method=ref["method"], test=ref["test"])


IDS = [f"{f['data']}-{f['method']}-{f['test']}-{'+'.join(f['mods']) or 'none'}"
       for f in REF["fits"]]


@pytest.mark.parametrize("ref", REF["fits"], ids=IDS)
def test_rma_mv_with_V_matches_metafor(ref):
    res = _fit(ref)
    close([res.sigma2_between, res.sigma2_within], ref["sigma2"], 1e-4, "sigma2")
    close(res.beta, ref["beta"], 1e-4, "beta")
    close(res.se, ref["se"], 1e-4, "se")
    fs = res.fit_stats()
    close([fs[k] for k in ("logLik", "deviance", "AIC", "BIC", "AICc")], ref["fitstats"], 1e-6,
          "fitstats")
    if ref["QE"] is not None:
        close(res.Q, ref["QE"], 1e-6, "QE")


@pytest.mark.parametrize("ref", REF["fits"], ids=IDS)
def test_profile_intervals_of_both_components_match_metafor(ref):
    ci = confint(_fit(ref)).random
    for name in ("sigma2_between", "sigma2_within", "sigma_between", "sigma_within"):
        close(ci.loc[name, ["estimate", "ci_lb", "ci_ub"]], ref[name], 1e-4, name)


@pytest.mark.parametrize("ref", REF["fits"], ids=IDS)
def test_ranef_of_both_levels_matches_metafor(ref):
    res = _fit(ref)
    got = ranef(res)
    cl = got["cluster"]
    labels = ref["ranef_cluster"]["labels"]
    for col in ("pred", "se", "pi_lb", "pi_ub"):
        close(cl.loc[labels, col], ref["ranef_cluster"][col], 1e-4, f"cluster {col}")
    # metafor labels the effect level "cluster/effect", sorted; ours are the effects' labels
    eff = ref["ranef_effect"]
    if ref["data"] == "dalgaard":
        rows = [lab.split("/")[1] for lab in eff["labels"]]
    else:  # konstantopoulos: "district/school" identifies the row
        key = (KON["district"].astype(str) + "/" + KON["school"].astype(str)).tolist()
        rows = [str(key.index(lab) + 1) for lab in eff["labels"]]
    for col in ("pred", "se", "pi_lb", "pi_ub"):
        close(got["effect"].loc[rows, col], eff[col], 1e-4, f"effect {col}")


def test_che_is_rma_mv_with_vcalc_plus_robust():
    """One family: che() is exactly its three steps, and its result is an ordinary robust
    three-level result that prints, predicts and converts."""
    fit = che(data=DAL, cluster="studyid", mods=["rct"])
    V = vcalc(DAL["vi"], DAL["studyid"], rho=0.6)
    by_hand = robust(rma_mv(DAL["yi"], V=V, cluster=DAL["studyid"], data=DAL, mods=["rct"]),
                     DAL["studyid"])
    assert isinstance(fit, RobustMVResult) and isinstance(fit, MVResult)
    for name in ("beta", "se", "df", "pval", "ci_lb", "ci_ub", "se_model"):
        np.testing.assert_allclose(getattr(fit, name), getattr(by_hand, name), rtol=1e-10)
    assert fit.rho == 0.6 and fit.model_name == "CHE" and by_hand.model_name == "REML"
    d = fit.to_dict()
    assert d["model"] == "CHE" and d["rho"] == 0.6 and d["robust"] == "CR2"
    text = str(fit)
    assert "rho = 0.6" in text and "CR2" in text and "I^2" not in text
    assert set(fit.predict(newmods=[1])) >= {"pred", "ci_lb", "ci_ub", "pi_lb", "pi_ub"}


def test_V_is_checked():
    y, vi, cl = np.array([0.1, 0.2, 0.3, 0.5]), np.array([0.1, 0.1, 0.2, 0.2]), list("aabb")
    V = np.diag(vi)
    V[0, 2] = V[2, 0] = 0.01
    with pytest.raises(ValueError, match="different clusters"):
        rma_mv(y, V=V, cluster=cl)
    with pytest.raises(ValueError, match="symmetric"):
        rma_mv(y, V=np.triu(np.full((4, 4), 0.05)) + np.diag(vi), cluster=cl)
    with pytest.raises(ValueError, match="vi or V"):
        rma_mv(y, vi, V=np.diag(vi), cluster=cl)
    bad = np.diag(vi)
    bad[0, 1] = bad[1, 0] = 0.5  # correlation > 1
    with pytest.raises(ValueError, match="positive definite"):
        rma_mv(y, V=bad, cluster=cl)


def test_V_without_correlation_is_the_vi_fit_and_missing_rows_leave_V():
    res_v = rma_mv(KON["yi"], V=np.diag(KON["vi"]), cluster=KON["district"])
    res = rma_mv(KON["yi"], KON["vi"], cluster=KON["district"])
    np.testing.assert_allclose([res_v.sigma2_between, res_v.sigma2_within],
                               [res.sigma2_between, res.sigma2_within], rtol=1e-5)
    np.testing.assert_allclose(res_v.beta, res.beta, rtol=1e-6)
    y = KON["yi"].to_numpy().copy()
    y[3] = np.nan
    V = vcalc(KON["vi"], KON["district"], rho=0.3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dropped = rma_mv(y, V=V, cluster=KON["district"])
    assert any("dropped" in str(w.message) for w in caught)
    keep = np.arange(len(y)) != 3
    ref = rma_mv(y[keep], V=V[np.ix_(keep, keep)], cluster=KON["district"][keep])
    np.testing.assert_allclose(dropped.beta, ref.beta, rtol=1e-12)
    assert dropped.k == len(y) - 1


def test_robust_results_carry_metafors_dfs_and_refuse_a_naive_wald_test():
    from metaanalysis import anova, rma

    fit = che(data=DAL, cluster="studyid", mods=["rct"])
    np.testing.assert_array_equal(fit.dfs, fit.df)
    assert fit.model_dfs == fit.k - 2
    with pytest.raises(ValueError, match="HTZ"):
        anova(fit, btt=1)
    knha = robust(rma(data=DAL, mods=["rct"], test="knha"), DAL["studyid"])
    assert "F(df1 = 1, df2 = 347)" in str(knha)


@pytest.mark.parametrize("reml", [True, False])
def test_the_eigenbasis_criterion_is_the_inverse_one(reml):
    """The criterion the optimiser sees (each cluster's V in its eigenbasis, M^-1 by
    Sherman-Morrison) equals the one built from per-cluster inverses and determinants, value
    and gradient, for clusters of one to five effects, a moderator and components from 0 to
    large."""
    from metaanalysis.multilevel import _Stacks, _stacked, _stacked_eigen

    rng = np.random.default_rng(3)
    k = 240
    cl = rng.integers(0, 70, k)
    cl[:12] = 1000 + np.arange(12)  # clusters of one effect
    vi = rng.uniform(0.01, 0.2, k)
    y = rng.normal(0.2, 0.3, k)
    X = np.column_stack([np.ones(k), rng.normal(size=k), rng.integers(0, 2, k)])
    stacks = _Stacks(y, X, vcalc(vi, cl, 0.6, sparse=True), cl)
    assert len({g["n"] for g in stacks.groups}) >= 5
    for params in [(0.0, 0.0), (0.05, 0.02), (0.3, 1e-4), (1e-6, 0.5), (2.0, 3.0)]:
        nll, grad = _stacked(params, stacks, reml, True)
        nll_e, grad_e = _stacked_eigen(params, stacks, reml)
        assert nll_e == pytest.approx(nll, rel=1e-12, abs=1e-12), params
        np.testing.assert_allclose(grad_e, grad, rtol=1e-10, atol=1e-10 * np.abs(grad).max(),
                                   err_msg=str(params))


def test_the_che_fit_is_the_same_with_either_criterion(monkeypatch):
    """Fitted with the eigenbasis criterion and with the per-cluster inverses (the code the
    notes were first published with), the CHE fit of the Dalton data at three correlations
    gives the same components to 1e-6 and the same estimate and CR2 standard error to 1e-8:
    the optimiser's own tolerance, far below what a note shows."""
    from metaanalysis import multilevel

    def fits():
        return [che("yi", "vi", cluster="studyid", data=DAL, rho=rho) for rho in (0.2, 0.6, 0.8)]

    fast = fits()
    monkeypatch.setattr(multilevel, "_stacked_eigen", lambda params, stacks, reml:
                        multilevel._stacked(params, stacks, reml, True))
    slow = fits()
    for a, b in zip(fast, slow):
        for c in ("sigma2_between", "sigma2_within"):
            assert getattr(a, c) == pytest.approx(getattr(b, c), rel=1e-6, abs=1e-10), c
        np.testing.assert_allclose(a.beta, b.beta, rtol=1e-8)
        np.testing.assert_allclose(a.se, b.se, rtol=1e-8)
