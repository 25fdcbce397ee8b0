"""What the scoring app tells the rest of serving about each request it answered.

The app builds one :class:`Scored` per scoring request (``/invocations``, ``/v1/predict``)
after the answer is sent, and hands it to every :class:`Observer` (Prometheus counters,
the prediction log).  Observers run on the event loop: ``scored`` must not block (count,
or put on a bounded queue and return).  An observer that raises is logged and never
fails a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

PRIMARY = "primary"    # the arm serving the reference given to `cairn serve`
CANARY = "canary"      # --canary: a share of the traffic
STANDBY = "standby"    # --standby: loaded and warm, served only when asked for by header


@dataclass(frozen=True, slots=True)
class Scored:
    """One scoring request, answered."""

    request_id: str
    model: str              # the registered model's name
    version: str            # the version that answered (or would have)
    arm: str                # PRIMARY, CANARY or STANDBY
    route: str              # "/invocations" or "/v1/predict"
    status: int             # the HTTP status answered
    error_code: str | None  # None on 200
    started: float          # wall-clock time the request arrived (epoch seconds)
    latency_s: float        # from arrival to the answer being sent
    rows: int               # rows scored (0 when the request failed before predict)
    inputs: Any = None      # the inputs as given to predict (DataFrame, ndarray or dict)
    outputs: Any = None     # what predict returned, before JSON encoding


class Observer(Protocol):
    def scored(self, event: Scored) -> None:
        """Called once per scoring request, on the event loop; must not block."""

    def close(self) -> None:
        """Flush and stop (the server is shutting down)."""
