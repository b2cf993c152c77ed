"""What each figure and table computes: rows, counts, numbers (not pixels)."""

import math

import numpy as np
import pandas as pd
import pytest

from metaanalysis.bias import trimfill
from metaanalysis.figures import (funnel, gap_map, gap_map_table, prisma, prisma2020,
                                  rob_summary_table, rob_table, rob_traffic_light)
from metaanalysis.models import rma
from metaanalysis.notes import Note, OutcomeResult
from metaanalysis.plots import forest, svg_figure
from metaanalysis.tables import control_risk, participants, summary_of_findings


def synthetic(k_studies, per_study, seed=0):
    rng = np.random.default_rng(seed)
    keys = np.repeat([f"s{i:03d}" for i in range(k_studies)], per_study)
    v = rng.uniform(0.01, 0.1, len(keys))
    y = rng.normal(0.3, 0.2, len(keys)) + rng.normal(0, np.sqrt(v))
    return pd.DataFrame({"key": keys, "yi": y, "vi": v, "author": "Doe, J.",
                         "year": 2000 + np.arange(len(keys)) % 20})


def test_forest_small_rows_and_alt_text():
    d = synthetic(6, 1)
    r = rma(data=d)
    fig = forest(r, lang="en")
    assert len(fig.rows) == 6 and not fig.grouped
    assert f"{r.estimate:.2f}" in fig.alt
    fr = forest(r, lang="fr")
    assert f"{r.estimate:.2f}".replace(".", ",") in fr.alt
    svg = svg_figure(fr).svg
    assert svg.startswith("<svg") and "Effet combiné" in svg


def test_forest_large_synthesis_groups_per_study():
    d = synthetic(120, 5)  # 600 effects
    r = rma(data=d)
    fig = forest(r, lang="en", max_rows=40)
    assert fig.grouped and len(fig.rows) == 120
    assert fig.rows[0].endswith("(5)")
    assert r.k == 600 and "600" in fig.alt


def test_forest_rows_are_one_collection_of_intervals_and_one_of_squares():
    """The study rows' intervals and squares are one LineCollection and one PathCollection
    (not two artists per row: education's 167 rows were 334 plot calls): one segment and one
    square per row, at the row's estimate and interval, the square's area following its
    weight, in the house colours, the squares above the lines (what each row's own artists
    drew; the notes' pages were compared in Chromium)."""
    from matplotlib.collections import LineCollection, PathCollection
    from matplotlib.colors import to_rgba

    from metaanalysis.plots import PALETTE

    d = synthetic(12, 1, seed=4)
    r = rma(data=d)
    plot = forest(r, lang="en")
    ax = plot.figure.axes[0]
    # (the prediction interval under the pooled diamond is one more line: a collection of 1)
    lines = [c for c in ax.collections if isinstance(c, LineCollection)
             and len(c.get_segments()) > 1]
    squares = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(lines) == 1 and len(squares) == 1
    lines, squares = lines[0], squares[0]
    segments, offsets = lines.get_segments(), squares.get_offsets()
    assert len(segments) == len(offsets) == 12 == len(plot.rows)
    order = np.argsort([-o[1] for o in offsets])  # top row first: the data's order
    assert np.array_equal(np.diff(offsets[order, 1]), -np.ones(11))
    assert np.allclose(offsets[order, 0], d.yi.to_numpy())
    from metaanalysis.distributions import norm_isf

    half = norm_isf(0.025) * np.sqrt(d.vi.to_numpy())  # the 95% interval drawn
    assert np.allclose([s[:, 0] for s in segments], np.c_[d.yi - half, d.yi + half][order])
    assert np.allclose([s[:, 1] for s in segments], offsets[:, 1:].repeat(2, axis=1))
    weights = 1 / (d.vi.to_numpy() + r.tau2)
    side = np.sqrt(2 * squares.get_sizes()[order])  # s = side**2 / 2, the side in points
    assert np.allclose(side, 4 + 10 * np.sqrt(weights / weights.max()))
    assert np.allclose(squares.get_facecolor(), to_rgba(PALETTE["blue"]))
    assert np.allclose(lines.get_color(), to_rgba(PALETTE["grey"]))
    assert np.allclose(lines.get_linewidth(), 0.9) and np.allclose(squares.get_linewidth(), 0)
    assert squares.get_zorder() > lines.get_zorder()


