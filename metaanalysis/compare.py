"""A reviewer's variant beside the published note: for every outcome, the published and the
variant's k, pooled effect with its CI, prediction interval, heterogeneity (I², or tau² for a
model without I²) and suggested certainty, with what changed marked. Both sides are the notes' open-data summaries (``Note.summary()``), so
the comparison reads exactly the numbers each page shows.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from .grammar import natural_scale
from .text import SOF_WORDS, estimate_ci, num, percent, scrolling, t

#: The compared quantities, in the table's order.
COLUMNS = ("k", "effect", "pi", "I2", "certainty", "verdict")

HEAD = {"fr": {"title": "Comparaison avec la note publiée", "outcome": "Critère",
               "k": "Effets (k)", "effect": "Effet combiné", "pi": "Intervalle de prédiction",
               "I2": "Hétérogénéité", "certainty": "Certitude suggérée", "verdict": "Conclusion",
               "legend": "Chaque case donne la note publiée → cette variante ; ce qui change "
                         "est surligné.", "missing": "absent"},
        "en": {"title": "Compared with the published note", "outcome": "Outcome",
               "k": "Effects (k)", "effect": "Pooled effect", "pi": "Prediction interval",
               "I2": "Heterogeneity", "certainty": "Suggested certainty", "verdict": "Conclusion",
               "legend": "Each cell reads published note → this variant; what changed is "
                         "highlighted.", "missing": "absent"}}


def _cells(outcome: dict | None, lang: str) -> dict:
    """The displayed values of one outcome of a summary (``–`` where there is none)."""
    if outcome is None:
        return {c: HEAD[lang]["missing"] for c in COLUMNS}
    dash = "–"
    if outcome.get("estimate") is None:
        return {"k": num(outcome.get("k", 0), lang, 0), "effect": dash, "pi": dash, "I2": dash,
                "certainty": dash, "verdict": dash}
    tf = natural_scale(outcome["measure"])
    level = outcome.get("level", 95)

    def finite(x):
        return x is not None and math.isfinite(x)

    effect = estimate_ci(tf(outcome["estimate"]), tf(outcome["ci_lb"]), tf(outcome["ci_ub"]),
                         lang, 2, level)
    pi = (f"{num(tf(outcome['pi_lb']), lang)} {'à' if lang == 'fr' else 'to'} "
          f"{num(tf(outcome['pi_ub']), lang)}" if finite(outcome.get("pi_lb")) else dash)
    # as the summary-of-findings table: I², or tau² where I² is not defined (a CHE model)
    i2 = (f"I² = {percent(outcome['I2'], lang, 0)}" if finite(outcome.get("I2"))
          else f"τ² = {num(outcome['tau2'], lang, 3)}" if finite(outcome.get("tau2")) else dash)
    certainty = SOF_WORDS[lang][outcome["certainty"]] if outcome.get("certainty") else dash
    verdict = (t(f"verdict.{outcome['direction']}.{outcome['certainty']}", lang)
               if outcome.get("direction") and outcome.get("certainty") else dash)
    return {"k": num(outcome.get("k", 0), lang, 0), "effect": effect, "pi": pi, "I2": i2,
            "certainty": certainty, "verdict": verdict}


def compare(published: dict, variant: dict, lang: str = "en") -> pd.DataFrame:
    """One row per outcome of either summary (by its label, in the published order): for
    each of :data:`COLUMNS`, the published and the variant's value and whether it changed; the
    verdict is the rule-made conclusion (docs/judgements.md) of each side."""
    def by_label(summary):
        return {o["label"]: o for o in summary.get("outcomes", [])}

    pub, var = by_label(published), by_label(variant)
    rows = []
    for label in list(pub) + [x for x in var if x not in pub]:
        a, b = _cells(pub.get(label), lang), _cells(var.get(label), lang)
        row = {"outcome": label}
        for c in COLUMNS:
            row[f"{c}_published"], row[f"{c}_variant"] = a[c], b[c]
            row[f"{c}_changed"] = a[c] != b[c]
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_html(table: pd.DataFrame, lang: str = "en") -> str:
    """The comparison as a table (every value escaped; changes in ``<mark>``)."""
    H = HEAD[lang]
    head = "".join(f"<th>{html.escape(H[c])}</th>" for c in ("outcome", *COLUMNS))
    body = []
    for _, r in table.iterrows():
        cells = [f"<td>{html.escape(r['outcome'])}</td>"]
        for c in COLUMNS:
            new = html.escape(r[f"{c}_variant"])
            if r[f"{c}_changed"]:
                new = f"<mark>{new}</mark>"
            cells.append(f"<td>{html.escape(r[f'{c}_published'])} → {new}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not len(table):
        return ""
    return (f"<section class='comparison'><h2>{html.escape(H['title'])}</h2>"
            f"<p><small>{html.escape(H['legend'])}</small></p>"
            + scrolling(f"<table class='compare'><thead><tr>{head}</tr></thead><tbody>"
                        + "".join(body) + "</tbody></table>", lang) + "</section>")
