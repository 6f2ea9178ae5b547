"""The daemon: owns config, store, metrics and scheduler; reloads keep the old config on error."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from lakeprobe.config import ConfigError, LakeprobeConfig, load_config
from lakeprobe.config.plan import ProbeJob, Scope, build_plan
from lakeprobe.exporter.exposition import Exposition
from lakeprobe.exporter.selfmetrics import DaemonMetrics
from lakeprobe.exporter.store import ResultsStore
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.state import StateStore
from lakeprobe.service.restartonly import restart_only, restart_only_changes
from lakeprobe.service.scheduler import ProbeScheduler

log = logging.getLogger("lakeprobe.daemon")
SHUTDOWN_GRACE_SECONDS = 10.0


class Daemon:
    def __init__(
        self,
        config_path: Path,
        config: LakeprobeConfig,
        site: str | None = None,
        shard: str | None = None,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self._site, self._shard = site, shard  # command-line scope, kept across reloads
        self._started_with = restart_only(config.server)
        self.registry = CollectorRegistry(auto_describe=False)
        self.store = ResultsStore()
        self.exposition = Exposition(self.store)
        self.resources = ProbeResources()  # copy threads, OIDC clients: live as long as this
        self.metrics = DaemonMetrics(self.registry, self.resources.threads)
        self.state = open_state(config.server.state_dir)
        self.scheduler = ProbeScheduler(
            self.store,
            self.metrics,
            probe_host=probe_host_of(config),
            max_concurrent=config.defaults.max_concurrent_runs,
            max_per_endpoint=config.defaults.max_concurrent_per_endpoint,
            state=self.state,
            resources=self.resources,
        )
        self.started = False
        self._reload_lock = asyncio.Lock()

    def metrics_chunks(self) -> Iterator[bytes]:
        """The families of the results and the plan's token sources (one table, result text
        cached per target), then the daemon's own metrics."""
        yield from self.exposition.chunks()
        yield generate_latest(self.registry)

    def start(self) -> None:
        """Schedule the initial config. Call from inside the running event loop."""
        self.scheduler.start()
        self._apply(self.config, self._plan(self.config))
        self.started = True

    async def stop(self) -> None:
        await self.scheduler.shutdown(SHUTDOWN_GRACE_SECONDS)
        self.state.close()
        self.resources.close()
        self.started = False

    async def reload_async(self) -> list[str]:
        """Re-read the config file; returns the problems (empty on success). One reload at a
        time. Reading, validating and planning run in a worker thread (a 150-site config takes
        a large part of a second), and nothing is changed until all of it has succeeded: on any
        failure the running schedule stays whole and the reload gauge drops to 0."""
        async with self._reload_lock:
            started = time.monotonic()
            try:
                config, jobs = await asyncio.to_thread(self._prepare)
            except ConfigError as error:
                return self._rejected(error.messages, error.source)
            except Exception as error:  # not a config error: still never half-applied
                log.exception("reload failed, keeping the running config")
                return self._rejected([f"reload failed: {type(error).__name__}: {error}"])
            prepared = time.monotonic()
            changed = restart_only_changes(self._started_with, config.server)
            if changed:
                log.warning("%s changed: takes effect only after a restart", ", ".join(changed))
            self._apply(config, jobs)
            log.info(
                "config reloaded: %d targets (read and planned in %.3f s off the event loop, "
                "applied in %.3f s)", len(jobs), prepared - started, time.monotonic() - prepared,
            )  # fmt: skip
            return []

    def _prepare(self) -> tuple[LakeprobeConfig, list[ProbeJob]]:
        config = load_config(self.config_path)
        return config, self._plan(config)

    def _plan(self, config: LakeprobeConfig) -> list[ProbeJob]:
        return build_plan(config, Scope.of(config, self._site, self._shard), self.resources.oidc)

    def _rejected(self, messages: list[str], source: str | None = None) -> list[str]:
        self.metrics.reload_ok.set(0)
        for message in messages:
            where = f"{source}: " if source else ""
            log.error("reload rejected, keeping the running config: %s%s", where, message)
        return messages

    def _apply(self, config: LakeprobeConfig, jobs: list[ProbeJob]) -> None:
        defaults = config.defaults
        self.scheduler.set_limits(
            defaults.max_concurrent_runs,
            defaults.max_concurrent_per_endpoint,
            probe_host_of(config),
        )
        self.scheduler.apply(jobs)
        self.exposition.set_plan(jobs)
        self.config = config
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(time.time())


def probe_host_of(config: LakeprobeConfig) -> str:
    """The identity in test-file names: server.probe_host, else this host's name."""
    return config.server.probe_host or socket.gethostname()


def open_state(state_dir: Path | None) -> StateStore:
    """The daemon's state store: in `state_dir` (refusing a second daemon there), else in
    memory (nothing survives a restart). StateError names the file and the problem."""
    if state_dir is None:
        log.info("server.state_dir is not set: probe state is kept in memory only")
        return StateStore.memory()
    return StateStore.open(state_dir, exclusive=True)
