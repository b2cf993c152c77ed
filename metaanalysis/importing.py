"""Add the records of search exports to a theme's bibliography, without touching what is there.

:func:`plan_import` turns records (from :mod:`metaanalysis.searches`) into BibTeX entries with
``screening = {pending}`` and their provenance (``searches``: database, search date, export
file and line, import batch), keyed in the bibliography's style (``surname`` + year + first
title word, unique). :func:`append_entries` appends them atomically: the existing bytes are
kept exactly, a backup of the previous file is written to ``bibliographies/.backups/``, and the
file is replaced in one rename only if nobody changed it meanwhile.
"""

from __future__ import annotations

import os
import re
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .searches import Record

STOPWORDS = frozenset("""a an the of on in for and to with from by at as is are be its their
    de la le les des du et en un une el los las y""".split())


def ascii_fold(text: str) -> str:
    """Text without accents (Müller -> Muller), for keys and comparisons."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def surname(author: str) -> str:
    """The family name of ``Surname, Given`` or ``Given Surname`` (or ``Surname G.``)."""
    a = author.strip()
    if "," in a:
        return a.split(",", 1)[0].strip()
    parts = a.split()
    if len(parts) >= 2 and re.fullmatch(r"([A-Z]\.?-?)+", parts[-1]):  # "Martin C." (Scopus)
        return " ".join(parts[:-1])
    return parts[-1] if parts else ""


def make_key(record: Record, taken: set) -> str:
    """``martin2019randomised``: first author's surname, year, first significant title word,
    lowercase ASCII; ``a``, ``b`` ... appended when the key is taken."""
    name = re.sub(r"[^a-z]", "", ascii_fold(surname(record.authors[0])).lower()) \
        if record.authors else ""
    words = [w for w in re.findall(r"[a-z0-9]+", ascii_fold(record.title).lower())
             if w not in STOPWORDS]
    base = (name or "anon") + (record.year or "nd") + (words[0][:20] if words else "")
    key, n = base, 0
    while key.lower() in taken:
        key = base + _suffix(n)
        n += 1
    taken.add(key.lower())
    return key


def _suffix(n: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[n] if n < 26 else letters[n // 26 - 1] + letters[n % 26]


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "%": r"\%", "&": r"\&",
                  "#": r"\#", "_": r"\_", "$": r"\$", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def bibtex_value(text: str) -> str:
    """Any text as the inside of a braced BibTeX value: one line, LaTeX's special characters
    escaped, so hostile text can neither unbalance the entry nor run a LaTeX command."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


@dataclass
class Planned:
    """One entry to add: its key, the record and its BibTeX text."""

    key: str
    record: Record
    text: str


def plan_import(records_by_file: list, existing_keys, *, source: str, date: str,
                batch: int) -> list[Planned]:
    """The entries for the records of each ``(file, records)``, keyed uniquely against
    ``existing_keys``."""
    taken = {k.lower() for k in existing_keys}
    out = []
    for file, records in records_by_file:
        for r in records:
            key = make_key(r, taken)
            out.append(Planned(key, r, entry_text(key, r, source=source, date=date,
                                                  file=Path(file).name, batch=batch)))
    return out


def author_field(r: Record) -> str:
    """The record's authors as a BibTeX author field, escaped: each person ``Surname,
    Given`` (``Martin C.`` -> ``Martin, C.``: BibTeX would read Martin as a first name), a
    group author or a name holding "and" in braces (one name, as BibTeX reads braces)."""
    from .citations import surname_first

    people = []
    for name in r.authors:
        value = bibtex_value(surname_first(name))
        people.append(f"{{{value}}}" if re.search(r"\band\b", name, re.I) else value)
    people += [f"{{{bibtex_value(g)}}}" for g in r.groups]
    return " and ".join(p for p in people if p.strip("{} "))


def entry_text(key: str, r: Record, *, source: str, date: str, file: str, batch: int) -> str:
    fields = [("title", r.title), ("journal", r.journal),
              ("year", r.year), ("volume", r.volume), ("number", r.issue), ("pages", r.pages),
              ("doi", r.doi), ("pmid", r.pmid), ("url", r.url),
              ("keywords", ", ".join(r.keywords)), ("abstract", r.abstract)]
    lines = [f"@{r.entry_type}{{{key},"]
    author = author_field(r)
    lines += [f"  author = {{{author}}},"] if author else []
    lines += [f"  {name} = {{{bibtex_value(v)}}}," for name, v in fields if v]
    lines.append("  screening = {pending},")
    search = (f"database = {_annotation(source)}; date = {date}; file = {_annotation(file)}; "
              f"line = {r.line}; batch = {batch}")
    lines.append(f"  searches = {{{bibtex_value(search)}}},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _annotation(text: str) -> str:
    """Text that the annotation grammar can hold as one value (no ; | = or line break)."""
    return re.sub(r"[;|=\n\r]+", " ", text).strip()


class AppendError(ValueError):
    """The bibliography changed while importing, or the result would not be valid."""


def append_entries(path: Path, texts: list[str], header: str, *, root: Path,
                   check: str = "addition", backup: bool = True) -> Path | None:
    """Append entries to a bibliography atomically, keeping its bytes and a backup.

    Returns the backup's path. Raises :class:`AppendError` if the file changed since it was
    read, or if the appended text would make it invalid (nothing is written then):
    ``check="addition"`` parses the new entries alone (their keys are unique against the
    file's by construction), ``"whole"`` the whole file (for text that refers to existing
    entries), ``"none"`` nothing (for lines the caller built and checked itself, such as a
    screening decision, so that a decision on a 20,000-record file stays instant).
    """
    from .bibliography import read_bibliography

    if check == "none" and not backup and path.exists():
        return _append_line(path, "".join(texts))
    before = path.read_bytes() if path.exists() else b""
    sep = b"" if not before or before.endswith(b"\n") else b"\n"
    addition = (("\n" + header + "\n" if header else "") + "\n".join(texts)).encode("utf-8")
    new = before + sep + addition
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    whole = check == "whole"
    offset = 0 if whole else before.count(b"\n") + (1 if sep else 0)
    try:
        fresh = []
        if check != "none":
            with open(tmp, "wb") as f:
                f.write(new if whole else addition)
            parsed = read_bibliography(tmp)
            fresh = [f"{path}:{p.line + offset}: {p.key}: {p.message}" for p in parsed.errors
                     if p.line + offset > before.count(b"\n") + 1]
        with open(tmp, "wb") as f:
            f.write(new)
            f.flush()
            os.fsync(f.fileno())
        if fresh:
            raise AppendError("the new entries would not be valid (nothing written):\n"
                               + "\n".join(f"  {p}" for p in fresh[:10]))
        # (their keys were made unique against the file's, so the whole stays valid)
        saved = None
        if backup:
            backups = root / "bibliographies" / ".backups"
            backups.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            saved = backups / f"{path.stem}.{stamp}.{os.getpid()}.bib"
            saved.write_bytes(before)
        if (path.read_bytes() if path.exists() else b"") != before:
            raise AppendError(f"{path} changed while importing: nothing written; run the "
                               "import again")
        os.replace(tmp, path)
        return saved
    finally:
        tmp.unlink(missing_ok=True)


def _append_line(path: Path, text: str) -> None:
    """Append a few short lines with one write in append mode (atomic for a small write on a
    local file: the file is never seen half-written), then sync: what a screening decision
    needs, without rewriting a large bibliography at every key press."""
    data = text.encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return None
