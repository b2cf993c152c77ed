"""The PDF printer (metaanalysis/pdf.py): one Chromium printing page after page over the
DevTools pipe, byte for byte what Chromium's own --print-to-pdf writes, and failing with a
reason, never hanging, never leaving a Chromium behind."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metaanalysis.pdf import (Printer, find_chromium, shared_printer, stale_profiles,
                              write_pdf)

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                    "(apt-get install chromium; .ci/run installs it)")

PAGE = """<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>{title}</title>
<style>@page {{ size: A4; margin: 2cm 2cm 2.5cm; @bottom-center {{ content: counter(page)
" / " counter(pages); }} }} h1 {{ color: #235; }} .box {{ background: #eef; }}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


def page(tmp_path, name, title, paragraphs=3):
    body = "".join(f"<p class=box>Paragraphe {i} : l'effet combiné 0,24.</p>"
                   for i in range(paragraphs))
    svg = ('<svg width="300" height="120" xmlns="http://www.w3.org/2000/svg">'
           '<rect x="10" y="10" width="200" height="50" fill="#c33"/>'
           '<text x="20" y="100">forêt</text></svg>')
    path = tmp_path / f"{name}.html"
    path.write_text(PAGE.format(title=title, body=body + svg), encoding="utf-8")
    return path


def undated(pdf: Path) -> bytes:
    """A PDF's bytes but for its creation and modification dates."""
    return re.sub(rb"D:\d{14}[^)]*", b"D:", pdf.read_bytes())


def chromium_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@needs_chromium
def test_the_printer_writes_what_chromiums_own_print_to_pdf_writes(tmp_path):
    """Same options as `chromium --headless --print-to-pdf --no-pdf-header-footer`: the
    PDFs are the same bytes but for their dates, for a first page and the pages after it
    (each printed in its own browser context by the same Chromium)."""
    pages = [page(tmp_path, "a", "Première note", 40), page(tmp_path, "b", "Deuxième", 2)]
    for p in pages:
        args = [CHROMIUM, "--headless", "--disable-gpu", "--no-first-run",
                "--no-pdf-header-footer", f"--user-data-dir={tmp_path / 'profile'}",
                f"--print-to-pdf={p.with_suffix('.cli.pdf')}", p.as_uri()]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")
        subprocess.run(args, capture_output=True, timeout=120, check=True)
    with Printer(CHROMIUM) as printer:
        for p in pages + pages:  # twice: the same page printed again is the same PDF
            printer.print(p, p.with_suffix(".pdf"))
            assert undated(p.with_suffix(".pdf")) == undated(p.with_suffix(".cli.pdf")), p
    from pypdf import PdfReader

    reader = PdfReader(pages[0].with_suffix(".pdf"))
    assert len(reader.pages) >= 2
    assert "1 / " in reader.pages[0].extract_text()
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


@needs_chromium
def test_a_page_that_cannot_be_printed_is_reported_and_the_printer_goes_on(tmp_path):
    good = page(tmp_path, "good", "Bonne")
    with Printer(CHROMIUM) as printer:
        with pytest.raises(RuntimeError, match=r"missing\.html.*ERR_FILE_NOT_FOUND"):
            printer.print(tmp_path / "missing.html", tmp_path / "missing.pdf")
        assert not (tmp_path / "missing.pdf").exists()
        assert printer.alive
        printer.print(good, tmp_path / "good.pdf")
    assert (tmp_path / "good.pdf").read_bytes().startswith(b"%PDF")


@needs_chromium
def test_closing_stops_chromium_and_removes_its_profile(tmp_path):
    printer = Printer(CHROMIUM)
    pid, profile = printer._pid, Path(printer._profile)
    assert chromium_pid_alive(pid) and profile.is_dir()
    printer.close()
    printer.close()  # twice is harmless
    assert not printer.alive and not chromium_pid_alive(pid) and not profile.exists()
    with pytest.raises(RuntimeError, match="stopped"):
        printer.print(page(tmp_path, "late", "Tard"), tmp_path / "late.pdf")


@needs_chromium
def test_chromium_stops_when_the_process_that_drives_it_is_killed(tmp_path):
    """A render's worker killed with its render (os._exit, no clean-up) leaves no Chromium:
    the pipe closes and Chromium stops."""
    script = ("import os, sys; from metaanalysis.pdf import Printer, find_chromium; "
              "p = Printer(find_chromium()); print(p._pid, p._profile, flush=True); os._exit(1)")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    pid, profile = int(run.stdout.split()[0]), run.stdout.split()[1]
    end = time.monotonic() + 20
    while chromium_pid_alive(pid) and time.monotonic() < end:
        time.sleep(0.1)
    assert not chromium_pid_alive(pid)
    # its profile (2-3 MB) stays: the next render removes it, its process being gone
    from metaanalysis.render import _alive, _clean_stale

    assert profile in stale_profiles(_alive)
    assert Path(profile).is_dir()
    _clean_stale(tmp_path / "site")
    assert not Path(profile).exists()


@needs_chromium
def test_a_process_shares_one_printer_and_replaces_a_stopped_one(tmp_path):
    first = shared_printer(CHROMIUM)
    assert shared_printer(CHROMIUM) is first
    first.close()
    second = shared_printer(CHROMIUM)
    assert second is not first and second.alive
    second.print(page(tmp_path, "p", "Partagé"), tmp_path / "p.pdf")
    assert (tmp_path / "p.pdf").exists()


def _print_in_child(html, pdf):
    printer = shared_printer(find_chromium())
    printer.print(html, pdf)
    return printer._pid, printer._profile


@needs_chromium
def test_a_forked_worker_starts_its_own_printer_and_leaves_its_parents_alone(tmp_path):
    """A render's workers are forked: one inheriting the parent's printer (a notebook that
    printed, then rendered) must not drive, wait for or close the parent's Chromium (seen
    in the suite: two workers on one Chromium's pipe, then "No child processes")."""
    import multiprocessing

    parent = shared_printer(CHROMIUM)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        children = pool.starmap(_print_in_child, [
            (page(tmp_path, f"c{i}", f"Enfant {i}"), tmp_path / f"c{i}.pdf") for i in range(2)])
    pids, profiles = zip(*children)
    assert parent._pid not in pids
    assert all((tmp_path / f"c{i}.pdf").read_bytes().startswith(b"%PDF") for i in range(2))
    assert parent.alive
    parent.print(page(tmp_path, "p", "Parent"), tmp_path / "p.pdf")
    assert (tmp_path / "p.pdf").exists()
    # the pool's workers may be stopped before they remove their Chromium's profiles: the
    # next render removes them
    from metaanalysis.render import _clean_stale

    _clean_stale(tmp_path / "site")
    assert not any(Path(p).exists() for p in profiles)
    assert Path(parent._profile).is_dir()  # (this process's, alive)


def fake(tmp_path, body):
    exe = tmp_path / "fake-chromium"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(0o755)
    return str(exe)


def test_a_chromium_that_stops_at_once_gives_its_reason(tmp_path):
    exe = fake(tmp_path, 'echo "cannot open display: no such thing" >&2; exit 1')
    with pytest.raises(RuntimeError, match="could not start: it stopped.*cannot open display"):
        Printer(exe)


def test_a_chromium_that_never_answers_times_out_and_is_stopped(tmp_path):
    exe = fake(tmp_path, "exec sleep 60")
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"Chromium did not start within 1 s"):
        Printer(exe, timeout=1)
    assert time.monotonic() - start < 15


@needs_chromium
def test_a_printer_started_without_waiting_prints_the_same_pdf(tmp_path):
    """A render's worker starts its Chromium without waiting for it (it starts while the
    first note runs): its first page waits for Chromium, and the PDFs are those of a printer
    that waited."""
    a = page(tmp_path, "a", "Première note", 12)
    with Printer(CHROMIUM) as printer:
        printer.print(a, tmp_path / "waited.pdf")
    with Printer(CHROMIUM, wait=False) as printer:
        printer.print(a, tmp_path / "not-waited.pdf")
        printer.print(a, tmp_path / "again.pdf")
    assert undated(tmp_path / "not-waited.pdf") == undated(tmp_path / "waited.pdf")
    assert undated(tmp_path / "again.pdf") == undated(tmp_path / "waited.pdf")


def test_a_chromium_started_without_waiting_that_stops_gives_its_reason_at_the_first_page(
        tmp_path):
    exe = fake(tmp_path, 'echo "cannot open display: no such thing" >&2; exit 1')
    printer = Printer(exe, wait=False)
    (tmp_path / "a.html").write_text("<p>a</p>")
    with pytest.raises(RuntimeError, match="a.html.*stopped.*cannot open display"):
        printer.print(tmp_path / "a.html", tmp_path / "a.pdf")
    assert not printer.alive
    assert not (tmp_path / "a.pdf").exists()


def test_a_missing_chromium_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match="could not start"):
        write_pdf(tmp_path / "a.html", tmp_path / "a.pdf", str(tmp_path / "no-chromium"))
    assert not list(Path(tmp_path).glob("*.pdf"))


