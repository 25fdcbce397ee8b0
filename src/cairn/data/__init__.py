"""Data set versioning: ``cairn.data.add(...)``, checkout, diff, splits, derived versions, remotes.

::

    import cairn

    v = cairn.data.add("data/transactions.csv", name="transactions", message="March dump")
    parts = cairn.data.split(v.ref, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=42)
    with cairn.start_run():
        cairn.log_input(parts["train"].ref, role="train")

Each function works on the fluent API's tracking store; :class:`Datasets` is the
same API bound to an explicit :class:`cairn.Client`.  Importing this package loads
no numpy, pyarrow or pandas; statistics import pyarrow when a version has a table.
See ``docs/data.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .api import Datasets
from .entities import DataDiff, DataRef, Dataset, DatasetVersion, FileChange, TransferResult
from .quality import QualityCheckFailed

if TYPE_CHECKING:
    from ..cas.verify import VerifyResult
    from ..entities import FileEntry

__all__ = [
    "DataDiff",
    "DataRef",
    "Dataset",
    "DatasetVersion",
    "Datasets",
    "FileChange",
    "QualityCheckFailed",
    "TransferResult",
    "add",
    "alias",
    "checkout",
    "derive",
    "diff",
    "files",
    "get",
    "list",
    "pull",
    "push",
    "split",
    "verify",
    "version",
    "versions",
]

_list = list


def _ds() -> Datasets:
    return Datasets()


def add(path: str | os.PathLike[str], name: str, message: str = "", **kwargs: Any) -> DatasetVersion:
    """Record a file or directory as the next version of data set ``name`` (see Datasets.add)."""
    return _ds().add(path, name, message, **kwargs)


def version(ref: str) -> DatasetVersion:
    """The version ``ref`` names: ``name``, ``name@3``, ``name@gold``."""
    return _ds().version(ref)


def versions(name: str) -> _list[DatasetVersion]:
    return _ds().versions(name)


def list() -> _list[Dataset]:  # noqa: A001 - mirrors `cairn data ls`
    """Every data set with a summary of its versions."""
    return _ds().list()


def files(ref: str, path: str | None = None) -> _list[FileEntry]:
    return _ds().files(ref, path)


def checkout(ref: str, dest: str | os.PathLike[str], path: str | None = None,
             **kwargs: Any) -> Path:
    """Restore a version's files (under ``path``) into ``dest``, verified byte for byte."""
    return _ds().checkout(ref, dest, path, **kwargs)


get = checkout


def alias(ref: str, alias: str) -> DatasetVersion:
    return _ds().alias(ref, alias)


def diff(a: str, b: str) -> DataDiff:
    return _ds().diff(a, b)


def split(ref: str, fractions: Mapping[str, float], seed: int = 42, stratify: str | None = None,
          **kwargs: Any) -> dict[str, DatasetVersion]:
    """Deterministic splits of a version into derived versions ``name.<split>``."""
    return _ds().split(ref, fractions, seed=seed, stratify=stratify, **kwargs)


def derive(inputs: Sequence[str] | str, output: str | os.PathLike[str], name: str,
           transform: Mapping[str, Any] | None = None, **kwargs: Any) -> DatasetVersion:
    """Record ``output`` as a version derived from ``inputs`` (with the active run, if any)."""
    return _ds().derive(inputs, output, name, transform=transform, **kwargs)


def verify(ref: str) -> VerifyResult:
    return _ds().verify(ref)


def push(names: Sequence[str] | str | None = None, remote: str | None = None,
         **kwargs: Any) -> TransferResult:
    return _ds().push(names, remote, **kwargs)


def pull(names: Sequence[str] | str | None = None, remote: str | None = None,
         **kwargs: Any) -> TransferResult:
    return _ds().pull(names, remote, **kwargs)
