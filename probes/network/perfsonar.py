"""The `perfsonar` probe: what a site pair's perfSONAR nodes measured, from their archives.

A PairTarget is two perfSONAR archive endpoints (each with its `perfsonar:` block naming the
site's nodes) and an IP version ("ipv4"/"ipv6"). The SOURCE site's archive is asked for the
newest results from its nodes to the destination's nodes of that IP version within `window`;
when it has none of a kind, the destination's archive is asked (a pair's results may be
archived at either end). Steps:
- credential: the archives' Basic password files (when configured) are readable;
- throughput: bandwidth hosts -> bandwidth hosts: throughput and retransmits, judged against
  the pair's thresholds; skipped unless both sites have bandwidth hosts;
- latency: latency hosts -> latency hosts: loss ratio and latency, loss judged;
- trace: hop count, informational (non-critical): a pair without traces is fine;
- freshness: WARNING `measurement_stale` when neither throughput nor latency had a result.
A stale pair exports no throughput: no measurement is not zero. A failed newest test is
CRITICAL `measurement_failed`. An archive that refuses us (401/403) or answers nonsense leaves
the pair unjudged (UNKNOWN `archive_closed` / `archive_malformed`); an unreachable one is
CRITICAL with the transport's reason (connect, dns, tls, timeout, server_error, ...).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from lakeprobe.probes.clients.psarchive import (
    ArchiveClosed,
    ArchiveMalformed,
    ArchiveResult,
    ArchiveUnavailable,
    BasicAuth,
    Kind,
    PsArchiveClient,
)
from lakeprobe.probes.core.archivetarget import PerfsonarArchive
from lakeprobe.probes.core.context import NETWORK, ProbeContext, ProbeType
from lakeprobe.probes.core.outcome import (
    Measurement,
    ProbeResult,
    Reason,
    Status,
    StepOutcome,
    failed,
    passed,
)
from lakeprobe.probes.core.steps import StepAction, blocks_on_unreachable
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.credentials.secrets import redact
from lakeprobe.probes.credentials.tokens import CredentialError
from lakeprobe.probes.network import verdicts
from lakeprobe.probes.network.params import PerfsonarParams, Thresholds

Hosts = Callable[[PerfsonarArchive], tuple[str, ...]]


def _bandwidth(archive: PerfsonarArchive) -> tuple[str, ...]:
    return archive.bandwidth_hosts


def _latency(archive: PerfsonarArchive) -> tuple[str, ...]:
    return archive.latency_hosts


def _any_node(archive: PerfsonarArchive) -> tuple[str, ...]:
    """Traces run from either kind of node."""
    return tuple(dict.fromkeys(archive.bandwidth_hosts + archive.latency_hosts))


class _Failed(Exception):
    """An archive exchange that ends the step with this outcome."""

    def __init__(self, outcome: StepOutcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


def _archive(end: Target) -> PerfsonarArchive:
    """The endpoint's `perfsonar:` block; the planner pairs only endpoints that have one."""
    if end.perfsonar is None:
        raise _Failed(failed(Reason.INTERNAL, f"{end.describe()}: no perfsonar block"))
    return end.perfsonar


def archive_failure(error: Exception, where: str) -> StepOutcome:
    """The outcome of an archive error: closed and malformed leave the pair unjudged; an
    unreachable archive is CRITICAL with its transport's or status's reason."""
    detail = f"{where}: {error}"
    if isinstance(error, ArchiveClosed):
        return StepOutcome(Status.UNKNOWN, Reason.ARCHIVE_CLOSED, detail)
    if isinstance(error, ArchiveMalformed):
        return StepOutcome(Status.UNKNOWN, Reason.ARCHIVE_MALFORMED, detail)
    if isinstance(error, ArchiveUnavailable):
        return failed(error.reason, detail)
    return failed(Reason.UNEXPECTED_STATUS, detail)


