"""The fixed-shape decode step (static_decode.py) computes what the engine's
decode path computes: same selections, same logits, same attribution; at an
"everything" budget both equal dense attention. CUDA-only parts skip."""
from __future__ import annotations

import pytest
import torch

from engine.sparse.attention import EVERYTHING, SparseAttention, SparseConfig
from engine.sparse.question_pick import question_forward
from engine.sparse.block_pool import empty_resident, fetch_blocks, refill, slot_ranks
from engine.sparse.generate import EngineConfig, SparseEngine
from engine.sparse.kvstore import PrefillConfig, open_cache
from engine.sparse.model import DenseAttention, from_transformers
from engine.sparse.static_decode import StaticConfig, StaticDecoder, greedy
from engine.sparse.static_ops import merge_parts, near_attention

from sparse_support import tiny_hf


def _rand(n, seed):
    return torch.randint(0, 300, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _cache(model, tmp_path, doc, dtype="float32"):
    engine = SparseEngine(model, "tiny", tmp_path, EngineConfig(
        prefill=PrefillConfig(block_size=16, chunk=32, dtype=dtype)))
    return engine.prefill_document(doc)


# (question scoring, pinned share, unselected blocks): hybrid with half pinned
# moves the selection while decoding, so the refill path runs; filter pins
# all of it; "filter-mean" also attends each left-out block as one summary
SCORING = {"hybrid": ("hybrid", 0.5, "drop"), "filter": ("filter", 1.0, "drop"),
           "filter-mean": ("filter", 1.0, "mean"), "hybrid-mean": ("hybrid", 0.5, "mean"),
           "filter-score": ("filter", 1.0, "drop", "score")}


def _attention(model, cache, budget, prompt, n_new, selector="quest", scoring="hybrid"):
    """A SparseAttention that has run the prompt; returns it and the logits."""
    how, pin, unselected, *order = SCORING[scoring]
    attn = SparseAttention(model.cfg, [cache], SparseConfig(budget_tokens=budget,
                                                            selector=selector,
                                                            question_scoring=how,
                                                            pin_fraction=pin,
                                                            unselected=unselected,
                                                            far_order=(order or ["document"])[0]),
                           local_max=len(prompt) + n_new)
    with torch.no_grad():
        logits = question_forward(model, torch.tensor(prompt, device=model.device), attn,
                                  last_only=True)
    attn.record = True              # as AnswerStream does for the answer's tokens
    return attn, logits


def _reference(model, cache, budget, prompt, n_new, selector="quest", feed=None,
               scoring="hybrid"):
    """Decode through SparseAttention, feeding `feed` (default: its greedy
    tokens); returns the tokens fed, logits and selections per step."""
    attn, logits = _attention(model, cache, budget, prompt, n_new, selector, scoring)
    fed, out, sels = [], [], []
    with torch.no_grad():
        for step in range(n_new):
            fed.append(int(logits[-1].argmax()) if feed is None else feed[step])
            logits = model(torch.tensor(fed[-1:], device=model.device), attn)
            out.append(logits[-1].clone())
            sels.append({i: s.clone() for i, s in attn.selections.items()})
    return fed, out, sels, attn


@pytest.mark.parametrize("kind,budget,selector,window,scoring", [
    ("qwen2", 32, "quest", 512, "hybrid"), ("llama", 48, "quest", 512, "hybrid"),
    ("llama", 32, "mean", 512, "hybrid"), ("qwen2", EVERYTHING, "quest", 512, "hybrid"),
    ("llama", 48, "quest", 128, "hybrid"),  # document past the window: reassigned positions
    ("llama", 48, "quest", 512, "filter"), ("llama", 48, "quest", 128, "filter"),
    ("llama", 48, "quest", 512, "filter-mean"), ("llama", 48, "quest", 128, "filter-mean"),
    ("llama", 48, "quest", 128, "filter-score")])   # past the window, slots in score order
def test_static_step_equals_sparse_decode(kind, budget, selector, window, scoring, tmp_path):
    model = from_transformers(tiny_hf(kind, seed=1, window=window))
    cache = _cache(model, tmp_path, _rand(300, 21))
    prompt, n_new = _rand(9, 22), 7
    # random tokens fed (a random model's greedy answer repeats itself), so
    # the selection moves and blocks are refetched
    fed, ref_logits, ref_sels, ref_attn = _reference(model, cache, budget, prompt, n_new,
                                                     selector, feed=_rand(n_new, 29),
                                                     scoring=scoring)
    attn, _ = _attention(model, cache, budget, prompt, n_new, selector, scoring)
    dec = StaticDecoder(model, attn, StaticConfig(graph=False))
    if window == 128:
        assert not attn.plan.everything and attn.plan.local_start < 300
    if scoring == "filter-mean":   # one summary per candidate block after the sink block,
        # while the blocks keep their positions (past the window: none)
        assert attn.summarises() is (window == 512)
        assert dec.layers[0].sink_k.shape[1] == 16 + (32 if window == 512 else 0)
    changed = 0
    for step, token in enumerate(fed):
        logits = dec.step(token)
        torch.testing.assert_close(logits, ref_logits[step], atol=1e-4, rtol=1e-4)
        for layer, sel in dec.selections().items():
            assert torch.equal(sel, ref_sels[step][layer]), (step, layer)
            if step and not torch.equal(sel, ref_sels[step - 1][layer]):
                changed += 1
    if budget != EVERYTHING and scoring.startswith("filter"):
        assert not changed, "every block is pinned: the selection may not move"
    elif budget != EVERYTHING:
        assert changed, "the selection never changed: the refill path went untested"
        assert 0 < int(dec.fetched) < n_new * model.cfg.n_layers * model.cfg.n_kv_heads * dec.k
    torch.testing.assert_close(attn.attribution().per_cache[0],
                               ref_attn.attribution().per_cache[0], atol=1e-6, rtol=1e-5)


def test_summaries_need_a_selection_that_cannot_move(tmp_path):
    """Left-out blocks' summaries are fixed biases in the step: with a
    selection that moves they are refused, and the engine decodes through
    its dynamic path instead."""
    model = from_transformers(tiny_hf("llama", seed=1))
    cache = _cache(model, tmp_path, _rand(300, 21))
    attn, _ = _attention(model, cache, 48, _rand(9, 22), 4, scoring="hybrid-mean")
    with pytest.raises(NotImplementedError, match="cannot move"):
        StaticDecoder(model, attn, StaticConfig(graph=False))
    engine = SparseEngine(model, "tiny", tmp_path, EngineConfig(static_decode="on"))
    with pytest.raises(ValueError, match="summaries only with every block pinned"):
        engine.uses_static(attn)


def test_everything_budget_equals_dense(tmp_path):
    model = from_transformers(tiny_hf("llama", seed=2))
    doc, prompt = _rand(150, 23), _rand(6, 24)
    cache = _cache(model, tmp_path, doc)
    attn, logits = _attention(model, cache, EVERYTHING, prompt, 5)
    assert attn.plan.everything
    dense = DenseAttention(model.cfg)
    with torch.no_grad():
        model(torch.tensor(doc + prompt), dense)
        dec = StaticDecoder(model, attn, StaticConfig(graph=False))
        token = int(logits[-1].argmax())
        for _ in range(5):
            want = model(torch.tensor([token]), dense)[-1]
            torch.testing.assert_close(dec.step(token), want, atol=1e-4, rtol=1e-4)
            token = int(want.argmax())


def test_greedy_feeds_its_own_tokens_and_bounds_the_window(tmp_path):
    model = from_transformers(tiny_hf("qwen2", seed=3))
    cache = _cache(model, tmp_path, _rand(200, 25), dtype="float16")
    prompt = _rand(5, 26)
    fed, _, _, _ = _reference(model, cache, 32, prompt, 4)
    attn, logits = _attention(model, cache, 32, prompt, 4)
    dec = StaticDecoder(model, attn, StaticConfig(graph=False))
    answer = list(greedy(dec, int(logits[-1].argmax()), 4))
    assert answer == fed[1:] + [int(dec.token)]
    with pytest.raises(ValueError, match="local window"):
        dec.step()
    attn, logits = _attention(model, cache, 32, prompt, 4)
    dec = StaticDecoder(model, attn, StaticConfig(graph=False))
    stop = answer[1]
    assert list(greedy(dec, int(logits[-1].argmax()), 4, stop_ids=[stop])) == \
        answer[:answer.index(stop) + 1]


def test_refill_keeps_resident_blocks_and_fetches_the_rest():
    gen = torch.Generator().manual_seed(0)
    H, k, n = 3, 5, 40
    host = torch.randn(H, n, 4, 8, generator=gen)
    pool = torch.zeros(H, k, 4, 8)
    pool_v = torch.zeros_like(pool)
    resident = empty_resident(H, k, "cpu")
    sel = None
    for step in range(12):
        if sel is None or step % 3 == 0:
            sel = torch.stack([torch.randperm(n, generator=gen)[:k] for _ in range(H)]).sort(-1).values
        else:               # a small change: one block swapped per head
            nxt = sel.clone()
            for h in range(H):
                fresh = [b for b in torch.randperm(n, generator=gen).tolist()
                         if b not in sel[h].tolist()][0]
                nxt[h, step % k] = fresh
            sel = nxt.sort(-1).values
        new, fetch = refill(resident, sel)
        kept = resident == new
        assert torch.equal(fetch, ~kept)
        assert torch.equal(new.sort(-1).values, sel)
        fetch_blocks(host, -host, pool, pool_v, new, fetch)
        resident = new
        rank = slot_ranks(sel, resident)
        assert torch.equal(sel.gather(-1, rank), resident)
        for h in range(H):
            torch.testing.assert_close(pool[h], host[h, resident[h]])
            torch.testing.assert_close(pool_v[h], -host[h, resident[h]])
        if step % 3:
            assert int(fetch.sum()) == H                          # only the swapped blocks


def test_blocks_move_only_when_the_question_does_not_pin_them_all(tmp_path):
    """Decoding fetches only when it can select blocks the question did not:
    with filter's full pin nothing moves (and by default the fetch is
    overlapped only then, where the fused kernels cannot run)."""
    model = from_transformers(tiny_hf("llama", seed=4))
    cache = _cache(model, tmp_path, _rand(300, 27))
    for scoring, moves in (("filter", False), ("hybrid", True)):
        attn, _ = _attention(model, cache, 32, _rand(7, 28), 4, scoring=scoring)
        dec = StaticDecoder(model, attn, StaticConfig(graph=False))
        assert dec.moves is moves
        assert dec._side is None                      # a CPU has no streams to overlap
    attn, _ = _attention(model, cache, EVERYTHING, _rand(7, 28), 4, scoring="hybrid")
    assert StaticDecoder(model, attn, StaticConfig(graph=False)).moves is False


@pytest.mark.parametrize("pool_valid", [2, 0])
def test_near_and_pool_merged_by_log_sum_exp_equal_one_softmax(pool_valid):
    """The overlapped step attends to sinks + local window first and to the
    fetched pool after; merging the two by log-sum-exp is one softmax over
    all of them (and a pool with no valid slot contributes nothing)."""
    g = torch.Generator().manual_seed(3)
    H, G, D, S, L, k, B = 2, 3, 8, 4, 6, 3, 4
    q = torch.randn(H, G, D, generator=g)
    sink_k, sink_v = torch.randn(H, S, D, generator=g), torch.randn(H, S, D, generator=g)
    local_k, local_v = torch.randn(H, L, D, generator=g), torch.randn(H, L, D, generator=g)
    pool_k, pool_v = torch.randn(H, k * B, D, generator=g), torch.randn(H, k * B, D, generator=g)
    sink_bias = torch.tensor([0.0, 0.0, 1.5, float("-inf")]).expand(H, S)  # summary, padding
    local_mask = (torch.arange(L) < 4)[None, None, :]
    slot_valid = torch.full((H, k), B)
    slot_valid[:, pool_valid:] = 0                      # slots past pool_valid are empty
    offsets = torch.arange(B)
    pool_mask = (offsets < slot_valid[..., None]).view(H, 1, k * B)
    pool_logits = (q @ pool_k.transpose(1, 2)).masked_fill(~pool_mask, float("-inf"))
    out_near, probs_near, lse_near = near_attention(q, sink_k, sink_v, sink_bias, local_k,
                                                    local_v, local_mask)
    slot_tok = torch.arange(k)[None, :].expand(H, k) * 100
    out, p_pool, sink_mass, tok, pool_mass = merge_parts(
        out_near, probs_near, lse_near, S, pool_logits, slot_valid, slot_tok, offsets, 999)
    out = out + p_pool @ pool_v
    logits = torch.cat([q @ sink_k.transpose(1, 2) + sink_bias[:, None, :],
                        pool_logits,
                        (q @ local_k.transpose(1, 2)).masked_fill(~local_mask, float("-inf"))], -1)
    p = torch.softmax(logits, -1)
    want = p @ torch.cat([sink_v, pool_v, local_v], 1)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(p_pool, p[..., S:S + k * B])
    torch.testing.assert_close(sink_mass, p[..., :S].sum(dim=(0, 1)).double())
    torch.testing.assert_close(pool_mass.sum(), p[..., S:S + k * B].sum().double())
    assert (tok == 999).sum() == H * (k - pool_valid) * B
    if not pool_valid:
        assert float(p_pool.abs().sum()) == 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_equals_eager_and_the_engine_from_pinned_memory(tmp_path):
    model = from_transformers(tiny_hf("llama", seed=4), device="cuda")
    doc, prompt = _rand(300, 27), _rand(7, 28)
    cpu_model = from_transformers(tiny_hf("llama", seed=4))
    engine = SparseEngine(cpu_model, "tiny", tmp_path, EngineConfig(
        prefill=PrefillConfig(block_size=16, chunk=32, dtype="float32")))
    cache = open_cache(engine.prefill_document(doc).path, device="cuda", placement="pinned")
    fed, ref_logits, _, _ = _reference(model, cache, 32, prompt, 6, feed=_rand(6, 30))
    runs = []
    # eager serial, graph serial, graph with the fetch overlapped on a side stream
    for graph, overlap in ((False, False), (True, False), (True, True)):
        attn, logits = _attention(model, cache, 32, prompt, 6)
        dec = StaticDecoder(model, attn, StaticConfig(graph=graph, overlap=overlap))
        assert (dec._side is not None) == overlap
        dec.capture()
        runs.append(torch.stack([dec.step(t).clone() for t in fed]))
    torch.testing.assert_close(runs[0], runs[1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(runs[1], runs[2], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(runs[2], torch.stack(ref_logits), atol=1e-4, rtol=1e-4)
    # pipelined greedy (read back one step behind) = the engine's greedy answer
    attn, logits = _attention(model, cache, 32, prompt, 7)
    first = token = int(logits[-1].argmax())
    want = []
    with torch.no_grad():
        for _ in range(5):
            token = int(model(torch.tensor([token], device="cuda"), attn)[-1].argmax())
            want.append(token)
    attn, logits = _attention(model, cache, 32, prompt, 7)
    dec = StaticDecoder(model, attn, StaticConfig(graph=True))
    dec.capture()
    assert list(greedy(dec, first, 5)) == want
