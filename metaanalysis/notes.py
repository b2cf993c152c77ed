"""What a theme notebook calls: one object per note, one line per section.

A :class:`Note` reads the theme's bibliography, applies the note's parameters (measure,
estimator, test, outcome, exclusions, level, language), pools each main outcome and hands
back figures, tables and sentences whose numbers come from the fitted results, so that no
number in a note is typed by hand.
"""

from __future__ import annotations

import contextlib
import html
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .bibliography import where_mask
from .grammar import natural_scale, rob_level
from .models import said as fit_said
from .sanitize import escape_markdown
from .text import (SOF_WORDS, WORDS, counted, estimate_ci, long_date, num, percent,
                   pooled_measure, pvalue, scrolling, t)

from .themes import (MODELS, PARAMETERS, ROOT, check_model_parameters, find_root,  # noqa: F401
                     load_themes, validate_parameters)


#: Version of the open-data JSON layout. 2: keys are the results' own names, as metafor's
#: (ci_lb, ci_ub, pval, pi_lb, pi_ub, tau2_ci_lb ...; version 1 said ci_lower, pvalue ...).
SCHEMA_VERSION = 3


@dataclass
class OutcomeResult:
    """One pooled outcome: its label, the data pooled and the fitted model."""

    outcome: str
    label: str
    favours: str
    data: pd.DataFrame
    result: object  # RMAResult, or None when there are no effects
    #: what the fit warned (non-convergence ...), shown beside the result, never silenced
    warnings: list = field(default_factory=list)

    @property
    def n_studies(self) -> int:
        return int(self.data["key"].nunique()) if len(self.data) else 0


