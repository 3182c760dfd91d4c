"""The structural logistic regression of content preference, fitted and then served as linear towers.

The baseline the content model must beat: a logistic regression on exactly the
interactions of the simulator's click model (industry x topic, seniority x
topic, seniority x format, free mail x emoji, urgency x topic,
personalization, the item) plus the contact's click rate on the content's
topic, its clicks and 90-day click rate, and the item's click rate: the right
structure, the same data.

Every term is a product of one contact-side and one content-side quantity, or
belongs to one side alone, so the fitted logit is exactly

    logit = u(contact) . v(content) + u_bias + v_bias + b

with u, v linear in one-hot categories and numbers: the two-tower's served form
(`models.two_tower` with linear towers). `fit` fits the regression (scikit-learn
L-BFGS on a sparse design) and writes its coefficients into those towers, so the
baseline that is evaluated is the one that is registered and served when it
wins (`ContentPreferenceSpec.baseline_predictor`): contact vectors published to
the online store, content vectors computed per catalog, one `ContentRanker`.

Inputs (`contact_view`, `content_view`) are derived from the same feature
frames the two-tower reads; categories are compared as strings (a missing
value, whichever store it came from, is the category "nan").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

INPUTS = "structural"
CONTACT_CATEGORIES = ("industry", "seniority", "free_mail")
CONTENT_CATEGORIES = ("topic", "format", "emoji", "urgent_topic", "personal", "item")
CROSSES = (("industry", "topic"), ("seniority", "topic"), ("seniority", "format"), ("free_mail", "emoji"))
CONTACT_BIAS_NUMBERS = ("log_clicks_total", "click_rate_90d")
AFFINITY_PREFIX = "log_click_affinity_"
FLOOR = 1e-3  # added to a rate before its log
C = 0.5  # inverse L2 strength of the regression
MAX_ITEMS = 1_000_000  # item vocabulary bound (the item is a category of the regression)


def _log_rate(values) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(np.log(pd.to_numeric(values, errors="coerce").to_numpy(np.float64) + FLOOR))


def _text(values: pd.Series) -> np.ndarray:
    """Categories as strings; missing (NaN, None, NA: the offline and online stores differ) is "nan"."""
    values = values.astype(object)
    return np.where(pd.isna(values), "nan", values.astype(str)).astype(object)


def contact_view(frame: pd.DataFrame) -> pd.DataFrame:
    """The regression's contact inputs from a contact feature frame."""
    text = lambda c: _text(frame[c])  # noqa: E731
    out = {"contact_id": frame["contact_id"].to_numpy()} if "contact_id" in frame else {}
    out.update({"industry": text("industry"), "seniority": text("seniority"), "free_mail": text("email_free_mail")})
    for col in frame.columns:
        if col.startswith("click_affinity_"):
            out[f"log_{col}"] = _log_rate(frame[col])
    clicks = pd.to_numeric(frame["clicks_total"], errors="coerce").to_numpy(np.float64)
    out["log_clicks_total"] = np.nan_to_num(np.log1p(clicks))
    out["click_rate_90d"] = np.nan_to_num(pd.to_numeric(frame["click_rate_90d"], errors="coerce").to_numpy(np.float64))
    return pd.DataFrame(out, index=frame.index)


def content_view(frame: pd.DataFrame) -> pd.DataFrame:
    """The regression's content inputs from a content feature frame."""
    text = lambda c: _text(frame[c])  # noqa: E731
    topic = text("content_topic")
    return pd.DataFrame({
        "content_id": frame["content_id"].to_numpy(),
        "topic": topic, "format": text("content_format"), "emoji": text("has_emoji"),
        "urgent_topic": text("has_urgency") + "|" + topic, "personal": text("has_personalization"),
        "item": text("content_id"), "log_click_rate": _log_rate(frame["content_click_rate"]),
    }, index=frame.index)


class _Design:
    """Column layout of the regression's sparse design, from the two encoders' vocabularies."""

    def __init__(self, contact_enc, content_enc):
        self.cards = {**{c: len(contact_enc.encoder.categorical[c]) for c in CONTACT_CATEGORIES},
                      **{c: len(content_enc.encoder.categorical[c]) for c in CONTENT_CATEGORIES}}
        blocks = [(a, b) for a, b in CROSSES] + [(c,) for c in ("urgent_topic", "personal", "item")]
        self.offset, start = {}, 0
        for block in blocks:
            self.offset[block] = start
            start += int(np.prod([self.cards[c] for c in block]))
        self.numbers = ("own_affinity", *CONTACT_BIAS_NUMBERS, "log_click_rate")
        self.width = start + len(self.numbers)

    def matrix(self, codes: dict[str, np.ndarray], numbers: np.ndarray):
        """Sparse design: one-hot blocks (a pair or category with an unknown code, -1, has none) | numbers."""
        import scipy.sparse as sp

        rows, cols = [], []
        for block, start in self.offset.items():
            index, known = codes[block[0]], codes[block[0]] >= 0
            if len(block) == 2:
                index, known = index * self.cards[block[1]] + codes[block[1]], known & (codes[block[1]] >= 0)
            rows.append(np.flatnonzero(known))
            cols.append(start + index[known])
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        shape = (len(numbers), self.width - len(self.numbers))
        onehot = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)
        return sp.hstack([onehot, sp.csr_matrix(numbers)]).tocsr()


