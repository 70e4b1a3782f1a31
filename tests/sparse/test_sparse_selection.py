"""Which blocks a question attends to, and where they sit: exact scoring of
the question's forward against dense attention's own mass, original
positions against a dense forward masked to the same blocks, the hybrid
pick, the shortlist and the pinning of the question's blocks while decoding."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.sparse.attention import SparseAttention, SparseConfig
from engine.sparse.question_pick import question_forward
from engine.sparse.exact_scoring import spill_to_neighbours
from engine.sparse.generate import EngineConfig, SparseEngine
from engine.sparse.kvstore import PrefillConfig
from engine.sparse.model import apply_rope, from_transformers, rope_cos_sin

from sparse_support import tiny_hf

B = 16          # block size of these tests


def _rand(n, seed):
    return torch.randint(0, 300, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _setup(tmp_path, *, doc_len=200, seed=21, kind="llama", **sparse):
    """Left-out blocks dropped unless asked: these tests compare with dense
    attention masked to the selected blocks."""
    sparse.setdefault("unselected", "drop")
    model = from_transformers(tiny_hf(kind, seed=seed))
    engine = SparseEngine(model, "tiny", tmp_path, EngineConfig(
        prefill=PrefillConfig(block_size=B, chunk=32, dtype="float32"),
        sparse=SparseConfig(**sparse)))
    doc = _rand(doc_len, seed)
    return model, engine, doc, engine.prefill_document(doc)


def _question_forward(model, engine, cache, question):
    attn = SparseAttention(model.cfg, [cache], engine.config.sparse, local_max=len(question))
    with torch.no_grad():
        logits = question_forward(model, torch.tensor(question), attn)
    return attn, logits


class _ReferenceDense:
    """Dense causal attention over document + question at the true positions;
    the question's rows may only see the document keys `allowed[layer]`
    [kv_heads, n_doc] (None: all), and their rotated q/k are recorded."""

    def __init__(self, cfg, n_doc, allowed=None):
        self.cfg, self.n_doc, self.allowed, self.seen = cfg, n_doc, allowed, {}

    def __call__(self, layer, q, k, v):
        c, T = self.cfg, q.shape[0]
        cos, sin = rope_cos_sin(torch.arange(T), c.head_dim, c.rope_theta)
        q = apply_rope(q.transpose(0, 1), cos, sin).float()          # [Hq, T, D]
        k = apply_rope(k.transpose(0, 1), cos, sin).float()          # [Hkv, T, D]
        v = v.transpose(0, 1).float()
        self.seen[layer] = (q, k)
        H, G = c.n_kv_heads, c.group
        mask = torch.ones(T, T, dtype=torch.bool).tril()[None].repeat(H, 1, 1)
        if self.allowed is not None and layer in self.allowed:      # else: every key
            mask[:, self.n_doc:, :self.n_doc] &= self.allowed[layer][:, None, :]
        mask = mask.repeat_interleave(G, 0)
        out = F.scaled_dot_product_attention(q, k.repeat_interleave(G, 0),
                                             v.repeat_interleave(G, 0), attn_mask=mask)
        return out.transpose(0, 1)


def _allowed(attn, n_doc):
    """Document keys the sparse question forward attended, per layer [kv_heads, n_doc]."""
    out = {}
    for layer, sel in attn.selections.items():
        keep = torch.zeros(sel.shape[0], n_doc, dtype=torch.bool)
        keep[:, :attn.sink_valid] = True
        for h in range(sel.shape[0]):
            for b in attn.cand_block[sel[h]].tolist():
                keep[h, b * B:(b + 1) * B] = True
        out[layer] = keep[:, :n_doc]
    return out


@pytest.mark.parametrize("scoring", ["exact", "selector", "hybrid", "filter"])
def test_selected_blocks_at_original_positions_equal_dense_masked_to_them(scoring, tmp_path):
    """With a budget of 4 of 12 candidate blocks, the sparse question forward
    is exactly dense attention whose question rows see only those blocks."""
    model, engine, doc, cache = _setup(tmp_path, budget_tokens=4 * B, question_scoring=scoring)
    question = _rand(10, 22)
    attn, sparse_logits = _question_forward(model, engine, cache, question)
    assert attn.plan.original and not attn.plan.everything and attn.plan.n_select == 4
    assert attn.plan.local_start == len(doc)
    ref = _ReferenceDense(model.cfg, len(doc), _allowed(attn, len(doc)))
    with torch.no_grad():
        dense = model(torch.tensor(doc + question), ref)[len(doc):]
    torch.testing.assert_close(sparse_logits, dense, atol=1e-4, rtol=1e-4)
    # and the restriction matters: unmasked dense differs
    with torch.no_grad():
        full = model(torch.tensor(doc + question), _ReferenceDense(model.cfg, len(doc)))
    assert (full[len(doc):] - dense).abs().max() > 1e-3


def _dense_block_mass(ref, layer, n_doc, group, last: int = 0):
    """Mass per document block of the question rows (its `last` tokens' only,
    if set), softmax over the document keys."""
    q, k = ref.seen[layer]
    qd = q[:, n_doc:]                                           # [Hq, T, D]
    qd = qd[:, -last:] if last else qd
    kd = k[:, :n_doc].repeat_interleave(group, 0)
    p = torch.softmax(qd @ kd.transpose(1, 2) * q.shape[-1] ** -0.5, dim=-1)
    H = k.shape[0]
    return p.view(H, group, -1, n_doc).sum(dim=(1, 2)).view(H, -1, B).sum(-1)   # [H, blocks]


def test_exact_scoring_picks_dense_attentions_heaviest_blocks(tmp_path):
    model, engine, doc, cache = _setup(tmp_path, doc_len=192, budget_tokens=3 * B,
                                       question_scoring="exact", spill_tokens=0)
    question = _rand(8, 23)
    attn, _ = _question_forward(model, engine, cache, question)
    # the same hidden states as the sparse forward (its later layers follow
    # from the blocks the earlier ones attended), mass over every block
    ref = _ReferenceDense(model.cfg, len(doc), _allowed(attn, len(doc)))
    with torch.no_grad():
        model(torch.tensor(doc + question), ref)
    for layer in range(model.cfg.n_layers):
        mass = _dense_block_mass(ref, layer, len(doc), model.cfg.group)[:, 1:]   # after the sink
        expected = mass.topk(3, dim=-1).indices
        assert torch.equal(attn.question_picks[layer], expected), layer

    # a shortlist of 5 blocks: the exact pick is the best of the selector's 5
    # (layer 0, whose queries do not depend on what was attended)
    engine.config.sparse.exact_max_tokens = 5 * B
    attn, _ = _question_forward(model, engine, cache, question)
    plain = SparseAttention(model.cfg, [cache], SparseConfig(budget_tokens=5 * B,
                                                             question_scoring="selector",
                                                             unselected="drop"),
                            local_max=len(question))
    with torch.no_grad():
        model(torch.tensor(question), plain)
    for layer in [0]:
        short = plain.question_picks[layer]
        mass = _dense_block_mass(ref, layer, len(doc), model.cfg.group)[:, 1:]
        best = short.gather(1, mass.gather(1, short).topk(3, dim=-1).indices)
        assert torch.equal(attn.question_picks[layer], best), layer


def test_hybrid_takes_the_exact_best_and_the_selectors_best(tmp_path):
    model, engine, doc, cache = _setup(tmp_path, budget_tokens=4 * B, question_scoring="exact")
    question = _rand(9, 24)
    picks = {}
    for how in ("exact", "selector", "hybrid"):
        engine.config.sparse.question_scoring = how
        attn, _ = _question_forward(model, engine, cache, question)
        picks[how] = attn.question_picks
    for layer, hybrid in picks["hybrid"].items():
        exact, selector = picks["exact"][layer], picks["selector"][layer]
        assert torch.equal(hybrid[:, 0::2], exact[:, :2])
        for h in range(hybrid.shape[0]):
            rest = [b for b in selector[h].tolist() if b not in exact[h, :2].tolist()][:2]
            assert hybrid[h, 1::2].tolist() == rest


@pytest.mark.parametrize("pin", [0.5, 1.0])
def test_decoding_keeps_the_questions_pinned_blocks(pin, tmp_path):
    model, engine, doc, cache = _setup(tmp_path, doc_len=300, budget_tokens=4 * B,
                                       pin_fraction=pin)
    stream = engine.answer(cache, _rand(7, 25), max_new_tokens=6)
    seen = []
    for _ in stream:
        seen.append({layer: s.clone() for layer, s in stream.attention.selections.items()})
    attn, n_pin = stream.attention, round(4 * pin)
    assert len(seen) == 6
    for step in seen[1:]:
        for layer, sel in step.items():
            pinned = attn.question_picks[layer][:, :n_pin]
            assert all(set(pinned[h].tolist()) <= set(sel[h].tolist()) for h in range(len(sel)))
            if pin == 1.0:
                assert torch.equal(sel, attn.question_picks[layer].sort(dim=-1).values)


def test_bad_selection_settings_are_refused():
    with pytest.raises(ValueError, match="positions"):
        SparseConfig(positions="nearby")
    with pytest.raises(ValueError, match="question_scoring"):
        SparseConfig(question_scoring="oracle")
    with pytest.raises(ValueError, match="pin_fraction"):
        SparseConfig(pin_fraction=1.5)
    with pytest.raises(ValueError, match="filter_rows"):
        SparseConfig(filter_rows=-1)


@pytest.mark.parametrize("budget", [4 * B, 1 << 40])
def test_answers_through_the_static_step_equal_the_dynamic_path(budget, tmp_path):
    """The engine hands decoding to the fixed-shape step (on a GPU by default;
    forced here on the CPU): same tokens, same attribution."""
    model, engine, doc, cache = _setup(tmp_path, doc_len=300, budget_tokens=budget)
    question = _rand(7, 26)
    runs = {}
    for how in ("off", "on"):
        engine.config.static_decode = how
        stream = engine.answer(cache, question, max_new_tokens=6)
        runs[how] = (list(stream), stream.attribution.per_cache[0], stream.stats)
    assert runs["on"][0] == runs["off"][0] and len(runs["on"][0]) == 6
    torch.testing.assert_close(runs["on"][1], runs["off"][1], atol=1e-5, rtol=1e-4)
    assert runs["on"][2].generated == 6 and len(runs["on"][2].decode_s) == 5
    with pytest.raises(ValueError, match="static_decode"):
        EngineConfig(static_decode="sometimes")


def test_spill_counts_the_neighbours_nearest_tokens_only_across_true_neighbours():
    """A block's score adds the `edge` tokens of the blocks next to it, when
    they follow each other in the document; the far tokens do not count."""
    tm = torch.zeros(1, 4 * 8)
    tm[0, 7] = 5.0          # last token of block 0: spills into block 1
    tm[0, 8 + 4] = 1.0      # middle of block 1: no spill (edge 2)
    tm[0, 16] = 3.0         # first token of block 2: block 1 is not its neighbour
    tm[0, 23] = 2.0         # last token of block 2: spills into block 3
    adjacent = torch.tensor([True, False, True])        # block 2 does not follow block 1
    out = spill_to_neighbours(tm, 8, 2, adjacent)
    assert out.tolist() == [[5.0, 1.0 + 5.0, 5.0, 2.0]]
    assert spill_to_neighbours(tm, 8, 0, adjacent).tolist() == [[5.0, 1.0, 5.0, 0.0]]


def test_spill_brings_the_block_after_a_hot_block_edge(tmp_path):
    """With spill, a block whose last tokens draw the question's attention
    pulls in the block after it, so a fact cut at the edge comes whole."""
    model, engine, doc, cache = _setup(tmp_path, doc_len=192, budget_tokens=4 * B,
                                       question_scoring="exact", spill_tokens=B)
    question = _rand(8, 23)
    attn, _ = _question_forward(model, engine, cache, question)
    plain = SparseAttention(model.cfg, [cache], SparseConfig(budget_tokens=4 * B,
                                                             question_scoring="exact",
                                                             spill_tokens=0,
                                                             unselected="drop"),
                            local_max=len(question))
    with torch.no_grad():
        question_forward(model, torch.tensor(question), plain)
    # with edge = a whole block, a block's score is its mass plus both
    # neighbours': picks favour runs of adjacent blocks
    def runs(picks):
        ids = sorted(picks.tolist())
        return sum(b - a == 1 for a, b in zip(ids, ids[1:]))
    spilled = sum(runs(attn.question_picks[i][h]) for i in attn.question_picks
                  for h in range(model.cfg.n_kv_heads))
    plain_runs = sum(runs(plain.question_picks[i][h]) for i in plain.question_picks
                     for h in range(model.cfg.n_kv_heads))
    assert spilled > plain_runs


@pytest.mark.parametrize("rows", [0, 2])
def test_filter_picks_one_set_of_blocks_from_the_filter_layer_for_every_layer(rows, tmp_path):
    """GemFilter-style: the first pass stops at the filter layer, whose exact
    mass summed over heads (of every question token, or of the last `rows`)
    picks one set of blocks; the question's real pass and the pinned decode
    use it in every layer and head."""
    model, engine, doc, cache = _setup(tmp_path, doc_len=192, budget_tokens=3 * B,
                                       question_scoring="filter", spill_tokens=0,
                                       pin_fraction=1.0, filter_depth=0.5, filter_rows=rows)
    question = _rand(8, 23)
    attn = SparseAttention(model.cfg, [cache], engine.config.sparse, local_max=len(question) + 1)
    with torch.no_grad():
        question_forward(model, torch.tensor(question), attn)
    L, H = model.cfg.n_layers, model.cfg.n_kv_heads
    assert attn.filter_layer == L // 2
    picks = {i: attn.question_picks[i] for i in range(L)}
    first = picks[0]
    assert all(torch.equal(p, first) for p in picks.values())
    assert all(torch.equal(first[h], first[0]) for h in range(H))
    # the pick is the filter layer's heaviest blocks, with the hidden states of
    # the filter pass (the selector's picks below the filter layer)
    probe = SparseAttention(model.cfg, [cache], SparseConfig(budget_tokens=3 * B,
                                                             question_scoring="selector",
                                                             unselected="drop"),
                            local_max=len(question))
    with torch.no_grad():
        model(torch.tensor(question), probe, stop_after=attn.filter_layer - 1)
    allowed = _allowed(probe, len(doc))
    ref = _ReferenceDense(model.cfg, len(doc), allowed)
    with torch.no_grad():
        model(torch.tensor(doc + question), ref, stop_after=attn.filter_layer)
    mass = _dense_block_mass(ref, attn.filter_layer, len(doc), model.cfg.group, rows)[:, 1:]
    expected = mass.sum(0).topk(3).indices
    assert torch.equal(first[0], expected)
    # every layer of the real pass attended exactly those blocks
    assert all(torch.equal(attn.selections[i], first.sort(-1).values) for i in range(L))
    # and decoding with all blocks pinned keeps them
    with torch.no_grad():
        model(torch.tensor([5]), attn)
    assert all(torch.equal(attn.selections[i], first.sort(-1).values) for i in range(L))


def test_filter_at_the_everything_budget_is_dense(tmp_path):
    model, engine, doc, cache = _setup(tmp_path, doc_len=96, budget_tokens=1 << 40,
                                       question_scoring="filter")
    question = _rand(6, 9)
    attn, sparse_logits = _question_forward(model, engine, cache, question)
    with torch.no_grad():
        dense = model(torch.tensor(doc + question), _ReferenceDense(model.cfg, len(doc)))
    torch.testing.assert_close(sparse_logits, dense[len(doc):], atol=1e-4, rtol=1e-4)
