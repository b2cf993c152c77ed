"""Prioritised screening: show first the records most likely to be relevant, learning from the
decisions made so far (active learning, as ASReview does), and measure an ordering.

The model is ASReview's usual one: TF-IDF features of title and abstract (words and word
pairs, sublinear term frequency) and a linear support-vector classifier with class weights
balanced between the few inclusions and the many exclusions, retrained after every decision
(in a long screening, after every inclusion and after batches of 1/200 of the records seen);
the next record is the one with the highest score ("max" query). Until the decisions include
at least one inclusion and one exclusion the order is the file's (or, in a simulation, random
with the seed).

:func:`simulate` replays a finished screening (labels known) to measure the ordering;
:func:`wss` and :func:`recall_at` are the usual metrics (Cohen et al., 2006: work saved over
sampling at a recall level).
"""

from __future__ import annotations

import numpy as np

#: Settings of ASReview's default model (elas_u4, ASReview 2-3): the SVM's C and the ratio of
#: the balanced sample weights (read from asreview/models/models.py and balancers.py)
C = 0.11
RATIO = 9.8
#: retrain after every decision (0), or after batches of 1/RETRAIN of the records screened
#: (200: after every decision for the first 200, then every 1/200 of those screened and at
#: every inclusion; on the Kitchenham data as good as retraining always, 10x faster)
RETRAIN = 200


def features(texts):
    """The TF-IDF matrix of the records' texts (title and abstract), fitted on all of them."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                          min_df=1, max_df=0.95, dtype=np.float32)
    return vec.fit_transform([t if isinstance(t, str) else "" for t in texts])


class Ranker:
    """Scores the unscreened records from the screened ones (see the module)."""

    def __init__(self, X, seed: int = 0):
        self.X = X
        self.seed = seed

    def scores(self, labelled_idx, labels) -> np.ndarray | None:
        """A relevance score for every record, or None while the labels hold one class."""
        from sklearn.svm import LinearSVC

        y = np.asarray(labels)
        n1, n0 = int((y == 1).sum()), int((y == 0).sum())
        if not n1 or not n0:
            return None
        # ASReview's "balanced" sample weights (ratio 9.8) and its SVM's C = 0.11 (elas_u4)
        w = np.where(y == 1, 1.0, n1 / (RATIO * n0))
        w *= len(y) / w.sum()
        clf = LinearSVC(C=C, loss="squared_hinge", random_state=self.seed, max_iter=5000)
        clf.fit(self.X[labelled_idx], y, sample_weight=w)
        return clf.decision_function(self.X)


def simulate(texts, labels, prior_idx, *, seed: int = 0) -> list[int]:
    """The order (row numbers) in which a prioritised screening shows the records: the prior
    records first, then one at a time the best-scored unscreened record, the model retrained
    on every label revealed so far; ties and the start broken at random with ``seed``."""
    labels = np.asarray(labels, dtype=int)
    n = len(labels)
    X = features(texts)
    ranker = Ranker(X, seed)
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(n) * 1e-9
    order = list(dict.fromkeys(int(i) for i in prior_idx))
    seen = np.zeros(n, dtype=bool)
    seen[order] = True
    s, next_fit = None, 0
    while len(order) < n:
        if len(order) >= next_fit:
            s = ranker.scores(order, labels[order])
            # retrained after every decision at first, then after batches of 1/50 of the
            # records screened (the ordering changes little; the screening stays fast)
            next_fit = len(order) + (max(1, len(order) // RETRAIN) if RETRAIN else 1)
        if s is None:
            remaining = np.flatnonzero(~seen)
            nxt = int(remaining[np.argmax(tiebreak[remaining])])
        else:
            nxt = int(np.argmax(np.where(seen, -np.inf, s + tiebreak)))
        order.append(nxt)
        seen[nxt] = True
        if s is None or labels[nxt] == 1:
            next_fit = min(next_fit, len(order))  # a new inclusion: learn from it at once
    return order


def recall_curve(order, labels) -> np.ndarray:
    """Share of the relevant records found after each record screened."""
    y = np.asarray(labels, dtype=int)[list(order)]
    return np.cumsum(y) / max(1, y.sum())


def wss(order, labels, recall: float = 0.95) -> float:
    """Work saved over sampling at a recall level: the share of records not screened when the
    recall is reached, minus what random screening saves (1 - recall)."""
    curve = recall_curve(order, labels)
    n = len(curve)
    reached = int(np.argmax(curve >= recall - 1e-12)) + 1
    return (n - reached) / n - (1 - recall)


def recall_at(order, labels, share: float = 0.10) -> float:
    """Recall after screening a share of the records."""
    curve = recall_curve(order, labels)
    return float(curve[max(0, int(np.ceil(share * len(curve))) - 1)])


class ScreeningOrder:
    """The interactive screen's order: the reviewer's own title decisions (blind to the
    others') train the ranking model; the best-scored record comes next."""

    def __init__(self, entries, reviewer: str):
        self.keys = [e.key for e in entries]
        self.row = {k: i for i, k in enumerate(self.keys)}
        texts = [" ".join((e.fields.get("title", ""), e.fields.get("abstract", ""),
                           e.fields.get("keywords", ""))) for e in entries]
        self.ranker = Ranker(features(texts))
        self.labels = {}
        for e in entries:
            for d in e.decisions:
                if d.stage == "title" and d.reviewer == reviewer:
                    self.labels[e.key] = 1 if d.decision == "include" else 0
        self.since_inclusion = 0
        self.scores = None
        self._fit()

    def _fit(self):
        idx = [self.row[k] for k in self.labels]
        self.scores = self.ranker.scores(idx, [self.labels[k] for k in self.labels])

    def learn(self, key, decision):
        self.labels[key] = 1 if decision == "include" else 0
        self.since_inclusion = 0 if decision == "include" else self.since_inclusion + 1
        self._fit()

    def next(self, queue, start) -> int:
        """The position in ``queue`` (from ``start``) of the record to show next."""
        if self.scores is None:
            return start  # until one inclusion and one exclusion: the file's order
        rows = np.fromiter((self.row[e.key] for e in queue[start:]), dtype=np.int64,
                           count=len(queue) - start)
        return start + int(np.argmax(self.scores[rows]))

    def stopping_aid(self, remaining) -> str:
        if self.scores is None:
            return f"  ({len(remaining)} left; the order learns once you have included one " \
                "record and excluded one)"
        rows = np.fromiter((self.row[e.key] for e in remaining), dtype=np.int64,
                           count=len(remaining))
        likely = int((self.scores[rows] > 0).sum())
        return (f"  ({len(remaining)} left; {self.since_inclusion} screened since the last "
                f"inclusion; the model scores {likely} of those left as likely relevant)")
