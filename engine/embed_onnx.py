"""A sentence-transformers model run through ONNX Runtime, int8 by default.

Embedding is most of an ingest's time on a CPU. ONNX Runtime with fused BERT
kernels (attention, GELU, layer norm) and int8 weights, per output channel,
does ~3x the segments per CPU second of torch fp32, with vectors at cosine
0.993 mean (0.98 min) to the fp32 ones and the same retrieval
(bench/RESULTS.md, "Embedding backends"). Per-tensor int8 is as fast but
drifts to 0.94, which is why per-channel is used.

Nothing is downloaded: the ONNX graph is exported locally from the model
folder on first use (torch + onnx, both installed), then cached under a key
of the weights' hash and the export settings, so later runs only load it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Bump when the export, fusion or quantisation recipe changes, so stale
# cached graphs are never reused.
EXPORT_VERSION = 2


class OnnxExportError(RuntimeError):
    """The model folder could not be turned into an ONNX graph."""


@dataclass(frozen=True)
class OnnxSpec:
    model_dir: Path
    cache_dir: Path
    quantize: bool = True


def default_cache_dir() -> Path:
    """Per-user cache for exported graphs (a derived, rebuildable artefact)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "folio" / "embedders"


def _weights_digest(model_dir: Path) -> str:
    """Hash of the weights and config: a changed model never reuses a graph."""
    digest = hashlib.sha256(f"v{EXPORT_VERSION}".encode())
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        path = model_dir / name
        if path.is_file():
            digest.update(name.encode())
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def graph_path(spec: OnnxSpec) -> Path:
    kind = "int8" if spec.quantize else "fp32"
    name = Path(spec.model_dir).name
    if name == "model":   # the bundled package's folder: name it after its parent
        name = Path(spec.model_dir).parent.name
    return Path(spec.cache_dir) / f"{name}-{_weights_digest(Path(spec.model_dir))}-{kind}.onnx"


def cached_graph(spec: OnnxSpec, *, rebuild: bool = False) -> Path:
    """Path of the ready-to-run graph, exporting it first when absent (or
    when `rebuild`: a cached file that failed to load)."""
    target = graph_path(spec)
    if rebuild or not target.is_file():
        export_graph(Path(spec.model_dir), target, quantize=spec.quantize)
    return target


def check_mean_pooling(model_dir: Path) -> None:
    """The encoder reproduces mean pooling + normalisation only; a model that
    pools otherwise must use the torch backend rather than get wrong vectors."""
    pooling = model_dir / "1_Pooling" / "config.json"
    if not pooling.is_file():
        return  # a bare transformer folder: sentence-transformers means too
    modes = json.loads(pooling.read_text(encoding="utf-8"))
    others = [k for k, v in modes.items() if k.startswith("pooling_mode_") and v
              and k != "pooling_mode_mean_tokens"]
    if others or not modes.get("pooling_mode_mean_tokens", False):
        raise OnnxExportError(f"{model_dir} pools with {others or 'no mean'}; the ONNX "
                              f"backend does mean pooling only: use backend='torch'")


def _hidden_size_and_heads(model_dir: Path) -> tuple[int, int]:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "bert":
        raise OnnxExportError(f"ONNX export supports BERT-type embedders, not "
                              f"{config.get('model_type')!r} ({model_dir}); "
                              f"use EmbedderConfig(backend='torch')")
    return int(config["hidden_size"]), int(config["num_attention_heads"])


def export_graph(model_dir: Path, target: Path, *, quantize: bool) -> None:
    """Export the transformer to ONNX, fuse BERT ops, optionally quantise the
    MatMul weights to int8; written to a temporary file, then renamed, so a
    crash (or a second process exporting at once) never leaves a torn graph."""
    hidden, heads = _hidden_size_and_heads(model_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        import onnx
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.transformers import optimizer
        from transformers import AutoModel
    except ImportError as exc:
        raise OnnxExportError(f"exporting the embedder to ONNX needs {exc.name}: "
                              f"install it, or use EmbedderConfig(backend='torch')") from exc

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        raw, fused = Path(tmp) / "raw.onnx", Path(tmp) / "fused.onnx"
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        try:
            model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
        except Exception as exc:  # a broken folder gives many exception types
            raise OnnxExportError(f"could not load the embedding model at {model_dir}: {exc}") from exc

        class LastHidden(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        sample = torch.ones(2, 16, dtype=torch.long)
        axes = {0: "batch", 1: "tokens"}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHidden(model), (sample, sample, torch.zeros_like(sample)), str(raw),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes,
                              "token_type_ids": axes, "last_hidden_state": axes},
                opset_version=17, dynamo=False)
            del model
            fused_model = optimizer.optimize_model(str(raw), model_type="bert", num_heads=heads,
                                                   hidden_size=hidden, opt_level=1,
                                                   use_gpu=False)
            fused_model.save_model_to_file(str(fused))
            if quantize:
                quantized = Path(tmp) / "int8.onnx"
                root = logging.getLogger()
                level = root.level
                root.setLevel(logging.ERROR)   # it logs advice on the root logger
                try:
                    quantize_dynamic(str(fused), str(quantized), weight_type=QuantType.QInt8,
                                     per_channel=True,
                                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
                finally:
                    root.setLevel(level)
                fused = quantized
        os.replace(fused, target)


def load_tokenizer(model_dir: Path, max_seq_length: int):
    """The model's fast tokenizer, truncating at `max_seq_length` word pieces."""
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise OnnxExportError(f"no tokenizer.json in {model_dir}")
    tokenizer = Tokenizer.from_file(str(path))
    # tokenizer.json carries its own truncation/padding; ours governs.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)
    return tokenizer


class OnnxEncoder:
    """Tokenise, run the graph in length-sorted batches, mean-pool, normalise:
    the same computation as the model's sentence-transformers pipeline."""

    def __init__(self, graph: Path, tokenizer, *, batch_size: int, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Sleep rather than spin between ops: the cores are shared with the
        # app (and, on a 2-core machine, everything else).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(graph), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        # Longest first, so each batch pads to similar lengths.
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(encodings[r].ids) for r in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for i, r in enumerate(rows):
                n = len(encodings[r].ids)
                ids[i, :n] = encodings[r].ids
                mask[i, :n] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feed)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[rows] = pooled / np.maximum(norms, 1e-12)
        return out
