"""Sparse attention: dense-equivalent at full budget, finds planted needles,
keeps every distance inside the trained window, and attributes mass."""
from __future__ import annotations

import pytest
import torch

from engine.sparse.attention import EVERYTHING, SparseConfig
from engine.sparse.positions import plan_positions
from engine.sparse.generate import EngineConfig, SparseEngine
from engine.sparse.kvstore import PrefillConfig
from engine.sparse.model import DenseAttention, apply_rope, from_transformers, rope_cos_sin
from engine.sparse.representatives import block_bounds, layer_centroids
from engine.sparse.selectors import (LayerCandidates, aggregate, make_selector, top_blocks)

from sparse_support import tiny_hf


def _engine(model, tmp_path, *, budget, dtype="float32", selector="quest", centroids=0):
    return SparseEngine(model, "tiny", tmp_path, EngineConfig(
        prefill=PrefillConfig(block_size=16, chunk=32, dtype=dtype, n_centroids=centroids),
        sparse=SparseConfig(budget_tokens=budget, selector=selector)))


def _dense_greedy(model, ids, n):
    attn, out = DenseAttention(model.cfg), []
    with torch.no_grad():
        logits = model(torch.tensor(ids), attn)
        for _ in range(n):
            out.append(int(logits[-1].argmax()))
            logits = model(torch.tensor(out[-1:]), attn)
    return out


def _rand(n, seed):
    return torch.randint(0, 300, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_full_budget_equals_dense(kind, tmp_path):
    model = from_transformers(tiny_hf(kind))
    doc, question = _rand(150, 6), _rand(12, 7)
    engine = _engine(model, tmp_path, budget=EVERYTHING)
    cache = engine.prefill_document(doc)
    with torch.no_grad():
        dense = model(torch.tensor(doc + question), DenseAttention(model.cfg))[len(doc):]
    torch.testing.assert_close(engine.prompt_logits(cache, question), dense, atol=1e-4, rtol=1e-4)
    stream = engine.answer(cache, question, max_new_tokens=6)
    assert list(stream) == _dense_greedy(model, doc + question, 6)
    assert stream.stats.everything and stream.stats.local_start == len(doc)
    # a follow-up question reuses the stored cache: same files, nothing rebuilt
    again = engine.prefill_document(doc)
    assert again.path == cache.path
    torch.testing.assert_close(engine.prompt_logits(again, question[:5]), engine.prompt_logits(
        cache, question[:5]))


def test_small_budget_differs_but_stays_sane(tiny_qwen, tmp_path):
    _, model = tiny_qwen
    engine = _engine(model, tmp_path, budget=32, dtype="float16")
    cache = engine.prefill_document(_rand(300, 8))
    stream = engine.answer(cache, _rand(10, 9), max_new_tokens=5)
    tokens = list(stream)
    assert len(tokens) == 5 and not stream.stats.everything
    assert stream.stats.selected_tokens == 32
    sel = stream.attention.selections[0]
    assert sel.shape == (2, 2) and (sel[:, 1:] > sel[:, :1]).all()    # document order


def _needle_candidates(selector_name: str, seed: int = 0, compact: bool = False):
    """Random keys in 40 blocks of 16; one block holds a key aligned with the query."""
    gen = torch.Generator().manual_seed(seed)
    heads, n_blocks, block, dim = 2, 40, 16, 32
    keys = torch.randn(heads, n_blocks, block, dim, generator=gen)
    query = torch.randn(heads, 3, dim, generator=gen)
    needle_block, needle_pos = 27, 5
    keys[:, needle_block, needle_pos] = 4 * query.mean(1)
    valid = torch.ones(n_blocks, block, dtype=torch.bool)
    kmin, kmax, kmean = block_bounds(keys, valid)
    cents, labels = layer_centroids(keys, valid, 64)
    if compact:         # the GPU keeps bfloat16 representatives
        kmin, kmax, kmean, cents = (t.to(torch.bfloat16) for t in (kmin, kmax, kmean, cents))
    reps = LayerCandidates(kmin, kmax, kmean, cents, labels)
    scores = aggregate(make_selector(selector_name).scores(query, reps), dim)
    return top_blocks(scores, 3), needle_block


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("selector", ["quest", "mean", "centroids"])
def test_block_scoring_picks_the_needle_block(selector, compact):
    picked, needle = _needle_candidates(selector, compact=compact)
    assert (picked == needle).any(dim=1).all(), picked


def test_compact_representatives_halve_and_keep_the_ranking():
    from engine.sparse.representatives import BlockRepresentatives

    gen = torch.Generator().manual_seed(3)
    keys = torch.randn(2, 40, 16, 32, generator=gen)
    valid = torch.ones(40, 16, dtype=torch.bool)
    reps = BlockRepresentatives(*(t[None] for t in block_bounds(keys, valid)))
    small = reps.compact()
    assert small.kmax.dtype == torch.bfloat16 and small.nbytes * 2 == reps.nbytes
    q = torch.randn(2, 5, 32, generator=gen)
    full = make_selector("quest").scores(q, LayerCandidates(reps.kmin[0], reps.kmax[0],
                                                            reps.kmean[0]))
    half = make_selector("quest").scores(q, LayerCandidates(small.kmin[0], small.kmax[0],
                                                            small.kmean[0]))
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, atol=0.15, rtol=0.02)
    agree = (aggregate(half, 32).topk(8).indices.sort().values
             == aggregate(full, 32).topk(8).indices.sort().values).float().mean()
    assert agree >= 0.75


