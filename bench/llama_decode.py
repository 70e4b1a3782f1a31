"""llama.cpp dense decode after an n-token context, through llama.cpp's C API.

A real prefill of 128K tokens takes hours on 2 cores: the attention part
grows with the square of the length, and llama.cpp computes every ubatch
against every used cell of its cache (masking afterwards), so even
independent sequences in one cache cost as much. Yet a decode step's cost
depends only on how many cells it attends to, not on what they hold. So
with `pieces` > 1 one piece of n/pieces tokens is prefilled for real, its
cells are copied into the cache pieces-1 more times (`llama_state_seq_get_
data` / `set_data`: a memory copy, no compute), shifted to consecutive
positions (`llama_memory_seq_add`) and joined into sequence 0
(`llama_memory_seq_cp`). The decoded tokens then attend to all n cells at
positions 0..n-1, as after a real prefill. `pieces=1` is the real prefill,
so one run can check that both give the same decode speed at a length where
both are affordable. The first decoded token is a warm-up (it also applies
the position shift) and is not timed, in both cases.
"""
from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class LlamaDecode:
    context: int
    pieces: int
    fill_s: float            # the prefill (pieces=1), or the piece's prefill and its copies
    decode_ms: list[float]   # one entry per decoded token
    flash_attn: bool


def llama_decode(gguf: Path, n: int, *, pieces: int = 1, decode_tokens: int = 8,
                 threads: int = 2, batch: int = 512, flash_attn: bool = False) -> LlamaDecode:
    """Fill an n-token cache (one piece prefilled, copied `pieces` times), then
    time decode steps."""
    import llama_cpp as L
    from llama_cpp._logger import set_verbose

    set_verbose(False)
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    mp.use_mmap = False                    # as Folio's backend: mmap stalls here
    model = L.llama_model_load_from_file(str(gguf).encode(), mp)
    if not model:
        raise RuntimeError(f"llama.cpp could not load {gguf}")
    cp = L.llama_context_default_params()
    cp.n_ctx = n + decode_tokens + 16
    cp.n_batch = cp.n_ubatch = batch
    cp.n_seq_max = pieces
    cp.kv_unified = True                   # one cell pool, so seq_cp shares cells
    cp.n_threads = cp.n_threads_batch = threads
    cp.flash_attn_type = (L.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn
                          else L.LLAMA_FLASH_ATTN_TYPE_DISABLED)
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        L.llama_model_free(model)
        raise RuntimeError(f"llama.cpp could not make a {cp.n_ctx}-token context")
    b = L.llama_batch_init(batch, 0, 1)
    try:
        if n % pieces:
            raise ValueError(f"{n} tokens do not split into {pieces} equal pieces")
        per = n // pieces
        vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
        ids = torch.randint(vocab // 4, vocab // 2, (per,),
                            generator=torch.Generator().manual_seed(n)).tolist()
        t0 = time.perf_counter()
        for start in range(0, per, batch):
            _decode(L, ctx, b, ids[start:start + batch], start, 0)
        mem = L.llama_get_memory(ctx)
        if pieces > 1:
            size = L.llama_state_seq_get_size(ctx, 0)
            state = (ctypes.c_uint8 * size)()
            if L.llama_state_seq_get_data(ctx, state, size, 0) != size:
                raise RuntimeError("llama.cpp did not hand over the piece's cells")
            for s in range(1, pieces):
                if not L.llama_state_seq_set_data(ctx, state, size, s):
                    raise RuntimeError(f"llama.cpp could not copy piece {s} into the cache")
                L.llama_memory_seq_add(mem, s, -1, -1, s * per)
                L.llama_memory_seq_cp(mem, s, 0, -1, -1)
                L.llama_memory_seq_rm(mem, s, -1, -1)
        fill = time.perf_counter() - t0
        if L.llama_memory_seq_pos_max(mem, 0) != n - 1 or L.llama_memory_seq_pos_min(mem, 0) != 0:
            raise RuntimeError("the cache does not span positions 0..n-1")
        steps = []
        for i in range(decode_tokens + 1):
            t0 = time.perf_counter()
            _decode(L, ctx, b, [vocab // 4 + i], n + i, 0)
            L.llama_get_logits_ith(ctx, -1)
            if i:                           # the first step is the warm-up
                steps.append(1000 * (time.perf_counter() - t0))
        return LlamaDecode(n, pieces, fill, steps, flash_attn)
    finally:
        L.llama_batch_free(b)
        L.llama_free(ctx)
        L.llama_model_free(model)


def _decode(L, ctx, b, tokens: list[int], pos0: int, seq: int) -> None:
    """One llama_decode of `tokens` at positions pos0.. in sequence `seq`."""
    b.n_tokens = len(tokens)
    for i, t in enumerate(tokens):
        b.token[i] = t
        b.pos[i] = pos0 + i
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = i == len(tokens) - 1
    rc = L.llama_decode(ctx, b)
    if rc != 0:
        raise RuntimeError(f"llama_decode returned {rc} at position {pos0}")

