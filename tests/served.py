"""A real `folio serve` in a subprocess on a free loopback port.

Shared by the browser, exposure and concurrency tests and by `bench/load.py`: they
must exercise the process a person runs (its environment set before Gradio
is imported, its queue, its background workers), not an app built inside
the test process.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed_embedder_cache(home: Path) -> None:
    """Copy already exported embedding graphs into a fresh data dir, so a
    test does not spend a minute re-exporting the same ONNX graph (the
    result is identical; without a cache the server exports it itself)."""
    from engine.embed_onnx import default_cache_dir

    source = default_cache_dir()
    target = home / "models" / "embedders"
    if not source.is_dir():
        return
    target.mkdir(parents=True, exist_ok=True)
    for graph in source.glob("*-int8.onnx"):
        if not (target / graph.name).exists():
            try:
                os.link(graph, target / graph.name)
            except OSError:
                shutil.copy2(graph, target / graph.name)


@dataclass
class FolioServer:
    home: Path
    model: Path | None = None                 # FOLIO_MODEL; None: the settings' default
    context_tokens: int | None = 600          # fixed: skips timing the machine
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.home.parent / f"{self.home.name}-server.log"

    def start(self, timeout: float = 120) -> "FolioServer":
        self.home.mkdir(parents=True, exist_ok=True)
        if self.context_tokens:
            (self.home / "settings.toml").write_text(f"context_tokens = {self.context_tokens}\n")
        seed_embedder_cache(self.home)
        env = {**os.environ, "FOLIO_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        env.pop("GRADIO_ANALYTICS_ENABLED", None)    # the app must switch it off itself
        env.pop("GRADIO_TEMP_DIR", None)
        env.update(self.env)
        if self.model is not None:
            env["FOLIO_MODEL"] = str(self.model)
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main()", "serve",
             "--port", str(self.port), *self.args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=2).read(100)
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("folio serve did not start:\n" + self.log())
                time.sleep(0.3)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> "FolioServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
