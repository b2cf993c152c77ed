"""The text of a file someone else's tool wrote (a search export, a data table): UTF-8, with
or without its byte-order mark, or UTF-16 with its mark (Excel's "Unicode Text", Web of
Science's older tab-delimited exports). Nothing is guessed: any other bytes are an error
that says where. (A bibliography is UTF-8 only: the commands append UTF-8 to it.)"""

from __future__ import annotations

UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


class NotText(ValueError):
    """The bytes are not text in an encoding read here: ``line`` (1-based) and ``reason``."""

    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line, self.reason = line, reason


def decode(raw: bytes, advice: str) -> str:
    """``raw`` as text; raises :class:`NotText` with the line of the first bad byte and
    ``advice`` (how to export the file again) after the reason."""
    utf16 = raw[:2] in UTF16_MARKS
    try:
        return raw.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as exc:
        if utf16:
            line = raw[:exc.start].decode("utf-16", errors="replace").count("\n") + 1
            raise NotText(line, "the file says it is UTF-16 (it starts with its byte-order "
                          f"mark) but is not valid UTF-16 here: {advice}") from None
        line = raw.count(b"\n", 0, exc.start) + 1
        raise NotText(line, f"byte 0x{raw[exc.start]:02x} is not UTF-8: {advice}") from None
