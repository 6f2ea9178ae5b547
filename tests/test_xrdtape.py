"""The asynchronous XRootD tape client (probes/clients/xrdtape.py): its `query prepare` parser
on malformed answers, and the whole recall cycle against the tape-emulating site."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from conftest import need_binaries
from hypothesis import given
from hypothesis import strategies as st

from lakeprobe.lake import LocalLake, TapeEmulation
from lakeprobe.probes.clients.xrdasync import XrdError, download
from lakeprobe.probes.clients.xrdtape import (
    PrepareStatus,
    parse_query_prepare,
    prepare_cancel,
    prepare_evict,
    prepare_stage,
    query_prepare,
    stat_online,
)
from lakeprobe.probes.core.outcome import Reason

GOOD = {
    "request_id": "r1",
    "responses": [
        {"path": "/t/a", "path_exists": True, "on_tape": True, "online": False,
         "requested": True, "has_reqid": True, "req_time": 1, "error_text": ""},
        {"path": "/t//b", "exists": 1, "on_tape": "true", "online": 1, "requested": 0,
         "has_reqid": False, "error_text": "disk full"},
    ],
}  # fmt: skip


def test_parse_tolerates_spellings() -> None:
    """Both `path_exists` and CTA's older `exists`, booleans as true/1/"true", doubled slashes
    and CGI on the asked path: each path asked for gets its status."""
    answer = parse_query_prepare(json.dumps(GOOD), ["/t/a?authz=x", "/t/b"])
    assert answer["/t/a?authz=x"] == PrepareStatus("/t/a", True, True, False, True, True, "")
    assert answer["/t/b"] == PrepareStatus("/t//b", True, True, True, False, False, "disk full")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not JSON"),
        ("Request r1 not queued.", "not JSON"),
        ("[]", "'responses' list"),
        ('{"responses": {}}', "'responses' list"),
        ('{"responses": [{"path": 3}]}', "no answer for path /t/a"),
        (json.dumps({"responses": GOOD["responses"][1:]}), "no answer for path /t/a"),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_parse_rejects_malformed(text: str, message: str) -> None:
    """A malformed answer is an XrdError with PROTOCOL_ERROR naming what is wrong."""
    with pytest.raises(XrdError, match=message) as caught:
        parse_query_prepare(text, ["/t/a"])
    assert caught.value.reason is Reason.PROTOCOL_ERROR


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(max_size=8), inner),
)


@given(st.text(max_size=300) | JSON_VALUES.map(json.dumps))
def test_parse_never_raises_anything_else(text: str) -> None:
    """Whatever the server sends, the parser returns statuses or raises XrdError."""
    reasons = []
    try:
        parse_query_prepare(text, ["/t/a"])
    except XrdError as error:
        reasons.append(error.reason)
    assert set(reasons) <= {Reason.PROTOCOL_ERROR}


@pytest.fixture(scope="module")
def tape_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLake]:
    """One started site with tape emulation (recall delay 0.5 s), shared by the module."""
    need_binaries()
    with LocalLake(1, base_dir=tmp_path_factory.mktemp("xrdtape"), tape_sites=True) as lake:
        tape = lake.sites[0].tape
        assert tape is not None
        tape.recall_delay_seconds = 0.5
        yield lake


def site_tape(lake: LocalLake) -> TapeEmulation:
    tape = lake.sites[0].tape
    assert tape is not None
    return tape


async def poll_until(url: str, request_id: str, path: str, bound: float) -> PrepareStatus:
    """Poll every 0.1 s until the path is online or has an error."""
    loop = asyncio.get_running_loop()
    end = loop.time() + bound
    while True:
        status = (await query_prepare(url, request_id, [path], loop.time() + 5))[path]
        if status.online or status.error or loop.time() > end:
            return status
        await asyncio.sleep(0.1)


@pytest.mark.lake
async def test_recall_cycle(tape_lake: LocalLake) -> None:
    """Offline by stat; a stage is pending, then online after about the recall delay; the file
    reads back; evict makes stat say offline again."""
    url, path, data = tape_lake.sites[0].root_url, "/tape/client/cycle", b"recalled bytes"
    site_tape(tape_lake).put_on_tape(path, data)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    assert await stat_online(url, path, deadline) == (len(data), False)
    start = loop.time()
    request_id = await prepare_stage(url, [path], deadline)
    first = (await query_prepare(url, request_id, [path], deadline))[path]
    assert (first.exists, first.on_tape, first.online, first.requested) == (True, True, False, True)
    status = await poll_until(url, request_id, path, 5)
    assert status.online
    assert not status.error
    assert 0.4 <= loop.time() - start < 3
    assert await download(f"{url}/{path}", len(data), deadline) == data
    await prepare_evict(url, [path], deadline)
    for _ in range(50):  # XRootD runs the program after its reply
        if not (await stat_online(url, path, deadline))[1]:
            break
        await asyncio.sleep(0.1)
    assert await stat_online(url, path, deadline) == (len(data), False)


@pytest.mark.lake
async def test_lost_and_cancelled(tape_lake: LocalLake) -> None:
    """A lost file's stage ends with an error; a cancelled stage is no longer requested."""
    url, tape = tape_lake.sites[0].root_url, site_tape(tape_lake)
    deadline = asyncio.get_running_loop().time() + 10
    tape.put_on_tape("/tape/client/lost", b"x")
    tape.lose("/tape/client/lost")
    request_id = await prepare_stage(url, ["/tape/client/lost"], deadline)
    status = await poll_until(url, request_id, "/tape/client/lost", 5)
    assert "lost" in status.error
    assert not status.online
    tape.put_on_tape("/tape/client/cancel", b"y")
    tape.hang_stages = True
    try:
        request_id = await prepare_stage(url, ["/tape/client/cancel"], deadline)
        await prepare_cancel(url, request_id, ["/tape/client/cancel"], deadline)
        for _ in range(50):  # the cancel, too, runs after the reply
            answer = await query_prepare(url, request_id, ["/tape/client/cancel"], deadline)
            if not answer["/tape/client/cancel"].requested:
                break
            await asyncio.sleep(0.1)
        assert not answer["/tape/client/cancel"].requested
    finally:
        tape.hang_stages = False


@pytest.mark.lake
async def test_errors_are_xrd_errors(tape_lake: LocalLake) -> None:
    """A missing file's stat is NOT_FOUND; an answer missing the path is PROTOCOL_ERROR; a
    stopped endpoint is a connection error: always XrdError."""
    url = tape_lake.sites[0].root_url
    deadline = asyncio.get_running_loop().time() + 10
    with pytest.raises(XrdError) as caught:
        await stat_online(url, "/tape/client/none", deadline)
    assert caught.value.reason is Reason.NOT_FOUND
    with pytest.raises(XrdError) as caught:
        await prepare_stage("root://127.0.0.1:1", ["/tape/x"], deadline)
    assert caught.value.reason is Reason.CONNECT
