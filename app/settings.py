"""The one settings object: where the library lives and which models to use.

Precedence, highest first: command-line options, environment variables
(FOLIO_HOME, FOLIO_MODEL, FOLIO_EMBED_MODEL), `settings.toml` in the data
directory, built-in defaults (a per-user folder, the bundled models).
"""
from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from engine.embedder import EmbedderConfig
from ingest.config import IngestConfig


def default_home() -> Path:
    """A per-user data folder following each platform's convention."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "Folio"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Folio"
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "folio"


class SettingsError(ValueError):
    """settings.toml is unreadable or names an unknown setting."""


@dataclass
class Settings:
    home: Path = field(default_factory=default_home)
    model: Path | None = None              # answer model: a GGUF file or HF folder
    embed_model: Path | None = None        # None: bundled all-MiniLM-L6-v2
    embed_quantize: bool = True            # int8 ONNX weights: cosine 0.993 to fp32, 3x faster
    embedding_dtype: str = "float32"       # or "int8": 4x smaller vectors
    context_tokens: int | None = None      # tokens of sources per answer; None = adapt to the machine
    max_context_tokens: int = 900          # the adapted budget's ceiling, as QAConfig's (the default
                                           # 0.5B model answers worse with more); 0 = none
    sentence_pruning: bool = False         # sources cut to their relevant sentences: more fit,
                                           # but the default 0.5B model answers worse (RESULTS.md)
    backend: str = "auto"                  # "auto", "llama.cpp" or "sparse"
    sparse_mode: str = "retrieval"         # sparse engine: "retrieval" (selected segments)
                                           # or "document" (every block of the documents)
    device: str = "auto"                   # "auto", "cpu" or "gpu"
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: int = 200               # largest file the browser may upload

    @property
    def db_path(self) -> Path:
        return self.home / "folio.db"

    @property
    def kv_dir(self) -> Path:
        """The sparse engine's per-document KV caches."""
        return self.home / "kv"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    def embedder_config(self) -> EmbedderConfig:
        return EmbedderConfig(model_dir=self.embed_model, quantize=self.embed_quantize,
                              cache_dir=self.models_dir / "embedders")

    def ingest_config(self) -> IngestConfig:
        return IngestConfig()

    def save(self, **changes) -> "Settings":
        """Write `changes` into settings.toml (keeping the other keys) and
        return the updated settings; None removes a key (back to default)."""
        path = self.home / "settings.toml"
        current = _read_toml(path)
        known = {f.name for f in fields(Settings)} - {"home"}
        for key, value in changes.items():
            if key not in known:
                raise SettingsError(f"unknown setting {key}")
            if value is None:
                current.pop(key, None)
            else:
                current[key] = str(value) if isinstance(value, Path) else value
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in sorted(current.items())),
                        encoding="utf-8")
        values = {f.name: getattr(self, f.name) for f in fields(Settings)}
        values.update({k: (Path(v).expanduser() if k in ("model", "embed_model") and v else v)
                       for k, v in changes.items()})
        return Settings(**values)

    @classmethod
    def load(cls, home: Path | str | None = None) -> "Settings":
        home_path = Path(home or os.environ.get("FOLIO_HOME") or default_home()).expanduser()
        values: dict = {"home": home_path.resolve()}
        values.update(_read_toml(home_path / "settings.toml"))
        if os.environ.get("FOLIO_MODEL"):
            values["model"] = os.environ["FOLIO_MODEL"]
        if os.environ.get("FOLIO_EMBED_MODEL"):
            values["embed_model"] = os.environ["FOLIO_EMBED_MODEL"]
        for key in ("model", "embed_model"):
            if values.get(key):
                values[key] = Path(values[key]).expanduser()
        return cls(**values)


def _toml_value(value) -> str:
    """A TOML literal for the simple values settings hold."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))   # a JSON string is a valid TOML basic string


def _read_toml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read settings ({exc})") from exc
    known = {f.name for f in fields(Settings)} - {"home"}
    unknown = set(data) - known
    if unknown:
        raise SettingsError(f"{path}: unknown settings {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(sorted(known))}")
    return data
