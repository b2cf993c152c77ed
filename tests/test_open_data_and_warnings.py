"""What a note publishes besides its page: warnings never silenced, open data safe to open in a
spreadsheet and free of the build machine's paths, provenance of the bytes actually read, and
the extract command never writing over a bibliography."""

import hashlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd

import metaanalysis.models
from metaanalysis.notes import Note, spreadsheet_safe

REPO = Path(__file__).resolve().parent.parent


def test_a_fit_warning_is_shown_beside_the_result_and_in_the_data(monkeypatch):
    original = metaanalysis.models.rma

    def warning_rma(*a, **k):
        warnings.warn("the REML estimate of tau^2 did not converge <b>x</b>", UserWarning)
        return original(*a, **k)

    monkeypatch.setattr(metaanalysis.models, "rma", warning_rma)
    note = Note("autonomy", lang="en")
    assert note.outcomes[0].warnings == ["the REML estimate of tau^2 did not converge <b>x</b>"]
    notice, figure = note.forest(0).parts  # the notice, then the figure, each an output
    assert "class='notice'" in notice.data and "did not converge &lt;b&gt;x&lt;/b&gt;" in \
        notice.data
    assert "Caution" in notice.data and "<svg" in figure.html()
    # the outcome's section shows the notice before its forest plot
    section = note.section(0).parts
    assert [type(p).__name__ for p in section[:4]] == ["Markdown", "Markdown", "HTML",
                                                       "SVGFigure"]
    assert section[2].data == notice.data
    table = note.table().data
    assert "⚠" in table and "did not converge" in table
    assert note.summary()["outcomes"][0]["warnings"] == [
        "the REML estimate of tau^2 did not converge <b>x</b>"]


def test_no_warning_no_notice():
    note = Note("autonomy", lang="en")
    # (fear of falling and falls pool several effects of a study as independent: said)
    assert all(o.warnings == [] for o in note.outcomes
               if o.outcome in ("functional improvement", "nursing home admission", "mortality"))
    assert "notice" not in note.forest(0).html()


def test_spreadsheet_formulas_are_neutralised_in_text_columns_only():
    t = pd.DataFrame({"source": ["=HYPERLINK(\"http://evil\",\"x\")", "@SUM(A1)", "+1", "-2",
                                 "\tx", "Table 2", None],
                      "yi": [-0.5, 0.1, 0.2, -1.0, 0.0, 0.3, 0.4]})
    safe = spreadsheet_safe(t)
    assert safe["source"].tolist()[:6] == ["'=HYPERLINK(\"http://evil\",\"x\")", "'@SUM(A1)",
                                           "'+1", "'-2", "'\tx", "Table 2"]
    assert safe["yi"].tolist() == t["yi"].tolist()


def test_open_data_has_project_paths_and_the_hash_of_the_bytes_read(tmp_path):
    note = Note("autonomy", lang="en")
    note.export(tmp_path)
    table = pd.read_csv(tmp_path / "autonomy.csv", dtype=str)
    assert set(table["file"]) == {"bibliographies/autonomy.bib"}
    assert str(REPO) not in (tmp_path / "autonomy.csv").read_text()
    summary = json.loads((tmp_path / "autonomy.json").read_text())
    digest = hashlib.sha256((REPO / "bibliographies/autonomy.bib").read_bytes()).hexdigest()
    assert summary["bibliography_sha256"] == digest == note.sha256


def run_extract(*args):
    return subprocess.run([sys.executable, "-m", "metaanalysis", "extract", *map(str, args)],
                          capture_output=True, text=True)


def test_extract_never_writes_over_an_input_or_a_bib(tmp_path):
    bib = tmp_path / "a.bib"
    bib.write_bytes((REPO / "tests/data/good.bib").read_bytes())
    before = bib.read_bytes()
    for out, fragment in [(bib, "never written to a .bib"), (tmp_path / "b.bib", ".bib"),
                          (tmp_path / "missing" / "e.csv", "does not exist"),
                          (tmp_path, "is a folder")]:
        run = run_extract(bib, "-o", out)
        assert run.returncode == 2 and fragment in run.stderr and "Traceback" not in run.stderr
    csv = tmp_path / "a.csv"
    csv.write_text("x")
    run = run_extract(bib, csv, "-o", csv)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert bib.read_bytes() == before and csv.read_text() == "x"
    assert not (tmp_path / "b.bib").exists()


def test_the_open_data_say_which_result_each_effect_is_pooled_in():
    """Autonomy's CSV holds 70 effects (the others withheld) of which its results pool 36:
    pooled_in names each one's outcome, empty for follow-up rows of an outcome pooled at
    discharge and the like; a variant's excluded effects are empty too."""
    note = Note("autonomy", lang="en")
    table, _ = note.open_data()
    for i, o in enumerate(note.outcomes):
        if o.result is None:
            continue
        shown = table.loc[table.index.intersection(o.data.index), "pooled_in"]
        assert (shown == o.label).all()
    assert (table["pooled_in"] == "").sum() == len(table) - sum(
        len(table.index.intersection(o.data.index)) for o in note.outcomes)
    variant, _ = Note("education", lang="en", exclude="design=QES").open_data()
    assert (variant.loc[variant["design"] == "QES", "pooled_in"] == "").all()
    assert set(variant["pooled_in"]) == {"reading", "mathematics", ""}


