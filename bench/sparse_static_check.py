"""On CUDA, `SparseEngine.answer` decodes through the graph-captured step
by default: same tokens as the dynamic path (float32 weights), and the
decode speed of both side by side. Random weights of the Qwen2.5-0.5B
shape, a random 16K-token document.

    python bench/sparse_static_check.py        # needs a CUDA device
"""
import sys, time, tempfile
sys.path[:0] = [".", "tests/sparse"]
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from engine.sparse.model import from_transformers
from engine.sparse.generate import SparseEngine, EngineConfig
from engine.sparse.kvstore import PrefillConfig
torch.manual_seed(0)
cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                  num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                  rope_theta=1e6, tie_word_embeddings=True)
hf = Qwen2ForCausalLM(cfg).eval()
for wdt in ("float32", "bfloat16"):
    model = from_transformers(hf, mode=wdt, device="cuda")
    engine = SparseEngine(model, "rnd", tempfile.mkdtemp(), EngineConfig(prefill=PrefillConfig(chunk=512), placement="pinned"))
    doc = torch.randint(0, 150000, (16384,)).tolist()
    cache = engine.prefill_document(doc)
    print(wdt, "representatives", cache.reps.kmax.dtype, cache.reps.nbytes, "bytes on", cache.device)
    q = torch.randint(0, 150000, (20,)).tolist()
    for budget in (2048,):
        engine.config.sparse.budget_tokens = budget
        out = {}
        for how in ("off", "auto", "auto"):
            engine.config.static_decode = how
            t = time.perf_counter()
            s = engine.answer(cache, q, max_new_tokens=40)
            toks = list(s)
            out[how] = toks
            print(wdt, how, "ttft %.3f" % s.stats.ttft_s, "decode ms/tok %.2f" % s.stats.decode_ms_per_token,
                  "total %.2f" % (time.perf_counter() - t), "attr %.3f" % s.attribution.total(), flush=True)
        print(wdt, "same tokens:", out["off"] == out["auto"], sum(a == b for a, b in zip(out["off"], out["auto"])), "of", len(out["off"]))
