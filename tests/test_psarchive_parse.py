"""The perfSONAR archive parsers (probes/clients/psarchiveparse.py) on real-shaped answers
(WIRE-FORMATS 2.2, 2.4), and fuzzed: whatever an archive sends, a parser returns a value or
raises ArchiveMalformed naming the field, never another exception."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakeprobe.probes.clients.psarchiveparse import (
    ArchiveMalformed,
    Kind,
    esmond_value,
    newest,
    parse_data,
    parse_metadata,
    parse_search,
)

FUZZ = settings(max_examples=200, deadline=None, derandomize=True)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)  # fmt: skip
HOSTS = st.sampled_from(["ps-bw.a.example", "ps-lat.b.example", "192.0.2.7", "2001:db8::9"])


def document(test_type: str, version: int, start: str, result: dict[str, Any]) -> dict[str, Any]:
    """A document as the perfSONAR 5 logstash pipeline writes it."""
    return {
        "pscheduler": {"start_time": start, "end_time": start, "tool": "iperf3"},
        "test": {"type": test_type, "spec": {"bucket-width": 0.0001, "ip-version": version}},
        "meta": {"source": {"hostname": "ps-bw.a.example", "ip": "192.0.2.1"},
                 "destination": {"hostname": "ps-bw.b.example", "ip": "192.0.2.2"},
                 "ip_version": version},
        "result": {"succeeded": True, **result},
    }  # fmt: skip


def search(*docs: dict[str, Any]) -> bytes:
    hits = [{"_index": "x", "_id": str(n), "_source": doc} for n, doc in enumerate(docs)]
    return json.dumps({"took": 1, "hits": {"total": {"value": len(hits)}, "hits": hits}}).encode()


THROUGHPUT = document(
    "throughput", 4, "2024-05-01T12:00:00Z", {"throughput": 9.4e9, "retransmits": 3}
)
LATENCY_RESULT = {"latency": {"median": 52.0}, "packets": {"loss": 0.002, "sent": 600}}
LATENCY = document("latencybg", 6, "2024-05-01T12:05:00.250Z", LATENCY_RESULT)
TRACE = document("trace", 4, "2024-05-01T11:00:00+02:00", {"hop": {"count": 9}})


def test_real_documents() -> None:
    """Each kind's value in the exporter's units: bucket units x bucket-width, ISO times."""
    found = newest(parse_search(search(THROUGHPUT, LATENCY, TRACE)), Kind)
    assert found[Kind.THROUGHPUT].throughput_bps == 9.4e9
    assert found[Kind.THROUGHPUT].retransmits == 3
    assert found[Kind.THROUGHPUT].start_time == 1714564800.0
    assert found[Kind.LATENCY].latency_seconds == pytest.approx(0.0052)
    assert found[Kind.LOSS].loss_ratio == 0.002
    assert found[Kind.LOSS].ip_version == 6
    assert found[Kind.TRACE].hop_count == 9
    assert found[Kind.TRACE].start_time == 1714554000.0  # +02:00 honoured


def test_default_bucket_width_and_failed_run() -> None:
    """No bucket-width: 1 ms buckets. A failed run: its error, no values."""
    doc = copy.deepcopy(LATENCY)
    del doc["test"]["spec"]["bucket-width"]
    failed = document("throughput", 4, "2024-05-01T13:00:00Z", {"error": "no route"})
    failed["result"]["succeeded"] = False
    found = newest(parse_search(search(doc, failed)), Kind)
    assert found[Kind.LATENCY].latency_seconds == pytest.approx(0.052)
    assert (found[Kind.THROUGHPUT].succeeded, found[Kind.THROUGHPUT].error) == (False, "no route")
    assert found[Kind.THROUGHPUT].throughput_bps is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x", "hits.hits[1]._source.result.throughput: expected a number, got 'x'"),
        (True, "hits.hits[1]._source.result.throughput: expected a number, got True"),
        (10**400, "hits.hits[1]._source.result.throughput: a huge number is out of range"),
        (-1, "hits.hits[1]._source.result.throughput: -1 is out of range"),
    ],
)
def test_bad_value_names_its_path(value: object, message: str) -> None:
    doc = copy.deepcopy(THROUGHPUT)
    doc["result"]["throughput"] = value
    with pytest.raises(ArchiveMalformed) as raised:
        parse_search(search(TRACE, doc))
    assert str(raised.value) == message


@pytest.mark.parametrize("body", [b"", b"{", b"NaN", b"[" * 100000, b"\xff", b"1" * 5000])
def test_not_json(body: bytes) -> None:
    """Broken, deeply nested or oversized JSON: ArchiveMalformed."""
    with pytest.raises(ArchiveMalformed):
        parse_search(body)


def test_nan_and_infinity_rejected() -> None:
    """Python's json reads NaN and Infinity; they are no measurement."""
    for word in ("NaN", "Infinity", "1e999"):
        body = search(THROUGHPUT).replace(b"9400000000.0", word.encode())
        with pytest.raises(ArchiveMalformed, match="throughput"):
            parse_search(body)


@given(st.integers(4, 6).filter(lambda v: v != 5), st.floats(0, 1e12), st.integers(0, 10**6),
       st.floats(0, 1), st.floats(0, 1e4), st.integers(0, 64),
       st.integers(1_000_000_000, 4_000_000_000))  # fmt: skip
