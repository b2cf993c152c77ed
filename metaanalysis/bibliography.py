"""Read and validate annotated BibTeX bibliographies.

:mod:`.bibsplit` splits the file into blocks (as bibtexparser 2 does, quickly); this module
resolves the field values itself, keeps every field's line, parses the annotations
(``screening``, study characteristics, ``effects``) and reports every problem as
``PATH:LINE: KEY: message``. It never raises on bad content and never writes to the file.
LaTeX is decoded only for display (:func:`latex_to_text`).
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from . import bibsplit, grammar
from .latex import decode_annotation, latex_to_text  # noqa: F401 (latex_to_text re-exported)

MONTHS = {m: str(i) for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_FIELD_IN_TEXT = re.compile(r"(?m)^\s*[A-Za-z][\w.:-]*\s*=")
#: A brace that opens or closes a group: not an escaped one (\{ \}, a literal brace in LaTeX,
#: as Better BibTeX writes one in a title), as bibtexparser splits the entries.
_BRACE = bibsplit.BRACE
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_YEAR = re.compile(r"^\d{4}$")
#: Characters that stand for a minus sign in text copied from a PDF, a word processor or a
#: spreadsheet (the minus sign, dashes, the small and full-width hyphen-minus).
_MINUS_LOOKALIKES = "\u2212\u2010\u2011\u2012\u2013\u2014\ufe63\uff0d"
#: Spaces that may sit inside a number: after its sign, or between groups of three digits
#: (thousands): the space, no-break, narrow no-break, thin and figure spaces.
_SPACE = "[ \u00a0\u202f\u2009\u2007]"
_SIGN_SPACE = re.compile(f"^([+-]){_SPACE}+")
_THOUSANDS = re.compile(f"^[+-]?\\d{{1,3}}(?:{_SPACE}\\d{{3}})+(?:[.,]\\d+)?$")
#: BibLaTeX's date: YYYY, YYYY-MM or YYYY-MM-DD, optionally a range (/) of such dates
_DATE = re.compile(r"^(\d{4})(-\d{2}(-\d{2})?)?(/(\d{4}(-\d{2}(-\d{2})?)?)?)?$")


#: A day written YYYY-MM-DD (:func:`is_day` says whether the calendar has it).
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def is_day(text: str) -> bool:
    """``text`` is a day of the calendar written YYYY-MM-DD (2026-11-02, not 2026-13-45)."""
    import datetime

    if not _DAY.fullmatch(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def not_a_number(name: str, value: str) -> str:
    """The message for a data value that is not a number, with what to write instead where
    the value is a number typed another way: a typographic minus (U+2212 or a dash, as
    copied from a PDF or a word processor), spaces inside it, a comma for decimals."""
    head = f"{name} = '{value}' is not a number"
    fixed, reasons = value.strip(), []
    minus = [c for c in fixed if c in _MINUS_LOOKALIKES]
    if minus:
        code = minus[0]
        reasons.append(f"its minus sign is U+{ord(code):04X} {unicodedata.name(code, '')} (as "
                       "copied from a PDF or a word processor), not the hyphen-minus -")
        fixed = "".join("-" if c in _MINUS_LOOKALIKES else c for c in fixed)
    spaced = _SIGN_SPACE.sub(r"\1", fixed)
    if _THOUSANDS.match(spaced):
        spaced = re.sub(_SPACE, "", spaced)
    if spaced != fixed:
        reasons.append("it has a space inside")
        fixed = spaced
    if fixed.count(",") == 1 and "." not in fixed and _NUMBER.match(fixed.replace(",", ".")):
        reasons.append("it has a comma for decimals")
        fixed = fixed.replace(",", ".")
    if reasons and _NUMBER.match(fixed):
        return f"{head}: {'; '.join(reasons)}: write {fixed}"
    return f"{head}: write it as e.g. 12.5 (a dot for decimals, no units)"


@dataclass(frozen=True, order=True)
class Problem:
    """One problem found in a bibliography, printed GCC style."""

    path: str
    line: int
    key: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        from .terminal import printable

        tag = "" if self.severity == "error" else "warning: "
        return printable(f"{self.path}:{self.line}: {self.key}: {tag}{self.message}")


@dataclass
class Effect:
    """One effect of a study, as annotated: text keys, numeric data and moderators."""

    line: int
    outcome: str
    measure: str
    data: dict[str, float]
    source: str = ""
    id: str = ""
    moderators: dict[str, str] = field(default_factory=dict)


@dataclass
class Entry:
    """One BibTeX entry: a study with its screening decision, characteristics and effects."""

    key: str
    entry_type: str
    line: int
    fields: dict[str, str]
    field_lines: dict[str, int]
    screening: str = "pending"
    reason: str = ""
    effects: list[Effect] = field(default_factory=list)
    #: where the record was found: database, date, export file and line, import batch
    searches: list[dict] = field(default_factory=list)
    #: the key of the entry this record duplicates ("" if none), from the dedup log
    duplicate_of: str = ""
    #: logged screening decisions (metaanalysis.screening.Decision), in file order
    decisions: list = field(default_factory=list)
    #: the stage a logged exclusion happened at, or the stage awaited ("" without a log)
    stage: str = ""
    #: whether the reviewers disagree on this record (unsettled)
    conflict: bool = False

    @property
    def year(self) -> str | None:
        """The year as written: ``year``, else the year of BibLaTeX's ``date`` (2019-03)."""
        if "year" in self.fields:
            return self.fields["year"]
        m = _DATE.match(self.fields.get("date", "").strip())
        return m.group(1) if m else None

    def characteristics(self) -> dict[str, str]:
        """Study-level moderators: every field that is neither standard BibTeX nor grammar."""
        return {k: v for k, v in self.fields.items()
                if k not in grammar.STANDARD_FIELDS and k not in grammar.GRAMMAR_FIELDS}

    def display(self, name: str) -> str:
        """A field as a reader should see it, with LaTeX decoded."""
        return latex_to_text(self.fields.get(name, ""))


