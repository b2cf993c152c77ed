"""Theme notebooks: committed clean, with a parameters cell that declares every parameter."""

import json
from pathlib import Path

import pytest

from metaanalysis.notes import PARAMETERS, load_themes
from metaanalysis.render import notebook_parameters

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
