"""The lake's local OIDC issuer (LocalIssuer): discovery and JWKS over HTTPS verified with the
lake CA, the client_credentials token endpoint and its RFC 6749 errors, and a log that never
holds secrets or tokens. No XRootD needed."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from lakeprobe.lake import free_ports, make_test_pki
from lakeprobe.lake.issuer_keys import DEFAULT_AUDIENCE
from lakeprobe.lake.issuer_process import LocalIssuer

pytestmark = pytest.mark.lake


@pytest.fixture(scope="module")
def issuer(lake_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIssuer]:
    base = tmp_path_factory.mktemp("issuer")
    local = LocalIssuer(base / "issuer", make_test_pki(base / "pki"), free_ports(1)[0])
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def ca(issuer: LocalIssuer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(issuer.pki.ca_cert))


@pytest.fixture(scope="module")
def client(issuer: LocalIssuer) -> tuple[str, str]:
    """A client registered after the issuer started (clients.json is re-read per request)."""
    id_path, secret_path = issuer.add_client("probe", lifetime=600)
    return id_path.read_text(), secret_path.read_text()


def get_json(url: str, ca: ssl.SSLContext) -> Any:
    with urllib.request.urlopen(url, context=ca, timeout=10) as answer:
        assert answer.status == 200
        return json.load(answer)


def post_token(
    issuer: LocalIssuer, ca: ssl.SSLContext, form: dict[str, str],
    basic: tuple[str, str] | None = None, content_type: str | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:  # fmt: skip
    """(status, JSON body, headers) of a POST to the token endpoint."""
    headers = {}
    if basic is not None:
        pair = ":".join(urllib.parse.quote_plus(part) for part in basic)
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    if content_type is not None:
        headers["Content-Type"] = content_type
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(issuer.token_endpoint, data, headers, method="POST")
    try:
        with urllib.request.urlopen(request, context=ca, timeout=10) as answer:
            return answer.status, json.load(answer), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc), dict(exc.headers)


def test_discovery_and_jwks_over_verified_https(issuer: LocalIssuer, ca: ssl.SSLContext) -> None:
    """The discovery document names the issuer URL (no trailing slash), its JWKS and token
    endpoint; the JWKS is the ES256 key the lake seeds into sites; the host certificate
    verifies against the lake CA only."""
    document = get_json(f"{issuer.url}/.well-known/openid-configuration", ca)
    assert issuer.url == f"https://127.0.0.1:{issuer.port}"
    assert document["issuer"] == issuer.url
    assert document["jwks_uri"] == f"{issuer.url}/jwks"
    assert document["token_endpoint"] == issuer.token_endpoint == f"{issuer.url}/token"
    assert document["grant_types_supported"] == ["client_credentials"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post"}  # fmt: skip
    assert {"openid", "wlcg.groups", "storage.read", "storage.create", "storage.modify"} <= set(
        document["scopes_supported"]
    )
    keys = get_json(document["jwks_uri"], ca)
    assert keys == issuer.jwks()
    (key,) = keys["keys"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert key["kid"]
    with pytest.raises(urllib.error.URLError) as failure:
        urllib.request.urlopen(issuer.url + "/jwks", context=ssl.create_default_context())
    assert isinstance(failure.value.reason, ssl.SSLCertVerificationError)


@pytest.mark.parametrize("auth", ["client_secret_basic", "client_secret_post"])
def test_token_carries_requested_claims(
    issuer: LocalIssuer, ca: ssl.SSLContext, client: tuple[str, str], auth: str
) -> None:
    """200 {access_token, token_type Bearer, expires_in, scope}; the token verifies (ES256)
    against the served JWKS and carries sub, aud (a list for several), scope, wlcg.ver,
    iss, jti; exp = iat + the client's lifetime."""
    scope = "storage.read:/lakeprobe storage.create:/lakeprobe/x openid wlcg.groups"
    form = {"grant_type": "client_credentials", "scope": scope, "audience": "https://a https://b"}
    if auth == "client_secret_post":
        form |= {"client_id": client[0], "client_secret": client[1]}
    status, body, headers = post_token(issuer, ca, form, client if auth.endswith("basic") else None)
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 600, scope)
    jwks = get_json(f"{issuer.url}/jwks", ca)
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(body["access_token"], key, algorithms=["ES256"], audience="https://b",
                        issuer=issuer.url)  # fmt: skip
    assert claims["sub"] == client[0]
    assert claims["aud"] == ["https://a", "https://b"]
    assert (claims["scope"], claims["wlcg.ver"]) == (scope, "1.0")
    assert claims["jti"]
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 5
    assert jwt.get_unverified_header(body["access_token"])["kid"] == jwks["keys"][0]["kid"]


