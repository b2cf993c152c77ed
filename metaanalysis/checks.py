"""Checks that need the theme as well as the bibliography: does every included study reach
an outcome of the note, and does every study have the characteristics the note uses?

``metaanalysis check`` runs them when it knows the theme (``--theme``, or the theme whose
``bibliography`` in themes.json is the file checked). They are warnings: the bibliography is
valid, but a study would silently feed nothing, or fall in a "not reported" subgroup.
"""

from __future__ import annotations

from pathlib import Path

from .bibliography import Bibliography, Problem, read_effects, where_mask


def theme_for(path: str | Path, themes: dict, root: Path) -> str | None:
    """The theme whose bibliography is ``path``, if any."""
    target = Path(path).resolve()
    for slug, config in themes.items():
        bib = config.get("bibliography") if isinstance(config, dict) else None
        if isinstance(bib, str) and (root / bib).resolve() == target:
            return slug
    return None


def theme_problems(bib: Bibliography, slug: str, config: dict) -> list[Problem]:
    """Warnings for included studies that feed none of the theme's outcomes, filters on a
    column no study has, and characteristics the theme uses (``where``, ``subgroups``,
    ``moderators``) missing for studies of that outcome. Empty if the file has errors (they
    come first) or the theme declares no outcomes."""
    outcomes = config.get("outcomes") or []
    if bib.errors or not outcomes or not bib.included:
        return []
    effects = read_effects(bib)
    lines = {e.key: e.line for e in bib.entries}
    out: list[Problem] = []
    used: set = set()
    for target in outcomes:
        name = target.get("outcome", "")
        where = target.get("where") or {}
        absent = [c for c in where if c not in effects.columns]
        if absent:
            out.append(Problem(bib.path, 1, "-", f"theme {slug}, outcome {name!r}: the filter "
                               f"uses {', '.join(absent)}, which no included study has; the "
                               "outcome gets no effect", "warning"))
            continue
        rows = effects[(effects["outcome"] == name) & where_mask(effects, where)]
        used |= set(rows["key"])
        for col in list(target.get("subgroups") or []) + list(target.get("moderators") or []):
            have = rows[col] if col in rows.columns else None
            for key in sorted(set(rows["key"])):
                values = have[rows["key"] == key] if have is not None else []
                if have is None or all(_missing(v) for v in values):
                    out.append(Problem(bib.path, lines[key], key, f"{col} is missing: the "
                                       f"theme {slug} uses it for {name!r}, so this study "
                                       "shows as \"not reported\"; add "
                                       f"{col} = {{...}}", "warning"))
    for e in bib.included:
        if e.effects and e.key not in used:
            names = sorted({f.outcome for f in e.effects})
            out.append(Problem(bib.path, e.line, e.key, f"included study feeds none of theme "
                               f"{slug}'s outcomes (its effects: {', '.join(names)}): check "
                               "the outcome names and the filters in themes.json", "warning"))
    return out


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v) or (isinstance(v, str)
                                                              and not v.strip())
