"""Load a stand-alone Python script (a benchmark under ``benchmarks/``) as a module, for tests of its functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_script(path: str | Path) -> ModuleType:
    """The module of the script at ``path``, executed once under the name ``<stem>_script`` (registered in
    ``sys.modules``, so that the classes it defines resolve their module)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"{path.stem}_script", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
