"""Wire the answering pipeline from settings: backend, search, selection,
citation boxes. Construction only; the logic lives in `engine`."""
from __future__ import annotations

from pathlib import Path

import sqlite_utils

from engine.embedder import Embedder
from engine.qa import Answerer, QAConfig
from engine.search import HybridSearcher
from storage import embeddings

from .machine_speeds import StoredPrefillSpeeds, prefill_key
from .settings import Settings


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


def selection_pipeline(settings: Settings):
    """The default selection steps, with sentence pruning where the
    settings ask for it (a model that reads a larger window well)."""
    from engine.select import default_pipeline

    return default_pipeline(sentence_pruning=settings.sentence_pruning)


def build_answerer(settings: Settings, db: sqlite_utils.Database, backend=None, *,
                   model: Path | None = None, pipeline=None,
                   context_tokens: int | None = None) -> Answerer:
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
    return Answerer(db, backend, searcher, pipeline or selection_pipeline(settings),
                    embed=lambda texts: get_embedder().embed(texts),
                    config=qa_config(settings, context_tokens),
                    refine_boxes=WordBoxes(),
                    rate_memory=prefill_speeds(settings, backend)
                    if backend.info.backend == "llama.cpp" else None)


def prefill_speeds(settings: Settings, backend) -> StoredPrefillSpeeds:
    """The prefill speeds of this model on this machine, kept in the data dir."""
    from engine.backends.prefill_rate import measure_prefill_rate

    return StoredPrefillSpeeds(settings.home / "machine.json", prefill_key(backend.info),
                               lambda: measure_prefill_rate(backend))
