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


def _where(text: str) -> tuple[str, str]:
    """``COL=VALUE`` of ``pool --where``."""
    col, sep, value = text.partition("=")
    if not sep or not col.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write COL=VALUE, e.g. design=RCT")
    return col.strip(), value.strip()


def cmd_pool(args) -> int:
    import json
    import math

    from .bibliography import BibliographyError
    from .pool import run

    try:
        out = run(args.input, outcome=args.outcome, where=dict(args.where or ()),
                  measure=args.measure, method=args.method,
                  test=args.test, mods=args.mods, cluster=args.cluster, robust=args.robust,
                  bias=args.bias, leave_one_out=args.leave_one_out, level=args.level,
                  study=args.study, influence=args.influence, cumulative=args.cumulative,
                  permutations=args.permutations, seed=args.seed, subgroup=args.subgroup,
                  btt=args.btt, regtest=args.regtest, fsn=args.fsn, confint=args.confint,
                  ni=args.ni, selmodel=args.selmodel)
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
    import pandas as pd

    print(fit)
    _print_natural_scale(fit)
    if "anova" in out:
        a = out["anova"]
        df = (f"F(df1 = {a['QMdf'][0]}, df2 = {a['QMdf'][1]:g})" if isinstance(a["QMdf"], list)
              else f"QM(df = {a['QMdf']})")
        print(f"\nTest of moderators ({', '.join(map(str, a['btt']))}): {df} = {a['QM']:.4f}, "
              f"p-val {_pval(a['QMp'])}")
    if "confint" in out:
        three_level = any(r.get("parameter") == "sigma2_between" for r in out["confint"])
        print("\nVariance components with their confidence intervals (profile likelihood):"
              if three_level else "\nHeterogeneity with its confidence interval (Q-profile):")
        print(pd.DataFrame(out["confint"]).to_string(index=False,
                                                     float_format=lambda x: f"{x:.4f}"))
    if "regtest" in out:
        r = out["regtest"]
        stat = "t" if math.isfinite(r["dfs"]) else "z"
        print(f"\nRegression test for funnel plot asymmetry (predictor {r['predictor']}): "
              f"{stat} = {r['zval']:.4f}, p-val {_pval(r['pval'])}")
        if math.isfinite(r["est"]):
            print(f"Limit estimate (as {r['predictor']} -> 0): {r['est']:.4f} "
                  f"[{r['ci_lb']:.4f}, {r['ci_ub']:.4f}]")
    if "selmodel" in out:
        m = out["selmodel"]
        print(f"\nStep-function selection model (ML; one-sided p cut at "
              f"{', '.join(f'{x:g}' for x in m['steps'][:-1])}): estimate {m['estimate']:.4f} "
              f"[{m['ci_lb']:.4f}, {m['ci_ub']:.4f}], tau2 {m['tau2']:.4f}; selection weights "
              f"{', '.join(f'{d:.4f}' for d in m['delta'])}; LRT(df = {m['LRTdf']}) = "
              f"{m['LRT']:.4f}, p-val {_pval(m['LRTp'])}")
    if "fsn" in out:
        print("\nFail-safe N (a rough gauge: report it beside PET-PEESE or a selection model):")
        for t, f in out["fsn"].items():
            print(f"  {t}: {f['fsnum']:g}")
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
        print(f"\nPermutation test ({kind}): p = " + ", ".join(f"{x:.4f}" for x in p["pval"]))
    if "subgroups" in out:
        sg = out["subgroups"]
        print(f"\nSubgroups by {sg['by']}:")
        print(pd.DataFrame(sg["groups"]).to_string(index=False, float_format=lambda x: f"{x:.4f}"))
        print(f"Test of subgroup differences: Q = {sg['Q_between']:.4f}, df = "
              f"{sg['Q_between_df']}, p = {sg['Q_between_pvalue']:.4f}")
    return 0


def _pval(p: float) -> str:
    """A p-value as metafor prints it: "< .0001" below 1e-4, else "= 0.0123"."""
    return "< .0001" if p < 1e-4 else f"= {p:.4f}"


