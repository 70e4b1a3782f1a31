"""Read a GGUF file's header without loading the model.

Why not `gguf.GGUFReader`: it turns every vocabulary entry into Python
objects (8 s for the bundled Qwen model on 2 cores); this reads only what
Folio needs in well under a second. Why at all: to say "not a GGUF" or
"truncated" in plain words before llama.cpp fails obscurely, to estimate the
memory a model needs, and to know its trained context length.
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from engine.backends.errors import ModelFormatError, ModelNotFoundError

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# GGUF value types -> struct format of a scalar (8: string, 9: array).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
            7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_WANTED_SUFFIXES = (".context_length", ".block_count", ".embedding_length",
                    ".attention.head_count", ".attention.head_count_kv",
                    ".attention.key_length", ".attention.value_length")


@dataclass(frozen=True)
class GGUFInfo:
    """What the header says about a model; sizes are in bytes."""
    path: Path
    version: int
    architecture: str
    name: str
    file_size: int
    expected_size: int          # end of the last tensor's data
    tensor_count: int
    context_length: int | None  # trained context window
    block_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    key_length: int | None
    value_length: int | None
    chat_template: str | None

    def kv_cache_bytes(self, n_ctx: int, bytes_per_value: int = 2) -> int:
        """Size of an f16 KV cache for `n_ctx` tokens (0 if unknown)."""
        if not (self.block_count and self.head_count and self.embedding_length):
            return 0
        kv_heads = self.head_count_kv or self.head_count
        k_dim = self.key_length or self.embedding_length // self.head_count
        v_dim = self.value_length or k_dim
        return self.block_count * n_ctx * kv_heads * (k_dim + v_dim) * bytes_per_value


class _Cursor:
    """Sequential little-endian reads over a buffer; running off its end
    means the file is truncated."""

    def __init__(self, buf, size: int):
        self.buf, self.size, self.pos = buf, size, 0

    def unpack(self, fmt: str):
        n = struct.calcsize(fmt)
        if self.pos + n > self.size:
            raise EOFError
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += n
        return value

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise EOFError
        self.pos += n

    def string(self, keep: bool = True) -> str | None:
        n = self.unpack("<Q")
        if self.pos + n > self.size:
            raise EOFError
        raw = bytes(self.buf[self.pos:self.pos + n]) if keep else None
        self.pos += n
        return raw.decode("utf-8", errors="replace") if raw is not None else None

    def value(self, vtype: int, keep: bool):
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string(keep)
        if vtype == _ARRAY:
            etype, count = self.unpack("<I"), self.unpack("<Q")
            if etype in _SCALARS:
                self.skip(struct.calcsize(_SCALARS[etype]) * count)
            elif etype == _STRING:
                for _ in range(count):       # vocabularies: skip, never decode
                    self.skip(self.unpack("<Q"))
            else:
                for _ in range(count):
                    self.value(etype, keep=False)
            return None
        raise ValueError(f"unknown GGUF value type {vtype}")


def _tensor_nbytes(ggml_type: int, dims: list[int]) -> int:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise ValueError(f"unknown tensor type {ggml_type}") from None
    n = 1
    for d in dims:
        n *= d
    return n // block * type_size


def read_gguf_header(path: Path) -> GGUFInfo:
    """Parse the header; raise `ModelFormatError` with a specific reason for
    a file that is not GGUF, is truncated or is internally inconsistent."""
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"no model file at {path}")
    file_size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(4)
        if head != MAGIC:
            raise ModelFormatError(
                f"{path.name} is not a GGUF model file (it does not start with "
                f"'GGUF'); Folio's llama.cpp backend needs a .gguf file")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                return _parse(path, buf, file_size)
            except EOFError:
                raise ModelFormatError(
                    f"{path.name} is truncated: the file ends ({file_size:,} bytes) "
                    "inside its GGUF header; copy or download it again") from None
            except (ValueError, struct.error, OverflowError, MemoryError) as exc:
                raise ModelFormatError(
                    f"{path.name} is a corrupt GGUF file ({exc})") from None


def _parse(path: Path, buf, file_size: int) -> GGUFInfo:
    cur = _Cursor(buf, file_size)
    cur.skip(4)
    version = cur.unpack("<I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    tensor_count, kv_count = cur.unpack("<Q"), cur.unpack("<Q")
    if tensor_count > 1_000_000 or kv_count > 1_000_000:
        raise ValueError("implausible tensor or key count")
    meta: dict[str, object] = {}
    for _ in range(kv_count):
        key = cur.string()
        vtype = cur.unpack("<I")
        keep = key.startswith("general.") or key.endswith(_WANTED_SUFFIXES) \
            or key == "tokenizer.chat_template"
        value = cur.value(vtype, keep)
        if keep:
            meta[key] = value
    data_end = 0
    for _ in range(tensor_count):
        cur.string(keep=False)
        n_dims = cur.unpack("<I")
        if n_dims > 8:
            raise ValueError("implausible tensor rank")
        dims = [cur.unpack("<Q") for _ in range(n_dims)]
        ggml_type, offset = cur.unpack("<I"), cur.unpack("<Q")
        data_end = max(data_end, offset + _tensor_nbytes(ggml_type, dims))
    alignment = int(meta.get("general.alignment") or DEFAULT_ALIGNMENT)
    data_start = -(-cur.pos // alignment) * alignment
    arch = str(meta.get("general.architecture") or "")

    def arch_int(suffix: str) -> int | None:
        value = meta.get(f"{arch}{suffix}")
        return int(value) if isinstance(value, (int, float)) else None

    info = GGUFInfo(
        path=path, version=version, architecture=arch,
        name=str(meta.get("general.name") or path.stem),
        file_size=file_size, expected_size=data_start + data_end,
        tensor_count=tensor_count,
        context_length=arch_int(".context_length"),
        block_count=arch_int(".block_count"),
        embedding_length=arch_int(".embedding_length"),
        head_count=arch_int(".attention.head_count"),
        head_count_kv=arch_int(".attention.head_count_kv"),
        key_length=arch_int(".attention.key_length"),
        value_length=arch_int(".attention.value_length"),
        chat_template=meta.get("tokenizer.chat_template"),  # type: ignore[arg-type]
    )
    if info.expected_size > file_size:
        raise _truncated_data(info)
    return info


def _truncated_data(info: GGUFInfo) -> ModelFormatError:
    """A header that parses but promises more tensor data than the file has."""
    return ModelFormatError(
        f"{info.path.name} is truncated: its header describes "
        f"{info.expected_size:,} bytes of model but the file has "
        f"{info.file_size:,}; copy or download it again")
