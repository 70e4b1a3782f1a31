"""The static decode step's arithmetic as plain tensor functions, one per
stage of a layer (static_decode.py strings them together and a CUDA graph
captures them; torch.compile can fuse each): norm and projections, the
blocks' routing, attention over what is already on the device, the
log-sum-exp merge with the fetched blocks, and the MLP."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .model import apply_rope
from .selectors import aggregate


def linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """model.Linear for float32 / bfloat16 weights: float32 activations in and out."""
    y = F.linear(x.float(), w) if w.dtype == torch.float32 else F.linear(x.to(w.dtype), w).float()
    return y if b is None else y + b


def rms(x: Tensor, w: Tensor, eps: float) -> Tensor:
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)) * w


def pre_attention(x, norm_w, wqkv, bqkv, cos, sin, eps: float, H: int, G: int, D: int):
    """Pre-RoPE grouped queries, rotated queries (scaled by 1/sqrt(D)),
    rotated key and value of one token (q/k/v in one product: Block.fused_weights)."""
    h = rms(x, norm_w, eps)
    q, k, v = linear(h, wqkv, bqkv).split([H * G * D, H * D, H * D], -1)
    q, k, v = q.reshape(H * G, 1, D), k.reshape(H, 1, D), v.reshape(H, 1, D)
    q_rot = apply_rope(q, cos, sin).reshape(H, G, D) * D ** -0.5
    return q.reshape(H, G, D), q_rot, apply_rope(k, cos, sin), v


def route(q_pre, reps, selector, head_dim: int, k: int, pinned):
    """The k best blocks per KV head, in no particular order (the pool wants
    a set), the `pinned` ones [H, n_pin] (from the question's pick) first,
    as SparseAttention.select chooses them."""
    scores = aggregate(selector.scores(q_pre.float(), reps), head_dim)
    if pinned is not None:
        scores = scores.scatter(1, pinned, float("inf"))
    return scores.topk(k, dim=-1).indices


def near_attention(q, sink_k, sink_v, sink_bias, local_k, local_v, local_mask):
    """Attention over what is on the device before any block arrives: the
    sinks (and summaries) and the local window. Returns their
    softmax-weighted values [H, G, D], probabilities [H, G, S' + local_max]
    and log-sum-exp [H, G, 1], so the pool's part can be merged in once it
    is fetched."""
    logits = torch.cat([q @ sink_k.transpose(1, 2) + sink_bias[:, None, :],
                        (q @ local_k.transpose(1, 2)).masked_fill(~local_mask, float("-inf"))],
                       -1)
    lse = torch.logsumexp(logits, -1, keepdim=True)     # finite: the newest token is local
    probs = torch.exp(logits - lse)
    n_sink = sink_k.shape[1]
    return probs[..., :n_sink] @ sink_v + probs[..., n_sink:] @ local_v, probs, lse


def merge_parts(out_near, probs_near, lse_near, n_sink: int, pool_logits, slot_valid, slot_tok,
                block_offsets, dump: int):
    """One softmax over [sinks | pool | local window], from the near part's
    log-sum-exp and the pool's logits (RetrievalAttention's merge: each part
    normalised where it was computed, rescaled by exp(lse_part - lse_all)).
    Returns the near part's share of the output [H, G, D] (pool_values adds
    the pool's), the pool's probabilities [H, G, k*B], and for attribution
    the sinks' mass [S*B] and the pool's mass per document token (token ids
    [H*k*B], `dump` where padding)."""
    if pool_logits is None:
        return out_near, None, probs_near[..., :n_sink].sum(dim=(0, 1)).double(), None, None
    lse = torch.logaddexp(lse_near, torch.logsumexp(pool_logits, -1, keepdim=True))
    w_near = torch.exp(lse_near - lse)
    p_pool = torch.exp(pool_logits - lse).contiguous()
    sink_mass = (probs_near[..., :n_sink] * w_near).sum(dim=(0, 1)).double()
    H = out_near.shape[0]
    valid = block_offsets < slot_valid[..., None]
    tok = torch.where(valid, slot_tok[..., None] + block_offsets, dump).view(-1)
    return out_near * w_near, p_pool, sink_mass, tok, p_pool.sum(1).double().view(H, -1).reshape(-1)


def post_attention(x, attn_out, wo, bo, norm_w, wgu, wd, eps: float):
    """Residual + output projection, then the SwiGLU MLP (model.Block.finish,
    gate and up in one product)."""
    x = x + linear(attn_out.reshape(x.shape[0], -1), wo, bo)
    h = rms(x, norm_w, eps)
    gate, up = linear(h, wgu, None).chunk(2, -1)
    return x + linear(F.silu(gate) * up, wd, None)
