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
    hidden: int = 64
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


class TwoTower(nn.Module):
    def __init__(self, config: TwoTowerConfig):
        super().__init__()
        self.config = config
        c = config
        self.contact_width = c.contact.n_cat + c.contact.n_num
        self.contact_tower = Tower(c.contact, c.embedding_dim, c.hidden, c.out_dim)
        self.content_tower = Tower(c.content, c.embedding_dim, c.hidden, c.out_dim)
        self.bias = nn.Parameter(torch.zeros(1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        u = self.contact_tower(x[:, : self.contact_width])
        v = self.content_tower(x[:, self.contact_width :])
        return (u[:, :-1] * v[:, :-1]).sum(dim=1) + u[:, -1] + v[:, -1] + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))
