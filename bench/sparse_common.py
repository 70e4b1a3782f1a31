"""What `bench/sparse.py`'s sections share: the result row, printed as a
table line, and greedy decoding with transformers (the dense baseline)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch


@dataclass
class Row:
    section: str
    system: str
    context: int
    budget: str = ""
    found: str = ""
    agree: str = ""
    retained: float | None = None
    ttft_first_s: float | None = None
    ttft_followup_s: float | None = None
    decode_ms: float | None = None
    floor_ms: float | None = None
    memory: str = ""
    note: str = ""
    extra: dict = field(default_factory=dict)


HEAD = (f"{'section':9} {'system':22} {'ctx':>7} {'budget':>6} {'found':>5} {'agree':>5} "
        f"{'kept':>5} {'ttft1':>7} {'ttft2':>6} {'ms/tok':>8} {'floor':>7}  memory / note")


def _fmt(x, spec):
    return format(x, spec) if x is not None else "-"


def print_row(r: Row) -> None:
    print(f"{r.section:9} {r.system:22} {r.context:>7} {r.budget:>6} {r.found:>5} {r.agree:>5} "
          f"{_fmt(r.retained, '5.2f'):>5} {_fmt(r.ttft_first_s, '7.2f'):>7} "
          f"{_fmt(r.ttft_followup_s, '6.2f'):>6} {_fmt(r.decode_ms, '8.1f'):>8} "
          f"{_fmt(r.floor_ms, '7.1f'):>7}  {r.memory} {r.note}", flush=True)


def greedy_hf(hf, cache, prompt: list[int], max_new: int, stop: set[int]):
    """Greedy decode with transformers; returns tokens, ttft, per-token seconds."""
    dev = hf.device
    t0 = time.perf_counter()
    out = hf(torch.tensor([prompt], device=dev), past_key_values=cache, use_cache=True)
    tokens, times = [], []
    for step in range(max_new):
        t = int(out.logits[0, -1].argmax())
        now = time.perf_counter()
        times.append(now - t0)
        t0 = now
        tokens.append(t)
        if t in stop or step == max_new - 1:
            break
        out = hf(torch.tensor([[t]], device=dev), past_key_values=cache, use_cache=True)
    return tokens, times[0], times[1:]
