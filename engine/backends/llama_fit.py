"""Whether a GGUF fits this machine, and how: the context window, the
memory it needs with that window, and how many layers go to a GPU. Kept
apart from the backend so each refusal (too big, window too small, no GPU
build) is checked, and tested, before llama.cpp is asked to load anything.
"""
from __future__ import annotations

from pathlib import Path

import psutil

from engine.backends.base import BackendConfig
from engine.backends.errors import ModelError, ModelTooLargeError, UnsupportedModelError
from engine.backends.gguf_header import GGUFInfo

# Compute buffers, tokenizer tables and the runtime beside weights and KV
# cache; measured at 40-75 MB for the bundled models, so this is generous.
MEMORY_OVERHEAD_BYTES = 128 * 2**20


def available_memory_bytes() -> int:
    """Memory the model may use; a function so tests can pretend it is small."""
    return int(psutil.virtual_memory().available)


def memory_needed_bytes(header: GGUFInfo, n_ctx: int) -> int:
    """Weights are read fully into RAM (`use_mmap=False`), plus an f16 KV cache."""
    return header.file_size + header.kv_cache_bytes(n_ctx) + MEMORY_OVERHEAD_BYTES


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GB"


def choose_n_ctx(header: GGUFInfo, config: BackendConfig) -> int:
    """The requested window, else the trained one capped at `max_ctx`."""
    trained = header.context_length or 4096
    if config.n_ctx is not None:
        if config.n_ctx < 64:
            raise ModelError(f"a context window of {config.n_ctx} tokens is too small")
        return min(config.n_ctx, trained)
    return min(trained, config.max_ctx)


def check_memory(path: Path, header: GGUFInfo, n_ctx: int) -> None:
    """A clear refusal before loading, rather than the OS killing the app
    half-way through reading the weights."""
    needed, available = memory_needed_bytes(header, n_ctx), available_memory_bytes()
    if needed > available:
        raise ModelTooLargeError(
            f"{path.name} needs about {_gib(needed)} of memory with a "
            f"{n_ctx}-token window, but only {_gib(available)} is available: "
            "close other programs, choose a smaller context, or use a smaller model")


def offloaded_layers(device: str, gpu_build: bool) -> int:
    """Layers llama.cpp puts on the GPU: all of them when a GPU is asked
    for (or "auto" and the build has one), none on "cpu". Asking for a GPU
    from a CPU-only build is an error rather than a silent CPU run."""
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"unknown device {device!r}: use auto, cpu or gpu")
    if device == "gpu" and not gpu_build:
        raise UnsupportedModelError(
            "the GPU was chosen, but this llama-cpp-python build has no GPU support: "
            "choose device auto or cpu, or install a CUDA/Metal build of llama-cpp-python")
    return -1 if device != "cpu" and gpu_build else 0