@dataclass
class Bibliography:
    """A parsed bibliography file: its entries and every problem found in it."""

    path: str
    entries: list[Entry]
    problems: list[Problem]
    #: SHA-256 of the bytes that were read and parsed (the provenance of every number)
    sha256: str = ""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def included(self) -> list[Entry]:
        return [e for e in self.entries if e.screening == "included"]


class BibliographyError(ValueError):
    """Raised by the table readers when a bibliography has errors; carries the problems."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _resolve(raw: str, strings: dict[str, str]) -> tuple[str, str, list[str]]:
    """A raw BibTeX value as text, trailing text that shows a missing comma ('' if none), and
    the bare words that are neither a month macro nor an ``@string`` (undefined macros).

    Handles ``{...}``, ``"..."``, numbers, ``@string`` macros, the twelve month macros and ``#``.
    """
    rest = raw.strip()
    braced = bibsplit.braced_text(rest)  # the common case: one braced group
    if braced is not None:
        return braced, "", []
    parts, undefined = [], []
    while rest:
        if rest[0] == "{":
            depth, end = 0, len(rest)
            for m in _BRACE.finditer(rest):
                depth += 1 if m.group() == "{" else -1
                if depth == 0:
                    end = m.start()
                    break
            parts.append(rest[1:end])
            rest = rest[end + 1:].lstrip()
        elif rest[0] == '"':
            depth, i = 0, 1
            while i < len(rest) and not (rest[i] == '"' and depth == 0):
                if rest[i - 1] != "\\":
                    depth += (rest[i] == "{") - (rest[i] == "}")
                i += 1
            parts.append(rest[1:i])
            rest = rest[i + 1:].lstrip()
        elif rest[0] == "#":  # an empty operand of a concatenation
            rest = rest[1:].lstrip()
            continue
        else:
            m = re.match(r"[^\s#]+", rest)
            word = m.group(0)
            low = word.lower()
            if low in strings:
                parts.append(strings[low])
            elif low in MONTHS:
                parts.append(MONTHS[low])
            elif word.isdigit():
                parts.append(word)
            else:
                undefined.append(word)
                parts.append(word)
            rest = rest[m.end():].lstrip()
        if rest.startswith("#"):
            rest = rest[1:].lstrip()
        elif rest:
            return "".join(parts), rest, undefined
    return "".join(parts), "", undefined


def read_bibliography(path: str | Path) -> Bibliography:
    """Parse and validate one annotated .bib file; problems are collected, never raised."""
    import gc

    # the parse allocates many small objects that all live on: the cyclic garbage collector
    # would scan them again and again for nothing (a third of the time on large files)
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _read_bibliography(path)
    finally:
        if enabled:
            gc.enable()


def _read_bibliography(path: str | Path) -> Bibliography:
    spath = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return Bibliography(spath, [], [Problem(spath, 0, "-", "no such file")])
    except IsADirectoryError:
        return Bibliography(spath, [], [Problem(spath, 0, "-", "is a folder, not a file: give "
                                                "the path of a .bib file")])
    except OSError as exc:
        return Bibliography(spath, [], [Problem(spath, 0, "-", f"cannot be read: "
                                                f"{exc.strerror or exc}")])
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # (the commands append UTF-8: never mixed)
            return Bibliography(spath, [], [Problem(
                spath, 1, "-", "the file is in UTF-16 (it starts with UTF-16's byte-order mark, "
                "as Windows Notepad saves \"Unicode\"): save the bibliography as UTF-8")], digest)
        line = raw.count(b"\n", 0, exc.start) + 1
        return Bibliography(spath, [], [Problem(
            spath, line, "-", f"byte 0x{raw[exc.start]:02x} is not UTF-8 (the file seems to be "
            "in another encoding, e.g. Latin-1): save the bibliography as UTF-8")], digest)
    if text.startswith("\ufeff"):
        text = text[1:]
    problems: list[Problem] = []
    if not text.strip():
        problems.append(Problem(spath, 1, "-", "the file is empty: expected BibTeX entries "
                                "such as @article{key, title = {...}, screening = {included}}"))
        return Bibliography(spath, [], problems, digest)

    blocks = bibsplit.split(text)
    strings = {}
    for s in blocks:  # in file order: a macro may use those before it
        if type(s) is bibsplit.String:
            strings[s.key.lower()] = _resolve(s.value, strings)[0]
    entries, seen = [], {}
    has_bib = False
    previous = None
    dup_log, screen_log = [], []
    for block in blocks:
        kind = type(block)
        line = block.line + 1
        after_failure, previous = previous is bibsplit.Failed, kind
        if kind is bibsplit.Entry:
            has_bib = True
            entry = _read_entry(spath, block, strings, problems)
            if entry.key in seen:
                problems.append(Problem(spath, line, entry.key, f"duplicate key: already used "
                                        f"on line {seen[entry.key]}; give each study its own key"))
                continue
            seen[entry.key] = line
            entries.append(entry)
        elif kind is bibsplit.DuplicateKey:
            has_bib = True
            key = block.key
            problems.append(Problem(spath, line, key, f"duplicate key: already used on line "
                                    f"{seen.get(key, '?')}; give each study its own key"))
        elif kind is bibsplit.DuplicateField:
            has_bib = True
            dup = re.search(r"'([^']+)'", block.error)
            name = dup.group(1) if dup else "a field"
            problems.append(Problem(spath, line, block.key,
                                    f"field {name} is given twice: keep one"))
        elif kind is bibsplit.Failed:
            has_bib = True
            problems.append(_parsing_failure(spath, line, block))
        elif kind is bibsplit.Implicit and not after_failure:
            stray = "\n".join(ln for ln in block.text.splitlines()
                              if not ln.lstrip().startswith("%"))
            if stray.startswith(",") or _FIELD_IN_TEXT.search(stray) or stray.startswith("}"):
                problems.append(Problem(spath, line, _previous_key(entries, "-"),
                                        "text after the end of the entry looks like its fields: "
                                        "a stray closing brace '}' ends the entry too early; "
                                        "balance the braces of the field before it"))
        elif kind is bibsplit.Comment:
            has_bib = True
            comment = block.text
            m = _DUPLICATE_LOG.match(comment)
            if m:
                dup_log.append((line, m))
            elif comment.startswith("metaanalysis screen:"):
                screen_log.append((line, comment))
        elif kind is not bibsplit.Implicit:
            has_bib = True
    if not has_bib:
        problems.append(Problem(spath, 1, "-", "no BibTeX entry found: is this a .bib file? "
                                "Entries look like @article{key, title = {...}}"))
    _resolve_crossrefs(spath, entries, problems)
    _apply_duplicate_log(spath, entries, dup_log, problems)
    if screen_log:
        from .screening import apply_log
        apply_log(spath, entries, screen_log, problems)
    _check_moderator_types(spath, entries, problems)
    _check_outcome_names(spath, entries, problems)
    _check_characteristic_spellings(spath, entries, problems)
    problems.sort(key=lambda p: (p.line, p.severity))
    return Bibliography(spath, entries, problems, digest)


#: A deduplication decision, appended by ``metaanalysis dedup --apply``:
#: ``@comment{metaanalysis duplicate: KEY = KEPT; rule = doi; score = 100; date = 2026-11-26}``
_DUPLICATE_LOG = re.compile(r"^metaanalysis duplicate:\s*([^\s=;]+)\s*=\s*([^\s;]+)\s*(;.*)?$",
                            re.S)


def _apply_duplicate_log(path: str, entries: list[Entry], log, problems) -> None:
    """Mark the entries that a deduplication decision names as duplicates of another; their
    search provenance joins the kept entry's (PRISMA counts records per database before
    deduplication). A decision naming a key that does not exist is an error."""
    by_key = {e.key: e for e in entries}
    for line, m in log:
        dup, kept = m.group(1), m.group(2)
        missing = [k for k in (dup, kept) if k not in by_key]
        if missing:
            problems.append(Problem(path, line, missing[0], "the duplicate decision names an "
                                    "entry that is not in the file; restore the entry or remove "
                                    "the @comment"))
            continue
        if dup == kept:
            problems.append(Problem(path, line, dup, "an entry cannot be a duplicate of itself"))
            continue
        d = by_key[dup]
        d.duplicate_of = kept
        if d.screening == "included" or d.effects:
            problems.append(Problem(path, d.line, dup, f"marked as a duplicate of {kept} (line "
                                    f"{line}) but included or with effects: its data would be "
                                    "counted twice; keep the data on one entry", "warning"))


def _previous_key(entries: list[Entry], default: str) -> str:
    return entries[-1].key if entries else default


def _parsing_failure(path: str, line: int, block) -> Problem:
    raw = block.raw
    key_match = re.match(r"@\w+\s*[{(]\s*([^,\s]*)", raw)
    key = key_match.group(1) if key_match and key_match.group(1) else "-"
    depth = sum(1 if b == "{" else -1 for b in _BRACE.findall(raw))
    bad = sorted(set(re.findall(r"[\"#'(){}=%\\]", key)))
    if bad:
        msg = (f"the key '{key}' contains {' '.join(bad)}, which a BibTeX key cannot hold: "
               "use letters, digits and - _ : . (e.g. smith2019)")
    elif depth > 0:
        msg = (f"unbalanced braces: {depth} '{{' not closed before the end of the entry; "
               "close every field's braces and end the entry with '}'")
    else:
        detail = [ln.strip() for ln in block.error.splitlines() if ln.strip()]
        msg = "not valid BibTeX" + (f": {detail[-1]}" if detail else "") + \
            "; an entry reads @type{key, field = {value}, ...}"
    return Problem(path, line, key, msg)


def _read_entry(path: str, block, strings: dict[str, str], problems: list[Problem]) -> Entry:
    key = block.key
    line = block.line + 1
    fields, lines = {}, {}
    for name, raw, fline, braced in block.fields:
        name = name.lower()
        fline += 1
        if braced is not None:  # (the usual form, found by the split)
            value, trailing, undefined = braced, "", ()
        else:
            value, trailing, undefined = _resolve(raw, strings)
        if trailing:
            nxt = trailing.split("=")[0].strip() if "=" in trailing else trailing[:20]
            problems.append(Problem(path, fline, key, f"missing comma after field {name}: "
                                    f"the text '{nxt}' follows its value; put a ',' between "
                                    "the two fields"))
        for word in undefined:
            problems.append(Problem(path, fline, key, f"{name} = {word}: '{word}' is not "
                                    "defined (a bare word is a month, jan to dec, or an "
                                    f"@string macro); write the text in braces: {name} = "
                                    f"{{{word}}}"))
        if name in fields:
            problems.append(Problem(path, fline, key, f"field {name} is given twice (also on "
                                    f"line {lines[name]}; field names ignore case in BibTeX): "
                                    "keep one"))
            continue
        if name not in grammar.STANDARD_FIELDS:
            # annotations typed in Zotero's Extra field come LaTeX-escaped from Better BibTeX
            value = decode_annotation(value)
        fields[name] = value
        lines[name] = fline
    if "note" in fields and "tex." in fields["note"]:
        _annotations_in_note(path, key, fields, lines, problems)
    entry = Entry(key, block.entry_type, line, fields, lines)

    for name in fields:
        if name in grammar.STANDARD_FIELDS or name in grammar.GRAMMAR_FIELDS:
            continue
        guess = grammar.suggest_field(name)
        if guess:
            problems.append(Problem(path, lines[name], key, f"unknown field {name}: did you "
                                    f"mean {guess}?"))
    year = fields.get("year", "").strip()
    if "year" in fields and not _YEAR.match(year):
        # a year of a note's references and of its "published from ... to ...": four digits
        problems.append(Problem(path, lines["year"], key, (
            f"year is '{fields['year']}': write the year in full, with four digits (e.g. "
            "1998, not 98)" if year.isdigit() else
            f"year is '{fields['year']}', not a year: write a year such as 2019")))
    elif "year" not in fields and "date" in fields and not _DATE.match(fields["date"].strip()):
        problems.append(Problem(path, lines["date"], key, f"date is '{fields['date']}': "
                                "write a date as BibLaTeX does, e.g. 2019, 2019-03 or "
                                "2019-03-15"))
    _read_screening(path, entry, problems)
    if "searches" in fields:
        entry.searches = _read_searches(path, entry, problems)
    n_texts = 0
    if "effects" in fields:
        entry.effects, n_texts = _read_effects(path, entry, problems)
    if entry.screening == "included" and not n_texts:
        where = lines.get("effects", lines.get("screening", line))
        problems.append(Problem(path, where, key, "included study with no effects: add an "
                                "effects field (outcome = ...; measure = ...; and its data) or "
                                "set screening to excluded: REASON or pending"))
    return entry


#: An annotation typed in Zotero's Extra field as Better BibTeX reads it (``tex.FIELD: value``
#: or ``tex.FIELD= value``), one per line.
_EXTRA_LINE = re.compile(r"^\s*tex\.([A-Za-z][\w.:-]*)\s*[:=]\s*(.*?)\s*$")


def _annotations_in_note(path: str, key: str, fields: dict, lines: dict,
                         problems: list[Problem]) -> None:
    """The annotations that Zotero's own BibTeX export (not Better BibTeX's) leaves in the
    note: it writes the whole Extra field there, so the ``tex.screening: included``,
    ``tex.effects: ...`` lines typed in it (docs/annotations.md) are read as the fields they
    name, each at its own line (without this, such a study was pending and its effects were
    not read, with only "no screening field" said). A field given both ways is a problem."""
    for offset, text in enumerate(fields["note"].split("\n")):
        m = _EXTRA_LINE.match(text)
        if not m:
            continue
        name, line = m.group(1).lower(), lines["note"] + offset
        if name in fields:
            problems.append(Problem(path, line, key, f"{name} is given twice: as a field "
                                    f"(line {lines[name]}) and in the note (from Zotero's "
                                    "Extra field): keep one"))
            continue
        fields[name], lines[name] = decode_annotation(m.group(2)), line


def _resolve_crossrefs(path: str, entries: list[Entry], problems: list[Problem]) -> None:
    """``crossref = {KEY}``: as BibTeX does, an entry takes the bibliographic fields it lacks
    (booktitle, editor, publisher, year ...) from the entry it names. Annotation fields are
    never inherited: a study's screening and data are its own."""
    by_key = {e.key.lower(): e for e in entries}
    for e in entries:
        target = e.fields.get("crossref", "").strip()
        if not target:
            continue
        parent = by_key.get(target.lower())
        if parent is None or parent is e:
            problems.append(Problem(path, e.field_lines["crossref"], e.key, f"crossref = "
                                    f"{{{target}}}: no entry has that key in this file; add "
                                    "it or remove the crossref", "warning"))
            continue
        for name, value in parent.fields.items():
            if name in grammar.STANDARD_FIELDS and name not in e.fields and name != "crossref":
                e.fields[name] = value
                e.field_lines[name] = parent.field_lines[name]


