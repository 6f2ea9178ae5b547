"""How the Tape REST double (lakeprobe.lake.taperest) words its answers: the dialects of
dCache, EOS/CTA and StoRM as shared/WIRE-FORMATS.md 1.3 records them. Pure functions."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

DIALECTS = ("dcache", "eos", "storm")


@dataclass(frozen=True, slots=True)
class FileView:
    """One file of a stage request as the double sees it at a poll."""

    path: str
    state: str  # SUBMITTED, STARTED, COMPLETED, FAILED, CANCELLED
    error: str | None
    started_at: float | None  # unix seconds
    finished_at: float | None


def api_prefix(dialect: str) -> str:
    """dCache's frontend serves the API under /api/v1/tape (dCache #6956)."""
    return "/api/v1/tape" if dialect == "dcache" else "/api/v1"


def timestamp(dialect: str, seconds: float | None) -> int | None:
    """Unix seconds, milliseconds for dCache (dCache #7508)."""
    if seconds is None:
        return None
    return int(seconds * 1000) if dialect == "dcache" else int(seconds)


def file_entry(dialect: str, view: FileView, cancelled_word: str) -> dict[str, object]:
    """dCache: `state` only; EOS: `onDisk` only (a failed or cancelled file as `error`,
    which clients read as FAILED); StoRM: `onDisk` for
    files on disk, `state` for the others, mixed in one answer."""
    entry: dict[str, object] = {"path": view.path}
    online = view.state == "COMPLETED"
    if dialect == "eos" or (dialect == "storm" and online):
        entry["onDisk"] = online
    else:
        entry["state"] = cancelled_word if view.state == "CANCELLED" else view.state
        if dialect == "dcache":
            for key, value in (("startedAt", view.started_at), ("finishedAt", view.finished_at)):
                if value is not None:
                    entry[key] = timestamp(dialect, value)
    error = view.error
    if dialect == "eos" and view.state == "CANCELLED":
        error = error or "stage request cancelled"  # onDisk alone cannot say it
    if error:
        entry["error"] = error
    return entry


def problem(dialect: str, status: int, title: str, detail: str = "") -> web.Response:
    """An error answer: dCache puts title/detail in HTTP headers (no body); EOS sends problem
    JSON with `detail` possibly ""; StoRM `{"status", "title"}` only."""
    if dialect == "dcache" and status == 400:
        return web.Response(status=status, headers={"title": title, "detail": detail})
    document: dict[str, object] = {"status": status, "title": title}
    if dialect == "eos" or (dialect == "dcache" and detail):
        document["detail"] = detail
    return web.Response(
        status=status, body=json.dumps(document).encode(), content_type="application/problem+json"
    )


def bad_request(dialect: str, detail: str) -> web.Response:
    """A body the server cannot parse: StoRM answers a bare 400 with no body."""
    if dialect == "storm":
        return web.Response(status=400)
    return problem(dialect, 400, "Bad Request", detail)
