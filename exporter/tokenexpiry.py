"""`lakeprobe_token_expiry_seconds`: how long each configured token source's token lasts,
computed at scrape time. Local token files are re-checked (a stat while unchanged); issued
tokens are reported as already issued: a scrape never talks to an issuer.

`source` (file, discovery, oidc) tells who renews the token: something outside lakeprobe, or
lakeprobe itself for oidc, whose tokens always have minutes left while renewal works (alerts
treat the two differently: alerting/lakeprobe-rules.yaml)."""

from __future__ import annotations

import contextlib
import time

from lakeprobe.config.plan import ProbeJob, TokenKey, plan_tokens
from lakeprobe.exporter.exposition import escape
from lakeprobe.probes.credentials.tokens import (
    CredentialError,
    DiscoveredToken,
    FileToken,
    TokenSource,
)

NAME = "lakeprobe_token_expiry_seconds"
HELP = (
    "Seconds until the configured token expires (negative once expired; absent when unknown)."
    ' probe="" is the endpoint\'s auth, else the probe whose own auth replaces it.'
    " source: file, discovery (WLCG bearer-token discovery) or oidc (client credentials,"
    " renewed by lakeprobe shortly before expiry)"
)
_HEADER = f"# HELP {NAME} {HELP}\n# TYPE {NAME} gauge\n".encode()


class TokenExpiry:
    """The token sources of the current plan, rendered on each scrape."""

    def __init__(self) -> None:
        self._sources: dict[TokenKey, TokenSource] = {}

    def set_plan(self, jobs: list[ProbeJob]) -> None:
        self._sources = dict(sorted(plan_tokens(jobs).items()))

    def render(self) -> bytes:
        now = time.time()
        lines = []
        for key, source in self._sources.items():
            expires_at = current_expiry(source)
            if expires_at is None:
                continue
            pairs = {**key.labels(), "source": source.kind}
            labels = ",".join(f'{k}="{escape(v)}"' for k, v in pairs.items())
            lines.append(f"{NAME}{{{labels}}} {expires_at - now!r}\n")
        return _HEADER + "".join(lines).encode() if lines else b""


def current_expiry(source: TokenSource) -> float | None:
    """Local tokens are loaded first (cheap), so their expiry is known before any probe ran;
    a token that cannot be loaded keeps the expiry last seen."""
    if isinstance(source, FileToken | DiscoveredToken):
        with contextlib.suppress(CredentialError):
            source.load()
    return source.expires_at
