"""Logging for the CLI and daemon: one stderr handler whose output is scrubbed of credentials."""

from __future__ import annotations

import logging
import sys

from lakeprobe.probes.credentials.secrets import redact

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record: message, traceback (exc_info, whose message and
    frame lines can hold a token) and stack_info. A filter cannot do this: the traceback is
    only formatted after the filters have run."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # gfal2 logs every transfer event at INFO (redacted by its own filter); keep warnings.
    logging.getLogger("gfal2").setLevel(logging.WARNING)
