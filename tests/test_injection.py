"""The `corruption` probe (probes/integrity/injection.py) against real servers on loopback.

What they really do with a wrong declared checksum (WIRE-FORMATS.md 7.2): XRootD 5.5.3's
XrdHttp stores every PUT whatever Content-MD5, Digest or Content-Digest say (undetected on
each HTTP layer); over root:// only the XRootD client's own check catches it, and with
rmBadCksum the client removes the file (detected). nginx's dav module ignores the headers
too. The third-party-copy layers (XRootD 5.5.3, measured): gfal2's target-mode check of a
wrong user adler32 fails the copy on both protocols (tpc-cksum detected; over root:// the
xrootd plugin removes the copy, over davs:// the probe deletes it as FTS does); a COPY with
a wrong Content-Digest succeeds (copy-digest undetected). nginx refuses a pull COPY (400):
both TPC layers are errors. The probe leaves none of its files behind and never touches
anyone else's.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from http_helpers import serve_handler
from state_helpers import loop_state

from lakeprobe.lake import LocalLake
from lakeprobe.lake.lake import free_ports
from lakeprobe.lake.nginxdav import NginxDav
from lakeprobe.probes.core.outcome import Measurement, ProbeResult, Reason, Status, StepResult
from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.integrity import injection
from lakeprobe.probes.integrity.injection import CorruptionParams, Verdict

LOG = logging.getLogger("test.injection")
HOST = "testhost"
TEST_DIR = LocalLake.test_dir
HTTP_LAYERS = ("content-md5", "digest", "content-digest")
TPC_LAYERS = ("tpc-cksum", "copy-digest")
LAYERS = (*HTTP_LAYERS, "xrdcp-cksum", *TPC_LAYERS)
DECOYS = ("decoy.txt", "lakeprobe-decoy", "lakeprobe-otherhost-1700000000-" + "0" * 32)


@pytest.fixture(scope="module")
def lake(lake_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLake]:
    with LocalLake(1, base_dir=tmp_path_factory.mktemp("injection") / "lake") as started:
        yield started


@pytest.fixture
def lake_ca(lake: LocalLake, monkeypatch: pytest.MonkeyPatch) -> None:
    """gfal2's HTTP plugin (davix) reads its CA directory from X509_CERT_DIR only."""
    monkeypatch.setenv("X509_CERT_DIR", str(lake.pki.ca_dir))


def plant_decoys(directory: Path) -> dict[str, bytes]:
    """Files the probe must never delete: foreign names and a foreign probe host's test file."""
    decoys = {name: f"decoy {name}\n".encode() for name in DECOYS}
    for name, data in decoys.items():
        (directory / name).write_bytes(data)
    return decoys


def lake_target(lake: LocalLake, protocol: str) -> Target:
    site = lake.sites[0]
    url = site.root_url if protocol == "root" else site.davs_url
    return Target("SITE", protocol, url, TEST_DIR, ca_dir=lake.pki.ca_dir)


async def run(target: Target, **params: object) -> ProbeResult:
    checked = validate_params(CorruptionParams, params)
    outcome = await run_probe(injection.PROBE_TYPE, target, checked, timeout=30.0,
                              probe_host=HOST, log=LOG, state=loop_state())  # fmt: skip
    assert outcome.exception is None
    return outcome.result


def steps(result: ProbeResult) -> dict[str, StepResult]:
    return {step.name: step for step in result.steps}


def assert_clean(directory: Path, decoys: dict[str, bytes]) -> None:
    """Only the decoys remain, byte for byte: the probe left nothing and deleted nothing else."""
    assert sorted(p.name for p in directory.iterdir()) == sorted(decoys)
    for name, data in decoys.items():
        assert (directory / name).read_bytes() == data


@pytest.mark.lake
async def test_xrootd_http_accepts_every_wrong_digest(lake: LocalLake) -> None:
    """davs:// on XRootD 5.5.3: each wrong-digest PUT is stored (200), so each HTTP layer is
    WARNING `corruption_undetected`, measured 1, and the detail says it was stored; the
    probe deletes every file it wrote, and the decoys survive."""
    directory = lake.sites[0].local_path(TEST_DIR)
    decoys = plant_decoys(directory)
    try:
        result = await run(lake_target(lake, "davs"), layers=HTTP_LAYERS)
        by_name = steps(result)
        assert list(by_name) == ["credential", *HTTP_LAYERS, "cleanup"]
        for layer in HTTP_LAYERS:
            step = by_name[layer]
            assert (step.status, step.reason) == (Status.WARNING, Reason.CORRUPTION_UNDETECTED)
            assert step.detail == "corrupt upload accepted and stored: PUT 200"
        assert (result.status, result.reason) == (Status.WARNING, Reason.CORRUPTION_UNDETECTED)
        assert by_name["cleanup"].status is Status.OK
        assert result.measurements == {
            Measurement.INJECTION_CONTENT_MD5: Verdict.UNDETECTED,
            Measurement.INJECTION_DIGEST: Verdict.UNDETECTED,
            Measurement.INJECTION_CONTENT_DIGEST: Verdict.UNDETECTED,
        }
        assert_clean(directory, decoys)
    finally:
        for name in decoys:
            (directory / name).unlink(missing_ok=True)


