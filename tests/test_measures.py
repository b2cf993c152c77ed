"""The measures added for economics, education and health reviews, read from annotations:
every effect reaches the table with metafor's yi/vi (escalc.json holds metafor's values for
each formula), and impossible data get a clear message with the line."""

import json
from pathlib import Path

import numpy as np
import pytest

from metaanalysis.bibliography import check, read_effects
from metaanalysis.effects import add_effect_sizes, escalc

ESC = {c["name"]: c for c in json.loads(
    (Path(__file__).parent / "reference" / "escalc.json").read_text())["cases"]}

BIB = """@article{a2020, author={A, B}, title={T}, year={2020}, screening={included},
  effects = {
    outcome = grades; measure = PCOR; ti = -2.4; ni = 850; mi = 6; source = Table 3
    outcome = grades; measure = SPCOR; ti = -2.4; ni = 850; mi = 6; r2i = 0.31; source = Table 3
    outcome = grades; measure = SMCC; m1i = 12.1; m2i = 10.4; sd1i = 3.1; sd2i = 3.4; ni = 40; ri = 0.6; source = Table 2
    outcome = grades; measure = SMCR; m1i = 12.1; m2i = 10.4; sd1i = 3.1; ni = 40; ri = 0.6; source = Table 2
    outcome = absences; measure = IRR; x1i = 12; x2i = 20; t1i = 340; t2i = 310; source = Table 4
    outcome = absences; measure = IRLN; xi = 12; ti = 340; source = Table 4
    outcome = dropout; measure = PETO; ai = 3; bi = 47; ci = 9; di = 41; source = Table 5
    outcome = dropout; measure = PFT; xi = 3; ni = 50; source = Table 5
  },
}
"""


def test_new_measures_are_read_from_annotations_with_every_effect(tmp_path):
    path = tmp_path / "t.bib"
    path.write_text(BIB)
    assert not [p for p in check([path]) if p.severity == "error"]
    table = add_effect_sizes(read_effects(path))
    assert table["measure"].tolist() == ["PCOR", "SPCOR", "SMCC", "SMCR", "IRR", "IRLN",
                                         "PETO", "PFT"]
    assert np.isfinite(table["yi"]).all() and np.isfinite(table["vi"]).all()
    pcor = escalc("PCOR", ti=-2.4, ni=850, mi=6)
    assert table["yi"][0] == pytest.approx(pcor["yi"][0], rel=1e-12)
    assert table["yi"][0] == pytest.approx(-2.4 / np.sqrt(2.4 ** 2 + 843), rel=1e-12)


@pytest.mark.parametrize("data, message", [
    ("measure = PCOR; ti = 1.1; ni = 4; mi = 6", "leaves no residual degree of freedom"),
    ("measure = SPCOR; ti = 1.1; ni = 40; mi = 3; r2i = 1.3", "r2i = 1.3 is outside"),
    ("measure = IRR; x1i = 3; x2i = 2; t1i = 0; t2i = 10", "t1i = 0 must be positive"),
    ("measure = IR; xi = 2.5; ti = 10", "xi = 2.5 must be a whole count"),
    ("measure = SMCC; m1i = 1; m2i = 2; sd1i = 1; sd2i = 1; ni = 20; ri = 1.2",
     "ri = 1.2 is outside"),
    ("measure = PCOR; ti = 2; ni = 90", "data missing for PCOR: give ti+ni+mi"),
    ("measure = UCOR; ri = 0.3; ni = 4", "UCOR needs at least 5 participants"),
])
def test_impossible_data_are_named_with_their_line(tmp_path, data, message):
    path = tmp_path / "t.bib"
    path.write_text("@article{b2021, author={B}, title={T}, year={2021}, screening={included},"
                    f"\n  effects = {{\n    outcome = x; {data}; source = T1\n  }},\n}}\n")
    errors = [p for p in check([path]) if p.severity == "error"]
    assert errors and errors[0].line == 3 and message in errors[0].message, errors


def test_default_add_is_zero_for_phi_and_the_arcsine_proportions():
    """As metafor: add = 0 by default for PHI, PAS and PFT, 1/2 for the others."""
    import pandas as pd

    case = ESC["synthetic_PFT"]
    frame = pd.DataFrame(case["data"])
    got = escalc("PFT", xi=frame["xi"].to_numpy(float), ni=frame["ni"].to_numpy(float))
    assert np.allclose(got["yi"], case["yi"], atol=1e-10)
    assert not np.allclose(escalc("PAS", xi=[0], ni=[10])["yi"],
                           escalc("PAS", xi=[0], ni=[10], add=0.5)["yi"])


def test_a_variance_computed_below_zero_is_missing_as_in_metafor():
    """PHI of a perfect table (every treated participant an event, no control one): its
    variance is 0 in exact arithmetic and -3e-17 in floating point; metafor's escalc makes a
    negative variance missing (vi[vi < 0] <- NA), and so does ours (a negative variance reached
    rma, which refused the whole model). Checked with metafor 3.8-1:
    escalc("PHI", ai=54, n1i=54, ci=0, n2i=5) gives yi 1 and vi NA."""
    r = escalc("PHI", ai=[54, 20], n1i=[54, 40], ci=[0, 10], n2i=[5, 40])
    assert r["yi"][0] == pytest.approx(1.0) and np.isnan(r["vi"][0])
    assert r["vi"][1] > 0
    given = escalc("GEN", yi=[0.1], vi=[-0.01])  # a given variance is the data's: kept
    assert given["vi"][0] == -0.01
