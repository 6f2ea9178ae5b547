"""Value types used in the config: durations, names, listen addresses."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

from lakeprobe.config.durations import parse_duration, shown

Duration = Annotated[float, BeforeValidator(parse_duration)]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{shown(value)} is not a valid name (letters, digits, '_', '.', '-'; up to 64; "
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
            f"expected a host name pattern like '*.desy.de', got {shown(value)}{problem}"
        )
    return value.lower()


# Hosts an HTTP redirect may lead to (plan.make_target puts them in Target.redirect_hosts).
HostPattern = Annotated[str, AfterValidator(check_host_pattern)]


def _small_int(text: str) -> int | None:
    """An ASCII decimal of up to 9 digits ('²' and 5000-digit strings are not numbers here)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def parse_listen(value: object) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"expected HOST:PORT, got {shown(value)}")
    host, _, port = value.rpartition(":")
    number = _small_int(port)
    if number is None or not 0 < number < 65536:
        raise ValueError(f"invalid port in {shown(value)}")
    if not host:
        raise ValueError(f"missing host in {shown(value)} (use 0.0.0.0 to listen everywhere)")
    return value


ListenAddress = Annotated[str, BeforeValidator(parse_listen)]


def parse_shard(value: object) -> str:
    """'i/N' with 0 <= i < N: this daemon runs the jobs whose hash falls in shard i of N."""
    text = str(value)
    first, _, second = text.partition("/")
    index, count = _small_int(first), _small_int(second)
    if index is None or count is None or not 0 <= index < count:
        raise ValueError(f"expected 'i/N' with 0 <= i < N, got {shown(text)}")
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
        raise ValueError(f"expected 'hostname/N' with N > 0, got {shown(value)}")
    ordinal = _ORDINAL.search(hostname.split(".", 1)[0])
    if ordinal is None:
        raise ValueError(
            f"{value}: host name {shown(hostname)} ends in no ordinal '-<digits>' "
            "(a StatefulSet pod's, like 'lakeprobe-3'); give the shard as 'i/N'"
        )
    index = int(ordinal[1])
    if index >= count:
        raise ValueError(
            f"{value}: ordinal {index} of host {shown(hostname)} is not below {count}: "
            "N must be the StatefulSet's replica count"
        )
    return f"{index}/{count}"
