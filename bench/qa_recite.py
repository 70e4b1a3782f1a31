"""Cite stored answers again: the citation step alone, on a finished run.

    python bench/qa_recite.py bench/out/qa_eval.json --home /tmp/qa_home

Generating the dev set's answers takes a quarter of an hour on 2 cores;
aligning them with their sources takes seconds. This reads the folio rows
of a `qa_eval.py` run, selects each item's context again exactly as `ask`
does at the budget that run used (the tokenizer alone is loaded, as in
`--retrieval-only`), cites the stored raw answer with the current `Citer`,
and scores answer and citation accuracy as `qa_eval.py` does, beside the
stored scores. So a change to citing is measured on the same answers, not
on new ones the model happens to phrase differently. Runs before the
`raw_answer`/`budget` fields existed fall back to the shown answer and the
context size used (a declined answer cannot be re-cited: its text is gone).
A where-answer about code may end with the place the model picks
(engine/locate.py), so the model's weights are loaded too (seconds), and the
pick scores the stored answer as `ask` does.
The run's other modes (baseline, sparse) are not cited again, only their
answers scored again with `qa_scoring.answer_found` as it is now.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

from qa_eval import SHARED, answer_found, build, ingest_all, load_items, score_item, summarize


def recite_row(answerer, item: dict, stored: dict, doc_id: int) -> dict:
    from engine.cite import DECLINE_TEXT
    from engine.locate import Locator
    from engine.prompts import answer_messages
    from engine.select import render_sources
    from engine.answer_events import source_usage
    from engine.prompts import clean_question

    raw = stored.get("raw_answer", stored["answer"])
    budget = stored.get("budget") or stored["context_tokens"]
    question = clean_question(item["question"], answerer.config.max_question_chars)
    selection = answerer.select(question, question, [doc_id], budget)
    cited = answerer.citer.cite(raw if raw != DECLINE_TEXT else "", selection.sources,
                                question=question)
    if answerer.config.name_code_places:
        messages = answer_messages(render_sources(selection), question)
        Locator(answerer.citer, answerer.place_chooser(messages, raw)).add(
            question, cited, selection.sources)
    result = SimpleNamespace(
        declined=cited.declined, text=cited.text, raw_text=raw, budget=budget,
        ttft_s=stored["ttft_s"], total_s=stored["total_s"],
        context_tokens=selection.used_tokens, prompt_tokens=stored["prompt_tokens"],
        sources=[source_usage(s) for s in selection.sources], citations=cited.citations)
    row = score_item(item, result, doc_id)
    row["quotes"] = [f"p{c.page}" if c.page else f"{c.line_start}-{c.line_end}"
                     for c in cited.citations]
    return row


def rescore_answer(item: dict, row: dict) -> dict:
    """A stored row with answer accuracy recomputed by today's rule."""
    if item["answer"] == "UNANSWERABLE":
        return dict(row)
    raw = row.get("raw_answer", row["answer"])
    return {**row, "answer_ok": answer_found(item, row["answer"], row["declined"]),
            "model_answer_ok": answer_found(item, raw, row["declined"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a qa_eval.py output JSON")
    parser.add_argument("--set", type=Path, default=SHARED / "eval" / "dev.jsonl")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--home", type=Path, help="Data dir to reuse (default: a temp dir).")
    parser.add_argument("--model", type=Path, help="GGUF that answered (default: bundled).")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "qa_recite.json")
    args = parser.parse_args()

    from app.assistant import load_answer_backend
    from app.settings import Settings
    from storage import open_db

    run = json.loads(args.run.read_text())["rows"]
    stored = {r["id"]: r for r in run["folio"]}
    by_id = {i["id"]: i for i in load_items(args.set, None, None)}
    items = [i for i in by_id.values() if i["id"] in stored]
    home = args.home or Path(tempfile.mkdtemp(prefix="folio-qa-"))
    settings = Settings.load(home)
    db = open_db(settings.db_path)
    doc_ids = ingest_all(settings, db, args.shared, sorted({i["doc"] for i in items}))
    answerer = build(settings, db, load_answer_backend(settings, args.model), "folio", None)
    rows = []
    for item in items:
        old = stored[item["id"]]
        row = recite_row(answerer, item, old, doc_ids[item["doc"]])
        rows.append(row)
        changed = "" if (row["citation_ok"], row["answer_ok"]) == \
            (old["citation_ok"], old["answer_ok"]) else "  CHANGED"
        print(f"{item['id']} {item['type']:<12} cite {old['citation_ok']} -> {row['citation_ok']}"
              f"  answer {old['answer_ok']} -> {row['answer_ok']}  {row['quotes']}{changed}",
              flush=True)
    before = summarize(list(stored.values()))
    after = summarize(rows)
    for key in ("answer_accuracy", "citation_accuracy", "declined_unanswerable"):
        print(f"{key}: {before[key]} -> {after[key]}")
    others = {mode: [rescore_answer(by_id[r["id"]], r) for r in mode_rows]
              for mode, mode_rows in run.items() if mode != "folio"}
    summaries = {"folio": after, **{mode: summarize(r) for mode, r in others.items()}}
    keys = ["retrieval_hit", "evidence_hit", "answer_accuracy", "citation_accuracy",
            "declined_unanswerable", "median_ttft_s", "median_total_s", "mean_context_tokens"]
    print("\n| mode | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for mode, summary in summaries.items():
        print(f"| {mode} | " + " | ".join(str(summary[k]) for k in keys) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"run": str(args.run), "before": before, "after": after,
                                    "summary": summaries, "rows": {"folio": rows, **others}},
                                   indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
