"""A study's authors as a note shows them: BibTeX's name rules (``and`` outside braces, ``von
Last, First``, ``First von Last``, ``and others``), in the figures' labels and the reference
list."""

import pytest
from hypothesis import given, strategies as st

from metaanalysis.citations import NAMED, full, persons, short


@pytest.mark.parametrize("field,label,reference", [
    ("Applegate", "Applegate", "Applegate"),
    ("Allor and McCathren", "Allor & McCathren", "Allor & McCathren"),
    ("{Al Otaiba} and others", "Al Otaiba et al.", "Al Otaiba et al."),
    ("Dietrichson, Jens and Filges, Trine and Seerup, Jens Kristoffer", "Dietrichson et al.",
     "Dietrichson, J., Filges, T., & Seerup, J. K."),
    ("Smith, John and Doe, Jane", "Smith & Doe", "Smith, J., & Doe, J."),
    ("Smith, John and others", "Smith et al.", "Smith, J., et al."),
    ("Jean-Paul van der Berg", "van der Berg", "van der Berg, J.-P."),
    ("M{\\\"u}ller, J{\\\"o}rg", "Müller", "Müller, J."),
    ("{\\'E}mile Zola", "Zola", "Zola, É."),
    ("{World Health Organization}", "World Health Organization", "World Health Organization"),
    ("{Barnes and Noble} and Smith, J.", "Barnes and Noble & Smith",
     "Barnes and Noble, & Smith, J."),
    ("Smith, Jr, John", "Smith", "Smith, J., Jr"),
    # as search exports write names (Scopus's Authors, MEDLINE's AU): surname, initials
    ("Martin C. and Dupont F.", "Martin & Dupont", "Martin, C., & Dupont, F."),
    ("Lee JH and Al Otaiba S.", "Lee & Al Otaiba", "Lee, J. H., & Al Otaiba, S."),
    ("Claire Martin", "Martin", "Martin, C."),
    # a surname that merely contains "others" is a surname
    ("Brothers, Ann and Mothersill, Carmel", "Brothers & Mothersill",
     "Brothers, A., & Mothersill, C."),
])
def test_names_read_as_bibtex_reads_them(field, label, reference):
    assert short(field, 2005, "key") == f"{label} 2005"
    assert full(field) == reference


def test_beyond_six_authors_the_rest_are_et_al():
    field = " and ".join(f"Name{i}, First" for i in range(NAMED + 3))
    assert full(field) == ", ".join(f"Name{i}, F." for i in range(NAMED)) + ", et al."
    assert short(field, None, "k") == "Name0 et al."


def test_no_author_falls_back_and_a_malformed_field_is_shown_as_written():
    assert short("", 2001, "smith2001") == "smith2001" and full("") == ""
    assert short(None, None, "k") == "k"
    assert full("Smith, John,,") == "Smith, John,,"
    assert short("Smith", float("nan"), "k") == "Smith"


def test_a_missing_value_from_a_data_frame_is_no_author_and_no_year():
    """A data frame given to rma() may hold NaN or pandas' NA where a study has no author or
    year: the label falls back to the study's key, as for an empty field (it read "nan", and
    NA raised), and the year is left out."""
    import pandas as pd

    for missing in (float("nan"), pd.NA, None):
        assert short(missing, 2001, "k1") == "k1" and full(missing) == ""
        assert short("Doe, J.", missing, "k1") == "Doe"
    assert short("Doe, J.", 2001.0, "k") == short("Doe, J.", "2001", "k") == "Doe 2001"


@given(st.text(max_size=80))
def test_any_author_field_gives_text_and_never_raises(field):
    people, _ = persons(field)
    assert all(p.last == p.last.strip() and p.last for p in people)
    assert isinstance(full(field), str) and isinstance(short(field, 2000, "k"), str)


def test_a_notes_reference_list_reads_as_references():
    """One full stop after a title, none after its own ? or . (education had "How Much is
    Enough?." and "read naturally.."); BibTeX's "and others" is "et al." in both languages."""
    import re

    from metaanalysis.notes import Note

    for lang in ("fr", "en"):
        items = re.findall(r"<li>(.*?)</li>", Note("education", lang=lang).references().data)
        assert len(items) == 195
        assert not [i for i in items if re.search(r"[?!.]\.$|\.\.", i)]
        assert all(i.endswith((".", "?", "!")) for i in items)
        assert not [i for i in items if " and others" in i or " and " in i.split("(")[0]]
        assert "Al Otaiba et al. (2005). Tutor-Assisted Intensive Learning Strategies in " \
            "Kindergarten: How Much is Enough?" in items


def test_a_variants_reference_list_sets_aside_the_studies_it_excludes():
    """A reviewer's variant excluding quasi-experimental studies lists the studies it still
    rests on as included, and names the ones its parameter sets aside after the list."""
    import re

    from metaanalysis.notes import Note

    published = Note("education", lang="en")
    variant = Note("education", lang="en", exclude="design=QES")
    html = variant.references().data
    listed = re.findall(r"<li>(.*?)</li>", html)
    aside = set(variant.excluded["key"]) - set(variant.effects["key"])
    assert aside and len(listed) == 195 - len(aside)
    assert (published.studies.set_index("key").loc[sorted(aside), "design"] == "QES").all()
    note = re.search(r"<p class='set-aside'>Set aside by this note&#x27;s parameter exclude = "
                     r"design=QES: (\d+) studies \((.*)\)\.</p>", html)
    assert note and int(note[1]) == len(aside) and note[2].count(", ") == len(aside) - 1
    assert "set-aside" not in published.references().data
