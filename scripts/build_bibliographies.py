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
    for (author, year), items in studies.items():  # geriatric inpatient rehabilitation
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
            ("review", "bachmann2010"),
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
    out += fear_of_falling(data, used)
    return "\n\n".join(out) + "\n"


# ------------------------------------------------------------------------------ helpers
def fmt_num(value: str) -> str:
    """A number as the CSV wrote it, without a trailing .0 on whole numbers."""
    if value in ("", None):
        return ""
    f = float(value)
    return str(int(f)) if f.is_integer() and "e" not in value.lower() else value


def author_field(short: str) -> str:
    """'Acarturk et al.' -> 'Acarturk and others'; 'A & B' -> 'A and B' (BibTeX names). A
    surname of several words is braced (``{Al Otaiba}``, ``{Van de Rijt}``): BibTeX reads an
    unbraced ``Al Otaiba`` as first name Al, surname Otaiba."""
    short = re.sub(r"\s*\(\d{4}[a-z]?\)\s*$", "", short).strip()
    others = short.endswith("et al.") or short.endswith("et al")
    if others:
        short = short.rsplit("et al", 1)[0].strip().rstrip(",")
    names = [p.strip() for p in re.split(r"\s*(?:&|\band\b)\s*", short) if p.strip()]
    names = [f"{{{n}}}" if len(n.split()) > 1 and "," not in n else n for n in names]
    return " and ".join(names + (["others"] if others else []))


def constant_within(rows: list[dict], column: str) -> bool:
    return len({r[column] for r in rows}) == 1


def group_rows(rows: list[dict], key) -> OrderedDict:
    out: OrderedDict = OrderedDict()
    for i, r in enumerate(rows, start=1):
        out.setdefault(key(r), []).append((i, r))
    return out


def one_spelling(rows: list[dict], columns) -> None:
    """Write each value of ``columns`` as the dataset's most frequent spelling among those
    equal but for case (subgroups are formed by exact values: 'Classroom/teacher' in one row
    and 'Classroom/Teacher' in four would be two levels). Rows are changed in place, and
    each row's ``_respelled`` says what was rewritten (:func:`respelled_note`)."""
    changed: dict[int, list[str]] = {}
    for col in columns:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r[col]] = counts.get(r[col], 0) + 1
        best: dict[str, str] = {}
        for value in sorted(counts, key=lambda v: (-counts[v], v)):
            best.setdefault(value.casefold(), value)
        for i, r in enumerate(rows):
            spelling = best[r[col].casefold()]
            if spelling != r[col]:
                changed.setdefault(i, []).append(f"{col} '{r[col]}' in the dataset is written "
                                                 f"'{spelling}', as in its other rows")
                r[col] = spelling
    for i, r in enumerate(rows):
        r["_respelled"] = "; ".join(changed.get(i, []))


def respelled_note(rs: list[dict]) -> str:
    """What :func:`one_spelling` rewrote in a study's rows, for its entry's note."""
    return "".join(sorted({f" {study_text(r['_respelled'])}." for r in rs if r["_respelled"]}))


# ------------------------------------------------------------------------------ fear of falling
COCHRANE = ("Cochrane review CD014666.pub2 (doi:10.1002/14651858.CD014666.pub2), cognitive "
            "behavioural interventions for reducing fear of falling in older people living in "
            "the community, as extracted in the Pairwise70 package (dataset CD014666_pub2_data)")


