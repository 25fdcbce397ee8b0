"""The process's fluent state, in one object: :data:`STATE`.

What ``cairn.set_tracking_uri()``, ``cairn.set_experiment()`` and ``cairn.start_run()``
remember between calls lives here and nowhere else: the tracking URI, the current
experiment, one :class:`~cairn.client.Client` per URI and the stack of active runs.
:func:`reset` puts a process back to its start (``cairn.testing``'s fixtures call it on
teardown), and a forked child forgets what belongs to its parent.

This module sits below ``client``: it imports nothing from cairn at import time, so the
client can read the tracking URI from it without reaching up to the fluent API.
"""

from __future__ import annotations

import contextvars
import os
import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .client import Client
    from .entities import Experiment

__all__ = ["STATE", "FluentState", "reset"]


class _Run(Protocol):
    """What the state needs of an active run (``cairn.fluent.ActiveRun``)."""

    def end(self) -> None: ...

    def _detach(self) -> None: ...


class FluentState:
    """Tracking URI, current experiment, per-URI clients and the active-run stack.

    The active run lives in a ContextVar; threads that did not start a run see the most
    recent run started in the process (``stack``), so data-loader and callback threads
    can log too.
    """

    def __init__(self) -> None:
        self.uri: str | None = None  # set_tracking_uri(); None: the CAIRN_TRACKING_URI setting
        self.experiment: Experiment | None = None  # resolved lazily from experiment_name
        self.experiment_name: str | None = None
        self.clients: dict[str, Client] = {}
        self.active: contextvars.ContextVar[tuple[_Run, ...]] = self._new_active()
        self.stack: list[_Run] = []  # every active run of the process, oldest first
        self.lock = threading.RLock()
        self.signals_installed = False  # the SIGTERM handler (cairn.fluent) is in place

    @staticmethod
    def _new_active() -> contextvars.ContextVar[tuple[_Run, ...]]:
        return contextvars.ContextVar("cairn_active_runs", default=())

    # -- tracking URI and experiment -------------------------------------------
    def tracking_uri(self) -> str:
        if self.uri:
            return self.uri
        from . import settings

        return settings.TRACKING_URI.get()

    def set_tracking_uri(self, uri: str) -> None:
        self.uri = uri
        self.experiment = None  # the experiment of the same name in the new store is another one

    # -- active runs -----------------------------------------------------------
    def push(self, run: _Run) -> contextvars.Token[tuple[_Run, ...]]:
        """Make ``run`` the active run of this context (and the process's latest)."""
        token = self.active.set(self.active.get() + (run,))
        with self.lock:
            self.stack.append(run)
        return token

    def remove(self, run: _Run, token: contextvars.Token[tuple[_Run, ...]] | None) -> None:
        """Forget ``run`` as active, in the process and in this context."""
        with self.lock:
            if run in self.stack:
                self.stack.remove(run)
        stack = self.active.get()
        if run in stack:
            try:
                if token is None:
                    raise ValueError
                self.active.reset(token)
            except ValueError:  # ended from another context than the one that started it
                self.active.set(tuple(r for r in stack if r is not run))

    def current(self) -> _Run | None:
        """This context's innermost active run, else the process's latest."""
        stack = self.active.get()
        if stack:
            return stack[-1]
        with self.lock:
            return self.stack[-1] if self.stack else None

    def runs(self) -> list[_Run]:
        """The process's active runs, oldest first."""
        with self.lock:
            return list(self.stack)

    # -- starting over -----------------------------------------------------------
    def reset(self, *, end_runs: bool = False, close_stores: bool = True) -> None:
        """Put the process back to its start.

        Active runs are ended (FINISHED, innermost first) only when ``end_runs`` is true;
        otherwise they are forgotten: what they logged is flushed and they stop
        heartbeating, so they show as KILLED once stale.  The tracking URI, experiment
        and clients are forgotten, and so, with ``close_stores``, are the process's stores
        (closed first), so the next use of a URI opens it afresh.  The SIGTERM handler
        stays in place.
        """
        error: BaseException | None = None
        for run in reversed(self.runs()):
            try:
                run.end() if end_runs else run._detach()
            except Exception as exc:  # start over all the same; raise the first failure after
                error = error or exc
        with self.lock:
            self.stack.clear()
            # A new variable: no context, this one or another thread's, sees an old run.
            self.active = self._new_active()
            self.uri = None
            self.experiment = None
            self.experiment_name = None
            self.clients.clear()
        if close_stores:
            from .store import close_stores as close

            close()
        if error is not None:
            raise error

    def after_fork(self) -> None:
        # A forked child owns neither its parent's runs nor its clients (their stores
        # hold SQLite connections and file handles); the URI and experiment carry over.
        self.clients.clear()
        self.stack.clear()
        self.lock = threading.RLock()
        self.signals_installed = False


#: The process's fluent state.
STATE = FluentState()


def reset(*, end_runs: bool = False, close_stores: bool = True) -> None:
    """Put the process's fluent state back to its start: see :meth:`FluentState.reset`."""
    STATE.reset(end_runs=end_runs, close_stores=close_stores)


os.register_at_fork(after_in_child=STATE.after_fork)
