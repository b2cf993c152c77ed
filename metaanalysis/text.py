"""Words and numbers in the note's language: one place for every label and translation.

:data:`WORDS` (through :func:`t`) holds the phrases of notes and figures; :data:`SOF_WORDS`
those of the summary-of-findings table; :data:`PAGE_WORDS` those of a note page's header
and footer.

``fr`` writes a decimal comma and French wording; ``en`` English. Figures, tables and prose
all take their words from :data:`WORDS` through :func:`t`.
"""

from __future__ import annotations

import math

LANGS = ("fr", "en")

WORDS = {
    "study": {"fr": "Étude", "en": "Study"},
    "weight": {"fr": "Poids", "en": "Weight"},
    "estimate_ci": {"fr": "Effet [IC {level} %]", "en": "Effect [{level}% CI]"},
    "pooled": {"fr": "Effet combiné ({method})", "en": "Pooled effect ({method})"},
    "prediction": {"fr": "Intervalle de prédiction", "en": "Prediction interval"},
    "favours_intervention": {"fr": "favorable à l'intervention",
                             "en": "favours the intervention"},
    "favours_control": {"fr": "favorable au groupe témoin", "en": "favours the control"},
    "ci": {"fr": "IC {level} %", "en": "{level}% CI"},
    "studies": {"fr": "études", "en": "studies"},
    "effects": {"fr": "effets", "en": "effects"},
    "heterogeneity": {"fr": "Hétérogénéité", "en": "Heterogeneity"},
    "no_data": {"fr": "Aucune donnée", "en": "No data"},
    "not_reported": {"fr": "non renseigné", "en": "not reported"},
    "section_result": {
        "fr": "{studies_n}, {k_effects} ; {pooled_measure} : {est} ({p}). "
              "Intervalle de prédiction : {pi} ; hétérogénéité I² = {i2}.",
        "en": "{studies_n}, {k_effects}; {pooled_measure}: {est} ({p}). "
              "Prediction interval: {pi}; heterogeneity I² = {i2}."},
    "section_bias": {
        "fr": "Test d'Egger pour l'asymétrie de l'entonnoir : {egger_p}. La méthode "
              "« trim-and-fill » impute {k0_studies}, ce qui donnerait un effet "
              "de {trimfill_est}.",
        "en": "Egger's test for funnel asymmetry: {egger_p}. Trim-and-fill imputes "
              "{k0_studies}, which would give an effect of {trimfill_est}."},
    "section_bias_none": {
        "fr": "Test d'Egger pour l'asymétrie de l'entonnoir : {egger_p}. La méthode "
              "« trim-and-fill » n'impute aucune étude manquante : l'effet reste de "
              "{trimfill_est}.",
        "en": "Egger's test for funnel asymmetry: {egger_p}. Trim-and-fill imputes no missing "
              "study: the effect stays at {trimfill_est}."},
    "section_result_dependent": {
        "fr": "{studies_n}, {k_effects} ; {pooled_measure} : {est} ({p}). "
              "Intervalle de prédiction : {pi} ; variance totale τ² = {tau2} (entre études "
              "{sigma2_between}, au sein des études {sigma2_within}).",
        "en": "{studies_n}, {k_effects}; {pooled_measure}: {est} ({p}). "
              "Prediction interval: {pi}; total variance τ² = {tau2} (between studies "
              "{sigma2_between}, within studies {sigma2_within})."},
    "rho_sentence": {
        "fr": "Le modèle suppose une corrélation ρ = {rho} entre les erreurs des effets d'une même "
              "étude, qui n'est pas rapportée. Avec ρ de {rho_min} à {rho_max}, l'effet combiné va "
              "de {est_min} à {est_max} :",
        "en": "The model assumes a correlation ρ = {rho} between the errors of a study's "
              "effects, which is not reported. With ρ from {rho_min} to {rho_max}, the pooled "
              "effect ranges from {est_min} to {est_max}:"},
    "rho_sentence_stable": {
        "fr": "Le modèle suppose une corrélation ρ = {rho} entre les erreurs des effets d'une même "
              "étude, qui n'est pas rapportée. Avec ρ de {rho_min} à {rho_max}, l'effet combiné "
              "reste de {est_min} :",
        "en": "The model assumes a correlation ρ = {rho} between the errors of a study's "
              "effects, which is not reported. With ρ from {rho_min} to {rho_max}, the pooled "
              "effect stays at {est_min}:"},
    "rho_head": {"fr": ["ρ supposé", "Effet combiné [IC]", "Variance entre études",
                        "Variance au sein des études"],
                 "en": ["assumed ρ", "Pooled effect [CI]", "Variance between studies",
                        "Variance within studies"]},
    "section_bias_robust": {
        "fr": "Test de type Egger pour effets dépendants (modèle CHE, variance robuste) : "
              "{egger_p}. Une valeur faible signale que les petites études montrent des effets "
              "plus grands, ce qui peut traduire un biais de publication.",
        "en": "Egger-type test for dependent effects (CHE model, robust variance): {egger_p}. "
              "A small value signals that smaller studies show larger effects, which may "
              "reflect publication bias."},
    # over what a fit warned (no convergence), the effects it could not use, the dependence
    # it ignored: each a caution about the result it stands beside
    "fit_warning": {"fr": "Attention, à propos de ce résultat :",
                    "en": "Caution about this result:"},
    # a fit's warnings (models.FitWarning): the English ones are what Python shows
    "warning": {
        "tau2_not_converged": {
            "fr": "l'estimation {method} de τ² n'a pas convergé : τ² et tout ce qui en dépend "
                  "restent non calculés ; les méthodes PM ou DL (paramètre method) donnent "
                  "une estimation",
            "en": "the {method} estimate of tau^2 did not converge: tau^2 and everything that "
                  "depends on it are NaN; try method='PM' or 'DL'"},
        "three_level_not_converged": {
            "fr": "l'ajustement à trois niveaux ({method}) n'a pas convergé ({reason}) : ses "
                  "résultats restent non calculés",
            "en": "the three-level {method} fit did not converge ({reason}); results are NaN"},
        "batch_not_converged": {
            "fr": "{n} ajustement(s) {method} groupé(s) n'ont pas convergé : non calculés",
            "en": "{n} batched {method} fit(s) did not converge: NaN"},
        "selection_not_converged": {
            "fr": "l'ajustement ML du modèle de sélection n'a pas convergé ({reason})",
            "en": "the selection model's ML fit did not converge ({reason})"},
        "rows_dropped": {
            "fr": "{n} ligne(s) sans yi, vi ou valeur de modérateur écartée(s) : {keys}",
            "en": "{n} row(s) with missing yi, vi or moderator values were dropped: {keys}"},
        "mh_or_undefined": {
            "fr": "l'odds ratio de Mantel-Haenszel n'est pas défini : aucun événement, ou "
                  "aucun non-événement, dans l'un des deux bras de chaque table",
            "en": "the Mantel-Haenszel odds ratio is not defined: no events or no non-events "
                  "in one of the arms of every table"},
        "mh_rr_undefined": {
            "fr": "le risque relatif de Mantel-Haenszel n'est pas défini : aucun événement "
                  "dans l'un des deux bras de chaque table",
            "en": "the Mantel-Haenszel risk ratio is not defined: no events in one arm of "
                  "every table"},
        "at_rho": {"fr": "avec ρ = {rho} : {said}", "en": "rho = {rho}: {said}"},
        "in_subgroup": {"fr": "sous-groupe {group} : {said}", "en": "subgroup {group}: {said}"},
        "other": {"fr": "avertissement du calcul (en anglais) : {message}",
                  "en": "{message}"},
    },
    "reanalyses": {"fr": "Cette note ré-analyse les données publiées de :",
                   "en": "This note re-analyses the published data of:"},
    "included_studies": {"fr": "Études incluses", "en": "Included studies"},
    "set_aside": {"fr": "Écartées par le paramètre exclude = {exclude} de cette note : {studies} "
                        "({keys}).",
                  "en": "Set aside by this note's parameter exclude = {exclude}: {studies} "
                        "({keys})."},
    "no_rob": {"fr": "Aucune évaluation du risque de biais dans la bibliographie.",
               "en": "No risk-of-bias assessment in the bibliography."},
    "results_head": {"fr": ["Critère", "Études", "Effet [IC]", "Intervalle de prédiction", "I²"],
                     "en": ["Outcome", "Studies", "Effect [CI]", "Prediction interval", "I²"]},
    "forest_alt": {"fr": "Graphique en forêt de {k} ({outcome}) : effet combiné {est}.",
                   "en": "Forest plot of {k} ({outcome}): pooled effect {est}."},
    "observed": {"fr": "Études observées", "en": "Observed studies"},
    "filled": {"fr": "Études imputées (trim-and-fill)", "en": "Imputed studies (trim-and-fill)"},
    "standard_error": {"fr": "Erreur standard", "en": "Standard error"},
    "funnel_alt": {"fr": "Graphique en entonnoir de {k} ({outcome}), avec les zones de "
                         "significativité ; {filled} par trim-and-fill.",
                   "en": "Funnel plot of {k} ({outcome}) with significance contours; "
                         "{filled} by trim-and-fill."},
    "rob": {"low": {"fr": "Risque faible", "en": "Low risk"},
            "some concerns": {"fr": "Quelques réserves", "en": "Some concerns"},
            "high": {"fr": "Risque élevé", "en": "High risk"},
            "no information": {"fr": "Pas d'information", "en": "No information"}},
    "rob_alt": {"fr": "Risque de biais de {n} : {low} à risque faible, {high} à risque élevé.",
                "en": "Risk of bias of {n}: {low} at low risk, {high} at high risk."},
    "rob_share": {"fr": "Part des études (%)", "en": "Share of studies (%)"},
    "rob_share_weight": {"fr": "Part du poids dans l'analyse (%)",
                         "en": "Share of weight in the analysis (%)"},
    "rob_summary_alt": {"fr": "Synthèse du risque de biais : {low} % à risque faible globalement.",
                        "en": "Risk-of-bias summary: {low}% at low risk overall."},
    "prisma": {
        "identified": {"fr": "Références identifiées\n(n = {n})", "en": "Records identified\n(n = {n})"},
        "in_bibliography": {"fr": "Références dans la bibliographie\n(n = {n} ; recherche non enregistrée)",
                            "en": "Records in the bibliography\n(n = {n}; search not recorded)"},
        "duplicates": {"fr": "Doublons retirés\n(n = {n})", "en": "Duplicates removed\n(n = {n})"},
        "screened": {"fr": "Références triées\n(n = {n})", "en": "Records screened\n(n = {n})"},
        "excluded_screening": {"fr": "Exclues sur titre et résumé\n(n = {n})",
                               "en": "Excluded at title/abstract\n(n = {n})"},
        "stage_unknown": {"fr": "Exclues, étape non enregistrée (n = {n})",
                          "en": "Excluded, stage not recorded (n = {n})"},
        "sought": {"fr": "Textes intégraux recherchés\n(n = {n})",
                   "en": "Reports sought for retrieval\n(n = {n})"},
        "not_retrieved": {"fr": "Textes non obtenus\n(n = {n})",
                          "en": "Reports not retrieved\n(n = {n})"},
        "assessed": {"fr": "Textes intégraux évalués\n(n = {n})",
                     "en": "Reports assessed for eligibility\n(n = {n})"},
        "excluded_fulltext": {"fr": "Exclus après lecture (n = {n})",
                              "en": "Reports excluded (n = {n})"},
        "included": {"fr": "Études incluses\n(n = {n})", "en": "Studies included\n(n = {n})"},
        "awaiting": {"fr": "en attente : {title} au tri, {full} en lecture",
                     "en": "awaiting: {title} screening, {full} full text"},
        "unknown": {"fr": "non connu", "en": "unknown"},
    },
    "prisma_alt": {"fr": "Diagramme de flux PRISMA 2020 : {parts}.",
                   "en": "PRISMA 2020 flow diagram: {parts}."},
    # a count the bibliography cannot tell is said as such, never as a number
    "prisma_alt_unknown": {"fr": "{what} : non connu", "en": "{what}: unknown"},
    "prisma_alt_duplicates": {"fr": ("doublons retirés", "{n} doublon retiré",
                                     "{n} doublons retirés"),
                              "en": ("duplicates removed", "{n} duplicate removed",
                                     "{n} duplicates removed")},
    "prisma_alt_screened": {"fr": ("références triées", "{n} triée", "{n} triées"),
                            "en": ("records screened", "{n} screened", "{n} screened")},
    "gap": {"fr": "lacune", "en": "gap"},
    "domain": {
        "autonomy": {"fr": "Autonomie et capacités", "en": "Autonomy and function"},
        "institution": {"fr": "Entrée en institution", "en": "Institutionalisation"},
        "survival": {"fr": "Mortalité", "en": "Mortality"},
        "falls": {"fr": "Chutes et peur de tomber", "en": "Falls and fear of falling"},
        "mental_health": {"fr": "Santé mentale", "en": "Mental health"},
        "social": {"fr": "Participation sociale", "en": "Social participation"},
        "learning": {"fr": "Apprentissages", "en": "Learning"},
        "employment": {"fr": "Emploi et revenus", "en": "Employment and income"},
    },
    "gap_benefit": {"fr": "effet favorable", "en": "favourable effect"},
    "gap_unclear": {"fr": "effet incertain", "en": "unclear effect"},
    "gap_harm": {"fr": "effet défavorable", "en": "unfavourable effect"},
    "gap_alt": {"fr": "Carte des preuves : {cells} cases intervention × domaine ; {gaps} "
                      "sans aucune étude.",
                "en": "Evidence gap map: {cells} intervention × domain cells; {gaps} "
                      "without any study."},
    "axis": {
        "OR": {"fr": "Rapport de cotes (échelle log)", "en": "Odds ratio (log scale)"},
        "RR": {"fr": "Risque relatif (échelle log)", "en": "Risk ratio (log scale)"},
        "ROM": {"fr": "Rapport de moyennes (échelle log)", "en": "Ratio of means (log scale)"},
        "SMD": {"fr": "Différence de moyennes standardisée (g de Hedges)",
                "en": "Standardised mean difference (Hedges' g)"},
        "MD": {"fr": "Différence de moyennes", "en": "Mean difference"},
        "RD": {"fr": "Différence de risques", "en": "Risk difference"},
        "COR": {"fr": "Corrélation", "en": "Correlation"},
        "ZCOR": {"fr": "Corrélation (z de Fisher)", "en": "Correlation (Fisher's z)"},
        "PR": {"fr": "Proportion", "en": "Proportion"},
        "PLO": {"fr": "Proportion (logit)", "en": "Proportion (logit)"},
        "GEN": {"fr": "Effet", "en": "Effect"},
        "UCOR": {"fr": "Corrélation (sans biais)", "en": "Correlation (unbiased)"},
        "SMDH": {"fr": "Différence de moyennes standardisée (variances inégales)",
                 "en": "Standardised mean difference (unequal variances)"},
        "SMCC": {"fr": "Changement moyen standardisé (écart-type du changement)",
                 "en": "Standardised mean change (change-score SD)"},
        "SMCR": {"fr": "Changement moyen standardisé (écart-type initial)",
                 "en": "Standardised mean change (raw-score SD)"},
        "PCOR": {"fr": "Corrélation partielle", "en": "Partial correlation"},
        "ZPCOR": {"fr": "Corrélation partielle (z de Fisher)",
                  "en": "Partial correlation (Fisher's z)"},
        "SPCOR": {"fr": "Corrélation semi-partielle", "en": "Semi-partial correlation"},
        "PETO": {"fr": "Rapport de cotes de Peto (échelle log)",
                 "en": "Peto odds ratio (log scale)"},
        "PHI": {"fr": "Coefficient phi", "en": "Phi coefficient"},
        "IRR": {"fr": "Rapport de taux d'incidence (échelle log)",
                "en": "Incidence rate ratio (log scale)"},
        "IRD": {"fr": "Différence de taux d'incidence", "en": "Incidence rate difference"},
        "IR": {"fr": "Taux d'incidence", "en": "Incidence rate"},
        "IRLN": {"fr": "Taux d'incidence (log)", "en": "Incidence rate (log)"},
        "PLN": {"fr": "Proportion (log)", "en": "Proportion (log)"},
        "PAS": {"fr": "Proportion (arc sinus)", "en": "Proportion (arcsine)"},
        "PFT": {"fr": "Proportion (Freeman-Tukey)", "en": "Proportion (Freeman-Tukey)"},
    },
    "no_search_yet": {"fr": "aucune pour l'instant", "en": "none yet"},
    "negative_weights": {
        "fr": "–* : poids négatif ({n}). Dans le modèle CHE, un effet dont l'erreur "
              "d'échantillonnage dépasse celle des autres effets de son étude, auxquels il est "
              "corrélé, peut recevoir un poids négatif : les autres effets portent déjà "
              "l'information de l'étude. L'effet combiné reste l'estimation du modèle.",
        "en": "–*: negative weight ({n}). In the CHE model, an effect whose sampling error "
              "exceeds that of the other effects of its study, to which it is correlated, can "
              "get a negative weight: the study's other effects already carry its information. "
              "The pooled effect remains the model's estimate."},
    "key_messages": {"fr": "Messages clés", "en": "Key messages"},
    "plain_summary": {"fr": "En langage clair", "en": "In plain language"},
    "verdict": {
        "benefit": {
            "high": {"fr": "effet favorable", "en": "a favourable effect"},
            "moderate": {"fr": "effet favorable probable", "en": "probably a favourable effect"},
            "low": {"fr": "effet favorable possible", "en": "possibly a favourable effect"},
            "very low": {"fr": "effet favorable, très incertain",
                         "en": "a favourable but very uncertain effect"}},
        "harm": {
            "high": {"fr": "effet défavorable", "en": "an unfavourable effect"},
            "moderate": {"fr": "effet défavorable probable",
                         "en": "probably an unfavourable effect"},
            "low": {"fr": "effet défavorable possible", "en": "possibly an unfavourable effect"},
            "very low": {"fr": "effet défavorable, très incertain",
                         "en": "an unfavourable but very uncertain effect"}},
        # an outcome whose favourable side the theme has not given (themes.json "favours")
        "increase": {
            "high": {"fr": "hausse", "en": "an increase"},
            "moderate": {"fr": "hausse probable", "en": "probably an increase"},
            "low": {"fr": "hausse possible", "en": "possibly an increase"},
            "very low": {"fr": "hausse, très incertaine", "en": "an increase, very uncertain"}},
        "decrease": {
            "high": {"fr": "baisse", "en": "a decrease"},
            "moderate": {"fr": "baisse probable", "en": "probably a decrease"},
            "low": {"fr": "baisse possible", "en": "possibly a decrease"},
            "very low": {"fr": "baisse, très incertaine", "en": "a decrease, very uncertain"}},
        "unclear": {
            "high": {"fr": "pas d'effet net", "en": "no clear effect"},
            "moderate": {"fr": "pas d'effet net", "en": "no clear effect"},
            "low": {"fr": "pas d'effet net", "en": "no clear effect"},
            "very low": {"fr": "effet très incertain", "en": "a very uncertain effect"}},
    },
    "size": {
        "very small": {"fr": "très faible", "en": "very small"},
        "small": {"fr": "faible", "en": "small"},
        "moderate": {"fr": "moyenne", "en": "moderate"},
        "large": {"fr": "importante", "en": "large"},
    },
    "size_clause": {"fr": ", de taille {size}", "en": ", {size} in size"},
    # the rule behind the size words, said under the key messages (judgements.size_rule)
    "size_rule": {"fr": "Taille d'une différence de moyennes standardisée, selon {source} : "
                        "{ranges}.",
                  "en": "Size of a standardised mean difference, according to {source}: {ranges}."},
    "size_below": {"fr": "{size} sous {cut}", "en": "{size} below {cut}"},
    "size_from": {"fr": "{size} à partir de {cut}", "en": "{size} from {cut}"},
    "size_separator": {"fr": " ; ", "en": "; "},
    "spread": {
        "consistent": {"fr": "L'effet va dans le même sens dans la plupart des contextes "
                             "étudiés (intervalle de prédiction).",
                       "en": "The effect goes the same way in most of the settings studied "
                             "(prediction interval)."},
        "varies": {"fr": "Les effets varient d'un contexte à l'autre : dans un nouveau site, "
                         "l'effet pourrait être nul, voire inverse.",
                   "en": "Effects vary between settings: in a new setting the effect may be "
                         "nil or even reversed."},
    },
    "u3": {
        "benefit": {"fr": "En moyenne, une personne ayant bénéficié de l'intervention fait mieux "
                          "que {u3} des personnes du groupe témoin (la moitié si "
                          "l'intervention n'avait aucun effet).",
                    "en": "On average, a person who received the intervention does better "
                          "than {u3} of the people in the control group (half of them if it "
                          "had no effect)."},
        "harm": {"fr": "En moyenne, une personne ayant bénéficié de l'intervention fait moins "
                       "bien que {u3} des personnes du groupe témoin (la moitié si "
                       "l'intervention n'avait aucun effet).",
                 "en": "On average, a person who received the intervention does worse than "
                       "{u3} of the people in the control group (half of them if it had no "
                       "effect)."},
    },
    "certainty_meaning": {
        "high": {"fr": "l'effet réel est très probablement proche de l'estimation",
                 "en": "the true effect is very likely close to the estimate"},
        "moderate": {"fr": "l'effet réel est probablement proche de l'estimation, mais pourrait "
                           "en être sensiblement différent",
                     "en": "the true effect is probably close to the estimate, but may be "
                           "substantially different"},
        "low": {"fr": "l'effet réel pourrait être sensiblement différent de l'estimation",
                "en": "the true effect may be substantially different from the estimate"},
        "very low": {"fr": "l'effet réel est probablement sensiblement différent de "
                           "l'estimation",
                     "en": "the true effect is likely to be substantially different from the "
                           "estimate"},
    },
    "key_message": {"fr": "{label} : {verdict}{size_clause} ; {number}, certitude {certainty}, "
                          "{studies}.",
                    "en": "{label}: {verdict}{size_clause}; {number}, {certainty} certainty, "
                          "{studies}."},
    "evidence_base": {"fr": "Cette note s'appuie sur {studies}{people}, {published} de "
                            "{year_min} à {year_max}.",
                      "en": "This note rests on {studies}{people}, {published} from {year_min} "
                            "to {year_max}."},
    "evidence_base_one_year": {"fr": "Cette note s'appuie sur {studies}{people}, {published} "
                                     "en {year_min}.",
                               "en": "This note rests on {studies}{people}, {published} in "
                                     "{year_min}."},
    "people": {"fr": " ({n} personnes)", "en": " ({n} people)"},
    # the evidence base's participle: one study or several (French agrees it)
    "published": {"fr": ("publiée", "publiées"), "en": ("published", "published")},
    # a caution beside a result: several effects of a study pooled as if independent
    "dependent_effects": {
        "fr": "{studies} ({names}) {verb} plusieurs effets, combinés ici comme s'ils étaient "
              "indépendants : le modèle ignore leur dépendance (les mêmes participants "
              "comptent plusieurs fois) ; un modèle pour effets dépendants (CHE) en tiendrait "
              "compte",
        "en": "{studies} ({names}) {verb} several effects, pooled here as if independent: the "
              "model ignores their dependence (the same participants count more than once); a "
              "model for dependent effects (CHE) would account for it"},
    "dependent_verb": {"fr": ("apporte", "apportent"), "en": ("contributes", "contribute")},
    # a caution beside a result: effects a -p measure could not convert (effects.measure_losses)
    "measure_lost": {
        "fr": "{n} effet{s} écarté{s} ({what}) : leurs données ne donnent pas la mesure "
              "{measure}{needs} ; un effet déjà calculé (yi, une estimation et son IC) reste "
              "dans sa propre mesure",
        "en": "{n} effect{s} left out ({what}): their data cannot give {measure}{needs}; an "
              "effect already computed (yi, an estimate with its CI) stays in its own measure"},
    "measure_lost_as": {"fr": "{k} rapporté{s} en {m}", "en": "{k} reported as {m}"},
    "measure_lost_needs": {"fr": ", qui demande {raw}", "en": ", which needs {raw}"},
    "or": {"fr": " ou ", "en": " or "},
    "certainty_sentence": {"fr": "Certitude des preuves pour « {label} » : {certainty} ; "
                                 "{meaning}.",
                           "en": "Certainty of the evidence for “{label}”: {certainty}; "
                                 "{meaning}."},
    "no_evidence_yet": {"fr": "Aucune étude n'a encore été analysée pour ce thème : les "
                              "messages clés viendront avec les premiers résultats.",
                        "en": "No study has been analysed for this theme yet: key messages "
                              "will come with the first results."},
    "measure_name": {
        "OR": {"fr": "rapport de cotes", "en": "odds ratio"},
        "RR": {"fr": "risque relatif", "en": "risk ratio"},
        "ROM": {"fr": "rapport de moyennes", "en": "ratio of means"},
        "SMD": {"fr": "différence de moyennes standardisée", "en": "standardised mean difference"},
        "MD": {"fr": "différence de moyennes", "en": "mean difference"},
        "RD": {"fr": "différence de risques", "en": "risk difference"},
        "COR": {"fr": "corrélation", "en": "correlation"},
        "ZCOR": {"fr": "corrélation", "en": "correlation"},
        "PR": {"fr": "proportion", "en": "proportion"},
        "PLO": {"fr": "proportion", "en": "proportion"},
        "GEN": {"fr": "effet", "en": "effect"},
        "UCOR": {"fr": "corrélation", "en": "correlation"},
        "SMDH": {"fr": "différence de moyennes standardisée",
                 "en": "standardised mean difference"},
        "SMCC": {"fr": "changement moyen standardisé", "en": "standardised mean change"},
        "SMCR": {"fr": "changement moyen standardisé", "en": "standardised mean change"},
        "PCOR": {"fr": "corrélation partielle", "en": "partial correlation"},
        "ZPCOR": {"fr": "corrélation partielle", "en": "partial correlation"},
        "SPCOR": {"fr": "corrélation semi-partielle", "en": "semi-partial correlation"},
        "PETO": {"fr": "rapport de cotes de Peto", "en": "Peto odds ratio"},
        "PHI": {"fr": "coefficient phi", "en": "phi coefficient"},
        "IRR": {"fr": "rapport de taux d'incidence", "en": "incidence rate ratio"},
        "IRD": {"fr": "différence de taux d'incidence", "en": "incidence rate difference"},
        "IR": {"fr": "taux d'incidence", "en": "incidence rate"},
        "IRLN": {"fr": "taux d'incidence", "en": "incidence rate"},
        "PLN": {"fr": "proportion", "en": "proportion"},
        "PAS": {"fr": "proportion", "en": "proportion"},
        "PFT": {"fr": "proportion", "en": "proportion"},
    },
}


