"""The asyncio bridge over the XRootD client: status -> Reason, client settings, real calls."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import pytest

from lakeprobe.lake import LocalLake
from lakeprobe.probes.clients.xrdasync import (
    CLIENT_SETTINGS,
    XrdError,
    XrdFileSystem,
    XrdStatus,
    download,
    effective_settings,
    reason_for,
    upload,
)
from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.core.testfiles import adler32_hex
from lakeprobe.probes.credentials.secrets import Secret

# Statuses observed from xrootd 5.5.3 servers on loopback with the client settings of
# xrdasync (code, errno, message as XRootDStatus reports them), and the reason each maps to.
OBSERVED = {
    "stopped server": (108, 0, "[FATAL] Connection error", Reason.CONNECT),
    "unresolvable host name": (101, 0, "[FATAL] Invalid address", Reason.DNS),
    "not an xrootd port": (102, 104, "[FATAL] Socket error: connection reset by peer",
                           Reason.CONNECT),
    "roots://, address not in the certificate": (
        110, 0, "[FATAL] TLS error: Unable to validate 127.0.0.2; hostname not in SAN extension.",
        Reason.TLS),
    "roots://, no CA directory": (
        110, 0, "[FATAL] TLS error: Unable to use CA cert directory "
        "/etc/grid-security/certificates; does not exist.", Reason.TLS),
    "roots:// to a server without TLS": (
        110, 111, "[FATAL] TLS error: connection refused: Server was not configured to "
        "support encryption.", Reason.TLS),
    "paused server, new connection": (103, 0, "[FATAL] Socket timeout", Reason.TIMEOUT),
    "paused server, open connection": (206, 0, "[ERROR] Operation expired", Reason.TIMEOUT),
    "create in a read-only directory": (400, 3010, "[ERROR] Server responded with an error: "
        "[3010] Unable to create /ro/f; permission denied", Reason.AUTH),
    "stat of a missing file": (400, 3011, "[ERROR] Server responded with an error: [3011] "
        "Unable to locate /nope; no such file or directory", Reason.NOT_FOUND),
    "open a directory": (400, 3016, "[ERROR] Server responded with an error: [3016] Unable "
        "to open /lakeprobe; is a directory", Reason.SERVER_ERROR),
    "create an existing file": (400, 3018, "[ERROR] Server responded with an error: [3018] "
        "Unable to create /lakeprobe/t1; file exists", Reason.SERVER_ERROR),
    "checksum query, no xrootd.chksum": (400, 3013, "[ERROR] Server responded with an error: "
        "[3013] query chksum is not supported", Reason.SERVER_ERROR),
}  # fmt: skip


@pytest.mark.parametrize("case", OBSERVED)
def test_observed_status_reasons(case: str) -> None:
    """Each real XRootD error status maps to the reason an operator would look into."""
    code, errno, message, reason = OBSERVED[case]
    assert reason_for(XrdStatus(False, code, errno, message)) is reason


def test_status_message_is_redacted() -> None:
    """A status message never carries a token, even if a server echoed the CGI."""
    secret = Secret("a-very-secret-token-value")
    raw = type("S", (), {"ok": False, "code": 400, "errno": 3010,
                         "message": f"denied /f?authz={secret.reveal()}"})  # fmt: skip
    assert secret.reveal() not in XrdStatus.of(raw).message


def test_client_settings_take_effect() -> None:
    """The process-wide XrdCl settings are in force (no XRD_* variable overrides them)."""
    assert effective_settings() == CLIENT_SETTINGS


Case = Callable[[LocalLake, float], Awaitable[None]]


async def _missing(lake: LocalLake, deadline: float) -> None:
    await XrdFileSystem(lake.sites[0].root_url).stat("/nope", deadline)


async def _read_only(lake: LocalLake, deadline: float) -> None:
    lake.sites[0].make_dir("/ro", writable=False)
    await upload(f"{lake.sites[0].root_url}//ro/f", b"x", deadline)


async def _directory(lake: LocalLake, deadline: float) -> None:
    await download(f"{lake.sites[0].root_url}//lakeprobe", 0, deadline)


async def _exists(lake: LocalLake, deadline: float) -> None:
    lake.sites[0].put_file("/lakeprobe/t1", b"x")
    await upload(f"{lake.sites[0].root_url}//lakeprobe/t1", b"y", deadline)


async def _stopped(lake: LocalLake, deadline: float) -> None:
    lake.sites[1].stop()
    await XrdFileSystem(lake.sites[1].root_url).ping(deadline)


async def _http_port(lake: LocalLake, deadline: float) -> None:
    await XrdFileSystem(f"root://127.0.0.1:{lake.sites[0].http_port}").ping(deadline)


async def _paused(lake: LocalLake, deadline: float) -> None:
    fs = XrdFileSystem(lake.sites[1].root_url)
    await fs.ping(deadline)  # the connection is open before the server hangs
    lake.sites[1].pause()
    await fs.ping(deadline - 2.5)  # XrdCl's own timeout ends it: no asyncio bound


LIVE: dict[str, Case] = {
    "stat of a missing file": _missing,
    "create in a read-only directory": _read_only,
    "open a directory": _directory,
    "create an existing file": _exists,
    "stopped server": _stopped,
    "not an xrootd port": _http_port,
    "paused server, open connection": _paused,
}


@pytest.mark.parametrize("case", LIVE)
@pytest.mark.lake
async def test_live_statuses(lake: LocalLake, case: str) -> None:
    """The loopback-reproducible rows of OBSERVED, produced by real servers: same XrdCl code
    and server error number, same reason."""
    deadline = asyncio.get_running_loop().time() + 4
    with pytest.raises(XrdError) as caught:
        async with asyncio.timeout(10):  # a safety net only: XrdCl must answer by itself
            await LIVE[case](lake, deadline)
    code, errno, _message, reason = OBSERVED[case]
    assert (caught.value.status.code, caught.value.status.errno) == (code, errno)
    assert caught.value.reason is reason


@pytest.mark.lake
async def test_restarted_server_is_seen_at_once(lake: LocalLake) -> None:
    """After a connection error the next call reconnects (StreamErrorWindow=0): a restarted
    server is reachable by the very next call, not after XrdCl's default 30 minutes."""
    site = lake.sites[1]
    fs = XrdFileSystem(site.root_url)
    deadline = asyncio.get_running_loop().time() + 5
    site.stop()
    with pytest.raises(XrdError):
        await fs.ping(deadline)
    site.start()
    await fs.ping(deadline)


@pytest.mark.lake
async def test_round_trip(lake: LocalLake) -> None:
    """upload, stat, checksum, dirlist, download and rm agree with each other."""
    fs, data = XrdFileSystem(lake.sites[0].root_url), os.urandom(9 * 1024 * 1024 + 3)
    deadline = asyncio.get_running_loop().time() + 10
    url = f"{lake.sites[0].root_url}//lakeprobe/rt"
    await upload(url, data, deadline)
    assert (await fs.stat("/lakeprobe/rt", deadline)).size == len(data)
    assert await fs.checksum("/lakeprobe/rt", deadline) == ("adler32", adler32_hex(data))
    assert await fs.dirlist("/lakeprobe", deadline) == ["rt"]
    assert await download(url, len(data), deadline) == data
    await fs.rm("/lakeprobe/rt", deadline)
    assert await fs.dirlist("/lakeprobe", deadline) == []
