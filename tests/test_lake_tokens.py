"""Tokens on the local lake: the local OIDC issuer (HTTPS, client_credentials) and what real
XRootD 5.5.3 (XrdAccSciTokens, scitokens-cpp 0.7.3) enforces with its tokens, over https://
and root://. The observed answers are pinned exactly: a compliance probe relies on them.

Denied over https:// (token in `Authorization: Bearer`): HTTP 403, body
  "Unable to <verb> <path>; permission denied\\n".
Denied over root:// (token as `?authz=` CGI): XRootDStatus status 1 (stError), code 400
  (errErrorResponse), errno 3010 (kXR_NotAuthorized), message
  "[ERROR] Server responded with an error: [3010] Unable to <verb> <path>; permission denied".
<verb>: `open` (read), `create` (new file and overwrite alike), `remove` (delete), `locate`
(a stat: XrdHttp stats before a DELETE, so a DELETE over https:// without storage.read is
refused as `locate`, even with storage.modify).
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.lake.issuer_keys import DEFAULT_AUDIENCE, mint
from lakeprobe.lake.issuer_process import LocalIssuer
from lakeprobe.probes.clients.xrdasync import client_module

pytestmark = pytest.mark.lake

TOP = LocalLake.test_dir  # "/lakeprobe"
READ, CREATE, MODIFY = (f"storage.{verb}:{TOP}" for verb in ("read", "create", "modify"))
OLD, NEW = b"old contents\n", b"new contents\n"
PROTOCOLS = ["https", "root"]


@pytest.fixture(scope="module")
def token_lake_m(
    lake_binaries: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalLake]:
    """One protected one-site lake for the whole module (tests use their own directories)."""
    with LocalLake(1, base_dir=tmp_path_factory.mktemp("tokens"), token_sites=True) as lake:
        yield lake


@pytest.fixture(scope="module")
def site(token_lake_m: LocalLake) -> XrootdSite:
    return token_lake_m.sites[0]


@pytest.fixture(scope="module")
def issuer(token_lake_m: LocalLake) -> LocalIssuer:
    assert token_lake_m.issuer is not None
    return token_lake_m.issuer


@pytest.fixture(scope="module")
def ca(token_lake_m: LocalLake) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(token_lake_m.pki.ca_cert))


@pytest.fixture
def area(site: XrootdSite) -> str:
    """A fresh directory under /lakeprobe holding `f` (OLD); `new` does not exist."""
    path = f"{TOP}/{uuid.uuid4().hex[:12]}"
    site.put_file(f"{path}/f", OLD)
    return path


@dataclass(frozen=True, slots=True)
class Answer:
    ok: bool
    code: int  # HTTP status, or XrdCl code
    errno: int = 0  # XRootD server error (kXR_*), 0 over HTTP
    message: str = ""
    body: bytes = b""


def https(site: XrootdSite, ca: ssl.SSLContext, op: str, path: str, token: str | None) -> Answer:
    method, data = {"read": ("GET", None), "create": ("PUT", NEW), "overwrite": ("PUT", NEW),
                    "delete": ("DELETE", None)}[op]  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(site.https_url + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, context=ca, timeout=10) as answer:
            return Answer(True, answer.status, body=answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(False, exc.code, message=exc.read().decode())


def root(site: XrootdSite, op: str, path: str, token: str | None) -> Answer:
    client = client_module()
    authz = f"?authz={token}" if token else ""
    if op == "delete":
        status, _ = client.FileSystem(site.root_url).rm(path + authz)
        body = None
    else:
        flags = client.flags.OpenFlags
        mode = {"read": flags.READ, "create": flags.NEW, "overwrite": flags.DELETE}[op]
        handle = client.File()
        status, _ = handle.open(f"{site.root_url}/{path}{authz}", mode)
        body = None
        if status.ok:
            status, body = handle.read() if op == "read" else handle.write(NEW)
            handle.close()
    if status.ok:
        return Answer(True, 0, body=body or b"")
    return Answer(False, int(status.code), int(status.errno), str(status.message).strip())


def access(protocol: str, site: XrootdSite, ca: ssl.SSLContext, op: str, path: str,
           token: str | None) -> Answer:  # fmt: skip
    return https(site, ca, op, path, token) if protocol == "https" else root(site, op, path, token)


def assert_denied(protocol: str, answer: Answer, verb: str, path: str) -> None:
    text = f"Unable to {verb} {path}; permission denied"
    if protocol == "https":
        assert (answer.ok, answer.code, answer.message) == (False, 403, text + "\n")
    else:
        message = f"[ERROR] Server responded with an error: [3010] {text}"
        assert (answer.ok, answer.code, answer.errno, answer.message) == (False, 400, 3010, message)


# op -> the file it works on, and the data the file holds afterwards when allowed
_EFFECT = {"read": ("f", OLD), "create": ("new", NEW), "overwrite": ("f", NEW),
           "delete": ("f", None)}  # fmt: skip


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("scope", "op", "https_verb", "root_verb"),
    [
        pytest.param(None, "read", "open", "open", id="none-read"),
        pytest.param(None, "create", "create", "create", id="none-create"),
        pytest.param(None, "delete", "locate", "remove", id="none-delete"),
        pytest.param(READ, "read", None, None, id="read-read"),
        pytest.param(READ, "create", "create", "create", id="read-create"),
        pytest.param(READ, "overwrite", "create", "create", id="read-overwrite"),
        pytest.param(READ, "delete", "remove", "remove", id="read-delete"),
        pytest.param(CREATE, "read", "open", "open", id="create-read"),
        pytest.param(CREATE, "create", None, None, id="create-create"),
        pytest.param(CREATE, "overwrite", "create", "create", id="create-overwrite"),
        pytest.param(CREATE, "delete", "locate", "remove", id="create-delete"),
        pytest.param(MODIFY, "read", "open", "open", id="modify-read"),
        pytest.param(MODIFY, "create", None, None, id="modify-create"),
        pytest.param(MODIFY, "overwrite", None, None, id="modify-overwrite"),
        pytest.param(MODIFY, "delete", "locate", None, id="modify-delete"),
        pytest.param(f"{READ} {MODIFY}", "delete", None, None, id="read+modify-delete"),
    ],
)
def test_storage_scopes(
    site: XrootdSite, issuer: LocalIssuer, ca: ssl.SSLContext, area: str, protocol: str,
    scope: str | None, op: str, https_verb: str | None, root_verb: str | None,
) -> None:  # fmt: skip
    """Allowed (verb None) or denied as the module docstring says, and the disk agrees.
    storage.read reads only; storage.create creates new files only (overwrite and delete
    need storage.modify); storage.modify does not read. A DELETE over https:// needs
    storage.read too (XrdHttp stats first: 403 "Unable to locate"); rm over root:// does not."""
    token = issuer.mint(scope, site.audience, 300) if scope else None
    name, after = _EFFECT[op]
    answer = access(protocol, site, ca, op, f"{area}/{name}", token)
    local = site.local_path(f"{area}/{name}")
    verb = https_verb if protocol == "https" else root_verb
    if verb is None:
        assert answer.ok, answer
        assert (local.read_bytes() == after) if after else (not local.exists())
        assert answer.body == OLD or op != "read"
    else:
        assert_denied(protocol, answer, verb, f"{area}/{name}")
        assert (local.read_bytes() == OLD) if name == "f" else (not local.exists())


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    flipped = "A" if signature[5] != "A" else "B"
    return ".".join([header, payload, signature[:5] + flipped + signature[6:]])


