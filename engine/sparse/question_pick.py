"""How the question picks its blocks: exact attention mass over the
candidates, instead of the representatives alone.

The question's forward runs once per question, so it can afford what each
decode step cannot: exact scores of its rows against the candidates' keys
(`exact_scoring`). "filter" (after GemFilter, the default) lets one middle
layer's exact mass, summed over its heads, pick one set of blocks for every
layer (`question_forward` runs that layer first); "hybrid" alternates exact
mass and the selector's choice per layer; "exact" and "selector" use one.
`QuestionPicking` is a part of `SparseAttention` (attention.py) and reads
its candidate tables, plan and caches.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .exact_scoring import exact_token_mass, spill_to_neighbours
from .lexical import bm25_scores, candidate_token_ids, fuse
from .model import apply_rope, rope_cos_sin

if TYPE_CHECKING:
    from .attention import SparseAttention
    from .model import Transformer


class QuestionPicking:
    """SparseAttention's choice of blocks for the question's own rows."""

    def _shared_pick(self, layer: int, q: Tensor, positions: Tensor | None, scores: Tensor,
                     k: int) -> Tensor:
        """One set of k blocks for every head [kv_heads, k], best first: the
        candidates with the most exact attention mass at this layer, summed over
        its heads and rows (the last `filter_rows` tokens' rows, if set), every
        candidate scored (it is one layer)."""
        H, n = self.cfg.n_kv_heads, len(self.cand_block)
        pool = torch.arange(n, device=self.device).expand(H, n)
        last = self.config.filter_rows
        if last and positions is not None and last < positions.shape[0]:
            T, D = positions.shape[0], q.shape[-1]      # rows: group heads x tokens
            q = q.reshape(H, -1, T, D)[:, :, T - last:].reshape(H, -1, D)
            positions = positions[T - last:]
        mass = self._exact_mass(layer, q, positions, scores, pool).sum(0)
        self.filter_mass = mass
        return self.rank_filter(mass, k).expand(H, k)

    def rank_filter(self, mass: Tensor, k: int) -> Tensor:
        """The k best candidates [k] by the filter's mass [n], mixed with the
        question's lexical match when `lexical_weight` is set."""
        lexical = self.lexical_scores()
        if lexical is not None:
            mass = fuse(mass, lexical, self.config.lexical_weight, self.config.lexical_fusion)
        return mass.topk(k).indices

    def lexical_scores(self) -> Tensor | None:
        """BM25 [n] of the question's tokens in each candidate block and its
        neighbours' edges (lexical.py); None without a weight, a question, or
        stored token ids (caches built before them), and with
        `lexical_scope="far"` while the blocks keep their positions."""
        if (not self.config.lexical_weight or self.query_ids is None
                or (self.config.lexical_scope == "far" and self.plan.original)
                or any(c.token_ids is None for c in self.caches)):
            return None
        if self._lexical is None:
            B = self.block
            ids = torch.full((len(self.cand_block), B), -1, dtype=torch.long)
            owner, blocks = self.cand_cache.cpu(), self.cand_block.cpu()
            for ci, c in enumerate(self.caches):
                mine = owner == ci
                padded = torch.nn.functional.pad(
                    c.token_ids, (0, c.layout.n_blocks * B - c.layout.tokens), value=-1)
                ids[mine] = padded.view(-1, B)[blocks[mine]]
            ids = candidate_token_ids(ids.to(self.device), B,
                                      self.config.spill_tokens, self._adjacent)
            self._lexical = bm25_scores(ids, self.query_ids.to(self.device))
        return self._lexical

    def _question_pick(self, layer: int, q: Tensor, positions: Tensor | None,
                       scores: Tensor, k: int) -> Tensor:
        """The question's k candidates per head [kv_heads, k], best first.

        "hybrid" alternates the blocks with the most exact attention mass
        (dense's own choice, which favours the question's neighbourhood) and
        the selector's position-free best (which finds a distant needle that
        few query rows look at); "exact" and "selector" use one of them.
        "filter" lands here only for a forward run without `question_forward`'s
        first pass, and is then treated as "hybrid"."""
        how = self.config.question_scoring
        if how == "selector" or positions is None:
            return scores.topk(k, dim=-1).indices
        mass = self._exact_mass(layer, q, positions, scores)
        if how == "exact":
            return mass.topk(k, dim=-1).indices
        n_exact = (k + 1) // 2
        best = mass.topk(n_exact, dim=-1).indices
        rest = scores.scatter(1, best, float("-inf")).topk(k - n_exact, dim=-1).indices
        ranked = torch.empty_like(scores[:, :k], dtype=torch.long)
        ranked[:, 0::2], ranked[:, 1::2] = best, rest
        return ranked

    def _exact_mass(self, layer: int, q: Tensor, positions: Tensor, scores: Tensor,
                    pool: Tensor | None = None) -> Tensor:
        """Exact attention mass [kv_heads, n_candidates] of the question's rows
        over the candidates `pool` [kv_heads, m] (-inf elsewhere); by default
        all of them, or the selector's shortlist when there are more than
        `exact_max_tokens` candidate tokens."""
        H, B = self.cfg.n_kv_heads, self.block
        n = len(self.cand_block)
        shortlist = self.config.exact_max_tokens // B
        if pool is None:
            pool = (scores.topk(shortlist, dim=-1).indices if n > shortlist
                    else torch.arange(n, device=self.device).expand(H, n))
        tm = exact_token_mass(*self.exact_inputs(layer, q, positions, pool)).view(H, -1, B)
        # per candidate in document order, so neighbours can share their edges
        full = torch.zeros(H, n, B, dtype=tm.dtype, device=self.device)
        full.scatter_(1, pool[..., None].expand(-1, -1, B), tm)
        mass = spill_to_neighbours(full.view(H, -1), B, min(self.config.spill_tokens, B),
                                   self._adjacent)
        return torch.full_like(scores, float("-inf")).scatter(1, pool, mass.gather(1, pool))

    def exact_inputs(self, layer: int, q: Tensor, positions: Tensor, pool: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Queries, keys [H, m*B, D], validity, sink keys and sink validity for
        exact scores of the candidates `pool` [H, m]: rotated as dense
        attention would while blocks keep their positions, else unrotated."""
        H, B, D = self.cfg.n_kv_heads, self.block, self.cfg.head_dim
        keys, _, valid = self._gather(layer, pool, values=False)
        if self.plan.original:
            # dense attention's own geometry over the candidates
            keys = self._rotate(keys, pool)
            sink_k, _, sink_valid = self._sink_kv(layer)          # rotated at 0..S*B
            cos, sin = rope_cos_sin(positions, D, self.cfg.rope_theta)
            G, T = self.cfg.group, positions.shape[0]
            q = apply_rope(q.view(H, G, T, D), cos, sin).view(H, G * T, D)
        else:
            # past the window no positions are known yet: score before RoPE,
            # as the selectors do
            S = self.sink_blocks
            sink_k, _ = self.caches[0].gather(layer, torch.arange(H).repeat_interleave(S),
                                              torch.arange(S).repeat(H), values=False)
            sink_k = sink_k.view(H, S * B, D)
            sink_valid = torch.arange(S * B, device=self.device) < self.sink_valid
        return q, keys, valid, sink_k, sink_valid


def question_forward(model: Transformer, ids: Tensor, attn: SparseAttention, *,
                     last_only: bool = False) -> Tensor:
    """The question's forward over the stored KV: logits [T or 1, vocab].

    With `question_scoring="filter"` it runs twice, as GemFilter does: a first
    pass stops at `filter_layer`, whose exact attention (summed over heads)
    picks one set of blocks, and the second pass attends those blocks in every
    layer. Single retrieval layers in the middle of the model find a needle
    that per-layer choices, each voting for its own neighbourhood, lose
    (bench/sparse_needle_ranks.py)."""
    if attn.query_ids is None:          # the lexical match reads the whole prompt
        attn.query_ids = ids
    if (attn.config.question_scoring == "filter" and attn.plan.n_select
            and not attn.plan.everything):
        if not attn.plan.original and attn.config.far_filter == "windows":
            windowed_pick(model, ids, attn)
        else:
            _filter_pass(model, ids, attn)
    return model(ids, attn, last_only=last_only)


def _filter_pass(model: Transformer, ids: Tensor, attn: SparseAttention) -> None:
    """The forward up to the filter layer, which sets `attn`'s pick."""
    attn.filtering = True
    try:
        model(ids, attn, stop_after=attn.filter_layer)
    finally:
        attn.end_filter_pass()


def windowed_pick(model: Transformer, ids: Tensor, attn: SparseAttention) -> None:
    """The filter pick past the model's window: the filter pass once per run
    of consecutive candidates that fits the window, each run at its own
    positions after the sinks (dense geometry, as for a short document), and
    the filter layer's mass from every run ranked together.

    Scoring all candidates at once past the window has no positions to rotate
    with, and unrotated dot products rank blocks far from how the model
    attends (3 to 7 of 12 needles at 64K-128K); within one window the model
    attends as it was trained. Each run's softmax shares the sinks, so
    masses from different runs compare. Measured on the real model it did
    not pick better (44-49 needles of 96 against 50, bench/RESULTS.md), so
    it is an option (`far_filter="windows"`), not the default."""
    cfg, B = attn.cfg, attn.block
    n = len(attn.cand_block)
    room = (cfg.max_position - attn.plan.sink_tokens - attn.local_max) // B
    if attn.config.filter_window_tokens:
        room = min(room, max(1, attn.config.filter_window_tokens // B))
    if room < 1:
        raise ValueError("the question leaves no room for a window of candidates")
    n_runs = -(-n // room)
    per = -(-n // n_runs)                      # balanced runs
    sub_config = replace(attn.config, positions="original")
    mass = torch.full((n,), float("-inf"), device=attn.device)
    for a in range(0, n, per):
        b = min(n, a + per)
        sub = type(attn)(cfg, attn.caches, sub_config, attn.local_max,
                         ranges=_run_ranges(attn, a, b))
        if len(sub.cand_block) != b - a or not sub.plan.original:
            raise RuntimeError("a window's candidates do not match the run")  # a bug, not input
        _filter_pass(model, ids, sub)
        mass[a:b] = sub.filter_mass.float()
    k, H = attn.plan.n_select, cfg.n_kv_heads
    attn.filter_mass = mass
    attn.set_question_pick(attn.rank_filter(mass, k).expand(H, k))


def _run_ranges(attn: SparseAttention, a: int, b: int) -> list[list[tuple[int, int]]]:
    """Per cache, the token ranges of candidates a..b-1 (consecutive blocks merged)."""
    B = attn.block
    ranges: list[list[tuple[int, int]]] = [[] for _ in attn.caches]
    for ci, blk in zip(attn.cand_cache[a:b].tolist(), attn.cand_block[a:b].tolist()):
        runs = ranges[ci]
        if runs and runs[-1][1] == blk * B:
            runs[-1] = (runs[-1][0], (blk + 1) * B)
        else:
            runs.append((blk * B, (blk + 1) * B))
    return ranges
