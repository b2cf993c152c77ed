"""Nothing injected: every boundary where outside text reaches a page, a shell or a file name.

The property test puts arbitrary text into bibliography fields, themes.json labels and
parameter values, builds the note's outputs and converts them with the note template: the page
must hold nothing outside the allowlist. The other tests each close one door: make variables,
the reproduce command, variant names, parameters, themes.json, reserved names."""

import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaanalysis.cli import from_make
from metaanalysis.fingerprints import plan, variant_name
from metaanalysis.pages import cite_bibtex, cite_text, command_for, convert
from metaanalysis.parameters import RenderError, coerce_parameters, notebook_parameters
from metaanalysis.render import render
from metaanalysis.scaffold import new_theme
from metaanalysis.sanitize import escape_markdown, page_violations, safe_url, sanitize
from metaanalysis.text import PAGE_WORDS

REPO = Path(__file__).resolve().parent.parent
PAYLOADS = [
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<base href='https://evil'>",
    "<style>body{display:none}</style>", "<form action='https://evil'><input></form>",
    "[click](javascript:alert(1))", "![x](data:text/html,<script>alert(1)</script>)",
    "<a href='javascript:alert(1)'>x</a>", "<svg onload=alert(1)>", "<iframe src=//evil>",
    "<object data=x>", "<<script>script>", "`<b>` **bold** _x_ # h | t | ~~s~~ $x$",
    "\"'><svg/onload=alert(1)>", "<a href=\"data:text/html;base64,PHNjcmlwdD4=\">d</a>",
]
hostile = st.one_of(st.sampled_from(PAYLOADS), st.text(
    alphabet=st.sampled_from(list("<>\"'&=/:;()[]!*_`#|~$\\ {}\n") + list("scriptmetahref")),
    min_size=1, max_size=40), st.text(max_size=30))


def _bib_text(value: str) -> str:
    """A value that BibTeX can hold in braces (balanced: braces and backslashes dropped)."""
    return value.replace("{", "(").replace("}", ")").replace("\\", "/")


def _effect_text(value: str) -> str:
    """A value the effects grammar can hold (no ; | = or line break)."""
    out = "".join(c for c in _bib_text(value) if c not in ";|=\n\r").strip()
    return out or "x"


def make_hostile_project(root: Path, text: str) -> Path:
    (root / "bibliographies").mkdir(parents=True, exist_ok=True)
    b, e = _bib_text(text), _effect_text(text)
    entries = []
    for i, (n1, n2) in enumerate([(40, 42), (55, 50), (30, 33)]):
        entries.append(
            f"@article{{s{i},\n  author = {{{b} and Doe, J}},\n  title = {{{b}}},\n"
            f"  year = {{{2000 + i}}},\n  doi = {{10.1/{e.replace(' ', '')}}},\n"
            f"  screening = {{included}},\n  country = {{{b}}},\n  risk_of_bias = {{high}},\n"
            f"  effects = {{outcome = {e}; measure = SMD; m1i = {10 + i}; sd1i = 3; n1i = {n1}; "
            f"m2i = 9; sd2i = 3; n2i = {n2}; source = {e}}},\n}}\n\n")
    entries.append(f"@article{{x,\n  title = {{{b}}},\n  year = {{2020}},\n"
                   f"  screening = {{excluded: reason {b}}},\n}}\n")
    (root / "bibliographies" / "t.bib").write_text("".join(entries), encoding="utf-8")
    label = {"fr": text or "x", "en": text or "x"}
    themes = {"t": {"title": label, "summary": label, "intervention": label,
                    "bibliography": "bibliographies/t.bib", "notebook": "notebooks/t.ipynb",
                    "sources": [text, f"{text} https://doi.org/10.1/{e}", label],
                    "outcomes": [{"outcome": e, "where": {}, "favours": "higher",
                                  "label": label, "domain": text}]}}
    (root / "themes.json").write_text(json.dumps(themes), encoding="utf-8")
    return root


