"""The `corruption` probe's third-party-copy layers: a copy of a test file from the endpoint
to itself that declares a wrong adler32. The probe (injection.py) uploads the source, stats
and deletes both files; here the copy is sent and its answer read.

- `tpc-cksum` (every protocol): gfal2 copies with the user value and checksum mode target,
  as FTS does with `verify_checksum: target` (probes/clients/gfalcopy.py). Only the client
  checks: gfal2 compares the destination's adler32 with the value and reports the mismatch
  (XRootD 5.5.3, measured: root:// `CheckSum error`, errno 84, the xrootd plugin removes
  the copy; davs:// errno 5 `DESTINATION CHECKSUM MISMATCH`, the copy stays). FTS deletes a
  copy that failed; the probe does the same (`Answer.client_rejected`). A destination that
  gives no checksum leaves nothing to compare: the copy stands (undetected), as with
  xrdcp-cksum (gfal_copy itself copies again without the check for root:// and nginx).
- `copy-digest` (HTTP): a COPY in pull mode carrying a wrong RFC 9530
  `Content-Digest: adler=:<base64>:` (the WLCG TPC digest proposal, WIRE-FORMATS.md 7.1). A
  server that checks fails the copy: a final `failure:` line naming the checksum, or 412.
  XRootD 5.5.3 ignores the field and the copy succeeds.

An endpoint that answers the COPY with 405 or 501 does no third-party copy, and over root://
with a token XrdCl cannot ask for the copy's checksum: nothing can be tested, the layer is
SKIPPED (`Untestable`), without a verdict. Any other refusal (nginx's dav
module answers 400: it only copies within itself, by `Destination:`) is an error, whose
detail suggests leaving the TPC layers out of `layers` for such an endpoint.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from lakeprobe.probes.clients.copyjob import CopyEnd, CopyError
from lakeprobe.probes.clients.gfalcopy import gfal_copy
from lakeprobe.probes.clients.httpclient import HttpClient, RequestFailed
from lakeprobe.probes.clients.httpcopy import stream_copy
from lakeprobe.probes.common.storage import StorageError
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason, StepOutcome, failed
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials.secrets import Secret

TPC_CKSUM = "tpc-cksum"
COPY_DIGEST = "copy-digest"
TPC_LAYERS = (TPC_CKSUM, COPY_DIGEST)
NO_COPY = frozenset({405, 501})  # Method Not Allowed, Not Implemented
DIGEST_REJECTED = frozenset({412})  # the proposal's answer to a mismatching digest
STALL_SECONDS = 30.0  # a 4 KiB copy within one server: no progress for this long is a stall
_COPY_REFUSED = re.compile(r"\bcopy HTTP (\d{3})\b")  # gfal2's text for a refused COPY
_ABOUT_DIGEST = re.compile(r"checksum|digest|adler|mismatch", re.IGNORECASE)
# gfal2's checksum stage failed at the destination (measured: XrdHttp without
# `xrootd.chksum`, errno 1 "DESTINATION CHECKSUM HTTP 405 : Method Not Allowed").
_NO_CHECKSUM = re.compile(r"DESTINATION CHECKSUM HTTP \d{3}")
_NO_TPC_HINT = "does the endpoint do HTTP third-party copy? if not, leave the TPC layers out"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the endpoint said to the corrupt upload or copy: accepted or rejected, in short.
    `client_rejected`: only the client checked, and the copy is deleted as FTS would."""

    accepted: bool
    said: str
    client_rejected: bool = False


class Untestable(Exception):
    """Nothing to test: the endpoint answered the COPY with 405 or 501 (it does no
    third-party copy), or the client cannot ask for the copy's checksum (below)."""


# XrdCl 5.5 (under gfal2's xrootd plugin too) asks for the destination's checksum without
# the URL's `authz`: a token endpoint refuses it, "[3010] Unable to checksum ... permission
# denied", and gfal2 removes the copy. A client limitation, not the endpoint's: measured
# on the local lake's token sites; xrdcp-cksum compares with the token instead.
_CHECKSUM_QUERY_REFUSED = re.compile(r"\[3010\] Unable to checksum")


