"""Shared fixtures.

Tests on real dataset files read them from the directory named by SEGDATA_SAMPLES (CI sets it
to ../shared/samples). When the variable is unset those tests are skipped with a reason; when
it is set but a file is missing they fail, so that a broken sample directory is noticed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _samples_root() -> Path | None:
    value = os.environ.get("SEGDATA_SAMPLES")
    return Path(value) if value else None


@pytest.fixture(scope="session")
def samples() -> Path:
    root = _samples_root()
    if root is None:
        pytest.skip("SEGDATA_SAMPLES is not set: real-dataset tests need the shared samples directory")
    if not root.is_dir():
        pytest.fail(f"SEGDATA_SAMPLES={root} is set but is not a directory")
    return root


def require(path: Path) -> Path:
    """Fail (not skip) when a sample file that SEGDATA_SAMPLES promises is missing."""
    if not path.exists():
        pytest.fail(f"sample missing: {path} (SEGDATA_SAMPLES is set, so the samples must be complete)")
    return path
