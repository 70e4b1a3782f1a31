"""What this machine can run, in words for the settings panel."""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass


@dataclass
class Machine:
    cores: int
    memory_gb: float | None
    available_gb: float | None
    gpu: str | None            # a GPU name, when one is usable
    llama_gpu: bool            # llama.cpp was built with GPU offload

    def lines(self) -> list[str]:
        mem = (f"{self.memory_gb:.1f} GB memory ({self.available_gb:.1f} GB free)"
               if self.memory_gb else "memory unknown")
        gpu = self.gpu or "no GPU found"
        out = [f"{self.cores} CPU cores, {mem}", f"GPU: {gpu}"]
        if self.gpu and not self.llama_gpu:
            out.append("this llama.cpp build runs on the CPU; the GPU serves embeddings")
        if self.memory_gb:
            out.append(advice(self.available_gb or self.memory_gb))
        return out


def advice(free_gb: float) -> str:
    """Which models fit: a Q4 GGUF needs roughly its file size plus the window."""
    if free_gb < 1.5:
        return "little free memory: keep the bundled 0.5B model and a small context budget"
    if free_gb < 6:
        return "fits the bundled 0.5B model and GGUF models up to about 3B (Q4)"
    if free_gb < 12:
        return "fits GGUF models up to about 7B (Q4)"
    return "fits GGUF models up to about 13B (Q4) or more"


def _gpu_name() -> str | None:
    torch = sys.modules.get("torch")   # only ask torch when the app already loaded it
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
            if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
                return "Apple GPU (Metal)"
        except Exception:
            return None
        return None
    if shutil.which("nvidia-smi"):
        return "NVIDIA GPU (nvidia-smi present)"
    return None


def _llama_gpu() -> bool:
    try:
        import llama_cpp

        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:
        return False


def probe() -> Machine:
    total = free = None
    try:
        import psutil

        vm = psutil.virtual_memory()
        total, free = vm.total / 2**30, vm.available / 2**30
    except Exception:
        pass
    return Machine(os.cpu_count() or 1, total, free, _gpu_name(), _llama_gpu())
