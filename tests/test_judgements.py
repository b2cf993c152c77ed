"""The words a note uses about its results come from documented rules (docs/judgements.md):
the rules themselves, the note's key messages and fields, and a lint that no notebook types a
number or a judgement by hand."""

import math
from pathlib import Path

import nbformat
import numpy as np
import pytest

from metaanalysis.judgements import BENCHMARKS, direction, judge, size, size_rule, spread
from metaanalysis.models import rma
from metaanalysis.notes import Note
from metaanalysis.prose import lint_prose
from metaanalysis.tables import LEVELS

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("lo,hi,favours,expected", [
    (0.1, 0.3, "higher", "benefit"), (0.1, 0.3, "lower", "harm"),
    (-0.3, -0.1, "lower", "benefit"), (-0.3, -0.1, "higher", "harm"),
    (-0.1, 0.3, "higher", "unclear"), (0.0, 0.3, "higher", "unclear"),
    (math.nan, 0.3, "higher", "unclear")])
def test_direction_is_where_the_interval_lies(lo, hi, favours, expected):
    assert direction(lo, hi, 0.0, favours) == expected


@pytest.mark.parametrize("d,word", [(0.0, "very small"), (0.19, "very small"), (0.2, "small"),
                                    (-0.49, "small"), (0.5, "moderate"), (0.8, "large"),
                                    (-1.3, "large")])
def test_size_words_are_cohens_benchmarks(d, word):
    assert size(d, "SMD") == word


def test_kraft_benchmarks_and_no_size_for_other_measures():
    assert [size(d, "SMD", "kraft2020") for d in (0.04, 0.05, 0.19, 0.2)] == [
        "small", "moderate", "moderate", "large"]
    assert size(0.5, "MD") is None and size(math.log(0.5), "RR") is None
    from metaanalysis.themes import SCHEMA
    enum = SCHEMA["additionalProperties"]["properties"]["size_benchmark"]["enum"]
    assert sorted(enum) == sorted(BENCHMARKS)


def test_spread_reads_the_prediction_interval():
    assert spread(0.3, 0.2, 0.4, 0.05, 0.55, 0.0) == "consistent"
    assert spread(0.3, 0.2, 0.4, -0.1, 0.7, 0.0) == "varies"
    assert spread(0.1, -0.1, 0.3, -0.4, 0.6, 0.0) is None  # the CI already crosses
    assert spread(0.3, 0.2, 0.4, math.nan, math.nan, 0.0) is None
    assert spread(0.8, 0.7, 0.9, 0.6, 0.95, 1.0) == "consistent"  # a ratio below 1


def test_judge_on_a_fit_with_u3():
    rng = np.random.default_rng(2)
    y = rng.normal(0.5, 0.1, 12)
    res = rma(y, np.full(12, 0.02), measure="SMD")
    j = judge(res, "higher", "moderate")
    assert j.direction == "benefit" and j.size == size(res.estimate, "SMD")
    assert j.u3 == pytest.approx(100 * 0.5 * (1 + math.erf(res.estimate / math.sqrt(2))))
    with pytest.raises(ValueError, match="benchmark"):
        judge(res, "higher", "moderate", "hattie")
    with pytest.raises(ValueError, match="certainty"):
        judge(res, "higher", "probable")


def test_key_messages_follow_the_results_in_both_languages():
    for lang, words in (("fr", ("Messages clés", "En langage clair", "certitude")),
                        ("en", ("Key messages", "In plain language", "certainty"))):
        note = Note("autonomy", lang=lang)
        html = note.key_messages().data
        assert all(w in html for w in words)
        judged = [i for i in range(len(note.outcomes)) if note.judgement(i) is not None]
        assert html.count("<li>") == min(5, len(judged)) >= 3
        for i in judged[:5]:
            f = note.judgement_fields(i)
            assert f["verdict"] in html and f["certainty"] in html
            sof = note._sof_rows()[i]
            assert sof["relative"] in html
            assert note.judgement(i).certainty == sof["certainty"] in LEVELS
    # the header puts them right after the title and the question
    head = Note("autonomy", lang="fr").header().data
    assert head.index("<h1>") < head.index("class='summary'") < head.index("key-messages")


