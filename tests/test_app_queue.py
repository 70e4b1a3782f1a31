"""Background ingestion as the browser sees it: per-file states, specific
errors, the password flow, duplicates, folders, remove/re-index, and reads
and writes from other threads while it runs (no "database is locked")."""
from __future__ import annotations

import threading

import pymupdf
import pytest

from app.handlers import Handlers
from app.runtime import Runtime
from app.settings import Settings
from storage import conversations as chats
from storage import documents


def make_pdf(path, text, password=None, pages=1):
    doc = pymupdf.open()
    for n in range(pages):
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(50, 50, 550, 400), f"{text} Page {n + 1}.", fontsize=11)
    kw = dict(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password,
              owner_pw=password + "x") if password else {}
    doc.save(path, **kw)
    return path


@pytest.fixture
def rt(tmp_path, monkeypatch):
    cache = tmp_path / "home" / "tmp" / "gradio"
    cache.mkdir(parents=True)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    runtime = Runtime(Settings(home=tmp_path / "home")).start(embed=False, preload_model=False)
    yield runtime
    runtime.stop()


def upload(rt, tmp_path, name, maker):
    """A file as Gradio leaves it: inside its cache folder."""
    folder = rt.upload_cache / f"h{len(list(rt.upload_cache.iterdir()))}"
    folder.mkdir()
    return str(maker(folder / name))


def states(rt):
    return {i.name: i for i in rt.queue.snapshot()}


def test_files_get_specific_outcomes(rt, tmp_path):
    h = Handlers(rt)
    files = [upload(rt, tmp_path, "a.pdf", lambda p: make_pdf(p, "Alpha text here.", pages=3)),
             upload(rt, tmp_path, "locked.pdf", lambda p: make_pdf(p, "Secret.", "pw")),
             upload(rt, tmp_path, "broken.pdf",
                    lambda p: (p.write_bytes(b"%PDF-1.4\n\x00junk" * 50), p)[1]),
             upload(rt, tmp_path, "data.bin",
                    lambda p: (p.write_bytes(bytes(range(256)) * 4), p)[1])]
    ids = h.add_files(files + ["/etc/passwd"])   # a path outside Gradio's cache is ignored
    assert len(ids) == 4
    assert rt.queue.wait_idle(60)
    got = states(rt)
    assert got["a.pdf"].state == "stored" and got["a.pdf"].total == 3
    assert got["locked.pdf"].error_code == "password-required"
    assert got["broken.pdf"].error_code == "corrupt"
    assert got["data.bin"].state == "error" and got["data.bin"].error_code in ("binary",
                                                                                "unsupported")
    db = rt.db()
    docs = {d.display_name: d for d in documents.list_documents(db)}
    assert rt.store.owns(docs["a.pdf"].path)           # inside the data dir
    assert not list(rt.upload_cache.rglob("*.pdf"))    # Gradio's copies are gone
    # The password flow: wrong, then right; the PDF becomes a document.
    _, _, _, locked = h.library_state()
    assert locked == [("locked.pdf", docs["locked.pdf"].id)]
    def locked_doc():
        return next(d for d in documents.list_documents(db) if d.display_name == "locked.pdf")

    assert "Trying" in h.unlock(docs["locked.pdf"].id, "nope")
    rt.queue.wait_idle(30)
    assert locked_doc().error_code == "wrong-password"
    h.unlock(locked_doc().id, "pw")
    rt.queue.wait_idle(30)
    unlocked = [d for d in documents.list_documents(db) if d.display_name == "locked.pdf"]
    assert unlocked[0].status == "searchable" and rt.queue.password_for(unlocked[0].path) == "pw"
    # A duplicate is reported, not added twice.
    h.add_files([upload(rt, tmp_path, "a copy.pdf",
                        lambda p: (p.write_bytes(open(docs["a.pdf"].path, "rb").read()), p)[1])])
    rt.queue.wait_idle(30)
    assert states(rt)["a copy.pdf"].state == "duplicate"
    assert len([d for d in documents.list_documents(db) if d.status != "error"]) == 2
    # Re-index keeps the document; remove deletes it and its stored upload.
    path = docs["a.pdf"].path
    assert "Re-indexing" in h.library_action(f"reindex:{docs['a.pdf'].id}")
    rt.queue.wait_idle(30)
    again = documents.find_by_path(db, path)
    assert again is not None and again.id != docs["a.pdf"].id and again.segments
    assert "Removed" in h.library_action(f"remove:{again.id}")
    assert documents.get_document(db, again.id) is None
    assert not (tmp_path / path).exists()
    assert h.library_action("remove:99999").startswith("That document")


