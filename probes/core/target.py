"""What a probe runs against: one storage endpoint of one site."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lakeprobe.probes.core.checksums import DEFAULT_POLICY, ChecksumPolicy
from lakeprobe.probes.core.paths import path_problem
from lakeprobe.probes.credentials.tokens import TokenSource

# URL scheme -> the `protocol` label. One place, used by config validation and the registry.
# iperf3://host[:port] is an iperf3 server (port 5201 when omitted, as iperf3's own default);
# only the iperf3 probe lists that scheme, so no storage probe selects such an endpoint.
SCHEMES = ("root", "roots", "davs", "https", "http", "iperf3")


@dataclass(frozen=True, slots=True)
class Target:
    site: str
    endpoint: str
    url: str  # scheme://host[:port], no path
    test_dir: str  # absolute path on the endpoint, where the probe may write its own files
    read_only: bool = False
    reference_file: str | None = None  # absolute path, read in read-only mode
    reference_adler32: str | None = None  # expected checksum of the reference file, if known
    token: TokenSource | None = None
    ca_dir: Path | None = None
    audience: str | None = None  # the token audience the endpoint accepts, when configured
    # Hosts an HTTP redirect may lead to (besides this endpoint's own): the site's other
    # endpoints and the endpoint's `redirect_hosts` patterns (fnmatch, e.g. "*.desy.de").
    redirect_hosts: frozenset[str] = frozenset()
    # The endpoint accepts that its token travels over root:// or http:// in cleartext.
    insecure_token_transport: bool = False
    # What a missing server checksum means here (probes/core/checksums.py).
    checksums: ChecksumPolicy = DEFAULT_POLICY
    tape: TapeQos | None = None  # a tape QoS class: the tape-recall probe's targets
    perfsonar: PerfsonarArchive | None = None  # a perfSONAR archive: the perfsonar probe's

    @property
    def protocol(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def describe(self) -> str:
        return f"{self.site}/{self.endpoint}"

    @property
    def endpoints(self) -> tuple[Target, ...]:
        return (self,)

    @property
    def display_url(self) -> str:
        return self.url

    def url_for(self, path: str) -> str:
        """The endpoint URL of an absolute path (`root://h:1094//p` keeps XRootD's double slash).
        ValueError for a path a client would not take literally (probes/core/paths.py): XRootD
        reads `?` as the start of CGI, and nothing here is percent-encoded."""
        problem = path_problem(path)
        if problem is not None:
            raise ValueError(f"unsafe path {path!r}: {problem}")
        separator = "/" if self.protocol in ("root", "roots") else ""
        return f"{self.url}{separator}{path}"


TAPE_PROTOCOLS = ("xrootd", "tape-rest")


@dataclass(frozen=True, slots=True)
class TapeFile:
    """A tape-resident reference file, and its adler32 when known (8 hex digits)."""

    path: str
    adler32: str | None = None


@dataclass(frozen=True, slots=True)
class PerfsonarArchive:
    """An endpoint that is a site's perfSONAR archive (the endpoint's `perfsonar:` block):
    the site's measurement nodes as the archive names them, the API to read, and optional
    Basic credentials (the password stays in its file until a request needs it)."""

    bandwidth_hosts: tuple[str, ...] = ()
    latency_hosts: tuple[str, ...] = ()
    api: str = "auto"  # auto (OpenSearch, then esmond) | opensearch | esmond
    username: str | None = None
    password_file: Path | None = None


@dataclass(frozen=True, slots=True)
class TapeQos:
    """An endpoint's tape QoS class, as configured (EndpointConfig.tape): how to reach its
    tape interface, what to recall, and what it promises. Durations in seconds."""

    protocol: str  # "xrootd": prepare over root://; "tape-rest": the WLCG Tape REST API
    files: tuple[TapeFile, ...] = ()  # recalled in turn
    archive_dir: str | None = None  # a tape-class directory the probe may write to
    rest_api: str | None = None  # the API URI (.../api/v1); None: discovered
    discovery_url: str | None = None  # where /.well-known/wlcg-tape-rest-api is; None: url
    may_evict: bool = False  # evict (XRootD) a recalled file so it can be recalled again
    disk_lifetime: float = 3600.0  # asked for in each Tape REST stage (ISO-8601 on the wire)
    online_warning: float = 3600.0
    online_critical: float = 4 * 3600.0
    archive_warning: float = 8 * 3600.0
    archive_critical: float = 24 * 3600.0
    abandon_after: float = 2 * 86400.0  # an older request is cancelled and released
    poll_max_interval: float = 300.0  # capped exponential backoff between polls, as gfal2


MODES = ("pull", "push")


@dataclass(frozen=True, slots=True)
class PairTarget:
    """An ordered pair of endpoints for a third-party copy. `pull`: the copy request goes to
    the destination, which fetches from the source; `push`: it goes to the source, which sends.
    """

    source: Target
    destination: Target
    mode: str

    @property
    def protocol(self) -> str:
        return self.source.protocol

    @property
    def active(self) -> Target:
        """The endpoint that receives the copy request and moves the data."""
        return self.destination if self.mode == "pull" else self.source

    def describe(self) -> str:
        return f"{self.source.describe()} -> {self.destination.describe()} ({self.mode})"

    @property
    def endpoints(self) -> tuple[Target, ...]:
        return (self.source, self.destination)

    @property
    def display_url(self) -> str:
        return f"{self.source.url} -> {self.destination.url}"
