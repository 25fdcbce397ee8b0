"""Following an alias: the new version is loaded in the background and switched to atomically;
requests in flight finish on the version they started on; a version that fails to load is
skipped and the old one keeps serving."""

import logging
import os
import threading
import time

import httpx
import pytest

import cairn
from cairn.serving import AliasFollower, deploy
from serving import ThreadedServer

from .conftest import register, wait_for

ROW = {"instances": [[1.0, 2.0]]}


def test_an_alias_switch_under_concurrent_requests_fails_none(registry, tracking):
    c = cairn.Client(str(tracking))
    v1 = register(c, "a", delay=0.02)
    c.set_alias("tagged", "prod", v1.version)
    d = deploy(registry, "models:/tagged@prod", poll=0.05)
    answers: list[tuple[int, str, object, str]] = []
    stop = threading.Event()

    def hammer(base):
        with httpx.Client(base_url=base, timeout=10) as http:
            while not stop.is_set():
                try:
                    r = http.post("/v1/predict", json=ROW)
                    doc = r.json()
                except Exception as exc:  # counted as a failed request, not lost in a thread
                    answers.append((0, "", repr(exc), ""))
                    continue
                answers.append((r.status_code, r.headers["cairn-model-version"],
                                doc.get("predictions"), doc.get("model_version")))

    with ThreadedServer(d.app) as base:
        d.follower.start()
        try:
            workers = [threading.Thread(target=hammer, args=(base,)) for _ in range(8)]
            for w in workers:
                w.start()
            assert wait_for(lambda: len(answers) > 20)
            v2 = register(c, "b", delay=0.02)
            c.set_alias("tagged", "prod", v2.version)
            switched = time.monotonic()
            assert wait_for(lambda: answers[-1][1] == v2.version, timeout=5)
            assert time.monotonic() - switched < 2.5  # poll 0.05 s + load and warm
            after = len(answers)
            assert wait_for(lambda: len(answers) > after + 20)
        finally:
            stop.set()
            for w in workers:
                w.join(10)
            d.close()
    assert answers and all(a[0] == 200 for a in answers), [a for a in answers if a[0] != 200]
    # Every answer came whole from one version: its header, body and predictions agree.
    tags = {v1.version: "a", v2.version: "b"}
    for _status, header, predictions, body_version in answers:
        assert header == body_version and predictions == [tags[header]]
    seen = [a[1] for a in answers]
    assert seen[0] == v1.version and seen[-1] == v2.version
    assert d.holder.switches == 1


def test_a_request_in_flight_finishes_on_the_version_it_started_on(registry, tracking):
    c = cairn.Client(str(tracking))
    v1 = register(c, "slow", delay=1.0)
    c.set_alias("tagged", "prod", v1.version)
    d = deploy(registry, "models:/tagged@prod", follow=False)
    result = {}
    with ThreadedServer(d.app) as base:
        t = threading.Thread(target=lambda: result.update(r=httpx.post(base + "/v1/predict",
                                                                        json=ROW, timeout=10)))
        t.start()
        time.sleep(0.3)  # the request is inside predict now
        v2 = register(c, "fast")
        c.set_alias("tagged", "prod", v2.version)
        follower = AliasFollower(registry, "tagged@prod", d.holder)
        assert follower.check() is True  # switched while the slow request runs
        quick = httpx.post(base + "/v1/predict", json=ROW)
        assert quick.json()["predictions"] == ["fast"]
        t.join(10)
    slow = result["r"]
    assert slow.status_code == 200
    assert slow.json()["predictions"] == ["slow"]
    assert slow.headers["cairn-model-version"] == v1.version == slow.json()["model_version"]


def test_a_version_that_fails_to_load_is_skipped_and_the_old_one_serves(registry, tracking,
                                                                         caplog):
    c = cairn.Client(str(tracking))
    v1 = register(c, "good")
    c.set_alias("tagged", "prod", v1.version)
    d = deploy(registry, "models:/tagged@prod", follow=False)
    bad = register(c, "corrupt")
    entry = next(e for e in c.store.objects.get_tree(bad.tree_oid) if e.path == "model/model.pkl")
    path = tracking / "objects" / entry.digest[:2] / entry.digest[2:]
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    c.set_alias("tagged", "prod", bad.version)
    follower = AliasFollower(registry, "tagged@prod", d.holder)
    with caplog.at_level(logging.ERROR, logger="cairn.serving"):
        assert follower.check() is False
        assert follower.check() is False  # not retried until the alias moves again
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert f"moved to {bad.version}, which failed to load; still serving {v1.version}" in message
    assert "model/model.pkl is corrupt" in message
    with ThreadedServer(d.app) as base:
        r = httpx.post(base + "/invocations", json=ROW)
        assert r.json() == {"predictions": ["good"]}
        assert r.headers["cairn-model-version"] == v1.version
    # Moving on to a good version switches again.
    v3 = register(c, "fixed")
    c.set_alias("tagged", "prod", v3.version)
    assert follower.check() is True
    assert d.holder.current.version.version == v3.version


