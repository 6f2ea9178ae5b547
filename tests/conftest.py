"""Shared fixtures. Lake fixtures start real XRootD servers on loopback (see lakeprobe.lake)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from state_helpers import CadenceClock

from lakeprobe.lake import LocalLake, TestPki, require_binaries
from lakeprobe.lake.nginxdav import NginxDav, missing_nginx
from lakeprobe.probes.common import cadence


def need_binaries(*extra: str) -> None:
    """Skip when the lake's binaries (and `extra` ones, e.g. iperf3) are missing; in CI a
    missing server fails, never skips."""
    missing = require_binaries() + [name for name in extra if shutil.which(name) is None]
    if not missing:
        return
    message = f"local lake needs binaries not on PATH: {', '.join(missing)}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """The CLI's setup_logging() (tests call main() in-process) points the root logger at this
    test's stderr, which pytest closes afterwards: later log records would hit a closed
    stream. Put the root handlers and level back after every test."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = saved


LakeFactory = Callable[..., LocalLake]


@pytest.fixture
def cadence_clock(monkeypatch: pytest.MonkeyPatch) -> CadenceClock:
    """Periodic work's clock (probes.common.cadence), moved by the test."""
    clock = CadenceClock()
    monkeypatch.setattr(cadence, "time", clock)
    return clock


@pytest.fixture(scope="session")
def lake_binaries() -> None:
    """For tests that build a LocalLake themselves: skip (or fail in CI) without binaries."""
    need_binaries()


@pytest.fixture
def lake_factory(tmp_path: Path) -> Iterator[LakeFactory]:
    """Start LocalLakes of n sites on demand; all are stopped at teardown."""
    need_binaries()
    with contextlib.ExitStack() as stack:  # closes every lake even if one close() fails
        count = 0

        def start(n_sites: int = 2, **options: Any) -> LocalLake:
            nonlocal count
            if options.get("iperf3"):
                need_binaries("iperf3")
            lake = LocalLake(n_sites, base_dir=tmp_path / f"lake{count}", **options)
            count += 1
            stack.callback(lake.close)
            lake.start()
            return lake

        yield start


@pytest.fixture
def lake(lake_factory: LakeFactory) -> LocalLake:
    """A started two-site lake (SITE-A, SITE-B)."""
    return lake_factory(2)


@pytest.fixture
def lake3(lake_factory: LakeFactory) -> LocalLake:
    """A started three-site lake (SITE-A, SITE-B, SITE-C)."""
    return lake_factory(3)


NginxFactory = Callable[..., NginxDav]


@pytest.fixture
def nginx_factory(tmp_path: Path) -> Iterator[NginxFactory]:
    """Start nginx WebDAV servers (lakeprobe/lake/nginxdav.py) on demand, each with the test
    directory /lakeprobe; all are stopped at teardown. Without nginx or its dav_ext module:
    skip, or fail under CI=true."""
    missing = missing_nginx()
    if missing:
        message = f"the nginx WebDAV server needs: {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with contextlib.ExitStack() as stack:
        count = 0

        def start(pki: TestPki | None = None, **options: bool) -> NginxDav:
            nonlocal count
            server = NginxDav(tmp_path / f"nginx{count}", pki, **options)
            count += 1
            stack.callback(server.stop)
            server.make_dir("/lakeprobe")
            server.start()
            return server

        yield start


@pytest.fixture
def nginx_dav(nginx_factory: NginxFactory) -> NginxDav:
    """A started nginx WebDAV server with its own PKI, as sites run it."""
    return nginx_factory()


@pytest.fixture(scope="module")
def nochecksum_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLake]:
    """A started two-site lake, shared by a module's tests: SITE-A runs without
    `xrootd.chksum` (405 to any request carrying Want-Digest), SITE-B with it."""
    need_binaries()
    base = tmp_path_factory.mktemp("nochecksum-lake")
    with LocalLake(2, base_dir=base, no_checksum_sites=["SITE-A"]) as lake:
        yield lake


@pytest.fixture
def token_lake(tmp_path: Path) -> Iterator[LocalLake]:
    """A started one-site lake (SITE-A) whose site needs tokens from `lake.issuer`."""
    need_binaries()
    with LocalLake(1, base_dir=tmp_path / "token-lake", token_sites=True) as lake:
        yield lake
