"""Token protection of an XRootD site by the stock SciTokens plugin (scitokens-cpp), trusting
one local issuer whose keys are pre-seeded in scitokens-cpp's key cache: the server never
fetches them (it ignores SSL_CERT_FILE/SSL_CERT_DIR, so it could not verify the test CA)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

_FAR_AHEAD_SECONDS = 10 * 365 * 86400


def seed_key_cache(cache_home: Path, issuer: str, jwks: dict[str, Any], uid: int, gid: int) -> Path:
    """Write `issuer`'s keys into $XDG_CACHE_HOME/scitokens/scitokens_cpp.sqllite (sic), owned
    by the server user, with next update and expiry far ahead."""
    directory = cache_home / "scitokens"
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, uid, gid)  # sqlite writes its journal next to the file
    path = directory / "scitokens_cpp.sqllite"
    far = int(time.time()) + _FAR_AHEAD_SECONDS
    keys = json.dumps({"jwks": jwks, "next_update": far, "expires": far})
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS keycache "
            "(issuer text UNIQUE PRIMARY KEY NOT NULL, keys text NOT NULL)"
        )
        db.execute("INSERT OR REPLACE INTO keycache VALUES (?, ?)", (issuer, keys))
    os.chown(path, uid, gid)
    path.chmod(0o600)
    return path


def write_token_config(config_path: Path, issuer: str, audience: str) -> list[str]:
    """Write the plugin's config (`audience` required, no token: deny) and return the
    xrootd directives that enable it; HTTP takes the token from `Authorization: Bearer`."""
    config_path.write_text(
        "[Global]\n"
        f"audience = {audience}\n"
        "onmissing = deny\n"
        "\n"
        "[Issuer local]\n"
        f"issuer = {issuer}\n"
        "base_path = /\n"
    )
    config_path.chmod(0o644)
    return [
        "ofs.authorize 1",
        f"ofs.authlib libXrdAccSciTokens.so config={config_path}",
        "http.header2cgi Authorization authz",
    ]
