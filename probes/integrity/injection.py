"""The `corruption` probe: does the endpoint catch a corrupt upload or copy, and clean up?

Each layer writes a new small test file declaring a deliberately wrong checksum (by upload,
or by a third-party copy of an uploaded source), stats the path, and deletes the files. One
step per layer:

- `content-md5`, `digest`, `content-digest` (HTTP): a PUT with a wrong `Content-MD5`, a wrong
  `Digest: adler32=...` (RFC 3230), a wrong `Content-Digest` and `Repr-Digest` (RFC 9530,
  sha-256 and adler). Rejected means 400, 409, 412 or 422 (dCache answers 400, the RFC 9530
  TPC proposal 412); 2xx is accepted; anything else is an error with its usual reason.
- `xrdcp-cksum` (root://): XrdCl's CopyProcess expecting a wrong adler32, as FTS and
  `xrdcp --cksum adler32:<v> --rm-bad-cksum` do (probes/clients/xrdupload.py). The server
  never checks on its own: the client compares the server's adler32 of the stored bytes.
- `tpc-cksum` (every protocol): gfal2 copies the source to a new file on the same endpoint
  expecting a wrong adler32, checksum mode target, as FTS (probes/integrity/tpclayers.py).
  Only the client checks; a copy it rejects is deleted before the stat, as FTS does.
- `copy-digest` (HTTP): a pull COPY carrying a wrong RFC 9530 `Content-Digest: adler=:...:`
  (the WLCG TPC digest proposal). An endpoint answering the COPY 405/501 does no TPC: the
  TPC layers are then SKIPPED, without a verdict.

Verdict per layer, also a measurement (`injection_<layer>`, the Verdict's value): detected
(rejected, nothing left: OK), undetected (stored as if intact: `corruption_undetected`, a
capability finding, WARNING unless `undetected_status` says otherwise), left behind
(rejected, yet the file is there: CRITICAL `corrupt_left_behind`), error (the request
failed: its own reason). XRootD 5.5.3 accepts every wrong HTTP digest (undetected on all
three, and on copy-digest) and is detected only by the clients' own checks (xrdcp-cksum,
tpc-cksum; WIRE-FORMATS.md 7.2). A file a layer could not delete is retried by the
`cleanup` step; only files named by new_test_file in the test directory are ever deleted.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal

from lakeprobe.probes.clients.httpclient import (
    ANY_STATUS,
    HttpClient,
    RequestFailed,
    status_failure,
)
from lakeprobe.probes.clients.xrdasync import KXR_NOT_AUTHORIZED, KXR_UNSUPPORTED, reason_for
from lakeprobe.probes.clients.xrdhandshake import check_xrootd
from lakeprobe.probes.clients.xrdupload import upload_expecting
from lakeprobe.probes.common.storage import HttpStorage, Storage, StorageError, XrdStorage
from lakeprobe.probes.core.context import ProbeContext, ProbeParams, ProbeType
from lakeprobe.probes.core.credential_step import load_tokens
from lakeprobe.probes.core.outcome import (
    Measurement,
    ProbeResult,
    Reason,
    Status,
    StepOutcome,
    failed,
    passed,
)
from lakeprobe.probes.core.paramspec import Check, Doc, Gt, Le, MinLen
from lakeprobe.probes.core.steps import blocks_on_unreachable
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import adler32_hex, is_own_file, new_test_file, payload
from lakeprobe.probes.credentials.secrets import Secret
from lakeprobe.probes.integrity.tpclayers import (
    COPY_DIGEST,
    TPC_CKSUM,
    TPC_LAYERS,
    Answer,
    Untestable,
    copy_digest,
    tpc_cksum,
)


class Verdict(enum.IntEnum):
    """A layer's finding; the value is its measurement."""

    DETECTED = 0
    UNDETECTED = 1
    LEFT_BEHIND = 2
    ERROR = 3


def _wrong_adler32(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in bytes.fromhex(adler32_hex(data)))


def _wrong_sha256(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in hashlib.sha256(data).digest())


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _content_md5(data: bytes) -> dict[str, str]:
    return {"Content-MD5": _b64(bytes(b ^ 0xFF for b in hashlib.md5(data).digest()))}


