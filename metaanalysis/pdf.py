"""The PDF edition of a note: its HTML page printed by Chromium (headless), with the page's
print style sheet (templates/note/note.css: A4, page numbers in the bottom margin, no heading
left at a page bottom, figures and tables kept whole).

Chromium is the browser the tests already drive (Debian's ``chromium``); where it is missing,
the notes are still written as HTML and :data:`MISSING` says how to get the PDFs.

A :class:`Printer` is one headless Chromium that prints page after page: it is driven by the
DevTools protocol over a pair of pipes (``--remote-debugging-pipe``: commands on the child's
file descriptor 3, answers on 4, each a JSON message ending with a NUL byte), so no port is
opened and nothing reaches a shell. Starting Chromium is about 0.5-1 s of the 1-3 s a PDF
took when each page had its own Chromium (``--print-to-pdf``); a render's worker keeps its
printer for all the notes it renders (:func:`shared_printer`), and has each note's browser
context opened while the note's kernel runs (:meth:`Printer.prepare`). Each page is printed in
its own browser context (no cookie, storage or cache from another page) with the options
Chromium's own ``--print-to-pdf`` uses, so the PDF is byte for byte the one
``--print-to-pdf`` writes, but for its creation date and its links to local files (tested):
Chromium turns a page's relative links (its open data, the index) into ``file://`` URLs of
the machine that printed it, which no reader can open and which show that machine's folders;
each is written back as the relative link the page has (:func:`relative_links`). When the
worker ends, so does its Chromium: the pipe closes, and Chromium stops at once when it does
(even if the worker was killed).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MISSING = ("PDF editions not written: Chromium is not installed (Debian/Ubuntu: apt-get install "
           "chromium); the HTML notes are complete")

#: Chromium's flags: headless, a throw-away profile (added at start), nothing from the network.
#: (``--no-pdf-header-footer`` is PRINT_OPTIONS' displayHeaderFooter; given as a flag to a
#: Chromium that is not printing from its command line, it makes 156's renderer crash.)
FLAGS = ("--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--remote-debugging-pipe")

#: A printer's Chromium profile is a folder of the temporary folder named with this prefix and
#: the pid of the process that started it: a worker killed with its render (Ctrl-C) cannot
#: remove it (2-3 MB), the next render does (:func:`stale_profiles`).
PROFILE_PREFIX = "metaanalysis-chromium-"

#: Page.printToPDF's options as Chromium's own ``--print-to-pdf --no-pdf-header-footer``
#: sets them (the page's CSS ``@page`` gives A4 and the margins).
PRINT_OPTIONS = {"printBackground": True, "preferCSSPageSize": True,
                 "displayHeaderFooter": False}


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) executable, or None."""
    return next((p for p in map(shutil.which, NAMES) if p), None)


