"""Pure parsers of perfSONAR archive answers (shared/WIRE-FORMATS.md 2.2 and 2.4), no I/O.

Two sources, one result type: the perfSONAR 5 OpenSearch `_search` answer (documents as the
logstash pipeline writes them) and the esmond REST API (perfSONAR 4, and perfSONAR 5's elmond
layer): metadata, then `[{"ts", "val"}]` data. Units come out as the exporter's: bits/s, loss
ratio 0..1, seconds. perfSONAR 5 latency statistics are in histogram-bucket units (times
`test.spec.bucket-width` seconds, default 0.001); esmond's histograms and statistics are in ms.

Whatever an archive sends, a parser returns a value or raises ArchiveMalformed naming the
field path, never another exception: a bad answer is the archive's fault, not a crash.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_NUMBER = float(2**53)  # beyond exact float integers: no plausible measurement
DEFAULT_BUCKET_WIDTH = 0.001  # seconds, pscheduler's latencybg default
_MISSING = object()


class ArchiveMalformed(ValueError):
    """An archive answer that is not what the archive's schema promises."""


class Kind(enum.StrEnum):
    THROUGHPUT = "throughput"
    LATENCY = "latency"
    LOSS = "loss"
    TRACE = "trace"


# The pScheduler test types whose documents carry each kind (one latencybg run: both).
TEST_TYPES: dict[Kind, tuple[str, ...]] = {
    Kind.THROUGHPUT: ("throughput",),
    Kind.LATENCY: ("latencybg", "latency"),
    Kind.LOSS: ("latencybg", "latency"),
    Kind.TRACE: ("trace",),
}


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    """The newest measurement of one kind between two perfSONAR nodes. Values are None when
    the test failed (`succeeded` False, `error` says why) or the archive does not have them."""

    kind: Kind
    start_time: float  # unix seconds
    ip_version: int | None  # 4 or 6; None when the archive does not say
    source: str
    destination: str
    succeeded: bool = True
    error: str | None = None
    throughput_bps: float | None = None
    retransmits: int | None = None
    loss_ratio: float | None = None
    latency_seconds: float | None = None
    hop_count: int | None = None


def newest(results: Iterable[ArchiveResult], kinds: Iterable[Kind]) -> dict[Kind, ArchiveResult]:
    """The newest result of each wanted kind (kinds without one are absent)."""
    wanted, best = set(kinds), dict[Kind, ArchiveResult]()
    for result in results:
        current = best.get(result.kind)
        if result.kind in wanted and (current is None or result.start_time > current.start_time):
            best[result.kind] = result
    return best


# --- OpenSearch ---------------------------------------------------------------------------


def parse_search(body: bytes | str) -> list[ArchiveResult]:
    """Every result in a `_search` answer's hits (documents of other test types: none)."""
    answer = load_json(body)
    hits = _dig(_dig(answer, "", "hits", required=True), "hits", "hits", required=True)
    results: list[ArchiveResult] = []
    for index, hit in enumerate(_array(hits, "hits.hits")):
        source = _dig(hit, f"hits.hits[{index}]", "_source", required=True)
        results.extend(parse_document(source, f"hits.hits[{index}]._source"))
    return results


def parse_document(doc: object, where: str) -> list[ArchiveResult]:
    """The results one perfSONAR 5 document carries (a latencybg run: latency and loss)."""
    test_type = _text(_path(doc, where, "test.type"), f"{where}.test.type")
    kinds = [kind for kind, types in TEST_TYPES.items() if test_type in types]
    if not kinds:
        return []
    base = _common(doc, where)
    return [
        dataclasses.replace(
            base, kind=kind, **(_VALUES[kind](doc, where) if base.succeeded else {})
        )
        for kind in kinds
    ]


