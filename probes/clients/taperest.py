"""A client of the WLCG Tape REST API v1 (shared/WIRE-FORMATS.md section 1), for the tape probe.

Our own client, not gfal2: it sends `diskLifetime` (gfal2 never does), keeps exact status
codes and answers, and goes through HttpClient (TLS verified with the target's CA dir,
bounded redirects, deadlines, redaction). The API may live on another origin than the
endpoint (dCache: https://frontend:3880/api/v1/tape): each origin gets its own HttpClient,
made from the endpoint's Target, which may redirect back to the endpoint's host.
Every failure is a TapeRestError with a Reason; parsing is in taperestparse.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

from lakeprobe.probes.clients.httpclient import (
    ANY_STATUS,
    HttpClient,
    Reply,
    RequestFailed,
    http_url,
    status_reason,
)
from lakeprobe.probes.clients.taperestparse import (
    FileState,
    FileStatus,
    Locality,
    StageStatus,
    TapeApi,
    TapeRestError,
    collapse,
    iso_duration,
    parse_archiveinfo,
    parse_discovery,
    parse_poll,
    parse_stage_created,
    problem_text,
    request_id_of,
)
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.credential_step import cleartext_refusal
from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials.secrets import Secret

__all__ = (  # the parse types, re-exported: callers import from here
    "FileState",
    "FileStatus",
    "Locality",
    "StageStatus",
    "TapeApi",
    "TapeRestClient",
    "TapeRestError",
    "parse_archiveinfo",
    "parse_discovery",
    "parse_poll",
    "parse_stage_created",
    "problem_text",
)

WELL_KNOWN = "/.well-known/wlcg-tape-rest-api"
_JSON = {"Content-Type": "application/json", "Accept": "application/json"}


class TapeRestClient:
    """One run's conversation with a Tape REST API. `async with TapeRestClient(...) as api:`.
    `api_uri` (configured) skips discovery; else `discovery_url` (or the endpoint's https
    origin) serves `/.well-known/wlcg-tape-rest-api`."""

    def __init__(
        self,
        target: Target,
        ctx: ProbeContext,
        api_uri: str | None,
        discovery_url: str | None,
        token: Secret | None,
    ) -> None:
        self._target = target
        self._ctx = ctx
        self._discovery_url = discovery_url
        self._token = token
        self._api = TapeApi(api_uri.rstrip("/"), "v1", "") if api_uri else None
        self._clients: dict[str, HttpClient] = {}
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> TapeRestClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._stack.aclose()
        self._clients.clear()

    async def discover(self) -> TapeApi:
        """The API to use: configured, or discovered once per client."""
        if self._api is not None:
            return self._api
        base = self._discovery_url or self._target.url
        try:
            origin = _origin(http_url(base) if "://" in base else base)
        except ValueError as error:
            raise TapeRestError(Reason.DISCOVERY_FAILED, f"discovery: {error}") from None
        reply = await self._send(origin, "GET", WELL_KNOWN, None)
        if reply.status != 200:
            text = problem_text(reply.status, reply.headers, reply.body)
            raise TapeRestError(Reason.DISCOVERY_FAILED, f"discovery: {text}")
        self._api = parse_discovery(reply.body)
        return self._api

    async def stage(self, paths: Sequence[str], disk_lifetime_seconds: float) -> str:
        """Submit a stage request; its id. diskLifetime goes as ISO-8601 (PT3600S)."""
        lifetime = iso_duration(disk_lifetime_seconds)
        files = [{"path": collapse(path), "diskLifetime": lifetime} for path in paths]
        reply = await self._call("POST", "/stage", {"files": files})
        return parse_stage_created(reply.status, reply.headers, reply.body)

    async def poll(self, request_id: str, paths: Sequence[str]) -> StageStatus:
        reply = await self._call("GET", f"/stage/{request_id_of(request_id)}", None)
        self._expect(reply, "poll")
        return parse_poll(reply.body, request_id, paths)

    async def cancel(self, request_id: str, paths: Sequence[str]) -> None:
        body = {"paths": [collapse(path) for path in paths]}
        reply = await self._call("POST", f"/stage/{request_id_of(request_id)}/cancel", body)
        self._expect(reply, "cancel")

    async def delete(self, request_id: str) -> None:
        reply = await self._call("DELETE", f"/stage/{request_id_of(request_id)}", None)
        self._expect(reply, "delete")

    async def release(self, request_id: str, paths: Sequence[str]) -> None:
        body = {"paths": [collapse(path) for path in paths]}
        reply = await self._call("POST", f"/release/{request_id_of(request_id)}", body)
        self._expect(reply, "release", Reason.RELEASE_FAILED)

    async def archiveinfo(self, paths: Sequence[str]) -> dict[str, Locality | str]:
        body = {"paths": [collapse(path) for path in paths]}
        reply = await self._call("POST", "/archiveinfo", body)
        self._expect(reply, "archiveinfo")
        return parse_archiveinfo(reply.body, paths)

    def _expect(self, reply: Reply, what: str, reason: Reason | None = None) -> None:
        """Every call but stage answers 200 (gfal2 checks exactly; DELETE too, not 204)."""
        if reply.status not in (200, 204) or (reply.status == 204 and what != "delete"):
            text = problem_text(reply.status, reply.headers, reply.body)
            raise TapeRestError(reason or status_reason(reply.status), f"{what}: {text}")

    async def _call(self, method: str, suffix: str, body: object) -> Reply:
        api = await self.discover()
        parts = urlsplit(api.uri)
        data = None if body is None else json.dumps(body).encode()
        return await self._send(_origin(api.uri), method, parts.path.rstrip("/") + suffix, data)

    async def _send(self, origin: str, method: str, path: str, data: bytes | None) -> Reply:
        http = await self._client(origin)
        headers = _JSON if data is not None else {"Accept": "application/json"}
        try:
            return await http.request(method, path, expect=ANY_STATUS, headers=headers, data=data)
        except RequestFailed as failure:
            raise TapeRestError(failure.outcome.reason, failure.outcome.detail) from None
        except ValueError as error:  # a path HttpClient cannot send literally
            raise TapeRestError(Reason.PROTOCOL_ERROR, f"{method}: {error}") from None

    async def _client(self, origin: str) -> HttpClient:
        if origin not in self._clients:
            hosts = self._target.redirect_hosts | {self._target.host}
            target = dataclasses.replace(self._target, url=origin, redirect_hosts=hosts)
            refusal = cleartext_refusal(target) if self._token is not None else None
            if refusal is not None:  # a discovered http:// API must not receive the token
                raise TapeRestError(refusal.reason, refusal.detail)
            http = await self._stack.enter_async_context(HttpClient(target, self._ctx))
            http.token = self._token
            self._clients[origin] = http
        return self._clients[origin]


def _origin(url: str) -> str:
    """scheme://host[:port] of an http(s) URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r:.100}")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
