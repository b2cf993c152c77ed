"""One call from data to every requested analysis: what ``metaanalysis pool`` runs.

:func:`read_table` reads an annotated .bib or a CSV (columns named as in the grammar;
only an empty cell is missing, so a country code such as ``NA`` stays data), and
:func:`pool` fits the model and adds the requested analyses to a JSON-ready dict.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .grammar import DATA_KEYS, MEASURES, TWO_BY_TWO_METHODS
from .grammar import METHODS as UNIVARIATE_METHODS

METHODS = UNIVARIATE_METHODS + TWO_BY_TWO_METHODS


def read_table(path: str | Path, measure: str | None = None) -> pd.DataFrame:
    """The effects table of a .bib or a CSV, with ``yi``/``vi`` computed for ``measure``."""
    from .bibliography import not_a_number, read_effects, typed_columns
    from .effects import add_effect_sizes

    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if path.suffix.lower() == ".bib":
        table = read_effects(path)
        if measure:
            table = add_effect_sizes(table, measure)
        return table
    table = _read_csv(path)
    for col in DATA_KEYS & set(table.columns):
        converted = pd.to_numeric(table[col], errors="coerce")
        bad = converted.isna() & table[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise ValueError(f"{path}:{row}: " + not_a_number(col, table[col].iloc[row - 2]))
        infinite = ~np.isfinite(converted) & converted.notna()
        if infinite.any():
            row = int(np.flatnonzero(infinite.to_numpy())[0]) + 2
            raise ValueError(f"{path}:{row}: {col} = {table[col].iloc[row - 2]!r} is beyond the "
                             "range of numbers")
        table[col] = converted
    _check_rows(path, table, measure)
    # other columns: numbers only by the grammar's rule (docs/annotations.md), else text
    typed_columns(table, [c for c in table.columns if c not in DATA_KEYS])
    if measure:
        return add_effect_sizes(table, measure)
    if "yi" not in table or not ({"vi", "sei"} & set(table.columns)):
        raise ValueError(f"{path}: without --measure, a CSV needs columns yi and vi (or sei); "
                         f"with --measure, the raw data (e.g. m1i sd1i n1i m2i sd2i n2i)")
    if "vi" not in table:
        table["vi"] = table["sei"] ** 2
    return table


def _check_rows(path: Path, table: pd.DataFrame, measure: str | None) -> None:
    """Impossible data in a CSV's rows (a negative SD, more events than participants, a
    variance of 0 ...), checked as the .bib reader checks an effect
    (:func:`~metaanalysis.bibliography.check_data`): a ValueError with every such row's line.
    A row missing the data of its measure is not one of them (it is dropped, with a warning
    naming it, as a row with a missing value)."""
    from .bibliography import check_data, data_form

    grammar_measure = (measure or "GEN").upper()
    if grammar_measure not in MEASURES:
        return  # (pool reports an unknown measure)
    cols = [c for c in table.columns if c in DATA_KEYS]
    problems = []
    for row, values in enumerate(table[cols].itertuples(index=False, name=None), start=2):
        data = {c: float(v) for c, v in zip(cols, values) if not pd.isna(v)}
        if data_form(grammar_measure, data) is None:
            continue
        problems += [f"{path}:{row}: {m}" for m in check_data(grammar_measure, data)]
    if problems:
        raise ValueError("\n".join(problems[:20]) + (
            f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""))


#: A number written with a decimal comma (or none): 0,25  -1,5  12  ,5
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?(\d+(,\d+)?|,\d+)\s*$")


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV file as text columns (a code such as 1.10 or 01230 must not become a number on
    the way), its delimiter found from its header (:func:`~metaanalysis.searches.csv_delimiter`).
    In a file delimited by semicolons, the convention of locales whose decimal mark is the
    comma (French Excel's CSV), numbers written with a decimal comma are read as if written
    with a dot: in the effects' data (yi, vi, n1i ...) each such value, in another column
    only where all its values are then numbers by the grammar's rule (else its text stays
    exactly as written: a code such as 1,10)."""
    import io

    from .bibliography import is_numeric_characteristic
    from .searches import csv_delimiter

    from .encodings import NotText, decode

    try:
        text = decode(path.read_bytes(), "the file seems to be in another encoding (e.g. "
                      "Latin-1 or Windows-1252): save the CSV as UTF-8 (in Excel: CSV UTF-8)")
    except NotText as exc:
        raise ValueError(f"{path}:{exc.line}: {exc.reason}") from None
    if not text.strip():  # (pandas' EmptyDataError: nothing else can raise it)
        raise ValueError(f"{path}: the file is empty: a CSV needs a header row with yi and vi "
                         "(or the raw data with --measure)")
    delimiter = csv_delimiter(text.splitlines()[0])
    try:
        table = pd.read_csv(io.StringIO(text), sep=delimiter, keep_default_na=False,
                            na_values=[""], dtype=str)
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from None
    if delimiter == ";":
        for col in table.columns:
            comma = table[col].map(lambda v: isinstance(v, str) and "," in v
                                   and bool(_DECIMAL_COMMA.match(v)))
            if not comma.any():
                continue
            dotted = table[col].where(~comma, table[col].str.replace(",", ".", regex=False))
            if col in DATA_KEYS:  # each number so written (any other value is reported)
                table[col] = dotted
            elif is_numeric_characteristic(dotted):  # the whole column, or its text as is
                table[col] = dotted
    return table


