"""The OAuth2 client-credentials client against the lake's real HTTPS issuer (a child
process on loopback, TLS from a test CA): caching, refresh, discovery, failures, secrecy."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from lakeprobe.config import parse_config
from lakeprobe.config.plan import build_plan
from lakeprobe.lake import TestPki, free_ports, make_test_pki
from lakeprobe.lake.issuer_process import LocalIssuer
from lakeprobe.probes.core.credential_step import load_tokens
from lakeprobe.probes.core.outcome import Reason, Status
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials import oidc
from lakeprobe.probes.credentials.oidc import (
    IssuerError,
    OidcClient,
    OidcSettings,
    OidcToken,
)
from lakeprobe.probes.credentials.oidcclients import OidcClients
from lakeprobe.probes.credentials.tokens import CredentialError, FileToken
from lakeprobe.probes.storage.webdav import PROBE_TYPE, WebdavParams

SCOPE = "storage.read:/ storage.create:/"
AUDIENCE = "https://lake.example.org"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[LocalIssuer]:
    server = LocalIssuer(tmp_path_factory.mktemp("issuer"), pki, free_ports(1)[0])
    server.start()
    yield server
    server.stop()


class Clock:
    """Replaces the OIDC module's clock: tests move time instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(oidc, "time", fake)
    return fake


_clients = iter(range(10**6))


def new_client(issuer: LocalIssuer, lifetime: int | None = None) -> tuple[str, Path, Path]:
    """A newly registered client: its id (unique, so server-side counts are per test)."""
    client_id = f"probe-{next(_clients)}-{time.monotonic_ns()}"
    id_file, secret_file = issuer.add_client(client_id, lifetime)
    return client_id, id_file, secret_file


def settings(server: LocalIssuer, id_file: Path, secret_file: Path, **kw: object) -> OidcSettings:
    fields: dict[str, object] = {
        "token_endpoint": server.token_endpoint,
        "ca_dir": server.pki.ca_dir,
        "client_id_file": id_file,
        "client_secret_file": secret_file,
    }
    return OidcSettings.model_validate({**fields, **kw})


def issued(issuer: LocalIssuer, client_id: str) -> int:
    """Tokens the issuer issued to `client_id`, from its own log."""
    return issuer.log_path.read_text().count(f"token issued: client {client_id},")


def discoveries(issuer: LocalIssuer) -> int:
    return issuer.log_path.read_text().count("GET /.well-known/openid-configuration 200")


@pytest.mark.lake
async def test_concurrent_calls_share_one_request(issuer: LocalIssuer) -> None:
    """Eight concurrent calls for one (scope, audience) make one token request; later calls
    use the cache; the expiry comes from expires_in."""
    client_id, id_file, secret_file = new_client(issuer, lifetime=600)
    client = OidcClient(settings(issuer, id_file, secret_file))
    before = time.time()
    tokens = await asyncio.gather(*(client.issue(SCOPE, AUDIENCE) for _ in range(8)))
    assert len({t.secret for t in tokens}) == 1
    assert issued(issuer, client_id) == 1
    assert tokens[0].expires_at is not None
    assert before + 590 < tokens[0].expires_at < time.time() + 601
    assert await client.issue(SCOPE, AUDIENCE) == tokens[0]
    assert issued(issuer, client_id) == 1
    await client.issue("storage.read:/", None)  # another key: another request
    assert issued(issuer, client_id) == 2


@pytest.mark.parametrize(
    ("lifetime", "refresh_before", "still_cached", "refreshed"),
    [
        (1200, 60.0, 1130.0, 1150.0),  # refresh_before seconds before expiry
        (100, 60.0, 45.0, 55.0),  # shorter than 2 * refresh_before: at half-life
    ],
)
@pytest.mark.lake
async def test_refresh_before_expiry(
    issuer: LocalIssuer,
    clock: Clock,
    lifetime: int,
    refresh_before: float,
    still_cached: float,
    refreshed: float,
) -> None:
    """A cached token is renewed `refresh_before` seconds before it expires, or at half its
    life when it lives less than twice that."""
    client_id, id_file, secret_file = new_client(issuer, lifetime)
    client = OidcClient(settings(issuer, id_file, secret_file), refresh_before=refresh_before)
    first = await client.issue(SCOPE, AUDIENCE)
    clock.offset = still_cached
    assert await client.issue(SCOPE, AUDIENCE) == first
    clock.offset = refreshed
    second = await client.issue(SCOPE, AUDIENCE)
    assert second.secret != first.secret
    assert issued(issuer, client_id) == 2


