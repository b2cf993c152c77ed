"""Prose cells (``%%say`` / ``%%when``): Markdown in both languages, values filled by name."""

import pytest

from metaanalysis.prose import parse_line, split_languages


def test_split_languages_keeps_the_markdown_of_each_language():
    body = "\n[fr]\n## Titre\n\nUn paragraphe {k}.\n[en]\n## Title\n\nA paragraph {k}.\n"
    assert split_languages(body) == {"fr": "## Titre\n\nUn paragraphe {k}.",
                                     "en": "## Title\n\nA paragraph {k}."}
    # the order of the languages is free; a marker may carry spaces
    assert split_languages(" [en] \nB\n[fr]\nA")["fr"] == "A"


@pytest.mark.parametrize("body, message", [
    ("[fr]\nA", r"missing \[en\]"),
    ("A\n[fr]\nB\n[en]\nC", "line 1: text before the first language marker"),
    ("[fr]\nA\n[en]\nB\n[fr]\nC", r"line 5: \[fr\] appears twice"),
    ("", r"missing \[fr\] and \[en\]"),
])
def test_split_languages_says_what_is_wrong(body, message):
    with pytest.raises(ValueError, match=message):
        split_languages(body)


def test_parse_line_reads_quoted_options():
    assert parse_line('data outcome="mortality at follow-up"', "when") == (
        ["data"], {"outcome": "mortality at follow-up"})
    with pytest.raises(ValueError, match="unknown option colour"):
        parse_line("colour=red", "say")
    with pytest.raises(ValueError, match="quote values"):
        parse_line('outcome="unclosed', "say")


def test_magics_fill_values_escape_them_and_name_unknown_fields(tmp_path):
    """In IPython (the lab's kernel), a Note gives %%say and %%when bound to it."""
    from IPython.core.interactiveshell import InteractiveShell

    from metaanalysis.notes import Note

    from test_render import make_project

    root = make_project(tmp_path)
    ip = InteractiveShell.instance()
    try:
        note = Note("autonomy", lang="en", root=root)
        out = ip.run_cell_magic("when", 'data outcome="mortality"',
                                "[fr]\nRR {est}\n[en]\nMortality: {est}, {n_studies} trials")
        assert out.data.startswith("Mortality: 0.") and "{" not in out.data
        assert ip.run_cell_magic("when", "no_data", "[fr]\nx\n[en]\ny").data == ""
        with pytest.raises(ValueError, match=r"\{effect\} is not a value of this note.*\{est\}"):
            ip.run_cell_magic("say", "", "[fr]\n{effect}\n[en]\n{effect}")
        with pytest.raises(ValueError, match="name one condition, one of data, no_data, bias"):
            ip.run_cell_magic("when", "sometimes", "[fr]\nx\n[en]\ny")
        with pytest.raises(ValueError, match="unknown outcome 'happiness'"):
            ip.run_cell_magic("say", "outcome=happiness", "[fr]\nx\n[en]\ny")
        # values from the bibliography are text, never markup
        from metaanalysis.sanitize import escape_markdown
        note.outcomes[0].label = "<b>*x*</b>"
        assert note.say("{outcome}", "{outcome}", 0).data == escape_markdown("<b>*x*</b>") \
            != "<b>*x*</b>"
    finally:
        InteractiveShell.clear_instance()
