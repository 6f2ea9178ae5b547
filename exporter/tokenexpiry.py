"""`lakeprobe_token_expiry_seconds`: how long each configured token source's token lasts,
computed at scrape time. Local token files are re-checked (a stat while unchanged); issued
tokens are reported as already issued: a scrape never talks to an issuer.

`source` (file, discovery, oidc) tells who renews the token: something outside lakeprobe, or
lakeprobe itself for oidc, whose tokens always have minutes left while renewal works (alerts
treat the two differently: alerting/lakeprobe-rules.yaml).

The family itself is TOKEN_EXPIRY in families.py, rendered by the one exposition; this
module says what its value is."""

from __future__ import annotations

import contextlib
import time

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


def seconds_left(source: TokenSource) -> float | None:
    """Seconds until the source's token expires, now; None while unknown."""
    expires_at = current_expiry(source)
    return None if expires_at is None else expires_at - time.time()


def current_expiry(source: TokenSource) -> float | None:
    """Local tokens are loaded first (cheap), so their expiry is known before any probe ran;
    a token that cannot be loaded keeps the expiry last seen."""
    if isinstance(source, FileToken | DiscoveredToken):
        with contextlib.suppress(CredentialError):
            source.load()
    return source.expires_at
