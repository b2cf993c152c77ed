"""No silently wrong refit (issue 13's bugs), against metafor: leave-one-out and cumulative
analyses of Mantel-Haenszel and Peto fits refit the same method, their weights are metafor's
own, a deletion that leaves a moderator all zero gives NA, an undefined MH estimate is NA with
a warning, escalc applies add/to/drop00/include and refuses keywords it does not know, and a
three-level model refuses two-level case deletions. Fixtures: tests/reference/refits.json,
written by make_reference.R."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaanalysis.binary import rma_mh, rma_peto
from metaanalysis.effects import escalc
from metaanalysis.models import rma
from metaanalysis.sensitivity import cumulative, influence, leave_one_out
from test_reference import close

REF = json.loads((Path(__file__).parent / "reference" / "refits.json").read_text())
BIN = json.loads((Path(__file__).parent / "reference" / "binary.json").read_text())
CLOSED = 1e-6


def table(name):
    d = BIN["datasets"]["bcg"] if name == "bcg" else REF["sparse"]
    return pd.DataFrame(d)


def fit(f):
    d = table(f["data"])
    if f["method"] == "PETO":
        return rma_peto(data=d)
    return rma_mh(data=d, measure=f["measure"])


@pytest.mark.parametrize("f", REF["fits"], ids=lambda f: f"{f['data']}-{f['method']}-{f['measure']}")
def test_two_by_two_refits_use_the_same_method(f):
    res = fit(f)
    loo = leave_one_out(res)
    close(loo["estimate"], f["l1o_estimate"], CLOSED, "leave-one-out estimate")
    close(loo["se"], f["l1o_se"], CLOSED, "leave-one-out se")
    close(loo["ci_lb"], f["l1o_ci_lb"], CLOSED, "leave-one-out ci_lb")
    close(loo["ci_ub"], f["l1o_ci_ub"], CLOSED, "leave-one-out ci_ub")
    close(loo["Q"], f["l1o_Q"], CLOSED, "leave-one-out Q")
    cu = cumulative(res, order=f["order"])
    close(cu["estimate"], f["cumul_estimate"], CLOSED, "cumulative estimate")
    close(cu["se"], f["cumul_se"], CLOSED, "cumulative se")


@pytest.mark.parametrize("f", REF["fits"], ids=lambda f: f"{f['data']}-{f['method']}-{f['measure']}")
def test_two_by_two_weights_are_metafors(f):
    res = fit(f)
    theirs = np.array([np.nan if w is None else w for w in f["weights"]])
    ok = np.isfinite(res._all_yi)
    close(res.weights, theirs[ok], CLOSED, "weights")


def test_a_deletion_that_leaves_a_moderator_all_zero_is_nan():
    o = REF["own_dummy"]
    bcg = json.loads((Path(__file__).parent / "reference" / "rma.json").read_text())
    d = bcg["datasets"]["bcg"]
    data = pd.DataFrame({"yi": d["yi"], "vi": d["vi"], "ablat": o["ablat"], "own": o["own"]})
    res = rma(data=data, mods=["ablat", "own"], method="REML")
    loo = leave_one_out(res)
    assert np.isnan(loo["estimate"][2]) and np.isfinite(loo["estimate"]).sum() == len(data) - 1
    inf = influence(res)
    assert np.isnan(o["cook_d"][2] if o["cook_d"][2] is not None else np.nan)
    for name in ("cook_d", "rstudent", "dffits", "tau2_del"):
        close(inf[name], o[name], 1e-4, name)


def test_an_undefined_mantel_haenszel_estimate_is_nan_with_a_warning():
    for measure in ("OR", "RR"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = rma_mh([0, 0], [10, 12], [3, 2], [9, 11], measure=measure)
        assert np.isnan(res.estimate) and any("not defined" in str(w.message) for w in caught)


@pytest.mark.parametrize("o", REF["escalc_options"],
                         ids=lambda o: f"{o['measure']}-{'-'.join(map(str, o['options'].values()))}")
def test_escalc_options(o):
    opts = dict(o["options"])
    if o["measure"] in ("PR", "PLO"):
        data = pd.DataFrame(REF["proportions"])
        res = escalc(o["measure"], xi=data["xi"], ni=data["ni"], **opts)
    else:
        d = pd.DataFrame(REF["sparse"])
        res = escalc(o["measure"], ai=d["ai"], bi=d["bi"], ci=d["ci"], di=d["di"], **opts)
    close(res["yi"], o["yi"], CLOSED, "yi")
    close(res["vi"], o["vi"], CLOSED, "vi")


def test_escalc_include_and_unknown_keywords():
    d = pd.DataFrame(REF["sparse"])
    r = escalc("OR", ai=d["ai"], bi=d["bi"], ci=d["ci"], di=d["di"],
               include=[True, False, True, True, False, True])
    assert np.isnan(r["yi"][[1, 4]]).all() and np.isfinite(r["yi"][[2, 3, 5]]).all()
    with pytest.raises(TypeError, match="unknown argument.*ad.*the options are add"):
        escalc("OR", ai=[1], bi=[2], ci=[3], di=[4], ad=0.25)
    with pytest.raises(ValueError, match="to = 'some'"):
        escalc("OR", ai=[1], bi=[2], ci=[3], di=[4], to="some")


def test_three_level_fits_refuse_two_level_case_deletions():
    from metaanalysis.multilevel import rma_mv

    data = pd.DataFrame({"yi": [0.1, 0.3, 0.2, 0.5, 0.4, 0.0], "vi": [0.02] * 6,
                         "study": ["a", "a", "b", "b", "c", "c"]})
    res = rma_mv(data=data, cluster="study")
    for f in (influence, leave_one_out, cumulative):
        with pytest.raises(ValueError, match="three-level"):
            f(res)


FIT_STATS = ("logLik", "deviance", "AIC", "BIC", "AICc")


@pytest.mark.parametrize("f", REF["fitstats"],
                         ids=lambda f: f"{f['data']}-{f['method']}-{'-'.join(f['mods'])}")
def test_fit_stats_are_metafors(f):
    """res.fit_stats(): logLik, deviance, AIC, BIC, AICc as metafor's fitstats (restricted
    likelihood for REML, full otherwise)."""
    d = json.loads((Path(__file__).parent / "reference" / "rma.json").read_text())["datasets"][
        f["data"]]
    data = pd.DataFrame({"yi": d["yi"], "vi": d["vi"]})
    mods = None
    if f["mods"]:
        data["ablat"] = d["mods"]["ablat"]
        mods = ["ablat"]
    res = rma(data=data, method=f["method"], mods=mods)
    ours = res.fit_stats()
    tol = 1e-6 if f["method"] in ("FE", "DL") else 1e-4
    close([ours[k] for k in FIT_STATS], f["fitstats"], tol, "fitstats")


@pytest.mark.parametrize("w", REF["wald"], ids=lambda w: f"{w['test']}-{w['btt']}")
def test_wald_tests_of_coefficient_subsets_are_metafors(w):
    """anova(res, btt=...): QM, its df and p as metafor's anova.rma (F-test under knha)."""
    from metaanalysis import anova

    d = json.loads((Path(__file__).parent / "reference" / "rma.json").read_text())["datasets"][
        "bcg"]
    data = pd.DataFrame({"yi": d["yi"], "vi": d["vi"], "alloc": d["mods"]["alloc"],
                         "ablat": d["mods"]["ablat"], "year": d["mods"]["year"]})
    res = rma(data=data, mods=["alloc", "ablat", "year"], test=w["test"])
    btt = w["btt"] if isinstance(w["btt"], list) else [w["btt"]]
    a = anova(res, btt=btt)
    close(a.QM, w["QM"], 1e-4, "QM")
    close(a.QMp, w["QMp"], 1e-4, "QMp")
    theirs_df = w["QMdf"] if isinstance(w["QMdf"], list) else [w["QMdf"]]
    ours_df = list(a.QMdf) if isinstance(a.QMdf, tuple) else [a.QMdf]
    close(ours_df, [x for x in theirs_df if x is not None], 1e-9, "QMdf")


def test_wald_test_by_name_and_bad_btt():
    from metaanalysis import anova

    d = json.loads((Path(__file__).parent / "reference" / "rma.json").read_text())["datasets"][
        "bcg"]
    data = pd.DataFrame({"yi": d["yi"], "vi": d["vi"], "ablat": d["mods"]["ablat"]})
    res = rma(data=data, mods=["ablat"])
    assert anova(res, btt="ablat").QM == pytest.approx(anova(res, btt=1).QM)
    assert anova(res, btt=1).QM == pytest.approx(res.QM)
    with pytest.raises(ValueError, match="no coefficient 'latitude'.*ablat"):
        anova(res, btt="latitude")
    with pytest.raises(ValueError, match="not a coefficient position"):
        anova(res, btt=5)