def note_page(root: Path, text: str, lang: str = "en") -> str:
    """The note's outputs, as a notebook's would be, converted by the note template."""
    import nbformat
    from IPython.core.formatters import DisplayFormatter

    from metaanalysis.notes import Note

    note = Note("t", lang=lang, root=root)
    outputs = [note.header(), note.sources(), note.say(fr="### {outcome} : {est}",
                                                       en="### {outcome}: {est}"),
               note.forest(0), note.table(), note.references(), note.summary_of_findings(),
               note.prisma(), note.risk_of_bias(), note.forest(0, subgroup="country")]
    cells = [nbformat.v4.new_markdown_cell("## Researcher's heading")]
    formatter = DisplayFormatter()  # what the kernel sends for each display

    def displays(obj):
        return [d for part in obj.parts for d in displays(part)] if hasattr(obj, "parts") \
            else [obj]

    for obj in outputs:
        cell = nbformat.v4.new_code_cell("")
        for shown in displays(obj):
            data, metadata = formatter.format(shown)
            cell.outputs.append(nbformat.v4.new_output("display_data", data=data,
                                                       metadata=metadata))
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    changed = [("exclude", text), ("outcome", text)]
    # the variant's comparison table, over the same hostile labels (one value changed)
    from metaanalysis.compare import compare, comparison_html

    published = note.summary()
    variant = json.loads(json.dumps(published, default=str))
    for o in variant["outcomes"]:
        o["k"] = o.get("k", 0) + 1
    comparison = comparison_html(compare(published, variant, lang), lang)
    resources = {"note": {
        "title": text, "lang": lang, "brand": text, "words": PAGE_WORDS[lang], "date": text,
        "date_text": text, "withheld": text,
        "parameters": changed, "changed": changed, "variant": True, "variant_label": text,
        "bibliography": text, "sha256": text, "versions": [(text, text)],
        "command": command_for("t", dict(changed)),
        "csv": "data/t.csv", "json": "data/t.json", "index": "index.html",
        "comparison": comparison, "pdf": "t.pdf",
        "alternates": [("fr", "t.html"), ("en", "en/t.html")],
        "switch": [("fr", "Français", "../t.html")],
        "bibtex": cite_bibtex("t", text, lang, text),
        "cite": cite_text(text, lang, text)}}
    return convert(nb, resources, REPO)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=hostile)
def test_no_element_attribute_or_url_outside_the_allowlist(tmp_path_factory, text):
    root = make_hostile_project(tmp_path_factory.mktemp("hostile"), text)
    page = note_page(root, text)
    assert page_violations(page) == []
    lowered = page.lower()
    for tag in ("<script", "<iframe", "<object", "<form", "<base", "<input", "<meta http-equiv=\"refresh"):
        assert tag not in lowered


def test_every_payload_at_once_and_what_the_checker_would_catch(tmp_path):
    text = " ".join(PAYLOADS)
    page = note_page(make_hostile_project(tmp_path, text), text, lang="fr")
    assert page_violations(page) == []
    assert "&lt;script&gt;" in page  # shown as text, not dropped silently
    # the key messages and a variant's comparison table carry the hostile labels as text
    assert "Messages clés" in page and "Comparaison avec la note publiée" in page
    assert "<mark>" in page and 'hreflang="fr"' in page
    # the checker itself sees what the sanitizer removes
    bad = ('<meta http-equiv="refresh" content="0"><script></script><a href="javascript:x">a</a>'
           '<img src="x" onerror="y"><style></style><style></style><base href="x">')
    found = " ".join(page_violations(bad))
    for fragment in ("refresh", "<script>", "javascript:x", "onerror", "second <style>", "<base>"):
        assert fragment in found
    assert page_violations(sanitize(bad)) == []


@pytest.mark.parametrize("url,ok", [
    ("https://doi.org/10.1/x", True), ("mailto:a@b.c", True), ("#top", True),
    ("autonomy.html", True), ("data/autonomy.csv", True), ("javascript:alert(1)", False),
    (" JaVaScRiPt:alert(1)", False), ("java\tscript:alert(1)", False),
    ("data:text/html,<script>", False), ("//evil.example/x", False), ("vbscript:x", False)])
def test_link_schemes(url, ok):
    assert safe_url("a", "href", url) is ok


def test_escaped_markdown_renders_as_the_same_text():
    from nbconvert.filters import markdown2html

    text = "RR 0.85 [0.75; 0.97] *a* _b_ <i>c</i> https://x.org 12:30 a|b"
    html = markdown2html(escape_markdown(text))
    assert "<i>" not in html and "<em>" not in html and "<a " not in html
    assert "[0.75; 0.97]" in html and "https://x.org" in html and "&lt;i&gt;" in html


# ------------------------------------------------------------------ shell and file names
def test_make_variables_never_reach_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    for args in ([f"THEME=x; touch {marker}"],
                 ["THEME=autonomy", f"PARAMS=-p exclude \"$$(touch {marker})\" `touch {marker}`"],
                 [f"JOBS=1; touch {marker}"],
                 [f"THEME=autonomy", f"PARAMS=$(shell touch {marker})"]):
        target = "notes" if args[0].startswith("JOBS") else "note"
        run = subprocess.run(["make", "-s", target, *args], cwd=REPO, capture_output=True,
                             text=True, timeout=300)
        assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
        assert not marker.exists(), args


