"""Canary and blue-green: a share of traffic to a second version, sticky by routing key; a
warm standby that an alias move switches to without loading; every answer names its arm;
the deployment's start, switches, rollback and stop in the registry's history."""

import threading
import time
from collections import Counter

import httpx
import pytest

import cairn
from cairn.errors import InvalidArgument, NotFound
from cairn.serving import deploy
from cairn.serving.routing import key_share, parse_canary
from serving import ThreadedServer

from .conftest import register, wait_for
from .models import Tagged

ROW = {"instances": [[1.0, 2.0]]}


@pytest.fixture
def two(tracking):
    """``tagged`` 1.0.0 ("a", @prod) and 1.1.0 ("b", @challenger and @green)."""
    c = cairn.Client(str(tracking))
    v1, v2 = register(c, "a"), register(c, "b")
    c.set_alias("tagged", "prod", v1.version)
    c.set_alias("tagged", "challenger", v2.version)
    c.set_alias("tagged", "green", v2.version)
    return c, v1, v2


@pytest.mark.parametrize("text,share", [("models:/m@c=10%", 0.1), ("m@c=0.25", 0.25),
                                        ("m@c = 50 %", 0.5), ("@c=1.5%", 0.015)])
def test_canary_shares_parse(text, share):
    ref, got = parse_canary(text)
    assert ref.endswith("@c") and got == pytest.approx(share)


@pytest.mark.parametrize("text", ["m@c", "m@c=0", "m@c=100%", "m@c=1", "m@c=-5%", "m@c=ten%",
                                  "=10%", "m@c=nan"])
def test_bad_canary_shares_are_refused_clearly(text):
    with pytest.raises(InvalidArgument, match="--canary"):
        parse_canary(text)


def test_a_canary_takes_its_share_and_a_routing_key_sticks_to_one_arm(registry, two):
    _c, v1, v2 = two
    d = deploy(registry, "models:/tagged@prod", canary="models:/tagged@challenger=20%",
               follow=False)
    with ThreadedServer(d.app) as base, httpx.Client(base_url=base, timeout=10) as http:
        seen = Counter()
        for i in range(400):
            r = http.post("/v1/predict", json=ROW, headers={"Cairn-Routing-Key": f"user-{i}"})
            assert r.status_code == 200
            doc = r.json()
            arm = r.headers["cairn-serving-arm"]
            assert doc["arm"] == arm
            # Each answer came whole from its arm's version.
            expected = {"primary": (v1.version, ["a"]), "canary": (v2.version, ["b"])}[arm]
            assert (doc["model_version"], doc["predictions"]) == expected
            assert arm == ("canary" if key_share(f"user-{i}") < 0.2 else "primary")
            seen[arm] += 1
        assert 40 <= seen["canary"] <= 120, seen  # 20% of 400, give or take chance
        # The same key lands on the same arm every time.
        arms = {http.post("/invocations", json=ROW,
                          headers={"Cairn-Routing-Key": "user-7"}).headers["cairn-serving-arm"]
                for _ in range(20)}
        assert len(arms) == 1
        # Without a key the choice is random, in about the same share.
        keyless = Counter(http.post("/invocations", json=ROW).headers["cairn-serving-arm"]
                          for _ in range(200))
        assert 15 <= keyless["canary"] <= 70, keyless
        status = http.get("/v1/status").json()
    arms_status = status["arms"]
    assert arms_status["canary"]["share"] == pytest.approx(0.2)
    assert arms_status["primary"]["share"] == pytest.approx(0.8)
    assert arms_status["canary"]["version"] == v2.version
    total = arms_status["canary"]["requests"] + arms_status["primary"]["requests"]
    assert total == 400 + 20 + 200
    assert arms_status["canary"]["requests"] == seen["canary"] + keyless["canary"] + \
        (20 if "canary" in arms else 0)
    d.close()


def test_a_canary_of_another_model_or_nowhere_is_refused(registry, two, tracking):
    c, _v1, _v2 = two
    c.register_model("other", Tagged("x"), flavor="pickle")
    with pytest.raises(InvalidArgument, match="same model"):
        deploy(registry, "models:/tagged@prod", canary="models:/other/1.0.0=10%", follow=False)
    with pytest.raises(NotFound, match="nothing to serve"):
        deploy(registry, "models:/tagged@prod", canary="@nosuch=10%", follow=False)
    with pytest.raises(NotFound, match="nothing to serve"):
        deploy(registry, "models:/tagged@prod", standby="@nosuch", follow=False)


