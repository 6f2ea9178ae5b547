"""Render probe results for people (a per-step table) and for machines (JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakeprobe.probes.core.outcome import ProbeResult, Status
from lakeprobe.probes.credentials.secrets import redact

if TYPE_CHECKING:  # a `run` builds its jobs without the planner's imports
    from lakeprobe.config.plan import ProbeJob

_COLUMNS = ("STEP", "STATUS", "TIME", "REASON", "DETAIL")


def text_report(job: ProbeJob, result: ProbeResult) -> str:
    head = (
        f"{job.key.describe()} {job.target.display_url}: {result.status.name}"
        f"{'' if result.success else f' ({result.reason.value})'}"
        f" in {result.duration_seconds:.2f} s"
    )
    rows = [
        (
            step.name,
            step.status.name,
            "-" if step.status is Status.SKIPPED else f"{step.duration_seconds:.3f} s",
            "-" if step.reason.value == "none" else step.reason.value,
            redact(step.detail),
        )
        for step in result.steps
    ]
    widths = [max(len(str(r[i])) for r in [_COLUMNS, *rows]) for i in range(4)]
    lines = [head]
    for row in [_COLUMNS, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  " + "  ".join([*cells, row[4]]).rstrip())
    for measurement, value in result.measurements.items():
        lines.append(f"  {measurement.value} = {value:.6g}")
    if not result.success and result.hint:
        lines.append(f"  hint: {result.hint}")
    return "\n".join(lines)


def json_record(job: ProbeJob, result: ProbeResult) -> dict[str, Any]:
    return {
        **job.key.labels(),
        "url": job.target.display_url,
        "status": result.status.name,
        "exit_code": int(result.status),
        "reason": result.reason.value,
        "hint": result.hint if not result.success else "",
        "started_at": result.started_at,
        "duration_seconds": round(result.duration_seconds, 6),
        "measurements": {m.value: v for m, v in result.measurements.items()},
        "labelled": {m.value: dict(pairs) for m, pairs in result.labelled.items()},
        "steps": [
            {
                "name": s.name,
                "status": s.status.name,
                "duration_seconds": round(s.duration_seconds, 6),
                "reason": s.reason.value,
                "detail": redact(s.detail),
                "critical": s.critical,
            }
            for s in result.steps
        ],
    }


def json_report(records: list[dict[str, Any]]) -> str:
    import json  # only `--json` needs it

    return json.dumps(records, indent=2)
