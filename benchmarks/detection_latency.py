"""Benchmark: how long from a site going down to the page, with the shipped defaults, and how
many false alerts a healthy lake raises.

    .venv/bin/python benchmarks/detection_latency.py [--trials 3] [--healthy-seconds 300]

Runs on loopback only: a local lake of real XRootD sites (endpoints and transfer matrix), the
daemon with its shipped defaults (interval 60 s, timeout 30 s, recheck_after 15 s), a real
Prometheus with the shipped rules (alerting/lakeprobe-rules.yaml), scrape and evaluation
interval 15 s (assumed: Prometheus' example config and kube-prometheus use 15 s; Prometheus'
own global default is 60 s), and a real Alertmanager with the example routing
(alerting/alertmanager.yaml: its routes, group_wait/group_by and inhibitions as shipped) whose
receivers are rewired to a local webhook, so "paged" means a notification was delivered.
Without the example it uses a minimal route with group_wait 10 s.

First the lake runs healthy for --healthy-seconds; every alert seen then (in Alertmanager,
or pending/firing in Prometheus' ALERTS) is a false alert. Each trial then waits a random
phase (0 to one interval), stops one site (in turn), and times (a) its endpoint alert reaching
Alertmanager: active, or suppressed when LakeprobeSiteIsolated (>= 3 sites) inhibits it, and
(b) the first severity="page" notification about the site delivered to the webhook, whichever
alert it carries; it then restarts the site and waits until no alert about it is left.
Alerts about other sites during a trial also count as false. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from lakeprobe.config import load_config
from lakeprobe.lake import LocalLake, free_ports, require_binaries
from lakeprobe.lake.monitoring import (
    AlertmanagerServer,
    PrometheusServer,
    alertmanager_config,
    require_monitoring_binaries,
    rewire_receivers,
)
from lakeprobe.service.daemon import Daemon
from lakeprobe.service.server import serve

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "alerting" / "lakeprobe-rules.yaml"
ROUTING = REPO / "alerting" / "alertmanager.yaml"
ENDPOINT_ALERT = "LakeprobeEndpointFailing"
PROMETHEUS_INTERVAL = 15.0  # scrape and evaluation
DEFAULT_GROUP_WAIT = 10.0
DEFAULT_INTERVAL = 60.0  # the daemon's shipped default: random phases span one interval
WAIT_LIMIT = 600.0  # no single wait (detection, resolution, warm-up) lasts longer
POLL = 0.5

log = logging.getLogger("detection_latency")


def routing(example: Path, webhook_url: str) -> dict[str, Any]:
    """The example Alertmanager config with every receiver sending to `webhook_url` instead
    (routes, grouping, timing and inhibitions unchanged), or a minimal one."""
    if not example.exists():
        return alertmanager_config(DEFAULT_GROUP_WAIT, webhook_url=webhook_url)
    return rewire_receivers(yaml.safe_load(example.read_text()), webhook_url)


def about(labels: dict[str, str], site: str) -> bool:
    return site in (labels.get("site"), labels.get("src_site"), labels.get("dst_site"))


class Webhook:
    """Alertmanager's receiver: records each firing alert it is notified of, with the time."""

    def __init__(self) -> None:
        self.pages: list[tuple[float, dict[str, Any]]] = []

    async def __call__(self, request: web.Request) -> web.Response:
        body = await request.json()
        now = time.monotonic()
        for alert in body.get("alerts", []):
            if alert.get("status") == "firing":
                self.pages.append((now, {**alert, "receiver": body.get("receiver")}))
        return web.Response(text="ok")


