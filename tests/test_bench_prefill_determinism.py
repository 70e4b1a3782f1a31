"""bench/prefill_determinism.py: both reuse rules are measured on the same
prompts, and the default one reuses the cache in whole blocks only."""
from __future__ import annotations

import pytest

from tests_support import bench_module, tiny_or_skip


@pytest.mark.slow
def test_both_reuse_rules_are_measured_side_by_side():
    from engine.backends import load_backend

    backend = load_backend(tiny_or_skip(), None)
    try:
        rows = bench_module("prefill_determinism").measure(backend, words=200)
    finally:
        backend.close()
    whole, any_prefix = rows
    block = backend.config.prefill_block
    n = whole["prompt_tokens"]
    assert any_prefix["prompt_tokens"] == n > 2 * block
    # whole blocks: the reuse is cut back to a block boundary, so the
    # same prompt gives the same logits after Q and after itself
    assert whole["reused_after_q"] % block == 0 and whole["reused_again"] % block == 0
    assert 0 < whole["reused_after_q"] <= any_prefix["reused_after_q"]
    assert whole["max_diff_after_q"] == whole["max_diff_again"] == 0.0
    assert whole["same_greedy_token"]
    # any prefix: all of P but its last token is read from the cache
    assert any_prefix["reused_again"] == n - 1
    assert whole["fresh_prefill_tok_s"] > 0 and any_prefix["fresh_prefill_tok_s"] > 0