#: The summary-of-findings table (metaanalysis.tables), by language.
SOF_WORDS = {
    "fr": {"outcome": "Critère", "studies": "Études (participants)", "relative": "Effet relatif [IC]",
           # a narrow no-break space in 1 000, a soft hyphen where a narrow column may break
           "absolute": "Effet absolu pour 1\u202f000", "heterogeneity": "Hétéro\u00adgénéité",
           "certainty": "Certitude suggérée", "high": "élevée", "moderate": "modérée",
           "low": "faible", "very low": "très faible",
           "note": "La certitude est une suggestion calculée à partir des données (risque de biais, "
                   "incohérence, imprécision, biais de publication) : elle doit être confirmée par "
                   "les auteurs.",
           "rob": "risque de biais : {share} du poids vient d'études à risque élevé",
           "inconsistency": "incohérence : {why}", "imprecision": "imprécision : {why}",
           "publication": "biais de publication suspecté (test d'Egger {p})",
           "nonrandomised": "études non randomisées",
           "design_unknown": "plan d'étude non renseigné (design)",
           "ci_null": "l'intervalle de confiance inclut l'absence d'effet",
           "small": "moins de 400 participants", "i2": "I² = {i2}",
           "pi_null": "l'intervalle de prédiction inclut l'absence d'effet",
           "per1000": "{control} pour 1 000 sans l'intervention ; {diff} ({lo} à {hi})",
           "none": "aucune réserve"},
    "en": {"outcome": "Outcome", "studies": "Studies (participants)", "relative": "Relative effect [CI]",
           "absolute": "Absolute effect per 1,000", "heterogeneity": "Heterogeneity",
           "certainty": "Suggested certainty", "high": "high", "moderate": "moderate",
           "low": "low", "very low": "very low",
           "note": "The certainty is a suggestion computed from the data (risk of bias, "
                   "inconsistency, imprecision, publication bias): the authors must confirm it.",
           "rob": "risk of bias: {share} of the weight from studies at high risk",
           "inconsistency": "inconsistency: {why}", "imprecision": "imprecision: {why}",
           "publication": "suspected publication bias (Egger's test {p})",
           "nonrandomised": "non-randomised studies",
           "design_unknown": "study design not reported (design)",
           "ci_null": "the confidence interval includes no effect",
           "small": "fewer than 400 participants", "i2": "I² = {i2}",
           "pi_null": "the prediction interval includes no effect",
           "per1000": "{control} per 1,000 without the intervention; {diff} ({lo} to {hi})",
           "none": "no concern"},
}

