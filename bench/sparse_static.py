"""`bench/sparse.py --static`: the fixed-shape, graph-captured decode step
(engine/sparse/static_decode.py) with K/V in pinned host memory, against the
engine's existing sparse decode and transformers dense, at long contexts with
random K/V (content does not change the cost; selections do change, so the
blocks fetched over the host link are counted, not assumed).

Per context and budget it prints one row per system with ms/token next to
two floors: `floor` = bytes read from device memory per token (weights,
representatives, selected blocks) / measured device bandwidth, as the other
decode rows; `floor+link` adds the blocks actually fetched from host memory
per token / measured host-link bandwidth (the fetch is not overlapped with
compute). It also checks the static step against the existing path on the
same cache (same fed tokens: max logit difference, identical selections).
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass

import torch

from engine.sparse.attention import SparseAttention, SparseConfig
from engine.sparse.block_pool import fetch_blocks
from engine.sparse.generate import EngineConfig, SparseEngine
from engine.sparse.kv_build import random_cache
from engine.sparse.kvstore import KVLayout
from engine.sparse.model import param_bytes
from engine.sparse.static_decode import StaticConfig, StaticDecoder, greedy

from sparse_common import Row, print_row
from sparse_decode import _sparse_bytes, dense_row, measure_bandwidth, reset_peak

GiB = 2**30


@dataclass
class LinkBandwidth:
    copy: float        # bytes/s of cudaMemcpy from pinned host memory
    uva: float         # bytes/s of the block fetch kernel reading pinned memory directly


def measure_link(block: int = 64, head_dim: int = 128) -> LinkBandwidth:
    """Host-to-device bandwidth: a plain pinned copy, and the fetch kernel
    reading 4096 random blocks of K and V over UVA."""
    n = 1 * GiB
    host = torch.empty(n, dtype=torch.uint8).pin_memory()
    dev = torch.empty(n, dtype=torch.uint8, device="cuda")
    dev.copy_(host, non_blocking=True)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(3):
        dev.copy_(host, non_blocking=True)
    torch.cuda.synchronize()
    copy = 3 * n / (time.perf_counter() - t0)
    del host, dev
    H, nb, k = 8, 4096, 512
    hk = torch.empty(H, nb, block, head_dim, dtype=torch.bfloat16).pin_memory()
    hv = torch.empty_like(hk).pin_memory()
    pk = torch.empty(H, k, block, head_dim, dtype=torch.bfloat16, device="cuda")
    pv = torch.empty_like(pk)
    blocks = torch.randint(0, nb, (H, k), device="cuda")
    fetch = torch.ones(H, k, dtype=torch.int8, device="cuda")
    fetch_blocks(hk, hv, pk, pv, blocks, fetch)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(5):
        fetch_blocks(hk, hv, pk, pv, blocks, fetch)
    torch.cuda.synchronize()
    uva = 5 * 2 * pk.numel() * 2 / (time.perf_counter() - t0)
    return LinkBandwidth(copy, uva)


def _timed_greedy(dec: StaticDecoder, first: int, n: int) -> tuple[list[int], float]:
    """Tokens and seconds per token of `static_decode.greedy`: every token is
    read back on the host as an app must, one step behind the GPU."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    tokens = list(greedy(dec, first, n))
    return tokens, (time.perf_counter() - t0) / n


def _device_ops(fn) -> dict:
    """Kernels, copies and fills one call of fn puts on the GPU, their summed
    GPU time and the costliest names (empty: no profiler)."""
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        events = [e for e in prof.events() if e.device_type.name == "CUDA"]
        by_name: dict[str, list[float]] = {}
        for e in events:
            by_name.setdefault(e.name[:60], []).append(e.device_time_total)
        top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:12]
        return {"ops": len(events), "gpu_us": sum(sum(v) for v in by_name.values()),
                "top": [(name, len(v), round(sum(v), 1)) for name, v in top]}
    except Exception as exc:          # CUPTI unavailable: say so, keep timing
        print(f"# profiler: {exc}", flush=True)
        return {"ops": -1}


def _sparse_config(args, budget: int) -> SparseConfig:
    """The engine's defaults, but for --pin-fraction (below 1 the decode
    re-selects part of each head's blocks every token: blocks move)."""
    sc = SparseConfig(budget_tokens=budget)
    if getattr(args, "pin_fraction", None) is not None:
        sc.pin_fraction = args.pin_fraction
    return sc


