"""Keep the server's files and its network use local.

Two Gradio behaviours that Folio never needs are refused here, in an ASGI
middleware, before Gradio sees the request:

- `/file=<url>` (and the older `/file/<url>`) fetches any public http(s)
  URL on the server's behalf, and `/proxy=<url>` forwards to remote Spaces:
  any page open in the person's browser could make this machine contact an
  outside host.
- An event's file argument (`{"path": ...}`) is taken as given: a path
  outside the upload cache is copied into it (so `/ingest` could read
  `/etc/passwd` or any file the server can read) and a URL is downloaded.
  Only files Gradio itself received, inside its upload cache, may be named.

Local file paths on the file route still go to Gradio's own allow-list.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote

_FILE_ROUTE = re.compile(r"/(?P<route>file=|file/|proxy=)(?P<rest>.*)$", re.DOTALL)
_REMOTE = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9+.\-]+:|[\\/]{2})")
MAX_JSON_BYTES = 32 * 2**20      # an event payload; files travel through /upload


def is_remote_file_request(path: str) -> bool:
    """True for a proxy request or a file request naming a URL, not a path."""
    decoded = path
    for _ in range(3):                 # %252F and the like: decode to a fixed point
        decoded = unquote(decoded)
    match = _FILE_ROUTE.search(decoded)
    if match is None:
        return False
    return match.group("route") == "proxy=" or bool(_REMOTE.match(match.group("rest")))


def foreign_file(payload, upload_dir: Path) -> str | None:
    """The first file path in an event payload that is not an upload inside
    `upload_dir` (a URL, or a file elsewhere on disk); None when all are."""
    root = os.path.realpath(upload_dir)
    stack = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            path = item.get("path")
            if isinstance(path, str):
                real = os.path.realpath(path) if "\x00" not in path else ""
                if _REMOTE.match(path) or not real.startswith(root + os.sep):
                    return path
            stack.extend(item.values())
    return None


class LocalFilesOnly:
    """Answer 403 to remote file and proxy requests and to events naming
    files outside the upload cache; pass everything else through."""

    def __init__(self, app, upload_dir: Path | str):
        self.app = app
        self.upload_dir = Path(upload_dir)

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        if is_remote_file_request(scope.get("path", "")):
            await _refuse(send, "Folio serves only its own files")
            return
        headers = dict(scope.get("headers") or [])
        if scope.get("method") == "POST" and b"json" in headers.get(b"content-type", b""):
            body, complete = b"", False
            while not complete:
                message = await receive()
                if message["type"] != "http.request":
                    return                      # the client went away
                body += message.get("body", b"")
                complete = not message.get("more_body", False)
                if len(body) > MAX_JSON_BYTES:
                    await _refuse(send, "the request is too large", 413)
                    return
            try:
                bad = foreign_file(json.loads(body or b"null"), self.upload_dir)
            except ValueError:
                bad = None                      # not JSON: Gradio answers it
            if bad is not None:
                await _refuse(send, "a file argument must be a file uploaded to this "
                                    f"server, not {bad[:200]!r}")
                return
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


async def _refuse(send, detail: str, status: int = 403) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
