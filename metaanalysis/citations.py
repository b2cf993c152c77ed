"""How a note names the authors of a study: a BibTeX ``author`` field read as BibTeX reads it.

A field lists persons separated by ``and`` outside braces (``{Barnes and Noble}`` is one
corporate author); ``and others`` stands for the authors not listed. Each person is ``von
Last, First``, ``von Last, Jr, First`` or ``First von Last`` (bibtexparser splits them, as
BibTeX does), or ``Last Initials`` as search exports write it (``Martin C.``, ``Lee JH``:
read as Martin, C., where BibTeX would take Martin for a first name); LaTeX is decoded for
display (``M{\\"u}ller`` is Müller).

- :func:`short`: a figure's study label, ``Last``, ``Last & Last`` or ``Last et al.``.
- :func:`full`: a reference list's authors, ``Last, F. M., Last, F., & Last, F.`` (APA's
  form); the first six are named, then ``et al.``, as are the authors ``others`` stands for.

A field that is not a list of names as BibTeX reads them (a stray comma) is shown as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .latex import latex_to_text

#: how many authors a reference names before "et al."
NAMED = 6


@dataclass(frozen=True)
class Person:
    last: str  # with its "von" part: van der Berg
    initials: str = ""  # J.-P. M.
    jr: str = ""

    def cited(self) -> str:
        """``Last, F. M.`` (``Last, F., Jr.``), or the last name alone."""
        parts = [self.last] + [p for p in (self.initials, self.jr) if p]
        return ", ".join(parts)


def _initials(first: str) -> str:
    out = []
    for word in first.split():
        if word.isalpha() and word.isupper() and len(word) <= 3 and len(first.split()) == 1:
            out.extend(f"{c}." for c in word)  # MEDLINE's "JH" is J. H.
            continue
        pieces = []
        for piece in word.split("-"):
            letter = next((c for c in piece if c.isalpha()), "")
            if letter:
                pieces.append(letter.upper() + ".")
        if pieces:
            out.append("-".join(pieces))
    return " ".join(out)


#: "Martin C.", "Lee JH", "Berg J.-P.": a surname then initials, as Scopus's "Authors" and
#: MEDLINE's AU write a name (BibTeX would read the surname as a first name)
_SURNAME_INITIALS = re.compile(r"^(?P<last>\S.*?)\s+(?P<initials>(?:[A-Z]\.?-?\s?){1,4})$")


def surname_first(name: str) -> str:
    """A name in the form BibTeX reads right: ``Martin C.`` -> ``Martin, C.``, ``Lee JH`` ->
    ``Lee, JH``; a name with a comma, or not ending in initials, as it is."""
    name = name.strip()
    if "," in name or "{" in name:
        return name
    m = _SURNAME_INITIALS.match(name)
    if not m or not re.search(r"[a-z]", m["last"]) and len(m["last"]) < 2:
        return name
    return f"{m['last'].strip()}, {m['initials'].strip()}"


def persons(author) -> tuple[list[Person], bool]:
    """The persons of a BibTeX ``author`` field, and whether ``and others`` ends it."""
    from bibtexparser.middlewares.names import (InvalidNameError, parse_single_name_into_parts,
                                                split_multiple_persons_names)

    text = _text(author)
    if not text:
        return [], False
    try:
        names = split_multiple_persons_names(text)
    except (InvalidNameError, ValueError):
        return [Person(latex_to_text(text))], False
    out, others = [], False
    for name in names:
        if name.strip().lower() == "others":
            others = True
            continue
        name = surname_first(name)  # "Martin C." (a search export's form) is Martin, C.
        try:
            p = parse_single_name_into_parts(name, strict=True)
        except (InvalidNameError, ValueError):
            out.append(Person(_clean(latex_to_text(name))))
            continue
        last = _clean(latex_to_text(" ".join(p.von + p.last)))
        if not last:
            out.append(Person(_clean(latex_to_text(name))))
            continue
        out.append(Person(last, _initials(latex_to_text(" ".join(p.first))),
                          _clean(latex_to_text(" ".join(p.jr)))))
    return [p for p in out if p.last], others


def _text(value) -> str:
    """A field's text: '' for a missing value (None, NaN, pandas' NA: a data frame a
    researcher gives rma() may hold them), else the value as text."""
    if value is None:
        return ""
    try:
        if value != value:  # NaN
            return ""
    except TypeError:  # pandas' NA is neither equal nor unequal to itself
        return ""
    return str(value).strip()


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def short(author, year=None, fallback="") -> str:
    """A study's label in figures: ``Last``, ``Last & Last`` or ``Last et al.``, then the
    year; ``fallback`` (the study's key) when the field names nobody."""
    people, others = persons(author)
    if not people:
        return str(fallback)
    label = people[0].last
    if len(people) > 2 or others:
        label += " et al."
    elif len(people) == 2:
        label += " & " + people[1].last
    if not _text(year):
        return label
    return f"{label} {int(year) if isinstance(year, (int, float)) else year}"


def full(author) -> str:
    """A reference's authors: ``Last, F.``, ``Last, F., & Last, G.``, ``Last, F., Last, G.,
    & Last, H.``; beyond :data:`NAMED`, or where the field says ``and others``, the first
    ones and ``et al.``."""
    people, others = persons(author)
    if not people:
        return ""
    if len(people) > NAMED:
        people, others = people[:NAMED], True
    cited = [p.cited() for p in people]
    if others:  # "Al Otaiba et al.", "Smith, J., et al.", "Smith, J., Doe, J., et al."
        if len(cited) == 1 and not (people[0].initials or people[0].jr):
            return cited[0] + " et al."
        return ", ".join(cited) + ", et al."
    if len(cited) == 1:
        return cited[0]
    if len(cited) == 2 and not any(p.initials or p.jr for p in people):
        return f"{cited[0]} & {cited[1]}"
    return ", ".join(cited[:-1]) + ", & " + cited[-1]
