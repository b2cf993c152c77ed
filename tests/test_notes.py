"""The Note API and the bilingual formatting of numbers."""

import math

import pytest

from metaanalysis.notes import Note, apply_exclusions, validate_parameters
from metaanalysis.text import estimate_ci, num


def test_numbers_follow_the_language():
    assert num(-1234.5, "fr", 1) == "\u22121\u202f234,5"
    assert num(0.72, "en") == "0.72"
    assert estimate_ci(0.72, 0.55, 0.95, "en") == "0.72 (95% CI 0.55 to 0.95)"
    assert estimate_ci(0.72, 0.55, 0.95, "fr") == "0,72 (IC 95\u00a0% 0,55 à 0,95)"


def test_note_numbers_come_from_the_fit():
    note = Note("autonomy", lang="en")
    mortality = next(o for o in note.outcomes if o.outcome == "mortality")
    r = mortality.result
    f = note.fields(note.outcomes.index(mortality))
    assert f["k"] == r.k == len(mortality.data)
    assert f["estimate"] == f"{math.exp(r.estimate):.2f}"
    text = note.say(fr="{est}", en="{est}", outcome=note.outcomes.index(mortality)).data
    assert text.startswith(f"{math.exp(r.estimate):.2f} (95% CI")


def test_exclusions():
    note = Note("autonomy", lang="en")
    kept, dropped = apply_exclusions(note.all_effects, "country=USA")
    assert len(dropped) and (dropped["country"] == "USA").all()
    assert not (kept["country"] == "USA").any()
    kept, dropped = apply_exclusions(note.all_effects, "high_rob")
    assert len(dropped) and len(kept)
    with pytest.raises(ValueError, match="no column"):
        apply_exclusions(note.all_effects, "nope=1")


def test_parameters_are_validated():
    assert validate_parameters({"method": "dl", "level": "90"}) == {"method": "DL", "level": 90.0}
    for bad in ({"method": "X"}, {"level": 120}, {"lang": "de"}, {"measure": "HR"}):
        with pytest.raises(ValueError):
            validate_parameters(bad)


def test_publication_years_come_from_the_pooled_studies():
    note = Note("autonomy", lang="en")
    i = next(j for j, o in enumerate(note.outcomes) if o.outcome == "mortality")
    f = note.fields(i)
    years = note.outcomes[i].data["year"]
    assert (f["year_min"], f["year_max"]) == (int(years.min()), int(years.max()))


def test_p_values_are_never_shown_as_zero():
    from metaanalysis.text import pvalue

    assert pvalue(0.0004, "fr") == "p < 0,001" and pvalue(0.0004, "en") == "p < 0.001"
    assert pvalue(0.0123, "fr") == "p = 0,012"
    from metaanalysis.notes import Note
    note = Note("education", lang="fr")
    html = note.summary_of_findings().data
    assert "p = 0,000" not in html and "p &lt; 0,001" in html


def test_trim_and_fill_without_a_missing_study_says_so():
    """Fear of falling: trim-and-fill imputes none; the note says so rather than "imputes 0
    missing studies, which would give an effect of -0.23"; nursing-home admission imputes 2."""
    for lang, none, some in (("en", "imputes no missing study: the effect stays at",
                              "imputes 2 missing studies, which would give"),
                             ("fr", "n'impute aucune étude manquante : l'effet reste de",
                              "impute 2 études manquantes, ce qui donnerait")):
        note = Note("autonomy", lang=lang)
        fear = note.outcome("fear of falling")
        assert note.bias_tests(fear)[1].k0 == 0
        text = repr(note.section(fear)).replace("\xa0", " ")
        assert none in text and "impute 0" not in text and "imputes 0" not in text
        home = note.outcome("nursing home admission")
        assert note.bias_tests(home)[1].k0 == 2 and some in repr(note.section(home)).replace("\xa0", " ")


def test_the_reasons_of_a_certainty_are_separated_as_the_language_writes_them():
    fr = Note("autonomy", lang="fr").summary_of_findings().data
    assert "élevé ; incohérence" in fr and "effet; " not in fr
    en = Note("autonomy", lang="en").summary_of_findings().data
    assert "; inconsistency" in en and " ; " not in en


