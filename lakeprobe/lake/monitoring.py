"""A real Prometheus and a real Alertmanager on loopback (Debian's `prometheus` and
`prometheus-alertmanager`), for the end-to-end test, the detection-latency benchmark and
`lakeprobe demo --monitoring`. Each runs in its own work dir on a free port; stop() ends
exactly the process it started."""

from __future__ import annotations

import json
import logging
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import yaml

from lakeprobe.lake.lake import free_ports
from lakeprobe.lake.process import ChildProcess

log = logging.getLogger(__name__)

MONITORING_BINARIES = ("prometheus", "prometheus-alertmanager")
SCRAPE_JOB = "lakeprobe"  # the alert rules select up{job="lakeprobe"}
_STOP_BOUND_SECONDS = 10.0
_PORT_ATTEMPTS = 5
_HTTP_TIMEOUT = 10.0


def require_monitoring_binaries() -> list[str]:
    """Names of the monitoring binaries not on PATH (empty when all are there)."""
    return [name for name in MONITORING_BINARIES if shutil.which(name) is None]


class MonitoringStartError(RuntimeError):
    """A server did not become ready; the message carries the tail of its log."""


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration ("15s", "500ms")."""
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def http_json(url: str, timeout: float = _HTTP_TIMEOUT) -> Any:
    """GET `url` and decode its JSON body; an HTTP error raises RuntimeError with the body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return json.load(reply)
    except urllib.error.HTTPError as error:
        with error:  # holds the response open: close it
            body = error.read().decode(errors="replace")
        raise RuntimeError(f"GET {url}: HTTP {error.code}: {body.strip()}") from None


