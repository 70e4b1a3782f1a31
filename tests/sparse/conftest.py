"""Tiny random Llama/Qwen2 models for fast checks; the real tiny GGUF for slow ones."""
from __future__ import annotations

import pytest
import torch

from engine.sparse.model import Transformer, from_transformers

from sparse_support import smollm_gguf, tiny_hf


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny matmuls gain nothing from a second thread, and on a busy 2-core
    machine OpenMP's waiting between threads makes them many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_qwen() -> tuple[object, Transformer]:
    hf = tiny_hf("qwen2")
    return hf, from_transformers(hf)


@pytest.fixture(scope="session")
def smollm():
    """(transformers model, tokenizer) of the bundled SmolLM2-135M GGUF, loaded once."""
    from transformers import AutoTokenizer

    from engine.sparse.model import load_hf_model

    path = smollm_gguf()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return load_hf_model(path), tokenizer
