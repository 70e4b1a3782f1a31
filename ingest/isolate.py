"""Parse a file in a forked child with hard time and memory limits.

The in-process budget (`ingest.budget`, `max_page_chars`) is checked
between MuPDF calls; one call that loops or allocates without end can only
be stopped from outside. Here the child gets an address-space limit
(RLIMIT_AS) and a wall-clock limit (SIGKILL from the parent), and reports
back one small JSON line, so the caller learns what happened to each file:
parsed, a specific ingest error, a crash (any other exception, or a fatal
signal), a hang, or running out of memory. The fuzzing benchmark and the
reliability tests use it; the parent never touches the file itself.

Linux (fork) only: call it from a process with no other threads running.
"""
from __future__ import annotations

import json
import os
import resource
import select
import signal
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Literal

from .config import IngestConfig

Outcome = Literal["ingested", "error", "crash", "hang", "memory"]
OUTCOMES: tuple[Outcome, ...] = ("ingested", "error", "crash", "hang", "memory")
_MEMORY_WORDS = ("out of memory", "malloc", "cannot allocate", "memoryerror")


@dataclass
class Limits:
    seconds: float = 10.0          # wall clock per file, then SIGKILL
    memory_mb: int = 1024          # address space the child may add to the parent's


@dataclass
class IsolatedResult:
    outcome: Outcome
    code: str                      # IngestError code, exception type or signal name
    message: str
    seconds: float
    pages: int = 0
    segments: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def _address_space() -> int:
    """This process's current virtual size in bytes (0 when unknown)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _classify_error(code: str, message: str) -> Outcome:
    low = message.lower()
    return "memory" if any(w in low for w in _MEMORY_WORDS) else "error"


def _child(path: Path, password: str | None, config: IngestConfig, limits: Limits,
           out_fd: int) -> None:
    """Runs in the child: parse, write one JSON line, never return."""
    from . import IngestError, parse_file

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    extra = limits.memory_mb * 1024 * 1024
    base = _address_space()
    cpu = int(limits.seconds) + 2      # a backstop if the parent dies
    for kind, value in ((resource.RLIMIT_AS, base + extra if base else 0),
                        (resource.RLIMIT_CPU, cpu)):
        hard = resource.getrlimit(kind)[1]
        if value and (hard == resource.RLIM_INFINITY or value <= hard):
            resource.setrlimit(kind, (value, hard))
    started = time.monotonic()
    try:
        doc = parse_file(path, password=password, config=config)
        report = {"outcome": "ingested", "code": "ok",
                  "message": f"{len(doc.pages)} pages, {len(doc.segments)} segments",
                  "pages": len(doc.pages), "segments": len(doc.segments)}
    except IngestError as exc:
        report = {"outcome": _classify_error(exc.code, str(exc)), "code": exc.code,
                  "message": str(exc)}
    except MemoryError:
        report = {"outcome": "memory", "code": "MemoryError",
                  "message": "ran out of memory (the child's address-space limit)"}
    except BaseException as exc:   # noqa: BLE001 - a crash is what we are looking for
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
        report = {"outcome": "crash", "code": type(exc).__name__,
                  "message": f"{type(exc).__name__}: {str(exc)[:300]}{at}"}
    report["seconds"] = round(time.monotonic() - started, 4)
    try:
        os.write(out_fd, (json.dumps(report) + "\n").encode())
    finally:
        os._exit(0)


class IsolatedParse:
    """One child parsing one file; `poll` until it returns a result."""

    def __init__(self, path: Path, *, password: str | None = None,
                 config: IngestConfig | None = None, limits: Limits | None = None):
        self.path = Path(path)
        self.limits = limits or Limits()
        config = config or IngestConfig()
        read_fd, write_fd = os.pipe()
        self.started = time.monotonic()
        pid = os.fork()
        if pid == 0:   # pragma: no cover - the child
            try:
                os.close(read_fd)
                _child(self.path, password, config, self.limits, write_fd)
            finally:
                os._exit(70)
        os.close(write_fd)
        self.pid, self.fd = pid, read_fd
        self._buffer = b""
        self.result: IsolatedResult | None = None

    def _finish(self, status: int) -> IsolatedResult:
        os.close(self.fd)
        seconds = round(time.monotonic() - self.started, 4)
        line = self._buffer.split(b"\n", 1)[0]
        if line:
            data = json.loads(line)
            data["seconds"] = seconds
            return IsolatedResult(**data)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
            if sig == signal.SIGXCPU:
                return IsolatedResult("hang", name, "over the CPU-time limit", seconds)
            return IsolatedResult("crash", name, f"the parser was killed by {name}", seconds)
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        return IsolatedResult("crash", f"exit {code}",
                              f"the parser exited ({code}) without a result", seconds)

    def poll(self, wait: float = 0.0) -> IsolatedResult | None:
        """The result once the child is done (or killed for its time limit)."""
        if self.result is not None:
            return self.result
        ready, _, _ = select.select([self.fd], [], [], max(0.0, wait))
        if ready:
            chunk = os.read(self.fd, 65536)
            self._buffer += chunk
            if chunk:
                return None
            _, status = os.waitpid(self.pid, 0)     # EOF: the child is exiting
            self.result = self._finish(status)
            return self.result
        if time.monotonic() - self.started > self.limits.seconds:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            os.close(self.fd)
            self.result = IsolatedResult(
                "hang", "timeout", f"no result within {self.limits.seconds:g} s; killed",
                round(time.monotonic() - self.started, 4))
        return self.result


def parse_isolated(path: Path, *, password: str | None = None,
                   config: IngestConfig | None = None,
                   limits: Limits | None = None) -> IsolatedResult:
    """Parse `path` in a child process and say what happened."""
    child = IsolatedParse(path, password=password, config=config, limits=limits)
    while (result := child.poll(0.05)) is None:
        pass
    return result


def parse_many(paths: Iterable[Path], *, jobs: int = 2, config: IngestConfig | None = None,
               limits: Limits | None = None) -> Iterator[tuple[Path, IsolatedResult]]:
    """Up to `jobs` children at a time; yields (path, result) as each ends."""
    pending = iter(paths)
    running: list[IsolatedParse] = []
    exhausted = False
    while running or not exhausted:
        while not exhausted and len(running) < jobs:
            path = next(pending, None)
            if path is None:
                exhausted = True
                break
            running.append(IsolatedParse(path, config=config, limits=limits))
        if not running:
            break
        ready, _, _ = select.select([c.fd for c in running], [], [], 0.05)
        for child in list(running):
            if child.poll() is not None:
                running.remove(child)
                yield child.path, child.result
