"""From search exports to a deduplicated bibliography: import (RIS, MEDLINE, Scopus and
OpenAlex CSV) appends without changing a byte of what was there, keeps a backup and the
provenance of every record; dedup finds the overlaps of tests/data/searches/README.md and
records the sure ones; PRISMA counts identified records per database and duplicates removed."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from metaanalysis.bibliography import read_bibliography, read_studies
from metaanalysis.figures import prisma2020
from metaanalysis.importing import bibtex_value, make_key
from metaanalysis.latex import latex_to_text
from metaanalysis.searches import ExportError, Record, detect_format, read_export

REPO = Path(__file__).resolve().parent.parent
SEARCHES = REPO / "tests" / "data" / "searches"
EXPORTS = [("embase.ris", "Embase", "2026-11-02"), ("pubmed.nbib", "PubMed", "2026-11-03"),
           ("scopus.csv", "Scopus", "2026-11-03"), ("openalex.csv", "OpenAlex", "2026-11-04")]


def run(root, *args):
    r = subprocess.run([sys.executable, "-m", "metaanalysis", *map(str, args)], cwd=root,
                       capture_output=True, text=True)
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "templates").mkdir(parents=True)
    shutil.copy(REPO / "templates" / "theme.ipynb", root / "templates" / "theme.ipynb")
    (root / "themes.json").write_text("{}")
    assert run(root, "new-theme", "falls").returncode == 0
    bib = root / "bibliographies" / "falls.bib"
    bib.write_text(bib.read_text() + "\n@article{kept2010,\n  author = {Kept, Kim},\n"
                   "  title = {An entry typed by hand},\n  year = {2010},\n"
                   "  screening = {excluded: not about falls},\n}\n")
    return root


def test_formats_are_detected_from_the_content():
    assert [detect_format((SEARCHES / f).read_text()) for f, _, _ in EXPORTS] == [
        "ris", "medline", "csv", "csv"]
    assert detect_format("@article{a, title = {x}}") == "bibtex"
    assert detect_format("just some text\nand more") is None


def test_a_file_that_is_no_export_is_refused_with_its_line(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello\n")
    with pytest.raises(ExportError, match="notes.txt:1: -: not a search export"):
        read_export(f)
    bad = tmp_path / "bad.nbib"
    bad.write_text("PMID- 1\nTI  - ok\nthis line is no tag\n")
    with pytest.raises(ExportError, match="bad.nbib:3: -: not a MEDLINE line"):
        read_export(bad)


def test_keys_follow_the_bibliography_style_and_are_unique():
    taken = {"martin2019cognitive"}
    r = Record(title="The Cognitive way", authors=["Martin, Claire"], year="2019")
    assert make_key(r, taken) == "martin2019cognitivea"
    assert make_key(Record(title="Études", authors=["Müller J."], year=""), set()) == \
        "mullerndetudes"  # accents folded, "nd" for no date
    assert make_key(Record(title="Über Stürze", authors=["Müller, J"], year="2020"), set()) == \
        "muller2020uber"


def test_hostile_text_becomes_inert_bibtex():
    v = bibtex_value("{\\input{/etc/passwd}} 100% & $x$ a_b ~ ^ }{")
    assert "\\input" not in v.replace("\\textbackslash{}input", "")
    assert latex_to_text(v).startswith("{\\input{/etc/passwd}} 100% & $x$ a_b")


def test_import_appends_keeps_bytes_and_backup_then_dedup_and_prisma(project):
    bib = project / "bibliographies" / "falls.bib"
    before = bib.read_bytes()
    # a dry run writes nothing
    r = run(project, "import", "falls", SEARCHES / "embase.ris", "--source", "Embase", "--date",
            "2026-11-02", "--dry-run")
    assert r.returncode == 0 and "would add martin2019cognitive" in r.stdout
    assert bib.read_bytes() == before
    for name, source, date in EXPORTS:
        r = run(project, "import", "falls", SEARCHES / name, "--source", source, "--date", date)
        assert r.returncode == 0, r.stderr
        after = bib.read_bytes()
        assert after.startswith(before)  # not a byte of what was there changed
        before = after
    backups = sorted((project / "bibliographies" / ".backups").glob("falls.*.bib"))
    assert len(backups) == 4 and bib.read_bytes().startswith(backups[-1].read_bytes())
    check = run(project, "check", bib)
    assert check.returncode == 0, check.stdout + check.stderr
    b = read_bibliography(bib)
    imported = [e for e in b.entries if e.searches]
    assert len(imported) == 14 and all(e.screening == "pending" for e in imported)
    assert [s["batch"] for s in imported[-1].searches] == ["4"]
    first = imported[0]
    assert first.searches == [{"database": "Embase", "date": "2026-11-02", "file": "embase.ris",
                               "line": "1", "batch": "1"}]
    wong = next(e for e in imported if "protocol" in e.fields["title"])
    # hostile text arrives as text: the LaTeX command is escaped, the markup shown as written
    assert "\\input" not in wong.fields["abstract"].replace("\\textbackslash{}input", "")
    assert latex_to_text(wong.fields["abstract"]).startswith("{\\input{/etc/passwd}} <script>")
    # duplicates
    r = run(project, "dedup", "falls")
    assert r.returncode == 0
    listed = [ln for ln in r.stdout.splitlines() if "duplicate of" in ln]
    sure = [ln for ln in listed if ": sure: " in ln]
    assert len(sure) == 6, r.stdout
    assert not any("wong2016" in ln and "wong2017" in ln for ln in listed)  # two DOIs
    assert bib.read_bytes() == before  # listing writes nothing
    r = run(project, "dedup", "falls", "--apply")
    assert r.returncode == 0 and "6 duplicate(s) recorded" in r.stderr
    assert bib.read_bytes().startswith(before)
    again = run(project, "dedup", "falls", "--apply")
    assert "0 candidate pair(s)" in again.stderr  # recorded once
    s = read_studies(bib)
    c = prisma2020(s)
    assert c["identified"] == {"Embase": 4, "OpenAlex": 1, "PubMed": 3, "Scopus": 6,
                               "not recorded": 1}  # 14 imported + 1 typed by hand
    assert c["duplicates_removed"] == 6 and c["awaiting_screening"] == 8
    assert c["included"] == 0 and c["excluded_stage_unknown"] == {"not about falls": 1}
    assert c["excluded_screening"] is None  # the hand-typed exclusion has no stage
    kept = set(s.loc[s["duplicate_of"] == "", "key"])
    assert len([k for k in kept if k != "kept2010"]) == 8


def test_import_refuses_bad_input_and_writes_nothing(project, tmp_path):
    bib = project / "bibliographies" / "falls.bib"
    before = bib.read_bytes()
    bad = tmp_path / "x.txt"
    bad.write_text("nothing\n")
    for args, code, fragment in [
        (["falls", SEARCHES / "embase.ris", bad, "--source", "X", "--date", "2026-11-02"], 1,
         "not a search export"),
        (["falls", SEARCHES / "embase.ris", "--source", "X", "--date", "2 Nov"], 2, "YYYY-MM-DD"),
        (["falls", SEARCHES / "embase.ris", "--source", "X", "--date", "2026-13-45"], 2,
         "a day of the calendar"),
        (["falls", SEARCHES / "embase.ris", "--source", "X", "--date", "2999-01-01"], 2,
         "is after today"),
        (["nope", SEARCHES / "embase.ris", "--source", "X", "--date", "2026-11-02"], 2,
         "unknown theme"),
        (["falls", SEARCHES / "embase.ris", "--source", " ", "--date", "2026-11-02"], 2,
         "--source")]:
        r = run(project, "import", *args)
        assert r.returncode == code and fragment in r.stderr, r.stderr
    assert bib.read_bytes() == before
    assert not (project / "bibliographies" / ".backups").exists()


def screen(root, stage, reviewer, answers, *extra):
    """Screen as a person would: read each record shown, answer by its key.

    ``answers`` maps a key prefix to what is typed for that record (e.g. "e\n2\n"), or is a
    list of such strings typed in turn whatever the record (to test undo and wrong keys).
    Returns the completed process with what was shown (``shown``: the keys in order)."""
    import os
    import re

    proc = subprocess.Popen([sys.executable, "-u", "-m", "metaanalysis", "screen", "falls",
                             "--stage", stage, "--reviewer", reviewer, *extra], cwd=root,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=0,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    shown, buf, turn = [], "", 0
    while True:
        ch = proc.stdout.read(1)
        if not ch:
            break
        buf += ch
        m = re.search(r"\[\d+/\d+\] (\S+) ", buf)
        if buf.endswith("[i/e/s/u/q] > "):
            key = m.group(1) if m else ""
            shown.append(key)
            if isinstance(answers, list):
                typed = answers[turn] if turn < len(answers) else "q\n"
                turn += 1
            else:
                typed = next((v for k, v in answers.items() if key.startswith(k)), "q\n")
                if isinstance(typed, list):  # one answer per time the record is shown
                    typed = typed.pop(0) if typed else "q\n"
            proc.stdin.write(typed)
            proc.stdin.flush()
            buf = ""
    proc.stdin.close()
    err = proc.stderr.read()
    proc.wait()
    assert proc.returncode == 0 and "Traceback" not in err, err
    return subprocess.CompletedProcess(proc.args, proc.returncode, shown, err)


def test_from_three_exports_to_screened_records_and_a_prisma_flow(tmp_path):
    """Import, dedup, two reviewers at title/abstract (one conflict, settled by consensus),
    full text with reasons from the theme's list: every PRISMA count right."""
    root = tmp_path / "proj"
    (root / "templates").mkdir(parents=True)
    shutil.copy(REPO / "templates" / "theme.ipynb", root / "templates" / "theme.ipynb")
    (root / "themes.json").write_text("{}")
    assert run(root, "new-theme", "falls").returncode == 0
    themes = json.loads((root / "themes.json").read_text())
    themes["falls"]["exclusion_reasons"] = ["not randomised", "no control group",
                                            "wrong population"]
    (root / "themes.json").write_text(json.dumps(themes))
    for name, source, date in EXPORTS:
        assert run(root, "import", "falls", SEARCHES / name, "--source", source, "--date",
                   date).returncode == 0
    assert run(root, "dedup", "falls", "--apply").returncode == 0
    bib = root / "bibliographies" / "falls.bib"
    anne = {"martin": "i\n", "ortiz": "i\n", "lee": "e\n", "rossi": "i\n", "nguyen": "i\n",
            "fischer": "e\n", "wong2017": "i\n", "wong2016": "e\n"}
    r = screen(root, "title", "anne", anne)
    assert "8 decision(s) recorded" in r.stderr and len(set(r.stdout)) == 8
    # the first two in file order; then the model, once it has an inclusion and an exclusion
    assert r.stdout[:2] == ["martin2019cognitive", "ortiz2018home"]
    assert "screened since the last inclusion" in r.stderr
    before_paul = bib.read_bytes()
    paul = {**anne, "ortiz": ["x\n", "e\n"]}  # x: a wrong key, asked again; paul excludes
    r = screen(root, "title", "paul", paul)
    assert bib.read_bytes().startswith(before_paul)
    conflicts = run(root, "screen", "falls", "--conflicts")
    assert conflicts.stdout.count(": title: ") == 1 and "ortiz2018home" in conflicts.stdout
    assert "anne: include, paul: exclude" in conflicts.stdout
    check = run(root, "check", bib)
    assert "the reviewers disagree at the title stage" in check.stdout
    k = run(root, "screen", "falls", "--kappa", "anne", "paul")
    assert "title: Cohen's kappa anne vs paul = 0.750 on 8 record(s)" in k.stdout
    screen(root, "title", "consensus", {"ortiz": "i\n"}, "--only-conflicts")
    assert run(root, "screen", "falls", "--conflicts").stdout == ""
    # undo: the second answer goes back to the first record, decided again (both decisions
    # stay in the log; the later one counts)
    r = screen(root, "fulltext", "anne", ["i\n", "u\n", "i\n", "e\n2\n", "e\n4\n", "i\n",
                                          "e\n1\n"])
    assert r.stdout[:4] == ["martin2019cognitive", "ortiz2018home"] * 2  # u: back to martin
    assert "6 decision(s) recorded" in r.stderr
    assert bib.read_text().count("screen: martin2019cognitive; stage = fulltext") == 2
    out = json.loads(run(root, "prisma", "falls", "--json").stdout)
    assert out == {"identified": {"Embase": 4, "OpenAlex": 1, "PubMed": 3, "Scopus": 6},
                   "duplicates_removed": 6, "screened": 8, "excluded_screening": 3,
                   "sought": 5, "not_retrieved": 1, "assessed": 4,
                   "excluded_fulltext": {"no control group": 1, "not randomised": 1},
                   "included": 2, "awaiting_screening": 0, "awaiting_fulltext": 0}
    s = read_studies(bib)
    assert sorted(s.loc[s["screening"] == "included", "key"]) == ["martin2019cognitive",
                                                                  "nguyen2021group"]
    svg = root / "flow.svg"
    assert run(root, "prisma", "falls", "--svg", svg).returncode == 0
    assert svg.read_text().startswith("<svg")


