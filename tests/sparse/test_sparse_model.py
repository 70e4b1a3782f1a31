"""Our forward gives transformers' logits for the same weights and input."""
from __future__ import annotations

import pytest
import torch

from engine.sparse.model import DenseAttention, from_transformers, param_bytes

from sparse_support import tiny_hf


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_float32_forward_matches_transformers(kind):
    hf = tiny_hf(kind)
    ids = torch.randint(0, 300, (48,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(ids[None]).logits[0]
        ours = from_transformers(hf)(ids, DenseAttention(from_transformers(hf).cfg))
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode,tol", [("bfloat16", 0.05), ("int8", 0.05), ("int4", 0.2)])
def test_low_precision_weights_stay_close(mode, tol):
    hf = tiny_hf("qwen2")
    ids = torch.randint(0, 300, (32,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf(ids[None]).logits[0]
        model = from_transformers(hf, mode=mode)
        ours = model(ids, DenseAttention(model.cfg))
    assert (ours - expected).abs().max() < tol * expected.abs().max()
    # bf16, int8 and int4 cut the bytes a decode step reads by 2x, 4x, ~6x
    assert param_bytes(model) < 0.6 * param_bytes(from_transformers(hf))
    if mode == "int4":
        assert param_bytes(model) < 0.25 * param_bytes(from_transformers(hf))


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_fused_projections_hold_each_weight_once_and_change_nothing(kind):
    model = from_transformers(tiny_hf(kind))
    ids = torch.randint(0, 300, (24,), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        before = model(ids, DenseAttention(model.cfg))
        size = param_bytes(model)
        blk = model.layers[0]
        x = torch.randn(3, model.cfg.dim)
        q, k, v = blk.qkv(x)
        qkv, bias, gate_up = blk.fused_weights()
        assert blk.fused_weights()[0] is qkv             # built once
        h = blk.attn_norm(x)
        y = h @ qkv.T + (0 if bias is None else bias)
        torch.testing.assert_close(y, torch.cat([t.reshape(3, -1) for t in (q, k, v)], 1))
        gu = h @ gate_up.T
        torch.testing.assert_close(gu, torch.cat([blk.w_gate(h), blk.w_up(h)], 1))
        for layer in model.layers:
            layer.fused_weights()
        # the separate weights are views of the fused ones: nothing held twice
        first_k = qkv[model.cfg.n_heads * model.cfg.head_dim:]
        assert blk.wk.weight.data_ptr() == first_k.data_ptr()
        assert param_bytes(model) == size
        torch.testing.assert_close(model(ids, DenseAttention(model.cfg)), before)


def test_incremental_decode_matches_full_forward(tiny_qwen):
    _, model = tiny_qwen
    ids = torch.randint(0, 300, (20,), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(ids, DenseAttention(model.cfg))
        attn = DenseAttention(model.cfg)
        model(ids[:12], attn)
        steps = [model(ids[i:i + 1], attn) for i in range(12, 20)]
    torch.testing.assert_close(torch.cat(steps), full[12:], atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_smollm2_gguf_matches_transformers(smollm):
    hf, _ = smollm
    ids = torch.randint(0, hf.config.vocab_size, (64,), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = hf(ids[None]).logits[0]
        model = from_transformers(hf)
        ours = model(ids, DenseAttention(model.cfg))
    torch.testing.assert_close(ours, expected, atol=2e-3, rtol=1e-3)
    assert model.cfg.n_kv_heads < model.cfg.n_heads       # GQA exercised
