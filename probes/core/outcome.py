"""The values a probe produces: status, reason, per-step results, measurements."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


class Status(enum.IntEnum):
    """Nagios-style status; the integer is the plugin exit code. SKIPPED is for steps only."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3
    SKIPPED = 4

    @property
    def severity(self) -> int:
        """Rank for the rollup: CRITICAL outranks UNKNOWN, which outranks WARNING."""
        return _SEVERITY[self]

    @property
    def label(self) -> str:
        return self.name.lower()


_SEVERITY = {
    Status.SKIPPED: -1,
    Status.OK: 0,
    Status.WARNING: 1,
    Status.UNKNOWN: 2,
    Status.CRITICAL: 3,
}


class Reason(enum.StrEnum):
    """Why a step or probe did not succeed. A closed set: safe as a metric label."""

    NONE = "none"
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    SLOW = "slow"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    CONTENT_MISMATCH = "content_mismatch"
    SIZE_MISMATCH = "size_mismatch"
    UNEXPECTED_STATUS = "unexpected_status"
    SERVER_ERROR = "server_error"
    NO_SPACE = "no_space"
    PROTOCOL_ERROR = "protocol_error"
    CHECKSUM_UNAVAILABLE = "checksum_unavailable"
    CREDENTIAL = "credential"
    ISSUER = "issuer"
    CLEANUP = "cleanup"
    DELETE_INEFFECTIVE = "delete_ineffective"
    SOURCE_MISSING = "source_missing"
    DESTINATION_ERROR = "destination_error"
    TPC_FAILURE = "tpc_failure"
    STALL = "stall"
    AUTHZ_VIOLATION = "authz_violation"
    # Tape (probes/tape): the WLCG Tape REST API's failure classes, and XRootD prepare's.
    DISCOVERY_FAILED = "discovery_failed"
    STAGE_REJECTED = "stage_rejected"
    STAGE_TIMEOUT = "stage_timeout"
    FILE_FAILED = "file_failed"
    PATH_MISMATCH = "path_mismatch"
    LOCALITY_LOST = "locality_lost"
    LOCALITY_UNAVAILABLE = "locality_unavailable"
    RELEASE_FAILED = "release_failed"
    ARCHIVE_TIMEOUT = "archive_timeout"
    NO_OFFLINE_FILE = "no_offline_file"
    # Fixity canaries (probes/integrity/fixity.py).
    CANARY_CORRUPTED = "canary_corrupted"
    CHECKSUM_STALE = "checksum_stale"
    CANARY_LOST = "canary_lost"
    # Corruption injection (probes/integrity/injection.py).
    CORRUPTION_UNDETECTED = "corruption_undetected"
    CORRUPT_LEFT_BEHIND = "corrupt_left_behind"
    # Network (probes/network): perfSONAR archives and iperf3.
    MEASUREMENT_STALE = "measurement_stale"
    THROUGHPUT_LOW = "throughput_low"
    PACKET_LOSS = "packet_loss"
    MEASUREMENT_FAILED = "measurement_failed"
    ARCHIVE_CLOSED = "archive_closed"
    ARCHIVE_MALFORMED = "archive_malformed"
    SERVER_BUSY = "server_busy"
    INTERNAL = "internal"


# What servers and client libraries say for a full disk, pool or quota, whatever the
# protocol: strerror(ENOSPC) and XRootD's "no space left on device", dCache's "No space
# available", HTTP 507's phrase "Insufficient Storage", strerror(EDQUOT) "quota exceeded".
NO_SPACE_TEXT = re.compile(
    r"no (free )?space (left|available)|not enough (free )?space|insufficient (storage|space)"
    r"|out of space|quota exceeded",
    re.IGNORECASE,
)