def _check_equal(model, kvc, sc: SparseConfig, prompt: list[int], steps: int,
                 config: StaticConfig) -> tuple[float, float, dict]:
    """Max |logit difference| and the share of identical (layer, step)
    selections, static step vs SparseAttention, feeding the same tokens;
    then the GPU operations of one step of each, eager (the static one
    replays them from one graph)."""
    feed = [int(t) for t in torch.randint(0, model.cfg.vocab_size, (steps,),
                                          generator=torch.Generator().manual_seed(1))]
    ref = SparseAttention(model.cfg, [kvc], sc, local_max=len(prompt) + steps + 1)
    att = SparseAttention(model.cfg, [kvc], sc, local_max=len(prompt) + steps + 1)
    ids = torch.tensor(prompt, device=model.device)
    with torch.no_grad():
        model(ids, ref, last_only=True)
        model(ids, att, last_only=True)
        ref.record = att.record = True
        dec = StaticDecoder(model, att, config)
        dec.capture()
        diffs, agree = [], []           # per step
        for t in feed:
            want = model(torch.tensor([t], device=model.device), ref)[-1]
            got = dec.step(t)
            diffs.append(float((got - want).abs().max()))
            same = [torch.equal(sel, ref.selections[layer])
                    for layer, sel in dec.selections().items()]
            agree.append(sum(same) / max(len(same), 1))
        one = torch.tensor([7], device=model.device)
        ops = {"existing": _device_ops(lambda: model(one, ref)), "static": _device_ops(dec._step)}
    dec = ref = att = None
    ops["first_step"] = {"max_logit_diff": diffs[0], "selections_equal": agree[0]}
    ops["per_step"] = {"max_logit_diff": diffs, "selections_equal": agree}
    return max(diffs), sum(agree) / len(agree), ops


def _static_rows(args, model, name, kvc, lay, budget, prompt, bw, link, weights, mode,
                 placement, rows) -> None:
    cfg = model.cfg
    flags = set(mode.split("-")[1:])
    config = StaticConfig(graph=True, compile=mode.startswith("compile"),
                          overlap=False if "serial" in flags else
                          True if "overlap" in flags else None,
                          fused="unfused" not in flags)
    t0 = time.perf_counter()
    sc = _sparse_config(args, budget)
    diff, agree, ops = _check_equal(model, kvc, sc, prompt, 4, config)
    check_s = time.perf_counter() - t0
    n = args.decode_tokens * 2
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    attn = SparseAttention(cfg, [kvc], sc, local_max=len(prompt) + 2 * n + 1)
    with torch.no_grad():
        logits = model(torch.tensor(prompt, device=model.device), attn, last_only=True)
    attn.record = True
    dec = StaticDecoder(model, attn, config)
    reset_peak("cuda")
    dec.capture()
    steady = torch.cuda.memory_allocated() - base
    _, per_token_s = _timed_greedy(dec, int(logits[-1].argmax()), n)
    torch.cuda.synchronize()
    fetched = int(dec.fetched)
    per_token = fetched / n
    t0 = time.perf_counter()                # back to back: no host read per token
    for _ in range(n):
        dec.step()
    torch.cuda.synchronize()
    replay_ms = 1000 * (time.perf_counter() - t0) / n
    block_bytes = 2 * lay.block_size * lay.head_dim * 2            # K + V, bf16
    slots = cfg.n_layers * cfg.n_kv_heads * dec.k
    link_bytes = per_token * block_bytes
    read = weights + _sparse_bytes(lay, budget, cfg)
    floor = 1000 * read / bw
    decode_ms = 1000 * per_token_s
    reps = kvc.reps.nbytes
    parts = dec.device_bytes()
    kv_dev = reps + sum(parts.values()) + attn._mass.numel() * 8
    dense_kv = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * lay.tokens * 2
    r = Row("decode", f"static {mode} {placement}", lay.tokens, str(budget),
            decode_ms=decode_ms, floor_ms=floor,
            memory=f"peak device {torch.cuda.max_memory_allocated() / GiB:.2f} GiB; "
                   f"KV on device {kv_dev / GiB:.3f} GiB = {100 * kv_dev / dense_kv:.1f}% "
                   f"of dense KV",
            note=f"{name}; first step max|dlogit| {ops['first_step']['max_logit_diff']:.1e} "
                 f"sel {ops['first_step']['selections_equal']:.0%}; floor+link {floor + 1000 * link_bytes / link.uva:.2f} ms; "
                 f"fetched {per_token:.0f}/{slots} blocks/token; max|dlogit| {diff:.2e}, "
                 f"selections equal {agree:.0%}; GPU ops/step {ops['static']['ops']} "
                 f"(existing {ops['existing']['ops']}); replay {replay_ms:.2f} ms",
            extra={"floor_link_ms": floor + 1000 * link_bytes / link.uva,
                   "fetched_blocks_per_token": per_token, "slots": slots,
                   "link_bytes_per_token": link_bytes, "kv_device_bytes": kv_dev,
                   "kv_device_parts": {"representatives": reps, **parts,
                                       "attribution": attn._mass.numel() * 8},
                   "dense_kv_bytes": dense_kv, "decoder_state_bytes": steady,
                   "max_logit_diff": diff, "selections_equal": agree, "gpu_ops_per_step": ops,
                   "check_and_capture_s": check_s, "replay_ms": replay_ms})
    rows.append(r)
    print_row(r)
    del dec, attn
    gc.collect()


