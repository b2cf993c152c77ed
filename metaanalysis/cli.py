"""The ``metaanalysis`` command: a thin layer over the library, one function per subcommand."""

from __future__ import annotations

import argparse
import sys


def cmd_check(args) -> int:
    from .bibliography import read_bibliography

    n_err = n_warn = 0
    for path in args.files:
        bib = read_bibliography(path)
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


def cmd_extract(args) -> int:
    from .bibliography import BibliographyError, read_effects

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


def cmd_render(args) -> int:
    from .render import RenderError, render

    params = dict(args.param or [])
    try:
        outcomes = render(args.themes, params, jobs=args.jobs, force=args.force,
                          site=args.site, timeout=args.timeout)
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
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("extract", help="write the tidy effects table (one row per effect)",
                       description="Write one row per effect of the included studies, with "
                       "key, outcome, measure, yi, vi, the data, the study characteristics and "
                       "the effect-level moderators, as CSV.")
    p.add_argument("files", nargs="+", metavar="FILE.bib")
    p.add_argument("-o", "--output", metavar="OUT.csv", help="write here instead of stdout")
    p.set_defaults(func=cmd_extract)

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
