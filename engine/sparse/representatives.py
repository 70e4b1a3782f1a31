"""Small per-block summaries of the keys, kept resident for block scoring.

Scoring a question against every key would cost as much as dense attention;
scoring it against one or two vectors per 64-token block costs 1/32 of
that. Kept per layer and KV head, computed from the keys *before* RoPE:

- min/max bounds per dimension (Quest): q·k <= sum_d max(q_d min_d, q_d max_d),
  an upper bound on any key of the block, so a block holding one sharp
  match (a needle) is not averaged away;
- the mean key: a cheaper, smoother estimate;
- the mean value, and the mean key rotated by each token's offset inside
  its block: one summary token standing for a block that the selection
  leaves out (`SparseConfig.unselected="mean"`). Rotated once more by the
  block's first position it is exactly the mean of the keys as attention
  sees them (RoPE: R(p + t) = R(p) R(t)), wherever the block is placed;
- optionally k-means centroids of all the document's keys (Squeezed
  Attention), with each token's centroid label, so a block scores as its
  best-matching centroid.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .model import apply_rope, rope_cos_sin


@dataclass
class BlockRepresentatives:
    """Tensors [layers, kv_heads, n_blocks, head_dim]; centroids optional."""

    kmin: Tensor
    kmax: Tensor
    kmean: Tensor
    centroids: Tensor | None = None   # [layers, kv_heads, n_centroids, head_dim]
    labels: Tensor | None = None      # [layers, kv_heads, n_blocks, block] int32, -1 = padding
    vmean: Tensor | None = None       # mean value per block (caches built before it: None)
    krel: Tensor | None = None        # mean of R(t) k_t, t the offset in the block (idem)

    def to(self, device: torch.device | str) -> "BlockRepresentatives":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return BlockRepresentatives(move(self.kmin), move(self.kmax), move(self.kmean),
                                    move(self.centroids), move(self.labels), move(self.vmean),
                                    move(self.krel))

    def compact(self) -> "BlockRepresentatives":
        """Bounds, means and centroids in bfloat16, for the GPU, where they stay
        resident: half the device memory. Scores are computed in float32 from
        them; a bound rounded to 8 bits of mantissa ranks blocks as before
        except for near ties."""
        half = lambda t: None if t is None else t.to(torch.bfloat16)  # noqa: E731
        return BlockRepresentatives(half(self.kmin), half(self.kmax), half(self.kmean),
                                    half(self.centroids), self.labels, half(self.vmean),
                                    half(self.krel))

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in
                   (self.kmin, self.kmax, self.kmean, self.centroids, self.labels, self.vmean,
                    self.krel)
                   if t is not None)

    def save(self, path: Path) -> None:
        torch.save({k: v for k, v in self.__dict__.items() if v is not None}, path)

    @classmethod
    def load(cls, path: Path) -> "BlockRepresentatives":
        return cls(**torch.load(path, map_location="cpu", weights_only=True))


def block_bounds(keys: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """min, max, mean over each block's valid tokens.

    keys [kv_heads, n_blocks, block, head_dim] float32; valid [n_blocks, block] bool.
    """
    v = valid[None, :, :, None]
    kmin = keys.masked_fill(~v, float("inf")).amin(2)
    kmax = keys.masked_fill(~v, float("-inf")).amax(2)
    return kmin, kmax, block_means(keys, valid)


def block_means(x: Tensor, valid: Tensor) -> Tensor:
    """Mean over each block's valid tokens of x [kv_heads, n_blocks, block, head_dim]."""
    count = valid.sum(1).clamp(min=1)[None, :, None]
    return x.masked_fill(~valid[None, :, :, None], 0.0).sum(2) / count


def rotated_block_means(keys: Tensor, valid: Tensor, theta: float) -> Tensor:
    """Mean over each block's valid tokens of its pre-RoPE keys [kv_heads,
    n_blocks, block, head_dim], each rotated by its offset in the block."""
    cos, sin = rope_cos_sin(torch.arange(keys.shape[2], device=keys.device), keys.shape[-1],
                            theta)
    return block_means(apply_rope(keys.float(), cos, sin), valid)


def kmeans(x: Tensor, k: int, *, iters: int = 8, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Plain Lloyd k-means on rows of x [N, D]; returns (centroids [k, D], labels [N])."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    k = min(k, x.shape[0])
    centroids = _kmeans_pp(x, k, gen)
    labels = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    for _ in range(iters):
        # ||x - c||^2 up to a per-row constant
        dist = (centroids * centroids).sum(1)[None, :] - 2 * x @ centroids.T
        labels = dist.argmin(1)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).clamp(min=1)[:, None].to(x.dtype)
        moved = sums / counts
        empty = torch.bincount(labels, minlength=k) == 0
        centroids = torch.where(empty[:, None], centroids, moved)
    return centroids, labels


def _kmeans_pp(x: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """k-means++ seeding: outlying keys (the sharp, rare ones a question may
    be after) get their own centroid instead of being averaged into a crowd."""
    first = int(torch.randint(x.shape[0], (1,), generator=gen))
    chosen = [first]
    best = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        probs = (best / best.sum().clamp(min=1e-12)).cpu()
        nxt = int(torch.multinomial(probs, 1, generator=gen)) if best.sum() > 0 else 0
        chosen.append(nxt)
        best = torch.minimum(best, ((x - x[nxt]) ** 2).sum(1))
    return x[chosen].clone()


def layer_centroids(keys: Tensor, valid: Tensor, n_centroids: int) -> tuple[Tensor, Tensor]:
    """Centroids [kv_heads, C, D] and labels [kv_heads, n_blocks, block] for one layer."""
    heads, n_blocks, block, dim = keys.shape
    flat_valid = valid.reshape(-1)
    cents, labels = [], []
    for h in range(heads):
        rows = keys[h].reshape(-1, dim)[flat_valid]
        c, lab = kmeans(rows, n_centroids)
        if c.shape[0] < n_centroids:   # fewer tokens than centroids: pad, never matched
            c = torch.cat([c, c.new_zeros(n_centroids - c.shape[0], dim)])
        full = torch.full((n_blocks * block,), -1, dtype=torch.int32, device=keys.device)
        full[flat_valid] = lab.to(torch.int32)
        cents.append(c)
        labels.append(full.view(n_blocks, block))
    return torch.stack(cents), torch.stack(labels)
