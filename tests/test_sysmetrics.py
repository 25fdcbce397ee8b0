"""System metrics: real psutil sampling, the opt-in switch, and the GPU path with NVML faked."""

import sys
import time
import types

import pytest

import cairn
from cairn import sysmetrics

pytest.importorskip("psutil", reason="system metrics need psutil (pip install 'cairn[system]')")

HOST_KEYS = {
    "system/cpu_utilization_percentage", "system/process_cpu_utilization_percentage",
    "system/system_memory_usage_megabytes", "system/system_memory_usage_percentage",
    "system/process_memory_rss_megabytes", "system/disk_usage_percentage",
    "system/disk_usage_megabytes", "system/disk_available_megabytes",
}


@pytest.fixture(autouse=True)
def _no_real_gpu_and_default_off(monkeypatch):
    # A developer's machine may have a GPU: every test decides what NVML looks like.
    monkeypatch.setitem(sys.modules, "pynvml", None)
    yield
    sysmetrics.set_default(False)


def system_keys(run_id):
    return {k for k in cairn.Client().get_run(run_id).metrics if k.startswith("system/")}


def test_opt_in_run_samples_in_the_background_and_at_the_end(tracking, monkeypatch):
    monkeypatch.setattr(sysmetrics, "DEFAULT_INTERVAL_S", 0.05)
    with cairn.start_run(system_metrics=True) as run:
        sampler = run._sampler
        deadline = time.monotonic() + 10
        while sampler._step < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert not sampler._thread.is_alive()
    c = cairn.Client()
    assert HOST_KEYS <= system_keys(run.id)
    cpu = c.get_metric_history(run.id, "system/cpu_utilization_percentage")
    assert len(cpu) >= 4  # >= 3 from the thread, one more as the run ended
    assert cpu.steps.tolist() == list(range(len(cpu)))
    mem = c.get_metric_history(run.id, "system/process_memory_rss_megabytes").values
    assert (mem > 1).all()  # a Python process with numpy loaded has more than 1 MB resident
    assert all(0 <= v <= 100 * 256 for v in cpu.values)
    assert c.get_run(run.id).metrics["system/disk_usage_percentage"] <= 100


def test_a_short_run_still_gets_one_sample(tracking):
    with cairn.start_run(system_metrics=True) as run:  # the default interval is 10 s
        pass
    assert len(cairn.Client().get_metric_history(run.id, "system/cpu_utilization_percentage")) == 1


def test_off_unless_asked_and_default_only_for_top_level_runs(tracking):
    with cairn.start_run() as plain:
        assert plain._sampler is None
    sysmetrics.set_default(True)
    with cairn.start_run() as parent:
        with cairn.start_run(nested=True) as child:
            assert child._sampler is None
        with cairn.start_run(nested=True, system_metrics=True) as asked:
            assert asked._sampler is not None
    with cairn.start_run(system_metrics=False) as off:
        assert off._sampler is None
    assert system_keys(plain.id) == set() == system_keys(child.id) == system_keys(off.id)
    assert HOST_KEYS <= system_keys(parent.id) and HOST_KEYS <= system_keys(asked.id)


