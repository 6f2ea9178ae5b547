"""Keep credentials out of every output: a wrapper that never prints, and a log scrubber."""

from __future__ import annotations

import logging
import re
import threading

_PATTERNS = (
    re.compile(r"(authz=)[^&\s\"']+", re.IGNORECASE),
    re.compile(r"(Bearer(?:%20|\s)+)[A-Za-z0-9\-_.~+/=]+", re.IGNORECASE),
)
MASK = "***"


class Secret:
    """A credential value. str(), repr() and f-strings show only a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str, *, scrub: bool = True) -> None:
        """`scrub=False` for identifiers that are not confidential (an OAuth client id):
        still kept out of reprs, but not masked in free text, where it would also mask
        innocent words (a client `lakeprobe` and the test directory `/lakeprobe`)."""
        self._value = value
        if scrub:
            _KNOWN.add(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class _KnownSecrets:
    """Every secret value this process has loaded, so free text can be scrubbed of it."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if len(value) >= 8:  # shorter strings would mask innocent text
            with self._lock:
                self._values.add(value)

    def snapshot(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._values)


_KNOWN = _KnownSecrets()


def redact(text: str) -> str:
    """Mask known secrets and token-shaped substrings in free text."""
    for value in _KNOWN.snapshot():
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
