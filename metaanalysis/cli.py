"""The ``metaanalysis`` command: a thin layer over the library, one function per subcommand."""

from __future__ import annotations

import argparse
import sys


def cmd_check(args) -> int:
    from .bibliography import read_bibliography
    from .checks import theme_for, theme_problems
    from .themes import find_root, load_themes, themes_problems

    n_err = n_warn = 0
    root = find_root()
    themes = {}
    if (root / "themes.json").exists():
        # the theme list is checked with the bibliographies: a render would refuse it
        problems = themes_problems(root)
        for p in problems:
            print(p)
        n_err += len(problems)
        try:
            themes = load_themes(root)
        except ValueError:
            themes = {}
    if args.theme and args.theme not in themes:
        print(f"metaanalysis check: unknown theme {args.theme!r}: themes are "
              f"{', '.join(themes) or 'none (no themes.json here)'}", file=sys.stderr)
        return 2
    for path in args.files:
        bib = read_bibliography(path)
        slug = args.theme or theme_for(path, themes, root)
        if slug and isinstance(themes.get(slug), dict):
            bib.problems.extend(theme_problems(bib, slug, themes[slug]))
            bib.problems.sort(key=lambda p: (p.line, p.severity))
        for p in bib.problems:
            print(p)
        n_err += len(bib.errors)
        n_warn += len(bib.warnings)
        if not args.quiet and not bib.problems:
            print(f"{path}: ok ({len(bib.entries)} entries, {len(bib.included)} included, "
                  f"{sum(len(e.effects) for e in bib.included)} effects)", file=sys.stderr)
    if n_err or n_warn:
        print(f"{n_err} error(s), {n_warn} warning(s)", file=sys.stderr)
    return 1 if n_err else 0


def _output_problem(output: str, inputs) -> str | None:
    """Why ``output`` must not be written, or None: never over an input, never a .bib."""
    from pathlib import Path

    out = Path(output)
    if out.suffix.lower() == ".bib":
        return (f"{output}: the output is CSV and is never written to a .bib file; give a "
                "name such as effects.csv")
    if out.exists() and any(Path(i).exists() and out.resolve() == Path(i).resolve()
                            for i in inputs):
        return f"{output} is one of the inputs: give another output file"
    if out.is_dir():
        return f"{output} is a folder: give a file name such as {out / 'effects.csv'}"
    if not out.parent.is_dir():
        return f"{output}: the folder {out.parent} does not exist; create it first"
    return None


def cmd_extract(args) -> int:
    from .bibliography import BibliographyError, read_effects

    if args.output and args.output != "-":
        problem = _output_problem(args.output, args.files)
        if problem:
            print(f"metaanalysis extract: {problem}", file=sys.stderr)
            return 2
    try:
        table = read_effects(args.files)
    except BibliographyError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print(f"{len(exc.problems)} error(s): nothing extracted", file=sys.stderr)
        return 1
    if args.output and args.output != "-":
        table.to_csv(args.output, index=False)
    else:
        table.to_csv(sys.stdout, index=False)
    return 0