def test_forest_ratio_measure_on_natural_scale():
    d = pd.DataFrame({"key": list("abcd"), "yi": np.log([0.5, 0.8, 1.2, 0.7]),
                      "vi": [0.04, 0.05, 0.03, 0.06], "measure": "RR"})
    r = rma(data=d)
    fig = forest(r, lang="en")
    assert fig.figure.axes[0].get_xscale() == "log"
    assert f"{math.exp(r.estimate):.2f}" in fig.alt


def test_funnel_marks_filled_studies():
    d = synthetic(15, 1, seed=3)
    d.loc[d.yi < 0.3, "yi"] += 0.6  # asymmetry
    r = rma(data=d)
    tf = trimfill(r)
    fig = funnel(r, trimfill=tf, lang="en")
    assert f"{tf.k0} {'study' if tf.k0 == 1 else 'studies'} imputed" in fig.alt
    from matplotlib.collections import PathCollection
    offsets = [c.get_offsets() for c in fig.figure.axes[0].collections if isinstance(c, PathCollection)]
    assert sum(len(o) for o in offsets) == r.k + tf.k0


def test_rob_table_maps_judgements_and_takes_the_worst_domain():
    e = pd.DataFrame({"key": ["a", "a", "b", "c"], "rob_concealment": ["yes", "yes", "no", None],
                      "rob_blinding": ["yes", "yes", "yes", "unclear"]})
    t = rob_table(e)
    assert t.loc["a"].tolist() == ["low", "low", "low"]
    assert t.loc["b", "overall"] == "high"
    assert t.loc["c"].tolist() == ["no information", "some concerns", "some concerns"]
    s = rob_summary_table(e)
    assert np.allclose(s.sum(axis=1), 100)
    assert s.loc["overall", "high"] == pytest.approx(100 / 3)
    w = rob_summary_table(e, pd.Series({"a": 2.0, "b": 1.0, "c": 1.0}))
    assert w.loc["overall", "low"] == pytest.approx(50)
    assert rob_traffic_light(e).alt.startswith("Risk of bias of 3 studies: 1 at low risk, 1 at high")


def test_prisma_counts_from_the_screening():
    """A hand-annotated bibliography (no search, no logged decision): what it cannot tell is
    unknown, never 0; its exclusions are listed with their reasons, stage not recorded."""
    s = pd.DataFrame({"screening": ["included"] * 4 + ["excluded"] * 4 + ["pending"] * 2,
                      "reason": [""] * 4 + ["duplicate record", "not randomised",
                                            "not randomised", "wrong population"] + [""] * 2})
    c = prisma2020(s)
    assert c == {"identified": None, "duplicates_removed": 1, "screened": None,
                 "excluded_screening": None, "sought": None, "not_retrieved": None,
                 "assessed": None, "excluded_fulltext": None, "included": 4,
                 "awaiting_screening": 2, "awaiting_fulltext": 0,
                 "records_in_bibliography": 10,
                 "excluded_stage_unknown": {"not randomised": 2, "wrong population": 1}}
    fig = prisma(s, lang="fr")
    # the alt text says what is unknown as such ("non connu doublons retirés" before)
    assert fig.alt == ("Diagramme de flux PRISMA 2020 : 10\u00a0références, 1 doublon retiré, "
                       "références triées : non connu, 4\u00a0études incluses.")
    texts = " ".join(t.get_text() for t in fig.figure.axes[0].texts)
    assert "not randomised: 2" in texts and "(n = 4)" in texts and "non connu" in texts
    assert "(n = 0)" not in texts


def test_summary_of_findings_numbers():
    d = pd.DataFrame({"key": ["a", "b", "c", "d"], "ai": [10, 12, 8, 20], "n1i": [100] * 4,
                      "ci": [20, 18, 16, 30], "n2i": [100, 100, 100, 100], "design": "RCT",
                      "measure": "RR"})
    from metaanalysis.effects import add_effect_sizes
    d = add_effect_sizes(d)
    r = rma(data=d)
    assert participants(d) == 800
    assert control_risk(d) == pytest.approx(0.19)
    o = OutcomeResult("falls", "falls", "lower", d, r)
    t = summary_of_findings([o], "en")
    row = t.iloc[0]
    assert row["n_studies"] == 4 and row["participants"] == 800
    per1000 = 1000 * (0.19 * math.exp(r.estimate) - 0.19)
    assert f"{abs(per1000):.0f} per 1,000" in row["absolute"] or \
        f"−{abs(per1000):.0f} (" in row["absolute"]
    assert row["certainty"] in ("high", "moderate")
    t2 = summary_of_findings([o], "en", baseline_risk=0.5)
    assert t2.iloc[0]["control_risk"] == 0.5


