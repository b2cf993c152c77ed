"""The quick BibTeX split gives bibtexparser's blocks, line for line, or leaves the text to it."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaanalysis import bibsplit

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted(ROOT.glob("bibliographies/*.bib")) + sorted((ROOT / "tests").rglob("*.bib"))


def _text(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_of_the_project_splits_as_bibtexparser_splits_it(path):
    text = _text(path)
    quick = bibsplit.quick_split(text)
    if quick is None:
        # only files whose point is bad BibTeX are left to bibtexparser
        assert "bad" in path.parts, path
    else:
        assert quick == bibsplit.bibtexparser_split(text)


def test_the_themes_files_are_split_quickly():
    themes = sorted(ROOT.glob("bibliographies/*.bib"))
    assert len(themes) >= 4
    for path in themes:
        assert bibsplit.quick_split(_text(path)) is not None, path


#: Plain, but every kind of plain: each is split quickly, and as bibtexparser splits it.
PLAIN = [
    "@article{a, title = {T}}",
    "@Article {a,\n  title = {T},\n}\n",
    "% a comment line\n@book{a,\n title = {A {Nested {Deep}} title},\n year = 2019,\n}\n",
    '@misc{a, title = "Quoted {with} braces, and a comma", note = {x}}',
    "@misc{a, title = {Escaped \\{ brace and \\} other}, url = {http://x.org/a@b}}",
    "@string{jse = {Journal of Synthetic Evidence}}\n@article{a, journal = jse # { (online)}}",
    "@comment{metaanalysis duplicate: b = a; rule = doi; score = 100}\n@misc{b,}",
    "@misc{nokey}\n@misc{a, month = jan, year = {2019}}",
    "@misc{a,\r\n  title = {Windows},\r\n  year = {2020}\r\n}\r\n",
    "@misc{a, title = {x}}\n@misc{a, title = {y}}\n",  # a duplicate key
    "@misc{a, title = {x}}}\n,  year = {2019},\n}",  # a stray brace: the rest is a comment
    "@misc{a, abstract = {email me at x@y.org (or @home)}, title = {T}}",
    "@misc{a, title = {Line one\nline two\n\nline four}, year = {2019}}\n\n\ntext\n@misc{b}",
    "@misc{a, weird key = {v}, = {empty name}}",
    # as JabRef, Zotero and Google Scholar write them
    "% Encoding: UTF-8\n\n@Article{Smith2019,\n  author    = {Smith, J. and M{\\\"u}ller, H.},\n"
    "  title     = {50\\% and \\_ and $\\alpha$},\n  file      = {:s.pdf:PDF},\n}\n\n"
    "@Comment{jabref-meta: grouping:\n0 AllEntriesGroup:;\n1 StaticGroup:x\\;0\\;1\\;;\n}\n",
    "@article{zot1,\n\ttitle = {Tai chi},\n\tabstract = {95\\% CI; p {\\textless} 0.05.},\n"
    "\tauthor = {Wong, A. and {World Health Organization}},\n\tmonth = mar,\n}\n",
    "@ARTICLE{f2008, \nauthor={N. Ayewah}, \nmonth={Sept},}\n\n@InProceedings{s,\n"
    'author="Cruzes, D.\nand Felderer, M.",\ntitle="Agile? A {Cross-Case} Analysis"\n}\n',
]


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_is_split_quickly_and_the_same(text):
    quick = bibsplit.quick_split(text)
    assert quick is not None
    assert quick == bibsplit.bibtexparser_split(text)


#: Not plain: each is left to bibtexparser (whose blocks the reader then takes).
NOT_PLAIN = [
    "@misc(a, title = {T})",
    "@preamble{\"\\newcommand{\\x}{y}\"}\n@misc{a, title = {T}}",
    "@misc{a, title = {T}, title = {U}}",
    "@misc{a, title = {T}\n@misc{b, title = {U}}",
    "@misc{a, title = {unbalanced}",
    "@misc{a, title = \"a {\"} quote\"}",
    "@misc{a, title = {a line ending in a backslash\\\n}}",
    "@misc{a, title = {" + "{" * 8 + "deep" + "}" * 8 + "}}",
    "@string{x = {a}}\n@string{x = {b}}",
]


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_what_is_not_plain_is_left_to_bibtexparser(text):
    assert bibsplit.quick_split(text) is None
    assert bibsplit.split(text) == bibsplit.bibtexparser_split(text)


def test_a_braced_value_is_given_inside_its_braces():
    (entry,) = bibsplit.split("@misc{a,\n title = {A {B} c},\n year = 2019,\n"
                              " note = {x} # {y}}")
    assert entry.fields == [("title", "{A {B} c}", 1, "A {B} c"), ("year", "2019", 2, None),
                            ("note", "{x} # {y}", 3, None)]


_PIECES = ["@article{", "@misc{", "@comment{", "@string{", "@preamble{", "@misc(", "@", "{", "}",
           "(", ")", '"', ",", "=", "#", "\n", "\r\n", " ", "\t", "\\", "\\{", "\\}", '{"}',
           "%", "a", "key", "title", "x@y", "é", "\u00a0", "\x1c", "jan"]


@st.composite
def bibtexish(draw):
    """Text made of BibTeX's pieces, and entries that are nearly right (their values drawn
    from the same pieces), one after the other."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            parts.append("".join(draw(st.lists(st.sampled_from(_PIECES), max_size=12))))
        else:
            fields = [f"{draw(st.sampled_from(['title', 'year', 'a b', '']))} = "
                      + draw(st.sampled_from(["{", '"', ""]))
                      + "".join(draw(st.lists(st.sampled_from(_PIECES), max_size=6)))
                      + draw(st.sampled_from(["}", '"', ""]))
                      for _ in range(draw(st.integers(0, 3)))]
            parts.append(f"@{draw(st.sampled_from(['article', 'Misc', 'comment', 'string']))}"
                         f"{{{draw(st.sampled_from(['k1', 'k2', '']))},"
                         + draw(st.sampled_from([",\n", ", ", ","])).join(fields)
                         + draw(st.sampled_from(["}", ",}", "\n}\n", ""])))
    return draw(st.sampled_from(["", "\n", " % x\n"])).join(parts)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bibtexish())
def test_any_text_splits_as_bibtexparser_splits_it(text):
    quick = bibsplit.quick_split(text)
    if quick is not None:
        assert quick == bibsplit.bibtexparser_split(text)


_THEME = (ROOT / "bibliographies" / "employment.bib").read_text(encoding="utf-8")
_STARTS = [i + 1 for i in range(len(_THEME)) if _THEME.startswith("\n@", i)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(_STARTS) - 6), st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from(_PIECES + ["", "", ""])),
    min_size=1, max_size=4))
def test_a_theme_file_with_a_few_edits_splits_as_bibtexparser_splits_it(first, edits):
    """Five entries of a theme's file, each edit inserting a piece of BibTeX at some place
    (or, for "", deleting a character there): the quick split, when it takes the text, gives
    bibtexparser's blocks (run once here with 8,000 edited texts of the three themes'
    files: 4,084 split quickly, all equal)."""
    text = _THEME[_STARTS[first]:_STARTS[first + 5]]
    for where, piece in edits:
        i = int(where * len(text))
        text = text[:i] + piece + text[i + (piece == ""):]
    quick = bibsplit.quick_split(text)
    if quick is not None:
        assert quick == bibsplit.bibtexparser_split(text)
