"""The `folio` command: ingest, ls, rm, search, ask, embed, serve."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from .settings import Settings, SettingsError


class Context:
    """Lazily opened library, so `folio --help` never touches the disk."""

    def __init__(self, home: str | None):
        self.home = home
        self._settings: Settings | None = None
        self._db = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings.load(self.home)
            except SettingsError as exc:
                raise click.ClickException(str(exc)) from exc
        return self._settings

    @property
    def db(self):
        if self._db is None:
            from storage import SchemaTooNew, open_db
            try:
                self._db = open_db(self.settings.db_path)
            except SchemaTooNew as exc:
                raise click.ClickException(str(exc)) from exc
        return self._db


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), envvar="FOLIO_HOME",
              help="Data directory (default: a per-user folder; env FOLIO_HOME).")
@click.version_option(package_name="folio")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """Folio: ask questions of your PDFs and code, with cited sources."""
    ctx.obj = Context(home)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--password", help="Password for encrypted PDFs in this batch.")
@click.option("--no-embed", is_flag=True,
              help="Store text only (searchable by keywords now); embed later with `folio embed`.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--kv", "build_kv", is_flag=True,
              help="Also build the sparse engine's stored KV cache of the added documents "
                   "now (see `folio kv`).")
@pass_context
def ingest(obj: Context, paths: tuple[Path, ...], password: str | None, no_embed: bool,
           quiet: bool, build_kv: bool) -> None:
    """Add files or folders (PDF, source code, text) to the library."""
    from engine.indexer import ingest_paths

    from .progress_bar import TerminalProgress

    bar = TerminalProgress(quiet=quiet)
    report = ingest_paths(obj.db, list(paths), password=password,
                          config=obj.settings.ingest_config(), progress=bar)
    bar.finish()
    for outcome in report.outcomes:
        mark = {"added": "+", "replaced": "~", "duplicate": "=", "error": "!"}[outcome.status]
        click.echo(f"{mark} {outcome.message}")
        for warning in outcome.warnings:
            click.echo(f"    note: {warning}")
    for skipped in report.skipped:
        click.echo(f"- skipped {skipped.path}: {skipped.reason}", err=True)
    click.echo(report.summary())
    if not no_embed and (report.count("added") or report.count("replaced")):
        _embed(obj, quiet)
    if build_kv:
        fresh = [o.document_id for o in report.outcomes
                 if o.status in ("added", "replaced", "duplicate") and o.document_id is not None]
        _build_kv(obj, fresh, None, obj.settings.sparse_mode == "document")
    if report.outcomes and report.count("error") == len(report.outcomes):
        sys.exit(1)


def _embed(obj: Context, quiet: bool) -> None:
    from engine.embed_worker import embed_pending
    from engine.embedder import Embedder, EmbedderError

    from .progress_bar import TerminalProgress

    bar = TerminalProgress(quiet=quiet)
    try:
        embedder = Embedder(obj.settings.embedder_config())
        run = embed_pending(obj.db, embedder, dtype=obj.settings.embedding_dtype, progress=bar)
    except EmbedderError as exc:
        raise click.ClickException(f"{exc}; keyword search still works") from exc
    except KeyboardInterrupt:
        bar.finish()
        raise click.ClickException(
            "embedding interrupted; what was done is kept - run `folio embed` to resume")
    bar.finish()
    if run.embedded:
        click.echo(f"embedded {run.embedded} segments in {run.seconds:.1f}s")


def _build_kv(obj: Context, document_ids: list[int], model: Path | None,
              whole_document: bool) -> None:
    from dataclasses import replace

    from engine.backends import ModelError
    from engine.kv_prebuild import prebuild_kv

    from .assistant import load_answer_backend
    if not document_ids:
        return
    settings = replace(obj.settings, backend="sparse",
                       sparse_mode="document" if whole_document else obj.settings.sparse_mode)
    try:
        backend = load_answer_backend(settings, model)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        prebuild_kv(backend, obj.db, document_ids, report=click.echo)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; the pages built so far are kept") from None
    finally:
        backend.close()


@cli.command(name="kv")
@click.argument("refs", nargs=-1)
@click.option("--model", type=click.Path(exists=True, path_type=Path),
              help="The model the caches are for: a Hugging Face folder or GGUF file "
                   "(default: the settings' model).")
@click.option("--whole-document", is_flag=True,
              help="Build the whole-document caches (`ask --whole-document`), not the pages.")
@pass_context
def kv(obj: Context, refs: tuple[str, ...], model: Path | None, whole_document: bool) -> None:
    """Build the sparse engine's stored KV cache of documents now (default:
    every document), so their first question starts as fast as a follow-up.
    On a GPU whole documents take seconds; on a CPU about half a minute per
    4,096-token page."""
    from storage import documents

    ids = _resolve_many(obj, refs) if refs else [
        d.id for d in documents.list_documents(obj.db, include_errors=False)]
    if not ids:
        raise click.ClickException("no documents to read")
    _build_kv(obj, ids, model, whole_document)


@cli.command()
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@pass_context
def embed(obj: Context, quiet: bool) -> None:
    """Compute embeddings still missing (resumes an interrupted run)."""
    _embed(obj, quiet)
    click.echo("all segments embedded")


@cli.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def list_documents(obj: Context, as_json: bool) -> None:
    """List the documents in the library."""
    from storage import documents, embeddings

    docs = documents.list_documents(obj.db)
    progress = embeddings.embedding_progress(obj.db, obj.settings.embedder_config().model_name)
    if as_json:
        rows = []
        for d in docs:
            row = asdict(d)
            p = progress.get(d.id)
            row["embedded"] = p.done if p else 0
            rows.append(row)
        click.echo(json.dumps(rows, indent=2))
        return
    if not docs:
        click.echo("the library is empty: add files with `folio ingest PATH`")
        return
    for d in docs:
        size = f"{d.pages} pages" if d.kind == "pdf" else f"{d.lines} lines"
        p = progress.get(d.id)
        state = d.status
        if d.status == "searchable" and p and p.total:
            state = f"searchable, embedding {100 * p.done // p.total}%"
        if d.status == "error":
            click.echo(f"#{d.id:<4} {d.display_name}  error: {d.error}")
            continue
        click.echo(f"#{d.id:<4} {d.display_name}  {d.kind}, {size}, {d.segments} segments, "
                   f"{state}, added {d.created_at[:16].replace('T', ' ')}")


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@pass_context
def rm(obj: Context, refs: tuple[str, ...]) -> None:
    """Remove documents (by id, name, path or sha256 prefix) and all derived data."""
    from engine.library import remove_document
    from storage import documents

    failed = False
    for ref in refs:
        found = documents.resolve_documents(obj.db, ref)
        if len(found) != 1:
            reason = "no such document" if not found else (
                "matches several documents: " + ", ".join(f"#{d.id} {d.path}" for d in found))
            click.echo(f"{ref}: {reason}", err=True)
            failed = True
            continue
        remove_document(obj.db, found[0].id, obj.settings.kv_dir)
        click.echo(f"removed #{found[0].id} {found[0].display_name}")
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("query")
@click.option("--doc", "docs", multiple=True, help="Limit to a document (repeatable).")
@click.option("-k", default=10, show_default=True, help="Number of results.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def search(obj: Context, query: str, docs: tuple[str, ...], k: int, as_json: bool) -> None:
    """Hybrid (keyword + semantic) search over the library."""
    from engine.embedder import Embedder
    from engine.search import HybridSearcher
    from storage import embeddings

    doc_ids = _resolve_many(obj, docs)
    config = obj.settings.embedder_config()
    has_vectors = embeddings.count_embeddings(obj.db, config.model_name) > 0
    searcher = HybridSearcher(obj.db, config.model_name,
                              (lambda: Embedder(config)) if has_vectors else None)
    hits = searcher.search(query, k=k, document_ids=doc_ids or None)
    if as_json:
        click.echo(json.dumps([_hit_json(h) for h in hits], indent=2))
        return
    if not hits:
        click.echo("no results")
        return
    for rank, hit in enumerate(hits, 1):
        seg = hit.segment
        where = f"p. {seg.page}" if seg.page else f"lines {seg.line_start}-{seg.line_end}"
        label = f" {seg.name}" if seg.name and seg.kind.startswith("code") else ""
        snippet = " ".join(seg.text.split())
        click.echo(f"{rank:>2}. {seg.document_name}, {where}{label}  [{hit.score:.4f}]")
        click.echo(f"    {snippet[:200]}{'...' if len(snippet) > 200 else ''}")


def _resolve_many(obj: Context, refs: tuple[str, ...]) -> list[int]:
    from storage import documents

    ids = []
    for ref in refs:
        found = documents.resolve_documents(obj.db, ref)
        if not found:
            raise click.ClickException(f"--doc {ref}: no such document")
        ids.extend(d.id for d in found)
    return ids


def _hit_json(hit) -> dict:
    seg = hit.segment
    return {
        "segment_id": seg.id, "document_id": seg.document_id,
        "document": seg.document_name, "path": seg.document_path, "kind": seg.kind,
        "page": seg.page, "char_start": seg.char_start, "char_end": seg.char_end,
        "line_start": seg.line_start, "line_end": seg.line_end, "name": seg.name,
        "section": seg.section, "text": seg.text,
        "boxes": [b.to_list() for b in seg.boxes],
        "score": hit.score, "bm25_rank": hit.bm25_rank, "dense_rank": hit.dense_rank,
        "dense_score": hit.dense_score,
    }


@cli.command()
@click.argument("question")
@click.option("--doc", "docs", multiple=True, help="Limit to a document (repeatable).")
@click.option("--model", type=click.Path(exists=True, path_type=Path),
              help="A GGUF file or Hugging Face folder to answer with (default: the bundled "
                   "model).")
@click.option("--backend", type=click.Choice(["auto", "llama.cpp", "sparse"]),
              help="llama.cpp, or the sparse engine (documents read once into a stored KV "
                   "cache); default: the settings' choice.")
@click.option("--whole-document", is_flag=True,
              help="Sparse engine: every block of the documents is a candidate, not only "
                   "the selected passages.")
@click.option("--context", "context_tokens", type=int,
              help="Tokens of sources to give the model (default: adapt to this machine).")
@click.option("--chat", "conversation", type=int,
              help="Continue conversation N (see --json output: conversation_id).")
@click.option("--json", "as_json", is_flag=True, help="The whole structured result as JSON.")
@pass_context
def ask(obj: Context, question: str, docs: tuple[str, ...], model: Path | None,
        backend: str | None, whole_document: bool, context_tokens: int | None,
        conversation: int | None, as_json: bool) -> None:
    """Answer a question from the library, citing the spans it used."""
    from engine.backends import ModelError
    from engine.answer_events import Done, Revise, Token
    from engine.prompts import QuestionError, clean_question
    from engine.qa import QAConfig
    from storage import conversations

    try:   # before the model loads: an empty or oversized question fails at once
        clean_question(question, QAConfig().max_question_chars)
    except QuestionError as exc:
        raise click.ClickException(str(exc)) from exc
    if conversation is not None and conversations.get_conversation(
            obj.db, conversation, with_turns=False) is None:
        raise click.ClickException(f"--chat {conversation}: no such conversation")
    doc_ids = _resolve_many(obj, docs)
    from dataclasses import replace

    from .assistant import build_answerer
    settings = replace(obj.settings, backend=backend or obj.settings.backend,
                       sparse_mode="document" if whole_document else obj.settings.sparse_mode)
    try:
        answerer = build_answerer(settings, obj.db, model=model,
                                  context_tokens=context_tokens)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    result = None
    streamed = False
    try:
        for event in answerer.ask(question, document_ids=doc_ids or None,
                                  conversation_id=conversation):
            if isinstance(event, Token) and not as_json:
                click.echo(event.text, nl=False)
                streamed = True
            elif isinstance(event, Revise) and not as_json:
                # what was printed cannot be taken back: the answer starts again below
                click.echo(f"\n{event.text}", nl=False)
            elif isinstance(event, Done):
                result = event.result
    except (QuestionError, ModelError) as exc:   # a clear message, not a traceback
        if streamed:
            click.echo()
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
        return
    if streamed:
        click.echo()
    if result.declined:
        if result.text != result.raw_text or not streamed:
            click.echo(f"\n{result.text}")
        click.echo(f"({result.reason})", err=True)
        return
    click.echo()
    seen = set()
    for citation in result.citations:
        key = (citation.label, citation.char_start)
        if key in seen:
            continue
        seen.add(key)
        quote = " ".join(citation.quote.split())
        if len(quote) > 160:
            quote = quote[:157] + "..."
        click.echo(f"[{citation.label}] {citation.location()}: \"{quote}\"")
    unsupported = [s for s in result.sentences if not s["supported"]]
    if unsupported:
        click.echo(f"({len(unsupported)} sentence(s) without support in the sources)", err=True)


@cli.command()
@click.option("--host", default=None,
              help="Interface to bind (default 127.0.0.1); any other needs --auth.")
@click.option("--port", default=None, type=int, help="Port (default 7860).")
@click.option("--auth", envvar="FOLIO_AUTH", metavar="USER:PASSWORD",
              help="Require this login (needed to bind beyond 127.0.0.1; env FOLIO_AUTH).")
@click.option("--auth-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file of USER:PASSWORD lines, instead of --auth.")
@click.option("--max-upload-mb", type=click.IntRange(min=1), default=None,
              help="Largest file the browser may upload (default 200).")
@pass_context
def serve(obj: Context, host: str | None, port: int | None, auth: str | None,
          auth_file: Path | None, max_upload_mb: int | None) -> None:
    """Start the local browser app."""
    from dataclasses import replace

    from .serve import parse_auth
    from .serve import serve as run_server

    settings = obj.settings
    if max_upload_mb is not None:
        settings = replace(settings, max_upload_mb=max_upload_mb)
    run_server(settings, host=host or settings.host, port=port or settings.port,
               auth=parse_auth(auth, auth_file))


def main() -> None:
    cli(prog_name="folio")
