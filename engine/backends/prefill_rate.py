"""How fast this machine reads a prompt with a loaded llama.cpp model, and
which llama.cpp build does the reading: the context budget picks the
largest context whose prefill meets a time-to-first-token target, so it
needs a measured rate, remembered per build.
"""
from __future__ import annotations

import time

from engine.backends.llama_cpp import LlamaCppBackend

_PREFILL_TEXT = ("Folio answers questions about documents and source code, "
                 "citing the exact sentences and lines it used. ")


def build_id() -> str:
    """Which llama.cpp build runs: the same version compiled for this CPU
    (a source install) prefills about 1.5 times faster on an AVX-512
    machine than the portable AVX2 wheel (bench/RESULTS.md), so a speed
    measured with one is not the other's."""
    import hashlib

    import llama_cpp

    features = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return f"{llama_cpp.__version__}:{hashlib.sha1(features.encode()).hexdigest()[:8]}"


def measure_prefill_rate(backend: LlamaCppBackend, n_tokens: int = 512,
                         refresh: bool = False) -> float:
    """Prompt-processing speed (tokens/s) of this model on this machine, from
    one timed prefill after a short warm-up, so the context budget can pick
    the largest context that meets a time-to-first-token target.

    Measured once per loaded backend (memoised on it); the KV cache is left
    empty so the next answer does not mistake the probe for a cached prefix.
    The rate falls slowly as the context grows (attention cost), so measure
    at roughly the size the budget will use.
    """
    if backend.prefill_rate is not None and not refresh:
        return backend.prefill_rate
    llm = backend._model()
    n_tokens = max(16, min(n_tokens, backend.n_ctx - 1))
    ids = llm.tokenize(_PREFILL_TEXT.encode("utf-8"), add_bos=False, special=False)
    ids = (ids * (n_tokens // len(ids) + 1))[:n_tokens]
    with backend._lock:
        llm.reset()
        llm.eval(ids[:16])                  # warm-up: first-call allocations
        llm.reset()
        start = time.perf_counter()
        block = max(1, backend.config.prefill_block)      # as answers read prompts
        for i in range(0, n_tokens, block):
            llm.eval(ids[i:i + block])
        elapsed = time.perf_counter() - start
        llm.reset()
    backend.prefill_rate = n_tokens / elapsed if elapsed > 0 else float("inf")
    return backend.prefill_rate