def _read_screening(path: str, entry: Entry, problems: list[Problem]) -> None:
    value = entry.fields.get("screening")
    if value is None:
        problems.append(Problem(path, entry.line, entry.key, "no screening field: counted as "
                                "pending; add screening = {included}, {excluded: REASON} or "
                                "{pending}", "warning"))
        return
    decision, _, reason = value.strip().partition(":")
    decision = decision.strip().lower()
    line = entry.field_lines["screening"]
    if decision == "included" or decision == "pending":
        entry.screening = decision
    elif decision == "excluded":
        entry.screening, entry.reason = "excluded", reason.strip()
        if not entry.reason:
            problems.append(Problem(path, line, entry.key, "excluded without a reason: write "
                                    "excluded: REASON (e.g. excluded: not randomised)"))
    else:
        problems.append(Problem(path, line, entry.key, f"screening is '{value}': expected "
                                "included, excluded: REASON or pending"))


def _read_searches(path: str, entry: Entry, problems: list[Problem]) -> list[dict]:
    """``searches``: one search per line (or ``|``), ``database = ...; date = YYYY-MM-DD``
    and optionally ``file``, ``line``, ``batch``, as ``metaanalysis import`` writes them."""
    out = []
    for line, text in _split_effects(entry.fields["searches"], entry.field_lines["searches"]):
        item = {}
        for part in text.split(";"):
            name, eq, value = part.partition("=")
            if eq and name.strip():
                item[name.strip()] = value.strip()
        if item.get("database") and _DAY.fullmatch(item.get("date", "")) \
                and not is_day(item["date"]):
            problems.append(Problem(path, line, entry.key, f"search '{text}': date = "
                                    f"{item['date']} is not a day of the calendar: give the "
                                    "day the search was run, YYYY-MM-DD"))
            continue
        if not item.get("database") or not is_day(item.get("date", "")):
            problems.append(Problem(path, line, entry.key, f"search '{text}': give database = "
                                    "NAME; date = YYYY-MM-DD (as metaanalysis import writes)"))
            continue
        out.append(item)
    return out