def test_a_bibliography_without_searches_tells_only_what_it_knows():
    out = json.loads(run(REPO, "prisma", "autonomy", "--json").stdout)
    assert out["included"] == 28 and out["records_in_bibliography"] == 28
    for key in ("identified", "duplicates_removed", "screened", "excluded_screening", "sought",
                "not_retrieved", "assessed", "excluded_fulltext"):
        assert out[key] is None, key


def test_the_jupyterlab_widget_screens_with_the_same_session(project):
    from metaanalysis.widget import screen as widget

    bib = project / "bibliographies" / "falls.bib"
    for name, source, date in EXPORTS[:2]:
        run(project, "import", "falls", SEARCHES / name, "--source", source, "--date", date)
    hostile = bib.read_text().replace("A matter of balance", "<script>alert(1)</script> balance")
    bib.write_text(hostile)
    w = widget("falls", stage="title", reviewer="eve", root=project)
    assert w.session.total == 7 and "record 1 of 7" in w.status.value
    first = w.session.current.key
    w.include.click()
    w.undo.click()
    assert w.session.current.key == first  # back to it
    w.exclude.click()
    seen = []
    while w.session.current is not None:
        seen.append(w.record.value)
        w.include.click()
    assert "Nothing left to screen" in w.record.value and w.include.disabled
    assert not any("<script>" in v for v in seen)
    assert any("&lt;script&gt;" in v for v in seen)
    b = read_bibliography(bib)
    eve = [d for e in b.entries for d in e.decisions if d.reviewer == "eve"]
    assert len(eve) == 8  # 7 records, one decided twice (undo); the later counts
    assert next(e for e in b.entries if e.key == first).screening == "excluded"
    with pytest.raises(Exception, match="exclusion_reasons"):
        widget("falls", stage="fulltext", reviewer="eve", root=project)