#: The header and footer of a note page (metaanalysis.pages), by language.
PAGE_WORDS = {
    "fr": {"date": "Données mises à jour le", "parameters": "Paramètres", "data": "Données",
           "software": "Logiciels", "reproduce": "Pour reproduire cette note :",
           "variant": "Variante : paramètres modifiés par rapport à la note publiée :",
           "reproduce_title": "Reproduire cette note", "open_data": "Données de la note",
           "open_data_text": "Les effets extraits dans la bibliographie du thème (la note en "
                             "combine une partie, selon ses critères) et ses résultats, en accès "
                             "libre :",
           "withheld": ("{effects} n'y figure pas, faute de licence claire pour ses données : "
                        "la note l'analyse et cite sa source.",
                        "{effects} n'y figurent pas, faute de licence claire pour leurs données : "
                        "la note les analyse et cite leur source."),
           "cite_title": "Citer cette note", "index": "Toutes les notes",
           "variants": "Toutes les variantes",
           "note_type": "Note d'analyse", "version": "version du"},
    "en": {"date": "Data last changed", "parameters": "Parameters", "data": "Data",
           "software": "Software", "reproduce": "To reproduce this note:",
           "variant": "Variant: parameters changed from the published note:",
           "reproduce_title": "Reproduce this note", "open_data": "This note's data",
           "open_data_text": "The effects extracted in the theme's bibliography (the note pools "
                             "those its outcomes select) and its results, openly available:",
           "withheld": ("{effects} is not included, its data having no clear licence: the "
                        "note analyses it and cites its source.",
                        "{effects} are not included, their data having no clear licence: the "
                        "note analyses them and cites their source."),
           "cite_title": "Cite this note", "index": "All notes", "variants": "All variants",
           "note_type": "Analysis note", "version": "version of"},
}


