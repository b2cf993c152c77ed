"""The notes pipeline: parameters, incremental builds, failure isolation, escaping, variants."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from metaanalysis.render import RenderError, plan, render

REPO = Path(__file__).resolve().parent.parent
HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def make_project(tmp_path, themes=("autonomy",)):
    """A copy of the project's themes, bibliographies, notebooks and templates."""
    root = tmp_path / "proj"
    (root / "bibliographies").mkdir(parents=True)
    (root / "notebooks").mkdir()
    shutil.copytree(REPO / "templates", root / "templates")
    all_themes = json.loads((REPO / "themes.json").read_text())
    config = {}
    for name in themes:
        base = name.split("_")[0]
        c = dict(all_themes[base])
        c["bibliography"] = f"bibliographies/{name}.bib"
        c["notebook"] = f"notebooks/{name}.ipynb"
        shutil.copy(REPO / all_themes[base]["bibliography"], root / c["bibliography"])
        nb = (REPO / all_themes[base]["notebook"]).read_text().replace(
            f'theme = \\"{base}\\"', f'theme = \\"{name}\\"')
        (root / c["notebook"]).write_text(nb)
        config[name] = c
    (root / "themes.json").write_text(json.dumps(config))
    return root


def quiet(_msg):
    pass


def test_a_render_says_the_bibliographys_warnings(tmp_path):
    """A warning of the bibliography (here one outcome typed two ways, pooled apart) is said
    by the render the researcher runs (make note), once for the theme, not only by check."""
    root = make_project(tmp_path, ("territories",))
    bib = root / "bibliographies" / "territories.bib"
    bib.write_text(bib.read_text() + "@article{x1, year={2020}, screening={pending}, "
                   "design={RCT}}\n@article{x2, year={2020}, screening={pending}, design={rct}}\n")
    said = []
    out = render(["territories"], root=root, site=tmp_path / "site", progress=said.append)
    assert [o.status for o in out] == ["rendered", "rendered"]
    warned = [m for m in said if "warning(s) in its bibliography" in m]
    assert len(warned) == 1 and warned[0].startswith("[territories] 1 warning(s)")
    assert "design = 'rct' (1 time) is written 'RCT'" in warned[0]


def test_unknown_parameter_and_bad_values_are_refused_before_anything_runs(tmp_path):
    root = make_project(tmp_path)
    for params, fragment in [({"metod": "DL"}, "unknown parameter 'metod'"),
                             ({"level": "high"}, "expected a number"),
                             ({"method": "XYZ"}, "method"),
                             ({"lang": "de"}, "lang"),
                             ({"a b": "1"}, "unknown parameter")]:
        with pytest.raises(RenderError, match=fragment):
            render(["autonomy"], params, root=root, site=tmp_path / "site", progress=quiet)
    assert not (tmp_path / "site").exists()


