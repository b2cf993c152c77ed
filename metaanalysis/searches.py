"""Search exports read into records: RIS, PubMed/MEDLINE (.nbib), BibTeX, and the CSV/TSV
exports of Scopus, Web of Science and OpenAlex.

:func:`read_export` detects the format from the content (not the file name) and returns the
records with the line each starts on, and every problem as ``PATH:LINE: -: message``. RIS is
parsed by rispy; MEDLINE's tagged format is simple enough to read here (with its lines); CSV
columns are recognised by the names each database uses. Nothing here writes a file.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from .bibliography import Problem


@dataclass
class Record:
    """One record of a search export, in the fields a bibliography entry needs."""

    title: str = ""
    authors: list = field(default_factory=list)  # "Surname, Given" each
    groups: list = field(default_factory=list)  # group (corporate) authors, each one name
    year: str = ""
    journal: str = ""
    volume: str = ""
    issue: str = ""
    pages: str = ""
    doi: str = ""
    pmid: str = ""
    abstract: str = ""
    keywords: list = field(default_factory=list)
    url: str = ""
    entry_type: str = "article"
    line: int = 0  # where the record starts in its export


class ExportError(ValueError):
    """The file is none of the formats read here; carries the problem with its line."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))


FORMATS = ("ris", "medline", "wos", "bibtex", "csv")


def detect_format(text: str) -> str | None:
    """The export format from the content: RIS (``TY  -``), MEDLINE (``PMID-``), Web of
    Science's plain text (``FN``, ``PT J``), BibTeX (``@type{``), or a CSV/TSV whose header
    names a title column; None otherwise."""
    lines = [ln for ln in text.lstrip("\ufeff").splitlines() if ln.strip()]
    if not lines:
        return None
    head = lines[:40]
    if any(re.match(r"^TY  -", ln) for ln in head):
        return "ris"
    if any(re.match(r"^PMID- ?\d", ln) for ln in head):
        return "medline"
    # Web of Science's "plain text file": FN/VR, then records from "PT J" to "ER"
    if re.match(r"^FN ", head[0]) or (any(re.match(r"^PT [A-Z]\s*$", ln) for ln in head)
                                      and any(re.match(r"^(AU|TI|UT|SO) ", ln) for ln in head)):
        return "wos"
    if any(re.match(r"^\s*@\w+\s*[{(]", ln) for ln in head):
        return "bibtex"
    header = [c.strip().strip('"').lower() for c in re.split(r"[,\t;]", lines[0])]
    if any(c in _TITLE_COLUMNS for c in header):
        return "csv"
    return None


def read_export(path: str | Path) -> list[Record]:
    """The records of one search export; raises :class:`ExportError` (with the line) when the
    file cannot be read or is none of the formats."""
    spath = str(path)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except IsADirectoryError:
        raise ExportError(Problem(spath, 0, "-", "is a folder, not a search export")) from None
    except OSError as exc:
        raise ExportError(Problem(spath, 0, "-", f"cannot be read: {exc.strerror or exc}")) \
            from None
    from .encodings import NotText, decode

    try:
        text = decode(raw, "export it again as UTF-8 (every database offers it)")
    except NotText as exc:
        raise ExportError(Problem(spath, exc.line, "-", exc.reason)) from None
    fmt = detect_format(text)
    if fmt is None:
        raise ExportError(Problem(spath, 1, "-", "not a search export this tool reads: expected "
                                  "RIS (TY  - ...), PubMed/MEDLINE (PMID- ...), Web of "
                                  "Science plain text (FN ..., PT J), BibTeX (@article{...}) "
                                  "or a CSV/TSV with a Title column (Scopus, Web of Science, "
                                  "OpenAlex)"))
    reader = {"ris": _ris, "medline": _medline, "wos": _wos, "bibtex": _bibtex,
              "csv": _csv}[fmt]
    records = reader(spath, text)
    if not records:
        raise ExportError(Problem(spath, 1, "-", f"no record found in this {fmt} file"))
    return records


# ------------------------------------------------------------------ RIS (rispy)
def _first(d: dict, *names) -> str:
    for n in names:
        v = d.get(n)
        if isinstance(v, list):
            v = v[0] if v else ""
        if v:
            return str(v).strip()
    return ""


