"""`lakeprobe run`: one probe, now, with the daemon's code; exit code as a Nagios plugin."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from lakeprobe.cli.report import json_record, json_report, text_report
from lakeprobe.config import load_config
from lakeprobe.config.loader import yaml_path
from lakeprobe.config.model import EndpointConfig, SiteConfig
from lakeprobe.config.plan import ProbeJob, TargetKey, build_plan, make_target
from lakeprobe.config.transport import CLEARTEXT
from lakeprobe.config.types import parse_duration
from lakeprobe.probes.context import ProbeParams, ProbeType
from lakeprobe.probes.copyjob import exit_now_if_copies_hang
from lakeprobe.probes.outcome import Status
from lakeprobe.probes.registry import PROBE_TYPES
from lakeprobe.probes.runner import run_probe


class UsageError(Exception):
    """Bad command-line input: reported as UNKNOWN (exit 3), as Nagios plugins do."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("probe", help="probe type, or a probe name from --config")
    parser.add_argument("urls", nargs="*", metavar="URL", help="endpoint URL(s) to probe")
    parser.add_argument("-c", "--config", type=Path, help="take targets from this config")
    parser.add_argument("--site", help="with --config: only this site")
    parser.add_argument("--endpoint", help="with --config: only this endpoint name")
    parser.add_argument("--test-dir", default="/lakeprobe", help="writable test directory")
    parser.add_argument("--read-only", action="store_true", help="only read --reference-file")
    parser.add_argument("--reference-file", help="absolute path read in read-only mode")
    parser.add_argument("--token-file", type=Path, help="bearer token file")
    parser.add_argument(
        "--bearer-discovery",
        action="store_true",
        help="find a token the WLCG way (BEARER_TOKEN, BEARER_TOKEN_FILE, ...)",
    )
    parser.add_argument(
        "--insecure-token-transport",
        action="store_true",
        help="allow the token over root:// or http://, where it travels in cleartext",
    )
    parser.add_argument("--ca-dir", type=Path, help="CA directory (default $X509_CERT_DIR)")
    parser.add_argument(
        "--timeout", type=_seconds, default=30.0, help="run deadline: seconds, or '30s', '5m'"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="probe parameter, e.g. file_size_bytes=4096 (repeatable)",
    )
    parser.add_argument(
        "--probe-host", default=socket.gethostname(), help="host name used in test-file names"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _seconds(text: str) -> float:
    """A finite, bounded run deadline: '30', '2.5', '30s', '5m' (not 'inf' or 'nan')."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def command(args: argparse.Namespace) -> int:
    try:
        jobs = _jobs_from_args(args)
    except UsageError as error:
        print(f"UNKNOWN: {error}", file=sys.stderr)
        return int(Status.UNKNOWN)
    results = asyncio.run(_run_all(jobs, args.probe_host))
    if args.json:
        print(json_report([json_record(job, result) for job, result in results]))
    else:
        print("\n\n".join(text_report(job, result) for job, result in results))
    worst = max((r.status for _, r in results), key=lambda s: s.severity)
    exit_now_if_copies_hang(int(worst))  # a hung copy must not delay the exit code
    return int(worst)


async def _run_all(jobs: list[ProbeJob], probe_host: str) -> list[tuple[ProbeJob, Any]]:
    log = logging.getLogger("lakeprobe.run")
    outcomes = await asyncio.gather(
        *(
            run_probe(
                j.probe_type, j.target, j.params, timeout=j.timeout, probe_host=probe_host, log=log
            )
            for j in jobs
        )
    )
    return [(job, outcome.result) for job, outcome in zip(jobs, outcomes, strict=True)]


def _jobs_from_args(args: argparse.Namespace) -> list[ProbeJob]:
    if args.config is not None:
        if args.urls:
            raise UsageError("give either URLs or --config, not both")
        return _jobs_from_config(args)
    if not args.urls:
        raise UsageError("no URL given (or use --config with --site/--endpoint)")
    probe_type = _probe_type(args.probe)
    params = _params(probe_type, args.param, {})
    return [_job_for_url(args, probe_type, params, url) for url in args.urls]


def _probe_type(name: str) -> ProbeType[Any, Any]:
    if name not in PROBE_TYPES:
        raise UsageError(f"unknown probe type {name!r} (known: {', '.join(sorted(PROBE_TYPES))})")
    return PROBE_TYPES[name]


def _params(probe_type: ProbeType[Any, Any], pairs: list[str], base: dict[str, Any]) -> ProbeParams:
    values = dict(base)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: expected KEY=VALUE")
        try:
            values[key] = yaml.safe_load(raw)
        except (yaml.YAMLError, ValueError):  # ValueError: an int of over 4300 digits
            raise UsageError(f"--param {key}: not a YAML value") from None
    try:
        return probe_type.params_model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        raise UsageError(f"--param {yaml_path(first['loc'])}: {first['msg']}") from None


def _job_for_url(
    args: argparse.Namespace, probe_type: ProbeType[Any, Any], params: ProbeParams, url: str
) -> ProbeJob:
    scheme = urlsplit(url).scheme
    if scheme not in probe_type.schemes:
        tested = ", ".join(sorted(probe_type.schemes))
        raise UsageError(f"{url}: probe {probe_type.name!r} tests {tested}, not {scheme!r}")
    auth = None
    if args.token_file or args.bearer_discovery:
        auth = {"token_file": args.token_file, "bearer_discovery": args.bearer_discovery}
        if scheme in CLEARTEXT and not args.insecure_token_transport:
            raise UsageError(
                f"{url}: a token over {scheme}:// travels in cleartext: use "
                f"{CLEARTEXT[scheme]}, or pass --insecure-token-transport"
            )
    try:
        endpoint = EndpointConfig.model_validate(
            {
                "name": (urlsplit(url).hostname or "endpoint").replace(":", "_"),
                "url": url,
                "test_dir": args.test_dir,
                "read_only": args.read_only,
                "reference_file": args.reference_file,
                "ca_dir": args.ca_dir,
                "auth": auth,
                "insecure_token_transport": args.insecure_token_transport,
            }
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = yaml_path(first["loc"]) or "URL"
        raise UsageError(f"{url}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
    target = make_target(SiteConfig(name="cli", endpoints=[endpoint]), endpoint, args.ca_dir)
    key = TargetKey(probe_type.name, "cli", endpoint.name, target.protocol)
    return ProbeJob(key, probe_type, target, params, args.timeout, args.timeout)


def _jobs_from_config(args: argparse.Namespace) -> list[ProbeJob]:
    config = load_config(args.config)  # ConfigError is reported by main()
    jobs = [
        job
        for job in build_plan(config)
        if args.probe in (job.key.probe, job.probe_type.name)
        and (args.site is None or job.key.involves(args.site))
        and args.endpoint in (None, *(t.endpoint for t in job.target.endpoints))
    ]
    if not jobs:
        raise UsageError(
            f"{args.config}: no target of probe {args.probe!r} matches "
            f"--site {args.site or '*'} --endpoint {args.endpoint or '*'}"
        )
    return jobs