def test_missing_psutil_is_a_clear_error_and_starts_no_run(tracking, monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.raises(cairn.MissingDependency, match=r"cairn\[system\]"):
        cairn.start_run(system_metrics=True)
    assert cairn.active_run() is None
    with cairn.start_run():  # without system metrics nothing needs psutil
        pass


def test_a_failing_sample_stops_the_sampler_without_failing_the_run(tracking, monkeypatch, capsys):
    monkeypatch.setattr(sysmetrics, "DEFAULT_INTERVAL_S", 0.01)
    with cairn.start_run(system_metrics=True) as run:
        sampler = run._sampler
        monkeypatch.setattr(sampler, "sample", lambda: 1 / 0)
        deadline = time.monotonic() + 10
        while sampler.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
    assert isinstance(sampler.error, ZeroDivisionError)
    assert cairn.Client().get_run(run.id).status is cairn.RunStatus.FINISHED
    assert "system metrics sampling failed" in capsys.readouterr().err


# -- GPUs through a fake NVML ------------------------------------------------------------
def fake_nvml(gpus, *, init_error=None):
    """A stand-in for nvidia-ml-py's ``pynvml`` with the calls the sampler makes."""
    m = types.ModuleType("pynvml")
    m.calls = []

    class NVMLError(Exception):
        pass

    m.NVMLError = NVMLError

    def init():
        m.calls.append("init")
        if init_error:
            raise NVMLError(init_error)

    def query(field):
        def get(handle):
            value = gpus[handle][field]
            if value is None:
                raise NVMLError("Not Supported")
            return value
        return get

    m.nvmlInit = init
    m.nvmlShutdown = lambda: m.calls.append("shutdown")
    m.nvmlDeviceGetCount = lambda: len(gpus)
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=gpus[h]["util"], memory=0)
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(
        used=gpus[h]["used"], total=gpus[h]["total"], free=gpus[h]["total"] - gpus[h]["used"])
    m.nvmlDeviceGetPowerUsage = query("power_mw")
    m.nvmlDeviceGetEnforcedPowerLimit = query("limit_mw")
    return m


MiB = 1024 * 1024
GPUS = [
    {"util": 87, "used": 30_000 * MiB, "total": 80_000 * MiB, "power_mw": 350_000, "limit_mw": 700_000},
    {"util": 5, "used": 1_000 * MiB, "total": 40_000 * MiB, "power_mw": None, "limit_mw": None},
]


def test_gpu_metrics_come_from_nvml(tracking, monkeypatch):
    nvml = fake_nvml(GPUS)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with cairn.start_run(system_metrics=True) as run:
        assert run._sampler.has_gpus
    m = cairn.Client().get_run(run.id).metrics
    assert m["system/gpu_0_utilization_percentage"] == 87
    assert m["system/gpu_0_memory_usage_megabytes"] == 30_000
    assert m["system/gpu_0_memory_usage_percentage"] == pytest.approx(37.5)
    assert m["system/gpu_0_power_watts"] == 350
    assert m["system/gpu_0_power_percentage"] == 50
    assert m["system/gpu_1_utilization_percentage"] == 5
    assert m["system/gpu_1_memory_usage_percentage"] == pytest.approx(2.5)
    # the second board does not report power: just those two metrics are absent
    assert "system/gpu_1_power_watts" not in m and "system/gpu_1_power_percentage" not in m
    assert HOST_KEYS <= set(m)
    assert nvml.calls == ["init", "shutdown"]


@pytest.mark.parametrize("nvml", [None, "no-driver", "no-gpu"])
def test_no_gpu_means_no_gpu_metrics_and_no_error(tracking, monkeypatch, nvml):
    fake = {None: None, "no-driver": fake_nvml([], init_error="Driver Not Loaded"),
            "no-gpu": fake_nvml([])}[nvml]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with cairn.start_run(system_metrics=True) as run:
        assert not run._sampler.has_gpus
    keys = system_keys(run.id)
    assert HOST_KEYS <= keys and not any("gpu" in k for k in keys)
    if nvml == "no-gpu":
        assert fake.calls == ["init", "shutdown"]


def test_sampler_is_usable_without_a_run():
    got = []
    sampler = sysmetrics.SystemMetricsSampler(lambda metrics, step: got.append((step, metrics)),
                                              interval=60)
    assert HOST_KEYS <= set(sampler.sample())
    sampler.start()
    sampler.stop()
    sampler.stop()  # idempotent
    assert [step for step, _ in got] == [0]
    with pytest.raises(ValueError, match="positive"):
        sysmetrics.SystemMetricsSampler(lambda m, s: None, interval=0)
