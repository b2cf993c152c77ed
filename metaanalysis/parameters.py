"""A note's parameters: the names and defaults of its notebook's ``parameters`` cell, and
the values a reviewer gives (``-p NAME VALUE``, ``make note PARAMS=...``) checked against
them and converted to their types (:class:`RenderError` when they cannot be)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from .themes import validate_parameters


class RenderError(ValueError):
    """Refused before anything ran (unknown theme, bad parameter)."""


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


#: The notebook parameters a :class:`~metaanalysis.notes.Note` takes.
NOTE_PARAMETERS = ("theme", "measure", "method", "test", "outcome", "exclude", "level", "lang",
                   "model")


def show_value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v) if str(v) != "" else "\"\""