def _foreign(scope: str, audience: str) -> str:
    """Signed by a key the site does not know, for an issuer it is not configured for."""
    key = ec.generate_private_key(ec.SECP256R1())
    return mint(key, "https://127.0.0.1:1", "intruder", scope, audience, 300)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", ["wrong-audience", "expired", "tampered", "garbage", "foreign"])
def test_bad_tokens_denied(
    site: XrootdSite, issuer: LocalIssuer, ca: ssl.SSLContext, area: str, protocol: str,
    kind: str,
) -> None:  # fmt: skip
    """A read with storage.read:/lakeprobe is denied (https 403 / root 400, 3010 "Unable to
    open") when the token has the wrong audience, expired before the server ever saw it
    (lifetime -60 s), has a tampered signature, is not a JWT, or comes from an unknown issuer."""
    token = {
        "wrong-audience": lambda: issuer.mint(READ, "https://127.0.0.1:1", 300),
        "expired": lambda: issuer.mint(READ, site.audience, -60),
        "tampered": lambda: _tampered(issuer.mint(READ, site.audience, 300)),
        "garbage": lambda: "garbage",
        "foreign": lambda: _foreign(READ, site.audience),
    }[kind]()
    assert_denied(protocol, access(protocol, site, ca, "read", f"{area}/f", token), "open",
                  f"{area}/f")  # fmt: skip


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_any_audience_accepted(
    site: XrootdSite, issuer: LocalIssuer, ca: ssl.SSLContext, area: str, protocol: str
) -> None:
    """scitokens-cpp accepts the WLCG "any" audience (the issuer's default) besides the
    configured one: https 200, root OK."""
    token = issuer.mint(READ, DEFAULT_AUDIENCE, 300)
    assert access(protocol, site, ca, "read", f"{area}/f", token).body == OLD


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_path_scope_is_a_string_prefix(
    site: XrootdSite, issuer: LocalIssuer, ca: ssl.SSLContext, area: str, protocol: str
) -> None:
    """storage.read:<area>/a reads <area>/a/f and is denied <area>/b/f (https 403, root 400,
    3010 "Unable to open"); but it also reads <area>/ab/f: XRootD 5.5.3 matches scope paths
    as string prefixes, not path components (a known defect, fixed upstream later; a
    compliance probe should flag it)."""
    for sub in ("a", "b", "ab"):
        site.put_file(f"{area}/{sub}/f", OLD)
    token = issuer.mint(f"storage.read:{area}/a", site.audience, 300)
    assert access(protocol, site, ca, "read", f"{area}/a/f", token).body == OLD
    assert_denied(protocol, access(protocol, site, ca, "read", f"{area}/b/f", token), "open",
                  f"{area}/b/f")  # fmt: skip
    assert access(protocol, site, ca, "read", f"{area}/ab/f", token).body == OLD  # the defect


