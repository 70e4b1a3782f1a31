"""Validate and save what the settings panel sends."""
from __future__ import annotations

import os
from pathlib import Path

from .settings import Settings, SettingsError


def apply_settings(current: Settings, model: str | None, backend: str, device: str,
                   context_tokens: float | None, max_upload_mb: float | None
                   ) -> tuple[str, Settings | None]:
    """(message, new settings) or (the reason, None) when something is wrong."""
    model = (model or "").strip()
    path = Path(model).expanduser() if model else None
    if path is not None:
        if not path.exists():
            return f"No model at {path}.", None
        if path.is_file() and path.suffix.lower() != ".gguf":
            return f"{path.name} is not a .gguf file; Folio loads GGUF files.", None
        if path.is_dir() and not (path / "config.json").is_file():
            return f"{path} is a folder without config.json, not a Hugging Face model.", None
        if path.is_dir() and backend == "llama.cpp":
            return "llama.cpp needs a .gguf file; a Hugging Face folder runs on the sparse " \
                   "backend.", None
    if backend not in ("auto", "llama.cpp", "sparse"):
        return f"Unknown backend {backend!r}.", None
    if device not in ("auto", "cpu", "gpu"):
        return f"Unknown device {device!r}.", None
    budget = int(context_tokens or 0)
    if budget < 0 or (budget and budget < 128):
        return "The context budget must be 0 (adapt) or at least 128 tokens.", None
    limit = int(max_upload_mb or current.max_upload_mb)
    if limit < 1:
        return "The upload limit must be at least 1 MB.", None
    try:
        new = current.save(model=str(path) if path else None, backend=backend, device=device,
                           context_tokens=budget or None, max_upload_mb=limit)
    except (OSError, SettingsError) as exc:
        return f"Could not save settings: {exc}", None
    note = ""
    if os.environ.get("FOLIO_MODEL") and path != Path(os.environ["FOLIO_MODEL"]):
        note = " FOLIO_MODEL is set in the environment and wins at the next start."
    return f"Saved to {current.home / 'settings.toml'}; the next question uses them.{note}", new
