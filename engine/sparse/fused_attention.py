"""One decode token's attention over [sinks | pool | local window] in two kernels.

The static step (static_decode.py) otherwise attends in torch pieces: the
near part (sinks and local window) as matmuls and a softmax, the pool's
logits and values as two kernels of pool_attention.py, the log-sum-exp merge
and two index_adds for attribution: a dozen small kernels per layer, each a
few microseconds even inside a CUDA graph, about a millisecond per token for
a 32-layer model. Here the same arithmetic is split the way flash-decoding
splits it:

1. `_parts_kernel`, one program per (KV head, part of B tokens): a pool slot
   (keys rotated at the slot's positions, as pool_logits does), a tile of the
   sinks, or a tile of the local window. Each writes, per query row of its
   group, the tile's max logit, its sum of exponentials and its
   exponential-weighted value sum, plus the raw logits for attribution.
2. `_combine_kernel`, one program per (KV head, part): the log-sum-exp over
   all parts of its head (a few dozen numbers), its part's share of the
   output added in place, and the tile's attention mass per document token
   added into the attribution buffer (sinks and pool; the local window holds
   no document tokens).

The result equals one softmax over all the keys (RetrievalAttention's merge
of parts by log-sum-exp). On a CPU `fused_attention` is None and the step
keeps its torch path.
"""
from __future__ import annotations

import os

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:                     # pragma: no cover - CPU-only machines
    triton = None

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def usable(pool_k: Tensor, sink_len: int, local_len: int) -> bool:
    """Whether the kernels can run: Triton on the tensors' device (or its
    interpreter), powers of two for the tile, sinks and window in whole tiles."""
    if triton is None or not (pool_k.is_cuda or _INTERPRET):
        return False
    H, k, B, D = pool_k.shape
    return not (B & (B - 1) or D & (D - 1)) and k > 0 and sink_len % B == 0 \
        and local_len % B == 0


def fused_attention(q: Tensor, pool_k: Tensor, pool_v: Tensor, base: Tensor, cos: Tensor,
                    sin: Tensor, valid: Tensor, sink_k: Tensor, sink_v: Tensor, sink_bias: Tensor,
                    local_k: Tensor, local_v: Tensor, n_local: Tensor, k_new: Tensor,
                    v_new: Tensor, slot_tok: Tensor, sink_tok: Tensor, mass: Tensor | None,
                    dump: int) -> Tensor:
    """Attention output [H, G, D] (float32) of the queries q [H, G, D]
    (rotated, scaled) over the sinks (sink_k/v [H, S, D], rotated; sink_bias
    [H, S] float32 added to their logits, -inf for padding), the pool (pool_k/v [H, k, B, D], keys before RoPE, slot s
    rotated from row base[h, s] of cos/sin, valid[h, s] tokens) and the local
    window (local_k/v [H, L, D], rotated, positions 0..n_local[0] valid).
    The token's own key and value (k_new/v_new, [H, D] float32, the key
    rotated) are written into the window at n_local[0] on the way.

    With `mass` (float64, one entry per document token and `dump` for
    padding) each sink token sink_tok[i] and pool token slot_tok[h, s] + t
    receives the attention it got, summed over heads and query rows."""
    H, G, D = q.shape
    k, B = pool_k.shape[1], pool_k.shape[2]
    n_sink, n_loc = sink_k.shape[1] // B, local_k.shape[1] // B
    P = k + n_sink + n_loc
    dev = q.device
    m = torch.empty(H, G, P, dtype=torch.float32, device=dev)
    ell = torch.empty_like(m)
    acc = torch.empty(H, G, P, D, dtype=torch.float32, device=dev)
    logits = torch.empty(H, G, P, B, dtype=torch.float32, device=dev)
    out = torch.empty(H, G, D, dtype=torch.float32, device=dev)
    _parts_kernel[(H, P)](q.contiguous(), pool_k, pool_v, base, cos, sin, valid, sink_k, sink_v,
                          sink_bias, local_k, local_v, n_local, k_new.contiguous(),
                          v_new.contiguous(), m, ell, acc, logits, out,
                          k, n_sink, P, G=G, B=B, D=D)
    record = mass is not None
    _combine_kernel[(H, P)](m, ell, acc, logits, out, mass if record else m, slot_tok, valid,
                            sink_tok, dump, k, n_sink, P, P_PAD=triton.next_power_of_2(P),
                            G=G, B=B, D=D, RECORD=record)
    return out