@pytest.mark.lake
async def test_fresh_bypasses_the_cache(issuer: LocalIssuer) -> None:
    """fresh=True asks the issuer again and leaves the cached token in place."""
    client_id, id_file, secret_file = new_client(issuer)
    client = OidcClient(settings(issuer, id_file, secret_file))
    cached = await client.issue(SCOPE, AUDIENCE)
    fresh = await client.issue(SCOPE, AUDIENCE, fresh=True)
    assert fresh.secret != cached.secret
    assert await client.issue(SCOPE, AUDIENCE) == cached
    assert client.cached(SCOPE, AUDIENCE) == cached
    assert issued(issuer, client_id) == 2


@pytest.mark.lake
async def test_discovery_from_the_issuer_url(issuer: LocalIssuer) -> None:
    """With `issuer`, the token endpoint comes from the discovery document, fetched once."""
    client_id, id_file, secret_file = new_client(issuer)
    config = settings(issuer, id_file, secret_file, token_endpoint=None, issuer=issuer.url + "/")
    client = OidcClient(config)
    assert client.describe() == f"OIDC client {id_file} at {issuer.url}"
    before = discoveries(issuer)
    await client.issue(SCOPE, AUDIENCE)
    await client.issue("storage.read:/", AUDIENCE)
    assert discoveries(issuer) == before + 1
    assert issued(issuer, client_id) == 2


@pytest.mark.lake
async def test_invalid_client_names_endpoint_and_error(issuer: LocalIssuer, tmp_path: Path) -> None:
    """A wrong secret: IssuerError with the endpoint, the status and the OAuth error code.
    The secret files are re-read when they change: fixing the secret fixes the client."""
    _, id_file, secret_file = new_client(issuer)
    wrong = tmp_path / "secret"
    wrong.write_text("not-the-secret-" + "x" * 20)
    client = OidcClient(settings(issuer, id_file, wrong))
    with pytest.raises(IssuerError) as caught:
        await client.issue(SCOPE, AUDIENCE)
    message = str(caught.value)
    assert message.startswith(f"token endpoint {issuer.token_endpoint}: HTTP 401 invalid_client")
    wrong.write_text(secret_file.read_text())
    assert (await client.issue(SCOPE, AUDIENCE)).expires_at is not None


async def test_issuer_down_is_an_issuer_error(pki: TestPki, tmp_path: Path) -> None:
    """Nothing listening: IssuerError naming the endpoint; concurrent callers all get it."""
    (tmp_path / "id").write_text("probe")
    (tmp_path / "secret").write_text("secret-value-123456")
    endpoint = f"https://127.0.0.1:{free_ports(1)[0]}/token"
    config = OidcSettings(
        token_endpoint=endpoint,
        client_id_file=tmp_path / "id",
        client_secret_file=tmp_path / "secret",
        ca_dir=pki.ca_dir,
    )
    client = OidcClient(config)
    results = await asyncio.gather(
        *(client.issue(SCOPE, None) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, IssuerError) for r in results)
    assert str(results[0]).startswith(f"token endpoint {endpoint}: cannot connect")


@pytest.mark.lake
async def test_wrong_ca_is_a_tls_issuer_error(issuer: LocalIssuer, tmp_path: Path) -> None:
    """Verification is on: a certificate from a CA we do not trust fails the request."""
    other = make_test_pki(tmp_path / "other-pki")
    _, id_file, secret_file = new_client(issuer)
    client = OidcClient(settings(issuer, id_file, secret_file, ca_dir=other.ca_dir))
    with pytest.raises(IssuerError, match=r"^token endpoint https://127\.0\.0\.1:\d+/token: TLS"):
        await client.issue(SCOPE, AUDIENCE)


