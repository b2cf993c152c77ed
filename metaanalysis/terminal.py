"""What reaches a terminal: text from a bibliography or a search export, shown as text.

A terminal obeys the control characters in what it prints: an escape sequence in a title, a
key or a database's file (``ESC [2J`` clears the screen, ``ESC ]0;...`` sets the window's
title, others move the cursor over what was printed, or, in some terminals, write to the
clipboard) would act rather than show. :func:`printable` shows each control character but
tab and line feed as ``\\xNN``; :class:`TerminalSafe` does so for everything written to a
stream. The ``metaanalysis`` command writes its messages (standard error) through it, and
its standard output too when that is a terminal: a table or JSON written to a file or a pipe
(``extract > effects.csv``) keeps its text exactly. A problem's text (``PATH:LINE: KEY:
...``) is printable wherever it goes.
"""

from __future__ import annotations

import re

#: The C0 controls but tab and line feed, DEL and the C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character but tab and line feed shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class TerminalSafe:
    """A text stream (``sys.stderr``, a terminal's ``sys.stdout``) whose writes pass through
    :func:`printable`; anything else is the stream's own (``flush``, ``fileno``, ``isatty``)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)