def test_summary_of_findings_downgrades_with_reasons():
    d = pd.DataFrame({"key": list("abc"), "yi": [0.1, -0.1, 0.05], "vi": [0.05, 0.05, 0.05],
                      "design": ["RCT", "QES", "RCT"], "measure": "SMD"})
    r = rma(data=d)
    t = summary_of_findings([OutcomeResult("x", "x", "higher", d, r)], "en").iloc[0]
    assert t["certainty"] == "very low"
    assert any("non-randomised" in x for x in t["reasons"])
    assert any("imprecision" in x for x in t["reasons"])


def test_gap_map_shows_gaps_and_directions():
    themes = {"a": {"intervention": {"en": "A"}, "outcomes": [
        {"outcome": "x", "favours": "lower", "label": {"en": "X"}},
        {"outcome": "y", "favours": "higher", "label": {"en": "Y"}}]},
        "b": {"intervention": {"en": "B"}, "outcomes": [
            {"outcome": "z", "favours": "higher", "label": {"en": "Z"}}]}}
    data = {"a": {"outcomes": [{"outcome": "x", "estimate": -0.3, "ci_lb": -0.5,
                                "ci_ub": -0.1, "n_studies": 7, "measure": "RR"},
                               {"outcome": "y", "estimate": 0.1, "ci_lb": -0.1,
                                "ci_ub": 0.3, "n_studies": 3, "measure": "SMD"}]}}
    themes["a"]["outcomes"][0]["domain"] = "survival"
    themes["a"]["outcomes"][1]["domain"] = "survival"
    themes["b"]["outcomes"][0]["domain"] = "employment"
    t = gap_map_table(data, themes, "en")
    assert t["direction"].tolist() == [1, 0, 0]
    assert t["n_studies"].tolist() == [7, 3, 0]
    assert t["domain"].tolist() == ["Mortality", "Mortality", "Employment and income"]
    assert t["intervention"].tolist() == ["A", "A", "B"]
    fig = gap_map(t, lang="en")
    assert fig.alt.endswith("1 outcome of interest without any study.")
    assert "16 intervention × domain cells" in fig.alt  # 2 interventions x 8 domains
    import matplotlib.pyplot as plt

    own, ax = plt.subplots()
    try:
        drawn = gap_map(t, lang="en", ax=ax)
        assert drawn.figure is own and drawn.alt == fig.alt and len(ax.collections) > 0
    finally:
        plt.close(own)


def test_note_figures_render_in_both_languages():
    for lang in ("fr", "en"):
        note = Note("autonomy", lang=lang)
        html = note.summary_of_findings().data
        assert ("Certitude suggérée" if lang == "fr" else "Suggested certainty") in html
        assert "<svg" in note.prisma().html()
        assert "<svg" in note.funnel(0).html()
        light, bars = note.risk_of_bias(where={"review": "bachmann2010"}).parts
        assert "<svg" in light.html() and "<svg" in bars.html()


def test_forest_subgroups_have_their_own_diamonds():
    d = synthetic(9, 1)
    d["design"] = ["RCT", "QES", "RCT"] * 3
    r = rma(data=d)
    fig = forest(r, subgroup="design", lang="en")
    assert fig.subgroups == ["QES (k = 3)", "RCT (k = 6)"]
    assert len(fig.rows) == 9
    rct = rma(data=d[d.design == "RCT"])
    texts = [t.get_text() for t in fig.figure.axes[0].texts]
    assert any(t.startswith(f"{rct.estimate:.2f} [") for t in texts)


def test_subgroup_diamonds_use_the_same_kind_of_model():
    from metaanalysis.multilevel import rma_mv
    from metaanalysis.rve import che

    rng = np.random.default_rng(9)
    cl = np.repeat(np.arange(10), 3)
    d = pd.DataFrame({"key": [f"s{c}" for c in cl], "yi": rng.normal(0.3, 0.3, 30),
                      "vi": rng.uniform(0.01, 0.1, 30),
                      "design": np.where(cl < 6, "RCT", "QES")})
    for fit, sub in ((che(data=d, cluster="key"), che), (rma_mv(data=d, cluster="key"), rma_mv)):
        fig = forest(fit, subgroup="design", lang="en")
        assert fig.subgroups == ["QES (k = 12)", "RCT (k = 18)"]
        part = sub(data=d[d.design == "RCT"], cluster="key")
        texts = [t.get_text() for t in fig.figure.axes[0].texts]
        assert any(t.startswith(f"{part.estimate:.2f} [") for t in texts)


