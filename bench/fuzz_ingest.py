"""Mutation fuzzing of the PDF parser: no crash, no hang, bounded memory.

Small source PDFs (generated here with pymupdf, plus the first pages of
real files from ../shared/docs when present) are mutated -- byte flips,
truncation, duplicated xref sections, huge object numbers and /Count or
/Size values, bogus /Length, deleted or duplicated chunks, deep nesting --
and each variant is parsed by `ingest.isolate` in a forked child with a
wall-clock and an address-space limit. Outcomes:

  ingested  parsed (perhaps repaired, perhaps with page warnings)
  error     one of Folio's specific ingest errors (CorruptFile, ...)
  crash     any other exception, or the child killed by a signal
  hang      no result within the time limit (killed)
  memory    ran into the memory limit

Deterministic for a given --seed: variant i of a run is always the same
bytes. Crashing, hanging and over-memory variants are kept under
bench/out/fuzz_cases/ for replay.

    python bench/fuzz_ingest.py                  # 1,200 variants, 2 at a time
    python bench/fuzz_ingest.py --variants 50 --seed 7
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
# This folder has a file named like the `ingest` package: keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "docs"
OUT = ROOT / "bench" / "out"

# (file under ../shared/docs, pages kept: None = the file as it is)
SHARED_SOURCES = [
    ("multicol/Rcpp-introduction.pdf", 2), ("tables/data.pdf", 1), ("longform/zoo.pdf", 2),
    ("broken/badlin1.pdf", None), ("broken/fuzz-378014596.pdf", None),
    ("broken/content-stream-errors.pdf", None), ("encrypted/r5-owner-password.pdf", None),
    ("scanned/skew.pdf", None),
]


# -- sources ------------------------------------------------------------------

def _generated(folder: Path) -> list[Path]:
    """Small PDFs exercising text, outlines, tables, images, links and an
    uncompressed content stream (so mutations land in page operators)."""
    import pymupdf

    out = []
    doc = pymupdf.open()
    for n in range(3):
        page = doc.new_page()
        page.insert_text((72, 72), f"Chapter {n + 1}", fontsize=18, fontname="hebo")
        page.insert_textbox(pymupdf.Rect(72, 100, 540, 700),
                            ("Glaciers advance forty metres every winter. " * 20), fontsize=11)
        page.insert_link({"kind": pymupdf.LINK_GOTO, "from": pymupdf.Rect(72, 60, 200, 80),
                          "page": n // 2})
    doc.set_toc([[1, f"Chapter {n + 1}", n + 1] for n in range(3)] + [[2, "Sub", 2]])
    for name, kwargs in (("text-plain.pdf", {}), ("text-deflate.pdf", {"deflate": True})):
        doc.save(folder / name, **kwargs)
        out.append(folder / name)

    doc = pymupdf.open()
    page = doc.new_page()
    for r in range(8):
        for c in range(4):
            rect = pymupdf.Rect(72 + c * 110, 72 + r * 20, 182 + c * 110, 92 + r * 20)
            page.draw_rect(rect, color=(0, 0, 0), width=0.5)
            page.insert_text((rect.x0 + 4, rect.y1 - 6), f"r{r}c{c} {r * c}", fontsize=9)
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 32, 32), False)
    pix.clear_with(180)
    page.insert_image(pymupdf.Rect(72, 300, 272, 500), pixmap=pix)
    page.add_text_annot((300, 300), "a note")
    doc.save(folder / "table-image.pdf", deflate=True)
    out.append(folder / "table-image.pdf")

    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_textbox(pymupdf.Rect(72, 72, 540, 720), "def f(x):\n    return x + 1\n" * 10,
                        fontname="cour", fontsize=10)
    doc.save(folder / "objstm.pdf", use_objstms=1, deflate=True)
    out.append(folder / "objstm.pdf")
    return out


def _from_shared(folder: Path) -> list[Path]:
    import pymupdf

    out = []
    for rel, pages in SHARED_SOURCES:
        src = SHARED / rel
        if not src.is_file():
            continue
        dest = folder / ("shared-" + src.name)
        if pages is None:
            dest.write_bytes(src.read_bytes())
        else:
            doc = pymupdf.open(src)
            doc.select(list(range(min(pages, doc.page_count))))
            doc.save(dest, garbage=3, deflate=True)
        out.append(dest)
    return out


# -- mutations ---------------------------------------------------------------

def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 2, 5, 20, 100))):
        buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    return bytes(buf)


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 10, 50))):
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:max(1, int(len(data) * rng.uniform(0.02, 0.995)))]


def delete_chunk(data: bytes, rng: random.Random) -> bytes:
    a = rng.randrange(len(data))
    return data[:a] + data[a + rng.randint(1, max(1, len(data) // 10)):]


def duplicate_chunk(data: bytes, rng: random.Random) -> bytes:
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.randint(1, 4096))
    at = rng.randrange(len(data))
    return data[:at] + data[a:b] * rng.choice((1, 2, 50)) + data[at:]


def insert_garbage(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + rng.randbytes(rng.choice((1, 16, 512, 8192))) + data[at:]


def duplicate_xref(data: bytes, rng: random.Random) -> bytes:
    """The last xref section and trailer again: appended as a fake
    incremental update, or spliced into the middle of the file."""
    at = data.rfind(b"xref")
    if at < 0:
        return duplicate_chunk(data, rng)
    tail = data[at:]
    if rng.random() < 0.5:
        return data + b"\n" + tail * rng.choice((1, 3))
    mid = rng.randrange(len(data))
    return data[:mid] + tail + data[mid:]


def _replace_numbers(data: bytes, rng: random.Random, key: bytes, values: list[bytes]) -> bytes:
    pattern = re.compile(re.escape(key) + rb"\s*(-?\d+)")
    hits = list(pattern.finditer(data))
    if not hits:
        return flip_bytes(data, rng)
    for m in rng.sample(hits, k=min(len(hits), rng.choice((1, 3)))):
        new = key + b" " + rng.choice(values)
        data = data.replace(m.group(0), new, 1)
    return data


HUGE = [b"2147483647", b"4294967296", b"99999999999999999999", b"-1", b"0", b"1000000000"]


def huge_count(data: bytes, rng: random.Random) -> bytes:
    return _replace_numbers(data, rng, b"/Count", HUGE)


def huge_size(data: bytes, rng: random.Random) -> bytes:
    return _replace_numbers(data, rng, b"/Size", HUGE)


def bogus_length(data: bytes, rng: random.Random) -> bytes:
    return _replace_numbers(data, rng, b"/Length", HUGE + [b"1", b"7"])


def huge_object_numbers(data: bytes, rng: random.Random) -> bytes:
    """Renumber objects and references far beyond the xref (a huge object
    count), or append one object with an absurd number."""
    hits = list(re.finditer(rb"(?m)^(\d+) (\d+) obj", data))
    if not hits or rng.random() < 0.3:
        return data + b"\n%d 0 obj\n<< /Type /Page >>\nendobj\n" % rng.choice(
            (8388607, 2 ** 31 - 1, 10 ** 12))
    for m in rng.sample(hits, k=min(len(hits), 3)):
        data = data.replace(m.group(0), b"%d %s obj" % (rng.choice((8388607, 2 ** 31 - 1,
                                                                      10 ** 9)), m.group(2)), 1)
    return data


def remove_keyword(data: bytes, rng: random.Random) -> bytes:
    word = rng.choice((b"endobj", b"endstream", b"stream", b"startxref", b"trailer", b"xref",
                       b"%%EOF", b"/Root", b"/Pages", b"/Kids", b"/Contents", b"/Font"))
    hits = [m.start() for m in re.finditer(re.escape(word), data)]
    if not hits:
        return truncate(data, rng)
    at = rng.choice(hits)
    return data[:at] + data[at + len(word):]


def deep_nesting(data: bytes, rng: random.Random) -> bytes:
    """Thousands of nested arrays or dictionaries inside an object."""
    depth = rng.choice((500, 5000, 50000))
    blob = (b"[" * depth + b"]" * depth) if rng.random() < 0.5 else \
        (b"<</A " * depth + b">>" * depth)
    hits = [m.end() for m in re.finditer(rb"obj\s*<<", data)]
    at = rng.choice(hits) if hits else rng.randrange(len(data))
    return data[:at] + b" /Z " + blob + b" " + data[at:]


def self_reference(data: bytes, rng: random.Random) -> bytes:
    """Point /Parent, /Kids or /Contents at a wrong or cyclic object."""
    refs = list(re.finditer(rb"/(Parent|Kids|Contents|Resources|Root|Pages)\s*(\[?\s*)(\d+) 0 R",
                            data))
    if not refs:
        return flip_bytes(data, rng)
    m = rng.choice(refs)
    target = rng.choice((b"1", b"2", b"3", m.group(3), b"999999"))
    return data[:m.start(3)] + target + data[m.end(3):]


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "flip": flip_bytes, "random-bytes": random_bytes, "truncate": truncate,
    "delete-chunk": delete_chunk, "duplicate-chunk": duplicate_chunk,
    "insert-garbage": insert_garbage, "duplicate-xref": duplicate_xref,
    "huge-count": huge_count, "huge-size": huge_size, "bogus-length": bogus_length,
    "huge-object-numbers": huge_object_numbers, "remove-keyword": remove_keyword,
    "deep-nesting": deep_nesting, "bad-reference": self_reference,
}


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """One to three mutations, chosen by `rng`; returns bytes and their names."""
    names = [rng.choice(sorted(MUTATIONS)) for _ in range(rng.choice((1, 1, 1, 2, 3)))]
    for name in names:
        if data:
            data = MUTATIONS[name](data, rng)
    return data, names


def make_variants(sources: list[Path], count: int, seed: int,
                  folder: Path) -> list[tuple[Path, str, list[str]]]:
    """Write `count` variants into `folder`: (path, source name, mutations).
    Variant i depends only on (seed, i) and the sources."""
    blobs = [(p.name, p.read_bytes()) for p in sorted(sources)]
    out = []
    for i in range(count):
        rng = random.Random(f"{seed}:{i}")
        name, data = blobs[i % len(blobs)]
        mutated, names = mutate(data, rng)
        path = folder / f"v{i:05d}-{Path(name).stem}.pdf"
        path.write_bytes(mutated)
        out.append((path, name, names))
    return out


def fuzz_config():
    """Parser settings for fuzzing: OCR off (that is tesseract, not us)."""
    from ingest import IngestConfig

    return IngestConfig(ocr=False, max_seconds_per_document=20.0)


# -- run -----------------------------------------------------------------------

def run(count: int, seed: int, jobs: int, seconds: float, memory_mb: int,
        keep: Path | None = None, use_shared: bool = True) -> dict:
    from ingest.isolate import OUTCOMES, Limits, parse_many

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="folio-fuzz-") as tmp:
        folder = Path(tmp)
        src_dir = folder / "sources"
        src_dir.mkdir()
        sources = _generated(src_dir) + (_from_shared(src_dir) if use_shared else [])
        variants = make_variants(sources, count, seed, folder)
        meta = {path: (source, names) for path, source, names in variants}
        limits = Limits(seconds=seconds, memory_mb=memory_mb)
        rows = []
        for path, result in parse_many([v[0] for v in variants], jobs=jobs,
                                       config=fuzz_config(), limits=limits):
            source, names = meta[path]
            rows.append({"variant": path.name, "source": source, "mutations": names,
                         **result.to_json()})
            if keep is not None and result.outcome in ("crash", "hang", "memory"):
                keep.mkdir(parents=True, exist_ok=True)
                (keep / path.name).write_bytes(path.read_bytes())
    rows.sort(key=lambda r: r["variant"])
    totals = Counter(r["outcome"] for r in rows)
    by_mutation: dict[str, Counter] = {}
    for r in rows:
        for name in set(r["mutations"]):
            by_mutation.setdefault(name, Counter())[r["outcome"]] += 1
    return {
        "seed": seed, "variants": len(rows), "jobs": jobs, "time_limit_s": seconds,
        "memory_limit_mb": memory_mb, "sources": sorted(p.name for p in sources),
        "wall_s": round(time.perf_counter() - started, 1),
        "outcomes": {o: totals.get(o, 0) for o in OUTCOMES},
        "by_mutation": {k: {o: v.get(o, 0) for o in OUTCOMES}
                        for k, v in sorted(by_mutation.items())},
        "error_codes": dict(Counter(r["code"] for r in rows if r["outcome"] == "error")
                            .most_common()),
        "slowest_s": max((r["seconds"] for r in rows), default=0.0),
        "problems": [r for r in rows if r["outcome"] in ("crash", "hang", "memory")],
    }


def print_table(report: dict) -> None:
    from ingest.isolate import OUTCOMES

    print(f"{report['variants']} variants of {len(report['sources'])} sources, seed "
          f"{report['seed']}, {report['jobs']} at a time, limits {report['time_limit_s']:g} s / "
          f"+{report['memory_limit_mb']} MB per file: {report['wall_s']} s wall, "
          f"slowest file {report['slowest_s']:.2f} s")
    head = f"{'mutation':<22}" + "".join(f"{o:>10}" for o in OUTCOMES)
    print(head)
    print("-" * len(head))
    for name, counts in report["by_mutation"].items():
        print(f"{name:<22}" + "".join(f"{counts[o]:>10}" for o in OUTCOMES))
    print("-" * len(head))
    print(f"{'all variants':<22}" + "".join(f"{report['outcomes'][o]:>10}" for o in OUTCOMES))
    codes = ", ".join(f"{k} {v}" for k, v in report["error_codes"].items())
    print(f"specific errors: {codes or 'none'}")
    for row in report["problems"][:20]:
        print(f"  {row['outcome']}: {row['variant']} ({'+'.join(row['mutations'])}): "
              f"{row['message']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit per file")
    parser.add_argument("--memory-mb", type=int, default=1024, help="memory limit per file")
    parser.add_argument("--no-shared", action="store_true", help="generated sources only")
    parser.add_argument("--out", type=Path, default=OUT / "fuzz_ingest.json")
    args = parser.parse_args()
    report = run(args.variants, args.seed, args.jobs, args.seconds, args.memory_mb,
                 keep=OUT / "fuzz_cases", use_shared=not args.no_shared)
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
