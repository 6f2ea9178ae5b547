"""Admission: slots per endpoint and shared, with a reserve hung targets cannot take."""

from __future__ import annotations

from lakeprobe.service.admission import Admission, Phase, Standing


def running(*tickets: object) -> list[bool]:
    return [t.phase is Phase.RUNNING for t in tickets]  # type: ignore[attr-defined]


async def test_waiting_for_a_busy_endpoint_holds_no_shared_slot() -> None:
    """A run whose endpoint is full waits without a shared slot: others still start."""
    slots = Admission(capacity=3, per_endpoint=2)
    first, second = (slots.request(f"x{i}", ["X"], Standing.GOOD) for i in range(2))
    third = slots.request("x3", ["X"], Standing.GOOD)
    other = slots.request("y", ["Y"], Standing.GOOD)
    assert running(first, second, third, other) == [True, True, False, True]
    assert (slots.running, slots.waiting) == (3, 1)
    slots.release(first)
    assert third.phase is Phase.RUNNING


async def test_a_pair_takes_both_endpoints_at_once_or_neither() -> None:
    """A copy waiting for its busy destination does not hold a slot on its source."""
    slots = Admission(capacity=10, per_endpoint=1)
    busy = slots.request("b", ["B"], Standing.GOOD)
    pair = slots.request("a->b", ["A", "B"], Standing.GOOD)
    on_a = slots.request("a", ["A"], Standing.GOOD)
    assert running(busy, pair, on_a) == [True, False, True]
    slots.release(on_a)
    slots.release(busy)
    assert pair.phase is Phase.RUNNING


async def test_hung_and_new_targets_cannot_take_the_reserve() -> None:
    """NEW and HUNG runs share at most three quarters of the slots; a GOOD one still starts."""
    slots = Admission(capacity=8, per_endpoint=2)
    assert slots.untrusted_limit == 6
    hung = [slots.request(f"h{i}", [f"H{i}"], Standing.HUNG) for i in range(7)]
    new = slots.request("n", ["N"], Standing.NEW)
    good = slots.request("g", ["G"], Standing.GOOD)
    assert sum(running(*hung)) == 6
    assert running(new, good) == [False, True]
    assert slots.running_untrusted == 6


async def test_free_slots_go_to_good_then_new_then_hung() -> None:
    """Whatever the arrival order, a freed slot goes to the best standing first."""
    slots = Admission(capacity=2, per_endpoint=2)
    holders = [slots.request(f"g{i}", [f"G{i}"], Standing.GOOD) for i in range(2)]
    hung = slots.request("h", ["H"], Standing.HUNG)
    new = slots.request("n", ["N"], Standing.NEW)
    good = slots.request("g", ["G"], Standing.GOOD)
    slots.release(holders[0])
    assert running(good, new, hung) == [True, False, False]
    slots.release(holders[1])
    assert running(new, hung) == [True, False]


async def test_demoted_run_counts_against_the_untrusted_share() -> None:
    """A GOOD run that overruns is counted as hung: NEW runs then wait, GOOD ones do not."""
    slots = Admission(capacity=4, per_endpoint=2)
    overrunning = [slots.request(f"g{i}", [f"G{i}"], Standing.GOOD) for i in range(3)]
    for ticket in overrunning:
        slots.demote(ticket)
    new = slots.request("n", ["N"], Standing.NEW)
    good = slots.request("g", ["G"], Standing.GOOD)
    assert running(new, good) == [False, True]
    slots.release(good)
    assert running(new) == [False]  # a free slot, but it is the reserve
    slots.release(overrunning[0])
    assert running(new) == [True]


async def test_withdrawn_waiters_are_never_granted_and_resize_applies() -> None:
    """A run that gave up is not started later; a larger capacity starts waiting runs."""
    slots = Admission(capacity=1, per_endpoint=1)
    holder = slots.request("a", ["A"], Standing.GOOD)
    gave_up = slots.request("b", ["B"], Standing.GOOD)
    waiting = slots.request("c", ["C"], Standing.GOOD)
    slots.withdraw(gave_up)
    assert slots.waiting == 1
    slots.resize(capacity=2, per_endpoint=1)
    assert running(holder, gave_up, waiting) == [True, False, True]
    assert (slots.running, slots.waiting) == (2, 0)