def _needle_model(window: int):
    """A 2-layer model in which token 299 is a needle: layer 0's query
    projection equals its key projection, and 299's embedding is the
    direction that projection amplifies most, amplified 4x more (a sharp,
    distinctive key)."""
    hf = tiny_hf("llama", seed=3, window=window)
    with torch.no_grad():
        attn = hf.model.layers[0].self_attn
        norm_w = hf.model.layers[0].input_layernorm.weight
        direction = torch.linalg.svd(attn.k_proj.weight * norm_w).Vh[0]
        wk = attn.k_proj.weight
        wk += 3 * (wk @ direction)[:, None] * direction[None, :]
        hf.model.embed_tokens.weight[299] = direction / norm_w
        attn.q_proj.weight.copy_(wk.view(2, 1, 16, 64).expand(2, 2, 16, 64).reshape(64, 64))
    return from_transformers(hf)


def test_needle_block_selected_end_to_end(tmp_path):
    """Plant a token in a random document and ask with that token. Layer 0's
    query projection equals its key projection and the needle's embedding is
    a direction that projection amplifies strongly, so the needle is the key
    that matches the question best; the stored representatives must lead
    both KV heads to its block."""
    model = _needle_model(512)
    doc = [t if t != 299 else 1 for t in _rand(400, 10)]
    needle_at = 250
    doc[needle_at] = 299
    engine = _engine(model, tmp_path, budget=64, centroids=64)
    cache = engine.prefill_document(doc)
    needle_candidate = needle_at // 16 - 1           # block 0 is the sink
    engine.config.sparse.question_scoring = "selector"     # the representatives alone
    for selector in ("quest", "centroids"):     # a mean key dilutes one sharp key
        engine.config.sparse.selector = selector
        stream = engine.answer(cache, [299], max_new_tokens=1)
        list(stream)
        assert (stream.attention.selections[0] == needle_candidate).any(1).all(), selector


def test_positions_stay_inside_the_window_beyond_it(tmp_path):
    """A document 3x the model's window is answered; every distance < window."""
    window = 128
    model = from_transformers(tiny_hf("qwen2", window=window))
    engine = _engine(model, tmp_path, budget=2048)
    cache = engine.prefill_document(_rand(400, 11))
    # the prefill past the window attends sinks + recent tokens only
    assert cache.metadata["prefill_max_distance"] < window
    stream = engine.answer(cache, _rand(9, 12), max_new_tokens=7)
    out = list(stream)
    assert len(out) == 7
    plan = stream.attention.plan
    assert plan.max_distance(9 + 7) < window
    assert plan.local_start + 9 + 7 <= window and plan.n_select > 0
    with pytest.raises(ValueError, match="do not fit"):
        engine.answer(cache, _rand(120, 13), max_new_tokens=20)


def test_prefill_past_the_window_matches_a_streaming_reference(tmp_path):
    """Chunks past the window see the sink block and the last (window - 16)
    tokens at shifted positions: the same as running dense attention over
    exactly those tokens laid out contiguously."""
    window = 96
    model = from_transformers(tiny_hf("llama", window=window))
    doc = _rand(160, 16)
    cache = _engine(model, tmp_path, budget=2048).prefill_document(doc)
    # the last chunk [128, 160) attends sinks [0, 16) + recent [80, 160)
    keep = doc[:16] + doc[80:160]
    capture = {}

    class Last(DenseAttention):
        def __call__(self, layer, q, k, v):
            capture[layer] = k[-32:].clone()
            return super().__call__(layer, q, k, v)

    with torch.no_grad():
        model(torch.tensor(keep), Last(model.cfg))
    stored = cache.keys[1].float().permute(1, 2, 0, 3).reshape(-1, 2, 16)[128:160]
    torch.testing.assert_close(stored, capture[1], atol=1e-4, rtol=1e-4)
    assert cache.metadata["prefill_max_distance"] == window - 1


