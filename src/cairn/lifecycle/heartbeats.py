"""When a run still has a writer: the one rule the trash purge, retention and gc share.

Cairn's clients heartbeat a running run, so a RUNNING run whose heartbeat is within the
heartbeat timeout has a writer still logging to it.  The runs that the mlflow client
makes through the server send no heartbeat and are stored as never stale (their
heartbeat is the end of time), so that they never read as KILLED; left RUNNING by a
crashed script, one would look alive for ever.  A heartbeat further ahead of now than a
day (more than any clock skew) is therefore no heartbeat.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["AHEAD_MS", "DAY_MS", "fresh", "last_beat"]

DAY_MS = 86_400_000
AHEAD_MS = DAY_MS  # a heartbeat further ahead than this is no heartbeat


def fresh(beat: Any, since_ms: int, now_ms: int) -> Any:
    """The SQL condition that the heartbeat column (or expression) ``beat`` says a writer
    was heard from at ``since_ms`` or later, and is a real heartbeat."""
    return sa.and_(beat >= since_ms, beat <= now_ms + AHEAD_MS)


def last_beat(beat: int | None, now_ms: int) -> int:
    """A run's last heartbeat in ms, 0 when it has none (never sent, or never stale)."""
    beat = int(beat or 0)
    return 0 if beat > now_ms + AHEAD_MS else beat
