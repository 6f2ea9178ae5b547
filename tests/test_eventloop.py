"""The daemon's event loop (lakeprobe/service/eventloop.py): uvloop unless
LAKEPROBE_EVENT_LOOP=asyncio, a clear usage error for anything else, and the probes' C
clients (libcurl's multi-socket API, XrdCl's callbacks from its own threads) working on it:
real webdav and xrootd runs against the loopback lake, on uvloop."""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path
from typing import Any

import pytest
import uvloop

from lakeprobe.cli import main as cli
from lakeprobe.lake import LocalLake
from lakeprobe.probes.core.outcome import ProbeResult, Status
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.storage import webdav, xrootd
from lakeprobe.service import eventloop

ROOT = Path(__file__).resolve().parent.parent
LOG = logging.getLogger("test.eventloop")


@pytest.mark.parametrize(
    ("value", "factory"),
    [(None, uvloop.new_event_loop), ("", uvloop.new_event_loop), ("uvloop", uvloop.new_event_loop),
     (" AsyncIO ", asyncio.new_event_loop)],
)  # fmt: skip
def test_the_variable_selects_the_loop(
    monkeypatch: pytest.MonkeyPatch, value: str | None, factory: object
) -> None:
    if value is None:
        monkeypatch.delenv(eventloop.ENV, raising=False)
    else:
        monkeypatch.setenv(eventloop.ENV, value)
    assert eventloop.loop_factory() is factory


def test_an_unknown_loop_is_refused_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """run() raises naming the variable and the choices; the coroutine is closed, not left
    never awaited."""
    monkeypatch.setenv(eventloop.ENV, "trio")

    async def never() -> None:
        raise AssertionError("ran")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "never awaited" RuntimeWarning would fail here
        with pytest.raises(eventloop.EventLoopChoiceError) as refused:
            eventloop.run(never())
    assert str(refused.value) == "LAKEPROBE_EVENT_LOOP='trio': must be one of uvloop, asyncio"


def test_serve_with_an_unknown_loop_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`lakeprobe serve` exits 3 with one line naming the variable, before the config."""
    monkeypatch.setenv(eventloop.ENV, "tokio")
    code = cli.main(["serve", "-c", str(ROOT / "config" / "no-such-file.yaml")])
    assert code == cli.EXIT_USAGE
    said = capfd.readouterr().err
    assert said == "lakeprobe serve: LAKEPROBE_EVENT_LOOP='tokio': must be one of uvloop, asyncio\n"


async def _runs(module: Any, url: str, lake: LocalLake, count: int) -> list[ProbeResult]:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    params = module.PROBE_TYPE.params_model(file_size_bytes=256 * 1024)
    target = Target("SITE", "e", url, lake.test_dir, ca_dir=lake.pki.ca_dir)
    results = []
    for _ in range(count):  # XrdCl and libcurl keep state between runs: more than one
        outcome = await run_probe(
            module.PROBE_TYPE, target, params, timeout=20, probe_host="uvl", log=LOG
        )
        assert outcome.exception is None
        results.append(outcome.result)
    return results


@pytest.mark.lake
@pytest.mark.parametrize("scheme", ["davs", "http", "root"])
def test_probe_runs_on_uvloop(lake: LocalLake, scheme: str) -> None:
    """Whole write-mode runs on uvloop, as the daemon makes them: every step OK (libcurl's
    sockets and timers, or XrdCl's replies from its threads, driven by libuv), nothing left
    in the test directory, step durations finer than uvloop's millisecond clock."""
    site = lake.sites[0]
    url = site.root_url if scheme == "root" else f"{scheme}://127.0.0.1:{site.http_port}"
    module = xrootd if scheme == "root" else webdav
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results = runner.run(_runs(module, url, lake, 3))
    for result in results:
        assert result.status is Status.OK, result.steps
        assert all(s.status is Status.OK for s in result.steps), result.steps
    assert list(site.local_path(lake.test_dir).iterdir()) == []
    durations = [step.duration_seconds for result in results for step in result.steps]
    assert any(abs(d * 1000 - round(d * 1000)) > 1e-6 for d in durations), durations