def test_a_record_awaiting_its_full_text_is_sought_not_assessed(project):
    bib = project / "bibliographies" / "falls.bib"
    run(project, "import", "falls", SEARCHES / "embase.ris", "--source", "Embase", "--date",
        "2026-11-02")
    bib.write_text(bib.read_text().replace("excluded: not about falls", "pending")
                   + "@comment{metaanalysis screen: martin2019cognitive; stage = title; "
                   "decision = include; reviewer = anne; date = 2026-11-26}\n")
    out = json.loads(run(project, "prisma", "falls", "--json").stdout)
    assert out["sought"] == 1 and out["assessed"] == 0 and out["awaiting_fulltext"] == 1
    assert out["screened"] == 1 and out["awaiting_screening"] == 4


@pytest.mark.parametrize("written", [
    "10.1000/ABC", "https://doi.org/10.1000/abc", "http://dx.doi.org/10.1000/abc",
    "doi:10.1000/abc.", "DOI: 10.1000/abc, ", "https://doi.org/10.1000%2Fabc",
    " 10.1000/abc\u200b", "10.1000/ab\u00adc", "\ufeff10.1000/abc"])
def test_one_doi_however_it_was_copied(written):
    """The same DOI from a database, a reference list (its full stop), a URL (percent-encoded)
    or a PDF (a zero-width space, a soft hyphen): one DOI, so the duplicate is found by it."""
    from metaanalysis.searches import normalise_doi

    assert normalise_doi(written) == "10.1000/abc"
    assert normalise_doi("not a doi") == ""


