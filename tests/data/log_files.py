"""Helpers of the loader tests: write a log file, and read the one-line error a bad one gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnrec.data import load_interactions
from attnrec.errors import DataError


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    """Write ``content`` byte for byte (no newline translation) to ``tmp_path / name``."""
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def error_of(path: Path, **kwargs: object) -> str:
    """The message of the DataError that loading ``path`` raises, checked to be one line."""
    with pytest.raises(DataError) as info:
        load_interactions(path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message, "error messages must be one line"
    return message
