"""HEAD asking for the file's adler32 (RFC 3230 Want-Digest, RFC 9530 Want-Content-Digest),
shared by the webdav and http-tpc probes and the HTTP storage (probes/common/storage.py).
Apart from the storage so that a webdav run does not load the XRootD client modules."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from lakeprobe.probes.clients.httpclient import (
    ANY_STATUS,
    HttpClient,
    Reply,
    RequestFailed,
    status_failure,
)
from lakeprobe.probes.credentials.secrets import Secret

WANT_DIGEST = {"Want-Digest": "adler32", "Want-Content-Digest": "adler=1"}
# What a server without digests answers to a request carrying Want-Digest (XrdHttp without
# `xrootd.chksum`: 405 to HEAD and GET, while the same request without it is 200).
DIGEST_REFUSED = frozenset({405, 501})


@dataclass(frozen=True, slots=True)
class DigestReply:
    """A HEAD that asked for adler32: the answer, the adler32 it reports, and when it reports
    none, how the server said so (`missing`, for a detail)."""

    reply: Reply
    adler32: str | None
    missing: str = ""


async def head_with_digest(
    http: HttpClient, path: str, *, expect: Collection[int] = (200,), digest: bool = True,
    token: Secret | None = None,
) -> DigestReply:  # fmt: skip
    """HEAD `path` asking for adler32 (`digest`; False: not asked). A server that refuses the
    digest request (405/501) is asked again without it: the file's existence and size are
    still known, and a missing feature never looks like a missing file. Raises RequestFailed
    for a status outside `expect` (of the plain HEAD when there was one) or a malformed
    digest."""
    if not digest:
        reply = await http.request("HEAD", path, expect=expect, token=token)
        return DigestReply(reply, None, "not asked")
    reply = await http.request("HEAD", path, expect=ANY_STATUS, headers=WANT_DIGEST, token=token)
    if reply.status in DIGEST_REFUSED:
        refused = f"HEAD with Want-Digest: {reply.status}"
        plain = await http.request("HEAD", path, expect=expect, token=token)
        return DigestReply(plain, None, f"{refused}, {plain.status} without it")
    if reply.status not in expect:
        raise RequestFailed(status_failure(reply))
    adler32 = reply.adler32()
    return DigestReply(reply, adler32, "" if adler32 else _no_adler32(reply))


def _no_adler32(reply: Reply) -> str:
    """Why a 2xx that was asked for adler32 reports none: no digest, or another algorithm's."""
    values = [*reply.headers.getall("Digest", []), *reply.headers.getall("Content-Digest", [])]
    names = {item.partition("=")[0].strip().lower() for v in values for item in v.split(",")}
    names.discard("")
    if not names:
        return f"{reply.method} {reply.status}: no Digest header"
    return f"{reply.method} {reply.status}: digest {', '.join(sorted(names))}, not adler32"
