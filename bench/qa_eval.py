"""Question answering over a JSONL QA set: Folio's pipeline beside a plain
baseline, in one run, same model, same library.

    python bench/qa_eval.py                                 # ../shared/eval/dev.jsonl
    python bench/qa_eval.py --limit 5 --model tiny.gguf     # a quick look
    python bench/qa_eval.py --ablate                        # each selection step switched off

Modes:
  folio     hybrid search -> the default selection pipeline -> span-aligned citations
  baseline  top-k dense chunks in a fixed budget, no pruning, citations are
            the model's own [n] markers (what common local RAG apps do)
  -<step>   (with --ablate) folio without that selection step

Metrics follow the set's README: retrieval hit (gold page / lines inside the
selected context; code: the selected lines cover the gold lines), answer
accuracy (normalised containment; unanswerable items must be declined),
citation accuracy (a cited span on the gold page / overlapping the gold
lines), time to first token, total time, context tokens.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

_TRANS = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u2032": "'", "\u201c": '"', "\u201d": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u00a0": " ",
})


def loose(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_TRANS).casefold()
    return re.sub(r"\s+", " ", text).strip()


def alnum(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^0-9a-z]+", " ", loose(text))).strip()


def contains(haystack: str, needle: str) -> bool:
    """The set's containment rule (README: NFKC, casefold, ASCII quotes)."""
    if not needle.strip():
        return False
    if loose(needle) in loose(haystack):
        return True
    a = alnum(needle)
    return bool(a) and f" {a} " in f" {alnum(haystack)} "


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


def selected_locations(result) -> tuple[set[int], list[tuple[int, int]]]:
    """Pages and line ranges of the segments the model was shown."""
    pages: set[int] = set()
    lines: list[tuple[int, int]] = []
    for source in result.sources:
        if source.page is not None:
            pages.add(source.page)
        if source.line_start is not None:
            lines.append((source.line_start, source.line_end))
    return pages, lines


def covers(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    return all(any(a <= line <= b for a, b in ranges) for line in range(start, end + 1))


def score_item(item: dict, result, doc_id: int) -> dict:
    unanswerable = item["answer"] == "UNANSWERABLE"
    row = {"id": item["id"], "type": item["type"], "doc": item["doc"],
           "declined": result.declined, "answer": result.text,
           "ttft_s": result.ttft_s, "total_s": result.total_s,
           "context_tokens": result.context_tokens, "prompt_tokens": result.prompt_tokens,
           "sources": len(result.sources)}
    if unanswerable:
        row["answer_ok"] = result.declined
        row["retrieval_hit"] = row["citation_ok"] = None
        return row
    answers = [item["answer"], *item.get("answer_aliases", [])]
    row["answer_ok"] = (not result.declined) and any(contains(result.raw_text, a) for a in answers)
    pages, lines = selected_locations(result)
    # Pages of all selected segments (a merged source spans several pages).
    if item["kind"] == "pdf":
        pages |= {page for s in result.sources for page in s.pages}
        row["retrieval_hit"] = item["page"] in pages
        row["citation_ok"] = any(c.document_id == doc_id and c.page == item["page"]
                                 for c in result.citations)
    else:
        start, end = item["lines"]
        row["retrieval_hit"] = covers(lines, start, end)
        row["citation_ok"] = any(c.document_id == doc_id and c.line_start is not None
                                 and c.line_start <= end and (c.line_end or c.line_start) >= start
                                 for c in result.citations)
    return row


def summarize(rows: list[dict]) -> dict:
    def rate(key, subset):
        values = [r[key] for r in subset if r[key] is not None]
        return round(sum(values) / len(values), 3) if values else None

    answerable = [r for r in rows if r["type"] != "unanswerable"]
    unanswerable = [r for r in rows if r["type"] == "unanswerable"]
    return {
        "items": len(rows),
        "retrieval_hit": rate("retrieval_hit", answerable),
        "answer_accuracy": rate("answer_ok", answerable),
        "citation_accuracy": rate("citation_ok", answerable),
        "declined_unanswerable": rate("answer_ok", unanswerable),
        "overall_accuracy": rate("answer_ok", rows),
        "median_ttft_s": round(statistics.median(r["ttft_s"] for r in rows), 2) if rows else None,
        "median_total_s": round(statistics.median(r["total_s"] for r in rows), 2) if rows else None,
        "mean_context_tokens": round(statistics.mean(r["context_tokens"] for r in rows)) if rows else None,
    }


def build(settings, db, backend, mode: str, budget: int | None):
    from app.assistant import build_answerer
    from engine.cite import MarkerCiter
    from engine.select import baseline_pipeline, default_pipeline

    if mode == "baseline":
        answerer = build_answerer(settings, db, backend, pipeline=baseline_pipeline(),
                                  context_tokens=budget)
        answerer.citer = MarkerCiter()
        return answerer
    pipeline = default_pipeline()
    if mode.startswith("-"):                 # "-prune" or "-rerank+prune"
        pipeline = pipeline.without(*mode[1:].split("+"))
    return build_answerer(settings, db, backend, pipeline=pipeline, context_tokens=budget)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, default=SHARED / "eval" / "dev.jsonl")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--home", type=Path, help="Data dir to reuse (default: a temp dir).")
    parser.add_argument("--model", type=Path, help="GGUF to answer with (default: bundled).")
    parser.add_argument("--modes", default="folio,baseline")
    parser.add_argument("--ablate", action="store_true", help="Also run folio without each step.")
    parser.add_argument("--context", type=int, help="Fixed source budget for every mode.")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--ids", help="Comma-separated item ids.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "qa_eval.json")
    args = parser.parse_args()

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
    modes = args.modes.split(",")
    if args.ablate:
        modes += [f"-{step.name}" for step in default_pipeline().steps]
    answerers = {mode: build(settings, db, backend, mode, args.context) for mode in modes}
    rows: dict[str, list[dict]] = {mode: [] for mode in modes}
    for item in items:
        doc_id = doc_ids[item["doc"]]
        for mode in modes:      # side by side, item by item: the same machine state
            result = answer_once(answerers[mode], item["question"], document_ids=[doc_id])
            row = score_item(item, result, doc_id)
            rows[mode].append(row)
            mark = "ok " if row["answer_ok"] else "BAD"
            print(f"{item['id']} {mode:<10} {mark} hit={row['retrieval_hit']} "
                  f"cite={row['citation_ok']} ttft={row['ttft_s']:.1f}s "
                  f"ctx={row['context_tokens']}  {result.text[:90]!r}", flush=True)
    summary = {mode: summarize(rows[mode]) for mode in modes}
    keys = ["retrieval_hit", "answer_accuracy", "citation_accuracy", "declined_unanswerable",
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
