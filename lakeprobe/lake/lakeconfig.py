"""The lakeprobe configuration that probes a LocalLake."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakeprobe.lake.lake import LocalLake
    from lakeprobe.lake.xrootd_site import XrootdSite

PROBE_CLIENT = "lakeprobe"


def lake_config(
    lake: LocalLake, listen: str, interval: float, timeout: float, transfers: bool
) -> dict[str, Any]:
    issuer = _issuer_settings(lake)
    config: dict[str, Any] = {
        "server": {"listen": listen},
        "defaults": {"interval": interval, "timeout": timeout, "ca_dir": str(lake.pki.ca_dir)},
        "sites": [_site(lake, site, issuer) for site in lake.sites],
        "probes": [
            {"name": "xrootd", "type": "xrootd"},
            {"name": "webdav", "type": "webdav"},
        ],
    }
    if transfers:
        config["probes"] += [
            {"name": "http-tpc", "type": "http-tpc", "params": {"modes": ["pull", "push"]}},
            {"name": "xrootd-tpc", "type": "xrootd-tpc"},
        ]
    protected = [site.name for site in lake.sites if site.protected]
    if issuer is not None and protected:
        config["probes"].append(
            {
                "name": "token-authz",
                "type": "token-authz",
                "targets": {"sites": protected},
                "params": {"issuer": issuer},
            }
        )
    return config


def _issuer_settings(lake: LocalLake) -> dict[str, str] | None:
    """The probe client at the lake's issuer (registered on first use)."""
    if lake.issuer is None:
        return None
    id_file, secret_file = lake.issuer.client(PROBE_CLIENT)
    return {
        "token_endpoint": lake.issuer.token_endpoint,
        "client_id_file": str(id_file),
        "client_secret_file": str(secret_file),
    }


def _site(lake: LocalLake, site: XrootdSite, issuer: dict[str, str] | None) -> dict[str, Any]:
    """A token-protected site is probed over roots:// and davs:// only: its tokens never
    travel in cleartext (XrdCl verifies roots:// against X509_CERT_DIR, see `lakeprobe demo`)."""
    xrootd_url = site.roots_url if site.protected else site.root_url
    endpoints: list[dict[str, Any]] = [
        {"name": "xrootd", "url": xrootd_url, "test_dir": lake.test_dir},
        {"name": "webdav", "url": site.davs_url, "test_dir": lake.test_dir},
    ]
    if site.protected and issuer is not None:
        base = lake.test_dir
        scope = f"storage.read:{base} storage.create:{base} storage.modify:{base}"
        for endpoint in endpoints:
            endpoint["audience"] = site.audience
            endpoint["auth"] = {"oidc": {**issuer, "scope": scope}}
    return {"name": site.name, "endpoints": endpoints}