def _codes(encoder, view: pd.DataFrame, names) -> dict[str, np.ndarray]:
    """0-based vocabulary codes of categorical columns `names`; -1 for a value not in the vocabulary."""
    return {name: pd.Categorical(view[name], categories=encoder.encoder.categorical[name]).codes.astype(np.int64)
            for name in names}


def _own_affinity(contact: pd.DataFrame, topics: np.ndarray) -> np.ndarray:
    """log(contact's click rate on the row's topic + floor); a topic without its column gives log(floor)."""
    from features.pipeline import topic_slug

    own = np.full(len(contact), np.log(FLOOR))
    for topic in pd.unique(topics):
        col = f"{AFFINITY_PREFIX}{topic_slug(topic)}"
        if col in contact:
            m = topics == topic
            own[m] = contact[col].to_numpy(np.float64)[m]
    return own


@dataclass
class Regression:
    """The fitted regression (scikit-learn) with its design; `fit` turns it into towers."""

    contact_encoder: "TowerEncoder"
    content_encoder: "TowerEncoder"
    design: _Design
    model: object

    @classmethod
    def fit(cls, contact_frame: pd.DataFrame, content_frame: pd.DataFrame, labels: np.ndarray,
            threads: int = 1) -> "Regression":
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        from models.content_preference import TowerEncoder

        contact, content = contact_view(contact_frame), content_view(content_frame)
        contact_enc = TowerEncoder.fit(contact)
        content_enc = TowerEncoder.fit(content, max_categories=MAX_ITEMS)
        missing = [c for c in (*CONTACT_CATEGORIES, *CONTENT_CATEGORIES)
                   if c not in contact_enc.encoder.categorical and c not in content_enc.encoder.categorical]
        if missing:
            raise ValueError(f"structural logistic regression: no values for {missing}")
        out = cls(contact_enc, content_enc, _Design(contact_enc, content_enc), None)
        with threadpool_limits(limits=threads):
            out.model = LogisticRegression(C=C, max_iter=500).fit(out.matrix(contact_frame, content_frame),
                                                                  np.asarray(labels))
        return out

    def matrix(self, contact_frame: pd.DataFrame, content_frame: pd.DataFrame):
        """The regression's design of row-aligned (contact, content) pairs."""
        contact, content = contact_view(contact_frame), content_view(content_frame)
        codes = {**_codes(self.contact_encoder, contact, CONTACT_CATEGORIES),
                 **_codes(self.content_encoder, content, CONTENT_CATEGORIES)}
        numbers = np.column_stack([_own_affinity(contact, content["topic"].to_numpy(object)),
                                   *(contact[c].to_numpy(np.float64) for c in CONTACT_BIAS_NUMBERS),
                                   content["log_click_rate"].to_numpy(np.float64)])
        return self.design.matrix(codes, numbers)

    def probability(self, contact_frame: pd.DataFrame, content_frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(self.matrix(contact_frame, content_frame))[:, 1]

    def ranker(self):
        """The regression as a `ContentRanker` with linear towers (the same logit)."""
        from models.content_preference import ContentRanker

        module = towers(self.design, self.contact_encoder, self.content_encoder, self.model.coef_[0],
                        float(self.model.intercept_[0]))
        return ContentRanker(module, self.contact_encoder, self.content_encoder, inputs=INPUTS)


def fit(contact_frame: pd.DataFrame, content_frame: pd.DataFrame, labels: np.ndarray, threads: int = 1):
    """Fit the regression on row-aligned training pairs; the `ContentRanker` that serves it."""
    return Regression.fit(contact_frame, content_frame, labels, threads).ranker()


def towers(design: _Design, contact_enc, content_enc, coef: np.ndarray, intercept: float):
    """The regression's coefficients as a `TwoTower` with linear towers (exactly the same logit).

    Contact vector blocks: one-hot industry | one-hot seniority | one-hot seniority | one-hot free mail |
    log click rate per topic; the content vector holds the matching coefficient columns (industry x topic,
    seniority x topic, seniority x format, free mail x emoji, the own-topic coefficient on the topic's slot).
    The last component of each side is its own terms (bias)."""
    import torch

    from features.pipeline import topic_slug
    from models.two_tower import TowerLayout, TwoTower, TwoTowerConfig

    k = design.cards
    topics = content_enc.encoder.categorical["topic"]
    block = {}
    start = 0
    for name, size in (("industry", k["industry"]), ("seniority_topic", k["seniority"]),
                       ("seniority_format", k["seniority"]), ("free_mail", k["free_mail"]), ("affinity", len(topics))):
        block[name] = start
        start += size
    dim, last = start, start
    weight = dict(zip(design.numbers, coef[design.width - len(design.numbers):]))

    def cross(a, b):
        lo = design.offset[(a, b)]
        return coef[lo : lo + k[a] * k[b]].reshape(k[a], k[b])

    def layout(enc):
        return TowerLayout(enc.n_cat, enc.n_num, enc.cardinalities)

    config = TwoTowerConfig(layout(contact_enc), layout(content_enc), embedding_dim=dim + 1, hidden=0, out_dim=dim)
    module = TwoTower(config)
    u_emb = {c: np.zeros((len(contact_enc.encoder.categorical[c]) + 1, dim + 1)) for c in CONTACT_CATEGORIES}
    v_emb = {c: np.zeros((len(content_enc.encoder.categorical[c]) + 1, dim + 1)) for c in CONTENT_CATEGORIES}
    for name, at in (("industry", [block["industry"]]), ("seniority", [block["seniority_topic"], block["seniority_format"]]),
                     ("free_mail", [block["free_mail"]])):
        for lo in at:
            u_emb[name][1 + np.arange(k[name]), lo + np.arange(k[name])] = 1.0
    v_emb["topic"][1:, block["industry"] : block["industry"] + k["industry"]] = cross("industry", "topic").T
    v_emb["topic"][1:, block["seniority_topic"] : block["seniority_topic"] + k["seniority"]] = cross("seniority", "topic").T
    v_emb["format"][1:, block["seniority_format"] : block["seniority_format"] + k["seniority"]] = cross("seniority", "format").T
    v_emb["emoji"][1:, block["free_mail"] : block["free_mail"] + k["free_mail"]] = cross("free_mail", "emoji").T
    for name in ("urgent_topic", "personal", "item"):
        lo = design.offset[(name,)]
        v_emb[name][1:, last] = coef[lo : lo + k[name]]

    # numbers: the towers see them standardized, z = (x - mean) / std, so x = std z + mean
    u_lin, u_bias = np.zeros((dim + 1, contact_enc.n_num)), np.zeros(dim + 1)
    contact_numbers = contact_enc.encoder.columns[contact_enc.n_cat :]
    mean, std = np.asarray(contact_enc.mean), np.asarray(contact_enc.std)
    for j, col in enumerate(contact_numbers):
        if col in CONTACT_BIAS_NUMBERS:
            u_lin[last, j], u_bias[last] = weight[col] * std[j], u_bias[last] + weight[col] * mean[j]
    for t, topic in enumerate(topics):
        col = f"{AFFINITY_PREFIX}{topic_slug(topic)}"
        if col in contact_numbers:
            j = contact_numbers.index(col)
            u_lin[block["affinity"] + t, j], u_bias[block["affinity"] + t] = std[j], mean[j]
            v_emb["topic"][1 + t, block["affinity"] + t] = weight["own_affinity"]
        else:
            v_emb["topic"][1 + t, last] += weight["own_affinity"] * np.log(FLOOR)
    v_lin, v_bias = np.zeros((dim + 1, content_enc.n_num)), np.zeros(dim + 1)
    j = content_enc.encoder.columns[content_enc.n_cat :].index("log_click_rate")
    v_lin[last, j] = weight["log_click_rate"] * content_enc.std[j]
    v_bias[last] = weight["log_click_rate"] * content_enc.mean[j]

    def load(tower, enc, emb, lin, bias):
        names = enc.encoder.columns[: enc.n_cat]
        with torch.no_grad():
            for i, name in enumerate(names):
                tower.embeddings[i].weight.copy_(torch.from_numpy(emb[name]))
            tower.linear.weight.copy_(torch.from_numpy(lin))
            tower.linear.bias.copy_(torch.from_numpy(bias))

    load(module.contact_tower, contact_enc, u_emb, u_lin, u_bias)
    load(module.content_tower, content_enc, v_emb, v_lin, v_bias)
    with torch.no_grad():
        module.bias.fill_(intercept)
    return module.eval()
