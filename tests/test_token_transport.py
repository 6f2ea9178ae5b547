"""Tokens never travel in cleartext unasked: the probes' credential step refuses a token for a
root:// or http:// target without `insecure_token_transport`, and so does `lakeprobe run`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from lakeprobe.cli import run
from lakeprobe.probes.core.credential_step import load_tokens
from lakeprobe.probes.core.outcome import Reason, Status
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.credentials.tokens import FileToken

TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0In0.sig"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    return path


def _target(url: str, token_file: Path, insecure: bool = False) -> Target:
    return Target(
        "SITE", "ep", url, "/t", token=FileToken(token_file), insecure_token_transport=insecure
    )


@pytest.mark.parametrize("url", ["root://127.0.0.1:1094", "http://127.0.0.1:8000"])
async def test_cleartext_token_is_refused(url: str, token_file: Path) -> None:
    """UNKNOWN, reason credential, naming the target and the scheme; no token is handed out."""
    tokens, outcome = await load_tokens(_target(url, token_file))
    scheme = url.split("://")[0]
    assert tokens == [None]
    assert (outcome.status, outcome.reason) == (Status.UNKNOWN, Reason.CREDENTIAL)
    assert outcome.detail == (
        f"SITE/ep: refusing to send a token over {scheme}:// in cleartext "
        "(insecure_token_transport is not set)"
    )
    assert TOKEN not in outcome.detail


@pytest.mark.parametrize(
    ("url", "insecure"),
    [("roots://127.0.0.1:1094", False), ("davs://h:443", False), ("root://h:1094", True)],
)
async def test_tls_or_explicitly_insecure_token_is_loaded(
    url: str, insecure: bool, token_file: Path
) -> None:
    """Over TLS, or where the endpoint allows cleartext, the token is loaded as before."""
    tokens, outcome = await load_tokens(_target(url, token_file, insecure))
    assert outcome.status == Status.OK
    assert [t.reveal() if t else None for t in tokens] == [TOKEN]


async def test_pair_with_one_cleartext_end_is_refused(token_file: Path) -> None:
    """A copy whose destination would get a token in cleartext loads no token at all."""
    pair = PairTarget(
        _target("roots://a:1094", token_file), _target("root://b:1094", token_file), "pull"
    )
    tokens, outcome = await load_tokens(*pair.endpoints)
    assert tokens == [None, None]
    assert outcome.reason == Reason.CREDENTIAL


async def test_cleartext_without_token_is_fine() -> None:
    """No token, nothing to protect: root:// without auth passes the credential step."""
    tokens, outcome = await load_tokens(Target("SITE", "ep", "root://h:1094", "/t"))
    assert (tokens, outcome.status) == ([None], Status.OK)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("root://127.0.0.1:1", "roots:// (or https://)"),
        ("http://127.0.0.1:1", "https:// (or davs://)"),
    ],
)
def test_run_refuses_cleartext_token(
    url: str, fix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lakeprobe run` with a token on a cleartext URL is one usage error line, exit 3."""
    probe = "xrootd" if url.startswith("root") else "webdav"
    code = run.command(_args(probe, url, "--bearer-discovery"))
    scheme = url.split("://")[0]
    assert code == 3
    assert capsys.readouterr().err == (
        f"UNKNOWN: {url}: a token over {scheme}:// travels in cleartext: use {fix}, "
        "or pass --insecure-token-transport\n"
    )


def test_run_allows_cleartext_token_when_asked(token_file: Path) -> None:
    """--insecure-token-transport lets the token through to the target."""
    args = _args("xrootd", "root://127.0.0.1:1", "--token-file", str(token_file),
                 "--insecure-token-transport")  # fmt: skip
    (job,) = run._jobs_from_args(args, ProbeResources())  # the job `lakeprobe run` would start
    assert isinstance(job.target, Target)
    assert job.target.insecure_token_transport
    assert isinstance(job.target.token, FileToken)


async def test_token_authz_refuses_cleartext_before_asking_the_issuer(tmp_path: Path) -> None:
    """token-authz sends a token in every case: over root:// without the opt-in it is UNKNOWN
    credential at its first step, and the (unreachable) issuer is never asked."""
    from lakeprobe.probes.authz.token_authz import PROBE_TYPE, TokenAuthzParams
    from lakeprobe.probes.core.runner import run_probe
    from lakeprobe.probes.credentials.oidc import OidcSettings

    issuer = OidcSettings(
        token_endpoint="https://127.0.0.1:1/token",
        client_id_file=tmp_path / "id",
        client_secret_file=tmp_path / "secret",
    )
    target = Target("SITE", "ep", "root://127.0.0.1:1", "/t", audience="https://a")
    outcome = await run_probe(PROBE_TYPE, target, TokenAuthzParams(issuer=issuer), timeout=5,
                              probe_host="h", log=logging.getLogger("test"))  # fmt: skip
    first = outcome.result.steps[0]
    assert (first.name, first.status, first.reason) == ("tokens", Status.UNKNOWN,
                                                         Reason.CREDENTIAL)  # fmt: skip
    assert "refusing to send a token over root:// in cleartext" in first.detail
