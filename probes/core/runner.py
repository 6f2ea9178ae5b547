"""Run one probe against one target under a hard deadline: used by the daemon and the CLI."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, TypeVar

from lakeprobe.probes.core.context import ProbeContext, ProbeParams, ProbeType
from lakeprobe.probes.core.outcome import ProbeResult, Reason, Status
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.steps import StepRecorder, cleanup_reserve
from lakeprobe.probes.core.target import PairTarget, Target
from lakeprobe.probes.credentials.secrets import redact

P = TypeVar("P", bound=ProbeParams)

# Beyond the run deadline, how long a probe gets to notice before it is cancelled.
HARD_DEADLINE_GRACE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """A run's result, and the bug that escaped the probe, if one did."""

    result: ProbeResult
    exception: str | None = None  # class name of a bug that escaped the probe


async def run_probe(
    probe_type: ProbeType[P, Any],
    target: Target | PairTarget,
    params: P,
    *,
    timeout: float,
    probe_host: str,
    log: logging.Logger,
    state: StateStore | None = None,
    resources: ProbeResources | None = None,
    on_demand: bool = False,
) -> RunOutcome:
    """Never raises (except cancellation): deadlines and bugs become results. Without a
    `state`, the run remembers nothing for the next one; without `resources` (the owner's
    copy threads, OIDC clients, notices), it gets its own, released when it ends.
    `on_demand`: a run asked for by hand, in which no check waits its turn."""
    owned = resources is None
    resources = resources if resources is not None else ProbeResources()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    recorder = StepRecorder(deadline, params.slow_step_seconds, cleanup_reserve(timeout))
    state = state if state is not None else StateStore.memory(one_run=True)
    ctx = ProbeContext(recorder, deadline, probe_host, log, state, resources, on_demand)
    probe = probe_type.factory()
    try:
        async with asyncio.timeout_at(deadline + HARD_DEADLINE_GRACE_SECONDS):
            return RunOutcome(await probe(target, params, ctx))
    except TimeoutError:
        recorder.abort(Status.CRITICAL, Reason.TIMEOUT, f"run exceeded its {timeout:g} s deadline")
        return RunOutcome(recorder.result())
    except Exception as error:  # a bug: counted and logged by the caller, never fatal
        log.error(
            "probe %s on %s raised %s: %s",
            probe_type.name,
            target.describe(),
            type(error).__name__,
            redact(str(error)),
            exc_info=True,
        )
        recorder.abort(Status.UNKNOWN, Reason.INTERNAL, f"internal error: {type(error).__name__}")
        return RunOutcome(recorder.result(), exception=type(error).__name__)
    finally:
        if owned:
            resources.close()
