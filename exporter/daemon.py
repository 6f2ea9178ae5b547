"""The daemon: owns config, store, metrics and scheduler; reloads keep the old config on error."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from lakeprobe.config import ConfigError, LakeprobeConfig, load_config
from lakeprobe.config.plan import Scope, build_plan
from lakeprobe.exporter.exposition import Exposition
from lakeprobe.exporter.scheduler import ProbeScheduler
from lakeprobe.exporter.selfmetrics import DaemonMetrics
from lakeprobe.exporter.store import ResultsStore
from lakeprobe.exporter.tokenexpiry import TokenExpiry

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
        self.registry = CollectorRegistry(auto_describe=False)
        self.store = ResultsStore()
        self.exposition = Exposition(self.store)
        self.token_expiry = TokenExpiry()
        self.metrics = DaemonMetrics(self.registry)
        self.scheduler = ProbeScheduler(
            self.store,
            self.metrics,
            probe_host=config.server.probe_host or socket.gethostname(),
            max_concurrent=config.defaults.max_concurrent_runs,
            max_per_endpoint=config.defaults.max_concurrent_per_endpoint,
        )
        self.started = False

    def metrics_chunks(self) -> Iterator[bytes]:
        """The store's series (cached per target), the token expiries, then the daemon's own
        metrics."""
        yield from self.exposition.chunks()
        yield self.token_expiry.render()
        yield generate_latest(self.registry)

    def start(self) -> None:
        """Schedule the initial config. Call from inside the running event loop."""
        self.scheduler.start()
        self._apply(self.config)
        self.started = True

    async def stop(self) -> None:
        await self.scheduler.shutdown(SHUTDOWN_GRACE_SECONDS)
        self.started = False

    def reload(self) -> list[str]:
        """Re-read the config file. Returns the problems (empty on success); on any
        problem the running config stays in force."""
        try:
            config = load_config(self.config_path)
        except ConfigError as error:
            self.metrics.reload_ok.set(0)
            for message in error.messages:
                log.error(
                    "reload rejected, keeping the running config: %s: %s", error.source, message
                )
            return error.messages
        if config.server.listen != self.config.server.listen:
            log.warning("server.listen changed: takes effect only after a restart")
        self._apply(config)
        log.info("config reloaded: %d targets", len(self.store))
        return []

    def _apply(self, config: LakeprobeConfig) -> None:
        jobs = build_plan(config, Scope.of(config, self._site, self._shard))
        self.scheduler.apply(jobs)
        self.token_expiry.set_plan(jobs)
        self.config = config
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(time.time())
