"""A document's KV cache on disk: its layout, files and opening.

Layout of one cache folder (`<kv_root>/<model-id>/<key>/`):

- `k_<layer>.bin`, `v_<layer>.bin`: raw arrays [kv_heads, n_blocks, block, head_dim]
  so one KV head's blocks are contiguous and a gather reads whole blocks;
  keys are stored *before* RoPE so positions can be reassigned at question
  time; the last block is zero-padded;
- `representatives.pt`: the per-block summaries used for scoring;
- `tokens.npy`: the document's token ids (the question's lexical match);
- `meta.json`: the layout, written last.

`kv_build.py` writes a cache (the prefill); this module opens it, names its
folders and owns the file handling both share.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from storage.errors import is_no_space

from .representatives import BlockRepresentatives

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


def create_block_file(path: Path, layout: KVLayout) -> np.memmap:
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


def no_space_error(path: Path, layout: KVLayout, exc: OSError) -> KVCacheError:
    return KVCacheError(f"writing the KV cache {path.name} failed: no space left on the disk "
                        f"({layout.nbytes:,} bytes of keys and values needed; {exc}); "
                        f"free some space and ask again")


def as_torch(array: np.ndarray, dtype: str) -> Tensor:
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
            t = as_torch(_map(file, layout, "c"), layout.dtype)
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
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(tokens, dtype=np.int32))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path / TOKEN_IDS)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return torch.tensor(tokens, dtype=torch.long)


def write_synced(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def replace_dir(tmp: Path, final: Path) -> None:
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
