"""Pure parsers of WLCG Tape REST API answers (shared/WIRE-FORMATS.md section 1).

Tolerant of the real servers' dialects: `onDisk` or `state` per file, mixed in one answer
(StoRM); `CANCELED` and `CANCELLED`; timestamps in seconds or milliseconds (dCache); error
bodies as problem JSON, empty (StoRM), or in `title`/`detail` response headers (dCache).
Whatever a server sends, a parser returns a value or raises TapeRestError, never another
exception: a bad answer is the endpoint's fault, never a lakeprobe crash.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.credentials.secrets import redact

MAX_DETAIL = 300
MS_THRESHOLD = 1e12  # a larger timestamp is in milliseconds (dCache)
# A request id becomes one path segment: no separators, no dot-segments, printable ASCII.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._~:@+=-]{1,256}")
_VERSION = re.compile(r"v?([0-9]{1,6})")
_SLASHES = re.compile(r"/+")


class TapeRestError(Exception):
    """An expected failure of a Tape REST exchange: a Reason (closed set) and a detail that
    never holds a token."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = _clip(detail)


@dataclass(frozen=True, slots=True)
class TapeApi:
    uri: str  # https://host[:port]/prefix/v1, no trailing slash
    version: str  # "v1"
    sitename: str  # "" when the URI was configured rather than discovered


class FileState(enum.StrEnum):
    SUBMITTED = "SUBMITTED"
    STARTED = "STARTED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"  # the spec's spelling; gfal2 and some servers write CANCELED


TERMINAL = frozenset({FileState.COMPLETED, FileState.FAILED, FileState.CANCELLED})
_STATES = {state.value: state for state in FileState} | {"CANCELED": FileState.CANCELLED}


@dataclass(frozen=True, slots=True)
class FileStatus:
    path: str  # slash-collapsed
    state: FileState
    on_disk: bool
    error: str | None
    started_at: float | None  # unix seconds
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class StageStatus:
    """A poll answer. `files` holds the requested paths the answer names; a requested path
    it does not name is absent from `files` (the caller decides: pending or mismatch).
    `unexpected_paths`: paths the answer names that were never requested (dCache #7585)."""

    request_id: str
    created_at: float | None
    started_at: float | None
    completed_at: float | None
    files: dict[str, FileStatus]
    unexpected_paths: tuple[str, ...]


class Locality(enum.StrEnum):
    DISK = "DISK"
    TAPE = "TAPE"
    DISK_AND_TAPE = "DISK_AND_TAPE"
    LOST = "LOST"
    NONE = "NONE"
    UNAVAILABLE = "UNAVAILABLE"


def collapse(path: str) -> str:
    """The key of a storage path: runs of slashes collapsed, as gfal2 sends and matches."""
    return _SLASHES.sub("/", path)


def iso_duration(seconds: float) -> str:
    """`diskLifetime` as ISO-8601: whole seconds (PT3600S), at least one."""
    return f"PT{max(1, round(seconds))}S"


def parse_discovery(body: bytes) -> TapeApi:
    """The highest endpoint of version <= v1 from `.well-known/wlcg-tape-rest-api`, as gfal2
    picks it; DISCOVERY_FAILED when there is none or the document is malformed."""
    try:
        document = _object(_json(body, "discovery"), "discovery")
        sitename = _string(document.get("sitename"), "sitename")
        endpoints = _list(document.get("endpoints"), "endpoints")
    except TapeRestError as error:
        raise TapeRestError(Reason.DISCOVERY_FAILED, error.detail) from None
    best: tuple[int, str] | None = None
    for entry in endpoints:
        if not isinstance(entry, dict):
            continue
        number = _version_number(entry.get("version"))
        uri = entry.get("uri")
        if number is None or number > 1 or not isinstance(uri, str) or _uri_problem(uri):
            continue
        if best is None or number > best[0]:
            best = (number, uri)
    if best is None:
        raise TapeRestError(Reason.DISCOVERY_FAILED, "discovery: no endpoint of version <= v1")
    return TapeApi(uri=best[1].rstrip("/"), version=f"v{best[0]}", sitename=sitename)


def parse_stage_created(status: int, headers: Mapping[str, str], body: bytes) -> str:
    """The request id of a stage answer: 201 with `{"requestId"}` (gfal2 accepts only 201);
    anything else is STAGE_REJECTED with the server's problem text."""
    if status != 201:
        raise TapeRestError(Reason.STAGE_REJECTED, f"stage: {problem_text(status, headers, body)}")
    document = _object(_json(body, "stage answer"), "stage answer")
    return request_id_of(document.get("requestId"))


def request_id_of(value: object) -> str:
    """A request id safe to put in a URL path segment; PROTOCOL_ERROR for anything else."""
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value) or value in (".", ".."):
        raise TapeRestError(Reason.PROTOCOL_ERROR, f"requestId: not a usable id: {value!r:.80}")
    return value


