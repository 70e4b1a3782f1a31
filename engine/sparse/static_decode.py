"""A fixed-shape, one-token sparse decode step that a CUDA graph can capture.

`SparseAttention` (attention.py) grows its local window with torch.cat, asks
the host whether a selection changed, and runs a Python path per layer: on a
GPU the step is bound by launching ~2,400 small kernels, not by the bytes it
moves. This step does the same arithmetic with every shape fixed once:

- the local window is a preallocated [kv_heads, local_max, head_dim] buffer
  per layer with a device-side length counter (new keys written at the
  counter, masked by position);
- each (layer, KV head) selects exactly `plan.n_select` blocks on the
  device (the existing selector's scores, the question's pinned blocks
  first, top-k: SparseAttention.select's rule), and a block pool
  (block_pool.py) keeps them on the device, fetching only newly selected
  blocks from pinned host memory;
- pooled keys are rotated where positions.py's PositionPlan puts them (the
  candidate's own position while everything fits the window, else the slot
  the question's pick gave it in score order, or its rank i in document
  order at S + i*B) and attended exactly in float32
  with the sinks and the local window: on CUDA in the two kernels of
  fused_attention.py, else as pool_attention.py's pool part merged with
  the near part by log-sum-exp;
- a selection that cannot move (every block pinned by the question) fills
  the pool once, before the first step; q/k/v and gate/up are one matrix
  product each (model.Block.fused_weights);
- the next token (greedy) and the counters are updated on the device, so a
  whole step is one graph replay with no host sync inside.

The question itself goes through `SparseAttention` (one dynamic forward per
question); `StaticDecoder` adopts its state and takes over for the answer's
tokens. Attribution mass lands in the same buffer `SparseAttention` uses, so
`attention.attribution()` covers the answer as in the engine's decode path.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import Tensor

from .attention import SparseAttention
from .block_pool import CandidateTables, empty_resident, fetch_blocks, refill_into
from .model import Transformer, rope_cos_sin
from .fused_attention import fused_attention, usable
from .pool_attention import pool_logits, pool_values
from .static_ops import merge_parts, near_attention, post_attention, pre_attention, route


@dataclass
class StaticConfig:
    graph: bool = True       # capture one step in a CUDA graph (ignored on a CPU)
    compile: bool = False    # torch.compile the per-layer arithmetic (fewer, fused kernels)
    record: bool = True      # attribution mass, as the engine's decode path records
    # CUDA: fetch blocks on a side stream while the sinks and the local window
    # are attended, then merge by log-sum-exp. None: only when the selection
    # can move while decoding and the fused kernels cannot run (measured on
    # the H200, Llama-3-8B shape at 128K, half the blocks moving: 0.5 ms/token
    # saved against the serial torch attention, but 0.9 ms lost against the
    # serial fused kernels; with nothing moving the stream joins only cost)
    overlap: bool | None = None
    # CUDA: attend to sinks, pool and local window in the two kernels of
    # fused_attention.py instead of a dozen torch ones (not with `overlap`,
    # whose near part runs before the blocks arrive)
    fused: bool = True


@dataclass
class LayerState:
    """Device tensors one layer's step reads and writes; shapes never change."""

    sink_k: Tensor           # [H, S', D] float32, rotated at 0..S*B, then summaries
    sink_v: Tensor           # [H, S', D] float32
    sink_bias: Tensor        # [H, S'] float32 added to the logits: 0, -inf (padding),
                             # log(tokens) for a left-out block's summary
    local_k: Tensor          # [H, local_max, D] float32, rotated
    local_v: Tensor          # [H, local_max, D] float32
    host_k: Tensor | None    # [H, n_blocks, B, D] stored keys (pinned host or device)
    host_v: Tensor | None
    pool_k: Tensor | None    # [H, k, B, D] the selected blocks, slot order
    pool_v: Tensor | None
    resident: Tensor | None  # [H, k] candidate id in each slot
    selection: Tensor | None  # [H, k] the last selection (any order), for checks
    reps: object = None      # LayerCandidates
    pinned: Tensor | None = None  # [H, n_pin] candidate ids kept from the question's pick
    # a pool filled once (the selection cannot move): per slot its first
    # position, valid tokens and first document token
    slot_base: Tensor | None = None
    slot_valid: Tensor | None = None
    slot_tok: Tensor | None = None


