"""This machine's prefill speeds, kept in the data dir (`machine.json`), so
the context budget follows the machine across runs: one `folio ask` reads
one prompt, and without the speeds of earlier answers its budget would
follow the first speed ever measured, however busy the machine was then."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


def prefill_key(info) -> str:
    """What a stored prefill speed belongs to: the model file, the number
    of CPUs and the llama.cpp build."""
    from engine.backends.prefill_rate import build_id

    return f"{info.name}:{info.file_size}:{os.cpu_count()}:{build_id()}"


def _readings(value) -> list[float]:
    """A stored entry as readings; a bare number is the one measurement
    that earlier versions kept."""
    values = value if isinstance(value, list) else [value]
    return [float(v) for v in values if isinstance(v, (int, float)) and v > 0]


def stored_prefill_rate(path: Path, key: str) -> float | None:
    """The speed the budget starts from: the median of the stored readings."""
    try:
        readings = _readings(json.loads(path.read_text()).get(key))
    except (OSError, ValueError, AttributeError):
        return None
    return statistics.median(readings) if readings else None


class StoredPrefillSpeeds:
    """The answerer's `RateMemory` (engine/prefill_speed.py): the last few prefill
    speeds of this model on this machine; measured once when none is kept."""

    def __init__(self, path: Path, key: str, measure: Callable[[], float]):
        self.path, self.key, self.measure = path, key, measure

    def _all(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def load(self) -> list[float]:
        readings = _readings(self._all().get(self.key))
        if not readings:
            readings = [self.measure()]
            self.save(readings)
        return readings

    def save(self, readings: list[float]) -> None:
        """Written whole and swapped in, so a crash or a second Folio writing
        at once leaves one version or the other, never half a file. A data
        dir that cannot be written costs only the memory of the speeds."""
        data = self._all()
        data[self.key] = [round(r, 2) for r in readings]
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data, indent=1))
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("could not keep the prefill speeds in %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                temporary.unlink()
