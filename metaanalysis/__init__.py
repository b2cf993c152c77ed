"""metaanalysis: a literature-review and meta-analysis workbench that agrees with metafor.

The data flow one way: bibliography -> effects table -> model results -> figures -> note.
Submodules are imported lazily so that ``metaanalysis check`` starts fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "read_bibliography": "bibliography", "read_effects": "bibliography",
    "read_studies": "bibliography", "check": "bibliography", "BibliographyError": "bibliography",
    "escalc": "effects", "rma": "models", "subgroups": "models", "anova": "models",
    "rma_mh": "binary",
    "rma_peto": "binary", "rma_mv": "multilevel", "vcalc": "multilevel", "che": "rve", "egger": "bias",
    "begg": "bias", "trimfill": "bias", "leave_one_out": "sensitivity",
    "influence": "sensitivity", "cumulative": "sensitivity", "permutest": "sensitivity",
    "Note": "notes", "render": "render", "regtest": "bias", "fsn": "bias",
    "confint": "diagnostics", "blup": "diagnostics", "ranef": "diagnostics",
    "rstandard": "diagnostics", "rstudent": "diagnostics", "robust": "sandwich",
    "selmodel": "selection", "rho_sensitivity": "rve",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'metaanalysis' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
