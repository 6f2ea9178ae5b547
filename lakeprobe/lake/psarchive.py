"""A test double of a perfSONAR 5 measurement archive (OpenSearch + esmond/elmond): NOT one.

Why: OpenSearch cannot be installed here, and a perfSONAR archive is OpenSearch behind Apache
plus logstash. The double holds documents in the real perfSONAR 5 schema (the logstash
pipeline's fields, shared/WIRE-FORMATS.md 2.2) and answers, over https (or http) on 127.0.0.1:
- `GET|POST /opensearch/{index}/_search`: the query body is evaluated for real
  (psarchive_query: term/terms/range/bool filters, now-N date math, sort, size, _source),
  so a wrong query gets wrong answers; indices `pscheduler_<test type>`.
- esmond, as perfSONAR 5's elmond serves it from the same documents:
  `GET /esmond/perfsonar/archive/?event-type=&source=&destination=&time-range=` (metadata;
  source/destination match a host name or address) and each event type's
  `/esmond/perfsonar/archive/<key>/<event-type>/base` (+ `statistics/0` for histograms),
  with `time-range` or `time-start`/`time-end`.
Fault knobs: `closed` (401 on everything), `basic_auth` (401 without those credentials),
`malformed` ("json": a broken body; "types": valid JSON of the wrong types),
`opensearch_missing` (404 on /opensearch: a perfSONAR 4 host, so clients fall back to esmond).
Fresh, stale and missing results are documents added at a given time, or none.
Runs its own event loop in a thread, like the Tape REST double, so tests of any kind use it.
"""

from __future__ import annotations

import base64
import collections
import fnmatch
import hashlib
import json
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from lakeprobe.lake.pki import TestPki
from lakeprobe.lake.psarchive_esmond import EsmondView
from lakeprobe.lake.psarchive_query import (
    Document,
    QueryError,
    matches,
    parse_time,
    sort_hits,
    source_filter,
)
from lakeprobe.lake.threadedapp import ThreadedApp

_MAX_SIZE = 10000  # OpenSearch's index.max_result_window
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MALFORMED = ("json", "types")


