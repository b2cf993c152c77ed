"""The benchmarks of the performance issue, side by side in one run, reported as ratios.

    python benchmarks/run.py [--no-r] [--no-notes] [--out benchmarks/results.json]

Ours (this checkout) against R's metafor (run here through Rscript on the same data) and
PyMARE, on seeded synthetic data and on the education theme's data; plus reading a
10,000-entry bibliography against bibtexparser, and ``metaanalysis render`` cold, with
nothing changed and after touching one bibliography (with a per-theme profile). R and
metafor come from Debian; if they are missing the script tries to install them (as root)
and says so, and otherwise reports our side alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


from bench_reader import best_alternating, best_of as best  # noqa: E402


def univariate(k, seed=1):
    rng = np.random.default_rng(seed + k)
    v = rng.uniform(0.01, 0.2, k)
    y = 0.3 + rng.normal(0, 0.2, k) + rng.normal(0, np.sqrt(v))
    return pd.DataFrame({"yi": y, "vi": v})


def multilevel(k, clusters, seed=2):
    rng = np.random.default_rng(seed)
    cl = np.repeat(np.arange(clusters), k // clusters)
    v = rng.uniform(0.01, 0.1, k)
    y = 0.2 + rng.normal(0, 0.2, clusters)[cl] + rng.normal(0, 0.1, k) + rng.normal(0, np.sqrt(v))
    return pd.DataFrame({"yi": y, "vi": v, "cluster": cl, "es": np.arange(k)})


def ensure_r() -> bool:
    ok = shutil.which("Rscript") and subprocess.run(
        ["Rscript", "-e", "library(metafor); library(jsonlite)"], capture_output=True).returncode == 0
    if ok:
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("R or metafor is missing: installing r-base-core r-cran-metafor r-cran-jsonlite "
              "from Debian ...", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "r-base-core", "r-cran-metafor",
                        "r-cran-jsonlite"], check=False, env={**os.environ,
                                                             "DEBIAN_FRONTEND": "noninteractive"})
        return subprocess.run(["Rscript", "-e", "library(metafor)"],
                              capture_output=True).returncode == 0
    print("R/metafor missing and cannot be installed here: reporting our side alone",
          file=sys.stderr)
    return False


def run_r(datasets: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        for name, df in datasets.items():
            df.to_csv(Path(tmp) / f"{name}.csv", index=False)
        out = subprocess.run(["Rscript", str(HERE / "bench_metafor.R"), tmp],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return {}
        return json.loads(out.stdout)


def ours(datasets: dict) -> dict:
    from metaanalysis.models import rma
    from metaanalysis.multilevel import rma_mv
    from metaanalysis.sensitivity import leave_one_out, permutest

    r = {}
    for k in (100, 1000, 4000, 100_000, 1_000_000):
        d = datasets.get(f"uni_{k}") if f"uni_{k}" in datasets else univariate(k)
        y, v = d["yi"].to_numpy(), d["vi"].to_numpy()
        r[f"reml_{k}"] = best(lambda: rma(y, v, method="REML"), 3 if k >= 100_000 else 7)
    for k in (200, 2000):
        d = datasets.get(f"uni_{k}") if f"uni_{k}" in datasets else univariate(k)
        fit = rma(d["yi"].to_numpy(), d["vi"].to_numpy())
        r[f"loo_{k}"] = best(lambda: leave_one_out(fit))
    d = datasets["uni_100"]
    fit = rma(d["yi"].to_numpy(), d["vi"].to_numpy())
    r["perm_100"] = best(lambda: permutest(fit, iter=1000, seed=1))
    for name in ("ml_900", "ml_3000", "education"):
        d = datasets[name]
        r[f"ml_{name.split('_')[-1]}" if name != "education" else "ml_education"] = best(
            lambda: rma_mv(d["yi"].to_numpy(), d["vi"].to_numpy(), cluster=d["cluster"].to_numpy()))
    return r


def floor_passes(y, v, iterations: int = 4):
    """The passes an intercept-only REML fit cannot avoid: per Fisher iteration, the weights
    and the four sums (sum w, sum w^2, sum w y, sum w^2 r^2), ``iterations`` times; one core
    (the caller sets the BLAS threads)."""

    def passes():
        t = 0.04
        for _ in range(iterations):
            w = 1.0 / (v + t)
            s1 = w.sum()
            b = (w @ y) / s1
            r = y - b
            w2 = w * w
            t += float(w2 @ (r * r) - s1) / float(w2.sum()) * 1e-9
    return passes


def engine_targets() -> dict:
    """Issue 15's engine targets, each beside its floor or peer, in one process."""
    from metaanalysis.deletion import leave_one_out_fits
    from metaanalysis.models import rma

    out = {}
    for k in (10_000, 100_000, 1_000_000, 10_000_000):
        d = univariate(k)
        y, v = d["yi"].to_numpy(), d["vi"].to_numpy()
        # ours, the floor and PyMARE in turn, repetition after repetition: the ratios hold
        # through a slow spell of the machine
        sides = [lambda: rma(y, v, method="REML"), floor_passes(y, v)]
        if k <= 1_000_000:
            sides.append(pymare_fit(y, v))
        times = best_alternating(sides, 3 if k >= 1_000_000 else 7)
        out[f"reml_ci_{k}"], out[f"floor_{k}"] = times[:2]
        if k <= 1_000_000:
            out[f"pymare_{k}"] = times[2]
    for k in (2_000, 100_000):
        d = univariate(k)
        y, v = d["yi"].to_numpy(), d["vi"].to_numpy()
        tau2 = rma(y, v).tau2
        out[f"loo_on_{k}"] = best(lambda: leave_one_out_fits(y, v, tau2=tau2), 3)
    from metaanalysis.deletion import cumulative_fits
    from metaanalysis.sensitivity import influence

    for k in (2_000, 100_000):
        d = univariate(k)
        y, v = d["yi"].to_numpy(), d["vi"].to_numpy()
        tau2 = rma(y, v).tau2
        out[f"cumulative_on_{k}"] = best(lambda: cumulative_fits(y, v, tau2=tau2), 3)

    d = univariate(2_000)
    fit = rma(d["yi"].to_numpy(), d["vi"].to_numpy())
    out["influence_2000"] = best(lambda: influence(fit), 3)
    return out


