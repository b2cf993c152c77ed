"""metaanalysis pool: the command reviewers and the site use, from CSV and .bib."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REF = Path(__file__).parent / "reference"
RMA = json.loads((REF / "rma.json").read_text())
KEYS = {"k", "estimate", "se", "ci_lb", "ci_ub", "pval", "tau2", "tau2_ci_lb",
        "tau2_ci_ub", "Q", "Q_pvalue", "I2", "H2", "pi_lb", "pi_ub", "method",
        "measure"}


def pool(*args):
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "pool", *map(str, args)],
                         capture_output=True, text=True)
    assert "Traceback" not in run.stderr, run.stderr
    return run


def fixture(name, method, test="z", mods=()):
    return next(f for f in RMA["fits"] if f["data"] == name and f["method"] == method
                and f["test"] == test and f["mods"] == list(mods))


@pytest.fixture
def bcg_csv(tmp_path):
    d = RMA["datasets"]["bcg"]
    path = tmp_path / "bcg.csv"
    pd.DataFrame({"study": [f"s{i}" for i in range(len(d["yi"]))], "yi": d["yi"],
                  "vi": d["vi"], **d["mods"]}).to_csv(path, index=False)
    return path


def test_json_keys_and_values(bcg_csv):
    run = pool(bcg_csv, "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert KEYS <= set(out)
    ref = fixture("bcg", "REML")
    assert out["estimate"] == pytest.approx(ref["beta"], abs=1e-4)
    assert out["tau2"] == pytest.approx(ref["tau2"], abs=1e-4)
    assert out["pi_lb"] == pytest.approx(ref["pi_lb"], abs=1e-4)


def test_method_test_and_mods(bcg_csv):
    out = json.loads(pool(bcg_csv, "--method", "DL", "--test", "knha", "--mods", "ablat",
                          "--json").stdout)
    ref = fixture("bcg", "DL", "knha", ["ablat"])
    assert out["coefficients"]["ablat"]["estimate"] == pytest.approx(ref["beta"][1], abs=1e-6)
    assert out["coefficients"]["intercept"]["pval"] == pytest.approx(ref["pval"][0], abs=1e-6)
    assert out["QM"] == pytest.approx(ref["QM"], abs=1e-6)
    assert {"QM_pvalue", "QE", "R2"} <= set(out)


def test_bias_and_leave_one_out(bcg_csv):
    out = json.loads(pool(bcg_csv, "--bias", "--leave-one-out", "--json").stdout)
    assert {"egger_z", "egger_p", "begg_tau", "begg_p", "trimfill_k0", "trimfill_side",
            "trimfill_estimate"} <= set(out)
    assert len(out["leave_one_out"]) == 13
    assert set(out["leave_one_out"][0]) == {"omitted", "estimate", "se", "tau2", "I2"}
    assert out["leave_one_out"][0]["omitted"] == "s0"


def test_raw_data_with_measure_and_na_is_data(tmp_path):
    path = tmp_path / "raw.csv"
    path.write_text("study,region,ai,n1i,ci,n2i\na,NA,10,100,20,100\nb,EU,5,80,9,85\n"
                    "c,NA,12,120,15,118\nd,EU,,50,3,50\n")
    run = pool(path, "--measure", "RR", "--mods", "region", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["k"] == 3  # d has an empty cell: dropped with a warning naming it
    assert "region=NA" in out["coefficients"]
    assert "dropped: d" in run.stderr


def test_csv_without_yi_needs_measure(tmp_path):
    path = tmp_path / "raw.csv"
    path.write_text("study,ai,n1i,ci,n2i\na,10,100,20,100\n")
    run = pool(path)
    assert run.returncode == 1 and "needs columns yi and vi" in run.stderr


def test_not_a_number_in_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("study,yi,vi\na,0.1,0.01\nb,zero,0.02\n")
    run = pool(path)
    assert run.returncode == 1 and "bad.csv:3: yi = 'zero' is not a number" in run.stderr


def test_a_french_excel_csv_pools_as_the_same_table_with_dots(tmp_path, bcg_csv):
    """French Excel writes CSV with semicolons and decimal commas: the same numbers as the
    comma-delimited file with dots (the effects and a numeric moderator), while a code
    such as 1,10 stays text as written; a BOM (Excel's CSV UTF-8) is no column name."""
    table = pd.read_csv(bcg_csv, dtype=str)
    french = tmp_path / "bcg_fr.csv"
    rows = [";".join(table.columns)] + [";".join(v.replace(".", ",") for v in row)
                                         for row in table.itertuples(index=False)]
    french.write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")
    ours, theirs = (json.loads(pool(p, "--mods", "ablat", "--json").stdout)
                    for p in (french, bcg_csv))
    assert ours == theirs
    from metaanalysis.pool import read_table

    codes = tmp_path / "codes.csv"
    codes.write_text("study;yi;vi;analysis;dose\na;0,1;0,01;1,1;1,5\nb;-0,2;0,02;1,10;2,5\n"
                     "c;0,3;0,03;1,2;\n")
    t = read_table(codes)
    assert list(t["yi"]) == [0.1, -0.2, 0.3] and list(t["analysis"]) == ["1,1", "1,10", "1,2"]
    assert t["dose"].dtype == float and list(t["dose"][:2]) == [1.5, 2.5]
    # in a comma-delimited file a decimal comma cannot be told from two cells: not guessed
    english = tmp_path / "quoted.csv"
    english.write_text('study,yi,vi\na,"0,1",0.01\nb,0.2,0.02\n')
    run = pool(english)
    assert run.returncode == 1 and "quoted.csv:2: yi = '0,1' is not a number: it has a " \
        "comma for decimals: write 0.1" in run.stderr


@pytest.mark.parametrize("value,advice", [
    ("\u22120,10", "its minus sign is U+2212 MINUS SIGN (as copied from a PDF or a word "
                   "processor), not the hyphen-minus -"),
    ("\u2013 0,35", "U+2013 EN DASH"),
    ("1\u00a0234,5", "it has a space inside"),
    ("0.3 points", "write it as e.g. 12.5"),
])
def test_a_number_typed_another_way_is_reported_with_what_to_write(tmp_path, value, advice):
    path = tmp_path / "typed.csv"
    path.write_text(f"study;yi;vi\na;0,1;0,01\nb;{value};0,02\n", encoding="utf-8")
    run = pool(path)
    assert run.returncode == 1 and f"typed.csv:3: yi = '{value}' is not a number" in run.stderr
    assert advice in run.stderr
    fixes = {"\u22120,10": "write -0.10", "\u2013 0,35": "write -0.35",
             "1\u00a0234,5": "write 1234.5"}
    assert fixes.get(value, "write it as") in run.stderr


@pytest.mark.parametrize("args,message", [
    (("--permutations", "-5"), "argument --permutations: '-5': give a whole number of "
                               "permutations, e.g. 1000 (at least 0)"),
    (("--permutations", "ten"), "'ten': give a whole number of permutations"),
])
def test_counts_given_on_the_command_line_are_checked(bcg_csv, args, message):
    """A negative count reached numpy ("negative dimensions are not allowed")."""
    run = pool(bcg_csv, *args)
    assert run.returncode == 2 and message in run.stderr


def test_render_counts_are_checked():
    for args, message in ((("--jobs", "0"), "argument --jobs: '0': give a whole number of "
                           "parallel renders, e.g. 2 (at least 1)"),
                          (("--timeout", "-1"), "argument --timeout: '-1': give a whole number "
                           "of seconds")):
        run = subprocess.run([sys.executable, "-m", "metaanalysis", "render", *args],
                             capture_output=True, text=True)
        assert run.returncode == 2 and message in run.stderr, run.stderr
        assert "Traceback" not in run.stderr


def test_impossible_data_in_a_csv_is_an_error_with_its_line(tmp_path):
    """As in a .bib: a negative SD (squared away before: the row was pooled), more events than
    participants, a group too small for an SD, a variance of 0 (rows dropped before, with a
    warning saying only that values were missing)."""
    raw = tmp_path / "raw.csv"
    raw.write_text("study,m1i,sd1i,n1i,m2i,sd2i,n2i\na,10,2,30,11,2,30\nb,10,-2,30,11,2,30\n"
                   "c,10,2,1,11,2,30\nd,10,2,30,11,,30\n")
    run = pool(raw, "--measure", "SMD")
    assert run.returncode == 1
    assert "raw.csv:3: sd1i = -2 must be positive" in run.stderr
    assert "raw.csv:4: n1i = 1: a group needs at least 2 participants" in run.stderr
    assert "raw.csv:5" not in run.stderr  # missing data: dropped with a warning, as before
    counts = tmp_path / "counts.csv"
    counts.write_text("study,ai,n1i,ci,n2i\na,3,10,2,10\nb,12,10,3,10\n")
    run = pool(counts, "--measure", "OR")
    assert run.returncode == 1 and "counts.csv:3: ai = 12 events is more than the group size " \
        "n1i = 10" in run.stderr
    variances = tmp_path / "v.csv"
    variances.write_text("study,yi,vi\na,0.1,0.01\nb,0.2,0\nc,0.3,0.02\n")
    run = pool(variances)
    assert run.returncode == 1 and "v.csv:3: vi = 0 must be positive" in run.stderr


def test_a_csv_in_another_encoding_says_so(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("étude;yi;vi\na;0,1;0,01\n".encode("cp1252"))
    run = pool(path)
    assert run.returncode == 1 and "latin.csv:1: byte 0xe9 is not UTF-8" in run.stderr
    assert "save the CSV as UTF-8" in run.stderr


def test_a_table_saved_as_excels_unicode_text_is_read(tmp_path):
    """Excel's "Unicode Text" is tab-delimited UTF-16 with a byte-order mark: the same
    result as the table in UTF-8."""
    table = "study\tyi\tvi\r\nÉtude a\t0.1\t0.01\r\nb\t0.3\t0.02\r\nc\t0.25\t0.015\r\n"
    utf16, utf8 = tmp_path / "unicode.txt", tmp_path / "utf8.csv"
    utf16.write_bytes(table.encode("utf-16"))
    utf8.write_text(table, encoding="utf-8")
    a, b = pool(utf16, "--json"), pool(utf8, "--json")
    assert a.returncode == 0, a.stderr
    assert json.loads(a.stdout)["estimate"] == json.loads(b.stdout)["estimate"]


def test_cluster_gives_variance_components(tmp_path):
    ml = json.loads((REF / "multilevel.json").read_text())
    path = tmp_path / "kon.csv"
    pd.DataFrame(ml["data"]).to_csv(path, index=False)
    out = json.loads(pool(path, "--cluster", "district", "--json").stdout)
    assert out["sigma2_between"] == pytest.approx(ml["fits"][0]["sigma2"][0], abs=1e-4)
    assert out["sigma2_within"] == pytest.approx(ml["fits"][0]["sigma2"][1], abs=1e-4)


def test_mantel_haenszel_from_bib():
    out = json.loads(pool("bibliographies/autonomy.bib", "--outcome", "mortality",
                          "--method", "MH", "--json").stdout)
    assert out["method"] == "MH" and out["measure"] == "RR"


def test_readable_summary(bcg_csv):
    run = pool(bcg_csv, "--mods", "alloc")
    assert run.returncode == 0
    assert "Mixed-Effects Model" in run.stdout and "Test of Moderators" in run.stdout


def test_bad_method_is_refused(bcg_csv):
    run = pool(bcg_csv, "--method", "XYZ")
    assert run.returncode == 1 and "unknown method" in run.stderr


def test_every_analysis_family_is_reachable(bcg_csv):
    run = pool(bcg_csv, "--influence", "--cumulative", "year", "--permutations", "200",
               "--seed", "3", "--subgroup", "alloc", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert len(out["influence"]) == 13 and {"rstudent", "cook_d", "dffits", "hat"} <= set(
        out["influence"][0])
    assert len(out["cumulative"]) == 13 and out["cumulative"][-1]["k"] == 13
    assert out["permutation"]["iterations"] == 200 and out["permutation"]["seed"] == 3
    assert {g["subgroup"] for g in out["subgroups"]["groups"]} == {"alternate", "random",
                                                                  "systematic"}
    text = pool(bcg_csv, "--influence", "--subgroup", "alloc", "--permutations", "100")
    assert "Influence diagnostics" in text.stdout and "Test of subgroup differences" in text.stdout


def test_robust_variance_from_the_command_line(tmp_path):
    rve = json.loads((REF / "rve.json").read_text())
    path = tmp_path / "dal.csv"
    pd.DataFrame(rve["data"]).to_csv(path, index=False)
    out = json.loads(pool(path, "--cluster", "studyid", "--robust", "--json").stdout)
    assert out["se"] == pytest.approx(rve["fits"][0]["se"], abs=1e-4)
    assert out["df"] == pytest.approx(rve["fits"][0]["df"], abs=1e-3)


@pytest.mark.parametrize("content,args,fragment", [
    ("", [], "the file is empty"),
    ("yi,vi\n0.1,0.01\n", ["--method", "MH"], "need 2x2 counts"),
    ("yi,vi\n0.1,-0.01\n0.2,0.02\n", [], "must be positive"),
    ("yi,vi\n,\n,\n", [], "no effects"),
])
def test_bad_csv_gets_a_clear_answer(tmp_path, content, args, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    run = pool(path, *args)
    assert run.returncode == 1 and fragment in run.stderr, run.stderr


def test_csv_codes_stay_text_and_overflow_is_refused(tmp_path):
    csv = tmp_path / "codes.csv"
    csv.write_text("key,yi,vi,analysis,site\n" + "".join(
        f"s{i},{0.1 * i},0.04,{a},{s}\n" for i, (a, s) in enumerate(
            [("1.1", "01"), ("1.1", "02"), ("1.10", "03"), ("1.10", "04"), ("1.2", "05")])))
    run = pool(csv, "--subgroup", "analysis", "--json")
    assert run.returncode == 0, run.stderr
    groups = json.loads(run.stdout)["subgroups"]["groups"]
    assert [g["subgroup"] for g in groups] == ["1.1", "1.10", "1.2"]
    assert [g["k"] for g in groups] == [2, 2, 1]
    bad = tmp_path / "bad.csv"
    bad.write_text("yi,vi\n0.1,0.04\n1e400,0.04\n")
    run = pool(bad)
    assert run.returncode == 1 and "bad.csv:3: yi" in run.stderr and "range" in run.stderr


def test_pool_json_carries_the_fit_warnings(tmp_path):
    csv = tmp_path / "missing.csv"
    csv.write_text("yi,vi,x\n0.1,0.04,1\n0.3,0.05,\n0.2,0.03,2\n0.5,0.02,3\n")
    run = pool(csv, "--mods", "x", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["warnings"] and "missing" in out["warnings"][0]
    assert "warning:" in run.stderr


def test_mantel_haenszel_leave_one_out_and_cumulative_refit_mh(tmp_path):
    ref = json.loads((Path(__file__).parent / "reference" / "refits.json").read_text())
    f = next(x for x in ref["fits"] if x["data"] == "bcg" and x["method"] == "MH"
             and x["measure"] == "RR")
    bcg = pd.DataFrame(json.loads((Path(__file__).parent / "reference" / "binary.json")
                                  .read_text())["datasets"]["bcg"])
    bcg["year"] = f["order"]
    csv = tmp_path / "bcg.csv"
    bcg.to_csv(csv, index=False)
    out = json.loads(pool(csv, "--method", "MH", "--measure", "RR", "--leave-one-out",
                          "--cumulative", "year", "--json").stdout)
    assert np.allclose([r["estimate"] for r in out["leave_one_out"]], f["l1o_estimate"],
                       atol=1e-6)
    assert np.allclose([r["estimate"] for r in out["cumulative"]], f["cumul_estimate"],
                       atol=1e-6)


def test_new_flags_give_metafors_numbers(bcg_csv):
    """--btt, --regtest, --confint, --fsn and --level 0.95, in JSON and printed."""
    diag = json.loads((REF / "diagnostics.json").read_text())
    run = pool(bcg_csv, "--regtest", "vi", "--confint", "--fsn", "--level", "0.95", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    ref = next(r for r in diag["regtest"] if r["predictor"] == "vi" and r["test"] == "z")
    assert out["regtest"]["est"] == pytest.approx(ref["est"], abs=1e-4)
    assert out["regtest"]["pval"] == pytest.approx(ref["pval"], abs=1e-4)
    assert [r["parameter"] for r in out["confint"]] == ["tau2", "tau", "I2", "H2"]
    rosenthal = next(f for f in diag["fsn"] if f["data"] == "bcg" and f["options"] ==
                     {"type": "Rosenthal"})
    assert out["fsn"]["Rosenthal"]["fsnum"] == rosenthal["fsnum"]
    run = pool(bcg_csv, "--mods", "alloc", "ablat", "year", "--btt", "ablat", "4",
               "--test", "knha")
    assert run.returncode == 0, run.stderr
    w = next(w for w in json.loads((REF / "refits.json").read_text())["wald"]
             if w["test"] == "knha" and w["btt"] == [3, 4])
    assert f"F(df1 = 2, df2 = {w['QMdf'][1]:g}) = {w['QM']:.4f}" in run.stdout
    printed = pool(bcg_csv).stdout
    assert "<.0001" in printed  # p-values as metafor prints them


def test_level_is_95_or_0_95_and_nothing_else(bcg_csv):
    a = json.loads(pool(bcg_csv, "--level", "95", "--json").stdout)
    b = json.loads(pool(bcg_csv, "--level", "0.95", "--json").stdout)
    assert a["ci_lb"] == b["ci_lb"]
    bad = pool(bcg_csv, "--level", "1.5")
    assert bad.returncode == 2 and "give it in percent (95) or as a proportion" in bad.stderr


def test_ratio_measures_are_also_printed_on_their_scale(tmp_path):
    d = RMA["datasets"]["bcg"]
    path = tmp_path / "rr.csv"
    pd.DataFrame({"study": range(13), "yi": d["yi"], "vi": d["vi"], "measure": "RR"}).to_csv(
        path, index=False)
    out = pool(path).stdout
    est = np.exp(np.atleast_1d(fixture("bcg", "REML")["beta"])[0])
    assert f"On the natural scale (RR, exp): {est:.4f}" in out


def test_several_effects_per_study_pooled_as_independent_are_announced(tmp_path):
    path = tmp_path / "dep.csv"
    pd.DataFrame({"study": ["a", "a", "b", "c", "c", "d"], "yi": [0.1, 0.3, 0.2, 0.5, 0.4, 0.0],
                  "vi": [0.04] * 6}).to_csv(path, index=False)
    run = pool(path)
    assert run.returncode == 0
    assert "2 studies contribute several effects, pooled here as if independent" in run.stderr
    assert "--cluster study" in run.stderr
    assert "several effects" not in pool(path, "--cluster", "study").stderr


def test_robust_needs_a_cluster(bcg_csv):
    run = pool(bcg_csv, "--robust")
    assert run.returncode == 1 and "--robust needs --cluster COL" in run.stderr


def test_where_reproduces_a_notes_outcome_filter(tmp_path):
    """--where COL=VALUE selects as themes.json's where does (text compared as written: 1.1
    is not 1.10), and a column or value that selects nothing gets a clear answer."""
    rng = np.random.default_rng(4)
    path = tmp_path / "e.csv"
    pd.DataFrame({"study": [f"s{i}" for i in range(8)], "yi": rng.normal(0.2, 0.2, 8),
                  "vi": 0.04, "analysis": ["1.1", "1.10"] * 4,
                  "design": ["RCT"] * 6 + ["QES"] * 2}).to_csv(path, index=False)
    out = json.loads(pool(path, "--where", "analysis=1.1", "--json").stdout)
    assert out["k"] == 4
    out = json.loads(pool(path, "--where", "analysis=1.10", "--where", "design=RCT",
                          "--json").stdout)
    assert out["k"] == 3
    bad = pool(path, "--where", "design=rct")
    assert bad.returncode == 1 and "the values of design are QES, RCT" in bad.stderr
    bad = pool(path, "--where", "desing=RCT")
    assert bad.returncode == 1 and "no column 'desing'" in bad.stderr
    assert pool(path, "--where", "RCT").returncode == 2


def test_confint_of_a_three_level_model_gives_both_components(tmp_path):
    d = json.loads((REF / "known_v.json").read_text())
    ref = next(f for f in d["fits"] if f["data"] == "konstantopoulos" and f["method"] == "REML"
               and f["test"] == "z")
    kon = json.loads((REF / "multilevel.json").read_text())["data"]
    path = tmp_path / "kon.csv"
    pd.DataFrame(kon).to_csv(path, index=False)
    out = json.loads(pool(path, "--cluster", "district", "--confint", "--json").stdout)
    rows = {r["parameter"]: r for r in out["confint"]}
    for name in ("sigma2_between", "sigma2_within"):
        got = [rows[name][c] for c in ("estimate", "ci_lb", "ci_ub")]
        np.testing.assert_allclose(got, ref[name], rtol=1e-4)
    text = pool(path, "--cluster", "district", "--confint").stdout
    assert "profile likelihood" in text and "sigma2_between" in text


def test_an_effect_computed_in_one_measure_is_never_read_as_another(tmp_path):
    """--measure OR on autonomy's fear of falling (SMDs from means and SDs) pooled the SMDs'
    yi as log odds ratios (OR 0.79 from an SMD of -0.23): an effect given as computed stays
    in its own measure; only raw data are converted, and what cannot be is said."""
    from metaanalysis.effects import add_effect_sizes, measure_losses

    table = pd.DataFrame({"measure": ["SMD", "OR", "OR", "SMD"],
                          "yi": [-0.2, np.log(0.5), np.nan, 0.3], "vi": [0.04, 0.1, np.nan, 0.05],
                          "ai": [np.nan, np.nan, 5, np.nan], "n1i": [np.nan, np.nan, 20, 30],
                          "ci": [np.nan, np.nan, 10, np.nan], "n2i": [np.nan, np.nan, 20, 30],
                          "m1i": [1.0, np.nan, np.nan, np.nan], "sd1i": [1.0, np.nan, np.nan, np.nan],
                          "m2i": [1.2, np.nan, np.nan, np.nan], "sd2i": [1.0, np.nan, np.nan, np.nan]})
    table.loc[0, ["n1i", "n2i"]] = [25, 25]
    out = add_effect_sizes(table, "OR")
    assert np.isnan(out["yi"][[0, 3]]).all()  # SMDs: no 2x2 table, no odds ratio
    assert out["yi"][1] == pytest.approx(np.log(0.5))  # an OR as reported stays
    assert out["yi"][2] == pytest.approx(np.log(5 * 10 / (15 * 10)))  # from its 2x2 table
    assert list(out["reported_measure"]) == ["SMD", "OR", "OR", "SMD"]
    assert measure_losses(out, "OR").startswith("2 effects left out (2 reported as SMD)")
    md = add_effect_sizes(table, "MD")  # raw means convert; a reported SMD does not
    assert md["yi"][0] == pytest.approx(-0.2) and np.isnan(md["yi"][3])
    # a CSV of yi and vi without a measure column: --measure names their measure
    plain = add_effect_sizes(table.drop(columns="measure"), "SMD")
    assert plain["yi"][3] == 0.3 and "reported_measure" not in plain
    # the command line: nothing to pool says why; something left out is a warning
    run = pool("bibliographies/autonomy.bib", "--measure", "OR", "--outcome", "fear of falling")
    assert run.returncode == 1 and "114 effects left out (114 reported as SMD): their data " \
        "cannot give OR, which needs ai+bi+ci+di or ai+n1i+ci+n2i" in run.stderr
    mixed = tmp_path / "mixed.csv"
    table.to_csv(mixed, index=False)
    run = pool(mixed, "--measure", "OR", "--json")
    out = json.loads(run.stdout)
    assert out["k"] == 2 and any("2 effects left out" in w for w in out["warnings"])


def test_a_variant_with_another_measure_says_which_effects_it_leaves_out():
    from metaanalysis.compare import compare
    from metaanalysis.notes import Note

    published, variant = Note("autonomy", lang="en"), Note("autonomy", lang="en", measure="OR")
    fear = variant.outcomes[variant.outcome("fear of falling")]
    assert fear.result is None and len(fear.data) == 0
    assert fear.warnings == ["13 effects left out (13 reported as SMD): their data cannot give "
                             "OR, which needs ai+bi+ci+di or ai+n1i+ci+n2i; an effect already "
                             "computed (yi, an estimate with its CI) stays in its own measure"]
    assert "13 effects left out" in repr(variant.section("fear of falling"))
    rows = compare(published.summary(), variant.summary(), "en").set_index("outcome")
    label = fear.label
    assert rows.loc[label, "k_published"] == "13" and rows.loc[label, "k_variant"] == "0"
    fr = Note("autonomy", lang="fr", measure="OR")
    assert fr.outcomes[fr.outcome("fear of falling")].warnings[0].startswith(
        "13 effets écartés (13 rapportés en SMD) : leurs données ne donnent pas la mesure OR")


@pytest.mark.parametrize("args,fragment", [
    (["--method", "DL"], "--method DL: the CHE model (--cluster --robust) is fitted by REML"),
    (["--test", "knha"], "--test knha: the CHE model (--cluster --robust) already tests"),
    (["--method", "MH", "--test", "knha"], "--test knha: the MH model tests with z only"),
])
def test_robust_refuses_a_method_or_test_it_would_not_use(args, fragment):
    two_by_two = "MH" in args
    run = pool("bibliographies/autonomy.bib" if two_by_two else "bibliographies/education.bib",
               "--outcome", "mortality" if two_by_two else "reading",
               *([] if two_by_two else ["--cluster", "key", "--robust"]), *args)
    assert run.returncode == 1 and fragment in run.stderr, run.stderr
