"""Parameters shared by the probes that write test files and sweep their leftovers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from lakeprobe.probes.core.context import ProbeParams
from lakeprobe.probes.core.paramspec import Doc, Gt, Le

MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class SweepParams(ProbeParams):
    """When leftover test files count as stale (probes/common/sweep.py)."""

    sweep_after_seconds: Annotated[
        float, Gt(0), Doc("delete leftover test files of this host older than this")
    ] = 7200.0
    sweep_foreign_after_seconds: Annotated[
        float,
        Gt(0),
        Doc(
            "delete leftover test files of other probe hosts (renamed hosts, restarted pods) "
            "older than this; longer than sweep_after_seconds"
        ),
    ] = 86400.0

    def __post_init__(self) -> None:
        if self.sweep_foreign_after_seconds <= self.sweep_after_seconds:
            raise ValueError(
                f"sweep_foreign_after_seconds ({self.sweep_foreign_after_seconds:g}) must be "
                f"longer than sweep_after_seconds ({self.sweep_after_seconds:g})"
            )


@dataclass(frozen=True, kw_only=True)
class TestFileParams(SweepParams):
    """Parameters of probes that write, read and delete a test file."""

    file_size_bytes: Annotated[int, Gt(0), Le(1024 * MIB), Doc("test file size")] = MIB
