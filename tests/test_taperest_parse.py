"""The Tape REST API parsers against answers shaped as real servers send them (dCache, EOS/CTA,
StoRM; shared/WIRE-FORMATS.md section 1), and fuzzed: whatever a server sends, a parser returns
a value or raises TapeRestError, never another exception."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakeprobe.probes.clients.taperestparse import (
    FileState,
    Locality,
    TapeRestError,
    iso_duration,
    parse_archiveinfo,
    parse_discovery,
    parse_poll,
    parse_stage_created,
    problem_text,
    request_id_of,
)
from lakeprobe.probes.core.outcome import Reason

FUZZ = settings(max_examples=200, deadline=None, derandomize=True)
RID = "e2b8f2b0-5b7c-4c5e-9e3c-3f7d0e2b1a00"

# dCache (dCache #7508): state only, millisecond timestamps.
DCACHE_POLL = {
    "id": RID, "createdAt": 1710253683266, "startedAt": 1710253683270,
    "files": [
        {"path": "/pnfs/f1", "state": "COMPLETED", "startedAt": 1710253683270,
         "finishedAt": 1710253690000},
        {"path": "/pnfs/f2", "state": "STARTED", "startedAt": 1710253683270},
        {"path": "/pnfs/f3", "state": "FAILED", "error": "SKIPPED: stale location"},
    ],
}  # fmt: skip
# EOS/CTA: onDisk only, startedAt == createdAt.
EOS_POLL = {
    "id": RID, "createdAt": 1710253683, "startedAt": 1710253683,
    "files": [{"path": "/eos/f1", "onDisk": True}, {"path": "/eos/f2", "onDisk": False}],
}  # fmt: skip
# StoRM: onDisk for files on disk, state for the others, in one answer.
STORM_POLL = {
    "id": RID, "createdAt": 1710253683, "startedAt": 1710253684,
    "files": [{"path": "/s/f1", "onDisk": True}, {"path": "/s/f2", "state": "SUBMITTED"},
              {"path": "/s/f3", "state": "CANCELLED"}],
}  # fmt: skip


def poll(document: object, paths: list[str]) -> object:
    return parse_poll(json.dumps(document).encode(), RID, paths)


def test_dcache_poll_milliseconds_and_state() -> None:
    """dCache's millisecond timestamps come out as seconds; states map one to one."""
    status = parse_poll(json.dumps(DCACHE_POLL).encode(), RID, ["/pnfs/f1", "/pnfs/f2", "/pnfs/f3"])
    assert status.created_at == pytest.approx(1710253683.266)
    f1, f2, f3 = (status.files[p] for p in ("/pnfs/f1", "/pnfs/f2", "/pnfs/f3"))
    assert (f1.state, f1.on_disk, f1.finished_at) == (FileState.COMPLETED, True, 1710253690.0)
    assert (f2.state, f2.on_disk) == (FileState.STARTED, False)
    assert (f3.state, f3.error) == (FileState.FAILED, "SKIPPED: stale location")
    assert status.unexpected_paths == ()


def test_eos_poll_on_disk_only() -> None:
    """EOS: onDisk true is COMPLETED and on disk; false is still in progress."""
    status = parse_poll(json.dumps(EOS_POLL).encode(), RID, ["/eos/f1", "/eos/f2"])
    assert status.started_at == status.created_at == 1710253683.0
    assert status.files["/eos/f1"].state is FileState.COMPLETED
    assert status.files["/eos/f1"].on_disk
    assert status.files["/eos/f2"].state is FileState.STARTED
    assert not status.files["/eos/f2"].on_disk


def test_storm_poll_mixed() -> None:
    """StoRM mixes onDisk and state entries in one answer."""
    status = parse_poll(json.dumps(STORM_POLL).encode(), RID, ["/s/f1", "/s/f2", "/s/f3"])
    states = {path: file.state for path, file in status.files.items()}
    assert states == {"/s/f1": FileState.COMPLETED, "/s/f2": FileState.SUBMITTED,
                      "/s/f3": FileState.CANCELLED}  # fmt: skip


@pytest.mark.parametrize("word", ["CANCELED", "CANCELLED", "cancelled"])
def test_cancelled_spellings(word: str) -> None:
    """gfal2's CANCELED and the spec's CANCELLED are the same state."""
    document = {"id": RID, "files": [{"path": "/f", "state": word}]}
    assert poll(document, ["/f"]).files["/f"].state is FileState.CANCELLED  # type: ignore[attr-defined]