def test_local_links_become_relative_in_the_same_number_of_bytes():
    """relative_links: a file:// link (percent-encoded, escaped parentheses, a fragment)
    becomes the relative link from the PDF's folder, padded to its old length; web links and
    everything else are untouched."""
    from metaanalysis.pdf import relative_links

    folder = Path("/srv/la note (v2)/site/en")
    body = (b"1 0 obj\n<</S /URI\n/URI (file:///srv/la%20note%20\\(v2\\)/site/en/data/x.csv)>>\n"
            b"2 0 obj\n<</S /URI\n/URI (file:///srv/la%20note%20\\(v2\\)/site/index.html#top)>>\n"
            b"3 0 obj\n<</S /URI\n/URI (https://doi.org/10.1002/cl2.1152)>>\nendobj\n")
    out = relative_links(body, folder)
    assert len(out) == len(body)
    assert b"file:" not in out and b"srv" not in out
    uris = re.findall(rb"/URI \(([^)]*)\)( *)>>", out)
    assert [u for u, _ in uris] == [b"data/x.csv", b"../index.html#top",
                                    b"https://doi.org/10.1002/cl2.1152"]
    assert uris[2][1] == b""  # untouched
    # a name that needs escaping in the URL stays a valid link, percent-encoded
    odd = b"<</URI (file:///srv/site/data/a%20b\\(1\\).csv)>>"
    assert relative_links(odd, Path("/srv/site")).rstrip(b" >") == b"<</URI (data/a%20b%281%29.csv)"


