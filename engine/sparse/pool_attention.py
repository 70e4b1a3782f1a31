"""Attention over the block pool's slots without float32 copies of the keys.

The decode step attends G query rows per KV head to k*B pooled keys. In
torch that means converting the pool to float32, gathering a cos/sin table
per slot, rotating, and a float32 matmul: four passes over 2-4x the pool's
bytes per layer. These two kernels read each pooled block once, in its
stored dtype: `pool_logits` rotates the keys at their slots' positions
(rows of a cos/sin table from each slot's first position on: the
candidate's own position, or the reassigned slot of positions.py's
PositionPlan) and writes the masked logits; after the softmax (done with the
sinks and local window), `pool_values` adds probabilities x values into the
output. On a CPU both fall back to the same arithmetic in torch.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .model import apply_rope

try:
    import triton
    import triton.language as tl
except ImportError:                     # pragma: no cover - CPU-only machines
    triton = None


def _use_kernel(t: Tensor) -> bool:
    """The kernels tile a block as one [B, D] array: powers of two only."""
    B, D = t.shape[-2:]
    return t.is_cuda and triton is not None and not (B & (B - 1) or D & (D - 1))


def pool_logits(q: Tensor, pool_k: Tensor, base: Tensor, cos: Tensor, sin: Tensor,
                valid: Tensor) -> Tensor:
    """Logits [H, G, k*B] (float32; -inf past each block's `valid` tokens) of
    queries q [H, G, D] (float32, already scaled) against pool_k [H, k, B, D],
    token t of slot s rotated with row base[h, s] + t of the cos/sin tables
    [positions, D] (rope_cos_sin)."""
    H, k, B, D = pool_k.shape
    G = q.shape[1]
    if _use_kernel(pool_k):
        out = torch.empty(H, G, k * B, dtype=torch.float32, device=q.device)
        _logits_kernel[(H, k)](q.float().contiguous(), pool_k, base, cos, sin, valid, out, k,
                               G=G, B=B, D=D)
        return out
    rows = (base[..., None] + torch.arange(B, device=base.device)).view(H, -1)
    kp = apply_rope(pool_k.float().view(H, -1, D), cos[rows], sin[rows])
    mask = (torch.arange(B, device=q.device) < valid[..., None]).view(H, 1, -1)
    return (q @ kp.transpose(1, 2)).masked_fill(~mask, float("-inf"))


def pool_values(probs: Tensor, pool_v: Tensor, out: Tensor) -> None:
    """out [H, G, D] += probs [H, G, k*B] @ pool_v [H, k, B, D] (float32)."""
    H, k, B, D = pool_v.shape
    if _use_kernel(pool_v):
        if not (out.is_contiguous() and out.dtype == torch.float32 and probs.is_contiguous()):
            raise ValueError("pool_values adds in place into a contiguous float32 output")
        _values_kernel[(H, k)](probs, pool_v, out, k, G=probs.shape[1], B=B, D=D)
        return
    out.add_(probs @ pool_v.float().view(H, -1, D))


if triton is not None:
    @triton.jit
    def _logits_kernel(q_ptr, k_ptr, base_ptr, cos_ptr, sin_ptr, valid_ptr, out_ptr, K_SLOTS,
                       G: tl.constexpr, B: tl.constexpr, D: tl.constexpr):
        h = tl.program_id(0)
        s = tl.program_id(1)
        t = tl.arange(0, B)
        d = tl.arange(0, D)
        half: tl.constexpr = D // 2
        d_rot = (d + half) % D                   # rotate half: -x[d+D/2] | x[d-D/2]
        sign = tl.where(d < half, -1.0, 1.0)
        base = ((h * K_SLOTS + s) * B).to(tl.int64) * D
        rows = t[:, None] * D
        key = tl.load(k_ptr + base + rows + d[None, :]).to(tl.float32)
        key_rot = tl.load(k_ptr + base + rows + d_rot[None, :]).to(tl.float32) * sign[None, :]
        first = tl.load(base_ptr + h * K_SLOTS + s)
        tab = (first + t)[:, None] * D + d[None, :]
        kr = key * tl.load(cos_ptr + tab) + key_rot * tl.load(sin_ptr + tab)
        valid = tl.load(valid_ptr + h * K_SLOTS + s)
        for g in tl.static_range(G):
            qg = tl.load(q_ptr + (h * G + g) * D + d)
            logit = tl.sum(kr * qg[None, :], axis=1)
            logit = tl.where(t < valid, logit, float("-inf"))
            tl.store(out_ptr + ((h * G + g) * K_SLOTS + s) * B + t, logit)

    @triton.jit
    def _values_kernel(p_ptr, v_ptr, out_ptr, K_SLOTS, G: tl.constexpr, B: tl.constexpr,
                       D: tl.constexpr):
        h = tl.program_id(0)
        s = tl.program_id(1)
        t = tl.arange(0, B)
        d = tl.arange(0, D)
        base = ((h * K_SLOTS + s) * B).to(tl.int64) * D
        v = tl.load(v_ptr + base + t[:, None] * D + d[None, :]).to(tl.float32)
        for g in tl.static_range(G):
            p = tl.load(p_ptr + ((h * G + g) * K_SLOTS + s) * B + t)
            tl.atomic_add(out_ptr + (h * G + g) * D + d, tl.sum(p[:, None] * v, axis=0))
