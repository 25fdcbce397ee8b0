"""A plain directory of files, registered as is; loading returns the (cached) directory path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import Saved


def save(model: Any, path: Path, **_: Any) -> Saved:
    # Nothing to write: the registry stores the source directory's files directly.
    return Saved(options={}, fingerprint={"kind": "directory"})


def predict(model: Any, inputs: Any) -> Any:
    return None


def load(path: Path, options: dict[str, Any], what: str, **_: Any) -> Path:
    return path