def test_figures_never_change_the_sessions_matplotlib_settings():
    """The house style applies inside the figure functions only (rc_context): a researcher's
    own plots keep their fonts, sizes and SVG settings."""
    import matplotlib

    from metaanalysis.figures import funnel, prisma
    from metaanalysis.plots import svg_figure

    before = dict(matplotlib.rcParams)
    res = rma(synthetic(8, 3)["yi"], synthetic(8, 3)["vi"])
    svg_figure(forest(res))
    svg_figure(funnel(res)).png()
    svg_figure(prisma(Note("autonomy", lang="en").studies))
    after = dict(matplotlib.rcParams)
    assert {k: v for k, v in after.items() if before.get(k) != v} == {}


def test_every_figure_draws_into_a_given_axes():
    """ax= as statsmodels' plot_forest: drawn into the caller's axes, whose figure the result
    carries, with its alt text."""
    import matplotlib.pyplot as plt

    from metaanalysis.figures import funnel, prisma, rob_summary, rob_traffic_light

    res = rma(synthetic(6, 4)["yi"], synthetic(6, 4)["vi"])
    note = Note("autonomy", lang="en")
    effects = note.all_effects
    fig, axes = plt.subplots(2, 3, figsize=(18, 8))
    try:
        a = axes.ravel()
        plots = [forest(res, ax=a[0]), funnel(res, ax=a[1]), prisma(note.studies, ax=a[2]),
                 rob_traffic_light(effects, ax=a[3]), rob_summary(effects, ax=a[4])]
        for plot, ax in zip(plots, a):
            assert plot.figure is fig and plot.alt and not plot.fixed_layout
            assert len(ax.collections) + len(ax.lines) + len(ax.patches) + len(ax.texts) > 0
        assert len(fig.axes) == 6
    finally:
        plt.close(fig)


def test_figures_are_made_outside_pyplot_and_carry_their_data():
    """No hidden channel: the data of a figure are fields of the returned object, not
    attributes stuck on a matplotlib figure; and no figure is left open in pyplot."""
    import matplotlib.pyplot as plt

    from metaanalysis.figures import PrismaPlot, prisma
    from metaanalysis.plots import ForestPlot

    before = plt.get_fignums()
    plot = forest(rma(data=synthetic(6, 1)), lang="en")
    assert isinstance(plot, ForestPlot) and plot.fixed_layout and len(plot.rows) == 6
    assert not hasattr(plot.figure, "alt") and not hasattr(plot.figure, "rows")
    p = prisma(Note("autonomy", lang="en").studies)
    assert isinstance(p, PrismaPlot) and p.counts["included"] > 0
    assert plt.get_fignums() == before
    data, meta = plot._repr_mimebundle_()
    assert data["image/svg+xml"].startswith("<svg") and meta


def test_a_negative_weight_is_not_shown_as_a_percentage():
    """In a CHE model an imprecise effect strongly correlated with a precise one of its study
    gets a negative weight: the forest plot shows a dash with an asterisk, the note's caption
    explains it; no "−1,4 %" reaches a reader."""
    from metaanalysis import che
    from metaanalysis.plots import NEGATIVE_WEIGHT

    rng = np.random.default_rng(3)
    cl = np.repeat(np.arange(6), 2)
    vi = np.tile([0.01, 1.0], 6)
    y = np.repeat(rng.normal(0.3, 0.1, 6), 2) + np.tile([0, 0.05], 6)
    fit = che(data=pd.DataFrame({"key": [f"s{c}" for c in cl], "yi": y, "vi": vi}),
              cluster="key", rho=0.8)
    assert (fit.weights < 0).sum() == 6
    plot = forest(fit, lang="fr", group=None)
    assert plot.negative_weights == 6
    texts = [t.get_text() for t in plot.figure.axes[0].texts]
    assert texts.count(NEGATIVE_WEIGHT) == 6 and not any(t.startswith("−1,") for t in texts)


