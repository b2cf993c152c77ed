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


def synthetic_bibliography(n: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    out = []
    for i in range(n):
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
            f"    outcome = employed; measure = RR; ai = {a}; n1i = {n1}; ci = {c}; n2i = {n2}; source = Table 2\n"
            f"    outcome = earnings; measure = SMD; m1i = {rng.uniform(900, 1300):.1f}; sd1i = {rng.uniform(200, 400):.1f}; n1i = {n1}; m2i = {rng.uniform(900, 1300):.1f}; sd2i = {rng.uniform(200, 400):.1f}; n2i = {n2}\n"
            f"  }},\n"
            f"}}\n")
    return "\n".join(out)


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(n: int = 10_000) -> dict:
    import bibtexparser

    from metaanalysis.bibliography import read_bibliography

    text = synthetic_bibliography(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.bib"
        path.write_text(text, encoding="utf-8")
        bib = read_bibliography(path)
        assert not bib.errors and len(bib.entries) == n, bib.errors[:3]
        base = best_of(lambda: bibtexparser.parse_string(path.read_text(encoding="utf-8")))
        ours = best_of(lambda: read_bibliography(path))
    row = {"entries": n, "bibtexparser_parse_s": base, "read_and_validate_s": ours,
           "ratio": ours / base}
    print(f"{n} entries: bibtexparser.parse_string {base:.3f} s; metaanalysis read+validate "
          f"{ours:.3f} s; ratio {ours / base:.2f}x (target <= 1.5x)")
    return row


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