def _print_natural_scale(fit) -> None:
    """For ratio measures, the pooled estimate back on the ratio scale (metafor's
    ``predict(res, transf=exp)``)."""
    from .grammar import natural_scale

    measure = getattr(fit, "measure", "GEN")
    back = natural_scale(measure)
    if back is natural_scale("GEN") or not hasattr(fit, "predict"):
        return
    try:
        pred = fit.predict()
    except (TypeError, ValueError):
        return
    pred = {k: float(v[0]) if hasattr(v, "__len__") else float(v) for k, v in pred.items()}
    line = (f"\nOn the natural scale ({measure}, exp): {back(pred['pred']):.4f} "
            f"[{back(pred['ci_lb']):.4f}, {back(pred['ci_ub']):.4f}]")
    if "pi_lb" in pred and pred["pi_lb"] == pred["pi_lb"]:
        line += f"; prediction interval [{back(pred['pi_lb']):.4f}, {back(pred['pi_ub']):.4f}]"
    print(line)


def _whole(least: int, what: str):
    """An argparse type: a whole number of at least ``least``; ``what`` says what the number
    counts, for the message (e.g. "permutations, e.g. 1000")."""
    def whole(text: str) -> int:
        import argparse

        try:
            n = int(text)
        except ValueError:
            n = None
        if n is None or n < least:
            raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of {what} "
                                             f"(at least {least})")
        return n

    return whole


def _level(text: str) -> float:
    """--level: a confidence level as 95 or 0.95."""
    import argparse

    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: give 95 or 0.95") from None
    if 0.5 <= x < 1:
        return 100 * x
    if 50 <= x < 100:
        return x
    raise argparse.ArgumentTypeError(f"{text} is not a confidence level: give it in percent "
                                     "(95) or as a proportion (0.95), at least 50%")


def _theme_bibliography(theme: str, command: str):
    """The project root and the bibliography of a theme of themes.json, or an error message."""
    from .themes import find_root, load_themes

    root = find_root()
    try:
        themes = load_themes(root)
    except (OSError, ValueError) as exc:
        return root, None, f"metaanalysis {command}: cannot read themes.json ({exc})"
    if theme not in themes or not isinstance(themes[theme], dict):
        return root, None, (f"metaanalysis {command}: unknown theme {theme!r}: themes are "
                            f"{', '.join(themes)}")
    return root, root / themes[theme]["bibliography"], None