class StaticDecoder:
    """Decode one token per call with fixed shapes over `attn`'s plan.

    Build it after the question's forward through `attn` (its local window,
    sinks, candidates and position plan are adopted); then `step(token)`
    returns the next logits. `attn` must not be used for decoding meanwhile.
    """

    def __init__(self, model: Transformer, attn: SparseAttention,
                 config: StaticConfig | None = None):
        if len(attn.caches) != 1:
            raise NotImplementedError("the static decode step takes one document cache")
        if model.mode not in ("float32", "bfloat16"):
            raise ValueError(f"the static decode step needs float32 or bfloat16 weights, "
                             f"not {model.mode}")
        self.model, self.attn = model, attn
        self.config = config or StaticConfig()
        cfg, plan = model.cfg, attn.plan
        self.cfg, self.plan = cfg, plan
        dev = self.device = attn.device
        H, D, B, k = cfg.n_kv_heads, cfg.head_dim, attn.block, plan.n_select
        self.k = k
        n_past = attn._local[0][0].shape[1] if attn._local else 0
        self.n_host = n_past                         # host mirror, for the bound check
        self.local_max = attn.local_max
        # the window's buffers in whole blocks (the fused kernels tile them;
        # positions past n_local are masked)
        L = -(-self.local_max // B) * B
        self.n_local = torch.tensor([n_past], dtype=torch.long, device=dev)
        self.token = torch.zeros(1, dtype=torch.long, device=dev)
        self.fetched = torch.zeros(1, dtype=torch.long, device=dev)    # blocks fetched, total
        cache = attn.caches[0]
        self.layers: list[LayerState] = []
        for i in range(cfg.n_layers):
            sk, sv, sval = attn._sink_kv(i)
            lk = torch.zeros(H, L, D, device=dev)
            lv = torch.zeros_like(lk)
            if n_past:
                lk[:, :n_past], lv[:, :n_past] = attn._local[i]
            bias = torch.zeros(H, sval.shape[0], device=dev).masked_fill(~sval, float("-inf"))
            st = LayerState(sk.float().contiguous(), sv.float().contiguous(), bias, lk, lv,
                            None, None, None, None, None, None)
            if k:
                st.host_k, st.host_v = cache.keys[i], cache.values[i]
                st.pool_k = torch.zeros(H, k, B, D, dtype=cache.keys[i].dtype, device=dev)
                st.pool_v = torch.zeros_like(st.pool_k)
                st.resident = empty_resident(H, k, dev)
                st.selection = torch.zeros(H, k, dtype=torch.long, device=dev)
                st.reps = attn._candidates(i)
            self.layers.append(st)
        self.fixed_sel = self.cand = None
        self.rope_cos = self.rope_sin = self._valid = self._tok = None
        if k:
            original = bool(getattr(plan, "original", False))
            n_cand = len(attn.cand_block)
            pos = getattr(attn, "cand_pos", None)
            if pos is None:
                pos = plan.sink_tokens + B * torch.arange(n_cand, device=dev)
            span = plan.sink_tokens + B * (n_cand if original else k)
            slot_pos = getattr(attn, "slot_pos", None)
            if slot_pos is not None:        # slots fixed by the question's pick, as positions
                pos, original, span = slot_pos, True, plan.sink_tokens + B * k
            self.cand = CandidateTables(attn.cand_block, attn.cand_valid, attn.cand_tok, pos,
                                        original, plan.sink_tokens, B)
            # cos/sin per position a slot's token can take
            self.rope_cos, self.rope_sin = rope_cos_sin(torch.arange(span, device=dev), D,
                                                        cfg.rope_theta)
            if plan.everything:
                self.fixed_sel = torch.arange(k, device=dev).expand(H, k).contiguous()
            n_pin = round(k * getattr(attn.config, "pin_fraction", 0.0))
            picks = getattr(attn, "question_picks", {})
            for i, st in enumerate(self.layers):
                if n_pin and i in picks:
                    st.pinned = picks[i][:, :n_pin].contiguous()
            # refill outputs, shared by the layers (they run one after another)
            self._blocks = torch.zeros(H, k, dtype=torch.long, device=dev)
            self._fetch = torch.zeros(H, k, dtype=torch.int8, device=dev)
            self._base = torch.zeros(H, k, dtype=torch.long, device=dev)
            self._valid = torch.zeros(H, k, dtype=torch.long, device=dev)
            self._tok = torch.zeros(H, k, dtype=torch.long, device=dev)
        self.block_offsets = torch.arange(B, device=dev)
        self.logits = torch.zeros(cfg.vocab_size, device=dev)
        self._local_pos = torch.arange(L, device=dev)
        ops = (pre_attention, route, near_attention, merge_parts, post_attention)
        if self.config.compile:
            ops = tuple(torch.compile(f, fullgraph=True, dynamic=False) for f in ops)
        self._pre, self._route, self._near, self._merge, self._post = ops
        # whether decoding can select blocks the question did not (to fetch)
        self.moves = bool(k) and self.fixed_sel is None and any(
            st.pinned is None or st.pinned.shape[1] < k for st in self.layers)
        if attn.summarises():
            self._add_summaries()
        idx = torch.arange(self.layers[0].sink_k.shape[1], device=dev)
        self._sink_tok = torch.where((idx < attn.sink_valid)      # summaries: not attributed
                                     & (idx >= attn.config.attribution_skip), idx,
                                     attn.total_tokens)
        can_fuse = bool(k) and self.config.fused and usable(
            self.layers[0].pool_k, self.layers[0].sink_k.shape[1], L)
        overlap = self.moves and not can_fuse if self.config.overlap is None \
            else self.config.overlap
        self._side = torch.cuda.Stream(device=dev) \
            if overlap and dev.type == "cuda" and k else None
        self.fused = can_fuse and self._side is None
        for blk in model.layers:
            blk.fused_weights()
        if k and not self.moves:
            self._freeze()
        self.graph: torch.cuda.CUDAGraph | None = None

    def _add_summaries(self) -> None:
        """Attend every block the selection leaves out as one summary token
        (SparseAttention.summary_kv) after the sinks: its bias is log(tokens),
        -inf for the selected blocks and the padding to whole tiles. The
        selection must not move, or the biases would change every step."""
        if self.moves:
            raise NotImplementedError("summaries of unselected blocks need a selection that "
                                      "cannot move while decoding (pin_fraction=1)")
        B = self.attn.block
        for i, st in enumerate(self.layers):
            sel = self.fixed_sel if self.fixed_sel is not None else st.pinned
            k_sum, v_sum, bias = self.attn.summary_kv(i, sel)
            H, n, D = k_sum.shape
            pad = -n % B
            zeros = k_sum.new_zeros(H, pad, D)
            st.sink_k = torch.cat([st.sink_k, k_sum, zeros], 1).contiguous()
            st.sink_v = torch.cat([st.sink_v, v_sum, zeros], 1).contiguous()
            st.sink_bias = torch.cat([st.sink_bias, bias, bias.new_full((H, pad), float(
                "-inf"))], 1).contiguous()

    # -- one step ------------------------------------------------------------
    def _fill(self, st: LayerState, sel: Tensor, base: Tensor, valid: Tensor,
              tok: Tensor) -> None:
        """Make the pool hold `sel`: refill plan into base/valid/tok, fetch the
        new blocks (on the side stream when overlapping)."""
        st.selection.copy_(sel)
        refill_into(sel, st.resident, self.cand, self._blocks, self._fetch, base, valid, tok,
                    self.fetched)
        if self._side is not None:          # the host link works while the near part runs
            self._side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self._side) if self._side is not None else nullcontext():
            fetch_blocks(st.host_k, st.host_v, st.pool_k, st.pool_v, self._blocks, self._fetch)

    def _freeze(self) -> None:
        """The selection cannot move (every block pinned by the question, or
        all of them attended): fill each layer's pool once, now, so a step
        neither scores, plans nor fetches."""
        for st in self.layers:
            sel = self.fixed_sel if self.fixed_sel is not None else st.pinned
            st.slot_base, st.slot_valid, st.slot_tok = (torch.zeros_like(self._base)
                                                        for _ in range(3))
            self._fill(st, sel, st.slot_base, st.slot_valid, st.slot_tok)

    def _pool(self, st: LayerState, q_pre: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """This token's pool for the layer: first position, valid tokens and
        first document token of every slot."""
        if st.slot_base is not None:
            return st.slot_base, st.slot_valid, st.slot_tok
        if st.pinned is not None and st.pinned.shape[1] == self.k:
            sel = st.pinned                 # the question pinned them all: nothing to score
        else:
            sel = self._route(q_pre, st.reps, self.attn.selector, self.cfg.head_dim, self.k,
                              st.pinned)
        self._fill(st, sel, self._base, self._valid, self._tok)
        return self._base, self._valid, self._tok

    def _layer(self, i: int, x: Tensor, cos: Tensor, sin: Tensor, local_mask: Tensor) -> Tensor:
        cfg, st, blk, a = self.cfg, self.layers[i], self.model.layers[i], self.attn
        H, G, D = cfg.n_kv_heads, cfg.group, cfg.head_dim
        wqkv, bqkv, wgu = blk.fused_weights()
        q_pre, q_rot, k_rot, v = self._pre(x, blk.attn_norm.weight, wqkv, bqkv, cos, sin,
                                           cfg.norm_eps, H, G, D)
        base = valid = tok_first = lp = None
        if self.k:
            base, valid, tok_first = self._pool(st, q_pre)
        if self.fused:              # it also writes k_rot, v into the local window
            out = fused_attention(q_rot, st.pool_k, st.pool_v, base, self.rope_cos,
                                  self.rope_sin, valid, st.sink_k, st.sink_v, st.sink_bias,
                                  st.local_k, st.local_v, self.n_local, k_rot.view(H, D),
                                  v.view(H, D), tok_first, self._sink_tok,
                                  a._mass if self.config.record else None, a.total_tokens)
        else:
            st.local_k.index_copy_(1, self.n_local, k_rot)
            st.local_v.index_copy_(1, self.n_local, v)
            out_near, probs_near, lse_near = self._near(q_rot, st.sink_k, st.sink_v,
                                                        st.sink_bias, st.local_k, st.local_v,
                                                        local_mask)
            if self.k:
                if self._side is not None:
                    torch.cuda.current_stream().wait_stream(self._side)
                lp = pool_logits(q_rot, st.pool_k, base, self.rope_cos, self.rope_sin, valid)
            out, p_pool, sink_mass, tok, pool_mass = self._merge(
                out_near, probs_near, lse_near, st.sink_k.shape[1], lp, valid, tok_first,
                self.block_offsets, a.total_tokens)
            if p_pool is not None:
                pool_values(p_pool, st.pool_v, out)
            if self.config.record:        # SparseAttention._attribute, with fixed shapes
                a._mass.index_add_(0, self._sink_tok, sink_mass)
                if tok is not None:
                    a._mass.index_add_(0, tok, pool_mass)
        return self._post(x, out.reshape(H * G, D), blk.wo.weight, blk.wo.bias,
                          blk.mlp_norm.weight, wgu, blk.w_down.weight, cfg.norm_eps)

    def _step(self) -> None:
        """Embed self.token, run every layer, write logits and the greedy next token."""
        model, cfg = self.model, self.cfg
        x = model.embed(self.token)
        pos = self.n_local + self.plan.local_start
        cos, sin = rope_cos_sin(pos, cfg.head_dim, cfg.rope_theta)
        local_mask = (self._local_pos <= self.n_local)[None, None, :]
        for i in range(cfg.n_layers):
            x = self._layer(i, x, cos, sin, local_mask)
        logits = model.head(model.norm(x))[-1]
        self.logits.copy_(logits)
        self.token.copy_(logits.argmax()[None])
        self.n_local.add_(1)

    # -- driving -------------------------------------------------------------
    def capture(self, warmup: int = 2) -> None:
        """Record one step in a CUDA graph (CUDA only). Warm-up steps run the
        kernels once (Triton and torch.compile build theirs then); their
        effects on the decoder's state are undone."""
        if self.device.type != "cuda" or not self.config.graph:
            return
        saved = (self.n_local.clone(), self.token.clone(), self.fetched.clone(),
                 self.attn._mass.clone())
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(warmup):
                self._step()
                self.n_local.copy_(saved[0])
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self._step()
        self._restore(saved)

    def _restore(self, saved) -> None:
        self.n_local.copy_(saved[0])
        self.token.copy_(saved[1])
        self.fetched.copy_(saved[2])
        self.attn._mass.copy_(saved[3])
        for st in self.layers:          # the pool's contents are unknown: refetch
            if st.resident is not None:
                st.resident.copy_(empty_resident(*st.resident.shape, self.device))

    @torch.no_grad()
    def step(self, token: int | Tensor | None = None) -> Tensor:
        """Logits [vocab] after feeding `token` (None: the greedy token of the
        previous step, already on the device). The returned tensor is reused."""
        if self.n_host + 1 > self.local_max:
            raise ValueError(f"local window exceeds the {self.local_max} tokens planned for")
        if token is not None:
            self.token.copy_(torch.as_tensor(token, device=self.device).view(1))
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()
        self.n_host += 1
        return self.logits

    def selections(self) -> dict[int, Tensor]:
        """Layer -> the last step's selection [kv_heads, k] in document order
        (as SparseAttention.selections)."""
        return {i: st.selection.sort(-1).values for i, st in enumerate(self.layers)
                if st.selection is not None}

    def device_bytes(self) -> dict[str, int]:
        """Device memory this decoder holds for K/V, by part (representatives
        and the attribution buffer belong to the cache and attention)."""
        def nb(ts):
            return sum(t.numel() * t.element_size() for t in ts
                       if t is not None and t.device.type != "cpu")
        pools = nb(t for st in self.layers for t in (st.pool_k, st.pool_v, st.resident))
        local = nb(t for st in self.layers for t in (st.local_k, st.local_v))
        sinks = nb(t for st in self.layers for t in (st.sink_k, st.sink_v))
        return {"pool": pools, "local": local, "sinks": sinks}


def greedy(decoder: StaticDecoder, first: int, n: int, stop_ids: Iterable[int] = ()
           ) -> Iterator[int]:
    """Up to n greedy tokens after `first`, each yielded as soon as it is known.

    The step feeds its own argmax back on the device, so on CUDA step i+1 is
    launched before token i is read back (through pinned memory, one step
    behind): the GPU never waits for the host between tokens. After a stop
    token one step has run ahead; its result is dropped (the local window
    needs room for it)."""
    stop = set(stop_ids)
    dev = decoder.device
    if dev.type != "cuda":
        token = first
        for _ in range(n):
            decoder.step(token)
            token = None
            out = int(decoder.token)
            yield out
            if out in stop:
                return
        return
    host = torch.empty(n, dtype=torch.long).pin_memory()
    stream = torch.cuda.current_stream()
    done: list[torch.cuda.Event] = []
    for i in range(n + 1):
        if i < n:
            decoder.step(first if i == 0 else None)
            host[i:i + 1].copy_(decoder.token, non_blocking=True)
            done.append(stream.record_event())
        if i:
            done[i - 1].synchronize()
            out = int(host[i - 1])
            yield out
            if out in stop:
                return