@needs_chromium
def test_a_printed_note_links_to_its_open_data_relatively(tmp_path):
    """Chromium writes a page's relative links as file:// URLs of the printing machine; the
    PDF keeps the page's own relative links (the open data, the index, in a folder whose name
    needs escaping), its web links as they are, no trace of the machine's folders, and reads
    as a valid PDF (its cross-reference offsets intact)."""
    from pypdf import PdfReader

    site = tmp_path / "dossier (é) v2" / "site"
    (site / "en" / "data").mkdir(parents=True)
    body = ('<p><a href="data/note.csv">CSV</a> <a href="data/note.json">JSON</a> '
            '<a href="../index.html">index</a> <a href="https://doi.org/10.1002/cl2.1152">'
            'DOI</a></p>')
    html = site / "en" / "note.html"
    html.write_text(PAGE.format(title="Note", body=body), encoding="utf-8")
    pdf = html.with_suffix(".pdf")
    with Printer(CHROMIUM) as printer:
        printer.print(html, pdf)
    raw = pdf.read_bytes()
    assert b"file:" not in raw and str(tmp_path).encode() not in raw
    assert b"dossier" not in raw
    reader = PdfReader(pdf, strict=True)
    uris = [a.get_object()["/A"]["/URI"] for p in reader.pages for a in p.get("/Annots", [])]
    assert sorted(uris) == sorted(["data/note.csv", "data/note.json", "../index.html",
                                   "https://doi.org/10.1002/cl2.1152"])
    # each resolves, from the PDF's folder, to the file the page links to
    for uri in (u for u in uris if not u.startswith("https")):
        assert (pdf.parent / uri).resolve().parent in (site / "en" / "data", site)