HINTS: dict[Reason, str] = {
    Reason.DNS: "the host name does not resolve: check the endpoint URL and DNS",
    Reason.CONNECT: "nothing answered on that port: is the service up and reachable?",
    Reason.TLS: "TLS handshake or verification failed: host certificate, CA directory?",
    Reason.AUTH: "refused: valid credential for this path? is the directory writable?",
    Reason.NOT_FOUND: "the path does not exist: test directory or reference file configured?",
    Reason.TIMEOUT: "no answer before the deadline: server overloaded, hung or firewalled?",
    Reason.SLOW: "the step succeeded but took longer than its warning threshold",
    Reason.CHECKSUM_MISMATCH: "server checksum differs from the data: silent corruption?",
    Reason.CONTENT_MISMATCH: "bytes read back differ from bytes written",
    Reason.SIZE_MISMATCH: "stored size differs from the bytes written",
    Reason.UNEXPECTED_STATUS: "the server answered with a status the protocol does not expect",
    Reason.SERVER_ERROR: "the server reported an internal error (5xx or storage error)",
    Reason.NO_SPACE: "storage full: no space left (disk, pool or quota) where the file is written",
    Reason.PROTOCOL_ERROR: "the answer could not be understood",
    Reason.CHECKSUM_UNAVAILABLE: "the server did not report an adler32 checksum",
    Reason.CREDENTIAL: "the configured credential could not be loaded (token file?)",
    Reason.ISSUER: "the token issuer could not be reached or refused a token: not the endpoint",
    Reason.CLEANUP: "the probe could not delete its own test file",
    Reason.DELETE_INEFFECTIVE: "the delete reported success but the file is still there",
    Reason.SOURCE_MISSING: "the copy's source file is missing or unreadable at the source",
    Reason.DESTINATION_ERROR: "the destination refused or failed to store the copy",
    Reason.TPC_FAILURE: "the third-party copy failed: see the remote reason in the detail",
    Reason.STALL: "the transfer made no progress for longer than the stall limit",
    Reason.AUTHZ_VIOLATION: "the endpoint allowed what the token must not permit: security hole",
    Reason.DISCOVERY_FAILED: "no valid /.well-known/wlcg-tape-rest-api: Tape REST API not found",
    Reason.STAGE_REJECTED: "the endpoint refused the stage (bring-online) request",
    Reason.STAGE_TIMEOUT: "a recall is taking longer than the promised time to online",
    Reason.FILE_FAILED: "the endpoint reports the recall failed or cancelled: tape or drive?",
    Reason.PATH_MISMATCH: "the status answer names paths never requested: FTS fails on it",
    Reason.LOCALITY_LOST: "the file is lost: on neither disk nor tape",
    Reason.LOCALITY_UNAVAILABLE: "the file's tape copy is unavailable now (tape or library down?)",
    Reason.RELEASE_FAILED: "release or evict of the recalled file failed: disk stays pinned",
    Reason.ARCHIVE_TIMEOUT: "a file written to the tape class is not on tape within the promise",
    Reason.NO_OFFLINE_FILE: "every reference file is on disk and eviction is not allowed",
    Reason.CANARY_CORRUPTED: "a fixity canary's bytes changed at rest: silent corruption",
    Reason.CHECKSUM_STALE: "the server's stored checksum disagrees with the file's bytes",
    Reason.CANARY_LOST: "a fixity canary is gone: lost at rest (re-created on the next run)",
    Reason.CORRUPTION_UNDETECTED: "an upload with a wrong declared checksum was stored as intact",
    Reason.CORRUPT_LEFT_BEHIND: "a corrupt upload was rejected, yet the file was left behind",
    Reason.MEASUREMENT_STALE: "no network measurement of this pair in the look-back window",
    Reason.THROUGHPUT_LOW: "network throughput between the sites is below the threshold",
    Reason.PACKET_LOSS: "packet loss between the sites is above the threshold",
    Reason.MEASUREMENT_FAILED: "the newest network test of this pair failed (see its error)",
    Reason.ARCHIVE_CLOSED: "the perfSONAR archive refused us (401/403): credentials or ACL",
    Reason.ARCHIVE_MALFORMED: "the perfSONAR archive answered something unparsable",
    Reason.SERVER_BUSY: "the iperf3 server stayed busy with another test through every retry",
    Reason.INTERNAL: "a bug in lakeprobe: see the daemon log",
}

# Capability findings: the server lacks a feature, nothing is broken. They never name a run
# whose steps also found a fault (StepRecorder.result); every other reason is a fault.
CAPABILITY_REASONS: frozenset[Reason] = frozenset(
    {Reason.CHECKSUM_UNAVAILABLE, Reason.NO_OFFLINE_FILE, Reason.CORRUPTION_UNDETECTED}
)


