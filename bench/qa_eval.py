"""Question answering over a JSONL QA set: Folio's pipeline beside a plain
baseline, in one run, same model, same library.

    python bench/qa_eval.py                                 # ../shared/eval/dev.jsonl
    python bench/qa_eval.py --limit 5 --model tiny.gguf     # a quick look
    python bench/qa_eval.py --ablate                        # each selection step switched off
    python bench/qa_eval.py --retrieval-only --context 800  # selection only: no model, no answers

Modes:
  folio     hybrid search -> the default selection pipeline -> span-aligned citations
  baseline  top-k dense chunks in a fixed budget, no pruning, citations are
            the model's own [n] markers (what common local RAG apps do)
  -<step>   (with --ablate) folio without that selection step; -places:
            without the cited definition named at the end of a where-answer
  +prune    folio with sentence pruning added after diversify, where it
            stood before the default left it out
  sparse    (with --sparse-model) folio's selection answered by the sparse
            engine over cached document KV instead of llama.cpp: the
            selector's candidates (`--sparse-context` tokens) are attended
            sparsely, the citation step is folio's

Metrics follow the set's README: retrieval hit (gold page / lines inside the
selected context; code: the selected lines cover the gold lines), answer
accuracy (normalised containment; unanswerable items must be declined),
citation accuracy (a cited span on the gold page / overlapping the gold
lines), time to first token, total time, context tokens (scored in
qa_scoring.py). Beside retrieval hit, a stricter measure of our own:
evidence hit, the gold evidence quote itself inside the text the model was
shown (a page can be selected and its answering sentence pruned away).

`--retrieval-only` runs the first half of every answer exactly as `folio
ask` does (`Answerer.retrieve`: the same budget logic, search and selection
pipeline) and scores retrieval hit alone. Only the model's tokenizer is read
(llama.cpp `vocab_only`, so budgets are counted in the model's own tokens);
no weights are loaded and nothing is generated. Without `--context` the
budget adapts as in a real run, from the prefill speed measured once for
this model and machine (`machine.json` in the home); real runs move it with
each answer's measured speed, which this mode cannot (it prefills nothing).
Each row also says where search ranked the gold passage (`search_rank`,
among the candidates the pipeline starts from), so a miss reads either as
"never retrieved" or "retrieved, then not selected".
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

# the scoring (contains and answer_found are also read from here by qa_recite.py and the tests)
from bench.qa_scoring import (  # noqa: E402,F401
    answer_found, contains, evidence_hit, evidence_share, gold_in_segment, retrieval_hit,
    score_item, summarize)


def load_items(path: Path, limit: int | None, ids: list[str] | None) -> list[dict]:
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if ids:
        items = [i for i in items if i["id"] in ids]
    return items[:limit] if limit else items


def ingest_all(settings, db, shared: Path, docs: list[str]) -> dict[str, int]:
    """Ingest (or find) every document of the set; embed them; doc -> id."""
    from engine.embed_worker import embed_pending
    from engine.embedder import Embedder
    from engine.indexer import ingest_paths
    from storage import documents

    ids: dict[str, int] = {}
    todo = []
    for doc in docs:
        found = documents.find_by_path(db, (shared / doc).resolve())
        if found and found.status != "error":
            ids[doc] = found.id
        else:
            todo.append(doc)
    if todo:
        started = time.perf_counter()
        report = ingest_paths(db, [shared / d for d in todo], config=settings.ingest_config())
        for outcome in report.outcomes:
            if outcome.status == "error":
                raise SystemExit(f"could not ingest {outcome.path}: {outcome.message}")
        print(f"ingested {len(todo)} documents in {time.perf_counter() - started:.0f} s",
              flush=True)
    for doc in todo:
        ids[doc] = documents.find_by_path(db, (shared / doc).resolve()).id
    started = time.perf_counter()
    embedder = Embedder(settings.embedder_config())
    done = embed_pending(db, embedder)
    if done:
        print(f"embedded {done} segments in {time.perf_counter() - started:.0f} s", flush=True)
    return ids


def build(settings, db, backend, mode: str, budget: int | None):
    from app.assistant import build_answerer
    from engine.cite import MarkerCiter
    from engine.select import baseline_pipeline, default_pipeline

    if mode == "baseline":
        answerer = build_answerer(settings, db, backend, pipeline=baseline_pipeline(),
                                  context_tokens=budget)
        answerer.citer = MarkerCiter()
        answerer.config.name_code_places = False     # as common local RAG apps answer
        answerer.config.contrast = False             # plain greedy decoding, likewise
        answerer.config.go_on = False                # a restated question is declined
        return answerer
    pipeline = default_pipeline(sentence_pruning=mode == "+prune")
    off = set(mode[1:].split("+")) if mode.startswith("-") else set()  # "-prune", "-rerank+prune"
    answer_side = {"places", "contrast", "go_on"}
    if off - answer_side:
        pipeline = pipeline.without(*(off - answer_side))
    answerer = build_answerer(settings, db, backend, pipeline=pipeline, context_tokens=budget)
    # "-places": without the cited definition's name ending a where-answer (locate.py);
    # "-contrast": plain greedy decoding instead of context-aware (backends/contrast.py)
    answerer.config.name_code_places = "places" not in off
    answerer.config.contrast = "contrast" not in off
    # "-go_on": an answer that only restates the question is declined, not continued
    answerer.config.go_on = "go_on" not in off
    return answerer


def load_token_counter(settings, model: Path | None):
    """The answer model's tokenizer and chat template without its weights
    (llama.cpp `vocab_only`): budgets and packing count exactly the tokens a
    real run counts, and nothing can be generated."""
    from engine.backends import BackendConfig
    from engine.backends.base import ModelInfo
    from engine.backends.gguf_header import read_gguf_header
    from engine.backends.llama_cpp import LlamaCppBackend
    from engine.backends.llama_fit import choose_n_ctx
    from engine.model_files import default_model_path
    from llama_cpp import Llama

    path = Path(model or settings.model or default_model_path(settings.models_dir))
    if path.is_dir():
        raise SystemExit(f"--retrieval-only counts tokens with a GGUF file; {path} is a folder")
    header = read_gguf_header(path)
    config = BackendConfig(device=settings.device)
    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    info = ModelInfo(path=path, name=header.name, backend="llama.cpp",
                     n_ctx=choose_n_ctx(header, config), n_ctx_train=header.context_length,
                     file_size=header.file_size)

    class TokenCounter(LlamaCppBackend):
        def stream(self, *args, **kwargs):
            raise RuntimeError("--retrieval-only loaded the tokenizer alone: nothing to generate")

    return TokenCounter(llm, info, config)


def check_adaptive_budget(settings, backend) -> float:
    """The prefill speed the adaptive budget follows, as stored for this model
    on this machine; measuring it needs the weights, so without a stored
    value retrieval-only asks for a fixed --context."""
    from app.machine_speeds import prefill_key, stored_prefill_rate

    key = prefill_key(backend.info)
    rate = stored_prefill_rate(settings.home / "machine.json", key)
    if not rate:
        raise SystemExit(f"no measured prefill speed for {key} in {settings.home / 'machine.json'}:"
                         " run one answer with this home first, or pass --context N")
    return float(rate)


def retrieve_item(answerer, item: dict, doc_id: int) -> dict:
    """Select the context for one item as `ask` would, and score it."""
    from engine.answer_events import source_usage
    from engine.prompts import clean_question
    from engine.qa import search_query_for

    started = time.perf_counter()
    question = clean_question(item["question"], answerer.config.max_question_chars)
    query = search_query_for(question, [])
    budget, selection = answerer.retrieve(question, query, [doc_id])
    elapsed = time.perf_counter() - started
    sources = [source_usage(s) for s in selection.sources]
    hits = answerer.searcher.search(query, k=answerer.config.candidates, document_ids=[doc_id])
    rank = next((n for n, h in enumerate(hits, 1) if gold_in_segment(item, h.segment)), None)
    answerable = item["answer"] != "UNANSWERABLE"
    return {"id": item["id"], "type": item["type"], "doc": item["doc"],
            "retrieval_hit": retrieval_hit(item, sources) if answerable else None,
            "evidence_hit": evidence_hit(item, sources) if answerable else None,
            "search_rank": rank, "budget": budget, "context_tokens": selection.used_tokens,
            "sources": len(sources), "select_s": round(elapsed, 3),
            "selected": [{"pages": s.pages, "lines": s.line_ranges, "tokens": s.tokens}
                         for s in sources]}


def run_retrieval_only(args, items: list[dict]) -> None:
    from app.settings import Settings
    from engine.select import default_pipeline
    from storage import open_db

    home = args.home or Path(tempfile.mkdtemp(prefix="folio-qa-"))
    settings = Settings.load(home)
    db = open_db(settings.db_path)
    doc_ids = ingest_all(settings, db, args.shared, sorted({i["doc"] for i in items}))
    backend = load_token_counter(settings, args.model)
    if args.context is None:
        rate = check_adaptive_budget(settings, backend)
        print(f"adaptive budget from the stored prefill speed: {rate:.0f} tokens/s", flush=True)
    modes = args.modes.split(",")
    if args.ablate:
        modes += [f"-{step.name}" for step in default_pipeline().steps]
    answerers = {mode: build(settings, db, backend, mode, args.context) for mode in modes}
    for answerer in answerers.values():
        answerer.citer = None           # nothing is cited: make any use of it fail loudly
    rows: dict[str, list[dict]] = {mode: [] for mode in modes}
    for item in items:
        for mode in modes:
            row = retrieve_item(answerers[mode], item, doc_ids[item["doc"]])
            rows[mode].append(row)
            print(f"{item['id']} {mode:<10} hit={row['retrieval_hit']} "
                  f"search_rank={row['search_rank']} budget={row['budget']} "
                  f"ctx={row['context_tokens']} sources={row['sources']}", flush=True)
    summary = {}
    for mode in modes:
        scored = [r for r in rows[mode] if r["retrieval_hit"] is not None]
        summary[mode] = {
            "items": len(scored),
            "retrieval_hit": round(sum(r["retrieval_hit"] for r in scored) / len(scored), 3)
            if scored else None,
            "evidence_hit": round(sum(r["evidence_hit"] for r in scored) / len(scored), 3)
            if scored else None,
            "misses": [r["id"] for r in scored if not r["retrieval_hit"]],
            "mean_budget": round(statistics.mean(r["budget"] for r in rows[mode])) if rows[mode] else None,
            "mean_context_tokens": round(statistics.mean(r["context_tokens"] for r in rows[mode]))
            if rows[mode] else None,
            "median_select_s": round(statistics.median(r["select_s"] for r in rows[mode]), 3)
            if rows[mode] else None,
        }
    print("\n| item | " + " | ".join(modes) + " |")
    print("|---" * (len(modes) + 1) + "|")
    for n, item in enumerate(items):
        if item["answer"] == "UNANSWERABLE":
            continue
        cells = []
        for mode in modes:
            row = rows[mode][n]
            cells.append(("hit" if row["retrieval_hit"] else "MISS")
                         + f" (rank {row['search_rank']})")
        print(f"| {item['id']} {item['type']} | " + " | ".join(cells) + " |")
    keys = ["items", "retrieval_hit", "evidence_hit", "mean_budget", "mean_context_tokens", "median_select_s",
            "misses"]
    print("\n| mode | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for mode in modes:
        print(f"| {mode} | " + " | ".join(
            ", ".join(v) if isinstance(v := summary[mode][k], list) else str(v) for k in keys) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": backend.info.name, "set": str(args.set),
                                    "retrieval_only": True, "context": args.context,
                                    "summary": summary, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, default=SHARED / "eval" / "dev.jsonl")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--home", type=Path, help="Data dir to reuse (default: a temp dir).")
    parser.add_argument("--model", type=Path, help="GGUF to answer with (default: bundled).")
    parser.add_argument("--modes", default="folio,baseline")
    parser.add_argument("--ablate", action="store_true", help="Also run folio without each step.")
    parser.add_argument("--context", type=int, help="Fixed source budget for every mode.")
    parser.add_argument("--sparse-model", type=Path,
                        help="Also answer with the sparse engine (a GGUF or HF folder): mode "
                             "'sparse', side by side with the others.")
    parser.add_argument("--sparse-context", type=int, default=4096,
                        help="Candidate tokens the sparse engine reads per question.")
    parser.add_argument("--sparse-weights", choices=["int8", "bfloat16", "float32"],
                        help="The sparse engine's weights (default: int8 on a CPU, bf16 on CUDA).")
    parser.add_argument("--sparse-budget", type=lambda v: [int(x) for x in v.split(",")],
                        default=[2048],
                        help="Tokens the sparse engine attends per KV head (0: every block, "
                             "i.e. dense attention over the candidates); several, comma-"
                             "separated, give one mode each (sparse-2048, sparse-all).")
    parser.add_argument("--sparse-framing", type=lambda v: v.split(","), default=["plain"],
                        help="How the sparse engine's question turn reads: plain, or restated "
                             "(the instructions again after the question); several, comma "
                             "separated, give one mode each.")
    parser.add_argument("--sparse-unselected", type=lambda v: v.split(","), default=["mean"],
                        help="The blocks the sparse engine leaves out: mean (attended as one "
                             "summary each) or drop; several, comma separated, give one mode "
                             "each.")
    parser.add_argument("--sparse-layout", type=lambda v: v.split(","), default=["packed"],
                        help="Inside the window the sparse engine's picked blocks keep their "
                             "positions (in-place) or are packed in score order as past it "
                             "(packed); several, comma separated, give one mode each.")
    parser.add_argument("--pack-order", default="document",
                        help="How folio orders its sources: document, score, or best-last (the "
                             "best next to the question); several, comma separated, give one "
                             "mode each.")
    parser.add_argument("--contrast-alpha", type=float,
                        help="Context-aware decoding weight for the llama.cpp answers (default: "
                             "the backend's); mode -contrast is the same run without it.")
    parser.add_argument("--target-ttft", type=lambda v: [float(x) for x in v.split(",")],
                        help="Time-to-first-token targets of the adaptive budget, side by side "
                             "(e.g. 8,9.5; default: QAConfig's).")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--ids", help="Comma-separated item ids.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "qa_eval.json")
    parser.add_argument("--retrieval-only", action="store_true",
                        help="Select the context for every item and score retrieval hit only: "
                             "the model's tokenizer is read, its weights are not.")
    args = parser.parse_args()
    if args.retrieval_only:
        if args.out == parser.get_default("out"):
            args.out = args.out.with_name("qa_retrieval.json")
        return run_retrieval_only(
            args, load_items(args.set, args.limit, args.ids.split(",") if args.ids else None))

    from app.assistant import load_answer_backend
    from app.settings import Settings
    from engine.qa import answer_once
    from engine.select import default_pipeline
    from storage import open_db

    items = load_items(args.set, args.limit, args.ids.split(",") if args.ids else None)
    home = args.home or Path(tempfile.mkdtemp(prefix="folio-qa-"))
    settings = Settings.load(home)
    db = open_db(settings.db_path)
    doc_ids = ingest_all(settings, db, args.shared, sorted({i["doc"] for i in items}))
    backend = load_answer_backend(settings, args.model)
    if args.contrast_alpha is not None and hasattr(backend, "config"):
        backend.config.contrast_alpha = args.contrast_alpha
    modes = [m for m in args.modes.split(",") if m]     # "" with --sparse-model: sparse alone
    if args.ablate:
        modes += [f"-{step.name}" for step in default_pipeline().steps] + ["-places"]
    answerers = {}
    orders = args.pack_order.split(",")
    for mode in list(modes):        # each folio mode once per order of its sources
        if mode == "baseline":      # keeps its own order: by rank
            answerers[mode] = build(settings, db, backend, mode, args.context)
            continue
        for order in orders:
            for target in args.target_ttft or [None]:
                name = mode + (f"-{order}" if len(orders) > 1 else "") + \
                    (f"-{target:g}s" if args.target_ttft and len(args.target_ttft) > 1 else "")
                answerers[name] = build(settings, db, backend, mode, args.context)
                answerers[name].pipeline.pack.order = order
                if target is not None:
                    answerers[name].config.target_ttft_s = target
    modes = list(answerers)
    if args.sparse_model:
        from engine.backends import BackendConfig, load_backend
        from engine.backends.sparse import SparseOptions
        from engine.sparse.attention import EVERYTHING

        # one engine per budget, framing and rule for left-out blocks, the same stored KV
        for budget, framing, unselected, layout in itertools.product(
                args.sparse_budget, args.sparse_framing, args.sparse_unselected,
                args.sparse_layout):
            sparse = load_backend(args.sparse_model, settings.models_dir, kind="sparse",
                                  config=BackendConfig(device=settings.device),
                                  sparse=SparseOptions(kv_root=settings.kv_dir,
                                                       mode=settings.sparse_mode,
                                                       budget_tokens=budget or EVERYTHING,
                                                       weights=args.sparse_weights,
                                                       framing=framing,
                                                       unselected=unselected,
                                                       layout=layout))
            mode = "sparse"
            if len(args.sparse_budget) > 1:
                mode += f"-{budget or 'all'}"
            if len(args.sparse_framing) > 1:
                mode += f"-{framing}"
            if len(args.sparse_unselected) > 1:
                mode += f"-{unselected}"
            if len(args.sparse_layout) > 1:
                mode += f"-{layout}"
            answerers[mode] = build(settings, db, sparse, "folio", args.sparse_context)
            modes.append(mode)
    rows: dict[str, list[dict]] = {mode: [] for mode in modes}
    for item in items:
        doc_id = doc_ids[item["doc"]]
        for mode in modes:      # side by side, item by item: the same machine state
            result = answer_once(answerers[mode], item["question"], document_ids=[doc_id])
            row = score_item(item, result, doc_id)
            rows[mode].append(row)
            mark = "ok " if row["answer_ok"] else "BAD"
            print(f"{item['id']} {mode:<10} {mark} hit={row['retrieval_hit']} "
                  f"evidence={row['evidence_hit']} cite={row['citation_ok']} ttft={row['ttft_s']:.1f}s "
                  f"ctx={row['context_tokens']}  {result.text[:90]!r}", flush=True)
    summary = {mode: summarize(rows[mode]) for mode in modes}
    keys = ["retrieval_hit", "evidence_hit", "answer_accuracy", "model_answer_accuracy",
            "citation_accuracy", "declined_unanswerable",
            "median_ttft_s", "median_total_s", "mean_context_tokens"]
    print("\n| mode | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for mode in modes:
        print(f"| {mode} | " + " | ".join(str(summary[mode][k]) for k in keys) + " |")
    if "baseline" in summary and "folio" in summary:
        ratios = {}
        for key in ("retrieval_hit", "answer_accuracy", "citation_accuracy"):
            base, ours = summary["baseline"][key], summary["folio"][key]
            ratios[key] = round(ours / base, 2) if base else None
        print(f"\nfolio / baseline: {ratios}")
        summary["ratios"] = ratios
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": backend.info.name, "set": str(args.set),
                                    "summary": summary, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