@needs_chromium
def test_a_page_prepared_in_advance_prints_the_same_pdf(tmp_path):
    """A worker has the next page's context and tab opened while its note's kernel runs
    (prepare): the PDFs are those of pages opened when printed, each in its own context."""
    a, b = page(tmp_path, "a", "Première note", 12), page(tmp_path, "b", "Deuxième", 2)
    with Printer(CHROMIUM) as printer:
        printer.print(a, tmp_path / "a-direct.pdf")
        printer.print(b, tmp_path / "b-direct.pdf")
    with Printer(CHROMIUM, wait=False) as printer:
        printer.prepare()
        printer.prepare()  # (one page at a time: asking again changes nothing)
        printer.print(a, tmp_path / "a-prepared.pdf")
        printer.prepare()
        printer.print(b, tmp_path / "b-prepared.pdf")
        printer.print(a, tmp_path / "a-again.pdf")  # none prepared: opened when printed
        printer.prepare()  # prepared and never used: closed with Chromium
    for name in ("a", "b"):
        assert undated(tmp_path / f"{name}-prepared.pdf") == undated(tmp_path / f"{name}-direct.pdf")
    assert undated(tmp_path / "a-again.pdf") == undated(tmp_path / "a-direct.pdf")
    assert not printer.alive and not Path(printer._profile).exists()


def test_a_page_prepared_for_a_chromium_that_stopped_gives_its_reason_when_printed(tmp_path):
    exe = fake(tmp_path, 'echo "cannot open display: no such thing" >&2; exit 1')
    printer = Printer(exe, wait=False)
    printer.prepare()
    (tmp_path / "a.html").write_text("<p>a</p>")
    with pytest.raises(RuntimeError, match="stopped.*cannot open display"):
        printer.print(tmp_path / "a.html", tmp_path / "a.pdf")
    assert not printer.alive and not (tmp_path / "a.pdf").exists()


def test_closing_while_a_page_is_being_prepared_stops_chromium_and_its_thread(tmp_path):
    """A worker that ends (its note failed) while Chromium opens the next page: Chromium is
    stopped, the thread waiting for its answers ends, nothing is left."""
    exe = fake(tmp_path, "exec sleep 60")  # never answers
    printer = Printer(exe, wait=False, timeout=60)
    printer.prepare()
    thread, pid = printer._preparing, printer._pid
    time.sleep(0.2)
    assert thread.is_alive()
    printer.close()
    assert not thread.is_alive() and not chromium_pid_alive(pid)
    assert not Path(printer._profile).exists()


def test_a_page_prepared_by_a_chromium_that_never_answers_times_out_at_the_print(tmp_path):
    """The preparation or the print, whichever gives up first, says Chromium did not answer
    in time; Chromium, the thread and the profile are gone after."""
    exe = fake(tmp_path, "exec sleep 60")  # never answers
    printer = Printer(exe, wait=False, timeout=1)
    printer.prepare()
    thread, pid = printer._preparing, printer._pid
    (tmp_path / "a.html").write_text("<p>a</p>")
    with pytest.raises(RuntimeError, match=r"Chromium did not (print a.html|start) within 1 s"):
        printer.print(tmp_path / "a.html", tmp_path / "a.pdf")
    assert not printer.alive and not thread.is_alive() and not chromium_pid_alive(pid)
    assert not Path(printer._profile).exists() and not (tmp_path / "a.pdf").exists()