class Measurement(enum.StrEnum):
    """Numbers a probe may report; each becomes one metric (name = value + unit)."""

    WRITE_BYTES = "write_bytes"
    READ_BYTES = "read_bytes"
    WRITE_THROUGHPUT = "write_throughput_bytes_per_second"
    READ_THROUGHPUT = "read_throughput_bytes_per_second"
    TRANSFER_BYTES = "transfer_bytes"
    TRANSFER_THROUGHPUT = "transfer_throughput_bytes_per_second"
    FIRST_MARKER = "time_to_first_marker_seconds"
    # Tape (probes/tape). A recall's numbers appear only in the run that saw it complete.
    TAPE_RECALL = "tape_recall_seconds"  # stage submitted -> file online
    TAPE_QUEUE = "tape_recall_queue_seconds"  # submitted -> the server started it
    TAPE_OUTSTANDING = "tape_outstanding_requests"  # every run
    TAPE_OLDEST_OUTSTANDING = "tape_oldest_outstanding_seconds"  # every run, 0 when none
    TAPE_ARCHIVE_LAG = "tape_archive_lag_seconds"  # written -> on tape, when seen on tape
    TAPE_ARCHIVE_PENDING = "tape_archive_pending_seconds"  # every run with a canary, else 0
    # Reference files by locality, at each run's check (labels of lakeprobe_tape_files).
    TAPE_FILES_DISK = "tape_files_disk"
    TAPE_FILES_TAPE = "tape_files_tape"
    TAPE_FILES_DISK_AND_TAPE = "tape_files_disk_and_tape"
    TAPE_FILES_LOST = "tape_files_lost"
    TAPE_FILES_NONE = "tape_files_none"
    TAPE_FILES_UNAVAILABLE = "tape_files_unavailable"
    # Fixity canaries by the state their last verification found (probes/integrity).
    FIXITY_CANARIES_OK = "fixity_canaries_ok"
    FIXITY_CANARIES_CORRUPTED = "fixity_canaries_corrupted"
    FIXITY_CANARIES_STALE = "fixity_canaries_stale"
    FIXITY_CANARIES_LOST = "fixity_canaries_lost"
    FIXITY_CANARIES_UNVERIFIED = "fixity_canaries_unverified"
    # Unix time of the least recently verified canary: time() minus it grows while no run
    # verifies anything, even when runs stop.
    FIXITY_OLDEST_VERIFIED = "fixity_oldest_verification_timestamp_seconds"
    # Per canary (ProbeResult.labelled, label "<index>-<size>"): its last verification's
    # unix time, its writing if never verified.
    FIXITY_CANARY_VERIFIED = "fixity_canary_verification_timestamp_seconds"
    # Corruption injection, per layer: the Verdict's value (0 detected, 1 undetected,
    # 2 left behind, 3 error), only for the layers a run got to.
    INJECTION_CONTENT_MD5 = "injection_content_md5"
    INJECTION_DIGEST = "injection_digest"
    INJECTION_CONTENT_DIGEST = "injection_content_digest"
    INJECTION_XRDCP_CKSUM = "injection_xrdcp_cksum"
    INJECTION_TPC_CKSUM = "injection_tpc_cksum"
    INJECTION_COPY_DIGEST = "injection_copy_digest"
    # Network, per site pair and IP version (probes/network), each only when measured.
    NETWORK_THROUGHPUT = "network_throughput_bits_per_second"
    NETWORK_RETRANSMITS = "network_retransmits"
    NETWORK_LOSS = "network_packet_loss_ratio"
    NETWORK_LATENCY = "network_latency_seconds"
    NETWORK_HOPS = "network_hop_count"
    # Unix time of the newest measurement used: time() minus it is its age.
    NETWORK_MEASURED_AT = "network_measurement_timestamp_seconds"


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step of a run: its verdict, why, and how long it took."""

    name: str
    status: Status
    duration_seconds: float
    reason: Reason = Reason.NONE
    detail: str = ""  # free text: logs, CLI and UI only, never a label
    critical: bool = True

    @property
    def ran(self) -> bool:
        return self.status is not Status.SKIPPED


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One run of a probe against a target: the verdict, its steps and measurements."""

    status: Status
    reason: Reason
    steps: tuple[StepResult, ...]
    duration_seconds: float
    started_at: float  # unix time
    measurements: dict[Measurement, float] = field(default_factory=dict)
    detail: str = ""
    # Measurements with one value per bounded label value (e.g. per canary): label, value.
    labelled: dict[Measurement, tuple[tuple[str, float], ...]] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.status in (Status.OK, Status.WARNING)

    @property
    def hint(self) -> str:
        return HINTS.get(self.reason, "")


def failed(reason: Reason, detail: str) -> StepOutcome:
    return StepOutcome(Status.CRITICAL, reason, detail)


def passed(detail: str = "") -> StepOutcome:
    return StepOutcome(Status.OK, Reason.NONE, detail)


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What one step's code returns; the recorder adds the timing."""

    status: Status
    reason: Reason = Reason.NONE
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (Status.OK, Status.WARNING)
