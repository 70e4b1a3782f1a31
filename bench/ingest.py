"""Ingestion speed and memory: Folio versus a common peer pipeline.

Each job runs in its own process so its peak memory (ru_maxrss) is its own.
Jobs on the same input run back to back in one invocation and are reported
as ratios, because this machine is noisy.

    python bench/ingest.py                      # 300-page slice of refman.pdf
    python bench/ingest.py --full               # also the whole 2,415 pages
    python bench/ingest.py --pdf some.pdf --pages 50
    python bench/ingest.py --compare-embedders  # embedding backends: speed, quality

Jobs:
  folio-parse   PyMuPDF parse into segments with spans and boxes (no storage)
  folio-store   parse + write to SQLite + FTS5: text stored and searchable
  folio-full    parse + store + embed every segment (all-MiniLM-L6-v2 with
                Folio's default backend: ONNX Runtime, int8 weights)
  peer-parse    pypdf text per page (what a typical local RAG app does)
  peer-full     pypdf text per page + 1000/200-character overlapping chunks
                + the same model through sentence-transformers (torch fp32,
                its stock settings), vectors kept in memory

Folio's ONNX graph is exported once per machine and cached; the parent
process warms that cache before the jobs run (its one-time cost is printed
separately), so folio-full measures steady-state ingestion.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This file is named like the `ingest` package: keep its folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
DEFAULT_PDF = SHARED / "docs" / "manual" / "refman.pdf"
JOBS = ["folio-parse", "folio-store", "folio-full", "peer-parse", "peer-full"]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this job and the worker processes it waited
    for (the PDF parser uses a pool): less sensitive than wall time to other
    work on a shared machine."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def split_overlapping(text: str, size: int = 1000, overlap: int = 200) -> list[str]:
    """A recursive-character-style splitter: cut near `size` at a paragraph,
    line or word break, stepping back `overlap` characters each time."""
    chunks, start = [], 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            for sep in ("\n\n", "\n", " "):
                cut = text.rfind(sep, start + size // 2, end)
                if cut > start:
                    end = cut
                    break
        chunk = text[start:end].strip()
        if chunk:
            chunks.append(chunk)
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
    return chunks


def run_job(job: str, pdf: Path, workdir: Path) -> dict:
    started = time.perf_counter()
    result: dict = {"job": job}
    if job.startswith("folio"):
        from ingest import parse_file
        parsed = parse_file(pdf)
        result["pages"] = len(parsed.pages)
        result["segments"] = len(parsed.segments)
        result["parse_s"] = time.perf_counter() - started
        if job != "folio-parse":
            from storage import documents, fts, open_db
            db = open_db(workdir / f"{job}.db")
            documents.store_document(db, parsed)
            assert fts.bm25_search(db, "function", limit=1), "stored text is searchable"
            result["searchable_s"] = time.perf_counter() - started
        if job == "folio-full":
            from engine.embed_worker import embed_pending
            from engine.embedder import Embedder
            del parsed
            embedder = Embedder()
            result["embedder"] = embedder.name
            run = embed_pending(db, embedder)
            result["embedded"] = run.embedded
    else:
        from pypdf import PdfReader
        reader = PdfReader(str(pdf))
        texts = [page.extract_text() or "" for page in reader.pages]
        result["pages"] = len(texts)
        result["parse_s"] = time.perf_counter() - started
        if job == "peer-full":
            import os as _os
            _os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            from engine.embedder import bundled_model_dir
            chunks = [c for t in texts for c in split_overlapping(t)]
            model = SentenceTransformer(str(bundled_model_dir()), device="cpu")
            vectors = model.encode(chunks, batch_size=32, normalize_embeddings=True)
            result["embedder"] = "all-MiniLM-L6-v2 (sentence-transformers, torch fp32)"
            result["segments"] = len(chunks)
            result["embedded"] = int(vectors.shape[0])
    result["seconds"] = time.perf_counter() - started
    result["cpu_s"] = cpu_seconds()
    result["pages_per_s"] = result["pages"] / result["seconds"]
    result["peak_mb"] = peak_mb()
    return result


def spawn(job: str, pdf: Path, workdir: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--job", job, "--pdf", str(pdf),
                          "--workdir", str(workdir)], capture_output=True, text=True,
                         env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if out.returncode != 0:
        raise SystemExit(f"{job} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_slice(pdf: Path, pages: int, workdir: Path) -> Path:
    import pymupdf
    source = pymupdf.open(pdf)
    if pages >= source.page_count:
        return pdf
    sliced = pymupdf.open()
    sliced.insert_pdf(source, from_page=0, to_page=pages - 1)
    target = workdir / f"{pdf.stem}-{pages}p.pdf"
    sliced.save(target)
    return target


def table(rows: list[dict]) -> str:
    head = (f"{'input':<22}{'job':<13}{'pages':>6}{'segs':>7}{'search s':>9}{'seconds':>9}"
            f"{'cpu s':>8}{'pages/s':>9}{'peak MB':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        searchable = f"{r['searchable_s']:.1f}" if "searchable_s" in r else "-"
        lines.append(f"{r['input']:<22}{r['job']:<13}{r['pages']:>6}{r.get('segments', 0):>7}"
                     f"{searchable:>9}{r['seconds']:>9.1f}{r.get('cpu_s', 0):>8.1f}"
                     f"{r['pages_per_s']:>9.1f}{r['peak_mb']:>9.0f}")
    return "\n".join(lines)


def warm_embedder_cache() -> float:
    """Export Folio's ONNX graph now if it is not cached yet: a once-per-machine
    cost that should not be billed to every ingest."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", "from engine.embedder import Embedder; Embedder()"],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"loading Folio's embedder failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - started


