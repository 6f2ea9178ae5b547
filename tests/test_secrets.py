"""The scrubber knows the secrets in use, and forgets a secret a while after its last Secret
is gone, so memory and the cost of each scrubbed line do not grow with uptime."""

from __future__ import annotations

import copy
import gc
import io
import logging
import threading

import pytest

from lakeprobe.cli.logs import RedactingFormatter
from lakeprobe.probes.credentials import secrets
from lakeprobe.probes.credentials.secrets import LINGER_SECONDS, MASK, Secret, known_count, redact

VALUE = "case-token-0123456789abcdef"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fresh registry on a clock the test moves."""
    fake = FakeClock()
    monkeypatch.setattr(secrets, "_KNOWN", secrets._KnownSecrets(clock=fake))
    return fake


def test_live_secret_is_scrubbed(clock: FakeClock) -> None:
    """A live secret's value is masked wherever it appears, however long it has lived."""
    token = Secret(VALUE)
    clock.now += 7 * 24 * 3600
    assert redact(f"GET /f?x={VALUE} failed: {VALUE}") == f"GET /f?x={MASK} failed: {MASK}"
    assert known_count() == 1
    assert token.reveal() == VALUE


def test_dropped_secret_lingers_then_is_forgotten(clock: FakeClock) -> None:
    """After the last reference is dropped the value is still masked for LINGER_SECONDS
    (text made from it may still be on its way out), then forgotten."""
    token = Secret(VALUE)
    del token
    gc.collect()
    clock.now += LINGER_SECONDS - 1
    assert redact(VALUE) == MASK
    clock.now += 1
    assert redact(VALUE) == VALUE
    assert known_count() == 0


def test_secret_in_a_reference_cycle_is_forgotten_after_collection(clock: FakeClock) -> None:
    """A Secret only reachable from garbage (a cycle) is forgotten once the collector runs."""
    cycle: list[object] = [Secret(VALUE)]
    cycle.append(cycle)
    del cycle
    gc.collect()
    clock.now += LINGER_SECONDS
    assert known_count() == 0


def test_same_value_stays_known_until_every_secret_is_gone(clock: FakeClock) -> None:
    """Two Secrets of one value: dropping one forgets nothing; dropping both does."""
    first, second = Secret(VALUE), Secret(VALUE)
    del first
    gc.collect()
    clock.now += 10 * LINGER_SECONDS
    assert redact(VALUE) == MASK
    assert known_count() == 1
    del second
    gc.collect()
    clock.now += LINGER_SECONDS
    assert redact(VALUE) == VALUE


def test_value_loaded_again_while_lingering_is_kept(clock: FakeClock) -> None:
    """A value whose Secret is made again before the linger ends stays known past it."""
    Secret(VALUE)  # dropped at once: lingers
    clock.now += LINGER_SECONDS - 1
    again = Secret(VALUE)
    clock.now += 10 * LINGER_SECONDS
    assert redact(VALUE) == MASK
    assert again.reveal() == VALUE


@pytest.mark.parametrize(
    ("value", "reason"),
    [("lakeprobe-client", "scrub=False"), ("short7x", "shorter than 8 characters")],
)
def test_values_never_scrubbed(clock: FakeClock, value: str, reason: str) -> None:
    """Non-confidential ids (scrub=False) and short values are never masked in free text,
    so innocent words stay readable, but their reprs still show only the mask."""
    token = Secret(value, scrub=reason != "scrub=False")
    assert redact(f"/{value}/dir") == f"/{value}/dir"
    assert known_count() == 0
    assert value not in f"{token} {token!r}"


def test_a_copy_is_the_same_secret(clock: FakeClock) -> None:
    """copy and deepcopy (of a Secret or of settings holding one) return the Secret itself, so
    no uncounted twin keeps a value in use after the scrubber forgot it."""
    token = Secret(VALUE)
    assert copy.copy(token) is token
    assert copy.deepcopy({"token": token})["token"] is token


def test_a_value_inside_another_is_masked_whole(clock: FakeClock) -> None:
    """Longest first: a known value that contains another known value is masked whole."""
    inner, outer = Secret("abcdefgh-123"), Secret("xx-abcdefgh-123-yy")
    assert redact(f"{outer.reveal()} and {inner.reveal()}") == f"{MASK} and {MASK}"


def test_token_shapes_are_masked_without_any_secret(clock: FakeClock) -> None:
    """The authz= and Bearer patterns still mask tokens the process never loaded."""
    text = "root://h//f?authz=eyJabc.def.ghi&x=1 Authorization: Bearer abc.def.ghi"
    assert redact(text) == f"root://h//f?authz={MASK}&x=1 Authorization: Bearer {MASK}"


def test_formatter_scrubs_a_record_logged_after_the_secret_died(clock: FakeClock) -> None:
    """The daemon's formatter masks a value in a message and in a traceback, also when the
    record is formatted just after the run dropped its Secret."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(RedactingFormatter("%(message)s"))
    log = logging.getLogger("lakeprobe.test.secrets")
    log.addHandler(handler)
    log.propagate = False
    try:
        token = Secret(VALUE)
        text = f"denied for {token.reveal()}"
        del token
        try:
            raise PermissionError(text)
        except PermissionError:
            log.exception("case failed: %s", text)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert VALUE not in buffer.getvalue()
    assert f"case failed: denied for {MASK}" in buffer.getvalue()


def test_concurrent_secrets_and_scrubbing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads making, using and dropping secrets while others scrub: every live value is
    masked in every line, and when all are gone (no linger here) nothing is known."""
    monkeypatch.setattr(secrets, "_KNOWN", secrets._KnownSecrets(linger=0.0))
    failures: list[str] = []
    start = threading.Barrier(8)

    def run(worker: int) -> None:
        start.wait()
        for n in range(300):
            token = Secret(f"thread-{worker}-token-{n:04d}-value")
            line = redact(f"case {n}: GET /f?t={token.reveal()} denied")
            if token.reveal() in line or MASK not in line:
                failures.append(line)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    gc.collect()
    assert known_count() == 0


def test_known_values_stay_bounded_over_many_runs(clock: FakeClock) -> None:
    """1,000 runs of 10 new tokens each, one run every 12 s: the known values are the run's
    own plus those of the runs within the linger, never the history."""
    sizes = []
    for run in range(1000):
        tokens = [Secret(f"run-{run}-case-{case}-token") for case in range(10)]
        assert all(redact(t.reveal()) == MASK for t in tokens)
        sizes.append(known_count())
        del tokens
        clock.now += 12
    window = 10 * (int(LINGER_SECONDS) // 12 + 1)
    assert max(sizes) <= window
    assert sizes[-1] == sizes[100]
