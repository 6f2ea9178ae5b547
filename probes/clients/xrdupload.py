"""An upload through the XRootD client's CopyProcess with an expected checksum, as
`xrdcp --cksum adler32:<value> --rm-bad-cksum` and FTS do it.

The server never checks a declared checksum on a root:// upload (XRootD 5.5 has no CGI or
open flag for one): XrdCl copies the file, asks the server for its checksum of the stored
bytes, and compares it with the expected value (`checksummode="target"` with a preset). On a
mismatch the job ends with code ERR_CHECKSUM_ERROR (305, xrdcp's rc 53) and, with
`rmBadCksum`, XrdCl deletes the target; without it the target stays (WIRE-FORMATS 7.2).
CopyProcess copies only from a file, so the bytes go through a private temporary file.
It blocks: run on a worker thread, bounded by XrdCl's own init and copy timeouts.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from lakeprobe.probes.clients.xrdasync import XrdStatus, client_module, with_authz
from lakeprobe.probes.credentials.secrets import Secret

ERR_CHECKSUM_ERROR = 305  # XrdCl errCheckSumError


@dataclass(frozen=True, slots=True)
class CheckedUpload:
    """The copy job's status and what XrdCl compared: the expected value and the server's
    (`adler32:<hex>`, empty when it got none)."""

    status: XrdStatus
    expected: str
    server: str

    @property
    def mismatch(self) -> bool:
        return self.status.code == ERR_CHECKSUM_ERROR


def _copy(local: str, url: str, expected_adler32: str, timeout: int) -> tuple[XrdStatus, Any]:
    process = client_module().CopyProcess()
    # Keyword arguments only (the 5.5.3 wrapper's positional order is wrong for retry/xrate).
    process.add_job(local, url, force=False, checksummode="target", checksumtype="adler32",
                    checksumpreset=expected_adler32, rmBadCksum=True, inittimeout=timeout,
                    cptimeout=timeout)  # fmt: skip
    prepared = XrdStatus.of(process.prepare())
    if not prepared.ok:
        return prepared, {}
    status, results = process.run()
    job = results[0] if results else {}
    return XrdStatus.of(job.get("status", status)), job


def _upload(data: bytes, url: str, expected_adler32: str, timeout: int) -> CheckedUpload:
    """On a worker thread: the bytes to a private temporary file, then the copy job."""
    with tempfile.TemporaryDirectory(prefix="lakeprobe-upload-") as scratch:
        local = os.path.join(scratch, "data")
        with open(local, "wb") as file:
            file.write(data)
        status, job = _copy(local, url, expected_adler32, timeout)
    return CheckedUpload(
        status, str(job.get("sourceCheckSum", "")), str(job.get("targetCheckSum", ""))
    )


async def upload_expecting(
    url: str, data: bytes, expected_adler32: str, deadline: float, token: Secret | None = None
) -> CheckedUpload:
    """Upload `data` to `url` (a new file) expecting adler32 `expected_adler32`, before
    `deadline` (event-loop time; asyncio.timeout raises TimeoutError at it, and XrdCl's own
    timeouts end the thread's work about then too)."""
    remaining = deadline - asyncio.get_running_loop().time()
    timeout = min(65535, max(1, math.ceil(remaining)))
    target = with_authz(url, token)
    async with asyncio.timeout_at(deadline):
        return await asyncio.to_thread(_upload, data, target, expected_adler32, timeout)
