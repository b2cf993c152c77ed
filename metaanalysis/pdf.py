"""The PDF edition of a note: its HTML page printed by Chromium (headless), with the page's
print style sheet (templates/note/note.css: A4, page numbers in the bottom margin, no heading
left at a page bottom, figures and tables kept whole).

Chromium is the browser the tests already drive (Debian's ``chromium``); where it is missing,
the notes are still written as HTML and :data:`MISSING` says how to get the PDFs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MISSING = ("PDF editions not written: Chromium is not installed (Debian/Ubuntu: apt-get install "
           "chromium); the HTML notes are complete")


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) executable, or None."""
    return next((p for p in map(shutil.which, NAMES) if p), None)


def write_pdf(page: Path, pdf: Path, chromium: str, timeout: float = 120) -> None:
    """Print ``page`` (a local HTML file) to ``pdf``, atomically; raises RuntimeError with
    Chromium's own message when it fails. The page loads nothing from the network (its
    Content-Security-Policy says so) and Chromium runs with a throw-away profile."""
    tmp = pdf.with_name(f".{pdf.name}.{os.getpid()}.tmp")
    with tempfile.TemporaryDirectory(prefix="metaanalysis-chromium-") as profile:
        args = [chromium, "--headless", "--disable-gpu", "--no-first-run",
                "--no-pdf-header-footer", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                f"--user-data-dir={profile}", f"--print-to-pdf={tmp}",
                Path(page).resolve().as_uri()]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        try:
            run = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"Chromium did not print {page.name} within {timeout:g} s") \
                from None
    if run.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"Chromium could not print {page.name}: {last}")
    tmp.replace(pdf)
