"""`lakeprobe run`: one probe, now, with the daemon's code; exit code as a Nagios plugin."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakeprobe.cli.console import startup_done
from lakeprobe.probes.core.checksums import POLICIES

if TYPE_CHECKING:
    from lakeprobe.config.model import LakeprobeConfig
    from lakeprobe.config.plan import ProbeJob
    from lakeprobe.probes.core.resources import ProbeResources
    from lakeprobe.probes.core.state import StateStore

# Building the parser (every command, `run --help`) imports nothing heavy: the config models,
# the plan, the registry and the runner load when a run starts (benchmarks/cli_start.py).
DEFAULT_TEST_DIR = "/lakeprobe"  # EndpointConfig's default, for --help (test_cli_imports.py)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("probe", help="probe type, or with --config a configured probe name")
    parser.add_argument(
        "urls",
        nargs="*",
        metavar="URL",
        help="endpoint URL(s) as grid tools take them (root://host:1094//test/dir, "
        "davs://host/test/dir); pair probes: SOURCE_URL DESTINATION_URL",
    )
    parser.add_argument("-c", "--config", type=Path, help="take targets from this config")
    parser.add_argument("--site", help="with --config: only this site")
    parser.add_argument("--endpoint", help="with --config: only this endpoint name")
    parser.add_argument(
        "--test-dir", help=f"writable test directory, if not the URL's path ({DEFAULT_TEST_DIR})"
    )
    parser.add_argument("--read-only", action="store_true", help="only read --reference-file")
    parser.add_argument(
        "--reference-file", help="absolute path read in read-only mode, if not the URL's path"
    )
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
        "--checksums",
        choices=POLICIES,
        help="a missing server checksum is CRITICAL (required), WARNING (optional, the "
        "default) or not asked for (none)",
    )
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
    tape = parser.add_argument_group("tape-recall (the URL names the tape file)")
    tape.add_argument("--adler32", help="the file's known adler32, verified after the recall")
    tape.add_argument("--evict", action="store_true", help="XRootD: evict it first if on disk")
    tape.add_argument("--tape-api", help="Tape REST API URI (default: discovered)")
    tape.add_argument(
        "--tape-discovery", help="where /.well-known/wlcg-tape-rest-api is (default: the URL)"
    )


def _seconds(text: str) -> float:
    """A finite, bounded run deadline: '30', '2.5', '30s', '5m' (not 'inf' or 'nan')."""
    from lakeprobe.config.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def command(args: argparse.Namespace) -> int:
    from lakeprobe.cli.report import json_record, json_report, text_report
    from lakeprobe.cli.targets import UsageError
    from lakeprobe.probes.core.outcome import Status
    from lakeprobe.probes.core.resources import ProbeResources

    resources = ProbeResources()  # this command's copy threads and OIDC clients
    try:
        jobs = _jobs_from_args(args, resources)
    except UsageError as error:
        print(f"UNKNOWN: {error}", file=sys.stderr)
        return int(Status.UNKNOWN)
    startup_done()  # the jobs are built: the probes' modules are loaded
    results = asyncio.run(_run_all(jobs, args.probe_host, resources))
    if args.json:
        report = json_report([json_record(job, result) for job, result in results])
    else:
        report = "\n\n".join(text_report(job, result) for job, result in results)
    try:
        print(report, flush=True)
    except BrokenPipeError:  # the reader left (`| head -1`): the verdict and its code stand
        discard_stdout()
    worst = max((r.status for _, r in results), key=lambda s: s.severity)
    if resources.threads.running:  # only copy probes start these threads: import on need
        from lakeprobe.probes.clients.copyjob import exit_now_if_copies_hang

        exit_now_if_copies_hang(resources.threads, int(worst))  # a hung copy must not delay it
    resources.close()
    return int(worst)


def discard_stdout() -> None:
    """Point fd 1 at /dev/null after its reader went away, so that no later flush (the
    interpreter's at exit, too) fails again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


async def _run_all(
    jobs: list[ProbeJob[Any]], probe_host: str, resources: ProbeResources
) -> list[tuple[ProbeJob[Any], Any]]:
    from lakeprobe.probes.core.runner import run_probe

    log = logging.getLogger("lakeprobe.run")
    state = cli_state(log)
    try:
        outcomes = await asyncio.gather(
            *(
                run_probe(
                    j.probe_type,
                    j.target,
                    j.params,
                    timeout=j.timeout,
                    probe_host=probe_host,
                    log=log,
                    state=state,
                    resources=resources,
                    on_demand=True,
                )
                for j in jobs
            )
        )
    finally:
        state.close()
    return [(job, outcome.result) for job, outcome in zip(jobs, outcomes, strict=True)]


def cli_state(log: logging.Logger) -> StateStore:
    """The per-user state store of `lakeprobe run` ($XDG_STATE_HOME/lakeprobe, else
    ~/.local/state/lakeprobe), shared with concurrent runs (no lock); in memory when it
    cannot be opened: a check never fails for want of it."""
    from lakeprobe.probes.core.state import StateError, StateStore

    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    try:
        return StateStore.open(Path(base) / "lakeprobe")
    except StateError as error:
        log.warning("%s; this run remembers nothing", error)
        return StateStore.memory()


def _jobs_from_args(args: argparse.Namespace, resources: ProbeResources) -> list[ProbeJob[Any]]:
    from lakeprobe.cli.targets import UsageError, cli_params, endpoint_jobs, pair_jobs
    from lakeprobe.probes.registry import ENDPOINT_PROBE_TYPES, PAIR_PROBE_TYPES, PROBE_TYPES

    if args.config is not None:
        if args.urls:
            raise UsageError("give either URLs or --config, not both")
        return _jobs_from_config(args, resources)
    if args.probe in PAIR_PROBE_TYPES:
        pair_type = PAIR_PROBE_TYPES[args.probe]
        return list(pair_jobs(args, pair_type, cli_params(pair_type.params_model, args.param)))
    if args.probe in ENDPOINT_PROBE_TYPES:
        endpoint_type = ENDPOINT_PROBE_TYPES[args.probe]
        # A tape recall from the command line waits for the file (the daemon's runs do not).
        waits = ["wait=true"] if endpoint_type.needs == "tape" else []
        params = cli_params(endpoint_type.params_model, [*waits, *args.param])
        return list(endpoint_jobs(args, endpoint_type, params))
    raise UsageError(f"unknown probe type {args.probe!r} (known: {', '.join(sorted(PROBE_TYPES))})")


def _jobs_from_config(args: argparse.Namespace, resources: ProbeResources) -> list[ProbeJob[Any]]:
    """The targets of the probe configured under the name args.probe."""
    from lakeprobe.cli.targets import UsageError
    from lakeprobe.config.loader import load_config
    from lakeprobe.config.plan import build_plan

    config = load_config(args.config)  # ConfigError is reported by main()
    if args.probe not in {probe.name for probe in config.probes}:
        raise UsageError(_not_a_probe_name(args.config, config, args.probe))
    jobs = [
        job
        for job in build_plan(config, oidc=resources.oidc)
        if job.key.probe == args.probe
        and (args.site is None or job.key.involves(args.site))
        and args.endpoint in (None, *(t.endpoint for t in job.target.endpoints))
    ]
    if not jobs:
        raise UsageError(
            f"{args.config}: no target of probe {args.probe!r} matches "
            f"--site {args.site or '*'} --endpoint {args.endpoint or '*'}"
        )
    return [_waiting(job) for job in jobs]


def _waiting(job: ProbeJob[Any]) -> ProbeJob[Any]:
    """A configured tape recall run from the command line waits for its file."""
    if job.probe_type.needs != "tape":
        return job
    from lakeprobe.probes.tape.recall import TapeRecallParams

    assert isinstance(job.params, TapeRecallParams)
    return dataclasses.replace(job, params=dataclasses.replace(job.params, wait=True))


def _not_a_probe_name(path: Path, config: LakeprobeConfig, name: str) -> str:
    of_type = [probe.name for probe in config.probes if probe.type == name]
    if of_type:
        return (
            f"{path}: {name!r} is a probe type, not a probe name: select a probe by its "
            f"configured name ({', '.join(of_type)})"
        )
    names = ", ".join(probe.name for probe in config.probes)
    return f"{path}: no probe named {name!r} (configured: {names})"
