"""Context-aware decoding: the sources' say over the model's own belief.

A small model often answers from what it learnt rather than from the
sources in front of it: asked what the JSON encoder does with NaN when
`allow_nan` is False, the 0.5B default paraphrased the docstring's "not
JSON specification compliant" although the same docstring says "it will be
a ValueError". Context-aware decoding (Shi et al., 2023, "Trusting Your
Evidence: Hallucinate Less with Context-aware Decoding") scores each next
token by how much the sources raise it:

    (1 + alpha) * logits(question with sources) - alpha * logits(question alone)

and, as in contrastive decoding (Li et al., 2023), only among the tokens
the model with its sources finds plausible (probability at least
`plausibility` times the best one), so a token the sources merely fail to
discourage cannot win. The question-alone pass runs in a second llama.cpp
context on the same loaded weights: its prompt is a few dozen tokens, and
each answer token costs one more small decode step.
"""
from __future__ import annotations

import numpy as np


def contrast(with_sources: np.ndarray, alone: np.ndarray, alpha: float,
             plausibility: float) -> int:
    """The next token (greedy) under context-aware decoding."""
    best = float(with_sources.max())
    # p(t) >= plausibility * p(best)  <=>  logit(t) >= logit(best) + log(plausibility)
    allowed = with_sources >= best + np.log(plausibility) if plausibility > 0 \
        else np.ones_like(with_sources, dtype=bool)
    scores = (1.0 + alpha) * with_sources - alpha * alone
    return int(np.where(allowed, scores, -np.inf).argmax())


class QuestionAlone:
    """A second llama.cpp context on the loaded model, fed the chat without
    its sources and then every answer token, for its next-token logits."""

    def __init__(self, llm, n_ctx: int, n_threads: int, n_batch: int = 512):
        from llama_cpp import _internals

        # the main context's settings (attention kernel, RoPE scaling), so the
        # same tokens give the same logits; only the window is smaller
        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = min(n_batch, n_ctx)
        params.n_threads = params.n_threads_batch = n_threads
        self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._batch = _internals.LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1,
                                            verbose=False)
        self.n_ctx, self.n_batch, self.n_vocab = n_ctx, params.n_batch, llm.n_vocab()
        self.n_past = 0

    def start(self, tokens: list[int]) -> np.ndarray:
        """Read the question-alone prompt afresh; its last token's logits."""
        self._ctx.kv_cache_seq_rm(-1, 0, -1)
        self.n_past = 0
        for i in range(0, len(tokens), self.n_batch):
            self._decode(tokens[i:i + self.n_batch])
        return self.logits()

    def advance(self, token: int) -> np.ndarray | None:
        """Add one answer token; None once the small window is full (the
        answer then goes on without the contrast)."""
        if self.n_past >= self.n_ctx:
            return None
        self._decode([token])
        return self.logits()

    def logits(self) -> np.ndarray:
        return np.ctypeslib.as_array(self._ctx.get_logits(), shape=(self.n_vocab,)).copy()

    def _decode(self, tokens: list[int]) -> None:
        self._batch.set_batch(batch=tokens, n_past=self.n_past, logits_all=False)
        self._ctx.decode(self._batch)
        self.n_past += len(tokens)

    def close(self) -> None:
        self._ctx.close()
        self._batch.close()
