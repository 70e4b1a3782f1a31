"""Parse a whole PDF: open, sample typography, parse pages, assign sections.

One process parses a text-heavy manual at roughly 150-190 pages/s; long
documents are parsed in page ranges by a small process pool (each worker
opens the file itself), which nearly doubles that. Results are consumed in
page order with a bounded number of ranges in flight, so memory stays
proportional to the output, and serial and parallel runs give identical
documents: a page depends only on the `PageContext` built up front.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import pymupdf

from ..budget import Deadline
from ..config import IngestConfig
from ..errors import IngestError
from ..hashing import sha256_file
from ..model import ParsedDocument, Segment
from ..progress import Progress, ProgressFn, no_progress
from .headings import SectionTracker, font_stats, sample_pages
from .lines import Line, extract_lines
from .ocr import ocr_enabled, tesseract_path
from .open import open_document, open_pdf
from .page import DensePage, PageContext, PageResult, failed_page, page_dict, parse_page

PARALLEL_MIN_PAGES = 150   # below this a pool's start-up is not worth it
WORKERS = 2
RANGE_PAGES = 32           # pages per task sent to a worker
MAX_PAGE_WARNINGS = 20
PROGRESS_INTERVAL = 0.05   # seconds: at most ~20 progress calls a second


def _toc_by_page(doc: pymupdf.Document, warnings: list[str]) -> dict[int, list[tuple[int, str]]]:
    """Outline entries grouped by 0-based page, in outline order."""
    try:
        toc = doc.get_toc(simple=True)
    except Exception:
        warnings.append("the table of contents could not be read")
        return {}
    out: dict[int, list[tuple[int, str]]] = {}
    for entry in toc:
        level, title, page = entry[0], entry[1], entry[2]
        title = " ".join(str(title).split())
        if page >= 1 and title and level >= 1:
            out.setdefault(page - 1, []).append((int(level), title))
    return out


def _sample(doc: pymupdf.Document, cache: dict[int, Any] | None,
            max_chars: int, deadline: Deadline) -> Iterator[tuple[list[Line], float]]:
    """Yield (lines, height) of the sampled pages; keep their dicts in `cache`."""
    for i in sample_pages(doc.page_count):
        deadline.check(f"while sampling page {i + 1} for typography")
        try:
            page = doc[i]
            raw = page_dict(page, max_chars)
        except DensePage as exc:   # not counted twice: the page is failed with this
            if cache is not None:
                cache[i] = exc
            continue
        except Exception:          # an unreadable page says so when parsed
            continue
        if cache is not None:
            cache[i] = raw
        rect = page.rect
        matrix = page.rotation_matrix if page.rotation else None
        lines, frame = extract_lines(raw, rect.width, rect.height, matrix)
        yield lines, frame.height


def _parse_one(doc: pymupdf.Document, index: int, ctx: PageContext,
               raw: dict[str, Any] | DensePage | None = None) -> PageResult:
    try:
        page = doc[index]
    except Exception as exc:
        return failed_page(index + 1, 0.0, 0.0, 0, exc)
    try:
        if isinstance(raw, DensePage):   # found while sampling
            raise raw
        return parse_page(page, ctx, raw)
    except Exception as exc:
        try:
            rect, rotation = page.rect, page.rotation
        except Exception:
            rect, rotation = pymupdf.Rect(), 0
        return failed_page(index + 1, rect.width, rect.height, rotation, exc)


# --- worker side -----------------------------------------------------------

_worker_doc: tuple[tuple[str, str | None], pymupdf.Document] | None = None


def _parse_range(path: str, password: str | None, ctx: PageContext,
                 indices: list[int]) -> list[PageResult]:
    """Worker task: parse some pages of the file, opened once per process."""
    global _worker_doc
    key = (path, password)
    if _worker_doc is None or _worker_doc[0] != key:
        if _worker_doc is not None:
            _worker_doc[1].close()
        _worker_doc = (key, open_document(Path(path), password))
    doc = _worker_doc[1]
    return [_parse_one(doc, i, ctx) for i in indices]


def _can_fork() -> bool:
    """Workers are forked: spawning them would re-import the caller's main
    module. Forking a process with other threads running (a web UI, perhaps
    inside MuPDF at that moment) can deadlock the child, so then we stay
    serial, which still parses well over 100 pages/s."""
    return ("fork" in multiprocessing.get_all_start_methods()
            and threading.active_count() == 1)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _parallel(path: Path, password: str | None, doc: pymupdf.Document, ctx: PageContext,
              pages: Sequence[int], workers: int) -> Iterator[PageResult]:
    """Page ranges on a process pool, yielded in page order; if the pool
    fails, the remaining pages are parsed here (same results, slower)."""
    ranges = [list(pages[k:k + RANGE_PAGES]) for k in range(0, len(pages), RANGE_PAGES)]
    window = 2 * workers
    done = 0
    try:
        with ProcessPoolExecutor(max_workers=workers,
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            pending: list[Future[list[PageResult]]] = []
            try:
                for indices in ranges:
                    # send only the outline entries of these pages
                    task_ctx = replace(ctx, toc={i: ctx.toc[i] for i in indices if i in ctx.toc})
                    pending.append(pool.submit(_parse_range, str(path), password, task_ctx,
                                               indices))
                    if len(pending) >= window:
                        for res in pending.pop(0).result():
                            done += 1
                            yield res
                while pending:
                    for res in pending.pop(0).result():
                        done += 1
                        yield res
            finally:
                for fut in pending:
                    fut.cancel()
    except (BrokenProcessPool, OSError, RuntimeError, IngestError):
        yield from _serial(doc, ctx, pages[done:], {})


def _serial(doc: pymupdf.Document, ctx: PageContext, pages: Sequence[int],
            cache: dict[int, Any]) -> Iterator[PageResult]:
    for i in pages:
        yield _parse_one(doc, i, ctx, cache.pop(i, None))


def _iter_pages(path: Path, password: str | None, doc: pymupdf.Document,
                ctx: PageContext, pages: Sequence[int],
                cache: dict[int, Any], workers: int | None) -> Iterator[PageResult]:
    if workers is None:
        workers = WORKERS if (len(pages) >= PARALLEL_MIN_PAGES
                              and _available_cpus() >= 2) else 1
    if workers > 1 and len(pages) > RANGE_PAGES and _can_fork():
        cache.clear()
        return _parallel(path, password, doc, ctx, pages, workers)
    return _serial(doc, ctx, pages, cache)


def _context(doc: pymupdf.Document, config: IngestConfig, warnings: list[str],
             cache: dict[int, Any] | None, deadline: Deadline) -> PageContext:
    stats = font_stats(_sample(doc, cache, config.max_page_chars, deadline))
    return PageContext(config=config, stats=stats, toc=_toc_by_page(doc, warnings),
                       ocr=ocr_enabled(config) and tesseract_path() is not None)


def _no_text_warning(scanned: int, total: int, config: IngestConfig, ocr_ran: bool) -> str:
    """E.g. "3 of 6 pages have no text layer; install tesseract to OCR them"."""
    them = "them" if scanned > 1 else "it"
    head = (f"{scanned} of {total} {'pages' if total > 1 else 'page'} "
            f"{'have' if scanned > 1 else 'has'} no text layer")
    if ocr_ran:
        return f"{head}; OCR found no text on {them}"
    if tesseract_path() is None:
        if config.ocr:
            return f"{head}; OCR was requested but tesseract is not installed"
        return f"{head}; install tesseract to OCR {them}"
    return f"{head}; OCR is turned off"


class _Reporter:
    def __init__(self, fn: ProgressFn, total: int, item: str):
        self.fn, self.total, self.item = fn, total, item
        self.last = 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done >= self.total or now - self.last >= PROGRESS_INTERVAL:
            self.last = now
            self.fn(Progress(stage="parse", done=done, total=self.total,
                             unit="pages", item=self.item))


def parse_pdf(path: Path, *, password: str | None = None,
              config: IngestConfig | None = None,
              progress: ProgressFn = no_progress,
              workers: int | None = None) -> ParsedDocument:
    """Parse a PDF into pages (text in reading order) and segments.

    Raises PasswordRequired, WrongPassword, CorruptFile, EmptyDocument or
    TooLarge or TimeLimitExceeded (all naming the file). `workers`
    overrides the automatic choice between serial and parallel parsing (1
    forces serial).
    """
    config = config or IngestConfig()
    path = Path(path)
    deadline = Deadline(path, config.max_seconds_per_document)
    opened = open_pdf(path, password, config)
    doc = opened.doc
    warnings = list(opened.warnings)
    try:
        n = doc.page_count
        title = ((doc.metadata or {}).get("title") or "").strip() or None
        cache: dict[int, Any] = {}
        ctx = _context(doc, config, warnings, cache, deadline)
        report = _Reporter(progress, n, path.name)
        report(0)
        pages, segments = [], []
        page_warnings: list[str] = []
        scanned = 0
        tracker = SectionTracker()
        deadline.check(f"at page 1 of {n:,}")
        results = _iter_pages(path, password, doc, ctx, range(n), cache, workers)
        try:
            for done, res in enumerate(results, 1):
                deadline.check(f"at page {done} of {n:,}")
                _assign_sections(res, tracker)
                pages.append(res.info)
                segments.extend(res.segments)
                page_warnings.extend(res.warnings)
                scanned += res.scanned
                report(done)
        finally:
            close = getattr(results, "close", None)
            if close is not None:   # stop a worker pool now, not at garbage collection
                close()
    finally:
        doc.close()
    if len(page_warnings) > MAX_PAGE_WARNINGS:
        extra = len(page_warnings) - MAX_PAGE_WARNINGS
        page_warnings = page_warnings[:MAX_PAGE_WARNINGS] + [f"... and {extra} more page warnings"]
    warnings.extend(page_warnings)
    if scanned:
        warnings.append(_no_text_warning(scanned, n, config, ctx.ocr))
    elif not segments:
        warnings.append("no text was found in the document")
    return ParsedDocument(
        path=path, display_name=path.name, kind="pdf", mime="application/pdf",
        sha256=sha256_file(path), size=path.stat().st_size, segments=segments,
        pages=pages, title=title, warnings=warnings)


def _shared_prefix(paths: list[list[str]]) -> list[str]:
    shared = paths[0]
    for path in paths[1:]:
        n = 0
        while n < min(len(shared), len(path)) and shared[n] == path[n]:
            n += 1
        shared = shared[:n]
    return shared


def _assign_sections(res: PageResult, tracker: SectionTracker) -> None:
    """Section paths in page order. A segment running over several small
    sub-sections (see `segments._Packer.runs_on`) gets the path they share:
    "Usage" + "Arguments" of an entry is filed under the entry."""
    for event in res.page_events:
        tracker.apply(event)
    for seg, parts in zip(res.segments, res.events):
        paths = []
        for events in parts:
            for event in events:
                tracker.apply(event)
            paths.append(tracker.path)
        seg.section = _shared_prefix(paths)


def parse_pages(path: Path, pages: Sequence[int], *, password: str | None = None,
                config: IngestConfig | None = None,
                workers: int | None = 1) -> tuple[list[PageResult], list[Segment]]:
    """Parse selected 0-based pages (for tests and benchmarks): the same
    per-page results as `parse_pdf`, with sections carried over `pages` only."""
    config = config or IngestConfig()
    path = Path(path)
    opened = open_pdf(path, password, config)
    doc = opened.doc
    try:
        cache: dict[int, Any] = {}
        ctx = _context(doc, config, [], cache, Deadline(path, config.max_seconds_per_document))
        tracker = SectionTracker()
        results = []
        for res in _iter_pages(path, password, doc, ctx, list(pages), cache, workers):
            _assign_sections(res, tracker)
            results.append(res)
    finally:
        doc.close()
    return results, [s for r in results for s in r.segments]