def test_cli_refuses_unknown_parameter_with_exit_2():
    run = subprocess.run([sys.executable, "-m", "metaanalysis", "render", "autonomy", "-p",
                          "nope", "1"], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 2
    assert "unknown parameter 'nope'" in run.stderr and "Traceback" not in run.stderr


def test_incremental_build_renders_only_what_changed(tmp_path):
    root = make_project(tmp_path, ("autonomy", "autonomy_copy"))
    site = tmp_path / "site"
    first = render(root=root, site=site, progress=quiet)
    # each theme in French (site/) and English (site/en/), in the plan's order
    assert [(o.theme, o.lang, o.status) for o in first] == [
        ("autonomy", "fr", "rendered"), ("autonomy", "en", "rendered"),
        ("autonomy_copy", "fr", "rendered"), ("autonomy_copy", "en", "rendered")], first
    assert (site / "index.html").exists() and (site / "en" / "index.html").exists()
    assert (site / "data" / "autonomy.csv").exists() and (site / "data" / "autonomy.json").exists()
    assert (site / "en" / "data" / "autonomy.json").exists()
    second = render(root=root, site=site, progress=quiet)
    assert [o.status for o in second] == ["up to date"] * 4
    # nothing to do is known without the execution's or the pages' modules (nor numpy,
    # papermill, nbconvert, matplotlib, nor urllib's HTTP client, which the PDFs' links
    # use): a render with nothing to do stays quick
    code = ("import sys; from pathlib import Path; from metaanalysis.render import render; "
            f"out = render(root=Path({str(root)!r}), site=Path({str(site)!r}), "
            "progress=lambda m: None); print([o.status for o in out]); print(*sorted(sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    statuses, loaded = run.stdout.splitlines()
    assert statuses == str(["up to date"] * 4)
    heavy = {"metaanalysis.execution", "metaanalysis.pages", "numpy", "papermill", "nbconvert",
             "matplotlib", "jsonschema", "urllib.request", "http.client"}
    assert not heavy & set(loaded.split()), heavy & set(loaded.split())
    bib = root / "bibliographies" / "autonomy_copy.bib"
    bib.write_text(bib.read_text() + "\n@comment{an edit}\n")
    third = {(o.theme, o.lang): o.status for o in render(root=root, site=site, progress=quiet)}
    assert third == {("autonomy", "fr"): "up to date", ("autonomy", "en"): "up to date",
                     ("autonomy_copy", "fr"): "rendered", ("autonomy_copy", "en"): "rendered"}
    # -p lang en alone is the English edition, not a variant
    job, = plan(["autonomy"], {"lang": "en"}, site, root)
    assert job.changed == {} and job.html == site / "en" / "autonomy.html"
    # the plan sees a parameter change as a different job (a variant), not an update
    job = plan(["autonomy"], {"method": "DL"}, site, root)[0]
    assert job.changed == {"method": "DL"} and "variants" in str(job.html)


def test_renders_are_byte_identical(tmp_path, monkeypatch):
    root = make_project(tmp_path)
    site = tmp_path / "site"
    ipython = tmp_path / "ipython"  # the user's IPython folder, as the kernels see it
    monkeypatch.setenv("IPYTHONDIR", str(ipython))
    render(root=root, site=site, progress=quiet)
    first = (site / "autonomy.html").read_bytes()
    render(root=root, site=site, force=True, progress=quiet)
    assert (site / "autonomy.html").read_bytes() == first
    # the notes' cells never reach the user's input history (nor its database's lock and
    # disk syncs, two kernels at a time)
    assert not list(ipython.rglob("history.sqlite*")), list(ipython.rglob("*"))
    page = first.decode()
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    assert "cdn" not in page.lower()
    links = re.findall(r"<link [^>]*>", page)  # only the other edition (hreflang)
    assert len(links) == 2 and all('rel="alternate"' in x and "hreflang=" in x for x in links)
    assert "<svg" in page and "aria-label" in page


def test_failures_are_isolated_and_keep_the_last_good_note(tmp_path):
    root = make_project(tmp_path, ("autonomy", "autonomy_badbib", "autonomy_raises"))
    site = tmp_path / "site"
    render(root=root, site=site, progress=quiet)
    published = {n: (site / f"{n}.html").read_bytes() for n in ("autonomy_badbib",
                                                                  "autonomy_raises")}
    bad = root / "bibliographies" / "autonomy_badbib.bib"
    bad.write_text(bad.read_text().replace("n1i = 78;", "n1i = -78;", 1))
    nb = root / "notebooks" / "autonomy_raises.ipynb"
    nbj = json.loads(nb.read_text())
    nbj["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": None,
                         "outputs": [], "source": "raise RuntimeError('boom in a cell')"})
    nb.write_text(json.dumps(nbj))
    (root / "bibliographies" / "autonomy.bib").write_text(
        (root / "bibliographies" / "autonomy.bib").read_text() + "\n% touched\n")
    out = {o.theme: o for o in render(root=root, site=site, progress=quiet) if o.lang == "fr"}
    assert out["autonomy"].status == "rendered"
    assert out["autonomy_badbib"].status == "failed"
    assert "autonomy_badbib.bib" in out["autonomy_badbib"].message and "must be a whole count" \
        in out["autonomy_badbib"].message
    assert out["autonomy_raises"].status == "failed"
    assert "RuntimeError: boom in a cell" in out["autonomy_raises"].message
    n_cells = len(nbj["cells"])
    assert f"cell {n_cells} (`raise RuntimeError('boom in a cell')`)" in \
        out["autonomy_raises"].message
    # the executed notebook, up to the failing cell, is kept to open, the error in it
    kept = site / ".build" / "failed" / "autonomy_raises.ipynb"
    assert str(kept) in out["autonomy_raises"].message
    failed = json.loads(kept.read_text())
    assert any(o.get("ename") == "RuntimeError" for c in failed["cells"]
               for o in c.get("outputs", []))
    assert not (site / ".build" / "failed" / "autonomy.ipynb").exists()
    for name, content in published.items():
        assert (site / f"{name}.html").read_bytes() == content


def test_hostile_bibtex_is_escaped(tmp_path):
    root = make_project(tmp_path)
    bib = root / "bibliographies" / "autonomy.bib"
    text = bib.read_text().replace("author = {Applegate}", "author = {Applegate " + HOSTILE + "}",
                                   1).replace("year = {1990},", "year = {1990},\n  title = {"
                                              + HOSTILE + "},", 1)
    bib.write_text(text)
    render(root=root, site=tmp_path / "site", progress=quiet)
    page = (tmp_path / "site" / "autonomy.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page


def test_variant_is_written_beside_and_labelled(tmp_path):
    root = make_project(tmp_path)
    site = tmp_path / "site"
    out = render(["autonomy"], {"method": "DL", "lang": "en"}, root=root, site=site,
                 progress=quiet)
    assert out[0].status == "rendered", out[0].message
    path = site / "variants" / "autonomy--lang-en--method-DL.html"
    assert path.exists() and not (site / "autonomy.html").exists()
    page = path.read_text()
    assert "Variant: parameters changed from the published note: <code>method = DL</code>" in page
    assert "metaanalysis render autonomy -p method DL -p lang en" in page
    # the variant links its own data and the index, from where it lives
    assert '<a href="data/autonomy--lang-en--method-DL.csv">' in page
    # the index in the variant's own language (an English reader lands on the English one),
    # and the variants' index in that language
    assert '<a href="../en/index.html">All notes</a>' in page
    assert '<a href="en/index.html">All variants</a>' in page
    for link in ("data/autonomy--lang-en--method-DL.csv", "data/autonomy--lang-en--method-DL.json",
                 "../en/index.html", "en/index.html"):
        assert (path.parent / link).exists(), link
    # the variants' index in each language of the site, each linking the variant by its
    # title in the variant's language, the other edition and its own language's notes
    import datetime
    today = datetime.datetime.now(datetime.timezone.utc)
    for index, lang, words, home, other in (
            (site / "variants" / "index.html", "fr",
             ("Variantes des notes", "Paramètres modifiés", "Calculée le"),
             "../index.html", "en/index.html"),
            (site / "variants" / "en" / "index.html", "en",
             ("Variants of the notes", "Parameters changed", "Computed on"),
             "../../en/index.html", "../index.html")):
        text = index.read_text()
        assert f'<html lang="{lang}">' in text and all(w in text for w in words), lang
        link = re.search(r"<a href='([^']+)' lang='en'>([^<]+)</a></td><td><code>lang = en</code>, "
                         r"<code>method = DL</code>", text)
        assert link and link.group(2) == "Preventing loss of autonomy in older people", text
        assert (index.parent / link.group(1)).resolve() == path.resolve()
        assert (index.parent / home).exists() and f'href="{home}"' in text
        assert (index.parent / other).exists() and f'hreflang="{"en" if lang == "fr" else "fr"}"' \
            in text and f'href="{other}"' in text
        month = today.strftime("%B") if lang == "en" else None
        assert month is None or month in text
    assert '<a href="../variants/en/index.html">Variants computed by reviewers</a>' in \
        (site / "en" / "index.html").read_text()


def test_note_links_its_data_cites_itself_and_keeps_provenance_at_the_end(tmp_path):
    """Reader first: the title right after the brand and links; its open data, how to cite
    it (text and BibTeX) and the provenance ("Reproduce this note") at the end."""
    import re

    root = make_project(tmp_path)
    site = tmp_path / "site"
    render(["autonomy"], root=root, site=site, progress=quiet)
    page = (site / "autonomy.html").read_text()
    assert page.index("<h1>") < page.index("SHA-256") and page.index("<h1>") < page.index(
        "Paramètres")
    assert page.index('id="data"') < page.index('id="cite"') < page.index('id="reproduce"')
    assert '<a href="data/autonomy.csv">' in page and '<a href="index.html">' in page
    assert (site / "data" / "autonomy.csv").exists() and (site / "index.html").exists()
    assert "@techreport{autonomy-" in page and "institution = {Comparer les impacts" in page
    assert re.search(r"«\u202fPrévenir la perte d(?:'|&#39;)autonomie des personnes âgées\u202f», "
                     r"Note d(?:'|&#39;)analyse, version du \d{1,2}(?:er)?\u00a0[a-zéû]+ \d{4}\.",
                     page)
    # dates as a French reader writes them, with the ISO date for machines
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\d">\d{1,2}(?:er)?\u00a0[a-zéû]+ \d{4}</time>',
                     page)


def test_bibtex_of_the_citation_escapes_braces_and_tex_specials():
    from metaanalysis.pages import _bibtex_text

    assert _bibtex_text("a}b{c %50 & $x_1#") == "a\\}b\\{c \\%50 \\& \\$x\\_1\\#"


def test_new_theme_scaffolds_and_renders(tmp_path):
    from metaanalysis.scaffold import new_theme

    root = make_project(tmp_path)
    shutil.copy(REPO / "templates" / "theme.ipynb", root / "templates" / "theme.ipynb")
    paths = new_theme("housing_first", root)
    assert {p.name for p in paths} == {"housing_first.bib", "housing_first.ipynb", "themes.json"}
    with pytest.raises(RenderError, match="already exists"):
        new_theme("housing_first", root)
    with pytest.raises(RenderError, match="lowercase"):
        new_theme("Bad Name", root)
    assert (root / "themes.json.bak").exists()
    out = render(["housing_first"], root=root, site=tmp_path / "site", progress=quiet)
    assert out[0].status == "rendered", out[0].message
    # an honest "no studies yet" note: no empty table, no dash heading, no empty source list
    page = (tmp_path / "site" / "housing_first.html").read_text()
    assert "<h1>Housing first</h1>" in page
    # its summary stays true once studies are analysed (was "no study analysed yet")
    assert '<p class="summary">Ce que montrent les études.</p>' in page
    assert "Aucune étude n'a encore été analysée pour ce thème" in page.replace("&#39;", "'")
    assert "<h3" not in page and "re-analyses" not in page and "ré-analyse" not in page
    assert "<table" not in page and "<svg" not in page


def test_a_notes_kernel_is_stopped_once_its_notebook_has_run(tmp_path):
    """Every output and file of the note is in when its last cell has run: the kernel is
    killed, not asked to exit (ipykernel 7.4's own shutdown can hang until jupyter_client
    terminates it 2.5 s later, seen in one render out of three). Its exit handlers never run."""
    root = make_project(tmp_path, ("territories",))
    nb = root / "notebooks" / "territories.ipynb"
    nbj = json.loads(nb.read_text())
    flag = tmp_path / "exited"
    nbj["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": None,
                         "outputs": [], "source": "import atexit, pathlib\n"
                         f"atexit.register(pathlib.Path({str(flag)!r}).touch)"})
    nb.write_text(json.dumps(nbj))
    out = render(root=root, site=tmp_path / "site", progress=quiet)
    assert [o.status for o in out] == ["rendered", "rendered"], [o.message for o in out]
    assert not flag.exists()