def fear_of_falling(data: Path, used: set) -> list[str]:
    """Trials of CBT against fear of falling (Cochrane CD014666), one entry per trial."""
    name = "cochrane_cd014666_fear_of_falling_cbt_older_people.csv"
    studies = group_rows(read_csv(data, name), lambda r: r["Study"])
    out = []
    for study, items in studies.items():
        first = items[0][1]
        author, _, year = study.rpartition(" ")
        effects = []
        for i, r in items:
            common = dict(analysis=f"{r['Analysis.group']}.{r['Analysis.number']}",
                          subgroup=effect_text(r["Subgroup"]),
                          source=f"{name} row {i}")
            outcome = effect_text(r["Analysis.name"].split(":")[0].strip().lower())
            if r["effect_measure"] == "RR":
                effects.append(effect(outcome=outcome, measure="RR",
                                      ai=fmt_num(r["Experimental.cases"]),
                                      n1i=fmt_num(r["Experimental.N"]),
                                      ci=fmt_num(r["Control.cases"]),
                                      n2i=fmt_num(r["Control.N"]), **common))
            else:
                effects.append(effect(outcome=outcome, measure=r["effect_measure"],
                                      m1i=r["Experimental.mean"], sd1i=r["Experimental.SD"],
                                      n1i=fmt_num(r["Experimental.N"]), m2i=r["Control.mean"],
                                      sd2i=r["Control.SD"], n2i=fmt_num(r["Control.N"]),
                                      **common))
        fields = [
            ("author", author), ("year", first["Study.year"] or year.rstrip("abc")),
            ("note", f"First author and year only ({study}), as given in the data of the "
                     f"{COCHRANE}; title, journal and DOI are not in the dataset. The review's "
                     "authors and year were not checked: resolve its DOI before citing it."),
            ("screening", "included"), ("design", "RCT"),
            ("intervention", "cognitive behavioural programme against fear of falling"),
            ("review", "cochrane_cd014666"),
            ("data_licence", "unclear: Cochrane review data (see ../shared/data/README.md)"),
        ]
        out.append(format_entry("misc", key_for(study.replace(" ", ""), "", used), fields,
                                effects))
    return out


# ------------------------------------------------------------------------------ employment
DALGAARD = ("Dalgaard, N. T., Jensen, J. K., Adada, J. S., Flensborg Jensen, M. C., Bengtsen, E., "
            "& Vembye, M. H. (2025). Group-based community interventions to support the social "
            "reintegration of marginalized adults with mental illness: a systematic review and "
            "meta-analysis. Campbell Systematic Reviews (analysis data of the authors' "
            "repository MikkelVembye/Group-based-interventions, Data/gb_dat.rds)")


def employment(data: Path) -> str:
    """Group-based community interventions for marginalised adults (Dalgaard et al., 2025)."""
    name = "dalgaard2025_group_based_social_reintegration.csv"
    rows = read_csv(data, name)
    one_spelling(rows, ("cnt", "design", "trt_type", "control", "analysis_plan",
                        "outcome_measure"))
    studies = group_rows(rows, lambda r: r["studyid"])
    out, used = [_header("employment")], set()
    study_cols = {"cnt": "country", "design": "design", "trt_name": "intervention",
                  "trt_type": "intervention_type", "control": "control",
                  "overall_rob": "risk_of_bias", "main_es_method": "es_method",
                  "unemployed": "unemployed", "homeless": "homeless",
                  "substance_abuse": "substance_abuse"}
    for sid, items in studies.items():
        rs = [r for _, r in items]
        first = rs[0]
        fields = [("author", author_field(first["authors"])), ("year", first["year"]),
                  ("note", f"Citation label only ({first['authors']} {first['year']}), as given "
                           f"in the data of {DALGAARD}; title, journal and DOI are not in the "
                           "dataset." + respelled_note(rs)),
                  ("screening", "included"), ("study_id", sid)]
        per_effect = []
        for col, field in study_cols.items():
            if constant_within(rs, col):
                value = first[col]
                if field == "risk_of_bias":
                    value = value.split("/")[-1].lower() if value else value
                fields.append((field, study_text(value)))
            else:
                per_effect.append((col, field))
        if not constant_within(rs, "authors") or not constant_within(rs, "year"):
            per_effect.append(("authors", "report"))
        effects = []
        for i, r in items:
            extra = {field: effect_text(r[col]) for col, field in per_effect}
            if "risk_of_bias" in extra:
                extra["risk_of_bias"] = extra["risk_of_bias"].split("/")[-1].lower()
            effects.append(effect(
                outcome={"Reintegrational outcome": "social reintegration",
                         "Mental health outcome": "mental health"}[r["outcome_construct"]],
                measure="SMD", yi=r["gt"], vi=r["vgt"], id=r["esid"],
                domain=effect_text(r["analysis_plan"]),
                instrument=effect_text(r["outcome_measure"]),
                weeks_from_baseline=fmt_num(r["time_from_baseline_weeks"]),
                weeks_after_end=fmt_num(r["time_after_end_intervention_weeks"]),
                n_treatment=fmt_num(r["N_t"]), n_control=fmt_num(r["N_c"]), **extra,
                source=f"{name} row {i}"))
        out.append(format_entry("misc", key_for(first["authors"], first["year"], used), fields,
                                effects))
    return "\n\n".join(out) + "\n"


