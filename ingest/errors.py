"""Specific, user-facing ingestion errors.

Each error names the file and says what is wrong in words a person can act
on; `code` is a stable identifier the UI and tests can switch on.
"""
from __future__ import annotations

from pathlib import Path


class IngestError(Exception):
    code = "error"

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


class PasswordRequired(IngestError):
    code = "password-required"

    def __init__(self, path: Path | str):
        super().__init__(path, "password required (give one with --password)")


class WrongPassword(IngestError):
    code = "wrong-password"

    def __init__(self, path: Path | str):
        super().__init__(path, "the password given does not open this PDF")


class CorruptFile(IngestError):
    code = "corrupt"


class EmptyDocument(IngestError):
    code = "empty"


class UnsupportedFile(IngestError):
    code = "unsupported"


class BinaryFile(IngestError):
    code = "binary"


class UnreadableEncoding(IngestError):
    code = "encoding"


class TooLarge(IngestError):
    code = "too-large"


class TimeLimitExceeded(IngestError):
    code = "time-limit"
