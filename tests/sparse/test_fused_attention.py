"""The fused decode attention (fused_attention.py) is one softmax over sinks,
pool and local window, with the attention mass of every document token, as
the static step's torch path computes them. Needs Triton on CUDA (or its
CPU interpreter, TRITON_INTERPRET=1)."""
from __future__ import annotations

import pytest
import torch

from engine.sparse.fused_attention import fused_attention, usable
from engine.sparse.model import rope_cos_sin
from engine.sparse.pool_attention import pool_logits


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("pool_dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("n_local", [0, 37])
def test_fused_attention_is_one_softmax_with_its_mass(pool_dtype, n_local):
    dev = _device()
    g = torch.Generator().manual_seed(5)
    H, G, D, B, k, S, L = 2, 4, 32, 16, 5, 32, 48
    if not usable(torch.empty(H, k, B, D, device=dev), S, L):
        pytest.skip("needs Triton on CUDA, or TRITON_INTERPRET=1")

    def rnd(*shape):
        return torch.randn(*shape, generator=g).to(dev)

    q = rnd(H, G, D) * D ** -0.5
    sink_k, sink_v, local_k, local_v = rnd(H, S, D), rnd(H, S, D), rnd(H, L, D), rnd(H, L, D)
    pool_k, pool_v = rnd(H, k, B, D).to(pool_dtype), rnd(H, k, B, D).to(pool_dtype)
    cos, sin = rope_cos_sin(torch.arange(400, device=dev), D, 10000.0)
    base = torch.tensor([[0, 40, 90, 200, 300], [16, 64, 128, 250, 350]], device=dev)
    valid = torch.tensor([[B, B, 7, 0, B], [B, 3, B, B, 0]], device=dev)
    slot_tok = base + 1000                    # distinct document tokens per slot
    sink_bias = torch.zeros(H, S, device=dev)
    sink_bias[:, 20:29] = torch.tensor(16.0).log()   # summaries: one key for 16 tokens
    sink_bias[:, 29:] = float("-inf")                # the last sink positions are padding
    sink_tok = torch.where(torch.arange(S, device=dev) < 29, torch.arange(S, device=dev), 2000)
    n_loc = torch.tensor([n_local], device=dev)
    dump = 2000
    mass = torch.zeros(dump + 1, dtype=torch.float64, device=dev)

    k_new, v_new = rnd(H, D), rnd(H, D)           # this token's: written at n_local
    before_k, before_v = local_k.clone().cpu(), local_v.clone().cpu()
    out = fused_attention(q, pool_k, pool_v, base, cos, sin, valid, sink_k, sink_v, sink_bias,
                          local_k, local_v, n_loc, k_new, v_new, slot_tok, sink_tok, mass, dump)
    before_k[:, n_local], before_v[:, n_local] = k_new.cpu(), v_new.cpu()
    assert torch.equal(local_k.cpu(), before_k) and torch.equal(local_v.cpu(), before_v)

    lp = pool_logits(q.cpu(), pool_k.cpu(), base.cpu(), cos.cpu(), sin.cpu(), valid.cpu())
    local_ok = (torch.arange(L) <= n_local)[None, None, :]
    logits = torch.cat([q.cpu() @ sink_k.cpu().transpose(1, 2) + sink_bias.cpu()[:, None, :],
                        lp,
                        (q.cpu() @ local_k.cpu().transpose(1, 2))
                        .masked_fill(~local_ok, float("-inf"))], -1)
    p = torch.softmax(logits, -1)
    values = torch.cat([sink_v.cpu(), pool_v.cpu().float().view(H, k * B, D), local_v.cpu()], 1)
    torch.testing.assert_close(out.cpu(), p @ values, atol=1e-5, rtol=1e-4)

    want = torch.zeros(dump + 1, dtype=torch.float64)
    want.index_add_(0, sink_tok.cpu(), p[..., :S].sum((0, 1)).double())
    offsets = torch.arange(B)
    tok = torch.where(offsets < valid.cpu()[..., None], slot_tok.cpu()[..., None] + offsets, dump)
    want.index_add_(0, tok.view(-1), p[..., S:S + k * B].sum(1).reshape(-1).double())
    torch.testing.assert_close(mass.cpu(), want, atol=1e-6, rtol=1e-5)
    assert float(mass[dump]) == 0.0           # padding takes no attention
    # the mass of the whole document plus the local window's share is all of it
    local_share = p[..., S + k * B:].sum().double()
    assert abs(float(mass.sum() + local_share) - H * G) < 1e-4