def test_from_make_reads_the_variables_as_typed():
    assert from_make("note", {"THEME": "autonomy", "PARAMS": "-p method DL -p exclude "
                              "'country=UK, country=USA'"}) == (
        ["autonomy"], {"method": "DL", "exclude": "country=UK, country=USA"}, None)
    assert from_make("notes", {"JOBS": "2"}) == ([], {}, 2)
    for target, env, fragment in [("note", {}, "THEME is missing"),
                                  ("note", {"THEME": "../x"}, "not a theme name"),
                                  ("note", {"THEME": "a", "PARAMS": "--site /etc"}, "-p NAME"),
                                  ("note", {"THEME": "a", "PARAMS": "-p 'x"}, "quotation"),
                                  ("notes", {"JOBS": "two"}, "JOBS")]:
        with pytest.raises(ValueError, match=fragment):
            from_make(target, env)


def test_reproduce_command_is_quoted_for_the_shell(tmp_path):
    value = "country=$(touch pwned) `touch pwned2`; it's \"quoted\""
    cmd = command_for("autonomy", {"exclude": value, "level": 90.0})
    words = shlex.split(cmd, comments=True)
    assert words[:3] == ["make", "note", "THEME=autonomy"] and len(words) == 4
    params = shlex.split(words[3].split("=", 1)[1])
    assert params == ["-p", "exclude", value, "-p", "level", "90"]
    direct = shlex.split(cmd.split("   # or: ", 1)[1])
    assert direct == ["metaanalysis", "render", "autonomy", *params]
    # a French page's comment is French; the command the same
    fr = command_for("autonomy", {"exclude": value, "level": 90.0}, "fr")
    assert fr == cmd.replace("   # or: ", "   # ou : ")
    assert shlex.split(fr, comments=True) == words
    run = subprocess.run(["sh", "-c", "printf '%s\\n' " + cmd.split(" ", 2)[2]], cwd=tmp_path,
                         capture_output=True, text=True)
    assert list(tmp_path.iterdir()) == []  # nothing ran
    theme, params_line = run.stdout.splitlines()
    assert theme == "THEME=autonomy"
    assert shlex.split(params_line.split("=", 1)[1])[2] == value


def test_variant_names_are_unique_for_the_effective_parameters():
    nb = REPO / "notebooks" / "autonomy.ipynb"
    defaults = notebook_parameters(nb)

    def name(params):
        return variant_name("autonomy", coerce_parameters(params, defaults, nb))

    assert name({"exclude": "country=UK,country=USA"}) == name({"exclude": "country=USA, country=UK"})
    assert name({"exclude": "country=UK,country=USA"}) != name({"exclude": "country=UK country=USA"})
    assert name({"method": "DL", "lang": "en"}) == name({"lang": "en", "method": "dl"})
    assert name({"method": "DL"}) == "autonomy--method-DL"
    assert all(c.isalnum() or c in "-_" for c in name({"exclude": "a/../../b=<x>"}))


def test_parameter_values_are_validated_and_normalised_before_anything_runs(tmp_path):
    nb = REPO / "notebooks" / "autonomy.ipynb"
    defaults = notebook_parameters(nb)
    assert coerce_parameters({"lang": "FR", "method": "dl"}, defaults, nb) == {
        "lang": "fr", "method": "DL"}
    with pytest.raises(RenderError, match="theme is not a parameter"):
        coerce_parameters({"theme": "../../outside"}, defaults, nb)
    with pytest.raises(RenderError, match="no effect has country"):
        plan(["autonomy"], {"exclude": "country=Atlantis"}, tmp_path / "site", REPO)
    assert not (tmp_path / "site").exists()


def test_reserved_theme_names_are_refused(tmp_path):
    (tmp_path / "themes.json").write_text("{}")
    for slug in ("index", "data", "variants"):
        with pytest.raises(RenderError, match="reserved"):
            new_theme(slug, tmp_path)
    assert json.loads((tmp_path / "themes.json").read_text()) == {}


def test_a_theme_outside_the_project_fails_alone(tmp_path):
    from test_render import make_project

    root = make_project(tmp_path, themes=("territories", "autonomy"))
    themes = json.loads((root / "themes.json").read_text())
    themes["autonomy"]["bibliography"] = "../../../etc/outside.bib"
    (root / "themes.json").write_text(json.dumps(themes))
    outcomes = {o.theme: o for o in render([], root=root, site=tmp_path / "site",
                                           progress=lambda m: None)}
    assert outcomes["autonomy"].status == "failed"
    assert "autonomy.bibliography" in outcomes["autonomy"].message
    assert outcomes["territories"].status == "rendered"
    assert (tmp_path / "site" / "index.html").exists()