@dataclass(slots=True)
class _Run:
    pair: PairTarget
    params: PerfsonarParams
    ctx: ProbeContext
    stack: AsyncExitStack
    auth: dict[str, BasicAuth | None] = field(default_factory=dict)  # by endpoint
    clients: dict[str, PsArchiveClient] = field(default_factory=dict)
    found: dict[Kind, ArchiveResult] = field(default_factory=dict)
    measurements: dict[Measurement, float] = field(default_factory=dict)

    @property
    def ip_version(self) -> int:
        return 6 if self.pair.mode == "ipv6" else 4

    async def run(self) -> None:
        steps = self.ctx.steps
        await steps.run("credential", self._guarded(self.credential))
        for name, action in (("throughput", self.throughput), ("latency", self.latency)):
            await steps.run(name, self._guarded(action), blocks=blocks_on_unreachable)
        await steps.run("trace", self._guarded(self.trace), critical=False)
        await steps.run("freshness", self.freshness)

    def _guarded(self, action: StepAction) -> StepAction:
        async def run() -> StepOutcome:
            try:
                return await action()
            except _Failed as stop:
                return stop.outcome

        return run

    async def credential(self) -> StepOutcome:
        loaded = []
        for end in self.pair.endpoints:
            archive = _archive(end)
            if archive.username is None or archive.password_file is None:
                self.auth[end.describe()] = None
                continue
            try:
                auth = BasicAuth(archive.username, archive.password_file)
                auth.header()  # reads the file now: a missing one is this step's finding
            except (CredentialError, ValueError) as error:
                detail = redact(f"{end.describe()}: {error}")
                return StepOutcome(Status.UNKNOWN, Reason.CREDENTIAL, detail)
            self.auth[end.describe()] = auth
            loaded.append(f"{end.describe()}: Basic auth as {archive.username}")
        return passed("; ".join(loaded) or "anonymous archive access")

    # --- the measuring steps ----------------------------------------------------------

    async def throughput(self) -> StepOutcome:
        result = await self._newest(Kind.THROUGHPUT, _bandwidth, "bandwidth")
        if isinstance(result, StepOutcome):
            return result
        if not result.succeeded:
            return verdicts.measurement_failed(self._what(result), result.error)
        if result.throughput_bps is None:
            raise _Failed(self._no_value(result, "result.throughput"))
        self.measurements[Measurement.NETWORK_THROUGHPUT] = result.throughput_bps
        if result.retransmits is not None:
            self.measurements[Measurement.NETWORK_RETRANSMITS] = float(result.retransmits)
        self._measured_at(result)
        limits = self._thresholds()
        return verdicts.throughput_verdict(result.throughput_bps, limits, self._what(result))

    async def latency(self) -> StepOutcome:
        result = await self._newest(Kind.LOSS, _latency, "latency")
        if isinstance(result, StepOutcome):
            return result
        if not result.succeeded:
            return verdicts.measurement_failed(self._what(result), result.error)
        if result.loss_ratio is None:
            raise _Failed(self._no_value(result, "result.packets.loss"))
        self.measurements[Measurement.NETWORK_LOSS] = result.loss_ratio
        delay = self.found.get(Kind.LATENCY)
        seconds = delay.latency_seconds if delay is not None else None
        if seconds is not None:
            self.measurements[Measurement.NETWORK_LATENCY] = seconds
        self._measured_at(result)
        return verdicts.loss_verdict(result.loss_ratio, seconds, self._thresholds(),
                                     self._what(result))  # fmt: skip

    async def trace(self) -> StepOutcome:
        result = await self._newest(Kind.TRACE, _any_node, "perfSONAR")
        if isinstance(result, StepOutcome):
            return result
        if not result.succeeded or result.hop_count is None:
            # A trace that failed says little about throughput or loss: shown, not judged.
            return passed(f"no hop count: {self._what(result)}: {result.error or 'no value'}")
        self.measurements[Measurement.NETWORK_HOPS] = float(result.hop_count)
        return passed(f"{result.hop_count} hops {self._what(result)}")

    async def freshness(self) -> StepOutcome:
        measured = [self.found[k] for k in (Kind.THROUGHPUT, Kind.LOSS) if k in self.found]
        if not measured:
            window = verdicts.age(self.params.window)
            return verdicts.stale(f"no throughput or latency result in the last {window}")
        newest = max(result.start_time for result in measured)
        return passed(f"newest result {verdicts.age(max(0.0, time.time() - newest))} old")

    # --- archive access ---------------------------------------------------------------

    async def _newest(self, kind: Kind, hosts: Hosts, what: str) -> ArchiveResult | StepOutcome:
        """The newest result of `kind`, from the source's archive, else the destination's;
        SKIPPED when a site has no nodes of that kind, OK with 'none' when neither archive
        has one (freshness judges that)."""
        source, destination = self.pair.source, self.pair.destination
        src_hosts, dst_hosts = hosts(_archive(source)), hosts(_archive(destination))
        lacking = [e.site for e, h in ((source, src_hosts), (destination, dst_hosts)) if not h]
        if lacking:
            detail = f"no {what} hosts at {', '.join(lacking)}"
            return StepOutcome(Status.SKIPPED, Reason.NONE, detail)
        kinds = (Kind.LOSS, Kind.LATENCY) if kind is Kind.LOSS else (kind,)
        for archive in (source, destination):
            found = await self._ask(archive, src_hosts, dst_hosts, kinds)
            if kind in found:
                self.found.update(found)
                return found[kind]
        window = verdicts.age(self.params.window)
        return passed(f"no {kind} result IPv{self.ip_version} in the last {window} "
                      f"(archives of {source.site} and {destination.site})")  # fmt: skip

    async def _ask(
        self, end: Target, sources: tuple[str, ...], dests: tuple[str, ...], kinds: tuple[Kind, ...]
    ) -> dict[Kind, ArchiveResult]:
        try:
            archive = await self._client(end)
            return await archive.latest(sources, dests, self.ip_version, self.params.window,
                                        kinds)  # fmt: skip
        except (ArchiveClosed, ArchiveMalformed, ArchiveUnavailable) as error:
            raise _Failed(archive_failure(error, f"archive of {end.describe()}")) from None

    async def _client(self, end: Target) -> PsArchiveClient:
        key = end.describe()
        if key not in self.clients:
            api = _archive(end).api
            client = PsArchiveClient(end.url, self.ctx, ca_dir=end.ca_dir, api=api,
                                     auth=self.auth.get(key))  # fmt: skip
            self.clients[key] = await self.stack.enter_async_context(client)
        return self.clients[key]

    # --- helpers ----------------------------------------------------------------------

    def _thresholds(self) -> Thresholds:
        return self.params.thresholds(self.pair.source.site, self.pair.destination.site)

    def _measured_at(self, result: ArchiveResult) -> None:
        previous = self.measurements.get(Measurement.NETWORK_MEASURED_AT, 0.0)
        self.measurements[Measurement.NETWORK_MEASURED_AT] = max(previous, result.start_time)

    def _what(self, result: ArchiveResult) -> str:
        when = verdicts.age(max(0.0, time.time() - result.start_time))
        return f"{result.source} -> {result.destination} IPv{self.ip_version}, {when} ago"

    def _no_value(self, result: ArchiveResult, name: str) -> StepOutcome:
        detail = f"{self._what(result)}: a successful result without {name}"
        return StepOutcome(Status.UNKNOWN, Reason.ARCHIVE_MALFORMED, detail)


class PerfsonarProbe:
    """One run = one site pair, one IP version, read from the archives."""

    async def __call__(
        self, target: PairTarget, params: PerfsonarParams, ctx: ProbeContext
    ) -> ProbeResult:
        async with AsyncExitStack() as stack:
            run = _Run(target, params, ctx, stack)
            await run.run()
        return ctx.steps.result(run.measurements)


PROBE_TYPE = ProbeType(
    name="perfsonar",
    description="a site pair's perfSONAR throughput, loss, latency and hops, from the archives",
    schemes=frozenset({"https", "http"}),
    params_model=PerfsonarParams,
    factory=PerfsonarProbe,
    modes=("ipv4", "ipv6"),
    needs="perfsonar",
    family=NETWORK,
)
