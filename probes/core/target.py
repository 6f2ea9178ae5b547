"""What a probe runs against: one storage endpoint of one site."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lakeprobe.probes.core.checksums import DEFAULT_POLICY, ChecksumPolicy
from lakeprobe.probes.core.paths import path_problem

if TYPE_CHECKING:  # only some targets carry them: a run of another loads none of them
    from lakeprobe.probes.core.archivetarget import PerfsonarArchive
    from lakeprobe.probes.core.tapeqos import TapeQos
    from lakeprobe.probes.credentials.tokens import TokenSource

# URL scheme -> the `protocol` label. One place, used by config validation and the registry.
# iperf3://host[:port] is an iperf3 server (port 5201 when omitted, as iperf3's own default);
# only the iperf3 probe lists that scheme, so no storage probe selects such an endpoint.
SCHEMES = ("root", "roots", "davs", "https", "http", "iperf3")


@dataclass(frozen=True, slots=True)
class Target:
    """One storage endpoint of one site, with what a probe may do there."""

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
