"""Durations as the config and the command line spell them: 30, '500ms', '30s', '5m', '1h'.
Apart from config/types.py so that `lakeprobe run --timeout` needs no pydantic."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# The longest interval or timeout that means anything; it also keeps every duration well
# inside what datetime.timedelta and the event loop's clock arithmetic can hold.
MAX_DURATION_DAYS = 365
MAX_DURATION_SECONDS = MAX_DURATION_DAYS * 86400.0


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like '500ms', '30s', '5m', '1h': finite, greater
    than zero and at most MAX_DURATION_DAYS days."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30, '30s', '5m'")
    if isinstance(value, int | float):
        seconds = _float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    else:
        raise ValueError(f"expected a duration like 30, '30s', '5m', got {shown(value)}")
    if math.isnan(seconds):
        raise ValueError("expected a duration like 30, '30s', '5m', got nan")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(
            f"a duration must be at most {MAX_DURATION_DAYS} days "
            f"({MAX_DURATION_SECONDS:.0f} s), got {_seconds_shown(value, seconds)}"
        )
    return seconds


def _seconds_shown(value: object, seconds: float) -> str:
    if math.isfinite(seconds):
        return f"{seconds:.0f} s"
    return "a number beyond float range" if isinstance(value, int) else "infinity"


def _float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond float range: too long a duration
        return math.inf


def shown(value: object) -> str:
    """A repr for messages: a long value shows its start only."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