class _Exit(Exception):
    """Stop a command with this exit code (the reason has been printed)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _open_theme(theme: str, command: str):
    """The project root, the theme's bibliography path and its parsed bibliography; prints
    why and stops the command (:class:`_Exit`) if the theme is unknown or the file has errors."""
    from .bibliography import read_bibliography

    root, bib_path, error = _theme_bibliography(theme, command)
    if error:
        print(error, file=sys.stderr)
        raise _Exit(2)
    bib = read_bibliography(bib_path)
    if bib.errors:
        for p in bib.errors:
            print(p, file=sys.stderr)
        raise _Exit(1)
    return root, bib_path, bib


def cmd_import(args) -> int:
    import textwrap
    import time

    from .bibliography import read_bibliography
    from .importing import AppendError, append_entries, plan_import
    from .searches import ExportError, read_export

    root, bib_path, error = _theme_bibliography(args.theme, "import")
    if error:
        print(error, file=sys.stderr)
        return 2
    import datetime

    from .bibliography import is_day

    if not is_day(args.date or ""):
        print(f"metaanalysis import: --date {args.date!r}: give the day the search was run, "
              "as YYYY-MM-DD (a day of the calendar, e.g. 2026-11-02)", file=sys.stderr)
        return 2
    if datetime.date.fromisoformat(args.date) > datetime.date.today() + datetime.timedelta(1):
        print(f"metaanalysis import: --date {args.date}: is after today; give the day the "
              "search was run", file=sys.stderr)
        return 2
    source = (args.source or "").strip()
    if not source or len(source) > 60:
        print("metaanalysis import: --source: name the database searched (e.g. Scopus, "
              "PubMed, 'Web of Science', OpenAlex)", file=sys.stderr)
        return 2
    per_file, failed = [], False
    for f in args.files:
        try:
            per_file.append((f, read_export(f)))
        except ExportError as exc:
            print(exc.problem, file=sys.stderr)
            failed = True
    if failed:
        print("nothing imported: fix the files above", file=sys.stderr)
        return 1
    bib = read_bibliography(bib_path) if bib_path.exists() else None
    if bib is not None and bib.errors:
        for p in bib.errors:
            print(p, file=sys.stderr)
        print(f"nothing imported: {bib_path} has errors; fix them first", file=sys.stderr)
        return 1
    entries = bib.entries if bib else []
    batch = 1 + max((int(s.get("batch", 0)) for e in entries for s in e.searches
                     if str(s.get("batch", "")).isdigit()), default=0)
    planned = plan_import(per_file, [e.key for e in entries], source=source, date=args.date,
                          batch=batch)
    for p in planned:
        title = textwrap.shorten(p.record.title, 72, placeholder=" …")  # whole words
        print(f"{'would add' if args.dry_run else 'add'} {p.key}: {title}")
    n = len(planned)
    if args.dry_run:
        print(f"{n} record(s) from {len(per_file)} file(s) would be added to {bib_path} "
              "(dry run: nothing written)", file=sys.stderr)
        return 0
    header = (f"% Imported by metaanalysis import on {time.strftime('%Y-%m-%d')}: {n} record(s) "
              f"from {source} (searched {args.date}), batch {batch}")
    try:
        backup = append_entries(bib_path, [p.text for p in planned], header, root=root)
    except AppendError as exc:
        print(f"metaanalysis import: {exc}", file=sys.stderr)
        return 1
    print(f"{n} record(s) added to {bib_path} as pending (batch {batch}); previous file kept "
          f"as {backup}. Next: metaanalysis dedup {args.theme}", file=sys.stderr)
    return 0


def cmd_dedup(args) -> int:
    from .dedup import apply, find_duplicates

    root, bib_path, bib = _open_theme(args.theme, "dedup")
    marked = {e.key for e in bib.entries if e.duplicate_of}
    pairs = [p for p in find_duplicates(bib.entries, threshold=args.threshold)
             if p.drop not in marked]
    lines = {e.key: e.line for e in bib.entries}
    for p in pairs:
        tag = "sure" if p.sure else "check"
        print(f"{bib_path}:{lines[p.drop]}: {p.drop}: {tag}: duplicate of {p.keep} "
              f"(line {lines[p.keep]}; {p.rule}, score {p.score:g})")
    n_sure = sum(p.sure for p in pairs)
    print(f"{len(pairs)} candidate pair(s): {n_sure} sure, {len(pairs) - n_sure} to check by "
          "hand", file=sys.stderr)
    if args.apply:
        from .importing import AppendError
        try:
            n, backup = apply(bib_path, pairs, root=root)
        except AppendError as exc:
            print(f"metaanalysis dedup: {exc}", file=sys.stderr)
            return 1
        print(f"{n} duplicate(s) recorded in {bib_path}" + (f"; previous file kept as {backup}"
                                                            if backup else ""), file=sys.stderr)
    elif n_sure:
        print("run with --apply to record the sure ones (appended; no entry is changed)",
              file=sys.stderr)
    return 0


def cmd_screen(args) -> int:
    """Screen records one at a time, list conflicts, or give Cohen's kappa."""
    import textwrap

    from .bibliography import latex_to_text
    from .screening import CONSENSUS, conflicts, kappa
    from .session import ScreeningError, ScreeningSession
    from .themes import load_themes

    root, bib_path, bib = _open_theme(args.theme, "screen")
    entries = [e for e in bib.entries if not e.duplicate_of]
    if args.conflicts:
        found = conflicts(entries)
        for e, stage, latest in found:
            who = ", ".join(f"{r}: {d.decision}" + (f" ({d.reason})" if d.reason else "")
                            for r, d in sorted(latest.items()))
            print(f"{bib_path}:{e.line}: {e.key}: {stage}: {who}")
        print(f"{len(found)} conflict(s); settle each with a decision by reviewer {CONSENSUS} "
              f"(metaanalysis screen {args.theme} --stage STAGE --reviewer {CONSENSUS} "
              "--only-conflicts)", file=sys.stderr)
        return 0
    if args.kappa:
        a, b = args.kappa
        for stage in ("title", "fulltext"):
            k, n = kappa(entries, stage, a, b)
            print(f"{stage}: Cohen's kappa {a} vs {b} = "
                  + (f"{k:.3f} on {n} record(s)" if n else "no record screened by both"))
        return 0
    if not args.stage or not args.reviewer:
        print("metaanalysis screen: give --stage title|fulltext and --reviewer NAME (or "
              "--conflicts, or --kappa A B)", file=sys.stderr)
        return 2
    reasons = load_themes(root)[args.theme].get("exclusion_reasons") or []
    try:
        session = ScreeningSession(bib_path, root=root, stage=args.stage,
                                   reviewer=args.reviewer, reasons=reasons,
                                   only_conflicts=args.only_conflicts)
    except ScreeningError as exc:
        print(f"metaanalysis screen: {exc}", file=sys.stderr)
        return 2
    print(f"{session.total} record(s) to screen at the {args.stage} stage as {args.reviewer}; "
          "keys: i include, e exclude, s skip, u undo, q quit", file=sys.stderr)
    while (e := session.current) is not None:
        f = e.fields
        print(f"\n[{session.position + 1}/{session.total}] {e.key} ({e.year or 'n.d.'}) "
              f"{f.get('journal', '')}")
        print(textwrap.fill(latex_to_text(f.get("title", "(no title)")), 88))
        if f.get("abstract"):
            print(textwrap.fill(latex_to_text(f["abstract"]), 88, initial_indent="  ",
                                subsequent_indent="  "))
        if f.get("keywords"):
            print(f"  keywords: {latex_to_text(f['keywords'])}")
        try:
            answer = input("[i/e/s/u/q] > ").strip().lower()[:1]
        except EOFError:
            answer = "q"
        if answer == "q":
            break
        if answer in ("u", "s"):
            session.undo() if answer == "u" else session.skip()
            continue
        if answer not in ("i", "e"):
            print("  i include, e exclude, s skip, u undo (back to the previous record), q quit")
            continue
        decision, reason = ("include", "") if answer == "i" else ("exclude", "")
        if decision == "exclude" and args.stage == "fulltext":
            for n, r in enumerate(reasons, 1):
                print(f"  {n}. {r}")
            print(f"  {len(reasons) + 1}. not retrieved (the report could not be obtained)")
            try:
                pick = input("reason > ").strip()
            except EOFError:
                break
            if not pick.isdigit() or not 1 <= int(pick) <= len(reasons) + 1:
                print("  give the number of a reason")
                continue
            if int(pick) == len(reasons) + 1:
                decision = "not retrieved"
            else:
                reason = reasons[int(pick) - 1]
        try:
            session.decide(decision, reason)
        except ScreeningError as exc:
            print(f"metaanalysis screen: {exc}", file=sys.stderr)
            return 1
        print(f"  ({session.aid()})", file=sys.stderr)
    print(f"{session.done} decision(s) recorded in {bib_path}", file=sys.stderr)
    return 0


