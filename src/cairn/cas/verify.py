"""Re-hash stored objects and report damage rather than raising on the first one.

A long-lived store (years of runs, data sets on a NAS) will meet bit rot and
half-copied directories; an operator needs the full list to repair from a
remote, not an exception at the first bad object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from ..errors import CorruptObject, NotFound
from ._pool import ordered_map

if TYPE_CHECKING:  # pragma: no cover
    from .odb import ObjectStore


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of :meth:`ObjectStore.verify`.

    ``checked`` counts objects that were present and re-hashed (corrupt ones
    included); ``corrupt`` and ``missing`` are sorted oids.
    """

    checked: int
    corrupt: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.missing


def verify(store: "ObjectStore", oids: Iterable[str] | None = None, *,
           workers: int = 1, progress: bool | None = False) -> VerifyResult:
    """Check ``oids`` (every stored object when ``None``) against their content hash;
    ``progress``: a bar on stderr (None: when it is a terminal)."""
    from ..progress import bar
    from .tiering import untracked

    targets = store.backend.iter_oids() if oids is None else dict.fromkeys(oids)

    def check(oid: str) -> str:
        try:
            store.get_bytes(oid)
        except NotFound:
            return "missing"
        except CorruptObject:
            return "corrupt"
        return "ok"

    checked = 0
    corrupt: list[str] = []
    missing: list[str] = []
    oid_list = list(targets)
    # A check reads every object: not a use that should keep them out of the cold tier.
    with untracked(), bar("verifying objects", len(oid_list), enabled=progress,
                          unit="objects") as advance:
        for oid, outcome in zip(oid_list, ordered_map(check, oid_list, workers=workers)):
            advance(1)
            if outcome == "missing":
                missing.append(oid)
                continue
            checked += 1
            if outcome == "corrupt":
                corrupt.append(oid)
    return VerifyResult(checked, tuple(sorted(corrupt)), tuple(sorted(missing)))
