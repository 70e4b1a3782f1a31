"""Ingestion speed and memory: Folio versus a common peer pipeline.

Each job runs in its own process so its peak memory (ru_maxrss) is its own.
Jobs on the same input run back to back in one invocation and are reported
as ratios, because this machine is noisy.

    python bench/ingest.py                      # 300-page slice of refman.pdf
    python bench/ingest.py --full               # also the whole 2,415 pages
    python bench/ingest.py --pdf some.pdf --pages 50

Jobs:
  folio-parse   PyMuPDF parse into segments with spans and boxes (no storage)
  folio-store   parse + write to SQLite + FTS5: text stored and searchable
  folio-full    parse + store + embed every segment (all-MiniLM-L6-v2)
  peer-parse    pypdf text per page (what a typical local RAG app does)
  peer-full     pypdf text per page + 1000/200-character overlapping chunks
                + the same embedder, vectors kept in memory
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
            run = embed_pending(db, Embedder())
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
            result["segments"] = len(chunks)
            result["embedded"] = int(vectors.shape[0])
    result["seconds"] = time.perf_counter() - started
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
    head = f"{'input':<22}{'job':<13}{'pages':>6}{'segs':>7}{'seconds':>9}{'pages/s':>9}{'peak MB':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['input']:<22}{r['job']:<13}{r['pages']:>6}{r.get('segments', 0):>7}"
                     f"{r['seconds']:>9.1f}{r['pages_per_s']:>9.1f}{r['peak_mb']:>9.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pdf", type=Path, default=DEFAULT_PDF)
    parser.add_argument("--pages", type=int, default=300, help="slice size (first N pages)")
    parser.add_argument("--full", action="store_true", help="also run on the whole file")
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "ingest.json")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(args.job, args.pdf, args.workdir)))
        return
    if not args.pdf.is_file():
        raise SystemExit(f"{args.pdf} not found (the ../shared/ corpus is needed)")
    rows: list[dict] = []
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
        store = by.get((name, "folio-store"))
        if store:
            ratios[f"{name} searchable pages/s"] = store["pages"] / store["searchable_s"]
    print(table(rows))
    for key, value in sorted(ratios.items()):
        label = "full pipeline speed-up vs peer" if "pages/s" not in key else ""
        print(f"{key}: {value:.2f}{'x ' + label if label else ''}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "ratios": ratios, "cpus": os.cpu_count()},
                                   indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
