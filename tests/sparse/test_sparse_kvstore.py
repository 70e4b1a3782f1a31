"""The KV store keeps exactly the pre-RoPE keys and values, survives
reopening, and never leaves a half-written cache where readers look."""
from __future__ import annotations

import json

import pytest
import torch

from engine.sparse.kv_build import build_cache
from engine.sparse.kvstore import KVCacheError, PrefillConfig, cache_dir, open_cache
from engine.sparse.model import DenseAttention, apply_rope, rope_cos_sin


class Capture(DenseAttention):
    """Dense attention that remembers each layer's pre-RoPE k and v."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.kv = {}

    def __call__(self, layer, q, k, v):
        self.kv[layer] = (k.clone(), v.clone())
        return super().__call__(layer, q, k, v)


def _blocks_to_tokens(t: torch.Tensor, tokens: int) -> torch.Tensor:
    """[kv_heads, n_blocks, block, D] -> [tokens, kv_heads, D]."""
    h, nb, b, d = t.shape
    return t.float().permute(1, 2, 0, 3).reshape(nb * b, h, d)[:tokens]


def test_round_trip_is_exact_and_survives_reopening(tiny_qwen, tmp_path):
    _, model = tiny_qwen
    tokens = torch.randint(0, 300, (150,), generator=torch.Generator().manual_seed(5)).tolist()
    path = cache_dir(tmp_path, "tiny", "doc")
    cache = build_cache(model, tokens, path, PrefillConfig(block_size=16, chunk=32,
                                                           dtype="float32"))
    capture = Capture(model.cfg)
    with torch.no_grad():
        model(torch.tensor(tokens), capture)
    for layer, (k, v) in capture.kv.items():
        # keys are stored before RoPE; chunked prefill equals one full pass
        torch.testing.assert_close(_blocks_to_tokens(cache.keys[layer], 150), k,
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(_blocks_to_tokens(cache.values[layer], 150), v,
                                   atol=1e-5, rtol=1e-5)
    assert cache.layout.n_blocks == 10 and cache.valid_lengths()[-1] == 6
    # padding of the partial last block is zero and excluded from the bounds
    assert cache.keys[0][:, -1, 6:].abs().sum() == 0
    assert torch.equal(cache.reps.kmax[0][:, -1], cache.keys[0][:, -1, :6].amax(1))
    # the mean value per block (a left-out block's summary), padding excluded
    torch.testing.assert_close(cache.reps.vmean[1][:, -1], cache.values[1][:, -1, :6].mean(1))
    torch.testing.assert_close(cache.reps.vmean[1][:, 2], cache.values[1][:, 2].mean(1))
    # and the mean key rotated by offset: at any block start p, R(p) krel is the
    # mean of the keys rotated where they sit
    p = 37
    cos, sin = rope_cos_sin(torch.arange(p, p + 16), model.cfg.head_dim, model.cfg.rope_theta)
    want = apply_rope(cache.keys[1][:, 2].float(), cos, sin).mean(1)
    c0, s0 = rope_cos_sin(torch.tensor([p]), model.cfg.head_dim, model.cfg.rope_theta)
    torch.testing.assert_close(apply_rope(cache.reps.krel[1][:, 2][:, None], c0, s0)[:, 0],
                               want, atol=1e-5, rtol=1e-5)

    reopened = open_cache(path)            # a fresh process would do exactly this
    for layer in range(model.cfg.n_layers):
        assert torch.equal(reopened.keys[layer], cache.keys[layer])
        assert torch.equal(reopened.values[layer], cache.values[layer])
    assert torch.equal(reopened.reps.kmin, cache.reps.kmin)
    assert torch.equal(reopened.reps.vmean, cache.reps.vmean)
    assert torch.equal(reopened.reps.krel, cache.reps.krel)
    assert reopened.tokens_sha256 == cache.tokens_sha256
    report = reopened.report()
    assert report["kv_bytes"] == 2 * 2 * 2 * 10 * 16 * 16 * 4 and report["placement"] == "mmap"


def test_float16_store_is_close_and_half_the_size(tiny_qwen, tmp_path):
    _, model = tiny_qwen
    tokens = list(range(100))
    c32 = build_cache(model, tokens, tmp_path / "a", PrefillConfig(block_size=16, chunk=32,
                                                                   dtype="float32"))
    c16 = build_cache(model, tokens, tmp_path / "b", PrefillConfig(block_size=16, chunk=32))
    assert c16.layout.nbytes * 2 == c32.layout.nbytes
    torch.testing.assert_close(c16.keys[1].float(), c32.keys[1], atol=1e-2, rtol=1e-3)


def test_interrupted_build_leaves_nothing(tiny_qwen, tmp_path, monkeypatch):
    _, model = tiny_qwen
    import engine.sparse.kv_build as kv_build

    def boom(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(kv_build, "_representatives", boom)
    with pytest.raises(RuntimeError, match="power cut"):
        build_cache(model, list(range(80)), tmp_path / "m" / "doc",
                    PrefillConfig(block_size=16, chunk=32))
    assert list((tmp_path / "m").iterdir()) == []
    with pytest.raises(KVCacheError, match="no complete KV cache"):
        open_cache(tmp_path / "m" / "doc")


def test_damaged_caches_are_refused_clearly(tiny_qwen, tmp_path):
    _, model = tiny_qwen
    path = tmp_path / "doc"
    build_cache(model, list(range(40)), path, PrefillConfig(block_size=16, chunk=32))
    (path / "k_1.bin").write_bytes(b"short")
    with pytest.raises(KVCacheError, match="truncated"):
        open_cache(path)
    meta = json.loads((path / "meta.json").read_text())
    meta["format"] = 99
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(KVCacheError, match="format 99"):
        open_cache(path)


def test_bad_arguments(tiny_qwen, tmp_path):
    _, model = tiny_qwen
    with pytest.raises(ValueError, match="empty document"):
        build_cache(model, [], tmp_path / "x")
    with pytest.raises(ValueError, match="multiple of the block size"):
        build_cache(model, [1, 2], tmp_path / "x", PrefillConfig(block_size=64, chunk=100))
    with pytest.raises(ValueError, match="invalid KV cache folder name"):
        cache_dir(tmp_path, "m", "../escape")
