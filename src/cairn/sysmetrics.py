"""System metrics: CPU, memory, disk, network and GPUs, sampled in the background into a run.

``cairn.start_run(system_metrics=True)`` starts a :class:`SystemMetricsSampler` that logs
``system/...`` metrics every ``interval`` seconds and once more when the run ends (so even a
short run has one sample).  ``cairn.autolog()`` turns it on by default for top-level runs.

Metrics (step = sample number; disk and network I/O count from the start of the run)::

    system/cpu_utilization_percentage          system/process_cpu_utilization_percentage
    system/system_memory_usage_megabytes       system/process_memory_rss_megabytes
    system/system_memory_usage_percentage      system/disk_usage_percentage
    system/disk_usage_megabytes                system/disk_available_megabytes
    system/disk_read_megabytes                 system/disk_write_megabytes
    system/network_receive_megabytes           system/network_transmit_megabytes
    system/gpu_{i}_utilization_percentage      system/gpu_{i}_memory_usage_megabytes
    system/gpu_{i}_memory_usage_percentage     system/gpu_{i}_power_watts
    system/gpu_{i}_power_percentage

CPU, memory, disk and network come from ``psutil`` (``pip install 'cairn[system]'``); GPUs
come from NVML through ``nvidia-ml-py`` (``import pynvml``) when it is installed and a driver
answers, and are silently absent otherwise.  Importing this module imports neither.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable, Mapping

from .errors import MissingDependency

__all__ = ["DEFAULT_INTERVAL_S", "SystemMetricsSampler", "default_enabled", "set_default",
           "start_sampler"]

DEFAULT_INTERVAL_S = 10.0
PREFIX = "system/"
_MB = 1024 * 1024

_default_on = False


def set_default(enabled: bool) -> None:
    """Whether runs started with ``system_metrics=None`` sample system metrics (autolog sets it)."""
    global _default_on
    _default_on = bool(enabled)


def default_enabled() -> bool:
    return _default_on


def wanted(system_metrics: bool | None, nested: bool) -> bool:
    """The decision ``start_run`` makes: explicit on/off, else the default for top-level runs."""
    if system_metrics is not None:
        return bool(system_metrics)
    return _default_on and not nested


def require() -> None:
    """Raise :class:`MissingDependency` when psutil, which every sampler needs, is missing."""
    _psutil()


def _psutil():
    try:
        import psutil
    except ImportError:
        raise MissingDependency("system metrics need psutil: pip install 'cairn[system]'",
                                extra="system") from None
    return psutil


class _HostSource:
    """CPU, memory, disk and network through psutil."""

    def __init__(self, disk_path: str | None = None) -> None:
        self._ps = ps = _psutil()
        self._proc = ps.Process()
        self._disk_path = disk_path or os.path.abspath(os.sep)
        ps.cpu_percent(interval=None)  # prime: the first call measures from here
        self._proc.cpu_percent(interval=None)
        self._disk0 = self._disk_io()
        self._net0 = self._net_io()

    def _disk_io(self) -> tuple[int, int] | None:
        try:
            c = self._ps.disk_io_counters()
        except (OSError, RuntimeError):  # no /proc/diskstats in some containers
            return None
        return None if c is None else (c.read_bytes, c.write_bytes)

    def _net_io(self) -> tuple[int, int] | None:
        try:
            c = self._ps.net_io_counters()
        except (OSError, RuntimeError):
            return None
        return None if c is None else (c.bytes_recv, c.bytes_sent)

    def read(self) -> dict[str, float]:
        ps = self._ps
        vm = ps.virtual_memory()
        out = {
            "cpu_utilization_percentage": ps.cpu_percent(interval=None),
            "process_cpu_utilization_percentage": self._proc.cpu_percent(interval=None),
            "system_memory_usage_megabytes": vm.used / _MB,
            "system_memory_usage_percentage": vm.percent,
            "process_memory_rss_megabytes": self._proc.memory_info().rss / _MB,
        }
        try:
            du = ps.disk_usage(self._disk_path)
        except OSError:
            pass
        else:
            out.update(disk_usage_percentage=du.percent, disk_usage_megabytes=du.used / _MB,
                       disk_available_megabytes=du.free / _MB)
        disk = self._disk_io()
        if disk is not None and self._disk0 is not None:
            out["disk_read_megabytes"] = (disk[0] - self._disk0[0]) / _MB
            out["disk_write_megabytes"] = (disk[1] - self._disk0[1]) / _MB
        net = self._net_io()
        if net is not None and self._net0 is not None:
            out["network_receive_megabytes"] = (net[0] - self._net0[0]) / _MB
            out["network_transmit_megabytes"] = (net[1] - self._net0[1]) / _MB
        return out

    def close(self) -> None:
        pass


class _NvmlSource:
    """Per-GPU utilisation, memory and power through NVML (``nvidia-ml-py``)."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        nvml.nvmlInit()
        try:
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i)
                             for i in range(nvml.nvmlDeviceGetCount())]
        except Exception:
            nvml.nvmlShutdown()
            raise

    @classmethod
    def open(cls) -> "_NvmlSource | None":
        """The GPUs of this machine, or None when there is no NVML library, driver or GPU."""
        try:
            import pynvml
        except ImportError:
            return None
        try:
            source = cls(pynvml)
        except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no GPU here
            return None
        if not source._handles:
            source.close()
            return None
        return source

    def read(self) -> dict[str, float]:
        nvml, out = self._nvml, {}
        for i, h in enumerate(self._handles):
            p = f"gpu_{i}_"
            # Each query can be unsupported on a given board; skip just that one.
            try:
                out[p + "utilization_percentage"] = float(nvml.nvmlDeviceGetUtilizationRates(h).gpu)
            except nvml.NVMLError:
                pass
            try:
                mem = nvml.nvmlDeviceGetMemoryInfo(h)
                out[p + "memory_usage_megabytes"] = mem.used / _MB
                if mem.total:
                    out[p + "memory_usage_percentage"] = 100.0 * mem.used / mem.total
            except nvml.NVMLError:
                pass
            try:
                milliwatts = nvml.nvmlDeviceGetPowerUsage(h)
                out[p + "power_watts"] = milliwatts / 1000.0
                limit = nvml.nvmlDeviceGetEnforcedPowerLimit(h)
                if limit:
                    out[p + "power_percentage"] = 100.0 * milliwatts / limit
            except nvml.NVMLError:
                pass
        return out

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # shutting down a library that is going away anyway
            pass