def parse_poll(body: bytes, request_id: str, paths: Sequence[str]) -> StageStatus:
    """A stage request's status (GET {uri}/stage/{id}), files keyed by collapsed path."""
    document = _object(_json(body, "poll answer"), "poll answer")
    answered_id = document.get("id", request_id)
    if answered_id != request_id:
        raise TapeRestError(Reason.PROTOCOL_ERROR, f"id: {answered_id!r:.80} is not {request_id}")
    requested = {collapse(path) for path in paths}
    files: dict[str, FileStatus] = {}
    unexpected: list[str] = []
    for index, entry in enumerate(_list(document.get("files"), "files")):
        status = _file_status(entry, f"files[{index}]")
        if status.path in requested:
            files[status.path] = status
        elif status.path not in unexpected:
            unexpected.append(status.path)
    return StageStatus(
        request_id=request_id,
        created_at=_timestamp(document.get("createdAt"), "createdAt"),
        started_at=_timestamp(document.get("startedAt"), "startedAt"),
        completed_at=_timestamp(document.get("completedAt"), "completedAt"),
        files=files,
        unexpected_paths=tuple(unexpected),
    )


def _file_status(entry: object, where: str) -> FileStatus:
    item = _object(entry, where)
    path = collapse(_string(item.get("path"), f"{where}.path"))
    error = item.get("error")
    if error is not None and not isinstance(error, str):
        raise TapeRestError(Reason.PROTOCOL_ERROR, f"{where}.error: not a string")
    on_disk_value = item.get("onDisk")
    if on_disk_value is not None and not isinstance(on_disk_value, bool):
        raise TapeRestError(Reason.PROTOCOL_ERROR, f"{where}.onDisk: not a boolean")
    if "state" in item:
        word = _string(item.get("state"), f"{where}.state").upper()
        if word not in _STATES:
            raise TapeRestError(Reason.PROTOCOL_ERROR, f"{where}.state: unknown {word!r:.40}")
        state = _STATES[word]
    elif on_disk_value is not None:
        state = FileState.COMPLETED if on_disk_value else FileState.STARTED
    else:
        raise TapeRestError(Reason.PROTOCOL_ERROR, f"{where}: neither onDisk nor state")
    if error and state not in TERMINAL:
        state = FileState.FAILED  # gfal2: an error fails the file, whatever else it says
    on_disk = on_disk_value if on_disk_value is not None else state is FileState.COMPLETED
    return FileStatus(
        path=path,
        state=state,
        on_disk=on_disk,
        error=error or None,
        started_at=_timestamp(item.get("startedAt"), f"{where}.startedAt"),
        finished_at=_timestamp(item.get("finishedAt"), f"{where}.finishedAt"),
    )


def parse_archiveinfo(body: bytes, paths: Sequence[str]) -> dict[str, Locality | str]:
    """Locality per requested (collapsed) path, or that path's error text. Paths the answer
    omits (the spec allows partial answers) or never requested are not in the result."""
    requested = {collapse(path) for path in paths}
    result: dict[str, Locality | str] = {}
    for index, entry in enumerate(_list(_json(body, "archiveinfo"), "archiveinfo")):
        where = f"archiveinfo[{index}]"
        item = _object(entry, where)
        path = collapse(_string(item.get("path"), f"{where}.path"))
        if "error" in item:  # present but null fails, as in gfal2 since DMC-1439
            value: Locality | str = _string(item["error"], f"{where}.error") or "error"
        else:
            word = _string(item.get("locality"), f"{where}.locality").upper()
            if word not in Locality.__members__:
                raise TapeRestError(Reason.PROTOCOL_ERROR, f"{where}.locality: {word!r:.40}")
            value = Locality[word]
        if path in requested:
            result[path] = value
    return result


def problem_text(status: int, headers: Mapping[str, str], body: bytes) -> str:
    """`403 title: detail` from problem JSON, dCache's title/detail headers, the first line of
    another body, or the status phrase for an empty one (StoRM's bare 400)."""
    title, detail = _body_problem(body)
    if not title and not detail:
        title, detail = headers.get("title", ""), headers.get("detail", "")
    if not title and not detail:
        title = body[:200].decode("utf-8", "replace").strip().split("\n", 1)[0]
    text = ": ".join(part.strip() for part in (title, detail) if part and part.strip())
    if text.split(" ", 1)[0] == str(status):  # a plain error page's "500 Internal Server Error"
        return _clip(text)
    return _clip(f"{status} {text or _phrase(status)}")


def _body_problem(body: bytes) -> tuple[str, str]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return "", ""
    if not isinstance(document, dict):
        return "", ""
    title, detail = document.get("title"), document.get("detail")
    return (title if isinstance(title, str) else "", detail if isinstance(detail, str) else "")


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise TapeRestError(Reason.PROTOCOL_ERROR, f"{what}: not JSON ({error})") from None


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TapeRestError(Reason.PROTOCOL_ERROR, f"{where}: not a JSON object")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise TapeRestError(Reason.PROTOCOL_ERROR, f"{where}: missing or not a list")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise TapeRestError(Reason.PROTOCOL_ERROR, f"{where}: missing or not a string")
    return value


def _timestamp(value: object, where: str) -> float | None:
    """Unix seconds from seconds or milliseconds (> 1e12: dCache); None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e16:
        raise TapeRestError(Reason.PROTOCOL_ERROR, f"{where}: not a timestamp")
    return value / 1000 if value > MS_THRESHOLD else float(value)


def _version_number(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    match = _VERSION.fullmatch(value.strip())
    return int(match.group(1)) if match else None


def _uri_problem(uri: str) -> str | None:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "malformed"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "not an http(s) URL"
    if parts.query or parts.fragment:
        return "has a query or fragment"
    return None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "(no text)"


def _clip(text: str) -> str:
    text = redact(" ".join(text.split()))
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