@pytest.mark.parametrize("source,fragment", [
    ("import os; os._exit(1)", "kernel died"),
    ("import time; time.sleep(60)", "timed out"),
])
def test_dead_or_slow_kernel_is_reported(tmp_path, source, fragment):
    root = make_project(tmp_path, ("autonomy_bad",))
    nb = root / "notebooks" / "autonomy_bad.ipynb"
    nbj = json.loads(nb.read_text())
    nbj["cells"].insert(3, {"cell_type": "code", "metadata": {}, "execution_count": None,
                            "outputs": [], "source": source})
    nb.write_text(json.dumps(nbj))
    out = render(root=root, site=tmp_path / "site", timeout=8, progress=quiet)
    assert out[0].status == "failed" and fragment in out[0].message, out[0].message
    assert not (tmp_path / "site" / "autonomy_bad.html").exists()
    # the notebook as far as it ran is kept to open (papermill saves it when the execution
    # ends, whatever ended it: execution._engine saves no more before and after each cell)
    kept = tmp_path / "site" / ".build" / "failed" / "autonomy_bad.ipynb"
    assert str(kept) in out[0].message
    cells = [c for c in json.loads(kept.read_text())["cells"] if c["cell_type"] == "code"]
    failing = next(i for i, c in enumerate(cells) if "".join(c["source"]) == source)
    # every cell before the failing one ran (the failing cell's own count depends on when the
    # kernel died), none after it
    assert failing >= 3 and all(c["execution_count"] for c in cells[:failing])
    assert not any(c["execution_count"] for c in cells[failing + 1:])
    assert any("note.header()" in "".join(c["source"]) and c["outputs"]
               for c in cells[:failing])