def cmd_pool(args) -> int:
    import json
    import math

    from .bibliography import BibliographyError
    from .pool import run

    try:
        out = run(args.input, outcome=args.outcome, measure=args.measure, method=args.method,
                  test=args.test, mods=args.mods, cluster=args.cluster, robust=args.robust,
                  bias=args.bias, leave_one_out=args.leave_one_out, level=args.level,
                  study=args.study, influence=args.influence, cumulative=args.cumulative,
                  permutations=args.permutations, seed=args.seed, subgroup=args.subgroup)
    except BibliographyError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, ArithmeticError) as exc:
        print(f"metaanalysis pool: {exc}", file=sys.stderr)
        return 1
    fit = out.pop("_fit")
    for w in out["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    if args.json:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
        print(json.dumps(clean, indent=2, ensure_ascii=False))
        return 0
    print(fit)
    if "egger_z" in out:
        print(f"\nEgger's test: z = {out['egger_z']:.4f}, p = {out['egger_p']:.4f}")
        print(f"Begg's test: Kendall's tau = {out['begg_tau']:.4f}, p = {out['begg_p']:.4f}")
        print(f"Trim-and-fill: {out['trimfill_k0']} effect(s) filled on the "
              f"{out['trimfill_side']} side; adjusted estimate {out['trimfill_estimate']:.4f}")
    import pandas as pd
    for key, title in (("leave_one_out", "Leave-one-out"), ("influence", "Influence diagnostics"),
                       ("cumulative", "Cumulative meta-analysis")):
        if key in out:
            print(f"\n{title}:")
            print(pd.DataFrame(out[key]).to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    if "permutation" in out:
        p = out["permutation"]
        kind = "exact" if p["exact"] else f"{p['iterations']} permutations, seed {p['seed']}"
        print(f"\nPermutation test ({kind}): p = " + ", ".join(f"{x:.4f}" for x in p["pvalue"]))
    if "subgroups" in out:
        sg = out["subgroups"]
        print(f"\nSubgroups by {sg['by']}:")
        print(pd.DataFrame(sg["groups"]).to_string(index=False, float_format=lambda x: f"{x:.4f}"))
        print(f"Test of subgroup differences: Q = {sg['Q_between']:.4f}, df = "
              f"{sg['Q_between_df']}, p = {sg['Q_between_pvalue']:.4f}")
    return 0


def cmd_new_theme(args) -> int:
    from .notes import find_root
    from .render import RenderError, new_theme

    try:
        paths = new_theme(args.slug, find_root())
    except RenderError as exc:
        print(f"metaanalysis new-theme: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p}")
    print("next: write the title, summary and main outcomes in themes.json, add studies to the "
          "bibliography, then make notes", file=sys.stderr)
    return 0


def from_make(target: str, environ) -> tuple[list[str], dict, int | None]:
    """The themes, parameters and jobs of ``make note`` / ``make notes``, from the THEME,
    PARAMS and JOBS variables exactly as typed. PARAMS is split into words as a shell would
    split them, but nothing is expanded or run, and only ``-p NAME VALUE`` may appear.
    Raises ValueError with a message saying what would be right."""
    import re
    import shlex

    usage = 'usage: make note THEME=autonomy PARAMS="-p method DL -p exclude high_rob"'
    theme = environ.get("THEME", "").strip()
    params_text = environ.get("PARAMS", "")
    jobs_text = environ.get("JOBS", "").strip()
    themes = []
    if target == "note":
        if not theme:
            raise ValueError(f"THEME is missing; {usage}")
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", theme):
            raise ValueError(f"THEME = {theme!r} is not a theme name (lowercase letters, digits "
                             f"and _); {usage}")
        themes = [theme]
    elif theme or params_text.strip():
        raise ValueError("make notes renders every theme with its defaults: use make note "
                         "THEME=... PARAMS=... for one theme or a variant")
    try:
        words = shlex.split(params_text)
    except ValueError as exc:
        raise ValueError(f"PARAMS = {params_text!r}: {exc}; {usage}") from None
    params = {}
    while words:
        if words[0] not in ("-p", "--param") or len(words) < 3:
            raise ValueError(f"PARAMS = {params_text!r}: expected -p NAME VALUE, repeated; "
                             f"{usage}")
        params[words[1]] = words[2]
        words = words[3:]
    jobs = None
    if jobs_text:
        if not jobs_text.isdigit() or int(jobs_text) < 1:
            raise ValueError(f"JOBS = {jobs_text!r}: give a number of parallel renders, e.g. 2")
        jobs = int(jobs_text)
    return themes, params, jobs


def cmd_render(args) -> int:
    import os

    from .render import RenderError, render
    from .themes import find_root

    params = dict(args.param or [])
    if args.from_make:
        try:
            args.themes, params, args.jobs = from_make(args.from_make, os.environ)
        except ValueError as exc:
            print(f"make {args.from_make}: {exc}", file=sys.stderr)
            return 2
    try:
        outcomes = render(args.themes, params, jobs=args.jobs, force=args.force,
                          site=args.site, timeout=args.timeout, root=find_root())
    except RenderError as exc:
        print(f"metaanalysis render: {exc}", file=sys.stderr)
        return 2
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        print(f"{len(failed)} theme(s) failed: {', '.join(o.theme for o in failed)}",
              file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metaanalysis",
        description="Read annotated BibTeX bibliographies, pool their effects, render notes.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check", help="validate bibliographies and list every problem",
                       description="Validate annotated .bib files. Prints PATH:LINE: KEY: "
                       "problem for each problem; exits 1 if any is an error (warnings do "
                       "not fail).")
    p.add_argument("files", nargs="+", metavar="FILE.bib")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the problems")
    p.add_argument("--theme", metavar="THEME", help="check against this theme of themes.json "
                   "(default: the theme whose bibliography the file is): warn when an included "
                   "study feeds none of its outcomes or lacks a characteristic it uses")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("extract", help="write the tidy effects table (one row per effect)",
                       description="Write one row per effect of the included studies, with "
                       "key, outcome, measure, yi, vi, the data, the study characteristics and "
                       "the effect-level moderators, as CSV.")
    p.add_argument("files", nargs="+", metavar="FILE.bib")
    p.add_argument("-o", "--output", metavar="OUT.csv", help="write here instead of stdout")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("pool", help="pool effects: the model, and optionally bias and "
                       "sensitivity analyses",
                       description="Fit a meta-analytic model to an annotated .bib or a CSV "
                       "(columns yi and vi, or the raw data named as in metafor with --measure; "
                       "only an empty cell is missing). Effects are on the analysis scale "
                       "(e.g. log RR).")
    p.add_argument("input", metavar="INPUT", help="an annotated .bib or a CSV file")
    p.add_argument("--measure", help="compute effects as this measure (SMD, MD, ROM, OR, RR, "
                   "RD, COR, ZCOR, PR, PLO); default: yi/vi as given or annotated")
    p.add_argument("--method", default="REML", help="FE, DL, REML (default), ML, PM, SJ, HE, "
                   "HS, EB, or MH / PETO for 2x2 tables")
    p.add_argument("--test", default="z", choices=["z", "knha"],
                   help="z (default) or knha (Knapp-Hartung)")
    p.add_argument("--mods", nargs="+", metavar="COL", help="moderator columns (meta-regression)")
    p.add_argument("--cluster", metavar="COL", help="cluster column: three-level model")
    p.add_argument("--robust", action="store_true", help="with --cluster: CHE working model "
                   "with CR2 robust variance and Satterthwaite df")
    p.add_argument("--outcome", help="pool only the effects of this outcome")
    p.add_argument("--study", metavar="COL", help="study label column (default: key or study)")
    p.add_argument("--bias", action="store_true", help="Egger, Begg and trim-and-fill")
    p.add_argument("--leave-one-out", action="store_true", help="refit without each effect")
    p.add_argument("--influence", action="store_true", help="influence diagnostics "
                   "(studentized residuals, Cook's distances, DFFITS, hat values)")
    p.add_argument("--cumulative", metavar="COL", help="cumulative meta-analysis ordered by "
                   "COL (e.g. year)")
    p.add_argument("--permutations", type=int, default=0, metavar="N",
                   help="permutation test with N iterations (exact when N allows)")
    p.add_argument("--seed", type=int, default=1, help="seed of the permutation test")
    p.add_argument("--subgroup", metavar="COL", help="subgroup analysis by COL with the test "
                   "of subgroup differences")
    p.add_argument("--level", type=float, default=95, help="confidence level in percent")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_pool)

    p = sub.add_parser("new-theme", help="scaffold a theme: bibliography, notebook, theme entry",
                       description="Create bibliographies/SLUG.bib, notebooks/SLUG.ipynb (from "
                       "templates/theme.ipynb) and the theme's entry in themes.json.")
    p.add_argument("slug", metavar="SLUG", help="the theme's name, e.g. housing_first")
    p.set_defaults(func=cmd_new_theme)

    p = sub.add_parser("render", help="render theme notes and the site (what make notes runs)",
                       description="Validate the bibliographies, execute each theme's notebook "
                       "with papermill, convert it to HTML and write the site under site/. "
                       "Themes whose inputs have not changed are skipped. With -p, writes a "
                       "labelled variant under site/variants/ beside the published note.")
    p.add_argument("themes", nargs="*", metavar="THEME", help="themes to render (default: all)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="set a notebook parameter (repeatable), e.g. -p method DL")
    p.add_argument("--jobs", type=int, default=None,
                   help="themes rendered in parallel (default: the number of cores)")
    p.add_argument("--force", action="store_true", help="render even if nothing changed")
    p.add_argument("--site", default=None, help="output folder (default: site/)")
    p.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    p.add_argument("--from-make", choices=["note", "notes"], default=None,
                   help="what make note / make notes run: read THEME, PARAMS and JOBS from "
                   "the environment, as typed, and validate them")
    p.set_defaults(func=cmd_render)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a user never sees a traceback
        print(f"metaanalysis {args.command}: internal error ({type(exc).__name__}: {exc}); "
              "please report it with the command and the input", file=sys.stderr)
        return 70
