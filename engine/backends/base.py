"""The answer-model interface every backend implements.

Why an interface: the selection budget, the answering loop and the
benchmarks talk to "a model" (llama.cpp today, the offloaded sparse-attention
backend next) through the same few calls, so a backend can be swapped
without touching them.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict


class ChatMessage(TypedDict):
    """One chat turn, as chat templates expect it."""
    role: str       # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class GenerationStats:
    """Timings of one `stream` call; the budget logic and the benchmarks read
    these to relate context size to time-to-first-token."""
    prompt_tokens: int          # the whole chat after the template
    cached_tokens: int          # prompt prefix reused from the previous call
    generated_tokens: int
    time_to_first_token_s: float
    total_s: float
    prefill_s: float            # evaluating the non-cached prompt tokens
    stop_reason: str            # "end" | "max_tokens" | "context_full" | "stopped"
                                # | "closed" (the consumer closed the stream)

    @property
    def prefill_tokens_per_s(self) -> float:
        evaluated = self.prompt_tokens - self.cached_tokens
        return evaluated / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens after the first, over the time after the first: excludes prefill."""
        decode_s = self.total_s - self.time_to_first_token_s
        return (self.generated_tokens - 1) / decode_s \
            if self.generated_tokens > 1 and decode_s > 0 else 0.0


@dataclass
class BackendConfig:
    """How to load a model; the defaults suit a laptop CPU."""
    n_ctx: int | None = None        # None: the trained window, capped at max_ctx
    max_ctx: int = 8192             # the cap: a bigger window costs memory, and
                                    # the time budget rarely fills more on a CPU
    n_threads: int | None = None    # None: physical cores (hyperthreads slow it)
    n_batch: int = 512              # llama.cpp's own batch
    prefill_block: int = 64         # the prompt is read in blocks of this many tokens, fixed
                                    # from its start, and a cached prefix is reused whole
                                    # blocks at a time: the same prompt then gives the same
                                    # logits after any earlier prompt (llama_cpp.py); also
                                    # how often stop is checked
    repeat_penalty: float = 1.0     # 1.0: off, so quoted source text is not penalised
    seed: int = 0                   # sampling seed when temperature > 0
    device: str = "auto"            # "auto" (GPU when the build has one), "cpu" or "gpu"
    contrast_alpha: float = 0.0     # context-aware decoding (contrast.py): how far the
                                    # sources' say outweighs the model's own; 0: off (on
                                    # the dev set, 0.5 and 1.0 gained answers and lost
                                    # about as many, and citations: bench/RESULTS.md)
    contrast_plausibility: float = 0.1  # ...among tokens this likely relative to the best
    contrast_ctx: int = 2048        # the question-alone context's window


@dataclass(frozen=True)
class ModelInfo:
    """What the app shows about the loaded model."""
    path: Path
    name: str
    backend: str
    n_ctx: int                  # the window this backend was loaded with
    n_ctx_train: int | None     # the model's trained window
    file_size: int


class Backend(ABC):
    """Load a model once, then count tokens and stream answers.

    `stream` yields text pieces as they are generated and stops early when
    `stop_event` is set or `stop()` is called from another thread; after the
    generator finishes (or is closed), `last_stats` describes that call.
    """

    info: ModelInfo
    last_stats: GenerationStats | None = None

    @classmethod
    @abstractmethod
    def load(cls, path: Path, config: BackendConfig | None = None) -> "Backend":
        """Load the model at `path`; raise a `ModelError` saying why not."""

    @property
    def n_ctx(self) -> int:
        """Tokens the context window holds: prompt plus answer."""
        return self.info.n_ctx

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of plain text (no template, no special tokens)."""

    @abstractmethod
    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of the chat after the model's chat template, including the
        assistant-turn header the answer starts from."""

    def cached_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """How many of the chat's first tokens the backend still holds from
        its previous call, so reading them again costs nothing (the system
        prompt, mostly): the budget spends that time on sources instead."""
        return 0

    @abstractmethod
    def stream(self, messages: Sequence[ChatMessage], max_tokens: int,
               temperature: float = 0.0,
               stop_event: threading.Event | None = None,
               contrast: Sequence[ChatMessage] | None = None) -> Iterator[str]:
        """Generate an answer to the chat, piece by piece. `contrast`: the
        same chat without its sources, for backends that decode against it
        (`contrastive`); others ignore it."""

    @property
    def contrastive(self) -> bool:
        """Whether `stream` uses the `contrast` chat (context-aware decoding)."""
        return False

    def option_logprobs(self, messages: Sequence[ChatMessage], reply: str,
                        options: Sequence[str]) -> list[float] | None:
        """Log-probability of each option as the continuation of `reply` (the
        assistant's turn so far) to the chat: the model choosing among named
        things without writing free text. None: this backend cannot score."""
        return None

    def continue_reply(self, messages: Sequence[ChatMessage], reply: str, max_tokens: int,
                       stop_event: threading.Event | None = None,
                       contrast: Sequence[ChatMessage] | None = None) -> Iterator[str] | None:
        """Generate, piece by piece, what follows `reply` (the assistant's
        turn so far) in the chat. None: this backend cannot continue a reply."""
        return None

    @abstractmethod
    def stop(self) -> None:
        """Ask a running `stream` (in another thread) to finish soon."""

    def close(self) -> None:
        """Free the model's memory; the backend is unusable afterwards."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
