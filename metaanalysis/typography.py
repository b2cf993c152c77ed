"""French typography for the notes' pages: a narrow no-break space (U+202F) before ``; : ! ?``
and ``»`` and after ``«`` (Lexique des règles typographiques en usage à l'Imprimerie
nationale), so that a line never starts with a colon or a closing guillemet.

Applied to the text of a French page only: never inside tags (attributes), ``<style>``,
``<script>``, ``<svg>`` (the figures are laid out already), ``<pre>`` or ``<code>``.
"""

from __future__ import annotations

import re

_TAG = re.compile(r"(<[^>]*>)")
_NAME = re.compile(r"^</?\s*([a-zA-Z][a-zA-Z0-9-]*)")
_SKIP = {"style", "script", "svg", "pre", "code", "textarea"}
_SPACE = r"(?: |\u00a0|\u202f|&nbsp;|&#160;|&#xa0;)"
_BEFORE = re.compile(_SPACE + r"([;:!?»])")
_AFTER = re.compile(r"«" + _SPACE)
NNBSP = "\u202f"


def french_text(text: str) -> str:
    """One run of text with the narrow no-break spaces."""
    text = _BEFORE.sub(lambda m: NNBSP + m.group(1), text)
    return _AFTER.sub("«" + NNBSP, text)


def french_spacing(page: str) -> str:
    """A whole HTML page with :func:`french_text` applied to its text outside the skipped
    elements; tags and everything inside ``style``, ``script``, ``svg``, ``pre`` and
    ``code`` are left byte for byte."""
    out, depth = [], {name: 0 for name in _SKIP}
    for part in _TAG.split(page):
        if part.startswith("<"):
            m = _NAME.match(part)
            if m:
                name = m.group(1).lower()
                if name in _SKIP and not part.endswith("/>"):
                    depth[name] += -1 if part.startswith("</") else 1
                    depth[name] = max(depth[name], 0)
            out.append(part)
        elif any(depth.values()):
            out.append(part)
        else:
            out.append(french_text(part))
    return "".join(out)