#: The words of the variants' index pages (metaanalysis.pages.write_variants_index).
VARIANTS_WORDS = {
    "fr": {"title": "Variantes des notes", "index": "Toutes les notes",
           "intro": "Chaque variante est une note recalculée avec d'autres paramètres que la "
                    "note publiée ; sa page compare ses résultats à ceux de la note publiée.",
           "head": ("Note", "Paramètres modifiés", "Calculée le"),
           "none": "Aucune variante pour le moment."},
    "en": {"title": "Variants of the notes", "index": "All notes",
           "intro": "Each variant is a note computed again with other parameters than the "
                    "published note; its page compares its results with the published note's.",
           "head": ("Note", "Parameters changed", "Computed on"),
           "none": "No variant yet."},
}


#: The words of the site's index pages (templates/site/index.html.j2).
INDEX_WORDS = {
    "fr": {"title": "Notes d'analyse", "theme": "Thème", "headline": "Résultat principal",
           "updated": "Données mises à jour", "open_data": "Données ouvertes",
           "no_synthesis": "Pas encore de synthèse quantitative",
           "variants": "Variantes calculées par les relecteurs",
           "gap_map": "Carte des preuves",
           "data_note": "Données ouvertes : les effets extraits (CSV) et les résultats (JSON) "
                        "de chaque thème."},
    "en": {"title": "Analysis notes", "theme": "Theme", "headline": "Main result",
           "updated": "Data last changed", "open_data": "Open data",
           "no_synthesis": "No quantitative synthesis yet",
           "variants": "Variants computed by reviewers",
           "gap_map": "Evidence gap map",
           "data_note": "Open data: each theme's extracted effects (CSV) and results (JSON)."},
}


