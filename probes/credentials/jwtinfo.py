"""Read claims from a JWT without verifying it: only to learn when our own token expires."""

from __future__ import annotations

import base64
import json
import math

from lakeprobe.probes.credentials.secrets import Secret


def jwt_expiry(token: Secret) -> float | None:
    """The `exp` claim (epoch seconds) of a JWT; None for anything else. Never raises."""
    parts = token.reveal().split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
        expiry = claims.get("exp") if isinstance(claims, dict) else None
        if isinstance(expiry, bool) or not isinstance(expiry, int | float):
            return None
        seconds = float(expiry)
    except (ValueError, RecursionError, OverflowError):  # bad base64/UTF-8/JSON, huge number
        return None
    return seconds if math.isfinite(seconds) else None
