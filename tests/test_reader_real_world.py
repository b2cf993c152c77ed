"""The reader on inputs nobody here wrote: codes that look like numbers, Zotero/Better BibTeX
exports, BibTeX's own rules (case-insensitive fields, macros, crossref), damaged files.
Each test is one class of failure that once lost a study or changed a number silently."""

import subprocess
import sys
from pathlib import Path

import pytest

from metaanalysis.bibliography import (is_numeric_characteristic, read_bibliography,
                                       read_effects, read_studies, where_mask)
from metaanalysis.latex import decode_annotation, latex_to_text

DATA = Path(__file__).parent / "data"
BBT = DATA / "zotero" / "betterbibtex.bib"


def write(tmp_path, text, name="t.bib", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def entry(key, extra="", effects="outcome = o; measure = MD; yi = 1; vi = 0.1", year="2019"):
    return (f"@article{{{key},\n  title = {{T}},\n  year = {{{year}}},\n"
            f"  screening = {{included}},\n{extra}  effects = {{{effects}}},\n}}\n\n")


def errors(path):
    return [(p.line, p.key, p.message) for p in read_bibliography(path).errors]


# ------------------------------------------------------------------ text stays text
def test_codes_keep_their_text_and_filters_compare_the_text(tmp_path):
    p = write(tmp_path, entry("a", "  analysis = {1.1},\n  site = {01230},\n  age = {78.8},\n")
              + entry("b", "  analysis = {1.10},\n  site = {1230},\n  age = {74},\n")
              + entry("c", "  analysis = {1.2},\n  site = {00042},\n  age = {70.5},\n"))
    t = read_effects(p)
    assert t["analysis"].tolist() == ["1.1", "1.10", "1.2"]
    assert t["site"].tolist() == ["01230", "1230", "00042"]
    assert t["age"].dtype.kind == "f" and t["age"].tolist() == [78.8, 74.0, 70.5]
    assert t[where_mask(t, {"analysis": "1.1"})]["key"].tolist() == ["a"]
    assert t[where_mask(t, {"analysis": "1.10"})]["key"].tolist() == ["b"]
    assert t[where_mask(t, {"age": "74"})]["key"].tolist() == ["b"]
    s = read_studies(p)
    assert s["analysis"].tolist() == ["1.1", "1.10", "1.2"]


@pytest.mark.parametrize("values,numeric", [
    (["1.1", "1.2", "1.10"], False),    # analysis codes
    (["01230", "1230"], False),         # an identifier with a leading zero
    (["1e5", "2"], False),              # not written as a plain number
    (["78.8", "74.2", "70"], True),     # ages
    (["80.0", "75.5", "70.0"], True),   # written the same way: one decimal each
    (["80.0", "75"], False),            # 80.0 next to 75: a code, not a measurement
    (["-0.5", "0", "12"], True),
    (["UK", "1"], False),
    ([None, "", "3"], True),
])
def test_numeric_characteristic_rule(values, numeric):
    assert is_numeric_characteristic(values) is numeric


def test_effect_ids_and_sources_stay_text(tmp_path):
    p = write(tmp_path, entry("a", effects="outcome = o; measure = MD; yi = 1; vi = 0.1; "
                              "id = 007; source = 12"))
    t = read_effects(p)
    assert t["id"].tolist() == ["007"] and t["source"].tolist() == ["12"]


# ------------------------------------------------------------------ BibTeX's own rules
def test_a_field_repeated_in_another_case_is_a_duplicate(tmp_path):
    p = write(tmp_path, "@article{a,\n  year = {2019},\n  screening = {included},\n"
                        "  effects = {outcome = o; measure = MD; yi = 1; vi = 0.1},\n"
                        "  Effects = {outcome = p; measure = MD; yi = 2; vi = 0.1},\n}\n")
    (line, key, msg), = errors(p)
    assert (line, key) == (5, "a") and "effects is given twice" in msg and "line 4" in msg


def test_bare_words_are_months_or_macros_or_an_error(tmp_path):
    p = write(tmp_path, '@string{uk = "United Kingdom"}\n'
                        + entry("a", "  month = mar,\n  country = uk,\n")
                        + entry("b", "  country = Marshall,\n"))
    errs = errors(p)
    assert len(errs) == 1
    line, key, msg = errs[0]
    assert key == "b" and line == 15 and "'Marshall' is not defined" in msg
    assert "country = {Marshall}" in msg
    good = read_bibliography(p).entries[0]
    assert good.fields["month"] == "3" and good.fields["country"] == "United Kingdom"


def test_crossref_gives_the_missing_bibliographic_fields_never_the_annotations(tmp_path):
    p = write(tmp_path, entry("child", "  crossref = {proc},\n")
              + "@proceedings{proc,\n  booktitle = {Proc},\n  publisher = {P},\n"
                "  year = {2018},\n  screening = {excluded: not a study},\n}\n"
              + entry("orphan", "  crossref = {nowhere},\n"))
    bib = read_bibliography(p)
    child = bib.entries[0]
    assert child.fields["booktitle"] == "Proc" and child.fields["year"] == "2019"
    assert child.screening == "included"
    assert [(w.key, "nowhere" in w.message) for w in bib.warnings] == [("orphan", True)]


def test_non_finite_numbers_are_errors(tmp_path):
    p = write(tmp_path, entry("a", effects="outcome = o; measure = MD; yi = 1e400; vi = 0.1"))
    (line, key, msg), = errors(p)
    assert line == 5 and "yi = 1e400" in msg and "infinity" in msg


def test_a_key_with_a_quote_is_named_as_such(tmp_path):
    p = write(tmp_path, '@article{smith"2019,\n  title = {x},\n  year = {2019},\n'
                        '  screening = {pending},\n}\n')
    (line, key, msg), = errors(p)
    assert line == 1 and 'contains "' in msg and "unbalanced" not in msg


def test_latin1_file_reports_the_line_of_the_first_bad_byte(tmp_path):
    p = write(tmp_path, entry("a") + entry("b", "  country = {Côte d'Ivoire},\n"),
              encoding="latin-1")
    (line, key, msg), = errors(p)
    assert line == 12 and "0xf4" in msg and "UTF-8" in msg


def test_a_utf16_file_is_said_to_be_utf16(tmp_path):
    """A .bib saved as "Unicode" by Windows Notepad is UTF-16: said so (not "e.g. Latin-1");
    not read, since the commands append UTF-8 to a bibliography."""
    p = write(tmp_path, entry("a"), encoding="utf-16")
    (line, key, msg), = errors(p)
    assert line == 1 and "UTF-16" in msg and "save the bibliography as UTF-8" in msg


def test_a_folder_is_not_a_bibliography(tmp_path):
    (line, key, msg), = errors(tmp_path)
    assert "is a folder" in msg
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "check", str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "Traceback" not in run.stderr and "is a folder" in run.stdout


def test_braces_nested_hundreds_deep_display_without_error(tmp_path):
    deep = "{" * 249 + "Deep title" + "}" * 249
    assert latex_to_text(deep) == "Deep title"
    p = write(tmp_path, entry("a").replace("title = {T}", f"title = {deep}"))
    title, = read_studies(p)["title"].tolist()
    assert latex_to_text(title) == "Deep title"


# ------------------------------------------------------------------ Zotero / Better BibTeX
@pytest.mark.parametrize("escaped,plain", [
    (r"cochrane\_cd014666", "cochrane_cd014666"),
    (r"a {\textbar} b", "a | b"),
    (r"95\% CI {\textless} 1", "95% CI < 1"),
    (r"C{\^o}te d'Ivoire", "Côte d'Ivoire"),
    (r"Fran{\c c}ois \& G\"{o}ran", "François & Göran"),
    ("pre--post ~ as typed", "pre--post ~ as typed"),
    (r"\{braces\}", "{braces}"),
])
def test_better_bibtex_escapes_are_undone_exactly(escaped, plain):
    assert decode_annotation(escaped) == plain


def test_better_bibtex_export_loses_no_study_and_no_effect():
    bib = read_bibliography(BBT)
    assert bib.problems == []
    assert [e.key for e in bib.included] == ["martin2019", "nguyen2021", "ortiz2018"]
    t = read_effects(BBT)
    assert len(t) == 4 and t["key"].tolist() == ["martin2019", "martin2019", "nguyen2021",
                                                  "ortiz2018"]
    # the escaped review code joins the raw one: every study reaches its outcome
    assert set(t["review"]) == {"cochrane_cd014666"}
    assert t[where_mask(t, {"review": "cochrane_cd014666", "analysis": "1.1"})][
        "key"].tolist() == ["martin2019", "martin2019", "ortiz2018"]
    assert t["year"].tolist() == [2019, 2019, 2021, 2018]  # from BibLaTeX's date
    assert t["source"].tolist()[1] == "Table 3 (< 1 year lost: 12%)"
    assert t["country"].tolist()[0] == "Côte d'Ivoire"
    biblatex = {"shortjournal", "pagetotal", "ids", "origdate", "langid", "urldate",
                "keywords", "abstract", "eprint", "eprinttype", "journaltitle", "date",
                "shorttitle", "issn", "url", "crossref"}
    assert not biblatex & set(t.columns)
    assert not biblatex & set(read_studies(BBT).columns)
    assert set(t["file"]) == {str(BBT)}  # the bibliography's path, not Zotero's PDF


def test_better_bibtex_export_through_check_and_extract(tmp_path):
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "check", str(BBT)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == "" and "3 included, 4 effects" in run.stderr
    out = tmp_path / "effects.csv"
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "extract", str(BBT), "-o",
                          str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    import pandas as pd
    table = pd.read_csv(out, dtype=str)
    assert len(table) == 4 and table["analysis"].tolist() == ["1.1", "1.1", "1.10", "1.1"]
