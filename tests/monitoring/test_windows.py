"""Window lengths as users give them: text, seconds or a timedelta; anything else is a clear
InvalidArgument, never another exception."""

import datetime as dt
import math

import pytest

from cairn.errors import InvalidArgument
from cairn.monitoring.windows import parse_window


@pytest.mark.parametrize("given, seconds", [
    ("30s", 30), ("15m", 900), (" 1H ", 3600), ("1d", 86400), ("2w", 1_209_600),
    (60, 60), (60.0, 60), (dt.timedelta(hours=2), 7200)])
def test_durations(given, seconds):
    assert parse_window(given) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("given", [
    math.inf, -math.inf, math.nan, 0, -5, 0.5, 1.5, 366 * 86400 + 1, True, None, "1", "h",
    "1.5h", "1y", "", "\ud800", "9" * 400 + "s", "9" * 5000 + "h", dt.timedelta(seconds=-1), [60]])
def test_what_is_not_a_window(given):
    with pytest.raises(InvalidArgument, match="window"):
        parse_window(given)
