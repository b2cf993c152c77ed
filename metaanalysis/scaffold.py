"""A new theme scaffolded: its bibliography, its notebook from the template, its entry in
``themes.json`` (``metaanalysis new-theme``)."""

from __future__ import annotations

import json
from pathlib import Path

from .fingerprints import write_atomic
from .parameters import RenderError
from .themes import ROOT, load_themes


def new_theme(slug: str, root: Path | str = ROOT, title: dict | None = None) -> list[Path]:
    """Scaffold a theme: its bibliography, its notebook from the template, its theme entry.

    ``title`` maps ``fr`` and ``en`` to the theme's title (default: the name, e.g.
    "Housing first"); the summary says, truthfully, that the review is under way and has no
    study yet, so the note renders at once as an honest "no studies yet" note. ``themes.json``
    is rewritten atomically after a copy of it is kept in ``themes.json.bak``. Refuses an
    invalid slug or one that exists; writes nothing then.
    """
    import re
    import shutil

    from .themes import RESERVED_NAMES

    root = Path(root)
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,40}", slug):
        raise RenderError(f"theme name {slug!r}: use lowercase letters, digits and _ "
                          "(e.g. housing_first)")
    if slug in RESERVED_NAMES:
        raise RenderError(f"theme name {slug!r} is reserved for the site's own files "
                          f"({', '.join(sorted(RESERVED_NAMES))}): choose another")
    themes = load_themes(root)
    bib = root / "bibliographies" / f"{slug}.bib"
    nb = root / "notebooks" / f"{slug}.ipynb"
    if slug in themes or bib.exists() or nb.exists():
        raise RenderError(f"theme {slug!r} already exists")
    name = slug.replace("_", " ").capitalize()
    title = {"fr": name, "en": name, **{k: v for k, v in (title or {}).items() if v}}
    template = (root / "templates" / "theme.ipynb").read_text(encoding="utf-8")
    bib.parent.mkdir(parents=True, exist_ok=True)
    nb.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(bib, f"% Bibliography of the theme '{slug}': one entry per study, annotated as in "
                 "docs/annotations.md.\n@comment{Studies of the theme, added as they are "
                 "screened: metaanalysis import, dedup and screen (README).}\n")
    write_atomic(nb, template.replace('theme = \\"THEME\\"', f'theme = \\"{slug}\\"'))
    themes[slug] = {
        "title": title,
        # true whatever the review's stage (the key messages say whether anything has been
        # analysed yet): the researcher writes the theme's question here
        "summary": {"fr": "Ce que montrent les études.", "en": "What the studies show."},
        "intervention": {"fr": title["fr"], "en": title["en"]},
        "bibliography": f"bibliographies/{slug}.bib", "notebook": f"notebooks/{slug}.ipynb",
        "sources": [], "outcomes": [],
    }
    shutil.copy2(root / "themes.json", root / "themes.json.bak")
    write_atomic(root / "themes.json", json.dumps(themes, indent=2, ensure_ascii=False) + "\n")
    return [bib, nb, root / "themes.json"]
