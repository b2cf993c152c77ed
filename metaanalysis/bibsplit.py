"""Split BibTeX text into blocks, as bibtexparser 2's splitter does, block for block and line
for line, but quickly.

bibtexparser's splitter walks the text from mark to mark (each brace, quote, comma, equals
sign and newline) in Python: about 70 steps of its loop for an entry of a theme's file, two
thirds of the time the reader takes. Nearly every file is plainer than what that loop
allows, and a plain file is split here with a few regular expressions, one match for an
entry's head and two for each field. What "plain" means is checked, not assumed: anything
else in the text (a block in parentheses, a ``@preamble``, braces nested deeper than
:data:`DEPTH`, a field or ``@string`` given twice, a backslash at the end of a line, a
``{"}`` in a quoted value, an ``@`` that could start a block inside one, a block that does not
close...) and the whole text is split by bibtexparser itself. Either way the blocks are the
same: tests/test_bibsplit.py compares the two on the themes' files, the test data and
generated text (a property test).

:func:`split` gives plain values, not bibtexparser's objects: an entry's fields are tuples
``(name, raw value, line, braced)`` where ``braced`` is the text inside the braces when the
value is one braced group (``{...}``, the usual form), else None. Lines are 0-based, as
bibtexparser's ``start_line``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: How deeply braces may nest inside a value for the quick split (``{\"{u}}`` is 2).
DEPTH = 6

#: A brace that opens or closes a group: not an escaped one (``\{``, ``\}``).
BRACE = re.compile(r"(?<!\\)[{}]")
#: What starts a block, as bibtexparser's splitter reads it (``@type`` before ``{`` or ``(``).
_BLOCK_START = re.compile(r"@\w*[ \t]*(?=[{(])")
#: Inside braces: anything but braces, a backslash (with the character it escapes: neither
#: ``\{`` nor ``\}`` is a brace for BibTeX's splitter) and an ``@`` that could start a block.
_PLAIN_IN_BRACES = r"[^{}\\@]++|\\++[^\n]|@(?!\w*[ \t]*[{(])"


def _inside_braces(depth: int) -> str:
    """What may stand between a pair of braces, with braces nested ``depth`` deep in it."""
    inner = _PLAIN_IN_BRACES
    for _ in range(depth):
        inner = _PLAIN_IN_BRACES + r"|\{(?:" + inner + r")*+\}"
    return r"(?:" + inner + r")*+"


_BRACED = r"\{" + _inside_braces(DEPTH - 1) + r"\}"
#: Between quotes at a value's top level braces and commas are text; a quote ends it.
_QUOTED = r'"(?:[^"\\@]++|\\++[^\n]|@(?!\w*[ \t]*[{(]))*+"'
#: A value's text at its top level: neither a brace, a quote, a comma, a backslash nor an @.
_PLAIN = r'[^{}",\\@]++|\\++[^\n]|@(?!\w*[ \t]*[{(])'
#: A field's value that is one braced group (the usual form), its text inside the braces, and
#: the comma or closing brace that ends it.
_BRACED_VALUE = re.compile(r"\s*+\{(" + _inside_braces(DEPTH - 1) + r")\}\s*+([,}])")
#: A field's value, up to the comma or closing brace that ends it.
_VALUE = re.compile(r"(?:" + _PLAIN + "|" + _QUOTED + "|" + _BRACED + r")*+([,}])")
#: The text before a field's ``=`` (its name) or before the entry's closing brace.
_NAME = re.compile(r'([^{}",=\\@]*+)([=}])')
#: After ``@type{``: the entry's key and the comma or brace after it.
_KEY = re.compile(r'([^{}",=\\@]*+)([,}])')
#: A comment's or a macro's body, up to the brace that closes the block.
_BODY = re.compile(r"((?:" + _PLAIN_IN_BRACES + "|" + _BRACED + r")*+)\}")


class Entry(NamedTuple):
    line: int
    entry_type: str
    key: str
    fields: list  # of (name, raw value, line, braced text or None)


class Comment(NamedTuple):
    """``@comment{...}``: its text, stripped."""
    line: int
    text: str


class Implicit(NamedTuple):
    """Text between blocks (BibTeX ignores it), stripped."""
    line: int
    text: str


class String(NamedTuple):
    """``@string{name = value}``: the raw value, as a field's."""
    line: int
    key: str
    value: str


class Failed(NamedTuple):
    """A block bibtexparser could not split: its raw text and the reason."""
    line: int
    raw: str
    error: str


class DuplicateKey(NamedTuple):
    """An entry (or macro) whose key an earlier one has."""
    line: int
    key: str


class DuplicateField(NamedTuple):
    """An entry with a field name given twice (the same spelling)."""
    line: int
    key: str
    error: str


class Other(NamedTuple):
    """A block the reader takes as it is (``@preamble``)."""
    line: int


