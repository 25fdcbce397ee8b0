"""Registry values: small frozen dataclasses, converted from rows at the boundary."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any, Mapping, overload

from ..errors import InvalidArgument


class Stage(str, enum.Enum):
    DEVELOPMENT = "Development"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"

    @classmethod
    def parse(cls, text: object) -> "Stage":
        if isinstance(text, Stage):
            return text
        if isinstance(text, str):
            for stage in cls:
                if stage.value.lower() == text.strip().lower():
                    return stage
        raise InvalidArgument(f"unknown stage {text!r}; use one of "
                              f"{', '.join(s.value for s in cls)}", stage=str(text))

    @classmethod
    def is_stage(cls, text: str) -> bool:
        return any(s.value.lower() == text.lower() for s in cls)

    def __str__(self) -> str:
        return self.value


@overload
def _when(ms: int) -> dt.datetime: ...
@overload
def _when(ms: None) -> None: ...
def _when(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    name: str
    description: str
    created_by: str
    created_at: int  # ms since the epoch
    updated_at: int
    tags: Mapping[str, str] = field(default_factory=dict)
    latest_version: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)  # alias -> version
    stages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # stage -> versions


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One immutable registered version; ``stage`` and ``aliases`` are its current state."""

    name: str
    version: str
    stage: str
    stage_since: int
    tree_oid: str
    flavor: str
    created_by: str
    created_at: int
    digest: str
    bump: str
    bump_reasons: tuple[str, ...] = ()
    source_run_id: str | None = None
    signature: Mapping[str, Any] | None = None
    requirements: Mapping[str, Any] = field(default_factory=dict)
    parent: str | None = None  # "name/version" it was fine-tuned or retrained from
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    datasets: tuple[Mapping[str, Any], ...] = ()
    lineage: Mapping[str, Any] = field(default_factory=dict)
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    signing_key: str | None = None
    signature_bytes: bytes | None = field(default=None, repr=False)
    aliases: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def signed(self) -> bool:
        return self.signing_key is not None

    @property
    def created(self) -> dt.datetime:
        return _when(self.created_at)


@dataclass(frozen=True, slots=True)
class StagePolicy:
    name: str
    stage: str
    approvals: int = 0
    approvers: tuple[str, ...] | None = None  # None: anyone but the requester
    exclusive: bool = False  # at most one version in this stage; the previous one is archived


@dataclass(frozen=True, slots=True)
class Approval:
    user: str
    decision: str  # approve | reject
    comment: str
    time: int


@dataclass(frozen=True, slots=True)
class TransitionRequest:
    id: str
    name: str
    version: str
    from_stage: str
    to_stage: str
    status: str  # pending | applied | rejected
    comment: str
    requested_by: str
    requested_at: int
    resolved_by: str | None = None
    resolved_at: int | None = None
    approvals: tuple[Approval, ...] = ()
    required: int = 0  # approvals the policy asked for when last looked at


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    id: int
    name: str
    version: str | None
    # create | register | stage | rollback | alias | alias_deleted | request | approve | reject
    # | policy | delete | rename | deploy_start | deploy_switch | deploy_rollback | deploy_stop
    kind: str
    from_value: str | None
    to_value: str | None
    actor: str
    time: int
    reason: str = ""
    request_id: str | None = None
    alias: str | None = None
    # deploy_* events: which `cairn serve` deployment, and which of its arms (primary,
    # canary, standby); from_value is the version served before, to_value the one now.
    deployment: str | None = None
    arm: str | None = None

    @property
    def when(self) -> dt.datetime:
        return _when(self.time)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    seq: int
    time: int
    actor: str
    action: str
    target: str
    before: Any
    after: Any
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditProblem:
    seq: int | None
    message: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    checked: int
    problems: tuple[AuditProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Integrity of one model version: record digest, signature and every stored object."""

    name: str
    version: str
    files: int
    signature: str  # verified | unsigned | untrusted | skipped
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class SigningKey:
    key_id: str
    name: str
    public_key: str  # PEM
    created_by: str
    created_at: int
    revoked_at: int | None = None
