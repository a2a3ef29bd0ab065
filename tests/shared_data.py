"""Where the real data lives (../shared/data); tests skip when it is absent."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A file under ../shared/data, or a skip when the data is not there."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real data not found at {path} (see data/README.md)")
    return path