def share_weights(hf, model) -> None:
    """Fuse our q/k/v and gate/up weights (as StaticDecoder does), then point
    transformers' projections at the same memory: the bench keeps both models
    for the side-by-side rows, and would otherwise hold those weights twice,
    which the app (transformers' copy dropped after loading) never does."""
    for blk, layer in zip(model.layers, hf.model.layers):
        blk.fused_weights()
        pairs = [(layer.self_attn.q_proj, blk.wq), (layer.self_attn.k_proj, blk.wk),
                 (layer.self_attn.v_proj, blk.wv), (layer.mlp.gate_proj, blk.w_gate),
                 (layer.mlp.up_proj, blk.w_up)]
        for theirs, ours in pairs:
            if theirs.weight.dtype == ours.weight.dtype \
                    and theirs.weight.device == ours.weight.device:
                theirs.weight.data = ours.weight.data


def run_static(args, hf, model, name: str, rows: list[Row]) -> None:
    """Static sparse (per mode) vs existing sparse vs transformers dense."""
    cfg = model.cfg
    if hf is not None:
        share_weights(hf, model)
        gc.collect()
    bw = measure_bandwidth("cuda")
    link = measure_link(64, cfg.head_dim)
    print(f"# {name}: device bandwidth {bw / 1e12:.2f} TB/s, pinned copy "
          f"{link.copy / 1e9:.1f} GB/s, UVA block fetch {link.uva / 1e9:.1f} GB/s", flush=True)
    weights = param_bytes(model)
    prompt = list(range(1000, 1016))
    for n in args.synthetic:
        lay = KVLayout(n, 64, cfg.n_layers, cfg.n_kv_heads, cfg.head_dim, "bfloat16")
        for placement in args.static_placements:
            kvc = random_cache(None, lay, device="cuda", placement=placement)
            reset_peak("cuda")
            if placement == "pinned" and args.existing:
                engine = SparseEngine(model, name, "/tmp", EngineConfig(placement=placement))
                for budget in args.budgets:
                    engine.config.sparse.budget_tokens = budget
                    stream = engine.answer(kvc, prompt, args.decode_tokens + 1)
                    list(stream)
                    torch.cuda.synchronize()
                    r = Row("decode", "sparse pinned", n, str(budget),
                            decode_ms=stream.stats.decode_ms_per_token,
                            floor_ms=1000 * (weights + _sparse_bytes(lay, budget, cfg)) / bw,
                            memory=f"peak device {torch.cuda.max_memory_allocated() / GiB:.2f}"
                                   f" GiB", note=name)
                    rows.append(r)
                    print_row(r)
                del engine
            for budget in args.budgets:
                for mode in args.static_modes:
                    _static_rows(args, model, name, kvc, lay, budget, prompt, bw, link, weights,
                                 mode, placement, rows)
            del kvc
            gc.collect()
            reset_peak("cuda")
        if hf is not None and n <= args.dense_max:
            dense_row(args, hf, cfg, n, bw, name, rows)
    rows.append(Row("bandwidth", "measured", 0, note=name,
                    extra={"device_Bps": bw, "pinned_copy_Bps": link.copy,
                           "uva_fetch_Bps": link.uva}))