def cmd_screen_simulate(argv) -> int:
    """``metaanalysis screen simulate DATA.csv --prior-idx I J --seed S -o ORDER.csv``."""
    import pandas as pd

    from .prioritise import recall_at, simulate, wss

    p = argparse.ArgumentParser(
        prog="metaanalysis screen simulate",
        description="Replay a finished screening to measure the prioritised order, as "
        "asreview simulate does: DATA.csv in ASReview's format (record_id, title, abstract, "
        "label_included), the prior records as 0-based row numbers; writes the record_ids in "
        "the order they would be screened (the prior records first, every record once) and "
        "prints WSS@95 and the recall after 10%.")
    p.add_argument("data", metavar="DATA.csv")
    p.add_argument("--prior-idx", nargs="+", type=int, required=True, metavar="I")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, metavar="ORDER.csv")
    args = p.parse_args(argv)
    problem = _output_problem(args.output, [args.data])
    if problem:
        print(f"metaanalysis screen simulate: {problem}", file=sys.stderr)
        return 2
    try:
        d = pd.read_csv(args.data, keep_default_na=False, dtype={"record_id": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        print(f"metaanalysis screen simulate: {args.data}: not a readable CSV ({exc})",
              file=sys.stderr)
        return 1
    missing = [c for c in ("record_id", "title", "label_included") if c not in d.columns]
    if missing:
        print(f"metaanalysis screen simulate: {args.data}: missing column(s) "
              f"{', '.join(missing)} (ASReview's format: record_id, title, abstract, "
              "label_included)", file=sys.stderr)
        return 1
    labels = pd.to_numeric(d["label_included"], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        row = int(labels.isna().to_numpy().argmax()) + 2
        print(f"{args.data}:{row}: label_included must be 0 or 1 for every record in a "
              "simulation", file=sys.stderr)
        return 1
    bad = [i for i in args.prior_idx if not 0 <= i < len(d)]
    if bad:
        print(f"metaanalysis screen simulate: --prior-idx {bad[0]} is not a row number "
              f"(0 to {len(d) - 1})", file=sys.stderr)
        return 2
    texts = (d["title"].astype(str) + " " + (d["abstract"].astype(str) if "abstract" in d
                                             else "")).tolist()
    y = labels.to_numpy(dtype=int)
    order = simulate(texts, y, args.prior_idx, seed=args.seed)
    pd.DataFrame({"record_id": d["record_id"].to_numpy()[order]}).to_csv(args.output,
                                                                        index=False)
    print(f"wrote {args.output}: {len(order)} records; WSS@95 = {wss(order, y):.3f}, recall "
          f"after 10% = {recall_at(order, y):.3f}", file=sys.stderr)
    return 0


def cmd_prisma(args) -> int:
    import json

    from .bibliography import read_studies
    from .figures import prisma, prisma2020
    from .plots import svg_figure

    _, _, bib = _open_theme(args.theme, "prisma")
    studies = read_studies(bib)
    counts = prisma2020(studies)
    if args.svg:
        from pathlib import Path
        Path(args.svg).write_text(svg_figure(prisma(studies, lang=args.lang)).svg,
                                  encoding="utf-8")
        print(f"wrote {args.svg}", file=sys.stderr)
    if args.json:
        print(json.dumps(counts, indent=2, ensure_ascii=False))
        return 0

    def show(v):
        if v is None:
            return "unknown"
        if isinstance(v, dict):
            return ", ".join(f"{k}: {n}" for k, n in v.items()) or "none"
        return str(v)

    labels = [("identified", "records identified"), ("duplicates_removed", "duplicates removed"),
              ("screened", "records screened"), ("excluded_screening",
                                                 "excluded at title/abstract"),
              ("sought", "reports sought"), ("not_retrieved", "not retrieved"),
              ("assessed", "assessed at full text"), ("excluded_fulltext",
                                                      "excluded at full text"),
              ("included", "studies included"), ("awaiting_screening", "awaiting screening"),
              ("awaiting_fulltext", "awaiting full text"),
              ("excluded_stage_unknown", "excluded, stage not recorded"),
              ("records_in_bibliography", "records in the bibliography")]
    for key, label in labels:
        if key in counts:
            print(f"{label:<30} {show(counts[key])}")
    return 0


def cmd_new_theme(args) -> int:
    from .notes import find_root
    from .parameters import RenderError
    from .scaffold import new_theme

    try:
        paths = new_theme(args.slug, find_root(), title={"fr": args.title_fr,
                                                         "en": args.title_en})
    except RenderError as exc:
        print(f"metaanalysis new-theme: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p}")
    print(f"kept the previous theme list in {paths[-1]}.bak", file=sys.stderr)
    print(f"next: make note THEME={args.slug} renders its 'no studies yet' note; then write "
          "its summary and main outcomes in themes.json, add studies to the bibliography "
          "(README: How to add a theme)", file=sys.stderr)
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
    p.add_argument("--where", type=_where, action="append", metavar="COL=VALUE",
                   help="keep only the effects whose COL is VALUE, compared as written (a "
                        "note's outcome filter in themes.json); repeat for several columns")
    p.add_argument("--study", metavar="COL", help="study label column (default: key or study)")
    p.add_argument("--bias", action="store_true", help="Egger, Begg and trim-and-fill")
    p.add_argument("--leave-one-out", action="store_true", help="refit without each effect")
    p.add_argument("--influence", action="store_true", help="influence diagnostics "
                   "(studentized residuals, Cook's distances, DFFITS, hat values)")
    p.add_argument("--cumulative", metavar="COL", help="cumulative meta-analysis ordered by "
                   "COL (e.g. year)")
    p.add_argument("--permutations", type=_whole(0, "permutations, e.g. 1000"), default=0,
                   metavar="N",
                   help="permutation test with N iterations (exact when N allows)")
    p.add_argument("--seed", type=int, default=1, help="seed of the permutation test")
    p.add_argument("--subgroup", metavar="COL", help="subgroup analysis by COL with the test "
                   "of subgroup differences")
    p.add_argument("--level", type=_level, default=95,
                   help="confidence level: 95 or 0.95 (default 95)")
    p.add_argument("--btt", nargs="+", metavar="TERM",
                   help="Wald test that these coefficients (names or 0-based positions) are "
                        "all zero, as metafor's anova(res, btt=...)")
    p.add_argument("--regtest", metavar="PREDICTOR",
                   choices=["sei", "vi", "ni", "ninv", "sqrtninv"],
                   help="funnel asymmetry test with this predictor and its limit estimate "
                        "(sei: PET, vi: PEESE; ni, ninv, sqrtninv need sample sizes)")
    p.add_argument("--ni", metavar="COL", help="the sample-size column for --regtest ni/ninv")
    p.add_argument("--selmodel", nargs="+", type=float, metavar="P",
                   help="step-function selection model by ML with these one-sided p-value "
                        "cut-points (e.g. --selmodel 0.025: the three-parameter model)")
    p.add_argument("--fsn", action="store_true",
                   help="fail-safe N (Rosenthal, Orwin, Rosenberg)")
    p.add_argument("--confint", action="store_true",
                   help="confidence intervals of tau2, tau, I2 and H2 (Q-profile); with "
                        "--cluster, of both variance components (profile likelihood)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_pool)

    p = sub.add_parser("import", help="add the records of search exports to a theme's "
                       "bibliography, as pending",
                       description="Read search exports (RIS, PubMed/MEDLINE .nbib, BibTeX, or "
                       "the CSV/TSV of Scopus, Web of Science, OpenAlex; the format is read "
                       "from the content) and append their records to the theme's .bib with "
                       "screening = {pending} and their provenance. The existing entries are "
                       "never changed; a backup goes to bibliographies/.backups/.")
    p.add_argument("theme", metavar="THEME")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--source", required=True, help="the database searched (e.g. Scopus)")
    p.add_argument("--date", required=True, help="the day of the search, YYYY-MM-DD")
    p.add_argument("--dry-run", action="store_true", help="print what would be added")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("dedup", help="find records found by several databases; record the "
                       "sure duplicates",
                       description="List candidate duplicate pairs (same DOI, PubMed ID, "
                       "title+year+first author, or a fuzzy title match) with their score; "
                       "--apply appends a decision for each sure pair (no entry is changed; a "
                       "backup is kept). Uncertain pairs are left for a person.")
    p.add_argument("theme", metavar="THEME")
    p.add_argument("--threshold", type=float, default=90.0, metavar="SCORE",
                   help="lowest fuzzy title score (0-100) to list a pair (default 90)")
    p.add_argument("--apply", action="store_true", help="record the sure duplicates")
    p.set_defaults(func=cmd_dedup)

    p = sub.add_parser("screen", help="screen records (title/abstract, full text), list "
                       "conflicts, or give Cohen's kappa",
                       description="One record at a time in the terminal: i include, e exclude "
                       "(at full text, with a reason from the theme's exclusion_reasons), s "
                       "skip, u undo, q quit. Each decision is appended to the bibliography "
                       "with the reviewer and the date; reviewers screen blind to each other.")
    p.add_argument("theme", metavar="THEME")
    p.add_argument("--stage", choices=["title", "fulltext"])
    p.add_argument("--reviewer", metavar="NAME")
    p.add_argument("--only-conflicts", action="store_true",
                   help="only the records in conflict (for reviewer consensus)")
    p.add_argument("--conflicts", action="store_true", help="list the disagreements")
    p.add_argument("--kappa", nargs=2, metavar=("A", "B"), help="Cohen's kappa of two reviewers")
    p.set_defaults(func=cmd_screen)

    p = sub.add_parser("prisma", help="the PRISMA 2020 flow of a theme: counts, --json, --svg",
                       description="Count the PRISMA 2020 flow from the bibliography: records "
                       "per database, duplicates removed, screened, excluded (with reasons), "
                       "included. A count the bibliography cannot tell is 'unknown' (null).")
    p.add_argument("theme", metavar="THEME")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--svg", metavar="FILE", help="write the diagram as SVG")
    p.add_argument("--lang", choices=["fr", "en"], default="en")
    p.set_defaults(func=cmd_prisma)

    p = sub.add_parser("new-theme", help="scaffold a theme: bibliography, notebook, theme entry",
                       description="Create bibliographies/SLUG.bib, notebooks/SLUG.ipynb (from "
                       "templates/theme.ipynb) and the theme's entry in themes.json.")
    p.add_argument("slug", metavar="SLUG", help="the theme's name, e.g. housing_first")
    p.add_argument("--title-fr", metavar="TEXT", default="",
                   help="the title in French (default: the name, e.g. 'Housing first')")
    p.add_argument("--title-en", metavar="TEXT", default="", help="the title in English")
    p.set_defaults(func=cmd_new_theme)

    p = sub.add_parser("render", help="render theme notes and the site (what make notes runs)",
                       description="Validate the bibliographies, execute each theme's notebook "
                       "with papermill, convert it to HTML and write the site under site/. "
                       "Themes whose inputs have not changed are skipped. With -p, writes a "
                       "labelled variant under site/variants/ beside the published note.")
    p.add_argument("themes", nargs="*", metavar="THEME", help="themes to render (default: all)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="set a notebook parameter (repeatable), e.g. -p method DL")
    p.add_argument("--jobs", type=_whole(1, "parallel renders, e.g. 2"), default=None,
                   help="themes rendered in parallel (default: the number of cores)")
    p.add_argument("--force", action="store_true", help="render even if nothing changed")
    p.add_argument("--site", default=None, help="output folder (default: site/)")
    p.add_argument("--timeout", type=_whole(1, "seconds, e.g. 600"), default=600,
                   help="seconds allowed per cell")
    p.add_argument("--from-make", choices=["note", "notes"], default=None,
                   help="what make note / make notes run: read THEME, PARAMS and JOBS from "
                   "the environment, as typed, and validate them")
    p.set_defaults(func=cmd_render)
    return parser


def run() -> None:
    """The ``metaanalysis`` command: :func:`main`, then, after a render, the process ends
    without the interpreter taking its modules down one by one. A render imports nbconvert,
    papermill, pandas and matplotlib (for its workers to inherit, and for the index pages):
    their teardown took 0.4-0.6 s after the site was written, for nothing. The exit
    handlers still run (they close what the process started) and the output is flushed;
    other commands end as usual (an interactive screen's readline history, say). What it
    writes to a terminal shows control characters as text (:mod:`~metaanalysis.terminal`)."""
    from .terminal import TerminalSafe

    sys.stderr = TerminalSafe(sys.stderr)
    if sys.stdout.isatty():
        sys.stdout = TerminalSafe(sys.stdout)
    code = main()
    if sys.argv[1:2] != ["render"]:
        raise SystemExit(code)
    import atexit
    import os
    import threading

    for thread in threading.enumerate():  # (what the interpreter's own exit waits for)
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code or 0)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["screen", "simulate"]:
        try:
            return cmd_screen_simulate(argv[2:])
        except Exception as exc:  # noqa: BLE001 - a user never sees a traceback
            print(f"metaanalysis screen simulate: internal error ({type(exc).__name__}: "
                  f"{exc}); please report it with the command and the input", file=sys.stderr)
            return 70
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except _Exit as stop:
        return stop.code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a user never sees a traceback
        print(f"metaanalysis {args.command}: internal error ({type(exc).__name__}: {exc}); "
              "please report it with the command and the input", file=sys.stderr)
        return 70
