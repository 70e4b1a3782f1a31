"""`folio serve`: the local browser app.

Layout and wiring only: what each control does lives in `handlers`, how
things look in the `*_view` modules, the background work in `runtime`.

Deliberate API (for `gradio_client`; every other event is private):
  /ingest  (files: list of files, password: str) -> list of per-file outcomes;
           returns once the files are parsed (searchable), embedding goes on.
  /ask     (question: str, document_ids: list[int] | None, conversation_id: int | None)
           -> streams {"status", "answer"}; the last message adds citations,
           sources and the conversation id.
  /list    () -> the library: id, name, kind, status, pages, lines, segments...
"""
# No `from __future__ import annotations`: Gradio reads the gr.Request and
# gr.EventData hints of the handlers below at run time.
import ipaddress
from pathlib import Path

import click

from .settings import Settings

LOOPBACK_NAMES = {"localhost"}
PRIVATE = "private"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None, file: Path | None = None) -> list[tuple[str, str]]:
    """`user:pass` and/or a file of `user:pass` lines (blank and # lines skipped)."""
    pairs: list[str] = []
    if value:
        pairs.append(value)
    if file is not None:
        try:
            lines = Path(file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise click.ClickException(f"--auth-file {file}: cannot read ({exc.strerror})")
        pairs += [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    out = []
    for pair in pairs:
        user, sep, password = pair.partition(":")
        if not sep or not user or not password:
            raise click.ClickException("--auth takes USER:PASSWORD (both non-empty)")
        out.append((user, password))
    return out


def check_bind(host: str, auth: list[tuple[str, str]]) -> None:
    if not is_loopback(host) and not auth:
        raise click.ClickException(
            f"refusing to bind {host} without a password: Folio serves private documents. "
            "Use --auth USER:PASSWORD (or --auth-file FILE) to let other machines in, "
            "or keep the default 127.0.0.1")


def build_app(settings: Settings, runtime=None):
    """The Gradio Blocks app; separate from launching so tests can drive it."""
    from .runtime import Runtime, prepare_environment

    if runtime is None:
        prepare_environment(settings)
        runtime = Runtime(settings).start(preload_model=False)
    import gradio as gr

    from . import inspector, ui_assets
    from .chat_view import EMPTY_CHAT
    from .handlers import Handlers, scope_value
    from .machine import probe

    h = Handlers(runtime)

    with gr.Blocks(title="Folio", analytics_enabled=False) as app:
        conv = gr.State(None)
        insp = gr.State(None)
        library_sig = gr.State("")
        pending = gr.State("")
        drop = gr.HTML("", js_on_load=ui_assets.DROP_JS, elem_id="folio-drop")
        with gr.Row(equal_height=True):
            gr.Markdown("# Folio", elem_id="folio-title")
            summary = gr.Markdown("", elem_id="folio-summary")
            theme_btn = gr.Button("Light / dark", size="sm", scale=0)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row():
                    with gr.Column(scale=5):
                        with gr.Row():
                            history = gr.Dropdown(label="Conversation", choices=[],
                                                  scale=4, min_width=220,
                                                  elem_id="folio-history")
                            with gr.Column(scale=1, min_width=120):
                                new_btn = gr.Button("New chat", size="sm")
                                clear_btn = gr.Button("Clear", size="sm", elem_id="folio-clear")
                                export_btn = gr.DownloadButton("Export .md", size="sm",
                                                               elem_id="folio-export")
                        chat = gr.HTML(EMPTY_CHAT, js_on_load=ui_assets.CHAT_JS,
                                       elem_id="folio-chat", autoscroll=True,
                                       max_height=620, min_height=300)
                        scope = gr.Dropdown(label="Ask only these documents (empty: all)",
                                            choices=[], multiselect=True,
                                            elem_id="folio-scope")
                        with gr.Row():
                            question = gr.Textbox(show_label=False, scale=8, lines=1,
                                                  placeholder="Ask about your documents "
                                                              "(Enter to send)",
                                                  elem_id="folio-question")
                            send = gr.Button("Ask", variant="primary", scale=1, min_width=70,
                                             elem_id="folio-send")
                            stop = gr.Button("Stop", variant="stop", scale=1, min_width=70,
                                             elem_id="folio-stop")
                    with gr.Column(scale=4):
                        with gr.Row():
                            prev_btn = gr.Button("◀ page", size="sm", min_width=60,
                                                 elem_id="folio-prev")
                            next_btn = gr.Button("page ▶", size="sm", min_width=60,
                                                 elem_id="folio-next")
                            zoom_out = gr.Button("zoom −", size="sm", min_width=60,
                                                 elem_id="folio-zoom-out")
                            zoom_in = gr.Button("zoom +", size="sm", min_width=60,
                                                elem_id="folio-zoom-in")
                        inspect = gr.HTML(inspector.EMPTY, js_on_load=ui_assets.INSPECTOR_JS,
                                          elem_id="folio-inspector")
            with gr.Tab("Library", id="library"):
                files = gr.File(label="Add files: PDF, code, text or .zip (or drop files and "
                                      "folders anywhere on the page)",
                                file_count="multiple", elem_id="folio-files", height=120)
                notice = gr.Markdown("", elem_id="folio-notice")
                with gr.Group(visible=False, elem_id="folio-locked") as locked_box:
                    gr.Markdown("**An encrypted PDF needs its password.** It is used to read "
                                "the file and kept only in memory.")
                    with gr.Row():
                        locked = gr.Dropdown(label="Encrypted PDF", choices=[], scale=2)
                        password = gr.Textbox(label="Password", type="password", scale=2,
                                              elem_id="folio-password")
                        unlock = gr.Button("Unlock", scale=0, elem_id="folio-unlock")
                library = gr.HTML("", js_on_load=ui_assets.LIBRARY_JS, elem_id="folio-library")
                forget = gr.Button("Clear finished notices", size="sm")
            with gr.Tab("Settings", id="settings"):
                gr.Markdown("**This machine**\n\n" + "\n".join(f"- {line}"
                                                               for line in probe().lines()))
                model_status = gr.Markdown(elem_id="folio-model-status")
                s = runtime.settings
                model = gr.Textbox(label="Answer model: a .gguf file or a Hugging Face folder "
                                         "(empty: the bundled Qwen2.5-Coder-0.5B)",
                                   value=str(s.model or ""))
                with gr.Row():
                    backend = gr.Dropdown(["auto", "llama.cpp", "sparse"], value=s.backend,
                                          label="Backend (sparse: cached KV, sparse attention)")
                    device = gr.Dropdown(["auto", "cpu", "gpu"], value=s.device, label="Device")
                    context = gr.Number(label="Context budget, tokens (0: adapt to this "
                                              "machine)", value=s.context_tokens or 0,
                                        precision=0, minimum=0)
                    upload_mb = gr.Number(label="Upload limit, MB (after restart)",
                                          value=s.max_upload_mb, precision=0, minimum=1)
                save = gr.Button("Save settings")
                saved = gr.Markdown()
        with gr.Column(visible=False):   # the API's own inputs, never shown
            api_files = gr.File(file_count="multiple")
            api_password = gr.Textbox()
            api_result = gr.JSON()
            api_button = gr.Button()

        # -- library --------------------------------------------------
        def refresh(sig: str):
            html, line, choices, locked_docs = h.library_state()
            new_sig = repr((choices, locked_docs))
            if new_sig == sig:
                return html, line, gr.skip(), gr.skip(), gr.skip(), sig
            return (html, line, gr.update(choices=choices),
                    gr.update(visible=bool(locked_docs)),
                    gr.update(choices=locked_docs,
                              value=locked_docs[0][1] if locked_docs else None), new_sig)

        library_outputs = [library, summary, scope, locked_box, locked, library_sig]
        gr.Timer(1.0).tick(refresh, library_sig, library_outputs, show_progress="hidden",
                           api_visibility=PRIVATE, concurrency_limit=None)

        def on_files(paths):
            ids = h.add_files(paths)
            return None, f"Added {len(ids)} file(s) to the queue." if ids else ""

        files.upload(on_files, files, [files, notice], api_visibility=PRIVATE) \
            .then(refresh, library_sig, library_outputs, api_visibility=PRIVATE)

        def on_drop(evt: gr.EventData):
            ids = h.add_dropped(getattr(evt, "_data", {}).get("files") or [])
            return f"Added {len(ids)} item(s) to the queue." if ids else ""

        # "multiple": a second drop while the first is still being stored
        # must not be ignored (Gradio's default runs an event once at a time).
        drop.upload(on_drop, None, notice, api_visibility=PRIVATE, trigger_mode="multiple") \
            .then(refresh, library_sig, library_outputs, api_visibility=PRIVATE)

        def on_action(evt: gr.EventData):
            return h.library_action((getattr(evt, "_data", None) or {}).get("action", ""))

        library.click(on_action, None, notice, api_visibility=PRIVATE) \
            .then(lambda: refresh(""), None, library_outputs, api_visibility=PRIVATE)
        unlock.click(lambda doc, pw: (h.unlock(doc, pw), ""), [locked, password],
                     [notice, password], api_visibility=PRIVATE)
        forget.click(lambda: (runtime.queue.forget_finished(), "")[1], None, notice,
                     api_visibility=PRIVATE)

        # -- chat -----------------------------------------------------
        def load_session():
            latest = h.latest_conversation()
            return (latest, h.chat_html(latest),
                    gr.update(choices=h.conversation_choices(), value=latest), h.export(latest))

        app.load(load_session, None, [conv, chat, history, export_btn], api_visibility=PRIVATE) \
            .then(lambda: refresh(""), None, library_outputs, api_visibility=PRIVATE)

        def take(q: str):
            return q.strip(), ""

        def run(q: str, chosen, conversation, request: gr.Request):
            if not q:
                yield gr.skip(), gr.skip()
                return
            session = getattr(request, "session_hash", "") or ""
            yield from h.ask(q, scope_value(chosen), conversation, session)

        def after(conversation):
            return gr.update(choices=h.conversation_choices(), value=conversation), \
                h.export(conversation)

        for trigger in (question.submit, send.click):
            trigger(take, question, [pending, question], api_visibility=PRIVATE) \
                .then(run, [pending, scope, conv], [chat, conv], api_visibility=PRIVATE,
                      concurrency_limit=None, show_progress="hidden") \
                .then(after, conv, [history, export_btn], api_visibility=PRIVATE)

        def on_stop(request: gr.Request):
            runtime.answers.stop(getattr(request, "session_hash", "") or "")

        stop.click(on_stop, None, None, api_visibility=PRIVATE, concurrency_limit=None)

        def pick(conversation):
            return conversation, h.chat_html(conversation), h.export(conversation)

        history.input(pick, history, [conv, chat, export_btn], api_visibility=PRIVATE)
        new_btn.click(lambda: (None, EMPTY_CHAT, gr.update(value=None), None), None,
                      [conv, chat, history, export_btn], api_visibility=PRIVATE)

        def clear(conversation):
            h.delete_conversation(conversation)
            return (None, EMPTY_CHAT, gr.update(choices=h.conversation_choices(), value=None),
                    None, inspector.EMPTY, None)

        clear_btn.click(clear, conv, [conv, chat, history, export_btn, inspect, insp],
                        api_visibility=PRIVATE)

        # -- inspector ------------------------------------------------
        def on_cite(conversation, evt: gr.EventData):
            return h.inspect((getattr(evt, "_data", None) or {}).get("cite", ""), conversation)

        chat.click(on_cite, conv, [inspect, insp], api_visibility=PRIVATE)
        prev_btn.click(lambda st: h.page(st, -1), insp, [inspect, insp], api_visibility=PRIVATE)
        next_btn.click(lambda st: h.page(st, +1), insp, [inspect, insp], api_visibility=PRIVATE)
        zoom_out.click(lambda st: h.zoom(st, 1 / 1.25), insp, [inspect, insp],
                       api_visibility=PRIVATE)
        zoom_in.click(lambda st: h.zoom(st, 1.25), insp, [inspect, insp],
                      api_visibility=PRIVATE)

        # -- settings -------------------------------------------------
        def save_settings(model_path, backend_name, device_name, budget, limit):
            from .settings_panel import apply_settings

            message, new = apply_settings(runtime.settings, model_path, backend_name,
                                          device_name, budget, limit)
            if new is not None:
                runtime.settings = new
                runtime.answers.reconfigure(new)
            return message, runtime.answers.status()

        save.click(save_settings, [model, backend, device, context, upload_mb],
                   [saved, model_status], api_visibility=PRIVATE)
        gr.Timer(2.0).tick(runtime.answers.status, None, model_status, show_progress="hidden",
                           api_visibility=PRIVATE, concurrency_limit=None)
        theme_btn.click(None, None, None, api_visibility=PRIVATE,
                        js="() => { document.body.classList.toggle('dark'); }")

        # -- the documented API ---------------------------------------
        api_button.click(h.api_ingest, [api_files, api_password], api_result,
                         api_name="ingest", api_description="Add files; returns per-file "
                         "outcomes once they are parsed (embedding continues).")

        def ask(question: str, document_ids: list[int] | None = None,
                conversation_id: int | None = None) -> dict:
            """Answer a question from the library, streaming; the last message
            carries citations (page boxes or line ranges) and sources."""
            yield from h.api_ask(question, document_ids, conversation_id)

        def list_documents() -> list[dict]:
            """The library: every document with its status."""
            return h.api_list()

        gr.api(ask, api_name="ask", concurrency_limit=None)
        gr.api(list_documents, api_name="list", concurrency_limit=None)
    app.folio_runtime = runtime
    return app


def private_paths(settings: Settings) -> list[str]:
    """What Gradio must never serve, whatever else is allowed: the library
    itself (database, stored uploads, caches, models, settings)."""
    home = settings.home
    db = settings.db_path
    return [str(p) for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"),
                             home / "uploads", settings.kv_dir, settings.models_dir,
                             home / "settings.toml")]


def launch_options(settings: Settings, host: str, port: int,
                   auth: list[tuple[str, str]] | None) -> dict:
    """Gradio's launch arguments: only the exports folder (and Gradio's own
    upload cache, inside the data dir) is served; URL fetching is refused."""
    from starlette.middleware import Middleware

    from .guard import LocalFilesOnly
    from .runtime import gradio_temp_dir
    from .ui_assets import CSS, HEAD

    return dict(server_name=host, server_port=port, share=False, inbrowser=False,
                auth=auth or None, max_file_size=settings.max_upload_mb * 2**20,
                allowed_paths=[str(settings.home / "tmp" / "exports")],
                blocked_paths=private_paths(settings),
                app_kwargs={"middleware": [Middleware(LocalFilesOnly,
                                                      upload_dir=gradio_temp_dir(settings))]},
                ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False,
                footer_links=["api"], css=CSS, head=HEAD, show_error=True,
                auth_message="Folio: sign in to reach this library" if auth else None)


def serve(settings: Settings, *, host: str, port: int,
          auth: list[tuple[str, str]] | None = None) -> None:
    check_bind(host, auth or [])
    from .runtime import Runtime, prepare_environment

    prepare_environment(settings)
    runtime = Runtime(settings).start()
    app = build_app(settings, runtime)
    where = f"http://{host}:{port}"
    click.echo(f"Folio is serving {settings.home} at {where}"
               + (" (password required)" if auth else ""))
    try:
        app.queue(default_concurrency_limit=4)
        app.launch(**launch_options(settings, host, port, auth))
    finally:
        runtime.stop()
