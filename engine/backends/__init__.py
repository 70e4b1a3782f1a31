"""Answer-model backends behind one interface (`Backend`).

Importing this package stays cheap: llama.cpp is imported only when a model
is loaded.
"""
from engine.backends.base import (Backend, BackendConfig, ChatMessage,
                                  GenerationStats, ModelInfo)
from engine.backends.errors import (ModelError, ModelFormatError, ModelHashError,
                                    ModelNotFoundError, ModelPartMissingError,
                                    ModelTooLargeError, PromptTooLongError,
                                    UnsupportedModelError)
from engine.backends.loader import load_backend

__all__ = [
    "Backend", "BackendConfig", "ChatMessage", "GenerationStats", "ModelInfo",
    "ModelError", "ModelFormatError", "ModelHashError", "ModelNotFoundError",
    "ModelPartMissingError", "ModelTooLargeError", "PromptTooLongError",
    "UnsupportedModelError", "load_backend",
]
