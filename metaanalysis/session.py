"""One reviewer's screening session: which record comes next, and recording each decision.

The terminal screen (``metaanalysis screen``) and the JupyterLab widget
(:func:`metaanalysis.widget.screen`) both drive a :class:`ScreeningSession`: the records this
reviewer still has to screen at a stage (blind to the other reviewers' decisions), in the
order the prioritisation model proposes at title/abstract (the file's order at full text),
with decide, skip and undo. Each decision is appended to the bibliography at once (the
session's first decision also keeps a backup), so closing the lab or the terminal loses
nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

from .screening import DECISIONS, log_line, parse, stage_outcome


class ScreeningError(ValueError):
    """A session that cannot start or a decision that cannot be recorded, in words."""


class ScreeningSession:
    """See the module. ``reasons`` are the theme's full-text exclusion reasons."""

    def __init__(self, bib_path: Path | str, *, root: Path | str, stage: str, reviewer: str,
                 reasons=(), only_conflicts: bool = False, prioritise: bool = True):
        from .bibliography import read_bibliography
        from .prioritise import ScreeningOrder

        if stage not in DECISIONS:
            raise ScreeningError(f"stage = {stage!r}: use title or fulltext")
        if not reviewer or not reviewer.strip():
            raise ScreeningError("name the reviewer: every decision says who made it")
        self.path, self.root = Path(bib_path), Path(root)
        self.stage, self.reviewer = stage, reviewer.strip()
        self.reasons = list(reasons)
        if stage == "fulltext" and not self.reasons:
            raise ScreeningError("the theme declares no exclusion_reasons in themes.json: list "
                                 "the reasons for excluding a full text there first")
        bib = read_bibliography(self.path)
        if bib.errors:
            raise ScreeningError("the bibliography has errors:\n" + "\n".join(
                f"  {p}" for p in bib.errors))
        entries = [e for e in bib.entries if not e.duplicate_of]
        self.queue = [e for e in entries if self._todo(e, only_conflicts)]
        self.total = len(self.queue)
        self.done = 0
        self.position = 0
        self._shown: set[int] = set()
        self._history: list[int] = []
        self._backup_made = False
        self.order = ScreeningOrder(entries, self.reviewer) if (
            prioritise and stage == "title" and self.queue and not only_conflicts) else None

    def _todo(self, e, only_conflicts: bool) -> bool:
        if e.screening in ("included", "excluded") and not e.decisions:
            return False  # decided by hand in the bibliography
        if only_conflicts:
            return e.conflict and e.stage == self.stage
        if any(d.stage == self.stage and d.reviewer == self.reviewer for d in e.decisions):
            return False
        if self.stage == "fulltext":
            return stage_outcome(e.decisions, "title")[0] == "include"
        return True

    @property
    def current(self):
        """The record to screen now, or None when every record has been seen."""
        i = self.position
        if i >= len(self.queue):
            return None
        if self.order is not None and i not in self._shown:  # once shown, it keeps its place
            best = self.order.next(self.queue, i)
            self.queue[i], self.queue[best] = self.queue[best], self.queue[i]
        self._shown.add(i)
        return self.queue[i]

    def decide(self, decision: str, reason: str = "") -> None:
        """Record ``include``, ``exclude`` (at full text with a reason of the theme's list)
        or, at full text, ``not retrieved`` for the current record, and move on."""
        from .importing import AppendError, append_entries

        e = self.current
        if e is None:
            raise ScreeningError("no record left to screen")
        if decision not in DECISIONS[self.stage]:
            raise ScreeningError(f"decision {decision!r}: at {self.stage} use "
                                 f"{' or '.join(DECISIONS[self.stage])}")
        if self.stage == "fulltext" and decision == "exclude" and reason not in self.reasons:
            raise ScreeningError(f"reason {reason!r}: choose one of {', '.join(self.reasons)}")
        line = log_line(e.key, self.stage, decision, self.reviewer,
                        time.strftime("%Y-%m-%dT%H:%M:%S"), reason)
        if parse(0, line[len("@comment{"):-2])[0] is None:
            raise ScreeningError(f"could not record {line!r}")
        try:
            saved = append_entries(self.path, [line], "", root=self.root, check="none",
                                   backup=not self._backup_made)
        except (AppendError, OSError) as exc:
            raise ScreeningError(str(exc)) from None
        self._backup_made |= saved is not None
        self.done += 1
        self._history.append(self.position)
        if self.order is not None:
            self.order.learn(e.key, decision)
        self.position += 1

    def skip(self) -> None:
        """Leave the current record for later (it is shown again in the next session)."""
        self.position += 1

    def undo(self) -> None:
        """Back to the previous record decided; a new decision on it replaces the earlier."""
        if self._history:
            self.position = self._history.pop()

    def aid(self) -> str:
        """Where the screening stands: records left, and the stopping aid of the model."""
        left = self.queue[self.position:]
        if self.order is None:
            return f"{len(left)} left"
        return self.order.stopping_aid(left).strip(" ()")