@pytest.mark.lake
async def test_xrootd_client_detects_and_removes(lake: LocalLake) -> None:
    """root:// on XRootD 5.5.3: the server stores the file, XrdCl's check (server adler32 vs
    the wrong expected one) fails with a checksum error and removes it: OK, detected (0);
    the detail names both checksums and that only the client checked."""
    directory = lake.sites[0].local_path(TEST_DIR)
    decoys = plant_decoys(directory)
    try:
        result = await run(lake_target(lake, "root"), layers=("xrdcp-cksum",))
        by_name = steps(result)
        assert list(by_name) == ["credential", "xrdcp-cksum", "cleanup"]
        step = by_name["xrdcp-cksum"]
        assert (step.status, step.reason) == (Status.OK, Reason.NONE)
        assert step.detail.startswith("detected: XrdCl expected adler32:")
        assert ", server adler32:" in step.detail
        assert "checksum error (only the client checked); nothing left behind" in step.detail
        assert result.status is Status.OK
        assert result.measurements == {Measurement.INJECTION_XRDCP_CKSUM: Verdict.DETECTED}
        assert_clean(directory, decoys)
    finally:
        for name in decoys:
            (directory / name).unlink(missing_ok=True)


@pytest.mark.lake
@pytest.mark.parametrize(("setting", "status"), [("ok", Status.OK), ("critical", Status.CRITICAL)])
async def test_undetected_status_is_configurable(lake: LocalLake, setting: str, status: Status
                                                 ) -> None:  # fmt: skip
    """`undetected_status` sets the status of an accepted corrupt upload; the step's reason
    stays `corruption_undetected` and the verdict stays 1."""
    result = await run(lake_target(lake, "davs"), layers=("digest",), undetected_status=setting)
    step = steps(result)["digest"]
    assert (step.status, step.reason) == (status, Reason.CORRUPTION_UNDETECTED)
    assert result.measurements == {Measurement.INJECTION_DIGEST: Verdict.UNDETECTED}
    assert list(lake.sites[0].local_path(TEST_DIR).iterdir()) == []


@pytest.mark.lake
async def test_dead_endpoint_is_an_error_not_a_verdict(lake: LocalLake) -> None:
    """Nothing listening: the first layer fails `connect` (verdict 3, error), the others are
    skipped (no verdict), and the run is CRITICAL `connect`."""
    (port,) = free_ports(1)
    dead = Target("SITE", "davs", f"davs://127.0.0.1:{port}", TEST_DIR, ca_dir=lake.pki.ca_dir)
    result = await run(dead)
    by_name = steps(result)
    assert (by_name["content-md5"].status, by_name["content-md5"].reason) == (
        Status.CRITICAL, Reason.CONNECT,
    )  # fmt: skip
    assert by_name["digest"].status is Status.SKIPPED
    assert (result.status, result.reason) == (Status.CRITICAL, Reason.CONNECT)
    assert result.measurements == {Measurement.INJECTION_CONTENT_MD5: Verdict.ERROR}


@pytest.mark.lake
async def test_nginx_dav_ignores_digests(nginx_dav: NginxDav) -> None:
    """nginx's dav module stores every wrong-digest PUT (201): undetected on each HTTP layer;
    the probe's files are gone afterwards and the decoys survive."""
    directory = nginx_dav.local_path("/lakeprobe")
    decoys = plant_decoys(directory)
    target = Target("NGINX", "webdav", nginx_dav.davs_url, "/lakeprobe",
                    ca_dir=nginx_dav.pki.ca_dir)  # fmt: skip
    result = await run(target, layers=HTTP_LAYERS)
    for layer in HTTP_LAYERS:
        step = steps(result)[layer]
        assert (step.status, step.reason) == (Status.WARNING, Reason.CORRUPTION_UNDETECTED)
        assert step.detail == "corrupt upload accepted and stored: PUT 201"
    assert set(result.measurements.values()) == {Verdict.UNDETECTED}
    assert_clean(directory, decoys)