def test_an_alias_deleted_while_serving_keeps_the_version_serving(registry, tracking, caplog):
    c = cairn.Client(str(tracking))
    v1 = register(c, "kept")
    c.set_alias("tagged", "prod", v1.version)
    d = deploy(registry, "models:/tagged@prod", poll=0.05)
    d.follower.start()
    try:
        with caplog.at_level(logging.WARNING, logger="cairn.serving"):
            c.delete_alias("tagged", "prod")
            assert wait_for(lambda: any("has no alias 'prod'" in r.getMessage()
                                        for r in caplog.records))
            time.sleep(0.3)  # several more polls: the same problem is not logged again
        warnings = [r.getMessage() for r in caplog.records if "has no alias" in r.getMessage()]
        assert warnings == [f"could not check tagged@prod (still serving {v1.version}): model "
                            "'tagged' has no alias 'prod' (aliases: none)"]
        assert d.holder.current.version.version == v1.version
    finally:
        d.close()


@pytest.mark.parametrize("ref", ["models:/tagged@production", "tagged@latest"])
def test_stages_and_latest_are_followed_too(registry, tracking, ref):
    c = cairn.Client(str(tracking))
    v1 = register(c, "one")
    c.transition_model_version_stage("tagged", v1.version, "Production")
    d = deploy(registry, ref, follow=True, poll=60)
    assert d.follower is not None
    v2 = register(c, "two")
    c.transition_model_version_stage("tagged", v2.version, "Production")
    assert d.follower.check() is True
    assert d.holder.current.version.version == v2.version


def test_a_version_whose_registry_record_was_edited_is_refused(registry, tracking, caplog):
    import sqlite3

    c = cairn.Client(str(tracking))
    v1 = register(c, "good")
    c.set_alias("tagged", "prod", v1.version)
    d = deploy(registry, "models:/tagged@prod", follow=False)
    v2 = register(c, "swapped")
    # Point v2 at v1's files behind the registry's back: the record's digest no longer fits.
    conn = sqlite3.connect(str(tracking / "index.db"), isolation_level=None)
    try:
        conn.execute("UPDATE model_versions SET tree_oid = ? WHERE version = ?",
                     (v1.tree_oid, v2.version))
    finally:
        conn.close()
    c.set_alias("tagged", "prod", v2.version)
    follower = AliasFollower(registry, "tagged@prod", d.holder)
    with caplog.at_level(logging.ERROR, logger="cairn.serving"):
        assert follower.check() is False
    assert "was changed after it was registered" in caplog.text
    assert d.holder.current.version.version == v1.version


class Flaky:
    """A loader that fails with ``errors`` in turn, then loads for real."""

    def __init__(self, errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, reg, mv):
        from cairn.serving.holder import load_version

        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return load_version(reg, mv)


def test_a_transient_load_failure_is_retried_with_backoff(registry, tracking, caplog):
    from cairn import StoreUnavailable

    c = cairn.Client(str(tracking))
    v1 = register(c, "good")
    c.set_alias("tagged", "prod", v1.version)
    d = deploy(registry, "models:/tagged@prod", follow=False)
    v2 = register(c, "next")
    c.set_alias("tagged", "prod", v2.version)
    load = Flaky([OSError(5, "Input/output error"), StoreUnavailable("the store is down"),
                  TimeoutError("timed out")])
    follower = AliasFollower(registry, "tagged@prod", d.holder, interval=0.01, load=load)
    with caplog.at_level(logging.WARNING, logger="cairn.serving"):
        assert follower.check() is False
        assert follower.check() is False  # backing off: no new try yet
        assert load.calls == 1
        assert d.holder.current.version.version == v1.version
        assert wait_for(lambda: follower.check(), timeout=5)
    assert load.calls == 4 and d.holder.current.version.version == v2.version
    assert "will retry" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_permanent_load_failure_is_not_retried(registry, tracking):
    from cairn import MissingDependency

    c = cairn.Client(str(tracking))
    v1 = register(c, "good")
    c.set_alias("tagged", "prod", v1.version)
    d = deploy(registry, "models:/tagged@prod", follow=False)
    v2 = register(c, "next")
    c.set_alias("tagged", "prod", v2.version)
    load = Flaky([MissingDependency("needs torch")])
    follower = AliasFollower(registry, "tagged@prod", d.holder, interval=0.01, load=load)
    assert follower.check() is False
    time.sleep(0.1)
    assert follower.check() is False and load.calls == 1


def test_poll_zero_starts_no_follower_thread(registry, tracking):
    c = cairn.Client(str(tracking))
    v1 = register(c, "good")
    c.set_alias("tagged", "prod", v1.version)
    before = threading.active_count()
    d = deploy(registry, "models:/tagged@prod", poll=0)
    assert d.follower is None
    d.close()
    follower = AliasFollower(registry, "tagged@prod", d.holder, interval=0).start()
    assert threading.active_count() == before
    follower.stop()
