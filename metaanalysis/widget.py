"""Screening in JupyterLab: the same session as ``metaanalysis screen``, as a widget.

In a notebook cell (the kernel started in the project, e.g. by ``make lab``)::

    from metaanalysis.widget import screen
    screen("autonomy", stage="title", reviewer="anne")

shows one record at a time (title, year, journal, abstract, keywords, all escaped), buttons
Include / Exclude / Skip / Undo, at full text the theme's exclusion reasons, and where the
screening stands. Each click appends the decision to the bibliography at once.
"""

from __future__ import annotations

import html
from pathlib import Path


class ScreenWidget:
    """The widget and its :class:`~metaanalysis.session.ScreeningSession` (see the module)."""

    def __init__(self, session):
        from ipywidgets import HTML, Button, Dropdown, HBox, Label, Layout, VBox

        self.session = session
        self.record = HTML(layout=Layout(max_width="60rem"))
        self.status = Label()
        self.message = HTML()
        self.include = Button(description="Include", button_style="success", icon="check")
        self.exclude = Button(description="Exclude", button_style="danger", icon="times")
        self.skip = Button(description="Skip", icon="forward")
        self.undo = Button(description="Undo", icon="undo")
        reasons = list(session.reasons) + (["not retrieved"] if session.stage == "fulltext"
                                           else [])
        self.reason = Dropdown(options=reasons, description="Reason",
                               layout=Layout(display="" if reasons else "none"))
        self.include.on_click(lambda _: self._decide("include"))
        self.exclude.on_click(lambda _: self._decide("exclude"))
        self.skip.on_click(lambda _: self._move(session.skip))
        self.undo.on_click(lambda _: self._move(session.undo))
        self.ui = VBox([self.status, self.record, self.reason,
                        HBox([self.include, self.exclude, self.skip, self.undo]),
                        self.message])
        self._show()

    def _decide(self, decision: str) -> None:
        from .session import ScreeningError

        reason = ""
        if decision == "exclude" and self.session.stage == "fulltext":
            if self.reason.value == "not retrieved":
                decision = "not retrieved"
            else:
                reason = self.reason.value or ""
        try:
            self.session.decide(decision, reason)
            self.message.value = ""
        except ScreeningError as exc:
            self.message.value = f"<p style='color:#D55E00'>{html.escape(str(exc))}</p>"
        self._show()

    def _move(self, step) -> None:
        step()
        self._show()

    def _show(self) -> None:
        s = self.session
        e = s.current
        for b in (self.include, self.exclude, self.skip):
            b.disabled = e is None
        if e is None:
            self.record.value = (f"<p><strong>Nothing left to screen</strong> at the {s.stage} "
                                 f"stage for {html.escape(s.reviewer)}: {s.done} decision(s) "
                                 "recorded.</p>")
            self.status.value = ""
            return
        from .latex import latex_to_text

        f = e.fields

        def text(name):
            return html.escape(latex_to_text(f.get(name, "")))

        parts = [f"<h3>{text('title') or '(no title)'}</h3>",
                 f"<p><code>{html.escape(e.key)}</code> · {html.escape(e.year or 'n.d.')} · "
                 f"{text('journal')}</p>"]
        if f.get("abstract"):
            parts.append(f"<p>{text('abstract')}</p>")
        if f.get("keywords"):
            parts.append(f"<p><em>Keywords:</em> {text('keywords')}</p>")
        self.record.value = "".join(parts)
        self.status.value = (f"{s.stage} · {s.reviewer} · record {s.position + 1} of {s.total}"
                             f" · {s.aid()}")

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)


def screen(theme: str, stage: str = "title", reviewer: str = "", *,
           root: Path | str | None = None, only_conflicts: bool = False) -> ScreenWidget:
    """The screening widget of a theme (see the module)."""
    from .session import ScreeningSession
    from .themes import find_root, load_themes

    root = find_root() if root is None else Path(root)
    themes = load_themes(root)
    if theme not in themes:
        raise ValueError(f"unknown theme {theme!r}: themes are {', '.join(themes)}")
    config = themes[theme]
    session = ScreeningSession(root / config["bibliography"], root=root, stage=stage,
                               reviewer=reviewer, reasons=config.get("exclusion_reasons") or [],
                               only_conflicts=only_conflicts)
    return ScreenWidget(session)
