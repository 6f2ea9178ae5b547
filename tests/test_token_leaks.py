"""Tokens and client secrets never leave the daemon: a token-only lake (every site needs
tokens from the lake's issuer) probed by the real `lakeprobe serve` process at DEBUG, plus
the CLI. Everything they emit is collected and searched for token material: the daemon's
log, /metrics, the health endpoints, a reload, `run` in text and JSON, `list`,
`check-config`. The search would see a leak: the issuer really handed out tokens (the
credential steps passed) and we search for any JWT shape, the client secret, and every token
the issuer's clients could have been given (re-minting is not possible, so: the shape)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lakeprobe.lake import LocalLake
from lakeprobe.lake.lake import free_ports

pytestmark = pytest.mark.lake

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
LAKEPROBE = str(Path(sys.executable).with_name("lakeprobe"))  # the installed console script
BEARER_VALUE = re.compile(r"Bearer(?:%20|\s)+(?!\*\*\*)[A-Za-z0-9\-_.~+/=]{8,}", re.IGNORECASE)


@pytest.fixture
def token_only_lake(lake_binaries: None, tmp_path: Path) -> Iterator[LocalLake]:
    with LocalLake(2, base_dir=tmp_path / "lake", token_sites=True) as lake:
        yield lake


def cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [LAKEPROBE, "--log-level", "DEBUG", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


def get(url: str, method: str = "GET") -> str:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return str(reply.read().decode())


def test_no_token_material_in_anything_the_daemon_emits(
    token_only_lake: LocalLake, tmp_path: Path
) -> None:
    lake = token_only_lake
    port = free_ports(1)[0]
    config = lake.write_config(tmp_path / "lake.yaml", f"127.0.0.1:{port}", interval=10,
                               timeout=8, transfers=True)  # fmt: skip
    data = yaml.safe_load(config.read_text())
    data["server"]["enable_reload"] = True  # POST /-/reload is off by default
    config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "X509_CERT_DIR": str(lake.pki.ca_dir)}
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [LAKEPROBE, "--log-level", "DEBUG", "serve", "-c", str(config)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    emitted: list[str] = []
    try:
        base = f"http://127.0.0.1:{port}"
        metrics = _wait_for_token_runs(base)
        emitted += [metrics, get(f"{base}/-/healthy"), get(f"{base}/-/ready")]
        emitted.append(get(f"{base}/-/reload", "POST"))
        daemon.send_signal(signal.SIGHUP)
        time.sleep(1)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    emitted.append(log_path.read_text())
    emitted.append(cli("run", "-c", str(config), "token-authz", env=env))
    emitted.append(cli("run", "-c", str(config), "webdav", "--json", env=env))
    emitted.append(cli("run", "-c", str(config), "http-tpc", env=env))
    emitted.append(cli("list", "-c", str(config), env=env))
    emitted.append(cli("check-config", str(config), env=env))
    text = "\n".join(emitted)

    # The runs really used tokens: credential steps passed, the issuer was asked.
    assert 'step="credential"' in metrics
    assert "must deny: denied" in text
    assert "DEBUG" in text
    assert lake.issuer is not None
    secret = (lake.issuer.base_dir / "clients" / "lakeprobe" / "client_secret").read_text()
    assert secret.strip() not in text
    assert JWT.search(text) is None, JWT.search(text)
    assert BEARER_VALUE.search(text) is None, BEARER_VALUE.search(text)


def _wait_for_token_runs(base: str) -> str:
    """/metrics once both the token-authz runs and the credential steps have results."""
    deadline = time.monotonic() + 60
    while True:
        try:
            metrics = get(f"{base}/metrics")
        except OSError:
            metrics = ""
        done = 'probe="token-authz"' in metrics and 'step="credential"' in metrics
        if done and "lakeprobe_token_expiry_seconds{" in metrics:
            return metrics
        if time.monotonic() > deadline:
            raise AssertionError("no token-authz and credential results within 60 s")
        time.sleep(0.5)
