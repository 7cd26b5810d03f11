"""Names shared by the browser tests and their fixtures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

READ_KEY = "browser-read-key-0123456789"
WRITE_KEY = "browser-write-key-0123456789"
EVIL = "<script>alert('x')</script>"


@dataclass(frozen=True)
class Server:
    """A running ``attnrec serve``: its base URL and run folder."""

    url: str
    run_dir: Path
