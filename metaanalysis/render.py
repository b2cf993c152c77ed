"""Render the site: each theme's notebook executed with papermill, converted with nbconvert.

:func:`render` validates the parameters and every bibliography before anything runs, then
renders the themes in parallel (one kernel per theme), skips those whose inputs have not
changed, writes every file to a temporary name before renaming it (so a failing theme never
erases its last good note) and finally writes ``site/index.html``.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import html
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .text import PAGE_WORDS as WORDS
from .themes import ROOT, load_themes, validate_parameters

BRAND = "Comparer les impacts, pas les idéologies"
#: The motto as each edition's header shows it (citations keep the organisation's own BRAND).
MOTTO = {"fr": BRAND, "en": "Compare impacts, not ideologies"}


@dataclass
class Job:
    """One note to render: a theme with its parameters and where its files go."""

    theme: str
    params: dict
    changed: dict
    html: Path
    data_dir: Path
    name: str
    stamp: Path
    digest: str = ""
    #: the published note's editions by language (their pages), for the language switch
    alternates: dict = field(default_factory=dict)


@dataclass
class Outcome:
    theme: str
    status: str  # "rendered", "up to date", "failed"
    seconds: float = 0.0
    message: str = ""
    path: str = ""
    profile: dict = field(default_factory=dict)
    #: the note's language ("" when the theme was refused before any job was planned)
    lang: str = ""


class RenderError(ValueError):
    """Refused before anything ran (unknown theme, bad parameter)."""


# ------------------------------------------------------------------ parameters
def notebook_parameters(path: Path) -> dict:
    """The names and default values of a notebook's papermill ``parameters`` cell."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            out = {}
            for node in ast.parse(src).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                        node.targets[0], ast.Name):
                    out[node.targets[0].id] = ast.literal_eval(node.value)
            return out
    raise RenderError(f"{path}: no cell tagged 'parameters'")


def coerce_parameters(given: dict, defaults: dict, notebook: Path) -> dict:
    """Check names against the notebook's parameters cell and convert values to their types."""
    out = {}
    for name, value in given.items():
        if name == "theme":
            raise RenderError("theme is not a parameter: name the theme itself (metaanalysis "
                              "render THEME, make note THEME=...)")
        if name not in defaults:
            raise RenderError(f"unknown parameter {name!r} for {notebook.name}: parameters are "
                              f"{', '.join(k for k in defaults if k != 'theme')}")
        default = defaults[name]
        if isinstance(default, bool):
            if str(value).lower() not in ("true", "false", "1", "0"):
                raise RenderError(f"parameter {name} = {value!r}: expected true or false")
            out[name] = str(value).lower() in ("true", "1")
        elif isinstance(default, (int, float)):
            try:
                out[name] = type(default)(value) if not isinstance(value, (int, float)) else value
            except ValueError:
                raise RenderError(f"parameter {name} = {value!r}: expected a number like "
                                  f"{default!r}") from None
        else:
            out[name] = str(value)
    try:
        valid = validate_parameters({**defaults, **out})
    except ValueError as exc:
        raise RenderError(f"parameter {exc}") from None
    # the values as the note will use them (-p lang FR is lang fr), for the run and the name
    return {k: valid[k] for k in out}


# ------------------------------------------------------------------ inputs and fingerprints
def _package_digest() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "metaanalysis").glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _notebook_code(path: Path) -> bytes:
    """The notebook without outputs or execution counts: what it does, not what it showed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list)
              else c["source"]) for c in nb["cells"]]
    return json.dumps(cells).encode()


def common_digest(root: Path) -> str:
    """A digest of what every note depends on: the package's code and the templates."""
    h = hashlib.sha256()
    h.update(_package_digest().encode())
    for p in sorted((root / "templates").rglob("*")):
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def fingerprint(root: Path, theme: str, config: dict, params: dict,
                common: str | None = None) -> str:
    """A digest of everything a theme's note depends on; ``common``: :func:`common_digest`
    (computed if not given; a render computes it once for all its notes)."""
    h = hashlib.sha256()
    h.update(_notebook_code(root / config["notebook"]))
    bib = root / config["bibliography"]
    h.update(bib.read_bytes() if bib.exists() else b"")
    h.update(json.dumps(config, sort_keys=True).encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    h.update((common or common_digest(root)).encode())
    return h.hexdigest()


def _date(root: Path, files: list[Path]) -> str:
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


def _versions() -> list[tuple[str, str]]:
    from importlib.metadata import version

    names = ["metaanalysis", "numpy", "scipy", "pandas", "matplotlib"]
    return [("Python", sys.version.split()[0])] + [(n, version(n)) for n in names]


# ------------------------------------------------------------------ one theme
def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return "metaanalysis" if "metaanalysis" in KernelSpecManager().find_kernel_specs() else "python3"


def variant_name(theme: str, changed: dict) -> str:
    """``autonomy--method-DL--exclude-high_rob``: a file name that says what differs."""
    import re

    readable = [f"{k}-{re.sub(r'[^A-Za-z0-9_]+', '_', _show(v)).strip('_') or 'empty'}"
                for k, v in sorted(changed.items())]
    name = "--".join([theme] + readable)
    exact = all(re.fullmatch(r"[A-Za-z0-9_]+", _show(v)) for v in changed.values())
    if not exact or len(name) > 120:
        # the readable name lost something (a comma, a space, case ...): a short hash of the
        # effective parameters keeps two different variants apart
        digest = hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode())
        name = f"{name[:100]}--{digest.hexdigest()[:8]}"
    return name


