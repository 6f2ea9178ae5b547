"""The daemon against the real local lake: schedule, /metrics, reload, isolation of hung sites."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from daemon_helpers import Samples, fetch, pick, running_daemon, scrape, wait_for
from lakeprobe.lake import LocalLake, free_ports

pytestmark = pytest.mark.lake

GOLDEN = Path(__file__).parent / "golden" / "metrics.txt"
PROBES = ("xrootd", "webdav")
UPLOAD_LAYERS = ("content-md5", "digest", "content-digest", "xrdcp-cksum")


def write_config(
    lake: LocalLake,
    path: Path,
    interval: float = 2,
    timeout: float = 2,
    integrity: bool = False,
    **defaults: object,
) -> Path:
    listen = f"127.0.0.1:{free_ports(1)[0]}"
    config = lake.config_dict(listen, interval=interval, timeout=timeout, integrity=integrity)
    config["defaults"].update(defaults)
    config["server"]["enable_reload"] = True  # POST /-/reload is off by default
    for probe in config["probes"]:  # the upload layers: gfal2 needs X509_CERT_DIR for davs://
        if probe["type"] == "corruption":
            probe["params"] = {"layers": list(UPLOAD_LAYERS)}
    path.write_text(yaml.safe_dump(config))
    return path


def all_ran(samples: Samples, sites: list[str]) -> bool:
    done = {
        (dict(k)["probe"], dict(k)["site"])
        for k in pick(samples, "lakeprobe_probe_last_run_timestamp_seconds")
    }
    return all((p, s) in done for p in PROBES for s in sites)


# The xrootd probe sweeps at most once per sweep_after_seconds / 4, and webdav asks DELETE of
# a missing file once per delete_missing_every_seconds, at the test directory's own point of
# it: each step has a duration and a success after a run that did it, and only a status
# (SKIPPED) after the others.
RATE_LIMITED_STEP = re.compile(
    r"^lakeprobe_probe_step_(duration_seconds|success)\{.*"
    r'(probe="xrootd".*step="sweep"|probe="webdav".*step="delete_missing")'
)


def shape(samples: Samples) -> list[str]:
    """Metric names with their labels, values dropped: what dashboards and alerts rely on."""
    lines = set()
    for name, labels in samples:
        pairs = sorted(labels)
        text = ",".join(f'{k}="{v}"' if k != "le" else 'le="..."' for k, v in pairs)
        lines.add(f"{name}{{{text}}}")
    return sorted(lines)


async def test_metrics_hold_every_probe_and_site(
    lake_factory: Callable[..., LocalLake], tmp_path: Path
) -> None:
    """Every probe succeeds on both sites (fixity and corruption on both endpoints, the
    corruption probe with a WARNING: XRootD accepts wrong HTTP digests; the storage probes
    on one endpoint each; the network probes on every pair), and the
    /metrics names and labels match the golden file (regenerate with
    LAKEPROBE_UPDATE_GOLDEN=1 after a deliberate change)."""
    lake = lake_factory(2, perfsonar=True, iperf3=True)
    config = write_config(lake, tmp_path / "lakeprobe.yaml", integrity=True)
    async with running_daemon(config) as (_, base):
        await wait_for(lambda: _all_targets_ran(base), timeout=30, what="a run of every target")
        samples = await scrape(base)
    success = pick(samples, "lakeprobe_probe_success")
    assert len(success) == EVERY_TARGET
    assert all(v == 1 for v in success.values()), success
    network = pick(samples, "lakeprobe_network_success")
    assert len(network) == EVERY_NETWORK_CELL
    assert all(v == 1 for v in network.values()), network
    assert pick(samples, "lakeprobe_config_last_reload_successful") == {frozenset(): 1.0}
    lines = [line for line in shape(samples) if not RATE_LIMITED_STEP.search(line)]
    if os.environ.get("LAKEPROBE_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text("\n".join(lines) + "\n")
    assert lines == GOLDEN.read_text().splitlines()


# Two sites: xrootd and webdav one endpoint each, fixity and corruption both endpoints.
EVERY_TARGET = 2 * (1 + 1 + 2 + 2)


# perfsonar: 2 pairs x IPv4, IPv6; iperf3: 2 pairs x IPv4.
EVERY_NETWORK_CELL = 2 * 2 + 2


async def _all_targets_ran(base: str) -> bool:
    samples = await scrape(base)
    runs = pick(samples, "lakeprobe_probe_last_run_timestamp_seconds")
    cells = pick(samples, "lakeprobe_network_last_run_timestamp_seconds")
    return len(runs) == EVERY_TARGET and len(cells) == EVERY_NETWORK_CELL


async def _ran(base: str, sites: list[str]) -> bool:
    return all_ran(await scrape(base), sites)


async def test_reload_removes_series_and_rejects_bad_config(
    lake: LocalLake, tmp_path: Path
) -> None:
    """POST /-/reload applies a valid config (removed targets' series disappear); an invalid
    one is rejected with its message, the running config stays and the gauge drops to 0;
    SIGHUP reloads too."""
    path = write_config(lake, tmp_path / "lakeprobe.yaml")
    original = path.read_text()
    async with running_daemon(path) as (_, base):
        await wait_for(lambda: _ran(base, ["SITE-A", "SITE-B"]), timeout=30, what="first runs")
        data = yaml.safe_load(original)
        data["sites"] = data["sites"][:1]
        path.write_text(yaml.safe_dump(data))
        status, _ = await fetch(base, "/-/reload", "POST")
        assert status == 200
        samples = await scrape(base)
        assert not any(("site", "SITE-B") in labels for _, labels in samples)
        assert pick(samples, "lakeprobe_targets") == {frozenset(): 2.0}

        path.write_text(original.replace("type: webdav", "type: gridftp"))
        status, text = await fetch(base, "/-/reload", "POST")
        assert status == 400
        assert "probes[1].type: unknown probe type 'gridftp'" in text
        samples = await scrape(base)
        assert pick(samples, "lakeprobe_config_last_reload_successful") == {frozenset(): 0.0}
        assert pick(samples, "lakeprobe_targets") == {frozenset(): 2.0}

        path.write_text(original)
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: _targets(base, 4), timeout=5, what="SIGHUP reload")


async def _targets(base: str, count: int) -> bool:
    return pick(await scrape(base), "lakeprobe_targets") == {frozenset(): float(count)}


async def test_hung_site_times_out_while_others_keep_schedule(
    lake: LocalLake, tmp_path: Path
) -> None:
    """A SIGSTOPped site's probes end CRITICAL/timeout at their deadline, while the healthy
    site's probes keep running on schedule."""
    config = write_config(lake, tmp_path / "lakeprobe.yaml", interval=2, timeout=2)
    hung = lake.sites[1]
    async with running_daemon(config) as (_, base):
        await wait_for(lambda: _ran(base, ["SITE-A", "SITE-B"]), timeout=30, what="first runs")
        hung.pause()
        try:
            before = await scrape(base)
            await wait_for(lambda: _timed_out(base, hung.name), timeout=20, what="timeouts")
            await wait_for(
                lambda: _healthy_kept_running(base, before),
                timeout=20,
                what="two more runs of each SITE-A probe",
            )
            after = await scrape(base)
        finally:
            hung.resume()
    assert all(v == 1 for v in pick(after, "lakeprobe_probe_success", site="SITE-A").values())
    assert pick(after, "lakeprobe_probe_reason", site="SITE-A", reason="none")


async def _healthy_kept_running(base: str, before: Samples) -> bool:
    after = await scrape(base)
    return all(_runs(after, p, "SITE-A") >= _runs(before, p, "SITE-A") + 2 for p in PROBES)


async def _timed_out(base: str, site: str) -> bool:
    samples = await scrape(base)
    reasons = pick(samples, "lakeprobe_probe_reason", site=site, reason="timeout")
    return len(reasons) == len(PROBES)


def _runs(samples: Samples, probe: str, site: str) -> float:
    return sum(pick(samples, "lakeprobe_probe_runs_total", probe=probe, site=site).values())


async def test_first_failure_is_rechecked_before_the_next_interval(
    lake: LocalLake, tmp_path: Path
) -> None:
    """With an 8 s interval and recheck_after 1 s, a stopped site's second failure comes
    about 1 s after its first, not a full interval later; the interval is exported."""
    config = write_config(lake, tmp_path / "c.yaml", interval=8, timeout=2, recheck_after=1)
    async with running_daemon(config) as (_, base):
        await wait_for(lambda: _ran(base, ["SITE-A", "SITE-B"]), timeout=20, what="first runs")
        samples = await scrape(base)
        assert set(pick(samples, "lakeprobe_probe_interval_seconds").values()) == {8.0}
        lake.sites[1].stop()
        first = await _wait_failures(base, 1)
        second = await _wait_failures(base, 2)
    for labels, started in second.items():
        assert started - first[labels] < 4.0  # the recheck, not the next 8 s interval


async def _wait_failures(base: str, count: int) -> dict[frozenset[tuple[str, str]], float]:
    """Start times of SITE-B's runs once each probe has `count` consecutive failures."""
    await wait_for(lambda: _failed(base, count), timeout=20, what=f"{count} failures")
    samples = await scrape(base)
    return pick(samples, "lakeprobe_probe_last_run_timestamp_seconds", site="SITE-B")


async def _failed(base: str, count: int) -> bool:
    values = pick(await scrape(base), "lakeprobe_probe_consecutive_failures", site="SITE-B")
    return len(values) == len(PROBES) and all(v == count for v in values.values())
