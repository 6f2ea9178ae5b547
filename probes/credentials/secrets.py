"""Keep credentials out of every output: a wrapper that never prints, and a log scrubber.

The scrubber knows the values of the secrets in use, not every secret the process has ever
loaded: token-authz makes new tokens on each run, so a forever-growing list would make memory
and the cost of each scrubbed line grow with uptime.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable

_PATTERNS = (
    re.compile(r"(authz=)[^&\s\"']+", re.IGNORECASE),
    re.compile(r"(Bearer(?:%20|\s)+)[A-Za-z0-9\-_.~+/=]+", re.IGNORECASE),
)
MASK = "***"
MIN_LENGTH = 8  # shorter values would mask innocent text
# Text made from a token can outlive the last Secret holding it: a line of C-library stderr
# still queued in the scrubber thread, a request header built from a secret that is not kept.
LINGER_SECONDS = 60.0


class Secret:
    """A credential value. str(), repr() and f-strings show only a mask. Its value is scrubbed
    from free text while this object (or another Secret of the same value) is alive, and for
    LINGER_SECONDS after: whoever may still print a token keeps its Secret."""

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str, *, scrub: bool = True) -> None:
        """`scrub=False` for identifiers that are not confidential (an OAuth client id):
        still kept out of reprs, but not masked in free text, where it would also mask
        innocent words (a client `lakeprobe` and the test directory `/lakeprobe`)."""
        self._value = value
        if scrub:
            _KNOWN.add(self, value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    # Immutable, so a copy is the object itself; a real copy would bypass __init__ and not be
    # counted, and its value could be forgotten while it is still in use.
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self


class _KnownSecrets:
    """The values of the live Secrets (counted: two Secrets may share a value), and of those
    whose last Secret died less than `linger` seconds ago."""

    def __init__(
        self, linger: float = LINGER_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._linger, self._clock = linger, clock
        self._lock = threading.Lock()
        self._live: dict[str, int] = {}  # value -> number of live Secrets holding it
        self._retired: dict[str, float] = {}  # value -> when it is forgotten, about in order
        # Weakref callbacks run in whatever thread drops the last reference, possibly inside
        # this class's own code: they only append here (atomic), never take the lock.
        self._deaths: collections.deque[tuple[str, float]] = collections.deque()
        self._version = 0  # changes whenever the set of known values does
        self._values: tuple[str, ...] = ()  # longest first: a value inside another goes last
        self._values_version = 0

    def add(self, secret: Secret, value: str) -> None:
        if len(value) < MIN_LENGTH:
            return
        with self._lock:
            self._settle()
            count = self._live.get(value, 0)
            self._live[value] = count + 1
            if count == 0 and self._retired.pop(value, None) is None:
                self._version += 1
        weakref.finalize(secret, self._died, value).atexit = False

    def values(self) -> tuple[str, ...]:
        """The known values, longest first; rebuilt only when the set has changed."""
        with self._lock:
            self._settle()
            if self._values_version != self._version:
                known = [*self._live, *self._retired]
                self._values = tuple(sorted(known, key=len, reverse=True))
                self._values_version = self._version
            return self._values

    def __len__(self) -> int:
        with self._lock:
            self._settle()
            return len(self._live) + len(self._retired)

    def _died(self, value: str) -> None:
        self._deaths.append((value, self._clock()))

    def _settle(self) -> None:
        """Under the lock: count the Secrets that died, forget what has lingered enough."""
        while self._deaths:
            value, died = self._deaths.popleft()
            count = self._live[value] - 1
            if count:
                self._live[value] = count
            else:
                del self._live[value]
                self._retired[value] = died + self._linger
        now = self._clock()
        expired = []
        for value, deadline in self._retired.items():
            if deadline > now:
                break
            expired.append(value)
        for value in expired:
            del self._retired[value]
        if expired:
            self._version += 1


_KNOWN = _KnownSecrets()


def known_count() -> int:
    """How many secret values the scrubber knows now (for tests and benchmarks)."""
    return len(_KNOWN)


def redact(text: str) -> str:
    """Mask known secrets and token-shaped substrings in free text."""
    for value in _KNOWN.values():
        if value in text:
            text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Installed on the daemon's log handlers: scrubs every formatted record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = redact(message)
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
