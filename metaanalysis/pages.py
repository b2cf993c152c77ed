"""The site's pages: a note's page from its executed notebook (nbconvert with the ``note``
template, every output through the allowlist), how to cite it, the index of each edition and
the index of the variants. A page with anything outside the allowlist is refused
(:class:`UnsafePage`) rather than published."""

from __future__ import annotations

import functools
import html
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .fingerprints import SITE_LANGS, edition_folder, write_atomic
from .parameters import notebook_parameters, show_value
from .themes import ROOT, load_themes


#: The tag of the cell the render adds to export the note's open data (never on the page).
EXPORT_TAG = "metaanalysis-export"


BRAND = "Comparer les impacts, pas les idéologies"


#: The motto as each edition's header shows it (citations keep the organisation's own BRAND).
MOTTO = {"fr": BRAND, "en": "Compare impacts, not ideologies"}


#: Each language named in itself, for the language switch.
LANGUAGE_NAMES = {"fr": "Français", "en": "English"}


#: Between the make command that reproduces a note and the same as a metaanalysis command: a
#: shell comment, in the page's language.
OR_COMMENT = {"fr": "   # ou : ", "en": "   # or: "}


def command_for(theme: str, changed: dict, lang: str = "en") -> str:
    """The command that reproduces a note, every argument quoted for a POSIX shell, then (a
    comment in ``lang``) the same as a ``metaanalysis render`` command."""
    import shlex

    if not changed:
        return (f"make note THEME={shlex.quote(theme)}{OR_COMMENT[lang]}"
                f"{shlex.join(['metaanalysis', 'render', theme])}")
    words = [w for k, v in changed.items() for w in ("-p", k, f"{v:g}" if isinstance(v, float)
                                                      else str(v))]
    return (shlex.join(["make", "note", f"THEME={theme}", f"PARAMS={shlex.join(words)}"])
            + OR_COMMENT[lang] + shlex.join(["metaanalysis", "render", theme, *words]))


def _bibtex_text(text: str) -> str:
    """Text as a BibTeX field value: braces and TeX's special characters escaped."""
    out = []
    for ch in str(text):
        if ch in "{}%&$#_":
            out.append("\\" + ch)
        elif ch == "\\":
            out.append("\\textbackslash{}")
        elif ch in "~^":
            out.append({"~": "\\textasciitilde{}", "^": "\\textasciicircum{}"}[ch])
        else:
            out.append(ch)
    return "".join(out)


def cite_text(title: str, lang: str, date: str) -> str:
    """How to cite the note, in the language's typography."""
    from .text import PAGE_WORDS, long_date

    words = PAGE_WORDS[lang]
    quoted = f"«\u202f{title}\u202f»" if lang == "fr" else f"“{title}”"
    return f"{BRAND}, {quoted}, {words['note_type']}, {words['version']} {long_date(date, lang)}."


def cite_bibtex(name: str, title: str, lang: str, date: str) -> str:
    """The note as a BibTeX entry (a report of the think tank, with its version date)."""
    from .text import PAGE_WORDS, long_date

    words = PAGE_WORDS[lang]
    year = date[:4] if date[:4].isdigit() else ""
    key = f"{name}-{date}".replace(" ", "")
    return (f"@techreport{{{_bibtex_text(key)},\n"
            f"  title = {{{_bibtex_text(title)}}},\n"
            f"  institution = {{{_bibtex_text(BRAND)}}},\n"
            f"  type = {{{_bibtex_text(words['note_type'])}}},\n"
            f"  year = {{{year}}},\n"
            f"  note = {{{_bibtex_text(words['version'] + ' ' + long_date(date, lang))}}},\n"
            f"  language = {{{lang}}}\n}}")


def note_date(root: Path, files: list[Path]) -> str:
    """The date the inputs last changed: their last commit, or their newest mtime if edited."""
    rel = [str(f.relative_to(root)) for f in files if f.exists()]
    try:
        # --no-optional-locks: a status never takes the index lock, so a slow one (the
        # notebooks' nbstripout filter) that hits the timeout cannot leave .git/index.lock
        # behind and break the researcher's next commit
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--",
                                *rel], cwd=root, capture_output=True, text=True, timeout=10)
        if dirty.returncode == 0 and not dirty.stdout.strip():
            log = subprocess.run(["git", "log", "-1", "--format=%cs", "--", *rel], cwd=root,
                                 capture_output=True, text=True, timeout=10)
            if log.returncode == 0 and log.stdout.strip():
                return log.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    newest = max((f.stat().st_mtime for f in files if f.exists()), default=0)
    return time.strftime("%Y-%m-%d", time.gmtime(newest))


