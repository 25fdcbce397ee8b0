"""The model registry: semantic versions, stages with approval gates, history, rollback,
integrity digests and Ed25519 signatures, on the store's SQL index and object store.

Nothing here is imported by ``import cairn``; :class:`cairn.Client` and
``cairn.models`` import it on first use.
"""

from .entities import (
    Approval, AuditEvent, AuditProblem, AuditReport, HistoryEvent, ModelVersion, RegisteredModel,
    SigningKey, Stage, StagePolicy, TransitionRequest, VerifyReport,
)
from .semver import SemVer
from .service import Registry, parse_ref

__all__ = [
    "Approval", "AuditEvent", "AuditProblem", "AuditReport", "HistoryEvent", "ModelVersion",
    "RegisteredModel", "Registry", "SemVer", "SigningKey", "Stage", "StagePolicy",
    "TransitionRequest", "VerifyReport", "parse_ref",
]