def split(text: str) -> list:
    """The blocks of ``text``, in order (see the module's docstring)."""
    blocks = quick_split(text)
    return blocks if blocks is not None else bibtexparser_split(text)


def quick_split(text: str) -> list | None:
    """The blocks of ``text`` if it is plain enough to be split here, else None."""
    if "\\\n" in text or '{"}' in text:  # (bibtexparser counts no line after a backslash)
        return None
    blocks = []
    entry_keys, string_keys = set(), set()
    pos, line, counted = 0, 0, 0  # line = the number of newlines before `counted`
    count = text.count
    n = len(text)
    while True:
        m = _BLOCK_START.search(text, pos)
        end = m.start() if m else n
        gap = text[pos:end]
        stripped = gap.strip()
        if stripped:
            first = pos + (len(gap) - len(gap.lstrip()))
            line += count("\n", counted, first)
            counted = first
            blocks.append(Implicit(line, stripped))
        if m is None:
            return blocks
        at = m.start()
        line += count("\n", counted, at)
        counted, start = at, line
        kind = m.group().lower()
        brace = m.end()
        if text[brace] != "{":
            return None
        if kind.startswith("@comment"):
            b = _BODY.match(text, brace + 1)
            if b is None:
                return None
            blocks.append(Comment(start, b.group(1).strip()))
            pos = b.end()
        elif kind.startswith("@string"):
            k = _NAME.match(text, brace + 1)
            if k is None or k.group(2) != "=":
                return None
            b = _BODY.match(text, k.end())
            if b is None:
                return None
            key = k.group(1).strip()
            if key in string_keys:
                return None
            string_keys.add(key)
            blocks.append(String(start, key, b.group(1).strip()))
            pos = b.end()
        elif kind.startswith("@preamble"):
            return None
        else:
            k = _KEY.match(text, brace + 1)
            if k is None:
                return None
            key = k.group(1).strip()
            fields = []
            pos = k.end()
            if k.group(2) == ",":
                names = set()
                while True:
                    f = _NAME.match(text, pos)
                    if f is None:
                        return None
                    name = f.group(1).strip()
                    if f.group(2) == "}":
                        if name:
                            return None  # a name without a value
                        pos = f.end()
                        break
                    if name in names:
                        return None
                    names.add(name)
                    equals = f.end() - 1
                    v = _BRACED_VALUE.match(text, f.end())
                    if v is not None:
                        braced = v.group(1)
                        value = "{" + braced + "}"
                    else:
                        v = _VALUE.match(text, f.end())
                        if v is None:
                            return None
                        value = text[f.end():v.end() - 1].strip()
                        braced = braced_text(value)
                    line += count("\n", counted, equals)
                    counted = equals
                    fields.append((name, value, line, braced))
                    pos = v.end()
                    if text[v.end() - 1] == "}":
                        break
            if key in entry_keys:
                blocks.append(DuplicateKey(start, key))
            else:
                entry_keys.add(key)
                blocks.append(Entry(start, kind[1:].strip(), key, fields))
        line += count("\n", counted, pos - 1)  # the closing brace's line
        counted = pos - 1


def bibtexparser_split(text: str) -> list:
    """The blocks of ``text`` as bibtexparser 2's splitter finds them (any text)."""
    import logging

    import bibtexparser
    from bibtexparser import model

    # bibtexparser logs each malformed block; the reader reports those itself, with lines
    logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)
    library = bibtexparser.parse_string(text, parse_stack=[])
    blocks = []
    for block in library.blocks:
        line = block.start_line or 0
        if isinstance(block, model.Entry):
            blocks.append(Entry(line, block.entry_type.lower(), block.key, [
                (f.key, f.value, f.start_line or 0, braced_text(f.value))
                for f in block.fields]))
        elif isinstance(block, model.DuplicateBlockKeyBlock):
            blocks.append(DuplicateKey(line, block.key))
        elif isinstance(block, model.DuplicateFieldKeyBlock):
            blocks.append(DuplicateField(line, block.ignore_error_block.key, str(block.error)))
        elif isinstance(block, model.ParsingFailedBlock):
            blocks.append(Failed(line, block.raw, str(block.error)))
        elif isinstance(block, model.ImplicitComment):
            blocks.append(Implicit(line, block.raw.strip()))
        elif isinstance(block, model.ExplicitComment):
            blocks.append(Comment(line, block.comment.strip()))
        elif isinstance(block, model.String):
            blocks.append(String(line, block.key, block.value))
        else:
            blocks.append(Other(line))
    return blocks


def braced_text(value: str) -> str | None:
    """The text inside ``value``'s braces if it is one braced group (as the quick split
    finds it: a brace after a backslash is no brace), else None."""
    if value[:1] != "{" or value[-1:] != "}":
        return None
    depth = 0
    for m in BRACE.finditer(value):
        depth += 1 if m.group() == "{" else -1
        if depth == 0:
            return value[1:-1] if m.end() == len(value) else None
    return None
