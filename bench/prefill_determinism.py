"""Does the same prompt give the same logits whatever the KV cache held
before? Reusing a cached prefix of any length, in whole prefill blocks
from the start, or the instructions as a block of their own and whole
blocks after them (the default), side by side in one run, same model and
prompts.

    python bench/prefill_determinism.py --model /tmp/folio_models/qwen.gguf

For each reuse rule, a long prompt P is read (1) with an empty cache,
(2) after a prompt Q that shares its first half, (3) right after itself
(all but the last token cached), (4) after a prompt R with the same
instructions and other sources, the usual next question. The table gives
the tokens reused, the largest difference of the next-token logits
between (1) and each of the others, whether the greedy token is the same,
and the prefill speed of a fresh read. Greedy decoding follows the
logits, so any difference can change an answer.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

TEXT = ("The reservoir holds water for the valley and releases it in spring, "
        "when the river below runs low and the fields need it most. ")


def chats(words: int) -> tuple[list[dict], list[dict]]:
    body = " ".join(TEXT for _ in range(words // len(TEXT.split()) + 1))
    question = {"role": "user", "content": "What does the reservoir hold?"}
    p = [{"role": "system", "content": f"Answer from the sources.\n\n[1] {body} Alpha."}, question]
    q = [{"role": "system", "content": f"Answer from the sources.\n\n[1] {body[:len(body) // 2]} "
                                       "Beta gamma."}, {"role": "user", "content": "What else?"}]
    r = [{"role": "system", "content": "Answer from the sources.\n\n[1] Delta epsilon. " + body},
         {"role": "user", "content": "What else?"}]
    return p, q, r


def logits_after(backend, chat, whole_blocks: bool,
                 lead: bool) -> tuple[np.ndarray, int, float]:
    llm = backend._model()
    tokens = backend.chat_tokens(chat)
    start = time.perf_counter()
    with backend._lock:
        reused = backend._prefill(tokens, lambda: False, whole_blocks=whole_blocks,
                                  lead=backend._lead(chat, tokens) if lead else 0)
    elapsed = time.perf_counter() - start
    row = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()
    return row, reused, (len(tokens) - reused) / elapsed


def measure(backend, words: int = 600) -> list[dict]:
    """One row per reuse rule: P fresh, after Q, after itself, after R."""
    p, q, r = chats(words)
    rows = []
    for name, whole, lead in (("instructions, then whole blocks (default)", True, True),
                              ("whole blocks from the start", True, False),
                              ("any prefix", False, False)):
        backend._model().reset()
        fresh, _, speed = logits_after(backend, p, whole, lead)
        logits_after(backend, q, whole, lead)
        after_q, reused_q, _ = logits_after(backend, p, whole, lead)
        again, reused_p, _ = logits_after(backend, p, whole, lead)
        logits_after(backend, r, whole, lead)
        after_r, reused_r, _ = logits_after(backend, p, whole, lead)
        rows.append({
            "reuse": name, "prompt_tokens": backend.prompt_tokens(p),
            "reused_after_q": reused_q, "reused_again": reused_p, "reused_after_r": reused_r,
            "max_diff_after_q": float(np.abs(fresh - after_q).max()),
            "max_diff_again": float(np.abs(fresh - again).max()),
            "max_diff_after_r": float(np.abs(fresh - after_r).max()),
            "same_greedy_token": bool(fresh.argmax() == after_q.argmax() == again.argmax()
                                      == after_r.argmax()),
            "fresh_prefill_tok_s": round(speed, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a GGUF file")
    parser.add_argument("--words", type=int, default=600, help="length of the long prompt")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "out" / "prefill_determinism.json")
    args = parser.parse_args()

    from engine.backends import load_backend

    backend = load_backend(args.model, None)
    rows = measure(backend, args.words)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|---" * len(keys) + "|")
    for row in rows:
        print("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v)
                                for v in row.values()) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": backend.info.name,
                                    "block": backend.config.prefill_block, "rows": rows}, indent=2))
    print(f"wrote {args.out}")
    backend.close()


if __name__ == "__main__":
    main()
