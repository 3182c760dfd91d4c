"""Two-tower click model in torch (Yi et al., "Sampling-bias-corrected neural
modeling for large corpus item recommendations", RecSys 2019; Covington et
al., "Deep Neural Networks for YouTube Recommendations", RecSys 2016).

A contact tower and a content tower each embed their categorical features and
pass them with the numeric ones through a small MLP; the logit is the dot
product of the two embeddings plus a per-side bias. Content is described only
by its features (topic, format, subject traits, smoothed rates), so a new item
with no clicks still gets a score.

The module takes ONE float32 matrix per (contact, content) pair, laid out as
[contact categorical codes | contact numbers | content codes | content numbers]
(codes are small integers stored as floats, 0 = unknown), and returns
P(click). One tensor in, one out: `torch.export` (MLflow's `pt2` format) and
the pyfunc wrapper both work on it.

With `hidden = 0` the towers are linear (`LinearTower`: one vector per category
plus an affine map of the numbers), so the logit is bilinear in the contact's
and the content's features: a logistic regression on contact x content
crosses in the same served form (`models.structural_logit`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TowerLayout:
    n_cat: int  # categorical columns
    n_num: int  # numeric columns
    cardinalities: tuple[int, ...]  # per categorical column, including the 0 = unknown code


@dataclass(frozen=True)
class TwoTowerConfig:
    contact: TowerLayout
    content: TowerLayout
    embedding_dim: int = 8
    hidden: int = 64  # 0: linear towers (`LinearTower`)
    out_dim: int = 16

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TwoTowerConfig":
        lay = lambda x: TowerLayout(x["n_cat"], x["n_num"], tuple(x["cardinalities"]))  # noqa: E731
        return cls(lay(d["contact"]), lay(d["content"]), d["embedding_dim"], d["hidden"], d["out_dim"])


class Tower(nn.Module):
    def __init__(self, layout: TowerLayout, embedding_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.n_cat, self.n_num = layout.n_cat, layout.n_num
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim) for c in layout.cardinalities)
        width = layout.n_cat * embedding_dim + layout.n_num
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, out_dim + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = x[:, : self.n_cat].long()
        parts = [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
        parts.append(x[:, self.n_cat : self.n_cat + self.n_num])
        return self.mlp(torch.cat(parts, dim=1))


class LinearTower(nn.Module):
    """Sum of one (out_dim + 1)-vector per categorical code and an affine map of the numbers."""

    def __init__(self, layout: TowerLayout, out_dim: int):
        super().__init__()
        self.n_cat, self.n_num = layout.n_cat, layout.n_num
        self.embeddings = nn.ModuleList(nn.Embedding(c, out_dim + 1) for c in layout.cardinalities)
        self.linear = nn.Linear(layout.n_num, out_dim + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = x[:, : self.n_cat].long()
        out = self.linear(x[:, self.n_cat : self.n_cat + self.n_num])
        for i, emb in enumerate(self.embeddings):
            out = out + emb(codes[:, i])
        return out


def make_tower(layout: TowerLayout, config: "TwoTowerConfig") -> nn.Module:
    if config.hidden == 0:
        return LinearTower(layout, config.out_dim)
    return Tower(layout, config.embedding_dim, config.hidden, config.out_dim)


class TwoTower(nn.Module):
    def __init__(self, config: TwoTowerConfig):
        super().__init__()
        self.config = config
        c = config
        self.contact_width = c.contact.n_cat + c.contact.n_num
        self.contact_tower = make_tower(c.contact, c)
        self.content_tower = make_tower(c.content, c)
        self.bias = nn.Parameter(torch.zeros(1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        u = self.contact_tower(x[:, : self.contact_width])
        v = self.content_tower(x[:, self.contact_width :])
        return (u[:, :-1] * v[:, :-1]).sum(dim=1) + u[:, -1] + v[:, -1] + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))