class Note:
    """A theme's note with its parameters; see the module docstring."""

    def __init__(self, theme: str, *, measure: str = "", method: str = "REML", test: str = "z",
                 outcome: str = "", exclude: str = "", level: float = 95, lang: str = "fr",
                 model: str = "", root: Path | str | None = None):
        from .bibliography import read_all, read_effects, read_studies

        p = validate_parameters(dict(theme=theme, measure=measure, method=method, test=test,
                                     outcome=outcome, exclude=exclude, level=level, lang=lang,
                                     model=model))
        root = find_root() if root is None else Path(root)
        themes = load_themes(root)
        if theme not in themes:
            raise ValueError(f"unknown theme {theme!r}: themes are {', '.join(themes)}")
        self.root = Path(root)
        self.params = p
        self.slug = theme
        self.config = themes[theme]
        check_model_parameters(p, self.config)  # e.g. method = DL with the CHE model: refused
        self.lang = p["lang"]
        self.bibliography = self.root / self.config["bibliography"]
        # read once: the studies, the effects and the provenance hash come from the same bytes
        bib, = read_all(self.bibliography)
        self.sha256 = bib.sha256
        self.studies = read_studies(bib)
        effects = read_effects(bib)
        self.all_effects = effects
        self.effects, self.excluded = apply_exclusions(effects, p["exclude"])
        self.outcomes = self._pool()
        from .prose import register
        register(self)  # the %%say and %%when prose cells of the notebook (prose.py)

    # ------------------------------------------------------------------ computing
    def _targets(self) -> list[dict]:
        configured = self.config.get("outcomes", [])
        if not self.params["outcome"]:
            if configured or not len(self.all_effects):
                return configured or [{"outcome": "", "where": {}, "favours": "",
                                       "label": {"fr": "–", "en": "–"}}]
            # which side is favourable is the theme's to say (themes.json): not guessed
            return [{"outcome": o, "where": {}, "favours": "", "label": {"fr": o, "en": o}}
                    for o in sorted(self.all_effects["outcome"].unique())]
        wanted = self.params["outcome"]
        for c in configured:
            if wanted in (c["outcome"], c["label"]["en"], c["label"]["fr"]):
                return [c]
        if wanted not in set(self.all_effects.get("outcome", [])):
            import difflib

            known = sorted(set(self.all_effects.get("outcome", [])))
            # the theme's own labels too (a French reviewer types "mortalité"), and the
            # closest of all as a suggestion
            labels = {c["label"][lang]: c["outcome"] for c in configured for lang in ("fr", "en")}
            close = difflib.get_close_matches(wanted.lower(), [*known, *labels], n=1,
                                              cutoff=0.6)
            if not close:
                close = [x for x in [*known, *labels] if wanted.lower() in x.lower()][:1]
            hint = f" (did you mean {labels.get(close[0], close[0])!r}?)" if close else ""
            raise ValueError(f"outcome = {wanted!r} is not in the bibliography{hint}; outcomes "
                             f"are: {', '.join(known)} (or a theme outcome's label, in "
                             "French or English)")
        return [{"outcome": wanted, "where": {}, "favours": "",
                 "label": {"fr": wanted, "en": wanted}}]

    def _pool(self) -> list[OutcomeResult]:
        from .effects import add_effect_sizes, measure_losses

        out = []
        for target in self._targets():
            rows = self.effects[self.effects["outcome"] == target["outcome"]] if len(
                self.effects) else self.effects
            if target.get("where") and len(rows):
                rows = rows[where_mask(rows, target["where"])]
            lost = None
            if self.params["measure"] and len(rows):
                rows = add_effect_sizes(rows, self.params["measure"])
                # effects of another measure that cannot be converted: said, never dropped
                # silently (an SMD is no odds ratio)
                lost = measure_losses(rows, self.params["measure"], self.lang)
                rows = rows[np.isfinite(rows["yi"]) & np.isfinite(rows["vi"])]
            res, caught = None, []
            if len(rows):
                with _warnings_said(self.lang) as caught:
                    res = self._fit(rows)
            said = ([lost] if lost else []) + caught
            several = _dependent_effects(rows, res, self.lang)
            if several:  # said as `metaanalysis pool` says it, beside the result
                said.append(several)
            out.append(OutcomeResult(target["outcome"], target["label"][self.lang],
                                     target.get("favours", ""), rows, res,
                                     list(dict.fromkeys(said))))
        return out

    @property
    def pooled_effects(self) -> pd.DataFrame:
        """The effects this note's results rest on: those pooled in at least one of its
        outcomes (after the ``exclude`` parameter, the outcomes' ``where`` and the
        ``measure``), each once. The bibliography may hold more (other outcomes or time
        points): the note's evidence base and its risk-of-bias figure count these only."""
        used = [o.data for o in self.outcomes if o.result is not None and len(o.data)]
        if not used:
            return self.effects.iloc[:0]
        rows = pd.concat(used)
        return rows[~rows.index.duplicated()]

    @property
    def model(self) -> str:
        """The model used: the ``model`` parameter, else the theme's, else ``rma``."""
        return self.params["model"] or self.config.get("model", {}).get("type", "rma")

    def _fit(self, rows):
        from .choose import fit_model

        p, spec = self.params, self.config.get("model", {})
        return fit_model(rows, self.model, method=p["method"], test=p["test"],
                         level=p["level"], measure=str(rows["measure"].iloc[0]),
                         cluster=spec.get("cluster", "key"), rho=spec.get("rho", 0.6))

    # ------------------------------------------------------------------ words and numbers
    def outcome(self, name) -> int:
        """The position of an outcome given by its name in themes.json (``"mortality"``),
        its label in either language, or its position; an unknown name is an error that
        lists the valid ones. Every method that takes ``outcome=`` accepts a name."""
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            if not 0 <= name < len(self.outcomes):
                raise IndexError(f"outcome {name}: the note has {len(self.outcomes)} "
                                 f"outcome(s): {', '.join(o.outcome for o in self.outcomes)}")
            return int(name)
        targets = self._targets()
        found = [i for i, o in enumerate(self.outcomes) if name in {
            o.outcome, o.label, *(targets[i].get("label", {}).values() if i < len(targets)
                                   else ())}]
        if len(found) == 1:
            return found[0]
        if found:  # the same outcome at several time points: the label says which
            raise ValueError(f"outcome {name!r} is pooled {len(found)} times in this note: "
                             "name it by its label, one of " + ", ".join(
                                 repr(self.outcomes[i].label) for i in found))
        raise ValueError(f"unknown outcome {name!r}: the note's outcomes are "
                         f"{', '.join(repr(o.outcome) for o in self.outcomes)}")

    def fields(self, i=0) -> dict:
        """The numbers of outcome ``i``, formatted in the note's language, for :meth:`say`."""
        i = self.outcome(i)
        o = self.outcomes[i]
        r = o.result
        lang, lvl = self.lang, self.params["level"]
        if not len(self.all_effects):
            return {"outcome": o.label, "k": 0, "n_studies": 0}
        base = {"outcome": o.label, "k": len(o.data), "n_studies": o.n_studies,
                "k_effects": counted(len(o.data), "effect", lang),
                "studies_n": counted(o.n_studies, "study", lang), "level": num(lvl, lang, 0)}
        years = pd.to_numeric(o.data["year"], errors="coerce").dropna() if "year" in o.data \
            else pd.Series(dtype=float)
        if len(years):
            base.update({"year_min": int(years.min()), "year_max": int(years.max())})
        if r is None:
            return base
        tf = natural_scale(r.measure)
        pred = r.predict()
        base.update({
            "measure": t(f"measure_name.{r.measure}", lang),
            "est": estimate_ci(tf(pred["pred"]), tf(pred["ci_lb"]), tf(pred["ci_ub"]), lang,
                               2, lvl),
            "estimate": num(tf(pred["pred"]), lang),
            "pi": (f"{num(tf(pred['pi_lb']), lang)} {'à' if lang == 'fr' else 'to'} "
                   f"{num(tf(pred['pi_ub']), lang)}") if np.isfinite(pred["pi_lb"]) else "–",
            "i2": percent(r.I2, lang, 0) if np.isfinite(r.I2) else "–",
            "tau2": num(r.tau2, lang, 3),
            # a three-level (CHE) model's two components, whose sum is its tau2
            **({"sigma2_between": num(r.sigma2_between, lang, 3),
                "sigma2_within": num(r.sigma2_within, lang, 3)}
               if getattr(r, "sigma2_between", None) is not None else {}),
            "p": pvalue(float(r.pval[0]), lang),
            "method": r.model_name,
            "pooled_measure": pooled_measure(r.measure, lang),
        })
        base.update(self.judgement_fields(i))
        return base

    def bias_tests(self, i=0):
        """Egger's test and trim-and-fill of outcome ``i`` (computed once), or None when they
        do not apply (a multilevel model, a meta-regression or fewer than 3 effects)."""
        from .bias import egger, trimfill
        from .models import RMAResult
        from .multilevel import MVResult

        i = self.outcome(i)
        cache = self.__dict__.setdefault("_bias", {})
        if i not in cache:
            r = self.outcomes[i].result
            # what the tests warn (a trim-and-fill refit that does not converge) is said
            # with their sentence in the outcome's section (:meth:`bias_warnings`)
            with _warnings_said(self.lang) as said:
                if _is_che(r):
                    if r.n_clusters >= 4:
                        from .bias import egger_robust
                        cache[i] = (egger_robust(r), None)
                    else:
                        cache[i] = None
                elif (isinstance(r, RMAResult) and not isinstance(r, MVResult) and r.k >= 3
                      and len(r.beta) == 1):
                    cache[i] = (egger(r), trimfill(r))
                else:
                    cache[i] = None
            self.__dict__.setdefault("_bias_said", {})[i] = said
        return cache[i]

    def bias_warnings(self, i=0) -> list[str]:
        """What Egger's test and trim-and-fill of outcome ``i`` warned, in the note's
        language (empty if nothing)."""
        i = self.outcome(i)
        self.bias_tests(i)
        return self._bias_said[i]

    def bias_fields(self, i=0) -> dict:
        """Egger's p and trim-and-fill, formatted for :meth:`say`."""
        i = self.outcome(i)
        tests = self.bias_tests(i)
        if tests is None:
            return {}
        r = self.outcomes[i].result
        e, tf = tests
        out = {"egger_p": pvalue(e.pval, self.lang)}
        if tf is not None:
            back = natural_scale(r.measure)
            out.update({"k0": tf.k0, "trimfill_est": num(back(tf.estimate), self.lang),
                        "k0_studies": counted(tf.k0, "missing_study", self.lang)})
        return out

    def search_log(self) -> str:
        """The searches recorded in the bibliography (``metaanalysis import``): each database
        with its search dates, in words; "none yet" when no record carries its search."""
        s = self.studies
        dates: dict[str, set] = {}
        if "databases" in s and "search_dates" in s:
            for dbs, ds in zip(s["databases"].fillna(""), s["search_dates"].fillna("")):
                for db, d in zip(str(dbs).split("; "), str(ds).split("; ")):
                    if db.strip():
                        dates.setdefault(db.strip(), set()).add(d.strip())
        if not dates:
            return t("no_search_yet", self.lang)

        def days(ds):
            return ", ".join(long_date(x, self.lang) for x in sorted(ds) if x) or "?"

        return ", ".join(f"{db} ({days(ds)})" for db, ds in sorted(dates.items()))

    def screening_counts(self) -> dict:
        """Where the review stands, as the PRISMA diagram counts it
        (:func:`~metaanalysis.figures.prisma2020`): every record, the duplicates removed,
        and among the others the included, excluded and still pending ones. ``n_*`` are
        numbers; ``records_n``, ``included_n``, ``effects_n`` are the counts with their
        words in the form the count asks ("0 étude incluse", "1 334 effets extraits"), and
        ``screening_clause`` names those excluded, pending and duplicates where there are
        any (" (1 exclue, 6 en attente de tri, 2 doublons)", else nothing). Counted once
        (every paragraph of the note asks for them)."""
        if "_screening_counts" not in self.__dict__:
            self._screening_counts = self._count_screening()
        return dict(self._screening_counts)

    def _count_screening(self) -> dict:
        from .figures import prisma2020

        s, lang = self.studies, self.lang
        flow = prisma2020(s) if len(s) else {}
        n_dups = flow.get("duplicates_removed") or 0
        n_pending = flow.get("awaiting_screening", 0) + flow.get("awaiting_fulltext", 0)
        n_included = int((s["screening"] == "included").sum())
        n_excluded = len(s) - n_dups - n_pending - n_included
        parts = [counted(n, key, lang) for n, key in ((n_excluded, "excluded_record"),
                                                      (n_pending, "pending_record"),
                                                      (n_dups, "duplicate")) if n]
        return {"searched": self.search_log(),
                "n_records": len(s), "n_included": n_included, "n_excluded": n_excluded,
                "n_pending": n_pending, "n_duplicates": n_dups,
                "n_effects": len(self.all_effects),
                "n_excluded_by_parameter": int(self.excluded["key"].nunique())
                if len(self.excluded) else 0,
                "records_n": counted(len(s), "record", lang),
                "included_n": counted(n_included, "included_study", lang),
                "effects_n": counted(len(self.all_effects), "extracted_effect", lang),
                "screening_clause": f" ({', '.join(parts)})" if parts else ""}

    def say(self, fr: str, en: str, outcome=0):
        """A paragraph in the note's language, its ``{fields}`` filled from the results."""
        from IPython.display import Markdown

        text = fr if self.lang == "fr" else en
        fields = {**self.screening_counts(), **self.fields(outcome)} if self.outcomes else \
            self.screening_counts()
        if "{egger_p" in text or "{k0" in text or "{trimfill_est" in text:  # also {k0_studies}
            fields.update(self.bias_fields(outcome))
        # values come from bibliographies and themes.json: literal text, never markup
        try:
            return Markdown(text.format(**{k: escape_markdown(v) for k, v in fields.items()}))
        except (KeyError, IndexError) as exc:
            raise ValueError(f"{{{exc.args[0]}}} is not a value of this note: the values are "
                             f"{', '.join('{' + k + '}' for k in sorted(fields))}, and where a "
                             "bias check applies {egger_p}, {k0}, {trimfill_est}; write {{ and "
                             "}} for literal braces") from None

    def when(self, condition: str, fr: str, en: str, outcome=0):
        """A paragraph shown only when ``condition`` holds: ``"data"`` (outcome ``i`` has been
        pooled), ``"no_data"`` (the theme has no effects yet), ``"records"`` /
        ``"no_records"`` (the bibliography has records, or none yet) or ``"bias"`` (a bias check
        applies)."""
        from IPython.display import Markdown

        if self.outcomes:
            outcome = self.outcome(outcome)
        ok = {"data": bool(self.outcomes) and self.outcomes[outcome].result is not None,
              "no_data": not len(self.all_effects),
              "records": bool(len(self.studies)), "no_records": not len(self.studies),
              "bias": bool(self.outcomes) and bool(self.bias_fields(outcome))}[condition]
        return self.say(fr, en, outcome) if ok else Markdown("")

    def section(self, outcome=0, subgroup: str | None = None):
        """An outcome's standard section in one call: its heading, the sentence with the
        pooled effect, any fit warning, the forest plot (by ``subgroup`` if given), the
        funnel plot and the sentence on small-study effects, where each applies. Each part
        is its own output (figures with their SVG and PNG); a note can still write its own
        text around it with ``%%say``."""
        i = self.outcome(outcome)
        o = self.outcomes[i]
        heading = "### {outcome}"
        if o.result is None:  # with what left its effects out, if anything did
            return Parts([self.say(heading, heading, i),
                          self.say(t("no_data", "fr") + ".", t("no_data", "en") + ".", i),
                          self.notice(i) if o.warnings else None])
        dependent = _is_che(o.result)
        result = "section_result_dependent" if dependent else "section_result"
        parts = [self.say(heading, heading, i),
                 self.say(t(result, "fr"), t(result, "en"), i)]
        if o.warnings:
            parts.append(self.notice(i))
        parts.append(self._forest_figure(i, subgroup=subgroup))
        parts.append(self.funnel(i))
        bias = self.bias_fields(i)
        if bias:
            key = ("section_bias_robust" if "k0" not in bias
                   else "section_bias_none" if bias["k0"] == 0 else "section_bias")
            parts.append(self.say(t(key, "fr"), t(key, "en"), i))
            parts.append(self._notice(o.label, self.bias_warnings(i)))
        if dependent and len(o.result.beta) == 1:
            parts.append(self.rho_sensitivity(i))
        return Parts(parts)

    def rho_sensitivity(self, outcome=0):
        """For a CHE fit: the pooled effect refitted for assumed correlations ρ from 0 to 0.8
        between a study's effects (:func:`metaanalysis.rve.rho_sensitivity`), as a sentence
        and a small table; nothing for other models."""
        from IPython.display import HTML

        from .rve import rho_sensitivity

        i = self.outcome(outcome)
        r = self.outcomes[i].result
        if not _is_che(r) or len(r.beta) != 1:
            return HTML("")
        with _warnings_said(self.lang) as said:  # a refit's, said below the table
            table = rho_sensitivity(r)
        back = natural_scale(r.measure)
        lang, lvl = self.lang, self.params["level"]
        lo, hi = num(back(table["estimate"].min()), lang), num(back(table["estimate"].max()), lang)
        sentence = t("rho_sentence" if lo != hi else "rho_sentence_stable", lang).format(
            rho=num(r.rho, lang, 1), rho_min=num(table["rho"].min(), lang, 1),
            rho_max=num(table["rho"].max(), lang, 1), est_min=lo, est_max=hi)
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in (
                num(row.rho, lang, 1),
                estimate_ci(back(row.estimate), back(row.ci_lb), back(row.ci_ub), lang, 2, lvl),
                num(row.sigma2_between, lang, 3), num(row.sigma2_within, lang, 3))) + "</tr>"
            for row in table.itertuples())
        head = "".join(f"<th>{html.escape(h)}</th>" for h in t("rho_head", lang))
        notice = self._notice(self.outcomes[i].label, said)
        return HTML(f"<p>{html.escape(sentence)}</p>" + scrolling(
            f"<table class='results rho'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>"
            "</table>", lang) + notice.data)

    def sections(self):
        """Every main outcome's standard section (:meth:`section`), in the order of
        ``themes.json``; nothing while the theme has no outcome and no effect."""
        return Parts([self.section(i) for i, o in enumerate(self.outcomes) if o.outcome])

    # ------------------------------------------------------------------ displays
    def header(self):
        """The theme's title and question, then the key messages and the plain-language
        summary (:meth:`key_messages`): what a reader sees first."""
        from IPython.display import HTML

        c = self.config
        return HTML(f"<h1>{html.escape(c['title'][self.lang])}</h1>"
                    f"<p class='summary'>{html.escape(c['summary'][self.lang])}</p>"
                    + self.key_messages().data)

    # ------------------------------------------------------------------ judgements
    def _sof_rows(self) -> dict:
        """The summary-of-findings rows by outcome position (computed once)."""
        if "_sof" not in self.__dict__:
            from .tables import summary_of_findings

            egger = {i: self.bias_tests(i)[0].pval for i in range(len(self.outcomes))
                     if self.bias_tests(i) is not None}
            table = summary_of_findings(self.outcomes, self.lang, None, egger)
            self._sof = {int(r["index"]): r for _, r in table.iterrows()}
        return self._sof

    def judgement(self, outcome=0):
        """What the note may say about outcome ``i``: direction, size, certainty and spread,
        each from a documented rule (:func:`metaanalysis.judgements.judge`,
        docs/judgements.md); None when it has no pooled effect (or is a meta-regression)."""
        from .judgements import judge

        i = self.outcome(outcome)
        cache = self.__dict__.setdefault("_judgements", {})
        if i not in cache:
            o = self.outcomes[i]
            row = self._sof_rows().get(i)
            if o.result is None or len(o.result.beta) != 1 or row is None:
                cache[i] = None
            else:
                cache[i] = judge(o.result, o.favours, row["certainty"],
                                 self.config.get("size_benchmark", "cohen1988"))
        return cache[i]

    def judgement_fields(self, i=0) -> dict:
        """The judgement of outcome ``i`` in words, for :meth:`say`: ``{verdict}`` (e.g.
        "effet favorable probable"), ``{size}`` ("–" for a measure without size words) and
        ``{size_clause}`` (", de taille faible", or nothing), ``{certainty}``, ``{spread}`` (a sentence,
        empty without a prediction interval) and ``{plain}`` (the effect in everyday terms:
        Cohen's U3 or the risks per 1,000, empty otherwise)."""
        j = self.judgement(i)
        if j is None:
            return {}
        lang = self.lang
        row = self._sof_rows()[self.outcome(i)]
        plain = ""
        if j.u3 is not None and j.direction != "unclear":
            plain = t(f"u3.{j.direction}", lang, u3=percent(j.u3, lang, 0))
        elif row["absolute"]:
            plain = row["absolute"][0].upper() + row["absolute"][1:] + "."
        return {"verdict": t(f"verdict.{j.direction}.{j.certainty}", lang),
                "size": t(f"size.{j.size}", lang) if j.size else "–",
                "size_clause": t("size_clause", lang, size=t(f"size.{j.size}", lang))
                if j.size else "",
                "certainty": SOF_WORDS[lang][j.certainty],
                "spread": t(f"spread.{j.spread}", lang) if j.spread else "",
                "plain": plain}

    def key_messages(self):
        """Three to five key messages and a plain-language summary, every word from the
        rules of :meth:`judgement`: one message per pooled outcome (at most five), then the
        evidence base, the main outcome in everyday terms, how much it varies and what its
        certainty means."""
        from IPython.display import HTML

        from .tables import participants

        lang = self.lang
        head = (f"<section class='key-messages'>"
                f"<h2 id='key-messages'>{html.escape(t('key_messages', lang))}</h2>")
        judged = [i for i in range(len(self.outcomes)) if self.judgement(i) is not None]
        if not judged:
            return HTML(head + f"<p>{html.escape(t('no_evidence_yet', lang))}</p></section>")
        items = []
        for i in judged[:5]:
            o, j, f = self.outcomes[i], self.judgement(i), self.judgement_fields(i)
            row = self._sof_rows()[i]
            number = f"{t(f'measure_name.{o.result.measure}', lang)} {row['relative']}"
            text = t("key_message", lang, label="\x00", verdict=f["verdict"],
                     size_clause=t("size_clause", lang, size=f["size"]) if j.size else "",
                     number=number, certainty=f["certainty"],
                     studies=counted(o.n_studies, "study", lang))
            before, after = text.split("\x00")
            items.append(f"<li>{html.escape(before, False)}<strong>"
                         f"{html.escape(_capital(o.label), False)}</strong>"
                         f"{html.escape(after, False)}</li>")
        effects = self.pooled_effects  # what the results rest on, not the whole bibliography
        years = pd.to_numeric(effects["year"], errors="coerce").dropna() \
            if "year" in effects else pd.Series(dtype=float)
        n_people = participants(effects) if len(effects) else 0
        sentences = []
        if len(years):
            n_studies = int(effects["key"].nunique())
            # "publiée en 2004" (one study, one year), "publiées de 1982 à 2019"
            one_year = int(years.min()) == int(years.max())
            sentences.append(t("evidence_base_one_year" if one_year else "evidence_base", lang,
                               studies=counted(n_studies, "study", lang),
                               people=t("people", lang, n=num(n_people, lang, 0))
                               if n_people else "",
                               published=WORDS["published"][lang][n_studies > 1],
                               year_min=int(years.min()), year_max=int(years.max())))
        main = judged[0]
        f = self.judgement_fields(main)
        label = self.outcomes[main].label
        if f["plain"]:
            plain = f["plain"][0].lower() + f["plain"][1:]
            sentences.append(f"{_capital(label)} : {plain}" if lang == "fr"
                             else f"{_capital(label)}: {plain}")
        if f["spread"]:
            sentences.append(f["spread"])
        j = self.judgement(main)
        sentences.append(t("certainty_sentence", lang, label=label, certainty=f["certainty"],
                           meaning=t(f"certainty_meaning.{j.certainty}", lang)))
        plain = " ".join(sentences)
        # the rule behind the size words, when a message has one ("de taille faible")
        from .judgements import size_rule

        rules = dict.fromkeys(self.judgement(i).benchmark for i in judged[:5]
                              if self.judgement(i).size)
        rule = "".join(f"<p class='rule'>{html.escape(size_rule(b, lang), False)}</p>"
                       for b in rules)
        return HTML(head + "<ul>" + "".join(items) + "</ul>"
                    f"<p class='plain'><strong>{html.escape(t('plain_summary', lang))}.</strong> "
                    f"{html.escape(plain, False)}</p>{rule}</section>")

    def sources(self):
        """The published meta-analyses this note re-analyses, shown prominently."""
        from IPython.display import HTML

        intro = t("reanalyses", self.lang)
        items = "".join(f"<li>{_link(s if isinstance(s, str) else s[self.lang])}</li>"
                        for s in self.config.get("sources", []))
        if not items:
            return HTML("")  # a note of its own review: nothing re-analysed, nothing to say
        return HTML(f"<div class='sources'><p>{intro}</p><ul>{items}</ul></div>")

    def forest(self, outcome=0, **kw):
        """The forest plot of outcome ``i`` as an SVG figure with alt text."""
        outcome = self.outcome(outcome)
        o = self.outcomes[outcome]
        if o.result is None:
            from IPython.display import HTML
            return HTML(f"<p>{html.escape(t('no_data', self.lang))}: {html.escape(o.label)}</p>")
        figure = self._forest_figure(outcome, **kw)
        if not o.warnings:
            return figure
        return Parts([self.notice(outcome), figure])

    def _forest_figure(self, i: int, **kw):
        from .plots import forest, svg_figure

        o = self.outcomes[i]
        with _warnings_said(self.lang) as said:  # a subgroup's refit, said below the figure
            fig = forest(o.result, lang=self.lang, favours=o.favours, outcome=o.label, **kw)
        caption = o.label
        if fig.negative_weights:
            caption += ". " + t("negative_weights", self.lang, n=fig.negative_weights)
        figure = svg_figure(fig, caption=caption)
        return Parts([figure, self._notice(o.label, said)]) if said else figure

    def notice(self, outcome=0):
        """What the fit of outcome ``i`` warned (e.g. tau² did not converge), as a visible
        notice; empty when the fit gave no warning. Shown with the forest plot and the
        results table, so a doubtful number is never published without a word."""
        outcome = self.outcome(outcome)
        o = self.outcomes[outcome]
        return self._notice(o.label, o.warnings)

    def _notice(self, label: str, said: list[str]):
        """A notice of what a computation of the outcome ``label`` warned (empty if
        nothing)."""
        from IPython.display import HTML

        if not said:
            return HTML("")
        items = "".join(f"<li>{html.escape(w)}</li>" for w in said)
        return HTML(f"<div class='notice' role='note'><p><strong>"
                    f"{html.escape(t('fit_warning', self.lang))}</strong> "
                    f"{html.escape(label)}</p><ul>{items}</ul></div>")

    def labels(self) -> dict:
        """Study labels (first author et al., year) by BibTeX key, for figures."""
        from .plots import _label

        s = self.studies
        return {k: _label(a, y, k) for k, a, y in zip(s["key"], s["author"], s["year"])}

    def funnel(self, outcome=0):
        """Contour-enhanced funnel plot of outcome ``i``, trim-and-fill effects marked."""
        from IPython.display import HTML

        from .figures import funnel
        from .models import RMAResult
        from .plots import svg_figure

        outcome = self.outcome(outcome)
        o = self.outcomes[outcome]
        r = o.result
        if not isinstance(r, RMAResult) or r.k < 3 or _is_che(r):
            # a CHE note tests small-study effects with the robust Egger test instead: a
            # funnel of dependent effects would count a study once per effect
            return HTML("")
        tests = self.bias_tests(outcome)
        fig = funnel(r, lang=self.lang, trimfill=tests[1] if tests else None, outcome=o.label)
        return svg_figure(fig, caption=o.label)

    def risk_of_bias(self, where: dict | None = None):
        """Traffic-light plot and summary bars of the risk of bias of the studies whose effects
        the note pools (:attr:`pooled_effects`; ``where`` narrows them further)."""
        from IPython.display import HTML

        from .figures import rob_summary, rob_traffic_light
        from .plots import svg_figure

        rows = self.pooled_effects  # the studies the results rest on (a variant's exclusions out)
        if where and len(rows):
            rows = rows[where_mask(rows, where)]
        light = rob_traffic_light(rows, lang=self.lang, labels=self.labels()) if len(rows) else None
        if light is None:
            return HTML(f"<p>{t('no_rob', self.lang)}</p>")
        bars = rob_summary(rows, lang=self.lang)
        return Parts([svg_figure(light), svg_figure(bars)])

    def prisma(self):
        """The PRISMA 2020 flow diagram of the theme's screening annotations."""
        from .figures import prisma
        from IPython.display import HTML

        from .plots import svg_figure

        if not len(self.studies):
            return HTML("")  # an empty bibliography: a diagram of zeros says nothing
        return svg_figure(prisma(self.studies, lang=self.lang))

    def summary_of_findings(self, baseline_risk: float | None = None):
        """The GRADE-style summary-of-findings table (certainty: a suggestion)."""
        from IPython.display import HTML

        from .tables import summary_of_findings, summary_of_findings_html

        if not any(o.result is not None for o in self.outcomes):
            return HTML("")  # nothing pooled yet: no table of empty rows
        egger = {i: self.bias_tests(i)[0].pval for i in range(len(self.outcomes))
                 if self.bias_tests(i) is not None}
        table = summary_of_findings(self.outcomes, self.lang, baseline_risk, egger)
        return HTML(summary_of_findings_html(table, self.lang))

    def table(self):
        """One row per pooled outcome: studies, effect with CI, prediction interval, I²."""
        from IPython.display import HTML

        head = t("results_head", self.lang)
        rows = []
        for i, o in enumerate(self.outcomes):
            f = self.fields(i)
            cells = [o.label, str(f["n_studies"]), f.get("est", "–"), f.get("pi", "–"),
                     f.get("i2", "–")]
            if o.warnings:
                cells[0] += " ⚠"
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        notices = "".join(self.notice(i).data for i in range(len(self.outcomes)))
        return HTML(scrolling("<table class='results'><thead><tr>"
                              + "".join(f"<th>{html.escape(h)}</th>" for h in head)
                              + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>",
                              self.lang) + notices)

    def references(self):
        """The included studies as a reference list (everything escaped, DOIs linked)."""
        from IPython.display import HTML

        from .bibliography import latex_to_text
        from .citations import full

        items = []
        s = self.studies
        # a study all of whose effects the ``exclude`` parameter sets aside is not one the
        # note rests on: named after the list, not in it
        aside = sorted(set(self.excluded["key"]) - set(self.effects["key"])) \
            if len(self.excluded) else []
        for _, e in s[(s["screening"] == "included") & ~s["key"].isin(aside)].iterrows():
            author = html.escape(full(e.get("author")))
            year = "" if pd.isna(e.get("year")) else f" ({int(e['year'])})"
            title = latex_to_text(str(e.get("title") or "")).strip()
            # "Authors (year). Title." : one full stop, none after a title's own ? ! or .
            head = f"{author}{year}".strip()
            text = ". ".join(x for x in (head, html.escape(title)) if x)
            if text and not text.endswith((".", "?", "!", "…")):
                text += "."
            doi = str(e.get("doi") or "")
            link = (f" <a href='https://doi.org/{html.escape(doi, quote=True)}'>"
                    f"doi:{html.escape(doi)}</a>") if doi else ""
            items.append(f"<li>{text or html.escape(str(e['key']))}{link}</li>")
        if not items and not aside:  # no study yet: no heading over an empty list
            return HTML("")
        head = t("included_studies", self.lang)
        after = ""
        if aside:
            labels = self.labels()
            after = ("<p class='set-aside'>" + html.escape(t(
                "set_aside", self.lang, exclude=self.params["exclude"],
                studies=counted(len(aside), "study", self.lang),
                keys=", ".join(labels.get(k, k) for k in aside))) + "</p>")
        return HTML(f"<h2>{head}</h2><ol class='references'>{''.join(items)}</ol>{after}")

    # ------------------------------------------------------------------ open data
    def summary(self) -> dict:
        """The pooled results as a JSON-ready dict (metafor's names)."""
        return {"schema_version": SCHEMA_VERSION, "theme": self.slug, "parameters": self.params,
                "bibliography": self.config["bibliography"], "bibliography_sha256": self.sha256,
                "outcomes": [{"outcome": o.outcome, "label": o.label, "n_studies": o.n_studies,
                              "warnings": o.warnings,
                              **(o.result.to_dict() if o.result is not None else {"k": 0}),
                              **self._judgement_record(i)}
                             for i, o in enumerate(self.outcomes)]}

    def _judgement_record(self, i: int) -> dict:
        """The rule-made words of outcome ``i`` for the open data (docs/judgements.md)."""
        j = self.judgement(i) if self.outcomes[i].result is not None else None
        if j is None:
            return {}
        return {"direction": j.direction, "size": j.size, "certainty": j.certainty,
                "spread": j.spread}

    def export(self, directory: Path | str, name: str | None = None) -> None:
        """Write the extracted effects (CSV) and the pooled results (JSON)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        name = name or self.slug
        table, withheld = self.open_data()
        summary = self.summary()
        summary["withheld_effects"] = withheld
        _atomic_write(d / f"{name}.csv", table.to_csv(index=False))
        _atomic_write(d / f"{name}.json", json.dumps(summary, indent=1, ensure_ascii=False,
                                                     sort_keys=True))

    def open_data(self):
        """The effects table to publish, and how many effects were withheld and why.

        Effects of studies whose ``data_licence`` starts with "unclear" are left out of the
        open data (they are still analysed and shown in the note). Authors and titles are
        text as the note's references show them (LaTeX decoded). ``pooled_in`` names the
        outcomes (their labels) each effect is pooled in, empty for an effect the note's
        results do not use.
        """
        from .bibliography import latex_to_text

        t = self.all_effects.copy()
        if "file" in t:  # the project's path, never the build machine's (each file once)
            paths = {f: _project_path(f, self.root) for f in t["file"].unique()}
            t["file"] = t["file"].map(paths.__getitem__)
        for col in ("author", "title"):  # as the note's references show them: M{\"u}ller,
            if col in t:  # as a Zotero export writes it, is Müller to a reader
                t[col] = t[col].map(lambda v: latex_to_text(v) if isinstance(v, str) else v)
        # which of the note's results each effect is pooled in (none: another outcome or
        # time point, or set aside by a variant's parameters), so a reader of the CSV can
        # tell the rows a number rests on
        pooled: dict = {}
        for o in self.outcomes:
            if o.result is not None:
                for i in o.data.index:
                    pooled.setdefault(i, []).append(o.label)
        t["pooled_in"] = [" | ".join(pooled.get(i, [])) for i in t.index]
        t = spreadsheet_safe(t)
        if "data_licence" not in t:
            return t, {"n": 0}
        unclear = t["data_licence"].map(lambda v: isinstance(v, str)
                                        and v.lower().startswith("unclear"))
        reasons = sorted(t.loc[unclear, "data_licence"].astype(str).unique())
        return t[~unclear], {"n": int(unclear.sum()), "reasons": reasons}


@contextlib.contextmanager
def _warnings_said(lang: str):
    """Every warning of the block, caught (never silenced: each is shown in a notice) and
    put, once each and in ``lang``, in the list this yields when the block ends."""
    said: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield said
    said.extend(dict.fromkeys(fit_said(w, lang) for w in caught))


class Parts:
    """Several displays shown one after the other, each its own output (so that every figure
    keeps its SVG, PNG and text forms)."""

    def __init__(self, parts):
        self.parts = [p for p in parts if p is not None and getattr(p, "data", True) != ""]

    def _ipython_display_(self):
        from IPython.display import display

        for part in self.parts:
            display(part)

    def __repr__(self) -> str:
        return "\n\n".join(p.data if hasattr(p, "data") else repr(p) for p in self.parts)


def _dependent_effects(rows: pd.DataFrame, result, lang: str) -> str | None:
    """When a univariate model pools several effects of one study as if independent (its
    dependence ignored: the same participants count more than once), the sentence saying
    so, naming the studies as the figures do."""
    from .citations import short
    from .multilevel import MVResult

    if result is None or isinstance(result, MVResult) or "key" not in rows:
        return None
    counts = rows["key"].value_counts()
    several = sorted(counts[counts > 1].index)
    if not several:
        return None
    first = rows.drop_duplicates("key").set_index("key")
    names = ", ".join(short(first.at[k, "author"] if "author" in first else "",
                            first.at[k, "year"] if "year" in first else None, k)
                      for k in several)
    n = len(several)
    return t("dependent_effects", lang, studies=counted(n, "study", lang), names=names,
             verb=WORDS["dependent_verb"][lang][n > 1])


def apply_exclusions(effects: pd.DataFrame, exclude: str):
    """Drop effects by the ``exclude`` parameter; return (kept, dropped).

    ``exclude`` is a comma-separated list of ``COLUMN=VALUE`` (case-insensitive), study keys,
    or ``high_rob`` (studies whose ``risk_of_bias`` is high/serious/critical or any of whose
    ``rob_*`` domains is "no" or "high").
    """
    if not exclude.strip() or not len(effects):
        return effects, effects.iloc[0:0]
    drop = pd.Series(False, index=effects.index)
    for item in (x.strip() for x in exclude.split(",") if x.strip()):
        if item == "high_rob":
            rob_cols = [c for c in effects.columns if c == "risk_of_bias" or c.startswith("rob_")]
            if not rob_cols:
                raise ValueError("exclude = high_rob, but the bibliography has no risk_of_bias "
                                 "or rob_* fields")
            for c in rob_cols:
                drop |= effects[c].map(rob_level) == "high"
        elif "=" in item:
            col, value = (x.strip() for x in item.split("=", 1))
            if col not in effects.columns:
                raise ValueError(f"exclude = {item!r}: no column {col!r}; columns are "
                                 f"{', '.join(map(str, effects.columns))}")
            if pd.api.types.is_numeric_dtype(effects[col]):
                hit = where_mask(effects, {col: value})
            else:
                hit = effects[col].map(lambda v: isinstance(v, str)
                                       and v.strip().lower() == value.lower())
            if not hit.any():
                raise ValueError(f"exclude = {item!r}: no effect has {col} = {value!r}; "
                                 f"{col} is one of {_values(effects[col])}")
            drop |= hit
        elif item in set(effects["key"]):
            drop |= effects["key"] == item
        else:
            raise ValueError(f"exclude = {item!r}: give COLUMN=VALUE, a study key, or high_rob")
    return effects[~drop], effects[drop]


def _values(column, limit: int = 12) -> str:
    """The distinct values of a column, for an error message."""
    values = sorted({str(v) for v in column.dropna()})
    more = f" ... ({len(values)} in all)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


#: What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """The table with every text cell that a spreadsheet would run as a formula
    (``=HYPERLINK(...)``, ``@SUM``, ``+``, ``-``, a tab or carriage return first) prefixed
    with ``'``, as the OWASP CSV-injection guidance says. Numeric columns are untouched, so
    a negative effect size stays a number."""
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col]):
            continue
        out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str)
                                and v.startswith(_FORMULA_START) else v)
    return out


def _project_path(path, root: Path) -> str:
    """A path relative to the project (``bibliographies/x.bib``); the file name when the path
    lies outside it."""
    p = Path(str(path))
    try:
        return p.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return p.name


def _link(text: str) -> str:
    import re

    esc = html.escape(text)
    return re.sub(r"(https://doi\.org/[^\s<]+)", r"<a href='\1'>\1</a>", esc)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _capital(text: str) -> str:
    """The first letter in upper case (a label opening a sentence)."""
    return text[:1].upper() + text[1:]


def _is_che(result) -> bool:
    """A CHE working model with robust variance (:func:`metaanalysis.rve.che`)."""
    return getattr(result, "rho", None) is not None
