"""Records found by several databases: find them, and record the sure ones as duplicates.

:func:`find_duplicates` compares the entries of a bibliography in four steps, each stronger
than the next: the same DOI; the same PubMed ID; the same normalised title, year and first
author; then a fuzzy title match (rapidfuzz's normalised Indel similarity, 0-100) within
blocks of entries that share the start of their title or their year and first author. Two
entries whose DOIs are both given and differ are never duplicates. A pair is *sure* when an
identifier or the normalised title, year and first author agree, or when the titles are
near-identical (score >= ``sure``) and the year or first author agrees; other pairs above
``threshold`` are left for a person.

:func:`apply` appends one ``@comment{metaanalysis duplicate: KEY = KEPT; ...}`` per sure
duplicate to the bibliography (atomically, with a backup; no entry is changed): the reader
then counts the entry as a duplicate removed, and its search provenance stays with it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from .importing import STOPWORDS, ascii_fold

THRESHOLD = 90.0
SURE = 97.0
#: how many neighbours each title is compared with, in each sorted order
WINDOW = 20
#: a year-and-first-author block larger than this is left to the sorted titles
MAX_BLOCK = 200


@dataclass(frozen=True)
class Pair:
    """Two entries that may be one record: ``drop`` duplicates ``keep``."""

    keep: str
    drop: str
    score: float
    rule: str  # doi, pmid, title+year+author, fuzzy title
    sure: bool


def normalise_title(title: str) -> str:
    """A title for comparison: LaTeX decoded, accents and case folded, punctuation removed,
    leading articles dropped."""
    from .latex import latex_to_text

    t = ascii_fold(latex_to_text(title or "")).lower()
    words = re.findall(r"[a-z0-9]+", t)
    while words and words[0] in STOPWORDS:
        words = words[1:]
    return " ".join(words)


def _first_author(entry) -> str:
    """The first author's surname, folded: read as the notes read names (BibTeX's rules, and
    'Martin C.' as Martin), so 'van der Berg, Jean' and OpenAlex's 'Jean van der Berg' agree."""
    from .citations import persons

    people, _ = persons(entry.fields.get("author", ""))
    name = people[0].last if people else ""
    return re.sub(r"[^a-z]", "", ascii_fold(name).lower())


def _doi(entry) -> str:
    from .searches import normalise_doi

    return normalise_doi(entry.fields.get("doi", ""))


