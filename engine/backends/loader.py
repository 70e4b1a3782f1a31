"""Pick and load the answer-model backend for a path (or the bundled default)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.backends.base import Backend, BackendConfig
from engine.backends.errors import (ModelFormatError, ModelNotFoundError,
                                    UnsupportedModelError)

if TYPE_CHECKING:
    from engine.backends.sparse import SparseOptions


def is_hf_folder(path: Path) -> bool:
    """A Hugging Face model folder: config.json beside the weights."""
    return path.is_dir() and (path / "config.json").is_file()


def load_backend(model_path: Path | None, models_dir: Path,
                 n_ctx: int | None = None,
                 config: BackendConfig | None = None, *, kind: str = "auto",
                 sparse: "SparseOptions | None" = None) -> Backend:
    """`None` means the bundled Qwen2.5-Coder GGUF (assembled into
    `models_dir` on first use). `kind` "llama.cpp" or "sparse" picks the
    backend; "auto" gives a GGUF file to llama.cpp and a Hugging Face folder
    to the sparse engine (when `sparse` options say where its caches go).
    Anything else gets an error that says what would work. `n_ctx`
    overrides `config.n_ctx`."""
    if kind not in ("auto", "llama.cpp", "sparse"):
        raise ValueError(f"unknown backend {kind!r}: use auto, llama.cpp or sparse")
    config = config or BackendConfig()
    if n_ctx is not None:
        config = replace(config, n_ctx=n_ctx)
    if model_path is None:
        from engine.model_files import default_model_path

        path = default_model_path(Path(models_dir))
    else:
        path = Path(model_path).expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"no model at {path}")
    wants_sparse = kind == "sparse" or (kind == "auto" and is_hf_folder(path)
                                        and sparse is not None)
    if wants_sparse:
        from engine.backends.sparse import SparseBackend, SparseOptions

        return SparseBackend.load(path, config, sparse or SparseOptions(
            kv_root=Path(models_dir).parent / "kv"))
    if is_hf_folder(path):
        raise UnsupportedModelError(
            f"{path} is a Hugging Face model folder: llama.cpp needs a single "
            ".gguf file, and Hugging Face folders need the sparse-attention "
            "backend; convert the model to GGUF or pass a .gguf file")
    if path.is_dir():
        raise ModelFormatError(
            f"{path} is a folder but not a Hugging Face model (no config.json); "
            "pass a .gguf file")
    from engine.backends.llama_cpp import LlamaCppBackend

    return LlamaCppBackend.load(path, config)
