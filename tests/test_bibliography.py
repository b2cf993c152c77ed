"""The reader: every error class of the foundation issue, on hand-made files in tests/data."""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from metaanalysis.bibliography import (BibliographyError, latex_to_text, read_bibliography,
                                       read_effects, read_studies)

DATA = Path(__file__).parent / "data"
BAD = sorted((DATA / "bad").glob("*.bib"))


def expectation(path):
    first = path.read_text().splitlines()[:1]
    m = re.match(r"% expect: (\d+): ([^:]+): (.*)", first[0]) if first else None
    return (int(m.group(1)), m.group(2), m.group(3)) if m else (1, "-", "the file is empty")


def test_good_file_has_no_problem():
    bib = read_bibliography(DATA / "good.bib")
    assert bib.problems == []
    assert [e.key for e in bib.entries] == ["key2019", "lee2020", "zero2021", "out2018",
                                            "wait2022"]
    assert [e.screening for e in bib.entries] == ["included"] * 3 + ["excluded", "pending"]


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_each_error_class_is_reported_with_line_and_key(path):
    line, key, fragment = expectation(path)
    bib = read_bibliography(path)
    assert bib.errors, f"no error found in {path.name}"
    messages = [(p.line, p.key, p.message) for p in bib.errors]
    assert any(p[0] == line and p[1] == key and fragment in f"{p[1]}: {p[2]}" or
               p[0] == line and p[1] == key and fragment in p[2] for p in messages), messages


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_check_command_prints_gcc_style_and_fails_without_traceback(path):
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "check", str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr + run.stdout
    line, key, _ = expectation(path)
    assert f"{path}:{line}: {key}: " in run.stdout


def test_one_error_per_problem_no_cascade():
    bib = read_bibliography(DATA / "bad" / "negative_sd.bib")
    assert len(bib.errors) == 1


def test_effects_table_columns_and_values():
    t = read_effects(DATA / "good.bib")
    for col in ["key", "outcome", "measure", "yi", "vi", "design", "country", "risk_of_bias",
                "timepoint", "source", "year"]:
        assert col in t.columns
    assert len(t) == 14
    assert set(t["key"]) == {"key2019", "lee2020", "zero2021"}
    assert t["year"].dtype.kind in "if"
    rr = t[(t.key == "key2019") & (t.outcome == "employed")].iloc[0]
    assert rr.yi == pytest.approx(math.log((120 / 400) / (95 / 410)), abs=1e-12)
    assert rr.vi == pytest.approx(1 / 120 - 1 / 400 + 1 / 95 - 1 / 410, abs=1e-12)
    assert rr.source == "Table 2" and rr.line == 16
    ci = t[(t.key == "lee2020") & (t.outcome == "employed")].iloc[0]
    assert ci.yi == pytest.approx(math.log(1.25))
    assert ci.vi == pytest.approx(((math.log(1.74) - math.log(0.9)) / (2 * 1.959963984540054)) ** 2)
    assert t.loc[t.outcome == "earnings", "timepoint"].tolist()[0] == "12 months"
    assert t[t.id == "e2"].vi.iloc[0] == pytest.approx(0.0064)


def test_studies_table_counts_every_entry():
    s = read_studies(DATA / "good.bib")
    assert s["screening"].value_counts().to_dict() == {"included": 3, "excluded": 1,
                                                       "pending": 1}
    assert s.set_index("key").loc["out2018", "reason"] == "not randomised"


def test_readers_raise_with_the_problems():
    with pytest.raises(BibliographyError) as err:
        read_effects(DATA / "bad" / "negative_sd.bib")
    assert err.value.problems[0].line == 5


def test_latex_is_decoded_for_display_only():
    bib = read_bibliography(DATA / "good.bib")
    e = bib.entries[0]
    assert e.fields["author"].startswith('M{\\"u}ller')
    assert e.display("author").startswith("Müller")
    assert latex_to_text(r"{\'E}mploi") == "Émploi"


