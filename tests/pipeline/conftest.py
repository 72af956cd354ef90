"""What the pipeline tests of `mailvet validate` share: an empty data folder per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MAILVET_DATA_DIR": str(tmp_path / "data")}
