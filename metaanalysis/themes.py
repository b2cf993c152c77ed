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


#: Names a theme cannot take: they are the site's own files and folders.
RESERVED_NAMES = frozenset({"index", "data", "variants", "staging", "site", "static", "assets",
                            "notes", "theme", "themes", "build", "search", "about", "404"})
_SLUG = r"^[a-z][a-z0-9_]{0,40}$"
_LANG_TEXT = {"type": "object", "required": ["fr", "en"],
              "properties": {"fr": {"type": "string", "minLength": 1},
                             "en": {"type": "string", "minLength": 1}},
              "additionalProperties": False}
_RELATIVE = r"^(?!/)(?!.*(^|/)\.\.(/|$))[A-Za-z0-9_./-]+"

#: The JSON Schema of themes.json: one entry per theme, named by its slug.
SCHEMA = {
    "type": "object",
    "propertyNames": {"pattern": _SLUG, "not": {"enum": sorted(RESERVED_NAMES)}},
    "additionalProperties": {
        "type": "object",
        "required": ["title", "summary", "bibliography", "notebook"],
        "additionalProperties": False,
        "properties": {
            "title": _LANG_TEXT, "summary": _LANG_TEXT, "intervention": _LANG_TEXT,
            "bibliography": {"type": "string", "pattern": _RELATIVE + r"\.bib$"},
            "notebook": {"type": "string", "pattern": _RELATIVE + r"\.ipynb$"},
            # a reference as published (the same in every language), or one written per
            # language where it says more than the reference (where the data come from)
            "sources": {"type": "array", "items": {"anyOf": [{"type": "string"}, _LANG_TEXT]}},
            "exclusion_reasons": {"type": "array", "items": {"type": "string", "minLength": 1}},
            # the benchmark of the size words of standardised differences (docs/judgements.md)
            "size_benchmark": {"enum": ["cohen1988", "kraft2020"]},
            "model": {"type": "object", "additionalProperties": False,
                      "properties": {"type": {"enum": ["rma", "che", "multilevel"]},
                                     "cluster": {"type": "string", "minLength": 1},
                                     "rho": {"type": "number", "minimum": -1, "maximum": 1}}},
            "outcomes": {"type": "array", "items": {
                "type": "object", "required": ["outcome", "label"],
                "additionalProperties": False,
                "properties": {
                    "outcome": {"type": "string"},
                    "where": {"type": "object", "additionalProperties": {
                        "type": ["string", "number"]}},
                    "favours": {"enum": ["higher", "lower"]},
                    "label": _LANG_TEXT,
                    "domain": {"type": "string"},
                    "intervention": _LANG_TEXT,
                    "subgroups": {"type": "array", "items": {"type": "string"}},
                    "moderators": {"type": "array", "items": {"type": "string"}},
                }}},
        },
    },
}


class ThemesError(ValueError):
    """themes.json is missing, not JSON, or does not follow its schema; one line per problem."""


def load_themes(root: Path | str = ROOT, *, validate: bool = False) -> dict:
    """The theme list (``themes.json`` at the repository root); with ``validate``, checked
    against :data:`SCHEMA` first (raises :class:`ThemesError`)."""
    path = Path(root) / "themes.json"
    if not validate:
        return json.loads(path.read_text(encoding="utf-8"))
    problems = themes_problems(root)
    if problems:
        raise ThemesError("\n".join(problems))
    return json.loads(path.read_text(encoding="utf-8"))


