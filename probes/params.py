"""Parameters shared by the probes that write a test file."""

from __future__ import annotations

from pydantic import Field

from lakeprobe.probes.context import ProbeParams

MIB = 1024 * 1024


class TestFileParams(ProbeParams):
    file_size_bytes: int = Field(MIB, gt=0, le=1024 * MIB, description="test file size")
    sweep_after_seconds: float = Field(
        7200.0, gt=0, description="delete leftover test files of this host older than this"
    )