def test_a_dropped_folder_is_walked(rt, tmp_path):
    h = Handlers(rt)
    entries = []
    for rel, data in [("proj/main.py", b"def main():\n    return 1\n"),
                      ("proj/node_modules/x.js", b"var x = 1;\n"),
                      ("proj/img.png", b"\x89PNG\r\n\x1a\n" + bytes(100)),
                      ("loose.txt", b"Some loose words about rivers and lakes.\n")]:
        name = rel.rsplit("/", 1)[-1]
        path = upload(rt, tmp_path, name, lambda p: (p.write_bytes(data), p)[1])
        entries.append({"path": path, "name": name, "rel": rel})
    entries.append({"path": "/etc/hostname", "name": "hostname", "rel": "hostname"})
    h.add_dropped(entries)
    assert rt.queue.wait_idle(60)
    names = {d.display_name for d in documents.list_documents(rt.db())}
    assert names == {"main.py", "loose.txt"}
    got = states(rt)
    assert got["hostname"].error_code == "unreadable"     # not taken from outside the cache
    assert got["img.png"].state == "error"
    main = documents.find_by_path(rt.db(), next(
        d.path for d in documents.list_documents(rt.db()) if d.display_name == "main.py"))
    assert main.path.endswith("proj/main.py") and rt.store.owns(main.path)


def test_reads_and_writes_during_ingestion_never_lock(rt, tmp_path):
    h = Handlers(rt)
    files = [upload(rt, tmp_path, f"doc{n}.pdf",
                    lambda p, n=n: make_pdf(p, f"Document {n} about topic {n}.", pages=4))
             for n in range(6)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                h.library_state()
                h.api_list()
        except BaseException as exc:   # noqa: BLE001 - any failure fails the test
            errors.append(exc)

    def writer():
        try:
            db = rt.db()
            while not stop.is_set():
                conv = chats.create_conversation(db)
                chats.add_turn(db, conv, question="q", search_query="q", answer="a",
                               declined=False, model="m", metadata={}, citations=[])
                chats.delete_conversation(db, conv)
        except BaseException as exc:   # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (reader, reader, writer)]
    for t in threads:
        t.start()
    h.add_files(files)
    assert rt.queue.wait_idle(120)
    stop.set()
    for t in threads:
        t.join(10)
    assert errors == []
    assert [i.state for i in rt.queue.snapshot()] == ["stored"] * 6, rt.queue.snapshot()
    assert len(documents.list_documents(rt.db())) == 6


def test_an_unlocked_pdf_still_shows_its_pages_after_a_restart(tmp_path, monkeypatch):
    home = tmp_path / "home"
    cache = home / "tmp" / "gradio"
    cache.mkdir(parents=True)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    first = Runtime(Settings(home=home)).start(embed=False, preload_model=False)
    try:
        h = Handlers(first)
        h.add_files([upload(first, tmp_path, "locked.pdf",
                            lambda p: make_pdf(p, "Secret minutes.", "pw"))])
        first.queue.wait_idle(30)
        doc = documents.list_documents(first.db())[0]
        h.unlock(doc.id, "pw")
        first.queue.wait_idle(30)
        doc = next(d for d in documents.list_documents(first.db()) if d.status != "error")
    finally:
        first.stop()
    copy = home / "unlocked" / f"{doc.sha256}.pdf"
    assert copy.is_file() and not pymupdf.open(copy).needs_pass
    assert pymupdf.open(doc.path).needs_pass           # the upload itself stays encrypted

    second = Runtime(Settings(home=home)).start(embed=False, preload_model=False)
    try:
        h = Handlers(second)
        assert second.queue.password_for(doc.path) is None      # memory is gone
        shown = h.render_inspector({"doc": doc.id, "page": 1, "cited_page": 1, "boxes": []})
        assert "<img" in shown and "folio-error" not in shown
        # Without the copy the page needs the password again: the copy is what showed it.
        aside = copy.rename(tmp_path / "aside.pdf")
        assert "password" in h.render_inspector({"doc": doc.id, "page": 1}).lower()
        aside.rename(copy)
        assert "Removed" in h.library_action(f"remove:{doc.id}")
        assert not copy.exists()
    finally:
        second.stop()


def test_an_api_ingest_reports_and_waits_for_its_own_files_only(rt, tmp_path):
    import zipfile

    def make_zip(path):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("bundle/inner.py", "def inner():\n    return 1\n")
        return path

    h = Handlers(rt)
    # Another client's upload is ahead in the queue, and a third one arrives
    # while this call waits.
    ahead = h.add_files([upload(rt, tmp_path, "ahead.pdf",
                                lambda p: make_pdf(p, "Another client's text.", pages=30))])
    later_file = upload(rt, tmp_path, "later.pdf", lambda p: make_pdf(p, "Later text.", pages=5))
    timer = threading.Timer(0.2, lambda: h.add_files([later_file]))
    timer.start()
    out = h.api_ingest([upload(rt, tmp_path, "mine.zip", make_zip),
                        upload(rt, tmp_path, "bad.pdf",
                               lambda p: (p.write_bytes(b"%PDF-1.4 junk" * 20), p)[1])],
                       None, timeout=60)
    timer.join()
    by_name = {o["name"]: o for o in out}
    assert sorted(by_name) == ["bad.pdf", "mine.zip/bundle/inner.py"], by_name
    assert by_name["bad.pdf"]["state"] == "error"
    assert by_name["mine.zip/bundle/inner.py"]["state"] == "stored"
    assert rt.queue.wait_for(ahead, 60)
    assert [i.state for i in rt.queue.outcomes(ahead)] == ["stored"]
