"""Value types used in the config: durations, names, listen addresses."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like '500ms', '30s', '5m', '1h'."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30, '30s', '5m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    else:
        raise ValueError(f"expected a duration like 30, '30s', '5m', got {value!r}")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid name (letters, digits, '_', '.', '-'; up to 64; "
            "starting with a letter or digit)"
        )
    return value


# Names become metric label values: keep them short and plain.
Name = Annotated[str, AfterValidator(check_name)]


def parse_listen(value: object) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid port in {value!r}")
    if not host:
        raise ValueError(f"missing host in {value!r} (use 0.0.0.0 to listen everywhere)")
    return value


ListenAddress = Annotated[str, BeforeValidator(parse_listen)]


def parse_shard(value: object) -> str:
    """'i/N' with 0 <= i < N: this daemon runs the jobs whose hash falls in shard i of N."""
    text = str(value)
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit() or not 0 <= int(index) < int(count):
        raise ValueError(f"expected 'i/N' with 0 <= i < N, got {text!r}")
    return f"{int(index)}/{int(count)}"


Shard = Annotated[str, BeforeValidator(parse_shard)]
