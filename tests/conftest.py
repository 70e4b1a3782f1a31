"""Shared fixtures: the optional third-party corpus beside the project."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared/`; tests that need it skip when it is absent."""
    if not (SHARED / "docs").is_dir():
        pytest.skip("../shared/ corpus not present")
    return SHARED
