"""The loop behind ``cairn monitor run``: evaluate the rules, take the actions of firing
alerts, send the webhooks that are due; then wait an interval and go again.

A cycle that fails (the database restarting) is logged and the next one tries again: a
monitor that stops on the first hiccup would miss the alert it is there for.  Each action
happens within one interval of its alert firing: the firing and its actions are one cycle.
:meth:`Monitor.stop` (a signal handler calls it) ends the wait at once and the loop after
the cycle in progress.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import CairnError, InvalidArgument
from .alert_store import ActionRecord, Transition
from .alerts import Alerts

log = logging.getLogger("cairn.monitoring.daemon")

DEFAULT_INTERVAL_S = 30.0


@dataclass
class Cycle:
    """What one cycle did."""

    at: int
    transitions: list[Transition] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    deliveries: Any = None          # what the webhook dispatcher reported, if it ran
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self.deliveries
        return {"at": self.at, "transitions": [t.to_dict() for t in self.transitions],
                "actions": [a.to_dict() for a in self.actions],
                "deliveries": d.to_dict() if hasattr(d, "to_dict") else
                (d if isinstance(d, (int, dict, list, type(None))) else str(d)),
                "error": self.error}


def _why(exc: Exception) -> str:
    return exc.message if isinstance(exc, CairnError) else f"{type(exc).__name__}: {exc}"


def _log_failure(what: str, exc: Exception) -> None:
    """A Cairn error (the database restarting) as one line; anything else, which is a
    bug, with its traceback: either way the loop goes on."""
    if isinstance(exc, CairnError):
        log.error(what, exc.message)
    else:
        log.error(what, _why(exc), exc_info=exc)


def check_interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 1 <= value <= 86400:
        raise InvalidArgument(f"the interval must be from 1 s to 1 day, got {value!r}")
    return float(value)


class Monitor:
    """Runs cycles of ``alerts`` every ``interval`` seconds; ``dispatch`` sends webhook
    deliveries each cycle when :mod:`cairn.webhooks` has a dispatcher."""

    def __init__(self, alerts: Alerts, interval: float = DEFAULT_INTERVAL_S, *,
                 dispatch: bool = True,
                 on_cycle: Callable[[Cycle], None] | None = None) -> None:
        self.alerts = alerts
        self.interval = check_interval(interval)
        self.dispatch = dispatch
        self.on_cycle = on_cycle
        self._stop = threading.Event()
        self._dispatcher: Any = None

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def once(self, now: Any = None) -> Cycle:
        """One cycle; a failure is reported in ``error`` (the cycle's other steps still ran)."""
        from .alerts import when_ms

        cycle = Cycle(when_ms(now))
        try:
            cycle.transitions = self.alerts.evaluate(now)
        except Exception as exc:  # noqa: BLE001 - reported; the next cycle tries again
            cycle.error = f"evaluating: {_why(exc)}"
            _log_failure("evaluating the alert rules failed: %s", exc)
        try:
            cycle.actions = self.alerts.act(now)
        except Exception as exc:  # noqa: BLE001
            cycle.error = (cycle.error + "; " if cycle.error else "") + f"acting: {_why(exc)}"
            _log_failure("taking the alerts' actions failed: %s", exc)
        if self.dispatch:
            try:
                cycle.deliveries = self._dispatch()
            except Exception as exc:  # noqa: BLE001
                cycle.error = (cycle.error + "; " if cycle.error else "") + \
                    f"webhooks: {_why(exc)}"
                _log_failure("sending webhooks failed: %s", exc)
        if self.on_cycle is not None:
            self.on_cycle(cycle)
        return cycle

    def _dispatch(self) -> Any:
        if self._dispatcher is None:
            try:
                from ..webhooks.dispatch import Dispatcher
            except ImportError:
                self.dispatch = False  # this installation has no webhook sender
                return None
            self._dispatcher = Dispatcher(self.alerts.client, self.alerts.user)
        return self._dispatcher.dispatch_once()

    def run(self, cycles: int | None = None) -> int:
        """Cycle until stopped (or ``cycles`` times); the number of cycles run."""
        n = 0
        while not self._stop.is_set():
            self.once()
            n += 1
            if cycles is not None and n >= cycles:
                break
            self._stop.wait(self.interval)
        return n
