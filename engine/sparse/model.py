"""A short torch forward for the Llama / Qwen2 family with pluggable attention.

Why our own forward instead of transformers': the sparse engine has to see
keys *before* RoPE (so it can store them and reassign positions later) and
has to replace attention by a gather over selected blocks. Everything else
(RMSNorm, SwiGLU, GQA, tied embeddings, Qwen2's q/k/v biases) is the plain
architecture, written after gpt-fast. Weights come from a transformers model
(loaded from the bundled GGUF or any HF directory); `tests/sparse` checks
the logits against transformers' own forward.

Weights on the CPU can be float32, bfloat16, int8 weight-only (per output
row scale) or int4 weight-only (asymmetric, groups of 32, torch's packed CPU
kernel). Decode on a CPU is bound by reading the weights once per token:
float32 reads 2 GB per token for the 0.5B model, int8 0.6 GB, int4 0.35 GB
(about what llama.cpp's Q4_K_M reads). int8 is the default (prefill
dequantizes it to bfloat16, which is fast); int4 decodes faster but its
prefill runs about 2x slower, since the packed kernel is slower than bf16
matmuls for many rows.
"""
from __future__ import annotations

import contextlib
import io

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHT_MODES = ("float32", "bfloat16", "int8", "int4")
INT4_GROUP = 32   # weights per (scale, zero) pair in int4 mode


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    rope_theta: float
    norm_eps: float
    max_position: int          # the trained window: reassigned positions stay below it
    qkv_bias: bool
    tie_embeddings: bool

    @property
    def group(self) -> int:
        """Query heads per KV head (GQA)."""
        return self.n_heads // self.n_kv_heads

    @classmethod
    def from_hf(cls, cfg) -> "ModelConfig":
        if cfg.model_type not in ("llama", "qwen2", "mistral"):
            raise ValueError(f"the sparse engine supports Llama/Qwen2 models, not {cfg.model_type!r}")
        rope = getattr(cfg, "rope_parameters", None) or {}
        if rope.get("rope_type", "default") not in ("default", None):
            raise ValueError(f"unsupported RoPE scaling {rope.get('rope_type')!r}")
        theta = rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        return cls(
            vocab_size=cfg.vocab_size, dim=cfg.hidden_size, n_layers=cfg.num_hidden_layers,
            n_heads=cfg.num_attention_heads, n_kv_heads=cfg.num_key_value_heads,
            head_dim=head_dim, intermediate_size=cfg.intermediate_size,
            rope_theta=float(theta), norm_eps=float(cfg.rms_norm_eps),
            max_position=int(cfg.max_position_embeddings),
            qkv_bias=cfg.model_type == "qwen2" or bool(getattr(cfg, "attention_bias", False)),
            tie_embeddings=bool(cfg.tie_word_embeddings))


# --- RoPE -----------------------------------------------------------------

def rope_cos_sin(positions: Tensor, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    """cos/sin tables [T, head_dim] (float32) for integer `positions`."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device,
                                            dtype=torch.float32) / head_dim)
    freqs = positions.to(torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x [..., T, D] (HF "rotate half" layout, which the GGUF loader restores)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


# --- layers -----------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, weight: Tensor, eps: float):
        super().__init__()
        self.weight = nn.Parameter(weight.float(), requires_grad=False)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)) * self.weight


class Linear(nn.Module):
    """y = x W^T (+ b) with W kept as float32, bfloat16 or int8 + row scales.

    Activations stay float32 between layers; only the matmul runs in the
    weight's precision, which is where the memory traffic is.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None, mode: str):
        super().__init__()
        if mode not in WEIGHT_MODES:
            raise ValueError(f"unknown weight mode {mode!r}; use one of {WEIGHT_MODES}")
        weight = weight.detach()
        if mode == "int4" and (weight.shape[0] % 16 or weight.shape[1] % INT4_GROUP):
            mode = "int8"           # shapes the packed int4 kernel cannot take
        self.mode = mode
        if mode == "int4":
            self._init_int4(weight.float())
        elif mode == "int8":
            w32 = weight.float()
            scale = (w32.abs().amax(dim=1) / 127.0).clamp(min=1e-8)
            self.weight = nn.Parameter((w32 / scale[:, None]).round().to(torch.int8),
                                       requires_grad=False)
            self.scale = nn.Parameter(scale.to(torch.bfloat16), requires_grad=False)
        else:
            self.weight = nn.Parameter(weight.to(getattr(torch, mode)), requires_grad=False)
            self.scale = None
        self.bias = None if bias is None else nn.Parameter(bias.detach().float(),
                                                           requires_grad=False)

    def _init_int4(self, w: Tensor) -> None:
        out_f, in_f = w.shape
        g = w.view(out_f, in_f // INT4_GROUP, INT4_GROUP)
        lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
        scale = ((hi - lo) / 15).clamp(min=1e-8)
        q = ((g - lo) / scale).round().clamp(0, 15).to(torch.int32).view(out_f, in_f)
        zero = lo + 8 * scale            # the kernel computes (q - 8) * scale + zero
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2)
        self.weight = nn.Parameter(packed, requires_grad=False)
        self.scale = nn.Parameter(torch.stack([scale.view(out_f, -1), zero.view(out_f, -1)], -1)
                                  .transpose(0, 1).contiguous().to(torch.bfloat16),
                                  requires_grad=False)

    def dequantized(self, dtype: torch.dtype) -> Tensor:
        if self.mode == "int8":
            return self.weight.to(dtype) * self.scale.to(dtype)[:, None]
        return self.weight.to(dtype)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "float32":
            y = F.linear(x.float(), self.weight)
        elif self.mode == "int4":
            flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.weight, INT4_GROUP,
                                                           self.scale)
            y = y.reshape(*x.shape[:-1], -1).float()
        elif self.mode == "int8" and x.device.type == "cpu" and x[..., 0].numel() <= 8:
            # Decode: the fused int8 kernel reads 1 byte per weight.
            flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
            y = torch._weight_int8pack_mm(flat, self.weight, self.scale)
            y = y.reshape(*x.shape[:-1], -1).float()
        else:
            # Prefill (compute bound) or GPU: dequantize once per call.
            y = F.linear(x.to(torch.bfloat16), self.dequantized(torch.bfloat16)).float()
        return y if self.bias is None else y + self.bias


