"""JSON text of a run's environment, memoised.

Every run of a process records the same few-KB environment; serialising it once
per distinct value (twice per run: journal and index) was a quarter of the cost
of creating a run.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Mapping

_lock = threading.Lock()
_last: tuple[Mapping[str, Any], str] | None = None


def env_text(env: Mapping[str, Any]) -> str:
    global _last
    memo = _last
    # Equality, not identity: each run gets its own copy.  (True == 1 could in principle
    # reuse another spelling; captured environments keep one type per key.)
    if memo is not None and (memo[0] is env or memo[0] == env):
        return memo[1]
    text = json.dumps(env, separators=(",", ":"), default=str)
    with _lock:
        _last = (env, text)
    return text
