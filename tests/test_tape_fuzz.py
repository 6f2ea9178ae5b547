"""Whatever a Tape REST API answers, a tape-recall run ends with a result whose reason is
from the closed set and whose detail names where the answer came from: never a crash, never
`internal`. The API is a loopback server answering each call with generated status, headers
and body (hypothesis, bounded)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any

from aiohttp import web
from http_helpers import serve_handler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakeprobe.probes.core.outcome import CAPABILITY_REASONS, Reason, Status
from lakeprobe.probes.core.runner import run_probe
from lakeprobe.probes.core.state import StateStore
from lakeprobe.probes.core.tapeqos import TapeFile, TapeQos
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.tape import ledger
from lakeprobe.probes.tape.recall import PROBE_TYPE, TapeRecallParams

PATH = "/tape/ref"
LOG = logging.getLogger("test.tape.fuzz")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
# Shapes close to real answers, with any field replaced: the parsers' interesting cases.
files = st.fixed_dictionaries(
    {"path": st.sampled_from([PATH, "/other", "//tape//ref", ""]) | json_values},
    optional={
        "onDisk": st.booleans() | json_values,
        "state": st.sampled_from(
            ["SUBMITTED", "STARTED", "COMPLETED", "FAILED", "CANCELED", "CANCELLED", "bogus"]
        )
        | json_values,
        "error": st.none() | st.text(max_size=20),
        "locality": st.sampled_from(["DISK", "TAPE", "DISK_AND_TAPE", "LOST", "NONE"])
        | json_values,
        "finishedAt": st.integers(min_value=-1, max_value=10**14) | json_values,
    },
)
documents = (
    st.fixed_dictionaries(
        {"id": st.just("r1") | json_values, "files": st.lists(files, max_size=3) | json_values},
        optional={"requestId": st.just("r1") | json_values, "createdAt": json_values},
    )
    | st.lists(files, max_size=3)
    | json_values
)
bodies = documents.map(lambda d: json.dumps(d).encode()) | st.binary(max_size=64)
answers = st.tuples(st.sampled_from([200, 201, 204, 400, 404, 500]), bodies)
# A valid start (archiveinfo: on tape; stage: created), so later answers reach the poll,
# the read and the release.
ON_TAPE = (200, json.dumps([{"path": PATH, "locality": "TAPE"}]).encode())
STAGED = (201, json.dumps({"requestId": "r1"}).encode())
conversations = st.lists(answers, min_size=1, max_size=8) | st.lists(
    answers, min_size=1, max_size=6
).map(lambda rest: [ON_TAPE, STAGED, ON_TAPE, *rest])


def run_against(base: str, replies: list[tuple[int, bytes]]) -> Any:
    qos = TapeQos("tape-rest", (TapeFile(PATH, "00000001"),), rest_api=f"{base}/api/v1")
    target = Target(site="FUZZ", endpoint="tape", url=base, test_dir="/lakeprobe", tape=qos)
    state = StateStore.memory()
    results = []
    for _ in range(2):  # the second run polls what the first staged, if anything was staged
        outcome = asyncio.run(
            run_probe(
                PROBE_TYPE,
                target,
                TapeRecallParams(),
                timeout=10,
                probe_host="f",
                log=LOG,
                state=state,
            )
        )
        results.append(outcome.result)
        book = ledger.load(state, target)
        if book.request is not None:  # make its poll due now (the first backoff is 2 s)
            book.request = replace(book.request, next_poll_at=0.0)
            ledger.save(state, target, book)
    return results


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations)
def test_any_answer_gives_a_result_with_a_reason(replies: list[tuple[int, bytes]]) -> None:
    async def main() -> list[Any]:
        queue = list(replies)

        async def handle(request: web.Request) -> web.Response:
            status, body = queue.pop(0) if queue else replies[-1]
            headers = {"Location": "/api/v1/stage/r1"} if status == 201 else {}
            return web.Response(status=status, body=body, headers=headers)

        async with serve_handler(handle) as base:
            return await asyncio.to_thread(run_against, base, replies)

    for result in asyncio.run(main()):
        assert result.reason is not Reason.INTERNAL, result.steps
        assert isinstance(result.reason, Reason)
        # Faults and unjudged runs name the API that answered (a capability finding such as
        # no_offline_file, or a checksum judged on the bytes read, need not).
        named = [
            s
            for s in result.steps
            if s.status in (Status.CRITICAL, Status.UNKNOWN)
            and s.reason not in (Reason.CHECKSUM_MISMATCH, *CAPABILITY_REASONS)
        ]
        for found in named:
            assert "/api/v1" in found.detail or "127.0.0.1" in found.detail, found
