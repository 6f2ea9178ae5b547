"""`lakeprobe lake` (a real local data lake) and `lakeprobe demo` (the lake plus the daemon)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import re
import shutil
import signal
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CANARY_WAIT = 35.0  # s: a corruption in progress (its checksum query) may finish
TAPE_DIALECT = "dcache"  # the Tape REST double's wording: dCache's is the most demanding
# Hosts that can only be placeholders in an example config (RFC 2606 / RFC 6761 names).
# Loopback URLs count too: a demo has no notification relay on its own machine.
_PLACEHOLDER_HOST = re.compile(r"(^|\.)(example(\.(com|net|org))?|invalid|test)$", re.IGNORECASE)
_PLACEHOLDER_TEXT = re.compile(r"<[^<>]+>|CHANGE.?ME|REPLACE|XXX", re.IGNORECASE)


def dispatch(args: argparse.Namespace) -> int:
    from lakeprobe.lake import LocalLake, require_binaries

    monitoring = getattr(args, "monitoring", False)
    missing = require_binaries()
    paired = args.sites > 1  # transfers and network tests need a site pair
    if paired and shutil.which("iperf3") is None:
        missing.append("iperf3")
    if monitoring:
        from lakeprobe.lake.monitoring import require_monitoring_binaries

        missing += require_monitoring_binaries()
    if missing:
        print(f"missing binaries: {', '.join(missing)} (run `./dev.sh install` first)")
        return 3
    # Without --dir the lake lives in a temporary directory, removed when it stops.
    protected = _token_sites(args.token_sites, args.sites)
    taped = _tape_site(protected, args.sites)
    with (
        LocalLake(
            args.sites,
            base_dir=args.dir,
            token_sites=protected,
            tape_sites=taped,
            tape_rest=TAPE_DIALECT if taped else None,
            iperf3=paired,
            perfsonar=paired,
        ) as lake,
        contextlib.ExitStack() as stack,
    ):
        for site in lake.sites:
            if site.tape is not None:
                site.tape.recall_delay_seconds = site.tape.archive_delay_seconds = args.tape_delay
        config_path = getattr(args, "config_out", None) or lake.base_dir / "lakeprobe.yaml"
        lake.write_config(
            config_path,
            listen=args.listen,
            interval=args.interval,
            timeout=min(args.interval, 20.0),
            transfers=paired,
            integrity=True,
        )
        extra = (
            _start_monitoring(stack, lake.base_dir / "monitoring", args.listen)
            if monitoring
            else []
        )
        _banner(lake, config_path, args, extra)
        if args.command == "lake":
            asyncio.run(_wait_for_signal())
        else:
            delay = getattr(args, "corrupt_canary_after", None)
            if delay is not None:
                stack.enter_context(_corrupting(lake, delay))
            _serve(config_path, lake.pki.ca_dir)
    return 0


@contextlib.contextmanager
def _corrupting(lake: Any, delay: float) -> Iterator[None]:
    """In the background, `delay` s from now, corrupt one canary (once one is written)."""
    stop = threading.Event()
    worker = threading.Thread(
        target=_corrupt_canary, args=(lake, delay, stop), name="corrupt-canary", daemon=True
    )
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(CANARY_WAIT)


def _corrupt_canary(lake: Any, delay: float, stop: threading.Event) -> None:
    """Flip a byte of the smallest non-empty canary on the first open site (its checksum is
    queried over root://, open sites only) behind the server's back, keeping its mtime:
    the server keeps its stale checksum, only a full read finds it. One line says which."""
    site = next((s for s in lake.sites if not s.protected), lake.sites[0])
    if stop.wait(delay):
        return
    folder = site.local_path(lake.test_dir)
    while not stop.is_set():
        written = [p for p in folder.glob("lakeprobe-canary-*") if p.stat().st_size > 0]
        if written:
            canary = min(written, key=lambda p: (p.stat().st_size, p.name))
            try:
                site.corrupt_silently(f"{lake.test_dir}/{canary.name}")
            except (OSError, RuntimeError) as error:
                print(f"could not corrupt canary {canary.name} on {site.name}: {error}")
                return
            print(
                f"corrupted fixity canary {canary.name} on {site.name} at rest (bytes flipped, "
                "mtime kept): the next fixity run reports canary_corrupted",
                flush=True,
            )
            return
        stop.wait(1.0)


def _token_sites(choice: str, count: int) -> list[str] | bool:
    from lakeprobe.lake.lake import default_site_names

    if choice in ("all", "none"):
        return choice == "all"
    if choice == "last":
        return default_site_names(count)[-1:]
    return [name.strip() for name in choice.split(",") if name.strip()]


def _tape_site(protected: list[str] | bool, count: int) -> list[str]:
    """The first site without tokens gets the tape (the lake's tape endpoints take none)."""
    from lakeprobe.lake.lake import default_site_names

    if protected is True:
        return []
    chosen = [] if protected is False else protected
    return [name for name in default_site_names(count) if name not in chosen][:1]


def _start_monitoring(stack: contextlib.ExitStack, work_dir: Path, listen: str) -> list[str]:
    """Alertmanager with the example routing (receivers that are placeholders replaced by
    ones that notify nobody; a minimal config without the example) and Prometheus scraping
    the daemon with the shipped rules; both stop with `stack`. Returns banner lines."""
    import yaml

    from lakeprobe.data import data_path
    from lakeprobe.lake.monitoring import AlertmanagerServer, PrometheusServer, rewire_receivers

    # The shipped rules and example routing are package data: an installed wheel has them too.
    rules = data_path("alerting", "lakeprobe-rules.yaml")
    example = data_path("alerting", "alertmanager.yaml")
    routing: Path | None = None  # AlertmanagerServer's minimal config
    note = "minimal generated config: nobody is notified"
    if example.exists():
        routing, note = example, str(example)
        config = yaml.safe_load(example.read_text())
        if _placeholder_receivers(config.get("receivers", []), example.parent):
            work_dir.mkdir(parents=True, exist_ok=True)
            routing = work_dir / "alertmanager-demo.yml"
            routing.write_text(yaml.safe_dump(rewire_receivers(config), sort_keys=False))
            note = f"routing of {example}; its receivers are placeholders: nobody is notified"
    alertmanager = stack.enter_context(AlertmanagerServer(work_dir, routing))
    rule_files = [rules] if rules.exists() else []
    prometheus = stack.enter_context(
        PrometheusServer(work_dir, [listen], rule_files, alertmanager_url=alertmanager.url)
    )
    return [
        f"prometheus: {prometheus.url}/alerts (rules: {rules if rule_files else 'none found'})",
        f"alertmanager: {alertmanager.url} ({note})",
    ]


def _placeholder_receivers(node: Any, base_dir: Path, key: str = "") -> bool:
    """Whether Alertmanager receivers point at placeholders: URLs on loopback or reserved
    example hosts (example.org, *.invalid), `<...>` or CHANGEME text, or missing files."""
    if isinstance(node, dict):
        return any(_placeholder_receivers(v, base_dir, str(k)) for k, v in node.items())
    if isinstance(node, list):
        return any(_placeholder_receivers(v, base_dir, key) for v in node)
    if not isinstance(node, str):
        return False
    if key.endswith("_file"):
        return not (base_dir / node).exists()
    host = urllib.parse.urlsplit(node).hostname if "://" in node else None
    return bool(_PLACEHOLDER_TEXT.search(node) or (host and _placeholder_host(host)))


def _placeholder_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost" or bool(_PLACEHOLDER_HOST.search(host))


def _serve(config_path: Path, ca_dir: Path) -> None:
    """The daemon, in this process. XrdCl takes the CA directory for roots:// (the token
    sites) only from X509_CERT_DIR, read at its first TLS connection: the demo sets it here,
    before the daemon starts; the daemon itself never changes os.environ."""
    from lakeprobe.config import load_config
    from lakeprobe.service import eventloop
    from lakeprobe.service.daemon import Daemon
    from lakeprobe.service.server import serve

    os.environ["X509_CERT_DIR"] = str(ca_dir)
    eventloop.run(serve(Daemon(config_path, load_config(config_path))))


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _banner(lake: Any, config_path: Path, args: argparse.Namespace, extra: list[str]) -> None:
    first = lake.sites[0]
    lines = [f"local data lake with {len(lake.sites)} XRootD sites:"]
    lines += [  # token sites: roots:// only (tokens never travel in cleartext)
        f"  {s.name}: {s.roots_url if s.protected else s.root_url}  {s.davs_url}"
        f"{'  (needs tokens)' if s.protected else ''}"
        for s in lake.sites
    ]
    if lake.issuer is not None:
        lines.append(f"token issuer (OIDC, client credentials): {lake.issuer.url}")
    lines += [
        f"config: {config_path}",
        f"CA directory: {lake.pki.ca_dir}",
    ]
    lines += _tape_lines(lake, args)
    if args.command == "demo":
        lines += [f"metrics: curl http://{args.listen}/metrics", *extra, _integrity_line(args)]
        lines += _network_lines(lake)
    lines += [
        "try, in another shell (.venv/bin/lakeprobe if not on PATH):",
        f"  lakeprobe run xrootd {first.root_url} --test-dir {lake.test_dir}",
        f"  lakeprobe run webdav {first.davs_url} --test-dir {lake.test_dir} "
        f"--ca-dir {lake.pki.ca_dir}",
        f"  lakeprobe run -c {config_path} webdav --site {first.name}",
        *(
            [f"  X509_CERT_DIR={lake.pki.ca_dir} lakeprobe run -c {config_path} token-authz"]
            if lake.issuer is not None
            else []
        ),
        *_tape_try(lake),
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


def _network_lines(lake: Any) -> list[str]:
    if lake.psarchive is None:
        return []
    first, second = (lake.iperf3_url(site.name) for site in lake.sites[:2])
    return [
        "network: iperf3 between the sites (real, on loopback) and perfsonar reading an archive",
        f"  DOUBLE at {lake.psarchive.url} fed with synthetic results (lakeprobe_network_*);",
        f"  try: lakeprobe run iperf3 {first} {second}",
    ]


def _integrity_line(args: argparse.Namespace) -> str:
    from lakeprobe.lake.lakeconfig import (
        CORRUPTION_INTERVAL,
        CORRUPTION_SLOWER,
        FIXITY_INTERVAL,
    )

    fixity = min(args.interval, FIXITY_INTERVAL)
    corruption = min(args.interval * CORRUPTION_SLOWER, CORRUPTION_INTERVAL)
    return (
        f"integrity: fixity canaries every {fixity:g} s, corrupt uploads every {corruption:g} s"
        " (lakeprobe_fixity_* and lakeprobe_corruption_verdict in /metrics)"
    )


def _tape_lines(lake: Any, args: argparse.Namespace) -> list[str]:
    """Where the tape is, and where its recalls show."""
    from lakeprobe.data import data_path
    from lakeprobe.lake.lakeconfig import TAPE_INTERVAL

    site = lake.tape_rest_site
    if site is None:
        return ["tape: none (every site needs tokens; the lake's tape endpoints take none)"]
    lines = [
        f"tape on {site.name} (recall and archive take {args.tape_delay:g} s, "
        f"files under {site.tape.tape_root}): prepare over {site.root_url}",
    ]
    if lake.tape_rest is not None:
        lines.append(
            f"  WLCG Tape REST API ({lake.tape_rest.dialect} dialect, a test double): "
            f"{lake.tape_rest.url}/.well-known/wlcg-tape-rest-api"
        )
    if args.command == "demo":
        lines += [
            f"  recalls: the tape-recall probe every {min(args.interval, TAPE_INTERVAL):g} s; "
            "lakeprobe_tape_recall_duration_seconds and the other lakeprobe_tape_* series "
            "in /metrics",
            "  tape dashboard (import into Grafana): "
            f"{data_path('dashboards', 'lakeprobe-tape.json')}",
        ]
    return lines


def _tape_try(lake: Any) -> list[str]:
    """A recall from the command line, of a file the daemon never recalls."""
    from lakeprobe.lake.lakeconfig import adler32, tape_reference_files

    site = lake.tape_rest_site
    if site is None:
        return []
    path, data = next(iter(tape_reference_files(site.tape, "cli").items()))
    return [f"  lakeprobe run tape-recall {site.root_url}/{path} --adler32 {adler32(data)} --evict"]
