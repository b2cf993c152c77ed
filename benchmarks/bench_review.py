"""Import and deduplication: quality on labelled duplicates, and speed at 20,000 records.

    python benchmarks/bench_review.py            # prints a table; run.py includes it

Quality: the Kitchenham (2010) screening records of ../shared/data/screening/ (1,704 records,
6 labelled duplicate pairs, ASReview's CSV: record_id, title, abstract, year) are imported
as a CSV export and deduplicated; precision and recall are counted on pairs, for the sure
pairs (recorded by --apply) and for every listed pair (sure + to check). The labels are those
of the dataset; the records have no DOI or authors, so only the title rules can work.

Speed: 20,000 records made from those 1,704 titles (each title with 11 variants: case,
punctuation, a dropped word, a year one off) are read from a CSV, planned as entries, appended
to a bibliography, read back and deduplicated, timed end to end (best of 3).
"""

from __future__ import annotations

import csv
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "screening" / "kitchenham2010.csv"
sys.path.insert(0, str(ROOT))


def _pipeline(csv_path: Path, workdir: Path):
    """Read the export, append its records to an empty bibliography, dedup: (pairs, entries)."""
    from metaanalysis.bibliography import read_bibliography
    from metaanalysis.dedup import find_duplicates
    from metaanalysis.importing import append_entries, plan_import
    from metaanalysis.searches import read_export

    records = read_export(csv_path)
    planned = plan_import([(csv_path, records)], [], source="bench", date="2026-01-01", batch=1)
    bib = workdir / "bibliographies" / "bench.bib"
    bib.parent.mkdir(parents=True, exist_ok=True)
    bib.write_text("% benchmark\n")
    append_entries(bib, [p.text for p in planned], "% import", root=workdir)
    entries = read_bibliography(bib).entries
    return find_duplicates(entries), entries, planned


def quality() -> dict:
    import pandas as pd

    d = pd.read_csv(DATA)
    truth = {frozenset((int(a), int(b))) for a, b in
             zip(d["record_id"], d["duplicate_record_id"]) if pd.notna(b)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "kitchenham.csv"
        d[["record_id", "title", "abstract", "year"]].to_csv(src, index=False)
        pairs, entries, planned = _pipeline(src, tmp)
    key_to_id = {p.key: int(rid) for p, rid in zip(planned, d["record_id"])}
    found_sure = {frozenset((key_to_id[p.keep], key_to_id[p.drop])) for p in pairs if p.sure}
    found_all = {frozenset((key_to_id[p.keep], key_to_id[p.drop])) for p in pairs}

    def pr(found):
        tp = len(found & truth)
        return (tp / len(found) if found else float("nan"), tp / len(truth))

    (ps, rs), (pa, ra) = pr(found_sure), pr(found_all)
    return {"records": len(d), "labelled_pairs": len(truth), "sure_pairs": len(found_sure),
            "listed_pairs": len(found_all), "precision_sure": ps, "recall_sure": rs,
            "precision_listed": pa, "recall_listed": ra,
            "missed": sorted(tuple(sorted(p)) for p in truth - found_all),
            "false": sorted(tuple(sorted(p)) for p in found_sure - truth)}


def _variant(title: str, rng: random.Random) -> str:
    words = title.split()
    kind = rng.randrange(4)
    if kind == 0:
        return title.upper()
    if kind == 1:
        return title.replace(":", " -").replace(",", "") + "."
    if kind == 2 and len(words) > 6:
        del words[rng.randrange(1, len(words))]
        return " ".join(words)
    return title.lower()


def speed(n: int = 20_000, repeat: int = 3) -> dict:
    import pandas as pd

    d = pd.read_csv(DATA)
    rng = random.Random(1)
    rows = []
    while len(rows) < n:
        for _, r in d.iterrows():
            if len(rows) >= n:
                break
            year = int(r["year"]) if pd.notna(r["year"]) else 2000
            title = str(r["title"]) if len(rows) < len(d) else _variant(str(r["title"]), rng)
            name = "".join(rng.choice("bcdfghjklmnprstvz") + rng.choice("aeiou")
                           for _ in range(3)).capitalize()
            rows.append({"Title": title, "Year": year + rng.choice((0, 0, 0, 1)),
                         "Authors": f"{name} A.; Other B.",
                         "Source title": "Journal", "DOI": ""})
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "big.csv"
        with open(src, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        for i in range(repeat):
            work = tmp / f"run{i}"
            t0 = time.perf_counter()
            pairs, entries, _ = _pipeline(src, work)
            best = min(best, time.perf_counter() - t0)
    return {"records": n, "seconds": best, "pairs": len(pairs), "sure": sum(p.sure for p in pairs)}


def main() -> dict:
    q = quality()
    s = speed()
    print_table({"quality": q, "speed": s})
    return {"quality": q, "speed": s}


def print_table(res: dict) -> None:
    q, s = res["quality"], res["speed"]
    print(f"\nDeduplication, Kitchenham 2010 ({q['records']:,} records, {q['labelled_pairs']} "
          "labelled duplicate pairs):")
    print(f"  sure pairs (recorded by --apply): {q['sure_pairs']}, precision "
          f"{q['precision_sure']:.2f}, recall {q['recall_sure']:.2f}")
    print(f"  all listed pairs (sure + to check): {q['listed_pairs']}, precision "
          f"{q['precision_listed']:.2f}, recall {q['recall_listed']:.2f}")
    if q["missed"]:
        print(f"  labelled pairs not listed (record ids): {q['missed']}")
    if q["false"]:
        print(f"  sure pairs outside the labels (record ids, to inspect): {q['false']}")
    print(f"Import + deduplication of {s['records']:,} records: {s['seconds']:.1f} s "
          f"(target < 10 s); {s['pairs']:,} pairs listed, {s['sure']:,} sure")


if __name__ == "__main__":
    main()