def _split_effects(value: str, first_line: int):
    """Yield (line, text) for each effect: one per line, or several per line split by ' | '."""
    for offset, text in enumerate(value.split("\n")):
        for part in text.split(" | "):
            part = part.strip().strip("|").strip()
            if part:
                yield first_line + offset, part


def _read_effects(path: str, entry: Entry, problems: list[Problem]):
    """The entry's valid effects, and how many effect texts it has (valid or not)."""
    effects, n = [], 0
    for line, text in _split_effects(entry.fields["effects"], entry.field_lines["effects"]):
        n += 1
        effect = _read_effect(path, entry.key, line, text, problems)
        if effect is not None:
            effects.append(effect)
    return effects, n


def _read_effect(path, key, line, text, problems) -> Effect | None:
    pairs: dict[str, str] = {}
    messages = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name:
            if item.strip():
                messages.append(f"'{item.strip()}' is not a key = value pair: write e.g. "
                                "outcome = employment; measure = RR")
            continue
        if name in pairs:
            messages.append(f"effect key {name} is given twice in one effect: keep one")
        pairs[name] = value.strip()
    data, moderators = {}, {}
    if not messages:
        data_keys, text_keys = grammar.DATA_KEYS, grammar.EFFECT_TEXT_KEYS
        for name, value in pairs.items():
            if name in data_keys:
                if _NUMBER.match(value) and math.isfinite(float(value)):
                    data[name] = float(value)
                elif _NUMBER.match(value):
                    messages.append(f"{name} = {value} is beyond the range of numbers (it "
                                    "overflows to infinity): check the value")
                else:
                    messages.append(not_a_number(name, value))
            elif name not in text_keys:
                guess = grammar.suggest_effect_key(name)
                if guess:
                    messages.append(f"unknown effect key {name}: did you mean {guess}?")
                else:
                    moderators[name] = value
    outcome, measure = pairs.get("outcome", ""), pairs.get("measure", "")
    if not messages:
        if not outcome:
            messages.append("effect without outcome: add outcome = NAME (e.g. outcome = "
                            "mortality)")
        if not measure:
            messages.append(f"effect without measure: add measure = one of "
                            f"{', '.join(grammar.MEASURES)}")
        elif measure.upper() not in grammar.MEASURES:
            close = [m for m in grammar.MEASURES if m.lower() == measure.lower()[:len(m)]]
            hint = f" (did you mean {close[0]}?)" if close else ""
            messages.append(f"unknown measure '{measure}'{hint}: use one of "
                            f"{', '.join(grammar.MEASURES)}")
        if not messages:
            measure = measure.upper()
            messages = check_data(measure, data)
    if messages:
        problems.extend(Problem(path, line, key, m) for m in messages)
        return None
    return Effect(line, outcome, measure, data, pairs.get("source", ""), pairs.get("id", ""),
                  moderators)


