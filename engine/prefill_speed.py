"""How fast this machine reads a prompt, as the context budget needs it.

The estimate is the median of the last few answers' prefill speeds, the
first measurement among them and three readings at least. A rate timed
while the machine was busy heals itself, and one slow answer (the first
after loading, another program's moment) does not cut the next answers'
sources: with a running mean, one answer read in 10 s instead of 7 took the
next four from 900 tokens to 690-780 (bench/RESULTS.md). With a
`RateMemory` the readings outlive the process: the next run, or the next
one-question `folio ask`, starts from them.
"""
from __future__ import annotations

import statistics
from collections import deque
from typing import Callable, Protocol


class RateMemory(Protocol):
    """Where the prefill speeds of earlier answers are kept between runs (the
    app: `machine.json` in the data dir, app/machine_speeds.py)."""

    def load(self) -> list[float]:
        """The kept readings, oldest first (measured once when there are none)."""

    def save(self, readings: list[float]) -> None:
        """Keep these readings; failing to is not an error of the answer."""


class PrefillSpeed:
    """Tokens per second of prompt reading: given, measured once, or kept."""

    def __init__(self, rate: Callable[[], float] | float | None = None,
                 memory: RateMemory | None = None, window: int = 5):
        self._rate = rate
        self._readings: deque[float] = deque(maxlen=max(1, window))
        self._memory = memory          # read at the first budget, written after answers

    def rate(self) -> float | None:
        if self._memory is not None and self._rate is None and not self._readings:
            stored = [r for r in self._memory.load() if r > 0]
            self._readings.extend(stored[-self._readings.maxlen:])
            if self._readings:      # as observe: one reading alone moves nothing
                self._rate = statistics.median(self._readings) \
                    if len(self._readings) >= 3 else self._readings[0]
        if callable(self._rate):
            self._rate = float(self._rate())
        return self._rate

    def observe(self, stats) -> None:
        """Follow the machine with one answer's backend stats; a prompt read
        mostly from cache says nothing of the speed."""
        if stats is None or stats.prompt_tokens - stats.cached_tokens < 200:
            return
        observed = stats.prefill_tokens_per_s
        if observed <= 0:
            return
        rate = self.rate()          # the stored readings, when kept, come first
        if not self._readings and rate:
            self._readings.append(rate)
        self._readings.append(observed)
        if len(self._readings) >= 3 or not rate:
            self._rate = statistics.median(self._readings)
        if self._memory is not None:
            self._memory.save(list(self._readings))
