"""Prometheus metrics for ``cairn serve``: an :class:`~cairn.serving.events.Observer` that
counts each scored request, and the text ``GET /metrics`` answers.

::

    metrics = ServingMetrics(predlog_stats=predlog.stats)   # predlog_stats: optional
    metrics.serving(PRIMARY, "fraud", "1.0.0")              # at start and on every switch
    app = ScoringApp(holder, observers=[metrics], metrics=metrics)
    body, content_type = metrics.render(accept_header)      # what GET /metrics answers

Each :class:`ServingMetrics` has its own :class:`prometheus_client.CollectorRegistry`, never
the global one, so two apps in one process (tests, an app mounted twice) do not collide.

Several worker processes (``cairn serve --workers N``) use prometheus-client's multiprocess
mode: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory (:func:`multiprocess_dir`)
before the workers start, so that prometheus-client sees it when a worker first imports it.
Every worker then writes its values to files there, and ``render`` in whichever worker is
scraped sums them all.  Gauges say how they combine (:data:`INFO_MODE`, :data:`QUEUE_MODE`).

prometheus-client is imported only when a :class:`ServingMetrics` is built or a function
here is called: ``import cairn.serving`` stays light.
"""

from __future__ import annotations

import glob
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from .events import Scored

log = logging.getLogger("cairn.serving")

PREFIX = "cairn_serving_"
ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: a fast in-process model answers in well under a millisecond, a slow one (a large
# transformer, a cold cache) in seconds; 10 s is past any sane timeout.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0)
# Rows per micro-batch handed to predict (powers of two up to the largest sane --max-batch).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

# How each gauge combines over worker processes in multiprocess mode.  "live": only the
# workers still running count (a dead worker's queue is gone, and it serves nothing).
INFO_MODE: Final = "livemax"    # model_info: 1 while any running worker serves that version
QUEUE_MODE: Final = "livesum"   # predlog_queue_depth: all running workers' queues together

# The prediction log's stats() keys, and the counter each feeds (each a running total).
_PREDLOG_COUNTERS = {
    "dropped": ("predlog_dropped", "Predictions the log dropped (its queue was full)"),
    "written_rows": ("predlog_written_rows", "Prediction rows written to the log"),
    "written_segments": ("predlog_written_segments", "Prediction log segments written"),
    "failed_writes": ("predlog_failed_writes", "Prediction log writes that failed"),
}
_QUEUE_HELP = "Requests waiting in the prediction log's queue"

# In multiprocess mode, the prediction log's numbers are copied into this worker's files at
# most this often while requests arrive (and at every scrape of this worker).
_REFRESH_S = 1.0

StatsFn = Callable[[], Mapping[str, Any]]


def multiprocess_dir(path: str | None = None) -> str:
    """Make ``path`` (or a fresh temporary directory) the multiprocess directory: created if
    missing, emptied of an earlier run's files (they would be added to this run's counts), and
    set as ``PROMETHEUS_MULTIPROC_DIR`` for this process and the workers it starts.

    Call it in the parent before any worker starts (and before this process imports
    prometheus-client, if it serves requests itself).  Returns the directory."""
    if path is None:
        path = tempfile.mkdtemp(prefix="cairn-serve-metrics-")
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)
    os.environ[ENV] = path
    return path


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """Drop the gauges of worker ``pid`` that count only while it lives (its queue depth, what
    it serves); its counters stay, as counters should.  A no-op outside multiprocess mode.

    :meth:`ServingMetrics.render` already does this for every worker that is no longer running,
    so calling it is needed only where a scrape must not see a dead worker even once."""
    path = path or os.environ.get(ENV)
    if not path:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)


