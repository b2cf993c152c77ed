"""The think tank's themes: headline results against metafor/clubSandwich on the source data,
and a sample of bibliography entries against their rows in the source CSV."""

import csv
import json
import re
from pathlib import Path

import pytest

from metaanalysis.bibliography import read_bibliography, read_effects
from metaanalysis.notes import Note

REPO = Path(__file__).resolve().parent.parent
REF = json.loads((REPO / "tests" / "reference" / "themes.json").read_text())["themes"]
SHARED = REPO.parent / "shared" / "data"


def outcome(note, name):
    return next(o for o in note.outcomes if o.outcome == name)


@pytest.mark.parametrize("theme,name,ref", [
    ("autonomy", "functional improvement", "autonomy_function"),
    ("autonomy", "mortality", "autonomy_mortality"),
    ("autonomy", "fear of falling", "autonomy_fear"),
    ("employment", "social reintegration", "employment_reintegration"),
    ("education", "reading", "education_reading"),
])
def test_headline_result_matches_metafor_on_the_source_data(theme, name, ref):
    r = outcome(Note(theme, lang="en"), name).result
    expected = REF[ref]
    assert r.k == expected["k"]
    assert r.estimate == pytest.approx(expected["estimate"], abs=1e-4)
    assert r.se[0] == pytest.approx(expected["se"], abs=1e-4)
    if "df" in expected:
        assert r.df[0] == pytest.approx(expected["df"], abs=1e-3)
        assert [r.sigma2_between, r.sigma2_within] == pytest.approx(expected["sigma2"], abs=1e-4)
    else:
        assert r.tau2 == pytest.approx(expected["tau2"], abs=1e-4)


def test_territories_renders_an_honest_gap():
    note = Note("territories", lang="en")
    assert len(note.all_effects) == 0 and note.outcomes[0].result is None
    text = note.when("no_data", fr="x", en="No synthesis {n_records}").data
    assert text == "No synthesis 0"


def test_the_territories_note_reads_as_an_evidence_gap_note(tmp_path):
    """The question, what was searched (from the bibliography's recorded searches), what
    would count as evidence and an invitation to send studies; no count of nothing, no
    empty list of studies, no instruction meant for the team."""
    import re as _re

    from metaanalysis.render import render

    out = render(["territories"], root=REPO, site=tmp_path / "site", progress=lambda m: None)
    assert [o.status for o in out] == ["rendered", "rendered"]
    for page, words in (("territories.html", ("La question", "Ce qui a été cherché",
                                               "aucune pour l'instant",
                                               "Ce qui compterait comme preuve",
                                               "Vous connaissez une étude")),
                        ("en/territories.html", ("The question", "What was searched",
                                                  "none yet", "What would count as evidence",
                                                  "Do you know of a study"))):
        text = _re.sub(r"\s+", " ", _re.sub(r"<[^>]+>", " ", (tmp_path / "site" / page)
                                          .read_text())).replace("\u202f", " ")
        for w in words:
            assert w in text, (page, w)
        for absent in ("0 références", "0 records", "Études incluses", "Included studies",
                       "champ screening", "screening field", "publiées de :"):
            assert absent not in text, (page, absent)
    note = Note("territories", lang="fr")
    assert note.search_log() == "aucune pour l'instant"


def test_bibliographies_are_clean():
    for bib in sorted((REPO / "bibliographies").glob("*.bib")):
        assert read_bibliography(bib).problems == [], bib


def source_rows(table):
    """The effects table with the CSV row each effect names in its source."""
    for _, e in table.iterrows():
        m = re.fullmatch(r"(\S+\.csv) row (\d+)", e["source"])
        assert m, e["source"]
        yield e, m.group(1), int(m.group(2))


def load(name):
    with open(SHARED / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data not present")


@needs_shared
@pytest.mark.parametrize("theme", ["autonomy", "employment", "education"])
def test_sampled_entries_match_their_source_rows(theme):
    table = read_effects(REPO / "bibliographies" / f"{theme}.bib")
    sample = table.iloc[:: max(1, len(table) // 40)]
    cache = {}
    for e, name, row in source_rows(sample):
        r = cache.setdefault(name, load(name))[row - 1]
        if name.startswith("bachmann"):
            assert e["author"] == r["author"] and int(e["year"]) == int(r["year"])
            if r["or"]:
                assert e["estimate"] == float(r["or"]) and e["ci_lb"] == float(r["lb"])
                assert e["ci_ub"] == float(r["ub"])
            else:
                assert (e["ai"], e["n1i"], e["ci"], e["n2i"]) == tuple(
                    float(r[k]) for k in ("ai", "n1i", "ci", "n2i"))
            assert e["timepoint"] == r["time"] and e["country"] == r["country"]
        elif name.startswith("cochrane"):
            assert e["author"] + " " == r["Study"][: len(e["author"]) + 1]
            if r["effect_measure"] == "RR":
                assert e["ai"] == float(r["Experimental.cases"])
            else:
                assert e["m1i"] == float(r["Experimental.mean"])
                assert e["sd2i"] == float(r["Control.SD"])
        elif name.startswith("dalgaard"):
            assert e["yi"] == pytest.approx(float(r["gt"]), abs=1e-12)
            assert e["vi"] == pytest.approx(float(r["vgt"]), abs=1e-12)
            assert str(e["id"]) == r["esid"]
            if int(e["year"]) != int(r["year"]):  # a study reported twice: the effect says which
                assert e["report"] == r["authors"]
        elif name.startswith("dietrichson"):
            assert e["yi"] == pytest.approx(float(r["Effectsize_g"]), abs=1e-12)
            assert e["sei"] == pytest.approx(float(r["SE_g"]), abs=1e-12)
            if e["title"] != " ".join(r["Title"].split()):  # a study reported several times
                assert e["report"] == r["Authors"]
                entry = next(x for x in read_bibliography(
                    REPO / "bibliographies" / "education.bib").entries if x.key == e["key"])
                assert " ".join(r["Title"].split()) in entry.fields["note"]
        else:
            pytest.fail(f"unexpected source {name}")


def test_entries_without_titles_say_so():
    for theme in ("autonomy", "employment"):
        bib = read_bibliography(REPO / "bibliographies" / f"{theme}.bib")
        for e in bib.entries:
            assert "title" not in e.fields and "doi" not in e.fields
            assert "not in the dataset" in e.fields["note"] or "no title" in e.fields["note"]


def test_the_search_log_names_each_database_with_its_dates():
    import pandas as pd

    note = Note("territories", lang="en")
    note.studies = pd.DataFrame({"databases": ["Scopus; PubMed", "Scopus", ""],
                                 "search_dates": ["2026-05-01; 2026-05-02", "2026-06-01", ""]})
    assert note.search_log() == ("PubMed (2\u00a0May 2026), Scopus (1\u00a0May 2026, "
                                 "1\u00a0June 2026)")
