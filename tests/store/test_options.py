"""Stores take their tunables as plain values; one not given follows its CAIRN_* setting."""

import dataclasses

from cairn import settings, store_settings
from cairn.store import options
from cairn.store.local import LocalStore
from cairn.store.memory import MemoryStore

SETTING_OF = {
    "index_delay": settings.INDEX_DELAY,
    "fsync": settings.FSYNC,
    "heartbeat_timeout": settings.HEARTBEAT_TIMEOUT,
    "tracking_token": settings.TRACKING_TOKEN,
    "spool_dir": settings.SPOOL_DIR,
    "spool_drain_timeout": settings.SPOOL_DRAIN_TIMEOUT,
    "ca_bundle": settings.CA_BUNDLE,
    "tls_verify": settings.TLS_VERIFY,
}


def test_built_in_defaults_are_the_settings_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(options.StoreOptions)}
    assert fields == {name: s.default for name, s in SETTING_OF.items()}


def test_importing_cairn_points_the_defaults_at_the_settings():
    assert options.DEFAULTS is store_settings.FROM_SETTINGS
    for name, setting in SETTING_OF.items():
        assert getattr(options.DEFAULTS, name) == setting.get, name


def test_a_setting_changed_later_reaches_a_store_made_before(tmp_path, monkeypatch):
    local, memory = LocalStore(tmp_path / "s"), MemoryStore()
    monkeypatch.setenv("CAIRN_INDEX_DELAY", "0.25")
    monkeypatch.setenv("CAIRN_HEARTBEAT_TIMEOUT", "7")
    assert local._index_delay() == 0.25
    assert options.resolve(local.heartbeat_timeout, "heartbeat_timeout") == 7.0
    assert options.resolve(memory.heartbeat_timeout, "heartbeat_timeout") == 7.0


def test_a_value_given_to_the_constructor_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_INDEX_DELAY", "0.25")
    monkeypatch.setenv("CAIRN_HEARTBEAT_TIMEOUT", "7")
    local = LocalStore(tmp_path / "s", index_delay=0.0, fsync=True, heartbeat_timeout=2.0)
    assert local._index_delay() == 0.0
    assert options.resolve(local.fsync, "fsync") is True
    assert options.resolve(local.heartbeat_timeout, "heartbeat_timeout") == 2.0
