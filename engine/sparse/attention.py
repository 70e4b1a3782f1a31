"""Sparse attention over stored KV blocks, with reassigned positions.

For every forward call (the question's tokens, then each generated token)
and every layer, per KV head:

1. score all candidate blocks by their representatives with the pre-RoPE
   queries of the head's query group (one selection shared by the tokens
   of the call), and keep the top blocks within the token budget;
2. always attend the sinks (the first blocks of the first cache: BOS,
   system prompt) and the local window (question + generated tokens);
3. gather the selected blocks (pre-RoPE keys), rotate them at *reassigned*
   positions and attend exactly.

The question's own forward scores the candidates exactly instead
(`exact_scoring`, `question_pick`): it runs once per question, and
representatives alone kept too little of dense attention's mass to find
needles. By default (`question_scoring="filter"`, after GemFilter) a first
pass stops at a middle layer whose exact attention, summed over its
heads, picks one set of blocks for every layer and head
(`question_forward`); a block's score also counts the attention on its
neighbours' nearest tokens, so a fact cut by a block edge comes whole. During decoding a share of each head's blocks
(`pin_fraction`, by default all) stays pinned from the question's
selection, the rest follows the selector token by token.

Positions: when all candidate blocks and the answer fit the model's
trained window, every selected block keeps its candidate position (sinks,
then the candidates one after another: in whole-document mode exactly the
document's positions, in retrieval-first mode the retrieved segments packed
as a prompt would hold them), so the sparse answer is dense attention over
the candidates restricted to the selected keys. Past the window positions
are reassigned (InfLLM-style), identically for every head and layer:

    [sinks 0..S) [selected blocks, slot i at S + i*B) [local window)

with the question's pick in score order, its best block in the last slot
next to the question (`far_order="score"`: in document order the last
look-alike of the document always sat there, and the small model read it;
blocks that follow each other stay together), or in document order while
blocks may still change. The farthest distance is `local_start +
local_len - 1`, kept below the model's trained window: a document longer
than the window is still answered. When the budget
covers every block the layout is exactly the original one, and the result
equals dense attention.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .attribution import Attribution
# SparseConfig lives in config.py; importers of attention.py still find it here
from .config import EVERYTHING, SparseConfig  # noqa: F401
from .kvstore import KVCache
from .model import ModelConfig, apply_rope, rope_cos_sin
from .positions import plan_positions
from .question_pick import QuestionPicking
from .selectors import LayerCandidates, aggregate, make_selector


class SparseAttention(QuestionPicking):
    """Attention state for one answer over one or more document caches."""

    def __init__(self, cfg: ModelConfig, caches: list[KVCache], config: SparseConfig,
                 local_max: int, ranges: list[list[tuple[int, int]] | None] | None = None):
        """`ranges` (retrieval-first mode): per cache, the token ranges whose
        blocks may be selected (None = the whole document); sinks always count."""
        if not caches:
            raise ValueError("sparse attention needs at least one document cache")
        first = caches[0].layout
        for c in caches[1:]:
            lay = c.layout
            if (lay.block_size, lay.layers, lay.kv_heads, lay.head_dim) != (
                    first.block_size, first.layers, first.kv_heads, first.head_dim):
                raise ValueError(f"cache {c.path} has another layout than {caches[0].path}")
        if (first.layers, first.kv_heads, first.head_dim) != (
                cfg.n_layers, cfg.n_kv_heads, cfg.head_dim):
            raise ValueError("the KV cache was built for another model shape")
        self.cfg, self.caches, self.config = cfg, caches, config
        self.device = caches[0].device
        self.selector = make_selector(config.selector)
        B = self.block = first.block_size
        self.sink_blocks = min(config.sink_blocks, first.n_blocks)

        if ranges is not None and len(ranges) != len(caches):
            raise ValueError(f"{len(ranges)} range lists for {len(caches)} caches")
        cand_cache, cand_block, cand_valid, cand_tok = [], [], [], []
        self.token_offsets, offset = [], 0
        self._cand_blocks: list[list[int]] = []
        for ci, c in enumerate(caches):
            lengths = c.valid_lengths()
            skip = self.sink_blocks if ci == 0 else 0
            allowed = None if ranges is None else ranges[ci]
            blocks = [b for b in range(skip, c.layout.n_blocks)
                      if allowed is None or any(a < (b + 1) * B and e > b * B for a, e in allowed)]
            self._cand_blocks.append(blocks)
            for b in blocks:
                cand_cache.append(ci)
                cand_block.append(b)
                cand_valid.append(int(lengths[b]))
                cand_tok.append(offset + b * B)
            self.token_offsets.append(offset)
            offset += c.layout.tokens
        self.total_tokens = offset
        dev = self.device
        as_t = lambda xs: torch.tensor(xs, dtype=torch.long, device=dev)  # noqa: E731
        self.cand_cache, self.cand_block = as_t(cand_cache), as_t(cand_block)
        self.cand_valid, self.cand_tok = as_t(cand_valid), as_t(cand_tok)
        n_cand = len(cand_block)
        # candidate i + 1 directly follows candidate i in its document
        self._adjacent = ((self.cand_cache[1:] == self.cand_cache[:-1])
                          & (self.cand_block[1:] == self.cand_block[:-1] + 1))

        self.sink_valid = min(first.tokens, self.sink_blocks * B)
        self.plan = plan_positions(
            sink_tokens=self.sink_blocks * B, sink_valid=self.sink_valid,
            n_candidates=n_cand, last_valid=cand_valid[-1] if cand_valid else 0,
            block_size=B, budget_tokens=config.budget_tokens, local_max=local_max,
            window=cfg.max_position, original=config.positions == "original")
        # a candidate's own position: sinks, then the candidates one after another
        self.cand_pos = self.plan.sink_tokens + B * torch.arange(n_cand, device=dev)
        self.local_max = local_max
        # rotations by position, computed once: the slots past the window, or
        # every candidate position (at most the window) while blocks keep theirs
        self._slot_rope = rope_cos_sin(
            self.plan.slot_positions(dev) if not self.plan.original
            else torch.arange(self.plan.sink_tokens + B * n_cand, device=dev),
            cfg.head_dim, cfg.rope_theta)
        self._sinks: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
        self._cands: dict[int, LayerCandidates] = {}
        self._local: dict[int, tuple[Tensor, Tensor]] = {}
        self._summary: dict[int, tuple[Tensor, Tensor]] = {}
        self._local_rope: tuple = (None, None)
        self.selections: dict[int, Tensor] = {}     # layer -> last [kv_heads, k] candidate ids
        self.question_picks: dict[int, Tensor] = {}  # layer -> the question's ids, best first
        self._gathered: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]] = {}
        self.gathers = 0                            # (layer, step) gathers actually done
        self.record = False
        # "filter" (question_forward): the pass that stops at filter_layer, and
        # the layers whose shared pick the question has not attended yet
        self.filter_layer = min(cfg.n_layers - 1, int(cfg.n_layers * config.filter_depth))
        self.filtering = False
        self._unattended: set[int] = set()
        self._mass = torch.zeros(self.total_tokens + 1, dtype=torch.float64, device=dev)
        # far_order="score": each candidate's slot position once the question has
        # picked (unpicked candidates are never attended)
        self.slot_pos: Tensor | None = None
        self.filter_mass: Tensor | None = None      # the filter layer's pick, per candidate
        # the question's tokens for the lexical match (question_pick.lexical_scores):
        # set by the caller (the question's own words), else the whole prompt
        self.query_ids: Tensor | None = None
        self._lexical: Tensor | None = None

    # -- per-layer state -------------------------------------------------------
    def _sink_kv(self, layer: int) -> tuple[Tensor, Tensor, Tensor]:
        if layer not in self._sinks:
            c, H, S = self.caches[0], self.cfg.n_kv_heads, self.sink_blocks
            heads = torch.arange(H).repeat_interleave(S)
            blocks = torch.arange(S).repeat(H)
            k, v = c.gather(layer, heads, blocks)
            k = k.view(H, S * self.block, -1)
            v = v.view(H, S * self.block, -1)
            cos, sin = rope_cos_sin(torch.arange(S * self.block, device=self.device),
                                    self.cfg.head_dim, self.cfg.rope_theta)
            valid = torch.arange(S * self.block, device=self.device) < self.sink_valid
            self._sinks[layer] = (apply_rope(k, cos, sin), v, valid)
        return self._sinks[layer]

    def _candidates(self, layer: int) -> LayerCandidates:
        if layer not in self._cands:
            parts: dict[str, list[Tensor]] = {n: [] for n in ("kmin", "kmax", "kmean")}
            cents, labels, n_cent = [], [], 0
            for ci, c in enumerate(self.caches):
                blocks = self._cand_blocks[ci]
                if blocks and blocks == list(range(blocks[0], c.layout.n_blocks)):
                    pick = slice(blocks[0], None)        # a view, no copy
                else:
                    pick = torch.tensor(blocks, dtype=torch.long, device=c.device)
                r = c.reps
                for name in parts:
                    parts[name].append(getattr(r, name)[layer][:, pick].to(self.device))
                if r.centroids is not None:
                    cents.append(r.centroids[layer].to(self.device))
                    lab = r.labels[layer][:, pick].to(self.device).long()
                    labels.append(torch.where(lab < 0, lab, lab + n_cent))
                    n_cent += r.centroids.shape[2]
            full = len(cents) == len(self.caches)
            join = lambda xs: xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)  # noqa: E731
            self._cands[layer] = LayerCandidates(
                *(join(parts[n]) for n in ("kmin", "kmax", "kmean")),
                centroids=join(cents) if full else None,
                labels=join(labels) if full else None)
        return self._cands[layer]

    def summary_kv(self, layer: int, sel: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Every candidate block as one key and value (`unselected="mean"`),
        for the blocks that `sel` [kv_heads, k] leaves out: keys [H, n, D]
        (the mean of the block's keys rotated where it sits), values, and a
        bias [H, n] to add to their logits, log(token count), -inf for the
        selected ones (attended exactly). So the blocks left out still take
        about the share of the softmax that dense attention gives them
        instead of handing it to the selected ones (which, among look-alike
        facts, made the model answer a neighbour's).

        Only while the blocks keep their own positions (`summarises`): each
        summary sits at its block's first position.
        """
        if layer not in self._summary:
            join = lambda xs: xs[0] if len(xs) == 1 else torch.cat(xs, 1)  # noqa: E731
            n = range(len(self.caches))
            krel = join([self._block_mean(ci, layer, "krel") for ci in n]).to(self.device)
            vmean = join([self._block_mean(ci, layer, "vmean") for ci in n]).to(self.device)
            cos, sin = rope_cos_sin(self.cand_pos, self.cfg.head_dim, self.cfg.rope_theta)
            self._summary[layer] = (apply_rope(krel.float(), cos, sin), vmean.float())
        keys, vmean = self._summary[layer]
        H, n_cand = sel.shape[0], keys.shape[1]
        bias = self.cand_valid.float().log().expand(H, n_cand).scatter(1, sel, float("-inf"))
        return keys, vmean, bias

    def _block_mean(self, ci: int, layer: int, name: str) -> Tensor:
        """Per candidate block of cache ci [kv_heads, n, D]: its mean value
        ("vmean") or its mean key rotated by offset ("krel"), stored beside
        the representatives or, for caches built before them, computed from
        the stored K/V."""
        c, blocks = self.caches[ci], torch.tensor(self._cand_blocks[ci], dtype=torch.long)
        stored = getattr(c.reps, name)
        if stored is not None:
            return stored[layer][:, blocks.to(stored.device)]
        from .representatives import block_means, rotated_block_means

        src = (c.values if name == "vmean" else c.keys)[layer]
        x = src[:, blocks.to(src.device)].float().cpu()
        ok = torch.arange(self.block)[None, :] < c.valid_lengths()[blocks][:, None]
        return block_means(x, ok) if name == "vmean" else \
            rotated_block_means(x, ok, self.cfg.rope_theta)

    def summarises(self) -> bool:
        """Whether left-out blocks are attended as summaries (summary_kv):
        with `unselected="mean"` while the blocks keep their positions. Past
        the window the model fails with every block attended (dense finds 1
        needle of 12 at 64K); summaries placed among the packed slots brought
        that failure back (0 of 12 at 64K and 128K, against 3 to 7 without),
        so there the blocks left out are dropped."""
        return (self.config.unselected == "mean" and self.plan.original
                and not self.plan.everything and self.plan.n_select > 0)

    def select(self, layer: int, q: Tensor, positions: Tensor | None = None) -> Tensor:
        """Candidate ids [kv_heads, k] for pre-RoPE grouped queries q [kv_heads,
        rows, D] (rows: query heads of the group x tokens at `positions`)."""
        k, n_kv = self.plan.n_select, self.cfg.n_kv_heads
        # (a window's filter pass past the window may cover its whole run:
        # its filter layer still scores, see question_pick.windowed_pick)
        if self.plan.everything and not (self.filtering and layer == self.filter_layer):
            return torch.arange(k, device=self.device).expand(n_kv, k)
        scores = aggregate(self.selector.scores(q.float(), self._candidates(layer)),
                           self.cfg.head_dim)
        if self.filtering:                              # the filter pass (question_forward)
            if layer < self.filter_layer:
                return scores.topk(k, dim=-1).indices.sort(dim=-1).values
            ranked = self._shared_pick(layer, q, positions, scores, k)
            self.set_question_pick(ranked)
            return ranked.sort(dim=-1).values
        if layer in self._unattended:                   # the question after its filter pass
            self._unattended.discard(layer)
            ranked = self.question_picks[layer]
        elif layer not in self.question_picks:          # the question's own forward
            ranked = self._question_pick(layer, q, positions, scores, k)
            self.question_picks[layer] = ranked
        else:
            pinned = self.question_picks[layer]
            n_pin = round(k * self.config.pin_fraction)
            if n_pin:
                scores = scores.scatter(1, pinned[:, :n_pin], float("inf"))
            ranked = scores.topk(k, dim=-1).indices
        return ranked.sort(dim=-1).values

    def set_question_pick(self, ranked: Tensor) -> None:
        """One pick [kv_heads, k], best first, for every layer (the filter's);
        past the window with far_order="score" it also fixes each picked
        block's slot: the best one last, nearest the question, blocks that
        follow each other in the document kept together (score_order_runs)."""
        self.question_picks = {i: ranked for i in range(self.cfg.n_layers)}
        self._unattended = set(self.question_picks)
        if (not self.plan.original and self.config.far_order == "score"
                and self.config.pin_fraction == 1.0):         # no block moves while decoding
            S, B = self.plan.sink_tokens, self.block
            order = torch.tensor(score_order_runs(ranked[0].tolist(), self._adjacent.tolist()),
                                 dtype=torch.long, device=self.device)
            pos = torch.full((len(self.cand_block),), S, dtype=torch.long, device=self.device)
            pos[order] = S + B * torch.arange(len(order), device=self.device)
            self.slot_pos = pos

    def _rotate(self, keys: Tensor, sel: Tensor) -> Tensor:
        """Rotate gathered keys [H, k*B, D] of candidates `sel` [H, k] at their
        original positions, at the slots fixed by the question's pick
        (far_order="score"), or at the reassigned slots in document order."""
        H, B, D = sel.shape[0], self.block, self.cfg.head_dim
        if self.slot_pos is not None:
            pos = (self.slot_pos[sel][..., None] + torch.arange(B, device=self.device)).reshape(-1)
            cos, sin = rope_cos_sin(pos, D, self.cfg.rope_theta)
            return apply_rope(keys, cos.view(H, -1, D), sin.view(H, -1, D))
        if not self.plan.original:
            return apply_rope(keys, *self._slot_rope)
        pos = (self.cand_pos[sel][..., None] + torch.arange(B, device=self.device)).reshape(-1)
        cos, sin = self._slot_rope
        return apply_rope(keys, cos[pos].view(H, -1, D), sin[pos].view(H, -1, D))

    def _gather(self, layer: int, sel: Tensor, *, values: bool = True
                ) -> tuple[Tensor, Tensor | None, Tensor]:
        """Pre-RoPE K, V (None with `values=False`) [H, k*B, D] and validity
        [H, k*B] of the candidates `sel` [H, k]."""
        H, k, B = sel.shape[0], sel.shape[1], self.block
        heads = torch.arange(H, device=self.device)[:, None].expand(H, k).reshape(-1)
        flat = sel.reshape(-1)
        blocks, owner = self.cand_block[flat], self.cand_cache[flat]
        D = self.cfg.head_dim
        if len(self.caches) == 1:
            kk, vv = self.caches[0].gather(layer, heads, blocks, values=values)
        else:
            kk = torch.zeros(H * k, B, D, device=self.device)
            vv = torch.zeros_like(kk) if values else None
            for ci, c in enumerate(self.caches):
                m = owner == ci
                if m.any():
                    kp, vp = c.gather(layer, heads[m], blocks[m], values=values)
                    kk[m] = kp
                    if values:
                        vv[m] = vp
        valid = torch.arange(B, device=self.device)[None, :] < self.cand_valid[flat][:, None]
        return (kk.view(H, k * B, D), None if vv is None else vv.view(H, k * B, D),
                valid.view(H, k * B))

    # -- the call from the model ----------------------------------------------------
    def __call__(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        cfg, plan = self.cfg, self.plan
        T, H, G, D = q.shape[0], cfg.n_kv_heads, cfg.group, cfg.head_dim
        past = self._local.get(layer)
        n_past = 0 if past is None else past[0].shape[1]
        if n_past + T > self.local_max:
            raise ValueError(f"local window exceeds the {self.local_max} tokens planned for")
        if self._local_rope[0] != (n_past, T):        # once per forward, not per layer
            pos = torch.arange(plan.local_start + n_past, plan.local_start + n_past + T,
                               device=q.device)
            self._local_rope = ((n_past, T), rope_cos_sin(pos, D, cfg.rope_theta), pos)
        cos, sin = self._local_rope[1]
        q_pre = q.transpose(0, 1).reshape(H, G * T, D)              # grouped by KV head
        q_rot = apply_rope(q.transpose(0, 1), cos, sin).reshape(H, G * T, D)
        k_loc = apply_rope(k.transpose(0, 1), cos, sin)
        v_loc = v.transpose(0, 1)
        if past is not None:
            k_loc, v_loc = torch.cat([past[0], k_loc], 1), torch.cat([past[1], v_loc], 1)
        self._local[layer] = (k_loc, v_loc)

        k_sink, v_sink, sink_valid = self._sink_kv(layer)
        parts_k, parts_v = [k_sink], [v_sink]
        valid = [sink_valid.expand(H, -1)]
        sel = None
        if plan.n_select:
            sel = self.select(layer, q_pre, self._local_rope[2])
            self.selections[layer] = sel
            hit = self._gathered.get(layer)
            if hit is None or not torch.equal(hit[0], sel):
                # Consecutive tokens mostly pick the same blocks: gather and
                # rotate only when the selection changed.
                k_sel, v_sel, sel_valid = self._gather(layer, sel)
                hit = (sel, self._rotate(k_sel, sel), v_sel, sel_valid)
                self._gathered[layer] = hit
                self.gathers += 1
            parts_k.append(hit[1])
            parts_v.append(hit[2])
            valid.append(hit[3])
        parts_k.append(k_loc)
        parts_v.append(v_loc)
        keys, values = torch.cat(parts_k, 1).float(), torch.cat(parts_v, 1).float()
        n_doc = keys.shape[1] - k_loc.shape[1]
        causal = (torch.arange(k_loc.shape[1], device=q.device)[None, :]
                  <= torch.arange(T, device=q.device)[:, None] + n_past)       # [T, local]
        mask = torch.cat([torch.cat(valid, 1)[:, None, :].expand(H, T, n_doc),
                          causal[None].expand(H, T, -1)], dim=2)              # [H, T, L]
        mask = mask[:, None].expand(H, G, T, -1).reshape(H, G * T, -1)
        if sel is not None and self.summarises():
            k_sum, v_sum, bias = self.summary_kv(layer, sel)
            keys, values = torch.cat([keys, k_sum], 1), torch.cat([values, v_sum], 1)
            mask = torch.cat([torch.zeros_like(mask, dtype=torch.float32).masked_fill(
                ~mask, float("-inf")), bias[:, None].expand(H, G * T, -1)], 2)

        if self.record:
            logits = (q_rot.float() @ keys.transpose(1, 2)) * D ** -0.5
            logits = (logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool
                      else logits + mask)
            probs = torch.softmax(logits, dim=-1)
            self._attribute(probs, sel)
            out = probs @ values
        else:
            out = F.scaled_dot_product_attention(q_rot.float()[None], keys[None], values[None],
                                                 attn_mask=mask[None])[0]
        return out.view(H, G, T, D).reshape(H * G, T, D).transpose(0, 1)

    def end_filter_pass(self) -> None:
        """Forget the filter pass's local window and gathers; keep its pick."""
        self.filtering = False
        self._local.clear()
        self._gathered.clear()
        self.selections.clear()
        self._local_rope = (None, None)

    # -- attribution ---------------------------------------------------------------
    def _attribute(self, probs: Tensor, sel: Tensor | None) -> None:
        dump = self.total_tokens
        S, B = self.sink_blocks * self.block, self.block
        sink_mass = probs[:, :, :S].sum(dim=(0, 1)).double()
        idx = torch.arange(S, device=self.device)
        idx = torch.where((idx < self.sink_valid) & (idx >= self.config.attribution_skip),
                          idx, dump)
        self._mass.index_add_(0, idx, sink_mass)
        if sel is None:
            return
        k = sel.shape[1]
        mass = probs[:, :, S:S + k * B].sum(1).double()                           # [H, k*B]
        tok = (self.cand_tok[sel][..., None] + torch.arange(B, device=self.device)).view(
            sel.shape[0], -1)
        ok = torch.arange(B, device=self.device)[None, :] < self.cand_valid[sel].reshape(-1, 1)
        tok = torch.where(ok.view(sel.shape[0], -1), tok, dump)
        self._mass.index_add_(0, tok.reshape(-1), mass.reshape(-1))

    def attribution(self) -> Attribution:
        per = []
        for ci, c in enumerate(self.caches):
            a = self.token_offsets[ci]
            per.append(self._mass[a:a + c.layout.tokens].cpu())
        return Attribution(per)


def score_order_runs(ranked: list[int], adjacent: list[bool]) -> list[int]:
    """The slots' order, first slot first, for candidates `ranked` (best
    first): runs of picked candidates that follow each other in the document
    (`adjacent[i]`: candidate i + 1 follows i) stay together in document
    order, and the runs go from worst to best, so the best run ends next to
    the question. A fact cut by a block edge then reads whole; in plain
    score order its two halves could land apart or reversed (the needle
    answers showed "217" for "2172051")."""
    rank = {c: r for r, c in enumerate(ranked)}
    runs: list[list[int]] = []
    for c in sorted(ranked):
        if runs and runs[-1][-1] == c - 1 and adjacent[c - 1]:
            runs[-1].append(c)
        else:
            runs.append([c])
    runs.sort(key=lambda run: -min(rank[c] for c in run))
    return [c for run in runs for c in run]