def _digest(data: bytes) -> dict[str, str]:
    return {"Digest": f"adler32={_wrong_adler32(data).hex()}"}


def _content_digest(data: bytes) -> dict[str, str]:
    # Without a content coding, content and representation are the same bytes: both fields.
    value = f"sha-256=:{_b64(_wrong_sha256(data))}:, adler=:{_b64(_wrong_adler32(data))}:"
    return {"Content-Digest": value, "Repr-Digest": value}


HTTP_LAYERS: dict[str, Callable[[bytes], dict[str, str]]] = {
    "content-md5": _content_md5,
    "digest": _digest,
    "content-digest": _content_digest,
}
ROOT_LAYER = "xrdcp-cksum"
LAYERS = (*HTTP_LAYERS, ROOT_LAYER, *TPC_LAYERS)
# The TPC layers are opt-in: a plain WebDAV server without third-party copy (nginx answers
# the pull COPY 400) would otherwise fail every run, though nothing is broken.
DEFAULT_LAYERS = (*HTTP_LAYERS, ROOT_LAYER)
MEASUREMENTS = {
    "content-md5": Measurement.INJECTION_CONTENT_MD5,
    "digest": Measurement.INJECTION_DIGEST,
    "content-digest": Measurement.INJECTION_CONTENT_DIGEST,
    ROOT_LAYER: Measurement.INJECTION_XRDCP_CKSUM,
    TPC_CKSUM: Measurement.INJECTION_TPC_CKSUM,
    COPY_DIGEST: Measurement.INJECTION_COPY_DIGEST,
}
REJECTED = frozenset({400, 409, 412, 422})
_STATUS = {"ok": Status.OK, "warning": Status.WARNING, "critical": Status.CRITICAL}


def _known_layers(layers: tuple[str, ...]) -> tuple[str, ...]:
    if any(layer not in LAYERS for layer in layers) or len(set(layers)) != len(layers):
        raise ValueError(f"layers must be distinct values of {', '.join(LAYERS)}: {layers}")
    return layers


@dataclass(frozen=True, kw_only=True)
class CorruptionParams(ProbeParams):
    layers: Annotated[
        tuple[str, ...],
        MinLen(1),
        Check(_known_layers),
        Doc(
            "layers to inject (tpc-cksum and copy-digest: opt-in, for endpoints that do "
            "third-party copy); those of another protocol are left out"
        ),
    ] = DEFAULT_LAYERS
    undetected_status: Annotated[
        Literal["ok", "warning", "critical"],
        Doc("the status of a corrupt upload the endpoint accepted"),
    ] = "warning"
    file_size_bytes: Annotated[int, Gt(0), Le(1024 * 1024), Doc("test file size")] = 4096


