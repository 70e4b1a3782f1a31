"""A full disk: every write that does not fit says "no space" and names what
failed, nothing already stored is touched, the file stays sound, and once
space is freed the same work succeeds.

Two ways to fill a disk, each in a child process: a small tmpfs mounted in a
user namespace (a real ENOSPC; skipped where unprivileged namespaces are off)
and RLIMIT_FSIZE, which makes the kernel refuse to grow a file (EFBIG). The
child does everything on the capped data dir and reports what it saw as JSON.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from storage import documents, open_db, recovery

from kill_support import fact_pdf, long_pdf, run_child

CHILD = """
    import errno, json, os, resource, signal, sys
    from pathlib import Path

    from engine.embed_worker import BackgroundEmbedder
    from engine.indexer import ingest_paths
    from engine.qa import answer_once
    from kill_support import HashEmbedder, answerer, snapshot
    from storage import documents, open_db, recovery
    from storage.embeddings import count_pending
    from storage.kv_caches import list_kv_caches

    home, mode, survey, notes, note = Path(sys.argv[1]), sys.argv[2], *map(Path, sys.argv[3:6])
    ballast = home / "ballast"

    def leave_free(nbytes):
        # Fill the disk until only `nbytes` can still be written.
        if mode == "fsize":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            limit = resource.RLIM_INFINITY if nbytes is None else max(nbytes, 1)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
            return
        ballast.unlink(missing_ok=True)
        if nbytes is None:
            return
        st = os.statvfs(home)
        todo = st.f_bavail * st.f_frsize - nbytes
        with open(ballast, "wb") as f:
            try:
                while todo > 0:
                    todo -= f.write(b"\\1" * min(todo, 1 << 20))
                    f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC

    out = {}
    db = open_db(home / "folio.db")
    ingest_paths(db, [notes])
    first = answer_once(answerer(db), "Which reservoir does meltwater from the eastern glacier feed?")
    before = snapshot(db)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    leave_free(0)
    report = ingest_paths(db, [survey, note])          # the batch goes on after a failure
    out["ingest"] = [(o.path.name, o.status, o.error_code, o.message) for o in report.outcomes]
    bg = BackgroundEmbedder(home / "folio.db", HashEmbedder.name, HashEmbedder).start()
    bg.wait_idle(60)
    out["embed_error"], out["embed_alive"] = bg.error, bg._thread.is_alive()
    try:
        answer_once(answerer(db), "How does the observatory record wind speed?",
                    conversation_id=first.conversation_id)
        out["answer_error"] = None
    except Exception as exc:
        out["answer_error"] = f"{type(exc).__name__}: {exc}"
    out["problems_when_full"] = recovery.check(db).problems()
    out["intact_when_full"] = snapshot(db) == before

    # A KV cache larger than the room left: a clear error, not a SIGBUS.
    from engine.sparse.kvstore import KVCacheError
    from engine.sparse.registry import prefill_for_document
    from kill_support import sparse_engine
    leave_free(64 * 1024)
    engine = sparse_engine(home / "kv")
    try:
        prefill_for_document(engine, db, 1, [i % 300 for i in range(1200)], "doc-a")
        out["kv_error"] = None
    except KVCacheError as exc:
        out["kv_error"] = str(exc)
    out["kv_left"] = sorted(p.name for p in (home / "kv").rglob("*"))
    out["kv_rows"] = len(list_kv_caches(db))

    leave_free(None)                                    # space is freed
    bg.wake()
    bg.wait_idle(60)
    out["embed_error_after"], out["pending_after"] = bg.error, count_pending(db, HashEmbedder.name)
    bg.stop()
    again = ingest_paths(db, [survey, note])
    out["ingest_after"] = [(o.path.name, o.status) for o in again.outcomes]
    second = answer_once(answerer(db), "How does the observatory record wind speed?",
                         conversation_id=first.conversation_id)
    out["answer_after"] = second.text
    out["kv_after"] = prefill_for_document(engine, db, 1, [i % 300 for i in range(1200)],
                                           "doc-a").layout.tokens
    out["problems_after"] = recovery.check(db).problems()
    print("RESULT " + json.dumps(out))
"""


def _tmpfs_wrapper(mount_point) -> list[str]:
    """`unshare` a user and mount namespace and mount a 6 MB tmpfs there."""
    script = 'mount -t tmpfs -o size=6m folio-full "$0" && exec "$@"'
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", script, str(mount_point), "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs as this user: {probe.stderr.strip()}")
    return ["unshare", "-rm", "sh", "-c", script, str(mount_point)]


@pytest.mark.parametrize("mode", ["tmpfs", "fsize"])
def test_full_disk_gives_a_clear_error_and_loses_nothing(tmp_path, mode):
    home = tmp_path / "data"
    home.mkdir()
    survey = long_pdf(tmp_path / "survey.pdf", pages=40)
    notes = fact_pdf(tmp_path / "notes.pdf")
    note = tmp_path / "note.txt"
    note.write_text("The ferry to the northern island leaves at dawn on Tuesdays.\n")
    wrapper = _tmpfs_wrapper(home) if mode == "tmpfs" else []

    result = run_child(CHILD, home, mode, survey, notes, note, wrapper=wrapper)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])

    # Each file of the batch fails on its own, naming itself and the lack of space.
    print(json.dumps(out, indent=1))
    assert sorted((name, status, code) for name, status, code, _ in out["ingest"]) == \
        [("note.txt", "error", "disk-full"), ("survey.pdf", "error", "disk-full")]
    for name, _, _, message in out["ingest"]:
        assert message.startswith(f"{name}: storing {name} failed: no space left on the disk")
    assert "storing" in out["embed_error"] and "no space left" in out["embed_error"]
    assert out["embed_alive"]                       # the worker waits for space, it did not die
    # The question is stored first, so a full disk stops it before any generation.
    assert out["answer_error"].startswith("StorageFull: saving the question failed: no space left")
    assert out["problems_when_full"] == [] and out["intact_when_full"]
    assert "no space left on the disk" in out["kv_error"] and "doc-a" in out["kv_error"]
    assert out["kv_left"] == ["tiny-model"] and out["kv_rows"] == 0   # no half cache, no row

    # Space freed: the same work goes through, nothing was half-present to get in the way.
    assert out["embed_error_after"] is None and out["pending_after"] == 0
    assert sorted(map(tuple, out["ingest_after"])) == [("note.txt", "added"), ("survey.pdf", "added")]
    assert "anemometers" in out["answer_after"]
    assert out["kv_after"] == 1200 and out["problems_after"] == []
    if mode == "fsize":   # the data dir outlives the child: reopen it as the next start would
        db = open_db(home / "folio.db")
        assert recovery.check(db).ok
        assert sorted(d.display_name for d in documents.list_documents(db)) == \
            ["note.txt", "notes.pdf", "survey.pdf"]
