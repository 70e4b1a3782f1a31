"""Where does each layer's question scoring rank the needle's block?

A diagnostic beside `bench/sparse.py`'s needle table: for each planted
needle it runs the question's forward over the stored KV and records, per
layer and KV head, the rank of the needle's block under several block
scores, so a selection rule can be judged by whether it keeps the needle
inside the budget rather than by three greedy answers.

    python bench/sparse_needle_ranks.py --hf /tmp/qwen_hf --device cuda \\
        --contexts 32000,131072 --needles 12 --budget 2048

Scores: quest (the selector's bound), sum (exact attention mass summed over
the question's rows: `hybrid`'s exact half), max (the largest mass any one
row gives the block), and, across layers, the head-summed mass of one layer
used for every layer (GemFilter's shared choice).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from engine.sparse.attention import SparseAttention, SparseConfig  # noqa: E402
from engine.sparse.exact_scoring import ROW_CHUNK  # noqa: E402
from engine.sparse.generate import EngineConfig, SparseEngine  # noqa: E402
from engine.sparse.kvstore import PrefillConfig  # noqa: E402
from engine.sparse.model import from_transformers, load_hf_model  # noqa: E402

from sparse_needle import build_document, haystack_text  # noqa: E402


def row_masses(q, keys, valid, sink_keys, sink_valid, block):
    """Per row block masses [H, rows, n_blocks] (exact_block_mass before its sum)."""
    H, N, D = keys.shape
    keys, sinks = keys.float(), sink_keys.float()
    mask = torch.cat([sink_valid.expand(H, -1), valid], dim=1)[:, None, :]
    out = []
    for r0 in range(0, q.shape[1], ROW_CHUNK):
        rows = q[:, r0:r0 + ROW_CHUNK].float()
        logits = torch.cat([rows @ sinks.transpose(1, 2), rows @ keys.transpose(1, 2)], 2)
        probs = torch.softmax(logits.mul_(D ** -0.5).masked_fill_(~mask, float("-inf")), -1)
        out.append(probs[:, :, sinks.shape[1]:].reshape(H, rows.shape[1], N // block, block)
                   .sum(-1))
    return torch.cat(out, 1)


class Probe(SparseAttention):
    """Records, for the question's forward, every layer's block scores."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.scores: dict[int, dict[str, torch.Tensor]] = {}

    def _question_pick(self, layer, q, positions, scores, k):
        H, B = self.cfg.n_kv_heads, self.block
        n = len(self.cand_block)
        shortlist = self.config.exact_max_tokens // B
        pool = (scores.topk(shortlist, dim=-1).indices if n > shortlist
                else torch.arange(n, device=self.device).expand(H, n))
        rm = row_masses(*self.exact_inputs(layer, q, positions, pool), B)   # [H, rows, |pool|]
        full = lambda x: torch.full_like(scores, float("-inf")).scatter(1, pool, x)  # noqa
        self.scores[layer] = {"quest": scores, "sum": full(rm.sum(1)),
                              "max": full(rm.max(1).values)}
        return scores.topk(k, dim=-1).indices


def rank_of(score: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Best rank [H] among the candidate ids (0 = top) per head."""
    order = score.argsort(dim=-1, descending=True)
    ranks = torch.full((score.shape[0],), 10**9, device=score.device)
    for i in ids:
        ranks = torch.minimum(ranks, (order == i).float().argmax(-1))
    return ranks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hf", type=Path, required=True, help="HF checkpoint or GGUF of the model")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--contexts", default="32000")
    ap.add_argument("--needles", type=int, default=12)
    ap.add_argument("--budget", type=int, default=2048)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/needle_ranks.json")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    tok = (AutoTokenizer.from_pretrained(args.hf.parent, gguf_file=args.hf.name)
           if args.hf.suffix == ".gguf" else AutoTokenizer.from_pretrained(args.hf))
    hf = load_hf_model(args.hf)
    model = from_transformers(hf, mode="bfloat16" if args.device == "cuda" else "int8",
                              device=args.device)
    del hf
    engine = SparseEngine(model, "ranks", tempfile.mkdtemp(),
                          EngineConfig(prefill=PrefillConfig(chunk=512)))
    text, _ = haystack_text()
    body = tok(text, add_special_tokens=False).input_ids
    k = args.budget // 64
    report = {}
    for n in map(int, args.contexts.split(",")):
        doc, needles = build_document(tok, body, n, args.needles, random.Random(n))
        kvc = engine.prefill_document(doc)
        B = kvc.layout.block_size
        per = {"quest": [], "sum": [], "max": [], "shared_sum": [], "shared_max": []}
        for nd in needles:
            num = tok(f" The special magic number for {nd.city} is {nd.number}. ",
                      add_special_tokens=False).input_ids
            at = next(i for i in range(len(doc)) if doc[i:i + len(num)] == num)
            ids = sorted({(at + j) // B - 1 for j in range(len(num))})   # candidate ids
            attn = Probe(model.cfg, [kvc], SparseConfig(budget_tokens=args.budget),
                         local_max=len(nd.question))
            with torch.no_grad():
                model(torch.tensor(nd.question, device=model.device), attn)
            L = len(attn.scores)
            for name in ("quest", "sum", "max"):
                per[name].append(torch.stack([rank_of(attn.scores[i][name], ids)
                                              for i in range(L)]).cpu())      # [L, H]
            for name in ("sum", "max"):
                shared = torch.stack([rank_of(attn.scores[i][name].sum(0, keepdim=True)
                                              .clamp_min(-1e30), ids) for i in range(L)])
                per["shared_" + name].append(shared[:, 0].cpu())             # [L]
        print(f"\ncontext {n}: share of needles inside the top {k} blocks, per layer")
        print("layer " + " ".join(f"{s:>10}" for s in per))
        rows = []
        for layer in range(L):
            vals = []
            for name, xs in per.items():
                r = torch.stack([x[layer] for x in xs]).float()
                vals.append(float((r < k).float().mean()))
            rows.append(vals)
            print(f"{layer:5} " + " ".join(f"{v:10.2f}" for v in vals))
        report[n] = {"columns": list(per), "per_layer": rows,
                     "ranks": {s: [x.tolist() for x in xs] for s, xs in per.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
