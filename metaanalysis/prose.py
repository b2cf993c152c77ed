"""A note's prose as Markdown: the ``%%say`` and ``%%when`` cell magics.

A researcher writes a paragraph of the note in a cell, in both languages, as Markdown, with
the computed values inserted by name::

    %%when data outcome="mortality"
    [fr]
    Pour la mortalité au suivi, le {measure} est de {est} sur {n_studies} essais.
    [en]
    For mortality at follow-up, the {measure} is {est} across {n_studies} trials.

Run in JupyterLab, the cell shows the paragraph in the note's language with its values filled
in, exactly as the rendered note will; ``make notes`` runs the same cell. The magics are
bound to the :class:`~metaanalysis.notes.Note` the notebook made last (making a ``Note`` in a
notebook registers them), and they call its :meth:`~metaanalysis.notes.Note.say` and
:meth:`~metaanalysis.notes.Note.when`: the values are escaped, so text from a bibliography or
``themes.json`` can never become markup. Why cell magics rather than Markdown cells is in
docs/notes.md.
"""

from __future__ import annotations

import re
import shlex

LANGS = ("fr", "en")
_MARKER = re.compile(r"^\s*\[(fr|en)\]\s*$")


def split_languages(body: str) -> dict[str, str]:
    """The ``[fr]`` and ``[en]`` parts of a prose cell, each stripped of blank edge lines.

    Both languages are required (the two notes must say the same thing), each once, and
    nothing but blank lines may precede the first marker."""
    parts: dict[str, list[str]] = {}
    current = None
    for number, line in enumerate(body.splitlines(), 1):
        m = _MARKER.match(line)
        if m:
            current = m.group(1)
            if current in parts:
                raise ValueError(f"line {number}: [{current}] appears twice; write each "
                                 "language once")
            parts[current] = []
        elif current is None:
            if line.strip():
                raise ValueError(f"line {number}: text before the first language marker; "
                                 "start the cell's text with a line [fr] (then [en])")
        else:
            parts[current].append(line)
    missing = [lang for lang in LANGS if lang not in parts]
    if missing:
        raise ValueError("missing " + " and ".join(f"[{m}]" for m in missing)
                         + ": write the paragraph in French under a line [fr] and in English "
                           "under a line [en]")
    return {lang: "\n".join(lines).strip("\n") for lang, lines in parts.items()}


def parse_line(line: str, magic: str) -> tuple[list[str], dict[str, str]]:
    """The words and ``name=value`` options on a magic's first line (shell quoting)."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ValueError(f"%%{magic} {line}: {exc}; quote values with spaces, e.g. "
                         'outcome="mortality at follow-up"') from None
    args, options = [], {}
    for w in words:
        if "=" in w:
            name, value = w.split("=", 1)
            options[name] = value
        else:
            args.append(w)
    unknown = set(options) - {"outcome"}
    if unknown:
        raise ValueError(f"%%{magic}: unknown option {', '.join(sorted(unknown))}; the only "
                         'option is outcome="NAME" (an outcome of themes.json)')
    return args, options


def register(note) -> None:
    """Give the running IPython (if any) the ``%%say`` and ``%%when`` magics bound to
    ``note``. Outside IPython this does nothing."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the notebook stack
        return
    ip = get_ipython()
    if ip is None:
        return

    def say(line, cell):
        args, options = parse_line(line, "say")
        if args:
            raise ValueError(f"%%say {line}: unexpected {' '.join(args)}; write "
                             '%%say or %%say outcome="NAME"')
        text = split_languages(cell)
        return note.say(fr=text["fr"], en=text["en"], **options)

    def when(line, cell):
        args, options = parse_line(line, "when")
        if len(args) != 1 or args[0] not in CONDITIONS:
            raise ValueError(f"%%when {line}: name one condition, one of "
                             f"{', '.join(CONDITIONS)}: e.g. %%when data "
                             'outcome="mortality"')
        text = split_languages(cell)
        return note.when(args[0], fr=text["fr"], en=text["en"], **options)

    ip.register_magic_function(say, magic_kind="cell", magic_name="say")
    ip.register_magic_function(when, magic_kind="cell", magic_name="when")