def test_outcome_and_exclude_are_checked_against_the_bibliography(tmp_path):
    root = make_project(tmp_path)
    with pytest.raises(RenderError, match="no column 'nope'"):
        render(["autonomy"], {"exclude": "nope=1"}, root=root, site=tmp_path / "s",
               progress=quiet)
    with pytest.raises(RenderError, match="outcome = 'happiness' is not in the bibliography"):
        render(["autonomy"], {"outcome": "happiness"}, root=root, site=tmp_path / "s",
               progress=quiet)
    assert not (tmp_path / "s").exists()


def test_a_better_bibtex_export_renders_with_every_study_and_effect(tmp_path):
    """A Zotero library exported by Better BibTeX, as a theme of its own: every included study
    and every effect reaches the note and its open data."""
    from metaanalysis.scaffold import new_theme

    root = make_project(tmp_path, ("territories",))
    shutil.copy(REPO / "templates" / "theme.ipynb", root / "templates" / "theme.ipynb")
    new_theme("falls", root)
    shutil.copy(REPO / "tests" / "data" / "zotero" / "betterbibtex.bib",
                root / "bibliographies" / "falls.bib")
    themes = json.loads((root / "themes.json").read_text())

    def outcome(where, label):
        return {"outcome": "fear of falling", "favours": "lower", "domain": "autonomy",
                "where": {"review": "cochrane_cd014666", **where},
                "label": {"fr": label, "en": label}}

    themes["falls"]["outcomes"] = [
        outcome({"analysis": "1.1", "timepoint": "8 weeks"}, "fear of falling, 8 weeks"),
        outcome({"analysis": "1.1", "timepoint": "12 months"}, "fear of falling, 12 months"),
        outcome({"analysis": "1.10"}, "fear of falling, analysis 1.10")]
    (root / "themes.json").write_text(json.dumps(themes))
    site = tmp_path / "site"
    out = render(["falls"], {"lang": "en"}, root=root, site=site, progress=quiet)
    assert out[0].status == "rendered", out[0].message
    name = out[0].path.rsplit("/", 1)[1][:-5]
    assert out[0].path == str(site / "en" / "falls.html")  # the English edition
    data = json.loads((site / "en" / "data" / f"{name}.json").read_text())
    assert [o["k"] for o in data["outcomes"]] == [2, 1, 1]  # 4 effects, none lost
    table = (site / "en" / "data" / f"{name}.csv").read_text()
    assert len(table.strip().splitlines()) == 1 + 4
    # the open data's authors and titles are text as the references show them, not LaTeX
    assert "Dupont, François" in table and "Müller, Jörg" in table and "\\" not in table
    assert "A Randomised Trial of CBT against Fear of Falling" in table and "{" not in table
    page = Path(out[0].path).read_text()
    # the references name authors as references do (surname, initials), LaTeX decoded
    for author in ("Martin, C.", "Nguyen, T.", "Ortiz, A.", "Dupont, F.", "Müller, J."):
        assert author in page
    assert "(2019)" in page and "(2021)" in page and "(2018)" in page  # years from date


