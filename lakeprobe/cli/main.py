"""The `lakeprobe` command: serve, run, list, check-config, lake, demo."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from lakeprobe import __version__
from lakeprobe.cli import demoargs, run
from lakeprobe.cli.console import startup_done
from lakeprobe.cli.logs import setup_logging
from lakeprobe.cli.stderrscrub import scrubbed_stderr

if TYPE_CHECKING:
    from lakeprobe.config import ConfigError

# Each command imports what it uses when it runs: `lakeprobe run webdav` is what a Nagios or
# ETF install starts every few minutes, and must not pay for the daemon, the config loader
# or the probe types it does not run (benchmarks/cli_start.py).
EXIT_CONFIG_INVALID = 2
EXIT_USAGE = 3  # UNKNOWN, as Nagios plugins report bad usage
COMMANDS = ("serve", "run", "list", "check-config", *demoargs.COMMANDS)
# lakeprobe uses no pydantic plugins; looking for them scans every installed distribution's
# metadata at the first model build (~25 ms CPU per process). An operator who wants plugins
# sets the variable (even to ""), which is then left as it is.
PYDANTIC_PLUGINS = ("PYDANTIC_DISABLE_PLUGINS", "__all__")


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's, with the width found without importing shutil: argparse makes a formatter
    for every argument it adds, and shutil (with bz2 and lzma) is ~1 ms of a `lakeprobe run`
    that never prints help. Same rule as shutil.get_terminal_size: $COLUMNS, else the
    terminal's width, else 80."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:  # fmt: skip
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


@functools.cache  # argparse asks once per argument
def _terminal_columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0 and sys.__stdout__ is not None:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):  # not a terminal, or no descriptor
            columns = 0
    return columns or 80


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `command`, only that command's part of it: argparse
    builds every option of every command it is given (~1 ms of a `lakeprobe run`)."""
    parser = _Parser(prog="lakeprobe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lakeprobe {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    if command in (None, "serve"):
        serve = commands.add_parser("serve", help="run the daemon: scheduled probes, /metrics")
        serve.add_argument("-c", "--config", type=Path, required=True)
        serve.add_argument("--site", help="per-site deployment: only what this site owns")
        serve.add_argument(
            "--shard",
            type=_shard,
            help="'i/N': only hash shard i of N; 'hostname/N': i is the host name's trailing "
            "'-<digits>' (a StatefulSet pod's ordinal)",
        )
    if command in (None, "run"):
        run.add_arguments(commands.add_parser("run", help="run one probe now (exit 0/1/2/3)"))
    if command in (None, "list"):
        listing = commands.add_parser("list", help="probe types, or a config's targets")
        listing.add_argument("-c", "--config", type=Path, help="list this config's targets")
    if command in (None, "check-config"):
        check = commands.add_parser("check-config", help="validate a config file (exit 0 or 2)")
        check.add_argument("config", type=Path)
    if command in (None, *demoargs.COMMANDS):
        demoargs.add_commands(commands)
    return parser


def console() -> NoReturn:
    """The `lakeprobe` command. A `run` ends with os._exit once its report is out and its
    logs and stderr are flushed: tearing the interpreter down (~280 modules, libcurl's and
    OpenSSL's cleanup) cost ~20 ms, 15 % of a whole `lakeprobe run webdav`
    (benchmarks/cli_start.py). By then the run has closed its state store and shut its copy
    threads down (a hung copy already ends the process: copyjob.exit_now_if_copies_hang). Other
    commands exit normally."""
    args = _arguments(None)
    if args.command != "run":  # a run turns the collector back on once its job is built
        startup_done()
    code = _main(args)
    if args.command != "run":
        sys.exit(code)
    sys.stdout.flush()
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    return _main(_arguments(argv))


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    os.environ.setdefault(*PYDANTIC_PLUGINS)
    words = sys.argv[1:] if argv is None else argv
    command = words[0] if words and words[0] in COMMANDS else None  # else: options first
    parser = _parser(command)
    args, extra = parser.parse_known_args(argv)
    # URLs after options (`run webdav --param k=v davs://h/d`), as the grid tools take them:
    # argparse fills `URL ...` once, from the words before the first option.
    if args.command == "run" and extra and not any(w.startswith("-") for w in extra):
        args.urls += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _main(args: argparse.Namespace) -> int:
    # Commands that run probes: XrdCl, gfal2 and davix print to fd 2 themselves.
    probing = args.command in ("serve", "run", "demo")
    with scrubbed_stderr() if probing else contextlib.nullcontext():
        setup_logging(args.log_level)
        try:
            return int(_dispatch(args))
        except _config_error() as error:
            print(error, file=sys.stderr)
            return EXIT_CONFIG_INVALID
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # stdout's reader left (`lakeprobe list | head`)
            run.discard_stdout()
            return 1
        except Exception:  # a bug: logged here so that its traceback is scrubbed too
            logging.getLogger(__name__).exception("lakeprobe %s failed", args.command)
            return 1


def _dispatch(args: argparse.Namespace) -> int:
    match args.command:
        case "serve":
            return _serve(args.config, args.site, args.shard)
        case "run":
            return run.command(args)
        case "list":
            return _list(args.config)
        case "check-config":
            return _check_config(args.config)
        case _:
            from lakeprobe.cli import demo

            return demo.dispatch(args)


def _config_error() -> type[ConfigError] | tuple[()]:
    """ConfigError if a command loaded the config package (only then can it be raised)."""
    module = sys.modules.get("lakeprobe.config.loader")
    return module.ConfigError if module is not None else ()


def _shard(text: str) -> str:
    import socket

    from lakeprobe.config.types import HOSTNAME_SHARD, parse_shard, shard_of_host

    try:
        if text.startswith(HOSTNAME_SHARD):
            return shard_of_host(text, socket.gethostname())
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _serve(config_path: Path, site: str | None, shard: str | None) -> int:
    from lakeprobe.config import load_config
    from lakeprobe.probes.clients.copyjob import exit_now_if_copies_hang
    from lakeprobe.probes.core.state import StateError
    from lakeprobe.service import eventloop
    from lakeprobe.service.daemon import Daemon
    from lakeprobe.service.server import serve

    try:
        factory = eventloop.loop_factory()
    except eventloop.EventLoopChoiceError as error:
        print(f"lakeprobe serve: {error}", file=sys.stderr)
        return EXIT_USAGE
    config = load_config(config_path)
    if site is not None and site not in {s.name for s in config.sites}:
        print(f"--site: {site!r} is not a site of {config_path}", file=sys.stderr)
        return EXIT_USAGE
    try:
        daemon = Daemon(config_path, config, site=site, shard=shard)
    except StateError as error:
        print(f"lakeprobe serve: {error}", file=sys.stderr)
        return EXIT_CONFIG_INVALID
    eventloop.run(serve(daemon), factory)  # the loop was chosen before the config was read
    exit_now_if_copies_hang(daemon.resources.threads)
    return 0


def _check_config(path: Path) -> int:
    from lakeprobe.config import load_config
    from lakeprobe.config.plan import build_plan

    config = load_config(path)
    jobs = build_plan(config)
    endpoints = sum(len(site.endpoints) for site in config.sites)
    print(
        f"{path}: OK: {len(config.sites)} sites, {endpoints} endpoints, "
        f"{len(config.probes)} probes, {len(jobs)} targets"
    )
    return 0


def _list(config_path: Path | None) -> int:
    if config_path is None:
        from dataclasses import MISSING

        from lakeprobe.probes.core.paramspec import param_fields
        from lakeprobe.probes.registry import PROBE_TYPES

        for name, probe_type in sorted(PROBE_TYPES.items()):
            schemes = ",".join(sorted(probe_type.schemes))
            print(f"{name:12} {schemes:20} {probe_type.description}")
            for field, info in param_fields(probe_type.params_model).items():
                value = "(required)" if info.default is MISSING else repr(info.default)
                print(f"    {field} = {value}  {info.description or ''}".rstrip())
        return 0
    from lakeprobe.config import load_config
    from lakeprobe.config.plan import build_plan

    for job in build_plan(load_config(config_path)):
        print(
            f"{job.key.describe():36} {job.target.display_url:50} "
            f"every {job.interval:g} s, timeout {job.timeout:g} s"
        )
    return 0


if __name__ == "__main__":
    console()
