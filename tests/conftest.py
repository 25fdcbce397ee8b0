import os

import pytest

import cairn

# Keep test processes from waiting on real-time heartbeats and intervals.
os.environ.setdefault("CAIRN_FLUSH_INTERVAL", "0.2")

# The fixtures of cairn.testing (cairn_state, cairn_store, cairn_memory_store, cairn_server,
# cairn_clock): its pytest11 entry point turns them on wherever Cairn is installed; naming it
# here too keeps them on under PYTEST_DISABLE_PLUGIN_AUTOLOAD (pytest loads a plugin once).
pytest_plugins = ["cairn.testing"]


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def tracking(store_dir, cairn_state, monkeypatch):
    """A fresh local store as the fluent API's tracking URI (cairn_store's, at ``store_dir``);
    cairn_state puts the fluent state back afterwards."""
    monkeypatch.delenv("CAIRN_TRACKING_URI", raising=False)
    cairn.set_tracking_uri(str(store_dir))
    yield store_dir


@pytest.fixture
def client(tracking):
    return cairn.Client(str(tracking))
