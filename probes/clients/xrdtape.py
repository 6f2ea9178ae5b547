"""XRootD tape operations (kXR_prepare and `query prepare`), asynchronous with deadlines.

Calls go through xrdasync's `_invoke` (XrdCl callbacks bridged to asyncio, the binding's
callback leaks released, XrdCl's own timeout from the deadline). The pyxrootd 5.5 binding
wants prepare paths as bytes: a str aborts the interpreter (6.x wants str), so paths are
encoded here. The token travels as `?authz=` CGI on every path. `query prepare` answers the
JSON of XrdOfsPrepGPI programs and CTA/EOS (`{"request_id", "responses": [...]}`); a
malformed answer is an XrdError with Reason.PROTOCOL_ERROR naming what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lakeprobe.probes.clients.xrdasync import (
    XrdError,
    XrdFileSystem,
    XrdStatus,
    _invoke,
    client_module,
    raw_client,
    with_authz,
)
from lakeprobe.probes.credentials.secrets import Secret, redact

# XrdCl PrepareFlags (XProtocol kXR_cancel; the 5.5 Python flags lack it).
PREPARE_CANCEL = 1
_PROTOCOL_ERROR = 0  # XrdStatus code 0 + errno 0: reason_for falls through to PROTOCOL_ERROR


@dataclass(frozen=True, slots=True)
class PrepareStatus:
    """One path of `query prepare`."""

    path: str
    exists: bool
    on_tape: bool
    online: bool
    requested: bool
    has_reqid: bool
    error: str  # error_text, "" when none


def protocol_error(operation: str, message: str) -> XrdError:
    """An answer the client cannot use: Reason.PROTOCOL_ERROR with `message`."""
    return XrdError(operation, XrdStatus(ok=False, code=_PROTOCOL_ERROR, message=redact(message)))


def _paths(paths: Sequence[str], token: Secret | None) -> list[bytes]:
    return [with_authz(path, token).encode() for path in paths]


def _text(raw: Any) -> str:
    """A buffer answer as text: a C string, so up to its first NUL (XRootD 5.5.3 sends a
    query prepare answer with its NUL and a stray byte after it), stripped."""
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw).decode("utf-8", "replace")
    return str(raw or "").split("\x00", 1)[0].strip()


async def _prepare(url: str, files: list[bytes], flags: int, deadline: float) -> str:
    filesystem = raw_client().FileSystem(url)
    return _text(await _invoke(filesystem, "prepare", files, flags, deadline=deadline))


async def prepare_stage(
    url: str, paths: Sequence[str], deadline: float, token: Secret | None = None
) -> str:
    """Ask for `paths` to be brought online; the server's request id."""
    stage = client_module().flags.PrepareFlags.STAGE
    request_id = await _prepare(url, _paths(paths, token), stage, deadline)
    if not request_id:
        raise protocol_error("prepare", "stage answered without a request id")
    return request_id


async def prepare_evict(
    url: str, paths: Sequence[str], deadline: float, token: Secret | None = None
) -> None:
    """Drop the disk copies of `paths` (their tape copies stay)."""
    evict = client_module().flags.PrepareFlags.EVICT
    await _prepare(url, _paths(paths, token), evict, deadline)


async def prepare_cancel(
    url: str, request_id: str, paths: Sequence[str], deadline: float,
    token: Secret | None = None,
) -> None:  # fmt: skip
    """Cancel `paths` of a stage request (the request id goes first, as gfal2 sends it)."""
    files = [request_id.encode(), *_paths(paths, token)]
    await _prepare(url, files, PREPARE_CANCEL, deadline)


async def query_prepare(
    url: str, request_id: str, paths: Sequence[str], deadline: float,
    token: Secret | None = None,
) -> dict[str, PrepareStatus]:  # fmt: skip
    """The state of each of `paths` in request `request_id`, keyed by the path asked for."""
    code = client_module().flags.QueryCode.PREPARE
    argument = "\n".join([request_id, *(with_authz(path, token) for path in paths)])
    filesystem = raw_client().FileSystem(url)
    raw = await _invoke(filesystem, "query", code, argument, deadline=deadline)
    return parse_query_prepare(_text(raw), paths)


def parse_query_prepare(text: str, paths: Sequence[str]) -> dict[str, PrepareStatus]:
    """Parse a `query prepare` answer tolerantly: any malformed shape, or a path asked for
    and not answered, raises XrdError (PROTOCOL_ERROR), never another exception."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise protocol_error("query prepare", f"not JSON: {text[:200]!r}") from None
    responses = document.get("responses") if isinstance(document, dict) else None
    if not isinstance(responses, list):
        raise protocol_error("query prepare", "answer without a 'responses' list")
    found: dict[str, PrepareStatus] = {}
    for entry in responses:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            status = _status(entry)
            found[_normal(status.path)] = status
    missing = [path for path in paths if _normal(path) not in found]
    if missing:
        raise protocol_error("query prepare", f"no answer for path {missing[0]}")
    return {path: found[_normal(path)] for path in paths}


def _normal(path: str) -> str:
    """Compare paths without CGI and with collapsed slashes, as gfal2 does."""
    path = path.split("?", 1)[0]
    while "//" in path:
        path = path.replace("//", "/")
    return path


def _flag(entry: Mapping[str, Any], *keys: str) -> bool:
    """JSON true/1/"true" (servers differ), from the first key present."""
    for key in keys:
        if key in entry:
            value = entry[key]
            return value is True or value == 1 or str(value).lower() in ("true", "1")
    return False


def _status(entry: Mapping[str, Any]) -> PrepareStatus:
    error = entry.get("error_text")
    return PrepareStatus(
        path=str(entry["path"]),
        exists=_flag(entry, "path_exists", "exists"),
        on_tape=_flag(entry, "on_tape"),
        online=_flag(entry, "online"),
        requested=_flag(entry, "requested"),
        has_reqid=_flag(entry, "has_reqid"),
        error=redact(str(error)) if error else "",
    )


async def stat_online(
    url: str, path: str, deadline: float, token: Secret | None = None
) -> tuple[int, bool]:
    """(size, online): online unless the server flags the file kXR_offline (tape only)."""
    info = await XrdFileSystem(url, token).stat(path, deadline)
    offline = client_module().flags.StatInfoFlags.OFFLINE
    return info.size, not info.flags & offline
