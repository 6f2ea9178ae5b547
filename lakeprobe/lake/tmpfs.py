"""A small tmpfs as a site's data directory: a disk that fills up, for storage-full tests.

Mounting needs root (CAP_SYS_ADMIN); callers turn a MountError into a skip or, in CI, a
failure.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

_FILL_CHUNK = 64 * 1024


class MountError(RuntimeError):
    """The tmpfs could not be mounted (not root, no CAP_SYS_ADMIN, no mount binary)."""


def mount_tmpfs(path: Path, size_bytes: int, uid: int, gid: int) -> None:
    """Mount a tmpfs of `size_bytes` (rounded up to pages by the kernel) on `path`, its root
    owned by uid:gid, mode 0755."""
    if size_bytes <= 0:
        raise ValueError(f"tmpfs size must be positive: {size_bytes}")
    options = f"size={size_bytes},mode=0755,uid={uid},gid={gid}"
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        stderr = getattr(error, "stderr", "") or ""
        raise MountError(f"cannot mount a tmpfs on {path}: {error} {stderr}".strip()) from None
    log.info("tmpfs of %d bytes mounted on %s", size_bytes, path)


def unmount(path: Path) -> None:
    """Unmount `path` if something is mounted there; lazily, so that a server still holding a
    file open does not keep the mount (and the test directory) alive."""
    if not os.path.ismount(path):
        return
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10, check=True)
    log.info("tmpfs on %s unmounted", path)


def fill(directory: Path, uid: int, gid: int) -> Path:
    """Write zeros into a new file `directory/filler` until the file system is full (ENOSPC);
    the file is owned by uid:gid. Returns its path."""
    path = directory / "filler"
    block = bytes(_FILL_CHUNK)
    with path.open("wb", buffering=0) as handle:
        for size in (_FILL_CHUNK, 4096, 1):  # big blocks, then the last partial pages
            try:
                while True:
                    handle.write(block[:size])
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
    os.chown(path, uid, gid)
    return path
