import os

import pytest

import cairn
from cairn import fluent
from cairn.store import _STORES

# Keep test processes from waiting on real-time heartbeats and intervals.
os.environ.setdefault("CAIRN_FLUSH_INTERVAL", "0.2")


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def tracking(store_dir, monkeypatch):
    """A fresh local store as the fluent API's tracking URI."""
    monkeypatch.delenv("CAIRN_TRACKING_URI", raising=False)
    cairn.set_tracking_uri(str(store_dir))
    fluent._experiment_name = None
    yield store_dir
    while cairn.active_run() is not None:
        cairn.end_run()
    cairn.flush()
    store = _STORES.pop(str(store_dir.resolve()), None)
    if store is not None:
        store.close()
    fluent._clients.clear()
    fluent._uri = None
    fluent._experiment = None


@pytest.fixture
def client(tracking):
    return cairn.Client(str(tracking))
