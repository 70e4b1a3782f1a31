"""A stored prefill speed belongs to one model, CPU count and llama.cpp
build: a source build for this CPU prefills faster than the portable wheel,
and the budget must not carry one's speed over to the other."""
from __future__ import annotations

from pathlib import Path

import llama_cpp

from app.machine_speeds import prefill_key
from engine.backends.base import ModelInfo

INFO = ModelInfo(Path("/m.gguf"), "qwen", "llama.cpp", 4096, 32768, 491_400_064)


def test_the_key_names_the_model_and_the_build(monkeypatch):
    key = prefill_key(INFO)
    assert key.startswith("qwen:491400064:") and llama_cpp.__version__ in key
    assert prefill_key(INFO) == key                    # stable across calls
    monkeypatch.setattr(llama_cpp, "llama_print_system_info",
                        lambda: b"CPU : AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 |")
    assert prefill_key(INFO) != key                    # another build, another speed