def test_outcomes_by_name_survive_a_new_outcome_in_themes_json(tmp_path):
    """An outcome added to themes.json before the existing ones shifts every position: the
    notebooks name their outcomes, so each section still shows its own outcome."""
    from metaanalysis.notes import Note

    root = make_project(tmp_path)
    themes = json.loads((root / "themes.json").read_text())
    new = {"outcome": "hospital readmission", "where": {}, "favours": "lower",
           "domain": "institution",
           "label": {"fr": "réhospitalisation", "en": "hospital readmission"}}
    themes["autonomy"]["outcomes"].insert(0, new)
    (root / "themes.json").write_text(json.dumps(themes))
    note = Note("autonomy", lang="fr", root=root)
    assert note.outcome("mortality") == 3 and note.outcome("mortality at follow-up") == 3
    with pytest.raises(ValueError, match="unknown outcome 'happiness'.*'fear of falling'"):
        note.outcome("happiness")
    # the same outcome pooled twice: its name is ambiguous, the error says to use the label
    twice = dict(themes["autonomy"]["outcomes"][2], where={"timepoint": "discharge",
                                                            "review": "bachmann2010"},
                 label={"fr": "entrée en maison de retraite à la sortie",
                        "en": "nursing-home admission at discharge"})
    themes["autonomy"]["outcomes"].append(twice)
    (root / "themes.json").write_text(json.dumps(themes))
    with pytest.raises(ValueError, match="pooled 2 times.*'entrée en maison de retraite au "
                                         "suivi'"):
        Note("autonomy", lang="fr", root=root).outcome("nursing home admission")
    themes["autonomy"]["outcomes"].pop()
    (root / "themes.json").write_text(json.dumps(themes))
    out = render(["autonomy"], root=root, site=tmp_path / "site", progress=quiet)
    assert out[0].status == "rendered", out[0].message
    page = (tmp_path / "site" / "autonomy.html").read_text()
    # the key result on mortality at follow-up is still that outcome's (RR 0,85 in 15 trials)
    import re
    text = re.sub(r"\s", " ", page)  # no-break spaces as spaces
    assert "mortalité au suivi, le risque relatif est de 0,85 (IC 95 % 0,75 à 0,97)" in text


def test_a_variant_is_compared_with_the_published_note(tmp_path):
    """A reviewer's variant shows, for every outcome, the published and the variant's
    numbers side by side with what changed marked, and is listed in site/variants/."""
    import json as _json
    import re as _re

    from metaanalysis.compare import compare
    from metaanalysis.notes import Note
    from metaanalysis.render import render

    site = tmp_path / "site"
    outcomes = render(["autonomy"], {"method": "DL", "test": "knha"}, site=site,
                      progress=lambda m: None)
    assert [o.status for o in outcomes] == ["rendered"]
    page = (site / "variants" / "autonomy--method-DL--test-knha.html").read_text()
    assert "Comparaison avec la note publiée" in page
    start = _re.search(r"class=.compare.", page).start()
    table = page[start:page.index("</table>", start)]
    published = Note("autonomy", lang="fr").summary()
    variant = _json.loads((site / "variants" / "data" /
                           "autonomy--method-DL--test-knha.json").read_text())
    rows = compare(published, variant, "fr")
    assert len(rows) == 5 and _re.sub(r"\s+", " ", table).count("<tr>") == 6
    home = rows[rows["outcome"] == "entrée en maison de retraite au suivi"].iloc[0]
    # both sets of numbers are in the table, and the conclusion's change is marked
    for col in ("effect_published", "effect_variant", "pi_published", "pi_variant"):
        assert home[col].replace("\u00a0", " ") in table.replace("\u00a0", " ").replace(
            "\u202f", " ")
    assert home["verdict_published"] == "effet favorable probable"
    assert home["verdict_variant"] == "pas d'effet net" and home["verdict_changed"]
    assert "<mark>pas d" in table
    assert not rows["k_changed"].any()  # same studies: only the estimator changed
    index = (site / "variants" / "index.html").read_text()
    assert "autonomy--method-DL--test-knha.html" in index and "test = knha" in index


def test_the_open_data_come_from_the_notes_own_note_without_an_environment_variable():
    """No hidden channel: the render adds an explicit, tagged last cell (dropped from the
    page) in which the notebook's own Note writes the open data."""
    from metaanalysis.execution import export_cell
    from metaanalysis.pages import EXPORT_TAG

    cell = export_cell("autonomy", Path("/tmp/x y"), "autonomy")
    assert EXPORT_TAG in cell.metadata["tags"]
    assert "_export_note(globals().get('note'), 'autonomy', '/tmp/x y', 'autonomy')" in cell.source
    import metaanalysis.execution
    import metaanalysis.notes
    import metaanalysis.render
    assert "os.environ" not in Path(metaanalysis.notes.__file__).read_text()
    # the render sets no environment variable: the kernel's thread count is passed to the
    # kernel's process explicitly (kernel_manager_class), and nothing else goes that way
    import metaanalysis.kernels
    source = "".join(Path(m.__file__).read_text() for m in (
        metaanalysis.render, metaanalysis.execution, metaanalysis.kernels))
    assert not re.search(r"os\.environ\s*\[[^]]*\]\s*=|os\.environ\.(setdefault|update|pop)|"
                         r"putenv|METAANALYSIS_", source)


def test_themes_json_is_checked_again_whenever_its_bytes_change(tmp_path):
    """A render remembers the themes.json bytes that passed the schema (no second check,
    no jsonschema import, when nothing changed), and checks any change."""
    import hashlib

    root = make_project(tmp_path, ("territories",))
    site = tmp_path / "site"
    assert [o.status for o in render(root=root, site=site, progress=quiet)] == ["rendered"] * 2
    stamp = site / ".build" / "themes.json.sha256"
    assert stamp.read_text() == hashlib.sha256((root / "themes.json").read_bytes()).hexdigest()
    themes = json.loads((root / "themes.json").read_text())
    themes["territories"]["model"] = {"type": "nonsense"}
    (root / "themes.json").write_text(json.dumps(themes))
    out = render(root=root, site=site, progress=quiet)
    assert out[0].status == "failed" and "territories.model.type" in out[0].message



