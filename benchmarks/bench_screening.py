"""Prioritised screening against ASReview's default model, on the same data and the same priors.

    python benchmarks/bench_screening.py [--seeds 5]      # run.py includes it

For each seed, the prior knowledge is one included and one excluded record of the Kitchenham
(2010) screening (../shared/data/screening/, 1,704 records, 45 included), drawn with numpy's
generator seeded with the seed; both tools replay the whole screening from those priors
(``metaanalysis screen simulate`` and ``asreview simulate --prior-idx I J --seed S --n-stop
-1``). Reported: work saved over sampling at 95% recall (WSS@95), recall after screening 10%
of the records, and the time of the whole simulation, averaged over the seeds.

ASReview 3.0.8 runs in its own environment, ``benchmarks/.asreview-venv`` (created here with
pip from the package registry if missing); it is never a dependency of the project.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "screening" / "kitchenham2010.csv"
VENV = HERE / ".asreview-venv"
sys.path.insert(0, str(ROOT))


def priors(labels, seed):
    rng = np.random.default_rng(seed)
    inc, exc = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    return [int(rng.choice(inc)), int(rng.choice(exc))]


def asreview() -> Path | None:
    exe = VENV / "bin" / "asreview"
    if exe.exists():
        return exe
    print("installing ASReview 3.0.8 in benchmarks/.asreview-venv (for comparison only) ...",
          file=sys.stderr)
    ok = subprocess.run([sys.executable, "-m", "venv", str(VENV)]).returncode == 0 and \
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "asreview==3.0.8"]
                       ).returncode == 0
    return exe if ok and exe.exists() else None


def asreview_order(exe: Path, prior, seed: int) -> tuple[list[int], float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sim.asreview"
        t0 = time.perf_counter()
        subprocess.run([str(exe), "simulate", str(DATA), "--prior-idx", *map(str, prior),
                        "--seed", str(seed), "--n-stop", "-1", "-o", str(out)], check=True,
                       capture_output=True, cwd=tmp)  # ASReview leaves a cache file in its folder
        seconds = time.perf_counter() - t0
        with zipfile.ZipFile(out) as z:
            z.extract("results.db", tmp)
        con = sqlite3.connect(Path(tmp) / "results.db")
        rows = dict(con.execute("select record_id, dataset_row from record"))
        order = [rows[r] for (r,) in con.execute("select record_id from results order by rowid")]
        con.close()
    return order, seconds


def latency(n: int = 20_000, decisions: int = 30) -> dict:
    """The interactive screen on ``n`` records: the start (features of every record), then
    the time from a decision to the next record shown (record the decision in the .bib,
    retrain, rank, stopping aid), median and worst over ``decisions``."""
    import csv
    import random
    import time as _t

    from metaanalysis.bibliography import read_bibliography
    from metaanalysis.importing import append_entries, plan_import
    from metaanalysis.prioritise import ScreeningOrder
    from metaanalysis.screening import log_line
    from metaanalysis.searches import read_export

    d = pd.read_csv(DATA)
    rng = random.Random(2)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "records.csv"
        with open(src, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["Title", "Abstract", "Year", "Authors"])
            for i in range(n):
                r = d.iloc[i % len(d)]
                w.writerow([f"{r['title']} {rng.randrange(10**6)}", r["abstract"] if
                            isinstance(r["abstract"], str) else "", r["year"], "Doe J."])
        records = read_export(src)
        bib = tmp / "bibliographies" / "t.bib"
        bib.parent.mkdir()
        bib.write_text("% t\n")
        planned = plan_import([(src, records)], [], source="x", date="2026-01-01", batch=1)
        append_entries(bib, [p.text for p in planned], "% i", root=tmp, check="none")
        entries = read_bibliography(bib).entries
        truth = {p.key: int(d.iloc[i % len(d)]["label_included"]) for i, p in enumerate(planned)}
        t0 = _t.perf_counter()
        order = ScreeningOrder(entries, "bench")
        start = _t.perf_counter() - t0
        queue, times = list(entries), []
        for i in range(decisions):
            e = queue[i]
            label = truth[e.key] if i > 1 else i == 0  # the first included, the second not
            t0 = _t.perf_counter()
            decision = "include" if label else "exclude"
            append_entries(bib, [log_line(e.key, "title", decision, "bench", "2026-01-01")], "",
                           root=tmp, check="none", backup=False)
            order.learn(e.key, decision)
            best = order.next(queue, i + 1)
            queue[i + 1], queue[best] = queue[best], queue[i + 1]
            order.stopping_aid(queue[i + 2:])
            times.append(_t.perf_counter() - t0)
    return {"records": n, "start_s": start, "median_ms": 1000 * float(np.median(times)),
            "worst_ms": 1000 * float(np.max(times))}


def main(seeds: int = 5, with_asreview: bool = True) -> dict:
    from metaanalysis.prioritise import recall_at, simulate, wss

    d = pd.read_csv(DATA)
    texts = (d["title"].fillna("") + " " + d["abstract"].fillna("")).tolist()
    y = d["label_included"].to_numpy(dtype=int)
    exe = asreview() if with_asreview else None
    rows = []
    for seed in range(seeds):
        prior = priors(y, seed)
        t0 = time.perf_counter()
        ours = simulate(texts, y, prior, seed=seed)
        row = {"seed": seed, "prior": prior, "ours_s": time.perf_counter() - t0,
               "ours_wss95": wss(ours, y), "ours_recall10": recall_at(ours, y)}
        if exe:
            theirs, secs = asreview_order(exe, prior, seed)
            row.update({"asreview_s": secs, "asreview_wss95": wss(theirs, y),
                        "asreview_recall10": recall_at(theirs, y)})
        rows.append(row)
    res = {"records": len(y), "included": int(y.sum()), "runs": rows, "latency": latency()}
    print_table(res)
    return res


def print_table(res: dict) -> None:
    runs = pd.DataFrame(res["runs"])
    print(f"\nPrioritised screening, Kitchenham 2010 ({res['records']:,} records, "
          f"{res['included']} included), {len(runs)} seeds (one included + one excluded prior):")
    print(f"{'':<22}{'WSS@95':>9}{'recall@10%':>12}{'seconds':>9}")
    for who, label in (("ours", "metaanalysis"), ("asreview", "ASReview 3.0.8")):
        if f"{who}_wss95" in runs:
            print(f"{label:<22}{runs[f'{who}_wss95'].mean():>9.3f}"
                  f"{runs[f'{who}_recall10'].mean():>12.3f}{runs[f'{who}_s'].mean():>9.1f}")
    if "latency" in res:
        lat = res["latency"]
        print(f"Interactive screen on {lat['records']:,} records: start {lat['start_s']:.1f} s; "
              f"decision to next record {lat['median_ms']:.0f} ms (median), "
              f"{lat['worst_ms']:.0f} ms (worst) (target < 100 ms)")
    if "asreview_s" in runs:
        print(f"{'ratio (ours / theirs)':<22}{runs['ours_wss95'].mean() / runs['asreview_wss95'].mean():>9.2f}"
              f"{runs['ours_recall10'].mean() / runs['asreview_recall10'].mean():>12.2f}"
              f"{runs['ours_s'].mean() / runs['asreview_s'].mean():>9.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--no-asreview", action="store_true")
    a = ap.parse_args()
    main(a.seeds, not a.no_asreview)
