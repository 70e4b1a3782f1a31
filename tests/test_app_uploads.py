"""Uploads land only inside the data dir, under generated folders, with safe
names; zips are unpacked defensively; Gradio's temp copy is always removed."""
from __future__ import annotations

import io
import stat
import zipfile

import pytest

from app.uploads import (LOOSE_FOLDER, UploadLimits, UploadRejected, UploadStore, clear_folder,
                         safe_name, safe_relative)


def temp_file(tmp_path, name: str, data: bytes):
    folder = tmp_path / "gradio" / "abc123"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def test_safe_names_drop_paths_and_odd_characters():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\me\\report.pdf") == "report.pdf"
    assert safe_name("a\x00b<c>|d.py") == "ab_c__d.py"
    assert safe_name("...") == "upload" and safe_name("") == "upload"
    assert safe_name(".env") == "env"
    long = safe_name("x" * 300 + ".pdf")
    assert len(long) <= 120 and long.endswith(".pdf")
    assert str(safe_relative("/abs/../a/./b.py")) == "abs/a/b.py"
    assert safe_relative("../..") is None


def test_a_file_is_moved_under_a_generated_folder(tmp_path):
    store = UploadStore(tmp_path / "home" / "uploads")
    temp = temp_file(tmp_path, "notes.txt", b"hello")
    staged = store.stage(temp, "../../notes.txt")
    assert staged.path.read_bytes() == b"hello"
    assert staged.path.parent.name == LOOSE_FOLDER
    assert store.owns(staged.path) and staged.path.name == "notes.txt"
    assert not temp.exists() and not temp.parent.exists()   # Gradio's copy is gone
    again = store.stage(temp_file(tmp_path, "notes.txt", b"x"), "notes.txt")
    assert again.path.parent.parent != staged.path.parent.parent
    store.remove(staged.path)
    assert not staged.path.exists() and list((tmp_path / "home" / "uploads").iterdir()) == \
        [again.path.parent.parent]
    store.remove(tmp_path / "outside.txt")   # never outside the store


def test_too_large_is_refused_and_the_temp_file_removed(tmp_path):
    store = UploadStore(tmp_path / "u", UploadLimits(max_bytes=10))
    temp = temp_file(tmp_path, "big.pdf", b"x" * 11)
    with pytest.raises(UploadRejected) as info:
        store.stage(temp, "big.pdf")
    assert info.value.code == "too-large" and "upload limit" in info.value.reason
    assert not temp.exists()


def zip_bytes(entries: dict[str, bytes], link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_zip_is_unpacked_inside_its_folder_only(tmp_path):
    store = UploadStore(tmp_path / "u")
    data = zip_bytes({"proj/a.py": b"x = 1\n", "../../evil.py": b"bad",
                      "/abs/b.txt": b"b", "proj/sub/": b""}, link="proj/link")
    staged = store.stage(temp_file(tmp_path, "proj.zip", data), "proj.zip")
    assert staged.folder and staged.path.name == "proj"
    files = sorted(p.relative_to(staged.path).as_posix() for p in staged.path.rglob("*")
                   if p.is_file())
    assert files == ["abs/b.txt", "evil.py", "proj/a.py"]
    assert not (tmp_path / "evil.py").exists()
    assert any("link" in note for note in staged.notes)


def test_zip_bombs_and_broken_zips_are_refused(tmp_path):
    store = UploadStore(tmp_path / "u", UploadLimits(max_unzipped_bytes=1000))
    bomb = zip_bytes({"big.txt": b"0" * 5000})
    with pytest.raises(UploadRejected, match="expands beyond"):
        store.stage(temp_file(tmp_path, "bomb.zip", bomb), "bomb.zip")
    with pytest.raises(UploadRejected) as info:
        store.stage(temp_file(tmp_path, "bad.zip", b"PK\x03\x04 not really"), "bad.zip")
    assert info.value.code == "corrupt"
    assert list((tmp_path / "u").iterdir()) == []   # nothing half-unpacked is left


def test_clear_folder_removes_leftovers(tmp_path):
    (tmp_path / "t" / "a").mkdir(parents=True)
    (tmp_path / "t" / "a" / "f").write_text("x")
    (tmp_path / "t" / "g").write_text("x")
    clear_folder(tmp_path / "t")
    assert list((tmp_path / "t").iterdir()) == []