def command_for(theme: str, changed: dict) -> str:
    """The command that reproduces a note, every argument quoted for a POSIX shell."""
    import shlex

    if not changed:
        return (f"make note THEME={shlex.quote(theme)}   # or: "
                f"{shlex.join(['metaanalysis', 'render', theme])}")
    words = [w for k, v in changed.items() for w in ("-p", k, f"{v:g}" if isinstance(v, float)
                                                      else str(v))]
    return (shlex.join(["make", "note", f"THEME={theme}", f"PARAMS={shlex.join(words)}"])
            + "   # or: " + shlex.join(["metaanalysis", "render", theme, *words]))


#: The note's kernel computes no PNG: the page shows each figure's inline SVG, and the PNG
#: that a figure offers to other viewers (VS Code, GitHub) would be drawn for nothing
#: (plots.SVGFigure asks the kernel's PNG formatter).
KERNEL_ARGUMENTS = ["--PNGFormatter.enabled=False"]


def render_one(job: Job, root: Path, timeout: int, threads: int | None = None,
               warm: bool = True) -> Outcome:
    """Execute and convert one note; never raises (failures come back as an Outcome). The
    note's kernel gets ``threads`` BLAS threads (default: its libraries' own choice); with
    ``warm``, it is forked from this process's template, which has done a kernel's imports
    once (:mod:`metaanalysis.kernelfork`), rather than started and imported anew."""
    start = time.perf_counter()
    profile = {}
    try:
        import nbformat
        import papermill as pm

        config = load_themes(root)[job.theme]
        nb_path = root / config["notebook"]
        params = {**notebook_parameters(nb_path), **job.params}
        t0 = time.perf_counter()
        # the note's own Note writes the open data, by a last cell the render adds (tagged,
        # dropped from the page), into a staging folder moved into place only once the page
        # is written: the numbers of the page and of the open data are the same computation
        import shutil
        staging = job.stamp.parent / "staging" / str(os.getpid()) / job.name
        shutil.rmtree(staging, ignore_errors=True)
        source = nbformat.read(nb_path, as_version=4)
        source.cells.append(export_cell(job.theme, staging, job.name))
        # papermill saves the executed notebook as it goes: kept if a cell fails, so the
        # researcher can open it at the failing cell (site/.build/failed/NAME.ipynb)
        executed_path = staging.parent / f"{job.name}.ipynb"
        executed_path.parent.mkdir(parents=True, exist_ok=True)
        from .kernels import kernel_manager_class

        for attempt in (1, 2):
            with _kernel_stderr_filtered() as captured:
                try:
                    executed = pm.execute_notebook(
                        source, str(executed_path), parameters=params,
                        kernel_name=_kernel_name(), progress_bar=False, log_output=False,
                        execution_timeout=timeout, cwd=str(nb_path.parent),
                        report_mode=False, extra_arguments=KERNEL_ARGUMENTS,
                        kernel_manager_class=kernel_manager_class(threads, warm=warm))
                    failed = None
                except Exception as exc:  # noqa: BLE001 - reported below
                    failed = exc
            # a new kernel can lose the ports it was given to another process before binding
            # them (jupyter_client picks them, the kernel binds them; seen once in CI): it
            # dies at start, and is started again, once, with new ports
            if failed is not None and attempt == 1 and PORT_TAKEN in captured.text:
                continue
            captured.forward()
            if failed is not None:
                raise failed
            break
        profile["execute"] = time.perf_counter() - t0
        if not all((staging / f"{job.name}{s}").exists() for s in (".csv", ".json")):
            # the notebook made no Note for its theme: compute the open data here
            t0 = time.perf_counter()
            from .notes import Note
            note = Note(**{k: params[k] for k in NOTE_PARAMETERS if k in params}, root=root)
            note.export(staging, job.name)
            profile["data"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        nb = nbformat.from_dict(executed)
        lang = params.get("lang", "fr")
        defaults = notebook_parameters(nb_path)
        from .pdf import find_chromium

        chromium = None if job.changed else find_chromium()
        pdf_path = job.html.with_suffix(".pdf") if chromium else None
        comparison = ""
        if job.changed:  # a reviewer's variant: beside the published note's numbers
            comparison = _comparison(job, root, defaults, staging / f"{job.name}.json", lang)
            profile["compare"] = time.perf_counter() - t0
            t0 = time.perf_counter()
        bib = root / config["bibliography"]
        date = _date(root, [bib, nb_path])
        resources = {"note": {
            "title": config["title"][lang], "lang": lang, "brand": MOTTO.get(lang, BRAND),
            "words": WORDS[lang], "date": date,
            "parameters": [(k, _show(params[k])) for k in defaults],
            "changed": [(k, _show(v)) for k, v in job.changed.items()],
            "variant": bool(job.changed), "variant_label": WORDS[lang]["variant"],
            "bibliography": config["bibliography"],
            # the hash of the bytes the note's kernel read, never a second read of the file
            "sha256": _read_digest(staging / f"{job.name}.json"),
            "versions": _versions(),
            "command": command_for(job.theme, job.changed or (
                {"lang": lang} if lang != defaults.get("lang", SITE_LANGS[0]) else {})),
            # the other editions of the published note: a switch and hreflang links
            "alternates": [(code, os.path.relpath(path, job.html.parent))
                           for code, path in job.alternates.items()],
            "switch": [(code, LANGUAGE_NAMES[code], os.path.relpath(path, job.html.parent))
                       for code, path in job.alternates.items() if code != lang],
            # links relative to the page: its own open data and the index
            "csv": os.path.relpath(job.data_dir / f"{job.name}.csv", job.html.parent),
            "json": os.path.relpath(job.data_dir / f"{job.name}.json", job.html.parent),
            "index": os.path.relpath(job.html.parent.parent / "index.html"
                                     if job.changed else job.html.parent / "index.html",
                                     job.html.parent),
            "comparison": comparison,
            "pdf": pdf_path.name if pdf_path is not None else "",
            "bibtex": cite_bibtex(job.name, config["title"][lang], lang, date),
            "cite": cite_text(config["title"][lang], lang, date)}}
        body = convert(nb, resources, root)
        profile["convert"] = time.perf_counter() - t0
        _atomic(job.html, body)
        pdf_problem = ""
        if pdf_path is not None:  # the published note's PDF edition, from the page just written
            from .pdf import shared_printer

            t0 = time.perf_counter()
            try:  # one Chromium for all the notes this worker prints
                shared_printer(chromium).print(job.html, pdf_path)
            except RuntimeError as exc:  # the HTML note stands; the PDF is reported missing
                pdf_problem = f"PDF not written: {exc}"
            profile["pdf"] = time.perf_counter() - t0
        job.data_dir.mkdir(parents=True, exist_ok=True)
        for suffix in (".csv", ".json"):
            os.replace(staging / f"{job.name}{suffix}", job.data_dir / f"{job.name}{suffix}")
        shutil.rmtree(staging, ignore_errors=True)
        executed_path.unlink(missing_ok=True)
        (job.stamp.parent / "failed" / f"{job.name}.ipynb").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()  # this process's staging folder, if now empty
        _atomic(job.stamp, json.dumps({"digest": job.digest}))
        return Outcome(job.theme, "rendered", time.perf_counter() - start, pdf_problem,
                       lang=job_lang(job),
                       path=str(job.html), profile=profile)
    except Exception as exc:  # noqa: BLE001 - a failing theme must never stop the others
        kept = _keep_failed(job, locals().get("executed_path"))
        message = _describe(exc, locals().get("nb_path"))
        if kept:
            message += f"; the executed notebook, up to that cell, is kept in {kept}"
        return Outcome(job.theme, "failed", time.perf_counter() - start, message,
                       lang=job_lang(job))


#: The notebook parameters a :class:`~metaanalysis.notes.Note` takes.
NOTE_PARAMETERS = ("theme", "measure", "method", "test", "outcome", "exclude", "level", "lang",
                   "model")


def _comparison(job, root: Path, defaults: dict, variant_json: Path, lang: str) -> str:
    """The variant's comparison table: the published note (the notebook's default
    parameters, on the same bibliography) against the variant's own open-data summary."""
    from .compare import compare, comparison_html
    from .notes import Note

    with warnings.catch_warnings():
        # the published note shows its own fit warnings; recomputing it here only compares
        warnings.simplefilter("ignore")
        published = Note(**{k: v for k, v in {**defaults, "theme": job.theme,
                                              "lang": lang}.items()
                            if k in NOTE_PARAMETERS}, root=root).summary()
    variant = json.loads(variant_json.read_text(encoding="utf-8"))
    return comparison_html(compare(published, variant, lang), lang)


#: The tag of the cell the render adds to export the note's open data (never on the page).
EXPORT_TAG = "metaanalysis-export"


def export_cell(theme: str, directory: Path, name: str):
    """The last cell the render adds to a note's notebook: the Note the notebook made
    (``note``) writes its open data into ``directory`` as NAME.csv and NAME.json. Explicit
    code in the executed notebook, no environment variable; nothing happens if the notebook
    made no Note of its theme (the render then computes the open data itself)."""
    import nbformat

    code = ("# added by `metaanalysis render`: this note's open data, from its own Note\n"
            "from metaanalysis.render import export_note as _export_note\n"
            f"_export_note(globals().get('note'), {theme!r}, {str(directory)!r}, {name!r})")
    return nbformat.v4.new_code_cell(code, metadata={"tags": [EXPORT_TAG]})


def export_note(note, theme: str, directory: str, name: str) -> None:
    """Write ``note``'s open data if it is a :class:`~metaanalysis.notes.Note` of ``theme``."""
    from .notes import Note

    if isinstance(note, Note) and note.slug == theme:
        note.export(directory, name)


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
    from .text import PAGE_WORDS

    words = PAGE_WORDS[lang]
    quoted = f"«\u202f{title}\u202f»" if lang == "fr" else f"“{title}”"
    return f"{BRAND}, {quoted}, {words['note_type']}, {words['version']} {date}."


def cite_bibtex(name: str, title: str, lang: str, date: str) -> str:
    """The note as a BibTeX entry (a report of the think tank, with its version date)."""
    from .text import PAGE_WORDS

    words = PAGE_WORDS[lang]
    year = date[:4] if date[:4].isdigit() else ""
    key = f"{name}-{date}".replace(" ", "")
    return (f"@techreport{{{_bibtex_text(key)},\n"
            f"  title = {{{_bibtex_text(title)}}},\n"
            f"  institution = {{{_bibtex_text(BRAND)}}},\n"
            f"  type = {{{_bibtex_text(words['note_type'])}}},\n"
            f"  year = {{{year}}},\n"
            f"  note = {{{_bibtex_text(words['version'] + ' ' + date)}}},\n"
            f"  language = {{{lang}}}\n}}")


def _keep_failed(job: Job, executed_path) -> Path | None:
    """Move the partly executed notebook to ``site/.build/failed/NAME.ipynb``."""
    if executed_path is None or not Path(executed_path).exists():
        return None
    target = job.stamp.parent / "failed" / f"{job.name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(executed_path, target)
    return target


def convert(nb, resources: dict, root: Path) -> str:
    """An executed notebook as a note page (the ``note`` template); every output and Markdown
    cell passes the allowlist sanitizer, and a page with anything outside the allowlist is
    refused (:class:`UnsafePage`) rather than published."""
    from .plots import FIGURE_METADATA, figure_html
    from .sanitize import page_violations

    exporter = note_exporter(*_templates(root))
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


def _templates(root: Path) -> tuple[str, tuple]:
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
    templates' files (``state``, from :func:`_templates`: nbconvert keeps a compiled template
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


def _empty_display(output) -> bool:
    """A display whose rich forms (HTML, Markdown ...) are all empty."""
    rich = {k: v for k, v in output.get("data", {}).items() if k != "text/plain"}
    return bool(rich) and not any(v.strip() if isinstance(v, str) else v
                                  for v in rich.values())


class UnsafePage(ValueError):
    """A rendered page holds an element, attribute or URL outside the allowlist."""


#: What a kernel says when the port it was given is taken (see render_one).
PORT_TAKEN = "Address already in use"


class _kernel_stderr_filtered:
    """Capture this process's fd 2 (which the kernel inherits) into ``text``; ``forward()``
    prints it without the kernel's routine notices (unencrypted local TCP, interrupt at
    shutdown)."""

    NOISE = ("Kernel is running over TCP without encryption", "KeyboardInterrupt caught in kernel",
             "Timeout waiting for execute reply")

    def __init__(self):
        self.text = ""

    def __enter__(self):
        import tempfile

        sys.stderr.flush()
        self.saved = os.dup(2)
        self.tmp = tempfile.TemporaryFile()
        os.dup2(self.tmp.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.tmp.seek(0)
        self.text = self.tmp.read().decode(errors="replace")
        self.tmp.close()
        return False

    def forward(self) -> None:
        """Print what was captured, without the routine notices."""
        for line in self.quiet(self.text):
            print(line, file=sys.stderr)

    @classmethod
    def quiet(cls, text: str) -> list[str]:
        """The kernel's stderr without its routine notices and without the tracebacks of its
        own message handling when a cell is stopped (a timeout closes its sockets); the
        failure itself is reported once, as ``[theme] failed: timed out ...``."""
        import re

        out, in_traceback = [], False
        for line in text.splitlines():
            if in_traceback:
                if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", line):
                    in_traceback = False
                continue
            if line.startswith("[IPKernelApp] ERROR | Exception in message handler"):
                in_traceback = True
                continue
            if line.strip() and not any(n in line for n in cls.NOISE):
                out.append(line)
        return out


def _read_digest(summary: Path) -> str:
    """The SHA-256 of the bibliography bytes that the note computed from (its open data)."""
    return json.loads(summary.read_text(encoding="utf-8"))["bibliography_sha256"]


def _show(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v) if str(v) != "" else "\"\""


def _describe(exc: Exception, notebook: Path | None = None) -> str:
    """The cell and the error, without a traceback: the cell by its number in the notebook
    as the researcher sees it, and its first line of code."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        source = (exc.source or "").strip()
        first = source.splitlines()[0][:70] if source else ""
        number = exc.cell_index + 1
        if notebook is not None:
            try:
                cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
                number = next(i for i, c in enumerate(cells, 1) if "".join(
                    c["source"]).strip() == source)
            except (OSError, ValueError, KeyError, StopIteration):
                pass
        return f"cell {number} (`{first}`): {exc.ename}: {exc.evalue}"
    name = type(exc).__name__
    if name in ("DeadKernelError",):
        return f"the kernel died: {exc}"
    if name in ("CellTimeoutError", "TimeoutError"):
        return f"timed out: {str(exc).splitlines()[0] if str(exc) else ''}"
    return f"{name}: {exc}"


def _atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# ------------------------------------------------------------------ the site
def plan(themes, params: dict, site: Path, root: Path) -> list[Job]:
    """The jobs for the given themes and parameters (validated; raises RenderError)."""
    all_themes = load_themes(root)
    names = list(themes) or list(all_themes)
    unknown = [t for t in names if t not in all_themes]
    if unknown:
        raise RenderError(f"unknown theme(s) {', '.join(unknown)}: themes are "
                          f"{', '.join(all_themes)}")
    jobs = []
    common = common_digest(root)
    for theme in names:
        config = all_themes[theme]
        nb_path = root / config["notebook"]
        defaults = notebook_parameters(nb_path)
        given = coerce_parameters(params, defaults, nb_path)
        changed = {k: v for k, v in given.items() if defaults.get(k) != v}
        if changed.get("exclude") or changed.get("outcome"):
            _check_against_data(root, config, changed)
        run_params = {**given, "theme": theme}
        if changed and set(changed) != {"lang"}:
            name = variant_name(theme, changed)
            job = Job(theme, run_params, changed, site / "variants" / f"{name}.html",
                      site / "variants" / "data", name, site / ".build" / f"{name}.json")
            job.digest = fingerprint(root, theme, config, run_params, common)
            jobs.append(job)
            continue
        # the published note: each language's edition (French at the site's root, English in
        # en/), or the one asked for with -p lang
        alternates = {lang: edition_folder(site, lang) / f"{theme}.html" for lang in SITE_LANGS}
        for lang in ([changed["lang"]] if changed else SITE_LANGS):
            folder = edition_folder(site, lang)
            params_lang = {**run_params, "lang": lang}
            job = Job(theme, params_lang, {}, folder / f"{theme}.html", folder / "data", theme,
                      site / ".build" / ("" if lang == SITE_LANGS[0] else lang)
                      / f"{theme}.json", alternates=alternates)
            job.digest = fingerprint(root, theme, config, params_lang, common)
            jobs.append(job)
    return jobs


#: The site's languages: the first at its root (site/), the others in their folder (site/en/).
SITE_LANGS = ("fr", "en")
def job_lang(job) -> str:
    """The language a job renders its note in."""
    return str(job.params.get("lang", SITE_LANGS[0]))


#: Each language named in itself, for the language switch.
LANGUAGE_NAMES = {"fr": "Français", "en": "English"}


def edition_folder(site: Path, lang: str) -> Path:
    """Where the published notes in ``lang`` go: ``site/`` for French, ``site/en/``..."""
    return site if lang == SITE_LANGS[0] else site / lang


def _check_against_data(root: Path, config: dict, changed: dict) -> None:
    """``outcome`` and ``exclude`` name things in the bibliography: check them before running."""
    from .bibliography import BibliographyError, read_effects
    from .notes import apply_exclusions

    try:
        effects = read_effects(root / config["bibliography"])
    except BibliographyError:
        return  # reported with the theme's failure
    try:
        if changed.get("exclude"):
            apply_exclusions(effects, changed["exclude"])
    except ValueError as exc:
        raise RenderError(f"parameter {exc}") from None
    outcome = changed.get("outcome")
    if outcome:
        known = {o["outcome"] for o in config.get("outcomes", [])}
        known |= {o["label"][lang] for o in config.get("outcomes", []) for lang in o["label"]}
        known |= set(effects.get("outcome", []))
        if outcome not in known:
            raise RenderError(f"parameter outcome = {outcome!r} is not in the bibliography; "
                              f"outcomes are: {', '.join(sorted(set(effects['outcome'])))}")


def up_to_date(job: Job) -> bool:
    try:
        return job.html.exists() and json.loads(job.stamp.read_text())["digest"] == job.digest
    except (OSError, ValueError, KeyError):
        return False


def render(themes=(), params: dict | None = None, *, jobs: int | None = None,
           force: bool = False, site: Path | str | None = None, root: Path | str = ROOT,
           timeout: int = 600, progress=None) -> list[Outcome]:
    """Render the given themes (default: all) into ``site``; see the module docstring."""
    from .themes import problems_by_theme, themes_problems

    root = Path(root)
    site = Path(site) if site else root / "site"
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    # themes.json's schema uses no "iri" format: jsonschema need not compile that grammar
    # (3 s, which was the whole of a render with nothing to do)
    _skip_iri_format_checker()
    # themes.json is checked first: a problem of the whole file stops everything, a theme's
    # problem fails that theme only, and the others still render. The bytes that last passed
    # are remembered (site/.build/themes.json.sha256): the same bytes need no second check
    themes_bytes = (root / "themes.json").read_bytes() if (root / "themes.json").exists() \
        else b""
    checked = site / ".build" / "themes.json.sha256"
    digest = hashlib.sha256(themes_bytes).hexdigest()
    same = bool(themes_bytes) and checked.exists() and checked.read_text().strip() == digest
    bad = problems_by_theme(themes_problems(root, schema=not same))
    if None in bad:
        raise RenderError("themes.json has problems:\n" + "\n".join(f"  {p}" for p in bad[None]))
    config = load_themes(root)
    wanted = list(themes) or list(config)
    outcomes = [Outcome(t, "failed", message="\n".join(f"  {p}" for p in bad[t]))
                for t in wanted if t in bad]
    ok = [t for t in wanted if t not in bad]
    todo = plan(ok, params or {}, site, root) if ok else []
    if not bad and themes_bytes and not same:
        # remembered only once the request itself is valid: a refused render writes nothing
        _atomic(checked, digest)
    rank = {id(job): i for i, job in enumerate(todo)}
    ranked = []  # (position in the plan, outcome): the outcomes come back in the plan's order
    _clean_stale(site)
    runnable = []
    for job in todo:
        if not force and up_to_date(job):
            # the stamp is written only after a successful render of these exact inputs,
            # so the bibliography was valid then and has not changed since
            ranked.append((rank[id(job)], Outcome(job.theme, "up to date", path=str(job.html),
                                                  lang=job_lang(job))))
            continue
        from .bibliography import read_bibliography

        bib = read_bibliography(root / config[job.theme]["bibliography"])
        if bib.errors:
            ranked.append((rank[id(job)], Outcome(
                job.theme, "failed", message="the bibliography has errors:\n"
                + "\n".join(f"  {p}" for p in bib.errors), lang=job_lang(job))))
        else:
            runnable.append(job)
    outcomes += [o for _, o in ranked]
    for o in outcomes:
        say(f"[{o.theme}] {o.status}" + (f": {o.message}" if o.message else ""))
    if runnable:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # imported once here, the forked workers inherit papermill and nbconvert loaded
        _skip_iri_format_checker()
        import nbconvert  # noqa: F401
        import papermill  # noqa: F401

        note_exporter(*_templates(root))  # compiled once, here, for every worker

        # the biggest bibliographies first, so that the short themes fill the gaps
        runnable.sort(key=lambda j: -(root / config[j.theme]["bibliography"]).stat().st_size)
        workers = max(1, min(jobs or os.cpu_count() or 1, len(runnable)))
        from .kernels import kernel_threads

        threads = kernel_threads(workers)
        import multiprocessing

        others = {p.pid for p in multiprocessing.active_children()}
        with ProcessPoolExecutor(max_workers=workers, initializer=_watch_parent,
                                 initargs=(os.getpid(),)) as pool:
            try:
                futures = {}

                def label(job):
                    lang = job.params.get("lang", SITE_LANGS[0])
                    return f"[{job.theme}]" + (f" ({job.name})" if job.changed else
                                               f" ({lang})" if lang != SITE_LANGS[0] else "")

                for n, job in enumerate(runnable):
                    say(f"{label(job)} {'running…' if n < workers else 'queued'}")
                    futures[pool.submit(render_one, job, root, timeout, threads)] = job
                waiting = runnable[workers:]  # the pool starts them in order as workers free up
                for fut in as_completed(futures):
                    if waiting:
                        say(f"{label(waiting.pop(0))} running…")
                    try:
                        o = fut.result()
                    except Exception as exc:  # the worker process itself died
                        o = Outcome(futures[fut].theme, "failed", message=f"worker died: {exc}",
                                    lang=job_lang(futures[fut]))
                    outcomes.append(o)
                    ranked.append((rank[id(futures[fut])], o))
                    detail = ", ".join(f"{k} {v:.1f}s" for k, v in o.profile.items())
                    say(f"{label(futures[fut])} {o.status} in {o.seconds:.1f}s"
                        + (f" ({detail})" if detail else "")
                        + (f": {o.message}" if o.message else ""))
                    if o.status == "rendered" and futures[fut].changed:
                        say(f"variant: {Path(o.path).resolve()}")
            except KeyboardInterrupt:
                # Ctrl-C reaches the render alone (its workers ignore SIGINT): the notes not
                # yet written keep their last good version, and the workers are stopped now
                # rather than left to finish the queue (their templates, kernels and Chromium
                # stop with them; their staging folders go at the next render)
                say("interrupted: the notes rendered so far are written, the others keep "
                    "their last version")
                pool.shutdown(wait=False, cancel_futures=True)
                for process in multiprocessing.active_children():
                    if process.pid not in others:
                        process.terminate()
                raise
    if not runnable and all(o.status == "up to date" for o in outcomes):
        say("everything is up to date")
    variants_index = site / "variants" / "index.html"
    if (site / "variants" / "data").is_dir() and (not variants_index.exists() or any(
            o.status == "rendered" and j.changed for o, j in _with_jobs(ranked, todo))):
        write_variants_index(site, root)
    if any(j.changed for j in todo) and variants_index.exists():
        say(f"variants: {variants_index.resolve()}")
    if any(o.status == "rendered" and not j.changed for o, j in _with_jobs(ranked, todo)):
        from .pdf import MISSING, find_chromium

        if find_chromium() is None:
            say(MISSING)
    if any(o.status == "rendered" for o in outcomes) or not (site / "index.html").exists():
        for lang in SITE_LANGS:
            write_index(site, root, lang=lang, skip=set(bad))
    say(f"site: {(site / 'index.html').resolve()}")
    # themes refused before planning first, then the jobs in the plan's order
    planned = [o for _, o in sorted(ranked, key=lambda x: x[0])]
    return [o for o in outcomes if all(o is not p for p in planned)] + planned


def _with_jobs(ranked, todo):
    """(outcome, job) pairs of the planned jobs' outcomes."""
    return [(o, todo[i]) for i, o in ranked]


def _watch_parent(parent: int) -> None:
    """In each worker: die at once when the render that started it dies (``kill -9``), so no
    orphan writes a page later; the worker's kernel follows (ipykernel watches its parent).
    A worker ignores SIGINT: Ctrl-C is the render's to handle (it stops the workers)."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch():
        while True:
            time.sleep(0.1)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(site: Path) -> None:
    """Remove what a killed render left: its staging folder and half-written temporary files
    (both carry the pid of the process that wrote them; a live process's are kept)."""
    import re
    import shutil

    staging = site / ".build" / "staging"
    if staging.is_dir():
        for d in staging.iterdir():
            if not (d.name.isdigit() and _alive(int(d.name))):
                shutil.rmtree(d, ignore_errors=True)
    for folder in (site, site / "data", site / "variants", site / "variants" / "data",
                   site / ".build"):
        if folder.is_dir():
            for f in folder.glob(".*.tmp"):
                m = re.search(r"\.(\d+)\.tmp$", f.name)
                if not (m and _alive(int(m.group(1)))):
                    f.unlink(missing_ok=True)


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


def _skip_iri_format_checker() -> None:
    """jsonschema (imported by nbformat) loads rfc3987_syntax, if installed, for its "iri"
    format checker, which compiles a grammar at import: 1.6 s of every build here. Notebook
    validation uses no "iri" format, so the module is marked absent and jsonschema's optional
    import skips it."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


def write_index(site: Path, root: Path = ROOT, lang: str = "fr", skip=()) -> Path:
    """The index of the notes in ``lang`` (``site/index.html``, ``site/en/index.html``), from
    ``templates/site/index.html.j2``: every theme with its headline result, the date of its
    data and links to its open data, the evidence gap map, a language switch (themes in
    ``skip``, whose entry in themes.json is invalid, are left out)."""
    import jinja2

    from .grammar import natural_scale
    from .text import INDEX_WORDS, counted, estimate_ci, t

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
            "date": _date(root, [root / c["bibliography"], root / c["notebook"]]),
            "files": [(ext.upper(), f"data/{slug}.{ext}") for ext in ("csv", "json")
                      if (folder / "data" / f"{slug}.{ext}").exists()]})
    variants = site / "variants" / "index.html"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(root / "templates" / "site")),
                             autoescape=True, keep_trailing_newline=True)
    page = env.get_template("index.html.j2").render(
        lang=lang, words=words, brand=MOTTO.get(lang, BRAND), rows=rows,
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
    _atomic(path, page)
    return path


def write_variants_index(site: Path, root: Path = ROOT) -> Path:
    """``site/variants/index.html``: every variant rendered on this site, newest first, with
    its theme, the parameters it changes from the published note, and its date."""
    from datetime import datetime, timezone

    themes = load_themes(root)
    rows = []
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
        changed = [(k, _show(v)) for k, v in params.items()
                   if k in defaults and k != "theme" and defaults[k] != v]
        lang = params.get("lang", "fr")
        page = folder / f"{data.stem}.html"
        title = html.escape(config["title"].get(lang, theme))
        link = f"<a href='{html.escape(page.name)}'>{title}</a>" if page.exists() else title
        when = datetime.fromtimestamp(data.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d")
        rows.append(f"<tr><td>{link}</td><td>"
                    + (", ".join(f"<code>{html.escape(k)} = {html.escape(v)}</code>"
                                 for k, v in changed) or "–")
                    + f"</td><td>{when}</td></tr>")
    css = (root / "templates" / "note" / "note.css").read_text(encoding="utf-8")
    page = f"""<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Variantes des notes</title>
<style>{css}</style>
</head>
<body>
<header class="note-header"><p class="brand">{html.escape(BRAND)}</p>
<nav class="top"><a href="../index.html">Toutes les notes</a></nav>
<h1>Variantes des notes</h1></header>
<main>
<p>Chaque variante est une note recalculée avec d'autres paramètres que la note publiée ; sa page
compare ses résultats à ceux de la note publiée.</p>
<div class="scroll"><table>
<thead><tr><th>Note</th><th>Paramètres modifiés</th><th>Calculée le</th></tr></thead>
<tbody>
{chr(10).join(rows) or '<tr><td colspan="3">Aucune variante pour le moment.</td></tr>'}
</tbody>
</table></div>
</main>
</body>
</html>
"""
    from .sanitize import page_violations

    from .typography import french_spacing

    page = french_spacing(page)
    problems = page_violations(page)
    if problems:
        raise UnsafePage("site/variants/index.html would contain "
                         + "; ".join(sorted(set(problems))[:5]))
    path = folder / "index.html"
    _atomic(path, page)
    return path


def new_theme(slug: str, root: Path | str = ROOT, title: dict | None = None) -> list[Path]:
    """Scaffold a theme: its bibliography, its notebook from the template, its theme entry.

    ``title`` maps ``fr`` and ``en`` to the theme's title (default: the name, e.g.
    "Housing first"); the summary says, truthfully, that the review is under way and has no
    study yet, so the note renders at once as an honest "no studies yet" note. ``themes.json``
    is rewritten atomically after a copy of it is kept in ``themes.json.bak``. Refuses an
    invalid slug or one that exists; writes nothing then.
    """
    import re
    import shutil

    from .themes import RESERVED_NAMES

    root = Path(root)
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,40}", slug):
        raise RenderError(f"theme name {slug!r}: use lowercase letters, digits and _ "
                          "(e.g. housing_first)")
    if slug in RESERVED_NAMES:
        raise RenderError(f"theme name {slug!r} is reserved for the site's own files "
                          f"({', '.join(sorted(RESERVED_NAMES))}): choose another")
    themes = load_themes(root)
    bib = root / "bibliographies" / f"{slug}.bib"
    nb = root / "notebooks" / f"{slug}.ipynb"
    if slug in themes or bib.exists() or nb.exists():
        raise RenderError(f"theme {slug!r} already exists")
    name = slug.replace("_", " ").capitalize()
    title = {"fr": name, "en": name, **{k: v for k, v in (title or {}).items() if v}}
    template = (root / "templates" / "theme.ipynb").read_text(encoding="utf-8")
    bib.parent.mkdir(parents=True, exist_ok=True)
    nb.parent.mkdir(parents=True, exist_ok=True)
    _atomic(bib, f"% Bibliography of the theme '{slug}': one entry per study, annotated as in "
                 "docs/annotations.md.\n@comment{Studies of the theme, added as they are "
                 "screened: metaanalysis import, dedup and screen (README).}\n")
    _atomic(nb, template.replace('theme = \\"THEME\\"', f'theme = \\"{slug}\\"'))
    themes[slug] = {
        "title": title,
        "summary": {"fr": "Revue en cours : aucune étude n'a encore été analysée.",
                    "en": "Review under way: no study has been analysed yet."},
        "intervention": {"fr": title["fr"], "en": title["en"]},
        "bibliography": f"bibliographies/{slug}.bib", "notebook": f"notebooks/{slug}.ipynb",
        "sources": [], "outcomes": [],
    }
    shutil.copy2(root / "themes.json", root / "themes.json.bak")
    _atomic(root / "themes.json", json.dumps(themes, indent=2, ensure_ascii=False) + "\n")
    return [bib, nb, root / "themes.json"]