#: Words whose form follows a count: (singular, plural) per language.
COUNTED = {
    "missing_study": {"fr": ("étude manquante", "études manquantes"),
                      "en": ("missing study", "missing studies")},
    "imputed_study": {"fr": ("étude imputée", "études imputées"),
                      "en": ("study imputed", "studies imputed")},
    "gap_outcome": {"fr": ("critère d'intérêt", "critères d'intérêt"),
                    "en": ("outcome of interest", "outcomes of interest")},
    "study": {"fr": ("étude", "études"), "en": ("study", "studies")},
    "effect": {"fr": ("effet", "effets"), "en": ("effect", "effects")},
    "record": {"fr": ("référence", "références"), "en": ("record", "records")},
    "included_study": {"fr": ("étude incluse", "études incluses"),
                       "en": ("study included", "studies included")},
    "excluded_record": {"fr": ("exclue", "exclues"), "en": ("excluded", "excluded")},
    "pending_record": {"fr": ("en attente de tri", "en attente de tri"),
                       "en": ("awaiting screening", "awaiting screening")},
    "duplicate": {"fr": ("doublon", "doublons"), "en": ("duplicate", "duplicates")},
    "extracted_effect": {"fr": ("effet extrait", "effets extraits"),
                         "en": ("extracted effect", "extracted effects")},
}