def test_string_macros_and_bare_numbers():
    bib = read_bibliography(DATA / "good.bib")
    assert bib.entries[0].fields["journal"] == "Journal of Tests"
    assert bib.entries[1].fields["year"] == "2020"


def test_moderator_numeric_and_text_is_a_warning(tmp_path):
    p = tmp_path / "mixed.bib"
    p.write_text("@article{a, year={2019}, screening={pending}, dose={10}}\n"
                 "@article{b, year={2020}, screening={pending}, dose={high}}\n")
    bib = read_bibliography(p)
    assert not bib.errors
    assert [w.key for w in bib.warnings] == ["b"]
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "check", str(p)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and "warning" in run.stdout


def test_a_number_typed_another_way_says_what_to_write(tmp_path):
    """Values copied from a PDF or typed in a French locale: a typographic minus, a decimal
    comma, a space between thousands are errors (the data are never guessed) whose message
    says what is wrong and the number to write; other text gets the general advice."""
    p = tmp_path / "typed.bib"
    p.write_text("@article{a, year={2019}, screening={included}, effects={\n"
                 "outcome = x; measure = SMD; yi = \u22120.35; vi = 0,04\n"
                 "outcome = y; measure = SMD; m1i = 1\u202f000; sd1i = 2; n1i = 30; m2i = 3;"
                 " sd2i = 2; n2i = 12 5\n}}\n", encoding="utf-8")
    messages = [str(e) for e in read_bibliography(p).errors]
    expected = [
        "yi = '\u22120.35' is not a number: its minus sign is U+2212 MINUS SIGN (as copied "
        "from a PDF or a word processor), not the hyphen-minus -: write -0.35",
        "vi = '0,04' is not a number: it has a comma for decimals: write 0.04",
        "m1i = '1\u202f000' is not a number: it has a space inside: write 1000",
        "n2i = '12 5' is not a number: write it as e.g. 12.5 (a dot for decimals, no units)"]
    for text in expected:
        assert any(text in m for m in messages), (text, messages)
    assert ":2: a: yi" in next(m for m in messages if "yi =" in m)


def test_an_escaped_brace_is_text_not_a_group(tmp_path):
    """A literal brace in LaTeX is escaped (\\{, \\}), as Better BibTeX writes one in a title:
    bibtexparser does not count it, and the reader now does not either (a lone \\} ended the
    value there and reported a missing comma: the theme could not render)."""
    p = tmp_path / "escaped.bib"
    p.write_text("@article{a, title = {The \\} character}, note = \"x \\{ y\", year = {2020},\n"
                 "  screening = {included}, effects = {outcome = o; measure = GEN; yi = 0.1; "
                 "vi = 0.01}}\n"
                 "@article{b, title = {The \\{0,1\\} knapsack}, year = {2021}, "
                 "screening = {pending}}\n")
    bib = read_bibliography(p)
    assert not bib.problems, bib.problems
    a, b = bib.entries
    assert a.fields["title"] == "The \\} character" and a.fields["note"] == "x \\{ y"
    assert b.fields["title"] == "The \\{0,1\\} knapsack" and len(a.effects) == 1


def test_an_import_source_with_braces_round_trips(tmp_path):
    """metaanalysis import escapes a brace in the database's name; the entry it writes reads
    back with that name (it was refused as invalid: nothing written)."""
    from metaanalysis.importing import entry_text
    from metaanalysis.searches import Record

    r = Record(title="T", authors=["Lee, K."], year="2020", line=2)
    p = tmp_path / "imp.bib"
    p.write_text(entry_text("lee2020t", r, source="Sco}pus{", date="2026-11-01",
                            file="s.csv", batch=1))
    bib = read_bibliography(p)
    assert not bib.problems, bib.problems
    assert [s["database"] for s in bib.entries[0].searches] == ["Sco}pus{"]