def test_a_french_note_says_the_engines_warnings_in_french(monkeypatch):
    """The engine's warnings are said in the note's language; another library's (numpy's)
    keeps its English words, introduced as such."""
    from metaanalysis.models import ConvergenceWarning

    original = metaanalysis.models.rma

    def warning_rma(*a, **k):
        warnings.warn(ConvergenceWarning("tau2_not_converged", method="REML"))
        warnings.warn("invalid value encountered in divide", RuntimeWarning)
        return original(*a, **k)

    monkeypatch.setattr(metaanalysis.models, "rma", warning_rma)
    fr = Note("autonomy", lang="fr").outcomes[0].warnings
    assert fr == ["l'estimation REML de τ² n'a pas convergé : τ² et tout ce qui en dépend "
                  "restent non calculés ; les méthodes PM ou DL (paramètre method) donnent une "
                  "estimation",
                  "avertissement du calcul (en anglais) : invalid value encountered in divide"]
    en = Note("autonomy", lang="en").outcomes[0].warnings
    assert en == ["the REML estimate of tau^2 did not converge: tau^2 and everything that "
                  "depends on it are NaN; try method='PM' or 'DL'",
                  "invalid value encountered in divide"]


def test_a_warning_of_a_sections_refits_is_shown_under_them(monkeypatch):
    """The refits a section makes beyond the outcome's own fit (each subgroup's diamond, the
    CHE model at other rho) used to warn into the notebook's stderr, which no page shows:
    a diamond or a row of the rho table went missing without a word. Their warnings are now
    notices under the figure and the table, in the note's language, with the subgroup or
    the rho they concern."""
    import metaanalysis.plots
    import metaanalysis.rve
    from metaanalysis.models import ConvergenceWarning

    che, subset = metaanalysis.rve.che, metaanalysis.plots._refit_subset

    def warning_che(*a, rho=0.6, **k):
        if rho == 0.8:
            warnings.warn(ConvergenceWarning("three_level_not_converged", method="REML",
                                             reason="ABNORMAL"))
        return che(*a, rho=rho, **k)

    def warning_subset(res, idx):
        warnings.warn(ConvergenceWarning("tau2_not_converged", method="REML"))
        return subset(res, idx)

    monkeypatch.setattr(metaanalysis.rve, "che", warning_che)
    monkeypatch.setattr(metaanalysis.plots, "_refit_subset", warning_subset)
    for lang, rho, group in (
            ("fr", "avec ρ = 0,8 : l'ajustement à trois niveaux (REML) n'a pas convergé "
                   "(ABNORMAL) : ses résultats restent non calculés",
             "sous-groupe {} : l'estimation REML de τ² n'a pas convergé"),
            ("en", "rho = 0.8: the three-level REML fit did not converge (ABNORMAL); results "
                   "are NaN",
             "subgroup {}: the REML estimate of tau^2 did not converge")):
        note = Note("education", lang=lang)
        assert note.outcomes[0].warnings == []  # (the outcome's own fit: rho 0.6)
        table = note.rho_sensitivity("reading").data
        assert "class='notice'" in table and rho.replace("'", "&#x27;") in table
        parts = note.section("reading", subgroup="design").parts
        figure = next(p for p in parts if hasattr(p, "parts"))  # the forest plot and notice
        svg, notice = figure.parts
        assert "<svg" in svg.html() and "class='notice'" in notice.data
        groups = sorted(set(note.outcomes[0].data["design"]))
        for g in groups:
            assert group.format(g) in notice.data.replace("&#x27;", "'"), g


def test_a_warning_keeps_its_category_and_says_where_it_arose():
    from metaanalysis.models import ConvergenceWarning, FitWarning, in_context, said

    inner = ConvergenceWarning("tau2_not_converged", method="DL")
    outer = in_context(in_context(inner, "in_subgroup", group="RCT"), "at_rho", rho=0.25)
    assert isinstance(outer, ConvergenceWarning) and isinstance(outer, UserWarning)
    assert str(outer) == ("rho = 0.25: subgroup RCT: the DL estimate of tau^2 did not "
                          "converge: tau^2 and everything that depends on it are NaN; try "
                          "method='PM' or 'DL'")
    assert said(outer, "fr").startswith("avec ρ = 0,25 : sous-groupe RCT : l'estimation DL")
    other = in_context(RuntimeWarning("overflow"), "at_rho", rho=0.0)
    assert type(other) is FitWarning
    assert said(other, "fr") == "avec ρ = 0 : avertissement du calcul (en anglais) : overflow"


def test_a_warning_category_given_a_plain_sentence_keeps_it():
    """warnings.warn("a sentence", ConvergenceWarning) (as other code may call it) makes a
    warning of that sentence, said as any other warning."""
    from metaanalysis.models import ConvergenceWarning, said

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("the fit stopped early", ConvergenceWarning)
    (w,) = caught
    assert w.category is ConvergenceWarning and str(w.message) == "the fit stopped early"
    assert said(w, "fr") == "avertissement du calcul (en anglais) : the fit stopped early"