@pytest.mark.parametrize("budget", [0, 16, 64, 1000, EVERYTHING])
@pytest.mark.parametrize("candidates,last_valid", [(0, 0), (1, 5), (30, 16), (500, 3)])
def test_position_plan_bounds(budget, candidates, last_valid):
    window, block, local = 256, 16, 40
    plan = plan_positions(sink_tokens=16, sink_valid=16, n_candidates=candidates,
                          last_valid=last_valid, block_size=block, budget_tokens=budget,
                          local_max=local, window=window)
    assert plan.max_distance(local) < window
    assert plan.n_select * block <= budget and plan.n_select <= candidates
    slots = plan.slot_positions()
    if plan.everything and candidates:      # the padding of a partial last block is masked
        slots = slots[:len(slots) - block + last_valid]
    assert (slots < plan.local_start).all()
    if plan.everything:
        assert plan.local_start == 16 + max(candidates - 1, 0) * block + (last_valid if candidates
                                                                           else 0)


def test_retrieval_first_ranges_limit_the_candidates(tiny_qwen, tmp_path):
    _, model = tiny_qwen
    engine = _engine(model, tmp_path, budget=EVERYTHING)
    cache = engine.prefill_document(_rand(300, 17))
    # two candidate segments: tokens 40-70 (blocks 2-4) and 250-255 (block 15)
    stream = engine.answer(cache, _rand(5, 18), max_new_tokens=3,
                           ranges=[[(40, 70), (250, 255)]])
    list(stream)
    attn = stream.attention
    assert attn.cand_block.tolist() == [2, 3, 4, 15] and attn.plan.n_select == 4
    mass = stream.attribution.per_cache[0]
    outside = torch.ones(300, dtype=torch.bool)
    outside[:16] = False                                   # the sink block
    outside[32:80] = outside[240:256] = False              # the candidate blocks
    assert mass[outside].sum() == 0 and mass[~outside].sum() > 0
    with pytest.raises(ValueError, match="range lists"):
        engine.answer(cache, [1], 1, ranges=[None, None])


def test_foreign_token_ids_are_refused_clearly(tiny_qwen, tmp_path):
    _, model = tiny_qwen
    engine = _engine(model, tmp_path, budget=64)
    with pytest.raises(ValueError, match="outside the model's vocabulary of 300"):
        engine.prefill_document([1, 2, 5000])
    cache = engine.prefill_document([1, 2, 3])
    with pytest.raises(ValueError, match="prompt has 1 token ids outside"):
        engine.answer(cache, [1, -4])


def test_attribution_points_at_the_attended_tokens(tiny_qwen, tmp_path):
    _, model = tiny_qwen
    engine = _engine(model, tmp_path, budget=EVERYTHING)
    doc = _rand(96, 14)
    cache = engine.prefill_document(doc)
    stream = engine.answer(cache, _rand(6, 15), max_new_tokens=4)
    list(stream)
    attr = stream.attribution
    mass = attr.per_cache[0]
    assert mass.shape == (96,) and (mass >= 0).all() and mass[:4].sum() == 0   # sink skipped
    # 3 decode steps x 2 layers x 4 heads, each distributing 1 over document + local tokens
    assert 0 < attr.total() <= 3 * 2 * 4 + 1e-6
    halves = attr.ranges([(0, 0, 48), (0, 48, 96)])
    assert abs(sum(halves) - attr.total()) < 1e-9