def test_a_notes_screening_counts_agree_with_its_prisma_flow(project):
    """The note's "9 références, dont 0 étude incluse dans l'analyse (...)" counted duplicates
    as records awaiting screening (8 pending where the diagram showed 3 + 3) and wrote
    "0 études incluses", "1 exclues": the counts now come from the PRISMA flow and agree
    with their words in both languages."""
    from metaanalysis.notes import Note

    for name, source, date in EXPORTS[1:3]:
        assert run(project, "import", "falls", SEARCHES / name, "--source", source, "--date",
                   date).returncode == 0
    assert run(project, "dedup", "falls", "--apply").returncode == 0
    bib = project / "bibliographies" / "falls.bib"
    bib.write_text(bib.read_text() + "@comment{metaanalysis screen: martin2019cognitive; "
                   "stage = title; decision = include; reviewer = anne; date = 2026-11-26}\n")
    flow = json.loads(run(project, "prisma", "falls", "--json").stdout)
    fr = Note("falls", root=project, lang="fr").screening_counts()
    en = Note("falls", root=project, lang="en").screening_counts()
    assert fr["n_duplicates"] == flow["duplicates_removed"] > 0
    assert fr["n_pending"] == flow["awaiting_screening"] + flow["awaiting_fulltext"]
    assert fr["n_records"] == (fr["n_included"] + fr["n_excluded"] + fr["n_pending"]
                               + fr["n_duplicates"])
    assert fr["n_included"] == 0 and fr["n_excluded"] == 1  # kept2010, typed by hand
    assert fr["included_n"] == "0\u00a0étude incluse" and en["included_n"] == "0 studies included"
    assert fr["screening_clause"] == (f" (1\u00a0exclue, {fr['n_pending']}\u00a0en attente de "
                                      f"tri, {fr['n_duplicates']}\u00a0doublons)")
    assert en["screening_clause"] == (f" (1 excluded, {fr['n_pending']} awaiting screening, "
                                      f"{fr['n_duplicates']} duplicates)")
    assert "3\u00a0novembre 2026" in fr["searched"] and "3\u00a0November 2026" in en["searched"]
    # the notebook the theme was created with says it in full
    text = Note("falls", root=project, lang="fr").say(
        "La bibliographie du thème compte {records_n}, dont {included_n} dans "
        "l'analyse{screening_clause} et {effects_n}.", "").data
    assert "dont 0\u00a0étude incluse dans l'analyse (1\u00a0exclue" in text
    assert "0\u00a0effet extrait." in text


