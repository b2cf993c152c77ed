"""The theme list and the parameters of a note: light, so that a no-op build starts fast."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The parameters every theme notebook declares, with their defaults and types.
PARAMETERS = {"theme": "", "measure": "", "method": "REML", "test": "z", "outcome": "",
              "exclude": "", "level": 95.0, "lang": "fr", "model": ""}
MODELS = ("", "rma", "che", "multilevel")


def find_root(start: Path | str | None = None) -> Path:
    """The project folder: the nearest folder at or above ``start`` (default: the current
    one) that holds ``themes.json``; the package's own checkout otherwise."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "themes.json").exists():
            return d
    return ROOT


def load_themes(root: Path | str = ROOT) -> dict:
    """The theme list (``themes.json`` at the repository root)."""
    return json.loads((Path(root) / "themes.json").read_text(encoding="utf-8"))


def validate_parameters(params: dict) -> dict:
    """Check values before anything runs; return them with their proper types.

    Raises ValueError with a message naming the parameter and what would be right.
    """
    from .grammar import MEASURES, METHODS, TESTS
    from .text import LANGS

    out = dict(params)
    if "level" in out:
        try:
            out["level"] = float(out["level"])
        except (TypeError, ValueError):
            raise ValueError(f"level = {out['level']!r} is not a number: give e.g. 95") from None
        if not 50 <= out["level"] < 100:
            raise ValueError(f"level = {out['level']:g}: give a confidence level in percent, "
                             "between 50 and 100 (e.g. 95)")
    checks = {"method": (METHODS, str.upper), "test": (TESTS, str.lower),
              "lang": (LANGS, str.lower)}
    for name, (allowed, norm) in checks.items():
        if name in out:
            value = norm(str(out[name]))
            if value not in allowed:
                raise ValueError(f"{name} = {out[name]!r}: use one of {', '.join(allowed)}")
            out[name] = value
    if out.get("measure"):
        m = str(out["measure"]).upper()
        if m not in MEASURES:
            raise ValueError(f"measure = {out['measure']!r}: use one of {', '.join(MEASURES)}")
        out["measure"] = m
    if out.get("model", "") not in MODELS:
        raise ValueError(f"model = {out['model']!r}: use rma (independent effects), che "
                         "(robust variance) or multilevel (three-level), or leave it empty for "
                         "the theme's default")
    for name in ("theme", "outcome", "exclude", "model"):
        if name in out and not isinstance(out[name], str):
            raise ValueError(f"{name} must be text, not {type(out[name]).__name__}")
    return out
