"""The real tiny model finds a needle through sparse attention over its stored
KV cache, agrees with dense, and attributes the answer to the needle."""
from __future__ import annotations

import pytest

from engine.sparse.attention import EVERYTHING
from engine.sparse.generate import EngineConfig, SparseEngine
from engine.sparse.kvstore import PrefillConfig
from engine.sparse.model import from_transformers

NEEDLE = " The secret passphrase for the vault is purple-otter-42."
ITEMS = ["nails", "screws", "bolts", "washers"]


@pytest.mark.slow
def test_needle_found_with_a_small_budget(smollm, tmp_path):
    hf, tok = smollm
    model = from_transformers(hf)
    filler = " ".join(f"Item {i} of the inventory list is a box of {ITEMS[i % 4]}."
                      for i in range(80))
    text = filler[:len(filler) // 2] + NEEDLE + filler[len(filler) // 2:]
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": f"Document:\n{text}\n\nQuestion: What is the secret "
                                     "passphrase for the vault?"}],
        add_generation_prompt=True, tokenize=False)
    cut = prompt.index("\n\nQuestion:")
    doc = tok(prompt[:cut], add_special_tokens=False).input_ids
    question = tok(prompt[cut:], add_special_tokens=False).input_ids
    needle_tok = len(tok(prompt[:prompt.index(NEEDLE) + 20], add_special_tokens=False).input_ids)
    assert len(doc) > 1000

    engine = SparseEngine(model, "smollm2", tmp_path,
                          EngineConfig(prefill=PrefillConfig(chunk=256)))
    cache = engine.prefill_document(doc)
    answers = {}
    for budget in (128, EVERYTHING):      # 128 of ~1,150 document tokens, then all
        engine.config.sparse.budget_tokens = budget
        stream = engine.answer(cache, question, max_new_tokens=16, stop_ids=[tok.eos_token_id])
        answers[budget] = tok.decode(list(stream))
        if budget == 128:
            # while answering, the needle's block gets the most mass after the sink block
            mass = stream.attribution.ranges(
                [(0, a, a + 64) for a in range(64, len(doc), 64)])
            assert 64 + 64 * mass.index(max(mass)) <= needle_tok < 64 + 64 * (
                mass.index(max(mass)) + 2)
    assert "purple-otter-42" in answers[128]
    assert answers[128] == answers[EVERYTHING]
