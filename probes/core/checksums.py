"""What an endpoint's `checksums` policy makes of a checksum the server does not report.

- `required`: a missing checksum is a fault, CRITICAL `checksum_unavailable`;
- `optional` (the default): a capability finding, WARNING `checksum_unavailable` (the
  data-path steps still compare bytes or sizes, so nothing else is hidden);
- `none`: the endpoint has no checksums and everyone knows: checksum-only steps are SKIPPED
  and no digest is asked for.

Whatever the policy, a missing checksum never blocks the steps after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome

if TYPE_CHECKING:
    from lakeprobe.probes.core.state import StateStore
    from lakeprobe.probes.core.target import Target

ChecksumPolicy = Literal["required", "optional", "none"]
POLICIES: tuple[ChecksumPolicy, ...] = ("required", "optional", "none")
DEFAULT_POLICY: ChecksumPolicy = "optional"


def unavailable(policy: ChecksumPolicy, how: str, checked: str = "") -> StepOutcome:
    """The outcome of a step that got no adler32 from the server (`how`: what it answered;
    `checked`: what the step verified instead, e.g. the size). Under `none` nothing was asked."""
    done = f"; {checked}" if checked else ""
    if policy == "none":
        return StepOutcome(Status.OK, Reason.NONE, f"checksum not asked (checksums: none){done}")
    detail = f"no adler32 ({how}){done}"
    if policy == "required":
        return StepOutcome(Status.CRITICAL, Reason.CHECKSUM_UNAVAILABLE, f"{detail}; required")
    return StepOutcome(Status.WARNING, Reason.CHECKSUM_UNAVAILABLE, detail)


def not_asked() -> StepOutcome:
    """A checksum-only step on an endpoint configured `checksums: none`."""
    return StepOutcome(Status.SKIPPED, Reason.NONE, "checksums: none for this endpoint")


def blocks(outcome: StepOutcome) -> bool:
    """For StepRecorder.run(blocks=...): a missing checksum, even a required one, does not
    skip the data-path steps after it; any other failure does."""
    return outcome.reason is not Reason.CHECKSUM_UNAVAILABLE


def both_have(targets: Iterable[Target]) -> bool:
    """A copy engine may compare checksums at both ends: none is `checksums: none`."""
    return all(target.checksums != "none" for target in targets)


# State scope: copies whose engine (gfal2) found an end that computes no adler32, and when.
# Such a copy is done twice (with the comparison, then without: clients/gfalcopy.py); for
# RECHECK_SECONDS after, the engine is not asked to compare, so each run copies once.
ENGINE_FOUND_NONE = "engine-found-no-checksum"
RECHECK_SECONDS = 3600.0


def engine_compares(state: StateStore, targets: Iterable[Target]) -> bool:
    """Whether a copy engine should compare adler32 at both ends: no end is `checksums:
    none`, and the engine did not find one without checksums in the last RECHECK_SECONDS."""
    ends = list(targets)
    found = state.get(ENGINE_FOUND_NONE, _key(ends))
    recent = found is not None and time.time() - found < RECHECK_SECONDS
    return both_have(ends) and not recent


def engine_found_none(state: StateStore, targets: Iterable[Target]) -> None:
    """The engine could not compare checksums for a copy between these ends: remember it."""
    state.put(ENGINE_FOUND_NONE, _key(list(targets)), time.time())


def _key(ends: list[Target]) -> str:
    return " -> ".join(target.url for target in ends)