class PsArchiveDouble(ThreadedApp):
    """`with PsArchiveDouble(pki) as archive:` serves on archive.url; add results with
    add_throughput / add_latency / add_trace (thread-safe: tests add from their thread)."""

    name = "perfSONAR archive double"

    def __init__(
        self,
        pki: TestPki | None = None,
        *,
        closed: bool = False,
        malformed: str | None = None,
        opensearch_missing: bool = False,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(pki)
        self.closed, self.malformed = closed, malformed
        self.opensearch_missing = opensearch_missing
        self.basic_auth = basic_auth
        self.documents: list[tuple[str, Document]] = []  # (index, document)
        self.seen: collections.deque[tuple[str, str]] = collections.deque(maxlen=1000)
        self.queries: collections.deque[object] = collections.deque(maxlen=100)  # _search bodies
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        scheme = "http" if self.pki is None else "https"
        return f"{scheme}://localhost:{self.port}"

    # --- results ----------------------------------------------------------------------

    def add_throughput(
        self, source: str, destination: str, *, at: float | None = None, ip_version: int = 4,
        bps: float = 9.4e9, retransmits: int = 0, succeeded: bool = True, error: str = "",
    ) -> Document:  # fmt: skip
        result = {"throughput": bps, "retransmits": retransmits}
        return self._add("throughput", source, destination, at, ip_version, succeeded, error,
                         result, {"duration": "PT10S"})  # fmt: skip

    def add_latency(
        self, source: str, destination: str, *, at: float | None = None, ip_version: int = 4,
        median_seconds: float = 0.005, loss: float = 0.0, bucket_width: float = 0.001,
        succeeded: bool = True, error: str = "",
    ) -> Document:  # fmt: skip
        """A latencybg result; its latency stats in bucket units, as pscheduler stores them."""
        buckets = median_seconds / bucket_width
        sent, lost = 600, round(loss * 600)
        result = {
            "packets": {"sent": sent, "lost": lost, "received": sent - lost,
                        "duplicated": 0, "reordered": 0, "loss": loss},
            "latency": {"min": buckets, "median": buckets, "mean": buckets, "max": buckets,
                        "p_95": buckets, "stddev": 0.0},
        }  # fmt: skip
        return self._add("latencybg", source, destination, at, ip_version, succeeded, error,
                         result, {"bucket-width": bucket_width, "packet-count": sent})  # fmt: skip

    def add_trace(
        self, source: str, destination: str, *, at: float | None = None, ip_version: int = 4,
        hops: int = 7, succeeded: bool = True, error: str = "",
    ) -> Document:  # fmt: skip
        result = {"hop": {"count": hops, "success_count": hops, "error_count": 0}, "mtu": 9000}
        return self._add("trace", source, destination, at, ip_version, succeeded, error,
                         result, {})  # fmt: skip

    def add_document(self, index: str, document: Document) -> None:
        """A raw document, for shapes the helpers do not make."""
        with self._lock:
            self.documents.append((index, document))

    def _add(
        self, test_type: str, source: str, destination: str, at: float | None, ip_version: int,
        succeeded: bool, error: str, result: dict[str, Any], spec: dict[str, Any],
    ) -> Document:  # fmt: skip
        start = time.time() if at is None else at
        meta = {
            "source": {"hostname": source, "ip": address(source, ip_version)},
            "destination": {"hostname": destination, "ip": address(destination, ip_version)},
            "observer": {"hostname": source, "ip": address(source, ip_version)},
            "ip_version": ip_version,
        }
        spec = {"source": source, "dest": destination, "ip-version": ip_version, **spec}
        outcome: dict[str, Any] = (
            {**result, "succeeded": True} if succeeded else {"succeeded": False}
        )
        if not succeeded:
            outcome["error"] = error or "the test did not run"
        document = {
            "pscheduler": {"start_time": _iso(start), "end_time": _iso(start + 10), "tool": "t",
                           "duration": 10, "test_checksum": _key(test_type, source, destination),
                           "run_id": hashlib.sha1(repr((start, source)).encode()).hexdigest()},
            "test": {"type": test_type, "spec": spec},
            "meta": meta,
            "result": outcome,
        }  # fmt: skip
        self.add_document(f"pscheduler_{test_type}", document)
        return document

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        app.router.add_route("*", "/opensearch/{index}/_search", self._search)
        app.router.add_get("/esmond/perfsonar/archive/", self._metadata)
        app.router.add_get("/esmond/perfsonar/archive/{key}/{event}/{tail:.+}", self._data)
        return app

    # --- handlers ---------------------------------------------------------------------

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record the request; the faults that answer before any handler."""
        self.seen.append((request.method, request.path_qs))
        if self.closed or (self.basic_auth and not self._authorized(request)):
            return web.json_response(
                {"error": "Unauthorized"}, status=401,
                headers={"WWW-Authenticate": 'Basic realm="perfSONAR archive"'},
            )  # fmt: skip
        if self.opensearch_missing and request.path.startswith("/opensearch"):
            return web.Response(status=404, text="<h1>Not Found</h1>", content_type="text/html")
        return await handler(request)

    def _authorized(self, request: web.Request) -> bool:
        assert self.basic_auth is not None
        user, password = self.basic_auth
        expected = base64.b64encode(f"{user}:{password}".encode()).decode()
        return request.headers.get("Authorization", "") == f"Basic {expected}"

    async def _search(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "POST"):
            return web.Response(status=405)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
            self.queries.append(body)
            answer = self._evaluate(request.match_info["index"], body)
        except (ValueError, QueryError) as error:
            return _opensearch_error(400, "parsing_exception", str(error))
        except LookupError as error:
            return _opensearch_error(404, "index_not_found_exception", str(error))
        return self._answer(answer, {"hits": {"hits": [{"_source": {"test": {"type": 42}}}]}})

    def _evaluate(self, index: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise QueryError("the request body is no object")
        now, patterns = time.time(), index.split(",")
        with self._lock:
            stored = list(self.documents)
        in_index = [d for name, d in stored if any(fnmatch.fnmatch(name, p) for p in patterns)]
        if not in_index and not any("*" in pattern for pattern in patterns):
            raise LookupError(f"no such index [{index}]")
        query = body.get("query", {"match_all": {}})
        found = sort_hits([d for d in in_index if matches(query, d, now)], body.get("sort"))
        start, size = int(body.get("from", 0)), min(int(body.get("size", 10)), _MAX_SIZE)
        hits = [_hit(doc, body.get("_source")) for doc in found[start : start + size]]
        return {
            "took": 1, "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": len(found), "relation": "eq"}, "max_score": None,
                     "hits": hits},
        }  # fmt: skip

    def _esmond(self) -> EsmondView:
        with self._lock:
            return EsmondView([doc for _, doc in self.documents], time.time())

    async def _metadata(self, request: web.Request) -> web.Response:
        try:
            records = self._esmond().metadata(request.query)
        except ValueError as error:
            return web.json_response({"error": str(error)}, status=400)
        return self._answer(records, [{"metadata-key": 7, "event-types": "throughput"}])

    async def _data(self, request: web.Request) -> web.Response:
        info = request.match_info
        try:
            points = self._esmond().data(info["key"], info["event"], info["tail"], request.query)
        except ValueError as error:
            return web.json_response({"error": str(error)}, status=400)
        except LookupError:
            return web.json_response({"error": "Not found"}, status=404)
        return self._answer(points, [{"ts": "yesterday", "val": [1]}])

    def _answer(self, answer: object, wrong_types: object) -> web.Response:
        if self.malformed == "json":
            return web.Response(
                text=json.dumps(answer)[:-3] + "}{", content_type="application/json"
            )
        return web.json_response(wrong_types if self.malformed == "types" else answer)


def _hit(doc: Document, source: object) -> dict[str, Any]:
    test_type = doc.get("test", {}).get("type", "unknown")
    hit: dict[str, Any] = {
        "_index": f".ds-pscheduler_{test_type}-2024.01.01-000001",
        "_id": _key(json.dumps(doc, sort_keys=True)),
        "_score": None,
        "sort": [int(parse_time(doc["pscheduler"]["start_time"]) * 1000)],
    }
    filtered = source_filter(doc, source)
    if filtered is not None:
        hit["_source"] = filtered
    return hit


def _opensearch_error(status: int, kind: str, reason: str) -> web.Response:
    error = {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}
    return web.json_response({"error": error, "status": status}, status=status)


def address(host: str, ip_version: int) -> str:
    """A stable documentation address (RFC 5737 / 3849) for a node name."""
    number = int(hashlib.sha1(host.encode()).hexdigest()[:4], 16)
    if ip_version == 6:
        return f"2001:db8::{number:x}"
    return f"198.51.{number % 256}.{1 + number // 256 % 254}"


def _iso(moment: float) -> str:
    text = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")  # as logstash writes it


def _key(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:32]