def test_each_kernel_gets_its_share_of_the_cores_unless_the_user_chose(monkeypatch):
    """Notes rendered side by side each get cores / notes BLAS threads (more only fight for
    a busy core), given to the kernel's process explicitly; a setting the user made is kept,
    and the render's own environment is untouched."""
    import os

    import nbformat
    from nbclient import NotebookClient

    from metaanalysis.kernels import THREAD_VARIABLES, kernel_manager_class, kernel_threads

    assert kernel_threads(2, cores=2) == 1 and kernel_threads(4, cores=2) == 1
    assert kernel_threads(1, cores=2) == 2 and kernel_threads(2, cores=8) == 4
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os; print([os.environ.get(n) for n in %r])" % (THREAD_VARIABLES,))])
    NotebookClient(nb, kernel_name="python3", kernel_manager_class=kernel_manager_class(1),
                   timeout=60).execute()
    assert nb.cells[0].outputs[0]["text"].strip() == "['1', '1', '3']"
    assert os.environ.get("OPENBLAS_NUM_THREADS") is None


_ATTEMPTS = []


def _port_taken_once(real):
    import os

    def execute(*args, **kwargs):
        _ATTEMPTS.append(1)
        if len(_ATTEMPTS) == 1:  # the kernel's own death at start, as zmq reports it
            os.write(2, b"zmq.error.ZMQError: Address already in use (addr='tcp://127.0.0.1:5')\n")
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*args, **kwargs)
    return execute


def test_a_kernel_that_lost_its_port_is_started_again_once(tmp_path, monkeypatch, capfd):
    """jupyter_client picks a kernel's ports and the kernel binds them: another process can
    take one in between (seen once in CI). The note starts a new kernel once, quietly."""
    import papermill

    _ATTEMPTS.clear()
    monkeypatch.setattr(papermill, "execute_notebook", _port_taken_once(papermill.execute_notebook))
    root = make_project(tmp_path, ("territories",))
    out = render(["territories"], root=root, site=tmp_path / "site", progress=quiet, jobs=1,
                 params={"lang": "en"})
    assert [o.status for o in out] == ["rendered"], out
    assert "Address already in use" not in capfd.readouterr().err


