"""Which loaded version answers a request: the primary arm, a canary share, or the standby.

A deployment has a primary arm (the reference given to ``cairn serve``), optionally a
canary arm that takes a share of the traffic (``--canary models:/NAME@challenger=10%``),
and optionally a standby arm (``--standby @green``): loaded, warm and following its own
alias, but answering only requests that ask for it (``Cairn-Arm: standby``).  Blue-green
is the standby plus an alias move: when the primary's alias moves to the version the
standby already holds, the switch takes no load at all.

A request sent with a ``Cairn-Routing-Key`` header is routed by a hash of the key, so
one caller (a user id, a session) stays on one arm while the share stays the same;
without it the choice is random.  Per-arm counts, errors and latency are kept here too
(cheap integer updates on the event loop) for ``GET /v1/status``.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument
from .events import CANARY, PRIMARY, STANDBY
from .holder import ModelHolder, Served

ARMS = (PRIMARY, CANARY, STANDBY)
_SHARE = re.compile(r"^(.+)=\s*([0-9]*\.?[0-9]+)\s*(%?)$")


def parse_canary(text: str) -> tuple[str, float]:
    """``models:/NAME@ALIAS=10%`` (or ``=0.1``) as ``(reference, share)`` with 0 < share < 1."""
    match = _SHARE.match(text.strip())
    if not match:
        raise InvalidArgument(f"--canary {text!r}: give REF=SHARE, such as "
                              "models:/fraud@challenger=10%", value=text)
    ref, number, percent = match.groups()
    share = float(number) / (100 if percent else 1)
    if not 0 < share < 1:
        raise InvalidArgument(f"--canary {text!r}: the share must be over 0 and under 100%",
                              value=text)
    return ref.strip(), share


def key_share(key: str) -> float:
    """A routing key's place in [0, 1): stable across processes and restarts."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass
class ArmStats:
    requests: int = 0
    errors: int = 0     # answers with status >= 500 (the model's or the server's fault)
    rejected: int = 0   # 4xx answers (the caller's fault)
    latency_s: float = 0.0
    rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        mean = self.latency_s / self.requests if self.requests else None
        return {"requests": self.requests, "errors": self.errors, "rejected": self.rejected,
                "rows": self.rows, "mean_latency_ms": None if mean is None else mean * 1000}


@dataclass
class Arm:
    name: str
    ref: str
    holder: ModelHolder
    share: float = 0.0
    stats: ArmStats = field(default_factory=ArmStats)


class Router:
    """The arms of one deployment and the rule that picks one for a request."""

    def __init__(self, primary: Arm, canary: Arm | None = None,
                 standby: Arm | None = None) -> None:
        self.primary = primary
        self.canary = canary
        self.standby = standby
        self.arms = {a.name: a for a in (primary, canary, standby) if a is not None}

    def pick(self, asked: str | None, key: str | None) -> Arm:
        """The arm for a request that asked for ``asked`` (the ``Cairn-Arm`` header) and
        gave routing key ``key``; an arm asked for by name answers when it exists."""
        if asked:
            arm = self.arms.get(asked.strip().lower())
            if arm is not None:
                return arm
        canary = self.canary
        if canary is None:
            return self.primary
        place = key_share(key) if key else random.random()
        return canary if place < canary.share else self.primary

    def loaded(self) -> list[Served]:
        return [a.holder.current for a in self.arms.values()]

    def status(self) -> dict[str, Any]:
        canary = self.canary.share if self.canary is not None else 0.0
        shares = {PRIMARY: 1.0 - canary, CANARY: canary, STANDBY: 0.0}
        return {name: {"ref": arm.ref, "version": arm.holder.current.version.version,
                       "share": shares[name],
                       "fast_path": arm.holder.current.fast_path,
                       "switches": arm.holder.switches, **arm.stats.as_dict()}
                for name, arm in self.arms.items()}
