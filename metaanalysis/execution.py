"""One note rendered: its notebook executed by papermill in its own kernel (forked from a
warm template, :mod:`metaanalysis.kernelfork`), its open data written by the note's own
:class:`~metaanalysis.notes.Note` (a last cell the render adds), its page converted
(:mod:`metaanalysis.pages`) and printed to PDF (:mod:`metaanalysis.pdf`). Each file is
written under a temporary name and renamed once complete: a failing note never erases its
last good version."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

from .fingerprints import SITE_LANGS, Job, Outcome, edition_folder, job_lang, write_atomic
from .pages import (BRAND, EXPORT_TAG, LANGUAGE_NAMES, MOTTO, cite_bibtex, cite_text,
                    command_for, convert, note_date, software_versions, variants_index)
from .parameters import NOTE_PARAMETERS, notebook_parameters, show_value
from .text import PAGE_WORDS as WORDS, long_date
from .themes import load_themes


#: The note's kernel computes no PNG: the page shows each figure's inline SVG, and the PNG
#: that a figure offers to other viewers (VS Code, GitHub) would be drawn for nothing
#: (plots.SVGFigure asks the kernel's PNG formatter). Nor does it keep an input history: a
#: note's cells are not the user's typing, and IPython's history is one SQLite file in the
#: user's folder, written (with its disk syncs and its lock) by two kernels at a time.
KERNEL_ARGUMENTS = ["--PNGFormatter.enabled=False", "--HistoryManager.enabled=False"]


def _engine() -> str:
    """The name of papermill's engine for the notes (registered on first use): its nbclient
    engine, saving the executed notebook when the execution starts and when it ends, never
    before and after each cell (29 saves of a growing notebook, 0.1-0.3 s of a note's
    worker: papermill writes JSON with indents, in Python). It ends by papermill's own
    ``finally``, so a note whose cell fails, times out or kills its kernel is still kept as
    far as it ran (site/.build/failed/); a cell running longer than papermill's autosave
    period (30 s) is still saved while it runs."""
    import papermill.engines as engines

    if "metaanalysis" not in engines.papermill_engines._engines:
        class Manager(engines.NotebookExecutionManager):
            quiet = False

            def save(self, **kwargs):
                if not self.quiet:
                    super().save(**kwargs)

            @contextlib.contextmanager
            def unsaved(self):
                self.quiet = True
                try:
                    yield
                finally:
                    self.quiet = False

            def cell_start(self, *args, **kwargs):
                with self.unsaved():
                    super().cell_start(*args, **kwargs)

            def cell_complete(self, *args, **kwargs):
                with self.unsaved():
                    super().cell_complete(*args, **kwargs)

        class Engine(engines.NBClientEngine):
            @classmethod
            def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True,
                                 log_output=False, autosave_cell_every=30, **kwargs):
                # papermill's Engine.execute_notebook (2.7) with the manager above
                nb_man = Manager(nb, output_path=output_path, progress_bar=progress_bar,
                                 log_output=log_output, autosave_cell_every=autosave_cell_every)
                nb_man.notebook_start()
                try:
                    cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output,
                                                 **kwargs)
                finally:
                    nb_man.cleanup_pbar()
                    nb_man.notebook_complete()
                return nb_man.nb

        engines.papermill_engines.register("metaanalysis", Engine)
    return "metaanalysis"


def _kernel_name() -> str:
    """The project's kernel (``make setup`` installs it) if installed, else ipykernel's."""
    from .kernels import installed_kernel_argv

    if installed_kernel_argv("metaanalysis") is not None:
        return "metaanalysis"
    from jupyter_client.kernelspec import KernelSpecManager

    return "metaanalysis" if "metaanalysis" in KernelSpecManager().find_kernel_specs() else "python3"


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
        from .pdf import find_chromium, shared_printer

        # a published note has a PDF edition: its page is opened while its kernel runs
        chromium = None if job.changed else find_chromium()
        if chromium is not None:
            with contextlib.suppress(RuntimeError):  # (said when its PDF is printed)
                shared_printer(chromium, wait=False).prepare()
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
                        source, str(executed_path), parameters=params, engine_name=_engine(),
                        kernel_name=_kernel_name(), progress_bar=False, log_output=False,
                        execution_timeout=timeout, cwd=str(nb_path.parent),
                        report_mode=False, extra_arguments=KERNEL_ARGUMENTS,
                        # every output is in once the last cell has run: the kernel is
                        # killed, not asked to exit (ipykernel 7.4 can hang in its own
                        # shutdown, its control thread flushing to a stopped IOPub thread,
                        # until jupyter_client terminates it 2.5 s later)
                        shutdown_kernel="immediate",
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
        pdf_path = job.html.with_suffix(".pdf") if chromium else None
        comparison = ""
        if job.changed:  # a reviewer's variant: beside the published note's numbers
            comparison = _comparison(job, root, defaults, staging / f"{job.name}.json", lang)
            profile["compare"] = time.perf_counter() - t0
            t0 = time.perf_counter()
        bib = root / config["bibliography"]
        date = note_date(root, [bib, nb_path])
        # the open-data summary the note's kernel wrote, read once
        summary = json.loads((staging / f"{job.name}.json").read_text(encoding="utf-8"))
        resources = {"note": {
            "title": config["title"][lang], "lang": lang, "brand": MOTTO.get(lang, BRAND),
            "words": WORDS[lang], "date": date, "date_text": long_date(date, lang),
            "parameters": [(k, show_value(params[k])) for k in defaults],
            "changed": [(k, show_value(v)) for k, v in job.changed.items()],
            "variant": bool(job.changed), "variant_label": WORDS[lang]["variant"],
            "bibliography": config["bibliography"],
            # the hash of the bytes the note's kernel read, never a second read of the file
            "sha256": summary["bibliography_sha256"],
            # effects analysed but left out of the open data (an unclear licence), said
            "withheld": _withheld_text(summary, lang),
            "versions": software_versions(),
            "command": command_for(job.theme, job.changed or (
                {"lang": lang} if lang != defaults.get("lang", SITE_LANGS[0]) else {}), lang),
            # the other editions of the published note: a switch and hreflang links
            "alternates": [(code, os.path.relpath(path, job.html.parent))
                           for code, path in job.alternates.items()],
            "switch": [(code, LANGUAGE_NAMES[code], os.path.relpath(path, job.html.parent))
                       for code, path in job.alternates.items() if code != lang],
            # links relative to the page: its own open data and the index
            "csv": os.path.relpath(job.data_dir / f"{job.name}.csv", job.html.parent),
            "json": os.path.relpath(job.data_dir / f"{job.name}.json", job.html.parent),
            # a variant links the index in its own language (site/en/ for English)
            "index": os.path.relpath(edition_folder(job.html.parent.parent, lang) / "index.html"
                                     if job.changed else job.html.parent / "index.html",
                                     job.html.parent),
            "comparison": comparison,
            # a variant links the variants' index in its language (pages.variants_index)
            "variants": os.path.relpath(variants_index(job.html.parent.parent, lang),
                                        job.html.parent) if job.changed else "",
            "pdf": pdf_path.name if pdf_path is not None else "",
            "bibtex": cite_bibtex(job.name, config["title"][lang], lang, date),
            "cite": cite_text(config["title"][lang], lang, date)}}
        body = convert(nb, resources, root)
        profile["convert"] = time.perf_counter() - t0
        write_atomic(job.html, body)
        pdf_problem = ""
        if pdf_path is not None:  # the published note's PDF edition, from the page just written
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
        write_atomic(job.stamp, json.dumps({"digest": job.digest}))
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


def export_cell(theme: str, directory: Path, name: str):
    """The last cell the render adds to a note's notebook: the Note the notebook made
    (``note``) writes its open data into ``directory`` as NAME.csv and NAME.json. Explicit
    code in the executed notebook, no environment variable; nothing happens if the notebook
    made no Note of its theme (the render then computes the open data itself)."""
    import nbformat

    code = ("# added by `metaanalysis render`: this note's open data, from its own Note\n"
            "from metaanalysis.execution import export_note as _export_note\n"
            f"_export_note(globals().get('note'), {theme!r}, {str(directory)!r}, {name!r})")
    return nbformat.v4.new_code_cell(code, metadata={"tags": [EXPORT_TAG]})


def export_note(note, theme: str, directory: str, name: str) -> None:
    """Write ``note``'s open data if it is a :class:`~metaanalysis.notes.Note` of ``theme``."""
    from .notes import Note

    if isinstance(note, Note) and note.slug == theme:
        note.export(directory, name)


def _keep_failed(job: Job, executed_path) -> Path | None:
    """Move the partly executed notebook to ``site/.build/failed/NAME.ipynb``."""
    if executed_path is None or not Path(executed_path).exists():
        return None
    target = job.stamp.parent / "failed" / f"{job.name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(executed_path, target)
    return target


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


def _withheld_text(summary: dict, lang: str) -> str:
    """The sentence saying how many effects the open data (the note's ``summary``) leave out
    (their licence is unclear), or nothing."""
    from .text import counted

    n = summary.get("withheld_effects", {}).get("n", 0)
    if not n:
        return ""
    one, many = WORDS[lang]["withheld"]
    return (one if n == 1 else many).format(effects=counted(n, "effect", lang))


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
