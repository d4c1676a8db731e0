"""The session's retry backoff, Retry-After waits and rate limiter sleep through the client's one
``Timing``: tests drive them in virtual time, and the delays asked for are exactly the policy's.

Calls go over loopback to a scripted ``WireServer``. The delays are minutes long: slept for real,
no call here would end within its guard (``GUARD``), so passing shows that no real time was spent.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from virtual_time import VirtualTime
from wire import Reply, WireServer

import aimlops_async
from aimlops_async import AimlopsClient, RateLimitError, ServerError, Timing, ValidationError
from aimlops_async.lifecycle import schedule
from aimlops_async.session import MIN_RETRY_DELAY

T = TypeVar("T")
GUARD = 60.0  # seconds of real time; every scenario sleeps far longer than this in virtual time
BUSY = Reply(503, {"code": "BUSY"})
NOT_TAKEN = Reply(200, {"result": False})
SLOW_RETRIES: dict[str, Any] = {"retry_base_delay": 100.0, "retry_max_delay": 300.0, "timeout": 5.0}


async def guarded(call: Awaitable[T]) -> T:
    return await asyncio.wait_for(call, GUARD)


async def test_retries_sleep_the_jittered_backoff_in_virtual_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="aimlops_async")
    time = VirtualTime()
    async with WireServer() as server, AimlopsClient(
        server.url, server.credentials, **SLOW_RETRIES, max_retries=3, timing=time.timing
    ) as client:
        server.script(BUSY, BUSY, BUSY, NOT_TAKEN)
        random.seed(20261203)
        assert await guarded(client.platforms.check_duplication("r")) is False

    draws = random.Random(20261203)
    # Full jitter under a cap that doubles from retry_base_delay, up to retry_max_delay.
    expected = [draws.uniform(0, cap) for cap in (100.0, 200.0, 300.0)]
    assert time.slept == expected
    assert time.now == pytest.approx(1000.0 + sum(expected))
    assert len(server.requests) == 4 and client.stats.retries == 3
    logged = [record.getMessage() for record in caplog.records if "retrying" in record.getMessage()]
    assert [line.rsplit(" in ", 1)[1] for line in logged] == [
        f"{delay:.2f} s after 503 BUSY" for delay in expected
    ]


async def test_retry_after_is_slept_as_the_server_asked_in_virtual_time() -> None:
    time = VirtualTime()
    async with WireServer() as server, AimlopsClient(
        server.url, server.credentials, **SLOW_RETRIES, max_retries=3, max_retry_after=600.0,
        timing=time.timing,
    ) as client:
        server.script(
            Reply(429, {"code": "THROTTLED"}, headers={"Retry-After": "240"}),
            Reply(503, {"code": "BUSY"}, headers={"Retry-After": "0"}),
            Reply(503, {"code": "BUSY"}, headers={"Retry-After": "90.5"}),
            NOT_TAKEN,
        )
        assert await guarded(client.platforms.check_duplication("r")) is False

        # Beyond max_retry_after: not slept through, raised at once.
        server.script(Reply(429, {"code": "THROTTLED"}, headers={"Retry-After": "601"}))
        with pytest.raises(RateLimitError) as refused:
            await guarded(client.platforms.check_duplication("r"))

    # A Retry-After of 0 still waits a moment, so that the retry is signed with a new timestamp.
    assert time.slept == [240.0, MIN_RETRY_DELAY, 90.5]
    assert refused.value.retry_after == 601.0


async def test_the_rate_limiter_waits_in_virtual_time() -> None:
    time = VirtualTime()
    async with WireServer(default=NOT_TAKEN) as server, AimlopsClient(
        server.url, server.credentials, requests_per_second=1 / 120, timing=time.timing
    ) as client:
        for _ in range(3):
            await guarded(client.platforms.check_duplication("r"))

    assert time.slept == [120.0, 120.0]  # the first request starts at once
    assert len(server.requests) == 3


async def test_one_timing_for_the_session_and_the_waits() -> None:
    time = VirtualTime()
    async with WireServer() as server, AimlopsClient(
        server.url, server.credentials, **SLOW_RETRIES, max_retries=2
    ) as client:
        assert isinstance(client.platforms.timing, Timing)
        # Replacing the waits' timing replaces the session's too: there is only one.
        timing = time.timing
        client.platforms.timing = timing
        server.script(BUSY, BUSY, BUSY)
        random.seed(7)
        with pytest.raises(ServerError):
            await guarded(client.platforms.get("r1"))
        assert client.platforms.timing is timing

    draws = random.Random(7)
    assert time.slept == [draws.uniform(0, cap) for cap in (100.0, 200.0)]


def test_timing_is_one_class_wherever_it_is_imported() -> None:
    from aimlops_async.timing import Timing as LowLevelTiming

    assert aimlops_async.Timing is schedule.Timing is LowLevelTiming


def test_a_timing_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        AimlopsClient("http://127.0.0.1:9", aimlops_async.Credentials("ak", "sk"), timing=object())  # type: ignore[arg-type]
    assert refused.value.field == "timing"
