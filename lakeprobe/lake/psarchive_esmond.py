"""The esmond view of the perfSONAR archive double's documents, as perfSONAR 5's elmond gives it.

One metadata record per (test type, source, destination, IP version), keyed by a hash; its
event types (shared/WIRE-FORMATS.md 2.4) answer from the documents' fields: `throughput`,
`packet-retransmits`, `histogram-owdelay` (ms histogram, `statistics/0` summary),
`packet-loss-rate`, `packet-trace`, and `failures` for runs that did not succeed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from lakeprobe.lake.psarchive_query import Document, lookup, parse_time

PREFIX = "/esmond/perfsonar/archive"
EVENT_TYPES = {
    "throughput": ("throughput", "packet-retransmits", "failures"),
    "latencybg": ("histogram-owdelay", "packet-loss-rate", "failures"),
    "latency": ("histogram-owdelay", "packet-loss-rate", "failures"),
    "trace": ("packet-trace", "failures"),
}


def _latency_ms(doc: Document) -> float:
    """Bucket units x bucket width (s) -> ms, as esmond's histograms are."""
    width = lookup(doc, "test.spec.bucket-width") or 0.001
    return float(lookup(doc, "result.latency.median")) * width * 1000.0


def _trace(doc: Document) -> list[dict[str, Any]]:
    hops = int(lookup(doc, "result.hop.count"))
    return [{"ttl": ttl, "query": 1, "ip": f"192.0.2.{ttl}", "rtt": 0.5, "mtu": 9000,
             "success": 1, "error_message": None} for ttl in range(1, hops + 1)]  # fmt: skip


# event type -> the value of one successful document (None: the document has none)
_VALUES: dict[str, Callable[[Document], Any]] = {
    "throughput": lambda doc: lookup(doc, "result.throughput"),
    "packet-retransmits": lambda doc: lookup(doc, "result.retransmits"),
    "packet-loss-rate": lambda doc: lookup(doc, "result.packets.loss"),
    "histogram-owdelay": lambda doc: {f"{_latency_ms(doc):.3f}": 600},
    "packet-trace": _trace,
}


class EsmondView:
    def __init__(self, documents: list[Document], now: float) -> None:
        self.now = now
        self.groups: dict[str, list[Document]] = {}
        for doc in documents:
            test_type = lookup(doc, "test.type")
            if test_type in EVENT_TYPES:
                self.groups.setdefault(group_key(doc), []).append(doc)

    def metadata(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        records = []
        for key, docs in self.groups.items():
            docs = self._in_time(docs, query)
            newest = max(docs, key=_start) if docs else None
            if newest is not None and self._selected(newest, query):
                records.append(_record(key, newest))
        return records

    def data(self, key: str, event: str, tail: str, query: Mapping[str, str]) -> list[Any]:
        docs = self.groups.get(key)
        if docs is None or event not in EVENT_TYPES[str(lookup(docs[0], "test.type"))]:
            raise LookupError(key)
        statistics = tail.strip("/") == "statistics/0" and event == "histogram-owdelay"
        if tail.strip("/") != "base" and not statistics:
            raise LookupError(tail)
        points = []
        for doc in sorted(self._in_time(docs, query), key=_start):
            value = _value(doc, event)
            if value is not None and statistics:
                ((ms, _),) = value.items()
                value = {"median": float(ms), "mean": float(ms), "minimum": float(ms)}
            if value is not None:
                points.append({"ts": int(_start(doc)), "val": value})
        return points

    def _in_time(self, docs: list[Document], query: Mapping[str, str]) -> list[Document]:
        """`time-range` (seconds back from now) or `time-start`/`time-end` (unix seconds)."""
        low, high = float("-inf"), float("inf")
        try:
            if "time-range" in query:
                low = self.now - float(query["time-range"])
            low = float(query.get("time-start", low))
            high = float(query.get("time-end", high))
        except ValueError:
            raise ValueError("time-range, time-start and time-end are numbers") from None
        return [doc for doc in docs if low <= _start(doc) <= high]

    @staticmethod
    def _selected(doc: Document, query: Mapping[str, str]) -> bool:
        """event-type, and source/destination as a host name or an address."""
        wanted = query.get("event-type")
        if wanted is not None and wanted not in EVENT_TYPES[str(lookup(doc, "test.type"))]:
            return False
        for side, parameter in (("source", "source"), ("destination", "destination")):
            names = {lookup(doc, f"meta.{side}.hostname"), lookup(doc, f"meta.{side}.ip")}
            if parameter in query and query[parameter] not in names:
                return False
        return True


def group_key(doc: Document) -> str:
    parts = ("test.type", "meta.source.hostname", "meta.destination.hostname", "meta.ip_version")
    text = "\0".join(str(lookup(doc, part)) for part in parts)
    return hashlib.sha1(text.encode()).hexdigest()[:32]


def _record(key: str, doc: Document) -> dict[str, Any]:
    events = []
    for event in EVENT_TYPES[str(lookup(doc, "test.type"))]:
        base = f"{PREFIX}/{key}/{event}/base"
        summaries = []
        if event == "histogram-owdelay":
            uri = f"{PREFIX}/{key}/{event}/statistics/0"
            summaries.append({"summary-type": "statistics", "summary-window": "0", "uri": uri})
        events.append({"event-type": event, "base-uri": base, "summaries": summaries,
                       "time-updated": int(_start(doc))})  # fmt: skip
    return {
        "metadata-key": key,
        "uri": f"{PREFIX}/{key}/",
        "subject-type": "point-to-point",
        "source": lookup(doc, "meta.source.ip"),
        "destination": lookup(doc, "meta.destination.ip"),
        "input-source": lookup(doc, "meta.source.hostname"),
        "input-destination": lookup(doc, "meta.destination.hostname"),
        "measurement-agent": lookup(doc, "meta.observer.ip"),
        "tool-name": lookup(doc, "pscheduler.tool"),
        "ip-transport-protocol": "tcp" if lookup(doc, "test.type") == "throughput" else "udp",
        "event-types": events,
    }


def _value(doc: Document, event: str) -> Any:
    succeeded = lookup(doc, "result.succeeded") is True
    if event == "failures":
        return None if succeeded else {"error": lookup(doc, "result.error")}
    return _VALUES[event](doc) if succeeded else None


def _start(doc: Document) -> float:
    return parse_time(lookup(doc, "pscheduler.start_time"))
