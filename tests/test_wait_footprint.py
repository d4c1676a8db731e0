"""What a parked wait leaves for the garbage collector: thousands of waits must not stall the
event loop in full collections, so each holds a handful of tracked objects, not dozens."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter

import pytest

from aimlops_async import AimlopsClient
from aimlops_async.emulator import Emulator

WAITS = 200


def _tracked() -> Counter[str]:
    gc.collect()
    return Counter(type(item).__name__ for item in gc.get_objects())


async def test_a_parked_wait_holds_a_handful_of_tracked_objects() -> None:
    async with Emulator(creating_seconds=600, installing_seconds=600) as emu, AimlopsClient(
        emu.url, emu.credentials, poll_delay=600, poll_max_delay=600, poll_timeout=3600
    ) as client:
        answers = await asyncio.gather(*(
            client.platforms.create(emu.sample_create_request(f"footprint-{number}"))
            for number in range(WAITS)
        ))
        poller = client.platforms.poller
        before = _tracked()
        waits = [
            asyncio.create_task(client.platforms.wait_until_deployed(answer.resource_id or ""))
            for answer in answers
        ]
        # Parked: every wait read once (one listing round) and asleep until its next poll.
        for _ in range(6000):  # a minute at most
            parked = poller.waiting == WAITS and poller.asleep_until is not None
            if poller.stats.rounds >= 1 and parked:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the waits never parked")
        grown = _tracked() - before
        try:
            per_wait = sum(grown.values()) / WAITS
            # The library's share: its coroutines, a future and its iterator and the
            # PlatformWatch (about 6.6 in all, the caller's task included; 10.6 before the
            # schedule became a count, the listing's reading plain values, and the wait lost
            # its ``with`` and ``follow`` layers).
            assert per_wait <= 7.2, grown.most_common(12)
            assert grown["PlatformSummary"] < WAITS / 10  # the reading kept as plain values
            assert grown["PlatformWatch"] == WAITS
            assert grown["generator"] < WAITS / 10  # no schedule generator per wait
            assert grown["set"] < WAITS / 10  # no set per wait that never failed
            assert grown["method"] < WAITS / 10  # no bound __exit__ held per wait
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