def test_a_web_of_science_plain_text_export_is_read_and_its_duplicates_found(project):
    """Web of Science's default "Plain text file" (tagged, FN/PT ... ER) was refused as "not
    a search export": it is read with rispy's WokParser, continuation lines joined (one
    author per line), and its copy of Martin 2019 is the duplicate of PubMed's."""
    from metaanalysis.searches import detect_format, read_export

    path = SEARCHES / "wos.txt"
    assert detect_format(path.read_text(encoding="utf-8-sig")) == "wos"
    martin, kowalski = read_export(path)
    assert martin.title == ("Cognitive behavioural therapy for fear of falling in older adults: "
                            "a randomised trial")
    assert martin.authors == ["Martin, Claire", "Dupont, François"]
    assert (martin.year, martin.volume, martin.issue, martin.pages) == ("2019", "48", "2",
                                                                        "201--209")
    assert martin.doi == "10.1000/aa.2019.001" and martin.pmid == "30000001"
    assert martin.abstract.endswith("We randomised 118 people.") and martin.line == 3
    assert martin.keywords == ["fear of falling", "cognitive behavioural therapy"]
    assert kowalski.authors == ["Kowalski, Piotr"]
    assert kowalski.groups == ["Falls Prevention Network"]
    assert kowalski.entry_type == "inproceedings" and kowalski.pages == "105"
    assert run(project, "import", "falls", SEARCHES / "pubmed.nbib", "--source", "PubMed",
               "--date", "2026-11-03").returncode == 0
    r = run(project, "import", "falls", path, "--source", "Web of Science", "--date",
            "2026-11-05")
    assert r.returncode == 0 and "2 record(s) added" in r.stderr
    dedup = run(project, "dedup", "falls")
    assert "duplicate of martin2019cognitive" in dedup.stdout and "doi" in dedup.stdout


def test_authors_of_a_bibtex_export_are_split_as_bibtex_splits_them(tmp_path):
    from metaanalysis.searches import read_export

    path = tmp_path / "zotero.bib"
    path.write_text("@article{a,\n  author = {{Barnes and Noble} and M{\\\"u}ller, J{\\\"o}rg "
                    "and Jean van der Berg and others},\n  title = {T},\n  year = {2020},\n}\n")
    record, = read_export(path)
    assert record.authors == ["Barnes and Noble", "Müller, Jörg", "van der Berg, Jean"]