def test_axis_labels_never_break_a_word_silently():
    from metaanalysis.figures import _wrap

    assert _wrap("Institutionalisation", 14) == "Institutional-\nisation"
    assert _wrap("Cognitive-behavioural programmes", 14) == "Cognitive-\nbehavioural\nprogrammes"
    assert _wrap("Falls and fear of falling", 14) == "Falls and fear\nof falling"


def test_every_kind_of_figure_is_drawn_once_with_matplotlibs_tight_bytes(monkeypatch):
    """svg_figure measures the tight box itself and draws each SVG once; the file is the one
    matplotlib's own bbox_inches="tight" (two drawings) writes, to the byte, for every kind
    of figure; a figure with a raster image keeps matplotlib's way."""
    import io

    from matplotlib.figure import Figure

    from metaanalysis.figures import rob_summary
    from metaanalysis.plots import IDENTITY_ROTATION, house_style

    def tight(plot):
        buf = io.StringIO()
        with house_style():
            plot.figure.savefig(buf, format="svg", metadata={"Date": None, "Creator": None},
                                bbox_inches="tight")
        svg = buf.getvalue()
        return svg[svg.index("<svg"):]

    note = Note("autonomy", lang="fr")
    effects = note.all_effects
    d = synthetic(6, 4)
    res = rma(d["yi"], d["vi"], data=d, slab=d["key"])
    table = gap_map_table({"a": {"outcomes": [{"outcome": "x", "estimate": -0.3, "ci_lb": -0.5,
                                               "ci_ub": -0.1, "n_studies": 7,
                                               "measure": "RR"}]}},
                          {"a": {"intervention": {"fr": "A"}, "outcomes": [
                              {"outcome": "x", "favours": "lower", "label": {"fr": "X"},
                               "domain": "survival"}]}}, "fr")
    made = [forest(res, lang="fr"), forest(note.outcomes[0].result, lang="fr"),
            funnel(res, lang="fr"), prisma(note.studies, lang="fr"),
            rob_traffic_light(effects, lang="fr"), rob_summary(effects, lang="fr"),
            gap_map(table, lang="fr")]
    draws = []
    original = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, r: (draws.append(1), original(self, r)))
    for plot in made:
        expected = tight(plot)
        draws.clear()
        svg = svg_figure(plot).svg
        assert len(draws) == 1, type(plot).__name__
        # svg_figure then drops the metadata, matplotlib's <style>, xlink's prefix
        import re
        expected = re.sub(r"<metadata>.*?</metadata>", "", expected, flags=re.S)
        expected = re.sub(r"<style[^>]*>.*?</style>", "", expected, flags=re.S)
        expected = expected.replace("xlink:href=", "href=").replace(
            ' xmlns:xlink="http://www.w3.org/1999/xlink"', "")
        expected = IDENTITY_ROTATION.sub(r"\1", expected)  # and texts' rotations by 0
        assert svg == expected, type(plot).__name__
    raster = Figure()
    raster.subplots().imshow(np.eye(3))
    draws.clear()
    svg_figure(raster)
    assert len(draws) == 2  # matplotlib's own "tight": measured by a first drawing


def test_each_text_of_a_figure_is_measured_once(monkeypatch):
    """Measuring the tight box and drawing use two renderers, and matplotlib caches a text's
    size per renderer: every text was laid out by FreeType twice (most of education's forest
    plots' time). svg_figure's renderers share one cache for the figure: each distinct text
    (string and font properties) is measured once, the SVG is the same, and the figure keeps
    its own canvas. The cache lives for one figure: settings changed between two figures
    (a font list, kerning) are measured anew."""
    from collections import Counter

    from matplotlib.backends.backend_svg import RendererSVG

    measured = Counter()
    original = RendererSVG.get_text_width_height_descent

    def counting(self, s, prop, ismath):
        measured[(s, hash(prop), ismath)] += 1
        return original(self, s, prop, ismath)

    d = synthetic(9, 1, seed=2)
    res = rma(data=d)
    plot = forest(res, lang="fr")
    canvas = plot.figure.canvas
    before = svg_figure(forest(res, lang="fr")).svg
    monkeypatch.setattr(RendererSVG, "get_text_width_height_descent", counting)
    svg = svg_figure(plot).svg
    assert svg == before
    assert plot.figure.canvas is canvas
    assert measured and set(measured.values()) == {1}
    assert "Effet combiné" in svg and len(measured) > 3 * 9  # the table's cells: measured
    measured.clear()
    svg_figure(forest(res, lang="fr"))
    assert measured and set(measured.values()) == {1}  # a new figure: measured again, once


