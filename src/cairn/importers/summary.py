"""What an import reports: counts of what it wrote and of what it verified."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import Conflict


class ImportMismatch(Conflict):
    """After an import, the Cairn side does not hold what the source holds."""


@dataclass(slots=True)
class Counts:
    experiments: int = 0
    runs: int = 0
    params: int = 0
    tags: int = 0
    metric_points: int = 0
    artifacts: int = 0
    models: int = 0
    versions: int = 0
    aliases: int = 0
    stages: int = 0  # versions in a stage other than MLflow's "None"

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def differences(self, other: "Counts") -> list[str]:
        return [f"{f.name}: {getattr(self, f.name)} in the source, {getattr(other, f.name)} in Cairn"
                for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


@dataclass(slots=True)
class ImportSummary:
    """``imported``: what this call wrote.  ``source``: everything selected in the source.
    ``cairn``: the same things re-counted on the Cairn side after the import; an import
    returns only when the two agree (else :class:`ImportMismatch`)."""

    source_uri: str
    imported: Counts = field(default_factory=Counts)
    source: Counts = field(default_factory=Counts)
    cairn: Counts = field(default_factory=Counts)

    @property
    def verified(self) -> bool:
        return self.source == self.cairn

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source_uri, "imported": self.imported.to_dict(),
                "in_source": self.source.to_dict(), "in_cairn": self.cairn.to_dict(),
                "verified": self.verified}
