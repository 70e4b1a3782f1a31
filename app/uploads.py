"""Files from the browser into the data directory, safely.

Gradio first writes an upload into its cache (which `serve` points inside
the data dir). `UploadStore.stage` moves it to `uploads/<random>/<name>`:
the folder name is generated, the file name is the client's *base name*
cleaned of anything but ordinary characters (never the client's path), and
a zip is unpacked there with every member checked: no absolute paths, no
`..`, no links, a cap on members and on the bytes actually written. The
cache copy is removed whatever happens.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MAX_NAME = 120
LOOSE_FOLDER = "uploaded"
_UNSAFE = re.compile(r"[^\w.\- ()+,@=]")


class UploadRejected(Exception):
    """The upload was refused; `code` mirrors the ingest error codes."""

    def __init__(self, name: str, code: str, reason: str):
        self.name, self.code, self.reason = name, code, reason
        super().__init__(f"{name}: {reason}")


@dataclass
class UploadLimits:
    max_bytes: int = 200 * 2**20          # one uploaded file
    max_unzipped_bytes: int = 1 * 2**30   # everything one zip may expand to
    max_zip_members: int = 20_000


@dataclass
class Staged:
    """What one upload became: a file, or a folder (an unpacked zip or a
    dropped folder) to walk."""

    path: Path
    name: str                    # what the user called it
    folder: bool = False
    notes: list[str] = field(default_factory=list)


def safe_name(name: str, fallback: str = "upload") -> str:
    """The client's base name, reduced to characters safe on every file system."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" .")
    if len(base) > MAX_NAME:
        stem, dot, ext = base.rpartition(".")
        base = (stem[:MAX_NAME - len(ext) - 1] + "." + ext) if dot and len(ext) < 12 \
            else base[:MAX_NAME]
    return base or fallback


def safe_relative(path: str) -> PurePosixPath | None:
    """A client-given relative path (zip member, dropped folder) made safe:
    every part cleaned, `.`/`..`/empty parts and absolute roots dropped."""
    parts = [p for p in re.split(r"[\\/]+", str(path or "")) if p not in ("", ".", "..")]
    if parts and re.fullmatch(r"[A-Za-z]:", parts[0]):
        parts = parts[1:]
    cleaned = [safe_name(p, "_") for p in parts]
    return PurePosixPath(*cleaned) if cleaned else None


class UploadStore:
    def __init__(self, root: Path, limits: UploadLimits | None = None):
        self.root = Path(root)
        self.limits = limits or UploadLimits()

    def new_folder(self) -> Path:
        folder = self.root / secrets.token_hex(8)
        folder.mkdir(parents=True, exist_ok=False)
        return folder

    def owns(self, path: Path | str) -> bool:
        try:
            Path(path).resolve().relative_to(self.root.resolve())
            return True
        except ValueError:
            return False

    def stage(self, temp_path: Path | str, client_name: str, *,
              folder: Path | None = None, relative: str | None = None) -> Staged:
        """Move one uploaded file into the store (unpacking a zip); the temp
        file is gone afterwards whether this succeeds or raises."""
        temp_path = Path(temp_path)
        name = safe_name(client_name or temp_path.name)
        try:
            size = temp_path.stat().st_size
            if size > self.limits.max_bytes:
                raise UploadRejected(name, "too-large",
                                     f"the file is {_mb(size)}; the upload limit is "
                                     f"{_mb(self.limits.max_bytes)}")
            target_folder = folder or self.new_folder()
            if name.lower().endswith(".zip") and relative is None:
                return self._unzip(temp_path, name, target_folder)
            rel = safe_relative(relative) if relative else None
            # A loose file sits in a plainly named folder: code sources are
            # shown to the model as `parent/name`, and a random token says nothing.
            dest = target_folder / rel if rel else target_folder / LOOSE_FOLDER / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest = _unique(dest)
            shutil.move(str(temp_path), dest)
            return Staged(dest, name)
        finally:
            discard_temp(temp_path)

    def _unzip(self, archive: Path, name: str, folder: Path) -> Staged:
        limits = self.limits
        target = folder / (safe_name(name[:-4], "archive"))
        notes: list[str] = []
        written = 0
        try:
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                if len(members) > limits.max_zip_members:
                    raise UploadRejected(name, "too-large",
                                         f"the zip holds {len(members):,} entries; the limit "
                                         f"is {limits.max_zip_members:,}")
                for info in members:
                    mode = info.external_attr >> 16
                    if info.is_dir():
                        continue
                    if stat.S_ISLNK(mode):
                        notes.append(f"{info.filename}: a link, not unpacked")
                        continue
                    if info.flag_bits & 0x1:
                        raise UploadRejected(name, "password-required",
                                             "the zip is encrypted; unpack it and add the "
                                             "files or the folder instead")
                    rel = safe_relative(info.filename)
                    if rel is None:
                        continue
                    dest = _unique(target / rel)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(dest, "wb") as out:
                        while chunk := src.read(1 << 20):
                            written += len(chunk)
                            if written > limits.max_unzipped_bytes:
                                raise UploadRejected(
                                    name, "too-large",
                                    f"the zip expands beyond {_mb(limits.max_unzipped_bytes)}")
                            out.write(chunk)
        except UploadRejected:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError,
                NotImplementedError, ValueError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise UploadRejected(name, "corrupt", f"not a readable zip ({exc})") from exc
        target.mkdir(parents=True, exist_ok=True)
        return Staged(target, name, folder=True, notes=notes)

    def remove(self, path: Path | str) -> None:
        """Delete a stored upload (and its generated folder once empty)."""
        path = Path(path)
        if not self.owns(path) or path.resolve() == self.root.resolve():
            return
        try:
            path.unlink()
        except OSError:
            return
        parent = path.parent
        while parent.resolve() != self.root.resolve() and self.owns(parent):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def discard_temp(path: Path) -> None:
    """Remove Gradio's cache copy and its per-upload folder when empty."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
    try:
        path.parent.rmdir()
    except OSError:
        pass


def clear_folder(folder: Path) -> None:
    """Empty a scratch folder (left over from an earlier run) without
    following links out of it."""
    if not folder.is_dir():
        return
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    for n in range(2, 10_000):
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        if not candidate.exists():
            return candidate
    return path.with_name(f"{path.stem}-{secrets.token_hex(4)}{path.suffix}")


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n < 2**30 else f"{n / 2**30:.1f} GB"
