"""`folio serve`: the local browser app.

Until the full chat UI lands this serves a real, minimal library page:
the document list and hybrid search, with pending embeddings computed in
the background. It binds loopback only.
"""
from __future__ import annotations

import ipaddress
import os

import click

from .settings import Settings

LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_app(settings: Settings):
    """The Gradio Blocks app; separate from launching so tests can drive it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from engine.embedder import Embedder
    from engine.search import HybridSearcher
    from storage import documents, open_db

    embed_config = settings.embedder_config()
    state: dict = {}

    def searcher() -> HybridSearcher:
        # One connection per worker thread: SQLite connections are not shared.
        import threading
        key = threading.get_ident()
        if key not in state:
            state[key] = HybridSearcher(open_db(settings.db_path), embed_config.model_name,
                                        lambda: Embedder(embed_config))
        return state[key]

    def library() -> list[list]:
        db = searcher().db
        return [[d.id, d.display_name, d.kind, d.pages or d.lines, d.segments,
                 d.error or d.status] for d in documents.list_documents(db)]

    def run_search(query: str) -> list[list]:
        if not query.strip():
            return []
        hits = searcher().search(query, k=10)
        return [[h.segment.document_name,
                 f"p. {h.segment.page}" if h.segment.page
                 else f"{h.segment.line_start}-{h.segment.line_end}",
                 " ".join(h.segment.text.split())[:300], round(h.score, 4)] for h in hits]

    with gr.Blocks(title="Folio") as app:
        gr.Markdown("# Folio\nAdd documents with `folio ingest PATH`; search them here. "
                    "The chat with cited answers is coming next.")
        table = gr.Dataframe(headers=["#", "document", "kind", "pages/lines", "segments",
                                      "status"], value=library, interactive=False)
        query = gr.Textbox(label="Search", placeholder="keywords or a question")
        results = gr.Dataframe(headers=["document", "where", "text", "score"],
                               interactive=False)
        query.submit(run_search, query, results, api_name="search")
        gr.Button("Refresh library").click(library, None, table, api_name="list")
    return app


def serve(settings: Settings, *, host: str, port: int) -> None:
    if not is_loopback(host):
        raise click.ClickException(
            f"refusing to bind {host}: Folio serves private documents and this "
            "version only listens on loopback (127.0.0.1)")
    from engine.embed_worker import BackgroundEmbedder
    from engine.embedder import Embedder
    from storage import open_db

    open_db(settings.db_path).close()   # create / migrate before serving
    config = settings.embedder_config()
    worker = BackgroundEmbedder(settings.db_path, config.model_name,
                                lambda: Embedder(config),
                                dtype=settings.embedding_dtype).start()
    app = build_app(settings)
    click.echo(f"Folio is serving {settings.home} at http://{host}:{port}")
    try:
        app.launch(server_name=host, server_port=port, share=False, inbrowser=False)
    finally:
        worker.stop()
