"""The local data lake: real XRootD servers on loopback, as the integration tests use them."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from lakeprobe.config import load_config
from lakeprobe.config.plan import TargetKey, build_plan
from lakeprobe.lake import LocalLake, SiteStartError, XrootdSite

pytestmark = pytest.mark.lake
LAKEPROBE = str(Path(sys.executable).with_name("lakeprobe"))  # the installed console script


def xrdfs(site: XrootdSite, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["xrdfs", site.root_url, *args], capture_output=True, text=True, timeout=30, check=False
    )


def https(
    site: XrootdSite,
    lake: LocalLake,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One HTTPS request to a site, trusting only the lake's CA directory."""
    context = ssl.create_default_context(capath=str(lake.pki.ca_dir))
    conn = http.client.HTTPSConnection(
        "127.0.0.1", site.http_port, context=context, timeout=timeout
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def refuses_connections(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def our_processes(base_dir: Path) -> list[int]:
    """Pids of live processes whose command line mentions `base_dir`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(base_dir).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


@pytest.mark.parametrize(
    ("fixture", "names"),
    [("lake", ["SITE-A", "SITE-B"]), ("lake3", ["SITE-A", "SITE-B", "SITE-C"])],
)
def test_sites_come_up(request: pytest.FixtureRequest, fixture: str, names: list[str]) -> None:
    """Every site answers root:// (stat of the test dir, server version) on its own ports."""
    lake: LocalLake = request.getfixturevalue(fixture)
    assert [site.name for site in lake.sites] == names
    ports = {port for site in lake.sites for port in (site.root_port, site.http_port)}
    assert len(ports) == 2 * len(names)
    for site in lake.sites:
        assert site.running
        stat = xrdfs(site, "stat", lake.test_dir)
        assert stat.returncode == 0, stat.stderr
        assert "IsDir" in stat.stdout
        assert "IsWritable" in stat.stdout
        version = xrdfs(site, "query", "config", "version")
        assert version.stdout.startswith("v5"), version


def test_https_trusts_only_the_test_ca(lake: LocalLake) -> None:
    """HTTPS serves files with a certificate the lake's CA verifies; the system store does not."""
    site = lake.site("SITE-A")
    site.put_file("/lakeprobe/hello.txt", b"hello lake\n")
    assert https(site, lake, "GET", "/lakeprobe/hello.txt") == (200, b"hello lake\n")
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", site.http_port), timeout=5) as sock,
    ):
        ssl.create_default_context().wrap_socket(sock, server_hostname="127.0.0.1")


def test_http_tpc_pull_between_sites(lake: LocalLake) -> None:
    """A COPY sent to the destination with a Source header pulls the file over https (trusting
    the test CA); the streamed body ends with `success: ...`."""
    src, dst = lake.sites
    data = os.urandom(1 << 20)
    src.put_file("/lakeprobe/src.bin", data)
    status, body = https(
        dst, lake, "COPY", "/lakeprobe/copy.bin",
        headers={"Source": f"{src.https_url}/lakeprobe/src.bin"},
    )  # fmt: skip
    assert status == 201
    assert body.decode().strip().splitlines()[-1].startswith("success:"), body
    assert dst.local_path("/lakeprobe/copy.bin").read_bytes() == data


def test_stop_kills_and_frees_ports_then_start_restores(lake: LocalLake) -> None:
    """stop() ends the process and frees both ports (idempotently); start() serves again on the
    same ports."""
    site = lake.site("SITE-B")
    pid, ports = site.pid, (site.root_port, site.http_port)
    site.stop()
    site.stop()
    assert not site.running
    assert site.pid is None
    assert not Path(f"/proc/{pid}").exists()
    assert all(refuses_connections(port) for port in ports)
    site.start()
    assert site.pid != pid
    assert (site.root_port, site.http_port) == ports
    assert xrdfs(site, "stat", lake.test_dir).returncode == 0


def test_a_crash_is_told_from_a_stop(lake: LocalLake) -> None:
    """A server that dies by a signal nobody sent through stop() is `crashed` (the tests that
    retry around XRootD 5.5.3's own segfaults rely on it), before anything reaps it; stopped,
    and once started again, it is not."""
    site = lake.site("SITE-B")
    assert not site.crashed
    pid = site.pid
    assert pid is not None
    os.kill(pid, signal.SIGSEGV)
    deadline = time.monotonic() + 10
    while not site.crashed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert site.crashed
    assert not site.running
    site.start()
    assert not site.crashed
    site.stop()
    assert not site.crashed
    site.start()


def test_pause_and_resume(lake: LocalLake) -> None:
    """A paused site accepts TCP connections but answers nothing; after resume() it answers."""
    site = lake.site("SITE-A")
    site.pause()
    with pytest.raises(TimeoutError):
        https(site, lake, "GET", "/lakeprobe/", timeout=0.5)
    site.resume()
    status, _ = https(site, lake, "PROPFIND", "/lakeprobe/", headers={"Depth": "0"})
    assert status == 207


def test_corrupt_silently_keeps_stale_checksum(lake: LocalLake) -> None:
    """After corrupt_silently the server still reports the adler32 of the original bytes, which
    differs from the adler32 of what is now on disk."""
    site = lake.site("SITE-A")
    data = os.urandom(64 * 1024)
    path = site.put_file("/lakeprobe/victim.bin", data)
    original = f"{zlib.adler32(data):08x}"
    assert site.corrupt_silently("/lakeprobe/victim.bin") == original
    on_disk = f"{zlib.adler32(path.read_bytes()):08x}"
    assert on_disk != original
    assert site.server_adler32("/lakeprobe/victim.bin") == original


def test_read_only_dir_refuses_uploads(lake: LocalLake, tmp_path: Path) -> None:
    """A directory made with writable=False refuses uploads over https and root://."""
    site = lake.site("SITE-B")
    site.make_dir("/lakeprobe/ro", writable=False)
    status, _ = https(site, lake, "PUT", "/lakeprobe/ro/f.txt", body=b"x")
    assert status == 403
    source = tmp_path / "upload.txt"
    source.write_bytes(b"x")
    copy = subprocess.run(
        ["xrdcp", "--nopbar", str(source), f"{site.root_url}//lakeprobe/ro/g.txt"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert copy.returncode == 54, copy.stderr  # server error 3010: permission denied
    assert list(site.local_path("/lakeprobe/ro").iterdir()) == []


@pytest.mark.usefixtures("lake_binaries")
def test_port_taken_before_start(tmp_path: Path) -> None:
    """A site whose port is taken fails fast with the log tail; LocalLake moves it to new ports."""
    lake = LocalLake(1, base_dir=tmp_path / "lake")
    try:
        site = lake.sites[0]
        taken = site.root_port
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", taken))
            blocker.listen()
            with pytest.raises(SiteStartError, match="initialization failed") as failure:
                site.start()
            assert failure.value.address_in_use
            lake.start()
            assert site.running
            assert site.root_port != taken
    finally:
        lake.close()


@pytest.mark.usefixtures("lake_binaries")
def test_teardown_leaves_nothing_behind() -> None:
    """Leaving the context stops every server of the lake and removes its temporary directory."""
    with LocalLake(2) as lake:
        base_dir, ports = lake.base_dir, [site.root_port for site in lake.sites]
        assert len(our_processes(base_dir)) == 2
    assert our_processes(base_dir) == []
    assert all(refuses_connections(port) for port in ports)
    assert not base_dir.exists()


@pytest.mark.usefixtures("lake_binaries")
def test_config_for_the_lake(tmp_path: Path) -> None:
    """The generated config lists every site with a root:// and a davs:// endpoint."""
    lake = LocalLake(site_names=["CERN", "DESY", "FNAL"], base_dir=tmp_path / "lake")
    path = lake.write_config(tmp_path / "lakeprobe.yaml", listen="127.0.0.1:9999", interval=5)
    config = yaml.safe_load(path.read_text())
    assert config == lake.config_dict(listen="127.0.0.1:9999", interval=5)
    assert list(config) == ["server", "defaults", "sites", "probes"]
    assert config["defaults"] == {"interval": 5, "timeout": 20, "ca_dir": str(lake.pki.ca_dir)}
    fnal = config["sites"][2]
    assert fnal["name"] == "FNAL"
    assert fnal["endpoints"][1] == {
        "name": "webdav",
        "url": f"davs://127.0.0.1:{lake.site('FNAL').http_port}",
        "test_dir": "/lakeprobe",
    }
    assert [probe["type"] for probe in config["probes"]] == ["xrootd", "webdav"]


@pytest.mark.usefixtures("lake_binaries")
def test_token_sites_are_probed_over_tls_only(tmp_path: Path) -> None:
    """A token-protected site's endpoints are roots:// and davs://: its tokens never travel
    in cleartext; an open site keeps root://."""
    lake = LocalLake(site_names=["CERN", "DESY"], base_dir=tmp_path / "lake", token_sites=["DESY"])
    urls = {s["name"]: [e["url"] for e in s["endpoints"]] for s in lake.config_dict()["sites"]}
    cern, desy = lake.site("CERN"), lake.site("DESY")
    assert urls == {
        "CERN": [f"root://127.0.0.1:{cern.root_port}", cern.davs_url],
        "DESY": [f"roots://127.0.0.1:{desy.root_port}", desy.davs_url],
    }


@pytest.mark.usefixtures("lake_binaries")
def test_config_for_a_tape_lake(tmp_path: Path) -> None:
    """A tape site fronted by the lake's Tape REST double gets two tape endpoints, prepare
    over root:// (evicting, with an archive directory) and the Tape REST API over davs://
    (discovered at the double), each with its own reference files, on tape only, with their
    adler32. Only tape-recall targets them, and `lakeprobe check-config` accepts the config.
    With the site stopped, the double answers a 500 problem naming its backend's error."""
    with LocalLake(
        site_names=["CERN", "DESY"],
        base_dir=tmp_path / "lake",
        tape_sites=["CERN"],
        tape_rest="dcache",
    ) as lake:
        path = lake.write_config(tmp_path / "c.yaml", interval=15, timeout=15, transfers=True)
        cern, api = lake.site("CERN"), lake.tape_rest
        limits = {"online_warning": 60, "online_critical": 300, "archive_warning": 60}
        limits |= {"archive_critical": 300, "abandon_after": 900, "poll_max_interval": 30}
        assert cern.tape is not None
        assert api is not None
        assert lake.tape_rest_site is cern
        checked = subprocess.run(
            [LAKEPROBE, "check-config", str(path)], capture_output=True, text=True, timeout=60
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        config = yaml.safe_load(path.read_text())
        sites = {site["name"]: site["endpoints"] for site in config["sites"]}
        assert [e["name"] for e in sites["DESY"]] == ["xrootd", "webdav"]
        root, rest = sites["CERN"][2:]
        assert (root["name"], root["url"]) == ("tape-xrootd", cern.root_url)
        assert root["tape"] | {"files": []} == {
            "protocol": "xrootd", "files": [], "archive_dir": cern.tape.archive_dir,
            "may_evict": True, **limits,
        }  # fmt: skip
        assert (rest["name"], rest["url"]) == ("tape-rest", cern.davs_url)
        assert rest["tape"] | {"files": []} == {
            "protocol": "tape-rest", "files": [], "discovery_url": api.url,
            "disk_lifetime": 600, **limits,
        }  # fmt: skip
        files = [f for endpoint in (root, rest) for f in endpoint["tape"]["files"]]
        assert len({f["path"] for f in files}) == len(files) == 6  # no file shared
        for file in files:
            assert cern.tape.is_on_tape(file["path"])
            assert not cern.tape.is_online(file["path"])
            data = cern.tape.tape_dir.joinpath(file["path"].lstrip("/")).read_bytes()
            assert f"{zlib.adler32(data):08x}" == file["adler32"]
        targets = {
            (job.key.probe, job.key.site, job.key.endpoint)
            for job in build_plan(load_config(path))
            if isinstance(job.key, TargetKey)
        }
        assert {t for t in targets if t[2].startswith("tape-")} == {
            ("tape-recall", "CERN", "tape-xrootd"),
            ("tape-recall", "CERN", "tape-rest"),
        }
        cern.stop()  # the double's XRootD backend gone: a 500 problem, not a traceback
        status, problem = post_json(api.api_uri + "/archiveinfo", {"paths": [files[0]["path"]]},
                                    lake.pki.ca_dir)  # fmt: skip
        assert status == 500
        assert problem["detail"].startswith("tape backend: query: ")
    assert refuses_connections(api.port)  # the double stopped with the lake


def post_json(url: str, document: object, ca_dir: Path) -> tuple[int, dict[str, str]]:
    """POST `document` to an https `url`: the status and the JSON answer."""
    parts = urlsplit(url)
    tls = ssl.create_default_context(capath=str(ca_dir))
    connection = http.client.HTTPSConnection(parts.netloc, context=tls, timeout=60)
    try:
        connection.request("POST", parts.path, json.dumps(document),
                           {"Content-Type": "application/json"})  # fmt: skip
        reply = connection.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        connection.close()