#: Measures whose French name is feminine (une différence, une corrélation, une proportion):
#: the adjective that follows agrees ("différence de moyennes standardisée combinée").
FEMININE = frozenset("SMD MD RD SMDH IRD COR ZCOR UCOR PCOR ZPCOR SPCOR PR PLO PLN PAS PFT".split())


def pooled_measure(measure: str, lang: str) -> str:
    """"pooled risk ratio" / "risque relatif combiné", "différence de moyennes standardisée
    combinée": the adjective agrees with the measure's French gender."""
    name = t(f"measure_name.{measure}", lang)
    if lang == "fr":
        return f"{name} combiné{'e' if measure in FEMININE else ''}"
    return f"pooled {name}"


TABLE_CUE = {"fr": "Faites défiler le tableau vers la droite →",
             "en": "Scroll the table sideways →"}


def scrolling(table_html: str, lang: str) -> str:
    """A wide table in its own sideways-scrolling box, with a cue shown on narrow screens
    (the page itself never scrolls sideways)."""
    import html

    return (f"<p class='scroll-cue'>{html.escape(TABLE_CUE.get(lang, TABLE_CUE['en']))}</p>"
            f"<div class='scroll'>{table_html}</div>")


def counted(n: int, key: str, lang: str) -> str:
    """``n`` and the word in the form the count asks: French takes the singular for 0 and 1
    ("1 étude manquante", "0 étude"), English for 1 only ("0 missing studies"); ``n`` is
    written as the page's other numbers (``1 334``, ``1,334``)."""
    singular, plural = COUNTED[key][lang]
    one = n < 2 if lang == "fr" else n == 1
    # the count as every other number of the page: 1 334 in French, 1,334 in English
    return f"{num(n, lang, 0)}\u00a0{singular if one else plural}" if lang == "fr" else \
        f"{num(n, lang, 0)} {singular if one else plural}"


