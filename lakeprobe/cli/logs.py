"""Logging for the CLI and daemon: one stderr handler that scrubs credentials."""

from __future__ import annotations

import logging
import sys

from lakeprobe.probes.secrets import RedactingFilter


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # APScheduler logs every job start at INFO; keep its warnings and errors.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # gfal2 logs every transfer event at INFO (redacted by its own filter); keep warnings.
    logging.getLogger("gfal2").setLevel(logging.WARNING)
