"""The tape-recall probe in the real daemon (`lakeprobe serve` as a child process): recalls
outstanding when it is killed with SIGKILL are continued by the next daemon on the same
state_dir, not staged again, and leave no request open on the Tape REST server; the tape
series appear on /metrics, and a lost reference file is exported as its reason."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import need_binaries
from prometheus_client.parser import text_string_to_metric_families

from lakeprobe.exporter.families import TAPE_FAMILIES
from lakeprobe.lake import LocalLake, TapeEmulation, free_ports
from lakeprobe.lake.taperest import TapeRestDouble
from lakeprobe.lake.taperest_xrootd import XrootdPrepareBackend
from lakeprobe.probes.core.state import FILE_NAME, StateStore
from lakeprobe.probes.tape import ledger
from lakeprobe.probes.tape.ledger import Request

pytestmark = pytest.mark.lake

LAKEPROBE = str(Path(sys.executable).with_name("lakeprobe"))  # the installed console script
INTERVAL = 2.0  # the probe's interval and timeout, seconds
BOUND = 30.0  # the longest any condition here may take to come true
RECALL = "lakeprobe_tape_recall_duration_seconds"
QUEUE = "lakeprobe_tape_last_recall_queue_seconds"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def tape_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLake]:
    need_binaries()
    with LocalLake(1, base_dir=tmp_path_factory.mktemp("tape"), tape_sites=True) as lake:
        yield lake


@pytest.fixture
def tape(tape_lake: LocalLake) -> Iterator[TapeEmulation]:
    emulation = tape_lake.sites[0].tape
    assert emulation is not None
    emulation.recall_delay_seconds = 0.5
    emulation.archive_delay_seconds = 0.5
    emulation.hang_stages = False
    yield emulation
    emulation.hang_stages = False


@pytest.fixture
def api(tape_lake: LocalLake) -> Iterator[TapeRestDouble]:
    """The Tape REST double in this process: it outlives the daemons the tests kill."""
    backend = XrootdPrepareBackend(tape_lake.sites[0].root_url)
    with TapeRestDouble(tape_lake.pki, backend, "dcache") as double:
        yield double


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    """Start `lakeprobe serve -c CONFIG` children; every one still alive is killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(config: Path) -> subprocess.Popen[bytes]:
        with (tmp_path / "daemon.log").open("ab") as out:
            child = subprocess.Popen([LAKEPROBE, "serve", "-c", str(config)], stdout=out,
                                     stderr=subprocess.STDOUT)  # fmt: skip
        started.append(child)
        return child

    yield start
    for child in started:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)


def on_tape(tape: TapeEmulation, count: int) -> list[dict[str, str]]:
    """`count` new files on tape only, as `tape.files` entries with their adler32."""
    folder = f"/tape/d-{uuid.uuid4().hex[:8]}"
    files = []
    for i in range(count):
        data = f"daemon tape file {i} {folder}".encode() * 100
        tape.put_on_tape(f"{folder}/f{i}", data)
        files.append({"path": f"{folder}/f{i}", "adler32": f"{zlib.adler32(data):08x}"})
    return files


