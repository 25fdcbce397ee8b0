"""Deployment history: every start, switch, rollback and stop of a served model, recorded.

``cairn serve`` calls :meth:`Deployments.record_deployment` when one of its arms starts
serving a version, switches to another (its alias moved), is rolled back, or stops.  Each
call writes one history event (kind ``deploy_<event>``: from = the version served before,
to = the version now, with the deployment id, the arm and the reason) and one audit event
(action ``deployment.<event>``), in one transaction, with the registry's user as actor:
who, which version, when and why.  The registry takes the deployment's word for what it
served; it checks only that the version exists, so a typo cannot enter the history.

The checks live here as functions so that :class:`~cairn.registry.remote.RemoteRegistry`
refuses bad input with the same message before sending anything.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from .. import clock
from ..errors import InvalidArgument
from . import repo
from .entities import HistoryEvent
from .semver import SemVer

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

EVENTS = ("start", "switch", "rollback", "stop")
KINDS = tuple(repo.DEPLOY_PREFIX + e for e in EVENTS)
# The history row keeps the id in a 128-character column and the arm in a 32-character one
# (see repo.add_deployment); a longer value would fit SQLite but not PostgreSQL.
MAX_DEPLOYMENT = 128
MAX_REASON = 10_000
_ARM = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def check_event(event: object) -> str:
    if not isinstance(event, str) or event not in EVENTS:
        raise InvalidArgument(f"unknown deployment event {event!r}; use one of "
                              f"{', '.join(EVENTS)}", event=str(event))
    return event


def check_deployment(deployment: object) -> str:
    """A deployment id: 1 to 128 printable characters, no surrounding white space."""
    if not isinstance(deployment, str):
        raise InvalidArgument(f"deployment must be a string (e.g. 'host:port' or a uuid), got "
                              f"{type(deployment).__name__} {deployment!r}")
    if not deployment:
        raise InvalidArgument("deployment must not be empty: give a stable id of the "
                              "`cairn serve` process group, e.g. 'host:port' or a uuid")
    if len(deployment) > MAX_DEPLOYMENT:
        raise InvalidArgument(f"deployment id is {len(deployment)} characters long; the limit "
                              f"is {MAX_DEPLOYMENT}: {deployment[:40]!r}...")
    if not deployment.isprintable() or deployment.strip() != deployment:
        raise InvalidArgument(f"deployment id {deployment!r} must be printable text without "
                              "control characters or surrounding white space")
    return deployment


def check_arm(arm: object) -> str:
    if not isinstance(arm, str) or not _ARM.fullmatch(arm):
        raise InvalidArgument(f"arm {arm!r} is invalid: use up to 32 lower-case letters, digits, "
                              "'_' and '-', starting with a letter (e.g. primary, canary, "
                              "standby)", arm=str(arm))
    return arm


def check_reason(reason: object) -> str:
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise InvalidArgument(f"reason must be a string, got {type(reason).__name__}")
    if len(reason) > MAX_REASON:
        raise InvalidArgument(f"reason is {len(reason)} characters long; the limit is "
                              f"{MAX_REASON}")
    return reason


def check_record(version: object, event: object, deployment: object, arm: object,
                 reason: object, previous: object) -> tuple[str, str, str, str, str, str | None]:
    """Every argument of a record, checked and normalised, before anything is written."""
    v = str(SemVer.parse(version))
    ev = check_event(event)
    prev = None if previous is None else str(SemVer.parse(previous))
    if prev == v and ev in ("switch", "rollback"):
        raise InvalidArgument(f"a {ev} changes the version served, but previous and version "
                              f"are both {v}", version=v)
    return (v, ev, check_deployment(deployment), check_arm(arm), check_reason(reason), prev)


class Deployments:
    """Mixed into :class:`~cairn.registry.service.Registry` (needs ``session`` and ``user``)."""

    if TYPE_CHECKING:
        @property
        def user(self) -> str: ...

    def session(self, write: bool = False) -> AbstractContextManager[Connection]:  # pragma: no cover
        raise NotImplementedError  # provided by Registry

    def record_deployment(self, name: str, version: str, event: str, *, deployment: str,
                          arm: str = "primary", reason: str = "",
                          previous: str | None = None) -> HistoryEvent:
        """Record that ``deployment``'s ``arm`` started serving, switched to, rolled back to,
        or stopped serving ``name/version`` (``event``: start, switch, rollback, stop);
        ``previous`` is the version it served before.  Returns the history event."""
        version, event, deployment, arm, reason, previous = check_record(
            version, event, deployment, arm, reason, previous)
        kind = repo.DEPLOY_PREFIX + event
        with self.session(write=True) as conn:
            repo.require_version(conn, name, version)
            now = clock.now_ms()
            recorded = repo.add_deployment(conn, name, version, kind, self.user, now, previous,
                                           reason, deployment, arm)
            repo.record(conn, self.user, f"deployment.{event}", f"model:{name}/{version}",
                        None if previous is None else {"version": previous},
                        {"version": version, "deployment": deployment, "arm": arm,
                         "reason": reason}, now)
            return recorded

    def deployments(self, name: str, deployment: str | None = None) -> list[HistoryEvent]:
        """The deployment events of model ``name`` (of one deployment, if given), oldest
        first; :meth:`model_history` lists them among the model's other events."""
        if deployment is not None:
            check_deployment(deployment)
        with self.session() as conn:
            repo.require_model(conn, name)
            return repo.history(conn, name, kinds=KINDS, deployment=deployment)