class _Server:
    """Spawn `binary` on a free loopback port and wait for `/-/ready`."""

    binary: str
    name: str

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.port: int | None = None
        self.log_path = work_dir / f"{self.name}.log"
        self._proc: ChildProcess | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.name} is not started")
        return f"http://127.0.0.1:{self.port}"

    def _prepare(self) -> None:
        """Write the server's config into work_dir."""

    def _arguments(self, listen: str) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 10.0) -> None:
        """Start on a free port (another one if it was taken meanwhile); wait until ready."""
        if self._proc is not None and not self._proc.exited():
            return  # already running
        binary = shutil.which(self.binary)
        if binary is None:
            raise FileNotFoundError(f"{self.binary} not found on PATH")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.work_dir), "LANG": "C.UTF-8"}
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = free_ports(1)[0]
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            command = [binary, *self._arguments(f"127.0.0.1:{self.port}")]
            self._proc = ChildProcess(command, env, self.work_dir, self.log_path)
            try:
                self._wait_ready(self._proc, offset, timeout)
                log.info("%s up (pid %d): %s", self.name, self._proc.pid, self.url)
                return
            except BaseException as error:
                self.stop()
                if "address already in use" not in str(error) or attempt == _PORT_ATTEMPTS:
                    raise
                log.info("%s: port taken (attempt %d), picking another", self.name, attempt)

    def _wait_ready(self, proc: ChildProcess, offset: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not proc.exited():
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0):
                    return  # 2xx; 503 (not ready yet) raises HTTPError
            except urllib.error.HTTPError as error:
                error.close()
            except OSError:  # not listening yet
                pass
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        state = "exited during start-up" if proc.exited() else f"not ready after {timeout} s"
        raise MonitoringStartError(f"{self.name} {state}:\n{self._tail(offset)}")

    def _tail(self, offset: int) -> str:
        with self.log_path.open("rb") as handle:
            handle.seek(offset)
            return "\n".join(handle.read().decode(errors="replace").splitlines()[-15:])

    def stop(self) -> None:
        """Terminate the process this object started (SIGTERM, SIGKILL after a bound)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            status = proc.stop(_STOP_BOUND_SECONDS)
            log.info("%s stopped (pid %d, status %d)", self.name, proc.pid, status)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class PrometheusServer(_Server):
    """Prometheus scraping `scrape_targets` ("host:port") as job `lakeprobe`, evaluating
    `rule_files` and sending alerts to `alertmanager_url` (when given)."""

    binary = "prometheus"
    name = "prometheus"

    def __init__(
        self,
        work_dir: Path,
        scrape_targets: Sequence[str],
        rule_files: Sequence[Path] = (),
        alertmanager_url: str | None = None,
        scrape_interval: float = 15.0,
        evaluation_interval: float = 15.0,
    ) -> None:
        super().__init__(work_dir)
        self.scrape_targets = list(scrape_targets)
        self.rule_files = [Path(path).resolve() for path in rule_files]
        self.alertmanager_url = alertmanager_url
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.config_path = work_dir / "prometheus.yml"

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": duration(self.scrape_interval),
                "scrape_timeout": duration(min(self.scrape_interval, 10.0)),
                "evaluation_interval": duration(self.evaluation_interval),
            },
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {"job_name": SCRAPE_JOB, "static_configs": [{"targets": self.scrape_targets}]}
            ],
        }
        if self.alertmanager_url is not None:
            parts = urllib.parse.urlsplit(self.alertmanager_url)
            manager = {
                "scheme": parts.scheme or "http",
                "static_configs": [{"targets": [parts.netloc]}],
            }
            if parts.path.strip("/"):
                manager["path_prefix"] = parts.path
            config["alerting"] = {"alertmanagers": [manager]}
        return config

    def _prepare(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def _arguments(self, listen: str) -> list[str]:
        return [
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.work_dir / 'prometheus-data'}",
            f"--web.listen-address={listen}",
            "--web.enable-lifecycle",
        ]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Evaluate `expr` now (or at unix time `at`) via /api/v1/query: the result vector.
        A scalar or string result comes back as one sample without labels."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        reply = http_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}")
        data = reply["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])


def alertmanager_config(group_wait: float = 1.0, webhook_url: str | None = None) -> dict[str, Any]:
    """A minimal Alertmanager config: one route grouping by alertname and site, to a receiver
    that posts to `webhook_url`, or notifies nobody (alerts still show in the API)."""
    route = {
        "receiver": "lakeprobe",
        "group_by": ["alertname", "site"],
        "group_wait": duration(group_wait),
        "group_interval": duration(max(group_wait, 1.0)),
        "repeat_interval": "4h",
    }
    return rewire_receivers({"route": route, "receivers": [{"name": "lakeprobe"}]}, webhook_url)


def rewire_receivers(config: dict[str, Any], webhook_url: str | None = None) -> dict[str, Any]:
    """`config` with the same routes, grouping and inhibitions, whose receivers all post to
    `webhook_url`, or (None) notify nobody: to run an example config on loopback."""
    integrations = [{"url": webhook_url, "send_resolved": True}] if webhook_url else []
    receivers = [{"name": r["name"], "webhook_configs": integrations} for r in config["receivers"]]
    return {**config, "receivers": receivers, "templates": []}


class AlertmanagerServer(_Server):
    """Alertmanager with `config_path`, or with alertmanager_config(group_wait) written into
    work_dir when no path is given. Clustering (gossip) is off."""

    binary = "prometheus-alertmanager"
    name = "alertmanager"

    def __init__(
        self,
        work_dir: Path,
        config_path: Path | None = None,
        group_wait: float = 1.0,
    ) -> None:
        super().__init__(work_dir)
        self._generate = config_path is None
        self.config_path = config_path or work_dir / "alertmanager.yml"
        self.group_wait = group_wait

    def _prepare(self) -> None:
        if self._generate:
            config = alertmanager_config(self.group_wait)
            self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _arguments(self, listen: str) -> list[str]:
        return [
            f"--config.file={self.config_path}",
            f"--storage.path={self.work_dir / 'alertmanager-data'}",
            f"--web.listen-address={listen}",
            "--cluster.listen-address=",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """Current (not resolved) alerts from /api/v2/alerts; `status.state` tells active,
        suppressed or unprocessed."""
        return list(http_json(f"{self.url}/api/v2/alerts"))