def test_a_search_date_is_a_day_of_the_calendar(tmp_path):
    p = tmp_path / "dates.bib"
    p.write_text("@article{a, year={2019}, screening={pending},\n"
                 "  searches = {database = Scopus; date = 2026-13-45}}\n"
                 "@article{b, year={2019}, screening={pending},\n"
                 "  searches = {database = Scopus; date = 2026-02-28}}\n")
    bib = read_bibliography(p)
    assert [(e.line, e.key) for e in bib.errors] == [(2, "a")]
    assert "date = 2026-13-45 is not a day of the calendar" in str(bib.errors[0])


def test_one_outcome_typed_two_ways_is_a_warning(tmp_path):
    """Effects are pooled by their outcome's exact name: 'Mortality' and 'mortalty' beside
    'mortality' would be pooled apart, each with fewer studies, without a word."""
    p = tmp_path / "outcomes.bib"
    p.write_text("".join(
        f"@article{{{k}, year={{2020}}, screening={{included}}, effects={{outcome = {o}; "
        f"measure = GEN; yi = 0.1; vi = 0.01}}}}\n"
        for k, o in [("a", "mortality"), ("b", "mortality"), ("c", "Mortality"),
                     ("d", "mortalty"), ("e", "fear of falling"), ("f", "anxiety"),
                     ("g", "depression")]), encoding="utf-8")
    bib = read_bibliography(p)
    assert not bib.errors
    assert [(w.line, w.key) for w in bib.warnings] == [(3, "c"), (4, "d")]
    assert "outcome 'Mortality' (1 effect(s)) differs only in case, accents or spaces from " \
        "'mortality' (2, line 1, 2)" in str(bib.warnings[0])
    assert "outcome 'mortalty' (1 effect(s)) is close to 'mortality'" in str(bib.warnings[1])


def test_one_characteristic_value_typed_two_ways_is_a_warning(tmp_path):
    """Subgroups are formed by a characteristic's exact value: design = rct beside RCT would
    be a subgroup of its own (education.bib's assignment_level has one such pair, from its
    source data: 'Classroom/teacher' and 'Classroom/Teacher')."""
    p = tmp_path / "design.bib"
    p.write_text("@article{a, year={2020}, screening={pending}, design={RCT}, dose={10}}\n"
                 "@article{b, year={2020}, screening={pending}, design={RCT}, dose={20}}\n"
                 "@article{c, year={2020}, screening={pending}, design={rct}, dose={10}}\n"
                 "@article{d, year={2020}, screening={pending}, design={QES}}\n")
    bib = read_bibliography(p)
    assert [(w.line, w.key) for w in bib.warnings] == [(3, "c")]
    assert "design = 'rct' (1 time) is written 'RCT' 2 time(s) (e.g. a)" in \
        str(bib.warnings[0])
    p.write_text("@article{a, year={2020}, screening={included}, effects={\n"
                 "outcome = o; measure = GEN; yi = 0.1; vi = 0.01; setting = Urban\n"
                 "outcome = o; measure = GEN; yi = 0.2; vi = 0.01; setting = Urban\n"
                 "outcome = o; measure = GEN; yi = 0.3; vi = 0.01; setting = urban\n}}\n")
    bib = read_bibliography(p)
    assert [(w.line, w.key) for w in bib.warnings] == [(4, "a")]
    assert "setting = 'urban' (1 time) is written 'Urban' 2 time(s)" in str(bib.warnings[0])


