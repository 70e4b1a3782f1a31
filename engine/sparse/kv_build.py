"""Writing a document's KV cache: chunked prefill into the block files,
the block representatives, then an atomic rename into place (the layout and
file handling are kvstore.py's). `random_cache` writes random K/V with a
real layout, for benchmarks of speed and memory at long contexts."""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from storage.errors import is_no_space

from .kvstore import (FORMAT_VERSION, KV_DTYPES, KVCache, KVLayout, PrefillConfig, as_torch,
                      create_block_file, no_space_error, open_cache, replace_dir,
                      store_token_ids, temp_dir, tokens_hash, write_synced)
from .model import Transformer, apply_rope, causal_mask, rope_cos_sin
from .representatives import (BlockRepresentatives, block_bounds, block_means,
                              layer_centroids, rotated_block_means)


class _PrefillAttention:
    """Causal attention for one chunk at a time that also writes pre-RoPE K/V
    into the block files and keeps post-RoPE K/V for the following chunks.
    Past the model's window a chunk sees the sinks and a window of recent
    tokens, so a document longer than the window still gets sensible KV."""

    def __init__(self, model: Transformer, layout: KVLayout, k_maps: list[np.memmap],
                 v_maps: list[np.memmap]):
        cfg, dev = model.cfg, model.device
        self.cfg, self.layout = cfg, layout
        self.k_maps, self.v_maps = k_maps, v_maps
        work = torch.float32 if dev.type == "cpu" else torch.bfloat16
        shape = (cfg.n_kv_heads, layout.tokens, cfg.head_dim)
        self.k_rot = [torch.empty(shape, dtype=work, device=dev) for _ in range(cfg.n_layers)]
        self.v_all = [torch.empty(shape, dtype=work, device=dev) for _ in range(cfg.n_layers)]
        self.start = 0
        self.max_distance = 0       # largest query-key distance seen, for checks

    def _store(self, maps: list[np.memmap], layer: int, x: Tensor) -> None:
        """Write x [T, KVH, D] (T from a block boundary) as whole blocks."""
        lay = self.layout
        b0 = self.start // lay.block_size
        nb = math.ceil(x.shape[0] / lay.block_size)
        pad = nb * lay.block_size - x.shape[0]
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        x = x.view(nb, lay.block_size, lay.kv_heads, lay.head_dim).permute(2, 0, 1, 3)
        x = x.to(KV_DTYPES[lay.dtype][1]).cpu()
        if lay.dtype == "bfloat16":
            x = x.view(torch.uint16)
        maps[layer][:, b0:b0 + nb] = x.numpy()

    def __call__(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        c, n, end = self.cfg, q.shape[0], self.start + q.shape[0]
        self._store(self.k_maps, layer, k)
        self._store(self.v_maps, layer, v)
        pos = torch.arange(self.start, end, device=q.device)
        cos, sin = rope_cos_sin(pos, c.head_dim, c.rope_theta)
        q = apply_rope(q.transpose(0, 1), cos, sin)
        kr, va = self.k_rot[layer], self.v_all[layer]
        kr[:, self.start:end] = apply_rope(k.transpose(0, 1), cos, sin).to(kr.dtype)
        va[:, self.start:end] = v.transpose(0, 1).to(va.dtype)
        keys, values = kr[:, :end], va[:, :end]
        window, sinks = c.max_position, self.layout.block_size
        if end > window:
            # Beyond the trained window (InfLLM / StreamingLLM): attend the sink
            # block and the most recent tokens only, the sinks moved next to
            # them. RoPE scores depend on distances alone, so shifting the
            # sinks' rotation by `shift` is the whole reassignment.
            recent = end - (window - sinks)
            shift = torch.tensor([recent - sinks], device=q.device)
            s_cos, s_sin = rope_cos_sin(shift, c.head_dim, c.rope_theta)
            keys = torch.cat([apply_rope(kr[:, :sinks], s_cos, s_sin), kr[:, recent:end]], 1)
            values = torch.cat([va[:, :sinks], va[:, recent:end]], 1)
            self.max_distance = max(self.max_distance, end - 1 - (recent - sinks))
        else:
            self.max_distance = max(self.max_distance, end - 1)
        mask = causal_mask(n, keys.shape[1], q.device)
        out = F.scaled_dot_product_attention(
            q[None].to(kr.dtype), keys[None], values[None], attn_mask=mask, enable_gqa=True)[0]
        return out.transpose(0, 1).float()


@torch.no_grad()
def build_cache(model: Transformer, tokens: list[int], path: Path | str,
                config: PrefillConfig | None = None, *, metadata: dict | None = None,
                device: str | torch.device | None = None, placement: str = "mmap") -> KVCache:
    """Prefill `tokens` chunk by chunk and persist the cache at `path`.

    Written to a temporary sibling folder and renamed into place only when
    complete; an existing cache at `path` is replaced atomically.
    """
    config = config or PrefillConfig()
    if not tokens:
        raise ValueError("cannot build a KV cache for an empty document")
    if config.chunk % config.block_size:
        raise ValueError(f"prefill chunk {config.chunk} must be a multiple of the "
                         f"block size {config.block_size}")
    if config.dtype not in KV_DTYPES:
        raise ValueError(f"unknown KV dtype {config.dtype!r}; use one of {list(KV_DTYPES)}")
    cfg, path = model.cfg, Path(path)
    layout = KVLayout(len(tokens), config.block_size, cfg.n_layers, cfg.n_kv_heads,
                      cfg.head_dim, config.dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(path)
    tmp.mkdir()
    try:
        k_maps = [create_block_file(tmp / f"k_{i}.bin", layout) for i in range(cfg.n_layers)]
        v_maps = [create_block_file(tmp / f"v_{i}.bin", layout) for i in range(cfg.n_layers)]
        attn = _PrefillAttention(model, layout, k_maps, v_maps)
        ids = torch.tensor(tokens, dtype=torch.long, device=model.device)
        for start in range(0, len(tokens), config.chunk):
            attn.start = start
            model(ids[start:start + config.chunk], attn, last_only=True)
        metadata = {"prefill_max_distance": attn.max_distance, **(metadata or {})}
        del attn
        reps = _representatives(k_maps, v_maps, layout, config.n_centroids, cfg.rope_theta)
        for m in k_maps + v_maps:
            m.flush()
        del k_maps, v_maps
        reps.save(tmp / "representatives.pt")
        store_token_ids(tmp, tokens)
        meta = {"format": FORMAT_VERSION, "layout": asdict(layout),
                "tokens_sha256": tokens_hash(tokens), "metadata": metadata}
        write_synced(tmp / "meta.json", json.dumps(meta, indent=1))
        replace_dir(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_no_space(exc):
            raise no_space_error(path, layout, exc) from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return open_cache(path, device=device or model.device, placement=placement)


def _representatives(k_maps: list[np.memmap], v_maps: list[np.memmap], layout: KVLayout,
                     n_centroids: int, rope_theta: float | None) -> BlockRepresentatives:
    """Bounds, means (and centroids) per block; the summaries' rotated mean
    key needs the model's RoPE base (None: left out, computed when used)."""
    valid = torch.arange(layout.n_blocks * layout.block_size) < layout.tokens
    valid = valid.view(layout.n_blocks, layout.block_size)
    parts: dict[str, list[Tensor]] = {"kmin": [], "kmax": [], "kmean": [],
                                      "centroids": [], "labels": [], "vmean": [],
                                      "krel": []}
    for m, mv in zip(k_maps, v_maps):
        parts["vmean"].append(block_means(as_torch(mv, layout.dtype).float(), valid))
        keys = as_torch(m, layout.dtype).float()
        if rope_theta is not None:
            parts["krel"].append(rotated_block_means(keys, valid, rope_theta))
        for name, t in zip(("kmin", "kmax", "kmean"), block_bounds(keys, valid)):
            parts[name].append(t)
        if n_centroids:
            c, lab = layer_centroids(keys, valid, n_centroids)
            parts["centroids"].append(c)
            parts["labels"].append(lab)
    stacked = {k: torch.stack(v) if v else None for k, v in parts.items()}
    return BlockRepresentatives(**stacked)


def random_cache(path: Path | str | None, layout: KVLayout, *, seed: int = 0,
                 device: str | torch.device = "cpu", placement: str = "mmap") -> KVCache:
    """A cache of random keys/values with a real layout: speed and memory of
    long contexts can be measured without prefilling them (content does not
    change the cost of sparse or dense attention). With `path` None it is
    built in memory ("pinned" or "device" placement), which a GPU benchmark
    of a 16 GB cache needs."""
    gen = torch.Generator().manual_seed(seed)
    if path is None:
        if placement == "mmap":
            raise ValueError("an in-memory cache needs placement 'pinned' or 'device'")
        dt = KV_DTYPES[layout.dtype][1]
        keys, values, kmins, kmaxs, kmeans_, vmeans = [], [], [], [], [], []
        valid = (torch.arange(layout.n_blocks * layout.block_size) < layout.tokens).view(
            layout.n_blocks, layout.block_size).to(device)
        for _ in range(layout.layers):
            pair = [torch.randn(layout.shape, dtype=dt, device=device) for _ in range(2)]
            mn, mx, mean = block_bounds(pair[0].float(), valid)
            kmins.append(mn), kmaxs.append(mx), kmeans_.append(mean)
            vmeans.append(block_means(pair[1].float(), valid))
            if placement == "pinned":
                pair = [t.cpu().pin_memory() if torch.cuda.is_available() else t.cpu()
                        for t in pair]
            keys.append(pair[0])
            values.append(pair[1])
        reps = BlockRepresentatives(torch.stack(kmins), torch.stack(kmaxs),
                                    torch.stack(kmeans_), vmean=torch.stack(vmeans)).to(device)
        if reps.kmin.device.type == "cuda":
            reps = reps.compact()
        return KVCache(Path("<memory>"), layout, keys, values, reps, placement, "random",
                       {"random": True})
    path = Path(path)
    tmp = temp_dir(path)
    tmp.mkdir(parents=True)
    try:
        maps: dict[str, list[np.memmap]] = {"k": [], "v": []}
        for i in range(layout.layers):
            for name in ("k", "v"):
                m = create_block_file(tmp / f"{name}_{i}.bin", layout)
                x = torch.randn(layout.shape, generator=gen).to(KV_DTYPES[layout.dtype][1])
                m[:] = (x.view(torch.uint16) if layout.dtype == "bfloat16" else x).numpy()
                m.flush()
                maps[name].append(m)
        _representatives(maps["k"], maps["v"], layout, 0, None).save(
            tmp / "representatives.pt")
        meta = {"format": FORMAT_VERSION, "layout": asdict(layout), "tokens_sha256": "random",
                "metadata": {"random": True}}
        write_synced(tmp / "meta.json", json.dumps(meta, indent=1))
        replace_dir(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and is_no_space(exc):
            raise no_space_error(path, layout, exc) from exc
        raise
    return open_cache(path, device=device, placement=placement)