class Embedding(nn.Module):
    """Token embedding that doubles as the (tied) output head."""

    def __init__(self, weight: Tensor, mode: str):
        super().__init__()
        # int4 packing is not row-addressable: look rows up in an int8 copy
        self.table = Linear(weight, None, "int8" if mode == "int4" else mode)

    def forward(self, ids: Tensor) -> Tensor:
        t = self.table
        rows = t.weight[ids].float()
        return rows * t.scale[ids].float()[..., None] if t.mode == "int8" else rows


class Block(nn.Module):
    """One decoder layer; attention itself is supplied by the caller."""

    def __init__(self, cfg: ModelConfig, p: dict[str, Tensor], mode: str):
        super().__init__()
        self.cfg = cfg
        self.attn_norm = RMSNorm(p["input_layernorm.weight"], cfg.norm_eps)
        self.mlp_norm = RMSNorm(p["post_attention_layernorm.weight"], cfg.norm_eps)
        a = "self_attn."
        self.wq = Linear(p[a + "q_proj.weight"], p.get(a + "q_proj.bias"), mode)
        self.wk = Linear(p[a + "k_proj.weight"], p.get(a + "k_proj.bias"), mode)
        self.wv = Linear(p[a + "v_proj.weight"], p.get(a + "v_proj.bias"), mode)
        self.wo = Linear(p[a + "o_proj.weight"], p.get(a + "o_proj.bias"), mode)
        self.w_gate = Linear(p["mlp.gate_proj.weight"], None, mode)
        self.w_up = Linear(p["mlp.up_proj.weight"], None, mode)
        self.w_down = Linear(p["mlp.down_proj.weight"], None, mode)

    def fused_weights(self) -> tuple[Tensor, Tensor | None, Tensor]:
        """q/k/v as one matrix (and bias), gate/up as one matrix, so a decode
        step reads each group in one matrix-vector product instead of three
        and two. Built once; the separate weights become views of them, so
        no weight is held twice. Float32 and bfloat16 weights only."""
        fused = getattr(self, "_fused", None)
        if fused is None or fused[0].data_ptr() != self.wq.weight.data_ptr():  # moved since
            parts = (self.wq, self.wk, self.wv)
            if any(w.mode not in ("float32", "bfloat16") for w in parts + (self.w_gate,)):
                raise ValueError("fused projections need float32 or bfloat16 weights")
            qkv = torch.cat([w.weight for w in parts])
            bias = None if self.wq.bias is None else torch.cat([w.bias for w in parts])
            gate_up = torch.cat([self.w_gate.weight, self.w_up.weight])
            at = 0
            for w in parts:
                n = w.weight.shape[0]
                w.weight = nn.Parameter(qkv[at:at + n], requires_grad=False)
                if bias is not None:
                    w.bias = nn.Parameter(bias[at:at + n], requires_grad=False)
                at += n
            n = self.w_gate.weight.shape[0]
            self.w_gate.weight = nn.Parameter(gate_up[:n], requires_grad=False)
            self.w_up.weight = nn.Parameter(gate_up[n:], requires_grad=False)
            self._fused = (qkv, bias, gate_up)
        return self._fused

    def qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Pre-RoPE q [T, H, D], k and v [T, KVH, D] for hidden states x [T, dim]."""
        c, h = self.cfg, self.attn_norm(x)
        return (self.wq(h).view(-1, c.n_heads, c.head_dim),
                self.wk(h).view(-1, c.n_kv_heads, c.head_dim),
                self.wv(h).view(-1, c.n_kv_heads, c.head_dim))

    def finish(self, x: Tensor, attn: Tensor) -> Tensor:
        """Residual + output projection, then the SwiGLU MLP."""
        x = x + self.wo(attn.reshape(x.shape[0], -1))
        h = self.mlp_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class Attention(Protocol):
    """What the forward calls once per layer: pre-RoPE q/k/v in, [T, H, D] out."""

    def __call__(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor: ...


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig, state: dict[str, Tensor], mode: str = "float32"):
        super().__init__()
        self.cfg = cfg
        self.mode = mode
        self.embed = Embedding(state["model.embed_tokens.weight"], mode)
        self.layers = nn.ModuleList()
        for i in range(cfg.n_layers):
            prefix = f"model.layers.{i}."
            p = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            self.layers.append(Block(cfg, p, mode))
        self.norm = RMSNorm(state["model.norm.weight"], cfg.norm_eps)
        tied = cfg.tie_embeddings or "lm_head.weight" not in state
        if tied and self.embed.table.mode == mode:
            self.head = self.embed.table
        else:
            key = "model.embed_tokens.weight" if tied else "lm_head.weight"
            self.head = Linear(state[key], None, mode)

    @property
    def device(self) -> torch.device:
        return self.norm.weight.device

    def forward(self, ids: Tensor, attention: Attention, *, last_only: bool = False,
                stop_after: int | None = None) -> Tensor:
        """Logits [T, vocab] for token ids [T]; `attention` decides what is
        attended. With `stop_after` the hidden states [T, dim] after that layer."""
        x = self.embed(ids)
        for i, layer in enumerate(self.layers):
            q, k, v = layer.qkv(x)
            x = layer.finish(x, attention(i, q, k, v))
            if i == stop_after:
                return x
        if last_only:
            x = x[-1:]
        return self.head(self.norm(x))


class DenseAttention:
    """Plain causal attention over the whole sequence, for checks and baselines."""

    def __init__(self, cfg: ModelConfig, start: int = 0):
        self.cfg = cfg
        self.start = start
        self.cache: dict[int, tuple[Tensor, Tensor]] = {}

    def __call__(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        c = self.cfg
        past = self.cache.get(layer)
        offset = 0 if past is None else past[0].shape[1]
        pos = torch.arange(self.start + offset, self.start + offset + q.shape[0], device=q.device)
        cos, sin = rope_cos_sin(pos, c.head_dim, c.rope_theta)
        q = apply_rope(q.transpose(0, 1), cos, sin)
        k = apply_rope(k.transpose(0, 1), cos, sin)
        v = v.transpose(0, 1)
        if past is not None:
            k, v = torch.cat([past[0], k], 1), torch.cat([past[1], v], 1)
        self.cache[layer] = (k, v)
        mask = causal_mask(q.shape[1], k.shape[1], q.device)
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                             enable_gqa=True)
        return out.transpose(0, 1)


def causal_mask(n_query: int, n_key: int, device: torch.device) -> Tensor:
    """Boolean [n_query, n_key]: the queries are the last n_query keys."""
    offset = n_key - n_query
    return (torch.arange(n_key, device=device)[None, :]
            <= torch.arange(n_query, device=device)[:, None] + offset)


# --- loading --------------------------------------------------------------

def load_hf_model(path: Path | str):
    """A transformers causal LM (float32) from a GGUF file or an HF directory.

    GGUF goes through transformers' own GGUF reader (dequantizing to float32)
    without `from_pretrained`, which would require `accelerate`.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    if path.is_dir():
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    if path.suffix != ".gguf" or not path.is_file():
        raise FileNotFoundError(f"no GGUF file or model directory at {path}")
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with contextlib.redirect_stderr(io.StringIO()):   # its own tqdm bar: noise in the CLI
        tensors = load_gguf_checkpoint(str(path), return_tensors=True,
                                       model_to_load=model)["tensors"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or any(m != "lm_head.weight" for m in missing):
        raise ValueError(f"GGUF {path.name}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    return model.eval()


def from_transformers(hf_model, *, mode: str = "float32",
                      device: str | torch.device = "cpu") -> Transformer:
    """Our forward with the weights of a transformers Llama/Qwen2 model.

    On CUDA, "bfloat16" is the natural mode; "int8" there dequantizes per call.
    """
    if mode == "int4" and torch.device(device).type != "cpu":
        raise ValueError("int4 weights use torch's CPU kernel; use bfloat16 on a GPU")
    cfg = ModelConfig.from_hf(hf_model.config)
    state = {k: v.detach() for k, v in hf_model.state_dict().items()}
    with torch.no_grad():
        model = Transformer(cfg, state, mode)
    return model.to(device).eval()


def param_bytes(model: Transformer) -> int:
    """Bytes of weights one decode step reads (an embedding lookup reads one
    row, so a table kept apart from the output head is not counted)."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    if model.head is not model.embed.table:
        total -= sum(p.numel() * p.element_size() for p in model.embed.parameters())
    return total


def attention_scale(head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim)
