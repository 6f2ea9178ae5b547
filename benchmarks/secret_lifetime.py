"""Benchmark: what the log scrubber knows and costs over 10,000 token-authz runs.

    .venv/bin/python benchmarks/secret_lifetime.py [RUNS]

Each simulated run makes 10 new case tokens (Secrets of JWT length, as token-authz does),
logs two lines through logging with the daemon's RedactingFormatter (a case line holding one
of the tokens, checked to come out masked, and a plain summary line; OLD only at the
checkpoints, as scrubbing every run's lines against it would take many minutes), then drops
them. A simulated clock moves 12 s per run: 10 tokens every 12 s is the half a million new
tokens a week of a normal setup. Side by side, each in fresh subprocesses: the registry as it is now
(live Secrets plus LINGER_SECONDS) and OLD, a copy of the registry before issue 9 (every value
ever loaded, in a set). At run 100, 1,000 and 10,000: the known values, tracemalloc's current
memory since the start, and the median cost of redact() on each of the run's two lines (timed
in a second process without tracemalloc, which would distort it). Pure CPU, no network.
Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import base64
import gc
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid

from lakeprobe.cli.logs import FORMAT, RedactingFormatter
from lakeprobe.probes.credentials import secrets
from lakeprobe.probes.credentials.secrets import MASK, Secret, known_count, redact

CASES = 10
SECONDS_PER_RUN = 12.0
CHECKPOINTS = (100, 1_000, 10_000)
TIMED_LINES = 101


class OldKnownSecrets:
    """OLD BEHAVIOUR, for comparison only: the registry of probes/credentials/secrets.py
    before issue 9.
    Every value ever loaded stays in a set; redact() scans a fresh snapshot of all of them."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: Secret, value: str) -> None:
        if len(value) >= 8:
            with self._lock:
                self._values.add(value)

    def values(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._values)

    def __len__(self) -> int:
        return len(self._values)


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def case_token(now: float) -> str:
    """An RS256 WLCG access token's shape and length (~750 characters), unique per call."""
    header = {"kid": "rsa1", "alg": "RS256", "typ": "JWT"}
    claims = {
        "wlcg.ver": "1.0", "sub": str(uuid.uuid4()), "aud": "https://storage.example.org",
        "nbf": int(now), "scope": "storage.read:/lakeprobe storage.create:/lakeprobe",
        "iss": "https://iam.example.org/", "exp": int(now) + 1200, "iat": int(now),
        "jti": str(uuid.uuid4()), "client_id": str(uuid.uuid4()),
    }  # fmt: skip
    parts = (json.dumps(header).encode(), json.dumps(claims).encode(), os.urandom(256))
    return ".".join(_b64(part) for part in parts)


def run(n: int, clock: SimulatedClock, log: logging.Logger | None, sink: io.StringIO) -> list[str]:
    """One token-authz run, logged unless `log` is None; returns its two log lines (a case line
    holding a token, and a plain one), unformatted, for timing redact()."""
    tokens = [Secret(case_token(clock.now)) for _ in range(CASES)]
    token = tokens[n % CASES].reveal()
    lines = [
        f"case {n % CASES} GET https://h:8443/lakeprobe/f-{n}?t={token}: HTTP 403, expected 200",
        f"token-authz storage.example.org:8443 run {n}: 14 cases, 13 passed, 1 failed in 2.4 s",
    ]
    if log is not None:
        for line in lines:
            log.info("%s", line)
        if MASK not in sink.getvalue() or token in sink.getvalue():
            raise AssertionError("a live token was not masked")
    sink.seek(0)
    sink.truncate()
    clock.now += SECONDS_PER_RUN
    return lines  # the tokens are dropped here


def measure(registry: str, what: str, runs: int) -> list[dict[str, float]]:
    clock = SimulatedClock()
    old = registry == "old"
    secrets._KNOWN = OldKnownSecrets() if old else secrets._KnownSecrets(clock=clock)  # type: ignore[assignment]
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(RedactingFormatter(FORMAT))
    log = logging.getLogger("lakeprobe.bench.token_authz")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    gc.collect()
    if what == "memory":
        tracemalloc.start()
    rows = []
    for n in range(1, runs + 1):
        # OLD logs only at the checkpoints: its set only grows with Secrets made, whatever is
        # logged, and scrubbing two lines a run against it would take many minutes.
        lines = run(n, clock, log if not old or n in CHECKPOINTS else None, sink)
        if n in CHECKPOINTS:
            gc.collect()
            row: dict[str, float] = {"run": n, "known": known_count()}
            if what == "memory":
                row["memory_kib"] = tracemalloc.get_traced_memory()[0] / 1024
            else:
                row["token_line_us"], row["plain_line_us"] = map(_median_redact_us, lines)
            rows.append(row)
    return rows


def _median_redact_us(line: str) -> float:
    costs = []
    for _ in range(TIMED_LINES):
        started = time.perf_counter_ns()
        redact(line)
        costs.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(costs)


def main(runs: int) -> None:
    print(f"{runs} runs x {CASES} new case tokens, one run every {SECONDS_PER_RUN:g} s")
    print(
        "| registry | run | known values | tracemalloc (KiB) | redact, line with a token (us) "
        "| redact, plain line (us) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for registry in ("old", "new"):
        results = {}
        for what in ("memory", "time"):
            out = subprocess.run([sys.executable, __file__, registry, what, str(runs)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            results[what] = json.loads(out.stdout)
        label = "OLD (set)" if registry == "old" else "new"
        for mem, cost in zip(results["memory"], results["time"], strict=True):
            print(f"| {label} | {mem['run']:,} | {mem['known']:,} | {mem['memory_kib']:,.0f} "
                  f"| {cost['token_line_us']:,.1f} | {cost['plain_line_us']:,.1f} |")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 4:
        print(json.dumps(measure(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
        sys.exit(0)
    main(int(sys.argv[1]) if len(sys.argv) == 2 else CHECKPOINTS[-1])
