"""A client of perfSONAR measurement archives (shared/WIRE-FORMATS.md section 2), for the
perfsonar probe: the newest throughput, latency, loss and trace results between nodes.

perfSONAR 5 first: one OpenSearch `_search` per test type (WIRE-FORMATS 2.3, "what lakeprobe
should send"); `api="auto"` falls back to esmond (perfSONAR 4, and perfSONAR 5's elmond) when
the archive has no /opensearch (404/405), and stays there for the client's life. esmond is
two requests per series: metadata (cached per client), then data.
Conventions as HttpClient's: TLS always verified against the configured CA directory, every
request bounded by the run's deadline, answers capped, no redirects followed (the Basic
credentials go to this origin only). Errors are plain: ArchiveClosed (401/403),
ArchiveMalformed (parsing, psarchiveparse), ArchiveUnavailable (transport, other statuses);
a password file that cannot be read is a CredentialError. The password is never logged and
never in an error's text. Parsing is in psarchiveparse.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from lakeprobe.probes.clients.aiohttpsession import exception_reason, verifying_session
from lakeprobe.probes.clients.httpclient import status_reason
from lakeprobe.probes.clients.psarchiveparse import (
    TEST_TYPES,
    ArchiveMalformed,
    ArchiveResult,
    EsmondPoint,
    EsmondSeries,
    Kind,
    esmond_value,
    latest_point,
    newest,
    parse_data,
    parse_metadata,
    parse_search,
)
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.credentials.secrets import redact
from lakeprobe.probes.credentials.tokens import SecretFile, control_problem

__all__ = (
    "ArchiveClosed",
    "ArchiveMalformed",
    "ArchiveResult",
    "ArchiveUnavailable",
    "BasicAuth",
    "Kind",
    "PsArchiveClient",
)

APIS = ("auto", "opensearch", "esmond")
SEARCH_PATH = "/opensearch/pscheduler*/_search"
ESMOND_PATH = "/esmond/perfsonar/archive/"
SEARCH_SIZE = 50  # newest first: the newest of each pair and kind is among them
MAX_BODY = 8 * 1024 * 1024
CONNECT_SECONDS = 30.0
STALL_SECONDS = 60.0
MAX_DETAIL = 300
SOURCE_FIELDS = (
    "pscheduler.start_time", "pscheduler.tool", "test.type", "test.spec.bucket-width", "meta.*",
    "result.succeeded", "result.error", "result.throughput", "result.retransmits",
    "result.packets.loss", "result.packets.sent", "result.packets.lost",
    "result.latency.median", "result.hop.count",
)  # fmt: skip
# esmond: kind -> (event type, summary type of its data or None for the base data)
ESMOND_EVENTS: dict[Kind, tuple[str, str | None]] = {
    Kind.THROUGHPUT: ("throughput", None),
    Kind.LATENCY: ("histogram-owdelay", "statistics"),
    Kind.LOSS: ("packet-loss-rate", None),
    Kind.TRACE: ("packet-trace", None),
}


class ArchiveError(Exception):
    """An expected failure of an archive exchange; the message never holds a credential."""

    def __init__(self, detail: str) -> None:
        text = redact(" ".join(detail.split()))
        super().__init__(text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "...")


class ArchiveClosed(ArchiveError):
    """401/403: the archive is closed to us (not a network fault)."""


class ArchiveUnavailable(ArchiveError):
    """No usable answer: connect, TLS, timeout, 5xx or another unexpected status; `reason`
    names it as the HTTP probes would."""

    def __init__(self, detail: str, reason: Reason) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BasicAuth:
    username: str
    password_file: Path
    _file: SecretFile = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if ":" in self.username or control_problem(self.username):
            raise ValueError("a Basic auth user name has no ':' or control characters")
        what = "archive password file"
        object.__setattr__(
            self, "_file", SecretFile(self.password_file, what, True, control_problem)
        )

    def header(self) -> str:
        """`Basic ...`, the password read (cached while the file is unchanged)."""
        secret = self._file.load()
        pair = f"{self.username}:{secret.reveal()}".encode()
        return f"Basic {base64.b64encode(pair).decode()}"


class PsArchiveClient:
    """One run's conversation with one archive: `async with PsArchiveClient(...) as archive:`.
    `url` is the archive host's origin (https://ps-archive.site)."""

    def __init__(
        self,
        url: str,
        ctx: ProbeContext,
        *,
        ca_dir: Path | None = None,
        api: str = "auto",
        auth: BasicAuth | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"not an http(s) archive URL: {redact(url)!r:.100}")
        if api not in APIS:
            raise ValueError(f"api must be one of {', '.join(APIS)}, not {api!r:.40}")
        if auth is not None and parts.scheme != "https":
            raise ValueError("Basic auth is sent over https only")
        self._origin = URL(f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}")
        self._ctx, self._ca_dir, self._auth = ctx, ca_dir, auth
        self.api = api  # becomes "esmond" once auto found no OpenSearch
        self._metadata: dict[tuple[str, str, str], dict[str, list[EsmondSeries]]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PsArchiveClient:
        self._session = verifying_session(self._ca_dir, 4)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def latest(
        self,
        source_hosts: Sequence[str],
        dest_hosts: Sequence[str],
        ip_version: int,
        window_seconds: float,
        kinds: Collection[Kind],
    ) -> dict[Kind, ArchiveResult]:
        """The newest result of each kind from any source host to any destination host, of
        that IP version, started within the last `window_seconds`; kinds without one are
        absent."""
        if not source_hosts or not dest_hosts or not kinds:
            return {}
        if self.api != "esmond":
            found = await self._opensearch(source_hosts, dest_hosts, ip_version, window_seconds,
                                           kinds)  # fmt: skip
            if found is not None:
                return found
            self.api = "esmond"
        return await self._esmond(source_hosts, dest_hosts, ip_version, window_seconds, kinds)

    # --- OpenSearch -------------------------------------------------------------------

    async def _opensearch(
        self, sources: Sequence[str], dests: Sequence[str], ip_version: int, window: float,
        kinds: Collection[Kind],
    ) -> dict[Kind, ArchiveResult] | None:  # fmt: skip
        """None when the archive has no OpenSearch and `api` is auto."""
        results: list[ArchiveResult] = []
        for test_types in dict.fromkeys(TEST_TYPES[kind] for kind in kinds):
            body = search_body(test_types, sources, dests, ip_version, window)
            status, answer = await self._send("POST", SEARCH_PATH, {}, body)
            if status in (404, 405) and self.api == "auto":
                self._ctx.log.debug("no OpenSearch (%d): trying esmond", status)
                return None
            self._check("POST", SEARCH_PATH, status, answer)
            results.extend(parse_search(answer))
        return newest(results, kinds)

    # --- esmond -----------------------------------------------------------------------

    async def _esmond(
        self, sources: Sequence[str], dests: Sequence[str], ip_version: int, window: float,
        kinds: Collection[Kind],
    ) -> dict[Kind, ArchiveResult]:  # fmt: skip
        results: list[ArchiveResult] = []
        for kind in kinds:
            for source in sources:
                for dest in dests:
                    results.extend(await self._esmond_pair(kind, source, dest, ip_version, window))
        return newest(results, kinds)

    async def _esmond_pair(
        self, kind: Kind, source: str, dest: str, ip_version: int, window: float
    ) -> list[ArchiveResult]:
        event, summary = ESMOND_EVENTS[kind]
        series = await self._series(event, source, dest, window)
        found = []
        for main in series[event]:
            if main.ip_version != ip_version:  # esmond reports addresses: the version is theirs
                continue
            uri = main.uri(summary) or main.base_uri
            result = await self._esmond_result(kind, main, uri, series, window)
            failure = await self._failure(kind, main, series["failures"], window)
            if failure is not None and (result is None or failure.start_time > result.start_time):
                result = failure
            if result is not None:
                found.append(result)
        return found

    async def _series(
        self, event: str, source: str, dest: str, window: float
    ) -> dict[str, list[EsmondSeries]]:
        """The metadata of one pair, per event type; cached for the client's life once found."""
        key = (event, source, dest)
        if key not in self._metadata:
            query = {"event-type": event, "source": source, "destination": dest,
                     "time-range": str(int(window))}  # fmt: skip
            status, body = await self._send("GET", ESMOND_PATH, query, None)
            self._check("GET", ESMOND_PATH, status, body)
            events = (event, "failures", "packet-retransmits")
            found = {name: parse_metadata(body, name) for name in events}
            if not found[event]:
                return found  # nothing yet: ask again next time
            self._metadata[key] = found
        return self._metadata[key]

    async def _esmond_result(
        self,
        kind: Kind,
        series: EsmondSeries,
        uri: str,
        pair: dict[str, list[EsmondSeries]],
        window: float,
    ) -> ArchiveResult | None:
        point = latest_point(await self._data(uri, window))
        if point is None:
            return None
        values = esmond_value(kind, series.event_type, point.val, f"{series.event_type}[-1]")
        if kind is Kind.THROUGHPUT:
            values.update(await self._retransmits(series, pair, window, point.ts))
        return ArchiveResult(kind, point.ts, series.ip_version, series.source, series.destination,
                             **values)  # fmt: skip

    async def _retransmits(
        self, series: EsmondSeries, pair: dict[str, list[EsmondSeries]], window: float, ts: float
    ) -> dict[str, int]:
        """packet-retransmits of the same run (same metadata, same ts), when the archive has it."""
        for other in pair["packet-retransmits"]:
            if other.metadata_key == series.metadata_key:
                for point in await self._data(other.base_uri, window):
                    if point.ts == ts:
                        return esmond_value(Kind.THROUGHPUT, other.event_type, point.val, "")
        return {}

    async def _failure(
        self, kind: Kind, series: EsmondSeries, failures: list[EsmondSeries], window: float
    ) -> ArchiveResult | None:
        for other in failures:
            if other.metadata_key == series.metadata_key:
                point = latest_point(await self._data(other.base_uri, window))
                if point is not None:
                    values = esmond_value(kind, "failures", point.val, "failures[-1]")
                    return ArchiveResult(kind, point.ts, series.ip_version, series.source,
                                         series.destination, **values)  # fmt: skip
        return None

    async def _data(self, uri: str, window: float) -> list[EsmondPoint]:
        path = self._same_origin(uri)
        status, body = await self._send("GET", path, {"time-range": str(int(window))}, None)
        self._check("GET", path, status, body)
        return parse_data(body)

    def _same_origin(self, uri: str) -> str:
        """The path of a base URI: relative, or absolute on this archive (credentials stay)."""
        parts = urlsplit(uri)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme else str(self._origin)
        if origin != str(self._origin) or not parts.path.startswith("/") or parts.query:
            raise ArchiveMalformed(f"base-uri: not a path on this archive: {uri!r:.100}")
        return parts.path

    # --- HTTP -------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, query: Mapping[str, str], body: object
    ) -> tuple[int, bytes]:
        if self._session is None:
            raise RuntimeError("PsArchiveClient used outside 'async with'")
        headers = {"Accept": "application/json"}
        if self._auth is not None:
            headers["Authorization"] = self._auth.header()
        url = self._origin.with_path(path).with_query(query)
        try:
            async with self._session.request(
                method, url, json=body, headers=headers, allow_redirects=False,
                timeout=self._timeout(),
            ) as response:  # fmt: skip
                answer = await _read(method, path, response)
                self._ctx.log.debug("%s %s -> %d", method, path, response.status)
                return response.status, answer
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            text = str(error).strip() or type(error).__name__
            raise ArchiveUnavailable(f"{method} {path}: {text}", exception_reason(error)) from None

    def _check(self, method: str, path: str, status: int, body: bytes) -> None:
        if status == 200:
            return
        first = body[:200].decode("utf-8", "replace").strip().split("\n", 1)[0]
        detail = f"{method} {path}: HTTP {status}" + (f" ({first})" if first else "")
        if status in (401, 403):
            raise ArchiveClosed(detail)
        raise ArchiveUnavailable(detail, status_reason(status))

    def _timeout(self) -> aiohttp.ClientTimeout:
        left = max(self._ctx.remaining(), 0.001)  # 0 would mean "no timeout" to aiohttp
        return aiohttp.ClientTimeout(
            total=left, connect=min(CONNECT_SECONDS, left), sock_read=min(STALL_SECONDS, left)
        )


