"""Are two renders of the site the same notes? For work that must not change a number (speed,
refactoring): ``python scripts/compare_sites.py OLD_SITE NEW_SITE``.

Byte-identical files are the same. Otherwise a file is the same note when everything a reader
sees is identical and only what no one can see moved, within a tolerance:

- HTML: every character is identical except the numbers inside an SVG element's markup
  (coordinates, sizes, transforms: ``d="M 302.83533 809.321492"``), which may differ by at
  most ``--px`` (default 1e-3 px). Text a figure shows (its ``<text>`` content) and
  everything outside the figures compare exactly. A text's rotation by 0 degrees
  (``transform="rotate(-0 x y)"``, which matplotlib writes and the notes drop since
  session 9) is no transform: it is set aside on both sides; any other rotation counts.
- JSON (open data): the same structure, the same strings, integers and booleans; floats equal
  to ``--rel`` (default 1e-6 relative, 1e-12 absolute near 0).
- CSV (open data): the same cells; a cell holding a full-precision float in both files (7
  digits after the point or more, or an exponent) compares as in JSON, any other as text.
- PDF: printed by Chromium from the page compared above; the same once the creation and
  modification dates are set aside, else reported (not a difference on its own: the page it
  is printed from is what is compared).
- Any other file: byte for byte. The render's own records (``.build/``) are skipped.

Prints one line per file that is not byte-identical and a verdict; exits 0 when every note is
the same (to the tolerances), 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
from pathlib import Path

#: A number as matplotlib writes it in SVG markup.
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
#: An SVG element, from its opening to its closing tag (figures are not nested).
SVG = re.compile(r"<svg\b.*?</svg>", re.S)
#: A tag's markup (where coordinates live), not the text between tags.
TAG = re.compile(r"<[^>]*>")
#: A text's rotation by 0 degrees about a point: no transform (see the module docstring).
IDENTITY_ROTATION = re.compile(
    r'(<text\b[^>]*?) transform="rotate\(-?0 -?[\d.]+(?:e[-+]?\d+)? -?[\d.]+(?:e[-+]?\d+)?\)"')
#: What differs between two prints of the same page.
PDF_DATES = re.compile(rb"/(?:CreationDate|ModDate) \([^)]*\)")


def _tagged_numbers(svg: str) -> tuple[list[str], list[float]]:
    """The SVG with each number of its tags' markup replaced by a mark, and those numbers."""
    numbers: list[float] = []
    parts: list[str] = []
    last = 0
    for tag in TAG.finditer(svg):
        parts.append(svg[last:tag.start()])
        markup = tag.group()
        numbers += [float(n) for n in NUMBER.findall(markup)]
        parts.append(NUMBER.sub("\0", markup))
        last = tag.end()
    parts.append(svg[last:])
    return parts, numbers


def compare_html(old: str, new: str, px: float) -> tuple[bool, str]:
    """(same, what differs): see the module docstring."""
    if old == new:
        return True, ""
    old_rest, new_rest = SVG.split(old), SVG.split(new)
    if old_rest != new_rest:
        return False, "the page's text or markup outside its figures differs" + _first(
            "".join(old_rest), "".join(new_rest))
    worst, moved = 0.0, 0
    old_svg, new_svg = SVG.findall(old), SVG.findall(new)
    if len(old_svg) != len(new_svg):
        return False, f"{len(old_svg)} figures against {len(new_svg)}"
    for n, (a, b) in enumerate(zip(old_svg, new_svg), start=1):
        a, b = IDENTITY_ROTATION.sub(r"\1", a), IDENTITY_ROTATION.sub(r"\1", b)
        (a_parts, a_num), (b_parts, b_num) = _tagged_numbers(a), _tagged_numbers(b)
        if a_parts != b_parts or len(a_num) != len(b_num):
            return False, f"figure {n}: its text or elements differ" + _first(
                "".join(a_parts), "".join(b_parts))
        for x, y in zip(a_num, b_num):
            if x != y:
                moved += 1
                worst = max(worst, abs(x - y))
    if worst > px:
        return False, f"{moved} figure coordinates moved, the largest by {worst:.3g} px " \
                      f"(tolerance {px:g})"
    return True, f"{moved} figure coordinates moved, at most {worst:.3g} px; text identical"


