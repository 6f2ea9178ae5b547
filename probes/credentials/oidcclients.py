"""OIDC clients kept across runs and reloads (probes/core/resources.py). Apart from
probes/credentials/oidc.py, so that holding the (empty) collection imports neither pydantic
nor aiohttp: a `lakeprobe run` without OIDC never loads them."""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lakeprobe.probes.credentials.oidc import OidcClient, OidcSettings


class OidcClients:
    """OIDC clients by (settings, CA directory, refresh margin), so a client and its token
    cache outlive probe runs and config reloads. Owned by the daemon (probes/core/resources.py);
    at most MAX_CLIENTS, the least recently used forgotten first. Thread-safe: a reload
    plans (and asks for clients) in a worker thread while runs ask on the event loop."""

    MAX_CLIENTS = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: collections.OrderedDict[
            tuple[OidcSettings, Path | None, float], OidcClient
        ] = collections.OrderedDict()

    def client(
        self, settings: OidcSettings, default_ca_dir: Path | None, refresh_before: float = 60.0
    ) -> OidcClient:
        key = (settings, default_ca_dir, float(refresh_before))
        with self._lock:
            known = self._clients.get(key)
            if known is not None:
                self._clients.move_to_end(key)
                return known
            from lakeprobe.probes.credentials.oidc import OidcClient

            made = self._clients[key] = OidcClient(settings, default_ca_dir, refresh_before)
            if len(self._clients) > self.MAX_CLIENTS:
                self._clients.popitem(last=False)
            return made

    def __len__(self) -> int:
        return len(self._clients)
