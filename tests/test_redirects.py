"""HttpClient follows redirects only where storage systems use them: at most 5 hops; 307/308
for any method with the same body, 301/302/303 for GET and HEAD; same scheme or http ->
https; the endpoint's own host or one matching Target.redirect_hosts. Real aiohttp servers on
127.0.0.1 (the endpoint's host) and 127.0.0.2 (another host)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from lakeprobe.lake import TestPki, make_test_pki
from lakeprobe.probes.clients.httpclient import ANY_STATUS, HttpClient, Reply, RequestFailed
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason, Status
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.steps import StepRecorder
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials.secrets import Secret
from lakeprobe.probes.storage.webdav import PROBE_TYPE, WebdavParams

LOG = logging.getLogger("test.redirects")
TOKEN = "redirect-test-token-0123456789"


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str
    body: bytes
    authorization: str | None


@dataclass
class Server:
    """Answers `redirects[path]` = (status, Location) if set, a 307 to `moved[method]` + path
    if set, else 200 'done'; records every request."""

    url: str = ""
    redirects: dict[str, tuple[int, str]] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    raw_targets: list[str] = field(default_factory=list)  # as sent: encoded, with the query

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw_targets.append(request.raw_path)
        self.seen.append(
            Seen(request.method, request.path, body, request.headers.get("Authorization"))
        )
        if request.path in self.redirects:
            status, location = self.redirects[request.path]
            return web.Response(status=status, headers={"Location": location}, text="moved")
        if request.method in self.moved:
            location = self.moved[request.method] + request.path
            return web.Response(status=307, headers={"Location": location})
        return web.Response(text="done")


Start = Callable[..., Awaitable[Server]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def start(pki: TestPki) -> AsyncIterator[Start]:
    """Start a recording server on `host` (plain http, or https with the test PKI)."""
    runners: list[web.AppRunner] = []

    async def started(host: str = "127.0.0.1", tls: bool = False) -> Server:
        server = Server()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        context = None
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(pki.host_cert, pki.host_key)
        site = web.TCPSite(runner, host, 0, ssl_context=context)
        await site.start()
        port = runner.addresses[-1][1]
        server.url = f"{'https' if tls else 'http'}://{host}:{port}"
        return server

    yield started
    for runner in runners:
        await runner.cleanup()


async def send(
    endpoint: Server,
    pki: TestPki,
    method: str,
    path: str = "/f",
    redirect_hosts: frozenset[str] = frozenset(),
) -> Reply:
    target = Target(site="S", endpoint="e", url=endpoint.url, test_dir="/t",
                    ca_dir=pki.ca_dir, redirect_hosts=redirect_hosts)  # fmt: skip
    deadline = asyncio.get_running_loop().time() + 10
    ctx = ProbeContext(
        StepRecorder(deadline, 10, 1), deadline, "h", LOG, StateStore.memory(), ProbeResources()
    )
    async with HttpClient(target, ctx) as http:
        http.token = Secret(TOKEN)
        data = b"payload" if method in ("PUT", "COPY") else None
        return await http.request(method, path, expect=ANY_STATUS, data=data)


@pytest.mark.parametrize(
    ("status", "method"),
    [(307, "PUT"), (308, "PUT"), (307, "DELETE"), (308, "COPY"), (307, "PROPFIND"),
     (301, "GET"), (302, "GET"), (303, "HEAD"), (308, "GET")],
)  # fmt: skip
async def test_followed_to_the_same_host(
    start: Start, pki: TestPki, status: int, method: str
) -> None:
    """The same host on another port: followed with the same method, body and token."""
    endpoint, pool = await start(), await start()
    endpoint.redirects["/f"] = (status, f"{pool.url}/pool/f")
    reply = await send(endpoint, pki, method)
    assert reply.status == 200
    body = b"payload" if method in ("PUT", "COPY") else b""
    assert pool.seen == [Seen(method, "/pool/f", body, f"Bearer {TOKEN}")]


async def test_relative_location(start: Start, pki: TestPki) -> None:
    """A relative Location resolves against the request URL."""
    endpoint = await start()
    endpoint.redirects["/a/f"] = (307, "../b/f")
    assert (await send(endpoint, pki, "PUT", "/a/f")).status == 200
    assert [s.path for s in endpoint.seen] == ["/a/f", "/b/f"]


@pytest.mark.parametrize(("status", "method"), [(301, "PUT"), (302, "DELETE"), (303, "COPY")])
async def test_method_changing_redirects_are_refused(
    start: Start, pki: TestPki, status: int, method: str
) -> None:
    """301/302/303 let clients turn the request into a GET: for other methods the request
    fails (unexpected_status) and the target is never contacted."""
    endpoint, pool = await start(), await start()
    endpoint.redirects["/f"] = (status, f"{pool.url}/pool/f")
    with pytest.raises(RequestFailed) as caught:
        await send(endpoint, pki, method)
    assert caught.value.outcome.reason is Reason.UNEXPECTED_STATUS
    assert caught.value.outcome.detail == (
        f"{method}: redirect to {pool.url}/pool/f not followed: "
        f"{status} is followed only for GET and HEAD"
    )
    assert pool.seen == []


async def test_other_host_is_refused_and_gets_no_token(start: Start, pki: TestPki) -> None:
    """127.0.0.2 is another host: without a matching redirect_hosts pattern the redirect is
    not followed, so the token never reaches it."""
    endpoint, other = await start("127.0.0.1"), await start("127.0.0.2")
    endpoint.redirects["/f"] = (307, f"{other.url}/f?authz=should-not-show")
    with pytest.raises(RequestFailed) as caught:
        await send(endpoint, pki, "PUT", redirect_hosts=frozenset({"*.example.org"}))
    assert caught.value.outcome.detail == (
        f"PUT: redirect to {other.url}/f not followed: host not in redirect_hosts"
    )
    assert other.seen == []


@pytest.mark.parametrize("pattern", ["127.0.0.2", "127.0.0.*"])
async def test_redirect_hosts_allow_another_host(start: Start, pki: TestPki, pattern: str) -> None:
    """A host matching a redirect_hosts pattern (fnmatch) is followed, with the token."""
    endpoint, other = await start("127.0.0.1"), await start("127.0.0.2")
    endpoint.redirects["/f"] = (307, f"{other.url}/f")
    await send(endpoint, pki, "PUT", redirect_hosts=frozenset({pattern}))
    assert other.seen == [Seen("PUT", "/f", b"payload", f"Bearer {TOKEN}")]


async def test_upgrade_to_https_is_followed(start: Start, pki: TestPki) -> None:
    """http -> https on the endpoint's host: followed, the server verified with the CA."""
    endpoint, secure = await start(), await start(tls=True)
    endpoint.redirects["/f"] = (308, f"{secure.url}/f")
    assert (await send(endpoint, pki, "PUT")).status == 200
    assert [s.method for s in secure.seen] == ["PUT"]