def test_forest_cells_sit_on_their_rows_columns():
    """The table's texts (label, estimate and interval, weight) are plain texts on their
    row's y (data) and their column's x (a fraction of the figure as made, or of the axes
    when drawn into a caller's axes), vertically centred."""
    import matplotlib.pyplot as plt

    d = synthetic(5, 1, seed=1)
    res = rma(data=d)
    plot = forest(res, lang="en")
    ax = plot.figure.axes[0]
    texts = {tx.get_text(): tx for tx in ax.texts}
    label = texts[plot.rows[0]]
    x, y = label.get_position()
    assert x == 0.02 and y == len(plot.rows) + 2  # the top row
    assert label.get_va() == "center"
    # its place on the page: the figure's width times 0.02, the row's y through the data
    px = label.get_transform().transform((x, y))
    assert np.isclose(px[0], 0.02 * plot.figure.bbox.width)
    assert np.isclose(px[1], ax.transData.transform((0, y))[1])
    fig, ax2 = plt.subplots()
    try:
        forest(res, lang="en", ax=ax2)
        t2 = {tx.get_text(): tx for tx in ax2.texts}[plot.rows[0]]
        assert np.isclose(t2.get_transform().transform(t2.get_position())[0],
                          ax2.transAxes.transform(((0.02 - 0.25) / 0.41, 0))[0])
    finally:
        plt.close(fig)


def test_forest_cells_unclipped_draw_what_axes_clipped_texts_draw():
    """A cell is a text ax.text would make but for the axes' clip path, which ax.text gives
    every text and a cell (never clipped) does not need: the SVG is the same to the byte as
    with the clip path set on every cell, subgroups and a long table included."""
    d = synthetic(40, 3, seed=2)
    d["design"] = np.where(np.arange(len(d)) % 3 == 0, "RCT", "QES")
    res = rma(data=d)
    from metaanalysis.plots import _cell_class

    plain = forest(res, lang="fr", subgroup="design")
    cells = [t for t in plain.figure.axes[0].texts if isinstance(t, _cell_class())]
    assert len(cells) > 200 and all(t.clipbox is None and not t.get_clip_on() for t in cells)
    clipped = forest(res, lang="fr", subgroup="design")
    ax = clipped.figure.axes[0]
    for text in ax.texts:
        if isinstance(text, _cell_class()):
            text.set_clip_path(ax.patch)
    assert svg_figure(plain).svg == svg_figure(clipped).svg


def test_forest_labels_are_each_effects_own():
    """The rows' labels (made once per study) are each effect's own label: studies with the
    same author and year but no name fall back to their own keys, a missing year is left
    out, a year read as a number or as text shows the same."""
    from metaanalysis.citations import short
    from metaanalysis.plots import _study_rows

    d = pd.DataFrame({"key": ["a1", "a1", "b2", "c3", "d4", "e5"],
                      "yi": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "vi": [0.05] * 6,
                      "author": ["Doe, J. and Roe, R.", "Doe, J. and Roe, R.", "", "", np.nan,
                                 "Doe, J."],
                      "year": [2001, 2001, 2002, 2002, np.nan, "2003"]})
    res = rma(data=d)
    labels = _study_rows(res, 40, None)[0]
    expected = [short(a, y, k) for a, y, k in zip(d["author"], d["year"], res.slab)]
    assert labels == expected
    assert labels[2] != labels[3] and labels[5] == "Doe 2003"


def test_alt_texts_agree_their_words_with_their_counts():
    """Figures' alt texts say "1 effet", "1 093 effets", "1 étude" as the page does (they
    said "de 1 effets", "de 1093 effets")."""
    from metaanalysis.notes import Note

    fr = Note("education", lang="fr")
    assert fr.forest(0).alt.startswith("Graphique en forêt de 1\u202f093\u00a0effets (lecture)")
    assert "Forest plot of 1,093 effects (reading)" in Note("education", lang="en").forest(0).alt
    one = forest(rma([0.2], [0.01], measure="SMD"), lang="fr")
    assert "de 1\u00a0effet (" in one.alt