def pool(table: pd.DataFrame, *, measure: str | None = None, method: str = "REML",
         test: str = "z", mods=None, cluster: str | None = None, robust: bool = False,
         bias: bool = False, leave_one_out: bool = False, level: float = 95,
         study: str | None = None, influence: bool = False, cumulative: str | None = None,
         permutations: int = 0, seed: int = 1, subgroup: str | None = None,
         btt=None, regtest: str | None = None, fsn: bool = False, confint: bool = False,
         ni: str | None = None, selmodel=None) -> dict:
    """Fit the model and the requested analyses; return the JSON-ready summary."""
    from .bias import begg, egger, trimfill
    from .sensitivity import leave_one_out as l1o

    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if measure and measure.upper() not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}: use one of {', '.join(MEASURES)}")
    measure = measure.upper() if measure else None
    if "measure" in table and not measure:
        found = table["measure"].dropna().astype(str).unique()
        if len(found) > 1:
            raise ValueError(f"the data mix measures ({', '.join(found)}): pool one at a time "
                             "(--measure M, or --outcome NAME)")
        measure = found[0] if len(found) else None
    measure = measure or "GEN"
    slab = study if study and study in table else ("key" if "key" in table else (
        "study" if "study" in table else None))
    if robust and not cluster:
        raise ValueError("--robust needs --cluster COL: robust variance is computed over "
                         "clusters of effects (e.g. --cluster key for the studies)")
    if robust and method != "REML":  # never a result labelled with what it did not use
        raise ValueError(f"--method {method}: the CHE model (--cluster --robust) is fitted by "
                         "REML only")
    if method in TWO_BY_TWO_METHODS and test.lower() != "z":
        raise ValueError(f"--test {test}: the {method} model tests with z only (as metafor's "
                         f"rma.{'mh' if method == 'MH' else 'peto'})")
    if robust and test.lower() != "z":
        raise ValueError(f"--test {test}: the CHE model (--cluster --robust) already tests "
                         "with t and Satterthwaite degrees of freedom (CR2)")
    for col in (mods or []) + ([cluster] if cluster else []):
        if col not in table:
            raise ValueError(f"no column {col!r}; columns are {', '.join(map(str, table.columns))}")
    if method in TWO_BY_TWO_METHODS and (mods or cluster):
        raise ValueError(f"{method} is a common-effect model for 2x2 tables: it takes no "
                         "--mods or --cluster")
    from .choose import fit_model
    model = (method.lower() if method in TWO_BY_TWO_METHODS else
             ("che" if robust else "multilevel") if cluster else "rma")
    if cluster and table[cluster].nunique() < 2:
        raise ValueError(f"--cluster {cluster}: the effects come from one cluster only; "
                         "a clustered model needs at least 2")
    fit = fit_model(table, model, method=method, test=test, level=level, measure=measure,
                    cluster=cluster or "key", mods=mods or None, slab=slab)
    out = fit.to_dict()
    if bias:
        if cluster or mods or method in TWO_BY_TWO_METHODS:
            raise ValueError("--bias applies to a univariate model without moderators")
        e, b, tf = egger(fit), begg(fit), trimfill(fit)
        out.update({"egger_z": e.zval, "egger_p": e.pval, "begg_tau": b.tau, "begg_p": b.pval,
                    "trimfill_k0": tf.k0, "trimfill_side": tf.side,
                    "trimfill_estimate": tf.estimate})
    if leave_one_out:
        if cluster:
            raise ValueError("--leave-one-out applies to a univariate or MH/Peto model "
                             "(not --cluster)")
        rows = l1o(fit)
        out["leave_one_out"] = [{"omitted": r.omitted, "estimate": r.estimate, "se": r.se,
                                 "tau2": r.tau2, "I2": r.I2} for r in rows.itertuples()]
    univariate_only = cluster or method in TWO_BY_TWO_METHODS
    if (influence or permutations or subgroup) and univariate_only:
        raise ValueError("--influence, --permutations and --subgroup apply to a univariate "
                         "model (no --cluster, not MH or PETO)")
    if cumulative and cluster:
        raise ValueError("--cumulative applies to a univariate or MH/Peto model (not --cluster)")
    if influence:
        from .sensitivity import influence as infl
        t = infl(fit).reset_index()
        out["influence"] = json_rows(t)
    if cumulative:
        if cumulative not in table:
            raise ValueError(f"no column {cumulative!r} to order the cumulative analysis")
        from .sensitivity import cumulative as cumul
        order = pd.to_numeric(table.loc[table.index[:fit.k], cumulative], errors="coerce") \
            if len(table) == fit.k else None
        if order is None:
            raise ValueError("--cumulative needs data without missing values")
        out["cumulative"] = json_rows(cumul(fit, order=order.to_numpy()))
    if permutations:
        from .sensitivity import permutest
        perm = permutest(fit, iter=permutations, seed=seed)
        out["permutation"] = {"pval": [float(p) for p in perm.pval],
                              "QM_pvalue": None if np.isnan(perm.QM_pvalue) else perm.QM_pvalue,
                              "iterations": perm.iterations, "exact": perm.exact, "seed": seed}
    if subgroup:
        from .models import subgroups
        sg = subgroups(table, subgroup, method=method, test=test, level=level, measure=measure)
        out["subgroups"] = {"by": subgroup, "groups": json_rows(sg.table()),
                            "Q_between": sg.Q_between, "Q_between_df": sg.Q_between_df,
                            "Q_between_pvalue": sg.Q_between_pvalue, "QM": sg.QM,
                            "QM_pvalue": sg.QM_pvalue}
    if not cluster and slab and table[slab].duplicated().any():
        n = int(table[slab].duplicated(keep=False).groupby(table[slab]).any().sum())
        warnings.warn(f"{n} {'study contributes' if n == 1 else 'studies contribute'} "
                      "several effects, pooled here as if "
                      f"independent: their dependence is ignored; use --cluster {slab} "
                      f"(three-level model) or --cluster {slab} --robust (CHE model)",
                      UserWarning, stacklevel=2)
    plain = not cluster and method not in TWO_BY_TWO_METHODS
    if (btt is not None or regtest or selmodel) and not plain:
        raise ValueError("--btt, --regtest and --selmodel apply to a univariate model (no "
                         "--cluster, not MH or PETO)")
    if confint and method in TWO_BY_TWO_METHODS:
        raise ValueError("--confint gives intervals of the heterogeneity: a Mantel-Haenszel "
                         "or Peto model has none (use --method REML)")
    if selmodel:
        from .choose import fit_model
        from .selection import selmodel as select
        ml = fit if method == "ML" else fit_model(table, "rma", method="ML", level=level,
                                                  measure=measure, mods=mods or None,
                                                  slab=slab)
        out["selmodel"] = select(ml, steps=selmodel).to_dict()
    if btt is not None:
        from .models import anova
        w = anova(fit, btt=[int(b) if str(b).isdigit() else b for b in btt])
        out["anova"] = {"btt": w.btt, "QM": w.QM, "QMdf": list(w.QMdf) if isinstance(
            w.QMdf, tuple) else w.QMdf, "QMp": w.QMp}
    if regtest:
        from .bias import regtest as rt
        sizes = None
        if regtest in ("ni", "ninv", "sqrtninv"):
            col = ni or next((c for c in ("ni", "n") if c in table), None)
            if col is None or col not in table:
                raise ValueError(f"--regtest {regtest} needs the sample sizes: a column ni "
                                 "(or name it with --ni COL)")
            sizes = pd.to_numeric(table[col], errors="coerce").to_numpy(float)[:fit.k]
        out["regtest"] = rt(fit, regtest, ni=sizes).to_dict()
    if confint:
        from .diagnostics import confint as ci
        out["confint"] = json_rows(ci(fit).random.reset_index())
    if fsn:
        if cluster:
            raise ValueError("--fsn treats the effects as independent: not with --cluster")
        from .bias import fsn as fail_safe
        y, v = np.asarray(fit.yi, float), np.asarray(fit.vi, float)
        out["fsn"] = {t: fail_safe(y, v, type=t).to_dict() for t in
                      ("Rosenthal", "Orwin", "Rosenberg")}
    out["_fit"] = fit
    return out