@pytest.mark.lake
async def test_missing_secret_file_is_a_credential_error(
    issuer: LocalIssuer, tmp_path: Path
) -> None:
    """A client file that cannot be read is a local problem, not the issuer's."""
    _, id_file, _ = new_client(issuer)
    missing = tmp_path / "absent"
    client = OidcClient(settings(issuer, id_file, missing))
    with pytest.raises(CredentialError) as caught:
        await client.issue(SCOPE, AUDIENCE)
    assert not isinstance(caught.value, IssuerError)
    assert (
        str(caught.value) == f"cannot read client secret file {missing}: No such file or directory"
    )


@pytest.mark.lake
async def test_failed_refresh_keeps_a_valid_token(
    issuer: LocalIssuer, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While the current token is still valid, a failed renewal keeps it (and warns); once it
    has expired, the failure is raised."""
    _, id_file, secret_file = new_client(issuer, lifetime=1200)
    secret = tmp_path / "secret"
    secret.write_text(secret_file.read_text())
    client = OidcClient(settings(issuer, id_file, secret))
    first = await client.issue(SCOPE, AUDIENCE)
    secret.write_text("revoked-secret-value-000")
    clock.offset = 1150.0
    assert await client.issue(SCOPE, AUDIENCE) == first
    assert "keeping the current token" in caplog.text
    clock.offset = 1201.0
    with pytest.raises(IssuerError, match="invalid_client"):
        await client.issue(SCOPE, AUDIENCE)


@pytest.mark.lake
async def test_secrets_and_tokens_never_shown(
    issuer: LocalIssuer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the client secret nor an issued token appears in a log record (DEBUG), an
    exception message, a repr or a description."""
    caplog.set_level(logging.DEBUG)
    _, id_file, secret_file = new_client(issuer)
    secret = secret_file.read_text().strip()
    source = OidcToken(OidcClient(settings(issuer, id_file, secret_file)), SCOPE, AUDIENCE)
    token = (await source.token()).reveal()
    wrong = tmp_path / "secret"
    wrong.write_text(secret + "-but-wrong")
    errors = []
    for client in (
        OidcClient(settings(issuer, id_file, wrong)),
        OidcClient(settings(issuer, id_file, secret_file, ca_dir=tmp_path)),
    ):
        with pytest.raises(IssuerError) as caught:
            await client.issue(SCOPE, AUDIENCE)
        errors.append(str(caught.value))
    shown = "\n".join(
        [
            caplog.text,
            *errors,
            repr(source),
            source.describe(),
            repr(source.client.cached(SCOPE, AUDIENCE)),
        ]
    )
    assert "token issued by" in caplog.text
    for value in (secret, token, token.split(".")[1]):
        assert value not in shown


async def test_credential_step_is_unknown_issuer(pki: TestPki, tmp_path: Path) -> None:
    """A probe whose issuer is down: the credential step is UNKNOWN with reason issuer
    (the endpoint was not judged) and every later step is SKIPPED."""
    (tmp_path / "id").write_text("probe")
    (tmp_path / "secret").write_text("secret-value-123456")
    port, issuer_port = free_ports(2)
    config = OidcSettings(
        token_endpoint=f"https://127.0.0.1:{issuer_port}/token",
        client_id_file=tmp_path / "id",
        client_secret_file=tmp_path / "secret",
    )
    token = OidcToken(OidcClient(config, pki.ca_dir), SCOPE)
    target = Target("SITE", "webdav", f"davs://127.0.0.1:{port}", "/t", token=token)
    tokens, outcome = await load_tokens(target)
    assert tokens == [None]
    assert (outcome.status, outcome.reason) == (Status.UNKNOWN, Reason.ISSUER)
    assert outcome.detail.startswith(f"SITE/webdav: OIDC client {tmp_path / 'id'} at https://")
    log = logging.getLogger("test.oidc")
    run = await run_probe(PROBE_TYPE, target, WebdavParams(), timeout=10, probe_host="h", log=log)
    result = run.result
    assert (result.status, result.reason) == (Status.UNKNOWN, Reason.ISSUER)
    assert result.steps[0].name == "credential"
    assert {s.status for s in result.steps[1:]} == {Status.SKIPPED}


async def test_missing_client_file_step_is_unknown_credential(tmp_path: Path) -> None:
    """A client file that cannot be read: UNKNOWN with reason credential, naming the file."""
    config = OidcSettings(
        token_endpoint="https://127.0.0.1:1/token",
        client_id_file=tmp_path / "id",
        client_secret_file=tmp_path / "secret",
    )
    target = Target(
        "SITE", "x", "roots://127.0.0.1:1", "/t", token=OidcToken(OidcClient(config), SCOPE)
    )
    _, outcome = await load_tokens(target)
    assert (outcome.status, outcome.reason) == (Status.UNKNOWN, Reason.CREDENTIAL)
    assert f"cannot read client id file {tmp_path / 'id'}" in outcome.detail


@pytest.mark.parametrize("which", ["id", "secret"])
async def test_client_file_with_control_characters(tmp_path: Path, which: str) -> None:
    """A client id or secret file with control characters inside (two lines, a NUL) is a
    local problem: UNKNOWN credential naming the file, never its content. Other printable
    characters are fine (the id `probe client` passes): both are form- and base64-encoded
    before they are sent."""
    (tmp_path / "id").write_text("probe client\n")
    (tmp_path / "secret").write_text('s3cr3t/+= "\u00fc"!\n')
    (tmp_path / which).write_text("first-line\r\nsecond-line\x00")
    config = OidcSettings(
        token_endpoint="https://127.0.0.1:1/token",
        client_id_file=tmp_path / "id",
        client_secret_file=tmp_path / "secret",
    )
    target = Target(
        "SITE", "x", "davs://127.0.0.1:1", "/t", token=OidcToken(OidcClient(config), SCOPE)
    )
    _, outcome = await load_tokens(target)
    assert (outcome.status, outcome.reason) == (Status.UNKNOWN, Reason.CREDENTIAL)
    assert f"client {which} file {tmp_path / which} contains control characters" in outcome.detail
    assert "line" not in outcome.detail.replace(str(tmp_path), "")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"access_token": "tok\r\nX-Injected: 1"}, "the access_token contains control characters"),
        ({"access_token": "tok en"}, "the access_token has characters not allowed in a token"),
        ({"access_token": "tok", "token_type": "x" * 1000}, "token_type 'xxxxxxxx"),
        ({"access_token": ["tok"]}, "the answer has no access_token"),
    ],
)
def test_unusable_issued_token(answer: dict[str, object], problem: str) -> None:
    """An access token that cannot go into an Authorization header is the issuer's fault:
    IssuerError naming the endpoint and what is wrong, clipped, never the value."""
    with pytest.raises(IssuerError) as caught:
        oidc._issued(answer, "https://i/t", 0.0)
    message = str(caught.value)
    assert message.startswith(f"token endpoint https://i/t: {problem}")
    assert len(message) < 120