def _year(text: str) -> str:
    m = re.search(r"\b(1[5-9]\d\d|20\d\d)\b", text or "")
    return m.group(1) if m else ""


def _ris(path: str, text: str) -> list[Record]:
    import rispy

    starts = [i + 1 for i, ln in enumerate(text.splitlines()) if re.match(r"^TY  -", ln)]
    try:
        entries = rispy.loads(text, skip_unknown_tags=True)
    except Exception as exc:  # noqa: BLE001 - rispy's own errors name no line
        raise ExportError(Problem(path, starts[0] if starts else 1, "-",
                                  f"not valid RIS: {exc}")) from None
    out = []
    for i, e in enumerate(entries):
        pages = "--".join(x for x in (_first(e, "start_page"), _first(e, "end_page")) if x)
        authors = list(e.get("authors") or []) + list(e.get("first_authors") or [])
        doi = _first(e, "doi")
        out.append(Record(
            title=_first(e, "title", "primary_title", "translated_title"),
            authors=[a.strip() for a in authors if a and a.strip()],
            year=_year(_first(e, "year", "publication_year", "date")),
            journal=_first(e, "secondary_title", "journal_name", "alternate_title3",
                           "alternate_title1", "alternate_title2"),
            volume=_first(e, "volume"), issue=_first(e, "number"), pages=pages,
            doi=normalise_doi(doi), abstract=_first(e, "abstract", "notes_abstract"),
            keywords=[k for k in e.get("keywords") or [] if k],
            url=_first(e, "urls"),
            pmid=_pmid_from(e),
            entry_type=_ris_type(_first(e, "type_of_reference")),
            line=starts[i] if i < len(starts) else 0))
    return out


def _pmid_from(e: dict) -> str:
    for name in ("accession_number", "custom2", "id"):
        v = _first(e, name)
        m = re.fullmatch(r"(?:PMID:?\s*)?(\d{5,9})", v or "")
        if m:
            return m.group(1)
    return ""


def _ris_type(ty: str) -> str:
    return {"JOUR": "article", "JFULL": "article", "EJOUR": "article", "BOOK": "book",
            "CHAP": "incollection", "CONF": "inproceedings", "CPAPER": "inproceedings",
            "THES": "phdthesis", "RPRT": "techreport", "GEN": "misc"}.get(ty.upper(), "misc")


# ------------------------------------------------------------------ PubMed / MEDLINE
def _medline(path: str, text: str) -> list[Record]:
    records, tag, start = [], None, 0
    fields: dict[str, list[str]] = {}

    def finish():
        if fields:
            records.append(_medline_record(fields, start))

    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = re.match(r"^([A-Z][A-Z0-9]{0,3})\s*- ?(.*)$", line)
        if m and line[:4].rstrip() == m.group(1) and len(line) >= 5 and line[4] == "-":
            tag, value = m.group(1), m.group(2).strip()
            if tag == "PMID":
                finish()
                fields, start = {}, n
            fields.setdefault(tag, []).append(value)
        elif line.startswith("      ") and tag is not None:
            fields[tag][-1] += " " + line.strip()
        else:
            raise ExportError(Problem(path, n, "-", f"not a MEDLINE line: {line[:40]!r}; each "
                                      "line starts with a tag (e.g. 'TI  - ') or six spaces"))
    finish()
    return records


def _medline_record(f: dict, line: int) -> Record:
    def one(tag):
        return f.get(tag, [""])[0]

    doi = next((re.sub(r"\s*\[doi\]$", "", v) for tag in ("LID", "AID") for v in f.get(tag, [])
                if v.endswith("[doi]")), "")
    authors = f.get("FAU") or f.get("AU") or []
    return Record(title=one("TI").rstrip("."), authors=authors, year=_year(one("DP")),
                  journal=one("JT") or one("TA"), volume=one("VI"), issue=one("IP"),
                  pages=one("PG").replace("-", "--"), doi=normalise_doi(doi),
                  pmid=one("PMID"), abstract=one("AB"),
                  keywords=f.get("OT", []) + f.get("MH", []), entry_type="article", line=line)