def test_wrong_digests_are_wrong() -> None:
    """Each layer's declared digest differs from the data's real one, in the wire format
    the layer's header uses."""
    data = b"lakeprobe injection\n"
    md5 = base64.b64decode(injection.HTTP_LAYERS["content-md5"](data)["Content-MD5"])
    assert len(md5) == 16
    assert md5 != hashlib.md5(data).digest()
    digest = injection.HTTP_LAYERS["digest"](data)["Digest"]
    assert digest.startswith("adler32=")
    assert len(digest) == 16
    assert digest != f"adler32={injection.adler32_hex(data)}"
    fields = injection.HTTP_LAYERS["content-digest"](data)
    assert fields["Content-Digest"] == fields["Repr-Digest"]
    assert fields["Content-Digest"].startswith("sha-256=:")
    assert ", adler=:" in fields["Repr-Digest"]


@pytest.mark.lake
async def test_root_without_server_checksum_is_undetected(nochecksum_lake: LocalLake) -> None:
    """A root:// server without `xrootd.chksum` reports no checksum: XrdCl cannot compare,
    so the corrupt upload stands: undetected (WARNING), and the probe deletes it."""
    site = nochecksum_lake.site("SITE-A")
    target = Target("SITE-A", "root", site.root_url, TEST_DIR, ca_dir=nochecksum_lake.pki.ca_dir)
    result = await run(target, layers=("xrdcp-cksum",))
    step = steps(result)["xrdcp-cksum"]
    assert (step.status, step.reason) == (Status.WARNING, Reason.CORRUPTION_UNDETECTED)
    assert step.detail.startswith("corrupt upload accepted and stored: the server reports no")
    assert result.measurements == {Measurement.INJECTION_XRDCP_CKSUM: Verdict.UNDETECTED}
    assert list(site.local_path(TEST_DIR).iterdir()) == []


@pytest.mark.lake
async def test_xrootd_davs_tpc_layers(lake: LocalLake, lake_ca: None) -> None:
    """davs:// on XRootD 5.5.3, every layer: after the three PUT layers, gfal2's
    target-mode check rejects the copy with the wrong user adler32 (errno 5, DESTINATION
    CHECKSUM MISMATCH) and leaves it, so the probe deletes it as FTS does: tpc-cksum OK,
    detected (0). XrdHttp ignores the COPY's wrong Content-Digest and the copy succeeds:
    copy-digest WARNING corruption_undetected (1). Sources and copies are all gone after
    the run; the decoys survive."""
    directory = lake.sites[0].local_path(TEST_DIR)
    decoys = plant_decoys(directory)
    try:
        result = await run(lake_target(lake, "davs"), layers=LAYERS)
        by_name = steps(result)
        assert list(by_name) == ["credential", *HTTP_LAYERS, *TPC_LAYERS, "cleanup"]
        cksum = by_name["tpc-cksum"]
        assert (cksum.status, cksum.reason) == (Status.OK, Reason.NONE)
        assert cksum.detail.startswith("detected: gfal2 expected adler32:")
        assert "(errno 5," in cksum.detail
        assert "DESTINATION CHECKSUM MISMATCH" in cksum.detail
        assert "(only the client checked); gfal2 left the copy, deleted as FTS does" in cksum.detail
        digest = by_name["copy-digest"]
        assert (digest.status, digest.reason) == (Status.WARNING, Reason.CORRUPTION_UNDETECTED)
        assert digest.detail.startswith(
            "corrupt copy accepted and stored: COPY with a wrong Content-Digest (adler=:"
        )
        assert "success: Created" in digest.detail
        assert by_name["cleanup"].status is Status.OK
        assert result.measurements[Measurement.INJECTION_TPC_CKSUM] == Verdict.DETECTED
        assert result.measurements[Measurement.INJECTION_COPY_DIGEST] == Verdict.UNDETECTED
        assert_clean(directory, decoys)
    finally:
        for name in decoys:
            (directory / name).unlink(missing_ok=True)


@pytest.mark.lake
async def test_xrootd_root_tpc_cksum(lake: LocalLake) -> None:
    """root:// on XRootD 5.5.3, every layer (xrdcp-cksum, tpc-cksum; copy-digest is HTTP
    only): gfal2's xrootd plugin fails the copy with XrdCl's `CheckSum error` and removes
    the copy itself: tpc-cksum OK, detected (0); nothing is left, the decoys survive."""
    directory = lake.sites[0].local_path(TEST_DIR)
    decoys = plant_decoys(directory)
    try:
        result = await run(lake_target(lake, "root"), layers=LAYERS)
        by_name = steps(result)
        assert list(by_name) == ["credential", "xrdcp-cksum", "tpc-cksum", "cleanup"]
        step = by_name["tpc-cksum"]
        assert (step.status, step.reason) == (Status.OK, Reason.NONE)
        assert "[ERROR] CheckSum error (only the client checked); gfal2 removed it" in step.detail
        assert result.status is Status.OK
        assert result.measurements == {
            Measurement.INJECTION_XRDCP_CKSUM: Verdict.DETECTED,
            Measurement.INJECTION_TPC_CKSUM: Verdict.DETECTED,
        }
        assert_clean(directory, decoys)
    finally:
        for name in decoys:
            (directory / name).unlink(missing_ok=True)


