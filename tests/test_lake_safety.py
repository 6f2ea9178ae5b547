"""Against the real lake: a formerly dangerous test_dir is refused at config time and never
leads a probe to delete outside it; transfer destinations are swept (own and foreign stale
test files, nothing else), at most once per destination per sweep_after_seconds / 4."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from typing import Any

import pytest
from state_helpers import loop_state

from lakeprobe.config import ConfigError, parse_config
from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.probes.core.context import ProbeType
from lakeprobe.probes.core.outcome import ProbeResult, Status, StepResult
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.core.testfiles import new_test_file, source_file
from lakeprobe.probes.storage import webdav, xrootd
from lakeprobe.probes.transfer import http_tpc, xrootd_tpc

pytestmark = pytest.mark.lake

LOG = logging.getLogger("test.lake_safety")
HOST = "testhost"
# Each was accepted before issue 8, and made webdav/http-tpc delete in the parent, xrootd
# remove a directory, or xrootd-tpc remove a file.
# (test_dir, the character named in the refusal)
DANGEROUS = {"/lakeprobe/sub/%2e%2e": "%", "/lakeprobe/sub?x": "?", "/lakeprobe/sub#x": "#",
             "/lakeprobe/sub;x": ";"}  # fmt: skip


def tree(site: XrootdSite) -> set[str]:
    root = site.local_path("/")
    return {str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*")}


async def run(
    probe_type: ProbeType[Any, Any], target: Target | PairTarget, **params: object
) -> ProbeResult:
    outcome = await run_probe(
        probe_type, target, validate_params(probe_type.params_model, params), timeout=10,
        probe_host=HOST, log=LOG, state=loop_state(),
    )  # fmt: skip
    return outcome.result


def step(result: ProbeResult, name: str) -> StepResult:
    return next(s for s in result.steps if s.name == name)


@pytest.mark.parametrize(("test_dir", "char"), DANGEROUS.items())
def test_dangerous_test_dir_is_refused_at_config_time(
    lake: LocalLake, test_dir: str, char: str
) -> None:
    """The config file and `lakeprobe run --test-dir` (UNKNOWN, exit 3) refuse the test
    directory of a real endpoint, naming the character; nothing is sent to the endpoint."""
    site = lake.sites[0]
    text = f"""
sites:
  - name: A
    endpoints:
      - {{name: dav, url: "{site.davs_url}", test_dir: "{test_dir}"}}