class SystemMetricsSampler:
    """Calls ``log(metrics, step)`` with a sample every ``interval`` seconds, on a daemon thread.

    ``stop()`` takes one last sample, so a run shorter than the interval still gets one.
    An error while sampling or logging stops the thread and is kept in ``error``.
    """

    def __init__(self, log: Callable[[Mapping[str, float], int], None],
                 interval: float | None = None, gpus: bool = True) -> None:
        self.interval = DEFAULT_INTERVAL_S if interval is None else float(interval)
        if self.interval <= 0:
            raise ValueError(f"system metrics interval must be positive, got {interval!r}")
        self._log = log
        self._sources: list[Any] = [_HostSource()]
        if gpus:
            gpu = _NvmlSource.open()
            if gpu is not None:
                self._sources.append(gpu)
        self._step = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def has_gpus(self) -> bool:
        return any(isinstance(s, _NvmlSource) for s in self._sources)

    def sample(self) -> dict[str, float]:
        """One reading of every source, keys prefixed ``system/``."""
        out: dict[str, float] = {}
        for source in self._sources:
            out.update(source.read())
        return {PREFIX + k: float(v) for k, v in out.items()}

    def _sample_and_log(self) -> None:
        with self._lock:
            self._log(self.sample(), self._step)
            self._step += 1

    def start(self) -> "SystemMetricsSampler":
        self._thread = threading.Thread(target=self._loop, name="cairn-sysmetrics", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample_and_log()
            except Exception as exc:  # a daemon thread has nobody to raise to: keep it for stop()
                self.error = exc
                return

    def stop(self, final_sample: bool = True) -> None:
        """Stop the thread, take the last sample, release NVML.  Never raises: it runs while a
        run ends (also at exit and on SIGTERM); a sampling error is kept in ``error`` and
        printed to stderr."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if final_sample and self.error is None:
            try:
                self._sample_and_log()
            except Exception as exc:
                self.error = exc
        for source in self._sources:
            source.close()
        if self.error is not None:
            print(f"cairn: system metrics sampling failed: {self.error!r}", file=sys.stderr)


def start_sampler(run: Any, interval: float | None = None) -> SystemMetricsSampler:
    """Start sampling into ``run`` (an :class:`cairn.ActiveRun`); ``run.end()`` stops it."""
    writer = run._writer
    return SystemMetricsSampler(lambda metrics, step: writer.log_metrics(metrics, step),
                                interval).start()