def prune_dead_processes(path: str) -> list[int]:
    """:func:`mark_process_dead` for every process with "live" gauge files in ``path`` that is
    no longer running (on this host); returns their pids.  The directory must belong to one
    host's workers: a pid is checked with this host's process table."""
    dead = set()
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid_text = os.path.basename(name).rsplit("_", 1)[-1].removesuffix(".db")
        if pid_text.isdigit() and not _alive(int(pid_text)):
            dead.add(int(pid_text))
    for pid in dead:
        mark_process_dead(pid, path)
    return sorted(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, so it exists
        return True
    return True


class ServingMetrics:
    """The serving metrics of one app (see the module's docstring); an
    :class:`~cairn.serving.events.Observer`.

    ``predlog_stats``: the prediction log's ``stats()`` (a mapping with ``queued``,
    ``dropped``, ``written_rows``, ``written_segments``, ``failed_writes``), read at scrape
    time; or give it later with :meth:`set_predlog_stats`."""

    def __init__(self, predlog_stats: StatsFn | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

        self.multiprocess_dir = os.environ.get(ENV) or None
        if self.multiprocess_dir is not None:
            if values.ValueClass is values.MutexValue:
                raise RuntimeError(
                    f"{ENV} is set, but it was set after prometheus_client was imported in this "
                    f"process, so its metrics would stay in memory and /metrics would not show "
                    f"them: set {ENV} before the process starts (multiprocess_dir() in the parent)")
            if not os.path.isdir(self.multiprocess_dir):
                raise ValueError(f"{ENV}={self.multiprocess_dir} is not a directory: create it "
                                 "(empty) before the workers start")
        # Ours alone, never prometheus_client.REGISTRY.  In multiprocess mode the values live
        # in the directory's files and render() reads them from there instead.
        self.registry = CollectorRegistry()
        r = self.registry
        version_labels = ("model", "version", "arm")
        self._requests = Counter(PREFIX + "requests", "Scoring requests answered",
                                 (*version_labels, "route", "status"), registry=r)
        self._errors = Counter(PREFIX + "errors", "Scoring requests answered with an error",
                               (*version_labels, "code"), registry=r)
        self._latency = Histogram(PREFIX + "request_latency_seconds",
                                  "Seconds from a scoring request's arrival to its answer",
                                  version_labels, buckets=LATENCY_BUCKETS, registry=r)
        self._rows = Counter(PREFIX + "rows", "Rows scored", version_labels, registry=r)
        self._batch = Histogram(PREFIX + "batch_size", "Rows per micro-batch given to predict",
                                version_labels, buckets=BATCH_BUCKETS, registry=r)
        self._info = Gauge(PREFIX + "model_info", "1 for the version each arm serves now",
                           version_labels, registry=r,
                           multiprocess_mode=INFO_MODE)
        self._switches = Counter(PREFIX + "model_switches",
                                 "Times an arm switched to another version", ("model", "arm"),
                                 registry=r)
        self._lock = threading.Lock()        # serving() runs on the follower's thread
        self._current: dict[str, tuple[str, str]] = {}  # arm -> (model, version)
        # One scoring request costs a dict lookup and a few increments: the labelled children
        # are looked up once per distinct label set and kept.
        self._children: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._predlog_stats = predlog_stats
        self._predlog_seen: dict[str, float] = {}
        self._predlog_refreshed = 0.0
        self._predlog_metrics: dict[str, Any] = {}
        if self.multiprocess_dir is None:
            r.register(_PredlogCollector(self))
        else:
            # A scrape reaches one worker; each worker copies its own log's numbers into its
            # files, and render() sums the workers' files.
            self._predlog_metrics = {
                key: Counter(PREFIX + name, doc, registry=r)
                for key, (name, doc) in _PREDLOG_COUNTERS.items()}
            self._predlog_metrics["queued"] = Gauge(
                PREFIX + "predlog_queue_depth", _QUEUE_HELP, registry=r,
                multiprocess_mode=QUEUE_MODE)

    # -- the Observer protocol ---------------------------------------------------------------

    def scored(self, event: Scored) -> None:
        """Count one answered scoring request (on the event loop: no I/O, no waiting)."""
        key = (event.model, event.version, event.arm, event.route, event.status,
               event.error_code)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._children_for(event)
        requests, errors, latency, rows = children
        requests.inc()
        if errors is not None:
            errors.inc()
        latency.observe(event.latency_s)
        if event.rows:
            rows.inc(event.rows)
        if self.multiprocess_dir is not None and self._predlog_stats is not None \
                and time.monotonic() - self._predlog_refreshed >= _REFRESH_S:
            self._refresh_predlog()

    def close(self) -> None:
        """The server is stopping: in multiprocess mode this worker's live gauges go."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), self.multiprocess_dir)

    def _children_for(self, event: Scored) -> tuple[Any, ...]:
        version = (event.model, event.version, event.arm)
        errors = None
        if event.status >= 400:
            errors = self._errors.labels(*version, event.error_code or f"HTTP_{event.status}")
        return (self._requests.labels(*version, event.route, str(event.status)), errors,
                self._latency.labels(*version), self._rows.labels(*version))

    # -- what the server tells it ------------------------------------------------------------

    def serving(self, arm: str, model: str | None, version: str | None) -> None:
        """``arm`` serves ``model`` ``version`` from now on (``None``, ``None``: it serves
        nothing any more).  Call it at start for each arm and after each switch: the arm's old
        version leaves ``model_info`` and ``model_switches_total`` counts the switch."""
        with self._lock:
            old = self._current.pop(arm, None)
            new = (model, version) if model is not None and version is not None else None
            if old == new:
                if new is not None:
                    self._current[arm] = new
                return
            if old is not None:
                if self.multiprocess_dir is None:
                    self._info.remove(*old, arm)
                else:  # label sets cannot be removed from the files: 0 says "not any more"
                    self._info.labels(*old, arm).set(0)
            if new is not None:
                self._current[arm] = new
                self._info.labels(*new, arm).set(1)
                if old is not None:
                    self._switches.labels(new[0], arm).inc()

    def batched(self, model: str, version: str, arm: str, size: int) -> None:
        """One micro-batch of ``size`` rows went to ``predict``."""
        self._batch.labels(model, version, arm).observe(size)

    def set_predlog_stats(self, stats: StatsFn | None) -> None:
        """Read the prediction log's numbers from ``stats`` (``None``: no prediction log)."""
        self._predlog_stats = stats

    # -- the scrape --------------------------------------------------------------------------

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """``(body, content_type)`` for ``GET /metrics``: Prometheus' text format, or
        OpenMetrics when ``accept`` (the request's Accept header) asks for it."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        if self.multiprocess_dir is None:
            return encoder(self.registry), content_type
        from prometheus_client.multiprocess import MultiProcessCollector

        if self._predlog_stats is not None:
            self._refresh_predlog()
        prune_dead_processes(self.multiprocess_dir)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)
        return encoder(merged), content_type

    def predlog_numbers(self) -> dict[str, float] | None:
        """The prediction log's stats() as numbers, or None (no log, or stats() failed: a
        scrape shows what it can rather than failing)."""
        stats = self._predlog_stats
        if stats is None:
            return None
        try:
            raw = stats()
            return {k: float(raw[k]) for k in ("queued", *_PREDLOG_COUNTERS) if k in raw}
        except Exception:  # noqa: BLE001 (a metric must never fail the scrape)
            log.exception("the prediction log's stats() failed; its metrics are left out")
            return None

    def _refresh_predlog(self) -> None:
        """Multiprocess mode: copy this worker's prediction-log numbers into its files."""
        self._predlog_refreshed = time.monotonic()
        numbers = self.predlog_numbers()
        if numbers is None:
            return
        with self._lock:
            for key, value in numbers.items():
                metric = self._predlog_metrics[key]
                if key == "queued":
                    metric.set(value)
                    continue
                seen = self._predlog_seen.get(key, 0.0)
                # A total that went down means the log restarted from zero: count it afresh.
                delta = value - seen if value >= seen else value
                if delta:
                    metric.inc(delta)
                self._predlog_seen[key] = value


class _PredlogCollector:
    """The prediction log's numbers, read when scraped (single-process mode)."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        numbers = self.metrics.predlog_numbers()
        if numbers is None:
            return
        if "queued" in numbers:
            yield GaugeMetricFamily(PREFIX + "predlog_queue_depth", _QUEUE_HELP,
                                    value=numbers["queued"])
        for key, (name, doc) in _PREDLOG_COUNTERS.items():
            if key in numbers:
                yield CounterMetricFamily(PREFIX + name, doc, value=numbers[key])
