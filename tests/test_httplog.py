"""Log lines hostile clients cause stay few: running out of file descriptors, unparsable
requests. The daemon serves again once descriptors are free."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from http_helpers import write_daemon_config

from daemon_helpers import running_daemon
from lakeprobe.service.httplog import ResourceErrorLog, Throttle

LAKEPROBE = str(Path(sys.executable).with_name("lakeprobe"))  # the installed console script
# Lower the open-files limit (soft and hard: the daemon raises soft to hard), then exec.
LIMITED = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def test_resource_errors_are_logged_at_most_once_per_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """250 EMFILE reports over 25 s give three log lines (at 0, 10 and 20 s), each counting
    those left out since the previous one, and a last count when the handler is removed;
    other reports go to the previous handler untouched."""
    now = [0.0]
    passed_on: list[dict[str, Any]] = []
    throttle = Throttle(every=10, clock=lambda: now[0])
    handler = ResourceErrorLog(lambda loop, context: passed_on.append(context), throttle)
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="lakeprobe.http"):
            for tick in range(250):
                now[0] = tick / 10
                error = OSError(errno.EMFILE, "Too many open files")
                handler(loop, {"message": "accept() failed", "exception": error})
            other = {"message": "Task exception was never retrieved", "exception": ValueError()}
            handler(loop, other)
            handler(loop, {"message": "no exception at all"})
            handler.flush()
    finally:
        loop.close()
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 4, lines
    assert lines[0].startswith(
        "accept() failed: Too many open files (at most one report every 10 s; open files limit "
    )
    assert "(99 more since the last report; at most one report every 10 s;" in lines[1]
    assert "(99 more since the last report;" in lines[2]
    assert lines[3] == (
        "out of system resource: 49 more since the last report; at most one report every 10 s"
    )
    assert passed_on == [other, {"message": "no exception at all"}]


BAD_REQUESTS = [
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
]


async def test_unparsable_requests_give_one_warning_per_period(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """30 unparsable requests each get a 400, but aiohttp's error log (a traceback each)
    becomes one warning line without a traceback, naming the problem."""
    config = write_daemon_config(tmp_path / "lakeprobe.yaml")
    async with running_daemon(config) as (_, base):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        with caplog.at_level(logging.INFO, logger="aiohttp.server"):
            for i in range(30):
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(BAD_REQUESTS[i % len(BAD_REQUESTS)])
                assert (await reader.read()).startswith(b"HTTP/1.0 400 Bad Request")
                writer.close()
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelname == "WARNING"
    assert records[0].exc_info is None
    assert records[0].getMessage().startswith("Error handling request from 127.0.0.1: 400 ")


@pytest.mark.parametrize("path", ["/metrics", "/-/healthy"])
async def test_clients_leaving_before_the_answer_are_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """20 clients that send a request and close their side at once cause no error log (aiohttp
    would log a traceback for each, on failing to write the answer)."""
    config = write_daemon_config(tmp_path / "lakeprobe.yaml")
    async with running_daemon(config) as (_, base):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        with caplog.at_level(logging.INFO, logger="aiohttp.server"):
            for _ in range(20):
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                writer.write_eof()
                await reader.read()
                writer.close()
    assert [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"] == []


def test_out_of_descriptors_the_log_stays_small(tmp_path: Path) -> None:
    """A daemon limited to 64 open files, with its connection cap above that, gets 150
    connections held for 4 s: accepts fail with EMFILE, yet the log has one line about it per
    10 s, without a traceback. Once the clients leave, /metrics answers again and counts the
    failed accepts."""
    config = write_daemon_config(tmp_path / "lakeprobe.yaml", max_connections=1000)
    base = "http://" + str(_listen(config))
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-c", LIMITED, LAKEPROBE, "serve", "-c", str(config)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    clients: list[socket.socket] = []
    try:
        _wait_until_answers(f"{base}/-/ready", timeout=30)
        host, port = base.removeprefix("http://").rsplit(":", 1)
        for _ in range(150):
            with contextlib.suppress(OSError):  # past the listen backlog, connect times out
                clients.append(socket.create_connection((host, int(port)), timeout=0.5))
        time.sleep(4)
        for client in clients:
            client.close()
        metrics = _wait_until_answers(f"{base}/metrics", timeout=30)
    finally:
        for client in clients:
            client.close()
        daemon.terminate()
        daemon.wait(timeout=30)
    text = log_path.read_text()
    lines = [line for line in text.splitlines() if "accept() failed" in line]
    assert len(clients) > 64
    assert 1 <= len(lines) <= 2, lines
    assert "Too many open files" in lines[0]
    assert "open files limit 64" in lines[0]
    assert "Traceback" not in text
    errors = next(x for x in metrics.splitlines() if x.startswith("lakeprobe_http_accept_errors_t"))
    assert float(errors.split()[1]) >= 2


def _listen(config: Path) -> str:
    return str(yaml.safe_load(config.read_text())["server"]["listen"])


def _wait_until_answers(url: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return str(reply.read().decode())
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_soft_limit_is_raised_to_the_hard_limit() -> None:
    """At start the daemon raises its soft open-files limit to the hard one."""
    code = (
        "import resource; from lakeprobe.service.openfiles import raise_open_files_limit; "
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE); "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard, 256), hard)); "
        "raise_open_files_limit(); print(resource.getrlimit(resource.RLIMIT_NOFILE) == "
        "(hard, hard))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )  # fmt: skip
    assert done.stdout.strip() == "True"
