"""Prefill speed of two llama-cpp-python builds, side by side.

Why: the context budget follows the machine's prefill speed, and that speed
depends on how llama.cpp was compiled. The prebuilt wheel in
`../shared/wheels` is portable (AVX2 only); a plain `pip install` that
builds from source compiles for the machine it runs on (GGML_NATIVE), which
on an AVX-512 CPU uses wider and VNNI kernels. Both builds cannot share a
process (one module name), so each round runs one child process per build,
alternating, and the table gives each round's ratio: these machines are
noisy, and a ratio taken minutes apart is not one.

    python bench/llama_builds.py --model /tmp/folio_models/qwen.gguf \\
        --build portable= --build native=/tmp/native_llama --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys
from pathlib import Path
import llama_cpp
from engine.backends.llama_cpp import LlamaCppBackend
from engine.backends.prefill_rate import measure_prefill_rate
from engine.backends.base import BackendConfig
model, sizes = Path(sys.argv[1]), [int(n) for n in sys.argv[2].split(",")]
backend = LlamaCppBackend.load(model, BackendConfig(n_ctx=max(sizes) + 64))
rates = {n: measure_prefill_rate(backend, n, refresh=True) for n in sizes}
print(json.dumps({"module": llama_cpp.__file__,
                  "system": llama_cpp.llama_print_system_info().decode().strip(),
                  "rates": rates}))
"""


def run_build(path: str, model: Path, sizes: list[int]) -> dict:
    """One child process with `path` (a folder holding `llama_cpp`, or empty
    for the installed build) first on its import path."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (path, root) if p)
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), ",".join(map(str, sizes))],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"the build in {path or 'site-packages'} failed: {tail[0]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--build", action="append", required=True,
                        help="NAME=FOLDER (a folder holding llama_cpp; empty: the installed one)")
    parser.add_argument("--sizes", default="512,900")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/out/llama_builds.json"))
    args = parser.parse_args()
    builds = dict(b.split("=", 1) for b in args.build)
    sizes = [int(n) for n in args.sizes.split(",")]
    rounds = []
    for r in range(args.rounds):
        results = {name: run_build(path, args.model, sizes) for name, path in builds.items()}
        rounds.append(results)
        print(f"round {r + 1}: " + "  ".join(
            f"{name} " + "/".join(f"{res['rates'][str(n)]:.0f}" for n in sizes)
            for name, res in results.items()), flush=True)
    names = list(builds)
    first = names[0]
    print(f"\n| build | system | " + " | ".join(f"{n} tokens, tokens/s" for n in sizes)
          + " | " + " | ".join(f"ratio to {first} at {n}" for n in sizes) + " |")
    print("|---" * (2 + 2 * len(sizes)) + "|")
    summary = {}
    for name in names:
        med = {n: statistics.median(r[name]["rates"][str(n)] for r in rounds) for n in sizes}
        ratio = {n: statistics.median(r[name]["rates"][str(n)] / r[first]["rates"][str(n)]
                                      for r in rounds) for n in sizes}
        features = " ".join(f.split("=")[0].strip() for f in rounds[0][name]["system"].split("|")
                            if f.strip().endswith("= 1") and "AVX" in f)
        summary[name] = {"median_tokens_per_s": med, "median_ratio": ratio,
                         "system": rounds[0][name]["system"]}
        print(f"| {name} | {features} | " + " | ".join(f"{med[n]:.0f}" for n in sizes)
              + " | " + " | ".join(f"{ratio[n]:.2f}" for n in sizes) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