if triton is not None:
    @triton.jit
    def _parts_kernel(q_ptr, pk_ptr, pv_ptr, base_ptr, cos_ptr, sin_ptr, valid_ptr,
                      sk_ptr, sv_ptr, sbias_ptr, lk_ptr, lv_ptr, nloc_ptr, knew_ptr, vnew_ptr,
                      m_ptr, l_ptr, acc_ptr, logit_ptr, out_ptr,
                      K_SLOTS, N_SINK, P, G: tl.constexpr, B: tl.constexpr, D: tl.constexpr):
        h = tl.program_id(0)
        p = tl.program_id(1)
        t = tl.arange(0, B)
        d = tl.arange(0, D)
        rows = t[:, None] * D + d[None, :]
        if p < K_SLOTS:                       # a pool slot: rotate its keys at their positions
            half: tl.constexpr = D // 2
            d_rot = (d + half) % D
            sign = tl.where(d < half, -1.0, 1.0)
            base = ((h * K_SLOTS + p) * B).to(tl.int64) * D
            key = tl.load(pk_ptr + base + rows).to(tl.float32)
            key_rot = tl.load(pk_ptr + base + t[:, None] * D + d_rot[None, :]).to(tl.float32)
            first = tl.load(base_ptr + h * K_SLOTS + p)
            tab = (first + t)[:, None] * D + d[None, :]
            kr = key * tl.load(cos_ptr + tab) + key_rot * sign[None, :] * tl.load(sin_ptr + tab)
            vv = tl.load(pv_ptr + base + rows).to(tl.float32)
            ok = t < tl.load(valid_ptr + h * K_SLOTS + p)
            bias = tl.zeros([B], dtype=tl.float32)
        elif p < K_SLOTS + N_SINK:            # a tile of the sinks (rotated at 0..S)
            j = p - K_SLOTS
            n = N_SINK * B
            base = (h * n + j * B).to(tl.int64) * D
            kr = tl.load(sk_ptr + base + rows)
            vv = tl.load(sv_ptr + base + rows)
            bias = tl.load(sbias_ptr + h * n + j * B + t)
            ok = bias != float("-inf")
        else:                                 # a tile of the local window
            j = p - K_SLOTS - N_SINK
            n = (P - K_SLOTS - N_SINK) * B
            base = (h * n + j * B).to(tl.int64) * D
            kr = tl.load(lk_ptr + base + rows)
            vv = tl.load(lv_ptr + base + rows)
            newest = tl.load(nloc_ptr)
            ok = j * B + t <= newest
            bias = tl.zeros([B], dtype=tl.float32)
            # this token's key and value: used here, and kept in the window
            is_new = (j * B + t == newest)[:, None]
            k_new = tl.load(knew_ptr + h * D + d)
            v_new = tl.load(vnew_ptr + h * D + d)
            kr = tl.where(is_new, k_new[None, :], kr)
            vv = tl.where(is_new, v_new[None, :], vv)
            if (newest >= j * B) & (newest < j * B + B):
                at = (h * n + newest).to(tl.int64) * D
                tl.store(lk_ptr + at + d, k_new)
                tl.store(lv_ptr + at + d, v_new)
        for g in tl.static_range(G):
            qg = tl.load(q_ptr + (h * G + g) * D + d)
            logit = tl.where(ok, tl.sum(kr * qg[None, :], axis=1) + bias, float("-inf"))
            mx = tl.max(logit, axis=0)
            e = tl.exp(logit - tl.where(mx == float("-inf"), 0.0, mx))
            row = (h * G + g) * P + p
            tl.store(m_ptr + row, mx)
            tl.store(l_ptr + row, tl.sum(e, axis=0))
            tl.store(acc_ptr + row.to(tl.int64) * D + d, tl.sum(e[:, None] * vv, axis=0))
            tl.store(logit_ptr + row.to(tl.int64) * B + t, logit)
            if p == 0:                        # the combine kernel adds into it
                tl.store(out_ptr + (h * G + g) * D + d, tl.zeros([D], dtype=tl.float32))

    @triton.jit
    def _combine_kernel(m_ptr, l_ptr, acc_ptr, logit_ptr, out_ptr, mass_ptr, slot_tok_ptr,
                        valid_ptr, sink_tok_ptr, dump, K_SLOTS, N_SINK, P,
                        P_PAD: tl.constexpr, G: tl.constexpr, B: tl.constexpr,
                        D: tl.constexpr, RECORD: tl.constexpr):
        h = tl.program_id(0)
        p = tl.program_id(1)
        t = tl.arange(0, B)
        d = tl.arange(0, D)
        parts = tl.arange(0, P_PAD)
        mass = tl.zeros([B], dtype=tl.float32)
        for g in tl.static_range(G):
            hg = (h * G + g) * P
            ms = tl.load(m_ptr + hg + parts, mask=parts < P, other=float("-inf"))
            ls = tl.load(l_ptr + hg + parts, mask=parts < P, other=0.0)
            top = tl.max(ms, axis=0)          # finite: the newest local token is always valid
            lse = top + tl.log(tl.sum(ls * tl.exp(ms - top), axis=0))
            w = tl.exp(tl.load(m_ptr + hg + p) - lse)
            part = tl.load(acc_ptr + (hg + p).to(tl.int64) * D + d)
            tl.atomic_add(out_ptr + (h * G + g) * D + d, w * part)
            if RECORD:
                lg = tl.load(logit_ptr + (hg + p).to(tl.int64) * B + t)
                mass += tl.exp(lg - lse)
        if RECORD:
            if p < K_SLOTS:
                first = tl.load(slot_tok_ptr + h * K_SLOTS + p)
                n_ok = tl.load(valid_ptr + h * K_SLOTS + p)
                tok = tl.where(t < n_ok, first + t, dump)
                tl.atomic_add(mass_ptr + tok, mass.to(tl.float64))
            elif p < K_SLOTS + N_SINK:
                tok = tl.load(sink_tok_ptr + (p - K_SLOTS) * B + t)
                tl.atomic_add(mass_ptr + tok, mass.to(tl.float64))
