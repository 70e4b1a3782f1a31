"""A document's KV cache: computed once by chunked prefill, kept on disk.

Layout of one cache folder (`<kv_root>/<model-id>/<key>/`):

- `k_<layer>.bin`, `v_<layer>.bin`: raw arrays [kv_heads, n_blocks, block, head_dim]
  so one KV head's blocks are contiguous and a gather reads whole blocks;
  keys are stored *before* RoPE so positions can be reassigned at question
  time; the last block is zero-padded;
- `representatives.pt`: the per-block summaries used for scoring;
- `meta.json`: the layout, written last.

A cache is built in a hidden temporary folder beside its final place, named
after the writing process, and renamed into place when complete, so a crash
never leaves a half-written cache where a reader would find it and a sweep
can tell a killed build's leftovers from a build in progress. Files are
allocated in full before they are mapped: on a full disk that fails with a
clear error instead of a SIGBUS half-way through the prefill. Opening maps the files (numpy memmap,
copy-on-write so nothing ever writes back): on a CPU the blocks are read
straight from the page cache; on a GPU they can be copied once into pinned
host memory ("pinned") or onto the device ("device").
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from storage.errors import is_no_space

from .model import Transformer, apply_rope, causal_mask, rope_cos_sin
from .representatives import (BlockRepresentatives, block_bounds, block_means,
                              layer_centroids, rotated_block_means)

FORMAT_VERSION = 1
KV_DTYPES = {"float32": (np.float32, torch.float32),
             "float16": (np.float16, torch.float16),
             "bfloat16": (np.uint16, torch.bfloat16)}   # numpy has no bf16: stored as raw bits
PLACEMENTS = ("mmap", "pinned", "device")
_TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{8}$")


class KVCacheError(RuntimeError):
    """A cache folder is missing, incomplete or from another format."""


@dataclass(frozen=True)
class KVLayout:
    tokens: int
    block_size: int
    layers: int
    kv_heads: int
    head_dim: int
    dtype: str

    @property
    def n_blocks(self) -> int:
        return math.ceil(self.tokens / self.block_size)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.kv_heads, self.n_blocks, self.block_size, self.head_dim)

    @property
    def layer_bytes(self) -> int:
        """Bytes of K plus V for one layer."""
        return 2 * math.prod(self.shape) * np.dtype(KV_DTYPES[self.dtype][0]).itemsize

    @property
    def nbytes(self) -> int:
        return self.layers * self.layer_bytes


@dataclass
class PrefillConfig:
    block_size: int = 64
    chunk: int = 512            # tokens per forward; a multiple of block_size
    dtype: str = "float16"      # halves the files; compute stays float32
    n_centroids: int = 0        # k-means centroids per layer and KV head (0 = off)


def tokens_hash(tokens: list[int]) -> str:
    return hashlib.sha256(np.asarray(tokens, dtype=np.int64).tobytes()).hexdigest()


@dataclass
class KVCache:
    """An opened, complete cache. K/V per layer are tensors [kv_heads, n_blocks, block, head_dim]."""

    path: Path
    layout: KVLayout
    keys: list[Tensor]
    values: list[Tensor]
    reps: BlockRepresentatives
    placement: str
    tokens_sha256: str
    metadata: dict = field(default_factory=dict)
    token_ids: Tensor | None = None     # the document's tokens [tokens] (lexical.py), if stored

    @property
    def device(self) -> torch.device:
        return self.reps.kmin.device

    def valid_lengths(self) -> Tensor:
        """Valid tokens per block [n_blocks] (only the last block can be short)."""
        lay = self.layout
        lengths = torch.full((lay.n_blocks,), lay.block_size, dtype=torch.long)
        lengths[-1] = lay.tokens - (lay.n_blocks - 1) * lay.block_size
        return lengths

    def gather(self, layer: int, heads: Tensor, blocks: Tensor, *,
               values: bool = True) -> tuple[Tensor, Tensor | None]:
        """K and V [n, block, head_dim] (float32, on the compute device) for the
        (head, block) pairs given as two index tensors of length n; V is None
        with `values=False` (scoring reads keys only)."""
        heads, blocks = heads.to(self.keys[layer].device), blocks.to(self.keys[layer].device)
        dev = self.device
        k = self.keys[layer][heads, blocks].to(dev, non_blocking=True).float()
        if not values:
            return k, None
        return k, self.values[layer][heads, blocks].to(dev, non_blocking=True).float()

    def report(self) -> dict:
        """Size and placement, for the UI and benchmarks."""
        return {"path": str(self.path), "tokens": self.layout.tokens,
                "blocks": self.layout.n_blocks, "kv_bytes": self.layout.nbytes,
                "representative_bytes": self.reps.nbytes, "placement": self.placement,
                "representatives_on": str(self.device), "dtype": self.layout.dtype}


def _map(path: Path, layout: KVLayout, mode: str) -> np.memmap:
    return np.memmap(path, dtype=KV_DTYPES[layout.dtype][0], mode=mode, shape=layout.shape)


def _create(path: Path, layout: KVLayout) -> np.memmap:
    """A new block file, its blocks allocated before it is mapped. Writing
    through a map into a sparse file kills the process (SIGBUS) when the
    disk fills; allocating first turns that into an OSError here."""
    nbytes = layout.layer_bytes // 2
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, nbytes)
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and is_no_space(exc):
                raise
            os.ftruncate(fd, nbytes)    # no fallocate here: a sparse file it is
    finally:
        os.close(fd)
    return _map(path, layout, "r+")


def temp_dir(final: Path) -> Path:
    """The hidden sibling a cache is written in, named after this process."""
    return final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def temp_writer(folder: Path) -> int | None:
    """The process id a temporary cache folder was written by, if it is one."""
    found = _TEMP_NAME.match(folder.name)
    return int(found.group(1)) if found else None


def _no_space(path: Path, layout: KVLayout, exc: OSError) -> KVCacheError:
    return KVCacheError(f"writing the KV cache {path.name} failed: no space left on the disk "
                        f"({layout.nbytes:,} bytes of keys and values needed; {exc}); "
                        f"free some space and ask again")


def _as_torch(array: np.ndarray, dtype: str) -> Tensor:
    t = torch.from_numpy(array)
    return t.view(torch.bfloat16) if dtype == "bfloat16" else t


def open_cache(path: Path | str, *, device: str | torch.device = "cpu",
               placement: str = "mmap") -> KVCache:
    """Open a complete cache folder; representatives go to `device`.

    placement "mmap" reads blocks from the mapped files (CPU), "pinned"
    copies them into page-locked host memory (fast host-to-GPU copies),
    "device" puts the whole cache on the device (a dense-memory baseline).
    """
    path = Path(path)
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; use one of {PLACEMENTS}")
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        raise KVCacheError(f"no complete KV cache at {path}") from None
    except (OSError, ValueError) as exc:
        raise KVCacheError(f"unreadable KV cache metadata at {path}: {exc}") from None
    if meta.get("format") != FORMAT_VERSION:
        raise KVCacheError(f"KV cache at {path} has format {meta.get('format')}, "
                           f"expected {FORMAT_VERSION}; it will be rebuilt")
    layout = KVLayout(**meta["layout"])
    keys, values = [], []
    for layer in range(layout.layers):
        for name, out in (("k", keys), ("v", values)):
            file = path / f"{name}_{layer}.bin"
            if not file.is_file() or file.stat().st_size != layout.layer_bytes // 2:
                raise KVCacheError(f"KV cache file {file} is missing or truncated")
            t = _as_torch(_map(file, layout, "c"), layout.dtype)
            if placement == "pinned":
                t = t.clone().pin_memory() if torch.cuda.is_available() else t.clone()
            elif placement == "device":
                t = t.to(device)
            out.append(t)
    reps = BlockRepresentatives.load(path / "representatives.pt").to(device)
    if reps.kmin.device.type == "cuda":
        reps = reps.compact()           # resident on the device: half the memory
    return KVCache(path, layout, keys, values, reps, placement, meta["tokens_sha256"],
                   meta.get("metadata", {}), _load_token_ids(path, layout))


TOKEN_IDS = "tokens.npy"


def _load_token_ids(path: Path, layout: KVLayout) -> Tensor | None:
    """The stored token ids; None for caches built before they were kept
    (`store_token_ids` adds them)."""
    file = path / TOKEN_IDS
    if not file.is_file():
        return None
    try:
        ids = np.load(file)
    except (OSError, ValueError) as exc:
        raise KVCacheError(f"unreadable token ids {file}: {exc}") from None
    if ids.shape != (layout.tokens,):
        raise KVCacheError(f"token ids {file} hold {ids.shape} for {layout.tokens} tokens")
    return torch.from_numpy(ids.astype(np.int64))


def store_token_ids(path: Path | str, tokens: list[int]) -> Tensor:
    """Write the document's token ids beside its cache (atomically: a
    half-written file is never read) and return them."""
    path = Path(path)
    tmp = path / f".{TOKEN_IDS}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        np.save(fh, np.asarray(tokens, dtype=np.int32))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path / TOKEN_IDS)
    return torch.tensor(tokens, dtype=torch.long)


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
        k_maps = [_create(tmp / f"k_{i}.bin", layout) for i in range(cfg.n_layers)]
        v_maps = [_create(tmp / f"v_{i}.bin", layout) for i in range(cfg.n_layers)]
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
        _write_synced(tmp / "meta.json", json.dumps(meta, indent=1))
        _replace_dir(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_no_space(exc):
            raise _no_space(path, layout, exc) from exc
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
        parts["vmean"].append(block_means(_as_torch(mv, layout.dtype).float(), valid))
        keys = _as_torch(m, layout.dtype).float()
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
                m = _create(tmp / f"{name}_{i}.bin", layout)
                x = torch.randn(layout.shape, generator=gen).to(KV_DTYPES[layout.dtype][1])
                m[:] = (x.view(torch.uint16) if layout.dtype == "bfloat16" else x).numpy()
                m.flush()
                maps[name].append(m)
        _representatives(maps["k"], maps["v"], layout, 0, None).save(
            tmp / "representatives.pt")
        meta = {"format": FORMAT_VERSION, "layout": asdict(layout), "tokens_sha256": "random",
                "metadata": {"random": True}}
        _write_synced(tmp / "meta.json", json.dumps(meta, indent=1))
        _replace_dir(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and is_no_space(exc):
            raise _no_space(path, layout, exc) from exc
        raise
    return open_cache(path, device=device, placement=placement)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; an older cache there is swapped out first."""
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        trash = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def cache_dir(kv_root: Path | str, model_id: str, key: str) -> Path:
    """`<kv_root>/<model-id>/<key>`; both names are checked to stay one folder deep."""
    for name in (model_id, key):
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"invalid KV cache folder name {name!r}")
    return Path(kv_root) / model_id / key
