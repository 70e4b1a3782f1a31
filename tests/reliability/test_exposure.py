"""Exposure: who can reach the server, what it serves, what it contacts.

Each check runs against a real `folio serve` process on a loopback port
(or, for the drop handler, the real runtime in process): the bind rules,
client file names that try to become paths, Gradio's file routes asked for
files outside the data dir, and every network address the process looks up
or connects to while it starts, serves the page, ingests, embeds and answers.
"""
from __future__ import annotations

import json
import os
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import click
import psutil
import pytest
from click.testing import CliRunner

from app.cli import cli
from app.serve import check_bind, serve
from app.settings import Settings

from served import FolioServer, free_port

SECRET = "FOLIO-SECRET-7f3a9c outside the data dir"


# -- binding ---------------------------------------------------------------

def test_default_bind_is_loopback():
    assert Settings().host == "127.0.0.1"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5",
                                  "myhost.example", "LOCALHOST.", "127.0.0.1.nip.io"])
def test_a_wide_bind_without_a_login_is_refused(host, tmp_path):
    with pytest.raises(click.ClickException, match=f"refusing to bind {host} without a "
                                                   "password.*--auth"):
        check_bind(host, [])
    check_bind(host, [("me", "pw")])


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_binds_need_no_login(host):
    check_bind(host, [])


def test_serve_refuses_before_opening_a_port(tmp_path):
    port = free_port()
    with pytest.raises(click.ClickException, match="refusing to bind 0.0.0.0"):
        serve(Settings(home=tmp_path), host="0.0.0.0", port=port)
    assert not (tmp_path / "folio.db").exists()        # refused before anything started
    # From the command line and from settings.toml alike.
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "serve", "--host", "0.0.0.0"])
    assert result.exit_code != 0 and "--auth" in result.output
    (tmp_path / "settings.toml").write_text('host = "0.0.0.0"\n')
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "serve"])
    assert result.exit_code != 0 and "refusing to bind 0.0.0.0" in result.output


