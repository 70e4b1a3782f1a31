"""Block scoring methods behind one interface, so benchmarks can compare them.

A selector estimates, for each query row and each candidate block, the
attention logit the block would get, using only the block representatives.
Queries and representatives are both *before* RoPE: scoring then behaves as
if every block sat at the query's own position (InfLLM gives all memory one
position too), which is what reassigned positions approximate anyway.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class LayerCandidates:
    """Representatives of the candidate blocks of one layer, on the compute device.

    kmin/kmax/kmean [kv_heads, n_candidates, head_dim]; centroids
    [kv_heads, n_centroid_rows, head_dim] and labels
    [kv_heads, n_candidates, block] indexing into them (-1 = padding).
    """

    kmin: Tensor
    kmax: Tensor
    kmean: Tensor
    centroids: Tensor | None = None
    labels: Tensor | None = None


class Selector(ABC):
    """Estimated logits [kv_heads, rows, n_candidates] for queries q [kv_heads, rows, head_dim]."""

    name: str = ""

    @abstractmethod
    def scores(self, q: Tensor, reps: LayerCandidates) -> Tensor: ...


class QuestSelector(Selector):
    """Upper bound of q·k over the block from per-dimension min/max (Quest)."""

    name = "quest"

    def scores(self, q: Tensor, reps: LayerCandidates) -> Tensor:
        return (q.clamp(min=0) @ reps.kmax.to(q.dtype).transpose(1, 2)
                + q.clamp(max=0) @ reps.kmin.to(q.dtype).transpose(1, 2))


class MeanKeySelector(Selector):
    """q·mean(k): cheap, but a single sharp key is diluted by its 63 neighbours."""

    name = "mean"

    def scores(self, q: Tensor, reps: LayerCandidates) -> Tensor:
        return q @ reps.kmean.to(q.dtype).transpose(1, 2)


class CentroidSelector(Selector):
    """Best centroid among the block's tokens (Squeezed Attention's clusters)."""

    name = "centroids"

    def scores(self, q: Tensor, reps: LayerCandidates) -> Tensor:
        if reps.centroids is None or reps.labels is None:
            raise ValueError("the centroid selector needs caches built with n_centroids > 0")
        heads, rows, _ = q.shape
        _, n_cand, block = reps.labels.shape
        per_centroid = q @ reps.centroids.to(q.dtype).transpose(1, 2)   # [H, rows, C]
        per_centroid = torch.cat([per_centroid, per_centroid.new_full(
            (heads, rows, 1), float("-inf"))], dim=2)               # index -1 -> -inf
        labels = reps.labels.long().reshape(heads, 1, -1)
        labels = torch.where(labels < 0, per_centroid.shape[2] - 1, labels)
        out = []
        for r0 in range(0, rows, 64):                               # bound the [rows, N] temp
            part = per_centroid[:, r0:r0 + 64]
            tok = part.gather(2, labels.expand(heads, part.shape[1], -1))
            out.append(tok.view(heads, part.shape[1], n_cand, block).amax(-1))
        return torch.cat(out, dim=1)


SELECTORS: dict[str, type[Selector]] = {
    cls.name: cls for cls in (QuestSelector, MeanKeySelector, CentroidSelector)}


def make_selector(name: str) -> Selector:
    try:
        return SELECTORS[name]()
    except KeyError:
        raise ValueError(f"unknown selector {name!r}; use one of {sorted(SELECTORS)}") from None


def aggregate(scores: Tensor, head_dim: int) -> Tensor:
    """One score per KV head and block from [kv_heads, rows, n]: each query row's
    estimated softmax over blocks, summed over the rows (the query heads of the
    group and the query tokens), i.e. the attention mass a block is expected to get."""
    return torch.softmax(scores.float() / head_dim ** 0.5, dim=-1).sum(1)


def top_blocks(scores: Tensor, k: int) -> Tensor:
    """Indices [kv_heads, k] of the k best blocks per head, in document order."""
    return scores.topk(k, dim=-1).indices.sort(dim=-1).values
