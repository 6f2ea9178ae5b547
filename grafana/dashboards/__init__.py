"""lakeprobe's Grafana dashboards, built with grafana-foundation-sdk (see grafana/README.md)."""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders import dashboard as db

from . import endpoint, integrity, matrix, overview, pair, tape, tokens

# uid -> builder. The uids are stable: links between the dashboards and bookmarks use them.
DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
    overview.UID: overview.build,
    matrix.UID: matrix.build,
    pair.UID: pair.build,
    endpoint.UID: endpoint.build,
    tokens.UID: tokens.build,
    tape.UID: tape.build,
    integrity.UID: integrity.build,
}
