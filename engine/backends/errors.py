"""Model errors: one family, so the app can catch `ModelError` and show the
message, while tests and callers can still tell the causes apart."""
from __future__ import annotations


class ModelError(RuntimeError):
    """The answer model could not be found, assembled, loaded or run; the
    message says why and what to do, in words meant for the person."""


class ModelNotFoundError(ModelError):
    """No model file (or folder) at the given path, or a bundled model's
    package is not installed."""


class ModelPartMissingError(ModelNotFoundError):
    """A chunk package of the bundled default model is missing."""


class ModelHashError(ModelError):
    """The assembled bundled model is not the file we ship (size or sha256
    differs): its chunk packages are damaged or of another version."""


class ModelFormatError(ModelError):
    """The file is not a GGUF model, or it is truncated or corrupt."""


class ModelTooLargeError(ModelError):
    """Loading the model would need more memory than is available."""


class UnsupportedModelError(ModelError):
    """A model this backend cannot run (e.g. a Hugging Face folder given to
    llama.cpp)."""


class PromptTooLongError(ModelError):
    """The chat does not fit the model's context window."""

    def __init__(self, prompt_tokens: int, n_ctx: int):
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx
        super().__init__(
            f"the prompt is {prompt_tokens} tokens but the model's context window "
            f"holds {n_ctx} (with room for at least one answer token): "
            "use fewer or shorter sources, or a larger context (n_ctx)")
