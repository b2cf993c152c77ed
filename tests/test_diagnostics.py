"""confint, blup, ranef, rstandard, rstudent, fitted/resid, regtest and fsn against metafor
3.8.1 (fixtures written by tests/reference/make_reference.R)."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaanalysis import blup, confint, fsn, ranef, regtest, rma, rstandard, rstudent

HERE = Path(__file__).parent / "reference"
REF = json.loads((HERE / "diagnostics.json").read_text())
DATA = json.loads((HERE / "rma.json").read_text())["datasets"]


def close(ours, theirs, tol, what):
    ours = np.atleast_1d(np.asarray(ours, float))
    theirs = np.asarray([math.nan if t is None else t for t in np.atleast_1d(theirs)], float)
    assert ours.shape == theirs.shape, what
    both = np.isfinite(theirs)
    assert np.array_equal(both, np.isfinite(ours)), (what, ours, theirs)
    assert np.allclose(ours[both], theirs[both], rtol=tol, atol=tol), (what, ours, theirs)


def fit(f):
    d = DATA[f["data"]]
    data = pd.DataFrame({"yi": d["yi"], "vi": d["vi"]})
    mods = None
    if f["mods"]:
        data[f["mods"][0]] = d["mods"][f["mods"][0]]
        mods = list(f["mods"])
    return rma(data=data, method=f["method"], test=f["test"], mods=mods)


def tol(f):
    return 1e-6 if f["method"] in ("FE", "DL") else 1e-4


IDS = [f"{f['data']}-{f['method']}-{f['test']}-{'-'.join(f['mods'])}" for f in REF["fits"]]


@pytest.mark.parametrize("f", REF["fits"], ids=IDS)
def test_blup_ranef_and_residuals_are_metafors(f):
    res = fit(f)
    b = blup(res)
    for ours, theirs in (("pred", "pred"), ("se", "se"), ("pi_lb", "pi.lb"),
                         ("pi_ub", "pi.ub")):
        close(b[ours], f["blup"][theirs], tol(f), f"blup {ours}")
        if f["ranef"]:  # (none for a common-effect fit: no random effects)
            close(ranef(res)[ours], f["ranef"][theirs], tol(f), f"ranef {ours}")
    for name, fn in (("rstandard", rstandard), ("rstudent", rstudent)):
        got = fn(res)
        for col in ("resid", "se", "z"):
            close(got[col], f[name][col], tol(f), f"{name} {col}")
    close(res.fitted(), f["fitted"], tol(f), "fitted")
    close(res.resid(), f["resid"], tol(f), "resid")


@pytest.mark.parametrize("f", [f for f in REF["fits"] if "confint" in f],
                         ids=lambda f: f"{f['data']}-{f['method']}-{f['test']}")
def test_confint_of_heterogeneity_is_metafors(f):
    ci = confint(fit(f))
    assert list(ci.random.index) == ["tau2", "tau", "I2", "H2"]
    assert f["confint"]["rows"] == ["tau^2", "tau", "I^2(%)", "H^2"]
    for col in ("estimate", "ci_lb", "ci_ub"):
        close(ci.random[col], f["confint"][col], 1e-4, f"confint {col}")
    assert "tau2" in str(ci) and ci.to_dict()["random"][0]["parameter"] == "tau2"


def test_confint_refuses_a_common_effect_model():
    with pytest.raises(ValueError, match="no heterogeneity"):
        confint(fit({"data": "bcg", "method": "FE", "test": "z", "mods": []}))


@pytest.mark.parametrize("r", REF["regtest"], ids=lambda r: f"{r['predictor']}-{r['test']}")
def test_regtest_predictors_and_limit_estimate_are_metafors(r):
    d = DATA["bcg"]
    res = rma(d["yi"], d["vi"], test=r["test"])
    got = regtest(res, r["predictor"], ni=REF["bcg_ni"])
    close(got.zval, r["zval"], 1e-4, "zval")
    close(got.pval, r["pval"], 1e-4, "pval")
    if r["test"] == "knha":
        close(got.dfs, r["dfs"], 1e-12, "dfs")
    for key in ("est", "ci_lb", "ci_ub"):
        close(getattr(got, key), r[key], 1e-4, key)


def test_regtest_says_what_it_needs():
    d = DATA["bcg"]
    res = rma(d["yi"], d["vi"])
    with pytest.raises(ValueError, match="needs the sample sizes"):
        regtest(res, "ni")
    with pytest.raises(ValueError, match="use one of sei, vi"):
        regtest(res, "se")
    with pytest.raises(ValueError, match="13 positive sample sizes"):
        regtest(res, "ninv", ni=[10] * 12)
    # PET and PEESE are regtest with sei and vi; the limit estimate is printed
    assert "Limit estimate (as vi -> 0)" in str(regtest(res, "vi"))


@pytest.mark.parametrize("r", REF["fsn"], ids=lambda r: f"{r['data']}-{r['options']}")
def test_fail_safe_n_is_metafors(r):
    d = DATA[r["data"]]
    got = fsn(d["yi"], d["vi"], **r["options"])
    assert got.fsnum == r["fsnum"]
    for key in ("pval", "meanes", "target"):
        close(getattr(got, key), r[key], 1e-9, key)


def test_fsn_needs_variances_except_unweighted_orwin():
    assert fsn([0.2, 0.4, 0.3], type="Orwin").fsnum == 3
    with pytest.raises(ValueError, match="needs the sampling variances"):
        fsn([0.2, 0.4], type="Rosenthal")


@pytest.mark.parametrize("f", REF["se_tau2"],
                         ids=lambda f: f"{f['data']}-{f['method']}-{'-'.join(f['mods'])}")
def test_se_of_tau2_is_metafors(f):
    res = fit({**f, "test": "z"})
    close(res.tau2, f["tau2"], 1e-4, "tau2")
    if f["method"] == "SJ":
        assert math.isnan(res.se_tau2)  # not given here (metafor's depends on its start)
        return
    close(res.se_tau2, f["se_tau2"], 1e-6 if f["method"] in ("DL", "HE", "HS") else 1e-4,
          "se_tau2")


@pytest.mark.parametrize("c", REF["contrasts"], ids=lambda c: f"{c['test']}-{len(c['X'])}")
def test_linear_combinations_are_metafors(c):
    from metaanalysis import anova

    d = DATA["bcg"]
    data = pd.DataFrame({"yi": d["yi"], "vi": d["vi"], "ablat": d["mods"]["ablat"],
                         "year": d["mods"]["year"]})
    res = rma(data=data, mods=["ablat", "year"], test=c["test"])
    a = anova(res, X=c["X"])
    stat = "tval" if c["test"] == "knha" else "zval"
    for ours, theirs in (("estimate", "estimate"), ("se", "se"), (stat, "zval"),
                         ("pval", "pval")):
        close(a.table[ours], c[theirs], 1e-4, ours)
    # metafor's anova() gives no interval; ours is the estimate +- the fit's critical value
    close(a.table["ci_ub"] - a.table["estimate"], res.crit * np.asarray(c["se"]), 1e-4, "ci")
    close(a.QM, c["QM"], 1e-4, "QM")
    close(a.QMp, c["QMp"], 1e-4, "QMp")
    ours = list(a.QMdf) if isinstance(a.QMdf, tuple) else [a.QMdf]
    theirs = c["QMdf"] if isinstance(c["QMdf"], list) else [c["QMdf"]]
    for o, t in zip(ours, theirs):  # metafor's df2 is NA for a z test
        if t is not None:
            assert o == pytest.approx(t)
    with pytest.raises(ValueError, match="each row needs 3 values"):
        anova(res, X=[[1, 2]])


@pytest.mark.parametrize("t", REF["lrt"], ids=lambda t: t["method"])
def test_likelihood_ratio_test_is_metafors(t):
    import warnings

    from metaanalysis import anova

    FIT_STATS = ("logLik", "deviance", "AIC", "BIC", "AICc")

    d = DATA["bcg"]
    data = pd.DataFrame({"yi": d["yi"], "vi": d["vi"], "ablat": d["mods"]["ablat"],
                         "year": d["mods"]["year"]})
    full = rma(data=data, mods=["ablat", "year"], method=t["method"])
    reduced = rma(data=data, mods=["ablat"], method=t["method"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = anova(full, reduced)
    # REML with different moderators: the warning metafor gives, never silenced
    assert bool(caught) == (t["method"] == "REML")
    close(a.LRT, t["LRT"], 1e-4, "LRT")
    assert a.df == t["df"]
    close(a.pval, t["pval"], 1e-4, "pval")
    close([a.fit_stats_full[k] for k in FIT_STATS], t["fit_stats_full"], 1e-4, "full")
    close([a.fit_stats_reduced[k] for k in FIT_STATS], t["fit_stats_reduced"], 1e-4, "red")
    assert anova(reduced, full).LRT == pytest.approx(a.LRT)  # either order
    with pytest.raises(ValueError, match="by the same likelihood"):
        anova(full, rma(data=data, mods=["ablat"], method="DL"))


ROB = json.loads((HERE / "robust.json").read_text()) if (HERE / "robust.json").exists() else {
    "fits": []}
KON = json.loads((HERE / "multilevel.json").read_text())["data"]


@pytest.mark.parametrize("f", ROB["fits"],
                         ids=lambda f: f"{f['kind']}-{f['method']}-{'-'.join(f['mods'])}")
def test_robust_cr2_is_clubsandwichs(f):
    """robust(res, cluster): CR2 se, Satterthwaite df, p and CI as clubSandwich's coef_test
    (metafor's robust(clubSandwich=TRUE)), for rma and rma_mv fits; same kind of result."""
    from metaanalysis import rma_mv, robust
    from metaanalysis.multilevel import MVResult

    data = pd.DataFrame(KON)
    mods = list(f["mods"]) or None
    if f["kind"] == "rma":
        res = rma(data=data, method=f["method"], mods=mods)
    else:
        res = rma_mv(data=data, cluster="district", mods=mods)
    rob = robust(res, "district")
    assert isinstance(rob, type(res)) and (not isinstance(res, MVResult)
                                            or isinstance(rob, MVResult))
    tol = 1e-6 if f["method"] in ("FE", "DL") else 1e-4
    close(rob.beta, f["beta"], tol, "beta")
    close(rob.se, f["se"], tol, "se")
    close(rob.df, f["df"], tol, "df")
    close(rob.pval, f["pval"], tol, "pval")
    close(rob.ci_lb, f["ci_lb"], tol, "ci_lb")
    close(rob.ci_ub, f["ci_ub"], tol, "ci_ub")
    d = rob.to_dict()
    assert d["robust"] == "CR2" and d["n_robust_clusters"] == 11
    assert "Satterthwaite" in str(rob)
    if not mods:  # predict() uses the intercept's t(df)
        pred = rob.predict()
        assert pred["ci_lb"] == pytest.approx(f["ci_lb"][0] if isinstance(f["ci_lb"], list)
                                              else f["ci_lb"], abs=tol)


MLV = json.loads((HERE / "multilevel.json").read_text())


@pytest.mark.parametrize("f", MLV.get("ml_fits", []), ids=lambda f: "-".join(f["mods"]) or "none")
def test_three_level_model_by_ml_and_its_fit_statistics_are_metafors(f):
    """rma_mv(method="ML") and the fit statistics of three-level fits (the univariate formula
    with tau² = the sum of the components was silently used before)."""
    from metaanalysis import rma_mv

    data = pd.DataFrame(MLV["data"])
    mods = list(f["mods"]) or None
    ml = rma_mv(data=data, cluster="district", mods=mods, method="ML")
    close(ml.beta, f["beta"], 1e-4, "beta")
    close(ml.se, f["se"], 1e-4, "se")
    close([ml.sigma2_between, ml.sigma2_within], f["sigma2"], 1e-4, "sigma2")
    stats_ = ("logLik", "deviance", "AIC", "BIC", "AICc")
    close([ml.fit_stats()[k] for k in stats_], f["fitstats"], 1e-4, "ML fitstats")
    reml = rma_mv(data=data, cluster="district", mods=mods)
    close([reml.fit_stats()[k] for k in stats_], f["reml_fitstats"], 1e-4, "REML fitstats")
    assert "ML)" in str(ml) and math.isnan(ml.se_tau2)
    with pytest.raises(TypeError, match="three-level model"):
        blup(reml)


def test_lrt_of_a_moderator_in_a_three_level_model():
    from metaanalysis import anova, rma_mv

    data = pd.DataFrame(MLV["data"])
    full = rma_mv(data=data, cluster="district", mods=["year"], method="ML")
    reduced = rma_mv(data=data, cluster="district", method="ML")
    a = anova(full, reduced)
    f = [x for x in MLV["ml_fits"] if x["mods"]][0]
    r = [x for x in MLV["ml_fits"] if not x["mods"]][0]
    assert a.df == 1
    close(a.LRT, 2 * (f["logLik"] - r["logLik"]), 1e-4, "LRT")