def test_token_defaults(issuer: LocalIssuer, ca: ssl.SSLContext) -> None:
    """No audience: the WLCG "any" audience (a string); no client lifetime: the issuer's
    default (1200 s)."""
    id_path, secret_path = issuer.add_client("plain")
    form = {"grant_type": "client_credentials", "scope": "storage.read:/"}
    status, body, _ = post_token(issuer, ca, form, (id_path.read_text(), secret_path.read_text()))
    assert (status, body["expires_in"]) == (200, 1200)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == DEFAULT_AUDIENCE


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("bad-secret", 401, "invalid_client"),
        ("unknown-client", 401, "invalid_client"),
        ("no-credentials", 401, "invalid_client"),
        ("wrong-grant", 400, "unsupported_grant_type"),
        ("no-grant", 400, "invalid_request"),
        ("two-auth-methods", 400, "invalid_request"),
        ("json-body", 400, "invalid_request"),
    ],
)
def test_token_errors(
    issuer: LocalIssuer, ca: ssl.SSLContext, client: tuple[str, str], case: str, status: int,
    error: str,
) -> None:  # fmt: skip
    """RFC 6749 5.2 errors: JSON {"error": ...}, no-store; 401 carries WWW-Authenticate."""
    form = {"grant_type": "client_credentials", "scope": "storage.read:/"}
    basic: tuple[str, str] | None = client
    content_type = None
    if case == "bad-secret":
        basic = (client[0], client[1] + "x")
    elif case == "unknown-client":
        basic = ("nobody", client[1])
    elif case == "no-credentials":
        basic = None
    elif case == "wrong-grant":
        form["grant_type"] = "password"
    elif case == "no-grant":
        del form["grant_type"]
    elif case == "two-auth-methods":
        form |= {"client_id": client[0], "client_secret": client[1]}
    else:
        content_type = "application/json"
    answer, body, headers = post_token(issuer, ca, form, basic, content_type)
    assert (answer, body["error"]) == (status, error)
    assert "access_token" not in body
    assert headers["Cache-Control"] == "no-store"
    assert ("WWW-Authenticate" in headers) == (status == 401)


def test_log_holds_no_secrets(
    issuer: LocalIssuer, ca: ssl.SSLContext, client: tuple[str, str]
) -> None:
    """The issuer logs requests and issued claims, never secrets or token values."""
    form = {"grant_type": "client_credentials", "scope": "storage.read:/"}
    status, body, _ = post_token(issuer, ca, form, client)
    post_token(issuer, ca, form, (client[0], client[1] + "x"))
    assert status == 200
    text = issuer.log_path.read_text()
    assert "token issued: client probe" in text
    assert "token request refused: invalid_client" in text
    assert client[1] not in text
    assert body["access_token"].split(".")[2] not in text
    assert client[1] not in repr(issuer)


def test_client_files_are_private(issuer: LocalIssuer, client: tuple[str, str]) -> None:
    """client_id and client_secret files, the clients list and the signing key are 0600."""
    directory = issuer.base_dir / "clients" / client[0]
    paths = [directory / "client_id", directory / "client_secret", issuer.base_dir / "clients.json"]
    paths += [path for path in issuer.base_dir.glob("*.pem")]
    assert len(paths) == 4
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in paths)


def test_stop_refuses_connections_and_start_again(issuer: LocalIssuer, ca: ssl.SSLContext,
                                                  client: tuple[str, str]) -> None:  # fmt: skip
    """Stopped: the token endpoint refuses connections; start() again serves on the same URL."""
    url = issuer.url
    issuer.stop()
    assert not issuer.running
    with pytest.raises(urllib.error.URLError) as failure:
        post_token(issuer, ca, {"grant_type": "client_credentials"}, client)
    assert isinstance(failure.value.reason, ConnectionRefusedError)
    issuer.start()
    assert (issuer.running, issuer.url) == (True, url)
    status, _, _ = post_token(issuer, ca, {"grant_type": "client_credentials"}, client)
    assert status == 200


def test_start_retries_when_the_port_is_taken(lake_binaries: None, tmp_path: Path) -> None:
    """On "address already in use", start() picks a new port, and the issuer URL follows it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        local = LocalIssuer(tmp_path / "issuer", make_test_pki(tmp_path / "pki"), port)
        try:
            local.start()
            assert local.port != port
            assert local.url == f"https://127.0.0.1:{local.port}"
            assert "address already in use" in local.log_path.read_text()
        finally:
            local.stop()
