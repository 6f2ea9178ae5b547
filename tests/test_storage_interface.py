"""The protocol-neutral storage interface (probes/common/storage.py) against a real local lake
over root:// and davs://, and the one failed-write cleanup rule (probes/common/cleanup.py).

The lake tests carry the `lake` marker one by one: the cleanup rule's unit tests below them
need no server and stay in the fast `-m "not lake"` subset."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from lakeprobe.lake import LocalLake, XrootdSite
from lakeprobe.lake.lake import free_ports
from lakeprobe.probes.common import cleanup
from lakeprobe.probes.common.cleanup import (
    ATTEMPTED,
    delete_after_write,
    delete_verdict,
    verify_deleted,
)
from lakeprobe.probes.common.storage import Storage, StorageError, storage_for
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome, failed, passed
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.steps import StepRecorder
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.core.testfiles import adler32_hex, new_test_file
from lakeprobe.probes.credentials.secrets import Secret

LOG = logging.getLogger("test.storage")
PROTOCOLS = ("root", "davs")
TEST_DIR = LocalLake.test_dir
DATA = b"lakeprobe storage interface\n" * 100


@pytest.fixture(scope="module")
def lake(lake_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLake]:
    """One open site for the module (each test works on its own files)."""
    with LocalLake(1, base_dir=tmp_path_factory.mktemp("storage") / "lake") as started:
        yield started


def target(lake: LocalLake, protocol: str, url: str | None = None) -> Target:
    site = lake.sites[0]
    url = url or (site.root_url if protocol == "root" else site.davs_url)
    return Target("SITE", protocol, url, TEST_DIR, ca_dir=lake.pki.ca_dir)


@contextlib.asynccontextmanager
async def storage(tgt: Target, seconds: float = 10.0) -> AsyncIterator[Storage]:
    deadline = asyncio.get_running_loop().time() + seconds
    ctx = ProbeContext(StepRecorder(deadline, 10, 0.5), deadline, "testhost", LOG,
                       StateStore.memory(), ProbeResources())  # fmt: skip
    async with storage_for(tgt, ctx) as opened:
        yield opened


def new_path(directory: str = TEST_DIR) -> str:
    return new_test_file(directory, "testhost")


@pytest.mark.lake
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_every_operation(lake: LocalLake, protocol: str) -> None:
    """create, stat, checksum, read, list, overwrite, delete: each does what it says, and the
    file is gone (stat: not_found) after the delete."""
    path, site = new_path(), lake.sites[0]
    async with storage(target(lake, protocol)) as store:
        assert await store.write(path, DATA) in ("create: done", "PUT 200", "PUT 201")
        assert (await store.stat(path)).size == len(DATA)
        assert await store.checksum(path) == adler32_hex(DATA)
        assert await store.read(path) == DATA
        assert path.rsplit("/", 1)[1] in await store.list(TEST_DIR)
        await store.write(path, b"new\n", overwrite=True)
        assert site.local_path(path).read_bytes() == b"new\n"
        assert await store.delete(path) in ("delete: done", "DELETE 200", "DELETE 204")
        with pytest.raises(StorageError) as gone:
            await store.stat(path)
    assert gone.value.reason is Reason.NOT_FOUND
    assert not site.local_path(path).exists()


@pytest.mark.lake
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stat_of_a_directory(lake: LocalLake, protocol: str) -> None:
    """root:// says it is a directory; an HTTP HEAD does not say (None)."""
    async with storage(target(lake, protocol)) as store:
        info = await store.stat(TEST_DIR)
    assert info.is_dir is (True if protocol == "root" else None)


@pytest.mark.lake
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_write_with_parents_creates_them(lake: LocalLake, protocol: str) -> None:
    """`parents=True` creates the missing directories (XrdHttp's PUT alone does not)."""
    directory = f"{TEST_DIR}/{uuid.uuid4().hex[:12]}/deeper"
    path = new_path(directory)
    async with storage(target(lake, protocol)) as store:
        await store.write(path, DATA, parents=True)
        assert await store.read(path) == DATA
        await store.delete(path)