class Bench:
    def __init__(
        self, lake: LocalLake, prometheus: PrometheusServer, am: AlertmanagerServer, hook: Webhook
    ) -> None:
        self.lake, self.prometheus, self.am = lake, prometheus, am
        self.pages = hook.pages  # (monotonic time, alert)
        self.false_alerts: dict[tuple[tuple[str, str], ...], str] = {}  # labels -> when

    async def alerts(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds: active, suppressed (inhibited) or unprocessed."""
        return await asyncio.to_thread(self.am.alerts)

    def note_false(self, labels: dict[str, str], when: str) -> None:
        key = tuple(sorted(labels.items()))
        if key not in self.false_alerts:
            self.false_alerts[key] = when
            log.warning("false alert (%s): %s", when, labels)

    async def watch(self, down: str | None, when: str) -> list[dict[str, Any]]:
        """Alerts now; those about any site but `down` are false alerts."""
        alerts = await self.alerts()
        for alert in alerts:
            if down is None or not about(alert["labels"], down):
                self.note_false(alert["labels"], when)
        return alerts

    async def until(self, what: str, check: Any) -> float:
        """Poll `check()` (async) until truthy; returns the monotonic time it became so."""
        end = time.monotonic() + WAIT_LIMIT
        while not await check():
            if time.monotonic() > end:
                raise TimeoutError(f"no {what} after {WAIT_LIMIT:.0f} s")
            await asyncio.sleep(POLL)
        return time.monotonic()

    async def healthy(self) -> bool:
        """Prometheus holds a success for every endpoint target and transfer cell."""
        await self.watch(None, "warm-up")
        n = len(self.lake.sites)
        endpoints = await asyncio.to_thread(self.prometheus.query, "lakeprobe_probe_success == 1")
        cells = await asyncio.to_thread(self.prometheus.query, "lakeprobe_transfer_success == 1")
        return len(endpoints) == 2 * n and len(cells) == 3 * n * (n - 1)

    async def healthy_run(self, seconds: float) -> None:
        """Everything up for `seconds`: any alert, active or merely pending, is false."""
        start = time.time()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await self.watch(None, "healthy run")
            await asyncio.sleep(POLL)
        window = f"{int(time.time() - start) + 1}s"
        expr = f"last_over_time(ALERTS[{window}])"
        for series in await asyncio.to_thread(self.prometheus.query, expr):
            labels = {k: v for k, v in series["metric"].items() if k != "__name__"}
            self.note_false(labels, f"healthy run, {labels.pop('alertstate', '?')} in Prometheus")

    async def trial(self, number: int, rng: random.Random) -> dict[str, Any]:
        """Stop a site at a random phase; time its endpoint alert reaching Alertmanager and
        the first page about it; restart it and time the resolution."""
        site = self.lake.sites[number % len(self.lake.sites)]
        phase = rng.uniform(0, DEFAULT_INTERVAL)
        log.info("trial %d: stopping %s in %.1f s", number + 1, site.name, phase)
        await asyncio.sleep(phase)
        site.stop()
        stopped = time.monotonic()
        found: dict[str, Any] = {}

        async def alerted() -> bool:
            for alert in await self.watch(site.name, f"trial {number + 1}"):
                labels = alert["labels"]
                if labels["alertname"] == ENDPOINT_ALERT and labels.get("site") == site.name:
                    found["state"] = alert["status"]["state"]
                    return True
            return False

        async def paged() -> bool:
            await self.watch(site.name, f"trial {number + 1}")
            for when, alert in self.pages:
                labels = alert["labels"]
                if when >= stopped and labels["severity"] == "page" and about(labels, site.name):
                    found["page_alert"] = f"{labels['alertname']} to {alert['receiver']}"
                    found["paged_at"] = when  # delivery time, not when this poll saw it
                    return True
            return False

        alert = await self.until("endpoint alert", alerted) - stopped
        await self.until("page", paged)
        page = found.pop("paged_at") - stopped
        log.info("trial %d: alert %.1f s (%s), page %.1f s", number + 1, alert, found, page)
        await asyncio.to_thread(site.start)
        restarted = time.monotonic()
        resolved = await self.until("resolution", lambda: self._resolved(site.name)) - restarted
        log.info("trial %d: resolved %.1f s after the restart", number + 1, resolved)
        return {"site": site.name, "phase": phase, "alert": alert, "page": page,
                "resolved": resolved, **found}  # fmt: skip

    async def _resolved(self, site: str) -> bool:
        alerts = await self.watch(site, "resolution")
        return not any(about(a["labels"], site) for a in alerts)


async def measure(bench: Bench, args: argparse.Namespace) -> list[dict[str, Any]]:
    log.info("warming up: every target runs once, Prometheus scrapes it")
    await bench.until("healthy lake", bench.healthy)
    log.info("healthy run: %.0f s", args.healthy_seconds)
    await bench.healthy_run(args.healthy_seconds)
    rng = random.Random(args.seed)
    return [await bench.trial(i, rng) for i in range(args.trials)]


async def run(args: argparse.Namespace, work: Path) -> tuple[list[dict[str, Any]], Bench]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    hook_port = free_ports(1)[0]
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    listen = f"127.0.0.1:{free_ports(1)[0]}"
    with LocalLake(args.sites, base_dir=work / "lake") as lake:
        config = lake.config_dict(listen, transfers=True)
        for key in ("interval", "timeout"):  # the shipped defaults, not config_dict's
            del config["defaults"][key]
        path = work / "lakeprobe.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        am_config = work / "alertmanager.yml"
        am_config.write_text(
            yaml.safe_dump(routing(args.routing, f"http://127.0.0.1:{hook_port}/hook"))
        )
        daemon = Daemon(path, load_config(path))
        stop = asyncio.Event()
        server = asyncio.create_task(serve(daemon, stop))
        try:
            with (
                AlertmanagerServer(work / "am", am_config) as am,
                PrometheusServer(
                    work / "prom", [listen], [args.rules], am.url,
                    PROMETHEUS_INTERVAL, PROMETHEUS_INTERVAL,
                ) as prometheus,
            ):  # fmt: skip
                bench = Bench(lake, prometheus, am, hook)
                task = asyncio.create_task(measure(bench, args))
                await asyncio.wait([task, server], return_when=asyncio.FIRST_COMPLETED)
                if not task.done():  # Ctrl-C or SIGTERM: the daemon's handlers stopped it
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    server.result()  # the daemon's own error, if it failed
                    raise SystemExit("interrupted")
                trials = task.result()
        finally:
            stop.set()
            await asyncio.wait_for(server, timeout=60)
            await runner.cleanup()
    return trials, bench


def report(args: argparse.Namespace, trials: list[dict[str, Any]], bench: Bench) -> str:
    command = shlex.join(["benchmarks/detection_latency.py", *sys.argv[1:]])
    lines = [
        "```",
        f".venv/bin/python {command}",
        "```",
        "",
        "| trial | site stopped after (random phase) | endpoint alert in Alertmanager "
        "| first page delivered | resolved after restart |",
        "|---|---|---|---|---|",
    ]
    for i, t in enumerate(trials, 1):
        lines.append(
            f"| {i} | {t['site']} after {t['phase']:.1f} s | {t['alert']:.1f} s ({t['state']}) "
            f"| {t['page']:.1f} s ({t['page_alert']}) | {t['resolved']:.1f} s |"
        )
    if trials:
        worst = {key: max(t[key] for t in trials) for key in ("alert", "page", "resolved")}
        lines.append(
            f"| **max** | | {worst['alert']:.1f} s | {worst['page']:.1f} s "
            f"| {worst['resolved']:.1f} s |"
        )
    lines += [
        "",
        f"False alerts: {len(bench.false_alerts)} (healthy run {args.healthy_seconds:g} s on "
        f"{args.sites} sites, plus alerts about healthy sites during the trials)",
    ]
    lines += [f"- {when}: {dict(labels)}" for labels, when in bench.false_alerts.items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--healthy-seconds", type=float, default=300.0)
    parser.add_argument("--sites", type=int, default=3, help="lake size (>= 3: healthy pairs)")
    parser.add_argument("--seed", type=int, default=None, help="random phases; default: random")
    parser.add_argument("--rules", type=Path, default=RULES, help="alert rules to evaluate")
    parser.add_argument("--routing", type=Path, default=ROUTING, help="Alertmanager example")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("lakeprobe").setLevel(logging.ERROR)  # the stopped site's failures
    log.setLevel(logging.INFO)
    missing = require_binaries() + require_monitoring_binaries()
    if missing:
        print(f"missing binaries: {', '.join(missing)} (./dev.sh install)", file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory(prefix="lakeprobe-latency-") as work:
        trials, bench = asyncio.run(run(args, Path(work)))
    print(report(args, trials, bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