def _close(a: float, b: float, rel: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return a == b or abs(a - b) <= max(rel * max(abs(a), abs(b)), 1e-12)


def compare_json(old, new, rel: float, where: str = "") -> tuple[bool, str, int]:
    """(same, first difference, floats that moved)."""
    if isinstance(old, float) and isinstance(new, float):
        return (_close(old, new, rel), f"{where or 'value'}: {old!r} against {new!r}",
                int(old != new and not (math.isnan(old) and math.isnan(new))))
    if type(old) is not type(new):
        return False, f"{where or 'value'}: {old!r} against {new!r}", 0
    if isinstance(old, dict):
        if list(old) != list(new):
            return False, f"{where or 'object'}: keys {list(old)} against {list(new)}", 0
        items = [(old[k], new[k], f"{where}.{k}" if where else str(k)) for k in old]
    elif isinstance(old, list):
        if len(old) != len(new):
            return False, f"{where or 'list'}: {len(old)} items against {len(new)}", 0
        items = [(a, b, f"{where}[{i}]") for i, (a, b) in enumerate(zip(old, new))]
    else:
        return old == new, f"{where or 'value'}: {old!r} against {new!r}", 0
    moved = 0
    for a, b, w in items:
        same, what, m = compare_json(a, b, rel, w)
        if not same:
            return False, what, moved
        moved += m
    return True, "", moved


#: A float written at full precision (a computed number), not a code or a rounded value:
#: at least 7 digits after the point, or an exponent.
FULL_FLOAT = re.compile(r"-?\d+\.\d{7,}(?:e[-+]?\d+)?|-?\d+(?:\.\d+)?e[-+]?\d+", re.I)


def _float(cell: str):
    """The cell's value if it is a full-precision float, else None (compared as text: a code
    such as ``1.10`` is not the number 1.1, and a rounded value must not move)."""
    return float(cell) if FULL_FLOAT.fullmatch(cell) else None


def compare_csv(old: str, new: str, rel: float) -> tuple[bool, str, int]:
    a, b = list(csv.reader(io.StringIO(old))), list(csv.reader(io.StringIO(new)))
    if len(a) != len(b):
        return False, f"{len(a)} rows against {len(b)}", 0
    moved = 0
    for r, (ra, rb) in enumerate(zip(a, b), start=1):
        if len(ra) != len(rb):
            return False, f"row {r}: {len(ra)} cells against {len(rb)}", moved
        for c, (x, y) in enumerate(zip(ra, rb), start=1):
            if x == y:
                continue
            fx, fy = _float(x), _float(y)
            if fx is None or fy is None or not _close(fx, fy, rel):
                return False, f"row {r}, column {c}: {x!r} against {y!r}", moved
            moved += 1
    return True, "", moved


def _first(a: str, b: str) -> str:
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f" (first at character {n}: {a[max(0, n - 40):n + 40]!r} against " \
           f"{b[max(0, n - 40):n + 40]!r})"


def compare_sites(old: Path, new: Path, px: float = 1e-3, rel: float = 1e-6):
    """Yields (relative path, verdict, detail) for every file that is not byte-identical;
    verdict is "same", "different", "missing" or "pdf"."""
    def files(root):
        return {p.relative_to(root) for p in root.rglob("*")
                if p.is_file() and ".build" not in p.relative_to(root).parts}

    a, b = files(old), files(new)
    for rel_path in sorted(a ^ b):
        yield rel_path, "missing", f"only in {old if rel_path in a else new}"
    for rel_path in sorted(a & b):
        x, y = (old / rel_path).read_bytes(), (new / rel_path).read_bytes()
        if x == y:
            continue
        suffix = rel_path.suffix.lower()
        if suffix == ".pdf":
            if PDF_DATES.sub(b"", x) == PDF_DATES.sub(b"", y):
                continue
            yield rel_path, "pdf", "printed differently (its page is compared above)"
        elif suffix in (".html", ".svg"):
            same, what = compare_html(x.decode(), y.decode(), px)
            yield rel_path, "same" if same else "different", what
        elif suffix == ".json":
            same, what, moved = compare_json(json.loads(x), json.loads(y), rel)
            yield rel_path, "same" if same else "different", \
                f"{moved} numbers moved, within {rel:g}" if same else what
        elif suffix == ".csv":
            same, what, moved = compare_csv(x.decode(), y.decode(), rel)
            yield rel_path, "same" if same else "different", \
                f"{moved} numbers moved, within {rel:g}" if same else what
        else:
            yield rel_path, "different", "bytes differ" + _first(
                x.decode(errors="replace"), y.decode(errors="replace"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the site rendered before (e.g. a copy of site/)")
    parser.add_argument("new", type=Path, help="the site rendered after (e.g. site/)")
    parser.add_argument("--px", type=float, default=1e-3,
                        help="largest move of a figure coordinate, in px (default 1e-3)")
    parser.add_argument("--rel", type=float, default=1e-6,
                        help="largest relative change of an open-data float (default 1e-6)")
    args = parser.parse_args(argv)
    for site in (args.old, args.new):
        if not site.is_dir():
            print(f"{site}: not a folder (give two rendered sites, e.g. site/ and a copy)",
                  file=sys.stderr)
            return 2
    bad = 0
    for path, verdict, detail in compare_sites(args.old, args.new, args.px, args.rel):
        bad += verdict in ("different", "missing")
        print(f"{path}: {verdict}" + (f": {detail}" if detail else ""))
    print("the same notes" if not bad else f"{bad} file(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
