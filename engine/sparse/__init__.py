"""Offloaded sparse-attention inference (issue 5).

A document's KV cache is computed once (`kv_build.build_cache`), kept on disk
as memory-mapped blocks with keys before RoPE, and for each question only
the blocks that matter are attended to (`attention.SparseAttention`), chosen
per layer and KV head by scoring small block representatives
(`representatives`, `selectors`), beside attention sinks and the local
window, at reassigned positions that stay inside the model's window.
`generate.SparseEngine` ties it together; `registry` (imported on its own,
it needs the storage layer) keeps cache folders and `kv_caches` rows in step.

Modules: model (the forward), kvstore, representatives, selectors,
attention, generate, registry.
"""
from .attention import EVERYTHING, SparseConfig
from .attribution import Attribution
from .generate import AnswerStats, AnswerStream, EngineConfig, SparseEngine
from .kv_build import build_cache
from .kvstore import KVCache, KVCacheError, PrefillConfig, open_cache

__all__ = ["EVERYTHING", "AnswerStats", "AnswerStream", "Attribution", "EngineConfig",
           "KVCache", "KVCacheError", "PrefillConfig", "SparseConfig", "SparseEngine",
           "build_cache", "open_cache"]
