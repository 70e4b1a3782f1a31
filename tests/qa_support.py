"""A deterministic stand-in for an answer model, for orchestration tests.

It reads the sources block the way a faithful model would: it answers with
the source sentence that best overlaps the question and cites its number,
or declines when nothing overlaps. The real-model tests (marked slow) use
the tiny GGUF instead.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path

from engine.backends.base import Backend, GenerationStats, ModelInfo
from engine.text import terms


class ExtractiveBackend(Backend):
    def __init__(self, n_ctx: int = 2048):
        self.info = ModelInfo(Path("/fake.gguf"), "extractive", "fake", n_ctx, n_ctx, 0)
        self.prompts: list[str] = []

    @classmethod
    def load(cls, path, config=None) -> "ExtractiveBackend":
        return cls()

    def count_tokens(self, text: str) -> int:
        return len(re.findall(r"\w+|[^\w\s]", text))

    def prompt_tokens(self, messages) -> int:
        return sum(self.count_tokens(m["content"]) + 4 for m in messages) + 3

    def stream(self, messages, max_tokens, temperature=0.0, stop_event=None):
        prompt = messages[0]["content"]
        self.prompts.append(prompt)
        question = messages[-1]["content"]
        wanted = set(terms(question))
        best, best_label, best_score = "", None, 0
        label = None
        for line in prompt.split("\n\n", 1)[-1].splitlines():
            header = re.match(r"\[(\d+)\]", line)
            if header:
                label = int(header.group(1))
                continue
            for sentence in re.split(r"(?<=[.!?])\s+", line):
                score = len(wanted & set(terms(sentence)))
                if score > best_score:
                    best, best_label, best_score = sentence, label, score
        if best_score < 2 or best_label is None:
            answer = "The documents do not contain this."
        else:
            answer = f"{best.rstrip('.')} [{best_label}]."
        for word in answer.split(" "):
            if stop_event is not None and stop_event.is_set():
                break
            yield word + " "
        self.last_stats = GenerationStats(self.prompt_tokens(messages), 0, len(answer.split()),
                                          0.01, 0.02, 0.01, "end")

    def stop(self) -> None:
        pass