def test_ctrl_c_stops_the_render_at_once_and_keeps_the_last_good_notes(tmp_path):
    """Ctrl-C (SIGINT to the terminal's process group) during a render: the render says so
    in one line, exits 130 without a traceback, stops its workers, templates and kernels
    instead of finishing the queue, and the notes already published stay as they were."""
    import os
    import signal
    import time

    root = make_project(tmp_path, ("territories",))
    site = tmp_path / "site"
    render(["territories"], root=root, site=site, progress=quiet, params={"lang": "en"})
    published = site / "en" / "territories.html"
    before = published.read_bytes()
    original = (root / "notebooks" / "territories.ipynb").read_text()
    nb = json.loads(original)
    nb["cells"].insert(2, {"cell_type": "code", "metadata": {}, "execution_count": None,
                           "outputs": [], "source": "import time\ntime.sleep(600)"})
    (root / "notebooks" / "territories.ipynb").write_text(json.dumps(nb))
    run = subprocess.Popen(
        [sys.executable, "-m", "metaanalysis", "render", "--site", str(site)], cwd=root,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def in_project(folder=root):  # processes working there (the render's workers in the
        found = []                 # project, its kernels in notebooks/)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{pid}/cwd").startswith(str(folder)):
                    found.append(int(pid))
            except OSError:
                pass
        return [p for p in found if p != run.pid]

    deadline = time.monotonic() + 120
    while not in_project(root / "notebooks") and time.monotonic() < deadline:
        time.sleep(0.2)  # until a note's kernel is running the notebook
    time.sleep(1)
    workers = in_project()
    os.killpg(run.pid, signal.SIGINT)
    try:
        _, err = run.communicate(timeout=60)  # the sleeping cell would take 600 s
    finally:
        if run.poll() is None:  # not stopped: nothing of it may outlive the test
            os.killpg(run.pid, signal.SIGKILL)
            for pid in in_project():
                os.kill(pid, signal.SIGKILL)
    assert run.returncode == 130, err
    assert "interrupted: the notes rendered so far are written" in err
    assert "Traceback" not in err and "exception was never retrieved" not in err
    assert published.read_bytes() == before
    deadline = time.monotonic() + 20
    while in_project() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert in_project() == []
    # the next render removes what the stopped workers left in the temporary folder: their
    # Chromium profiles and their kernels' socket folders
    import glob
    import tempfile

    def left(kind):
        return [f for pid in workers for f in glob.glob(os.path.join(
            tempfile.gettempdir(), f"metaanalysis-{kind}-{pid}-*"))]

    assert left("chromium") and left("kernel")  # (2-3 MB a Chromium profile)
    (root / "notebooks" / "territories.ipynb").write_text(original)
    render(["territories"], root=root, site=site, progress=quiet, params={"lang": "en"})
    assert left("chromium") == [] and left("kernel") == []


def test_one_exporter_converts_note_after_note_as_fresh_ones_do():
    """A worker converts its notes with one exporter, its templates compiled once (before
    the workers fork): each page is the one a fresh exporter writes, whatever was converted
    before it (no title, language, figure or parameter of one note on the next)."""
    import nbformat

    from metaanalysis.plots import FIGURE_METADATA
    from metaanalysis.pages import cite_bibtex, cite_text, convert, note_exporter
    from metaanalysis.text import PAGE_WORDS

    def notebook(word):
        md = nbformat.v4.new_markdown_cell(f"## {word}\n\nLe texte de {word}.")
        code = nbformat.v4.new_code_cell("")
        code.outputs.append(nbformat.v4.new_output("display_data", data={
            "image/svg+xml": f'<svg viewBox="0 0 10 10"><text style="font-size: 9px">{word}'
                             "</text></svg>", "text/plain": word},
            metadata={FIGURE_METADATA: {"alt": f"alt {word}", "caption": f"cap {word}"}}))
        return nbformat.v4.new_notebook(cells=[md, code])

    def resources(word, lang):
        return {"note": {
            "title": word, "lang": lang, "brand": word, "words": PAGE_WORDS[lang],
            "date": "2026", "parameters": [("outcome", word)], "changed": [],
            "variant": False, "variant_label": "", "bibliography": f"{word}.bib",
            "sha256": "0" * 64, "versions": [("numpy", "2")], "command": f"make note {word}",
            "csv": f"data/{word}.csv", "json": f"data/{word}.json", "index": "index.html",
            "comparison": "", "pdf": f"{word}.pdf", "alternates": [], "switch": [],
            "bibtex": cite_bibtex(word, word, lang, "2026"), "cite": cite_text(word, lang, "2026")}}

    from metaanalysis.pages import template_state

    shared = note_exporter(*template_state(REPO))
    assert note_exporter(*template_state(REPO)) is shared
    notes = [("lecture", "fr"), ("reading", "en"), ("emploi", "fr")]
    pages = [convert(notebook(w), resources(w, lang), REPO) for w, lang in notes]
    note_exporter.cache_clear()
    try:
        fresh = []
        for w, lang in notes:
            fresh.append(convert(notebook(w), resources(w, lang), REPO))
            note_exporter.cache_clear()
    finally:
        note_exporter.cache_clear()
    assert pages == fresh
    assert "lecture" not in pages[1] and "reading" not in pages[2] and 'lang="en"' in pages[1]


def test_an_edited_template_is_used_by_the_next_conversion(tmp_path):
    """nbconvert keeps a compiled template even when its file changes: the shared exporter
    is made anew when a file of the templates folder changes, so a researcher who edits the
    note's template and renders again in the same session sees the edit."""
    import nbformat

    from metaanalysis.pages import convert, note_exporter, template_state

    root = tmp_path / "project"
    shutil.copytree(REPO / "templates", root / "templates")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Texte.")])
    resources = {"note": {"lang": "fr", "words": {}}}
    before = convert(nbformat.from_dict(nb), dict(resources), root)
    page = root / "templates" / "note" / "index.html.j2"
    page.write_text(page.read_text(encoding="utf-8").replace(
        "</body>", "<p>edited-template-mark</p></body>", 1), encoding="utf-8")
    after = convert(nbformat.from_dict(nb), dict(resources), root)
    assert "edited-template-mark" not in before and "edited-template-mark" in after
    assert note_exporter(*template_state(root)) is note_exporter(*template_state(root))


def test_the_index_pages_imports_are_prepared_in_advance():
    """While the workers render the notes, the render imports what the index pages need
    (pages.prepare_index), so the index is written without them at the end."""
    code = ("import sys; from metaanalysis.pages import prepare_index; prepare_index(); "
            "print(*sorted(sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert {"matplotlib.figure", "matplotlib.backends.backend_svg", "jinja2",
            "metaanalysis.figures"} <= set(run.stdout.split())


def test_the_render_command_ends_without_teardown_but_with_its_exit_handlers(tmp_path):
    """`metaanalysis render` ends with os._exit once its work is done (the teardown of the
    modules a render imports took 0.4-0.6 s after the site was written): its exit status is
    the render's, what it wrote to a pipe arrives whole, and the exit handlers still run
    (they close what the process started); other commands end as usual."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('exit handlers ran', file=sys.stderr, flush=True))\n"
            "class Torn:\n"
            "    def __del__(self):\n"
            "        sys.__stderr__.write('torn down')\n"
            "torn = Torn()\n"
            "sys.argv = ['metaanalysis', *sys.argv[1:]]\n"
            "from metaanalysis.cli import run\n"
            "print('buffered on a pipe', end='')\n"
            "run()\n"
            "print('never reached', file=sys.stderr)\n")
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-c", code, "render", "nosuchtheme", "--site",
                           str(site)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stdout == "buffered on a pipe"
    assert "unknown theme(s) nosuchtheme" in proc.stderr
    assert proc.stderr.rstrip().endswith("exit handlers ran")
    assert "never reached" not in proc.stderr and "Traceback" not in proc.stderr
    assert "torn down" not in proc.stderr  # (the interpreter's teardown did not run)
    other = subprocess.run([sys.executable, "-c", code, "check", str(tmp_path / "none.bib")],
                           capture_output=True, text=True, cwd=REPO)
    assert other.returncode != 0 and "exit handlers ran" in other.stderr
    assert "torn down" in other.stderr


def test_a_comparison_shows_tau2_where_a_model_has_no_i2():
    """Education's CHE model has no I²: the comparison's heterogeneity column gave '– → –'
    for every outcome; it now reads tau² as the summary-of-findings table does."""
    from metaanalysis.compare import compare
    from metaanalysis.notes import Note

    published = Note("education", lang="en").summary()
    variant = Note("education", lang="en", exclude="design=QES").summary()
    rows = compare(published, variant, "en")
    reading = rows[rows["outcome"] == "reading"].iloc[0]
    tau2 = published["outcomes"][0]["tau2"]
    assert reading["I2_published"] == f"τ² = {tau2:.3f}" and reading["I2_variant"].startswith("τ² = ")
    autonomy = compare(Note("autonomy", lang="en").summary(),
                       Note("autonomy", lang="en", method="DL").summary(), "en")
    assert autonomy["I2_published"].str.match(r"I² = \d+%").all()


@pytest.mark.parametrize("params,fragment", [
    ({"method": "DL"}, "method = DL: this note's model is che (robust variance), fitted by "
                       "REML only"),
    ({"test": "knha"}, "test = knha: this note's model is che, whose tests are already t tests"),
    ({"model": "multilevel", "method": "PM"}, "method = PM: the three-level model (multilevel) "
                                              "is fitted by REML or ML"),
])
def test_a_variant_is_never_labelled_with_an_estimator_its_model_does_not_use(tmp_path, params,
                                                                               fragment):
    """Education's CHE model ignored -p method DL and -p test knha: the variant said
    'method = DL' over REML's numbers (and the three-level model ignored method, reporting
    REML). Refused before anything runs; the three-level model takes ML."""
    from metaanalysis.notes import Note

    with pytest.raises(RenderError, match=re.escape(fragment)):
        render(["education"], params, root=REPO, site=tmp_path / "site", progress=quiet)
    assert not (tmp_path / "site" / "variants").exists()
    with pytest.raises(ValueError, match=re.escape(fragment)):
        Note("education", **params)
    ml = Note("education", lang="en", model="multilevel", method="ML")
    assert ml.outcomes[0].result.method == "ML"
    reml = Note("education", lang="en", model="multilevel")
    assert ml.outcomes[0].result.estimate != reml.outcomes[0].result.estimate


def test_effects_withheld_from_the_open_data_are_said_on_the_page(tmp_path):
    """Autonomy's Cochrane effects (their licence unclear) are analysed but left out of the
    CSV: a reader downloading it found no fear-of-falling row and no word of why. The page
    now says how many, beside the links; the CSV and JSON agree with it."""
    import csv as csvlib

    from metaanalysis.bibliography import read_effects

    root = make_project(tmp_path)
    site = tmp_path / "site"
    out = render(["autonomy"], root=root, site=site, progress=quiet)
    assert out[0].status == "rendered", out[0].message
    effects = read_effects(root / "bibliographies" / "autonomy.bib")
    unclear = effects["data_licence"].fillna("").str.startswith("unclear")
    with (site / "data" / "autonomy.csv").open(encoding="utf-8") as f:
        rows = list(csvlib.DictReader(f))
    assert len(rows) == len(effects) - unclear.sum() and unclear.sum() > 0
    assert not any(r["data_licence"].startswith("unclear") for r in rows)
    summary = json.loads((site / "data" / "autonomy.json").read_text())
    assert summary["withheld_effects"]["n"] == unclear.sum()
    page = (site / "autonomy.html").read_text().replace("&#39;", "'").replace("\u202f", " ")
    assert (f"<p>{unclear.sum()}\u00a0effets n'y figurent pas, faute de licence claire pour "
            "leurs données : la note les analyse et cite leur source.</p>") in page


@pytest.mark.parametrize("theme,model", [("autonomy", "rma"), ("education", "che")])
def test_naming_the_themes_own_model_is_the_published_note_not_a_variant(tmp_path, theme,
                                                                         model):
    """``-p model rma`` on a theme whose model is rma made a variant, labelled "model = rma",
    identical to the published note; as ``-p method REML`` (the default), it is the published
    note, in both languages."""
    from metaanalysis.fingerprints import plan

    site = tmp_path / "site"
    jobs = plan([theme], {"model": model}, site, REPO)
    assert [(j.changed, j.html.relative_to(site).as_posix()) for j in jobs] == [
        ({}, f"{theme}.html"), ({}, f"en/{theme}.html")]
    assert [j.digest for j in jobs] == [j.digest for j in plan([theme], {}, site, REPO)]
    other = "che" if model == "rma" else "rma"
    (variant,) = plan([theme], {"model": other}, site, REPO)
    assert variant.changed == {"model": other}


def test_the_conversion_warm_up_compiles_the_selectors_nbconvert_runs_on_every_page():
    """The render warms up, before forking its workers, what each worker's first conversion
    would do: the CSS selectors nbconvert's HTMLExporter runs on every page (compiled once,
    0.15-0.2 s). They must be nbconvert's own: a new nbconvert changing them is seen here."""
    import inspect

    import soupsieve
    from nbconvert.exporters import html

    from metaanalysis.pages import _EXPORTER_SELECTORS, warm_up_conversion

    source = inspect.getsource(html.HTMLExporter.from_notebook_node)
    assert all(f'"{selector}"' in source for selector in _EXPORTER_SELECTORS)
    assert source.count("soup.select(") == len(_EXPORTER_SELECTORS)
    soupsieve.purge()
    warm_up_conversion()
    cache = soupsieve.css_parser._cached_css_compile.cache_info()
    assert cache.currsize >= len(_EXPORTER_SELECTORS)