@pytest.mark.parametrize("benchmark", sorted(BENCHMARKS))
def test_the_size_rule_says_what_size_does(benchmark):
    """The sentence under the key messages names the benchmark's source and each word from
    its cut-point, and size() gives that word at the cut and the previous one just below."""
    cuts, words = BENCHMARKS[benchmark]
    for lang, mark in (("fr", ","), ("en", ".")):
        rule = size_rule(benchmark, lang)
        assert {"cohen1988": "Cohen (1988)", "kraft2020": "Kraft (2020)"}[benchmark] in rule
        for c in cuts:
            assert f"{c:g}".replace(".", mark) in rule
    en = size_rule(benchmark, "en")
    assert f"{words[0]} below {cuts[0]:g}" in en
    for word, c in zip(words[1:], cuts):
        assert f"{word} from {c:g}" in en
        assert size(c, "SMD", benchmark) == word and size(-c, "SMD", benchmark) == word
        # judged as shown, to two decimals: just above c - 0.005 is shown as c
        assert size(c - 0.005 + 1e-9, "SMD", benchmark) == word
        assert size(c - 0.005 - 1e-9, "SMD", benchmark) == words[words.index(word) - 1]


def test_the_size_word_agrees_with_the_estimate_beside_it():
    """Employment's social reintegration (SMD 0.1966) was "very small" beside "0.20" and the
    rule "small from 0.2": a reader saw one number with two words (mental health, 0.2004,
    "small"). Every size word of the notes now fits the estimate as the note shows it."""
    from metaanalysis.text import estimate_ci

    for theme in ("employment", "education", "autonomy"):
        note = Note(theme, lang="en")
        cuts, words = BENCHMARKS[note.config.get("size_benchmark", "cohen1988")]
        for i, o in enumerate(note.outcomes):
            j = note.judgement(i)
            if j is None or j.size is None:
                continue
            shown = note.fields(i)["est"].split(" ")[0]
            assert shown == estimate_ci(float(o.result.beta[0]), 0, 0, "en").split(" ")[0]
            shown = shown.replace("\u2212", "-")
            assert j.size == words[sum(abs(float(shown)) >= c for c in cuts)], (theme, o.label)
    social = Note("employment", lang="en")
    assert social.judgement("social reintegration").size == "small"
    assert "small in size; standardised mean difference 0.20" in social.key_messages().data


def test_key_messages_say_the_size_rule_only_where_a_size_word_is_used():
    fr = Note("education", lang="fr").key_messages().data
    assert "de taille faible" in fr and "selon Cohen (1988)" in fr and "faible à partir de 0,2" in fr
    en = Note("autonomy", lang="en").key_messages().data  # one standardised outcome of five
    assert en.count("class='rule'") == 1 and "small from 0.2" in en
    ratios = Note("autonomy", lang="en", outcome="mortality").key_messages().data
    assert "<li>" in ratios and "class='rule'" not in ratios and "Cohen" not in ratios


def test_a_variant_changes_the_words_not_just_the_numbers():
    """A reviewer's variant gets its own words: with DerSimonian-Laird and Knapp-Hartung the
    CI of nursing-home admission crosses 1, so "probably a favourable effect" becomes "no
    clear effect"; with DL, mortality's suggested certainty goes from low to high."""
    published = Note("autonomy", lang="en")
    variant = Note("autonomy", lang="en", method="DL", test="knha")
    home = published.outcome("nursing home admission")
    assert published.judgement_fields(home)["verdict"] == "probably a favourable effect"
    assert variant.judgement_fields(home)["verdict"] == "no clear effect"
    assert "no clear effect" in variant.key_messages().data
    mortality = published.outcome("mortality")
    assert published.judgement(mortality).certainty == "low"
    assert Note("autonomy", lang="en", method="DL").judgement(mortality).certainty == "high"
    text = Note("employment", lang="en").say("x", "{verdict}{size_clause}; {spread}",
                                             "social reintegration").data
    assert "very uncertain" in text and "Effects vary" in text


def test_no_study_yet_says_so():
    html = Note("territories", lang="fr").key_messages().data
    assert "Aucune étude" in html and "<li>" not in html


NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb")) + [REPO / "templates" / "theme.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_type_no_number_and_no_judgement(path):
    assert lint_prose(path) == []


def test_the_lint_catches_typed_numbers_and_judgements(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('%%say\n[fr]\nL\'effet moyen est modeste (0,21).\n[en]\n'
                                  'The average effect is modest (0.21).'),
        nbformat.v4.new_code_cell('%%say\n[fr]\n## Les programmes réduisent-ils les chutes ?\n'
                                  'Les interventions améliorent-elles la lecture ?\n[en]\n'
                                  'Do they improve reading? {verdict} with {k} effects (CR2).'),
        nbformat.v4.new_code_cell('%%when data\n[fr]\nLes effets varient beaucoup.\n[en]\n'
                                  'The prediction interval is wide.'),
    ]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    problems = lint_prose(path)
    text = "\n".join(problems)
    assert "cell 0, [fr]: 'modeste'" in text and "cell 0, [en]: 'modest'" in text
    assert "'0,21' is a typed number" in text and "'0.21' is a typed number" in text
    assert "cell 1" not in text  # questions, fields and names (CR2) are fine
    assert "'varient beaucoup'" in text and "'wide'" in text
    assert all(p.startswith(f"{path}: cell ") for p in problems)


def test_the_lint_knows_the_world_from_a_result(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "%%say\n[fr]\nSoutien aux petites villes, avec son incertitude.\n[en]\n"
        "Support to small towns, with its uncertainty. A small effect.")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert [p.split(": ")[2] for p in lint_prose(path)] == ["'small' judges the result by hand"]


@pytest.mark.parametrize("theme,params", [
    ("education", {}), ("education", {"exclude": "design=QES"}),
    ("autonomy", {}), ("autonomy", {"outcome": "mortality"}), ("autonomy", {"exclude": "high_rob"})])
def test_the_evidence_base_counts_what_the_note_pools(theme, params):
    """"This note rests on N studies (M people), published from Y1 to Y2" counts the studies
    whose effects are pooled in the note's outcomes: not the bibliography's other outcomes or
    time points, not the studies a reviewer's variant excludes (education's bibliography has
    195 studies, 2 of them with a composite outcome only; autonomy's mortality variant rests
    on 15 of 28)."""
    import re

    from metaanalysis.bibliography import read_effects

    note = Note(theme, lang="en", **params)
    keys, people, years = set(), {}, []
    everything = read_effects(REPO / note.config["bibliography"])
    for o in note.outcomes:
        if o.result is None:
            continue
        rows = everything.loc[o.data.index]  # the rows pooled, as the bibliography has them
        keys |= set(rows["key"])
        years += [int(y) for y in rows["year"]]
        for _, row in rows.iterrows():  # each study counted once, at its largest effect
            sizes = [row.get(a, math.nan) + row.get(b, math.nan) for a, b in (
                ("n1i", "n2i"), ("n_treatment", "n_control"), ("n_intervention", "n_control"))]
            n = next((x for x in sizes if x == x), math.nan)
            if n == n:
                people[row["key"]] = max(people.get(row["key"], 0), int(n))
    text = note.key_messages().data
    found = re.search(r"rests on ([\d,]+) studies(?: \(([\d,]+) people\))?, published from "
                      r"(\d+) to (\d+)", text)
    assert found, text
    assert int(found[1].replace(",", "")) == len(keys) < everything["key"].nunique() \
        or params == {} and theme == "autonomy"
    if people:
        assert int(found[2].replace(",", "")) == sum(people.values())
    assert (int(found[3]), int(found[4])) == (min(years), max(years))
    # the risk-of-bias figure shows the same studies, a variant's exclusions left out
    assert set(note.pooled_effects["key"]) == keys


def _new_theme(tmp_path, slug):
    """A project with one new theme (as metaanalysis new-theme makes it): its root and its
    bibliography's path."""
    import shutil

    from metaanalysis.scaffold import new_theme

    root = tmp_path / "proj"
    (root / "templates").mkdir(parents=True)
    shutil.copy(REPO / "templates" / "theme.ipynb", root / "templates" / "theme.ipynb")
    (root / "themes.json").write_text("{}")
    new_theme(slug, root)
    return root, root / "bibliographies" / f"{slug}.bib"


