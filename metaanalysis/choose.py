"""One place that turns a model's name and options into a fit, for the notes (``Note``) and
the command line (``metaanalysis pool``), so both always fit the same model to the same data.
"""

from __future__ import annotations

import pandas as pd

#: The models by name: the univariate random- or common-effects model, the three-level
#: model, the CHE working model with CR2 robust variance, and the 2x2 common-effect models.
MODELS = ("rma", "multilevel", "che", "mh", "peto")


def fit_model(table: pd.DataFrame, model: str = "rma", *, method: str = "REML",
              test: str = "z", level: float = 95, measure: str | None = None,
              cluster: str = "key", rho: float = 0.6, mods=None, slab=None):
    """Fit ``model`` to the effects of ``table``.

    - ``rma``: :func:`~metaanalysis.models.rma` with ``method`` and ``test``;
    - ``multilevel``: :func:`~metaanalysis.multilevel.rma_mv`, effects nested in ``cluster``;
    - ``che``: :func:`~metaanalysis.rve.che`, the CHE working model with correlation ``rho``
      and CR2 robust variance;
    - ``mh`` / ``peto``: the Mantel-Haenszel / Peto common-effect models of 2x2 tables.

    With fewer than 2 clusters, ``multilevel`` and ``che`` fall back to ``rma`` (there is
    nothing to nest or to cluster over), as a note with one study needs."""
    model = model.lower()
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: use one of {', '.join(MODELS)}")
    measure = measure or (str(table["measure"].iloc[0]) if "measure" in table and len(table)
                          else "GEN")
    if model in ("multilevel", "che"):
        if cluster not in table:
            raise ValueError(f"no column {cluster!r} to cluster the effects by; columns are "
                             f"{', '.join(map(str, table.columns))}")
        if table[cluster].nunique() >= 2:
            if model == "che":
                from .rve import che
                return che(data=table, cluster=cluster, mods=mods, rho=rho, level=level,
                           measure=measure, slab=slab)
            from .multilevel import rma_mv
            return rma_mv(data=table, cluster=cluster, mods=mods, test=test, level=level,
                          measure=measure, slab=slab, method=method)
    if model in ("mh", "peto"):
        from .binary import rma_mh, rma_peto
        if model == "mh":
            return rma_mh(data=table, measure=measure if measure != "GEN" else "OR",
                          level=level, slab=slab)
        return rma_peto(data=table, level=level, slab=slab)
    from .models import rma
    return rma(data=table, mods=mods, method=method, test=test, level=level, measure=measure,
               slab=slab)