# ------------------------------------------------------------------ Web of Science (rispy)
def _wos(path: str, text: str) -> list[Record]:
    """Web of Science's "plain text file" (its tagged format: two-letter tags, continuation
    lines indented, each record from ``PT`` to ``ER``), read by rispy's WokParser."""
    import rispy
    from rispy.parser import WokParser

    starts = [i + 1 for i, ln in enumerate(text.splitlines()) if re.match(r"^PT ", ln)]
    try:
        entries = rispy.loads(text, implementation=WokParser, skip_unknown_tags=True)
    except Exception as exc:  # noqa: BLE001 - rispy's own errors name no line
        raise ExportError(Problem(path, starts[0] if starts else 1, "-",
                                  f"not a valid Web of Science plain-text export: {exc}")) \
            from None
    out = []
    for i, e in enumerate(entries):
        pages = "--".join(x for x in (_first(e, "beginning_page"), _first(e, "ending_page"))
                          if x) or _first(e, "article_number")
        authors = e.get("author_full_name") or e.get("authors") or []
        kind = _first(e, "document_type").lower()
        entry_type = ("inproceedings" if "proceedings" in kind else
                      {"J": "article", "B": "book", "S": "incollection", "P": "misc"}.get(
                          _first(e, "publication_type").upper(), "article"))
        out.append(Record(
            title=_first(e, "document_title"),
            authors=[a.strip() for a in authors if a and a.strip()],
            groups=[g.strip() for g in e.get("group_authors") or [] if g and g.strip()],
            year=_year(_first(e, "publication_year", "early_access_year", "publication_date")),
            journal=_first(e, "publication_name"), volume=_first(e, "volume"),
            issue=_first(e, "issue"), pages=pages, doi=normalise_doi(_first(e, "doi")),
            pmid=_first(e, "pubmed_id"), abstract=_first(e, "abstract"),
            keywords=[k.strip() for k in _first(e, "author_keywords").split(";") if k.strip()],
            entry_type=entry_type, line=starts[i] if i < len(starts) else 0))
    return out