@pytest.mark.parametrize(
    ("lifetime", "expires_at"),
    [(600, 1600.0), (0, None), (-5, None), ("3600", None), (True, None), (10**400, None),
     (float("inf"), None), (float("nan"), None)],
)  # fmt: skip
def test_expires_in_garbage_is_unknown(lifetime: object, expires_at: float | None) -> None:
    """expires_in must be a positive number below ten years; anything else (a string, a
    negative, inf, NaN, 10^400) means the lifetime is unknown, not an error."""
    token = oidc._issued({"access_token": "tok", "expires_in": lifetime}, "https://i/t", 1000.0)
    assert token.expires_at == expires_at


def test_clients_are_shared_per_settings(tmp_path: Path) -> None:
    """One client per (settings, default CA dir, refresh_before), however it is called; the
    least recently used is forgotten beyond MAX_CLIENTS."""
    config = OidcSettings(
        issuer="https://iam.example.org",
        client_id_file=tmp_path / "id",
        client_secret_file=tmp_path / "secret",
    )
    same = OidcSettings.model_validate(config.model_dump())
    clients = OidcClients()
    client = clients.client(config, tmp_path)
    assert clients.client(same, tmp_path, 60.0) is client
    assert clients.client(settings=same, default_ca_dir=tmp_path, refresh_before=60) is client
    assert clients.client(config, None) is not client
    assert clients.client(config, tmp_path, 30.0) is not client
    assert OidcClients().client(config, tmp_path) is not client  # another owner's
    for n in range(OidcClients.MAX_CLIENTS):
        clients.client(config, tmp_path / str(n))
    assert len(clients) == OidcClients.MAX_CLIENTS
    assert clients.client(config, tmp_path) is not client  # forgotten: the oldest


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"token_endpoint": "http://iam.example.org/token"}, "expected an https:// URL"),
        ({"issuer": "iam.example.org"}, "expected an https:// URL"),
        ({"issuer": "https://u:p@iam.example.org"}, "credentials are not allowed in the URL"),
        ({}, "set exactly one of token_endpoint or issuer"),
        (
            {"issuer": "https://iam.example.org", "token_endpoint": "https://iam.example.org/t"},
            "set exactly one of token_endpoint or issuer",
        ),
        ({"issuer": "https://iam.example.org", "timeout": 0}, "greater than 0"),
        ({"issuer": "https://iam.example.org", "client_secret": "x"}, "Extra inputs"),
    ],
)
def test_settings_validation(fields: dict[str, object], message: str) -> None:
    """Only https URLs, exactly one of them, a positive timeout, no unknown keys."""
    with pytest.raises(ValidationError, match=message):
        OidcSettings.model_validate({"client_id_file": "/i", "client_secret_file": "/s", **fields})


