"""The HTTP port's control and protection: POST /-/reload off by default and loopback-only,
SIGHUP, the web config (TLS from a test CA, client certificates, basic auth) and its errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
import yaml
from aiohttp.test_utils import make_mocked_request
from http_helpers import write_daemon_config
from prometheus_client import CollectorRegistry

from daemon_helpers import fetch, pick, running_daemon, scrape, wait_for
from lakeprobe.cli.main import main
from lakeprobe.config import ConfigError, load_config
from lakeprobe.config.webconfig import CHALLENGE, BasicAuthCheck, WebConfig
from lakeprobe.lake.pki import TestPki, make_test_pki
from lakeprobe.service.daemon import Daemon
from lakeprobe.service.httpguard import ConnectionGuard
from lakeprobe.service.server import (
    RELOAD_DISABLED,
    RELOAD_LOOPBACK_ONLY,
    _is_loopback,
    limits_of,
    make_app,
    reload,
    serve,
)

PASSWORD = "correct horse"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4))
GOOD = {"Authorization": aiohttp.encode_basic_auth("prometheus", PASSWORD)}
BAD = {"Authorization": aiohttp.encode_basic_auth("prometheus", "wrong")}


def add_site(path: Path) -> None:
    """A second site (another dead port) in the config file: one more target."""
    data = yaml.safe_load(path.read_text())
    site = yaml.safe_load(yaml.safe_dump(data["sites"][0]))
    site["name"] = "DEAD2"
    data["sites"].append(site)
    path.write_text(yaml.safe_dump(data))


async def targets(base: str) -> float:
    return pick(await scrape(base), "lakeprobe_targets")[frozenset()]


async def test_reload_is_off_by_default(tmp_path: Path) -> None:
    """Without server.enable_reload, POST /-/reload answers 403 saying how to enable it (or
    to send SIGHUP), and the changed config file is not applied."""
    path = write_daemon_config(tmp_path / "lakeprobe.yaml")
    async with running_daemon(path) as (daemon, base):
        config = daemon.config
        add_site(path)
        assert await fetch(base, "/-/reload", "POST") == (403, RELOAD_DISABLED)
        assert daemon.config is config
        assert await targets(base) == 1


async def test_reload_from_loopback_and_by_sighup(tmp_path: Path) -> None:
    """With enable_reload, POST /-/reload from loopback applies a valid config, rejects an
    invalid one with its message (400, config kept); SIGHUP reloads without blocking."""
    path = write_daemon_config(tmp_path / "lakeprobe.yaml", enable_reload=True)
    original = path.read_text()
    async with running_daemon(path) as (_, base):
        add_site(path)
        assert await fetch(base, "/-/reload", "POST") == (200, "reloaded\n")
        assert await targets(base) == 2

        path.write_text(original.replace("type: webdav", "type: gridftp"))
        status, text = await fetch(base, "/-/reload", "POST")
        assert status == 400
        assert "unknown probe type 'gridftp'" in text
        assert await targets(base) == 2

        path.write_text(original)
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: _targets_are(base, 1), timeout=10, what="SIGHUP reload")


async def _targets_are(base: str, count: int) -> bool:
    return await targets(base) == count


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.7", False),
        ("2001:db8::1", False),
        ("::ffff:192.0.2.7", False),
        (None, False),
        ("not-an-address", False),
    ],
)
def test_loopback_clients(remote: str | None, loopback: bool) -> None:
    """Loopback is 127/8 and ::1, also as an IPv4-mapped IPv6 address."""
    assert _is_loopback(remote) is loopback


@pytest.mark.parametrize(
    ("web_config", "status"),
    [(WebConfig(), 403), (WebConfig(users={"prometheus": HASH}), 200)],
    ids=["no-auth", "basic-auth"],
)
async def test_reload_from_elsewhere_needs_authenticated_clients(
    tmp_path: Path, web_config: WebConfig, status: int
) -> None:
    """From a non-loopback address, POST /-/reload is refused unless the web config
    authenticates clients (then the auth middleware has already checked this one)."""
    path = write_daemon_config(tmp_path / "lakeprobe.yaml", enable_reload=True)
    async with running_daemon(path) as (daemon, _):
        guard = ConnectionGuard(limits_of(daemon.config.server), CollectorRegistry())
        app = make_app(daemon, guard, web_config)
        transport = _Peer("192.0.2.7")
        request = make_mocked_request("POST", "/-/reload", app=app, transport=transport)
        response = await reload(request)
    assert response.status == status
    if status == 403:
        assert response.text == RELOAD_LOOPBACK_ONLY


class _Peer:
    """Just enough of a transport for request.remote."""

    def __init__(self, host: str) -> None:
        self._host = host

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self._host, 40000) if name == "peername" else default


def write_web_config(path: Path, pki: TestPki, client_certs: bool = False) -> Path:
    tls: dict[str, Any] = {"cert_file": str(pki.host_cert), "key_file": str(pki.host_key)}
    if client_certs:
        tls |= {
            "client_ca_file": str(pki.ca_cert),
            "client_auth_type": "RequireAndVerifyClientCert",
        }
    users = {} if client_certs else {"prometheus": HASH.decode()}
    path.write_text(yaml.safe_dump({"tls_server_config": tls, "basic_auth_users": users}))
    return path


@contextlib.asynccontextmanager
async def serving(path: Path) -> AsyncIterator[tuple[Daemon, int]]:
    """The daemon serving `path`, once its port accepts connections."""
    daemon = Daemon(path, load_config(path))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(daemon, stop))
    port = int(daemon.config.server.listen.rpartition(":")[2])
    try:
        await wait_for(lambda: _accepts(port), timeout=10, what="the daemon's port")
        yield daemon, port
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def _request(
    url: str, tls: ssl.SSLContext | None, auth: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, str, str | None]:
    async with (
        aiohttp.ClientSession(headers=auth) as session,
        session.request(method, url, ssl=tls if tls is not None else True) as reply,
    ):
        return reply.status, await reply.text(), reply.headers.get("WWW-Authenticate")


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return make_test_pki(tmp_path / "pki")


async def test_tls_and_basic_auth(tmp_path: Path, pki: TestPki) -> None:
    """With a web config, the port speaks TLS with the configured certificate (the client
    verifies it against the test CA) and every path asks for basic auth: 401 with a
    WWW-Authenticate challenge without or with wrong credentials, 200 with the right ones;
    an authenticated client may reload. A client without the CA refuses the server."""
    web_config = write_web_config(tmp_path / "web.yml", pki)
    path = write_daemon_config(
        tmp_path / "lakeprobe.yaml", web_config_file=str(web_config), enable_reload=True
    )
    trusting = ssl.create_default_context(cafile=pki.ca_cert)
    async with serving(path) as (_, port):
        base = f"https://127.0.0.1:{port}"
        unauthorized = (401, "401: Unauthorized\n", CHALLENGE)
        assert await _request(f"{base}/metrics", trusting) == unauthorized
        assert (await _request(f"{base}/-/healthy", trusting))[0] == 401
        assert (await _request(f"{base}/metrics", trusting, BAD))[0] == 401
        assert (await _request(f"{base}/-/healthy", trusting, GOOD))[:2] == (200, "OK\n")
        status, text, _ = await _request(f"{base}/metrics", trusting, GOOD)
        assert status == 200
        assert "lakeprobe_http_connections_open " in text
        reloaded = await _request(f"{base}/-/reload", trusting, GOOD, "POST")
        assert reloaded[:2] == (200, "reloaded\n")
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _request(f"{base}/-/healthy", None, GOOD)
        with pytest.raises(aiohttp.ClientError):
            await _request(f"http://127.0.0.1:{port}/-/healthy", None, GOOD)


async def test_client_certificates_required(tmp_path: Path, pki: TestPki) -> None:
    """With RequireAndVerifyClientCert, a client without a certificate from client_ca_file
    is refused in the handshake; with one it is served."""
    web_config = write_web_config(tmp_path / "web.yml", pki, client_certs=True)
    path = write_daemon_config(tmp_path / "lakeprobe.yaml", web_config_file=str(web_config))
    anonymous = ssl.create_default_context(cafile=pki.ca_cert)
    with_cert = ssl.create_default_context(cafile=pki.ca_cert)
    with_cert.load_cert_chain(pki.host_cert, pki.host_key)
    async with serving(path) as (_, port):
        url = f"https://127.0.0.1:{port}/-/healthy"
        assert (await _request(url, with_cert))[:2] == (200, "OK\n")
        with pytest.raises(aiohttp.ClientError):
            await _request(url, anonymous)


async def test_a_stalled_tls_handshake_is_closed_after_header_timeout(
    tmp_path: Path, pki: TestPki
) -> None:
    """A connection to the TLS port that never sends a ClientHello holds its slot only for
    header_timeout, and is counted."""
    web_config = write_web_config(tmp_path / "web.yml", pki)
    path = write_daemon_config(
        tmp_path / "lakeprobe.yaml", web_config_file=str(web_config), header_timeout=1
    )
    async with serving(path) as (daemon, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        try:
            assert await asyncio.wait_for(reader.read(), 5) == b""
        finally:
            writer.close()
        assert 0.9 < time.monotonic() - started < 2.5
        timeouts = daemon.registry.get_sample_value(
            "lakeprobe_http_connections_rejected_total", {"cause": "header_timeout"}
        )
        assert timeouts is not None
        assert timeouts >= 1  # the readiness poll's connection may have timed out too


# Paths relative to the web config file, which sits in the test PKI's directory.
TLS = {"cert_file": "hostcert.pem", "key_file": "hostkey.pem"}
VERIFY = {"client_auth_type": "RequireAndVerifyClientCert"}
WEB_CONFIG_ERRORS = [
    pytest.param({"tls_server_confg": TLS}, "tls_server_confg: unknown key", id="unknown-key"),
    pytest.param(
        {"tls_server_config": TLS | {"cipher_suites": []}},
        "tls_server_config.cipher_suites: unknown key",
        id="unknown-tls-key",
    ),
    pytest.param(
        {"tls_server_config": {"cert_file": "hostcert.pem"}},
        "tls_server_config.key_file: required key is missing",
        id="missing-key-file",
    ),
    pytest.param(
        {"tls_server_config": TLS | {"client_auth_type": "RequestClientCert"}},
        "tls_server_config.client_auth_type: Input should be 'NoClientCert' or "
        "'RequireAndVerifyClientCert'",
        id="bad-client-auth-type",
    ),
    pytest.param(
        {"tls_server_config": TLS | VERIFY},
        "tls_server_config: client_auth_type RequireAndVerifyClientCert needs client_ca_file",
        id="verify-without-ca",
    ),
    pytest.param(
        {"tls_server_config": TLS | {"client_ca_file": "ca.pem"}},
        "tls_server_config: client_ca_file needs client_auth_type: RequireAndVerifyClientCert",
        id="ca-without-verify",
    ),
    pytest.param(
        {"tls_server_config": TLS | {"min_version": "TLS10"}},
        "tls_server_config.min_version: Input should be 'TLS12' or 'TLS13'",
        id="bad-min-version",
    ),
    pytest.param(
        {"tls_server_config": TLS | {"cert_file": "nope.pem"}},
        "tls_server_config.cert_file: cannot read {dir}/nope.pem: No such file or directory",
        id="missing-cert",
    ),
    pytest.param(
        {"tls_server_config": TLS | {"cert_file": "hostkey.pem"}},
        "tls_server_config.cert_file: not a PEM certificate",
        id="cert-not-pem",
    ),
    pytest.param(
        {"tls_server_config": TLS | {"key_file": "ca.key"}},
        "tls_server_config.key_file: not an unencrypted private key of cert_file "
        "(KEY_VALUES_MISMATCH)",
        id="key-of-another-cert",
    ),
    pytest.param(
        {"tls_server_config": TLS | VERIFY | {"client_ca_file": "hostkey.pem"}},
        "tls_server_config.client_ca_file: no PEM certificate (NO_CERTIFICATE_OR_CRL_FOUND)",
        id="ca-not-pem",
    ),
    pytest.param(
        {"basic_auth_users": {"alice": "plain-password"}},
        "basic_auth_users.alice: expected a bcrypt hash like '$2b$10$...' (see the README)",
        id="not-bcrypt",
    ),
    pytest.param(
        {"basic_auth_users": {"a:b": "$2b$04$" + "a" * 53}},
        "basic_auth_users: user name 'a:b' must be non-empty and without ':'",
        id="user-with-colon",
    ),
    pytest.param(["tls_server_config"], "(top level): expected a mapping", id="not-a-mapping"),
]


@pytest.mark.parametrize(("data", "expected"), WEB_CONFIG_ERRORS)
def test_web_config_errors_are_named(
    tmp_path: Path, pki: TestPki, data: object, expected: str
) -> None:
    """Each problem of the web config fails the main config with one message naming the
    server key, the web config file and the key inside it (file paths in it are relative to
    the web config's directory)."""
    web_config = pki.ca_cert.parent / "web.yml"
    web_config.write_text(yaml.safe_dump(data))
    path = write_daemon_config(tmp_path / "lakeprobe.yaml", web_config_file=str(web_config))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = expected.format(dir=web_config.parent)
    assert caught.value.messages == [f"server.web_config_file: {web_config}: {message}"]


def test_check_config_reports_a_missing_web_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config exits 2 naming the unreadable web config file."""
    absent = tmp_path / "absent.yml"
    path = write_daemon_config(tmp_path / "lakeprobe.yaml", web_config_file=str(absent))
    assert main(["check-config", str(path)]) == 2
    expected = f"{path}: server.web_config_file: {absent}: cannot read: No such file or directory"
    assert expected in capsys.readouterr().err


async def test_serve_refuses_a_web_config_broken_after_loading(
    tmp_path: Path, pki: TestPki
) -> None:
    """A web config broken between loading the config and serving stops serve() with a
    ConfigError before anything listens."""
    web_config = write_web_config(tmp_path / "web.yml", pki)
    path = write_daemon_config(tmp_path / "lakeprobe.yaml", web_config_file=str(web_config))
    daemon = Daemon(path, load_config(path))
    web_config.write_text("tls_server_config: {cert_file: x}\n")
    with pytest.raises(ConfigError, match="key_file: required key is missing"):
        await serve(daemon, asyncio.Event())
    port = int(daemon.config.server.listen.rpartition(":")[2])
    assert not await _accepts(port)


async def test_basic_auth_remembers_successes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The right password is checked by bcrypt once, then remembered; wrong passwords and
    unknown users are checked every time (the unknown ones against a dummy hash); headers
    that are not Basic credentials fail without a check."""
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    check = BasicAuthCheck({"prometheus": HASH})
    try:
        for _ in range(3):
            assert await check.check(GOOD["Authorization"])
            assert not await check.check(BAD["Authorization"])
        assert not await check.check(aiohttp.encode_basic_auth("nobody", PASSWORD))
        for header in [None, "", "Bearer abc", "Basic !!!", "Basic bm9jb2xvbg=="]:
            assert not await check.check(header)
    finally:
        await check.close()
    assert calls == [PASSWORD.encode()] + [b"wrong"] * 3 + [PASSWORD.encode()]
