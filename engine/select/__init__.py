"""Query-aware context selection: candidates from search in, numbered
sources that fit the model's window out (see base.py for the contract)."""
from .base import GAP, Candidate, Part, Selection, SelectionContext, SelectionStep, Source
from .code import CodeExpand
from .diversify import Diversify
from .neighbours import NeighbourExpand
from .pack import Pack, render_sources, source_block, source_header
from .pipeline import (Pipeline, TopK, baseline_pipeline, candidates_from_hits,
                       default_pipeline)
from .prune import PruneSentences
from .prune_code import PruneCode
from .prune_table import PruneTable
from .rerank import Rerank
from .trim_docstrings import TrimDocstrings

__all__ = ["GAP", "Candidate", "CodeExpand", "Diversify", "NeighbourExpand", "Pack", "Part",
           "Pipeline", "PruneCode", "PruneSentences", "PruneTable", "Rerank", "Selection", "SelectionContext",
           "SelectionStep", "Source", "TopK", "TrimDocstrings", "baseline_pipeline", "candidates_from_hits",
           "default_pipeline", "render_sources", "source_block", "source_header"]
