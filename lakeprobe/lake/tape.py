"""Tape emulation for an XrootdSite, from stock XRootD 5.5.3 parts only.

The site exports `tape_root` as `mig nostage`: a file there may exist only in the "mass
storage system", which `oss.rsscmd` answers for (the tape copies, under `base_dir/tape`), so
stat shows it Offline and a read fails (3005). `ofs.preplib libXrdOfsPrepGPI.so` hands
prepare requests (stage, query, cancel, evict) to a program: stage records the request, query
prints the JSON that `xrdfs query prepare` and gfal2 understand, evict drops the disk copy.
The "drive" is a thread here: it recalls staged files after `recall_delay_seconds` (never
with `hang_stages`) and migrates files written below `archive_dir` to tape after
`archive_delay_seconds`. Both programs run as the server user; they and the drive share state
through small JSON files under `base_dir/tapectl`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

log = logging.getLogger(__name__)

_TICK_SECONDS = 0.05
PREPLIB = "libXrdOfsPrepGPI.so -admit stage,query,cancel,evict,prep"

# Shared by both programs: where things are, JSON files written atomically.
_COMMON = r"""import json, os, re, sys, time
CTL = os.path.dirname(os.path.abspath(__file__))
def load(name, default):
    try:
        with open(os.path.join(CTL, name)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default
def save(name, value):
    path = os.path.join(CTL, name)
    with open(path + ".tmp", "w") as handle:
        json.dump(value, handle)
    os.replace(path + ".tmp", path)
KNOBS = load("knobs.json", {})
def place(root, path):
    return os.path.join(KNOBS[root], path.split("?")[0].lstrip("/"))
def key(reqid):
    return re.sub(r"[^A-Za-z0-9._-]", "_", reqid)
"""

# oss.rsscmd: `<op> <path> [<arg>]`; the first output line is 0 or -errno.
_RSS = r"""
op, args = sys.argv[1], sys.argv[2:]
path = place("tape", args[0]) if args else ""
if op in ("statx", "exists"):
    if not os.path.exists(path):
        sys.exit(print(-2))
    st = os.stat(path)
    print(0)
    if op == "statx":
        kind = "d" if os.path.isdir(path) else "f"
        print(kind, "rw-r--r--", 1, st.st_uid, st.st_gid, int(st.st_atime), int(st.st_ctime),
              int(st.st_mtime), st.st_size, 4096, st.st_blocks)
elif op == "dlist":
    if not os.path.isdir(path):
        sys.exit(print(-2))
    print(0)
    print("\n".join(sorted(os.listdir(path))))
elif op == "rm":
    if not os.path.isfile(path):
        sys.exit(print(-2))
    os.unlink(path)
    print(0)
elif op == "mv":
    target = place("tape", args[1])
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(path, target) if os.path.exists(path) else None
    print(0)
else:  # create: a new file's tape copy appears only when the drive migrates it
    print(0)
"""

# ofs.preplib -run: `[options] -- <reqid> <op> <paths...>`; the query's output is the answer.
_PREP = r"""
args = sys.argv[1:]
at = args.index("--")
reqid, op, paths = args[at + 1], args[at + 2], [p.split("?")[0] for p in args[at + 3:]]
lost = set(KNOBS.get("lost", []))
def on_tape(path):
    return os.path.isfile(place("tape", path)) and path not in lost
if op == "stage":
    save("requests/" + key(reqid) + ".json", {"id": reqid, "paths": paths, "time": time.time()})
elif op == "cancel":
    save("requests/" + key(reqid) + ".cancel", {"paths": paths})
elif op == "evict":  # only a disk copy that also has a tape copy: never lose data
    for path in paths:
        if on_tape(path) and os.path.isfile(place("data", path)):
            os.unlink(place("data", path))
elif op == "query":
    request = load("requests/" + key(reqid) + ".json", None)
    done = load("results/" + key(reqid) + ".json", {})
    cancelled = set(load("requests/" + key(reqid) + ".cancel", {}).get("paths", []))
    answers = []
    for path in paths:
        online = os.path.isfile(place("data", path))
        exists = online or os.path.exists(place("tape", path))
        # The program may run after the stage reply: an unknown id is still pending.
        known = path in request["paths"] if request else reqid != "*"
        requested = known and path not in cancelled
        answers.append({
            "path": path, "path_exists": exists, "exists": exists, "on_tape": on_tape(path),
            "online": online, "requested": requested, "has_reqid": requested,
            "req_time": int(request["time"] if request else time.time()),
            "error_text": done.get(path, {}).get("error", "") if requested else "",
        })
    print(json.dumps({"request_id": reqid, "responses": answers}))
"""


class TapeEmulation:
    """Tape behind one XrootdSite (give it as `XrootdSite(..., tape=TapeEmulation())`).
    Remote paths below `tape_root` may live on tape only; files written below `archive_dir`
    reach tape `archive_delay_seconds` after their last write. The knobs may change while the
    site runs."""

    def __init__(
        self,
        recall_delay_seconds: float = 1.0,
        archive_delay_seconds: float = 1.0,
        tape_root: str = "/tape",
        archive_dir: str = "/tape/archive",
    ) -> None:
        if not PurePosixPath(archive_dir).is_relative_to(tape_root):
            raise ValueError(f"archive_dir {archive_dir!r} is not below tape_root {tape_root!r}")
        self.tape_root = tape_root
        self.archive_dir = archive_dir
        self._recall_delay = recall_delay_seconds
        self._archive_delay = archive_delay_seconds
        self._hang = False
        self._lost: set[str] = set()
        self._base: Path | None = None
        self._ids = (os.getuid(), os.getgid())
        self._stop = threading.Event()
        self._drive: threading.Thread | None = None

    # Wiring, done by XrootdSite ---------------------------------------------------------

    def attach(self, base_dir: Path, data_dir: Path, uid: int, gid: int) -> None:
        """Bind to a site's directories and server user (XrootdSite's constructor)."""
        self._base, self._data = base_dir, data_dir
        self._ids = (uid, gid)

    @property
    def base_dir(self) -> Path:
        if self._base is None:
            raise RuntimeError("TapeEmulation is not attached to a site")
        return self._base

    @property
    def tape_dir(self) -> Path:
        return self.base_dir / "tape"

    @property
    def ctl_dir(self) -> Path:
        return self.base_dir / "tapectl"

    def directives(self) -> list[str]:
        """The site's config lines: the mig export, the tape command, the prepare plugin."""
        return [
            f"all.export {self.tape_root} mig nostage",
            f"oss.rsscmd {self.ctl_dir / 'rss.py'}",
            f"ofs.preplib {PREPLIB} -run {self.ctl_dir / 'prep.py'}",
        ]

    def prepare(self) -> None:
        """Directories owned by the server user, the two programs, the knobs file."""
        for path in (self.tape_dir, self.ctl_dir, self.ctl_dir / "requests"):
            self._own_dir(path)
        self._own_dir(self.ctl_dir / "results")
        self._make_dirs(self._disk_path(self.archive_dir))  # clients write here, no mkdir
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        for name, body in (("rss.py", _RSS), ("prep.py", _PREP)):
            script = self.ctl_dir / name
            script.write_text(f"#!{python}\n{_COMMON}{body}")
            script.chmod(0o755)
        self._save_knobs()

    def start(self) -> None:
        """Start the drive (recalls and migration); XrootdSite.start calls it."""
        if self._drive is not None and self._drive.is_alive():
            return
        self._stop.clear()
        self._drive = threading.Thread(target=self._run, name="tape-drive", daemon=True)
        self._drive.start()

    def stop(self) -> None:
        self._stop.set()
        if self._drive is not None:
            self._drive.join(timeout=5)
            self._drive = None

    # Knobs --------------------------------------------------------------------------------

    @property
    def recall_delay_seconds(self) -> float:
        return self._recall_delay

    @recall_delay_seconds.setter
    def recall_delay_seconds(self, value: float) -> None:
        self._recall_delay = value
        self._save_knobs()

    @property
    def archive_delay_seconds(self) -> float:
        return self._archive_delay

    @archive_delay_seconds.setter
    def archive_delay_seconds(self, value: float) -> None:
        self._archive_delay = value
        self._save_knobs()

    @property
    def hang_stages(self) -> bool:
        """While True, no stage completes (a recall stuck in the queue)."""
        return self._hang

    @hang_stages.setter
    def hang_stages(self, value: bool) -> None:
        self._hang = value
        self._save_knobs()

    def _save_knobs(self) -> None:
        if self._base is None or not self.ctl_dir.exists():
            return
        knobs = {
            "data": str(self._data), "tape": str(self.tape_dir), "lost": sorted(self._lost),
            "recall_delay_seconds": self._recall_delay, "hang_stages": self._hang,
            "archive_delay_seconds": self._archive_delay,
        }  # fmt: skip
        _write_json(self.ctl_dir / "knobs.json", knobs)

    # Injections and inspection ------------------------------------------------------------

    def _tape_path(self, remote_path: str) -> Path:
        path = PurePosixPath(remote_path)
        if ".." in path.parts or not path.is_relative_to(self.tape_root):
            raise ValueError(f"not below the tape root {self.tape_root}: {remote_path!r}")
        return self.tape_dir.joinpath(*path.parts[1:])

    def _disk_path(self, remote_path: str) -> Path:
        self._tape_path(remote_path)  # the same checks
        return self._data.joinpath(*PurePosixPath(remote_path).parts[1:])

    def put_on_tape(self, remote_path: str, data: bytes) -> None:
        """A file on tape only: stat shows it Offline until a stage recalls it."""
        self._lost.discard(remote_path)
        self._save_knobs()
        self._write_owned(self._tape_path(remote_path), data)
        self._make_dirs(self._disk_path(remote_path).parent)
        self._disk_path(remote_path).unlink(missing_ok=True)

    def lose(self, remote_path: str) -> None:
        """The tape copy is gone (its catalogue entry stays): a recall of it fails."""
        self._lost.add(remote_path)
        self._save_knobs()

    def is_online(self, remote_path: str) -> bool:
        return self._disk_path(remote_path).is_file()

    def is_on_tape(self, remote_path: str) -> bool:
        return self._tape_path(remote_path).is_file() and remote_path not in self._lost

    def stage_requests_seen(self) -> list[tuple[str, list[str]]]:
        """(request id, paths) of every stage the prepare program recorded, oldest first."""
        records = [_read_json(path) for path in (self.ctl_dir / "requests").glob("*.json")]
        records = [r for r in records if isinstance(r, dict)]
        records.sort(key=lambda record: float(record.get("time", 0)))
        return [(str(record["id"]), list(record["paths"])) for record in records]

    # The drive ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(_TICK_SECONDS):
            try:
                self._recall_due(time.time())
                self._migrate_due(time.time())
            except Exception:  # a bad record must not stop the drive
                log.exception("tape drive step failed")

    def _recall_due(self, now: float) -> None:
        for request_file in (self.ctl_dir / "requests").glob("*.json"):
            request = _read_json(request_file)
            if self._hang or not isinstance(request, dict):
                continue
            if now < float(request["time"]) + self._recall_delay:
                continue
            results_file = self.ctl_dir / "results" / request_file.name
            results = _read_json(results_file) or {}
            cancel = _read_json(request_file.with_suffix(".cancel")) or {}
            skip = {*results, *cancel.get("paths", [])}
            todo = [path for path in request["paths"] if path not in skip]
            for path in todo:
                results[path] = self._recall(path)
            if todo:
                _write_json(results_file, results)

    def _recall(self, remote_path: str) -> dict[str, str]:
        try:
            tape = self._tape_path(remote_path)
        except ValueError:
            return {"error": f"not a tape path: {remote_path}"}
        if not tape.is_file():
            return {"error": f"no such file on tape: {remote_path}"}
        if remote_path in self._lost:
            return {"error": f"recall failed: tape copy of {remote_path} is lost"}
        self._write_owned(self._disk_path(remote_path), tape.read_bytes())
        return {}

    def _migrate_due(self, now: float) -> None:
        archive = self._disk_path(self.archive_dir)
        for directory, _dirs, files in os.walk(archive):
            for name in files:
                disk = Path(directory) / name
                remote = "/" + disk.relative_to(self._data).as_posix()
                tape = self._tape_path(remote)
                try:
                    due = disk.stat().st_mtime + self._archive_delay <= now
                    if due and not tape.exists():
                        self._write_owned(tape, disk.read_bytes())
                except FileNotFoundError:  # deleted meanwhile
                    continue

    # Files owned by the server user -------------------------------------------------------

    def _own_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, *self._ids)
        path.chmod(0o755)

    def _make_dirs(self, path: Path) -> None:
        missing = [p for p in (path, *path.parents) if not p.exists()]
        for directory in reversed(missing):
            self._own_dir(directory)

    def _write_owned(self, path: Path, data: bytes) -> None:
        self._make_dirs(path.parent)
        partial = path.with_name(f".{path.name}.part")
        partial.write_bytes(data)
        os.chown(partial, *self._ids)
        partial.chmod(0o644)
        os.replace(partial, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value: Any) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(value))
    partial.chmod(0o644)
    os.replace(partial, path)
