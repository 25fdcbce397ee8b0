"""JSON responses of dataclasses and dicts, with NaN and infinities spelled as strings."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from fastapi.responses import JSONResponse


def finite(value: Any) -> Any:
    """JSON has no NaN or infinities: they travel as "NaN", "Infinity", "-Infinity"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def out(value: Any, status_code: int = 200) -> JSONResponse:
    """``value`` (a dataclass, a list of them, or plain data) as a JSON response."""
    def conv(v: Any) -> Any:
        return dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v

    data = [conv(v) for v in value] if isinstance(value, list) else conv(value)
    return JSONResponse(finite(json.loads(json.dumps(data, default=str))), status_code=status_code)