_FORM_SETS = {m: [(f, frozenset(f)) for f in grammar.DATA_FORMS[m] + grammar.GENERIC_FORMS]
              for m in grammar.MEASURES}


def data_form(measure: str, data: dict[str, float]) -> tuple[str, ...] | None:
    """The first complete data form for a measure (raw data first), or None."""
    keys = data.keys()
    for form, needed in _FORM_SETS[measure]:
        if needed <= keys:
            return form
    return None


def check_data(measure: str, d: dict[str, float]) -> list[str]:
    """Messages for missing or impossible data; empty when the effect can be computed (the
    .bib reader's checks of an effect, and pool's of a CSV row)."""
    form = data_form(measure, d)
    if form is None:
        return [f"data missing for {measure}: give {grammar.describe_forms(measure)}"]
    out = []
    for k in ("sd1i", "sd2i", "sei", "vi"):
        if k in form and d[k] <= 0:
            out.append(f"{k} = {d[k]:g} must be positive")
    for k in ("ai", "bi", "ci", "di", "xi", "n1i", "n2i", "ni", "mi", "x1i", "x2i"):
        if k in form and (d[k] < 0 or d[k] != math.floor(d[k])):
            out.append(f"{k} = {d[k]:g} must be a whole count (0 or more)")
    for k in ("t1i", "t2i") + (("ti",) if form == ("xi", "ti") else ()):
        if k in form and d[k] <= 0:
            out.append(f"{k} = {d[k]:g} must be positive: the person-time at risk")
    if out:
        return out
    if form[:3] == ("ti", "ni", "mi"):
        if d["ni"] - d["mi"] - 1 < 1:
            out.append(f"ni = {d['ni']:g} with mi = {d['mi']:g} other predictors leaves no "
                       f"residual degree of freedom (ni - mi - 1 = {d['ni'] - d['mi'] - 1:g}): "
                       "ni is the number of observations of the regression")
        if "r2i" in form and not 0 <= d["r2i"] <= 1:
            out.append(f"r2i = {d['r2i']:g} is outside [0, 1]: the model's R²")
    if measure in ("SMCC", "SMCR") and "ri" in form:
        if d["ni"] < 3:
            out.append(f"ni = {d['ni']:g}: a standardised mean change needs at least 3 "
                       "participants")
        if not -1 <= d["ri"] <= 1:
            out.append(f"ri = {d['ri']:g} is outside [-1, 1]: the correlation between the "
                       "two time points")
        return out
    if measure in ("SMD", "MD", "ROM") and "m1i" in form:
        for k in ("n1i", "n2i"):
            if d[k] < 2:
                out.append(f"{k} = {d[k]:g}: a group needs at least 2 participants for an SD")
        if measure == "ROM" and (d["m1i"] <= 0 or d["m2i"] <= 0):
            out.append("ROM needs positive means (m1i, m2i): a ratio of means is only defined "
                       "for positive values")
    if form == ("ai", "n1i", "ci", "n2i"):
        for ev, n in (("ai", "n1i"), ("ci", "n2i")):
            if d[ev] > d[n]:
                out.append(f"{ev} = {d[ev]:g} events is more than the group size {n} = "
                           f"{d[n]:g}")
            if d[n] < 1:
                out.append(f"{n} = {d[n]:g}: a group needs at least 1 participant")
    if form == ("ai", "bi", "ci", "di"):
        if d["ai"] + d["bi"] < 1 or d["ci"] + d["di"] < 1:
            out.append("a group of the 2x2 table is empty (ai+bi or ci+di is 0)")
    if "ri" in form:
        if not -1 <= d["ri"] <= 1:
            out.append(f"ri = {d['ri']:g} is outside [-1, 1]: a correlation lies between -1 "
                       "and 1")
        elif measure == "ZCOR" and abs(d["ri"]) == 1:
            out.append("ri = ±1 has no Fisher z: check the correlation")
        minimum = 5 if measure == "UCOR" else 4  # metafor: vi missing when ni <= 3 (4)
        if d["ni"] < minimum:
            out.append(f"ni = {d['ni']:g}: {measure} needs at least {minimum} participants")
    if form == ("xi", "ni"):
        if d["ni"] < 1:
            out.append(f"ni = {d['ni']:g}: a proportion needs at least 1 participant")
        elif d["xi"] > d["ni"]:
            out.append(f"xi = {d['xi']:g} events is more than the sample size ni = "
                       f"{d['ni']:g}")
    if "estimate" in form:
        out += _check_estimate(measure, d, form)
    return out


