"""The annotation grammar: which fields and effect keys exist and what each measure needs.

One place holds the vocabulary (metafor's names: ``yi``, ``vi``, ``sei``, ``m1i`` ...), so the
reader, the effect-size code and the documentation agree. The grammar itself is described in
``docs/annotations.md``.
"""

from __future__ import annotations

import difflib
from functools import lru_cache

MEASURES = ("SMD", "MD", "ROM", "OR", "RR", "RD", "COR", "ZCOR", "PR", "PLO", "GEN",
            "UCOR", "SMDH", "SMCC", "SMCR", "PCOR", "ZPCOR", "SPCOR", "PETO", "PHI", "IRR", "IRD",
            "IR", "IRLN", "PLN", "PAS", "PFT")

#: Measures analysed on the log scale; a reported estimate and its CI are ratios.
RATIO_MEASURES = frozenset({"OR", "RR", "ROM", "PETO", "IRR"})

#: Measures analysed on the log scale of a rate or proportion (a reported value is one).
LOG_MEASURES = frozenset({"IRLN", "PLN"})

#: Models without heterogeneity: no tau^2, no prediction interval.
COMMON_EFFECT_METHODS = frozenset({"FE", "MH", "PETO"})
#: Common-effect models computed from 2x2 counts rather than from yi and vi.
TWO_BY_TWO_METHODS = ("MH", "PETO")

#: Risk-of-bias judgements as annotated (overall or per domain), normalised: "yes" to a
#: safeguard (e.g. allocation concealed) is low risk, "no" is high.
ROB_JUDGEMENTS = {"low": "low", "yes": "low", "some concerns": "some concerns",
                  "moderate": "some concerns", "unclear": "some concerns", "high": "high",
                  "serious": "high", "critical": "high", "no": "high", "serious/high": "high",
                  "high risk": "high"}

#: Raw-data forms accepted for each measure, in order of preference (metafor's names).
DATA_FORMS: dict[str, tuple[tuple[str, ...], ...]] = {
    "SMD": (("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"),),
    "MD": (("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"),),
    "ROM": (("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"),),
    "OR": (("ai", "bi", "ci", "di"), ("ai", "n1i", "ci", "n2i")),
    "RR": (("ai", "bi", "ci", "di"), ("ai", "n1i", "ci", "n2i")),
    "RD": (("ai", "bi", "ci", "di"), ("ai", "n1i", "ci", "n2i")),
    "COR": (("ri", "ni"),),
    "ZCOR": (("ri", "ni"),),
    "PR": (("xi", "ni"),),
    "PLO": (("xi", "ni"),),
    "GEN": (),
    "UCOR": (("ri", "ni"),),
    "SMDH": (("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"),),
    # pre-post: the means and SDs at the two time points, the sample size and the
    # correlation between the time points (change-score or raw-score standardisation)
    "SMCC": (("m1i", "m2i", "sd1i", "sd2i", "ni", "ri"),),
    "SMCR": (("m1i", "m2i", "sd1i", "ni", "ri"),),
    # partial correlations from a regression's t statistic, sample size and number of other
    # predictors (semi-partial: and the model's R²)
    "PCOR": (("ti", "ni", "mi"),),
    "ZPCOR": (("ti", "ni", "mi"),),
    "SPCOR": (("ti", "ni", "mi", "r2i"),),
    "PETO": (("ai", "bi", "ci", "di"), ("ai", "n1i", "ci", "n2i")),
    "PHI": (("ai", "bi", "ci", "di"), ("ai", "n1i", "ci", "n2i")),
    # incidence rates: events and person-time in each group, or in one group
    "IRR": (("x1i", "x2i", "t1i", "t2i"),),
    "IRD": (("x1i", "x2i", "t1i", "t2i"),),
    "IR": (("xi", "ti"),),
    "IRLN": (("xi", "ti"),),
    "PLN": (("xi", "ni"),),
    "PAS": (("xi", "ni"),),
    "PFT": (("xi", "ni"),),
}

#: Forms valid for every measure: an effect on the analysis scale, or a reported estimate.
GENERIC_FORMS: tuple[tuple[str, ...], ...] = (
    ("yi", "vi"),
    ("yi", "sei"),
    ("estimate", "ci_lb", "ci_ub"),
    ("estimate", "sei"),
    ("estimate", "pval"),
)

DATA_KEYS = frozenset(
    {"m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i", "ai", "bi", "ci", "di", "ri", "ni", "xi",
     "yi", "vi", "sei", "estimate", "ci_lb", "ci_ub", "pval", "ci_level", "ti", "mi", "r2i",
     "x1i", "x2i", "t1i", "t2i"}
)
EFFECT_TEXT_KEYS = ("outcome", "measure", "source", "id")
EFFECT_KEYS = frozenset(EFFECT_TEXT_KEYS) | DATA_KEYS