class Printer:
    """One headless Chromium printing local HTML pages to PDF, one after another.

    ``with Printer(chromium) as printer: printer.print(page, pdf)``. A failure raises
    RuntimeError with Chromium's reason; a printer whose Chromium stopped or did not answer in
    time is closed (:attr:`alive` is False) and the next page needs a new printer."""

    def __init__(self, chromium: str, timeout: float = 120, wait: bool = True):
        """Start Chromium; with ``wait``, until it answers (else its first page waits for
        it: a render's worker starts its Chromium with its first note's kernel, and the
        half second Chromium takes to start passes while the kernel runs)."""
        self.chromium, self.timeout = chromium, timeout
        # a forked process (a render's worker) inherits this object but not the Chromium:
        # only the process that started it may drive, wait for or clean up after it
        self._owner = os.getpid()
        self._profile = tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getpid()}-")
        self._log = os.path.join(self._profile, "stderr.log")
        self._ids = 0
        self._buffer = bytearray()  # answers read, up to the end of the last complete one
        self._scanned = 0  # how much of the buffer is known to hold no NUL
        self._events: list[dict] = []
        self._preparing = None  # the thread opening the next page (prepare), and its result
        self._prepared = None
        commands_r, self._commands = os.pipe()
        self._answers, answers_w = os.pipe()
        # the child's descriptors 3 and 4 are set by posix_spawn (safe beside threads, no
        # shell); the ends are first moved above 10 so that dup2 never meets its own number
        child = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (commands_r, answers_w)]
        os.close(commands_r)
        os.close(answers_w)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        log = os.open(self._log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        args = [chromium, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        try:
            self._pid = os.posix_spawn(chromium, args, os.environ, file_actions=[
                (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                (os.POSIX_SPAWN_DUP2, log, 2), (os.POSIX_SPAWN_DUP2, child[0], 3),
                (os.POSIX_SPAWN_DUP2, child[1], 4)])
        except OSError as exc:
            self._pid = None
            self.close()
            raise RuntimeError(f"Chromium could not start: {exc}") from None
        finally:
            for fd in (null, log, *child):
                os.close(fd)
        if wait:
            self._call("Browser.getVersion")  # Chromium is up and answering

    @property
    def alive(self) -> bool:
        """Started by this process and still running."""
        return self._pid is not None and self._owner == os.getpid()

    def prepare(self) -> None:
        """Open the next page's browser context and tab now, in a thread, so that the next
        :meth:`print` only loads and prints its page: Chromium starts a renderer for a new
        context (0.15-0.2 s of a page's 0.5-0.6), which a render's worker has it do while
        the note's kernel runs. Does nothing if a page is prepared or being prepared; a
        failure is raised by the next print."""
        if not self.alive or self._preparing is not None:
            return

        def run():
            try:
                self._prepared = self._open(time.monotonic() + self.timeout, None)
            except Exception as exc:  # noqa: BLE001 - raised by the print that takes it
                self._prepared = exc

        self._prepared = None
        self._preparing = threading.Thread(target=run, name="chromium-next-page", daemon=True)
        self._preparing.start()

    def _open(self, deadline, what):
        """A new browser context and a blank tab in it, attached, its page and lifecycle
        events on: (context id, session id). The context is disposed if the rest fails."""
        context = self._call("Target.createBrowserContext", deadline=deadline,
                             what=what)["browserContextId"]
        try:
            target = self._call("Target.createTarget", {"url": "about:blank",
                                                        "browserContextId": context},
                                deadline=deadline, what=what)["targetId"]
            session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 deadline=deadline, what=what)["sessionId"]
            self._call("Page.enable", session=session, deadline=deadline, what=what)
            self._call("Page.setLifecycleEventsEnabled", {"enabled": True}, session=session,
                       deadline=deadline, what=what)
        except BaseException:
            if self.alive:
                with contextlib.suppress(RuntimeError):
                    self._call("Target.disposeBrowserContext", {"browserContextId": context},
                               deadline=time.monotonic() + 10, what=what)
            raise
        return context, session

    def _take_prepared(self, deadline, what):
        """The page :meth:`prepare` opened (waiting for it until ``deadline``), or None if
        none was asked for; its failure, raised."""
        thread = self._preparing
        if thread is None:
            return None
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():  # Chromium stopped answering: stopped, and the thread with it
            self.close()
            raise RuntimeError(f"Chromium did not {_doing(what)} within {self.timeout:g} s")
        self._preparing = None
        prepared, self._prepared = self._prepared, None
        if isinstance(prepared, Exception):
            raise prepared
        return prepared

    def print(self, page: Path, pdf: Path) -> None:
        """Print ``page`` (a local HTML file) to ``pdf``, atomically. The page loads nothing
        from the network (its Content-Security-Policy says so)."""
        page, pdf = Path(page), Path(pdf)
        deadline = time.monotonic() + self.timeout
        context, session = (self._take_prepared(deadline, page.name)
                            or self._open(deadline, page.name))
        try:
            went = self._call("Page.navigate", {"url": page.resolve().as_uri()},
                              session=session, deadline=deadline, what=page.name)
            if went.get("errorText"):
                raise RuntimeError(f"Chromium could not print {page.name}: "
                                   f"{went['errorText']}")
            # the load event of this navigation (its loader), not of the blank page before it
            self._event(lambda e: e["method"] == "Page.lifecycleEvent"
                        and e.get("sessionId") == session and e["params"]["name"] == "load"
                        and e["params"].get("loaderId") == went.get("loaderId"),
                        deadline, page.name)
            data = self._call("Page.printToPDF", PRINT_OPTIONS, session=session,
                              deadline=deadline, what=page.name)["data"]
        finally:
            self._events.clear()
            if self.alive:
                self._call("Target.disposeBrowserContext", {"browserContextId": context},
                           deadline=time.monotonic() + 10, what=page.name)
        body = base64.b64decode(data)
        if not body:
            raise RuntimeError(f"Chromium could not print {page.name}: an empty PDF")
        body = relative_links(body, pdf.resolve().parent)
        tmp = pdf.with_name(f".{pdf.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(body)
            tmp.replace(pdf)
        finally:
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop Chromium (closing its pipe is enough; killed if it lingers) and remove its
        profile. Closing twice does nothing; in a forked process, only this process's copies
        of the pipe are closed (the Chromium and its profile are the parent's)."""
        thread = getattr(self, "_preparing", None)
        if thread is not None and thread is not threading.current_thread() \
                and thread.is_alive() and self._owner == os.getpid():
            # a page being prepared (a worker that ends meanwhile): Chromium is stopped
            # first, so that the thread, reading its answers, ends; only then are the pipes
            # closed (never while the thread may still use their numbers)
            self._kill()
            thread.join()
        for fd in ("_commands", "_answers"):
            if getattr(self, fd, None) is not None:
                os.close(getattr(self, fd))
                setattr(self, fd, None)
        pid, self._pid = getattr(self, "_pid", None), None
        if self._owner != os.getpid():
            return
        if pid is not None:
            end = time.monotonic() + 5
            with contextlib.suppress(ChildProcessError):  # already waited for
                while not os.waitpid(pid, os.WNOHANG)[0]:
                    if time.monotonic() > end:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                        break
                    time.sleep(0.02)
        shutil.rmtree(getattr(self, "_profile", ""), ignore_errors=True)

    def _kill(self) -> None:
        if getattr(self, "_pid", None) is not None and self._owner == os.getpid():
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ the protocol
    def _call(self, method, params=None, *, session=None, deadline=None, what=None):
        """Send one command and return its result (events read meanwhile are kept)."""
        if not self.alive:
            raise RuntimeError("Chromium has stopped")
        deadline = deadline or time.monotonic() + self.timeout
        self._ids += 1
        message = {"id": self._ids, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._commands, json.dumps(message).encode() + b"\0")
        except OSError:
            self._stopped(what)
        while True:
            answer = self._read(deadline, what)
            if answer.get("id") == self._ids:
                if "error" in answer:
                    raise RuntimeError(f"Chromium could not {_doing(what)}: "
                                       f"{answer['error'].get('message', answer['error'])}")
                return answer.get("result", {})
            if "method" in answer:
                self._events.append(answer)

    def _event(self, wanted, deadline, what):
        """The first event (kept or to come) for which ``wanted(event)`` is true."""
        while True:
            for i, event in enumerate(self._events):
                if wanted(event):
                    del self._events[i]
                    return event
            answer = self._read(deadline, what)
            if "method" in answer:
                self._events.append(answer)

    def _read(self, deadline, what) -> dict:
        """The next message (a PDF comes as one message of several MB, read in pipe-sized
        chunks: each chunk is searched once for the NUL that ends a message)."""
        while (end := self._buffer.find(b"\0", self._scanned)) < 0:
            self._scanned = len(self._buffer)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                self.close()
                raise RuntimeError(f"Chromium did not {_doing(what)} within {self.timeout:g} s")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                self._stopped(what)
            self._buffer += chunk
        message = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        self._scanned = 0
        return json.loads(message)

    def _stopped(self, what):
        try:
            lines = Path(self._log).read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        self.close()
        raise RuntimeError(f"Chromium could not {_doing(what)}: it stopped "
                           f"({(lines or ['no message'])[-1]})")


def _doing(what: str | None) -> str:
    return f"print {what}" if what else "start"


#: A link's target as Chromium writes it in a PDF: ``/URI (...)``, a literal string (its
#: parentheses and backslashes escaped by a backslash).
_URI = re.compile(rb"/URI \(((?:[^()\\]|\\.)*)\)", re.S)


def relative_links(body: bytes, folder: Path) -> bytes:
    """``body`` (a PDF) with each link to a local file (``file://``) made relative to
    ``folder`` (where the PDF is published, beside the page it was printed from), as the
    page's own link was: ``data/education.csv``, ``../index.html``. PDF readers resolve a
    relative link against the PDF's own address, so the links work where the site is
    published, and the printing machine's folders are not in the file. The new link is
    written in the same number of bytes, padded with spaces (which PDF syntax ignores
    between tokens), so the cross-reference table's byte offsets stay right; a link that
    would not fit (it cannot: the local URL holds the whole path) is left empty rather than
    pointing at the machine's files. Other links (https, a DOI) are left as they are."""
    # (imported here: 15 ms of imports, http.client and email among them, which a render with
    # nothing to do, importing this module for stale_profiles, never needs)
    from urllib.request import url2pathname

    def swap(match):
        target = re.sub(rb"\\(.)", rb"\1", match.group(1), flags=re.S)  # the string's value
        if not target.startswith(b"file://"):
            return match.group(0)
        url = urllib.parse.urlsplit(target.decode("latin-1"))
        path = url2pathname(url.path)
        relative = urllib.parse.quote(os.path.relpath(path, folder).replace(os.sep, "/"),
                                      safe="/._-~")
        if url.query:
            relative += "?" + url.query
        if url.fragment:
            relative += "#" + url.fragment
        literal = re.sub(rb"([()\\])", rb"\\\1", relative.encode("ascii"))
        new = b"/URI (" + literal + b")"
        if len(new) > len(match.group(0)):
            new = b"/URI ()"
        return new + b" " * (len(match.group(0)) - len(new))

    return _URI.sub(swap, body)


def write_pdf(page: Path, pdf: Path, chromium: str, timeout: float = 120) -> None:
    """Print ``page`` (a local HTML file) to ``pdf`` with a Chromium of its own, atomically;
    raises RuntimeError with Chromium's own message when it fails."""
    with Printer(chromium, timeout) as printer:
        printer.print(page, pdf)


def stale_profiles(alive) -> list:
    """The Chromium profiles of printers whose process is no longer ``alive(pid)``."""
    from .kernels import stale_folders

    return stale_folders(PROFILE_PREFIX, alive)


_SHARED: dict[str, Printer] = {}


def shared_printer(chromium: str, wait: bool = True) -> Printer:
    """This process's printer for ``chromium``, started on first use (and again if it
    stopped), closed when the process ends: a render's worker prints all its notes with one
    Chromium. A resource of the process, like an open file: no page's state is kept in it
    (each page gets its own browser context). ``wait``: see :class:`Printer`."""
    printer = _SHARED.get(chromium)
    if printer is None or not printer.alive:
        from multiprocessing import util

        if printer is not None:  # stopped, or the parent's (inherited by a fork)
            printer.close()
        printer = _SHARED[chromium] = Printer(chromium, wait=wait)
        # run when the process ends, a render's forked worker included (atexit is not)
        util.Finalize(printer, printer.close, exitpriority=10)
    return printer
