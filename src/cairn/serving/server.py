"""Putting it together: load the versions a deployment's references name, follow them, run
uvicorn, and record the deployment's start, switches and stop in the registry."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import InvalidArgument, NotFound
from ..registry.entities import ModelVersion
from ..registry.semver import SemVer
from ..registry.service import parse_ref
from .app import DEFAULT_MAX_BODY, ScoringApp
from .events import CANARY, PRIMARY, STANDBY
from .holder import AliasFollower, ModelHolder, Served, is_alias_ref, load_version
from .routing import Arm, Router, parse_canary

log = logging.getLogger("cairn.serving")


@dataclass
class Deployment:
    """Loaded models behind an app; ``follower`` follows the primary reference when it can
    move, ``followers`` every arm's.  ``start()`` starts following and records the start;
    ``close()`` (idempotent) stops following, flushes the observers and records the stop."""

    ref: str
    holder: ModelHolder
    app: ScoringApp
    follower: AliasFollower | None
    router: Router
    followers: list[AliasFollower]
    recorder: "Recorder | None" = None
    _started: bool = False
    _closed: bool = False
    _recording: threading.Thread | None = None

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for follower in self.followers:
            follower.start()
        if self.recorder is not None:
            recorder, arms = self.recorder, list(self.router.arms.values())

            def record_start() -> None:
                for arm in arms:
                    recorder.record(arm.name, arm.holder.current.version, "start", None,
                                    f"cairn serve started serving {arm.ref} ({arm.name})")

            # A slow or unreachable registry must not hold up the server's start.
            self._recording = threading.Thread(target=record_start, daemon=True,
                                               name="cairn-serve-record")
            self._recording.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for follower in self.followers:
            follower.stop()
        for part in (self.app.batcher, *self.app.observers, self.app.feedback):
            closing = getattr(part, "close", None)
            # An async close (the batcher's) belongs to the event loop: the app's lifespan
            # awaits it at shutdown.
            if callable(closing) and not asyncio.iscoroutinefunction(closing):
                try:
                    closing()
                except Exception:  # noqa: BLE001 (one part's failure must not stop the rest)
                    log.exception("closing %s failed", type(part).__name__)
        if self.recorder is not None and self._started:
            if self._recording is not None:
                self._recording.join(30)  # the start before the stop
            for arm in self.router.arms.values():
                self.recorder.record(arm.name, arm.holder.current.version, "stop", None,
                                     "cairn serve stopped")


class Recorder:
    """Writes a deployment's events to the registry's history and audit log.  Serving goes
    on when the registry refuses or cannot be reached (a viewer's token, a server down):
    the failure is logged once per kind."""

    def __init__(self, reg: Any, deployment_id: str) -> None:
        self.reg = reg
        self.deployment_id = deployment_id
        self.served: dict[str, set[str]] = {}  # arm -> versions this deployment has served
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        # Several workers serve one deployment: the parent records its start and stop
        # (lifecycle False in workers), and each switch is recorded by the one worker that
        # first claims it with a file in claim_dir.
        self.lifecycle = True
        self._count: dict[str, int] = {}
        self.claim_dir: str | None = None

    def record(self, arm: str, mv: ModelVersion, event: str, previous: str | None,
               reason: str) -> None:
        with self._lock:
            seen = self.served.setdefault(arm, set())
            if event == "switch" and mv.version in seen and previous is not None \
                    and _older(mv.version, previous):
                event = "rollback"  # back to a version this deployment served before
            seen.add(mv.version)
            self._count[arm] = self._count.get(arm, 0) + 1
            nth = self._count[arm]
        writer = getattr(self.reg, "record_deployment", None)
        if writer is None or (event in ("start", "stop") and not self.lifecycle) \
                or not self._claim(arm, event, mv, previous, nth):
            return
        try:
            writer(mv.name, mv.version, event, deployment=self.deployment_id, arm=arm,
                   reason=reason, previous=previous)
        except Exception as exc:  # noqa: BLE001 (history is best effort; serving goes on)
            kind = type(exc).__name__
            if kind not in self._warned:
                self._warned.add(kind)
                log.warning("could not record the deployment's %s of %s in the registry: %s",
                            event, mv.uri, getattr(exc, "message", exc))


    def _claim(self, arm: str, event: str, mv: ModelVersion, previous: str | None,
               nth: int) -> bool:
        if self.claim_dir is None or event in ("start", "stop"):
            return True
        # The nth change of this arm: every worker sees the same moves in the same order.
        name = f"{arm}-{nth}-{mv.version}-{mv.digest[:16]}-from-{previous}".replace("/", "_")
        try:
            os.close(os.open(os.path.join(self.claim_dir, name),
                             os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False  # another worker recorded this switch
        except OSError:
            return True   # no claim possible: better twice than never
        return True


def _older(version: str, than: str) -> bool:
    try:
        return SemVer.parse(version) < SemVer.parse(than)
    except Exception:  # noqa: BLE001 (a version that is not semver: never a rollback)
        return False


def _relative(ref: str, name: str, option: str) -> str:
    """``@green`` or ``models:/NAME@green`` as ``NAME@green`` (an arm of the same model)."""
    text = ref.strip().removeprefix("models:/")
    if text.startswith("@"):
        text = name + text
    other, _kind, _value = parse_ref(text)
    if other != name:
        raise InvalidArgument(f"{option} {ref!r} names model {other!r}; every arm of a "
                              f"deployment serves the same model ({name!r})", value=ref)
    return text


def _resolve(reg: Any, text: str) -> ModelVersion:
    try:
        return reg.resolve(text)
    except NotFound as exc:
        raise NotFound(f"nothing to serve: {exc.message}", **exc.details) from None


def _sharing_loader(router_arms: Callable[[], Sequence[Arm]], fast: bool = True
                    ) -> Callable[[Any, ModelVersion], Served]:
    """A loader that reuses a version another arm already holds (same version and digest):
    blue-green's switch to the warm standby then loads nothing."""

    def load(reg: Any, mv: ModelVersion) -> Served:
        for arm in router_arms():
            held = arm.holder.current
            if (held.version.version, held.version.digest) == (mv.version, mv.digest):
                return held
        return load_version(reg, mv, fast=fast)

    return load


def deploy(reg: Any, ref: str, *, poll: float = 0.5, max_body: int = DEFAULT_MAX_BODY,
           allow_nan: bool = False, follow: bool = True, canary: str | None = None,
           standby: str | None = None, observers: Sequence[Any] = (), metrics: Any = None,
           batcher: Any = None, record: bool = False,
           deployment_id: str | None = None, threads: int | None = None,
           fast_path: bool = True, feedback: Any = None) -> Deployment:
    """Load ``ref`` (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``) from ``reg`` and build
    the app; an alias or stage is followed every ``poll`` seconds once started (``poll``
    0: not followed).  ``canary`` (``models:/NAME@ALIAS=10%``) sends that share of the
    traffic to a second reference; ``standby`` (``@green``) keeps a third loaded and warm
    for blue-green.  ``record`` writes the start, each switch and the stop to the
    registry's history (under ``deployment_id``, by default host and a short id).
    ``fast_path`` False calls every model's own ``predict`` (see :mod:`.fastpath`).
    ``feedback`` (a :class:`~.feedback_log.FeedbackLog`) answers ``POST /v1/feedback``.

    Raises :class:`~cairn.errors.NotFound` for a reference that points nowhere and
    :class:`~cairn.errors.CorruptObject` for files that fail their digest check."""
    text = ref.removeprefix("models:/")
    name = parse_ref(text)[0]
    specs: list[tuple[str, str, float]] = [(PRIMARY, text, 0.0)]
    if canary:
        canary_ref, share = parse_canary(canary)
        specs.append((CANARY, _relative(canary_ref, name, "--canary"), share))
    if standby:
        specs.append((STANDBY, _relative(standby, name, "--standby"), 0.0))
    arms: list[Arm] = []
    for arm_name, arm_ref, share in specs:
        mv = _resolve(reg, arm_ref)
        held = next((a.holder.current for a in arms
                     if (a.holder.current.version.version, a.holder.current.version.digest)
                     == (mv.version, mv.digest)), None)
        holder = ModelHolder(held or load_version(reg, mv, fast=fast_path))
        arms.append(Arm(arm_name, arm_ref, holder, share))
    router = Router(*[next((a for a in arms if a.name == n), None)  # type: ignore[arg-type]
                      for n in (PRIMARY, CANARY, STANDBY)])
    recorder = Recorder(reg, deployment_id or f"{socket.gethostname()}/{uuid.uuid4().hex[:8]}") \
        if record else None
    loader = _sharing_loader(lambda: list(router.arms.values()), fast_path)
    followers: list[AliasFollower] = []
    for arm in arms:
        _watch(arm, recorder, metrics)
        # poll <= 0 means "do not follow": no follower, so no thread that could spin.
        if follow and poll > 0 and is_alias_ref(arm.ref):
            followers.append(AliasFollower(reg, arm.ref, arm.holder, poll, load=loader))
    primary_follower = next((f for f in followers if f.holder is router.primary.holder), None)
    deployment: Deployment
    app = ScoringApp(router, max_body=max_body, allow_nan=allow_nan, observers=observers,
                     metrics=metrics, batcher=batcher, threads=threads, feedback=feedback,
                     on_startup=lambda: deployment.start(),
                     on_shutdown=lambda: deployment.close())
    deployment = Deployment(text, router.primary.holder, app, primary_follower, router,
                            followers, recorder)
    return deployment


def _watch(arm: Arm, recorder: Recorder | None, metrics: Any) -> None:
    """Tell the metrics and the registry's history what the arm serves now, and on switch."""
    serving = getattr(metrics, "serving", None)
    if callable(serving):
        serving(arm.name, arm.holder.current.version.name, arm.holder.current.label)

    def switched(old: Served, new: Served) -> None:
        if callable(serving):
            serving(arm.name, new.version.name, new.label)
        if recorder is not None:
            recorder.record(arm.name, new.version, "switch", old.label,
                            f"{arm.ref} moved from {old.label} to {new.label}")

    arm.holder.on_switch.append(switched)


def run(deployment: Deployment, *, host: str = "127.0.0.1", port: int = 8080,
        log_level: str = "info") -> None:
    """Serve until interrupted (uvicorn), following the aliases meanwhile."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        # The app's lifespan starts the followers and, at shutdown, flushes and records
        # the stop; the finally covers a server that never got as far as its lifespan.
        uvicorn.run(deployment.app, host=host, port=port, log_level=log_level, lifespan="on")
    finally:
        deployment.close()
