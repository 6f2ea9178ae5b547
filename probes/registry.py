"""The one list of probe types. Config validation, the scheduler and the CLI all read it."""

from __future__ import annotations

from typing import Any

from lakeprobe.probes import http_tpc, token_authz, webdav, xrootd, xrootd_tpc
from lakeprobe.probes.context import ProbeType

# Each type has its own params model; callers validate params with that type's model.
PROBE_TYPES: dict[str, ProbeType[Any, Any]] = {
    probe_type.name: probe_type
    for probe_type in (
        xrootd.PROBE_TYPE,
        webdav.PROBE_TYPE,
        http_tpc.PROBE_TYPE,
        xrootd_tpc.PROBE_TYPE,
        token_authz.PROBE_TYPE,
    )
}
