"""Build the theme bibliographies from the real datasets in ../shared/data.

    python scripts/build_bibliographies.py [--data ../shared/data] [THEME ...]

Each entry is one study; every value comes from a named row of a source CSV (written into
each effect's ``source``), and each entry's ``note`` names the review the data come from.
Nothing is invented: where a dataset gives only a first author and a year, the entry has no
title, journal or DOI, and its note says so. The .bib files are committed; researchers edit
them by hand afterwards, so this script is for rebuilding from scratch, not for every change.

Text put inside an ``effects`` annotation cannot hold the grammar's separators, so in
effect-level values ``;`` becomes ``,`` and ``|`` becomes ``/``; study-level values are
written as they are, with unbalanced braces replaced by parentheses.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import OrderedDict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACHMANN = ("Bachmann, S., Finger, C., Huss, A., Egger, M., Stuck, A. E., & Clough-Gorr, K. M. "
            "(2010). Inpatient rehabilitation specifically designed for geriatric patients: "
            "systematic review and meta-analysis of randomised controlled trials. BMJ, 340, "
            "c1718. doi:10.1136/bmj.c1718")


def read_csv(data: Path, name: str) -> list[dict]:
    with open(data / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def study_text(value: str) -> str:
    value = " ".join(str(value).split())
    return value if value.count("{") == value.count("}") else value.replace("{", "(").replace(
        "}", ")")


def effect_text(value: str) -> str:
    return study_text(value).replace(";", ",").replace("|", "/").replace("=", ":")


def key_for(author: str, year: str, used: set) -> str:
    base = re.sub(r"[^a-z0-9]", "", author.lower().split(",")[0].split(" et al")[0]) or "study"
    key = f"{base}{year}"
    suffix = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while key in used:
        key = f"{base}{year}{suffix[i]}"
        i += 1
    used.add(key)
    return key


def format_entry(kind: str, key: str, fields: list[tuple[str, str]], effects: list[str]) -> str:
    lines = [f"@{kind}{{{key},"]
    for name, value in fields:
        if value not in (None, ""):
            lines.append(f"  {name} = {{{value}}},")
    if effects:
        lines.append("  effects = {")
        lines += [f"    {e}" for e in effects]
        lines.append("  },")
    lines.append("}")
    return "\n".join(lines)


def effect(**pairs) -> str:
    return "; ".join(f"{k} = {v}" for k, v in pairs.items() if v not in (None, ""))


# ------------------------------------------------------------------------------ autonomy
def autonomy(data: Path) -> str:
    """Geriatric inpatient rehabilitation (Bachmann et al., 2010)."""
    name = "bachmann2010_geriatric_inpatient_rehabilitation.csv"
    rows = read_csv(data, name)
    studies: OrderedDict = OrderedDict()
    for i, r in enumerate(rows, start=1):
        studies.setdefault((r["author"], r["year"]), []).append((i, r))
    out, used = [_header("autonomy")], set()
    for (author, year), items in studies.items():
        first = items[0][1]
        effects = []
        for i, r in items:
            src = f"{name} row {i}"
            label = {"function": "functional improvement", "admission":
                     "nursing home admission", "mortality": "mortality"}[r["outcome"]]
            if r["or"]:
                effects.append(effect(outcome=label, measure="OR", estimate=r["or"],
                                      ci_lb=r["lb"], ci_ub=r["ub"], timepoint=r["time"],
                                      source=src))
            elif r["ai"]:
                effects.append(effect(outcome=label, measure="RR", ai=r["ai"], n1i=r["n1i"],
                                      ci=r["ci"], n2i=r["n2i"], timepoint=r["time"],
                                      source=src))
        fields = [
            ("author", author), ("year", year),
            ("note", f"First author and year only, as given in the data of {BACHMANN} "
                     "(metadat dat.bachmann2010); the dataset gives no title, journal or DOI."),
            ("screening", "included" if effects else "excluded: no outcome data in the dataset"),
            ("design", "RCT"), ("intervention", "geriatric inpatient rehabilitation"),
            ("country", first["country"]), ("rehabtype", first["rehabtype"]),
            ("mean_age", first["mage"]), ("n_intervention", first["nti"]),
            ("n_control", first["nci"]), ("stay_before_days", first["lohs1"]),
            ("stay_after_days", first["lohs2"]), ("multidimensional_assessment",
                                                  first["multidim"]),
            ("assignment_to_therapy", first["assign"]), ("team_meetings", first["meetings"]),
            ("followup_after_discharge", first["fup"]),
            ("rob_allocation_concealed", first["conc"]),
            ("rob_assessor_blinded", first["blind"]), ("rob_intention_to_treat", first["itt"]),
        ]
        out.append(format_entry("misc", key_for(author, year, used), fields, effects))
    return "\n\n".join(out) + "\n"


def _header(theme: str) -> str:
    return (f"% Bibliography of the theme '{theme}', built by scripts/build_bibliographies.py "
            "from the datasets\n% in ../shared/data (see its README.md for provenance and "
            "licences). Edit by hand from here on.")


BUILDERS = {"autonomy": autonomy}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("themes", nargs="*", default=list(BUILDERS), metavar="THEME")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "bibliographies")
    args = ap.parse_args(argv)
    for theme in args.themes:
        if theme not in BUILDERS:
            print(f"unknown theme {theme}: {', '.join(BUILDERS)}", file=sys.stderr)
            return 2
        path = args.out / f"{theme}.bib"
        path.write_text(BUILDERS[theme](args.data), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
