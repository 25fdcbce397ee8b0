"""The one clock and the id makers, for every layer: a leaf (it imports nothing from cairn).

Call them through the module, ``clock.now_ms()``, ``clock.time_ns()``,
``clock.new_run_id()``, never as copies (``from cairn.clock import now_ms``): a test
controls time and ids by replacing these attributes here once (``cairn.testing`` does),
and only a lookup at call time sees the replacement.  The layering test
(tests/test_public_api.py) rejects ``from ... clock import`` of a name.

Replace :data:`time_ns` to move time: :func:`now_ms` reads it.  A hot path (a metric's
timestamp in ``RunWriter.log_metric``) calls ``clock.time_ns() // 1_000_000`` inline:
:data:`time_ns` *is* :func:`time.time_ns`, so that costs what ``time.time_ns()`` did, one
global and one attribute lookup, with no extra Python frame.
"""

from __future__ import annotations

import random
import time
import uuid

__all__ = ["new_experiment_id", "new_logged_model_id", "new_request_id", "new_run_id",
           "new_server_writer_id", "new_writer_id", "now_ms", "time_ns"]

#: Wall-clock nanoseconds since the epoch (the function itself, not a wrapper).
time_ns = time.time_ns


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch: what records, rows and events are stamped with."""
    return time_ns() // 1_000_000


def new_run_id() -> str:
    """A run's id: 32 hex digits (what MLflow's clients expect)."""
    return uuid.uuid4().hex


def new_writer_id() -> str:
    """A client process's writer of one run (one journal per writer)."""
    return uuid.uuid4().hex[:16]


def new_server_writer_id() -> str:
    """A writer a server makes for one request (``srv-`` tells it from a client's)."""
    return "srv-" + uuid.uuid4().hex[:12]


def new_experiment_id() -> str:
    """An experiment's id: numeric like MLflow's (its clients expect digits), random so
    that processes and machines never collide."""
    return str(random.SystemRandom().randrange(10**17, 10**18))


def new_logged_model_id() -> str:
    """An MLflow 3 logged model's id."""
    return "m-" + uuid.uuid4().hex


def new_request_id() -> str:
    """A stage-transition request's id."""
    return uuid.uuid4().hex[:12]
