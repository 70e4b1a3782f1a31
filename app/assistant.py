"""Wire the answering pipeline from settings: backend, search, selection,
citation boxes. Construction only; the logic lives in `engine`."""
from __future__ import annotations

import json
import os
from pathlib import Path

import sqlite_utils

from engine.embedder import Embedder
from engine.qa import Answerer, QAConfig
from engine.search import HybridSearcher
from storage import embeddings

from .settings import Settings


def prefill_key(info) -> str:
    """What a stored prefill speed belongs to: the model file, the number
    of CPUs and the llama.cpp build."""
    from engine.backends.prefill_rate import build_id

    return f"{info.name}:{info.file_size}:{os.cpu_count()}:{build_id()}"


def _cached_prefill_rate(settings: Settings, backend) -> float | None:
    """Prefill tokens/s of this model on this machine, measured once and
    kept in the data dir, so every `folio ask` need not time it again."""
    from engine.backends.prefill_rate import measure_prefill_rate

    path = settings.home / "machine.json"
    key = prefill_key(backend.info)
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if key not in cached:
        cached[key] = measure_prefill_rate(backend)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cached, indent=1))
    return cached[key]


def load_answer_backend(settings: Settings, model: Path | None = None):
    """llama.cpp or the sparse engine, as the settings say ("auto": llama.cpp
    for a GGUF file, the sparse engine for a Hugging Face folder)."""
    from engine.backends import BackendConfig, load_backend
    from engine.backends.sparse import SparseOptions

    return load_backend(model or settings.model, settings.models_dir,
                        config=BackendConfig(device=settings.device), kind=settings.backend,
                        sparse=SparseOptions(kv_root=settings.kv_dir, mode=settings.sparse_mode))


def qa_config(settings: Settings, context_tokens: int | None = None) -> QAConfig:
    """The answering settings: a budget given here or in the settings is
    fixed; otherwise it adapts to the machine, up to the settings' ceiling."""
    return QAConfig(context_tokens=context_tokens if context_tokens is not None
                    else settings.context_tokens,
                    max_context_tokens=settings.max_context_tokens or None)


def build_answerer(settings: Settings, db: sqlite_utils.Database, backend=None, *,
                   model: Path | None = None, pipeline=None,
                   context_tokens: int | None = None) -> Answerer:
    from engine.select import default_pipeline
    from ingest.pdf.words import WordBoxes

    backend = backend or load_answer_backend(settings, model)
    config = settings.embedder_config()
    embedder: Embedder | None = None

    def get_embedder() -> Embedder:
        nonlocal embedder
        if embedder is None:
            embedder = Embedder(config)
        return embedder

    has_vectors = embeddings.count_embeddings(db, config.model_name) > 0
    searcher = HybridSearcher(db, config.model_name, get_embedder if has_vectors else None)
    return Answerer(db, backend, searcher, pipeline or default_pipeline(),
                    embed=lambda texts: get_embedder().embed(texts),
                    config=qa_config(settings, context_tokens),
                    refine_boxes=WordBoxes(),
                    prefill_rate=(lambda: _cached_prefill_rate(settings, backend))
                    if backend.info.backend == "llama.cpp" else None)