def write_config(
    path: Path, lake: LocalLake, state_dir: Path, endpoints: list[dict[str, Any]]
) -> str:
    """A daemon config probing `endpoints` of the lake's tape site with tape-recall every
    INTERVAL; returns its listen address (a fresh port each time)."""
    listen = f"127.0.0.1:{free_ports(1)[0]}"
    config = {
        "server": {"listen": listen, "state_dir": str(state_dir)},
        "defaults": {"interval": INTERVAL, "timeout": INTERVAL, "ca_dir": str(lake.pki.ca_dir)},
        "sites": [{"name": lake.sites[0].name, "endpoints": endpoints}],
        "probes": [{"name": "tape-recall", "type": "tape-recall"}],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return listen


def xrootd_endpoint(lake: LocalLake, name: str, files: list[dict[str, str]]) -> dict[str, Any]:
    tape = {"protocol": "xrootd", "files": files, "may_evict": True}
    return {"name": name, "url": lake.sites[0].root_url, "tape": tape}


def rest_endpoint(
    lake: LocalLake, api: TapeRestDouble, files: list[dict[str, str]]
) -> dict[str, Any]:
    tape = {"protocol": "tape-rest", "files": files, "discovery_url": api.url}
    return {"name": "tape-rest", "url": lake.sites[0].davs_url, "tape": tape}


def until(condition: Callable[[], bool], what: str, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {bound} s waiting for {what}"
        time.sleep(0.2)


def scrape_text(listen: str) -> str:
    try:
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as reply:
            return str(reply.read().decode())
    except OSError:  # not listening yet
        return ""


def scrape(listen: str) -> Samples:
    """Parsed by prometheus_client's own parser: invalid exposition fails here."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(scrape_text(listen))
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    wanted = set(labels.items())
    found = [v for (n, k), v in samples.items() if n == name and wanted <= k]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def recalls_done(listen: str, endpoints: list[str]) -> bool:
    samples = scrape(listen)
    counts = [value(samples, f"{RECALL}_count", endpoint=e) for e in endpoints]
    return all(count is not None and count >= 1 for count in counts)


def outstanding(state_dir: Path) -> dict[str, Request]:
    """The stage requests in flight by ledger key, read beside the daemon (which holds the
    store's lock file, not the SQLite file: readers need no lock)."""
    if not (state_dir / FILE_NAME).exists():
        return {}
    store = StateStore.open(state_dir)
    try:
        books = {key: ledger.Ledger.from_json(value) for key, value in store.items(ledger.SCOPE)}
    finally:
        store.close()
    return {key: book.request for key, book in books.items() if book.request is not None}


def staged_in_turn(tape: TapeEmulation, files: list[dict[str, str]]) -> list[str]:
    """The files of `files` in the order the tape site saw them staged (both endpoints'
    stages reach it: the Tape REST double stages through prepare)."""
    mine = {f["path"] for f in files}
    return [p for _, paths in tape.stage_requests_seen() for p in paths if p in mine]


def outstanding_on_metrics(listen: str, endpoints: list[str]) -> bool:
    samples = scrape(listen)
    found = [value(samples, "lakeprobe_tape_outstanding_requests", endpoint=e) for e in endpoints]
    return found == [1.0] * len(endpoints)


@pytest.mark.parametrize("drive_back", ["while-dead", "after-restart"])
def test_sigkill_with_recalls_outstanding_continues_them(
    tape_lake: LocalLake,
    tape: TapeEmulation,
    api: TapeRestDouble,
    daemons: Callable[[Path], subprocess.Popen[bytes]],
    tmp_path: Path,
    drive_back: str,
) -> None:
    """Two tape endpoints (XRootD prepare; Tape REST, dCache dialect) stage their first file
    while the drive hangs; the daemon is killed with SIGKILL. A new daemon on the same
    state_dir polls the requests the dead one left, whether the drive came back while no
    daemon ran or only after the new one polled them pending: no file is staged again, each
    recall completes timed from the dead daemon's stage (the histogram counts it for both),
    and the Tape REST server keeps none of the requests submitted before the kill."""
    xrootd_files, rest_files = on_tape(tape, 2), on_tape(tape, 2)
    endpoints = [
        xrootd_endpoint(tape_lake, "tape-root", xrootd_files),
        rest_endpoint(tape_lake, api, rest_files),
    ]
    names = [endpoint["name"] for endpoint in endpoints]
    state_dir = tmp_path / "state"
    tape.hang_stages = True
    write_config(tmp_path / "first.yaml", tape_lake, state_dir, endpoints)
    first = daemons(tmp_path / "first.yaml")
    until(lambda: len(outstanding(state_dir)) == 2, "both stage requests in the state store")
    before = outstanding(state_dir)
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL
    staged = {request.path for request in before.values()}
    assert staged == {xrootd_files[0]["path"], rest_files[0]["path"]}
    assert not any(tape.is_online(path) for path in staged)

    tape.hang_stages = drive_back == "after-restart"
    listen = write_config(tmp_path / "second.yaml", tape_lake, state_dir, endpoints)
    daemons(tmp_path / "second.yaml")
    if tape.hang_stages:  # f0 still offline: a daemon that forgot its request stages it again
        until(lambda: outstanding_on_metrics(listen, names), "the new daemon's first runs")
        assert [staged_in_turn(tape, files) for files in (xrootd_files, rest_files)] == [
            [xrootd_files[0]["path"]],
            [rest_files[0]["path"]],
        ]
        tape.hang_stages = False
    released = time.time()
    until(lambda: recalls_done(listen, names), "both recalls completed")
    # One request at a time per endpoint, files in turn: f1 is the next file staged (the
    # site's prepare program may record a stage just after its reply: wait for it).
    both = (xrootd_files, rest_files)
    until(lambda: all(len(staged_in_turn(tape, f)) >= 2 for f in both), "the next stages")
    for files in both:
        assert staged_in_turn(tape, files)[:2] == [f["path"] for f in files]
    samples = scrape(listen)
    for key, request in before.items():  # timed from the dead daemon's stage, not a new one
        endpoint = key.split(" ")[0].split("/")[1]  # ledger_key: "SITE/endpoint URL"
        recall = value(samples, "lakeprobe_tape_last_recall_seconds", endpoint=endpoint)
        assert recall is not None, endpoint
        assert recall >= released - request.submitted_at, endpoint
    rest_ids = {r.request_id for r in before.values() if r.path == rest_files[0]["path"]}
    assert rest_ids
    assert not rest_ids & set(api.open_requests())
    after = outstanding(state_dir)
    assert not {r.request_id for r in after.values()} & {r.request_id for r in before.values()}


def test_tape_series_and_a_lost_file_on_metrics(
    tape_lake: LocalLake,
    tape: TapeEmulation,
    api: TapeRestDouble,
    daemons: Callable[[Path], subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    """After a recall completes on each endpoint, /metrics (valid text format) carries every
    tape family for the tape targets: recall histogram, last recall and its queue time,
    outstanding requests, files by locality, archive lag and pending. A target whose only
    reference file is lost from tape exports lakeprobe_probe_reason{reason="locality_lost"} 1."""
    lost = on_tape(tape, 1)
    tape.lose(lost[0]["path"])
    archived = xrootd_endpoint(tape_lake, "tape-root", on_tape(tape, 1))
    archived["tape"]["archive_dir"] = tape.archive_dir
    endpoints = [
        archived,
        rest_endpoint(tape_lake, api, on_tape(tape, 1)),
        xrootd_endpoint(tape_lake, "tape-lost", lost),
    ]
    listen = write_config(tmp_path / "lakeprobe.yaml", tape_lake, tmp_path / "state", endpoints)
    daemons(tmp_path / "lakeprobe.yaml")

    def archived_once() -> bool:
        lag = "lakeprobe_tape_archive_lag_seconds"
        return value(scrape(listen), lag, endpoint="tape-root") is not None

    until(lambda: recalls_done(listen, ["tape-root", "tape-rest"]), "both recalls completed")
    until(archived_once, "the archive canary seen on tape")
    samples = scrape(listen)
    names = {name for name, _ in samples}
    for family in TAPE_FAMILIES:
        wanted = f"{family.name}_count" if family.kind == "histogram" else family.name
        assert wanted in names, family.name
    reason = value(samples, "lakeprobe_probe_reason", endpoint="tape-lost", reason="locality_lost")
    assert reason == 1.0
    lost_files = value(samples, "lakeprobe_tape_files", endpoint="tape-lost", locality="lost")
    assert lost_files == 1.0
    # The server's startedAt is stamped while it handles the stage: before its reply, so the
    # probe times a request from before it sends it (a queue time was once never measured).
    queue = value(samples, QUEUE, endpoint="tape-rest")
    assert queue is not None
    assert queue >= 0.0