def test_the_header_hash_is_of_the_bytes_the_note_read(tmp_path):
    """The bibliography is edited while the note renders: the header names what was read."""
    import nbformat

    from test_render import make_project

    root = make_project(tmp_path, themes=("territories",))
    bib = root / "bibliographies" / "territories.bib"
    original = hashlib.sha256(bib.read_bytes()).hexdigest()
    nb_path = root / "notebooks" / "territories.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "open(note.bibliography, 'a').write('\\n% edited during the render\\n')"))
    nbformat.write(nb, nb_path)
    # the editions one after the other, French first: rendered at once, each appends to the
    # file and the French one could read the English one's edit (its hash is then rightly
    # of those bytes, and this test's premise is gone)
    outcomes = render(["territories"], root=root, site=tmp_path / "site", jobs=1,
                      progress=lambda m: None)
    assert outcomes[0].status == "rendered", outcomes
    page = (tmp_path / "site" / "territories.html").read_text()
    assert hashlib.sha256(bib.read_bytes()).hexdigest() != original
    assert original in page


def test_a_page_may_link_its_other_edition_but_no_style_sheet():
    from metaanalysis.sanitize import page_violations

    assert page_violations('<link rel="alternate" hreflang="en" href="en/autonomy.html">') == []
    assert page_violations('<link rel="stylesheet" href="https://evil.example/x.css">')
    assert page_violations('<link rel="alternate" hreflang="en" href="javascript:alert(1)">')


# ---------------------------------------------------------------- terminal
@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_printable_text_holds_no_control_character(text):
    """What the command writes to a terminal: every control character but tab and line feed
    shown as \\xNN, and nothing else changed."""
    from metaanalysis.terminal import printable

    shown = printable(text)
    assert not any((ord(c) < 32 and c not in "\t\n") or 0x7f <= ord(c) <= 0x9f for c in shown)
    if not any((ord(c) < 32 and c not in "\t\n") or 0x7f <= ord(c) <= 0x9f for c in text):
        assert shown == text


def test_escape_sequences_in_a_bibliography_reach_the_terminal_as_text(tmp_path):
    """A key and values holding escape sequences (set the window's title, clear the screen):
    check prints them as text; a problem's text is printable wherever it is written."""
    bib = tmp_path / "esc.bib"
    bib.write_text("@article{a\x1b]0;pwned\x07, year={20\x1b[2J19}, screening={maybe\x9b31m}}\n")
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "check", str(bib)],
                         capture_output=True, text=True)
    out = run.stdout + run.stderr
    assert run.returncode == 1 and "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "a\\x1b]0;pwned\\x07: year is '20\\x1b[2J19'" in out
    from metaanalysis.bibliography import read_bibliography

    assert all("\x1b" not in str(p) for p in read_bibliography(bib).problems)


def test_data_written_to_a_file_keeps_its_text(tmp_path):
    """extract's table written to a pipe or a file is data: its text exactly as in the
    bibliography (the escaping is for what a terminal shows)."""
    bib = tmp_path / "title.bib"
    bib.write_text("@article{a, title={A \x1b[1m bold}, year={2020}, screening={included}, "
                   "effects={outcome = o; measure = GEN; yi = 0.1; vi = 0.01}}\n")
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "extract", str(bib)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and "A \x1b[1m bold" in run.stdout


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=hostile)
def test_the_variants_indexes_show_hostile_titles_and_parameters_as_text(tmp_path_factory, text):
    """The variants' index pages (one per language) carry a theme's title (themes.json) and a
    reviewer's parameter values (the variant's JSON): text, within the allowlist."""
    import shutil

    from metaanalysis.pages import write_variants_index

    root = make_hostile_project(tmp_path_factory.mktemp("variants"), text)
    (root / "notebooks").mkdir()
    shutil.copy(REPO / "templates" / "theme.ipynb", root / "notebooks" / "t.ipynb")
    (root / "templates").symlink_to(REPO / "templates")
    folder = root / "site" / "variants"
    (folder / "data").mkdir(parents=True)
    for lang in ("fr", "en"):
        (folder / "data" / f"t--{lang}.json").write_text(json.dumps(
            {"theme": "t", "parameters": {"theme": "t", "exclude": text, "lang": lang}}))
        (folder / f"t--{lang}.html").write_text("<p>x</p>")
    pages = write_variants_index(root / "site", root)
    assert [p.relative_to(root / "site").as_posix() for p in pages] == [
        "variants/index.html", "variants/en/index.html"]
    for path in pages:
        page = path.read_text(encoding="utf-8")
        assert page_violations(page) == []
        lowered = page.lower()
        for tag in ("<script", "<iframe", "<object", "<form", "<base", "<input", "<svg"):
            assert tag not in lowered
        assert page.count("<tr>") == 3  # the head and the two variants
