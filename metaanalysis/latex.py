"""LaTeX in bibliography values: decoded for display, and decoded exactly in annotations.

Two jobs, two functions:

* :func:`latex_to_text` turns a title or an author list into what a reader sees
  (``{\\'E}mploi`` -> ``Émploi``), with pylatexenc; it never raises, however deep the braces.
* :func:`decode_annotation` undoes the escaping that Zotero's Better BibTeX applies to the
  values of ``tex.FIELD: value`` lines (``cochrane\\_cd014666``, ``{\\textbar}``, ``95\\%``,
  ``C{\\^o}te``) before the annotation grammar reads them. It is deliberately small and
  exact: pylatexenc drops ``\\textbar`` and ``\\textless`` and reads ``--`` as a dash and
  ``%`` as a comment, any of which would change an effect's data. A value without a
  backslash or a brace is returned as it is.
"""

from __future__ import annotations

import re
import unicodedata

#: Text-mode symbols that Better BibTeX writes for characters special to LaTeX.
SYMBOLS = {
    "textbar": "|", "textless": "<", "textgreater": ">", "textasciitilde": "~",
    "textasciicircum": "^", "textbackslash": "\\", "textunderscore": "_",
    "textquoteright": "\u2019", "textquoteleft": "\u2018", "textquotedblleft": "\u201c",
    "textquotedblright": "\u201d", "textquotedbl": '"', "textendash": "\u2013",
    "textemdash": "\u2014", "textdollar": "$", "textpercent": "%", "textbraceleft": "{",
    "textbraceright": "}", "textdegree": "\u00b0", "textperiodcentered": "\u00b7",
    "textpm": "\u00b1", "texttimes": "\u00d7", "textmu": "\u00b5", "textellipsis": "\u2026",
    "ldots": "\u2026", "dots": "\u2026", "textsection": "\u00a7", "textregistered": "\u00ae",
    "texttrademark": "\u2122", "textcopyright": "\u00a9", "euro": "\u20ac", "textexclamdown":
    "\u00a1", "textquestiondown": "\u00bf", "guillemotleft": "\u00ab",
    "guillemotright": "\u00bb", "ss": "\u00df", "ae": "\u00e6", "AE": "\u00c6",
    "oe": "\u0153", "OE": "\u0152", "o": "\u00f8", "O": "\u00d8", "l": "\u0142",
    "L": "\u0141", "aa": "\u00e5", "AA": "\u00c5", "i": "\u0131", "j": "\u0237",
}

#: Accent commands and the Unicode combining mark each puts on its letter.
ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303",
           "=": "\u0304", ".": "\u0307", "u": "\u0306", "v": "\u030c", "H": "\u030b",
           "c": "\u0327", "k": "\u0328", "r": "\u030a", "d": "\u0323", "b": "\u0331"}

_TOKEN = re.compile(
    r"\\([_%&#$\{\}])"                                   # \_ \% \& \# \$ \{ \}
    r"|\\(['`^\"~=.]|[uvHckrdb](?=[\s{]))\s*(?:\{(\\?[A-Za-z])\}|(\\?[A-Za-z]))"  # accents
    r"|\\([A-Za-z]+)(?:\{\}|\s+)?"                       # \textbar{} or \textbar + space
    r"|([{}])")                                          # grouping braces: dropped


def _letter(x: str) -> str:
    return {"\\i": "i", "\\j": "j"}.get(x, x)


def _replace(m: re.Match) -> str:
    escaped, accent, braced, bare, name, brace = m.groups()
    if escaped:
        return escaped
    if name is not None:
        if name in SYMBOLS:
            return SYMBOLS[name]
        return m.group(0)  # an unknown command is kept as written
    if accent:
        return unicodedata.normalize("NFC", _letter(braced or bare) + ACCENTS[accent])
    return ""  # a grouping brace


def decode_annotation(value: str) -> str:
    """An annotation value with Better BibTeX's LaTeX escapes undone (see the module)."""
    if "\\" not in value and "{" not in value and "}" not in value:
        return value
    return _TOKEN.sub(_replace, value)


def latex_to_text(text: str) -> str:
    """Decode LaTeX accents and macros (``{\\'e}`` -> é) for display; braces are dropped.

    Never raises: text that pylatexenc cannot read (braces nested hundreds deep) is shown
    with its escapes decoded by :func:`decode_annotation` instead."""
    if "\\" not in text and "{" not in text and "$" not in text:
        return text
    from pylatexenc.latex2text import LatexNodes2Text

    try:
        return LatexNodes2Text().latex_to_text(text).strip()
    except (RecursionError, ValueError, IndexError):
        return decode_annotation(text).strip()