def test_unselected_blocks_as_mean_keys_restore_their_share():
    """`unselected="mean"` attends every block left out as one key (its mean
    key, its mean value, weighted by its token count). Where a block's keys
    are all equal (here zero) that summary is exact, so the sparse output
    equals attention over every block; dropping the blocks does not."""
    from engine.sparse.attention import SparseAttention
    from engine.sparse.kv_build import random_cache
    from engine.sparse.kvstore import KVLayout

    cfg = from_transformers(tiny_hf("qwen2")).cfg
    layout = KVLayout(tokens=150, block_size=16, layers=cfg.n_layers,
                      kv_heads=cfg.n_kv_heads, head_dim=cfg.head_dim, dtype="float32")
    cache = random_cache(None, layout, placement="pinned", seed=5)
    for layer in range(layout.layers):
        cache.keys[layer][:, 1:] = 0.0                   # every candidate block: zero keys
        for rep in (cache.reps.kmin, cache.reps.kmax, cache.reps.kmean):
            rep[layer][:, 1:] = 0.0
    gen = torch.Generator().manual_seed(6)
    T = 5
    q = torch.randn(T, cfg.n_heads, cfg.head_dim, generator=gen)
    k, v = (torch.randn(T, cfg.n_kv_heads, cfg.head_dim, generator=gen) for _ in range(2))

    def run(budget, unselected):
        attn = SparseAttention(cfg, [cache], SparseConfig(
            budget_tokens=budget, unselected=unselected, question_scoring="selector"),
            local_max=T)
        return attn(0, q, k, v), attn

    every, _ = run(EVERYTHING, "drop")
    mean, attn = run(32, "mean")
    drop, _ = run(32, "drop")
    assert attn.plan.n_select == 2 and not attn.plan.everything
    torch.testing.assert_close(mean, every, atol=1e-5, rtol=1e-5)
    assert (drop - every).abs().max() > 1e-2
    torch.testing.assert_close(run(EVERYTHING, "mean")[0], every)   # nothing left out
    cache.reps.vmean = None     # a cache built before mean values were stored
    torch.testing.assert_close(run(32, "mean")[0], mean)
    with pytest.raises(ValueError, match="unselected"):
        SparseConfig(unselected="sum")


def test_left_out_blocks_are_dropped_past_the_window(tmp_path):
    """Summaries sit at their blocks' own positions; past the window the
    blocks are packed into slots, there is no such place, and the blocks
    left out are dropped (summaries brought back dense's failure there)."""
    from engine.sparse.attention import SparseAttention

    model = from_transformers(tiny_hf("qwen2", window=128))
    cache = _engine(model, tmp_path, budget=2048).prefill_document(_rand(400, 11))
    past = SparseAttention(model.cfg, [cache], SparseConfig(budget_tokens=48), local_max=9)
    assert not past.plan.original and not past.summarises()
    inside = SparseAttention(model.cfg, [cache], SparseConfig(budget_tokens=48),
                             local_max=9, ranges=[[(0, 100)]])   # 6 candidates fit the window
    assert inside.plan.original and inside.summarises()
    sel = torch.tensor([[1], [4]])          # one selected block per head
    keys, _, bias = inside.summary_kv(1, sel)
    for h, c in ((0, 0), (1, 2)):           # at the block's own (candidate) position
        pos, b = int(inside.cand_pos[c]), int(inside.cand_block[c])
        cos, sin = rope_cos_sin(torch.arange(pos, pos + 16), model.cfg.head_dim,
                                model.cfg.rope_theta)
        want = apply_rope(cache.keys[1][h, b].float(), cos, sin).mean(0)
        torch.testing.assert_close(keys[h, c], want, atol=1e-4, rtol=1e-4)
    assert bias[0, 1] == float("-inf") and bias[1, 4] == float("-inf")
    assert torch.isfinite(bias).sum() == 2 * (len(inside.cand_block) - 1)


def test_past_the_window_the_filter_runs_once_per_window_of_candidates(tmp_path):
    """A document 3x the window: the filter pass runs over runs of candidates
    that each fit the window at their own positions, their masses ranked
    together pick one set of blocks for every layer; the planted needle's
    block is among them, and each run's mass is that run's own filter pass."""
    from engine.sparse.attention import SparseAttention
    from engine.sparse.question_pick import question_forward

    window = 128
    model = _needle_model(window)
    doc = [t if t != 299 else 1 for t in _rand(400, 10)]
    doc[250] = 299
    engine = _engine(model, tmp_path, budget=32)
    cache = engine.prefill_document(doc)
    config = SparseConfig(budget_tokens=32, filter_depth=0.0, spill_tokens=0,
                          far_filter="windows", lexical_weight=0.0)     # the mass alone
    question = [299, 7, 8]
    attn = SparseAttention(model.cfg, [cache], config, local_max=len(question) + 2)
    assert not attn.plan.original and attn.plan.n_select == 2
    with torch.no_grad():
        question_forward(model, torch.tensor(question), attn)
    picks = attn.question_picks
    assert len(picks) == model.cfg.n_layers
    assert all(torch.equal(p, picks[0]) for p in picks.values())
    needle = 250 // 16 - 1                         # candidate ids skip the sink block
    assert needle in picks[0][0].tolist()
    # the runs: 24 candidates, at most (128 - 16 - 5) // 16 = 6 per window -> 4 runs of 6
    n = len(attn.cand_block)
    masses = []
    for a in range(0, n, 6):
        run = SparseAttention(model.cfg, [cache], config, local_max=len(question) + 2,
                              ranges=[[(int(b) * 16, int(b) * 16 + 16)
                                       for b in attn.cand_block[a:a + 6]]])
        assert run.plan.original and run.plan.max_distance(len(question) + 2) < window
        run.filtering = True
        with torch.no_grad():
            model(torch.tensor(question), run, stop_after=run.filter_layer)
        masses.append(run.filter_mass)
    mass = torch.cat(masses)
    assert torch.equal(picks[0][0], mass.topk(2).indices)
    # "unrotated" (the default) scores every candidate at once, before RoPE
    before = SparseAttention(model.cfg, [cache], SparseConfig(
        budget_tokens=32, filter_depth=0.0, spill_tokens=0), local_max=len(question) + 2)
    with torch.no_grad():
        question_forward(model, torch.tensor(question), before)
    assert before.question_picks[0].shape == picks[0].shape
    with pytest.raises(ValueError, match="far_filter"):
        SparseConfig(far_filter="nearest")


