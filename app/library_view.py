"""The library as rows with a live status, merged from three sources:
stored documents (SQLite), embedding progress, and the ingestion queue."""
from __future__ import annotations

import html
from dataclasses import dataclass

from storage.embeddings import EmbeddingProgress
from storage.records import DocumentRecord

from .ingest_queue import LOCKED_CODES, Item

_ERROR_TITLES = {
    "password-required": "password required: enter it below",
    "wrong-password": "wrong password: try again below",
    "corrupt": "corrupt file",
    "unsupported": "unsupported type",
    "too-large": "too large",
    "empty": "empty",
    "binary": "binary file",
    "encoding": "unreadable text encoding",
    "unreadable": "cannot read the file",
}


@dataclass
class Row:
    key: str                    # "doc-12" or "item-3"
    name: str
    kind: str
    size: str                   # "12 pages" / "340 lines"
    segments: str
    added: str
    status: str                 # "queued", "parsing", "embedding", "ready", "error", ...
    detail: str                 # the words shown
    notes: list[str]
    document_id: int | None = None
    percent: int | None = None


def item_status(item: Item) -> tuple[str, str]:
    if item.state == "queued":
        return "queued", "queued"
    if item.state == "scanning":
        return "queued", "scanning the folder"
    if item.state == "parsing":
        if item.total:
            return "parsing", f"parsing page {min(item.done + 1, item.total)} of {item.total}"
        return "parsing", "parsing"
    if item.state == "duplicate":
        return "duplicate", item.message or "already in the library"
    if item.state == "stored":
        return "searchable", "searchable"
    if item.state == "notice":
        return "notice", item.message or ""
    return "error", error_text(item.error_code, item.message)


def error_text(code: str | None, message: str | None) -> str:
    title = _ERROR_TITLES.get(code or "", "")
    message = message or ""
    if code in LOCKED_CODES:
        return title
    if title and title.split(":")[0] not in message.lower():
        return f"{title}: {message}" if message else title
    return message or title or "error"


def document_status(doc: DocumentRecord, progress: EmbeddingProgress | None,
                    embed_error: str | None = None) -> tuple[str, str, int | None]:
    """(status, words, percent) for a stored document."""
    if doc.status == "error":
        return "error", error_text(doc.error_code, doc.error), None
    if doc.status == "ready":
        return "ready", "ready", 100
    if embed_error:
        return "searchable", f"searchable by keywords; {embed_error}", None
    if progress and progress.total:
        pct = 100 * progress.done // progress.total
        return "embedding", f"searchable · embedding {pct}%", pct
    return "embedding", "searchable · embedding", 0


def build_rows(docs: list[DocumentRecord], progress: dict[int, EmbeddingProgress],
               items: list[Item], embed_error: str | None = None) -> list[Row]:
    """Active and unresolved queue items first (newest first), then documents."""
    rows: list[Row] = []
    doc_ids = {d.id for d in docs}
    reindexing = {i.replace_id: i for i in items if i.active and i.replace_id is not None}
    for item in sorted(items, key=lambda i: -i.id):
        shown_as_doc = item.document_id in doc_ids and item.state in ("stored", "error")
        if shown_as_doc or item.replace_id in doc_ids and item.active:
            continue
        status, words = item_status(item)
        pct = int(100 * item.done / item.total) if item.total and status == "parsing" else None
        rows.append(Row(f"item-{item.id}", item.name, "", "", "", "just now", status, words,
                        [], item.document_id if item.state == "duplicate" else None, pct))
    for doc in sorted(docs, key=lambda d: d.id, reverse=True):
        status, words, pct = document_status(doc, progress.get(doc.id), embed_error)
        if doc.id in reindexing:
            status, words = item_status(reindexing[doc.id])
            words = f"re-indexing: {words}"
        size = ""
        if doc.status != "error":
            size = (_count(doc.pages, "page") if doc.kind == "pdf"
                    else _count(doc.lines, "line"))
        rows.append(Row(f"doc-{doc.id}", doc.display_name,
                        doc.language if doc.kind == "code" and doc.language else doc.kind,
                        size, str(doc.segments) if doc.status != "error" else "",
                        doc.created_at[:16].replace("T", " "), status, words,
                        list(doc.warnings), doc.id, pct))
    return rows


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(rows: list[Row]) -> str:
    """One line for the chat tab: what is ready and what is still coming."""
    docs = [r for r in rows if r.key.startswith("doc-")]
    if not docs and not any(r.status in ("queued", "parsing") for r in rows):
        return "The library is empty: drop PDFs, code, folders or a zip anywhere on the page."
    counts: dict[str, int] = {}
    for r in rows:
        if r.key.startswith("doc-") or r.status in ("queued", "parsing"):
            counts[r.status] = counts.get(r.status, 0) + 1
    order = ["ready", "embedding", "searchable", "parsing", "queued", "error"]
    words = {"ready": "ready", "embedding": "embedding", "searchable": "searchable",
             "parsing": "parsing", "queued": "queued", "error": "with errors"}
    parts = [f"{counts[s]} {words[s]}" for s in order if counts.get(s)]
    return f"{len(docs)} document{'s' if len(docs) != 1 else ''}: " + ", ".join(parts)


def _actions(row: Row) -> str:
    if row.document_id is None or not row.key.startswith("doc-"):
        return ""
    ident = row.document_id
    reindex = (f'<button type="button" class="folio-act" data-action="reindex:{ident}" '
               f'title="parse this file again">re-index</button>' if row.status != "error"
               else "")
    return (reindex + f'<button type="button" class="folio-act folio-danger" '
            f'data-action="remove:{ident}" title="remove from the library">remove</button>')


def rows_html(rows: list[Row]) -> str:
    if not rows:
        return ('<div class="folio-empty"><h3>No documents yet</h3><p>Drop PDFs, source '
                'code, text files, whole folders or a .zip <b>anywhere on this page</b>, or '
                'use <b>Add files</b>. Each file shows its progress here; you can ask '
                'questions while the rest are still being read.</p></div>')
    body = []
    for r in rows:
        bar = (f'<div class="folio-bar"><span style="width:{r.percent}%"></span></div>'
               if r.percent is not None and r.status in ("parsing", "embedding") else "")
        notes = "".join(f'<div class="folio-note">{html.escape(n)}</div>' for n in r.notes)
        body.append(
            f'<tr data-key="{r.key}" data-status="{r.status}">'
            f'<td class="folio-name" title="{html.escape(r.name)}">{html.escape(r.name)}</td>'
            f'<td>{html.escape(r.kind)}</td><td>{html.escape(r.size)}</td>'
            f'<td>{html.escape(r.segments)}</td><td>{html.escape(r.added)}</td>'
            f'<td class="folio-status folio-{r.status}">{html.escape(r.detail)}{bar}{notes}</td>'
            f'<td class="folio-actions">{_actions(r)}</td></tr>')
    return ('<table class="folio-library"><thead><tr><th>document</th><th>kind</th>'
            '<th>pages / lines</th><th>segments</th><th>added (UTC)</th><th>status</th>'
            '<th></th></tr></thead><tbody>' + "".join(body) + '</tbody></table>')


def locked_documents(docs: list[DocumentRecord]) -> list[tuple[str, int]]:
    """(name, id) of PDFs waiting for a password."""
    return [(d.display_name, d.id) for d in docs
            if d.status == "error" and d.error_code in LOCKED_CODES]
