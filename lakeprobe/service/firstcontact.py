"""First contact: how a target no run has judged yet is admitted.

Admission keeps a quarter of the slots for targets in good standing (admission.py). A new
target has no standing: treating it as hung would queue a healthy site's first runs behind
hundreds of new hung endpoints while they are found out one timeout at a time, and trusting
it would let those endpoints take the reserve. So before a new target's first run, each of
its endpoints gets one short, bounded greeting: the XRootD handshake (root, roots), a TLS
handshake (https, davs) or a TCP connect (http); iperf3 servers are not greeted. An endpoint
that does not finish it within FIRST_CONTACT_SECONDS is admitted as hung; one that answers,
even with a refusal or garbage, is not: what standing measures is how long a run holds its
slots, and a quick failure holds them briefly. A greeting is no verdict: only the run's own
steps judge the endpoint. After the first run, the run's own duration sets the standing.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol
from urllib.parse import urlsplit

from lakeprobe.probes.clients.xrdhandshake import check_xrootd
from lakeprobe.probes.core.outcome import Reason
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials.tls import client_ssl_context, resolve_ca_dir

FIRST_CONTACT_SECONDS = 3.0
MAX_CONCURRENT_CONTACTS = 64
_DEFAULT_PORTS = {"https": 443, "davs": 443, "http": 80, "dav": 80}
# An iperf3 server takes any connection for a test client: a bare connect counts as a failed
# test there and can reset the test another target is running. Not greeted: trusted.
NOT_GREETED = frozenset({"iperf3"})


class Greeter(Protocol):
    async def hangs(self, targets: tuple[Target, ...]) -> bool: ...
    def forget(self, keep: set[str]) -> None: ...
    async def aclose(self) -> None: ...


class FirstContact:
    """Greets each endpoint once (concurrent callers share the greeting); remembers whether
    it hung until `forget` (the endpoint left the config)."""

    def __init__(self, timeout: float = FIRST_CONTACT_SECONDS) -> None:
        self._timeout = timeout
        self._greetings: dict[str, asyncio.Task[bool]] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_CONTACTS)

    async def hangs(self, targets: tuple[Target, ...]) -> bool:
        """True when any of the targets' endpoints did not answer its greeting in time."""
        tasks = []
        for target in targets:
            if target.url not in self._greetings:
                greeting = asyncio.create_task(self._greet(target), name=f"contact:{target.url}")
                self._greetings[target.url] = greeting
            tasks.append(self._greetings[target.url])
        return any(await asyncio.gather(*(asyncio.shield(task) for task in tasks)))

    def forget(self, keep: set[str]) -> None:
        """Drop what is known of endpoints not in `keep` (URLs)."""
        for url in set(self._greetings) - keep:
            self._greetings.pop(url).cancel()

    async def aclose(self) -> None:
        """Cancel greetings still going and wait for them (their sockets get closed)."""
        tasks = list(self._greetings.values())
        self._greetings.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _greet(self, target: Target) -> bool:
        if target.protocol in NOT_GREETED:
            return False
        async with self._slots:
            deadline = asyncio.get_running_loop().time() + self._timeout
            if target.protocol in ("root", "roots"):
                outcome = await check_xrootd(target.url, deadline, target.ca_dir)
                return outcome.reason is Reason.TIMEOUT
            try:
                async with asyncio.timeout_at(deadline):
                    await _connect(target)
            except TimeoutError:
                return True
            except (OSError, ValueError):
                pass  # refused, reset, TLS failure: an answer, and a quick one
            return False


async def _connect(target: Target) -> None:
    parts = urlsplit(target.url)
    tls = target.protocol in ("https", "davs")
    port = parts.port or _DEFAULT_PORTS.get(target.protocol, 443)
    context = client_ssl_context(resolve_ca_dir(target.ca_dir)) if tls else None
    _, writer = await asyncio.open_connection(parts.hostname, port, ssl=context)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