async def tpc_cksum(
    target: Target, ctx: ProbeContext, token: Secret | None, paths: tuple[str, str], wrong: str
) -> Answer:
    """gfal2 copies `paths` (source, destination) on `target` expecting the adler32 `wrong`
    at the destination. Raises StorageError for a copy that failed otherwise, Untestable."""
    source, destination = (CopyEnd(target, path, token) for path in paths)
    expecting = f"gfal2 expected adler32:{wrong} at the destination (checksum mode target)"
    try:
        stats = await gfal_copy(source, destination, resources=ctx.resources,
                                deadline=ctx.step_deadline, stall_seconds=STALL_SECONDS,
                                adler32=wrong, checksum_mode="target")  # fmt: skip
    except CopyError as error:
        if error.reason is Reason.CHECKSUM_MISMATCH:
            said = f"{expecting}: {error.detail} (only the client checked)"
            return Answer(False, said, client_rejected=True)
        if _NO_CHECKSUM.search(error.detail):  # nothing to compare: the copy stands
            return Answer(True, f"{expecting}: the destination gave no checksum: {error.detail}")
        if token is not None and _CHECKSUM_QUERY_REFUSED.search(error.detail):
            raise Untestable(
                "the XRootD client asks for the copy's checksum without the token, and the "
                f"endpoint refuses that (XrdCl 5.5): nothing to test over root:// with a token "
                f"({error.detail})"
            ) from None
        refused = _COPY_REFUSED.search(error.detail)
        if refused is None:
            raise StorageError(failed(error.reason, error.detail)) from None
        raise _refusal(int(refused.group(1)), failed(error.reason, error.detail)) from None
    note = f" ({stats.note})" if stats.note else ""
    return Answer(True, f"{expecting}: copy succeeded{note}")


async def copy_digest(http: HttpClient, token: Secret | None, paths: tuple[str, str],
                      wrong: str) -> Answer:  # fmt: skip
    """A pull COPY of `paths` (source, destination) on `http`'s endpoint with a wrong
    `Content-Digest` (`wrong`: adler32, hex). Raises StorageError for a copy that failed
    for another reason, Untestable."""
    source, destination = paths
    value = base64.b64encode(bytes.fromhex(wrong)).decode("ascii")
    headers = {"Source": str(http.url_of(source)), "Content-Digest": f"adler=:{value}:"}
    if token is not None:  # the passive side is this endpoint too
        headers["TransferHeaderAuthorization"] = f"Bearer {token.reveal()}"
    try:
        outcome = await stream_copy(http, destination, headers, "pull", STALL_SECONDS)
    except RequestFailed as failure:
        raise StorageError(failure.outcome) from None
    step = outcome.step
    sent = f"COPY with a wrong Content-Digest (adler=:{value}:)"
    if not outcome.answered and outcome.status in DIGEST_REJECTED:
        return Answer(False, f"{sent}: {step.detail}")
    if not outcome.answered and outcome.status:
        raise _refusal(outcome.status, step)
    if step.ok:
        return Answer(True, f"{sent}: {step.detail}")
    if outcome.answered and step.reason is not Reason.STALL and _ABOUT_DIGEST.search(step.detail):
        return Answer(False, f"{sent}: {step.detail}")
    raise StorageError(step)


def _refusal(status: int, step: StepOutcome) -> Exception:
    """Untestable for a COPY refused as unsupported; else the refusal as an error, with a hint
    when the status does not say why (nginx: 400)."""
    if status in NO_COPY:
        return Untestable(f"COPY {status}: the endpoint does no third-party copy, nothing to test")
    if step.reason is not Reason.UNEXPECTED_STATUS:
        return StorageError(step)
    return StorageError(StepOutcome(step.status, step.reason, f"{step.detail}; {_NO_TPC_HINT}"))
