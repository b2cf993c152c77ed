"""Render the site: each theme's notebook executed with papermill, converted with nbconvert.

:func:`render` validates the parameters and every bibliography before anything runs, then
renders the themes in parallel (one kernel per theme), skips those whose inputs have not
changed, writes every file to a temporary name before renaming it (so a failing theme never
erases its last good note) and finally writes ``site/index.html``. Its steps are modules of
their own: the parameters (:mod:`metaanalysis.parameters`), what to render and whether it is
up to date (:mod:`metaanalysis.fingerprints`), one note's execution
(:mod:`metaanalysis.execution`) and the site's pages (:mod:`metaanalysis.pages`); a render
with nothing to do imports only the first two.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from pathlib import Path

from .fingerprints import SITE_LANGS, Outcome, job_lang, plan, up_to_date, write_atomic
from .parameters import RenderError  # noqa: F401 - raised by render(), caught by its callers
from .themes import ROOT, load_themes


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
        write_atomic(checked, digest)
    rank = {id(job): i for i, job in enumerate(todo)}
    ranked = []  # (position in the plan, outcome): the outcomes come back in the plan's order
    _clean_stale(site)
    runnable = []
    preparing = None  # the index pages' imports, done while the workers render
    finished = False

    def finish():
        """The variants' and the site's index pages, and the last words."""
        if not runnable and all(o.status == "up to date" for o in outcomes):
            say("everything is up to date")
        variants_index = site / "variants" / "index.html"
        if (site / "variants" / "data").is_dir() and (not variants_index.exists() or any(
                o.status == "rendered" and j.changed for o, j in _with_jobs(ranked, todo))):
            from .pages import write_variants_index

            write_variants_index(site, root)
        if any(j.changed for j in todo) and variants_index.exists():
            say(f"variants: {variants_index.resolve()}")
        if any(o.status == "rendered" and not j.changed for o, j in _with_jobs(ranked, todo)):
            from .pdf import MISSING, find_chromium

            if find_chromium() is None:
                say(MISSING)
        if preparing is not None:
            preparing.join()
        if any(o.status == "rendered" for o in outcomes) or not (site / "index.html").exists():
            from .pages import write_index

            for lang in SITE_LANGS:
                write_index(site, root, lang=lang, skip=set(bad))
        say(f"site: {(site / 'index.html').resolve()}")

    fresh = [not force and up_to_date(job) for job in todo]
    # a note to render: its kernels' template starts now, and does its imports while this
    # process reads the bibliographies and does its own (metaanalysis.kernelfork)
    template = _start_template(fresh.count(False), jobs) if not all(fresh) else None
    try:
        bibliographies = {}  # each theme's read once, whatever its notes (languages, variants)
        for job, is_fresh in zip(todo, fresh):
            if is_fresh:
                # the stamp is written only after a successful render of these exact inputs,
                # so the bibliography was valid then and has not changed since
                ranked.append((rank[id(job)], Outcome(job.theme, "up to date", path=str(job.html),
                                                      lang=job_lang(job))))
                continue
            from .bibliography import read_bibliography

            path = root / config[job.theme]["bibliography"]
            if path not in bibliographies:
                bibliographies[path] = read_bibliography(path)
                _say_warnings(say, job.theme, bibliographies[path].warnings, path, root)
            bib = bibliographies[path]
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

            from .execution import render_one
            from .pages import note_exporter, template_state, warm_up_conversion

            note_exporter(*template_state(root))  # compiled once, here, for every worker
            warm_up_conversion()  # (so is what a first conversion does)

            # the biggest bibliographies first, so that the short themes fill the gaps
            runnable.sort(key=lambda j: -(root / config[j.theme]["bibliography"]).stat().st_size)
            workers = _workers(jobs, len(runnable))
            from .kernels import kernel_threads

            threads = kernel_threads(workers)
            import multiprocessing

            others = {p.pid for p in multiprocessing.active_children()}
            # forked workers (whatever the default start method): they inherit the imports,
            # the compiled exporter and the template (a process cannot be sent to a worker)
            context = multiprocessing.get_context("fork") if template is not None else None
            from .pdf import find_chromium

            # the published notes have a PDF edition: each worker's Chromium starts with it
            chromium = find_chromium() if any(not j.changed for j in runnable) else None
            with ProcessPoolExecutor(max_workers=workers, initializer=_worker_start,
                                     initargs=(os.getpid(), template, chromium),
                                     mp_context=context) as pool:
                try:
                    futures = {}

                    def label(job):
                        lang = job.params.get("lang", SITE_LANGS[0])
                        return f"[{job.theme}]" + (f" ({job.name})" if job.changed else
                                                   f" ({lang})" if lang != SITE_LANGS[0] else "")

                    for n, job in enumerate(runnable):
                        say(f"{label(job)} {'running…' if n < workers else 'queued'}")
                        futures[pool.submit(render_one, job, root, timeout, threads)] = job
                    # this process waits for the workers (all forked by now): meanwhile it
                    # imports what the index pages need, rather than after the last note
                    preparing = threading.Thread(target=_prepare_index, name="prepare-index",
                                                 daemon=True)
                    preparing.start()
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
                # every note is in: the workers end (their Chromium, their kernels'
                # managers: 0.3 s) while this process writes the index pages
                pool.shutdown(wait=False)
                finish()
                finished = True
    finally:
        if template is not None:  # its kernels are done: the workers are gone
            template.close()
    if not finished:
        finish()
    # themes refused before planning first, then the jobs in the plan's order
    planned = [o for _, o in sorted(ranked, key=lambda x: x[0])]
    return [o for o in outcomes if all(o is not p for p in planned)] + planned


def _say_warnings(say, theme: str, warnings, path: Path, root: Path) -> None:
    """A bibliography's warnings, the first few, where a render shows them (an outcome typed
    two ways is pooled apart: the researcher who runs make note should hear of it)."""
    if not warnings:
        return
    rel = os.path.relpath(path, root)
    shown = "".join(f"\n  {w}" for w in warnings[:3])
    more = f"\n  ... and {len(warnings) - 3} more" if len(warnings) > 3 else ""
    say(f"[{theme}] {len(warnings)} warning(s) in its bibliography (metaanalysis check {rel}):"
        f"{shown}{more}")


def _with_jobs(ranked, todo):
    """(outcome, job) pairs of the planned jobs' outcomes."""
    return [(o, todo[i]) for i, o in ranked]


