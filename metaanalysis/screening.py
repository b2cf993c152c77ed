"""Screening decisions: stored as an append-only log in the bibliography, read back into each
entry's screening, with conflicts between reviewers and Cohen's kappa.

A decision is one line appended to the theme's ``.bib`` (by ``metaanalysis screen``, or by
hand)::

    @comment{metaanalysis screen: martin2019cognitive; stage = title; decision = include; reviewer = anne; date = 2026-11-26T21:15:03}
    @comment{metaanalysis screen: ortiz2018home; stage = fulltext; decision = exclude; reason = no control group; reviewer = paul; date = 2026-11-27T10:02:11}

``stage`` is ``title`` (title and abstract) or ``fulltext``; ``decision`` is ``include``,
``exclude`` or, at full text, ``not retrieved``; an exclusion at full text needs a ``reason``.
Nothing is ever changed or deleted: a reviewer's later decision on the same record and stage
replaces their earlier one, and the whole history stays in the file (who, when, which stage,
what changed). Reviewers screen blind to each other; where they disagree the record is in
conflict until a decision by the reviewer ``consensus`` settles it.

An entry's ``screening`` field, when it says ``included`` or ``excluded``, is the final word
(hand-annotated bibliographies keep working); a field that contradicts the decisions is
reported. Otherwise the decisions give it: excluded at either stage, included at full text,
pending while a stage is undecided or in conflict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STAGES = ("title", "fulltext")
DECISIONS = {"title": ("include", "exclude"), "fulltext": ("include", "exclude", "not retrieved")}
CONSENSUS = "consensus"

LOG = re.compile(r"^metaanalysis screen:\s*([^\s;]+)\s*;(.*)$", re.S)


@dataclass(frozen=True)
class Decision:
    """One screening decision, as logged."""

    key: str
    stage: str
    decision: str
    reviewer: str
    date: str
    reason: str = ""
    line: int = 0


def parse(line: int, text: str) -> tuple[Decision | None, str]:
    """A logged decision, or None and what is wrong with it."""
    m = LOG.match(text.strip())
    if not m:
        return None, "not a screening decision"
    key, rest = m.group(1), m.group(2)
    item = {}
    for part in rest.split(";"):
        name, eq, value = part.partition("=")
        if eq:
            item[name.strip().lower()] = value.strip()
    stage, decision = item.get("stage", ""), item.get("decision", "").lower()
    if stage not in STAGES:
        return None, f"stage = {stage!r}: use title or fulltext"
    if decision not in DECISIONS[stage]:
        return None, f"decision = {decision!r}: at {stage} use {' or '.join(DECISIONS[stage])}"
    if not item.get("reviewer"):
        return None, "no reviewer: every decision names who made it (reviewer = NAME)"
    if stage == "fulltext" and decision == "exclude" and not item.get("reason"):
        return None, "an exclusion at full text needs its reason (reason = ...)"
    return Decision(key, stage, decision, item["reviewer"], item.get("date", ""),
                    item.get("reason", ""), line), ""


def stage_outcome(decisions: list[Decision], stage: str) -> tuple[str, Decision | None]:
    """The outcome of one stage for one record: ("", None) undecided, ("conflict", None) when
    the reviewers' latest decisions differ (and no consensus settled it), else the decision
    and the decision that gives it."""
    latest: dict[str, Decision] = {}
    for d in decisions:
        if d.stage == stage:
            latest[d.reviewer] = d  # in file order: the later replaces the earlier
    if not latest:
        return "", None
    if CONSENSUS in latest:
        return latest[CONSENSUS].decision, latest[CONSENSUS]
    kinds = {d.decision for d in latest.values()}
    if len(kinds) > 1:
        return "conflict", None
    last = max(latest.values(), key=lambda d: d.line)
    return last.decision, last


def outcome(decisions: list[Decision]) -> tuple[str, str, str]:
    """(screening, reason, stage) that the decisions give a record: ``included``,
    ``excluded`` (with the reason and the stage) or ``pending`` (with the stage awaited, or
    ``conflict``)."""
    title, _ = stage_outcome(decisions, "title")
    full, d = stage_outcome(decisions, "fulltext")
    if full in ("include", "exclude", "not retrieved"):
        if full == "include":
            return "included", "", "fulltext"
        return "excluded", (d.reason if full == "exclude" else "not retrieved"), "fulltext"
    if full == "conflict" or title == "conflict":
        return "pending", "conflict", "fulltext" if full == "conflict" else "title"
    if title == "exclude":
        _, d = stage_outcome(decisions, "title")
        return "excluded", d.reason or "title/abstract screening", "title"
    if title == "include":
        return "pending", "", "fulltext"
    return "pending", "", "title"


def apply_log(path: str, entries, log, problems) -> None:
    """Read the logged decisions into the entries (see the module); problems appended."""
    from .bibliography import Problem

    by_key = {e.key: e for e in entries}
    for line, text in log:
        d, why = parse(line, text)
        if d is None:
            problems.append(Problem(path, line, "-", f"screening decision: {why}"))
            continue
        if d.key not in by_key:
            problems.append(Problem(path, line, d.key, "screening decision for an entry that "
                                    "is not in the file"))
            continue
        by_key[d.key].decisions.append(d)
    for e in entries:
        if not e.decisions:
            continue
        screening, reason, stage = outcome(e.decisions)
        e.stage = stage
        e.conflict = reason == "conflict"
        if e.conflict:
            problems.append(Problem(path, e.line, e.key, f"the reviewers disagree at the {stage} "
                                    "stage: settle it (metaanalysis screen --conflicts; a "
                                    "decision by reviewer consensus)", "warning"))
        field = "screening" in e.fields and e.screening != "pending"
        if field and screening in ("included", "excluded") and screening != e.screening:
            problems.append(Problem(path, e.field_lines["screening"], e.key, f"screening says "
                                    f"{e.screening} but the logged decisions say {screening}: "
                                    "make them agree", "warning"))
        if not field:
            e.screening = screening
            e.reason = "" if reason == "conflict" else reason


def kappa(entries, stage: str, a: str, b: str) -> tuple[float, int]:
    """Cohen's kappa of two reviewers' latest decisions at one stage, over the records both
    screened, and how many those are (Cohen, 1960: (po - pe) / (1 - pe))."""
    pairs = []
    for e in entries:
        latest = {}
        for d in e.decisions:
            if d.stage == stage:
                latest[d.reviewer] = d.decision
        if a in latest and b in latest:
            pairs.append((latest[a], latest[b]))
    n = len(pairs)
    if n == 0:
        return float("nan"), 0
    labels = sorted({x for p in pairs for x in p})
    po = sum(x == y for x, y in pairs) / n
    pe = sum((sum(x == lab for x, _ in pairs) / n) * (sum(y == lab for _, y in pairs) / n)
             for lab in labels)
    return (1.0 if pe == 1 else (po - pe) / (1 - pe)), n


def conflicts(entries) -> list:
    """The entries whose reviewers disagree, with each reviewer's latest decision."""
    out = []
    for e in entries:
        if getattr(e, "conflict", False):
            stage = e.stage
            latest = {}
            for d in e.decisions:
                if d.stage == stage:
                    latest[d.reviewer] = d
            out.append((e, stage, latest))
    return out


def log_line(key: str, stage: str, decision: str, reviewer: str, date: str,
             reason: str = "") -> str:
    """The ``@comment`` line of one decision (values kept to what the log can hold)."""
    def clean(v):
        return re.sub(r"[;{}\n\r]+", " ", str(v)).strip()

    text = (f"metaanalysis screen: {key}; stage = {stage}; decision = {decision}; "
            f"reviewer = {clean(reviewer)}; date = {date}")
    if reason:
        text += f"; reason = {clean(reason)}"
    return "@comment{" + text + "}\n"
