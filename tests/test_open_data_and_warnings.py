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