# -- the running server ----------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`folio serve` with defaults (no model needed for these checks)."""
    root = tmp_path_factory.mktemp("exposure")
    secret = root / "secret.txt"
    secret.write_text(SECRET)
    srv = FolioServer(root / "home", model=root / "no-model.gguf").start()
    yield srv, secret
    srv.stop()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def upload(base: str, name: str, data: bytes) -> tuple[int, list[str] | bytes]:
    """POST one file to Gradio's upload route the way a browser does, with
    `name` sent verbatim as the multipart file name."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n')
    body = head.encode("utf-8", "surrogateescape") + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(base + "gradio_api/upload", data=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def call(base: str, api: str, data: list) -> tuple[int, object]:
    """One call of a documented endpoint over Gradio's plain HTTP API (no
    client library, so nothing is uploaded on the caller's behalf)."""
    request = urllib.request.Request(base + f"gradio_api/call/{api}",
                                     data=json.dumps({"data": data}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            event = json.loads(response.read())["event_id"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    status, stream = get(base + f"gradio_api/call/{api}/{event}")
    last = [line for line in stream.decode().splitlines() if line.startswith("data:")][-1]
    return status, json.loads(last[5:])


def file_data(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def test_the_server_listens_on_loopback_only(server):
    srv, _ = server
    listening = [c.laddr for c in psutil.Process(srv.process.pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip in ("127.0.0.1", "::1") for addr in listening), listening


CLIENT_NAMES = {   # what a client may send as a file name -> what Folio calls it
    "../../escape.txt": "escape.txt",
    "/etc/absolute.txt": "absolute.txt",
    "C:\\Users\\me\\..\\windows.txt": "windows.txt",
    "nul\x00byte.txt": "nulbyte.txt",
    "..%2f..%2fencoded.txt": "_2f.._2fencoded.txt",   # % is not kept; no separator is
    "y" * 240 + ".txt": "y" * 116 + ".txt",
}


def test_uploaded_names_never_become_paths(server):
    srv, _ = server
    home = srv.home
    outside_before = set(home.parent.rglob("*"))
    files = []
    for n, name in enumerate(CLIENT_NAMES):
        status, paths = upload(srv.url, name, f"upload {n} says hello\n".encode())
        assert status == 200, paths
        files.append(file_data(paths[0]))
    status, outcomes = call(srv.url, "ingest", [files, ""])
    assert status == 200 and isinstance(outcomes, list), (outcomes, srv.log()[-3000:])
    assert [o["state"] for o in outcomes[0]] == ["stored"] * len(files), outcomes
    names = {o["name"] for o in outcomes[0]}
    assert names == set(CLIENT_NAMES.values())
    status, library = call(srv.url, "list", [])
    assert {d["name"] for d in library[0]} >= names
    # Every stored copy sits in a generated folder under uploads/ ...
    stored = [p for p in (home / "uploads").rglob("*") if p.is_file()]
    assert len(stored) == len(CLIENT_NAMES)
    assert all(p.parent.name == "uploaded" and p.parent.parent.parent == home / "uploads"
               for p in stored)
    # ... and nothing appeared anywhere else beside the data dir.
    new_outside = {p for p in set(home.parent.rglob("*")) - outside_before
                   if home not in p.parents}
    assert not new_outside, new_outside


def test_file_arguments_must_be_uploads(server):
    """An event naming a server path or a URL instead of an upload is refused
    before Gradio copies or downloads it."""
    srv, secret = server
    for path in (str(secret), "/etc/passwd", str(srv.home / "tmp" / "gradio" / ".." / ".." /
                                                   "settings.toml"),
                 "http://203.0.113.9/report.pdf", "//203.0.113.9/report.pdf"):
        status, body = call(srv.url, "ingest", [[file_data(path)], ""])
        assert status == 403 and "uploaded to this server" in str(body), (path, body)
    status, library = call(srv.url, "list", [])
    assert not any(d["name"] in ("secret.txt", "passwd", "settings.toml", "report.pdf")
                   for d in library[0])


def test_file_routes_serve_nothing_outside_the_data_dir(server):
    srv, secret = server
    home = srv.home
    status, paths = upload(srv.url, "served.txt", b"an upload Gradio may show back")
    assert status == 200
    cached = paths[0]
    exports = home / "tmp" / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    (exports / "folio-conversation-1.md").write_text("# an exported conversation\n")
    # What the page legitimately fetches still works.
    assert get(srv.url + f"gradio_api/file={cached}") == (200, b"an upload Gradio may show back")
    assert get(srv.url + f"gradio_api/file={exports}/folio-conversation-1.md")[0] == 200
    # A stored document and the library itself are never served.
    status, _ = call(srv.url, "ingest", [[file_data(upload(srv.url, "doc.txt",
                                                             SECRET.encode())[1][0])], ""])
    [stored] = [p for p in (home / "uploads").rglob("doc.txt")]
    up = "/".join([".."] * len(exports.relative_to("/").parts))
    crafted = [
        "gradio_api/file=/etc/passwd", "file=/etc/passwd", "gradio_api/file/etc/passwd",
        "gradio_api/file=/proc/self/environ",
        f"gradio_api/file={secret}", f"gradio_api/file=%2F{str(secret)[1:]}",
        f"gradio_api/file={exports}/../../../{secret.name}",
        f"gradio_api/file={exports}/{up}{secret}",
        f"gradio_api/file={exports}/..%2f..%2f..%2f{secret.name}",
        f"gradio_api/file={exports}/%2e%2e/%2e%2e/%2e%2e/{secret.name}",
        f"gradio_api/file={exports}%2F..%2F..%2F..%2F{secret.name}",
        f"gradio_api/file={Path(cached).parent}/../../../{secret.name}",
        f"gradio_api/file={home}/folio.db", f"gradio_api/file={home}/folio.db-wal",
        f"gradio_api/file={exports}/../../folio.db", f"gradio_api/file={home}/settings.toml",
        f"gradio_api/file={stored}", f"gradio_api/file={exports}/../../uploads/"
                                     f"{stored.relative_to(home / 'uploads')}",
        f"gradio_api/file=file://{secret}", "gradio_api/file=https://203.0.113.9/x.png",
        "gradio_api/file/https://203.0.113.9/x.png", "gradio_api/proxy=https://x.hf.space/a",
        f"static/../../../../../../{secret}", f"assets/..%2f..%2f..%2f..%2f{secret}",
    ]
    for path in crafted:
        status, body = get(srv.url + path)
        assert status in (400, 403, 404), (path, status, body[:200])
        assert b"FOLIO-SECRET" not in body and b"root:" not in body and b"SQLite" not in body


# -- uploads from a dropped folder, through the real runtime ----------------

def test_dropped_names_stay_inside_their_folder(tmp_path, monkeypatch):
    """The page's drop handler takes a name and a relative path from the
    browser: each is cleaned, lands under a generated folder, and the folder
    that is queued is the one the cleaned files were written to."""
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    from app.handlers import Handlers
    from app.runtime import Runtime
    from storage import documents

    settings = Settings(home=tmp_path / "home")
    runtime = Runtime(settings).start(embed=False, preload_model=False)
    try:
        cache = runtime.upload_cache
        entries = []
        for n, (name, rel) in enumerate([
                ("a.py", "../../proj/a.py"), ("b.py", "/abs/proj/b.py"),
                ("c.py", "C:\\proj\\c.py"), ("d\x00.py", "proj\x00/d\x00.py"),
                ("e.py", "../../../../e.py"), ("f" * 300 + ".py", "proj/" + "f" * 300 + ".py"),
                ("g.py", "proj/../../../g.py")]):
            temp = cache / f"h{n}" / Path(name.replace("\x00", "")[:200]).name
            temp.parent.mkdir(parents=True)
            temp.write_text(f"def f{n}():\n    return {n}\n")
            entries.append({"name": name, "path": str(temp), "rel": rel})
        entries.append({"name": "outside.py", "path": str(tmp_path / "outside.py"),
                        "rel": "proj/outside.py"})
        (tmp_path / "outside.py").write_text("print('not an upload')\n")
        before = set(tmp_path.rglob("*"))
        Handlers(runtime).add_dropped(entries)
        assert runtime.queue.wait_idle(60)
        docs = documents.list_documents(runtime.db())
        uploads = (settings.home / "uploads").resolve()
        assert docs and all(Path(d.path).resolve().is_relative_to(uploads) for d in docs)
        # All seven uploads were ingested; the file outside the cache was not.
        assert sorted(Path(d.path).name for d in docs) == sorted(
            ["a.py", "b.py", "c.py", "d.py", "e.py", "g.py", "f" * 117 + ".py"])
        assert (tmp_path / "outside.py").exists()
        created = {p for p in set(tmp_path.rglob("*")) - before
                   if not p.is_relative_to(settings.home)}
        assert not created, created
        errors = [i for i in runtime.queue.snapshot() if i.state == "error"]
        assert [i.name for i in errors] == ["outside.py"]
    finally:
        runtime.stop()


# -- telemetry -------------------------------------------------------------

NET_HOOK = textwrap.dedent('''
    """Installed by test_exposure: logs every address this process resolves
    or connects to (Python-level sockets, whatever library opens them)."""
    import os
    import sys

    _LOG = os.environ["FOLIO_NET_LOG"]
    _EVENTS = {"socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
               "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"}

    def _hook(event, args):
        if event not in _EVENTS:
            return
        if event in ("socket.connect", "socket.sendto"):
            sock, address = args[0], args[1]
            family = getattr(sock, "family", None)
            host = address if isinstance(address, (str, bytes)) else address[0]
            kind = "unix" if family is not None and int(family) == 1 else "inet"
        else:
            host, kind = args[0], "name"
        if isinstance(host, bytes):
            host = host.decode("utf-8", "replace")
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{event}\\t{kind}\\t{host}\\n")

    sys.addaudithook(_hook)
''')


def is_local(kind: str, host: str) -> bool:
    import ipaddress

    if kind == "unix" or host in ("", "None", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.mark.slow
def test_no_connection_leaves_the_machine(tmp_path):
    """Start the app (analytics asked for in the environment, to show the app
    switches it off itself), load the page, ingest and embed a PDF, answer a
    question, and try the two ways a client could make Gradio fetch a URL;
    every address the server touched must be loopback."""
    import pymupdf

    from engine.backends.errors import ModelNotFoundError
    from engine.model_files import tiny_model_path

    try:
        model = tiny_model_path()
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(NET_HOOK)
    net_log = tmp_path / "net.log"
    env = {"PYTHONPATH": os.pathsep.join([str(hook_dir), os.environ.get("PYTHONPATH", "")]),
           "FOLIO_NET_LOG": str(net_log), "GRADIO_ANALYTICS_ENABLED": "True",
           "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    pdf = tmp_path / "survey.pdf"
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "The survey team counted 41 herons at the lake.")
    doc.save(pdf)
    with FolioServer(tmp_path / "home", model=model, env=env) as srv:
        status, page = get(srv.url)
        assert status == 200 and b"Folio" in page
        assert get(srv.url + "config")[0] == 200
        assert get(srv.url + "gradio_api/info")[0] == 200
        status, paths = upload(srv.url, pdf.name, pdf.read_bytes())
        status, outcomes = call(srv.url, "ingest", [[file_data(paths[0])], ""])
        assert outcomes[0][0]["state"] == "stored", outcomes
        deadline = time.monotonic() + 120
        while call(srv.url, "list", [])[1][0][0]["status"] != "ready":
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.5)
        status, answer = call(srv.url, "ask", ["How many herons were counted?", None, None])
        assert status == 200 and "answer" in answer[0], answer
        refused = [get(srv.url + "gradio_api/file=https://203.0.113.9/a.png")[0],
                   call(srv.url, "ingest", [[file_data("https://203.0.113.9/a.pdf")], ""])[0]]
        remote = [c.raddr for c in psutil.Process(srv.process.pid).net_connections("inet")
                  if c.raddr and not is_local("inet", c.raddr.ip)]
        assert not remote, remote
    records = [line.split("\t") for line in net_log.read_text().splitlines()]
    assert any(event == "socket.connect" for event, _, _ in records), \
        "the hook saw nothing: is sitecustomize loaded?"
    outside = sorted({(event, host) for event, kind, host in records
                      if not is_local(kind, host)})
    assert not outside, outside
    assert refused == [403, 403]
