"""`lakeprobe run` loads only what the probe it runs needs: a webdav run never imports the
daemon, the exporter, aiohttp, the XRootD or gfal2 bindings, the other probe types or the
config loader, nor pydantic for a plain URL; an xrootd run not libcurl either; building the
parser (`run --help`) not even the config models or the probe registry. Checked by the
modules a fresh interpreter holds, not by timing (benchmarks/cli_start.py times it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lakeprobe.cli.run import DEFAULT_TEST_DIR
from lakeprobe.config.model import EndpointConfig
from lakeprobe.config.transport import OWN_TOKENS
from lakeprobe.probes.registry import PROBE_TYPES

# Modules a `lakeprobe run` of the given probe type must not load. Without -c or --param no
# YAML is read: the config loader (and the token-authz probe it names) stays out too.
NEVER = (
    "apscheduler",
    "prometheus_client",
    "lakeprobe.service",
    "lakeprobe.exporter",
    "yaml",
    "lakeprobe.config.loader",
    "lakeprobe.config.transport",
    "lakeprobe.probes.authz",
    "gfal2",
    "lakeprobe.probes.transfer",
    "lakeprobe.probes.clients.copyjob",
    "aiohttp",  # the probes speak HTTP through libcurl; only the perfSONAR client uses aiohttp
    "yarl",  # HttpClient's own URL and header types load in no time (httpurl.py)
    "multidict",
)
# A plain URL with the default parameters validates nothing with pydantic: its target comes
# from lakeprobe/cli/plaintarget.py, its parameters are the dataclass defaults.
PLAIN_RUN = (
    "pydantic",
    "pydantic_core",
    "annotated_types",  # the params' bounds load it when pydantic builds a schema
    "lakeprobe.config.model",
    "lakeprobe.config.plan",
)
NOT_FOR_WEBDAV = (
    *NEVER,
    *PLAIN_RUN,
    "XRootD",
    "lakeprobe.probes.storage.xrootd",
    "lakeprobe.probes.clients.xrdasync",  # the XRootD client's Python side, too
    "lakeprobe.probes.common.storage",
)
NOT_FOR_XROOTD = (
    *NEVER,
    *PLAIN_RUN,
    "pycurl",
    "lakeprobe.probes.storage.webdav",
    "lakeprobe.probes.clients.httpparse",  # the PROPFIND parser (and expat with it)
)
# Building the parser needs no pydantic model, no probe type and no HTTP client.
NOT_FOR_HELP = (
    *NOT_FOR_WEBDAV,
    *NOT_FOR_XROOTD,
    "pydantic",
    "lakeprobe.config.model",
    "lakeprobe.probes.registry",
)

_SCRIPT = """
import json, sys
from lakeprobe.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.__stdout__)
"""


def _loaded(*argv: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *argv], capture_output=True, text=True, timeout=60
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def _forbidden(loaded: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes)]


@pytest.mark.parametrize(
    ("argv", "forbidden"),
    [
        (("run", "--help"), NOT_FOR_HELP),
        # Nothing listens on the discard port: the run fails fast, after all imports.
        (("run", "webdav", "http://127.0.0.1:9/t", "--timeout", "5"), NOT_FOR_WEBDAV),
        (("run", "xrootd", "root://127.0.0.1:9//t", "--timeout", "5"), NOT_FOR_XROOTD),
    ],
)
def test_run_imports_only_its_probe(argv: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    """`run --help` loads no pydantic, config model or probe type; a webdav run no
    scheduler, exporter, YAML, config loader, XRootD, gfal2 or other probe type; an xrootd
    run none of these (XRootD aside) and not aiohttp."""
    loaded = _loaded(*argv)
    assert "lakeprobe.cli.run" in loaded
    assert _forbidden(loaded, forbidden) == []


def test_webdav_run_loads_its_probe_type() -> None:
    """The lazy registry does import the probe module the run uses."""
    loaded = _loaded("run", "webdav", "http://127.0.0.1:9/t", "--timeout", "5")
    assert "lakeprobe.probes.storage.webdav" in loaded


def test_run_with_param_reads_yaml_but_not_the_config_loader() -> None:
    """--param values are YAML, validated by pydantic: that run imports both, still not the
    loader."""
    loaded = _loaded(
        "run", "xrootd", "root://127.0.0.1:9//t", "--timeout", "5", "--param", "file_size_bytes=1"
    )
    assert {"yaml", "pydantic"} <= set(loaded)
    assert _forbidden(loaded, ("lakeprobe.config.loader", "aiohttp")) == []


def test_help_default_test_dir_is_the_config_default() -> None:
    """The parser's plain constant for the help text is EndpointConfig's test_dir default."""
    assert EndpointConfig.model_fields["test_dir"].default == DEFAULT_TEST_DIR


def test_own_token_types_are_registered_names() -> None:
    """config/transport.py names token-sending probe types by string: each is registered."""
    assert OWN_TOKENS.issubset(PROBE_TYPES)


@pytest.mark.parametrize(("preset", "expected"), [(None, "__all__"), ("", ""), ("x", "x")])
def test_pydantic_plugins_are_not_looked_up_unless_asked(preset: str | None, expected: str) -> None:
    """A run does not scan the installed distributions for pydantic plugins (lakeprobe uses
    none); an operator's own PYDANTIC_DISABLE_PLUGINS, even empty, is left as it is."""
    script = (
        "import os, sys\nfrom lakeprobe.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(repr(os.environ.get('PYDANTIC_DISABLE_PLUGINS')), file=sys.__stdout__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if preset is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = preset
    argv = ("run", "xrootd", "root://127.0.0.1:9//t", "--timeout", "5")
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.stdout.strip().splitlines()[-1] == repr(expected)
