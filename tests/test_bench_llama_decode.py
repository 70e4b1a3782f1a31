"""bench/llama_decode.py: a cache filled by copying one prefilled piece holds
n cells at positions 0..n-1 (so a decode step attends to as many cells as
after a real prefill of n tokens), and a bad split is refused."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.backends.errors import ModelNotFoundError
from engine.model_files import tiny_model_path
from tests_support import bench_module


def llama_decode_module():
    return bench_module("llama_decode")


@pytest.fixture(scope="module")
def tiny() -> Path:
    try:
        return tiny_model_path()
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
def test_copied_cache_spans_every_position_and_decodes(tiny):
    m = llama_decode_module()
    real = m.llama_decode(tiny, 256, pieces=1, decode_tokens=2, batch=128)
    copied = m.llama_decode(tiny, 256, pieces=4, decode_tokens=2, batch=128)
    # llama_decode checks the joined sequence spans 0..n-1 before decoding
    assert copied.pieces == 4 and len(copied.decode_ms) == 2 and len(real.decode_ms) == 2
    assert all(t > 0 for t in copied.decode_ms + real.decode_ms)
    with pytest.raises(ValueError, match="equal pieces"):
        m.llama_decode(tiny, 250, pieces=4, decode_tokens=1)
