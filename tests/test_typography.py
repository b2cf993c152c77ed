"""French typography of the pages: narrow no-break spaces, words that agree with counts."""

from hypothesis import given, settings
from hypothesis import strategies as st

from metaanalysis.text import counted
from metaanalysis.typography import NNBSP, french_spacing, french_text


def test_narrow_no_break_space_before_high_punctuation_and_inside_guillemets():
    assert french_text("Résultat : 0,85 ; « trim-and-fill » ! Vraiment ?") == (
        f"Résultat{NNBSP}: 0,85{NNBSP}; «{NNBSP}trim-and-fill{NNBSP}»{NNBSP}! Vraiment{NNBSP}?")
    assert french_text("https://doi.org/10.1/x a:b") == "https://doi.org/10.1/x a:b"


def test_tags_styles_figures_and_code_are_left_alone():
    page = ("<style>a { color : red; }</style><p title=\"a : b\">Voir : ici</p>"
            "<svg><text>x : y</text></svg><pre><code>a : b</code></pre><p>fin ;</p>")
    out = french_spacing(page)
    assert "<style>a { color : red; }</style>" in out and 'title="a : b"' in out
    assert f"Voir{NNBSP}: ici" in out and "<text>x : y</text>" in out
    assert "<code>a : b</code>" in out and f"fin{NNBSP};" in out


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab <>/:;«»!?\"= spvgcodetyl")), max_size=60))
def test_only_spaces_change(page):
    """Whatever the input, the result differs only by spaces turned narrow no-break."""
    def strip(x):
        return x.replace(" ", "").replace("\u00a0", "").replace(NNBSP, "")

    out = french_spacing(page)
    assert strip(out) == strip(page) and len(out) == len(page)


def test_words_agree_with_their_count():
    assert counted(1, "missing_study", "fr") == "1\u00a0étude manquante"
    assert counted(0, "missing_study", "fr") == "0\u00a0étude manquante"
    assert counted(3, "missing_study", "fr") == "3\u00a0études manquantes"
    assert counted(1, "missing_study", "en") == "1 missing study"
    assert counted(0, "missing_study", "en") == "0 missing studies"


def test_the_pooled_measure_agrees_in_french():
    from metaanalysis.text import pooled_measure

    assert pooled_measure("SMD", "fr") == "différence de moyennes standardisée combinée"
    assert pooled_measure("RR", "fr") == "risque relatif combiné"
    assert pooled_measure("COR", "fr") == "corrélation combinée"
    assert pooled_measure("OR", "en") == "pooled odds ratio"


def test_a_section_counts_its_studies_and_effects_in_words():
    from metaanalysis.notes import Note

    note = Note("employment", lang="fr")
    text = note.section("mental health").parts[1].data
    assert "différence de moyennes standardisée combinée" in text
    assert "études" in text and "effets" in text and "issus" not in text