def test_config_builds_shared_oidc_sources(tmp_path: Path) -> None:
    """auth.oidc gives an OidcToken on the process-wide client; its CA directory defaults to
    the endpoint's, then defaults.ca_dir; a probe's own auth replaces the endpoint's."""
    oidc_auth = {
        "issuer": "https://iam.example.org",
        "client_id_file": str(tmp_path / "id"),
        "client_secret_file": str(tmp_path / "secret"),
        "scope": "storage.read:/  storage.create:/",
        "audience": AUDIENCE,
        "refresh_before": "2m",
    }
    text = yaml.safe_dump(
        {
            "defaults": {"ca_dir": str(tmp_path / "default-ca")},
            "sites": [
                {
                    "name": "A",
                    "endpoints": [
                        {"name": "own-ca", "url": "roots://a:1", "ca_dir": str(tmp_path / "a-ca"),
                         "auth": {"oidc": oidc_auth}},
                        {"name": "plain", "url": "roots://b:1", "auth": {"oidc": oidc_auth}},
                    ],
                }
            ],
            "probes": [
                {"name": "xrootd", "type": "xrootd"},
                {"name": "xr-file", "type": "xrootd", "auth": {"token_file": "/run/t"}},
            ],
        }
    )  # fmt: skip
    clients = OidcClients()
    jobs = {job.key.job_id: job for job in build_plan(parse_config(text), oidc=clients)}
    config = OidcSettings(issuer="https://iam.example.org", client_id_file=tmp_path / "id",
                          client_secret_file=tmp_path / "secret")  # fmt: skip
    for endpoint, ca_dir in (("own-ca", "a-ca"), ("plain", "default-ca")):
        target = jobs[f"xrootd|A|{endpoint}"].target
        assert isinstance(target, Target)
        assert isinstance(target.token, OidcToken)
        assert target.token.client is clients.client(config, tmp_path / ca_dir, 120.0)
        assert (target.token.scope, target.token.audience) == (
            "storage.read:/ storage.create:/",
            AUDIENCE,
        )
        own = jobs[f"xr-file|A|{endpoint}"].target
        assert isinstance(own, Target)
        assert isinstance(own.token, FileToken)