def _common(doc: object, where: str) -> ArchiveResult:
    """The fields every test type has, in a result of a placeholder kind."""
    version = _path(doc, where, "meta.ip_version", required=False)
    error = _path(doc, where, "result.error", required=False)
    start = _path(doc, where, "pscheduler.start_time")
    return ArchiveResult(
        kind=Kind.THROUGHPUT,
        start_time=iso_time(start, f"{where}.pscheduler.start_time"),
        ip_version=None if version is None else _ip_version(version, f"{where}.meta.ip_version"),
        source=_host(doc, where, "source"),
        destination=_host(doc, where, "destination"),
        succeeded=_bool(_path(doc, where, "result.succeeded"), f"{where}.result.succeeded"),
        error=None if error is None else _text(error, f"{where}.result.error"),
    )


def _throughput(doc: object, where: str) -> dict[str, Any]:
    retransmits = _path(doc, where, "result.retransmits", required=False)
    return {
        "throughput_bps": _number(
            _path(doc, where, "result.throughput"), f"{where}.result.throughput"
        ),
        "retransmits": None
        if retransmits is None
        else _count(retransmits, f"{where}.result.retransmits"),
    }


def _latency(doc: object, where: str) -> dict[str, Any]:
    """Median latency x bucket width: the stats are in bucket units (WIRE-FORMATS 2.2)."""
    median = _path(doc, where, "result.latency.median", required=False)
    if median is None:
        return {}
    width = _path(doc, where, "test.spec.bucket-width", required=False)
    seconds = DEFAULT_BUCKET_WIDTH if width is None else _positive(width, f"{where}.test.spec")
    return {"latency_seconds": _number(median, f"{where}.result.latency.median") * seconds}


def _loss(doc: object, where: str) -> dict[str, Any]:
    loss = _path(doc, where, "result.packets.loss", required=False)
    if loss is not None:
        return {"loss_ratio": _ratio(loss, f"{where}.result.packets.loss")}
    sent = _path(doc, where, "result.packets.sent", required=False)
    lost = _path(doc, where, "result.packets.lost", required=False)
    if sent is None or lost is None:
        return {}
    sent_count = _count(sent, f"{where}.result.packets.sent")
    lost_count = _count(lost, f"{where}.result.packets.lost")
    if sent_count == 0 or lost_count > sent_count:
        raise ArchiveMalformed(f"{where}.result.packets: {lost_count} lost of {sent_count} sent")
    return {"loss_ratio": lost_count / sent_count}


def _trace(doc: object, where: str) -> dict[str, Any]:
    return {"hop_count": _count(_path(doc, where, "result.hop.count"), f"{where}.result.hop.count")}


_VALUES = {
    Kind.THROUGHPUT: _throughput,
    Kind.LATENCY: _latency,
    Kind.LOSS: _loss,
    Kind.TRACE: _trace,
}


def _host(doc: object, where: str, side: str) -> str:
    """meta.<side>.hostname (the pipeline puts the IP there when reverse DNS fails)."""
    name = _path(doc, where, f"meta.{side}.hostname", required=False)
    if name is None:
        name = _path(doc, where, f"meta.{side}.ip")
        return _text(name, f"{where}.meta.{side}.ip")
    return _text(name, f"{where}.meta.{side}.hostname")


# --- esmond -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EsmondSeries:
    """One metadata record's event type: where its data is, for which IP version."""

    metadata_key: str
    source: str  # as asked (input-source), else the address
    destination: str
    ip_version: int | None  # from the source address; None when it is a name
    event_type: str
    base_uri: str
    summaries: tuple[tuple[str, str, str], ...]  # (summary-type, summary-window, uri)

    def uri(self, summary_type: str | None = None, window: str = "0") -> str:
        """The base URI, or that of a summary (None when the archive keeps none)."""
        if summary_type is None:
            return self.base_uri
        for kind, summary_window, uri in self.summaries:
            if (kind, summary_window) == (summary_type, window):
                return uri
        return ""


@dataclass(frozen=True, slots=True)
class EsmondPoint:
    ts: float
    val: object  # checked by the caller, which knows the event type


