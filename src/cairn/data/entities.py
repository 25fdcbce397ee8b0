"""Values of the data layer: data set versions, references to them, diffs and transfer results.

Small frozen dataclasses; nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import InvalidArgument

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/]{0,255}")
_ALIAS_RE = re.compile(r"[A-Za-z_][A-Za-z0-9._\-]{0,127}")
_VERSION_RE = re.compile(r"v?([0-9]+)")
RESERVED_ALIASES = frozenset({"latest"})


def check_name(name: str) -> str:
    """A data set name: letters, digits, ``. _ - /``; starts with a letter or digit."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or "//" in name \
            or name.endswith("/"):
        raise InvalidArgument(f"invalid data set name {name!r}: use letters, digits and "
                              "'.', '_', '-', '/' (at most 256 characters)", name=name)
    return name


def check_alias(alias: str) -> str:
    """An alias such as ``gold``: not a version number and not ``latest``."""
    if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias) \
            or _VERSION_RE.fullmatch(alias) or alias in RESERVED_ALIASES:
        raise InvalidArgument(f"invalid alias {alias!r}: use letters, digits, '.', '_', '-', "
                              "starting with a letter; not 'latest' or a version like 'v3'",
                              alias=alias)
    return alias


@dataclass(frozen=True, slots=True)
class DataRef:
    """``name``, ``name@3`` (or ``@v3``), ``name@gold`` (an alias) or ``name@latest``."""

    name: str
    version: int | None = None  # None: resolve ``alias`` (or the latest version)
    alias: str | None = None

    @classmethod
    def parse(cls, ref: "str | DataRef | DatasetVersion") -> "DataRef":
        if isinstance(ref, DataRef):
            return ref
        if isinstance(ref, DatasetVersion):
            return cls(ref.name, ref.version)
        if not isinstance(ref, str) or not ref:
            raise InvalidArgument(f"a data set reference must be 'name' or 'name@version', "
                                  f"got {ref!r}")
        if ref.startswith("dataset:"):
            ref = ref[len("dataset:"):]
        name, sep, tail = ref.rpartition("@")
        if not sep:
            return cls(check_name(ref))
        check_name(name)
        m = _VERSION_RE.fullmatch(tail)
        if m:
            version = int(m.group(1))
            if version < 1:
                raise InvalidArgument(f"data set versions start at 1: {ref!r}")
            return cls(name, version)
        if tail == "latest":
            return cls(name)
        return cls(name, alias=check_alias(tail))

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One immutable version of a data set: a tree of files in the object store."""

    name: str
    version: int
    tree: str  # oid of the tree object listing the files
    files: int
    size: int  # bytes, all files together
    created_at: int  # ms since the epoch
    created_by: str
    message: str = ""
    source: str = ""  # the path it was added from
    kind: str = "add"  # add | derive | split | pull
    aliases: tuple[str, ...] = ()
    packs: tuple[str, ...] = ()  # pack objects holding its small files
    run_id: str | None = None  # the run that made it
    commit: str | None = None  # that run's code commit
    parents: tuple[str, ...] = ()  # "name@version" of the versions it was made from
    transform: Mapping[str, Any] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict, repr=False)  # path -> table stats
    quality: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)
    created: bool = True  # False when an add found the files unchanged and returned this one

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def __str__(self) -> str:
        return self.ref


@dataclass(frozen=True, slots=True)
class Dataset:
    """A named data set and a summary of its versions."""

    name: str
    versions: int
    latest: int
    created_at: int
    updated_at: int
    size: int  # size of the latest version
    files: int
    aliases: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FileChange:
    path: str
    old_size: int | None
    new_size: int | None
    old_digest: str | None
    new_digest: str | None


@dataclass(frozen=True, slots=True)
class DataDiff:
    """What changed from version ``a`` to version ``b``."""

    a: str
    b: str
    added: tuple[FileChange, ...] = ()
    removed: tuple[FileChange, ...] = ()
    changed: tuple[FileChange, ...] = ()
    moved: tuple[tuple[str, str], ...] = ()  # (old path, new path), same content
    unchanged: int = 0
    tables: Mapping[str, Any] = field(default_factory=dict)  # path -> schema and drift report

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.moved)


@dataclass(frozen=True, slots=True)
class TransferResult:
    """Outcome of a push or pull."""

    remote: str
    versions: tuple[str, ...]  # refs sent or received
    objects: int  # objects transferred
    bytes: int  # stored bytes transferred
    skipped: int  # objects the other side already had
