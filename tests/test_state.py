"""The state store: what probes remember survives restarts and crashes; one daemon per store."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from lakeprobe.lake import free_ports
from lakeprobe.probes.core.state import FILE_NAME, LOCK_NAME, StateError, StateStore

LAKEPROBE = str(Path(sys.executable).with_name("lakeprobe"))  # the installed console script


def test_records_survive_reopening(tmp_path: Path) -> None:
    """JSON values by (scope, key): written, replaced, deleted, listed; all still there after
    the store is closed and opened again."""
    store = StateStore.open(tmp_path)
    store.put("s", "a", {"n": 1})
    store.put("s", "a", {"n": 2})
    store.put("s", "b", [1, "x"])
    store.put("other", "a", True)
    store.delete("s", "b")
    store.close()
    again = StateStore.open(tmp_path)
    assert again.get("s", "a") == {"n": 2}
    assert again.get("s", "b") is None
    assert list(again.items("other")) == [("a", True)]
    again.close()


def test_one_daemon_per_state_dir(tmp_path: Path) -> None:
    """A second exclusive opener is refused, naming the lock file; readers that take no lock
    (the CLI) still work beside it; closing releases the lock."""
    daemon = StateStore.open(tmp_path, exclusive=True)
    with pytest.raises(StateError, match="another lakeprobe daemon uses this state_dir") as info:
        StateStore.open(tmp_path, exclusive=True)
    assert str(tmp_path / LOCK_NAME) in str(info.value)
    reader = StateStore.open(tmp_path)
    daemon.put("s", "k", 1)
    assert reader.get("s", "k") == 1
    reader.close()
    daemon.close()
    StateStore.open(tmp_path, exclusive=True).close()


def test_a_corrupt_or_unusable_store_is_named(tmp_path: Path) -> None:
    """Garbage in the state file, or a directory that cannot be created: StateError naming it."""
    (tmp_path / FILE_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match=str(tmp_path / FILE_NAME)):
        StateStore.open(tmp_path, exclusive=True)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match=f"state_dir {blocker / 'sub'}: cannot create it"):
        StateStore.open(blocker / "sub")
    StateStore.open(tmp_path / "fresh", exclusive=True).close()  # the lock was released


WRITER = """
import sys
from pathlib import Path
from lakeprobe.probes.core.state import StateStore
store = StateStore.open(Path(sys.argv[1]), exclusive=True)
for n in range(1_000_000):
    store.put("runs", f"{n:07d}", {"n": n})
    print(n, flush=True)
"""


def test_sigkill_loses_nothing_committed(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-stream: every record it reported as written is there,
    the file opens cleanly, and its lock is free again."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert writer.stdout is not None
    reported = -1
    while reported < 200:
        reported = int(writer.stdout.readline())
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    store = StateStore.open(tmp_path, exclusive=True)
    kept = [value["n"] for _, value in store.items("runs")]
    store.close()
    assert kept[: reported + 1] == list(range(reported + 1))


def _serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([LAKEPROBE, "serve", "-c", str(config)], stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip


def _ready(listen: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{listen}/-/ready", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _wait_ready(listen: str) -> None:
    deadline = time.monotonic() + 20
    while not _ready(listen):
        assert time.monotonic() < deadline, "daemon not ready"
        time.sleep(0.1)


def test_the_daemon_owns_its_state_dir_across_a_sigkill(tmp_path: Path) -> None:
    """`lakeprobe serve` with server.state_dir: a second daemon on the same directory is
    refused with a one-line message (exit 2); after the first is killed with SIGKILL, a new
    daemon starts on the same store and finds what was kept in it."""
    state_dir = tmp_path / "state"
    planted = StateStore.open(state_dir)
    planted.put("sweep-last", "davs://127.0.0.1:9/t", 1.0)
    planted.close()
    configs = []
    for name in ("a", "b"):
        config = {
            "server": {"listen": f"127.0.0.1:{free_ports(1)[0]}", "state_dir": str(state_dir)},
            "defaults": {"interval": "1h", "timeout": "10s"},
            "sites": [{"name": "S", "endpoints": [{"name": "e", "url": "http://127.0.0.1:9"}]}],
            "probes": [{"name": "webdav", "type": "webdav"}],
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        configs.append((path, config["server"]["listen"]))  # type: ignore[index]
    log = tmp_path / "daemon.log"
    first = _serve(configs[0][0], log)
    try:
        _wait_ready(configs[0][1])
        command = [LAKEPROBE, "serve", "-c", str(configs[1][0])]
        second = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert second.returncode == 2
        assert second.stderr.strip().splitlines() == [
            f"lakeprobe serve: state lock {state_dir / LOCK_NAME}: another lakeprobe daemon "
            "uses this state_dir"
        ]
        first.send_signal(signal.SIGKILL)
        first.wait()
        restarted = _serve(configs[1][0], log)
        try:
            _wait_ready(configs[1][1])
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    kept = StateStore.open(state_dir, exclusive=True)
    assert kept.get("sweep-last", "davs://127.0.0.1:9/t") == 1.0
    kept.close()