def _check_estimate(measure: str, d: dict[str, float], form) -> list[str]:
    out = []
    est = d["estimate"]
    if measure in grammar.RATIO_MEASURES:
        bad = [k for k in ("estimate", "ci_lb", "ci_ub") if k in form and d[k] <= 0]
        if bad:
            return [f"{', '.join(bad)} must be positive: {measure} is reported as a ratio "
                    "(e.g. 0.8), not on the log scale (give yi and sei for a log value)"]
    if "ci_lb" in form:
        lb, ub = d["ci_lb"], d["ci_ub"]
        if lb > ub:
            out.append(f"confidence interval bounds are reversed (ci_lb = {lb:g} > ci_ub = "
                       f"{ub:g}): swap them")
        elif not lb <= est <= ub:
            out.append(f"estimate = {est:g} lies outside its confidence interval "
                       f"[{lb:g}, {ub:g}]: check the three numbers")
        elif lb == ub:
            out.append("ci_lb equals ci_ub: a confidence interval needs a width")
    if "pval" in form:
        if not 0 < d["pval"] <= 1:
            out.append(f"pval = {d['pval']:g} must lie in (0, 1]")
        elif est == 0 and d["pval"] < 1:
            out.append("an estimate of 0 with a p-value below 1 gives no standard error")
    if "ci_level" in d and not 50 <= d["ci_level"] < 100:
        out.append(f"ci_level = {d['ci_level']:g}: give the confidence level in percent, e.g. 95")
    return out


#: Two outcome names this close (difflib's ratio, once case, accents and spaces are set aside)
#: are probably one outcome typed two ways.
CLOSE_OUTCOMES = 0.85


def _folded(name: str) -> str:
    """A name without case, accents or repeated spaces (importing.ascii_fold would also drop
    every letter outside ASCII: two names in Greek or Chinese would fold alike)."""
    text = unicodedata.normalize("NFKD", name.casefold())
    return " ".join("".join(c for c in text if not unicodedata.combining(c)).split())


