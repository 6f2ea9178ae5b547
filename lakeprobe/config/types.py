"""Value types used in the config: durations, names, listen addresses."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

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
        raise ValueError(f"expected a duration like 30, '30s', '5m', got {_shown(value)}")
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


def _shown(value: object) -> str:
    """A repr for messages: a long value shows its start only."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


Duration = Annotated[float, BeforeValidator(parse_duration)]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{_shown(value)} is not a valid name (letters, digits, '_', '.', '-'; up to 64; "
            "starting with a letter or digit)"
        )
    return value


# Names become metric label values: keep them short and plain.
Name = Annotated[str, AfterValidator(check_name)]


_HOST_PATTERN = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")


def check_host_pattern(value: str) -> str:
    """A host name or an fnmatch pattern of one ('*.desy.de'), or an IP address: lower case,
    without scheme, port or path."""
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    problem = ""
    if "/" in value or "@" in value:
        problem = " (no scheme, user or path)"
    elif ":" in value:
        problem = " (no port)"
    elif value and not any(c.isalnum() for c in value):
        problem = " (it matches every host)"
    if problem or not _HOST_PATTERN.match(value):
        raise ValueError(
            f"expected a host name pattern like '*.desy.de', got {_shown(value)}{problem}"
        )
    return value.lower()


# Hosts an HTTP redirect may lead to (plan.make_target puts them in Target.redirect_hosts).
HostPattern = Annotated[str, AfterValidator(check_host_pattern)]


def _small_int(text: str) -> int | None:
    """An ASCII decimal of up to 9 digits ('²' and 5000-digit strings are not numbers here)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def parse_listen(value: object) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"expected HOST:PORT, got {_shown(value)}")
    host, _, port = value.rpartition(":")
    number = _small_int(port)
    if number is None or not 0 < number < 65536:
        raise ValueError(f"invalid port in {_shown(value)}")
    if not host:
        raise ValueError(f"missing host in {_shown(value)} (use 0.0.0.0 to listen everywhere)")
    return value


ListenAddress = Annotated[str, BeforeValidator(parse_listen)]


def parse_shard(value: object) -> str:
    """'i/N' with 0 <= i < N: this daemon runs the jobs whose hash falls in shard i of N."""
    text = str(value)
    first, _, second = text.partition("/")
    index, count = _small_int(first), _small_int(second)
    if index is None or count is None or not 0 <= index < count:
        raise ValueError(f"expected 'i/N' with 0 <= i < N, got {_shown(text)}")
    return f"{index}/{count}"


Shard = Annotated[str, BeforeValidator(parse_shard)]

# The ordinal a StatefulSet gives its pods: `lakeprobe-3` (or `lakeprobe-3.lakeprobe.ns.svc`).
_ORDINAL = re.compile(r"-(\d{1,9})$")
HOSTNAME_SHARD = "hostname/"


def shard_of_host(value: str, hostname: str) -> str:
    """'hostname/N' -> 'i/N', i from the trailing '-<digits>' of the host name, so each
    StatefulSet replica runs its own shard and scaling is one value (the replica count)."""
    count = _small_int(value.removeprefix(HOSTNAME_SHARD))
    if count is None or count == 0:
        raise ValueError(f"expected 'hostname/N' with N > 0, got {_shown(value)}")
    ordinal = _ORDINAL.search(hostname.split(".", 1)[0])
    if ordinal is None:
        raise ValueError(
            f"{value}: host name {_shown(hostname)} ends in no ordinal '-<digits>' "
            "(a StatefulSet pod's, like 'lakeprobe-3'); give the shard as 'i/N'"
        )
    index = int(ordinal[1])
    if index >= count:
        raise ValueError(
            f"{value}: ordinal {index} of host {_shown(hostname)} is not below {count}: "
            "N must be the StatefulSet's replica count"
        )
    return f"{index}/{count}"
