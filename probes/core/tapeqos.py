"""A target's tape QoS class: what the tape-recall probe runs against (Target.tape)."""

from __future__ import annotations

from dataclasses import dataclass

TAPE_PROTOCOLS = ("xrootd", "tape-rest")


@dataclass(frozen=True, slots=True)
class TapeFile:
    """A tape-resident reference file, and its adler32 when known (8 hex digits)."""

    path: str
    adler32: str | None = None


@dataclass(frozen=True, slots=True)
class TapeQos:
    """An endpoint's tape QoS class, as configured (EndpointConfig.tape): how to reach its
    tape interface, what to recall, and what it promises. Durations in seconds."""

    protocol: str  # "xrootd": prepare over root://; "tape-rest": the WLCG Tape REST API
    files: tuple[TapeFile, ...] = ()  # recalled in turn
    archive_dir: str | None = None  # a tape-class directory the probe may write to
    rest_api: str | None = None  # the API URI (.../api/v1); None: discovered
    discovery_url: str | None = None  # where /.well-known/wlcg-tape-rest-api is; None: url
    may_evict: bool = False  # evict (XRootD) a recalled file so it can be recalled again
    disk_lifetime: float = 3600.0  # asked for in each Tape REST stage (ISO-8601 on the wire)
    online_warning: float = 3600.0
    online_critical: float = 4 * 3600.0
    archive_warning: float = 8 * 3600.0
    archive_critical: float = 24 * 3600.0
    abandon_after: float = 2 * 86400.0  # an older request is cancelled and released
    poll_max_interval: float = 300.0  # capped exponential backoff between polls, as gfal2