def _check_outcome_names(path: str, entries: list[Entry], problems: list[Problem]) -> None:
    """A warning at an outcome name that is another's but for case, accents or spaces, or a
    letter or two away in as many words (``Mortality``, ``mortalty`` beside ``mortality``; not
    ``satisfaction z`` beside ``satisfaction``): effects are pooled
    by their outcome's exact name, so the two would be pooled apart, each with fewer studies.
    The warning is at the less used spelling's first effect and names the other's lines."""
    import difflib

    uses: dict[str, list[tuple[int, str]]] = {}
    for entry in entries:
        for effect in entry.effects:
            uses.setdefault(effect.outcome, []).append((effect.line, entry.key))
    names = sorted(uses, key=lambda n: (-len(uses[n]), n))  # the most used first
    folded = {n: _folded(n) for n in names}
    for i, name in enumerate(names):
        for other in names[:i]:
            same = folded[name] == folded[other]
            if not same:
                if folded[name].count(" ") != folded[other].count(" "):
                    continue  # a word more ('satisfaction z') is a choice, not a typo
                match = difflib.SequenceMatcher(None, folded[name], folded[other])
                if match.real_quick_ratio() < CLOSE_OUTCOMES or match.ratio() < CLOSE_OUTCOMES:
                    continue
            line, key = uses[name][0]
            lines = ", ".join(str(n) for n, _ in uses[other][:5]) + (
                " ..." if len(uses[other]) > 5 else "")
            how = "differs only in case, accents or spaces from" if same else "is close to"
            problems.append(Problem(
                path, line, key, f"outcome '{name}' ({len(uses[name])} effect(s)) {how} "
                f"'{other}' ({len(uses[other])}, line {lines}): effects are pooled by their "
                "outcome's exact name, so the two are pooled apart; if they are one outcome, "
                "write one name", "warning"))
            break


def _check_characteristic_spellings(path: str, entries: list[Entry],
                                    problems: list[Problem]) -> None:
    """A warning at a characteristic's value (of a study, or of an effect: its moderators)
    written elsewhere but for case, accents or spaces (design = rct beside RCT): subgroups are
    formed by the exact value, so the two would be two subgroups. At the less used
    spelling's first use."""
    values: dict[str, dict[str, list[tuple[Entry, int]]]] = {}
    for e in entries:
        for name, value in e.characteristics().items():
            if value.strip() and not _NUMBER.match(value.strip()):
                values.setdefault(name, {}).setdefault(value.strip(), []).append(
                    (e, e.field_lines[name]))
        for effect in e.effects:  # an effect's own characteristics (its moderators)
            for name, value in effect.moderators.items():
                if value.strip() and not _NUMBER.match(value.strip()):
                    values.setdefault(name, {}).setdefault(value.strip(), []).append(
                        (e, effect.line))
    for name, spellings in values.items():
        groups: dict[str, list[str]] = {}
        for value in spellings:
            groups.setdefault(_folded(value), []).append(value)
        for group in groups.values():
            if len(group) < 2:
                continue
            group.sort(key=lambda v: (-len(spellings[v]), v))  # the most used first
            main = group[0]
            for value in group[1:]:
                (e, line), n = spellings[value][0], len(spellings[value])
                problems.append(Problem(
                    path, line, e.key, f"{name} = '{value}' "
                    f"({n} {'time' if n == 1 else 'times'}) is written '{main}' "
                    f"{len(spellings[main])} time(s) (e.g. {spellings[main][0][0].key}): "
                    "subgroups are formed by the exact value, so these would be two; "
                    "write one spelling", "warning"))


def _check_moderator_types(path: str, entries: list[Entry], problems: list[Problem]) -> None:
    """Warn when a study-level moderator is numeric in some entries and text in others."""
    kinds: dict[str, dict[bool, Entry]] = {}
    for e in entries:
        for name, value in e.characteristics().items():
            v = value.strip()
            if v:
                kinds.setdefault(name, {}).setdefault(bool(_NUMBER.match(v)), e)
    for name, by_kind in kinds.items():
        if len(by_kind) == 2:
            text_entry = by_kind[False]
            problems.append(Problem(
                path, text_entry.field_lines[name], text_entry.key,
                f"{name} is numeric in other entries (e.g. {by_kind[True].key}) but "
                f"'{text_entry.fields[name]}' here: it will be treated as text everywhere",
                "warning"))


def check(paths) -> list[Problem]:
    """Every problem in the given bibliographies, in file and line order."""
    out = []
    for p in paths:
        out.extend(read_bibliography(p).problems)
    return out


def _as_paths(paths) -> list:
    return [paths] if isinstance(paths, (str, Path, Bibliography)) else list(paths)


def read_all(paths) -> list[Bibliography]:
    """Read several bibliographies (paths, or :class:`Bibliography` objects already read);
    raise :class:`BibliographyError` if any has an error."""
    bibs = [p if isinstance(p, Bibliography) else read_bibliography(p)
            for p in _as_paths(paths)]
    errors = [p for b in bibs for p in b.errors]
    if errors:
        raise BibliographyError(errors)
    return bibs


#: A plain number as a characteristic is written: no leading zero (01230 is a code), no
#: exponent, a dot for decimals.
_PLAIN_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")


