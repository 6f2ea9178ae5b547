"""`lakeprobe run URL` without the config models, for the URLs nearly every run takes: a plain
host name or IP address, an optional port, a plain path, no token and no tape. Anything else
returns None, and the caller validates the URL as a configured endpoint (pydantic), which
also words the errors. tests/test_cli_plain_target.py holds the two to the same Target for
every input this path accepts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lakeprobe.cli.run import DEFAULT_TEST_DIR
from lakeprobe.probes.core.checksums import DEFAULT_POLICY
from lakeprobe.probes.core.paths import storage_path
from lakeprobe.probes.core.target import Target

# scheme://host[:port]: a host name of letters, digits, '.', '-' (so host[:64] is a valid
# endpoint name), an IPv4 address, or a bracketed IPv6 address; a port of 1-5 digits.
_PLAIN_ENDPOINT = re.compile(
    r"(?:root|roots|davs|https|http)://"
    r"(?P<host>[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_PLAIN_KEYS = {"name", "url", "read_only", "ca_dir", "auth", "insecure_token_transport",
               "checksums", "test_dir", "reference_file"}  # fmt: skip


def plain_target(site: str, fields: dict[str, Any]) -> Target | None:
    """The Target `fields` (EndpointConfig's keys, from the command line) make as the one
    endpoint of `site`, or None when they need the validating path."""
    if fields.keys() - _PLAIN_KEYS or fields["auth"] is not None:
        return None
    url = fields["url"]
    match = _PLAIN_ENDPOINT.fullmatch(url)
    if match is None or int(match["port"] or 1) > 65535:
        return None
    try:
        test_dir = storage_path(fields.get("test_dir", DEFAULT_TEST_DIR), "test_dir")
        reference = fields.get("reference_file")
        reference = None if reference is None else storage_path(reference, "reference_file")
    except ValueError:
        return None
    if fields["read_only"] and reference is None:
        return None
    host = match["host"].lower().strip("[]")
    ca_dir: Path | None = fields["ca_dir"]
    return Target(
        site=site,
        endpoint=fields["name"],
        url=url,
        test_dir=test_dir,
        read_only=fields["read_only"],
        reference_file=reference,
        ca_dir=ca_dir,
        redirect_hosts=frozenset({host}),
        insecure_token_transport=fields["insecure_token_transport"],
        checksums=fields["checksums"] or DEFAULT_POLICY,
    )
