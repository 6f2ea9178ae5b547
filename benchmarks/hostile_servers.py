"""Hostile endpoints on 127.0.0.1 for benchmarks/hostile_lake.py, one port each, in a process of
their own (so they do not share the daemon's event loop):

- refused: nothing listens (the port is reserved, then closed);
- blackhole: a socket that listens with a full backlog and never accepts, so connects hang;
- tarpit: accepts and reads, never answers;
- slowloris: accepts, then sends one byte every 5 s;
- garbage: accepts, answers 64 random bytes per read and keeps the connection open.

    python benchmarks/hostile_servers.py --per-kind 100

Prints {"kind": [ports...]} as one JSON line when every server listens, then runs until
killed.
Traffic stays on loopback; every server lives only as long as this process.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import socket

KINDS = ("refused", "blackhole", "tarpit", "slowloris", "garbage")


class Hostile(asyncio.Protocol):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.transport: asyncio.Transport | None = None
        self.drip: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.kind == "slowloris":
            self.drip = asyncio.ensure_future(self._drip())

    async def _drip(self) -> None:
        while self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"H")
            await asyncio.sleep(5)

    def data_received(self, data: bytes) -> None:
        if self.kind == "garbage" and self.transport is not None:
            self.transport.write(os.urandom(64))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.drip is not None:
            self.drip.cancel()


def _reserved_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _blackhole() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    return sock, int(sock.getsockname()[1])


async def main(per_kind: int) -> None:
    loop = asyncio.get_running_loop()
    ports: dict[str, list[int]] = {kind: [] for kind in KINDS}
    held: list[object] = []
    for _ in range(per_kind):
        ports["refused"].append(_reserved_port())
        sock, port = _blackhole()
        held.append(sock)
        ports["blackhole"].append(port)
        for kind in ("tarpit", "slowloris", "garbage"):
            server = await loop.create_server(functools.partial(Hostile, kind), "127.0.0.1", 0)
            held.append(server)
            ports[kind].append(int(server.sockets[0].getsockname()[1]))
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-kind", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.per_kind))