def is_numeric_characteristic(values) -> bool:
    """Whether a characteristic's values (text, as written) are numbers rather than codes.

    True when every non-empty value is a plain number (``12``, ``-0.5``; not ``01230``,
    ``1e5``) written the same way: if any value ends its decimals with a zero (``1.10``,
    ``80.0``), all have the same number of decimals. So analysis codes ``1.1 ... 1.10``,
    identifiers ``01230`` and labels stay text, while ages ``78.8, 74.2`` are numbers.
    """
    decimals, trailing_zero, n = set(), False, 0
    for v in values:
        if v is None or (isinstance(v, float) and v != v):
            continue
        text = str(v).strip()
        if not text:
            continue
        n += 1
        if not _PLAIN_NUMBER.match(text):
            return False
        _, dot, frac = text.partition(".")
        decimals.add(len(frac))
        trailing_zero |= bool(dot) and frac.endswith("0")
    return n > 0 and not (trailing_zero and len(decimals) > 1)


def typed_columns(df, columns):
    """Characteristics whose values are numbers (see :func:`is_numeric_characteristic`)
    become numeric columns; every other column keeps its text exactly as written."""
    import pandas as pd

    for col in columns:
        if col in df.columns and is_numeric_characteristic(df[col]):
            df[col] = pd.to_numeric(df[col].map(
                lambda v: v.strip() if isinstance(v, str) and v.strip() else None))
    return df


def where_mask(df, where: dict):
    """Rows whose columns equal the given values, compared as the text was written.

    ``{"analysis": "1.1"}`` selects analysis 1.1, never 1.10; a numeric column compares as
    numbers (``{"year": 2019}`` or ``"2019"``); a missing value matches nothing. Raises
    KeyError naming the column when the table has no such column.
    """
    import pandas as pd

    mask = pd.Series(True, index=df.index)
    for col, value in where.items():
        if col not in df.columns:
            raise KeyError(col)
        column = df[col]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            try:
                mask &= column == float(value)
            except (TypeError, ValueError):
                mask &= False
        else:
            mask &= column.map(lambda v: isinstance(v, str) and v.strip() == str(value).strip())
    return mask


_DATA_ORDER = ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i", "ai", "bi", "ci", "di", "ri", "xi",
               "ni", "estimate", "ci_lb", "ci_ub", "ci_level", "pval")


def read_effects(paths, *, screening: str = "included"):
    """The tidy effects table: one row per effect of the included studies.

    Columns: ``key``, ``id``, ``outcome``, ``measure``, ``yi``, ``vi``, ``sei``, the data as
    annotated, ``source``, the study-level characteristics (``year``, ``design`` ...), the
    effect-level moderators, then ``author``, ``title``, ``file`` and ``line``. Raises
    :class:`BibliographyError` when a bibliography has errors.
    """
    import numpy as np
    import pandas as pd

    from .effects import add_effect_sizes

    rows, typed = [], {}
    for bib in read_all(paths):
        for entry in bib.entries:
            if (screening and entry.screening != screening) or entry.duplicate_of:
                continue
            study = {"year": entry.year, **entry.characteristics()}
            typed.update(study)
            for eff in entry.effects:
                typed.update(eff.moderators)
                rows.append({"key": entry.key, "id": eff.id, "outcome": eff.outcome,
                             "measure": eff.measure, **eff.data, "source": eff.source,
                             **study, **eff.moderators,
                             "author": entry.fields.get("author", ""),
                             "title": entry.fields.get("title", ""),
                             "file": bib.path, "line": eff.line})
    base = ["key", "id", "outcome", "measure", "yi", "vi", "sei"]
    if not rows:
        return pd.DataFrame(columns=base + ["source", "year", "author", "title", "file",
                                            "line"])
    df = pd.DataFrame(rows)
    df["year"] = pd.to_numeric(df["year"], errors="coerce")
    df = typed_columns(df, [c for c in typed if c != "year"])
    df = add_effect_sizes(df)
    df["sei"] = np.sqrt(df["vi"])
    data = [c for c in _DATA_ORDER if c in df.columns and c not in base]
    tail = ["author", "title", "file", "line"]
    rest = [c for c in df.columns if c not in base + data + tail]
    return df[base + data + rest + tail]


def read_studies(paths):
    """One row per entry with its screening decision, for the screening flow.

    Columns: ``key``, ``screening`` (included / excluded / pending), ``reason``, ``n_effects``,
    ``author``, ``year``, ``title``, ``doi`` and the study characteristics.
    """
    import pandas as pd

    rows, typed = [], set()
    for bib in read_all(paths):
        for e in bib.entries:
            chars = e.characteristics()
            typed.update(chars)
            rows.append({"key": e.key, "screening": e.screening, "reason": e.reason,
                         "n_effects": len(e.effects), "author": e.fields.get("author", ""),
                         "year": e.year, "title": e.fields.get("title", ""),
                         "doi": e.fields.get("doi", ""), "duplicate_of": e.duplicate_of,
                         "stage": e.stage, "conflict": e.conflict,
                         "decided": bool(e.decisions),
                         "databases": "; ".join(s["database"] for s in e.searches),
                         "search_dates": "; ".join(s.get("date", "") for s in e.searches),
                         **chars, "file": bib.path, "line": e.line})
    cols = ["key", "screening", "reason", "n_effects", "author", "year", "title", "doi",
            "duplicate_of", "stage", "conflict", "decided", "databases", "search_dates",
            "file", "line"]
    df = pd.DataFrame(rows, columns=None if rows else cols)
    df["year"] = pd.to_numeric(df["year"], errors="coerce")
    return typed_columns(df, sorted(typed - {"year"}))