EMBEDDER_OPTIONS = {   # name: EmbedderConfig arguments; the first is the reference
    "torch-fp32": {"backend": "torch", "quantize": False},
    "torch-fp32@128": {"backend": "torch", "quantize": False, "max_seq_length": 128},
    "torch-int8": {"backend": "torch", "quantize": True},
    "onnx-fp32": {"backend": "onnx", "quantize": False},
    "onnx-int8": {"backend": "onnx", "quantize": True},
    "onnx-int8@128": {"backend": "onnx", "quantize": True, "max_seq_length": 128},
}


def embedding_corpus(workdir: Path, speed_segments: int) -> Path:
    """Texts to embed, as Folio embeds them: refman segments for speed, and
    for quality the documents of ../shared/eval/dev.jsonl (refman cut to
    +-25 pages around its gold pages, to keep the run short) plus questions."""
    import pickle

    from engine.embedder import segment_embedding_text
    from ingest import parse_file
    from storage.documents import SECTION_SEPARATOR

    def texts(parsed):
        return [(segment_embedding_text(s.text, SECTION_SEPARATOR.join(s.section), s.name),
                 s.page, s.line_start, s.line_end) for s in parsed.segments]

    items = [json.loads(line) for line in (SHARED / "eval" / "dev.jsonl").open()]
    docs = {}
    for doc in sorted({i["doc"] for i in items}):
        segs = texts(parse_file(SHARED / doc))
        if doc.endswith("refman.pdf"):
            middle = len(segs) // 2 - speed_segments // 2
            speed = [t for t, *_ in segs[middle:middle + speed_segments]]
            gold = [i["page"] for i in items if i["doc"] == doc]
            segs = [s for s in segs if any(abs(s[1] - g) <= 25 for g in gold)]
        docs[doc] = segs
    path = workdir / "corpus.pkl"
    path.write_bytes(pickle.dumps({"speed": speed, "docs": docs, "items": items}))
    return path


def embed_option(name: str, workdir: Path) -> dict:
    """One backend in its own process: time the speed set, embed the rest."""
    import pickle

    import numpy as np

    from engine.embedder import Embedder, EmbedderConfig
    corpus = pickle.loads((workdir / "corpus.pkl").read_bytes())
    embedder = Embedder(EmbedderConfig(**EMBEDDER_OPTIONS[name]))
    embedder.embed(["warm up"] * 4)
    started, cpu = time.perf_counter(), cpu_seconds()
    speed = embedder.embed(corpus["speed"])
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    vectors = {doc: embedder.embed([t for t, *_ in segs]) for doc, segs in corpus["docs"].items()}
    vectors["__questions__"] = embedder.embed([i["question"] for i in corpus["items"]])
    vectors["__speed__"] = speed
    np.savez(workdir / f"{name}.npz", **{k.replace("/", "|"): v for k, v in vectors.items()})
    return {"option": name, "model_name": embedder.name, "segments": len(corpus["speed"]),
            "seconds": seconds, "cpu_s": cpu, "segments_per_s": len(corpus["speed"]) / seconds,
            "segments_per_cpu_s": len(corpus["speed"]) / cpu}


def recall_at(vectors: dict, corpus: dict, k: int = 10) -> float:
    """Share of dev questions whose gold page (or code lines) is among the
    pages of the top-k segments by dense cosine within their document."""
    import numpy as np
    hits = []
    for row, item in enumerate(corpus["items"]):
        segs = corpus["docs"][item["doc"]]
        top = np.argsort(-(vectors[item["doc"]] @ vectors["__questions__"][row]))[:k]
        if item["kind"] == "pdf":
            hits.append(any(segs[j][1] == item["page"] for j in top))
        else:
            start, end = item["lines"]
            hits.append(any(segs[j][2] <= end and segs[j][3] >= start for j in top))
    return float(np.mean(hits))


