"""`lakeprobe run` targets from URLs as grid users type them (gfal-ls, xrdfs, davix):
`root://host:1094//eos/test/dir`, `davs://host:443/dpm/test/dir/`, `https://[::1]:8443/dir`.
The URL's path is the test directory (the reference file in read-only mode)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_origin
from urllib.parse import urlsplit, urlunsplit

from lakeprobe.cli.plaintarget import plain_target
from lakeprobe.config.jobs import ProbeJob, TargetKey
from lakeprobe.probes.core.context import (
    AnyProbeType,
    EndpointProbeType,
    PairParams,
    PairProbeType,
    ProbeParams,
)
from lakeprobe.probes.core.paramspec import param_fields, validate_params
from lakeprobe.probes.core.target import PairTarget, Target

# Scheme spellings of the grid tools -> the scheme lakeprobe names the protocol by.
SCHEME_ALIASES = {"xroot": "root", "xroots": "roots"}
_XROOTD = ("root", "roots")
PM = TypeVar("PM", bound=ProbeParams)


class UsageError(Exception):
    """Bad command-line input: reported as UNKNOWN (exit 3), as Nagios plugins do."""


@dataclass(frozen=True, slots=True)
class GridUrl:
    """A URL as typed on the command line, split into endpoint and path."""

    endpoint: str  # scheme://host[:port], canonical scheme; any query/fragment kept to reject
    path: str | None  # the URL's path, None when it has none


def parse_grid_url(url: str) -> GridUrl:
    """Split a grid URL into its endpoint and path. XRootD writes an absolute path after a
    double slash (`root://h//eos/x`); the single-slash form means the same path to xrdfs."""
    try:
        parts = urlsplit(url)
    except ValueError as error:  # e.g. an unclosed IPv6 bracket
        raise UsageError(f"{url}: {error}") from None
    scheme = SCHEME_ALIASES.get(parts.scheme, parts.scheme)
    path = parts.path
    if scheme in _XROOTD and path.startswith("//"):
        path = path[1:]
    endpoint = urlunsplit((scheme, parts.netloc, "", parts.query, parts.fragment))
    return GridUrl(endpoint, None if path in ("", "/") else path)


def endpoint_jobs(
    args: argparse.Namespace, probe_type: EndpointProbeType, params: ProbeParams
) -> list[ProbeJob[Target]]:
    """One job per URL (at least one)."""
    if not args.urls:
        raise UsageError("no URL given (or use --config with --site/--endpoint)")
    jobs = []
    for url in args.urls:
        target = cli_target(args, probe_type, url, "cli")
        key = TargetKey(probe_type.name, target.site, target.endpoint, target.protocol)
        jobs.append(ProbeJob(key, probe_type, target, params, args.timeout, args.timeout))
    return jobs


def pair_jobs(
    args: argparse.Namespace, probe_type: PairProbeType, params: PairParams
) -> list[ProbeJob[PairTarget]]:
    """One job per mode for the pair SOURCE_URL DESTINATION_URL; both ends take the same
    token and CA options."""
    from lakeprobe.config.pairs import pair_key

    if probe_type.needs is not None:  # e.g. perfsonar: the site's node names, from a config
        raise UsageError(
            f"probe {probe_type.name!r} needs a '{probe_type.needs}:' block on its endpoints: "
            "run a configured probe with --config"
        )
    if len(args.urls) != 2:
        raise UsageError(
            f"probe {probe_type.name!r} takes two URLs, SOURCE and DESTINATION "
            f"(got {len(args.urls)})"
        )
    unsupported = [m for m in params.modes if m not in probe_type.modes]
    if unsupported:
        raise UsageError(
            f"--param modes: probe {probe_type.name!r} supports {', '.join(probe_type.modes)}, "
            f"not {', '.join(unsupported)}"
        )
    source = cli_target(args, probe_type, args.urls[0], "src")
    destination = cli_target(args, probe_type, args.urls[1], "dst")
    jobs = []
    for mode in params.modes:
        pair = PairTarget(source, destination, mode)
        key = pair_key(probe_type.name, probe_type, pair)
        jobs.append(ProbeJob(key, probe_type, pair, params, args.timeout, args.timeout))
    return jobs


def cli_target(args: argparse.Namespace, probe_type: AnyProbeType, url: str, site: str) -> Target:
    """The URL as the one endpoint of site `site`, validated as a configured endpoint is."""
    fields = endpoint_fields(args, probe_type, url)
    return plain_target(site, fields) or validated_target(url, site, fields, args.ca_dir)


def endpoint_fields(args: argparse.Namespace, probe_type: AnyProbeType, url: str) -> dict[str, Any]:
    """The URL and options as EndpointConfig's keys."""
    grid = parse_grid_url(url)
    scheme = urlsplit(grid.endpoint).scheme
    if scheme not in probe_type.schemes:
        tested = ", ".join(sorted(probe_type.schemes))
        raise UsageError(f"{url}: probe {probe_type.name!r} tests {tested}, not {scheme!r}")
    fields = {
        "name": _endpoint_name(grid.endpoint),
        "url": grid.endpoint,
        "read_only": args.read_only,
        "ca_dir": args.ca_dir,
        "auth": _auth(args, url, scheme),
        "insecure_token_transport": args.insecure_token_transport,
        "checksums": args.checksums,
    }
    if probe_type.needs == "tape":
        fields["tape"] = _tape(args, url, scheme, grid.path)
    else:
        fields |= _paths(args, url, grid.path)
    return fields


