"""Decode speed for `bench/sparse.py` at long contexts without prefilling
them: random K/V of the real layout, sparse per budget versus transformers
dense, each next to its physical floor; plus random-weight models of
published configurations for GPU timing."""
from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

import torch

from engine.sparse.generate import EngineConfig, SparseEngine
from engine.sparse.kv_build import random_cache
from engine.sparse.kvstore import KVLayout
from engine.sparse.model import param_bytes

from llama_decode import llama_decode
from sparse_common import Row, greedy_hf, print_row

RANDOM_CONFIGS = {
    # the published shapes; weights are random (timing and memory only)
    "qwen2.5-0.5b": dict(model_type="qwen2", vocab_size=151936, hidden_size=896,
                         intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, max_position_embeddings=32768,
                         rope_theta=1e6, tie_word_embeddings=True),
    "llama-3-8b": dict(model_type="llama", vocab_size=128256, hidden_size=4096,
                       intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, max_position_embeddings=8192,
                       rope_theta=500000.0, tie_word_embeddings=False),
}


def measure_bandwidth(device: str) -> float:
    """Bytes/s of a large copy (read + write) on `device`."""
    n = 256 * 2**20 if device == "cpu" else 2 * 2**30
    a = torch.empty(n, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    b.copy_(a)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(5):
        b.copy_(a)
    _sync(device)
    return 2 * 5 * n / (time.perf_counter() - t0)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_decode(args, hf, model, name: str, rows: list[Row]) -> None:
    """Decode ms/token on random K/V of long contexts: sparse vs dense."""
    cfg, dev = model.cfg, args.device
    bw = measure_bandwidth(dev)
    weights = param_bytes(model)
    kv_dtype = "float16" if dev == "cpu" else "bfloat16"
    for n in args.synthetic:
        lay = KVLayout(n, 64, cfg.n_layers, cfg.n_kv_heads, cfg.head_dim, kv_dtype)
        prompt = list(range(1000, 1016))
        with tempfile.TemporaryDirectory(dir=args.kv_dir) as kv:
            placements = ["mmap"] if dev == "cpu" else ["pinned", "device"]
            for placement in placements:
                path = Path(kv) / "random" if placement == "mmap" else None
                kvc = random_cache(path, lay, device=dev, placement=placement)
                reset_peak(dev)                     # building it is not decoding
                engine = SparseEngine(model, name, kv, EngineConfig(placement=placement))
                for budget in args.budgets:
                    engine.config.sparse.budget_tokens = budget
                    stream = engine.answer(kvc, prompt, args.decode_tokens + 1)
                    list(stream)
                    _sync(dev)
                    read = weights + _sparse_bytes(lay, budget, cfg)
                    r = Row("decode", f"sparse {placement}", n, str(budget),
                            ttft_followup_s=stream.stats.ttft_s,   # 16-token question
                            decode_ms=stream.stats.decode_ms_per_token,
                            floor_ms=1000 * read / bw,
                            note=f"{name}, weights {model.mode}",
                            memory=_memory(dev, kvc, placement)
                            + f" (weights {weights / 2**30:.2f} GiB)")
                    rows.append(r)
                    print_row(r)
                del kvc, engine
                gc.collect()
        if dev == "cpu" and args.llama and getattr(args, "gguf", None):
            llama_row(args, cfg, n, bw, rows)
        if hf is None or n > args.dense_max:
            continue
        dense_row(args, hf, cfg, n, bw, name, rows)


def llama_row(args, cfg, n: int, bw: float, rows: list[Row]) -> None:
    """llama.cpp dense decode at n tokens of context (the same GGUF, its own
    Q4_K_M weights and f16 KV). Past --llama-max one piece is prefilled and
    its cells copied to fill the cache (`llama_decode`): the decode attends
    to the same n cells, only the fill is cheaper."""
    pieces = 1 if n <= args.llama_max else max(1, n // args.llama_piece)
    if pieces == 1 and args.llama_check and n >= 2 * args.llama_piece:
        _llama_row(args, cfg, n, bw, rows, n // args.llama_piece)
    _llama_row(args, cfg, n, bw, rows, pieces)


def _llama_row(args, cfg, n: int, bw: float, rows: list[Row], pieces: int) -> None:
    r = llama_decode(args.gguf, n, pieces=pieces, decode_tokens=args.decode_tokens,
                     threads=args.threads, batch=args.chunk)
    kv_bytes = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * n * 2
    weights = Path(args.gguf).stat().st_size
    fill = "prefill of the context" if pieces == 1 else \
        f"a {n // pieces}-token prefill copied {pieces} times, not a prefill,"
    row = Row("decode", "llama.cpp dense" + ("" if pieces == 1 else " (copied cache)"), n, "all",
              ttft_first_s=r.fill_s if pieces == 1 else None,
              decode_ms=sum(r.decode_ms) / len(r.decode_ms),
              floor_ms=1000 * (weights + kv_bytes) / bw,
              note=f"Q4_K_M, f16 KV; {fill} took {r.fill_s:.0f} s",
              memory=f"KV {kv_bytes / 2**30:.2f} GiB",
              extra={"pieces": pieces, "fill_s": r.fill_s, "decode_ms": r.decode_ms})
    rows.append(row)
    print_row(row)
    gc.collect()


def dense_row(args, hf, cfg, n: int, bw: float, name: str, rows: list[Row]) -> None:
    """transformers dense decode with a random DynamicCache of n tokens."""
    from transformers import DynamicCache

    dev = args.device
    reset_peak(dev)
    dt = next(hf.parameters()).dtype
    try:
        cache = DynamicCache(config=hf.config)
        for layer in range(cfg.n_layers):
            k = torch.randn(1, cfg.n_kv_heads, n, cfg.head_dim, dtype=dt, device=dev)
            cache.update(k, torch.randn_like(k), layer)
        with torch.no_grad():
            _, _, dec = greedy_hf(hf, cache, [1000], args.decode_tokens + 1, set())
    except torch.OutOfMemoryError:
        rows.append(Row("decode", "transformers dense", n, "all", note="out of memory"))
        return
    _sync(dev)
    kv_bytes = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * n * dt.itemsize
    hf_weights = sum(p.numel() * p.element_size() for p in hf.parameters())
    r = Row("decode", "transformers dense", n, "all",
            decode_ms=1000 * sum(dec) / len(dec), floor_ms=1000 * (hf_weights + kv_bytes) / bw,
            note=f"{name}, {dt}", memory=_memory(dev, None, "dense")
            + f"; KV {kv_bytes / 2**30:.2f} GiB", extra={"kv_bytes": kv_bytes})
    rows.append(r)
    print_row(r)
    del cache
    gc.collect()


def _sparse_bytes(lay: KVLayout, budget: int, cfg) -> int:
    """K/V bytes one decode step reads: selected blocks + sinks + representatives."""
    item = 2
    tokens = min(budget, lay.tokens) + lay.block_size
    kv = 2 * lay.layers * lay.kv_heads * tokens * lay.head_dim * item
    reps = 2 * lay.layers * lay.kv_heads * lay.n_blocks * lay.head_dim * 4
    return kv + reps


def reset_peak(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _memory(dev: str, kvc, placement: str) -> str:
    if dev == "cuda":
        return f"peak device {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    import psutil

    rss = psutil.Process().memory_info().rss / 2**30
    return f"RSS {rss:.2f} GiB"


def random_model(name: str, device: str, *, float32: bool = False):
    """Random weights of a published shape: bf16 on CUDA unless `float32`
    (the static step's equality check without bf16 rounding)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = dict(RANDOM_CONFIGS[name])
    config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    dtype = torch.bfloat16 if device == "cuda" and not float32 else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()