async def test_downgrade_to_http_is_refused(start: Start, pki: TestPki) -> None:
    """https -> http would send the token in cleartext: refused."""
    endpoint, plain = await start(tls=True), await start()
    endpoint.redirects["/f"] = (307, f"{plain.url}/f")
    with pytest.raises(RequestFailed, match=r"not followed: scheme https -> http$"):
        await send(endpoint, pki, "GET")
    assert plain.seen == []


async def test_at_most_five_hops(start: Start, pki: TestPki) -> None:
    """A redirect loop ends after 5 followed redirects (6 requests) as unexpected_status."""
    endpoint = await start()
    endpoint.redirects["/f"] = (307, "/f")
    with pytest.raises(RequestFailed) as caught:
        await send(endpoint, pki, "PUT")
    assert caught.value.outcome.reason is Reason.UNEXPECTED_STATUS
    assert caught.value.outcome.detail == "PUT: more than 5 redirects"
    assert len(endpoint.seen) == 6


async def test_refused_redirect_fails_the_step(start: Start, pki: TestPki) -> None:
    """In a probe, a PUT redirected to a foreign host fails `put` as unexpected_status with
    the redirect in the detail; nothing reaches the other host."""
    endpoint, other = await start("127.0.0.1"), await start("127.0.0.2")
    endpoint.moved["PUT"] = other.url
    target = Target(site="S", endpoint="e", url=endpoint.url, test_dir="/t", ca_dir=pki.ca_dir)
    params = WebdavParams(file_size_bytes=16)
    outcome = await run_probe(PROBE_TYPE, target, params, timeout=5, probe_host="h", log=LOG)
    put = next(step for step in outcome.result.steps if step.name == "put")
    assert (put.status, put.reason) == (Status.CRITICAL, Reason.UNEXPECTED_STATUS)
    assert put.detail.startswith(f"PUT: redirect to {other.url}/t/lakeprobe-h-")
    assert put.detail.endswith("not followed: host not in redirect_hosts")
    assert other.seen == []


@pytest.mark.parametrize("location", ["http://127.0.0.1:99999/f", "http://[::1/f"])
async def test_malformed_location_is_a_protocol_error(
    start: Start, pki: TestPki, location: str
) -> None:
    """A Location that is no URL (port out of range, unclosed IPv6 bracket) fails the request
    as protocol_error, and nothing more is sent."""
    endpoint = await start()
    endpoint.redirects["/f"] = (307, location)
    with pytest.raises(RequestFailed) as caught:
        await send(endpoint, pki, "PUT")
    assert caught.value.outcome.reason is Reason.PROTOCOL_ERROR
    assert caught.value.outcome.detail == "PUT: 307 with a malformed Location"
    assert len(endpoint.seen) == 1


async def test_location_is_sent_encoded(start: Start, pki: TestPki) -> None:
    """A Location's escapes are kept and what a server left raw (a space) is encoded."""
    endpoint, pool = await start(), await start()
    endpoint.redirects["/f"] = (307, f"{pool.url}/a%2Fb c?x=1 2")
    await send(endpoint, pki, "GET")
    assert pool.raw_targets == ["/a%2Fb%20c?x=1%202"]
