"""What the machine offers the models: one place, so the embedder and the
answer model agree."""
from __future__ import annotations

import os

import psutil


def physical_cores() -> int:
    """Threads for inference: one per physical core (SMT siblings share the
    vector units, so more threads only add contention)."""
    return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)