def validated_target(url: str, site: str, fields: dict[str, Any], ca_dir: Path | None) -> Target:
    """`fields` validated as a configured endpoint is; UsageError names the bad key."""
    from pydantic import ValidationError

    from lakeprobe.config.model import EndpointConfig, SiteConfig
    from lakeprobe.config.plan import make_target

    try:
        endpoint = EndpointConfig.model_validate(fields)
    except ValidationError as error:
        from lakeprobe.config.loader import yaml_path

        first = error.errors()[0]
        where = yaml_path(first["loc"]) or "URL"
        raise UsageError(f"{url}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
    return make_target(SiteConfig(name=site, endpoints=[endpoint]), endpoint, ca_dir)


def _tape(args: argparse.Namespace, url: str, scheme: str, path: str | None) -> dict[str, Any]:
    """tape-recall: the URL names the tape file, as gfal-bringonline's does; the protocol
    follows the scheme (root:// prepare, https:// the Tape REST API)."""
    if path is None:
        raise UsageError(f"{url}: give the tape file's path in the URL, e.g. root://host//tape/f")
    return {
        "protocol": "xrootd" if scheme in _XROOTD else "tape-rest",
        "files": [{"path": path, "adler32": args.adler32}],
        "rest_api": args.tape_api,
        "discovery_url": args.tape_discovery,
        "may_evict": args.evict,
    }


def _endpoint_name(endpoint_url: str) -> str:
    """A valid endpoint name from the host: `::1` becomes `ipv6___1`."""
    host = urlsplit(endpoint_url).hostname or "endpoint"
    return f"ipv6_{host.replace(':', '_')}"[:64] if ":" in host else host[:64]


def _auth(args: argparse.Namespace, url: str, scheme: str) -> dict[str, Any] | None:
    if not (args.token_file or args.bearer_discovery):
        return None
    from lakeprobe.config.transport import CLEARTEXT  # with the token probe: only with a token

    if scheme in CLEARTEXT and not args.insecure_token_transport:
        raise UsageError(
            f"{url}: a token over {scheme}:// travels in cleartext: use "
            f"{CLEARTEXT[scheme]}, or pass --insecure-token-transport"
        )
    return {"token_file": args.token_file, "bearer_discovery": args.bearer_discovery}


def _paths(args: argparse.Namespace, url: str, path: str | None) -> dict[str, str]:
    """test_dir and reference_file: the URL's path is one of them (the reference file in
    read-only mode); an explicit option that names a different path is a conflict. Neither
    given: EndpointConfig's default applies."""
    paths = {"test_dir": args.test_dir, "reference_file": args.reference_file}
    field = "reference_file" if args.read_only else "test_dir"
    if path is not None:
        given = args.reference_file if args.read_only else args.test_dir
        if given is not None and given.rstrip("/") != path.rstrip("/"):
            option = "--" + field.replace("_", "-")
            raise UsageError(
                f"{url}: the URL's path {path!r} and {option} {given!r} differ: give one"
            )
        paths[field] = path
    return {key: value for key, value in paths.items() if value is not None}


def cli_params(params_model: type[PM], pairs: list[str]) -> PM:
    """The probe's params from --param KEY=VALUE (YAML values; a list also as `a,b`). Without
    --param, the defaults: no validation, so no pydantic import."""
    if not pairs:
        return params_model()
    from pydantic import ValidationError

    fields = param_fields(params_model)
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: expected KEY=VALUE")
        values[key] = _yaml_value(key, raw)
        field = fields.get(key)
        is_list = field is not None and get_origin(field.annotation) in (tuple, list)
        if is_list and isinstance(values[key], str):  # modes=pull,push
            values[key] = [item.strip() for item in values[key].split(",")]
    try:
        return validate_params(params_model, values)
    except ValidationError as error:
        from lakeprobe.config.loader import yaml_path

        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise UsageError(f"--param {yaml_path(first['loc'])}: {message}") from None


def _yaml_value(key: str, raw: str) -> Any:
    import yaml  # only for --param: a plain run reads no YAML

    try:
        return yaml.safe_load(raw)
    except (yaml.YAMLError, ValueError):  # ValueError: an int of over 4300 digits
        raise UsageError(f"--param {key}: not a YAML value") from None