def _workers(jobs: int | None, notes: int) -> int:
    """The workers that render ``notes`` notes: ``jobs`` (default: the cores), at most one
    per note (the template's thread count is computed from the same number)."""
    return max(1, min(jobs or os.cpu_count() or 1, notes))


def _start_template(notes: int, jobs: int | None):
    """The template that the kernels of ``notes`` notes, rendered by up to ``jobs`` workers,
    fork from (:func:`~metaanalysis.kernels.note_template`), started now; None where kernels
    are not forked. A worker whose kernels it cannot serve starts its own."""
    workers = _workers(jobs, notes)
    try:
        from .execution import _kernel_name
        from .kernels import kernel_threads, note_template

        return note_template(_kernel_name(), kernel_threads(workers))
    except Exception:  # noqa: BLE001 - each worker then starts its kernels as before, and
        return None    # meets (and reports) whatever stopped this


def _prepare_index() -> None:
    """:func:`~metaanalysis.pages.prepare_index`, in the thread it runs in: a failure there is
    met again, and reported, when the index is written."""
    try:
        from .pages import prepare_index

        prepare_index()
    except Exception:  # noqa: BLE001 - write_index reports it, without a thread's traceback
        pass


def _worker_start(parent: int, template, chromium: str | None = None) -> None:
    """Each worker's start: it watches the render (:func:`_watch_parent`), forks its notes'
    kernels from the render's ``template`` (inherited when the worker was forked) and starts
    the ``chromium`` that will print their PDF editions, without waiting for it: it starts
    while the first note runs (:func:`~metaanalysis.pdf.shared_printer`)."""
    _watch_parent(parent)
    if template is not None:
        from .kernelfork import adopt

        adopt(template)
    if chromium is not None:
        from .pdf import shared_printer

        try:
            shared_printer(chromium, wait=False)
        except RuntimeError:
            pass  # (not started: the first PDF tries again, and says why if it fails)


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
    """Remove what a killed render left: its staging folder, half-written temporary files, its
    kernels' socket folders and its Chromium profiles (each carries the pid of the process
    that wrote it; a live process's are kept)."""
    import re
    import shutil

    staging = site / ".build" / "staging"
    if staging.is_dir():
        for d in staging.iterdir():
            if not (d.name.isdigit() and _alive(int(d.name))):
                shutil.rmtree(d, ignore_errors=True)
    from .kernels import stale_socket_folders
    from .pdf import stale_profiles

    for folder in stale_socket_folders(_alive) + stale_profiles(_alive):
        shutil.rmtree(folder, ignore_errors=True)
    for folder in (site, site / "data", site / "variants", site / "variants" / "data",
                   site / "variants" / "en", site / ".build"):
        if folder.is_dir():
            for f in folder.glob(".*.tmp"):
                m = re.search(r"\.(\d+)\.tmp$", f.name)
                if not (m and _alive(int(m.group(1)))):
                    f.unlink(missing_ok=True)


def _skip_iri_format_checker() -> None:
    """jsonschema (imported by nbformat) loads rfc3987_syntax, if installed, for its "iri"
    format checker, which compiles a grammar at import: 1.6 s of every build here. Notebook
    validation uses no "iri" format, so the module is marked absent and jsonschema's optional
    import skips it."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)