#: the conditions of ``%%when`` (see :meth:`metaanalysis.notes.Note.when`)
CONDITIONS = ("data", "no_data", "bias", "records", "no_records")


# ----------------------------------------------------------------------------- lint
#: Words that judge a result (its size, direction, certainty or spread): a note takes them
#: from the rules of :mod:`metaanalysis.judgements` through ``{verdict}``, ``{size}``,
#: ``{certainty}``, ``{spread}`` and ``{plain}``, never types them (stems, either language).
JUDGEMENT_WORDS = {
    "fr": r"modest\w*|faibles?|fort(?:e|es|s)?|important(?:e|es|s)?|modéré\w*|petit\w*|"
          r"large\w*|incertain\w*|nul(?:le|les|s)?|efficac\w*|inefficac\w*|significati\w*|"
          r"amélior\w*|rédui\w*|aggrav\w*|bénéfique\w*|probablement|"
          r"considérable\w*|négligeable\w*|substantiel\w*|vari\w*\s+beaucoup|étroit\w*",
    "en": r"modest\w*|small\w*|large\w*|moderate\w*|strong\w*|weak\w*|uncertain(?!ty)\w*|nil|"
          r"effective\w*|ineffective\w*|significant\w*|improv\w*|reduc\w*|worsen\w*|"
          r"beneficial|probably|likely|substantial\w*|slight\w*|negligible|"
          r"considerable\w*|var(?:y|ies)\s+a\s+lot|wide\w*|narrow\w*",
}
_FIELD = re.compile(r"\{[^{}]*\}")
#: Nouns after which a size word describes the world, not a result ("petites villes",
#: "small towns", "large samples").
_NOT_A_RESULT = re.compile(r"\s+(villes?|towns?|communes?|zones?|areas?|entreprises?|firms?|"
                           r"businesses|échantillons?|samples?)\b", re.I)


def lint_prose(notebook) -> list[str]:
    """Typed numbers and hand-typed judgements in a note's ``%%say`` / ``%%when`` text.

    A note's numbers come from ``{fields}`` and its qualitative words from the documented
    rules (docs/judgements.md): a digit, or a judgement word of :data:`JUDGEMENT_WORDS`,
    outside a field is reported as ``PATH: cell N, [LANG]: "word": what to write instead``.
    A question (a sentence ending with "?") may use such words ("do they improve
    reading?"); Markdown headings are not checked for words."""
    import nbformat

    path = str(notebook)
    nb = nbformat.read(notebook, as_version=4)
    problems = []
    for n, cell in enumerate(nb.cells):
        source = cell.source if cell.cell_type == "code" else ""
        first, _, body = source.partition("\n")
        if not first.startswith(("%%say", "%%when")):
            continue
        try:
            texts = split_languages(body)
        except ValueError:
            continue  # the magic itself reports a malformed cell
        for lang, text in texts.items():
            words = re.compile(rf"\b({JUDGEMENT_WORDS[lang]})\b", re.I)
            for line in text.splitlines():
                plain = _FIELD.sub(" ", line)
                # a digit inside a name (CR2, K-6 is not: it stands alone) is not a number
                for digit in re.findall(r"(?<![A-Za-z])\d+(?:[.,]\d+)?", plain):
                    problems.append(f"{path}: cell {n}, [{lang}]: {digit!r} is a typed number: "
                                    "write a {field} computed from the results")
                if line.lstrip().startswith("#"):
                    continue
                for sentence in re.split(r"(?<=[.!?…])\s+", plain):
                    if sentence.rstrip(" *_").endswith("?"):
                        continue
                    for match in words.finditer(sentence):
                        if _NOT_A_RESULT.match(sentence, match.end()):
                            continue
                        word = match.group(0)
                        problems.append(
                            f"{path}: cell {n}, [{lang}]: {word!r} judges the result by hand: "
                            "write {verdict}, {size}, {certainty}, {spread} or {plain}, which "
                            "come from documented rules (docs/judgements.md)")
    return problems