def software_versions() -> list[tuple[str, str]]:
    from importlib.metadata import version

    names = ["metaanalysis", "numpy", "scipy", "pandas", "matplotlib"]
    return [("Python", sys.version.split()[0])] + [(n, version(n)) for n in names]


def convert(nb, resources: dict, root: Path) -> str:
    """An executed notebook as a note page (the ``note`` template); every output and Markdown
    cell passes the allowlist sanitizer, and a page with anything outside the allowlist is
    refused (:class:`UnsafePage`) rather than published."""
    from .plots import FIGURE_METADATA, figure_html
    from .sanitize import page_violations

    exporter = note_exporter(*template_state(root))
    # the render's own export cell is not part of the note
    nb.cells = [c for c in nb.cells if EXPORT_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        # an empty display (a paragraph whose condition does not hold, no sources ...) leaves
        # no empty box on the page
        cell["outputs"] = [o for o in cell.get("outputs", []) if not _empty_display(o)]
        for output in cell.get("outputs", []):
            figure = output.get("metadata", {}).get(FIGURE_METADATA)
            if figure is not None and "image/svg+xml" in output.get("data", {}):
                # a figure: the page shows its SVG inline in a <figure> with alt text and
                # caption; its PNG (for other viewers) is not published
                data = output["data"]
                data["text/html"] = figure_html(data.pop("image/svg+xml"),
                                                str(figure.get("alt", "")),
                                                str(figure.get("caption", "")),
                                                resources.get("note", {}).get("lang"))
                data.pop("image/png", None)
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    if resources.get("note", {}).get("lang") == "fr":
        from .typography import french_spacing
        body = french_spacing(body)
    problems = page_violations(body)
    if problems:
        raise UnsafePage("the page would contain " + "; ".join(sorted(set(problems))[:5]))
    return body


def template_state(root: Path) -> tuple[str, tuple]:
    """The project's templates folder and the state of its files (name, size, modification
    time): :func:`note_exporter`'s key, so an edited template gets a new exporter."""
    folder = root / "templates"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return str(folder), tuple((str(p.relative_to(folder)), p.stat().st_size,
                               p.stat().st_mtime_ns) for p in files)


@functools.lru_cache(maxsize=4)
def note_exporter(templates: str, state: tuple = ()):
    """The exporter of the note pages (nbconvert's HTMLExporter with the ``note`` template in
    ``templates``), made and its templates compiled once per process and state of the
    templates' files (``state``, from :func:`template_state`: nbconvert keeps a compiled template
    even when its file changes): a worker converts note after note with it, as nbconvert's
    own command converts several notebooks (each conversion gets its own notebook and
    resources). The render makes it before forking its workers, which inherit it compiled."""
    from nbconvert import HTMLExporter

    from .sanitize import sanitize

    exporter = HTMLExporter(template_file="index.html.j2", extra_template_basedirs=[templates],
                            template_name="note", exclude_input=True,
                            exclude_input_prompt=True, exclude_output_prompt=True,
                            filters={"sanitize": sanitize})
    exporter.template  # noqa: B018 - compiles the page's templates now
    return exporter


#: The CSS selectors nbconvert's HTMLExporter runs on every page it writes (nbconvert 7:
#: images without alt text, the cells' input and output areas made focusable).
_EXPORTER_SELECTORS = ("img:not([alt])", ".jp-Notebook div.jp-Cell-inputWrapper",
                       ".jp-Notebook div.jp-OutputArea-output")


def warm_up_conversion() -> None:
    """What the first conversion in a process would otherwise do, done once in the render
    before it forks its workers (each then starts its first note with it done, as the
    exporter compiled by :func:`note_exporter`): nbconvert's HTMLExporter parses every page
    with BeautifulSoup and selects elements with soupsieve, which compiles its selectors'
    patterns on first use (0.15-0.2 s); a page's figures need the plots module, and with it
    numpy (0.1 s). Nothing of a page is kept: soupsieve's compiled selectors and Python's
    imported modules."""
    from bs4 import BeautifulSoup

    from . import plots  # noqa: F401 - imported for the workers

    soup = BeautifulSoup('<div class="jp-Notebook"><img src="x"></div>', features="html.parser")
    for selector in _EXPORTER_SELECTORS:
        soup.select(selector)
    str(soup)


def _empty_display(output) -> bool:
    """A display whose rich forms (HTML, Markdown ...) are all empty."""
    rich = {k: v for k, v in output.get("data", {}).items() if k != "text/plain"}
    return bool(rich) and not any(v.strip() if isinstance(v, str) else v
                                  for v in rich.values())


class UnsafePage(ValueError):
    """A rendered page holds an element, attribute or URL outside the allowlist."""


def _gap_map_html(site: Path, themes: dict, lang: str) -> str:
    from .figures import gap_map, gap_map_table
    from .plots import svg_figure

    data = {}
    for slug in themes:
        f = site / "data" / f"{slug}.json"
        if f.exists():
            data[slug] = json.loads(f.read_text(encoding="utf-8"))
    table = gap_map_table(data, themes, lang)
    if table.empty:
        return ""
    from .plots import figure_html

    fig = svg_figure(gap_map(table, lang=lang))
    return figure_html(fig.svg, fig.alt, fig.caption, lang)


def prepare_index() -> None:
    """Import what :func:`write_index` needs beyond this module: the gap map's figure
    (matplotlib, pandas), its SVG canvas, jinja2. About a second of a cold render's end,
    which the render spends instead while its workers render the notes."""
    import jinja2  # noqa: F401
    import matplotlib.backends.backend_mixed  # noqa: F401
    import matplotlib.backends.backend_svg  # noqa: F401
    import matplotlib.figure  # noqa: F401

    from . import figures  # noqa: F401


def write_index(site: Path, root: Path = ROOT, lang: str = "fr", skip=()) -> Path:
    """The index of the notes in ``lang`` (``site/index.html``, ``site/en/index.html``), from
    ``templates/site/index.html.j2``: every theme with its headline result, the date of its
    data and links to its open data, the evidence gap map, a language switch (themes in
    ``skip``, whose entry in themes.json is invalid, are left out)."""
    import jinja2

    from .grammar import natural_scale
    from .text import INDEX_WORDS, counted, estimate_ci, long_date, t

    folder = edition_folder(site, lang)
    words = INDEX_WORDS[lang]
    themes = {k: v for k, v in load_themes(root).items() if k not in skip}
    rows = []
    for slug, c in themes.items():
        data = folder / "data" / f"{slug}.json"
        headline = words["no_synthesis"]
        if data.exists():
            d = json.loads(data.read_text(encoding="utf-8"))
            first = next((o for o in d["outcomes"] if o.get("estimate") is not None), None)
            if first:
                tf = natural_scale(first["measure"])
                sep = " : " if lang == "fr" else ": "
                headline = (f"{first['label']}{sep}"
                            f"{t('measure_name.' + first['measure'], lang)} "
                            + estimate_ci(tf(first["estimate"]), tf(first["ci_lb"]),
                                          tf(first["ci_ub"]), lang)
                            + f", {counted(int(first['n_studies']), 'study', lang)}")
        page = folder / f"{slug}.html"
        rows.append({
            "title": c["title"][lang], "summary": c["summary"][lang], "headline": headline,
            "href": f"{slug}.html" if page.exists() else None,
            "date": (date := note_date(root, [root / c["bibliography"], root / c["notebook"]])),
            "date_text": long_date(date, lang),
            "files": [(ext.upper(), f"data/{slug}.{ext}") for ext in ("csv", "json")
                      if (folder / "data" / f"{slug}.{ext}").exists()]})
    variants = variants_index(site, lang)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(root / "templates" / "site")),
                             autoescape=True, keep_trailing_newline=True)
    page = env.get_template("index.html.j2").render(
        lang=lang, words=words, brand=MOTTO.get(lang, BRAND), rows=rows,
        colon=" : " if lang == "fr" else ": ",
        css=(root / "templates" / "note" / "note.css").read_text(encoding="utf-8"),
        gap=_gap_map_html(folder, themes, lang),
        variants=os.path.relpath(variants, folder) if variants.exists() else None,
        alternates=[(code, os.path.relpath(edition_folder(site, code) / "index.html", folder))
                    for code in SITE_LANGS],
        switch=[(code, LANGUAGE_NAMES[code],
                 os.path.relpath(edition_folder(site, code) / "index.html", folder))
                for code in SITE_LANGS if code != lang])
    from .sanitize import page_violations
    from .typography import french_spacing

    page = french_spacing(page) if lang == "fr" else page
    problems = page_violations(page)
    if problems:
        raise UnsafePage(f"{folder.name}/index.html would contain "
                         + "; ".join(sorted(set(problems))[:5]))
    path = folder / "index.html"
    write_atomic(path, page)
    return path