def themes_problems(root: Path | str = ROOT, schema: bool = True) -> list[str]:
    """Every problem of themes.json, as ``themes.json: THEME.KEY: what is wrong``; without
    ``schema``, all but the JSON Schema check (for bytes that already passed it)."""
    path = Path(root) / "themes.json"
    try:
        themes = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"{path}: no such file: the theme list is needed (see README, How to add a "
                "theme)"]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", 1)
        return [f"themes.json:{line}: not valid JSON ({getattr(exc, 'msg', exc)})"]
    out = []
    errors = []
    if schema:
        from jsonschema import Draft202012Validator

        errors = Draft202012Validator(SCHEMA).iter_errors(themes)
    for err in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) for p in err.absolute_path)
        if not where:  # a theme's name: the problem is that theme's
            where = str(err.instance) if err.validator in ("propertyNames", "not", "pattern") \
                else "(top)"
        out.append(f"themes.json: {where}: {_schema_message(err)}")
    if isinstance(themes, dict):
        for slug, config in themes.items():
            if not isinstance(config, dict):
                continue
            for key in ("bibliography", "notebook"):
                value = config.get(key)
                if isinstance(value, str) and not _inside(Path(root), value):
                    out.append(f"themes.json: {slug}.{key}: {value!r} is outside the project: "
                               f"give a path inside it, e.g. bibliographies/{slug}.bib")
    return out


def problems_by_theme(problems: list[str]) -> dict:
    """The problems of :func:`themes_problems` grouped by theme (None: the whole file)."""
    out: dict = {}
    for p in problems:
        rest = p.split(": ", 1)[1] if p.startswith("themes.json: ") else ""
        slug = rest.split(":", 1)[0].split(".", 1)[0] if rest else None
        out.setdefault(None if slug in (None, "(top)") else slug, []).append(p)
    return out


def _inside(root: Path, relative: str) -> bool:
    try:
        (root / relative).resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _schema_message(err) -> str:
    """A schema error in words a researcher reads, saying what would be right."""
    v = err.validator
    if v == "required":
        return err.message.replace("is a required property", "is missing")
    if v == "additionalProperties":
        return f"{err.message}; allowed keys: {', '.join(sorted(err.schema.get('properties', {})))}"
    if v == "pattern" and err.schema["pattern"].endswith(r"\.bib$"):
        return f"{err.instance!r} is not a path inside the project ending in .bib"
    if v == "pattern" and err.schema["pattern"].endswith(r"\.ipynb$"):
        return f"{err.instance!r} is not a path inside the project ending in .ipynb"
    if v in ("propertyNames", "not", "pattern") and isinstance(err.instance, str):
        if err.instance in RESERVED_NAMES:
            return f"theme name {err.instance!r} is reserved for the site's own files"
        return (f"theme name {err.instance!r}: use lowercase letters, digits and _ "
                "(e.g. housing_first)")
    return err.message


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
    if out.get("exclude"):
        out["exclude"] = normalise_exclude(out["exclude"])
    return out


def check_model_parameters(params: dict, config: dict) -> None:
    """Refuse a ``method`` or ``test`` the note's model would not use (ValueError), so that a
    variant is never labelled with an estimator it was not computed with. The model is the
    ``model`` parameter, else the theme's (themes.json), else rma: rma takes every tau²
    estimator and z or knha; multilevel (three-level) REML or ML, z or knha; che is fitted
    by REML and tests with t and Satterthwaite df (CR2), whatever ``test`` says."""
    model = params.get("model") or config.get("model", {}).get("type", "rma")
    method = str(params.get("method", "REML")).upper()
    test = str(params.get("test", "z")).lower()
    if model == "che":
        if method != "REML":
            raise ValueError(f"method = {method}: this note's model is che (robust variance), "
                             "fitted by REML only; the other tau² estimators are for the "
                             "univariate model (add -p model rma)")
        if test != "z":
            raise ValueError(f"test = {test}: this note's model is che, whose tests are already "
                             "t tests with Satterthwaite degrees of freedom (CR2); test applies "
                             "to the rma and multilevel models")
    elif model == "multilevel" and method not in ("REML", "ML"):
        raise ValueError(f"method = {method}: the three-level model (multilevel) is fitted by "
                         "REML or ML; the other tau² estimators are for the univariate model "
                         "(add -p model rma)")


def normalise_exclude(exclude: str) -> str:
    """The ``exclude`` parameter in one canonical spelling (items stripped, sorted, no
    duplicates), so that two spellings of the same exclusion name the same variant."""
    import re

    items = sorted({re.sub(r"\s*=\s*", "=", x.strip()) for x in exclude.split(",")
                    if x.strip()})
    return ",".join(items)
