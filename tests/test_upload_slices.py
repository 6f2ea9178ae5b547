"""Bodies larger than libcurl's upload buffer go out slice by slice through HttpClient's read
callback: every byte arrives, in order, once."""

from __future__ import annotations

import asyncio
import hashlib
import logging

from aiohttp import web
from http_helpers import serve_handler

from lakeprobe.probes.clients.curlexchange import UPLOAD_BUFFER
from lakeprobe.probes.clients.httpclient import HttpClient
from lakeprobe.probes.core.context import ProbeContext
from lakeprobe.probes.core.resources import ProbeResources
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.steps import StepRecorder
from lakeprobe.probes.core.target import Target

LOG = logging.getLogger("test.upload")


async def test_a_large_body_arrives_whole() -> None:
    received: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        chunks = [chunk async for chunk in request.content.iter_any()]  # read() caps at 1 MiB
        received.append(b"".join(chunks))
        return web.Response(status=201)

    data = bytes(range(256)) * (3 * UPLOAD_BUFFER // 256 + 7)  # 3 slices and a short one
    async with serve_handler(handle) as base:
        target = Target(site="S", endpoint="e", url=base, test_dir="/t")
        deadline = asyncio.get_running_loop().time() + 20
        ctx = ProbeContext(
            StepRecorder(deadline, 10, 1), deadline, "h", LOG, StateStore.memory(),
            ProbeResources(),
        )  # fmt: skip
        async with HttpClient(target, ctx) as http:
            reply = await http.request("PUT", "/t/f", expect={201}, data=data)
    assert reply.status == 201
    (body,) = received
    assert len(body) == len(data)
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
