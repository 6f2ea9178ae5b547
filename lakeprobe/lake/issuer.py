"""A local OIDC token issuer for the lake (OAuth2 client_credentials only), run as its own
process: `python -m lakeprobe.lake.issuer <state_dir>` (files: lakeprobe.lake.issuer_keys).
HTTPS on 127.0.0.1 only. Token values and client secrets never reach the log."""

from __future__ import annotations

import argparse
import base64
import binascii
import errno
import hmac
import logging
import re
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from lakeprobe.lake.issuer_keys import DEFAULT_AUDIENCE, IssuerState, jwks, mint

log = logging.getLogger("lakeprobe.lake.issuer")

STATE = web.AppKey("state", IssuerState)
# storage.* take a path (storage.read:/dir); discovery lists the bare names.
SCOPES = ["openid", "wlcg.groups", "storage.read", "storage.create", "storage.modify",
          "storage.stage"]  # fmt: skip
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 scope-token
_DUMMY_SECRET = "x" * 43  # compared against for unknown clients, so timing does not tell


class OAuthError(Exception):
    """An RFC 6749 section 5.2 error answer."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status, self.error, self.description = status, error, description

    def response(self) -> web.Response:
        body = {"error": self.error, "error_description": self.description}
        response = web.json_response(body, status=self.status, headers=_NO_STORE)
        if self.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="lakeprobe-lake"'
        return response


_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def discovery(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks",
        "token_endpoint": f"{issuer}/token",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": SCOPES,
        "response_types_supported": ["token"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "claims_supported": ["sub", "aud", "exp", "iat", "nbf", "iss", "jti", "scope", "wlcg.ver"],
    }


async def handle_discovery(request: web.Request) -> web.Response:
    return web.json_response(discovery(request.app[STATE].config()["issuer"]))


async def handle_jwks(request: web.Request) -> web.Response:
    return web.json_response(jwks(request.app[STATE].private_key()))


def _basic_credentials(header: str) -> tuple[str, str]:
    """client_secret_basic: both parts form-urlencoded before base64 (RFC 6749 2.3.1)."""
    try:
        decoded = base64.b64decode(header[len("basic ") :], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(400, "invalid_request", "malformed Basic credentials") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError(400, "invalid_request", "malformed Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


def _client(request: web.Request, form: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The authenticated client's id and entry; one authentication method only."""
    header = request.headers.get("Authorization", "")
    in_form = "client_secret" in form
    if header.lower().startswith("basic "):
        if in_form:
            raise OAuthError(400, "invalid_request", "more than one client authentication")
        client_id, secret = _basic_credentials(header)
    elif in_form:
        client_id, secret = form.get("client_id", ""), form["client_secret"]
    else:
        raise OAuthError(401, "invalid_client", "client authentication required")
    entry = request.app[STATE].clients().get(client_id)  # re-read: clients may be added
    expected = str(entry["secret"]) if entry is not None else _DUMMY_SECRET
    if not hmac.compare_digest(secret.encode(), expected.encode()) or entry is None:
        raise OAuthError(401, "invalid_client", "client authentication failed")
    return client_id, entry


def _audience(form: dict[str, str]) -> str | list[str]:
    values = form.get("audience", "").split()
    if not values:
        return DEFAULT_AUDIENCE
    return values[0] if len(values) == 1 else values


async def handle_token(request: web.Request) -> web.Response:
    try:
        if request.content_type != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request", "expected a form-urlencoded body")
        form = {key: str(value) for key, value in (await request.post()).items()}
        client_id, entry = _client(request, form)
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError(400, "invalid_request", "grant_type is missing")
        if grant != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "only client_credentials")
        scopes = form.get("scope", "").split()
        if not all(_SCOPE.fullmatch(scope) for scope in scopes):
            raise OAuthError(400, "invalid_scope", "malformed scope")
    except OAuthError as exc:
        log.info("token request refused: %s", exc.error)
        return exc.response()
    state = request.app[STATE]
    config = state.config()
    lifetime = int(entry.get("lifetime") or config["default_lifetime"])
    scope, audience = " ".join(scopes), _audience(form)
    token = mint(state.private_key(), config["issuer"], client_id, scope, audience, lifetime)
    log.info("token issued: client %s, scope %r, aud %r, lifetime %d s",
             client_id, scope, audience, lifetime)  # fmt: skip
    body = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": scope}
    return web.json_response(body, headers=_NO_STORE)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, path (no query string), status."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        log.info("%s %s %d", request.method, request.path, exc.status)
        raise
    log.info("%s %s %d", request.method, request.path, response.status)
    return response


def make_app(state: IssuerState) -> web.Application:
    app = web.Application(middlewares=[log_requests])
    app[STATE] = state
    app.router.add_get("/.well-known/openid-configuration", handle_discovery)
    app.router.add_get("/jwks", handle_jwks)
    app.router.add_post("/token", handle_token)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("state_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    state = IssuerState(args.state_dir)
    config = state.config()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config["host_cert"], config["host_key"])
    log.info("issuer %s starting", config["issuer"])
    try:
        web.run_app(
            make_app(state), host="127.0.0.1", port=int(config["port"]), ssl_context=context,
            access_log=None, print=None, shutdown_timeout=2,
        )  # fmt: skip
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        log.error("127.0.0.1:%d: address already in use", config["port"])
        return 3
    log.info("issuer stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
