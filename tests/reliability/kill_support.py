"""Helpers for the crash and full-disk tests: run a child Python process that
dies by SIGKILL at a chosen point, fixtures it can use, and a snapshot of
every library row to prove earlier data came through untouched.

A module of its own name (not conftest) so child processes can import it.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pymupdf

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TABLES = ("documents", "pages", "segments", "embeddings", "conversations", "turns",
          "citations", "kv_caches")


# -- in the parent --------------------------------------------------------

def run_child(code: str, *args: object, timeout: float = 180,
              wrapper: list[str] = ()) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter that can import the project and these
    helpers; `wrapper` is a command line the interpreter is started by."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, (ROOT, ROOT / "tests", HERE))),
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    command = [*wrapper, sys.executable, "-c", textwrap.dedent(code), *map(str, args)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def assert_killed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == -signal.SIGKILL, (
        f"the child was meant to die by SIGKILL, it exited {result.returncode}\n"
        f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")


def snapshot(db, tables: tuple[str, ...] = TABLES) -> dict[str, list[tuple]]:
    """Every row of the library, in a stable order: what "intact" compares."""
    return {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}


# -- in the child ---------------------------------------------------------

def die() -> None:
    """Like a power cut or `kill -9`: no cleanup, no exception handlers."""
    os.kill(os.getpid(), signal.SIGKILL)


def die_on_statement(db, prefix: str, nth: int = 1) -> None:
    """SIGKILL when the connection starts the `nth` statement beginning with
    `prefix` (SQLite traces each executemany row and each COMMIT before it runs)."""
    seen = 0

    def trace(sql: str) -> None:
        nonlocal seen
        if sql.lstrip().upper().startswith(prefix.upper()):
            seen += 1
            if seen == nth:
                die()

    db.conn.set_trace_callback(trace)


# -- shared fixtures ------------------------------------------------------

def long_pdf(path: Path, pages: int = 40) -> Path:
    """Many pages of distinct sentences: page k mentions `marker{k}`."""
    doc = pymupdf.open()
    for k in range(1, pages + 1):
        page = doc.new_page()
        text = "\n\n".join(
            f"Section {k}.{p}: the surveyor recorded marker{k} beside cairn {p} while "
            f"the wind turned north and the crew measured depth {k * 10 + p} metres."
            for p in range(1, 7))
        page.insert_textbox(pymupdf.Rect(56, 56, 556, 760), text, fontsize=11, fontname="helv")
    doc.save(path)
    return path


def fact_pdf(path: Path) -> Path:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_textbox(pymupdf.Rect(56, 56, 556, 760),
                        "Meltwater from the eastern glacier feeds the Lindqvist reservoir "
                        "in early summer.\n\nThe observatory on the ridge records wind speed "
                        "with three cup anemometers.", fontsize=11, fontname="helv")
    doc.save(path)
    return path


class HashEmbedder:
    """A deterministic stand-in for the embedding model: the vector of a text
    depends on the text alone, so a stored vector can be checked against the
    segment it belongs to. `die_on_call` kills the process in that call."""

    name = "hash-embed"
    dim = 32

    def __init__(self, die_on_call: int | None = None):
        self.calls = 0
        self.die_on_call = die_on_call

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == self.die_on_call:
            die()
        return np.stack([self.vector(t) for t in texts])

    @classmethod
    def vector(cls, text: str) -> np.ndarray:
        rng = np.random.default_rng(
            int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))
        v = rng.standard_normal(cls.dim).astype(np.float32)
        return v / np.linalg.norm(v)


def answerer(db):
    """The real answering pipeline over `db` with the deterministic backend."""
    from engine.qa import Answerer, QAConfig
    from engine.search import HybridSearcher
    from engine.select import default_pipeline
    from qa_support import ExtractiveBackend

    return Answerer(db, ExtractiveBackend(), HybridSearcher(db), default_pipeline(),
                    config=QAConfig(context_tokens=400))


def tiny_transformer(seed: int = 0):
    """A 2-layer random Qwen2-shaped model built directly (no transformers import)."""
    import torch

    from engine.sparse.model import ModelConfig, Transformer

    cfg = ModelConfig(vocab_size=300, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16,
                      intermediate_size=128, rope_theta=10000.0, norm_eps=1e-6,
                      max_position=512, qkv_bias=True, tie_embeddings=True)
    gen = torch.Generator().manual_seed(seed)

    def w(*shape):
        return torch.randn(*shape, generator=gen) * 0.2

    state = {"model.embed_tokens.weight": w(300, 64), "model.norm.weight": 1 + w(64)}
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        state.update({
            p + "input_layernorm.weight": 1 + w(64), p + "post_attention_layernorm.weight": 1 + w(64),
            p + "self_attn.q_proj.weight": w(64, 64), p + "self_attn.q_proj.bias": w(64),
            p + "self_attn.k_proj.weight": w(32, 64), p + "self_attn.k_proj.bias": w(32),
            p + "self_attn.v_proj.weight": w(32, 64), p + "self_attn.v_proj.bias": w(32),
            p + "self_attn.o_proj.weight": w(64, 64),
            p + "mlp.gate_proj.weight": w(128, 64), p + "mlp.up_proj.weight": w(128, 64),
            p + "mlp.down_proj.weight": w(64, 128)})
    with torch.no_grad():
        return Transformer(cfg, state).eval()


def sparse_engine(kv_root: Path):
    from engine.sparse.generate import EngineConfig, SparseEngine
    from engine.sparse.kvstore import PrefillConfig

    return SparseEngine(tiny_transformer(), "tiny-model", kv_root,
                        EngineConfig(prefill=PrefillConfig(block_size=16, chunk=32)))
