"""The lakeprobe configuration that probes a LocalLake."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from lakeprobe.lake.network import network_endpoints, network_probes

if TYPE_CHECKING:
    from lakeprobe.lake.lake import LocalLake
    from lakeprobe.lake.tape import TapeEmulation
    from lakeprobe.lake.xrootd_site import XrootdSite

PROBE_CLIENT = "lakeprobe"
# The tape endpoints of a tape site (the storage and transfer probes keep to the others).
TAPE_XROOTD, TAPE_REST = "tape-xrootd", "tape-rest"
# Each user of the reference files has its own: two users recalling and evicting one file
# would cut each other's recalls short.
TAPE_USERS = (TAPE_XROOTD, TAPE_REST, "cli")
TAPE_FILES_PER_USER = 3
# At most this often (s): the probe polls once per run, so a recall of seconds completes in
# the run after its stage.
TAPE_INTERVAL = 10.0
# The lake's tape answers in seconds: limits of minutes instead of TapeConfig's hours.
_TAPE_LIMITS: dict[str, float] = {
    "online_warning": 60,
    "online_critical": 300,
    "archive_warning": 60,
    "archive_critical": 300,
    "abandon_after": 900,
    "poll_max_interval": 30,
}
_DISK_LIFETIME = 600  # asked for in Tape REST stages: the probe releases long before
# The integrity probes, on the disk endpoints. Fixity: at the lake's interval, at least every
# minute, all canaries each run (a canary corrupted at rest is found by the next one), at
# most 1 MiB each (a larger PUT body makes aiohttp warn). Corrupt uploads write files: a
# quarter of that pace, at least every 10 min.
FIXITY_INTERVAL = 60.0
CORRUPTION_INTERVAL = 600.0
CORRUPTION_SLOWER = 4
CORRUPTION_TIMEOUT = 60.0
FIXITY_SIZES = (0, 1024, 64 * 1024, 1024 * 1024)
_DISK_ENDPOINTS = ["xrootd", "webdav"]
# Every layer: the third-party-copy ones are opt-in, and XRootD does TPC.
CORRUPTION_LAYERS = (
    "content-md5", "digest", "content-digest", "xrdcp-cksum", "tpc-cksum", "copy-digest",
)  # fmt: skip


def lake_config(
    lake: LocalLake,
    listen: str,
    interval: float,
    timeout: float,
    transfers: bool,
    integrity: bool = False,
) -> dict[str, Any]:
    issuer = _issuer_settings(lake)
    sites = [_site(lake, site, issuer) for site in lake.sites]
    config: dict[str, Any] = {
        "server": {"listen": listen},
        "defaults": {"interval": interval, "timeout": timeout, "ca_dir": str(lake.pki.ca_dir)},
        "sites": sites,
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
    if any(e["name"] not in _DISK_ENDPOINTS for site in sites for e in site["endpoints"]):
        _disk_only(config["probes"])
    if any(e["name"] == TAPE_XROOTD for site in sites for e in site["endpoints"]):
        every = min(interval, TAPE_INTERVAL)
        config["probes"].append(
            {
                "name": "tape-recall",
                "type": "tape-recall",
                "interval": every,
                "timeout": min(timeout, every),
            }
        )
    if integrity:
        config["probes"] += _integrity_probes(interval, timeout)
    config["probes"] += network_probes(interval, timeout, lake.psarchive is not None,
                                       bool(lake.iperf3_servers), lake.iperf3_ipv6)  # fmt: skip
    protected = [site.name for site in lake.sites if site.protected]
    if issuer is not None and protected:
        config["probes"].append(
            {
                "name": "token-authz",
                "type": "token-authz",
                "targets": {"sites": protected, "endpoints": list(_DISK_ENDPOINTS)},
                "params": {"issuer": issuer},
            }
        )
    return config


def _integrity_probes(interval: float, timeout: float) -> list[dict[str, Any]]:
    """Fixity canaries and corruption injection on every site's disk endpoints (root:// and
    davs:// share one namespace: canary names tell the endpoints apart), all layers: XRootD
    does third-party copies."""
    fixity = min(interval, FIXITY_INTERVAL)
    corruption = min(interval * CORRUPTION_SLOWER, CORRUPTION_INTERVAL)
    sizes = list(FIXITY_SIZES)
    return [
        {
            "name": "fixity",
            "type": "fixity",
            "interval": fixity,
            "timeout": min(timeout, fixity),
            "targets": {"endpoints": list(_DISK_ENDPOINTS)},
            "params": {"sizes": sizes, "per_run": len(sizes)},
        },
        {
            "name": "corruption",
            "type": "corruption",
            "interval": corruption,
            "timeout": min(corruption, CORRUPTION_TIMEOUT),  # a gfal2 TPC alone takes ~2 s
            "targets": {"endpoints": list(_DISK_ENDPOINTS)},
            "params": {"layers": list(CORRUPTION_LAYERS)},
        },
    ]


def _disk_only(probes: list[dict[str, Any]]) -> None:
    """The storage and transfer probes test the disk endpoints only: a tape endpoint or a
    perfSONAR archive has the same URL scheme (and a pair probe takes one endpoint per site)."""
    disk = {"xrootd": "xrootd", "xrootd-tpc": "xrootd", "webdav": "webdav", "http-tpc": "webdav"}
    for probe in probes:
        probe["targets"] = {"endpoints": [disk[probe["type"]]]}


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
    elif site.tape is not None:  # tokens for tape requests are not part of the lake
        endpoints += _tape_endpoints(lake, site, site.tape)
    archive = lake.psarchive if site.name in lake.perfsonar_sites else None
    iperf3 = lake.iperf3_url(site.name) if (site.name, 4) in lake.iperf3_servers else None
    endpoints += network_endpoints(archive, iperf3, site.name)
    return {"name": site.name, "endpoints": endpoints}


def _tape_endpoints(lake: LocalLake, site: XrootdSite, tape: TapeEmulation) -> list[dict[str, Any]]:
    """Prepare over root:// (evicting recalled files, checking archival too) and, once the
    lake runs its Tape REST double in front of this site, the Tape REST API over davs://."""
    endpoints = [
        {
            "name": TAPE_XROOTD,
            "url": site.root_url,
            "test_dir": lake.test_dir,
            "tape": {
                "protocol": "xrootd",
                "files": _reference_entries(tape, TAPE_XROOTD),
                "archive_dir": tape.archive_dir,
                "may_evict": True,
                **_TAPE_LIMITS,
            },
        }
    ]
    double = lake.tape_rest
    if double is not None and double.port and lake.tape_rest_site is site:
        tape_rest = {
            "protocol": "tape-rest",
            "files": _reference_entries(tape, TAPE_REST),
            "discovery_url": double.url,
            "disk_lifetime": _DISK_LIFETIME,
            **_TAPE_LIMITS,
        }
        endpoints.append(
            {"name": TAPE_REST, "url": site.davs_url, "test_dir": lake.test_dir, "tape": tape_rest}
        )
    return endpoints


def _reference_entries(tape: TapeEmulation, user: str) -> list[dict[str, str]]:
    return [
        {"path": path, "adler32": adler32(data)}
        for path, data in tape_reference_files(tape, user).items()
    ]


def tape_reference_files(tape: TapeEmulation, user: str) -> dict[str, bytes]:
    """The files on tape for one of TAPE_USERS (LocalLake puts them there at start), with
    contents that depend only on their path: their adler32 is known before the lake runs."""
    folder = f"{tape.tape_root}/reference/{user}"
    paths = [f"{folder}/f{i}" for i in range(1, TAPE_FILES_PER_USER + 1)]
    return {path: f"lakeprobe tape reference {path}\n".encode() * 256 for path in paths}


def adler32(data: bytes) -> str:
    # The standard library's zlib, not the probes' zlib-ng: the lake's reference checksums
    # stay an independent check of the probes' own.
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