probes: [{{name: webdav, type: webdav}}]
"""
    with pytest.raises(ConfigError, match=r"sites\[0\]\.endpoints\[0\]\.test_dir: test_dir must"):
        parse_config(text)
    cli = subprocess.run(
        [sys.executable, "-m", "lakeprobe.cli.main", "run", "webdav", site.davs_url,
         "--test-dir", test_dir],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cli.returncode == 3
    assert f"test_dir: test_dir must not contain {char!r}" in cli.stderr


async def test_dangerous_test_dirs_delete_nothing(lake: LocalLake) -> None:
    """Handed to the probes anyway (a Target built without the config), webdav and xrootd
    delete nothing with any of those test directories: every file and directory that
    existed (decoys named as stale test files in the parent, the sibling and the root
    included) is still there, and what was written lies under the literal test directory."""
    site = lake.sites[0]
    site.make_dir("/lakeprobe/sub")
    old = time.time() - 3 * 86400
    for directory in ("/lakeprobe", "/lakeprobe/sub", "/"):
        site.put_file(new_test_file(directory, HOST, old), b"decoy")
    before = tree(site)
    for test_dir in DANGEROUS:
        for probe_type, url in ((webdav.PROBE_TYPE, site.davs_url),
                                (xrootd.PROBE_TYPE, site.root_url)):  # fmt: skip
            target = Target(site="A", endpoint="e", url=url, test_dir=test_dir,
                            ca_dir=lake.pki.ca_dir)  # fmt: skip
            result = await run(probe_type, target, file_size_bytes=16)
            assert result.status in (Status.CRITICAL, Status.UNKNOWN), result.steps
    added = tree(site) - before
    assert before <= tree(site)
    literal = tuple(test_dir.removeprefix("/") + "/" for test_dir in DANGEROUS)
    assert all(path.startswith(literal) for path in added), added


def seed(site: XrootdSite, test_dir: str) -> tuple[set[str], set[str]]:
    """Files the sweep must delete, and files it must leave (by name), in `test_dir`; plus a
    stale test file in the parent, which it must never see."""
    now = time.time()
    stale = {
        new_test_file(test_dir, HOST, now - 3 * 3600),  # own, past sweep_after_seconds
        new_test_file(test_dir, "old-pod-5d8f7", now - 2 * 86400),
    }  # foreign, past 24 h
    young = new_test_file(test_dir, HOST, now - 60)
    kept = {
        new_test_file(test_dir, "new-pod-9c2e1", now - 3 * 3600),  # foreign, under 24 h
        young,
        young + ".part",  # not a test-file name: decoys
        f"{test_dir}/lakeprobe-{HOST}-{int(now) - 86400 * 3}-{'0' * 31}",
        f"{test_dir}/lakeprobe-notes.txt",
        source_file(test_dir, "old-pod-5d8f7", 1024),
        new_test_file("/", HOST, now - 3 * 3600),  # the parent: never listed
    }
    for path in stale | kept:
        site.put_file(path, b"x")
    return stale, kept


def present(site: XrootdSite, paths: set[str]) -> set[str]:
    return {path for path in paths if site.local_path(path).exists()}


SWEPT = "2 stale test files deleted (1 of other probe hosts)"
RATE_LIMITED = re.compile(r"destination swept \d+ s ago \(at most every 1800 s\)")


async def test_http_tpc_sweeps_its_destination(lake: LocalLake) -> None:
    """After a copy, the destination's stale test files of this and of other identities
    are deleted; a foreign file under the foreign TTL, fresh files and decoys stay. A second
    run right after skips the sweep (rate limit), even with new stale files."""
    src, dst = lake.sites
    stale, kept = seed(dst, lake.test_dir)
    sides = [Target(site=s.name, endpoint="dav", url=s.davs_url, test_dir=lake.test_dir,
                    ca_dir=lake.pki.ca_dir) for s in (src, dst)]  # fmt: skip
    first = await run(
        http_tpc.PROBE_TYPE, PairTarget(sides[0], sides[1], "pull"), file_size_bytes=1024
    )
    assert first.status is Status.OK, first.steps
    assert (step(first, "sweep").status, step(first, "sweep").detail) == (Status.OK, SWEPT)
    assert present(dst, stale) == set()
    assert present(dst, kept) == kept
    again, _ = seed(dst, lake.test_dir)
    second = await run(
        http_tpc.PROBE_TYPE, PairTarget(sides[0], sides[1], "push"), file_size_bytes=1024
    )
    assert second.status is Status.OK, second.steps
    assert step(second, "sweep").status is Status.SKIPPED
    assert RATE_LIMITED.fullmatch(step(second, "sweep").detail)
    assert present(dst, again) == again


async def test_xrootd_tpc_sweeps_its_destination(lake: LocalLake) -> None:
    """The same over root:// with an XRootD third-party copy."""
    src, dst = lake.sites
    stale, kept = seed(dst, lake.test_dir)
    sides = [Target(site=s.name, endpoint="xrootd", url=s.root_url, test_dir=lake.test_dir,
                    ca_dir=lake.pki.ca_dir) for s in (src, dst)]  # fmt: skip
    result = await run(
        xrootd_tpc.PROBE_TYPE, PairTarget(sides[0], sides[1], "pull"), file_size_bytes=1024
    )
    assert result.status is Status.OK, result.steps
    assert (step(result, "sweep").status, step(result, "sweep").detail) == (Status.OK, SWEPT)
    assert present(dst, stale) == set()
    assert present(dst, kept) == kept