def test_paths_keyed_collapsed_and_mismatch() -> None:
    """Paths are matched after collapsing slashes; an answer's path never requested is
    reported in unexpected_paths; a requested path the answer omits is absent from files."""
    document = {"id": RID, "files": [{"path": "//a//f1", "onDisk": True},
                                      {"path": "/pnfs/a/f2", "onDisk": False}]}  # fmt: skip
    status = parse_poll(json.dumps(document).encode(), RID, ["/a/f1", "/a/f2"])
    assert set(status.files) == {"/a/f1"}
    assert status.unexpected_paths == ("/pnfs/a/f2",)


def test_error_fails_a_pending_file() -> None:
    """An `error` fails the file even when its state says it is still running (as gfal2)."""
    document = {"id": RID, "files": [{"path": "/f", "state": "STARTED", "error": "drive"}]}
    status = parse_poll(json.dumps(document).encode(), RID, ["/f"])
    assert (status.files["/f"].state, status.files["/f"].error) == (FileState.FAILED, "drive")


@pytest.mark.parametrize(
    ("document", "field"),
    [({"id": "other", "files": []}, "id"), ({"id": RID}, "files"),
     ({"id": RID, "files": [{"path": "/f"}]}, "neither onDisk nor state"),
     ({"id": RID, "files": [{"path": "/f", "state": "DONE"}]}, "files[0].state"),
     ({"id": RID, "files": [{"path": "/f", "onDisk": "yes"}]}, "files[0].onDisk"),
     ({"id": RID, "createdAt": -1, "files": []}, "createdAt"),
     ({"id": RID, "createdAt": True, "files": []}, "createdAt"), ([1], "poll answer")],
)  # fmt: skip
def test_poll_wrong_shapes(document: object, field: str) -> None:
    """A malformed poll answer is PROTOCOL_ERROR naming the field."""
    with pytest.raises(TapeRestError) as raised:
        poll(document, ["/f"])
    assert raised.value.reason is Reason.PROTOCOL_ERROR
    assert field in raised.value.detail


def test_discovery_picks_highest_v1_or_lower() -> None:
    """The highest version <= v1 wins; v2 and malformed URIs are skipped."""
    document = {"sitename": "StoRM@CNAF", "endpoints": [
        {"uri": "https://t.example:8443/api/v0", "version": "v0"},
        {"uri": "https://t.example:8443/api/v1/", "version": "v1", "metadata": {}},
        {"uri": "https://t.example:8443/api/v2", "version": "v2"},
        {"uri": "ftp://t.example/api/v1", "version": "v1"}]}  # fmt: skip
    api = parse_discovery(json.dumps(document).encode())
    assert (api.uri, api.version, api.sitename) == ("https://t.example:8443/api/v1", "v1",
                                                    "StoRM@CNAF")  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>500</html>", b'{"endpoints": []}', b'{"sitename": "s"}',
     b'{"sitename": "s", "endpoints": [{"uri": "https://h/api/v2", "version": "v2"}]}'],
)  # fmt: skip
def test_discovery_failures(body: bytes) -> None:
    """No sitename, no endpoints, no usable version: DISCOVERY_FAILED."""
    with pytest.raises(TapeRestError) as raised:
        parse_discovery(body)
    assert raised.value.reason is Reason.DISCOVERY_FAILED


def test_stage_created() -> None:
    """201 with a requestId gives the id; 200 (not the spec's 201) is STAGE_REJECTED, as gfal2."""
    assert parse_stage_created(201, {}, json.dumps({"requestId": RID}).encode()) == RID
    with pytest.raises(TapeRestError) as raised:
        parse_stage_created(200, {}, json.dumps({"requestId": RID}).encode())
    assert raised.value.reason is Reason.STAGE_REJECTED


@pytest.mark.parametrize("rid", ["", "../x", "a/b", "..", "a b", "x?y", 5, None])
def test_unusable_request_ids(rid: object) -> None:
    """An id that cannot be one URL path segment is a protocol error."""
    with pytest.raises(TapeRestError) as raised:
        request_id_of(rid)
    assert raised.value.reason is Reason.PROTOCOL_ERROR