def search_body(
    test_types: Sequence[str], sources: Sequence[str], dests: Sequence[str], ip_version: int,
    window: float,
) -> dict[str, object]:  # fmt: skip
    """The `_search` of WIRE-FORMATS 2.3: newest first, in the window, these hosts and version."""
    return {
        "size": SEARCH_SIZE,
        "sort": [{"pscheduler.start_time": {"order": "desc"}}],
        "_source": list(SOURCE_FIELDS),
        "query": {"bool": {"filter": [
            {"range": {"pscheduler.start_time": {"gte": f"now-{max(int(window), 1)}s"}}},
            _match("test.type.keyword", test_types),
            _match("meta.source.hostname.keyword", sources),
            _match("meta.destination.hostname.keyword", dests),
            {"term": {"meta.ip_version": ip_version}},
        ]}},
    }  # fmt: skip


def _match(field: str, values: Sequence[str]) -> dict[str, object]:
    """`term` for one value, `terms` for several."""
    if len(values) == 1:
        return {"term": {field: values[0]}}
    return {"terms": {field: list(values)}}


async def _read(method: str, path: str, response: aiohttp.ClientResponse) -> bytes:
    chunks, total = [], 0
    async for chunk in response.content.iter_any():
        total += len(chunk)
        if total > MAX_BODY:
            raise ArchiveMalformed(f"{method} {path}: answer over {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
