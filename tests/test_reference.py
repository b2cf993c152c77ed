"""Our numbers against metafor's, from the fixtures written by tests/reference/make_reference.R.

Tolerances: 1e-6 for closed forms (escalc, FE, DL, HE, HS, SJ), 1e-4 for iterative estimates
(REML, ML, EB, PM, the Q-profile interval); the fixtures were made with tight convergence, so
in practice both agree far closer.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaanalysis.effects import escalc
from metaanalysis.models import rma

REF = Path(__file__).parent / "reference"
ESC = json.loads((REF / "escalc.json").read_text())
RMA = json.loads((REF / "rma.json").read_text())
ITERATIVE = {"REML", "ML", "EB", "PM"}


def close(ours, theirs, tol, what):
    ours = np.atleast_1d(np.asarray(ours, dtype=float))
    theirs = np.atleast_1d(np.asarray([np.nan if t is None else t for t in np.atleast_1d(theirs)],
                                      dtype=float))
    if theirs.shape == (1,) and ours.shape != (1,):
        theirs = np.broadcast_to(theirs, ours.shape)
    assert ours.shape == theirs.shape, what
    both_nan = np.isnan(ours) & np.isnan(theirs)
    diff = np.abs(ours - theirs)
    ok = both_nan | (diff <= tol * np.maximum(1, np.abs(theirs)))
    assert ok.all(), f"{what}: ours {ours[~ok]} metafor {theirs[~ok]}"


def close_all(obj, ref, tol, names):
    """``close`` for each name: an attribute (or column) of ``obj`` against ``ref[key]``;
    a name is "attr" or "attr:key" when the fixture spells it differently."""
    for name in names:
        attr, _, key = name.partition(":")
        ours = obj[attr] if isinstance(obj, pd.DataFrame) else getattr(obj, attr)
        close(ours, ref[key or attr], tol, attr)


@pytest.mark.parametrize("case", ESC["cases"], ids=[c["name"] for c in ESC["cases"]])
def test_escalc_matches_metafor(case):
    frame = pd.DataFrame(case["data"])
    data = {k: frame[k].to_numpy(dtype=float) for k in frame.columns}
    res = escalc(case["measure"], **data)
    close(res["yi"], case["yi"], 1e-6, "yi")
    close(res["vi"], case["vi"], 1e-6, "vi")


def fit_id(f):
    return f"{f['data']}-{f['method']}-{f['test']}-{'+'.join(f['mods']) or 'none'}"


@pytest.mark.parametrize("ref", RMA["fits"], ids=[fit_id(f) for f in RMA["fits"]])
def test_rma_matches_metafor(ref):
    d = RMA["datasets"][ref["data"]]
    data = pd.DataFrame({"yi": d["yi"], "vi": d["vi"], **(d["mods"] or {})})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = rma(data=data, mods=ref["mods"] or None, method=ref["method"], test=ref["test"])
    tol = 1e-4 if ref["method"] in ITERATIVE else 1e-6
    close_all(res, ref, tol, ["tau2", "beta", "se", "pval", "ci_lb", "ci_ub", "I2", "H2"])
    close_all(res, ref, 1e-6, ["Q", "Q_pvalue"])
    if ref["mods"]:
        close_all(res, ref, tol, ["QM", "QM_pvalue"])
        if ref["method"] != "FE":
            close(res.R2, ref["R2"], 1e-4, "R2")
    else:
        pi = res.predict()
        close(pi["pi_lb"], ref["pi_lb"], tol, "pi_lb")
        close(pi["pi_ub"], ref["pi_ub"], tol, "pi_ub")
    if "tau2_ci" in ref:
        close(res.tau2_ci, ref["tau2_ci"], 1e-4, "tau2 CI")


# ----------------------------------------------------------------------------- 2x2 models
from metaanalysis.binary import rma_mh, rma_peto  # noqa: E402

BIN = json.loads((REF / "binary.json").read_text())


@pytest.mark.parametrize("ref", BIN["fits"], ids=[f"{f['data']}-{f['method']}-{f['measure']}"
                                                  for f in BIN["fits"]])
def test_mantel_haenszel_and_peto_match_metafor(ref):
    d = pd.DataFrame(BIN["datasets"][ref["data"]])
    if ref["method"] == "MH":
        res = rma_mh(data=d, measure=ref["measure"])
    else:
        res = rma_peto(data=d)
    close_all(res, ref, 1e-6, ["beta", "se", "ci_lb", "ci_ub", "pval", "Q", "Q_pvalue", "I2",
                               "H2"])


# ----------------------------------------------------------------------------- bias, sensitivity
from metaanalysis.bias import begg, egger, trimfill  # noqa: E402
from metaanalysis.sensitivity import (cumulative, influence, leave_one_out,  # noqa: E402
                                      permutest)

SENS = json.loads((REF / "sensitivity.json").read_text())


def _sens_fit(ref):
    d = RMA["datasets"][ref["data"]]
    data = pd.DataFrame({"yi": d["yi"], "vi": d["vi"], **(d["mods"] or {})})
    return rma(data=data, method=ref["method"], mods=ref["mods"] or None)


@pytest.mark.parametrize("ref", SENS["sensitivity"],
                         ids=[f"{s['data']}-{s['method']}-{'+'.join(s['mods']) or 'none'}"
                              for s in SENS["sensitivity"]])
def test_bias_and_influence_match_metafor(ref):
    res = _sens_fit(ref)
    tol = 1e-4 if ref["method"] in ITERATIVE else 1e-6
    if not ref["mods"]:
        e = egger(res)
        close(e.zval, ref["egger_z"], tol, "egger z")
        close(e.pval, ref["egger_p"], tol, "egger p")
        b = begg(res)
        close(b.tau, ref["begg_tau"], 1e-6, "begg tau")
        close(b.pval, ref["begg_p"], 1e-6, "begg p")
        tf = trimfill(res)
        assert tf.k0 == ref["trimfill_k0"] and tf.side == ref["trimfill_side"]
        close(tf.estimate, ref["trimfill_estimate"], tol, "trimfill estimate")
        close(tf.result.se, ref["trimfill_se"], tol, "trimfill se")
        l1o = leave_one_out(res)
        columns = ["estimate", "se", "tau2", "I2", "Q"]
        if ref["method"] == "FE":
            columns.remove("tau2")  # metafor leaves tau2 undefined (NA) for a common effect; ours is 0
        close_all(l1o, ref, tol, [f"{c}:l1o_{c}" for c in columns])
    inf = influence(res)
    close_all(inf, ref, tol, ["rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "QE_del",
                              "hat", "weight"])
    assert inf["influential"].tolist() == ref["influential"]


def test_cumulative_matches_metafor():
    c = SENS["cumulative"]
    d = RMA["datasets"]["bcg"]
    res = rma(d["yi"], d["vi"])
    cu = cumulative(res, order=c["order"])
    close_all(cu, c, 1e-4, ["estimate", "se", "tau2"])


def test_exact_permutation_tests_match_metafor():
    p = SENS["permutation"]
    i = p["intercept"]
    r = permutest(rma(i["yi"], i["vi"]))
    assert r.exact
    close(r.pval, i["pval"], 1e-9, "intercept permutation p")
    m = p["moderator"]
    r = permutest(rma(m["yi"], m["vi"], mods=np.asarray(m["x"])))
    assert r.exact
    close(r.pval, m["pval"], 1e-9, "moderator permutation p")
    close(r.QM_pvalue, m["QMp"], 1e-9, "QM permutation p")


def test_random_permutation_test_is_seeded():
    d = RMA["datasets"]["bcg"]
    res = rma(d["yi"], d["vi"])
    a, b = permutest(res, iter=200, seed=3), permutest(res, iter=200, seed=3)
    assert not a.exact and a.iterations == 200 and np.array_equal(a.pval, b.pval)
    assert 0 < a.pval[0] <= 1


# ----------------------------------------------------------------------------- three-level
from metaanalysis.multilevel import rma_mv  # noqa: E402

ML = json.loads((REF / "multilevel.json").read_text())


@pytest.mark.parametrize("ref", ML["fits"], ids=[f"{f['test']}-{'+'.join(f['mods']) or 'none'}"
                                                 for f in ML["fits"]])
def test_three_level_model_matches_metafor(ref):
    d = pd.DataFrame(ML["data"])
    res = rma_mv(data=d, cluster="district", mods=ref["mods"] or None, test=ref["test"])
    close([res.sigma2_between, res.sigma2_within], ref["sigma2"], 1e-4, "sigma2")
    close_all(res, ref, 1e-4, ["beta", "se", "pval", "ci_lb", "ci_ub"])
    close(res.Q, ref["Q"], 1e-6, "Q")
    if ref["mods"]:
        close(res.QM, ref["QM"], 1e-4, "QM")


# ----------------------------------------------------------------------------- CHE + CR2
from metaanalysis.rve import che  # noqa: E402

RVE = json.loads((REF / "rve.json").read_text())


@pytest.mark.parametrize("ref", RVE["fits"], ids=["+".join(f["mods"]) or "none"
                                                  for f in RVE["fits"]])
def test_che_cr2_matches_clubsandwich(ref):
    d = pd.DataFrame(RVE["data"])
    res = che(data=d, cluster="studyid", mods=ref["mods"] or None)
    close([res.sigma2_between, res.sigma2_within], ref["sigma2"], 1e-4, "sigma2")
    close_all(res, ref, 1e-4, ["beta", "se_model", "se", "df", "pval", "ci_lb", "ci_ub"])


# ----------------------------------------------------------------------------- subgroups
from metaanalysis.models import subgroups  # noqa: E402

SG = json.loads((REF / "subgroups.json").read_text())


@pytest.mark.parametrize("ref", SG["fits"], ids=[f["method"] for f in SG["fits"]])
def test_subgroups_match_metafor(ref):
    res = subgroups(pd.DataFrame(SG["data"]), "alloc", method=ref["method"])
    t = res.table()
    assert t["subgroup"].tolist() == ref["groups"]
    close_all(t, ref, 1e-4, ["estimate", "se", "tau2"])
    close_all(res, ref, 1e-4, ["Q_between", "Q_between_pvalue:Q_between_p", "QM",
                               "QM_pvalue:QMp"])