@pytest.mark.lake
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("operation", ["stat", "checksum", "read", "delete"])
async def test_missing_file_is_not_found(lake: LocalLake, protocol: str, operation: str) -> None:
    """Every operation on a file that does not exist fails with not_found, not refused."""
    async with storage(target(lake, protocol)) as store:
        with pytest.raises(StorageError) as error:
            await getattr(store, operation)(new_path())
    assert (error.value.reason, error.value.refused) == (Reason.NOT_FOUND, False)
    assert error.value.outcome.status is Status.CRITICAL


@pytest.mark.lake
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_refused_write(lake: LocalLake, protocol: str) -> None:
    """A write into a directory the server may not write is refused (auth), and says so
    briefly (`PUT 403`, `create: [3010] refused`)."""
    site = lake.sites[0]
    directory = f"/readonly-{protocol}"
    site.make_dir(directory, writable=False)
    async with storage(target(lake, protocol)) as store:
        with pytest.raises(StorageError) as error:
            await store.write(new_path(directory), DATA)
    assert (error.value.reason, error.value.refused) == (Reason.AUTH, True)
    assert error.value.said in ("PUT 403", "create: [3010] refused")


@pytest.mark.lake
async def test_refused_without_token(token_lake: LocalLake) -> None:
    """On a site that needs tokens, a read or a listing without one is refused over both
    protocols, and the same calls with a per-call read token succeed."""
    site: XrootdSite = token_lake.sites[0]
    assert token_lake.issuer is not None
    read = Secret(token_lake.issuer.mint(f"storage.read:{TEST_DIR}", site.audience, 300))
    path = f"{TEST_DIR}/fixture"
    site.put_file(path, DATA)
    for url in (site.root_url, site.davs_url):
        tgt = Target("SITE", "x", url, TEST_DIR, ca_dir=token_lake.pki.ca_dir)
        async with storage(tgt) as store:
            with pytest.raises(StorageError) as error:
                await store.read(path)
            assert error.value.refused, (url, error.value.outcome)
            with pytest.raises(StorageError) as error:
                await store.list(TEST_DIR)
            assert error.value.refused, (url, error.value.outcome)
            assert await store.read(path, read) == DATA
            assert "fixture" in await store.list(TEST_DIR, read)


@pytest.mark.parametrize("protocol", ["root", "https"])
async def test_dead_endpoint_is_connect(protocol: str) -> None:
    """A closed loopback port: connect, with a detail naming the failure."""
    (port,) = free_ports(1)
    tgt = Target("SITE", protocol, f"{protocol}://127.0.0.1:{port}", TEST_DIR)
    async with storage(tgt) as store:
        with pytest.raises(StorageError) as error:
            await store.stat(f"{TEST_DIR}/anything")
    assert error.value.reason is Reason.CONNECT
    assert error.value.outcome.detail


@pytest.mark.lake
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_past_deadline_is_timeout(lake: LocalLake, protocol: str) -> None:
    """A call whose deadline has passed ends at once with timeout."""
    async with storage(target(lake, protocol), seconds=0) as store:
        with pytest.raises(StorageError) as error:
            await store.read(f"{TEST_DIR}/anything")
    assert error.value.reason is Reason.TIMEOUT


# The failed-write cleanup rule (no server).

WROTE = passed()
WRITE_REFUSED = failed(Reason.AUTH, "PUT: 403 Forbidden")
WRITE_DEAD = failed(Reason.CONNECT, "connection refused")


