"""Reading and validating an annotated bibliography vs bibtexparser's own parse, in one run.

    python benchmarks/bench_reader.py [N_ENTRIES]

The bibliography is synthetic (generated here, seeded), shaped like the theme files: every
entry has authors with LaTeX accents, a title, a journal, a DOI, a screening decision,
study characteristics and two effects. The baseline is ``bibtexparser.parse_string(text)``
with its default middleware; ours is :func:`metaanalysis.bibliography.read_bibliography`,
which parses, resolves every value, parses and validates every effect annotation.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path


def synthetic_bibliography(n: int, seed: int = 1, moderators: bool = False,
                           typo_every: int = 0) -> str:
    """``n`` entries; with ``moderators``, every effect carries two moderator keys (each of
    which the reader checks against the grammar's keys: the "did you mean" path); with
    ``typo_every``, one entry in that many has a misspelt key (n1 for n1i), which the reader
    reports with a suggestion."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        extra = "; dose = high; setting = urban" if moderators else ""
        n1_key = "n1" if typo_every and i % typo_every == 0 else "n1i"
        n1, n2 = rng.randint(20, 400), rng.randint(20, 400)
        a, c = rng.randint(0, n1), rng.randint(0, n2)
        out.append(
            f"@article{{study{i},\n"
            f"  author = {{M{{\\\"u}}ller, Jean and Dupont, Ana{{\\\"i}}s and Lee, K.}},\n"
            f"  title = {{A randomised trial number {i} of an employment programme}},\n"
            f"  journal = {{Journal of Synthetic Evidence}},\n"
            f"  year = {{{rng.randint(1980, 2025)}}},\n"
            f"  doi = {{10.0000/synthetic.{i}}},\n"
            f"  screening = {{included}},\n"
            f"  design = {{{rng.choice(['RCT', 'QES'])}}},\n"
            f"  country = {{{rng.choice(['France', 'Germany', 'USA'])}}},\n"
            f"  effects = {{\n"
            f"    outcome = employed; measure = RR; ai = {a}; {n1_key} = {n1}; ci = {c}; n2i = {n2}; source = Table 2{extra}\n"
            f"    outcome = earnings; measure = SMD; m1i = {rng.uniform(900, 1300):.1f}; sd1i = {rng.uniform(200, 400):.1f}; n1i = {n1}; m2i = {rng.uniform(900, 1300):.1f}; sd2i = {rng.uniform(200, 400):.1f}; n2i = {n2}\n"
            f"  }},\n"
            f"}}\n")
    return "\n".join(out)


def best_of(fn, repeat: int = 3) -> float:
    return best_alternating([fn], repeat)[0]


def best_alternating(fns, repeat: int = 5) -> list[float]:
    """The best time of each of ``fns``, run in turn ``repeat`` times (rounded up to an even
    number), in a different order each round (A B C, C B A, B C A, A C B, ...: rotated, and
    every other round reversed): a slow spell of the machine falls on every side alike, so
    the ratios hold where one side timed after the other did not (1.40x then 2.29x for the
    same code, 80 minutes apart); and no side always runs right after the same other one,
    on the caches and the memory that one left. (In a fixed order A B C A B C, the REML fit
    always ran after PyMARE's, which had evicted its data and grown the heap it then
    faulted in, and the numpy floor always after the fit, on the data the fit had just
    read: 3.2-3.7x the floor at 10,000 effects, 2.6-2.9x in another order. A rotation
    alone keeps each side after the same one.)"""
    n = len(fns)
    best = [float("inf")] * n
    for r in range(repeat + repeat % 2):
        order = [(j + r // 2) % n for j in range(n)]
        for i in (reversed(order) if r % 2 else order):
            t0 = time.perf_counter()
            fns[i]()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def without_gc(fn):
    """``fn`` with the cyclic garbage collector paused, as our reader runs its parse."""
    import gc

    def run():
        enabled = gc.isenabled()
        gc.disable()
        try:
            return fn()
        finally:
            if enabled:
                gc.enable()
    return run


def main(n: int = 10_000) -> dict:
    """Our read + validate against bibtexparser's parse of the same file: as bibtexparser's
    users run it (collector on) and on equal terms (collector paused on both sides, as our
    reader pauses it); then a file with moderators and 1% misspelt keys (the suggestion
    path)."""
    import bibtexparser

    from metaanalysis.bibliography import read_bibliography

    row = {"entries": n}
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (("plain", synthetic_bibliography(n)),
                           ("moderators_typos", synthetic_bibliography(n, moderators=True,
                                                                       typo_every=100))):
            path = Path(tmp) / f"{name}.bib"
            path.write_text(text, encoding="utf-8")
            bib = read_bibliography(path)
            expected = n // 100 if name != "plain" else 0
            assert len(bib.entries) == n and len(bib.errors) == expected, bib.errors[:3]

            def parse():
                return bibtexparser.parse_string(path.read_text(encoding="utf-8"))
            sides = [lambda: read_bibliography(path), without_gc(parse)]
            if name == "plain":
                sides.append(parse)  # as bibtexparser's users run it
            ours, same_gc, *theirs = best_alternating(sides)
            if name == "plain":
                row.update(bibtexparser_parse_s=theirs[0], read_and_validate_s=ours,
                           bibtexparser_parse_no_gc_s=same_gc)
                row["ratio"] = ours / row["bibtexparser_parse_s"]
                row["ratio_same_gc"] = ours / same_gc
            else:
                row.update(typos_read_s=ours, typos_bibtexparser_no_gc_s=same_gc,
                           typos_ratio_same_gc=ours / same_gc, typos_reported=len(bib.errors))
    print(f"{n} entries: bibtexparser.parse_string {row['bibtexparser_parse_s']:.3f} s "
          f"({row['bibtexparser_parse_no_gc_s']:.3f} s with the collector paused, as ours); "
          f"metaanalysis read+validate {row['read_and_validate_s']:.3f} s; ratio "
          f"{row['ratio_same_gc']:.2f}x on equal terms (target <= 1.0x); with moderators and "
          f"{row['typos_reported']} misspelt keys: {row['typos_read_s']:.3f} s, "
          f"{row['typos_ratio_same_gc']:.2f}x")
    return row


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