def forest_time() -> dict:
    """Education's two forest plots (grouped per study, design subgroups) drawn to SVG: the
    total, and the part of it spent fitting the subgroups' diamonds (forest() fits them)."""
    import metaanalysis.plots as plots
    from metaanalysis.notes import Note

    note = Note("education", lang="fr", root=ROOT)
    fitting = [0.0]
    refit = plots._refit_subset

    def timed_refit(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return refit(*args, **kwargs)
        finally:
            fitting[0] += time.perf_counter() - t0

    def draw():
        for o in note.outcomes:
            plots.svg_figure(plots.forest(o.result, lang="fr", subgroup="design"))
    draw()  # fonts loaded, caches warm
    plots._refit_subset = timed_refit
    try:
        best_total, best_fits = math.inf, math.inf
        for _ in range(3):
            fitting[0] = 0.0
            t0 = time.perf_counter()
            draw()
            total = time.perf_counter() - t0
            if total < best_total:
                best_total, best_fits = total, fitting[0]
    finally:
        plots._refit_subset = refit
    return {"total": best_total, "subgroup_fits": best_fits}


def che_time() -> dict:
    """The CHE fit of education's reading outcome (rho 0.6, CR2), with the criterion the
    optimiser calls built from each cluster's eigenvectors (now) and from per-cluster
    inverses (before session 8), side by side in this run."""
    from metaanalysis import multilevel
    from metaanalysis.bibliography import read_effects
    from metaanalysis.rve import che

    edu = read_effects(ROOT / "bibliographies" / "education.bib")
    d = edu[edu["outcome"] == "reading"]
    y, v, cl = d["yi"].to_numpy(float), d["vi"].to_numpy(float), d["key"].to_numpy()
    eigen = multilevel._stacked_eigen

    def with_inverses():
        multilevel._stacked_eigen = lambda params, stacks, reml: multilevel._stacked(
            params, stacks, reml, True)
        try:
            che(y, v, cluster=cl)
        finally:
            multilevel._stacked_eigen = eigen

    now, before = best_alternating([lambda: che(y, v, cluster=cl), with_inverses], 3)
    return {"k": len(y), "clusters": len(set(cl)), "eigen": now, "inverses": before}


def pymare_fit(y, v):
    """PyMARE's REML fit of ``y`` (variances ``v``), as a function to time."""
    from pymare import Dataset
    from pymare.estimators import VarianceBasedLikelihoodEstimator

    ds = Dataset(y=y, v=v)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            VarianceBasedLikelihoodEstimator(method="REML").fit_dataset(ds)
    return fit


def pymare_times(datasets: dict) -> dict:
    from pymare import Dataset
    from pymare.estimators import VarianceBasedLikelihoodEstimator

    out = {}
    for k in (100, 1000, 4000):
        d = datasets[f"uni_{k}"]
        ds = Dataset(y=d["yi"].to_numpy(), v=d["vi"].to_numpy())

        def fit():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                VarianceBasedLikelihoodEstimator(method="REML").fit_dataset(ds)
        out[f"reml_{k}"] = best(fit, 3)
    return out


def notes_times() -> dict:
    """metaanalysis render on a copy of the project: cold, no-op, one bibliography touched."""
    with tempfile.TemporaryDirectory() as tmp:
        proj = Path(tmp) / "proj"
        for part in ("bibliographies", "notebooks", "templates"):
            shutil.copytree(ROOT / part, proj / part)
        shutil.copy(ROOT / "themes.json", proj / "themes.json")
        cmd = [sys.executable, "-m", "metaanalysis", "render"]
        out = {}
        for label in ("cold", "noop", "touched", "touched_education", "touched_autonomy"):
            if label.startswith("touched"):
                theme = {"touched": "employment"}.get(label, label.split("_")[-1])
                bib = proj / "bibliographies" / f"{theme}.bib"
                bib.write_text(bib.read_text() + "\n% touched\n")
            out[label] = math.inf
            for _ in range(3 if label == "noop" else 1):  # the short one: best of three
                t0, cpu0 = time.perf_counter(), _children_cpu()
                run = subprocess.run(cmd, cwd=proj, capture_output=True, text=True)
                seconds = time.perf_counter() - t0
                if seconds < out[label]:
                    # the CPU time of every process of the render (its workers, template,
                    # kernels and Chromium are each waited for by their parent, so their
                    # time is counted in the render's): on N cores the wall time cannot be
                    # below CPU / N
                    out[label], out[f"{label}_cpu"] = seconds, _children_cpu() - cpu0
            out[f"{label}_log"] = [ln for ln in run.stderr.splitlines() if ln.startswith("[")]
        if "PYTHONDONTWRITEBYTECODE" in os.environ:
            # this machine sets it: our package (installed editable, so not compiled by pip)
            # is compiled again at every start, in every note's kernel too. Nothing changed,
            # measured again as a usual Python runs it (its bytecode written once); bytecode
            # written here is removed after, so the other measurements keep this machine's
            # setting
            cache = ROOT / "metaanalysis" / "__pycache__"
            had = cache.exists()
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            subprocess.run(cmd, cwd=proj, capture_output=True, env=env)
            out["noop_bytecode"] = math.inf
            for _ in range(3):
                t0 = time.perf_counter()
                subprocess.run(cmd, cwd=proj, capture_output=True, env=env)
                out["noop_bytecode"] = min(out["noop_bytecode"], time.perf_counter() - t0)
            if not had:
                shutil.rmtree(cache, ignore_errors=True)
        sizes = {p.name: p.stat().st_size for p in (proj / "site").glob("*.html")}
        out["page_bytes"] = sizes
        out["cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count()
        return out


def _children_cpu() -> float:
    """User and system CPU seconds of this process's waited-for children (and theirs)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def kernel_times(runs: int = 5) -> dict:
    """A note's kernel: started, the library imported (what every note's first cell does),
    ready for the next cell, shut down; started the usual way against forked from a warm
    template (metaanalysis.kernelfork), alternating, medians of ``runs``; and the template's
    own start, paid once per render (its workers connect to it)."""
    import nbformat
    from nbclient import NotebookClient

    from metaanalysis.kernelfork import Template, kernel_command_parts
    from metaanalysis.kernels import kernel_manager_class
    from metaanalysis.execution import _kernel_name, _kernel_stderr_filtered

    def note(warm: bool) -> float:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "from metaanalysis.notes import Note\nimport metaanalysis.plots")])
        with _kernel_stderr_filtered() as captured:  # as the render: without the kernel's
            t0 = time.perf_counter()                 # routine notices
            NotebookClient(nb, kernel_name=_kernel_name(), timeout=120,
                           kernel_manager_class=kernel_manager_class(1, warm=warm)).execute()
            seconds = time.perf_counter() - t0
        captured.forward()
        return seconds

    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec(_kernel_name()).argv
    prefix = kernel_command_parts(argv)[0]
    t0 = time.perf_counter()
    Template(prefix, dict(os.environ, JPY_PARENT_PID=str(os.getpid()))).close()
    template = time.perf_counter() - t0
    note(True)  # this process's template, started once
    usual, forked = [], []
    for _ in range(runs):
        usual.append(note(False))
        forked.append(note(True))
    return {"usual": float(np.median(usual)), "forked": float(np.median(forked)),
            "template": template}


def machine() -> str:
    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}, " \
           f"Python {platform.python_version()}, numpy {np.__version__}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--no-notes", action="store_true")
    ap.add_argument("--no-review", action="store_true", help="skip import and deduplication")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--report", action="store_true", help="print the table of the last run")
    args = ap.parse_args(argv)
    if args.report:
        print_table(json.loads(args.out.read_text()))
        return None
    from metaanalysis.bibliography import read_effects

    datasets = {f"uni_{k}": univariate(k) for k in (100, 200, 1000, 2000, 4000)}
    datasets["ml_900"] = multilevel(900, 300)
    datasets["ml_3000"] = multilevel(3000, 1000)
    edu = read_effects(ROOT / "bibliographies" / "education.bib")
    datasets["education"] = pd.DataFrame({"yi": edu["yi"], "vi": edu["vi"],
                                          "cluster": edu["key"], "es": np.arange(len(edu))})
    res = {"machine": machine(), "ours": ours(datasets), "pymare": pymare_times(datasets)}
    res["metafor"] = run_r(datasets) if not args.no_r and ensure_r() else {}
    import bench_reader
    res["reader"] = bench_reader.main(10_000)
    res["targets"] = engine_targets()
    res["targets"]["forest_education"] = forest_time()
    res["targets"]["che_education"] = che_time()
    if not args.no_notes:
        res["kernels"] = kernel_times()
        res["notes"] = notes_times()
    import bench_review
    if not args.no_review and bench_review.DATA.exists():
        import bench_screening
        res["review"] = {"quality": bench_review.quality(), "speed": bench_review.speed()}
        res["screening"] = bench_screening.main()
    args.out.write_text(json.dumps(res, indent=1))
    print_table(res)
    return res


TARGETS = {"reml_4000": 1000, "loo_200": 50, "perm_100": 50, "ml_900": 50}


def print_table(res):
    o, m, p = res["ours"], res.get("metafor", {}), res["pymare"]
    print(f"\nMachine: {res['machine']}")
    if m:
        print(f"metafor {m.get('metafor')} on {m.get('R')}")
    print(f"\n{'benchmark':<28}{'ours':>12}{'metafor':>12}{'ratio':>10}{'PyMARE':>12}{'ratio':>9}  target")
    rows = [("REML fit, k = 100", "reml_100"), ("REML fit, k = 1,000", "reml_1000"),
            ("REML fit, k = 4,000", "reml_4000"), ("REML fit, k = 100,000", "reml_100000"),
            ("REML fit, k = 1,000,000", "reml_1000000"), ("leave-one-out, k = 200", "loo_200"),
            ("leave-one-out, k = 2,000", "loo_2000"), ("permutations x1000, k = 100", "perm_100"),
            ("3-level, 900 in 300", "ml_900"), ("3-level, 3,000 in 1,000", "ml_3000"),
            ("3-level, education (1,334)", "ml_education")]
    for label, key in rows:
        ours_t = o.get(key)
        mf = m.get(key)
        py = p.get(key)
        ratio = f"{mf / ours_t:,.0f}x" if mf and ours_t else ""
        pr = f"{py / ours_t:,.1f}x" if py and ours_t else ""
        target = {"reml_1000000": "< 1 s", "loo_2000": "< 0.2 s"}.get(
            key, f">= {TARGETS[key]}x" if key in TARGETS else "")
        mf_s = f"{mf * 1000:,.0f}ms" if mf else "—"
        py_s = f"{py * 1000:.2f}ms" if py else "—"
        print(f"{label:<28}{ours_t * 1000:>10.2f}ms{mf_s:>12}{ratio:>10}{py_s:>12}{pr:>9}  "
              f"{target}")
    r = res["reader"]
    print(f"{'read+validate 10,000 entries':<28}{r['read_and_validate_s'] * 1000:>10.0f}ms"
          f"{'':>12}{'':>10}{r['bibtexparser_parse_s'] * 1000:>10.0f}ms"
          f"{r['ratio']:>8.2f}x  <= 1.5x of bibtexparser (its column)")
    if "notes" in res:
        n = res["notes"]
        print(f"\nmetaanalysis render: cold {n['cold']:.1f} s (target < 15 s), no-op "
              f"{n['noop']:.2f} s (target < 1 s), one bibliography touched {n['touched']:.1f} s")
        for line in n["cold_log"]:
            print("   ", line)
        print("    page sizes:", ", ".join(f"{k} {v / 1000:.0f} KB" for k, v in
                                          sorted(n["page_bytes"].items())), "(target < 500 KB)")
    if "targets" in res:
        print_targets(res)
    if "review" in res:
        import bench_review
        bench_review.print_table(res["review"])
    if "screening" in res:
        import bench_screening
        bench_screening.print_table(res["screening"])


def print_targets(res):
    """Issue 15's targets: each measured value, its floor or peer, the target, met or not."""
    g, r = res["targets"], res["reader"]
    print("\nIssue 15 (speed close to the physical limit): measured | floor or peer | target")
    rows = []
    for k, limit in ((10_000, None), (100_000, None), (1_000_000, 0.040), (10_000_000, 0.5)):
        ours, floor = g[f"reml_ci_{k}"], g[f"floor_{k}"]
        peer = g.get(f"pymare_{k}")
        ok = ours <= 3 * floor and (limit is None or ours < limit) and (
            peer is None or peer / ours >= 2)
        rows.append((f"REML + tau2 CI, k = {k:,}", f"{ours * 1000:,.1f} ms",
                     f"numpy floor {floor * 1000:,.1f} ms ({ours / floor:.1f}x)"
                     + (f"; PyMARE {peer * 1000:,.1f} ms ({peer / ours:.1f}x)" if peer else ""),
                     "<= 3x floor" + (f", < {limit * 1000:g} ms" if limit else "")
                     + (", >= 2x PyMARE" if peer else ""), ok))
    for k, limit in ((2_000, 0.005), (100_000, 1.0)):
        t = g[f"loo_on_{k}"]
        rows.append((f"leave-one-out, k = {k:,}", f"{t * 1000:,.1f} ms", "exact refits to 1e-10",
                     f"< {limit * 1000:g} ms", t < limit))
    for k, limit in ((2_000, 0.005), (100_000, 1.0)):
        if f"cumulative_on_{k}" in g:
            t = g[f"cumulative_on_{k}"]
            rows.append((f"cumulative, k = {k:,}", f"{t * 1000:,.1f} ms",
                         "direct fits to 1e-9", f"< {limit * 1000:g} ms (as leave-one-out)",
                         t < limit))
    if "influence_2000" in g:
        t = g["influence_2000"]
        rows.append(("influence(), k = 2,000", f"{t * 1000:,.1f} ms", "the refit loop to 1e-8",
                     "< 5 ms (as leave-one-out)", t < 0.005))
    forest = g["forest_education"]
    if not isinstance(forest, dict):  # a results.json of an earlier run
        forest = {"total": forest}
    fits = forest.get("subgroup_fits")
    rows.append(("education's forest plots", f"{forest['total']:.2f} s",
                 f"of which the subgroups' CHE fits {fits:.2f} s" if fits is not None else "",
                 "< 0.5 s together", forest["total"] < 0.5))
    if "che_education" in g:
        c = g["che_education"]
        rows.append((f"CHE fit, {c['k']:,} effects", f"{c['eigen'] * 1000:,.0f} ms",
                     f"per-cluster inverses {c['inverses'] * 1000:,.0f} ms "
                     f"({c['inverses'] / c['eigen']:.1f}x)", "faster than before",
                     c["eigen"] < c["inverses"]))
    same = r.get("ratio_same_gc", r["ratio"])
    rows.append(("read+validate 10,000 entries", f"{r['read_and_validate_s'] * 1000:,.0f} ms",
                 f"bibtexparser {r.get('bibtexparser_parse_no_gc_s', r['bibtexparser_parse_s']) * 1000:,.0f} ms"
                 f" ({same:.2f}x, same collector setting)", "<= 1.0x", same <= 1.0))
    if "typos_ratio_same_gc" in r:
        rows.append(("  with moderators and typos", f"{r['typos_read_s'] * 1000:,.0f} ms",
                     f"{r['typos_ratio_same_gc']:.2f}x bibtexparser", "<= 1.0x",
                     r["typos_ratio_same_gc"] <= 1.0))
    if "kernels" in res:
        kt = res["kernels"]
        rows.append(("a note's kernel, forked", f"{kt['forked']:.2f} s",
                     f"usual start {kt['usual']:.2f} s ({kt['usual'] / kt['forked']:.1f}x); "
                     f"template {kt['template']:.2f} s per render", "imports done once",
                     kt["forked"] < kt["usual"]))
    if "notes" in res:
        n = res["notes"]
        for label, key, limit in (("make notes, cold", "cold", 6.0),
                                  ("nothing changed", "noop", 0.1),
                                  ("  the same, bytecode kept", "noop_bytecode", 0.1),
                                  ("education.bib edited", "touched_education", 2.5),
                                  ("autonomy.bib edited", "touched_autonomy", 1.5)):
            if key in n:
                cpu, cores = n.get(f"{key}_cpu"), n.get("cores")
                floor = (f"CPU {cpu:.1f} s on {cores} cores: at least {cpu / cores:.1f} s"
                         if cpu is not None and cores and key.startswith(("cold", "touched"))
                         else "")
                rows.append((label, f"{n[key]:.2f} s", floor, f"< {limit:g} s", n[key] < limit))
    for label, ours, ref, target, ok in rows:
        print(f"  {label:<30}{ours:>12}  {ref:<58}{target:<38}{'met' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