def test_zoteros_own_bibtex_export_keeps_the_annotations_in_the_note(tmp_path):
    """Zotero's own BibTeX export (not Better BibTeX's) writes the whole Extra field into the
    note: the annotation lines typed there are read as the fields they name (the study was
    pending and its effects unread before, with only "no screening field" said)."""
    p = tmp_path / "native.bib"
    p.write_text("\n@article{muller_trial_2019,\n\ttitle = {A trial},\n\tyear = {2019},\n"
                 "\tnote = {tex.screening: included\ntex.design: RCT\n"
                 "tex.review: cochrane\\_cd014666\n"
                 "tex.effects: outcome = fear of falling; measure = SMD; yi = -0.3; vi = 0.04 | "
                 "outcome = mortality; measure = RR; ai = 3; n1i = 50; ci = 5; n2i = 50},\n}\n"
                 "@article{lee_2020, year = {2020}, screening = {pending},\n"
                 "  note = {tex.screening: included\nAnother note.}}\n", encoding="utf-8")
    bib = read_bibliography(p)
    muller = bib.entries[0]
    assert muller.screening == "included"
    assert muller.characteristics() == {"design": "RCT", "review": "cochrane_cd014666"}
    assert [(e.line, e.outcome, e.measure) for e in muller.effects] == [
        (8, "fear of falling", "SMD"), (8, "mortality", "RR")]
    assert [(e.line, e.key) for e in bib.errors] == [(11, "lee_2020")]
    assert "screening is given twice: as a field (line 10) and in the note" in \
        str(bib.errors[0])


def test_reader_never_writes(tmp_path):
    src = (DATA / "good.bib").read_bytes()
    p = tmp_path / "g.bib"
    p.write_bytes(src)
    read_effects(p)
    subprocess.run([sys.executable, "-m", "metaanalysis", "extract", str(p)], check=True,
                   capture_output=True)
    assert p.read_bytes() == src


def test_zotero_one_line_form(tmp_path):
    p = tmp_path / "z.bib"
    p.write_text("@article{z, year={2019}, screening={included}, effects={outcome = a; "
                 "measure = GEN; yi = 0.1; vi = 0.01 | outcome = b; measure = GEN; yi = 0.2; "
                 "vi = 0.02}}\n")
    t = read_effects(p)
    assert t.outcome.tolist() == ["a", "b"]


def test_comment_only_file_is_empty_but_valid(tmp_path):
    p = tmp_path / "c.bib"
    p.write_text("@comment{Review question: none yet.}\n")
    bib = read_bibliography(p)
    assert bib.problems == [] and bib.entries == []
    assert len(read_effects(p)) == 0


def test_extract_command_writes_csv(tmp_path):
    out = tmp_path / "e.csv"
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "extract",
                          str(DATA / "good.bib"), "-o", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    import pandas as pd
    t = pd.read_csv(out)
    assert list(t.columns[:6]) == ["key", "id", "outcome", "measure", "yi", "vi"]
    assert len(t) == 14


def test_extract_refuses_bad_file():
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "extract",
                          str(DATA / "bad" / "negative_sd.bib")], capture_output=True, text=True)
    assert run.returncode == 1 and "negative_sd.bib:5: sd2019" in run.stderr
    assert run.stdout == "" and "Traceback" not in run.stderr


@pytest.mark.parametrize("sub", ["check", "extract"])
def test_help(sub):
    run = subprocess.run([sys.executable, "-m", "metaanalysis", sub, "--help"],
                         capture_output=True, text=True)
    assert run.returncode == 0 and "usage" in run.stdout


def test_mutated_files_never_raise(tmp_path):
    """Random damage to a good file (seeded): always problems, never an exception."""
    import random

    src = (DATA / "good.bib").read_text()
    chars = list("{}=;|,@\n\"#%\\ ab1.-")
    p = tmp_path / "m.bib"
    for seed in range(400):
        rng = random.Random(seed)
        s = list(src)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(s))
            op = rng.random()
            if op < 0.4:
                del s[i]
            elif op < 0.8:
                s.insert(i, rng.choice(chars))
            else:
                s[i] = rng.choice(chars)
        p.write_text("".join(s))
        bib = read_bibliography(p)
        assert all(pr.line >= 0 and pr.message for pr in bib.problems)
        try:
            read_effects(p)
        except BibliographyError:
            pass


def test_check_prints_only_our_messages():
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "check",
                          str(DATA / "bad" / "unbalanced.bib")], capture_output=True, text=True)
    assert "Parsing of" not in run.stderr + run.stdout  # bibtexparser's own log is silenced
    assert run.stdout.startswith(str(DATA / "bad" / "unbalanced.bib") + ":2: open2019:")