# ------------------------------------------------------------------ BibTeX from other tools
def _bibtex(path: str, text: str) -> list[Record]:
    import tempfile

    from .bibliography import latex_to_text, read_bibliography

    with tempfile.NamedTemporaryFile("w", suffix=".bib", delete=False, encoding="utf-8") as f:
        f.write(text)
        tmp = f.name
    try:
        bib = read_bibliography(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fatal = [p for p in bib.errors if "not valid BibTeX" in p.message or "unbalanced" in
             p.message or "no BibTeX entry" in p.message]
    if fatal:
        p = fatal[0]
        raise ExportError(Problem(path, p.line, p.key, p.message))
    out = []
    for e in bib.entries:
        f = e.fields
        authors = _bibtex_authors(f.get("author", ""))
        out.append(Record(title=latex_to_text(f.get("title", "")), authors=authors,
                          year=e.year or "", journal=latex_to_text(
                              f.get("journal", f.get("journaltitle", f.get("booktitle", "")))),
                          volume=f.get("volume", ""), issue=f.get("number", ""),
                          pages=f.get("pages", ""), doi=normalise_doi(f.get("doi", "")),
                          pmid=f.get("pmid", ""), abstract=latex_to_text(f.get("abstract", "")),
                          keywords=[k.strip() for k in f.get("keywords", "").split(",")
                                    if k.strip()],
                          url=f.get("url", ""), entry_type=e.entry_type, line=e.line))
    return out


def _bibtex_authors(field: str) -> list[str]:
    """A BibTeX author field as "Surname, Given" each: split by BibTeX's rule (``and``
    outside braces: ``{Barnes and Noble}`` is one author), LaTeX decoded."""
    from bibtexparser.middlewares.names import (InvalidNameError, parse_single_name_into_parts,
                                                split_multiple_persons_names)

    from .latex import latex_to_text

    out = []
    for name in split_multiple_persons_names(field) if field.strip() else []:
        if name.strip().lower() == "others":
            continue
        try:
            p = parse_single_name_into_parts(name, strict=True)
            last = latex_to_text(" ".join(p.von + p.last)).strip()
            first = latex_to_text(" ".join(p.first)).strip()
            out.append(f"{last}, {first}" if first else last)
        except (InvalidNameError, ValueError):
            out.append(latex_to_text(name).strip())
    return [a for a in out if a]


# ------------------------------------------------------------------ CSV / TSV
#: Column names of each database's CSV export (lowercase), by field.
COLUMNS = {
    "title": ("title", "article title", "document title", "display_name", "ti"),
    # full names first: Scopus's "Authors" and WoS's AU give initials only
    "authors": ("author full names", "af", "authorships.author.display_name", "authors",
                "author names", "author", "au"),
    "year": ("year", "publication year", "publication_year", "py", "pubyear"),
    "journal": ("source title", "journal", "source", "so", "publication title",
                "primary_location.source.display_name", "host_venue.display_name"),
    "volume": ("volume", "vl", "biblio.volume"),
    "issue": ("issue", "is", "biblio.issue"),
    "pages": ("page start", "bp", "biblio.first_page", "pages"),
    "pages_end": ("page end", "ep", "biblio.last_page"),
    "doi": ("doi", "di"),
    "pmid": ("pubmed id", "pmid", "pm", "ids.pmid", "pubmed_id"),
    "abstract": ("abstract", "ab"),
    "keywords": ("author keywords", "keywords", "de", "index keywords"),
    "url": ("link", "url", "id"),
}
_TITLE_COLUMNS = set(COLUMNS["title"])


def csv_delimiter(header: str) -> str:
    """The delimiter of a CSV file from its header line: a tab or a semicolon where the line
    has more of them than commas (spreadsheets in locales whose decimal mark is the comma,
    French Excel's "CSV (point-virgule)" among them, write semicolons), else a comma."""
    if header.count("\t") > header.count(","):
        return "\t"
    return ";" if header.count(";") > header.count(",") else ","


def _csv(path: str, text: str) -> list[Record]:
    delimiter = csv_delimiter(text.splitlines()[0])
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise ExportError(Problem(path, 1, "-", f"not a readable CSV header: {exc}")) from None
    index = {}
    for name, options in COLUMNS.items():
        for o in options:
            if o in header:
                index[name] = header.index(o)
                break
    out = []
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ExportError(Problem(path, reader.line_num, "-", f"not valid CSV: {exc}")) \
                from None
        start, line = line + 1, reader.line_num
        if not any(c.strip() for c in row):
            continue

        def get(name):
            i = index.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        authors = get("authors")
        sep = "|" if "|" in authors else ";"
        # Scopus's full names carry each author's id: "Martin, Claire (57000000001)"
        names = [re.sub(r"\s*\(\d+\)$", "", a.strip()) for a in authors.split(sep)
                 if a.strip()]
        pages = "--".join(x for x in (get("pages"), get("pages_end")) if x)
        kw = get("keywords")
        url = get("url")
        out.append(Record(title=get("title"), authors=names, year=_year(get("year")),
                          journal=get("journal"), volume=get("volume"), issue=get("issue"),
                          pages=pages, doi=normalise_doi(get("doi")),
                          pmid=re.sub(r"\D", "", get("pmid").rsplit("/", 1)[-1]),
                          abstract=get("abstract"),
                          keywords=[k.strip() for k in re.split(r"[;|]", kw) if k.strip()],
                          url=url if url.startswith("http") else "", line=start))
    return out


#: Characters that copying a DOI from a PDF or a web page leaves in it without showing them:
#: zero-width spaces and joiners, the soft hyphen, the byte-order mark.
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\u00ad\ufeff]")


def normalise_doi(doi: str) -> str:
    """A DOI as ``10.xxxx/yyyy``, lowercase (DOIs ignore case), without its URL prefix, the
    percent-encoding of a URL (``10.1000%2Fabc``), invisible characters left by copying, or a
    sentence's full stop or comma after it (``doi:10.1000/abc.`` in a reference list)."""
    import urllib.parse

    d = _INVISIBLE.sub("", doi or "").strip()
    d = re.sub(r"^(https?://(dx\.)?doi\.org/|doi:\s*)", "", d, flags=re.I)
    if "%" in d:
        d = urllib.parse.unquote(d)
    d = d.rstrip(".,;")
    return d.lower() if d.startswith("10.") else ""