_MARKS = ["TY  - JOUR\n", "ER  - \n", "PMID- 123456\n", "TI  - x\n", "      y\n", "FN W\n",
          "PT J\n", "AU a, b\n", "   c\n", "ER\n", "EF\n", "@article{k,\n", "title = {t},\n",
          "}\n", "Title,Authors,Year\n", '"a,b",c,2020\n', "\t", ";", "\n", "é", "\x00", "{"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(st.sampled_from(_MARKS), st.text(max_size=12)), max_size=30),
       encoding=st.sampled_from(["utf-8", "utf-16", "utf-16-le"]))
def test_any_file_is_records_or_an_export_error_with_its_line(tmp_path, parts, encoding):
    """The search-export boundary: whatever the file holds (every format's markers mixed
    with arbitrary text, in UTF-8, in UTF-16 with its mark, or without it), import gets
    records of text or an ExportError naming a line, never another exception."""
    from metaanalysis.searches import ExportError, read_export

    path = tmp_path / "export.txt"
    path.write_bytes("".join(parts).encode(encoding, "surrogatepass"))
    try:
        records = read_export(path)
    except ExportError as exc:
        assert exc.problem.line >= 0 and str(path) in str(exc)
        return
    for r in records:
        assert isinstance(r.title, str) and all(isinstance(a, str) for a in r.authors)


def test_imported_authors_are_names_bibtex_reads_right(project):
    """Scopus's "Authors" column ("Martin C.; Dupont F.") was written as 'Martin C. and
    Dupont F.', which BibTeX reads as first name Martin, surname C. (a note's label said
    "C. & F."): full names are taken where the export has them (without Scopus's ids), a
    surname-initials name is written 'Martin, C.', a group author braced as one name."""
    from metaanalysis.citations import full, short
    from metaanalysis.importing import author_field

    scopus, *_ = read_export(SEARCHES / "scopus.csv")
    assert scopus.authors == ["Martin, Claire", "Dupont, François"]
    assert author_field(Record(authors=["Martin C.", "Lee JH"])) == "Martin, C. and Lee, JH"
    assert author_field(Record(authors=["Barnes and Noble", "Ng, K."],
                               groups=["Falls Prevention Network"])) == \
        "{Barnes and Noble} and Ng, K. and {Falls Prevention Network}"
    run(project, "import", "falls", SEARCHES / "wos.txt", "--source", "Web of Science",
        "--date", "2026-11-05")
    bib = read_bibliography(project / "bibliographies" / "falls.bib")
    kowalski = next(e for e in bib.entries if e.key.startswith("kowalski"))
    assert full(kowalski.fields["author"]) == "Kowalski, P., & Falls Prevention Network"
    assert short("Martin C. and Dupont F.", 2019) == "Martin & Dupont 2019"


def test_dedup_reads_the_first_author_as_the_notes_do():
    from types import SimpleNamespace

    from metaanalysis.dedup import _first_author

    def first(author):
        return _first_author(SimpleNamespace(fields={"author": author}))

    assert first("van der Berg, Jean and Lee, K.") == first("Jean van der Berg") == "vanderberg"
    assert first("Martin C. and Dupont F.") == first("Martin, Claire") == "martin"
    assert first("{World Health Organization}") == "worldhealthorganization" and first("") == ""


@pytest.mark.parametrize("name", ["scopus.csv", "wos.txt", "embase.ris"])
def test_an_export_in_utf16_with_its_mark_is_read_as_in_utf8(tmp_path, name):
    """Excel's "Unicode Text" and Web of Science's older tab-delimited exports are UTF-16,
    starting with a byte-order mark: they were refused ("byte 0xff is not UTF-8"). Read,
    they give the records of the same export in UTF-8; a file that says UTF-16 but is not
    is refused with its line."""
    text = (SEARCHES / name).read_text(encoding="utf-8")
    for encoding in ("utf-16", "utf-16-be"):
        path = tmp_path / f"{encoding}-{name}"
        data = text.replace("\n", "\r\n").encode(encoding)
        path.write_bytes(data if encoding == "utf-16" else b"\xfe\xff" + data)
        assert read_export(path) == read_export(SEARCHES / name), encoding
    bad = tmp_path / "bad.csv"
    bad.write_bytes("Title\r\nA\r\nB".encode("utf-16") + b"\x00\xd8")  # a lone surrogate
    with pytest.raises(ExportError, match=r"bad.csv:3: -: the file says it is UTF-16"):
        read_export(bad)
