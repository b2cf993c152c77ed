"""A rendered note in headless Chromium: loads offline, no failed request, no console error,
figures visible. Chromium comes from Debian (installed by .ci/run where missing)."""

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REPO = Path(__file__).resolve().parent.parent
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from metaanalysis.render import render

    out = tmp_path_factory.mktemp("site")
    outcomes = render(["autonomy", "territories"], root=REPO, site=out, progress=lambda m: None)
    assert all(o.status == "rendered" for o in outcomes), outcomes
    return out


@pytest.mark.parametrize("page", ["autonomy.html", "territories.html", "index.html"])
def test_page_loads_offline_without_errors(site, page):
    from playwright.sync_api import sync_playwright

    failed, errors, requests = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        ctx = browser.new_context(offline=True)
        tab = ctx.new_page()
        tab.on("requestfailed", lambda r: failed.append(r.url))
        tab.on("request", lambda r: requests.append(r.url))
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto((site / page).as_uri(), wait_until="load")
        figures = tab.locator("figure svg")
        n = figures.count()
        visible = [figures.nth(i).bounding_box() for i in range(n)]
        browser.close()
    assert failed == [] and errors == []
    assert all(u.startswith("file://") or u.startswith("data:") for u in requests), requests
    if page == "autonomy.html":
        assert n >= 3
        assert all(b and b["width"] > 200 and b["height"] > 100 for b in visible)


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_key_messages_are_on_the_first_screen(site, width, height):
    """A reader sees the key messages without scrolling, on a desktop and on a phone, and
    the page never scrolls sideways."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        tab = browser.new_page(viewport={"width": width, "height": height})
        tab.goto((site / "autonomy.html").as_uri(), wait_until="load")
        box = tab.locator(".key-messages h2").bounding_box()
        first = tab.locator(".key-messages li").first.bounding_box()
        overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        browser.close()
    assert box is not None and box["y"] + box["height"] <= height
    assert first["y"] < height, "the first key message starts below the first screen"
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {width}px"


@pytest.mark.parametrize("width,shown", [(1280, False), (390, True)])
def test_the_index_says_what_each_cell_is_when_its_table_head_is_hidden(site, width, shown):
    """On a phone the index's rows are stacked and its table head hidden: the date and the
    open data say what they are ("Données mises à jour : 28 novembre 2026"); on a desktop the
    head says it, once. The date is a reader's date, with the ISO date for machines."""
    import re

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        tab = browser.new_page(viewport={"width": width, "height": 844})
        tab.goto((site / "index.html").as_uri(), wait_until="load")
        head = tab.locator("table.themes thead").is_visible()
        labels = tab.locator("table.themes .cell-label")
        visible = [labels.nth(i).is_visible() for i in range(labels.count())]
        dates = tab.locator("table.themes time").all_inner_texts()
        stamps = [tab.locator("table.themes time").nth(i).get_attribute("datetime")
                  for i in range(len(dates))]
        browser.close()
    assert head is not shown and visible and all(v is shown for v in visible)
    assert dates and all(re.fullmatch(r"\d{1,2}(er)?\s[a-zéû]+ \d{4}", d) for d in dates), dates
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", s) for s in stamps)


def test_the_summary_of_findings_fits_the_printed_page(site):
    """In the PDF (print media, A4's 180 mm of text width) the summary-of-findings table
    fits its page: before, its last column was cut off at the page's edge (autonomy's
    certainty and its reasons) while its effect column wrapped at every word."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        tab = browser.new_page(viewport={"width": 680, "height": 1000})
        tab.emulate_media(media="print")
        tab.goto((site / "autonomy.html").as_uri(), wait_until="load")
        fit = tab.evaluate("""() => Array.from(document.querySelectorAll('table.sof')).map(t => ({
            table: t.getBoundingClientRect().width,
            page: document.body.getBoundingClientRect().width,
            cells: Array.from(t.querySelectorAll('th, td'))
                .filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent),
            // the pooled effect and its interval on at most two lines
            effect_lines: Array.from(t.querySelectorAll('td:nth-child(3)')).map(c => {
                const r = document.createRange();
                r.selectNodeContents(c);  // the text's own height, not its row's
                return r.getBoundingClientRect().height
                       / parseFloat(getComputedStyle(c).lineHeight); })}))""")
        # nothing else on the printed page is wider than it (tables, figures, code)
        wide = tab.evaluate("""() => Array.from(document.querySelectorAll(
            '.scroll, .output, figure, pre, table'))
            .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.outerHTML.slice(0, 80))""")
        browser.close()
    assert wide == []
    assert fit, "no summary-of-findings table"
    for f in fit:
        assert f["table"] <= f["page"] + 1 and f["cells"] == [], f
        assert f["effect_lines"] and max(f["effect_lines"]) < 2.5, f


def test_figure_text_is_legible_on_a_phone(site):
    """At 390 px wide no figure text is smaller than 9 px on screen: a figure too wide for
    the phone scrolls within its own box (with a cue), and the page itself never does."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        tab = browser.new_page(viewport={"width": 390, "height": 844})
        tab.goto((site / "autonomy.html").as_uri(), wait_until="load")
        sizes = tab.evaluate("""() => Array.from(document.querySelectorAll('figure svg text'))
            .map(t => { const m = t.getScreenCTM();  // rotated labels: the scale is |(a, b)|
                        return parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b); })""")
        overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        cues = tab.locator("figure .scroll-cue").count()
        cue_visible = tab.locator("figure .scroll-cue").first.is_visible()
        browser.close()
    assert len(sizes) > 50 and min(sizes) >= 9 - 1e-6, min(sizes)
    assert overflow <= 0
    assert cues >= 3 and cue_visible


