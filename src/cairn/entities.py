"""Domain values: small frozen dataclasses that leave the store layer.

Database rows never leave ``store/``; stores convert them to these values at the
boundary.  Nothing here does I/O or imports numpy at import time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


class RunStatus(str, enum.Enum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def terminal(self) -> bool:
        return self is not RunStatus.RUNNING

    def __str__(self) -> str:  # so f-strings and tables show the bare name
        return self.value


@dataclass(frozen=True, slots=True)
class Experiment:
    id: str
    name: str
    created_at: int  # ms since the epoch
    lifecycle: str = "active"
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    value: float
    step: int
    timestamp: int  # ms since the epoch


@dataclass(frozen=True, slots=True)
class LatestMetric:
    """Summary of one metric series kept in the index for search and sort."""

    key: str
    value: float  # value at the highest step (ties: latest timestamp)
    step: int
    timestamp: int
    min: float
    max: float
    count: int


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    name: str
    experiment_id: str
    experiment: str  # experiment name
    status: RunStatus
    start_time: int
    end_time: int | None
    user: str
    parent_id: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)  # latest value per key
    tags: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, Any] = field(default_factory=dict)
    lifecycle: str = "active"
    heartbeat: int | None = None
    metric_summaries: Mapping[str, LatestMetric] = field(default_factory=dict, repr=False)

    @property
    def duration_ms(self) -> int | None:
        return None if self.end_time is None else self.end_time - self.start_time


@dataclass(frozen=True, slots=True)
class MetricHistory:
    """A whole metric series, exact, as three aligned numpy arrays sorted by (step, timestamp)."""

    key: str
    steps: "np.ndarray"
    timestamps: "np.ndarray"
    values: "np.ndarray"

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    def __iter__(self):
        for s, t, v in zip(self.steps.tolist(), self.timestamps.tolist(), self.values.tolist()):
            yield Metric(self.key, v, s, t)


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file in a content-addressed tree.

    ``digest`` is the SHA-256 of the whole file; ``chunks`` lists (oid, size) of the
    content-defined chunks for large files, or is empty when the file is one object.
    """

    path: str
    size: int
    digest: str
    chunks: tuple[tuple[str, int], ...] = ()


# Reserved run tags that carry what a run's index row holds beside its records: its name
# after a rename, and its lifecycle after a (soft) delete or restore.  They go into the
# journal like any tag, so `cairn reindex`, replay on open and `cairn sync` keep them;
# every store applies them to the run's name and lifecycle, and keeps them out of
# ``Run.tags`` (they are attributes, not tags).
RUN_NAME_TAG = "cairn.run.name"
RUN_LIFECYCLE_TAG = "cairn.run.lifecycle"
LIFECYCLES = ("active", "deleted")


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """The one write primitive: everything one writer has for one run since its last flush.

    ``writer_id`` + ``seq`` make a batch idempotent: a store applies each (writer, seq)
    at most once, so journals can be replayed and batches re-sent safely.
    ``metrics`` maps key -> (steps, timestamps, values) as array-likes.
    """

    run_id: str
    writer_id: str
    seq: int
    time: int
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    deleted_tags: tuple[str, ...] = ()
    metrics: Mapping[str, tuple[Any, Any, Any]] = field(default_factory=dict)
    artifacts: tuple[FileEntry, ...] = ()
    status: RunStatus | None = None
    end_time: int | None = None
    create: Mapping[str, Any] | None = None  # run creation fields, in the first batch of a run
    env: Mapping[str, Any] | None = None  # captured environment (arrives after creation)

    def is_empty(self) -> bool:
        return not (self.params or self.tags or self.deleted_tags or self.metrics
                    or self.artifacts or self.status or self.create or self.env)


def split_row_tags(batch: RecordBatch) -> tuple[RecordBatch, str | None, str | None]:
    """``batch`` without the reserved tags, and the name and lifecycle they set (None:
    unchanged).  Callers test ``RUN_NAME_TAG in tags or RUN_LIFECYCLE_TAG in tags`` first,
    so a batch without them costs two dict lookups."""
    from dataclasses import replace

    tags = dict(batch.tags)
    name = tags.pop(RUN_NAME_TAG, None)
    lifecycle = tags.pop(RUN_LIFECYCLE_TAG, None)
    return replace(batch, tags=tags), name, lifecycle
