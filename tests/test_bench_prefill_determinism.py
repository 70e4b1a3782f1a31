"""bench/prefill_determinism.py: the reuse rules are measured on the same
prompts, and the default one reuses the cache at block boundaries only:
the instructions, then whole blocks."""
from __future__ import annotations

import pytest

from tests_support import bench_module, tiny_or_skip


@pytest.mark.slow
def test_the_reuse_rules_are_measured_side_by_side():
    from engine.backends import load_backend

    backend = load_backend(tiny_or_skip(), None)
    module = bench_module("prefill_determinism")
    try:
        rows = module.measure(backend, words=200)
        p = module.chats(200)[0]
        lead = backend._lead(p, backend.chat_tokens(p))
    finally:
        backend.close()
    led, whole, any_prefix = rows
    block = backend.config.prefill_block
    n = whole["prompt_tokens"]
    assert led["prompt_tokens"] == any_prefix["prompt_tokens"] == n > 2 * block
    assert lead > 0
    # whole blocks (from the start, or after the instructions): the reuse is
    # cut back to a boundary, so the same prompt gives the same logits after
    # Q, after itself and after R
    assert whole["reused_after_q"] % block == 0 and whole["reused_again"] % block == 0
    assert (led["reused_after_q"] - lead) % block == 0
    assert (led["reused_again"] - lead) % block == 0
    assert 0 < whole["reused_after_q"] <= any_prefix["reused_after_q"]
    # the next question, over other sources: only the instructions are shared
    assert led["reused_after_r"] == lead and whole["reused_after_r"] == 0
    for row in (led, whole):
        assert row["max_diff_after_q"] == row["max_diff_again"] == row["max_diff_after_r"] == 0.0
        assert row["same_greedy_token"]
    # any prefix: all of P but its last token is read from the cache
    assert any_prefix["reused_again"] == n - 1
    assert all(row["fresh_prefill_tok_s"] > 0 for row in rows)