@FUZZ
def test_round_trip(
    version: int, bps: float, retrans: int, loss: float, median: float, hops: int, ts: int
) -> None:
    """Real-shaped documents of any plausible values come back exactly, ip_version kept."""
    iso = datetime.fromtimestamp(ts, UTC).isoformat()
    docs = [
        document("throughput", version, iso, {"throughput": bps, "retransmits": retrans}),
        document("latency", version, iso,
                 {"latency": {"median": median}, "packets": {"loss": loss}}),
        document("trace", version, iso, {"hop": {"count": hops}}),
    ]  # fmt: skip
    found = newest(parse_search(search(*docs)), Kind)
    assert {result.ip_version for result in found.values()} == {version}
    assert {result.start_time for result in found.values()} == {float(ts)}
    assert (found[Kind.THROUGHPUT].throughput_bps, found[Kind.THROUGHPUT].retransmits) == (
        bps,
        retrans,
    )
    assert found[Kind.LOSS].loss_ratio == loss
    assert found[Kind.LATENCY].latency_seconds == pytest.approx(median * 0.0001)
    assert found[Kind.TRACE].hop_count == hops


@given(JSON)
@FUZZ
def test_arbitrary_json_only_malformed(value: object) -> None:
    """Any JSON value, to every parser: a value or ArchiveMalformed."""
    body = json.dumps(value)
    for parse in (parse_search, lambda b: parse_metadata(b, "throughput"), parse_data):
        with contextlib.suppress(ArchiveMalformed):
            parse(body)
    for event in ("throughput", "packet-trace", "histogram-owdelay", "failures", "nope"):
        with contextlib.suppress(ArchiveMalformed):
            esmond_value(Kind.LATENCY, event, value, "v")


def _replace_leaf(node: Any, choice: int, value: object) -> Any:
    """The document with its `choice`-th leaf (mod the leaf count) replaced by `value`."""
    leaves: list[tuple[Any, Any]] = []

    def walk(item: Any) -> None:
        for key, child in list(item.items() if isinstance(item, dict) else enumerate(item)):
            if isinstance(child, dict | list) and child:
                walk(child)
            else:
                leaves.append((item, key))

    walk(node)
    parent, key = leaves[choice % len(leaves)]
    parent[key] = value
    return node


@given(st.sampled_from([THROUGHPUT, LATENCY, TRACE]), st.integers(0, 100), JSON)
@FUZZ
def test_mutated_documents_only_malformed(doc: dict[str, Any], choice: int, value: object) -> None:
    """A real document with any one field replaced by any JSON value: never a crash."""
    mutated = _replace_leaf(copy.deepcopy(doc), choice, value)
    with contextlib.suppress(ArchiveMalformed):
        parse_search(search(mutated))


@given(st.binary(max_size=200))
@FUZZ
def test_arbitrary_bytes_only_malformed(body: bytes) -> None:
    for parse in (parse_search, lambda b: parse_metadata(b, "throughput"), parse_data):
        with contextlib.suppress(ArchiveMalformed):
            parse(body)


@given(HOSTS, HOSTS)
@FUZZ
def test_esmond_metadata_versions(source: str, destination: str) -> None:
    """esmond reports addresses: the IP version is the source address's; a name gives None."""
    record = {"metadata-key": "k1", "source": source, "destination": destination,
              "input-source": "ps-bw.a.example", "input-destination": "ps-bw.b.example",
              "event-types": [{"event-type": "throughput", "base-uri": "/esmond/k1/throughput/base",
                               "summaries": []}]}  # fmt: skip
    (series,) = parse_metadata(json.dumps([record]), "throughput")
    assert series.ip_version == {"192.0.2.7": 4, "2001:db8::9": 6}.get(source)
    assert (series.source, series.base_uri) == ("ps-bw.a.example", "/esmond/k1/throughput/base")


def test_esmond_values() -> None:
    """ms histograms and statistics to seconds; traces to hop counts; failures."""
    assert esmond_value(Kind.LATENCY, "histogram-owdelay", {"median": 34.4}, "v") == {
        "latency_seconds": pytest.approx(0.0344)
    }
    histogram = {"10.0": 1, "20.0": 5, "30.0": 1}
    assert esmond_value(Kind.LATENCY, "histogram-owdelay", histogram, "v")["latency_seconds"] == (
        pytest.approx(0.02)
    )
    trace = [{"ttl": 1, "query": 1}, {"ttl": 1, "query": 2}, {"ttl": 3, "query": 1}]
    assert esmond_value(Kind.TRACE, "packet-trace", trace, "v") == {"hop_count": 3}
    assert esmond_value(Kind.LOSS, "failures", {"error": "x"}, "v") == {
        "succeeded": False, "error": "x",
    }  # fmt: skip
    points = parse_data(b'[{"ts": 1397421672, "val": 7016320000.0}]')
    assert (points[0].ts, points[0].val) == (1397421672.0, 7016320000.0)
    with pytest.raises(ArchiveMalformed, match=r"^\[0\]\.ts: expected a number"):
        parse_data(b'[{"ts": "1", "val": 1}]')