@dataclass(slots=True)
class InjectionRun:
    target: Target
    params: CorruptionParams
    ctx: ProbeContext
    storage: Storage
    http: HttpClient | None = None
    token: Secret | None = None
    pending: list[str] = field(default_factory=list)  # written, not yet seen deleted
    measurements: dict[Measurement, float] = field(default_factory=dict)

    async def layer(self, name: str) -> StepOutcome:
        path = self._new_file()
        source = self._new_file() if name in TPC_LAYERS else None  # what the copy reads
        verdict, outcome = await self._verdict(name, path, source)
        if verdict is not None:
            self.measurements[MEASUREMENTS[name]] = float(verdict)
        outcome = await self._removed(path, outcome)
        return outcome if source is None else await self._removed(source, outcome)

    def _new_file(self) -> str:
        path = new_test_file(self.target.test_dir, self.ctx.probe_host)
        self.pending.append(path)
        return path

    async def _verdict(self, name: str, path: str, source: str | None
                       ) -> tuple[Verdict | None, StepOutcome]:  # fmt: skip
        """The layer's verdict (None: nothing could be tested) and its step outcome."""
        try:
            answer = await self._inject(name, path, source, payload(self.params.file_size_bytes))
        except Untestable as unsupported:
            return None, StepOutcome(Status.SKIPPED, Reason.NONE, str(unsupported))
        except StorageError as error:
            return Verdict.ERROR, error.outcome
        if answer.client_rejected:
            answer = await self._delete_as_fts(path, answer)
        return await self._judge(path, answer, "copy" if source is not None else "upload")

    async def _delete_as_fts(self, path: str, answer: Answer) -> Answer:
        """FTS deletes a copy that failed the client's check: the probe too, before the stat
        that judges it (a failed delete then shows as left behind)."""
        present = await self._exists(path)
        await self._delete(path)
        done = "gfal2 left the copy, deleted as FTS does" if present is True else "gfal2 removed it"
        return Answer(answer.accepted, f"{answer.said}; {done}")

    async def _inject(self, name: str, path: str, source: str | None, data: bytes) -> Answer:
        if name == ROOT_LAYER:
            return await self._xrdcp(path, data)
        if source is not None:
            await self.storage.write(source, data)
            wrong = _wrong_adler32(data).hex()
            if name == TPC_CKSUM:
                return await tpc_cksum(self.target, self.ctx, self.token, (source, path), wrong)
            assert self.http is not None
            return await copy_digest(self.http, self.token, (source, path), wrong)
        assert self.http is not None
        headers = HTTP_LAYERS[name](data)
        try:
            reply = await self.http.request("PUT", path, expect=ANY_STATUS, headers=headers,
                                            data=data, max_body=64 * 1024)  # fmt: skip
        except RequestFailed as failure:
            raise StorageError(failure.outcome) from None
        said = f"PUT {reply.status}"
        if reply.status in REJECTED:
            text = reply.body[:200].decode("utf-8", "replace").strip().split("\n", 1)[0]
            return Answer(False, f"{said} ({text})" if text else said)
        if not 200 <= reply.status < 300:
            raise StorageError(status_failure(reply))
        return Answer(True, said)

    async def _xrdcp(self, path: str, data: bytes) -> Answer:
        checked = await check_xrootd(self.target.url, self.ctx.step_deadline, self.target.ca_dir)
        if not checked.ok:  # XrdCl talks only to a proven XRootD (xrdhandshake.py)
            raise StorageError(checked)
        expected = _wrong_adler32(data).hex()
        url = self.target.url_for(path)
        done = await upload_expecting(url, data, expected, self.ctx.step_deadline, self.token)
        compared = f"XrdCl expected adler32:{expected}, server {done.server or 'gave none'}"
        if done.mismatch:
            return Answer(False, f"{compared}: checksum error (only the client checked)")
        if done.status.ok:
            return Answer(True, f"{compared}: copy succeeded")
        if done.status.errno == KXR_UNSUPPORTED:  # no checksum to compare: nothing can tell
            return Answer(True, f"the server reports no checksum: {done.status.message}")
        if done.status.errno == KXR_NOT_AUTHORIZED and "checksum" in done.status.message:
            return await self._compare_for_xrdcl(path, expected, done.status.message)
        raise StorageError(failed(reason_for(done.status), f"upload: {done.status.message}"))

    async def _compare_for_xrdcl(self, path: str, expected: str, refusal: str) -> Answer:
        """XrdCl 5.5 asks for the target's checksum without the URL's `authz`, so a token
        endpoint refuses it ([3010] Unable to checksum) though the upload went through. Do
        the comparison XrdCl could not, with the token, and remove a bad copy as
        `--rm-bad-cksum` would."""
        stored = await self.storage.checksum(path)
        said = f"XrdCl's checksum query was refused ({refusal.strip()}); compared with the token"
        if stored is None:
            return Answer(True, f"{said}: the server reports no checksum")
        if stored == expected:
            return Answer(True, f"{said}: server adler32:{stored} matches the wrong value")
        problem = await self._delete(path)
        removed = f"; removing it: {problem}" if problem else ", removed"
        return Answer(False, f"{said}: expected adler32:{expected}, server adler32:{stored}: "
                             f"checksum error (only the client checked){removed}")  # fmt: skip

    async def _judge(self, path: str, answer: Answer, what: str
                     ) -> tuple[Verdict, StepOutcome]:  # fmt: skip
        present = await self._exists(path)
        if isinstance(present, StepOutcome):
            return Verdict.ERROR, present
        name = posixpath.basename(path)
        if answer.accepted and present:
            status = _STATUS[self.params.undetected_status]
            detail = f"corrupt {what} accepted and stored: {answer.said}"
            return Verdict.UNDETECTED, StepOutcome(status, Reason.CORRUPTION_UNDETECTED, detail)
        if answer.accepted:
            detail = f"{answer.said}, but {name} is not there"
            return Verdict.ERROR, failed(Reason.UNEXPECTED_STATUS, detail)
        if present:
            detail = f"rejected ({answer.said}) but {name} was left behind"
            return Verdict.LEFT_BEHIND, failed(Reason.CORRUPT_LEFT_BEHIND, detail)
        return Verdict.DETECTED, passed(f"detected: {answer.said}; nothing left behind")

    async def _exists(self, path: str) -> bool | StepOutcome:
        try:
            await self.storage.stat(path)
        except StorageError as error:
            return False if error.reason is Reason.NOT_FOUND else error.outcome
        return True

    async def _removed(self, path: str, outcome: StepOutcome) -> StepOutcome:
        """`outcome`, after deleting `path` if it may be there; a failed delete is noted in
        the detail and left to the cleanup step."""
        problem = await self._delete(path)
        if problem is None:
            return outcome
        return StepOutcome(outcome.status, outcome.reason, f"{outcome.detail}; {problem}")

    async def _delete(self, path: str) -> str | None:
        """None when `path` is gone (deleted, or never there), else what went wrong."""
        if path not in self.pending:  # already seen deleted
            return None
        if not is_own_file(path, self.target.test_dir):
            return f"refusing to delete {path}: not our own file"
        try:
            await self.storage.delete(path)
        except StorageError as error:
            if error.reason is not Reason.NOT_FOUND:
                return f"delete failed ({error.reason}: {error.outcome.detail})"
        if await self._exists(path) is True:
            return f"deleted, yet {posixpath.basename(path)} is still there"
        self.pending.remove(path)
        return None

    async def cleanup(self) -> StepOutcome:
        problems = [p for path in list(self.pending) if (p := await self._delete(path))]
        if problems:
            return failed(Reason.CLEANUP, "; ".join(problems))
        return passed()


