"""A local data lake: N XRootD sites on loopback sharing one test PKI."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import stat
import string
import sys
import tempfile
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from lakeprobe.lake.iperf3 import Iperf3Server
from lakeprobe.lake.issuer_process import LocalIssuer
from lakeprobe.lake.lakeconfig import TAPE_USERS, lake_config, tape_reference_files
from lakeprobe.lake.network import feed_archive
from lakeprobe.lake.pki import TestPki, issue_host_cert, make_test_pki
from lakeprobe.lake.psarchive import PsArchiveDouble
from lakeprobe.lake.tape import TapeEmulation
from lakeprobe.lake.taperest import TapeRestDouble
from lakeprobe.lake.taperest_dialects import DIALECTS
from lakeprobe.lake.xrootd_site import SiteStartError, XrootdSite

log = logging.getLogger(__name__)

_PORT_ATTEMPTS = 5
WRONG_HOST_NAME = "other.example"  # the only name in a wrong_name_sites certificate
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def free_ports(count: int) -> list[int]:
    """Distinct TCP ports free on 127.0.0.1 right now. Another process may still take one
    before the server binds it: LocalLake retries with new ports on "address in use"."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:  # all held open at once, so the ports are distinct
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def default_site_names(count: int) -> list[str]:
    if count > len(string.ascii_uppercase):
        return [f"SITE-{i + 1}" for i in range(count)]
    return [f"SITE-{letter}" for letter in string.ascii_uppercase[:count]]


def _rmtree(path: Path) -> None:
    """Remove a tree even with read-only (0555) directories in it."""

    def retry_writable(func: Callable[..., Any], failed: str, _exc: Any) -> None:
        parent = os.path.dirname(failed)
        os.chmod(parent, stat.S_IMODE(os.stat(parent).st_mode) | stat.S_IWUSR | stat.S_IXUSR)
        func(failed)

    if not path.exists():
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry_writable)
    else:
        shutil.rmtree(path, onerror=retry_writable)