def json_rows(df: pd.DataFrame) -> list[dict]:
    """DataFrame rows as JSON-ready dicts (NaN as None, numpy scalars as Python's)."""
    rows = []
    for rec in df.to_dict(orient="records"):
        rows.append({k: (None if isinstance(v, float) and np.isnan(v) else
                         v.item() if hasattr(v, "item") else v) for k, v in rec.items()})
    return rows


def run(path, *, outcome: str | None = None, where: dict | None = None, **kw) -> dict:
    """read_table + an optional outcome filter + the ``where`` filter of a note's outcome
    (column = value, compared as written, as themes.json's ``where``) + pool, with warnings
    collected in ``warnings``."""
    from .bibliography import where_mask

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = read_table(path, kw.get("measure"))
        if outcome:
            if "outcome" not in table:
                raise ValueError("--outcome needs an outcome column")
            known = sorted(table["outcome"].dropna().astype(str).unique())
            table = table[table["outcome"].astype(str) == outcome]
            if table.empty:
                raise ValueError(f"no effect with outcome {outcome!r}; outcomes: {', '.join(known)}")
        for col, value in (where or {}).items():
            if col not in table:
                raise ValueError(f"--where {col}={value}: there is no column {col!r}; columns "
                                 f"are {', '.join(map(str, table.columns))}")
            values = sorted(table[col].dropna().astype(str).str.strip().unique())
            table = table[where_mask(table, {col: value})]
            if table.empty:
                shown = ", ".join(values[:20]) + (" ..." if len(values) > 20 else "")
                raise ValueError(f"--where {col}={value}: no effect left; the values of {col} "
                                 f"are {shown or '(none)'}")
        from .effects import measure_losses

        lost = measure_losses(table, kw.get("measure"))
        if lost and not np.isfinite(pd.to_numeric(table["yi"], errors="coerce")).any():
            raise ValueError(f"--measure {kw['measure']}: {lost}")
        if lost:
            warnings.warn(lost)
        out = pool(table, **kw)
    out["warnings"] = [str(w.message) for w in caught]
    return out
