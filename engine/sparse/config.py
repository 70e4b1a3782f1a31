"""How one answer's sparse attention is set: budget, sinks, how the question
picks its blocks, what happens to the blocks left out, and where blocks sit
past the model's window (attention.py carries it out)."""
from __future__ import annotations

from dataclasses import dataclass

from .lexical import FUSIONS

EVERYTHING = 1 << 40   # a budget that selects every block
QUESTION_SCORING = ("filter", "hybrid", "exact", "selector")
UNSELECTED = ("drop", "mean")
FAR_FILTER = ("windows", "unrotated")
FAR_ORDER = ("document", "score")
LEXICAL_SCOPE = ("far", "always")
# The rule past the window, applied inside it too: the picked blocks packed
# after the sinks in score order, the best next to the question.
PACKED = dict(positions="reassigned", far_order="score")


@dataclass
class SparseConfig:
    budget_tokens: int = 2048     # selected document tokens, besides sinks and local window
    sink_blocks: int = 1          # leading blocks of the first cache, always attended
    selector: str = "quest"
    attribution_skip: int = 4     # first tokens (the attention sink proper) not attributed
    positions: str = "original"   # "original" while everything fits the window, or "reassigned"
    question_scoring: str = "filter"  # the question's forward: "filter", "hybrid", "exact", "selector"
    exact_max_tokens: int = 32768     # candidates scored exactly; more: the selector's shortlist
    pin_fraction: float = 1.0         # share of each head's blocks kept from the question's pick
    filter_depth: float = 2 / 3       # "filter": the layer (share of depth) whose attention picks
    spill_tokens: int = 16            # exact scores also count neighbours' nearest tokens
    filter_rows: int = 0              # "filter": the question's last N tokens pick (0: all);
                                      # GemFilter reads the last token's attention alone
    unselected: str = "mean"          # "mean": while blocks keep their positions, every
                                      # block left out is attended as one summary (mean
                                      # key and value, weighted by its tokens); "drop"
    far_filter: str = "unrotated"     # "filter" past the window: the filter pass once over
                                      # all candidates scored before RoPE ("unrotated"), or
                                      # once per window-sized run of candidates at their
                                      # own positions ("windows": measured, not better)
    filter_window_tokens: int = 0     # "windows": candidate tokens per run (0: as many as
                                      # the model's window holds beside sinks and question)
    far_order: str = "score"          # past the window, the slots' order: "score" (the
                                      # filter's best block nearest the question, where one
                                      # pick is fixed for every layer: "filter" with
                                      # pin_fraction 1; else document order) or "document"
    lexical_weight: float = 4.0       # "filter": the pick also weighs BM25 of the question's
                                      # tokens in each block (lexical.py), scaled to the
                                      # best block's, beside the mass scaled likewise; 0: off
                                      # (measured past the window, 64K-128K: weight 1 found
                                      # 153 of 192 needles, 2 found 177, 4 found 192)
    lexical_fusion: str = "sum"       # "sum" (mass + weight * lexical) or "product"
                                      # (mass * (1 + weight * lexical)), lexical.fuse
    lexical_scope: str = "far"        # "far": past the window only (measured: +20 needles
                                      # of 192 at 64K-128K; inside it "sum" lost 8 of 72 at
                                      # 32K, "product" gained 1); "always"

    def __post_init__(self) -> None:
        choices = {"positions": ("original", "reassigned"), "question_scoring": QUESTION_SCORING,
                   "unselected": UNSELECTED, "far_filter": FAR_FILTER, "far_order": FAR_ORDER,
                   "lexical_fusion": FUSIONS, "lexical_scope": LEXICAL_SCOPE}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        for name in ("filter_depth", "pin_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {getattr(self, name)}")
        for name in ("spill_tokens", "filter_rows", "filter_window_tokens", "lexical_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
