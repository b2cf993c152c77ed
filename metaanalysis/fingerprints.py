"""What a render has to do: each note's :class:`Job` (a theme, its parameters, where its
files go), the digest of everything the note depends on, and whether the note on disk was
rendered from exactly those inputs (:func:`up_to_date`). Light on purpose: a render with
nothing to do imports this module, never the execution's or the pages' (papermill, nbconvert,
matplotlib)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .parameters import RenderError, coerce_parameters, notebook_parameters, show_value
from .themes import ROOT, check_model_parameters, load_themes


@dataclass
class Job:
    """One note to render: a theme with its parameters and where its files go."""

    theme: str
    params: dict
    changed: dict
    html: Path
    data_dir: Path
    name: str
    stamp: Path
    digest: str = ""
    #: the published note's editions by language (their pages), for the language switch
    alternates: dict = field(default_factory=dict)


@dataclass
class Outcome:
    theme: str
    status: str  # "rendered", "up to date", "failed"
    seconds: float = 0.0
    message: str = ""
    path: str = ""
    profile: dict = field(default_factory=dict)
    #: the note's language ("" when the theme was refused before any job was planned)
    lang: str = ""


#: The site's languages: the first at its root (site/), the others in their folder (site/en/).
SITE_LANGS = ("fr", "en")


def job_lang(job) -> str:
    """The language a job renders its note in."""
    return str(job.params.get("lang", SITE_LANGS[0]))


def edition_folder(site: Path, lang: str) -> Path:
    """Where the published notes in ``lang`` go: ``site/`` for French, ``site/en/``..."""
    return site if lang == SITE_LANGS[0] else site / lang


def _package_digest() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "metaanalysis").glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _notebook_code(path: Path) -> bytes:
    """The notebook without outputs or execution counts: what it does, not what it showed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list)
              else c["source"]) for c in nb["cells"]]
    return json.dumps(cells).encode()


def common_digest(root: Path) -> str:
    """A digest of what every note depends on: the package's code and the templates."""
    h = hashlib.sha256()
    h.update(_package_digest().encode())
    for p in sorted((root / "templates").rglob("*")):
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def fingerprint(root: Path, theme: str, config: dict, params: dict,
                common: str | None = None) -> str:
    """A digest of everything a theme's note depends on; ``common``: :func:`common_digest`
    (computed if not given; a render computes it once for all its notes)."""
    h = hashlib.sha256()
    h.update(_notebook_code(root / config["notebook"]))
    bib = root / config["bibliography"]
    h.update(bib.read_bytes() if bib.exists() else b"")
    h.update(json.dumps(config, sort_keys=True).encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    h.update((common or common_digest(root)).encode())
    return h.hexdigest()


def variant_name(theme: str, changed: dict) -> str:
    """``autonomy--method-DL--exclude-high_rob``: a file name that says what differs."""
    import re

    readable = [f"{k}-{re.sub(r'[^A-Za-z0-9_]+', '_', show_value(v)).strip('_') or 'empty'}"
                for k, v in sorted(changed.items())]
    name = "--".join([theme] + readable)
    exact = all(re.fullmatch(r"[A-Za-z0-9_]+", show_value(v)) for v in changed.values())
    if not exact or len(name) > 120:
        # the readable name lost something (a comma, a space, case ...): a short hash of the
        # effective parameters keeps two different variants apart
        digest = hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode())
        name = f"{name[:100]}--{digest.hexdigest()[:8]}"
    return name


def plan(themes, params: dict, site: Path, root: Path) -> list[Job]:
    """The jobs for the given themes and parameters (validated; raises RenderError)."""
    all_themes = load_themes(root)
    names = list(themes) or list(all_themes)
    unknown = [t for t in names if t not in all_themes]
    if unknown:
        raise RenderError(f"unknown theme(s) {', '.join(unknown)}: themes are "
                          f"{', '.join(all_themes)}")
    jobs = []
    common = common_digest(root)
    for theme in names:
        config = all_themes[theme]
        nb_path = root / config["notebook"]
        defaults = notebook_parameters(nb_path)
        given = coerce_parameters(params, defaults, nb_path)
        if not defaults.get("model") and given.get("model") == config.get("model", {}).get(
                "type", "rma"):  # the theme's own model, named: the published note itself
            del given["model"]
        try:  # a method or test the theme's model would not use: refused, never mislabelled
            check_model_parameters({**defaults, **given}, config)
        except ValueError as exc:
            raise RenderError(f"parameter {exc}") from None
        changed = {k: v for k, v in given.items() if defaults.get(k) != v}
        if changed.get("exclude") or changed.get("outcome"):
            _check_against_data(root, config, changed)
        run_params = {**given, "theme": theme}
        if changed and set(changed) != {"lang"}:
            name = variant_name(theme, changed)
            job = Job(theme, run_params, changed, site / "variants" / f"{name}.html",
                      site / "variants" / "data", name, site / ".build" / f"{name}.json")
            job.digest = fingerprint(root, theme, config, run_params, common)
            jobs.append(job)
            continue
        # the published note: each language's edition (French at the site's root, English in
        # en/), or the one asked for with -p lang
        alternates = {lang: edition_folder(site, lang) / f"{theme}.html" for lang in SITE_LANGS}
        for lang in ([changed["lang"]] if changed else SITE_LANGS):
            folder = edition_folder(site, lang)
            params_lang = {**run_params, "lang": lang}
            job = Job(theme, params_lang, {}, folder / f"{theme}.html", folder / "data", theme,
                      site / ".build" / ("" if lang == SITE_LANGS[0] else lang)
                      / f"{theme}.json", alternates=alternates)
            job.digest = fingerprint(root, theme, config, params_lang, common)
            jobs.append(job)
    return jobs


def _check_against_data(root: Path, config: dict, changed: dict) -> None:
    """``outcome`` and ``exclude`` name things in the bibliography: check them before running."""
    from .bibliography import BibliographyError, read_effects
    from .notes import apply_exclusions

    try:
        effects = read_effects(root / config["bibliography"])
    except BibliographyError:
        return  # reported with the theme's failure
    try:
        if changed.get("exclude"):
            apply_exclusions(effects, changed["exclude"])
    except ValueError as exc:
        raise RenderError(f"parameter {exc}") from None
    outcome = changed.get("outcome")
    if outcome:
        known = {o["outcome"] for o in config.get("outcomes", [])}
        known |= {o["label"][lang] for o in config.get("outcomes", []) for lang in o["label"]}
        known |= set(effects.get("outcome", []))
        if outcome not in known:
            raise RenderError(f"parameter outcome = {outcome!r} is not in the bibliography; "
                              f"outcomes are: {', '.join(sorted(set(effects['outcome'])))}")


def up_to_date(job: Job) -> bool:
    try:
        return job.html.exists() and json.loads(job.stamp.read_text())["digest"] == job.digest
    except (OSError, ValueError, KeyError):
        return False


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