@pytest.mark.parametrize("iso,fr,en", [
    ("2026-11-26", "26\u00a0novembre 2026", "26\u00a0November 2026"),
    ("2026-08-01", "1er\u00a0août 2026", "1\u00a0August 2026"),
    ("2024-02-29", "29\u00a0février 2024", "29\u00a0February 2024"),
    ("2026-13-45", "2026-13-45", "2026-13-45"), ("20261126", "20261126", "20261126"),
    ("", "", ""), ("<b>", "<b>", "<b>")])
def test_dates_as_a_reader_writes_them(iso, fr, en):
    from metaanalysis.text import long_date

    assert long_date(iso, "fr") == fr and long_date(iso, "en") == en


def test_a_che_sections_variance_names_its_two_parts():
    """Employment's section said 'variance between effects τ² = 0.035' while the ρ table
    under it gave 'Variance between effects 0.027' (τ² is the sum of the two components):
    the sentence now says total variance and both parts, the table 'within studies'."""
    note = Note("employment", lang="en")
    r = note.outcomes[0].result
    assert r.tau2 == pytest.approx(r.sigma2_between + r.sigma2_within)
    text = repr(note.section(0))
    assert (f"total variance τ² = {r.tau2:.3f} (between studies {r.sigma2_between:.3f}, "
            f"within studies {r.sigma2_within:.3f})") in text
    assert "Variance within studies" in note.rho_sensitivity(0).data
    fr = repr(Note("employment", lang="fr").section(0))
    assert "variance totale τ² = " in fr and "au sein des études" in fr


@pytest.mark.parametrize("typed,meant", [("mortalité", "mortality"),
                                         ("peur de tomber", "fear of falling"),
                                         ("Mortality", "mortality")])
def test_an_outcome_typed_as_a_reviewer_would_gets_a_suggestion(typed, meant):
    with pytest.raises(ValueError, match=f"did you mean '{meant}'"):
        Note("autonomy", outcome=typed)
    assert Note("autonomy", outcome="mortalité au suivi").outcomes[0].outcome == "mortality"


def test_effects_pooled_as_if_independent_are_said_beside_the_result():
    """Autonomy's fear of falling pools 13 effects of 11 trials with the univariate model
    (as the Cochrane review did): two trials' arms share a control group. pool said so; the
    note now does too, naming the studies as the figures do; the CHE model has nothing to
    say."""
    for lang, text in (("en", "2 studies (Huang 2011, Reinsch 1992) contribute several "
                              "effects, pooled here as if independent"),
                       ("fr", "2\u00a0études (Huang 2011, Reinsch 1992) apportent plusieurs "
                              "effets, combinés ici comme s'ils étaient indépendants")):
        note = Note("autonomy", lang=lang)
        fear = note.outcome("fear of falling")
        assert any(w.startswith(text) for w in note.outcomes[fear].warnings)
        assert text.split(" (")[0] in note.notice(fear).data
        assert any(text in w for w in note.summary()["outcomes"][fear]["warnings"])
        assert note.outcomes[note.outcome("mortality")].warnings == []
    assert Note("autonomy", lang="en", model="che").outcomes[fear].warnings == []


def test_a_source_says_where_its_data_come_from_in_the_notes_language():
    """A re-analysed review's reference stays as published; what the theme adds about its
    data (autonomy's Cochrane extract, employment's authors' files) was English on the French
    pages: a source may be written per language (themes.json)."""
    fr = Note("employment", lang="fr").sources().data
    en = Note("employment", lang="en").sources().data
    assert "Données : les données d&#x27;analyse des auteurs" in fr and "Data:" not in fr
    assert "Data: the authors&#x27; analysis data" in en and "Données" not in en
    for page in (fr, en):  # the reference itself, as published, and its link
        assert "Group-based community interventions to support the social reintegration" in page
        assert "<a href='https://doi.org/10.1002/cl2.1254'>" in page
    cochrane = Note("autonomy", lang="fr").sources().data
    assert "Revue Cochrane CD014666.pub2" in cochrane and "Bachmann, S." in cochrane