def test_texts_without_their_rotations_by_zero_look_the_same_to_the_pixel(tmp_path,
                                                                         monkeypatch):
    """svg_figure drops matplotlib's ``transform="rotate(-0 x y)"`` from its texts (a
    browser draws each transformed text apart: slower to show and to print). A rotation by 0
    is none: the figure is the same, pixel for pixel, on a desktop and on a phone's dense
    screen, labels, numbers and tick labels included."""
    import io
    import re

    import numpy as np
    from PIL import Image
    from playwright.sync_api import sync_playwright

    import metaanalysis.plots as plots
    from metaanalysis.models import rma

    rng = np.random.default_rng(3)
    v = rng.uniform(0.01, 0.1, 8)
    res = rma(rng.normal(0.3, 0.2, 8), v, slab=[f"Study {i} (20{10 + i})" for i in range(8)])
    kept = plots.svg_figure(plots.forest(res, lang="fr")).svg
    monkeypatch.setattr(plots, "IDENTITY_ROTATION", re.compile(r"((?!))"))  # drops nothing
    matplotlibs = plots.svg_figure(plots.forest(res, lang="fr")).svg
    assert "rotate(-0 " in matplotlibs and "rotate(-0 " not in kept
    assert kept.count("<text") == matplotlibs.count("<text")
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for svg in (matplotlibs, kept):
            page = tmp_path / f"figure{len(shots)}.html"
            page.write_text(f"<!doctype html><meta charset='utf-8'><body style='margin:0'>{svg}",
                            encoding="utf-8")
            for width, scale in ((1280, 1), (390, 3)):
                tab = browser.new_page(viewport={"width": width, "height": 900},
                                       device_scale_factor=scale)
                tab.goto(page.as_uri(), wait_until="load")
                shots.append(np.asarray(Image.open(io.BytesIO(tab.screenshot(full_page=True)))))
                tab.close()
        browser.close()
    for before, after in ((shots[0], shots[2]), (shots[1], shots[3])):
        assert before.shape == after.shape and np.array_equal(before, after)
        assert (before < 128).any()  # something was drawn


def test_the_language_switch_leads_to_the_same_note_in_the_other_language(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        tab = browser.new_page()
        tab.goto((site / "autonomy.html").as_uri(), wait_until="load")
        assert tab.locator("html").get_attribute("lang") == "fr"
        fr_title = tab.locator("h1").first.inner_text()
        tab.locator("nav.top a[hreflang=en]").click()
        tab.wait_for_load_state("load")
        url, lang = tab.url, tab.locator("html").get_attribute("lang")
        en_title = tab.locator("h1").first.inner_text()
        en_messages = tab.locator(".key-messages h2").inner_text()
        alternates = tab.locator("link[rel=alternate]").evaluate_all(
            "ls => ls.map(l => [l.hreflang, l.href])")
        tab.locator("nav.top a[hreflang=fr]").click()
        tab.wait_for_load_state("load")
        back = tab.url
        tab.goto((site / "en" / "index.html").as_uri(), wait_until="load")
        index_title = tab.locator("h1").inner_text()
        browser.close()
    assert url.endswith("/en/autonomy.html") and lang == "en"
    assert fr_title.startswith("Prévenir") and en_title.startswith("Preventing")
    assert en_messages == "Key messages"
    assert sorted(code for code, _ in alternates) == ["en", "fr"]
    assert back.endswith("/autonomy.html") and "/en/" not in back
    assert index_title == "Analysis notes"


def test_each_note_has_a_pdf_edition_with_page_numbers(site):
    """make notes prints every published note to PDF (A4, "page / pages" at the bottom of
    every page), in both languages, linked from the note's header."""
    import re

    from pypdf import PdfReader

    for page in ("autonomy", "territories", "en/autonomy", "en/territories"):
        pdf = site / f"{page}.pdf"
        assert pdf.exists(), pdf
        reader = PdfReader(pdf)
        n = len(reader.pages)
        box = reader.pages[0].mediabox
        assert abs(float(box.width) - 595) < 2 and abs(float(box.height) - 842) < 2  # A4
        for i, p in enumerate(reader.pages, 1):
            assert re.search(rf"\b{i} / {n}\b", p.extract_text()), (page, i)
        html = (site / f"{page}.html").read_text()
        assert f'<a href="{page.split("/")[-1]}.pdf">PDF</a>' in html


def test_without_chromium_the_notes_are_still_written_and_the_pdfs_explained(tmp_path,
                                                                           monkeypatch):
    import metaanalysis.pdf
    from metaanalysis.render import render

    monkeypatch.setattr(metaanalysis.pdf, "find_chromium", lambda: None)
    said = []
    out = render(["territories"], root=REPO, site=tmp_path / "site", progress=said.append)
    assert [o.status for o in out] == ["rendered", "rendered"]
    assert (tmp_path / "site" / "territories.html").exists()
    assert not list((tmp_path / "site").rglob("*.pdf"))
    assert metaanalysis.pdf.MISSING in said
    assert ">PDF</a>" not in (tmp_path / "site" / "territories.html").read_text()
