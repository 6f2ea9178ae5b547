"""The token-authz probe against real XRootD 5.5.3 sites with the stock SciTokens plugin,
tokens from the lake's own OIDC issuer (a separate HTTPS process).

SITE-A needs tokens; SITE-B is open (no authorization at all), so every must-deny case
there is a violation. What 5.5.3 does, as pinned here: every case passes except
path_prefix_ab, which it allows (scope `/x/a` granting `/x/ab`: a string-prefix match, fixed
upstream later): the probe must report it as authz_violation.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from state_helpers import loop_resources, loop_state

from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.probes.authz.cases import CASE_NAMES, FIXTURE_DIRS
from lakeprobe.probes.authz.token_authz import PROBE_TYPE, TokenAuthzParams
from lakeprobe.probes.core.outcome import ProbeResult, Reason, Status, StepResult
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials.oidc import OidcSettings

pytestmark = pytest.mark.lake

LOG = logging.getLogger("test.token_authz")
HOST = "testhost"
PROTOCOLS = ("https", "root")
STEPS = ["tokens", "setup", *CASE_NAMES, "cleanup"]
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


@pytest.fixture(scope="module")
def lake(lake_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLake]:
    base = tmp_path_factory.mktemp("authz") / "lake"
    with LocalLake(2, base_dir=base, token_sites=["SITE-A"]) as started:
        yield started


def settings(lake: LocalLake, client: str, lifetime: int | None = None) -> OidcSettings:
    id_file, secret_file = lake.add_probe_client(client, lifetime)
    assert lake.issuer is not None
    return OidcSettings(
        token_endpoint=lake.issuer.token_endpoint,
        client_id_file=id_file,
        client_secret_file=secret_file,
        ca_dir=lake.pki.ca_dir,
    )


def target(lake: LocalLake, site: XrootdSite, protocol: str) -> Target:
    url = site.root_url if protocol == "root" else site.https_url
    # root:// on loopback: the tests opt in to tokens in cleartext.
    return Target(site=site.name, endpoint=protocol, url=url, test_dir=lake.test_dir,
                  ca_dir=lake.pki.ca_dir, insecure_token_transport=True)  # fmt: skip


async def authz(target: Target, params: TokenAuthzParams, timeout: float = 20.0) -> ProbeResult:
    outcome = await run_probe(PROBE_TYPE, target, params, timeout=timeout, probe_host=HOST,
                              log=LOG, state=loop_state(), resources=loop_resources())  # fmt: skip
    assert outcome.exception is None
    return outcome.result


def steps(result: ProbeResult) -> dict[str, StepResult]:
    return {step.name: step for step in result.steps}


def own_files(site: XrootdSite, lake: LocalLake) -> list[str]:
    return sorted(p.name for p in site.local_path(lake.test_dir).iterdir())


def params_for(site: XrootdSite, issuer: OidcSettings, **extra: object) -> TokenAuthzParams:
    return validate_params(
        TokenAuthzParams,
        {"issuer": issuer, "audience": site.audience, "expired_grace_seconds": 1, **extra},
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_every_case_on_the_protected_site(lake: LocalLake, protocol: str) -> None:
    """First run: every case but `expired` decided, that one skipped while the never-used
    token it holds is still valid. Once it has expired (4 s tokens, 1 s grace), the second
    run decides it too. Only path_prefix_ab fails: authz_violation, the run CRITICAL."""
    site = lake.site("SITE-A")
    issuer = settings(lake, f"all-cases-{protocol}", lifetime=4)
    params = params_for(site, issuer)
    first = await authz(target(lake, site, protocol), params)
    assert [s.name for s in first.steps] == STEPS
    assert steps(first)["expired"].status is Status.SKIPPED
    assert "holding a never-used token" in steps(first)["expired"].detail
    await asyncio.sleep(5.5)
    second = await authz(target(lake, site, protocol), params)
    by_name = steps(second)
    for name in CASE_NAMES:
        expected = Status.CRITICAL if name == "path_prefix_ab" else Status.OK
        assert by_name[name].status is expected, (name, by_name[name])
    violation = by_name["path_prefix_ab"]
    assert violation.reason is Reason.AUTHZ_VIOLATION
    assert violation.detail.startswith("must deny: allowed")
    assert by_name["expired"].detail.startswith("must deny: denied")
    assert by_name["read_scope_read"].detail.startswith("must allow: allowed")
    assert (second.status, second.reason) == (Status.CRITICAL, Reason.AUTHZ_VIOLATION)
    assert by_name["cleanup"].status is Status.OK
    assert [n for n in own_files(site, lake) if "authz" not in n] == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_open_endpoint_violates_every_must_deny_case(lake: LocalLake, protocol: str) -> None:
    """SITE-B has no authorization: every must-deny case is allowed (authz_violation),
    every must-allow case passes, and the files the wrongly allowed writes made are gone."""
    site = lake.site("SITE-B")
    issuer = settings(lake, f"open-{protocol}")
    cases = [n for n in CASE_NAMES if n != "expired"]
    result = await authz(target(lake, site, protocol), params_for(site, issuer, cases=cases))
    by_name = steps(result)
    must_allow = {"read_scope_read", "create_scope_new", "modify_scope_overwrite",
                  "modify_scope_delete", "path_scope_inside"}  # fmt: skip
    for name in cases:
        if name in must_allow:
            assert by_name[name].status is Status.OK, by_name[name]
        else:
            assert (by_name[name].status, by_name[name].reason) == (
                Status.CRITICAL, Reason.AUTHZ_VIOLATION
            ), by_name[name]  # fmt: skip
    assert by_name["cleanup"].status is Status.OK
    assert [n for n in own_files(site, lake) if "authz" not in n] == []


async def test_non_critical_case_gives_warning(lake: LocalLake) -> None:
    site = lake.site("SITE-A")
    issuer = settings(lake, "non-critical")
    params = params_for(site, issuer, non_critical=["path_prefix_ab"],
                        cases=["read_scope_read", "path_prefix_ab", "no_token_read"])  # fmt: skip
    result = await authz(target(lake, site, "https"), params)
    assert (result.status, result.reason) == (Status.WARNING, Reason.AUTHZ_VIOLATION)
    assert steps(result)["no_token_read"].status is Status.OK


async def test_issuer_down_is_unknown_not_critical(lake: LocalLake) -> None:
    """No token can be had: UNKNOWN `issuer`, the cases skipped, the endpoint not blamed."""
    site = lake.site("SITE-A")
    issuer = settings(lake, "issuer-down")
    assert lake.issuer is not None
    lake.issuer.stop()
    try:
        result = await authz(target(lake, site, "https"), params_for(site, issuer))
    finally:
        lake.issuer.start()
    assert (result.status, result.reason) == (Status.UNKNOWN, Reason.ISSUER)
    assert lake.issuer.token_endpoint in steps(result)["tokens"].detail
    assert {steps(result)[name].status for name in CASE_NAMES} == {Status.SKIPPED}


async def test_missing_client_secret_names_the_file(lake: LocalLake, tmp_path: Path) -> None:
    site = lake.site("SITE-A")
    issuer = settings(lake, "no-secret").model_copy(
        update={"client_secret_file": tmp_path / "absent-secret"}
    )
    result = await authz(target(lake, site, "root"), params_for(site, issuer))
    assert (result.status, result.reason) == (Status.UNKNOWN, Reason.CREDENTIAL)
    assert str(tmp_path / "absent-secret") in steps(result)["tokens"].detail


async def test_stopped_endpoint_fails_setup_and_skips_the_cases(lake: LocalLake) -> None:
    site = lake.site("SITE-A")
    issuer = settings(lake, "stopped")
    site.stop()
    try:
        result = await authz(target(lake, site, "https"), params_for(site, issuer))
    finally:
        site.start()
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.CONNECT)
    assert steps(result)["setup"].reason is Reason.CONNECT
    assert {steps(result)[name].status for name in CASE_NAMES} == {Status.SKIPPED}


async def test_no_token_in_results_or_logs(
    lake: LocalLake, caplog: pytest.LogCaptureFixture
) -> None:
    """Every detail, the rendered result and every log record (DEBUG) are free of JWTs."""
    caplog.set_level(logging.DEBUG)
    site = lake.site("SITE-A")
    results = [
        await authz(target(lake, site, protocol), params_for(site, settings(lake, "leak")))
        for protocol in PROTOCOLS
    ]
    text = "\n".join([repr(r) for r in results] + [r.getMessage() for r in caplog.records])
    assert "must deny: denied" in text  # the check would see the details
    assert JWT.search(text) is None


async def test_fixture_tree_is_kept_between_runs(lake: LocalLake) -> None:
    """The fixtures are created once per probe host and reused, not rewritten every run."""
    site = lake.site("SITE-A")
    root = site.local_path(f"{lake.test_dir}/lakeprobe-authz-{HOST}")
    params = params_for(site, settings(lake, "fixtures"), cases=["read_scope_read"])
    await authz(target(lake, site, "root"), params)
    stamps = {d: (root / d / "fixture").stat().st_mtime_ns for d in FIXTURE_DIRS}
    result = await authz(target(lake, site, "https"), params)
    assert steps(result)["setup"].status is Status.OK
    assert stamps == {d: (root / d / "fixture").stat().st_mtime_ns for d in FIXTURE_DIRS}
