"""The metric families lakeprobe exports, and which probe type exports which: one table,
FAMILIES_BY_PROBE_TYPE, read by the one renderer (exposition.py).

A family's samples come from a subject. Result families read a target's TargetState; their
text is rendered once per new result and cached. Token families read a configured token
source, at each scrape, since their value is the time left. A probe type's Row lists both:
its targets' result families, and the token families of the sources its targets use.

Every registered probe type gets the default row of its target kind (ENDPOINT_ROW, PAIR_ROW).
A probe family with series of its own (tape, integrity, network) adds a row to
FAMILIES_BY_PROBE_TYPE, reusing the shared families by object, e.g.

    "tape-recall": Row((*ENDPOINT_FAMILIES, *TAPE_FAMILIES)),

/metrics lists each family once, in the order families first appear in the table's rows,
result families before token families; a family without samples is left out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from lakeprobe.exporter.store import HISTOGRAMS, Histogram, TargetState
from lakeprobe.exporter.tokenexpiry import HELP as TOKEN_EXPIRY_HELP
from lakeprobe.exporter.tokenexpiry import NAME as TOKEN_EXPIRY_NAME
from lakeprobe.exporter.tokenexpiry import seconds_left
from lakeprobe.probes.core.outcome import Measurement, Status
from lakeprobe.probes.credentials.tokens import TokenSource
from lakeprobe.probes.registry import ENDPOINT_PROBE_TYPES, PAIR_PROBE_TYPES, PROBE_TYPES

# (extra label value or None, value) pairs for one subject. Tuples, not generators: this runs
# for every family of every target whose result changed, on the scrape path.
Samples = tuple[tuple[str | None, float], ...]
NONE: Samples = ()

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Family(Generic[S]):
    """One metric family: its header, and its samples for one subject (labelled by the
    subject's identity, plus `extra_label` when a subject has several samples)."""

    name: str
    kind: str  # "gauge", "counter" or "histogram" (samples: see _histogram)
    help: str
    samples: Callable[[S], Samples]
    extra_label: str | None = None


@dataclass(frozen=True, slots=True)
class One(Generic[S]):
    """The samples of a family with at most one, unlabelled, sample: `value` (None: no
    sample). The renderer calls `value` directly: most families are of this kind, and a
    scrape after every target ran renders each of them once per target."""

    value: Callable[[S], float | None]

    def __call__(self, subject: S) -> Samples:
        value = self.value(subject)
        return NONE if value is None else ((None, value),)


def _last(getter: Callable[[TargetState], float | None]) -> One[TargetState]:
    """From the last result: `getter` returns None while there is none (mypy checks that
    it guards `state.last`)."""
    return One(getter)


def _always(getter: Callable[[TargetState], float | None]) -> One[TargetState]:
    return One(getter)


def _measurement(measurement: Measurement) -> One[TargetState]:
    return _last(lambda s: s.last.measurements.get(measurement) if s.last else None)


def _reason(state: TargetState) -> Samples:
    return NONE if state.last is None else ((state.last.reason.value, 1.0),)


_STATUSES = (Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN)


def _runs_by_status(state: TargetState) -> Samples:
    return tuple((status.label, float(state.runs[status])) for status in _STATUSES)


def _failures_by_reason(state: TargetState) -> Samples:
    return tuple((reason.value, float(count)) for reason, count in sorted(state.failures.items()))


def _step_values(
    value: Callable[[Status, float], float | None],
) -> Callable[[TargetState], Samples]:
    def samples(state: TargetState) -> Samples:
        steps = state.last.steps if state.last is not None else ()
        numbers = ((step.name, value(step.status, step.duration_seconds)) for step in steps)
        return tuple((name, number) for name, number in numbers if number is not None)

    return samples


def _common(prefix: str) -> list[Family[TargetState]]:
    """The families endpoints and pairs share."""
    return [
        Family(
            prefix + "success",
            "gauge",
            "1 if the last run was OK or WARNING",
            _last(lambda s: float(s.last.success) if s.last else None),
        ),
        Family(
            prefix + "status",
            "gauge",
            "Last status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
            _last(lambda s: float(s.last.status) if s.last else None),
        ),
        Family(
            prefix + "reason",
            "gauge",
            "1 for the reason of the last run (none when OK)",
            _reason,
            "reason",
        ),
        Family(
            prefix + "duration_seconds",
            "gauge",
            "Duration of the last run",
            _last(lambda s: s.last.duration_seconds if s.last else None),
        ),
        Family(
            prefix + "last_run_timestamp_seconds",
            "gauge",
            "Start of the last run",
            _last(lambda s: s.last.started_at if s.last else None),
        ),
        Family(
            prefix + "interval_seconds",
            "gauge",
            "How often the target is probed",
            _always(lambda s: s.interval),
        ),
        Family(
            prefix + "consecutive_failures",
            "gauge",
            "Failed runs since the last success",
            _always(lambda s: float(s.consecutive_failures)),
        ),
    ]


ENDPOINT_FAMILIES: tuple[Family[TargetState], ...] = (
    *_common("lakeprobe_probe_"),
    Family(
        "lakeprobe_probe_last_success_timestamp_seconds",
        "gauge",
        "End of the last successful run",
        _always(lambda s: s.last_success_at),
    ),
    Family(
        "lakeprobe_probe_runs_total",
        "counter",
        "Completed runs by status",
        _runs_by_status,
        "status",
    ),
    Family(
        "lakeprobe_probe_failures_total",
        "counter",
        "Failed runs by reason",
        _failures_by_reason,
        "reason",
    ),
    Family(
        "lakeprobe_probe_step_success",
        "gauge",
        "1 if the step passed (absent when skipped)",
        _step_values(
            lambda st, _: None if st is Status.SKIPPED else float(st in (Status.OK, Status.WARNING))
        ),
        "step",
    ),
    Family(
        "lakeprobe_probe_step_status",
        "gauge",
        "Step status: 0..3 as probe_status, 4 SKIPPED",
        _step_values(lambda st, _: float(st)),
        "step",
    ),
    Family(
        "lakeprobe_probe_step_duration_seconds",
        "gauge",
        "Step duration in the last run",
        _step_values(lambda st, d: None if st is Status.SKIPPED else d),
        "step",
    ),
    *(
        Family(
            f"lakeprobe_probe_{m.value}",
            "gauge",
            f"Last run's {m.value.replace('_', ' ')}",
            _measurement(m),
        )
        for m in (
            Measurement.WRITE_BYTES,
            Measurement.READ_BYTES,
            Measurement.WRITE_THROUGHPUT,
            Measurement.READ_THROUGHPUT,
        )
    ),
)

# Per site pair: few series, since a lake of N sites has N*(N-1) pairs per protocol and mode.
PAIR_FAMILIES: tuple[Family[TargetState], ...] = (
    *_common("lakeprobe_transfer_"),
    Family(
        "lakeprobe_transfer_runs_total",
        "counter",
        "Completed transfer test runs",
        _always(lambda s: float(s.runs.total())),
    ),
    Family(
        "lakeprobe_transfer_failures_total",
        "counter",
        "Failed transfer test runs",
        _always(lambda s: float(s.failures.total())),
    ),
    Family(
        "lakeprobe_transfer_bytes",
        "gauge",
        "Bytes moved by the last copy",
        _measurement(Measurement.TRANSFER_BYTES),
    ),
    Family(
        "lakeprobe_transfer_throughput_bytes_per_second",
        "gauge",
        "Throughput of the last copy",
        _measurement(Measurement.TRANSFER_THROUGHPUT),
    ),
)


def _kept(measurement: Measurement) -> One[TargetState]:
    """The last value a result carried (store.KEPT_GROUPS), kept between runs without it."""
    return _always(lambda s: s.kept.get(measurement) if s.kept else None)


def _histogram(measurement: Measurement) -> Callable[[TargetState], Samples]:
    """A histogram family's samples: the cumulative bucket counts labelled by their `le`
    (extra_label), "+Inf" last (it is also the count), then the sum, unlabelled. All zero
    until the first observation, so rate() sees that one too."""
    bounds = HISTOGRAMS[measurement]
    les = (*(repr(float(bound)) for bound in bounds), "+Inf")
    empty = Histogram.empty(bounds)

    def samples(state: TargetState) -> Samples:
        found = state.histograms.get(measurement) if state.histograms else None
        histogram = empty if found is None else found
        cumulative, running = [], 0
        for count in histogram.counts:
            running += count
            cumulative.append(float(running))
        return (*zip(les, cumulative, strict=True), (None, histogram.total))

    return samples


_LOCALITIES = (
    ("disk", Measurement.TAPE_FILES_DISK),
    ("tape", Measurement.TAPE_FILES_TAPE),
    ("disk_and_tape", Measurement.TAPE_FILES_DISK_AND_TAPE),
    ("lost", Measurement.TAPE_FILES_LOST),
    ("none", Measurement.TAPE_FILES_NONE),
    ("unavailable", Measurement.TAPE_FILES_UNAVAILABLE),
)


def _files_by_locality(state: TargetState) -> Samples:
    kept = state.kept
    if not kept:
        return NONE
    return tuple((label, kept[m]) for label, m in _LOCALITIES if m in kept)


# The tape-recall probe's own series (probes/tape). Recall numbers come only from the run that
# saw a recall complete: the histogram counts each once, the last_* gauges keep the latest.
TAPE_FAMILIES: tuple[Family[TargetState], ...] = (
    Family(
        "lakeprobe_tape_recall_duration_seconds",
        "histogram",
        "Recalls from tape, stage submitted to file online",
        _histogram(Measurement.TAPE_RECALL),
        "le",
    ),
    Family(
        "lakeprobe_tape_last_recall_seconds",
        "gauge",
        "The last completed recall, stage submitted to file online",
        _kept(Measurement.TAPE_RECALL),
    ),
    Family(
        "lakeprobe_tape_last_recall_queue_seconds",
        "gauge",
        "The last completed recall, stage submitted to started by the server",
        _kept(Measurement.TAPE_QUEUE),
    ),
    Family(
        "lakeprobe_tape_outstanding_requests",
        "gauge",
        "Stage requests submitted and not yet online, failed or cancelled",
        _measurement(Measurement.TAPE_OUTSTANDING),
    ),
    Family(
        "lakeprobe_tape_oldest_outstanding_seconds",
        "gauge",
        "Age of the oldest outstanding stage request (0: none)",
        _measurement(Measurement.TAPE_OLDEST_OUTSTANDING),
    ),
    Family(
        "lakeprobe_tape_files",
        "gauge",
        "Reference files by locality at the last check",
        _files_by_locality,
        "locality",
    ),
    Family(
        "lakeprobe_tape_archive_lag_seconds",
        "gauge",
        "The last archive check's canary, written to seen on tape",
        _kept(Measurement.TAPE_ARCHIVE_LAG),
    ),
    Family(
        "lakeprobe_tape_archive_pending_seconds",
        "gauge",
        "Age of the canary not yet on tape (0: none pending)",
        _measurement(Measurement.TAPE_ARCHIVE_PENDING),
    ),
)


_CANARY_STATES = (
    ("ok", Measurement.FIXITY_CANARIES_OK),
    ("corrupted", Measurement.FIXITY_CANARIES_CORRUPTED),
    ("stale", Measurement.FIXITY_CANARIES_STALE),
    ("lost", Measurement.FIXITY_CANARIES_LOST),
    ("unverified", Measurement.FIXITY_CANARIES_UNVERIFIED),
)


def _by_label(
    labels: tuple[tuple[str, Measurement], ...],
) -> Callable[[TargetState], Samples]:
    """The last result's measurements among `labels`, each labelled by its own value."""

    def samples(state: TargetState) -> Samples:
        found = state.last.measurements if state.last is not None else None
        if not found:
            return NONE
        return tuple((label, found[m]) for label, m in labels if m in found)

    return samples


def _labelled(measurement: Measurement) -> Callable[[TargetState], Samples]:
    """The last result's per-label values of `measurement` (ProbeResult.labelled), as kept."""

    def samples(state: TargetState) -> Samples:
        found = state.last.labelled if state.last is not None else None
        return found.get(measurement, NONE) if found else NONE

    return samples


# The fixity probe's own series (probes/integrity/fixity.py): counts per endpoint, and each
# canary's last verification, so a canary no run reaches shows.
FIXITY_FAMILIES: tuple[Family[TargetState], ...] = (
    Family(
        "lakeprobe_fixity_canaries",
        "gauge",
        "Fixity canaries by the state their last verification found",
        _by_label(_CANARY_STATES),
        "state",
    ),
    Family(
        "lakeprobe_fixity_oldest_verification_timestamp_seconds",
        "gauge",
        "Last verification of the least recently verified canary (its writing, if never)",
        _measurement(Measurement.FIXITY_OLDEST_VERIFIED),
    ),
    Family(
        "lakeprobe_fixity_canary_verification_timestamp_seconds",
        "gauge",
        "Last verification of each canary, by <index>-<size> (its writing, if never)",
        _labelled(Measurement.FIXITY_CANARY_VERIFIED),
        "canary",
    ),
)

# Corruption injection layers (probes/integrity/injection.py) and their measurements.
_LAYERS = (
    ("content-md5", Measurement.INJECTION_CONTENT_MD5),
    ("digest", Measurement.INJECTION_DIGEST),
    ("content-digest", Measurement.INJECTION_CONTENT_DIGEST),
    ("xrdcp-cksum", Measurement.INJECTION_XRDCP_CKSUM),
    ("tpc-cksum", Measurement.INJECTION_TPC_CKSUM),
    ("copy-digest", Measurement.INJECTION_COPY_DIGEST),
)

# The corruption probe's own series: one verdict per layer the last run got to.
CORRUPTION_FAMILIES: tuple[Family[TargetState], ...] = (
    Family(
        "lakeprobe_corruption_verdict",
        "gauge",
        "Last verdict per layer: 0 detected, 1 undetected, 2 left behind, 3 error",
        _by_label(_LAYERS),
        "layer",
    ),
)

_NETWORK_HELP = (
    (Measurement.NETWORK_THROUGHPUT, "Throughput of the newest measurement in the window"),
    (Measurement.NETWORK_RETRANSMITS, "TCP retransmits of the newest throughput measurement"),
    (Measurement.NETWORK_LOSS, "Packet loss ratio of the newest latency measurement"),
    (Measurement.NETWORK_LATENCY, "Median latency of the newest latency measurement"),
    (Measurement.NETWORK_HOPS, "Hops of the newest traceroute"),
    (Measurement.NETWORK_MEASURED_AT, "Unix time of the newest measurement used"),
)

# Per site pair and IP version (probes/network): the network path under the transfer matrix.
# A measurement comes from the last run only: a pair with none in the window (stale) has no
# throughput, never a zero or a value kept from an older run.
NETWORK_FAMILIES: tuple[Family[TargetState], ...] = (
    *_common("lakeprobe_network_"),
    *(Family(f"lakeprobe_{m.value}", "gauge", text, _measurement(m)) for m, text in _NETWORK_HELP),
)


def _token_expiry(source: TokenSource) -> Samples:
    left = seconds_left(source)
    return NONE if left is None else ((source.kind, left),)


# One series per configured token source, labelled by its TokenKey and `source` (its kind).
TOKEN_EXPIRY: Family[TokenSource] = Family(
    TOKEN_EXPIRY_NAME, "gauge", TOKEN_EXPIRY_HELP, _token_expiry, "source"
)


@dataclass(frozen=True, slots=True, eq=False)  # compared by identity: cheap on the scrape path
class Row:
    """What one probe type exports: per target, `results`; per token source its targets use,
    `tokens`."""

    results: tuple[Family[TargetState], ...]
    tokens: tuple[Family[TokenSource], ...] = (TOKEN_EXPIRY,)


ENDPOINT_ROW = Row(ENDPOINT_FAMILIES)
PAIR_ROW = Row(PAIR_FAMILIES)
NETWORK_ROW = Row(NETWORK_FAMILIES)  # the network types (ProbeType.family NETWORK)
# Probe types with families of their own.
OWN_ROWS: dict[str, Row] = {
    "tape-recall": Row((*ENDPOINT_FAMILIES, *TAPE_FAMILIES)),
    "fixity": Row((*ENDPOINT_FAMILIES, *FIXITY_FAMILIES)),
    "corruption": Row((*ENDPOINT_FAMILIES, *CORRUPTION_FAMILIES)),
    "perfsonar": NETWORK_ROW,
    "iperf3": NETWORK_ROW,
}

# The one table: probe type name -> its row. Built from the registry, so a new probe type
# gets its kind's default; one with families of its own overrides it from OWN_ROWS (for
# registered types only: the table lists exactly the registry's).
FAMILIES_BY_PROBE_TYPE: dict[str, Row] = {
    **dict.fromkeys(ENDPOINT_PROBE_TYPES, ENDPOINT_ROW),
    **dict.fromkeys(PAIR_PROBE_TYPES, PAIR_ROW),
    **{name: row for name, row in OWN_ROWS.items() if name in PROBE_TYPES},
}