@pytest.mark.lake
@pytest.mark.parametrize("protocol", ["davs", "root"])
async def test_tpc_cksum_without_server_checksum_is_undetected(
    nochecksum_lake: LocalLake, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    """A destination without `xrootd.chksum` gives gfal2 nothing to compare (davs: the
    checksum HEAD is 405; root: gfal_copy copies again without the check): the copy with
    the wrong expected value stands, undetected (WARNING), and the probe deletes it."""
    monkeypatch.setenv("X509_CERT_DIR", str(nochecksum_lake.pki.ca_dir))
    site = nochecksum_lake.site("SITE-A")
    url = site.root_url if protocol == "root" else site.davs_url
    target = Target("SITE-A", protocol, url, TEST_DIR, ca_dir=nochecksum_lake.pki.ca_dir)
    result = await run(target, layers=("tpc-cksum",))
    step = steps(result)["tpc-cksum"]
    assert (step.status, step.reason) == (Status.WARNING, Reason.CORRUPTION_UNDETECTED)
    assert step.detail.startswith("corrupt copy accepted and stored: gfal2 expected adler32:")
    assert result.measurements == {Measurement.INJECTION_TPC_CKSUM: Verdict.UNDETECTED}
    assert list(site.local_path(TEST_DIR).iterdir()) == []


@pytest.mark.lake
async def test_nginx_dav_refuses_tpc(nginx_dav: NginxDav, monkeypatch: pytest.MonkeyPatch
                                     ) -> None:  # fmt: skip
    """nginx's dav module copies only within itself (by `Destination:`): a pull COPY with
    `Source:` is 400, through gfal2 and natively. Both TPC layers are errors (verdict 3,
    CRITICAL unexpected_status) whose detail asks whether the endpoint does HTTP TPC; the
    uploaded sources are deleted and the decoys survive."""
    monkeypatch.setenv("X509_CERT_DIR", str(nginx_dav.pki.ca_dir))
    directory = nginx_dav.local_path("/lakeprobe")
    decoys = plant_decoys(directory)
    target = Target("NGINX", "webdav", nginx_dav.davs_url, "/lakeprobe",
                    ca_dir=nginx_dav.pki.ca_dir)  # fmt: skip
    result = await run(target, layers=TPC_LAYERS)
    by_name = steps(result)
    assert "copy HTTP 400" in by_name["tpc-cksum"].detail
    assert by_name["copy-digest"].detail.startswith("COPY: 400 Bad Request")
    for layer in TPC_LAYERS:
        step = by_name[layer]
        assert (step.status, step.reason) == (Status.CRITICAL, Reason.UNEXPECTED_STATUS)
        assert step.detail.endswith("does the endpoint do HTTP third-party copy? if not, "
                                    "leave the TPC layers out")  # fmt: skip
    assert result.measurements == {
        Measurement.INJECTION_TPC_CKSUM: Verdict.ERROR,
        Measurement.INJECTION_COPY_DIGEST: Verdict.ERROR,
    }
    assert by_name["cleanup"].status is Status.OK
    assert_clean(directory, decoys)


@pytest.mark.parametrize("status", [405, 501])
async def test_copy_not_supported_is_skipped(status: int) -> None:
    """A server that answers every COPY with 405 or 501 does no third-party copy: both TPC
    layers are SKIPPED with that reason, no verdict is recorded, and the run is OK; the
    uploaded sources are deleted (a stand-in WebDAV server on loopback, over http://)."""
    files: dict[str, bytes] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        if request.method == "PUT":
            files[path] = await request.read()
            return web.Response(status=201)
        if request.method == "COPY":
            return web.Response(status=status)
        if path not in files:
            return web.Response(status=404)
        if request.method == "DELETE":
            del files[path]
            return web.Response(status=204)
        return web.Response(status=200, headers={"Content-Length": str(len(files[path]))})

    async with serve_handler(handle) as url:
        result = await run(Target("STUB", "http", url, "/lakeprobe"), layers=TPC_LAYERS)
    by_name = steps(result)
    for layer in TPC_LAYERS:
        step = by_name[layer]
        assert (step.status, step.reason) == (Status.SKIPPED, Reason.NONE)
        assert step.detail == (
            f"COPY {status}: the endpoint does no third-party copy, nothing to test"
        )
    assert result.status is Status.OK
    assert result.measurements == {}
    assert files == {}


def test_tpc_layers_are_opt_in() -> None:
    """By default only the upload layers run: a plain WebDAV server without third-party
    copy must not fail every run; the TPC layers are named to be run."""
    assert CorruptionParams().layers == (*HTTP_LAYERS, "xrdcp-cksum")
    assert set(TPC_LAYERS) <= set(CorruptionParams(layers=LAYERS).layers)
