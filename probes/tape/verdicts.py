"""How the tape-recall probe judges what it sees: ages against the endpoint's promises,
server timestamps against its own clock, the reference files' localities."""

from __future__ import annotations

from lakeprobe.probes.core.outcome import Measurement, Reason, Status, StepOutcome, failed, passed
from lakeprobe.probes.tape.backends import FileRecall, Locality
from lakeprobe.probes.tape.ledger import Request

LOCALITY_COUNTS = {
    Locality.DISK: Measurement.TAPE_FILES_DISK,
    Locality.TAPE: Measurement.TAPE_FILES_TAPE,
    Locality.DISK_AND_TAPE: Measurement.TAPE_FILES_DISK_AND_TAPE,
    Locality.LOST: Measurement.TAPE_FILES_LOST,
    Locality.NONE: Measurement.TAPE_FILES_NONE,
    Locality.UNAVAILABLE: Measurement.TAPE_FILES_UNAVAILABLE,
}
ON_TAPE = frozenset({Locality.TAPE, Locality.DISK_AND_TAPE})
# Server timestamps are compared with our clock: whole seconds (EOS, StoRM) and a little skew.
SERVER_CLOCK_SLACK = 2.0


def by_limits(age: float, warning: float, critical: float, reason: Reason, what: str
              ) -> StepOutcome:  # fmt: skip
    if age > critical:
        return failed(reason, f"{what} (critical above {critical:g} s)")
    if age > warning:
        return StepOutcome(Status.WARNING, reason, f"{what} (warning above {warning:g} s)")
    return passed(what)


def server_time(value: float | None, submitted: float, now: float) -> float | None:
    """A server's timestamp of this request, if plausible: not before the stage was sent
    (less the slack), not after this poll (plus the slack); None otherwise."""
    if value is None or not submitted - SERVER_CLOCK_SLACK <= value <= now + SERVER_CLOCK_SLACK:
        return None
    return value


def online_at(request: Request, recall: FileRecall, now: float) -> float:
    """When the file came online: the server's time if it gives one, else this poll's; never
    before the last poll that found it pending, never after this one. A whole-second
    timestamp (EOS, StoRM) stands for its whole second: its end is taken."""
    finished = server_time(recall.finished_at, request.submitted_at, now)
    if finished is None:
        return now
    if finished == int(finished):
        finished += 1.0
    return min(max(finished, request.pending_at or request.submitted_at), now)


def locality_outcome(localities: dict[str, Locality]) -> StepOutcome:
    lost = [p for p, v in localities.items() if v is Locality.LOST]
    if lost:
        return failed(Reason.LOCALITY_LOST, f"lost: {', '.join(lost)}")
    missing = [p for p, v in localities.items() if v is Locality.NONE]
    if missing:
        return failed(Reason.NOT_FOUND, f"no such file: {', '.join(missing)}")
    unavailable = [p for p, v in localities.items() if v is Locality.UNAVAILABLE]
    if unavailable:
        detail = f"unavailable: {', '.join(unavailable)}"
        return StepOutcome(Status.WARNING, Reason.LOCALITY_UNAVAILABLE, detail)
    counts: dict[str, int] = {}
    for value in localities.values():
        counts[value.value] = counts.get(value.value, 0) + 1
    return passed(", ".join(f"{n} {name}" for name, n in sorted(counts.items())))