def test_the_standby_answers_only_when_asked_for(registry, two):
    _c, v1, v2 = two
    d = deploy(registry, "models:/tagged@prod", standby="@green", follow=False)
    with ThreadedServer(d.app) as base, httpx.Client(base_url=base, timeout=10) as http:
        plain = {http.post("/v1/predict", json=ROW).json()["model_version"] for _ in range(30)}
        assert plain == {v1.version}
        r = http.post("/v1/predict", json=ROW, headers={"Cairn-Arm": "standby"})
        assert (r.json()["model_version"], r.json()["arm"]) == (v2.version, "standby")
        # An arm that this deployment lacks is not an error: the usual rule answers.
        r = http.post("/v1/predict", json=ROW, headers={"Cairn-Arm": "canary"})
        assert r.status_code == 200 and r.json()["arm"] == "primary"
    d.close()


def test_blue_green_switch_under_load_loads_nothing_and_fails_no_request(registry, two):
    c, v1, v2 = two
    d = deploy(registry, "models:/tagged@prod", standby="@green", poll=0.05, record=True,
               deployment_id="test/bluegreen")
    standby_model = d.router.standby.holder.current
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def hammer(base):
        with httpx.Client(base_url=base, timeout=10) as http:
            while not stop.is_set():
                try:
                    r = http.post("/v1/predict", json=ROW)
                    doc = r.json()
                    ok = doc["predictions"] == {v1.version: ["a"], v2.version: ["b"]}[
                        doc["model_version"]]
                    answers.append((r.status_code if ok else -1, doc["model_version"]))
                except Exception as exc:  # noqa: BLE001 (counted, never lost in a thread)
                    answers.append((0, repr(exc)))

    with ThreadedServer(d.app) as base:  # the app's lifespan starts the followers
        threads = [threading.Thread(target=hammer, args=(base,)) for _ in range(8)]
        for t in threads:
            t.start()
        try:
            assert wait_for(lambda: len(answers) > 30)
            c.set_alias("tagged", "prod", v2.version)  # green goes live
            moved = time.monotonic()
            assert wait_for(lambda: answers[-1][1] == v2.version, timeout=5)
            assert time.monotonic() - moved < 2.0
            after = len(answers)
            assert wait_for(lambda: len(answers) > after + 30)
            # The primary now holds the very object the standby had loaded and warmed.
            assert d.holder.current is standby_model
            c.set_alias("tagged", "prod", v1.version)  # and back: a rollback
            assert wait_for(lambda: answers[-1][1] == v1.version, timeout=5)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
    d.close()
    assert answers and all(a[0] == 200 for a in answers), [a for a in answers if a[0] != 200]
    events = [e for e in registry.model_history("tagged") if e.kind.startswith("deploy_")]
    kinds = [(e.kind, e.version) for e in events]
    assert ("deploy_start", v1.version) in kinds and ("deploy_start", v2.version) in kinds
    assert ("deploy_switch", v2.version) in kinds
    assert ("deploy_rollback", v1.version) in kinds
    assert [k for k in kinds if k[0] == "deploy_stop"]
    switch = next(e for e in events if e.kind == "deploy_switch")
    assert switch.actor == "alice" and "moved from" in (switch.reason or "")


def test_a_canary_alias_that_moves_is_followed_on_its_own(registry, two):
    c, v1, v2 = two
    d = deploy(registry, "models:/tagged@prod", canary="@challenger=50%", poll=0.05)
    with ThreadedServer(d.app) as base, httpx.Client(base_url=base, timeout=10) as http:
        v3 = register(c, "c")
        c.set_alias("tagged", "challenger", v3.version)
        assert wait_for(lambda: d.router.canary.holder.current.label == v3.version)
        got = {http.post("/v1/predict", json=ROW,
                         headers={"Cairn-Arm": "canary"}).json()["predictions"][0]
               for _ in range(5)}
        assert got == {"c"}
        assert d.holder.current.label == v1.version  # the primary did not move
    d.close()