@pytest.mark.parametrize(
    ("write", "delete", "status", "reason"),
    [
        (WROTE, None, Status.OK, Reason.NONE),
        (ATTEMPTED, None, Status.OK, Reason.NONE),  # a cut-off write left a file: deleted
        (ATTEMPTED, failed(Reason.NOT_FOUND, "DELETE: 404"), Status.OK, Reason.NONE),
        (WRITE_REFUSED, failed(Reason.AUTH, "DELETE: 403"), Status.OK, Reason.NONE),
        (WRITE_DEAD, failed(Reason.NOT_FOUND, "rm: no such file"), Status.OK, Reason.NONE),
        (WROTE, failed(Reason.NOT_FOUND, "DELETE: 404"), Status.CRITICAL, Reason.CLEANUP),
        (WROTE, failed(Reason.AUTH, "DELETE: 403"), Status.CRITICAL, Reason.CLEANUP),
        (WRITE_DEAD, failed(Reason.AUTH, "DELETE: 403"), Status.CRITICAL, Reason.CLEANUP),
        (WRITE_DEAD, failed(Reason.CONNECT, "refused"), Status.CRITICAL, Reason.CLEANUP),
        (ATTEMPTED, failed(Reason.TIMEOUT, "rm: expired"), Status.CRITICAL, Reason.CLEANUP),
    ],
    ids=[
        "deleted",
        "cut-off-deleted",
        "cut-off-missing",
        "refused-twice",
        "dead-then-missing",
        "wrote-missing",
        "wrote-refused",
        "dead-then-refused",
        "dead",
        "cut-off-timeout",
    ],
)
def test_delete_verdict(
    write: StepOutcome, delete: StepOutcome | None, status: Status, reason: Reason
) -> None:
    """Deleted: OK. After a failed write, not found (or refused after a refused write) means
    nothing of ours is there: OK. Anything else may leave our file: CRITICAL cleanup, the
    cause named first in the detail."""
    verdict = delete_verdict(write, delete)
    assert (verdict.status, verdict.reason) == (status, reason)
    if delete is not None and status is Status.CRITICAL:
        assert verdict.detail == f"{delete.reason}: {delete.detail}"
    elif delete is not None:
        assert verdict.detail.startswith("nothing to delete after the failed write")


async def test_delete_after_write_guards() -> None:
    """No write attempted: skipped, nothing deleted. A path not our own: internal, nothing
    deleted. Else the delete runs on the path."""
    deleted: list[str] = []

    async def delete(path: str) -> StepOutcome | None:
        deleted.append(path)
        return None

    async def exists(path: str) -> bool:
        return path not in deleted

    own = new_path()
    rule = functools.partial(delete_after_write, delete=delete, exists=exists, sweep_after=60)
    skipped = await rule(own, TEST_DIR, None)
    assert (skipped.status, skipped.detail) == (Status.SKIPPED, "nothing was written")
    foreign = await rule(f"{TEST_DIR}/data.root", TEST_DIR, WROTE)
    assert (foreign.status, foreign.reason) == (Status.CRITICAL, Reason.INTERNAL)
    assert deleted == []
    assert await rule(own, TEST_DIR, WROTE) == passed("deleted, verified gone")
    assert deleted == [own]


@pytest.mark.parametrize(
    ("answers", "status", "reason", "detail"),
    [
        ([False], Status.OK, Reason.NONE, "deleted, verified gone"),
        ([None], Status.OK, Reason.NONE, "deleted; not verified (the check after it failed)"),
        ([True, False], Status.OK, Reason.NONE, "deleted, verified gone"),  # async unlink
        ([True, True], Status.CRITICAL, Reason.DELETE_INEFFECTIVE, "still there"),
    ],
    ids=["gone", "unknown", "gone-after-settle", "still-there"],
)
async def test_verify_deleted(
    answers: list[bool | None], status: Status, reason: Reason, detail: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A delete the server called done is checked: gone passes; a check that cannot tell
    passes (the delete was acknowledged); still there after SETTLE_SECONDS is CRITICAL
    delete_ineffective, naming the sweep that retries it."""
    monkeypatch.setattr(cleanup, "SETTLE_SECONDS", 0.01)
    asked = iter(answers)

    async def exists(path: str) -> bool | None:
        return next(asked)

    verdict = await verify_deleted(new_path(), exists, sweep_after=7200)
    assert (verdict.status, verdict.reason) == (status, reason)
    assert detail in verdict.detail
    if reason is Reason.DELETE_INEFFECTIVE:
        assert "the sweep retries it after 7200 s" in verdict.detail