def find_duplicates(entries, *, threshold: float = THRESHOLD, sure: float = SURE) -> list[Pair]:
    """Candidate duplicate pairs among ``entries`` (a bibliography's), best evidence first.

    In each pair the entry kept is the one with a screening decision or effects, else the
    first in the file. Pairs are listed once (the strongest rule that finds them)."""
    import numpy as np
    from rapidfuzz import fuzz, process

    info = []
    for i, e in enumerate(entries):
        info.append({"i": i, "key": e.key, "doi": _doi(e), "pmid": e.fields.get("pmid", "").strip(),
                     "title": normalise_title(e.fields.get("title", "")), "year": e.year or "",
                     "author": _first_author(e)})
    found: dict[tuple, Pair] = {}
    root = list(range(len(entries)))  # groups of sure duplicates (union-find)

    def find(i):
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    def add(a, b, score, rule, is_sure):
        if a["doi"] and b["doi"] and a["doi"] != b["doi"]:
            return  # two DOIs: two records
        ra, rb = find(a["i"]), find(b["i"])
        key = (min(ra, rb), max(ra, rb))
        if ra == rb or key in found:
            return  # already one record (by stronger evidence), or already listed
        keep, drop = _order(entries[key[0]], entries[key[1]])
        found[key] = Pair(keep.key, drop.key, round(float(score), 1), rule, is_sure)
        if is_sure:
            root[rb if keep is entries[ra] else ra] = ra if keep is entries[ra] else rb

    for name, rule in (("doi", "doi"), ("pmid", "pmid")):
        groups: dict[str, list] = {}
        for r in info:
            if r[name]:
                groups.setdefault(r[name], []).append(r)
        for group in groups.values():
            for b in group[1:]:
                add(group[0], b, 100, rule, True)
    exact: dict[tuple, list] = {}
    for r in info:
        if r["title"]:
            exact.setdefault((r["title"], r["year"], r["author"]), []).append(r)
    for group in exact.values():
        for b in group[1:]:
            add(group[0], b, 100, "title+year+author", True)
    # fuzzy titles, by the sorted-neighbourhood method (Hernandez & Stolfo, 1995): titles
    # sorted alphabetically, and by their reversed text (a difference at the start), each
    # compared with the next WINDOW; plus every pair with the same year and first author
    titled = [r for r in info if len(r["title"]) >= 10]

    def score_pairs(pairs_a, pairs_b):
        """Score aligned lists of records in rapidfuzz's C++ loop; add those above the cutoff."""
        if not pairs_a:
            return
        scores = process.cpdist([r["title"] for r in pairs_a], [r["title"] for r in pairs_b],
                                scorer=fuzz.ratio, score_cutoff=threshold, workers=1)
        for x in np.flatnonzero(scores):
            a, b = pairs_a[x], pairs_b[x]
            agree = (a["year"] and a["year"] == b["year"]) or (
                a["author"] and a["author"] == b["author"])
            add(a, b, float(scores[x]), "fuzzy title", bool(scores[x] >= sure and agree))

    for order in (sorted(titled, key=lambda r: r["title"]),
                  sorted(titled, key=lambda r: r["title"][::-1])):
        for offset in range(1, WINDOW + 1):
            score_pairs(order[:-offset], order[offset:])
    blocks: dict[tuple, list] = {}
    for r in titled:
        if r["author"] and r["year"]:
            blocks.setdefault((r["year"], r["author"]), []).append(r)
    left, right = [], []
    for block in blocks.values():
        if len(block) > MAX_BLOCK:  # a very common name: the sorted titles cover it
            continue
        for x, a in enumerate(block):
            for b in block[x + 1:]:
                left.append(a)
                right.append(b)
    score_pairs(left, right)
    return sorted(found.values(), key=lambda p: (not p.sure, -p.score, p.keep, p.drop))


def _order(a, b):
    """(kept, duplicate): the entry with a decision or data is kept, else the first."""
    def weight(e):
        return (e.screening != "pending") + bool(e.effects)
    return (b, a) if weight(b) > weight(a) else (a, b)


def groups(pairs: list[Pair]) -> dict[str, str]:
    """Each duplicate key -> the key it is merged into, following chains (a = b, b = c)."""
    parent: dict[str, str] = {}

    def find(k):
        while parent.get(k, k) != k:
            k = parent[k]
        return k

    for p in pairs:
        ka, kb = find(p.keep), find(p.drop)
        if ka != kb:
            parent[kb] = ka
    return {k: find(k) for k in parent}


def apply(path: Path, pairs: list[Pair], *, root: Path) -> tuple[int, Path | None]:
    """Append a duplicate decision for each sure pair whose entry is not already marked;
    return how many were written and the backup's path."""
    from .bibliography import read_bibliography
    from .importing import append_entries

    bib = read_bibliography(path)
    marked = {e.key for e in bib.entries if e.duplicate_of}
    sure = [p for p in pairs if p.sure]
    merged = groups(sure)
    by = {p.drop: p for p in sure}
    date = time.strftime("%Y-%m-%d")
    lines = []
    for drop, keep in sorted(merged.items()):
        if drop in marked:
            continue
        p = by.get(drop) or next(q for q in sure if drop in (q.keep, q.drop))
        lines.append(f"@comment{{metaanalysis duplicate: {drop} = {keep}; rule = {p.rule}; "
                     f"score = {p.score:g}; date = {date}}}\n")
    if not lines:
        return 0, None
    backup = append_entries(path, lines, f"% Duplicates recorded by metaanalysis dedup on {date}",
                            root=root, check="whole")
    return len(lines), backup