def test_one_study_gets_no_sentence_on_spread_and_a_year_not_a_range(tmp_path):
    """A theme's first study: 'publiées de 2004 à 2004' and 'the effect goes the same way in
    most of the settings studied' (its prediction interval is its confidence interval) were
    published; now 'publiée en 2004', no sentence on the spread, no I² of one effect."""
    root, bib = _new_theme(tmp_path, "housing")
    entry = ("@article{{{key},\n  author = {{Lee, K.}},\n  year = {{{year}}},\n  screening = "
             "{{included}},\n  effects = {{outcome = housed; measure = RR; ai = {a}; n1i = 99; "
             "ci = 50; n2i = 126}},\n}}\n")
    bib.write_text(bib.read_text() + entry.format(key="lee2004", year=2004, a=80))
    for lang, base in (("fr", "Cette note s'appuie sur 1\u00a0étude (225 personnes), publiée en "
                              "2004."),
                       ("en", "This note rests on 1 study (225 people), published in 2004.")):
        note = Note("housing", root=root, lang=lang)
        assert note.judgement(0).spread is None
        text = note.key_messages().data.replace("&#x27;", "'")
        assert base in text and "2004 à 2004" not in text and "2004 to 2004" not in text
        assert "<td>–</td>" in note.summary_of_findings().data.replace("\u2013", "–")
    for key, year, a in (("kim2006", 2006, 70), ("roy2010", 2010, 75)):
        bib.write_text(bib.read_text() + entry.format(key=key, year=year, a=a))
    three = Note("housing", root=root, lang="en")
    assert three.judgement(0).spread == "consistent"
    assert "published from 2004 to 2010" in three.key_messages().data


def test_an_outcome_without_a_favourable_side_is_never_called_favourable_or_not(tmp_path):
    """README's walkthrough, before its step 4 (themes.json): two BCG trials, RR 0.27, were
    published as 'effet défavorable possible' (an unconfigured outcome was taken to favour
    higher values) and 'études non randomisées' (no design given). Now: 'baisse possible',
    no "favours" labels under the forest plot, 'plan d'étude non renseigné', and the
    participants counted from the 2x2 tables."""
    from metaanalysis.judgements import direction

    assert direction(0.1, 0.5, 1.0, "") == "decrease" and direction(1.2, 2, 1.0, "") == "increase"
    assert direction(0.1, 0.5, 1.0, "lower") == "benefit" and direction(0.8, 1.2, 1.0, "") == "unclear"
    root, bib = _new_theme(tmp_path, "bcg")
    bib.write_text(bib.read_text() + "".join(
        f"@article{{{k},\n  author = {{{a}}}, year = {{{y}}},\n  screening = {{included}},\n"
        f"  effects = {{outcome = tuberculosis; measure = RR; ai = {c[0]}; bi = {c[1]}; "
        f"ci = {c[2]}; di = {c[3]}; source = metadat dat.bcg, trial {i}}},\n}}\n"
        for i, (k, a, y, c) in enumerate([("aronson1948", "Aronson, Joseph D.", 1948,
                                           (4, 119, 11, 128)),
                                          ("ferguson1949", "Ferguson, R. G. and Simes, A. B.",
                                           1949, (6, 300, 29, 274))], start=1)))
    fr, en = Note("bcg", root=root, lang="fr"), Note("bcg", root=root, lang="en")
    assert fr.judgement(0).direction == "decrease"
    text = fr.key_messages().data
    assert "baisse possible" in text and "favorable" not in text and "défavorable" not in text
    assert "possibly a decrease" in en.key_messages().data
    assert "871 personnes" in text.replace("\u202f", " ").replace("\u00a0", " ")
    sof = fr.summary_of_findings().data.replace("&#x27;", "'")
    assert "plan d'étude non renseigné" in sof and "non randomisées" not in sof
    svg = en.forest(0).html()
    assert "favours the" not in svg
    assert "favours the intervention" in Note("autonomy", lang="en").forest(0).html()
