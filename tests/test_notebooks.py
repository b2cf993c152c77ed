"""Theme notebooks: committed clean, with a parameters cell that declares every parameter."""

import json
import os
from pathlib import Path

import pytest

from metaanalysis.notes import PARAMETERS, load_themes
from metaanalysis.parameters import notebook_parameters

REPO = Path(__file__).resolve().parent.parent
THEMES = load_themes(REPO)


@pytest.mark.parametrize("theme", list(THEMES))
def test_notebook_is_clean_and_parameterized(theme):
    path = REPO / THEMES[theme]["notebook"]
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell["outputs"] and cell["execution_count"] is None, path
    params = notebook_parameters(path)
    assert set(PARAMETERS) <= set(params)
    assert params["theme"] == theme


@pytest.mark.parametrize("theme", list(THEMES))
def test_theme_files_exist(theme):
    c = THEMES[theme]
    assert (REPO / c["bibliography"]).exists() and (REPO / c["notebook"]).exists()
    for lang in ("fr", "en"):
        assert c["title"][lang] and c["summary"][lang]


def test_notebook_outputs_are_stripped_at_commit(tmp_path):
    """make setup installs the nbstripout git filter: a notebook saved with outputs from the
    lab is committed without them (here in a scratch clone, with the filter make installs)."""
    import json
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = Path(__file__).resolve().parent.parent
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    venv = repo / ".venv"
    run = subprocess.run(["make", "-s", "hooks", f"VENV={venv}"], cwd=clone,
                         capture_output=True, text=True)
    assert run.returncode == 0 and "git filter installed" in run.stdout, run.stderr
    nb_path = clone / "notebooks" / "territories.ipynb"
    clean = nb_path.read_text()
    nb = json.loads(clean)
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["x" * 1000]}]
    code["execution_count"] = 7
    nb_path.write_text(json.dumps(nb, indent=1))
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": os.environ["PATH"]}
    subprocess.run(["git", "add", "notebooks/territories.ipynb"], cwd=clone, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "save from the lab"],
                   cwd=clone, check=True, env=env)
    committed = subprocess.run(["git", "show", "HEAD:notebooks/territories.ipynb"], cwd=clone,
                               capture_output=True, text=True, check=True).stdout
    cells = json.loads(committed)["cells"]
    assert all(not c.get("outputs") and not c.get("execution_count") for c in cells
               if c["cell_type"] == "code")
    assert committed == clean  # the file as committed before: no churn


@pytest.mark.parametrize("theme", list(THEMES))
def test_notebook_runs_as_in_jupyterlab(theme):
    """Executed as JupyterLab runs it (nbclient, working directory notebooks/, default
    parameters, PNG on): figures come as image/png and image/svg+xml (VS Code, GitHub and
    nbviewer show them), with a text description; prose comes as Markdown with every value
    filled in; no cell fails."""
    import re

    import nbformat
    from nbclient import NotebookClient

    from metaanalysis.execution import _kernel_name

    path = REPO / THEMES[theme]["notebook"]
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name=_kernel_name(), timeout=300,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [(c, o) for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for _, o in outputs if o.output_type == "error"]
    figures = [o.data for _, o in outputs if "image/svg+xml" in o.get("data", {})]
    # every theme with records has its PRISMA diagram at least (territories has none yet)
    from metaanalysis.bibliography import read_studies
    assert figures or not len(read_studies(REPO / THEMES[theme]["bibliography"])), "no figure"
    for data in figures:
        assert data["image/png"] and data["text/plain"] and "<svg" in data["image/svg+xml"]
        assert "text/html" not in data  # a viewer that sanitizes HTML would show the SVG as text
        assert "object at 0x" not in data["text/plain"]
    prose = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%")]
    assert prose
    unfilled = re.compile(r"\{[a-z_0-9]+\}")
    shown = 0
    for cell in prose:
        for o in cell.outputs:
            text = o.get("data", {}).get("text/markdown")
            assert text is not None, cell.source[:60]
            assert not unfilled.search(text), (cell.source[:60], text)
            shown += bool(text)
    # in the note's default language (French), with its numbers
    assert shown >= len(prose) // 2
    assert any("## " in o.data.get("text/markdown", "") for c in prose for o in c.outputs)


def test_the_labs_settings_name_real_settings_with_valid_values():
    """scripts/jupyterlab-overrides.json (copied by make setup and make lab) sets defaults
    of the installed JupyterLab's own schemas: each plugin and setting exists and each value
    validates (a misspelt one would be ignored without a word): line wrapping, and no "Would
    you like to get notified about official Jupyter news?" over a researcher's notebook."""
    import json
    import sys

    import jsonschema

    overrides = json.loads((REPO / "scripts" / "jupyterlab-overrides.json").read_text())
    schemas = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"
    if not schemas.exists():
        pytest.skip("JupyterLab's schemas are not installed in this environment")
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    for plugin, values in overrides.items():
        package, name = plugin.split(":")
        schema = json.loads((schemas / package / f"{name}.json").read_text())
        for key, value in values.items():
            assert key in schema["properties"], (plugin, key)
            prop = schema["properties"][key]
            if isinstance(value, dict) and isinstance(prop.get("default"), dict):
                value = {**prop["default"], **value}
            jsonschema.validate(value, {**prop, "definitions": schema.get("definitions", {})})