class LocalLake:
    """`n_sites` XRootD sites (names from `site_names` when given) under `base_dir` (a new
    temporary directory when None, removed on exit). Use as a context manager.

    `token_sites` (True: all, or site names) are protected by tokens from `issuer`, a local
    OIDC issuer started before the sites and stopped after them. `no_checksum_sites` run
    without `xrootd.chksum` (XrootdSite's `checksums=False`). `wrong_name_sites` serve a host
    certificate from the lake's CA naming only WRONG_HOST_NAME, not the loopback names.
    `tape_sites` (True: all, or site names) get a TapeEmulation (`lake.site(name).tape`)
    holding reference files (lakeconfig.tape_reference_files) from start. With `tape_rest` (a
    dialect: dcache, eos, storm), `lake.tape_rest` is a Tape REST double in front of the first
    tape site (`lake.tape_rest_site`), started after the sites (on a new port each start).
    `iperf3` (True: all, or site names) runs a real iperf3 server per site on 127.0.0.1 (and
    one on ::1 too with `iperf3_ipv6`): `lake.iperf3_url(site)`, `lake.stop_iperf3(site)`.
    `perfsonar` (True: all, or site names) gives those sites perfSONAR nodes whose results
    live in `lake.psarchive`, an archive DOUBLE fed with synthetic results at start
    (lakeprobe/lake/network.py)."""

    test_dir = "/lakeprobe"

    def __init__(
        self,
        n_sites: int = 2,
        base_dir: Path | None = None,
        site_names: Sequence[str] | None = None,
        token_sites: Sequence[str] | bool = (),
        no_checksum_sites: Sequence[str] = (),
        wrong_name_sites: Sequence[str] = (),
        tape_sites: Sequence[str] | bool = (),
        tape_rest: str | None = None,
        iperf3: Sequence[str] | bool = (),
        iperf3_ipv6: bool = False,
        perfsonar: Sequence[str] | bool = (),
    ) -> None:
        names = list(site_names) if site_names is not None else default_site_names(n_sites)
        if not names or len(set(names)) != len(names) or not all(map(_NAME.fullmatch, names)):
            raise ValueError(f"site names must be distinct, non-empty, [A-Za-z0-9._-]: {names}")
        self._cleanup: weakref.finalize[Any, Any] | None = None
        if base_dir is None:
            base_dir = Path(tempfile.mkdtemp(prefix="lakeprobe-lake-"))
            self._cleanup = weakref.finalize(self, _rmtree, base_dir)
        base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir = base_dir
        self.pki: TestPki = make_test_pki(base_dir / "pki")
        self.sites: list[XrootdSite] = []
        taped = set(self._site_names("tape_sites", tape_sites, names))
        for name in names:
            root_port, http_port = free_ports(2)
            site_dir = base_dir / "sites" / name.lower()
            checksums = name not in no_checksum_sites
            pki = self.pki
            if name in wrong_name_sites:  # a host certificate for another host: TLS must refuse
                pki = issue_host_cert(self.pki, site_dir / "pki", (WRONG_HOST_NAME,))
            tape = TapeEmulation() if name in taped else None
            self.sites.append(
                XrootdSite(
                    name, site_dir, pki, root_port, http_port, checksums=checksums, tape=tape
                )
            )
        if unknown := sorted(set(no_checksum_sites) - set(names)):
            raise ValueError(f"no_checksum_sites: no such sites {unknown} in {names}")
        if unknown := sorted(set(wrong_name_sites) - set(names)):
            raise ValueError(f"wrong_name_sites: no such sites {unknown} in {names}")
        self.issuer: LocalIssuer | None = None
        protected = self._site_names("token_sites", token_sites, names)
        if protected:
            self.issuer = LocalIssuer(base_dir / "issuer", self.pki, free_ports(1)[0])
            for name in protected:
                self.site(name).token_issuer = self.issuer
        self.tape_rest: TapeRestDouble | None = None
        self._tape_rest_dialect = tape_rest
        self.tape_rest_site = next((s for s in self.sites if s.tape is not None), None)
        if tape_rest is not None and tape_rest not in DIALECTS:
            raise ValueError(f"tape_rest: unknown dialect {tape_rest!r}: one of {DIALECTS}")
        if tape_rest is not None and self.tape_rest_site is None:
            raise ValueError("tape_rest: the lake has no tape site (tape_sites) to front")
        self.perfsonar_sites = self._site_names("perfsonar", perfsonar, names)
        self.psarchive: PsArchiveDouble | None = None
        self.iperf3_ipv6 = iperf3_ipv6
        hosts = ("127.0.0.1", "::1") if iperf3_ipv6 else ("127.0.0.1",)
        self.iperf3_servers: dict[tuple[str, int], Iperf3Server] = {
            (name, 6 if ":" in host else 4): Iperf3Server(base_dir / "iperf3" / name.lower(), host)
            for name in self._site_names("iperf3", iperf3, names)
            for host in hosts
        }

    @staticmethod
    def _site_names(option: str, chosen: Sequence[str] | bool, names: list[str]) -> list[str]:
        if isinstance(chosen, bool):
            return names if chosen else []
        if isinstance(chosen, str):
            raise TypeError(f"{option}: a sequence of site names, not a string")
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            raise ValueError(f"{option}: no such sites {unknown} in {names}")
        return list(chosen)

    def __repr__(self) -> str:
        return f"LocalLake({[site.name for site in self.sites]}, base_dir={self.base_dir})"

    def site(self, name: str) -> XrootdSite:
        for candidate in self.sites:
            if candidate.name == name:
                return candidate
        raise KeyError(f"no site {name!r} in {[site.name for site in self.sites]}")

    def start(self) -> None:
        """Start the issuer (if any), then every site (with `test_dir` writable on each); all
        or nothing."""
        try:
            if self.issuer is not None:
                self.issuer.start()  # before the sites: they take its URL and keys at start
            for site in self.sites:
                site.make_dir(self.test_dir, writable=True)
                self._start_site(site)
            self._start_tape()
            for server in self.iperf3_servers.values():
                server.start()
            if self.perfsonar_sites:
                self.psarchive = PsArchiveDouble(self.pki)
                self.psarchive.start()
                feed_archive(self.psarchive, self.perfsonar_sites)
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _start_site(site: XrootdSite) -> None:
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                site.start()
                return
            except SiteStartError as exc:
                if not (exc.address_in_use or exc.silent) or attempt == _PORT_ATTEMPTS:
                    raise
                why = "port taken" if exc.address_in_use else "exited without a word"
                log.info("%s: %s (attempt %d), picking new ports", site.name, why, attempt)
                site.root_port, site.http_port = free_ports(2)

    def _start_tape(self) -> None:
        """Reference files on every tape site's tape, then the Tape REST double."""
        for tape in (site.tape for site in self.sites if site.tape is not None):
            for user in TAPE_USERS:
                for path, data in tape_reference_files(tape, user).items():
                    tape.put_on_tape(path, data)
        if self._tape_rest_dialect is not None and self.tape_rest_site is not None:
            # Imported here: only a lake with the double needs the XRootD bindings in-process.
            from lakeprobe.lake.taperest_xrootd import XrootdPrepareBackend

            backend = XrootdPrepareBackend(self.tape_rest_site.root_url)  # ports are final now
            self.tape_rest = TapeRestDouble(
                self.pki, backend, self._tape_rest_dialect, sitename=self.tape_rest_site.name
            )
            self.tape_rest.start()

    def stop(self) -> None:
        """Stop the archive double, the iperf3 servers, the Tape REST double, every site,
        then the issuer; keeps the files, so start() works again (the double anew, fed)."""
        try:
            if self.psarchive is not None:
                self.psarchive.stop()
                self.psarchive = None
            for server in self.iperf3_servers.values():
                server.stop()
            if self.tape_rest is not None:
                self.tape_rest.stop()
        finally:
            self._stop_sites()

    def _stop_sites(self) -> None:
        try:
            for site in self.sites:
                site.stop()
        finally:
            if self.issuer is not None:
                self.issuer.stop()

    def iperf3_server(self, site: str, ip_version: int = 4) -> Iperf3Server:
        """The site's iperf3 server on 127.0.0.1 (4) or ::1 (6); pause() it for a silent one."""
        try:
            return self.iperf3_servers[(site, ip_version)]
        except KeyError:
            raise KeyError(f"no IPv{ip_version} iperf3 server for site {site!r}") from None

    def iperf3_url(self, site: str, ip_version: int = 4) -> str:
        """iperf3://127.0.0.1:PORT (4) or iperf3://[::1]:PORT (6)."""
        return self.iperf3_server(site, ip_version).url

    def stop_iperf3(self, site: str) -> None:
        """Stop the site's iperf3 server(s): clients get "connection refused". start() (or
        `iperf3_server(site).start()`) brings them back, on the same port when it is free."""
        for version in (4, 6):
            if (site, version) in self.iperf3_servers:
                self.iperf3_servers[(site, version)].stop()

    def add_probe_client(
        self, client_id: str = "lakeprobe", lifetime: int | None = None
    ) -> tuple[Path, Path]:
        """Register a client with the issuer; paths of its client_id and client_secret files."""
        if self.issuer is None:
            raise RuntimeError("this lake has no token issuer (token_sites is empty)")
        return self.issuer.add_client(client_id, lifetime)

    def close(self) -> None:
        """Stop every site, unmount tmpfs data directories, remove base_dir if the lake
        created it."""
        try:
            self.stop()
        finally:
            for site in self.sites:
                site.close()
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def config_dict(
        self,
        listen: str = "127.0.0.1:9780",
        interval: float = 30,
        timeout: float = 20,
        transfers: bool = False,
        integrity: bool = False,
    ) -> dict[str, Any]:
        """A lakeprobe configuration probing every site over root:// and davs://; with
        `transfers`, also the transfer matrix (HTTP-TPC pull and push, XRootD TPC); with
        `integrity`, also fixity canaries and corruption injection. Sites that need tokens
        get them from the lake's issuer (client `lakeprobe`), and the `token-authz` probe
        checks them."""
        return lake_config(self, listen, interval, timeout, transfers, integrity)

    def write_config(
        self,
        path: Path,
        listen: str = "127.0.0.1:9780",
        interval: float = 30,
        timeout: float = 20,
        transfers: bool = False,
        integrity: bool = False,
    ) -> Path:
        """Write config_dict(...) as YAML to `path`."""
        config = self.config_dict(listen, interval, timeout, transfers, integrity)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path
