"""One deployment built from the options of ``cairn serve``, in this process or in each of
``--workers`` uvicorn worker processes (which get the options as JSON in an environment
variable, since uvicorn starts them by import path)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .server import Deployment, deploy

log = logging.getLogger("cairn.serving")

ENV = "CAIRN_SERVE_OPTIONS"


@dataclass
class ServeOptions:
    """What ``cairn serve`` was asked for (JSON-able, to reach worker processes)."""

    ref: str
    uri: str | None = None            # the store or server, as cairn.Client takes it
    poll: float = 0.5
    max_body: int = 32 * 1024 * 1024
    allow_nan: bool = False
    canary: str | None = None
    standby: str | None = None
    max_batch: int = 0                # 0: no micro-batching
    max_wait_ms: float = 2.0
    log_sample: float = 1.0           # 0: no prediction log
    log_exclude: list[str] = field(default_factory=list)
    metrics: bool = True
    record: bool = True
    deployment_id: str | None = None
    claim_dir: str | None = None      # workers: one of them records each switch
    log_salt: str = ""                # sampling's secret: callers cannot pick unlogged ids
    threads: int | None = None        # threads for parse, checks and predict (None: asyncio's)
    fast_path: bool = True            # serving.fastpath where it has a checked path
    log_flush: float = 30.0           # seconds a logged request waits at most to be written
    feedback: bool = True             # POST /v1/feedback takes ground-truth labels

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "ServeOptions":
        return cls(**json.loads(os.environ[ENV]))


def build(options: ServeOptions, client: Any = None, *, worker: bool = False) -> Deployment:
    """The deployment ``options`` describe, on ``client`` (a new one from ``options.uri``
    when not given).  In a worker, the start and stop are the parent's to record."""
    from ..client import Client
    from ..services import registry_for

    client = client if client is not None else Client(options.uri)
    reg = registry_for(client)
    metrics = None
    if options.metrics:
        from importlib.util import find_spec

        if find_spec("prometheus_client") is not None:
            from .metrics import ServingMetrics

            metrics = ServingMetrics()
        else:
            log.warning("prometheus-client is not installed: no /metrics "
                        "(pip install 'cairn[serve]')")
    observers: list[Any] = []
    predlog = None
    if options.log_sample > 0:
        from .predlog import PredictionLog

        predlog = PredictionLog(client, sample=options.log_sample, exclude=options.log_exclude,
                                salt=options.log_salt, flush_seconds=options.log_flush)
        observers.append(predlog)
        if metrics is not None:
            metrics.set_predlog_stats(predlog.stats)
    if metrics is not None:
        observers.append(metrics)
    feedback = None
    if options.feedback:
        from .feedback_log import DEFAULT_FLUSH_SECONDS, FeedbackLog

        feedback = FeedbackLog(client, flush_seconds=min(DEFAULT_FLUSH_SECONDS, options.log_flush))
    batcher = None
    if options.max_batch > 0:
        from .batching import MicroBatcher

        batcher = MicroBatcher(options.max_batch, options.max_wait_ms)
    deployment = deploy(reg, options.ref, poll=options.poll, max_body=options.max_body,
                        allow_nan=options.allow_nan, canary=options.canary,
                        standby=options.standby, observers=observers, metrics=metrics,
                        batcher=batcher, record=options.record, threads=options.threads,
                        deployment_id=options.deployment_id, fast_path=options.fast_path,
                        feedback=feedback)
    if deployment.recorder is not None:
        deployment.recorder.lifecycle = not worker
        deployment.recorder.claim_dir = options.claim_dir
    if predlog is not None:
        from .predlog import check_exclude

        check_exclude(deployment.holder.current.version.signature, predlog.exclude)
    if batcher is not None and metrics is not None:
        router = deployment.router

        def on_batch(served: Any, rows: int) -> None:
            # A batch belongs to a loaded model, not to one arm: after a blue-green switch
            # two arms hold the same one and share its batches ("primary+standby").
            names = [a.name for a in router.arms.values() if a.holder.current is served]
            metrics.batched(served.version.name, served.label, "+".join(names) or "primary",
                            rows)

        batcher.on_batch = on_batch
    return deployment


def worker_app() -> Any:
    """The app of one uvicorn worker (``uvicorn cairn.serving.assemble:worker_app
    --factory``): the deployment built from the options in ``CAIRN_SERVE_OPTIONS``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    return build(ServeOptions.from_env(), worker=True).app
