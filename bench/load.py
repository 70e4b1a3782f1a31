"""Concurrency and load: ingestion and questions at once, through the API.

Starts a real `folio serve` on a loopback port (the tiny SmolLM2 model by
default, real embedder, real llama.cpp answers), puts one PDF with a known
fact in the library, then for a bounded time runs, each with its own
`gradio_client` connection:

  ingest x2   upload a freshly generated PDF, /ingest it, repeat
  ask   xN    ask the known-fact question, check the answer names the fact
  list  x1    poll /list as the page does

At the end every ingested document must be listed and `ready` (embedded),
no call or server log line may say "database is locked", and every answer
must be right. Prints a table per endpoint and writes JSON to bench/out/.

    python bench/load.py                   # 90 s, 3 question clients
    python bench/load.py --seconds 30 --clients 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This folder holds `ingest.py`, named like the `ingest` package: keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from served import FolioServer  # noqa: E402

FACT = "Meltwater from the eastern glacier feeds the Lindqvist reservoir in early summer."
QUESTION = "Which reservoir does meltwater from the eastern glacier feed?"
EXPECTED = "Lindqvist"
FILLER = ("Field notes describe the survey routes, the weather on each day and the equipment "
          "that the team carried up the slopes. ") * 6
LOCKED = "database is locked"


@dataclass
class Call:
    endpoint: str
    started: float
    seconds: float
    ok: bool
    error: str = ""


@dataclass
class LoadResult:
    seconds: float
    clients: int
    calls: list[Call] = field(default_factory=list)
    ingested: list[str] = field(default_factory=list)       # names /ingest stored
    missing: list[str] = field(default_factory=list)        # stored, but not listed at the end
    not_ready: list[str] = field(default_factory=list)      # listed, but not embedded in time
    wrong_answers: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)         # "database is locked" anywhere
    server_errors: list[str] = field(default_factory=list)  # tracebacks in the server log

    @property
    def passed(self) -> bool:
        return not (self.missing or self.not_ready or self.wrong_answers or self.locked
                    or self.server_errors or any(not c.ok for c in self.calls))

    def rows(self) -> list[dict]:
        out = []
        for endpoint in sorted({c.endpoint for c in self.calls}):
            calls = [c for c in self.calls if c.endpoint == endpoint]
            times = sorted(c.seconds for c in calls)
            out.append({"endpoint": endpoint, "requests": len(calls),
                        "errors": sum(not c.ok for c in calls),
                        "per_s": round(len(calls) / self.seconds, 3),
                        "p50_s": round(statistics.median(times), 3),
                        "p95_s": round(percentile(times, 95), 3),
                        "max_s": round(times[-1], 3)})
        return out


def percentile(sorted_values: list[float], pct: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def make_pdf(path: Path, lines: list[str], pages: int = 3) -> Path:
    import pymupdf

    doc = pymupdf.open()
    for number in range(pages):
        page = doc.new_page()
        text = f"{FILLER}\n\n{lines[number % len(lines)]}\n\n{FILLER}"
        page.insert_textbox(pymupdf.Rect(56, 56, 556, 760), text, fontsize=11, fontname="helv")
    doc.save(path)
    return path


class Load:
    """The clients, sharing only the deadline and the result."""

    def __init__(self, server: FolioServer, folder: Path, seconds: float, clients: int):
        self.server, self.folder = server, folder
        self.result = LoadResult(seconds, clients)
        self.deadline = 0.0
        self._lock = threading.Lock()
        self._serial = 0

    def client(self):
        from gradio_client import Client

        return Client(self.server.url, verbose=False)

    def timed(self, endpoint: str, fn):
        started = time.monotonic()
        try:
            value = fn()
            error = ""
        except Exception as exc:    # recorded, the client goes on
            value, error = None, f"{type(exc).__name__}: {exc}"
        call = Call(endpoint, started, time.monotonic() - started, not error, error[:300])
        with self._lock:
            self.result.calls.append(call)
            if LOCKED in error or LOCKED in json.dumps(value, default=str):
                self.result.locked.append(f"{endpoint}: {error or value}"[:300])
        return value, call

    def ingester(self, name: str) -> None:
        from gradio_client import handle_file

        client = self.client()
        while time.monotonic() < self.deadline:
            with self._lock:
                self._serial += 1
                serial = self._serial
            path = make_pdf(self.folder / f"{name}-{serial:03d}.pdf",
                            [f"Survey log {serial}: the beacon on hill {serial} is painted "
                             f"in colour number {serial * 7}."])
            value, call = self.timed("/ingest", lambda: client.predict(
                [handle_file(str(path))], "", api_name="/ingest"))
            if call.ok:
                # /ingest also reports files another client queued meanwhile
                # (it waits for the shared queue): look for this call's own.
                mine = [o for o in value if o.get("name") == path.name]
                if not mine or mine[0].get("state") != "stored":
                    call.ok, call.error = False, f"{path.name} not stored: {value}"[:300]
                else:
                    with self._lock:
                        self.result.ingested.append(path.name)

    def asker(self) -> None:
        client = self.client()
        while time.monotonic() < self.deadline:
            value, call = self.timed("/ask", lambda: client.predict(
                QUESTION, None, None, api_name="/ask"))
            if call.ok and EXPECTED not in (value or {}).get("answer", ""):
                call.ok, call.error = False, f"wrong answer: {value}"[:300]
                with self._lock:
                    self.result.wrong_answers.append(str((value or {}).get("answer"))[:200])

    def lister(self) -> None:
        client = self.client()
        while time.monotonic() < self.deadline:
            self.timed("/list", lambda: client.predict(api_name="/list"))
            time.sleep(0.5)

    def run(self) -> LoadResult:
        from gradio_client import handle_file

        client = self.client()
        seed = make_pdf(self.folder / "glaciers.pdf", [FACT])
        outcome = client.predict([handle_file(str(seed))], "", api_name="/ingest")
        assert outcome and outcome[0]["state"] == "stored", outcome
        self.wait_ready(client, 120)
        started = time.monotonic()
        self.deadline = started + self.result.seconds
        workers = [threading.Thread(target=self.ingester, args=(f"batch{k}",)) for k in (1, 2)]
        workers += [threading.Thread(target=self.asker) for _ in range(self.result.clients)]
        workers.append(threading.Thread(target=self.lister))
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        self.result.seconds = round(time.monotonic() - started, 1)
        self.check(client)
        return self.result

    def wait_ready(self, client, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            docs = client.predict(api_name="/list")
            if all(d["status"] == "ready" for d in docs) or time.monotonic() > deadline:
                return docs
            time.sleep(0.5)

    def check(self, client) -> None:
        docs = {d["name"]: d for d in self.wait_ready(client, 180)}
        self.result.missing = [n for n in self.result.ingested if n not in docs]
        self.result.not_ready = [n for n, d in docs.items() if d["status"] != "ready"]
        log = self.server.log()
        self.result.locked += [line for line in log.splitlines() if LOCKED in line]
        self.result.server_errors = [line for line in log.splitlines()
                                     if line.startswith("Traceback")]


def run_load(seconds: float, clients: int, model: Path | None = None,
             home: Path | None = None) -> LoadResult:
    """Start a server, drive it for `seconds`, check what is left; the
    server is stopped whatever happens."""
    if model is None:
        from engine.model_files import tiny_model_path

        model = tiny_model_path()
    with tempfile.TemporaryDirectory(prefix="folio-load-") as scratch:
        scratch = Path(scratch)
        server = FolioServer(home or scratch / "home", model=model)
        with server:
            return Load(server, scratch, seconds, clients).run()


def table(result: LoadResult) -> str:
    lines = ["| endpoint | requests | errors | per second | p50 s | p95 s | max s |",
             "|---|---|---|---|---|---|---|"]
    for row in result.rows():
        lines.append(f"| {row['endpoint']} | {row['requests']} | {row['errors']} | "
                     f"{row['per_s']} | {row['p50_s']} | {row['p95_s']} | {row['max_s']} |")
    lines.append("")
    lines.append(f"{result.seconds} s, 2 ingesting clients + {result.clients} asking + 1 "
                 f"listing; documents ingested {len(result.ingested)}, missing "
                 f"{len(result.missing)}, not ready {len(result.not_ready)}; wrong answers "
                 f"{len(result.wrong_answers)}; 'database is locked' {len(result.locked)}; "
                 f"server tracebacks {len(result.server_errors)}: "
                 f"{'PASS' if result.passed else 'FAIL'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--clients", type=int, default=3, help="question clients")
    parser.add_argument("--model", type=Path, help="GGUF (default: the tiny test model)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "load.json")
    args = parser.parse_args()
    result = run_load(args.seconds, args.clients, args.model)
    print(table(result))
    for call in [c for c in result.calls if not c.ok][:10]:
        print(f"  {call.endpoint}: {call.error}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "rows": result.rows(),
                                    "passed": result.passed,
                                    **{k: v for k, v in asdict(result).items()
                                       if k != "calls"},
                                    "calls": [asdict(c) for c in result.calls]}, indent=1))
    print(f"wrote {args.out}")
    sys.exit(0 if result.passed else 1)


if __name__ == "__main__":
    main()
