"""The `iperf3` probe: a short TCP throughput test to the destination site's iperf3 server,
for sites without perfSONAR.

The client runs on the lakeprobe host, which stands for the source site (true in a per-site
install): the PairTarget's source endpoint names the sending site, its destination endpoint
is the server (`iperf3://host:port`), the mode the IP version (`-4`/`-6`). One bounded test
(probes/clients/iperf3.py), one at a time per server (the owner's ServerLocks), a busy server
asked again `busy_retries` times. Step `throughput`: the throughput (and the sender's
retransmits) measured now, judged against the pair's thresholds as perfSONAR's are; a
refused or unreachable server is CRITICAL `connect`, one still busy after the retries
WARNING `server_busy` (another test, not a network fault), nothing measured then.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from lakeprobe.probes.clients.iperf3 import (
    Iperf3Outcome,
    Iperf3Request,
    Iperf3Result,
    run_iperf3,
)
from lakeprobe.probes.core.context import NETWORK, ProbeContext, ProbeType
from lakeprobe.probes.core.outcome import (
    Measurement,
    ProbeResult,
    Reason,
    Status,
    StepOutcome,
    failed,
)
from lakeprobe.probes.core.target import PairTarget
from lakeprobe.probes.network import verdicts
from lakeprobe.probes.network.params import Iperf3Params

# run_iperf3 ends this long before the step's deadline, to report what it was doing
# (e.g. still busy) rather than be cut off as a bare timeout.
DEADLINE_MARGIN_SECONDS = 0.5

# What a failed test means; OK is judged, BUSY is a WARNING.
_FAILURES = {
    Iperf3Outcome.CONNECT: (Status.CRITICAL, Reason.CONNECT),
    Iperf3Outcome.RESOLVE: (Status.CRITICAL, Reason.DNS),
    Iperf3Outcome.TIMEOUT: (Status.CRITICAL, Reason.TIMEOUT),
    Iperf3Outcome.ERROR: (Status.CRITICAL, Reason.MEASUREMENT_FAILED),
    # Output that is not iperf3's JSON: our client's problem as much as the server's.
    Iperf3Outcome.MALFORMED: (Status.UNKNOWN, Reason.PROTOCOL_ERROR),
}


@dataclass(slots=True)
class _Run:
    pair: PairTarget
    params: Iperf3Params
    ctx: ProbeContext
    measurements: dict[Measurement, float] = field(default_factory=dict)

    @property
    def ip_version(self) -> int:
        return 6 if self.pair.mode == "ipv6" else 4

    async def throughput(self) -> StepOutcome:
        server = self.pair.destination
        try:
            request = Iperf3Request(
                server.url, self.ip_version, seconds=self.params.seconds,
                reverse=self.params.reverse, busy_retries=self.params.busy_retries,
            )  # fmt: skip
        except ValueError as error:  # the config checks iperf3 URLs: a bug if it gets here
            return failed(Reason.INTERNAL, f"{server.describe()}: {error}")
        left = self.ctx.step_deadline - asyncio.get_running_loop().time()
        deadline = max(0.1, left - DEADLINE_MARGIN_SECONDS)
        result = await run_iperf3(request, self.ctx.resources.server_locks, deadline)
        return self._judge(result)

    def _judge(self, result: Iperf3Result) -> StepOutcome:
        where = f"{self._direction()} ({self.pair.destination.url})"
        tries = f" after {result.attempts} tries" if result.attempts > 1 else ""
        if result.outcome is Iperf3Outcome.BUSY:
            detail = f"{where}: server busy{tries}: {result.detail}"
            return StepOutcome(Status.WARNING, Reason.SERVER_BUSY, detail)
        if result.outcome is not Iperf3Outcome.OK or result.bits_per_second is None:
            status, reason = _FAILURES.get(result.outcome, (Status.CRITICAL, Reason.INTERNAL))
            return StepOutcome(status, reason, f"{where}: {result.detail}")
        self.measurements[Measurement.NETWORK_THROUGHPUT] = result.bits_per_second
        if result.retransmits is not None:
            self.measurements[Measurement.NETWORK_RETRANSMITS] = float(result.retransmits)
        self.measurements[Measurement.NETWORK_MEASURED_AT] = time.time()
        retransmits = "" if result.retransmits is None else f", {result.retransmits} retransmits"
        what = f"{where}, {self.params.seconds} s{retransmits}{tries}"
        limits = self.params.thresholds(self.pair.source.site, self.pair.destination.site)
        return verdicts.throughput_verdict(result.bits_per_second, limits, what)

    def _direction(self) -> str:
        """Who sends: this host (for the source site), or with -R the server."""
        src, dst = self.pair.source.site, self.pair.destination.site
        arrow = "<-" if self.params.reverse else "->"
        return f"{src} (this host) {arrow} {dst} IPv{self.ip_version}"


class Iperf3Probe:
    """One run = one test from this host to one site's iperf3 server, one IP version."""

    async def __call__(
        self, target: PairTarget, params: Iperf3Params, ctx: ProbeContext
    ) -> ProbeResult:
        run = _Run(target, params, ctx)
        await ctx.steps.run("throughput", run.throughput)
        return ctx.steps.result(run.measurements)


PROBE_TYPE = ProbeType(
    name="iperf3",
    description="TCP throughput from this host to a site's iperf3 server (sites without perfSONAR)",
    schemes=frozenset({"iperf3"}),
    params_model=Iperf3Params,
    factory=Iperf3Probe,
    modes=("ipv4", "ipv6"),
    family=NETWORK,
)