@pytest.mark.parametrize(
    ("status", "headers", "body", "text"),
    [(400, {}, b'{"status":400,"title":"File missing from stage request","detail":"/f"}',
      "400 File missing from stage request: /f"),
     (400, {"title": "File missing", "detail": "/g not in request"}, b"",
      "400 File missing: /g not in request"),
     (404, {}, b'{"title":"Not Found","status":404,"detail":""}', "404 Not Found"),
     (400, {}, b"", "400 Bad Request"), (502, {}, b"proxy error\nmore", "502 proxy error"),
     (500, {}, b"500 Internal Server Error\n\nServer got itself in trouble",
      "500 Internal Server Error"),
     (503, {}, b"5031 requests queued", "503 5031 requests queued")],
)  # fmt: skip
def test_problem_text(status: int, headers: dict[str, str], body: bytes, text: str) -> None:
    """Problem JSON (EOS detail ""), dCache header problems, empty bodies (StoRM), plain text
    (a page that starts with its own status line keeps one status)."""
    assert problem_text(status, headers, body) == text


def test_archiveinfo() -> None:
    """Each locality and per-path errors; unrequested entries are dropped; null error fails."""
    answer = [
        {"path": "/f1", "locality": "TAPE"}, {"path": "/f2", "locality": "DISK_AND_TAPE"},
        {"path": "/f3", "error": "No such file"}, {"path": "/x", "locality": "LOST"},
    ]  # fmt: skip
    result = parse_archiveinfo(json.dumps(answer).encode(), ["/f1", "/f2", "/f3", "/f4"])
    assert result == {"/f1": Locality.TAPE, "/f2": Locality.DISK_AND_TAPE, "/f3": "No such file"}
    with pytest.raises(TapeRestError, match="error"):
        parse_archiveinfo(b'[{"path": "/f1", "error": null}]', ["/f1"])


def test_iso_duration() -> None:
    """diskLifetime goes out in whole seconds."""
    assert (iso_duration(3600), iso_duration(0.2)) == ("PT3600S", "PT1S")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
FILE = st.fixed_dictionaries(
    {"path": st.sampled_from(["/f", "//f", "/g", 3])},
    optional={"state": st.sampled_from(["COMPLETED", "CANCELED", "x", 1]), "onDisk": JSON,
              "error": JSON, "startedAt": JSON, "finishedAt": JSON},
)  # fmt: skip
POLL = st.fixed_dictionaries(
    {"files": st.lists(FILE, max_size=4)},
    optional={"id": st.sampled_from([RID, "x"]), "createdAt": JSON, "completedAt": JSON},
)
BODIES = st.one_of(st.binary(max_size=60), JSON.map(lambda v: json.dumps(v).encode()),
                   POLL.map(lambda v: json.dumps(v).encode()))  # fmt: skip


def failure_of(parse: Callable[[], object]) -> Reason | None:
    """The reason of the TapeRestError `parse` raises, None when it returns."""
    try:
        parse()
    except TapeRestError as error:
        return error.reason
    return None


@FUZZ
@given(BODIES)
def test_fuzz_parsers(body: bytes) -> None:
    """Every parser on arbitrary bytes and JSON: a value or TapeRestError, nothing else."""
    for parse in (
        lambda: parse_poll(body, RID, ["/f"]),
        lambda: parse_discovery(body),
        lambda: parse_stage_created(201, {}, body),
        lambda: parse_archiveinfo(body, ["/f"]),
    ):
        assert failure_of(parse) in (None, Reason.PROTOCOL_ERROR, Reason.DISCOVERY_FAILED)
    assert problem_text(500, {}, body).startswith("500 ")


@FUZZ
@given(POLL)
def test_fuzz_poll_values(document: dict[str, object]) -> None:
    """Well-formed-looking polls: timestamps come out in seconds below 1e13, files keyed by
    requested paths only."""
    body = json.dumps(document).encode()
    reason = failure_of(lambda: parse_poll(body, RID, ["/f"]))
    assert reason in (None, Reason.PROTOCOL_ERROR)
    if reason is not None:
        return
    status = parse_poll(body, RID, ["/f"])
    assert set(status.files) <= {"/f"}
    for value in (status.created_at, status.completed_at):
        assert value is None or 0 <= value < 1e13
