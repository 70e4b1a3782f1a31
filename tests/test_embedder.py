"""The ONNX Runtime embedder: same vectors as the torch reference, offline,
cached, and clear errors for broken model folders."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine import embed_onnx
from engine.embedder import Embedder, EmbedderConfig, EmbedderError, bundled_model_dir

# Real sentences of the kinds Folio embeds: manual prose, a heading path with
# its paragraph, code, a table row, a question.
SENTENCES = [
    "The algorithm of Hartigan and Wong (1979) is used by default.",
    "Nelder-Mead\nThe default method is an implementation of that of Nelder and Mead (1965), "
    "that uses only function values and is robust but relatively slow.",
    "def dedent(text):\n    \"\"\"Remove any common leading whitespace from every line in `text`.\"\"\"",
    "| Name | Amount | Date |\n| --- | --- | --- |\n| Smith, J. | 2,500 | 2019-03-04 |",
    "Which k-means algorithm does R's kmeans() run if I don't pick one?",
    "Spearman's rank correlation uses algorithm AS 89 for exact p-values when n < 1290.",
    "Automobiles need regular oil changes and tyre rotation.",
    "ggplot " * 300,   # longer than the 256 word pieces kept: truncation must match
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def onnx_int8(cache) -> Embedder:
    return Embedder(EmbedderConfig(cache_dir=cache))


def test_model_names_differ_per_setting():
    names = {EmbedderConfig(backend=b, quantize=q, max_seq_length=n).model_name
             for b in ("onnx", "torch") for q in (True, False) for n in (128, 256)}
    assert len(names) == 8
    # The torch names are the ones vectors were stored under before.
    assert EmbedderConfig(backend="torch", quantize=False).model_name == "all-MiniLM-L6-v2"
    assert EmbedderConfig(backend="torch", quantize=True).model_name == "all-MiniLM-L6-v2+int8"
    assert EmbedderConfig().model_name == "all-MiniLM-L6-v2+onnx-int8"


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(EmbedderError, match="unknown embedding backend 'tensorflow'"):
        Embedder(EmbedderConfig(backend="tensorflow"))


@pytest.mark.slow
def test_onnx_int8_matches_the_torch_fp32_reference(onnx_int8):
    reference = Embedder(EmbedderConfig(backend="torch", quantize=False))
    ref = reference.embed(SENTENCES)
    got = onnx_int8.embed(SENTENCES)
    assert got.shape == ref.shape == (len(SENTENCES), 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    cosines = (ref * got).sum(axis=1)
    assert cosines.min() >= 0.97 and cosines.mean() >= 0.99, cosines
    # Retrieval order survives: the question's nearest text is the answer.
    question = onnx_int8.embed_query(SENTENCES[4])
    assert int(np.argmax(got[:4] @ question)) == 0


@pytest.mark.slow
def test_onnx_fp32_is_the_reference_computation(cache):
    fp32 = Embedder(EmbedderConfig(cache_dir=cache, quantize=False))
    reference = Embedder(EmbedderConfig(backend="torch", quantize=False))
    cosines = (fp32.embed(SENTENCES) * reference.embed(SENTENCES)).sum(axis=1)
    assert cosines.min() > 0.9999, cosines


@pytest.mark.slow
def test_graph_is_exported_once_then_loaded_offline(onnx_int8, cache, monkeypatch):
    graphs = list(cache.glob("*-int8.onnx"))
    assert len(graphs) == 1, graphs
    # A second embedder must not export again (nor touch a network).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_export(*args, **kwargs):
        raise AssertionError("exported again despite a cached graph")

    monkeypatch.setattr(embed_onnx, "export_graph", no_export)
    again = Embedder(EmbedderConfig(cache_dir=cache))
    assert np.allclose(again.embed(SENTENCES[:2]), onnx_int8.embed(SENTENCES[:2]), atol=1e-6)


@pytest.mark.slow
def test_damaged_cached_graph_is_rebuilt(tmp_path, onnx_int8, cache):
    graph = next(cache.glob("*-int8.onnx"))
    own = tmp_path / "cache"
    own.mkdir()
    shutil.copy(graph, own / graph.name)
    (own / graph.name).write_bytes(b"not an onnx graph")
    embedder = Embedder(EmbedderConfig(cache_dir=own))
    assert np.allclose(embedder.embed(SENTENCES[:2]), onnx_int8.embed(SENTENCES[:2]), atol=1e-5)


def copy_model(tmp_path: Path) -> Path:
    target = tmp_path / "my-model"
    shutil.copytree(bundled_model_dir(), target)
    return target


def test_broken_weights_are_a_clear_error(tmp_path):
    model = copy_model(tmp_path)
    (model / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(EmbedderError, match="could not load the embedding model at .*my-model"):
        Embedder(EmbedderConfig(model_dir=model, cache_dir=tmp_path / "cache"))
    assert not list((tmp_path / "cache").glob("*.onnx")), "no graph from a broken model"


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    model = copy_model(tmp_path)
    (model / "tokenizer.json").unlink()
    with pytest.raises(EmbedderError, match="no tokenizer.json"):
        Embedder(EmbedderConfig(model_dir=model, cache_dir=tmp_path / "cache"))


def test_pooling_other_than_mean_is_refused(tmp_path):
    model = copy_model(tmp_path)
    pooling = model / "1_Pooling" / "config.json"
    pooling.write_text(pooling.read_text().replace('"pooling_mode_cls_token": false',
                                                   '"pooling_mode_cls_token": true'))
    with pytest.raises(EmbedderError, match="mean pooling only"):
        Embedder(EmbedderConfig(model_dir=model, cache_dir=tmp_path / "cache"))


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(EmbedderError, match="no embedding model"):
        Embedder(EmbedderConfig(model_dir=tmp_path / "nowhere"))