def variants_index(site: Path, lang: str) -> Path:
    """The variants' index page in ``lang``: ``site/variants/index.html`` in French,
    ``site/variants/en/index.html`` in English (as the notes' editions)."""
    return edition_folder(site / "variants", lang) / "index.html"


def write_variants_index(site: Path, root: Path = ROOT) -> list[Path]:
    """The variants' index pages, one per language of the site (:func:`variants_index`):
    every variant rendered on this site, newest first, with its theme (its title in the
    variant's own language), the parameters it changes from the published note, and its
    date."""
    from datetime import datetime, timezone

    themes = load_themes(root)
    found = []
    folder = site / "variants"
    for data in sorted((folder / "data").glob("*.json"), key=lambda p: -p.stat().st_mtime):
        try:
            summary = json.loads(data.read_text(encoding="utf-8"))
            theme = summary["theme"]
            config = themes[theme]
            defaults = notebook_parameters(root / config["notebook"])
        except (OSError, ValueError, KeyError):
            continue  # a variant of a theme since removed, or a file being written
        params = summary.get("parameters", {})
        changed = [(k, show_value(v)) for k, v in params.items()
                   if k in defaults and k != "theme" and defaults[k] != v]
        when = datetime.fromtimestamp(data.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d")
        lang = params.get("lang", "fr")
        found.append((folder / f"{data.stem}.html", config["title"].get(lang, theme), lang,
                      changed, when))
    return [_write_variants_page(site, root, lang, found) for lang in SITE_LANGS]


def _write_variants_page(site: Path, root: Path, lang: str, found: list) -> Path:
    from .text import VARIANTS_WORDS, long_date

    words = VARIANTS_WORDS[lang]
    path = variants_index(site, lang)
    here = path.parent
    rows = []
    for page, title, title_lang, changed, when in found:
        # the title in the variant's language, said so to a screen reader
        link = (f"<a href='{html.escape(os.path.relpath(page, here))}' "
                f"lang='{html.escape(title_lang)}'>{html.escape(title)}</a>"
                if page.exists() else html.escape(title))
        rows.append(f"<tr><td>{link}</td><td>"
                    + (", ".join(f"<code>{html.escape(k)} = {html.escape(v)}</code>"
                                 for k, v in changed) or "–")
                    + f"</td><td><time datetime='{when}'>{html.escape(long_date(when, lang))}"
                    "</time></td></tr>")
    alternates = "".join(
        f"\n<link rel=\"alternate\" hreflang=\"{code}\" "
        f"href=\"{html.escape(os.path.relpath(variants_index(site, code), here))}\">"
        for code in SITE_LANGS)
    switch = "".join(
        f" · <a href=\"{html.escape(os.path.relpath(variants_index(site, code), here))}\" "
        f"hreflang=\"{code}\" lang=\"{code}\">{html.escape(LANGUAGE_NAMES[code])}</a>"
        for code in SITE_LANGS if code != lang)
    index = os.path.relpath(edition_folder(site, lang) / "index.html", here)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in words["head"])
    none = f'<tr><td colspan="3">{html.escape(words["none"])}</td></tr>'
    css = (root / "templates" / "note" / "note.css").read_text(encoding="utf-8")
    page = f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{html.escape(words["title"])}</title>{alternates}
<style>{css}</style>
</head>
<body>
<header class="note-header"><p class="brand">{html.escape(MOTTO.get(lang, BRAND))}</p>
<nav class="top"><a href="{html.escape(index)}">{html.escape(words["index"])}</a>{switch}</nav>
<h1>{html.escape(words["title"])}</h1></header>
<main>
<p>{html.escape(words["intro"])}</p>
<div class="scroll"><table>
<thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(rows) or none}
</tbody>
</table></div>
</main>
</body>
</html>
"""
    from .sanitize import page_violations
    from .typography import french_spacing

    page = french_spacing(page) if lang == "fr" else page
    problems = page_violations(page)
    if problems:
        raise UnsafePage(f"{path.relative_to(site)} would contain "
                         + "; ".join(sorted(set(problems))[:5]))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, page)
    return path