def compare_embedders(options: list[str], speed_segments: int, out: Path) -> None:
    import pickle

    import numpy as np
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        corpus = pickle.loads(embedding_corpus(workdir, speed_segments).read_bytes())
        loaded = {}
        for name in options:
            proc = subprocess.run([sys.executable, __file__, "--embed-option", name,
                                   "--workdir", str(workdir)], capture_output=True, text=True,
                                  env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            with np.load(workdir / f"{name}.npz") as data:
                loaded[name] = {k.replace("|", "/"): data[k] for k in data.files}
            print(f"  {name}: {rows[-1]['segments_per_s']:.1f} segments/s", file=sys.stderr)
    reference = loaded[options[0]]
    for row in rows:
        vectors = loaded[row["option"]]
        cosines = np.concatenate([(reference[key] * vectors[key]).sum(axis=1)
                                  for key in vectors if key != "__questions__"])
        row.update(cos_min=float(cosines.min()), cos_mean=float(cosines.mean()),
                   recall_at_10=recall_at(vectors, corpus),
                   speed_up=rows[0]["seconds"] / row["seconds"],
                   cpu_speed_up=rows[0]["cpu_s"] / row["cpu_s"])
    head = (f"{'option':<16}{'segs/s':>8}{'segs/cpu s':>11}{'speed-up':>9}{'cpu x':>7}"
            f"{'cos min':>9}{'cos mean':>9}{'R@10':>6}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['option']:<16}{r['segments_per_s']:>8.1f}{r['segments_per_cpu_s']:>11.1f}"
              f"{r['speed_up']:>9.2f}{r['cpu_speed_up']:>7.2f}{r['cos_min']:>9.4f}"
              f"{r['cos_mean']:>9.4f}{r['recall_at_10']:>6.2f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count()}, indent=2))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pdf", type=Path, default=DEFAULT_PDF)
    parser.add_argument("--pages", type=int, default=300, help="slice size (first N pages)")
    parser.add_argument("--full", action="store_true", help="also run on the whole file")
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "ingest.json")
    parser.add_argument("--compare-embedders", nargs="?", const=",".join(EMBEDDER_OPTIONS),
                        metavar="OPTIONS", help="compare embedding backends instead "
                        f"(default all: {','.join(EMBEDDER_OPTIONS)}; the first is the reference)")
    parser.add_argument("--segments", type=int, default=2000,
                        help="refman segments timed per embedding option")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--embed-option", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(args.job, args.pdf, args.workdir)))
        return
    if args.embed_option:
        print(json.dumps(embed_option(args.embed_option, args.workdir)))
        return
    if args.compare_embedders:
        out = args.out if args.out != parser.get_default("out") else args.out.with_name("embedders.json")
        compare_embedders(args.compare_embedders.split(","), args.segments, out)
        return
    if not args.pdf.is_file():
        raise SystemExit(f"{args.pdf} not found (the ../shared/ corpus is needed)")
    rows: list[dict] = []
    if "folio-full" in args.jobs.split(","):
        print(f"  embedder ready (export on first use, else load): {warm_embedder_cache():.1f}s",
              file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        inputs = [make_slice(args.pdf, args.pages, workdir)]
        if args.full and inputs[0] != args.pdf:
            inputs.append(args.pdf)
        for pdf in inputs:
            for job in args.jobs.split(","):
                row = spawn(job, pdf, workdir)
                row["input"] = pdf.name
                rows.append(row)
                print(f"  {pdf.name} {job}: {row['seconds']:.1f}s, {row['peak_mb']:.0f} MB",
                      file=sys.stderr)
    by = {(r["input"], r["job"]): r for r in rows}
    ratios = {}
    for name in {r["input"] for r in rows}:
        folio, peer = by.get((name, "folio-full")), by.get((name, "peer-full"))
        if folio and peer:
            ratios[name] = peer["seconds"] / folio["seconds"]
            ratios[f"{name} cpu-time"] = peer["cpu_s"] / folio["cpu_s"]
        store = by.get((name, "folio-store"))
        if store:
            ratios[f"{name} searchable pages/s"] = store["pages"] / store["searchable_s"]
    print(table(rows))
    for key, value in sorted(ratios.items()):
        label = ("" if "pages/s" in key else "full pipeline speed-up vs peer"
                 + (" (cpu time)" if "cpu-time" in key else " (wall time)"))
        print(f"{key}: {value:.2f}{'x ' + label if label else ''}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "ratios": ratios, "cpus": os.cpu_count()},
                                   indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