def test_seen_token_outlives_expiry(
    site: XrootdSite, issuer: LocalIssuer, ca: ssl.SSLContext, area: str
) -> None:
    """A token the server accepted while valid is still accepted just after it expired
    (XRootD 5.5.3 caches validated tokens ~60 s): expiry must be probed with a token the
    server has never seen (test_bad_tokens_denied[expired])."""
    token = issuer.mint(READ, site.audience, 2)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    for protocol in PROTOCOLS:
        assert access(protocol, site, ca, "read", f"{area}/f", token).ok
    time.sleep(max(0.0, exp + 1.1 - time.time()))
    for protocol in PROTOCOLS:
        assert access(protocol, site, ca, "read", f"{area}/f", token).ok  # still accepted


def _request_token(issuer: LocalIssuer, ca: ssl.SSLContext, form: dict[str, str],
                   credentials: tuple[Path, Path]) -> dict[str, Any]:  # fmt: skip
    pair = f"{credentials[0].read_text()}:{credentials[1].read_text()}"
    headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(issuer.token_endpoint, data, headers, method="POST")
    with urllib.request.urlopen(request, context=ca, timeout=10) as answer:
        body: dict[str, Any] = json.load(answer)
        return body


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_issued_token_opens_the_site(
    token_lake_m: LocalLake, site: XrootdSite, issuer: LocalIssuer, ca: ssl.SSLContext,
    area: str, protocol: str,
) -> None:  # fmt: skip
    """A token from /token (client from lake.add_probe_client, audience = site.audience)
    reads and creates under /lakeprobe; the site's key cache was seeded with the JWKS."""
    credentials = token_lake_m.add_probe_client(f"probe-{protocol}")
    form = {"grant_type": "client_credentials", "audience": site.audience,
            "scope": f"{READ} {CREATE}"}  # fmt: skip
    token = _request_token(issuer, ca, form, credentials)["access_token"]
    assert access(protocol, site, ca, "read", f"{area}/f", token).body == OLD
    assert access(protocol, site, ca, "create", f"{area}/new", token).ok
    assert site.local_path(f"{area}/new").read_bytes() == NEW


def test_sites_do_not_need_the_issuer_running(token_lake: LocalLake) -> None:
    """Sites validate with their pre-seeded key cache: with the issuer stopped, /token refuses
    connections and a locally minted token still reads; the issuer starts again on its URL."""
    issuer, site = token_lake.issuer, token_lake.sites[0]
    assert issuer is not None
    assert (site.protected, site.audience) == (True, site.https_url)
    ca = ssl.create_default_context(cafile=str(token_lake.pki.ca_cert))
    credentials = token_lake.add_probe_client()
    assert credentials[0].read_text() == "lakeprobe"
    site.put_file(f"{TOP}/f", OLD)
    url = issuer.url
    issuer.stop()
    with pytest.raises(urllib.error.URLError) as failure:
        _request_token(issuer, ca, {"grant_type": "client_credentials"}, credentials)
    assert isinstance(failure.value.reason, ConnectionRefusedError)
    token = issuer.mint(READ, site.audience, 60)
    for protocol in PROTOCOLS:
        assert access(protocol, site, ca, "read", f"{TOP}/f", token).body == OLD
    issuer.start()
    assert issuer.url == url
    body = _request_token(issuer, ca, {"grant_type": "client_credentials"}, credentials)
    assert (body["token_type"], body["scope"]) == ("Bearer", "")


def test_token_sites_selects_sites(lake_binaries: None, tmp_path: Path) -> None:
    """token_sites names the protected sites; empty: no issuer and open sites (as before)."""
    lake = LocalLake(2, base_dir=tmp_path / "some", token_sites=["SITE-B"])
    assert lake.issuer is not None
    assert [site.protected for site in lake.sites] == [False, True]
    assert lake.site("SITE-B").token_issuer is lake.issuer
    plain = LocalLake(1, base_dir=tmp_path / "none")
    assert (plain.issuer, plain.sites[0].protected) == (None, False)
    with pytest.raises(RuntimeError, match="no token issuer"):
        plain.add_probe_client()
    with pytest.raises(ValueError, match="SITE-Z"):
        LocalLake(1, base_dir=tmp_path / "bad", token_sites=["SITE-Z"])