#: Usual spellings of the data keys in papers and other software, mapped to the grammar's.
ALIASES = {
    "lb": "ci_lb", "ub": "ci_ub", "lower": "ci_lb", "upper": "ci_ub", "ci_lower": "ci_lb",
    "ci_upper": "ci_ub", "lcl": "ci_lb", "ucl": "ci_ub", "se": "sei", "var": "vi", "v": "vi",
    "p": "pval", "pvalue": "pval", "p_value": "pval", "es": "yi", "g": "yi", "d": "yi",
    "smd": "yi", "n": "ni", "r": "ri", "n1": "n1i", "n2": "n2i", "m1": "m1i", "m2": "m2i",
    "sd1": "sd1i", "sd2": "sd2i", "or": "estimate", "rr": "estimate", "hr": "estimate",
    "est": "estimate", "effect": "estimate", "x": "xi", "events": "xi", "mean1": "m1i",
    "mean2": "m2i", "level": "ci_level", "outcomes": "outcome", "effect_measure": "measure",
}

#: Standard fields of BibTeX, BibLaTeX (its manual's data, special and alias fields) and of
#: the exports of Zotero/Better BibTeX, JabRef and Mendeley: bibliographic description, never
#: a study characteristic. Everything else on an entry is a characteristic (a moderator).
STANDARD_FIELDS = frozenset(
    """abstract addendum address afterword annotation annotator annote archiveprefix
    author authortype bookauthor bookpagination booksubtitle booktitle booktitleaddon chapter
    citation-key commentator copyright crossref date doi edition editor editora editorb
    editorc editortype editoratype editorbtype editorctype eid entryset entrysubtype eprint
    eprintclass eprinttype eventdate eventtitle eventtitleaddon execute file foreword gender
    groups holder howpublished hyphenation ids indexsorttitle indextitle institution
    introduction isan isbn ismn isrn issn issue issuesubtitle issuetitle iswc journal
    journalsubtitle journaltitle journaltitleaddon key keywords label langid langidopts
    language library lista listb listc listd liste listf location mainsubtitle maintitle
    maintitleaddon medium mendeley-groups mendeley-tags month nameaddon note number options
    organization origdate origlanguage origlocation origpublisher origtitle owner pages
    pagetotal pagination part pmcid pmid presort primaryclass publisher pubstate related
    relatedoptions relatedstring relatedtype reprinttitle school series shortauthor
    shorteditor shorthand shorthandintro shortjournal shortseries shorttitle sortkey sortname
    sortshorthand sorttitle sortyear subtitle timestamp title titleaddon translator type
    url urldate usera userb userc userd usere userf venue verba verbb verbc version volume
    volumes xdata xref year
    abstractnote accessdate archive archive_location callnumber extra keyword lccn
    numpages rights shortauthors""".split()
)
GRAMMAR_FIELDS = frozenset({"screening", "effects", "searches"})
FIELD_ALIASES = {"effect": "effects", "screen": "screening", "decision": "screening",
                 "status": "screening", "inclusion": "screening"}

#: tau^2 estimators and tests of the univariate model (metafor's names).
METHODS = ("FE", "DL", "REML", "ML", "PM", "SJ", "HE", "HS", "EB")
TESTS = ("z", "knha")


@lru_cache(maxsize=4096)
def natural_scale(measure: str):
    """The back-transform from the analysis scale to the scale readers see: exp for ratio
    measures (log OR -> OR), the identity otherwise. Works on numbers and arrays."""
    import numpy as np

    return np.exp if measure in RATIO_MEASURES or measure in LOG_MEASURES else _identity


def _identity(x):
    return x


def rob_level(value) -> str:
    """A risk-of-bias judgement as low / some concerns / high / no information."""
    if value is None or (isinstance(value, float) and value != value):
        return "no information"
    return ROB_JUDGEMENTS.get(str(value).strip().lower(), "no information")


@lru_cache(maxsize=4096)
def suggest_effect_key(key: str) -> str | None:
    """The grammar's key that an unknown effect key most probably meant, if any (remembered:
    a moderator's name comes back in every effect, and difflib is slow)."""
    if key in ALIASES:
        return ALIASES[key]
    close = difflib.get_close_matches(key, sorted(EFFECT_KEYS), n=1, cutoff=0.8)
    return close[0] if close else None


@lru_cache(maxsize=4096)
def suggest_field(name: str) -> str | None:
    """The annotation field that an unknown entry field most probably meant, if any."""
    if name in FIELD_ALIASES:
        return FIELD_ALIASES[name]
    close = difflib.get_close_matches(name, sorted(GRAMMAR_FIELDS), n=1, cutoff=0.8)
    return close[0] if close else None


def describe_forms(measure: str) -> str:
    """Human wording of the data a measure accepts, for error messages."""
    forms = DATA_FORMS.get(measure, ()) + GENERIC_FORMS
    return " or ".join("+".join(f) for f in forms)
