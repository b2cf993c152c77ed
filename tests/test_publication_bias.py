"""selmodel (step-function selection models) and the CHE sensitivity over rho, against
metafor 3.8.1 and clubSandwich (tests/reference/publication_bias.json)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from metaanalysis import rho_sensitivity, rma, selmodel
from metaanalysis.rve import che

HERE = Path(__file__).parent / "reference"
REF = json.loads((HERE / "publication_bias.json").read_text())


def near(ours, theirs, tol):
    ours = np.atleast_1d(np.asarray(ours, float))
    theirs = np.atleast_1d(np.asarray([math.nan if t is None else t
                                       for t in np.atleast_1d(theirs)], float))
    both = np.isfinite(theirs) & np.isfinite(ours)
    assert np.allclose(ours[both], theirs[both], rtol=tol, atol=tol), (ours, theirs)


@pytest.mark.parametrize("s", REF["selmodel"], ids=lambda s: f"{s['data']}-{s['steps']}")
def test_step_function_selection_model_is_metafors(s):
    res = rma(s["yi"], s["vi"], method="ML")
    got = selmodel(res, steps=s["steps"])
    near(got.beta, s["beta"], 1e-4)
    near(got.se, s["se"], 1e-4)
    near(got.delta, s["delta"], 1e-4)
    near(got.se_delta[1:], s["se_delta"][1:], 1e-4)
    near(got.LRT, s["LRT"], 1e-4)
    near(got.LRTp, s["LRTp"], 1e-4)
    if s["tau2"] > 1e-4:
        near(got.tau2, s["tau2"], 1e-4)
        near(got.se_tau2, s["se_tau2"], 1e-4)
        near(got.logLik, s["logLik"], 1e-6)
    else:
        # raudenbush: metafor's optimiser stops at tau² = 4e-7; the maximum is on the bound
        # (tau² = 0) with a higher log-likelihood, where no se of tau² is given
        assert got.tau2 == 0 and math.isnan(got.se_tau2)
        assert got.logLik >= s["logLik"] - 1e-9
    assert "Selection weights" in str(got) and got.to_dict()["LRTdf"] == len(s["delta"]) - 1


def test_selmodel_refuses_an_interval_without_effects():
    s = REF["selmodel"][0]
    res = rma(s["yi"], s["vi"], method="ML")
    with pytest.raises(ValueError, match=r"no effect has a one-sided p-value in \(0, 0.0001\]"):
        selmodel(res, steps=[0.0001])


def test_che_sensitivity_over_rho_is_clubsandwichs():
    d = json.loads((HERE / "rve.json").read_text())["data"]
    fit = che(d["yi"], d["vi"], cluster=np.asarray(d["studyid"]).astype(str))
    table = rho_sensitivity(fit)
    assert table["rho"].tolist() == [r["rho"] for r in REF["rho"]]
    near(table["estimate"], [r["beta"] for r in REF["rho"]], 1e-4)
    near(table["se"], [r["se"] for r in REF["rho"]], 1e-4)
    near(table["df"], [r["df"] for r in REF["rho"]], 1e-4)
    near(table["sigma2_between"], [r["sigma2"][0] for r in REF["rho"]], 1e-4)


def test_che_sensitivity_reuses_the_fit_at_its_own_rho_with_the_same_digits():
    """The row of the fit's own rho is the fit itself (one refit saved per outcome): it must
    be exactly what a refit gives, to the last bit, so the notes do not move."""
    d = json.loads((HERE / "rve.json").read_text())["data"]
    cluster = np.asarray(d["studyid"]).astype(str)
    for rho in (0.6, 0.2):
        fit = che(d["yi"], d["vi"], cluster=cluster, rho=rho)
        table = rho_sensitivity(fit, rhos=(rho, 0.4))
        again = che(fit.yi, fit.vi, cluster=fit.cluster, rho=rho, level=fit.level)
        row = table.iloc[0]
        assert row["estimate"] == float(again.beta[0]) and row["se"] == float(again.se[0])
        assert row["df"] == float(again.df[0]) and row["pval"] == float(again.pval[0])
        assert (row["sigma2_between"], row["sigma2_within"]) == (again.sigma2_between,
                                                                 again.sigma2_within)
        assert table.iloc[1]["estimate"] != row["estimate"]


def test_che_notes_show_the_sensitivity_over_rho():
    """The employment note's CHE sections say how the pooled effect moves with the assumed
    rho, with the numbers of rho_sensitivity()."""
    from metaanalysis.notes import Note

    note = Note("employment", lang="en")
    i = note.outcome("social reintegration")
    html = note.rho_sensitivity(i).data
    table = rho_sensitivity(note.outcomes[i].result)
    lo, hi = table["estimate"].min(), table["estimate"].max()
    words = (f"stays at {lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}"
             else f"ranges from {lo:.2f} to {hi:.2f}")
    assert "assumed ρ" in html and words in html and html.count("<tr>") == 6
    assert any(getattr(p, "data", "") == html for p in note.section(i).parts)
    # a univariate fit has no such table
    assert Note("autonomy", lang="en").rho_sensitivity("mortality").data == ""


def test_pool_selmodel_flag(tmp_path):
    import subprocess
    import sys

    import pandas as pd

    s = REF["selmodel"][0]
    path = tmp_path / "h.csv"
    pd.DataFrame({"study": range(len(s["yi"])), "yi": s["yi"], "vi": s["vi"]}).to_csv(
        path, index=False)
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "pool", str(path),
                          "--selmodel", "0.025", "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)["selmodel"]
    near(out["estimate"], s["beta"], 1e-4)
    near(out["delta"], s["delta"], 1e-4)
    near(out["LRT"], s["LRT"], 1e-4)
