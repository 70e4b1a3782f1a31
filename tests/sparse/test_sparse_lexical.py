"""The lexical side of the filter's pick: BM25 over the stored token ids,
mixed with the attention mass; the token ids kept beside the KV cache."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.sparse.attention import SparseAttention, SparseConfig
from engine.sparse.generate import EngineConfig, SparseEngine
import engine.sparse.kvstore as kvstore
from engine.sparse.kvstore import TOKEN_IDS, KVCacheError, PrefillConfig, open_cache
from engine.sparse.lexical import K1, bm25_scores, candidate_token_ids, fuse
from engine.sparse.model import from_transformers
from engine.sparse.question_pick import question_forward

from sparse_support import tiny_hf


def test_bm25_weighs_rare_question_tokens_over_common_ones():
    ids = torch.tensor([[1, 2, 3, 4],      # the rare 9 is only here
                        [1, 2, 9, 4],
                        [1, 5, 5, 6],
                        [1, 7, 8, -1]])
    score = bm25_scores(ids, torch.tensor([1, 9, 9, 42, -1]))
    # 1 is in every block: a small, equal share each; 42 is nowhere; 9 once
    idf_1 = math.log(1 + 0.5 / 4.5)
    idf_9 = math.log(1 + 3.5 / 1.5)
    torch.testing.assert_close(score, torch.tensor([idf_1, idf_1 + idf_9, idf_1, idf_1]))
    # a repeated term saturates (K1) instead of counting linearly
    twice = bm25_scores(torch.tensor([[9, 9, 0], [9, 0, 0], [0, 0, 0]]), torch.tensor([9]))
    idf = math.log(1 + 1.5 / 2.5)
    torch.testing.assert_close(twice[:2], torch.tensor(
        [idf * 2 * (K1 + 1) / (2 + K1), idf]))
    assert twice[2] == 0


def test_candidate_tokens_take_their_neighbours_edges_only_when_adjacent():
    ids = torch.arange(12).view(3, 4)                  # three blocks of 4
    adjacent = torch.tensor([True, False])             # block 2 is from elsewhere
    ext = candidate_token_ids(ids, 4, 1, adjacent)
    assert ext.tolist() == [[-1, 0, 1, 2, 3, 4],
                            [3, 4, 5, 6, 7, -1],
                            [-1, 8, 9, 10, 11, -1]]
    assert torch.equal(candidate_token_ids(ids, 4, 0, adjacent), ids)


def test_fuse_scales_both_sides_and_weight_zero_keeps_the_mass_order():
    mass = torch.tensor([4.0, 2.0, 1.0])
    lexical = torch.tensor([0.0, 0.0, 6.0])
    assert fuse(mass, lexical, 0.0).argmax() == 0
    torch.testing.assert_close(fuse(mass, lexical, 1.0), torch.tensor([1.0, 0.5, 1.25]))
    # no lexical match anywhere: the mass alone
    torch.testing.assert_close(fuse(mass, torch.zeros(3), 1.0), mass / 4)
    # "product": only attended blocks move up; a block with no mass stays out
    torch.testing.assert_close(fuse(mass, lexical, 1.0, "product"),
                               torch.tensor([1.0, 0.5, 0.5]))
    assert fuse(torch.tensor([4.0, 0.0]), torch.tensor([0.0, 9.0]), 5.0, "product")[1] == 0
    with pytest.raises(ValueError, match="fusion"):
        fuse(mass, lexical, 1.0, "max")
    with pytest.raises(ValueError, match="lexical_fusion"):
        SparseConfig(lexical_fusion="max")


def _engine(model, tmp_path, **sparse):
    return SparseEngine(model, "tiny", tmp_path, EngineConfig(
        prefill=PrefillConfig(block_size=16, chunk=32),
        sparse=SparseConfig(**sparse)))


def _doc(seed: int = 10) -> list[int]:
    """400 random tokens without 298, which is planted once at 250."""
    g = torch.Generator().manual_seed(seed)
    doc = [t if t != 298 else 1 for t in torch.randint(0, 298, (400,), generator=g).tolist()]
    doc[250] = 298
    return doc


@pytest.mark.parametrize("window", [512, 128])
def test_the_question_s_rare_token_brings_its_block_to_the_top(window, tmp_path):
    """A random model's attention does not know where token 298 is; with the
    lexical weight the block holding it is the filter's best pick, inside
    the window and past it (where, in score order, it sits next to the
    question). Weight 0 leaves the mass's own order."""
    model = from_transformers(tiny_hf("llama", seed=3, window=window))
    engine = _engine(model, tmp_path, budget_tokens=48, filter_depth=0.0, spill_tokens=4)
    cache = engine.prefill_document(_doc())
    assert cache.token_ids.tolist() == _doc()
    needle = 250 // 16 - 1                             # candidate ids skip the sink block
    question = [5, 298, 7, 8]
    picks = {}
    for weight in (0.0, 4.0):
        attn = SparseAttention(model.cfg, [cache], SparseConfig(
            budget_tokens=48, filter_depth=0.0, spill_tokens=4, lexical_weight=weight,
            lexical_scope="always"), local_max=len(question) + 2)
        with torch.no_grad():
            question_forward(model, torch.tensor(question), attn)
        assert attn.plan.original == (window == 512)
        picks[weight] = attn.question_picks[0][0]
        if weight == 0.0:
            assert torch.equal(picks[weight], attn.filter_mass.topk(3).indices)
            assert attn.lexical_scores() is None
        else:
            lexical = attn.lexical_scores()
            assert int(lexical.argmax()) == needle
            assert int(picks[weight][0]) == needle
            if window == 128:              # past the window: the slot next to the question
                B = 16
                assert int(attn.slot_pos[needle]) + B == attn.plan.local_start
    assert int(picks[0.0][0]) != needle     # the mass alone ranked another block first


