"""The words a note uses about its results, each from a rule written in docs/judgements.md.

A note never types "small", "probably" or "the effect varies": it asks :func:`judge` for an
outcome's :class:`Judgement` and writes its words. The rules:

- **direction**: where the confidence interval lies against no effect, read with the
  outcome's ``favours`` (themes.json): wholly on the favourable side, ``"benefit"``; wholly
  on the other side, ``"harm"``; across no effect, ``"unclear"``. An outcome without
  ``favours`` (not yet in themes.json) is ``"increase"`` or ``"decrease"``: which way is
  good is the theme's to say, never guessed.
- **size** (standardised mean differences only): |SMD| against a named benchmark, by
  default Cohen (1988: 0.2 small, 0.5 medium, 0.8 large) or, for a theme that says so,
  Kraft (2020, education: 0.05 and 0.20). Other measures have no size word: their numbers
  are on the outcome's own scale (per 1,000 people for a risk).
- **certainty**: the suggested GRADE level of the summary-of-findings table
  (:mod:`metaanalysis.tables`), hedged as GRADE's informative statements do (Santesso et
  al., 2020): high, no hedge; moderate, "probably"; low, "may"; very low, "very uncertain".
- **spread**: the prediction interval: on the same side of no effect as the estimate,
  ``"consistent"``; across no effect while the confidence interval is not, ``"varies"`` (in
  a new setting the effect may be nil or reversed); no interval, ``None``.
- **u3** (standardised differences with a clear direction): Cohen's U3, the share of the
  control group that the average treated person does better than, 100 Φ(|d|).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import distributions as dist
from .grammar import RATIO_MEASURES, natural_scale

#: Cut-points of |SMD| and the size words between them.
BENCHMARKS = {
    "cohen1988": ((0.2, 0.5, 0.8), ("very small", "small", "moderate", "large")),
    "kraft2020": ((0.05, 0.20), ("small", "moderate", "large")),
}
#: Each benchmark's source, as a note cites it beside the rule.
BENCHMARK_SOURCES = {"cohen1988": "Cohen (1988)", "kraft2020": "Kraft (2020)"}
STANDARDISED = ("SMD", "SMDH", "SMCC", "SMCR")
CERTAINTY = ("very low", "low", "moderate", "high")


@dataclass(frozen=True)
class Judgement:
    """What a note may say about one outcome, with the numbers each word came from."""

    direction: str  # "benefit", "harm", "unclear"; "increase", "decrease" without favours
    size: str | None  # a BENCHMARKS word, or None (not a standardised difference)
    certainty: str  # a CERTAINTY level
    spread: str | None  # "consistent", "varies" or None (no prediction interval)
    u3: float | None  # percent, or None
    benchmark: str


def direction(ci_lb: float, ci_ub: float, null: float, favours: str) -> str:
    """``benefit``, ``harm`` or ``unclear``: where the CI lies against no effect. An outcome
    whose ``favours`` is not given (neither ``higher`` nor ``lower``) is never called
    favourable or not: ``increase`` or ``decrease``."""
    if not (math.isfinite(ci_lb) and math.isfinite(ci_ub)) or ci_lb <= null <= ci_ub:
        return "unclear"
    above = ci_lb > null
    if favours not in ("higher", "lower"):
        return "increase" if above else "decrease"
    return "benefit" if above == (favours == "higher") else "harm"


#: The decimals a note shows an estimate with (text.estimate_ci's): a size word is given to
#: the estimate as shown, so that the word and the number beside it agree.
SHOWN_DIGITS = 2


def size(estimate: float, measure: str, benchmark: str = "cohen1988") -> str | None:
    """The size word of a standardised difference (None for other measures), judged on the
    estimate as a note shows it (:data:`SHOWN_DIGITS` decimals): 0.197 is shown as 0.20,
    and is "small" as 0.20 is, not "very small" beside the rule "small from 0.2"."""
    if measure not in STANDARDISED or not math.isfinite(estimate):
        return None
    cuts, words = BENCHMARKS[benchmark]
    shown = abs(float(f"{estimate:.{SHOWN_DIGITS}f}"))
    return words[sum(shown >= c for c in cuts)]


def size_rule(benchmark: str, lang: str) -> str:
    """The sentence that says how :func:`size` words a standardised difference: each word
    from its cut-point (|SMD| at or above it), with the benchmark's source."""
    from .text import num, t

    cuts, words = BENCHMARKS[benchmark]

    def cut(c):  # with the benchmark's own decimals: 0.2, 0.05
        return num(c, lang, len(f"{c:g}".partition(".")[2]))
    ranges = [t("size_below", lang, size=t(f"size.{words[0]}", lang), cut=cut(cuts[0]))]
    ranges += [t("size_from", lang, size=t(f"size.{w}", lang), cut=cut(c))
               for w, c in zip(words[1:], cuts)]
    return t("size_rule", lang, source=BENCHMARK_SOURCES[benchmark],
             ranges=t("size_separator", lang).join(ranges))


#: The fewest studies whose prediction interval the notes read (:func:`judge`).
MIN_SPREAD = 3


def spread(estimate: float, ci_lb: float, ci_ub: float, pi_lb: float, pi_ub: float,
           null: float) -> str | None:
    """``consistent`` (the PI on the estimate's side of no effect), ``varies`` (the PI across
    no effect while the CI is not) or None."""
    if not (math.isfinite(pi_lb) and math.isfinite(pi_ub)):
        return None
    if pi_lb > null or pi_ub < null:
        return "consistent"
    if ci_lb > null or ci_ub < null:
        return "varies"
    return None


def judge(result, favours: str, certainty: str, benchmark: str = "cohen1988") -> Judgement:
    """The :class:`Judgement` of an intercept-only fit whose suggested certainty is
    ``certainty`` (one of :data:`CERTAINTY`)."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown size benchmark {benchmark!r}: use one of "
                         f"{', '.join(BENCHMARKS)}")
    if certainty not in CERTAINTY:
        raise ValueError(f"certainty {certainty!r}: one of {', '.join(CERTAINTY)}")
    pred = result.predict()
    tf = natural_scale(result.measure)
    null = 1.0 if result.measure in RATIO_MEASURES else 0.0
    est, lo, hi = (tf(pred[k]) for k in ("pred", "ci_lb", "ci_ub"))
    pi_lb, pi_ub = tf(pred["pi_lb"]), tf(pred["pi_ub"])
    way = direction(lo, hi, null, favours)
    u3 = None  # "does better than": only where the outcome says which way is better
    if result.measure in STANDARDISED and way in ("benefit", "harm"):
        u3 = 100 * float(dist.norm_cdf(abs(pred["pred"])))
    # a prediction interval from fewer than 3 studies says nothing of other settings (with
    # one study it is the confidence interval): no sentence on the spread
    studies = getattr(result, "n_clusters", None) or result.k
    return Judgement(way, size(pred["pred"], result.measure, benchmark), certainty,
                     spread(est, lo, hi, pi_lb, pi_ub, null) if studies >= MIN_SPREAD else None,
                     u3, benchmark)