# ------------------------------------------------------------------------------ education
DIETRICHSON = ("Dietrichson, J., Filges, T., Seerup, J. K., Klokker, R. H., Viinholt, B. C. A., "
               "Bøg, M., & Eiberg, M. (2021). Targeted school-based interventions for improving "
               "reading and mathematics for students with or at risk of academic difficulties in "
               "Grades K-6: a systematic review. Campbell Systematic Reviews, 17(2), e1152. "
               "doi:10.1002/cl2.1152 (data: VIVECampbell package, Dietrichson2021_data)")


def education(data: Path) -> str:
    """Targeted school interventions, grades K-6 (Dietrichson et al., 2021)."""
    name = "dietrichson2021_targeted_school_interventions_k6.csv"
    rows = read_csv(data, name)
    one_spelling(rows, ("Level_treatment_assignment", "Estimation_method", "RCT_QES",
                        "Country", "Language"))
    studies = group_rows(rows, lambda r: r["Study_ID"])
    out, used = [_header("education")], set()
    for sid, items in studies.items():
        rs = [r for _, r in items]
        first = rs[0]
        reports = list(OrderedDict.fromkeys((r["Authors"], r["Year"], r["Title"], r["Outlet"])
                                            for r in rs))
        other = "; ".join(f"{a}, {t}, {o}" for a, _, t, o in reports[1:])
        fields = [("author", author_field(first["Authors"])), ("year", first["Year"]),
                  ("title", study_text(first["Title"])),
                  ("howpublished" if first["Outlet"] == "Dissertation" else "journal",
                   study_text(first["Outlet"])),
                  ("note", f"Study cluster {sid} in the data of {DIETRICHSON}. Authors as the "
                           "short form given there; no DOI in the dataset."
                           + (f" Also reported as: {study_text(other)}." if other else "")
                           + respelled_note(rs)),
                  ("screening", "included"), ("study_id", sid),
                  ("country", study_text(first["Country"])),
                  ("language", study_text(first["Language"])),
                  ("published_in_journal", {"1": "yes", "0": "no"}.get(
                      first["Publishing_status"], first["Publishing_status"])),
                  ("design", first["RCT_QES"])]
        per_effect = [("Level_treatment_assignment", "assignment_level"),
                      ("Estimation_method", "estimation_method")]
        for col, field in list(per_effect):
            if constant_within(rs, col):
                fields.append((field, study_text(first[col])))
                per_effect.remove((col, field))
        effects = []
        for i, r in items:
            extra = {field: effect_text(r[col]) for col, field in per_effect}
            if len(reports) > 1:
                extra["report"] = effect_text(r["Authors"])
            effects.append(effect(
                outcome={"Reading": "reading", "Math": "mathematics",
                         "Composite": "composite"}[r["Test_subject"]],
                measure="SMD", yi=r["Effectsize_g"], sei=r["SE_g"],
                n_treatment=fmt_num(r["N_treatment"]), n_control=fmt_num(r["N_control"]),
                grade=fmt_num(r["Grade_mean"]), **extra, source=f"{name} row {i}"))
        out.append(format_entry("misc" if first["Outlet"] == "Dissertation" else "article",
                                key_for(first["Authors"].split(" (")[0], first["Year"], used),
                                fields, effects))
    return "\n\n".join(out) + "\n"


# ------------------------------------------------------------------------------ territories
def territories(data: Path) -> str:
    """No study-level data yet: the review question, and no entry."""
    return (_header("territories") + "\n\n@comment{Review question: do place-based policies "
            "for the revitalisation of territories (enterprise zones, local development "
            "programmes, support to small towns and rural areas) improve employment, incomes "
            "and local services? No study-level dataset was found to re-analyse (see "
            "../shared/data/README.md, 'Searched for, not found'): add studies here as they "
            "are screened.}\n")


def _header(theme: str) -> str:
    return (f"% Bibliography of the theme '{theme}', built by scripts/build_bibliographies.py "
            "from the datasets\n% in ../shared/data (see its README.md for provenance and "
            "licences). Edit by hand from here on.")


BUILDERS = {"autonomy": autonomy, "employment": employment, "education": education,
            "territories": territories}


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