def test_by_default_the_words_count_past_the_window_only(tmp_path):
    """The defaults: lexical weight 4 ("sum") past the window, where the
    best block sits next to the question; inside it the blocks keep their
    positions and the pick is the model's attention alone."""
    question = [5, 298, 7, 8]
    for window, expect in ((512, False), (128, True)):
        model = from_transformers(tiny_hf("llama", seed=3, window=window))
        cache = _engine(model, tmp_path / str(window)).prefill_document(_doc())
        attn = SparseAttention(model.cfg, [cache], SparseConfig(
            budget_tokens=48, filter_depth=0.0, spill_tokens=4), local_max=len(question) + 2)
        with torch.no_grad():
            question_forward(model, torch.tensor(question), attn)
        assert (attn.lexical_scores() is not None) == expect
        assert (int(attn.question_picks[0][0, 0]) == 250 // 16 - 1) == expect
    with pytest.raises(ValueError, match="lexical_scope"):
        SparseConfig(lexical_scope="near")


def test_the_engine_matches_the_query_it_is_given(tmp_path):
    """`answer(query=...)` matches the question's own tokens, not the prompt's."""
    model = from_transformers(tiny_hf("llama", seed=3))
    engine = _engine(model, tmp_path, budget_tokens=48, filter_depth=0.0, spill_tokens=4,
                     lexical_weight=4.0, lexical_scope="always")
    cache = engine.prefill_document(_doc())
    stream = engine.answer(cache, [5, 7, 8], max_new_tokens=1, query=[298])
    list(stream)
    assert int(stream.attention.question_picks[0][0, 0]) == 250 // 16 - 1
    assert stream.attention.query_ids.tolist() == [298]
    with pytest.raises(ValueError, match="query has 1 token ids outside"):
        engine.answer(cache, [5], query=[300])


def test_token_ids_are_kept_beside_the_cache_and_restored_for_older_caches(tmp_path,
                                                                              monkeypatch):
    model = from_transformers(tiny_hf("llama", seed=3))
    engine = _engine(model, tmp_path)
    doc = _doc()
    cache = engine.prefill_document(doc, "d")
    file = cache.path / TOKEN_IDS
    assert np.load(file).tolist() == doc
    assert open_cache(cache.path).token_ids.tolist() == doc
    # a cache built before token ids were kept opens without them and gets them back
    file.unlink()
    assert open_cache(cache.path).token_ids is None
    again = engine.prefill_document(doc, "d")
    assert again.token_ids.tolist() == doc and file.is_file()
    assert not list(cache.path.glob(".*tmp*"))
    # where they cannot be written (a read-only or full disk) they are kept in memory
    file.unlink()
    real = kvstore.os.replace

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(kvstore.os, "replace", refuse)
    kept = engine.prefill_document(doc, "d")
    monkeypatch.setattr(kvstore.os, "replace", real)
    assert kept.token_ids.tolist() == doc and not file.exists()
    assert not [p.name for p in cache.path.iterdir() if p.name.startswith(".")]
    engine.prefill_document(doc, "d")
    # damaged ids are an error (the engine then rebuilds the cache)
    np.save(file, np.zeros(3, dtype=np.int32))
    with pytest.raises(KVCacheError, match="token ids"):
        open_cache(cache.path)
    assert engine.prefill_document(doc, "d").token_ids.tolist() == doc
    with pytest.raises(ValueError, match="lexical_weight"):
        SparseConfig(lexical_weight=-1.0)
