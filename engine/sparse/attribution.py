"""The attention mass each document token received while an answer was
generated: a citation signal beside lexical and embedding support."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class Attribution:
    """Attention mass each document token received while the answer was
    generated, summed over layers, heads and generated tokens."""

    per_cache: list[Tensor] = field(default_factory=list)   # float64 [tokens] per cache

    def range_mass(self, cache_index: int, start: int, end: int) -> float:
        return float(self.per_cache[cache_index][start:end].sum())

    def ranges(self, ranges: list[tuple[int, int, int]]) -> list[float]:
        """Mass of each (cache_index, token_start, token_end); the caller maps
        segments to token ranges."""
        return [self.range_mass(c, a, b) for c, a, b in ranges]

    def total(self) -> float:
        return float(sum(t.sum() for t in self.per_cache))
