"""A test double of a WLCG Tape REST API v1 server, for the local lake: NOT a real server.

It answers the spec's requests (shared/WIRE-FORMATS.md 1.1) over https on 127.0.0.1, worded
in the dialect of dCache, EOS/CTA or StoRM (taperest_dialects), in front of a TapeBackend:
the tape-emulating site, or MemoryTapeBackend (files with a recall delay, in memory). Its
purpose is to exercise clients against the formats real servers send; it holds no data and
checks no credentials. Debian's gfal2 is the independent client that keeps it honest
(tests/test_taperest_double.py).

Runs its own event loop in a thread of the calling process, so sync tests, the demo and
async tests (whose loop it never blocks) can all use it, and tests read its state
(`open_requests()`, `disk_lifetimes`) directly; a child process would need IPC for both.

Endpoints under the dialect's prefix P (/api/v1, dCache /api/v1/tape), each with and
without a trailing slash (gfal2 <= 2.21 adds one): GET /.well-known/wlcg-tape-rest-api;
POST P/stage (201, Location, requestId; the diskLifetime received is kept per path);
GET P/stage/{id}; POST P/stage/{id}/cancel; DELETE P/stage/{id}; POST P/release/{id}
(here: evict the disk copy of the paths); POST P/archiveinfo.
Fault injection: `path_mismatch` (polls name other paths than requested, dCache #7585),
`reject_stages` (stage -> 403 problem). `cancelled_word` is how a cancelled file is spelt.
`seen` keeps the (method, path) of the last 1000 requests.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from lakeprobe.lake.pki import TestPki
from lakeprobe.lake.taperest_dialects import (
    DIALECTS,
    FileView,
    api_prefix,
    bad_request,
    file_entry,
    problem,
    timestamp,
)
from lakeprobe.lake.threadedapp import ThreadedApp

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BackendError(Exception):
    """The tape site behind the double cannot answer (its server is down, say); the double
    answers 500 with it as the problem's detail, as a Tape REST server over a dead tape
    backend does, instead of an unhandled exception."""


@dataclass(frozen=True, slots=True)
class BackendFile:
    """What the tape site says of one path (XRootD query prepare's fields)."""

    exists: bool
    on_tape: bool
    online: bool
    error: str | None = None
    unavailable: bool = False  # the tape copy cannot be reached now


class TapeBackend(Protocol):
    """The tape site behind the double; coroutines, run in the double's event loop.
    `query(None, paths)` is a plain locality check (archiveinfo)."""

    async def stage(self, paths: Sequence[str]) -> str: ...
    async def query(
        self, request_id: str | None, paths: Sequence[str]
    ) -> dict[str, BackendFile]: ...
    async def evict(self, paths: Sequence[str]) -> None: ...
    async def cancel(self, request_id: str, paths: Sequence[str]) -> None: ...


@dataclass(slots=True)
class MemoryFile:
    on_tape: bool = True
    online: bool = False
    lost: bool = False  # on neither disk nor tape: recalls fail
    unavailable: bool = False
    never_completes: bool = False  # a stage that stays STARTED for ever
    due: float | None = None  # monotonic time the recall completes


class MemoryTapeBackend:
    """An in-memory tape site: a staged file comes online `recall_delay` seconds after the
    stage. Part of the double, for tests that need no XRootD (thread-safe: tests add files
    from their own thread)."""

    def __init__(self, recall_delay: float = 0.5) -> None:
        self.recall_delay = recall_delay
        self.files: dict[str, MemoryFile] = {}
        self.down = False  # every call raises BackendError, as a stopped tape site would
        self._lock = threading.Lock()

    def _reachable(self) -> None:
        if self.down:
            raise BackendError("tape site down")

    def add(self, path: str, **state: Any) -> MemoryFile:
        with self._lock:
            self.files[path] = MemoryFile(**state)
            return self.files[path]

    async def stage(self, paths: Sequence[str]) -> str:
        self._reachable()
        with self._lock:
            for path in paths:
                file = self.files.get(path)
                if file and file.on_tape and not file.online and file.due is None:
                    file.due = time.monotonic() + self.recall_delay
        return uuid.uuid4().hex

    async def query(self, request_id: str | None, paths: Sequence[str]) -> dict[str, BackendFile]:
        self._reachable()
        with self._lock:
            return {path: self._look(path) for path in paths}

    def _look(self, path: str) -> BackendFile:
        file = self.files.get(path)
        if file is None:
            return BackendFile(exists=False, on_tape=False, online=False)
        ready = file.due is not None and time.monotonic() >= file.due and not file.never_completes
        if ready and not file.lost:
            file.online, file.due = True, None
        error = "file lost from tape" if file.lost and file.due is not None else None
        on_tape = file.on_tape and not file.lost
        return BackendFile(True, on_tape, file.online, error, file.unavailable)

    async def evict(self, paths: Sequence[str]) -> None:
        self._reachable()
        with self._lock:
            for path in paths:
                file = self.files.get(path)
                if file is not None and file.on_tape:
                    file.online = False

    async def cancel(self, request_id: str, paths: Sequence[str]) -> None:
        self._reachable()
        with self._lock:
            for path in paths:
                if path in self.files:
                    self.files[path].due = None


@dataclass(slots=True)
class _Stage:
    backend_id: str
    paths: tuple[str, ...]
    created_at: float
    cancelled: set[str] = field(default_factory=set)
    finished: dict[str, float] = field(default_factory=dict)


class TapeRestDouble(ThreadedApp):
    """`with TapeRestDouble(pki, backend, dialect="storm") as api:` serves on api.url."""

    name = "Tape REST double"

    def __init__(
        self,
        pki: TestPki,
        backend: TapeBackend,
        dialect: str = "storm",
        sitename: str = "LAKE-TAPE",
        cancelled_word: str = "CANCELLED",
        path_mismatch: bool = False,
        reject_stages: bool = False,
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}: one of {', '.join(DIALECTS)}")
        super().__init__(pki)
        self.pki: TestPki = pki
        self.backend, self.dialect, self.sitename = backend, dialect, sitename
        self.cancelled_word = cancelled_word
        self.path_mismatch = path_mismatch
        self.reject_stages = reject_stages
        self.disk_lifetimes: dict[str, str | None] = {}  # path -> diskLifetime last received
        self.seen: collections.deque[tuple[str, str]] = collections.deque(maxlen=1000)
        self._stages: dict[str, _Stage] = {}

    @property
    def url(self) -> str:
        """The origin, which also serves the discovery document."""
        return f"https://localhost:{self.port}"

    @property
    def api_uri(self) -> str:
        return f"{self.url}{api_prefix(self.dialect)}"

    def open_requests(self) -> list[str]:
        """Ids of stage requests not yet deleted (the no-orphans check)."""
        return list(dict(self._stages))

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        prefix = api_prefix(self.dialect)
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/.well-known/wlcg-tape-rest-api", self._discovery),
            ("POST", f"{prefix}/stage", self._stage),
            ("GET", f"{prefix}/stage/{{id}}", self._poll),
            ("DELETE", f"{prefix}/stage/{{id}}", self._delete),
            ("POST", f"{prefix}/stage/{{id}}/cancel", self._cancel),
            ("POST", f"{prefix}/release/{{id}}", self._release),
            ("POST", f"{prefix}/archiveinfo", self._archiveinfo),
        ]
        for method, path, handler in routes:  # both URL shapes
            app.router.add_route(method, path, handler)
            app.router.add_route(method, f"{path}/", handler)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Keep (method, path) of each request: tests check the URL shapes clients use. A
        backend that cannot answer is a 500 problem naming it."""
        self.seen.append((request.method, request.path))
        try:
            return await handler(request)
        except BackendError as error:
            detail = f"tape backend: {error}"
            return problem(self.dialect, 500, "Internal Server Error", detail)

    async def _discovery(self, request: web.Request) -> web.Response:
        endpoint = {"uri": self.api_uri, "version": "v1", "metadata": {}}
        return web.json_response({"sitename": self.sitename, "endpoints": [endpoint]})

    async def _stage(self, request: web.Request) -> web.Response:
        if self.reject_stages:
            return problem(self.dialect, 403, "Forbidden", "stage requests are refused here")
        document = await _json_body(request)
        files = document.get("files") if isinstance(document, dict) else None
        entries = files if isinstance(files, list) else []
        if not entries or not all(isinstance(f, dict) and _is_path(f.get("path")) for f in entries):
            return bad_request(self.dialect, "a 'files' list of {'path': ...} is needed")
        assert isinstance(document, dict)
        if self.dialect == "dcache" and set(document) - {"files"}:
            detail = f"unrecognized payload element(s): {sorted(set(document) - {'files'})}"
            return problem(self.dialect, 400, "Bad Request", detail)
        paths = tuple(entry["path"] for entry in entries)
        for entry in entries:
            self.disk_lifetimes[entry["path"]] = entry.get("diskLifetime")
        request_id = str(uuid.uuid4())
        self._stages[request_id] = _Stage(await self.backend.stage(paths), paths, time.time())
        location = f"{self.api_uri}/stage/{request_id}"
        return web.json_response(
            {"requestId": request_id}, status=201, headers={"Location": location}
        )

    async def _poll(self, request: web.Request) -> web.Response:
        stage = self._stages.get(request.match_info["id"])
        if stage is None:
            return problem(self.dialect, 404, "Not Found", "no such stage request")
        found = await self.backend.query(stage.backend_id, stage.paths)
        views = [self._view(stage, path, found[path]) for path in stage.paths]
        files = [file_entry(self.dialect, view, self.cancelled_word) for view in views]
        if self.path_mismatch:
            for entry in files:
                entry["path"] = f"/mismatch{entry['path']}"
        done = [view.finished_at for view in views if view.finished_at is not None]
        started = stage.created_at  # EOS: startedAt == createdAt; the double does so for all
        answer = {
            "id": request.match_info["id"],
            "createdAt": timestamp(self.dialect, stage.created_at),
            "startedAt": timestamp(self.dialect, started),
            "files": files,
        }
        if len(done) == len(views):
            answer["completedAt"] = timestamp(self.dialect, max(done))
        return web.json_response(answer)

    def _view(self, stage: _Stage, path: str, file: BackendFile) -> FileView:
        error = file.error or (None if file.exists else "No such file or directory")
        if path in stage.cancelled:
            state = "CANCELLED"
        elif error:
            state = "FAILED"
        else:
            state = "COMPLETED" if file.online else "STARTED"
        if state != "STARTED":
            stage.finished.setdefault(path, time.time())
        return FileView(path, state, error, stage.created_at, stage.finished.get(path))

    async def _cancel(self, request: web.Request) -> web.Response:
        stage, paths = self._stages.get(request.match_info["id"]), await _paths(request)
        if stage is None:
            return problem(self.dialect, 404, "Not Found", "no such stage request")
        if paths is None:
            return bad_request(self.dialect, "a 'paths' list is needed")
        foreign = [path for path in paths if path not in stage.paths]
        if foreign:
            detail = f"{foreign[0]} is not part of request {request.match_info['id']}"
            return problem(self.dialect, 400, "File missing from stage request", detail)
        await self.backend.cancel(stage.backend_id, paths)
        stage.cancelled.update(paths)
        return web.Response(status=200)

    async def _delete(self, request: web.Request) -> web.Response:
        stage = self._stages.pop(request.match_info["id"], None)
        if stage is None:
            return problem(self.dialect, 404, "Not Found", "no such stage request")
        await self.backend.cancel(stage.backend_id, stage.paths)  # best effort, as the spec
        return web.Response(status=200)

    async def _release(self, request: web.Request) -> web.Response:
        """Release = evict the disk copy (the emulation has no pins). The id is not checked:
        CTA ignores it and gfal2 sends `gfal2-placeholder-id` when it has none."""
        paths = await _paths(request)
        if paths is None:
            return bad_request(self.dialect, "a 'paths' list is needed")
        await self.backend.evict(paths)
        return web.Response(status=200)

    async def _archiveinfo(self, request: web.Request) -> web.Response:
        paths = await _paths(request)
        if paths is None:
            return bad_request(self.dialect, "a 'paths' list is needed")
        found = await self.backend.query(None, paths)
        return web.json_response([_locality(path, found[path]) for path in paths])


def _locality(path: str, file: BackendFile) -> dict[str, str]:
    if not file.exists:
        return {"path": path, "error": "No such file or directory"}
    if file.unavailable:
        return {"path": path, "locality": "UNAVAILABLE"}
    if file.online:
        return {"path": path, "locality": "DISK_AND_TAPE" if file.on_tape else "DISK"}
    return {"path": path, "locality": "TAPE" if file.on_tape else "LOST"}


async def _json_body(request: web.Request) -> object:
    try:
        return json.loads(await request.read())
    except ValueError:
        return None


async def _paths(request: web.Request) -> list[str] | None:
    document = await _json_body(request)
    paths = document.get("paths") if isinstance(document, dict) else None
    if not isinstance(paths, list) or not all(_is_path(path) for path in paths):
        return None
    return paths


def _is_path(value: object) -> bool:
    return isinstance(value, str) and value.startswith("/")