def test_past_the_window_score_order_puts_the_best_block_nearest_the_question(tmp_path):
    """far_order="score": the filter's picks sit in the slots after the sinks
    from worst to best, so the best block (with the blocks that follow it in
    the document) is the one next to the question; the attention rotates
    each picked block's keys at exactly its slot."""
    from engine.sparse.attention import SparseAttention, score_order_runs
    from engine.sparse.question_pick import question_forward

    model = _needle_model(128)
    doc = [t if t != 299 else 1 for t in _rand(400, 10)]
    doc[200] = 299
    cache = _engine(model, tmp_path, budget=64).prefill_document(doc)
    question = [299, 7, 8]
    runs = {}
    for order in ("document", "score"):
        attn = SparseAttention(model.cfg, [cache], SparseConfig(
            budget_tokens=64, filter_depth=0.0, far_order=order, lexical_weight=0.0),
            local_max=len(question) + 2)          # the mass's own order (lexical: its tests)
        with torch.no_grad():
            logits = question_forward(model, torch.tensor(question), attn)
        runs[order] = (attn, logits)
    doc_order, by_score = runs["document"][0], runs["score"][0]
    assert doc_order.slot_pos is None
    ranked = by_score.question_picks[0][0]               # best first
    assert torch.equal(ranked, doc_order.question_picks[0][0])      # the same pick
    S, B = by_score.plan.sink_tokens, 16
    order = score_order_runs(ranked.tolist(), by_score._adjacent.tolist())
    assert by_score.slot_pos[order].tolist() == [S + B * j for j in range(4)]
    best = order.index(int(ranked[0]))                   # its run fills the last slots
    assert order[best:] == list(range(int(ranked[0]), order[-1] + 1))
    assert by_score.slot_pos[order[-1]] + B == by_score.plan.local_start
    # here the slots are not in document order, hence the logits differ
    assert order != sorted(order)
    assert not torch.allclose(runs["score"][1], runs["document"][1])
    sel = ranked.sort().values.expand(model.cfg.n_kv_heads, 4)
    keys, _, _ = by_score._gather(1, sel, values=False)
    rotated = by_score._rotate(keys, sel)
    for j, c in enumerate(sel[0].tolist()):
        pos = int(by_score.slot_pos[c])
        cos, sin = rope_cos_sin(torch.arange(pos, pos + B), model.cfg.head_dim,
                                model.cfg.rope_theta)
        want = apply_rope(keys[:, j * B:(j + 1) * B], cos, sin)
        torch.testing.assert_close(rotated[:, j * B:(j + 1) * B], want)
    # blocks that may move while decoding keep document order
    moving = SparseAttention(model.cfg, [cache], SparseConfig(
        budget_tokens=48, filter_depth=0.0, pin_fraction=0.5), local_max=len(question) + 2)
    with torch.no_grad():
        question_forward(model, torch.tensor(question), moving)
    assert moving.slot_pos is None
    with pytest.raises(ValueError, match="far_order"):
        SparseConfig(far_order="best")


def test_score_order_keeps_neighbouring_blocks_together_in_document_order():
    """Runs of picked blocks that follow each other in the document keep
    their order and stay side by side; the runs go from worst to best."""
    from engine.sparse.attention import score_order_runs

    adjacent = [True] * 9
    adjacent[4] = False                       # candidate 5 does not follow 4
    # 6 is best, 5 right before it; 3 and 4 form a run ranked by 3 (2nd)
    assert score_order_runs([6, 3, 5, 8, 4], adjacent) == [8, 3, 4, 5, 6]
    # 4 and 5 are neighbours in the list but not in the document: apart
    assert score_order_runs([4, 5], adjacent) == [5, 4]
    assert score_order_runs([2, 1, 0], adjacent) == [0, 1, 2]
    assert score_order_runs([7], adjacent) == [7]
