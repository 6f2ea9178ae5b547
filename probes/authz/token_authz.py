"""The `token-authz` probe: does the endpoint enforce WLCG token authorization?

Steps: tokens (every case's token from the configured issuer), setup (the fixture tree and
a victim file, with the probe's full-scope token), one step per compliance case
(probes/authz/cases.py), cleanup. A case that must be denied but is allowed is CRITICAL
`authz_violation`; one that must be allowed but is denied is CRITICAL `auth`; a case named
in `non_critical` gives WARNING instead. The issuer unreachable or refusing: UNKNOWN
`issuer` (the endpoint was not judged). A dead endpoint fails `setup` and skips the cases;
a case that fails for another reason (a 500, a timeout) skips the cases after it.
Over davs/https/http with libcurl (HttpClient), over root/roots with the XRootD client (`?authz=`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from lakeprobe.probes.authz.cases import (
    CASE_NAMES,
    CASES,
    FIXTURE_DATA,
    FIXTURE_DIRS,
    Case,
    Op,
    fixture_file,
    fixture_root,
    scope_path,
)
from lakeprobe.probes.authz.ops import Answer, AuthzOps, HttpAuthzOps, OpFailed, XrdAuthzOps
from lakeprobe.probes.authz.tokens import CaseTokens, Scopes
from lakeprobe.probes.clients.httpclient import HttpClient
from lakeprobe.probes.core.context import ProbeContext, ProbeParams, ProbeType
from lakeprobe.probes.core.credential_step import cleartext_refusal
from lakeprobe.probes.core.outcome import ProbeResult, Reason, Status, StepOutcome, failed, passed
from lakeprobe.probes.core.paramspec import Check, Doc, Ge, Gt, MinLen
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import is_own_file, new_test_file
from lakeprobe.probes.credentials.oidc import OidcSettings
from lakeprobe.probes.credentials.secrets import redact
from lakeprobe.probes.credentials.tokens import CredentialError, IssuerError

WRITE_DATA = b"lakeprobe token-authz write test\n"
# Failures that say nothing about the endpoint's other answers do not skip later cases.
_INDEPENDENT = frozenset({Reason.NONE, Reason.AUTH, Reason.AUTHZ_VIOLATION})


def _known_cases(names: tuple[str, ...]) -> tuple[str, ...]:
    unknown = sorted(set(names) - set(CASE_NAMES))
    if unknown:
        known = ", ".join(CASE_NAMES)
        raise ValueError(f"unknown case(s) {', '.join(unknown)}; known: {known}")
    return names


def _absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"scope_prefix must be an absolute path, got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class TokenAuthzParams(ProbeParams):
    issuer: Annotated[OidcSettings, Doc("client credentials for the case tokens")]
    audience: Annotated[
        Annotated[str, MinLen(1)] | None,
        Doc("the audience the endpoint accepts (default: its own)"),
    ] = None
    wrong_audience: Annotated[str, Doc("the audience of the wrong_audience case's token")] = (
        "https://wrong-audience.lakeprobe.invalid"
    )
    unknown_issuer: Annotated[str, Doc("the issuer the unknown_issuer case's token names")] = (
        "https://unknown-issuer.lakeprobe.invalid"
    )
    scope_prefix: Annotated[
        str, Check(_absolute), Doc("the storage path scope paths are relative to")
    ] = "/"
    cases: Annotated[tuple[str, ...], MinLen(1), Check(_known_cases), Doc("the cases to run")] = (
        CASE_NAMES
    )
    non_critical: Annotated[
        tuple[str, ...], Check(_known_cases), Doc("cases that give WARNING, not CRITICAL")
    ] = ()
    expired_grace_seconds: Annotated[
        float, Ge(0), Doc("how long after its expiry the held token is first used")
    ] = 120.0
    refresh_before: Annotated[float, Gt(0), Doc("renew case tokens this long early")] = 60.0

    def __post_init__(self) -> None:
        idle = sorted(set(self.non_critical) - set(self.cases))
        if idle:
            raise ValueError(f"non_critical names cases that are not run: {', '.join(idle)}")


@dataclass(slots=True)
class _Run:
    target: Target
    params: TokenAuthzParams
    ctx: ProbeContext
    ops: AuthzOps
    cases: list[Case]
    tokens: CaseTokens | None = None
    fixtures: str = ""
    victim: str = ""  # the existing file the overwrite and delete cases aim at
    written: list[str] = field(default_factory=list)  # every file a write was tried on

    async def run(self) -> None:
        steps = self.ctx.steps
        await steps.run("tokens", self.load_tokens)
        await steps.run("setup", self.setup)
        for case in self.cases:
            critical = case.name not in self.params.non_critical
            await steps.run(case.name, functools.partial(self.check, case), critical=critical,
                            blocks=lambda outcome: outcome.reason not in _INDEPENDENT)  # fmt: skip
        await steps.run("cleanup", self.cleanup, cleanup=True)

    async def load_tokens(self) -> StepOutcome:
        refusal = cleartext_refusal(self.target)  # every case sends a token
        if refusal is not None:
            return refusal
        try:
            self.fixtures = fixture_root(self.target.test_dir, self.ctx.probe_host)
            prefix = self.params.scope_prefix
            scopes = Scopes(scope_path(self.target.test_dir, prefix),
                            scope_path(f"{self.fixtures}/a", prefix))  # fmt: skip
        except ValueError as error:
            return StepOutcome(Status.UNKNOWN, Reason.CREDENTIAL, str(error))
        audience = self.params.audience or self.target.audience
        if audience is None:
            detail = "no audience: set the endpoint's `audience` or the probe's params.audience"
            return StepOutcome(Status.UNKNOWN, Reason.CREDENTIAL, detail)
        client = self.ctx.resources.oidc.client(
            self.params.issuer, self.target.ca_dir, self.params.refresh_before
        )
        self.tokens = CaseTokens(
            client, self.target.url, scopes, audience, self.params.wrong_audience,
            self.params.unknown_issuer, self.params.expired_grace_seconds,
            self.ctx.state.held("authz-expired-tokens"),
        )  # fmt: skip
        try:
            await self.tokens.load({case.token for case in self.cases})
        except CredentialError as error:
            reason = Reason.ISSUER if isinstance(error, IssuerError) else Reason.CREDENTIAL
            return StepOutcome(Status.UNKNOWN, reason, redact(str(error)))
        return passed(f"{len(self.tokens.tokens) + 1} tokens from {client.describe()}")

    async def setup(self) -> StepOutcome:
        assert self.tokens is not None
        full = self.tokens.full
        assert full is not None
        try:
            for where in FIXTURE_DIRS:
                await self.ops.ensure_file(fixture_file(self.fixtures, where), FIXTURE_DATA, full)
            self.victim = self._new_file()
            await self.ops.ensure_file(self.victim, WRITE_DATA, full)
        except OpFailed as failure:
            return failure.outcome
        return passed(f"fixtures under {self.fixtures}")

    def _new_file(self) -> str:
        path = new_test_file(self.target.test_dir, self.ctx.probe_host)
        self.written.append(path)
        return path

    async def check(self, case: Case) -> StepOutcome:
        assert self.tokens is not None
        if case.token in self.tokens.waiting:
            return StepOutcome(Status.SKIPPED, Reason.NONE, self.tokens.waiting[case.token])
        token = self.tokens.tokens.get(case.token)
        if case.op is Op.READ:
            answer = await self.ops.read(fixture_file(self.fixtures, case.where), token)
        elif case.op is Op.CREATE:
            answer = await self.ops.create(self._new_file(), WRITE_DATA, token)
        elif case.op is Op.OVERWRITE:
            answer = await self.ops.overwrite(self.victim, WRITE_DATA, token)
        else:
            answer = await self.ops.delete(self.victim, token)
        return verdict(case, answer)

    async def cleanup(self) -> StepOutcome:
        if self.tokens is None or self.tokens.full is None:
            return StepOutcome(Status.SKIPPED, Reason.NONE, "nothing was written")
        left = []
        for path in self.written:
            if not is_own_file(path, self.target.test_dir):
                return failed(Reason.INTERNAL, f"refusing to delete {path}: not our own file")
            answer = await self.ops.delete(path, self.tokens.full)
            gone = answer.failure is not None and answer.failure.reason is Reason.NOT_FOUND
            if not (answer.allowed or gone):
                left.append(f"{path}: {answer.detail}")
        if left:
            return failed(Reason.CLEANUP, "; ".join(left))
        return passed(f"{len(self.written)} test files checked")


def verdict(case: Case, answer: Answer) -> StepOutcome:
    """The case's outcome: expected and actual, in the detail."""
    if answer.allowed is None:
        assert answer.failure is not None
        return answer.failure
    said = f"{case.expectation}: {'allowed' if answer.allowed else 'denied'} ({answer.detail})"
    if answer.allowed == case.allow:
        return passed(said)
    return failed(Reason.AUTHZ_VIOLATION if answer.allowed else Reason.AUTH, said)


@contextlib.asynccontextmanager
async def _ops(target: Target, ctx: ProbeContext) -> AsyncIterator[AuthzOps]:
    if target.protocol in ("root", "roots"):
        yield XrdAuthzOps(target, ctx)
        return
    async with HttpClient(target, ctx) as http:
        yield HttpAuthzOps(http)


class TokenAuthzProbe:
    async def __call__(
        self, target: Target, params: TokenAuthzParams, ctx: ProbeContext
    ) -> ProbeResult:
        cases = [case for case in CASES if case.name in params.cases]
        async with _ops(target, ctx) as ops:
            await _Run(target, params, ctx, ops, cases).run()
        return ctx.steps.result()


PROBE_TYPE = ProbeType(
    name="token-authz",
    description="WLCG token authorization compliance: must-allow and must-deny cases",
    schemes=frozenset({"root", "roots", "davs", "https", "http"}),
    params_model=TokenAuthzParams,
    factory=TokenAuthzProbe,
)