def parse_metadata(body: bytes | str, event_type: str) -> list[EsmondSeries]:
    """The series of `event_type` in an esmond metadata answer (a JSON array)."""
    found: list[EsmondSeries] = []
    for index, record in enumerate(_array(load_json(body), "")):
        where = f"[{index}]"
        events = _array(_dig(record, where, "event-types", required=True), f"{where}.event-types")
        for number, event in enumerate(events):
            at = f"{where}.event-types[{number}]"
            if (
                _text(_dig(event, at, "event-type", required=True), f"{at}.event-type")
                != event_type
            ):
                continue
            found.append(_series(record, where, event, at, event_type))
    return found


def _series(record: object, where: str, event: object, at: str, event_type: str) -> EsmondSeries:
    address = _text(_dig(record, where, "source", required=True), f"{where}.source")
    summaries = _dig(event, at, "summaries", required=False)
    return EsmondSeries(
        metadata_key=_text(_dig(record, where, "metadata-key", required=True), f"{where}.key"),
        source=_named(record, where, "source"),
        destination=_named(record, where, "destination"),
        ip_version=address_version(address),
        event_type=event_type,
        base_uri=_text(_dig(event, at, "base-uri", required=True), f"{at}.base-uri"),
        summaries=tuple(
            _summary(item, f"{at}.summaries[{n}]")
            for n, item in enumerate(_array(summaries or [], f"{at}.summaries"))
        ),
    )


def _named(record: object, where: str, side: str) -> str:
    name = _dig(record, where, f"input-{side}", required=False)
    if name is None:
        name = _dig(record, where, side, required=True)
    return _text(name, f"{where}.{side}")


def _summary(item: object, where: str) -> tuple[str, str, str]:
    return (
        _text(_dig(item, where, "summary-type", required=True), f"{where}.summary-type"),
        _text(_dig(item, where, "summary-window", required=True), f"{where}.summary-window"),
        _text(_dig(item, where, "uri", required=True), f"{where}.uri"),
    )


def address_version(address: str) -> int | None:
    """4 or 6 for an IP address; None for a host name (esmond reports addresses)."""
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None


def parse_data(body: bytes | str) -> list[EsmondPoint]:
    """An esmond data answer: `[{"ts": unix seconds, "val": ...}]`."""
    points: list[EsmondPoint] = []
    for index, item in enumerate(_array(load_json(body), "")):
        where = f"[{index}]"
        ts = _number(_dig(item, where, "ts", required=True), f"{where}.ts")
        points.append(EsmondPoint(ts, _dig(item, where, "val", required=True)))
    return points


def latest_point(points: Iterable[EsmondPoint]) -> EsmondPoint | None:
    return max(points, key=lambda point: point.ts, default=None)


def esmond_value(kind: Kind, event_type: str, val: object, where: str) -> dict[str, Any]:
    """ArchiveResult fields from one esmond value of `event_type`."""
    where = f"{where}.val"
    if event_type == "throughput":
        return {"throughput_bps": _number(val, where)}
    if event_type == "packet-retransmits":
        return {"retransmits": _count(val, where)}
    if event_type == "packet-loss-rate":
        return {"loss_ratio": _ratio(val, where)}
    if event_type == "packet-trace":
        return {"hop_count": _hops(val, where)}
    if event_type in ("histogram-owdelay", "histogram-rtt"):
        return {"latency_seconds": _histogram_median(val, where) / 1000.0}
    if event_type == "failures":
        error = _dig(val, where, "error", required=False)
        return {"succeeded": False, "error": None if error is None else _text(error, where)}
    raise ArchiveMalformed(f"{where}: no parser for event type {event_type!r:.40}")


def _hops(val: object, where: str) -> int:
    """The hop count of a packet-trace: the highest ttl (several queries per ttl)."""
    ttls = [
        _count(_dig(hop, f"{where}[{n}]", "ttl", required=True), f"{where}[{n}].ttl")
        for n, hop in enumerate(_array(val, where))
    ]
    return max(ttls, default=0)


