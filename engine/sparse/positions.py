"""Where the sinks, the selected blocks and the local window sit.

While every candidate block and the answer fit the model's trained window,
the blocks keep their candidate positions (dense attention restricted to
them); past the window they are packed into slots after the sinks
(InfLLM-style), so every query-key distance stays inside the window.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PositionPlan:
    sink_tokens: int      # S: sink slots (whole blocks, padding masked)
    n_select: int         # k: blocks selected per head
    block_size: int
    local_start: int      # position of the first question token
    everything: bool      # every candidate block is attended (dense-equivalent)
    original: bool = False    # selected blocks keep their document positions

    def slot_positions(self, device: torch.device | str = "cpu") -> Tensor:
        return torch.arange(self.sink_tokens, self.sink_tokens + self.n_select * self.block_size,
                            device=device)

    def max_distance(self, local_len: int) -> int:
        """Largest query-key distance once `local_len` local tokens exist."""
        return self.local_start + local_len - 1


def plan_positions(*, sink_tokens: int, sink_valid: int, n_candidates: int, last_valid: int,
                   block_size: int, budget_tokens: int, local_max: int,
                   window: int, original: bool = True) -> PositionPlan:
    """Choose how many blocks to select and where everything sits, so that
    every distance stays below `window` for up to `local_max` local tokens.
    With `original`, the selected blocks keep their candidate positions
    whenever all candidates and the local window fit."""
    room = window - sink_tokens - local_max
    if room < 0:
        raise ValueError(f"the question and answer ({local_max} tokens) do not fit the "
                         f"model's window of {window} tokens beside the sinks")
    # Every candidate in place: the last one may be a partial block.
    start = (sink_tokens + (n_candidates - 1) * block_size + last_valid) if n_candidates \
        else sink_valid
    fits = start + local_max <= window
    if original and fits:
        k = min(n_candidates, budget_tokens // block_size)
        return PositionPlan(sink_tokens, k, block_size, start, k == n_candidates, True)
    k = min(n_candidates, budget_tokens // block_size, room // block_size)
    if k == n_candidates and fits:
        return PositionPlan(sink_tokens, k, block_size, start, True, True)
    return PositionPlan(sink_tokens, k, block_size, sink_tokens + k * block_size, False)