def t(key: str, lang: str, **fmt) -> str:
    """The word or phrase ``key`` in ``lang``, formatted with ``fmt``."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}, not {lang!r}")
    entry = WORDS
    for part in key.split("."):
        entry = entry[part]
    return entry[lang].format(**fmt) if fmt else entry[lang]


def axis_label(measure: str, lang: str) -> str:
    """The axis title of a measure (its analysis scale, e.g. "Odds ratio (log scale)")."""
    return t(f"axis.{measure}" if measure in WORDS["axis"] else "axis.GEN", lang)


def num(x: float, lang: str, digits: int = 2) -> str:
    """A number with the language's decimal mark (a comma in French) and a true minus sign."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    s = f"{x:,.{digits}f}"
    if lang == "fr":
        s = s.replace(",", "\u202f").replace(".", ",")
    return s.replace("-", "\u2212")


def pvalue(p: float, lang: str) -> str:
    """A p-value as a reader should see it: "p < 0,001" below 0.001, never "p = 0,000";
    otherwise three decimals ("p = 0,012")."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "p = –"
    if p < 0.001:
        return "p < 0,001" if lang == "fr" else "p < 0.001"
    return f"p = {num(p, lang, 3)}"


def percent(x: float, lang: str, digits: int = 0) -> str:
    return f"{num(x, lang, digits)}\u00a0%" if lang == "fr" else f"{num(x, lang, digits)}%"


def estimate_ci(est: float, lo: float, hi: float, lang: str, digits: int = 2,
                level: float = 95) -> str:
    """``0.72 (95% CI 0.55 to 0.95)`` / ``0,72 (IC 95 % 0,55 à 0,95)``."""
    if lang == "fr":
        return (f"{num(est, lang, digits)} (IC {num(level, lang, 0)}\u00a0% "
                f"{num(lo, lang, digits)} à {num(hi, lang, digits)})")
    return f"{num(est, lang, digits)} ({level:g}% CI {num(lo, lang, digits)} to {num(hi, lang, digits)})"


MONTHS = {"fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                 "septembre", "octobre", "novembre", "décembre"),
          "en": ("January", "February", "March", "April", "May", "June", "July", "August",
                 "September", "October", "November", "December")}


def long_date(iso: str, lang: str) -> str:
    """``2026-11-26`` as a reader writes it: ``26 novembre 2026`` (``1er`` for the first of
    the month, as French writes it), ``26 November 2026``; anything that is not a calendar
    day is returned as it is."""
    import datetime

    try:
        day = datetime.date.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if len(str(iso)) != 10:
        return str(iso)
    n = "1er" if lang == "fr" and day.day == 1 else str(day.day)
    return f"{n}\u00a0{MONTHS[lang][day.month - 1]} {day.year}"
