"""Parameters shared by the probes that write test files and sweep their leftovers."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from lakeprobe.probes.core.context import ProbeParams

MIB = 1024 * 1024


class SweepParams(ProbeParams):
    """When leftover test files count as stale (probes/common/sweep.py)."""

    sweep_after_seconds: float = Field(
        7200.0, gt=0, description="delete leftover test files of this host older than this"
    )
    sweep_foreign_after_seconds: float = Field(
        86400.0,
        gt=0,
        allow_inf_nan=False,
        description="delete leftover test files of other probe hosts (renamed hosts, "
        "restarted pods) older than this; longer than sweep_after_seconds",
    )

    @model_validator(mode="after")
    def _foreign_waits_longer(self) -> Self:
        if self.sweep_foreign_after_seconds <= self.sweep_after_seconds:
            raise ValueError(
                f"sweep_foreign_after_seconds ({self.sweep_foreign_after_seconds:g}) must be "
                f"longer than sweep_after_seconds ({self.sweep_after_seconds:g})"
            )
        return self


class TestFileParams(SweepParams):
    file_size_bytes: int = Field(MIB, gt=0, le=1024 * MIB, description="test file size")