def _layers(target: Target, params: CorruptionParams) -> list[str]:
    root = target.protocol in ("root", "roots")
    own = {ROOT_LAYER, TPC_CKSUM} if root else {*HTTP_LAYERS, *TPC_LAYERS}
    return [name for name in params.layers if name in own]


class CorruptionProbe:
    async def __call__(
        self, target: Target, params: CorruptionParams, ctx: ProbeContext
    ) -> ProbeResult:
        (token,), loaded = await load_tokens(target)
        await ctx.steps.run("credential", lambda: _done(loaded))
        if target.protocol in ("root", "roots"):
            run = InjectionRun(target, params, ctx, XrdStorage(target, ctx.deadline, token))
            await _run(run, token)
            return ctx.steps.result(run.measurements)
        async with HttpClient(target, ctx) as http:
            http.token = token
            run = InjectionRun(target, params, ctx, HttpStorage(http, ctx.deadline), http)
            await _run(run, token)
        return ctx.steps.result(run.measurements)


async def _done(outcome: StepOutcome) -> StepOutcome:
    return outcome


async def _run(run: InjectionRun, token: Secret | None) -> None:
    run.token = token
    for name in _layers(run.target, run.params):
        layer = functools.partial(run.layer, name)
        await run.ctx.steps.run(name, layer, blocks=blocks_on_unreachable)
    await run.ctx.steps.run("cleanup", run.cleanup, cleanup=True)


PROBE_TYPE = ProbeType(
    name="corruption",
    description="corruption injection: uploads and copies with a wrong checksum, per layer",
    schemes=frozenset({"root", "roots", "davs", "https", "http"}),
    params_model=CorruptionParams,
    factory=CorruptionProbe,
)