def _histogram_median(val: object, where: str) -> float:
    """The median of a statistics summary (`{"median": ms}`) or of a histogram (ms -> count)."""
    if not isinstance(val, Mapping):
        raise ArchiveMalformed(f"{where}: expected an object, got {_show(val)}")
    if "median" in val:
        return _number(val["median"], f"{where}.median")
    buckets = sorted(
        (_number(_bucket(key, where), f"{where}.{key}"), _count(count, f"{where}.{key}"))
        for key, count in val.items()
    )
    total = sum(count for _, count in buckets)
    if total == 0:
        raise ArchiveMalformed(f"{where}: an empty histogram")
    seen = 0
    for bucket, count in buckets:
        seen += count
        if 2 * seen >= total:
            return bucket
    raise AssertionError("unreachable")


def _bucket(key: str, where: str) -> float:
    try:
        return float(key)
    except ValueError:
        raise ArchiveMalformed(f"{where}: histogram bucket {key!r:.40} is no number") from None


# --- checked access -----------------------------------------------------------------------


def load_json(body: bytes | str) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ArchiveMalformed("the answer is not JSON") from None


def iso_time(value: object, where: str) -> float:
    """Unix seconds of an ISO 8601 time (the pipeline's pscheduler.start_time); naive is UTC."""
    text = _text(value, where)
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise ArchiveMalformed(f"{where}: expected an ISO 8601 time, got {_show(value)}") from None


def _path(doc: object, where: str, dotted: str, required: bool = True) -> object:
    """The value at a dotted path of nested objects; None for null or (optional) absent."""
    node = doc
    for key in dotted.split("."):
        node = _dig(node, where, key, required)
        if node is None:
            return None
        where = f"{where}.{key}" if where else key
    return node


def _dig(node: object, where: str, key: str, required: bool) -> object:
    if not isinstance(node, Mapping):
        raise ArchiveMalformed(f"{where or 'answer'}: expected an object, got {_show(node)}")
    value = node.get(key, _MISSING)
    if value is _MISSING:
        if required:
            raise ArchiveMalformed(f"{_join(where, key)}: missing")
        return None
    return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _array(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise ArchiveMalformed(f"{where or 'answer'}: expected an array, got {_show(value)}")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ArchiveMalformed(f"{where}: expected a string, got {_show(value)}")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ArchiveMalformed(f"{where}: expected true or false, got {_show(value)}")
    return value


def _number(value: object, where: str) -> float:
    """A finite, non-negative number no larger than MAX_NUMBER (no bool: JSON true is no 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArchiveMalformed(f"{where}: expected a number, got {_show(value)}")
    if isinstance(value, int) and abs(value) > MAX_NUMBER:  # float() of a huge int overflows
        raise ArchiveMalformed(f"{where}: {_show(value)} is out of range")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= MAX_NUMBER:
        raise ArchiveMalformed(f"{where}: {_show(value)} is out of range")
    return number


def _count(value: object, where: str) -> int:
    number = _number(value, where)
    if not number.is_integer():
        raise ArchiveMalformed(f"{where}: expected a whole number, got {_show(value)}")
    return int(number)


def _ratio(value: object, where: str) -> float:
    number = _number(value, where)
    if number > 1:
        raise ArchiveMalformed(f"{where}: a ratio above 1: {_show(value)}")
    return number


def _positive(value: object, where: str) -> float:
    number = _number(value, f"{where}.bucket-width")
    if number == 0:
        raise ArchiveMalformed(f"{where}.bucket-width: must be above 0")
    return number


def _ip_version(value: object, where: str) -> int:
    if isinstance(value, bool) or value not in (4, 6, "4", "6"):
        raise ArchiveMalformed(f"{where}: expected 4 or 6, got {_show(value)}")
    return int(value)


def _show(value: object) -> str:
    """A short, safe rendering of an offending value for an error message."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "a huge number"  # str() of a 5000-digit int raises ValueError
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
