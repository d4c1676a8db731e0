"""A wait's deadline ends it with ``WaiterTimeoutError``, never a bare ``TimeoutError``.

Whether a timeout is the wait's own is decided by the timeout scope that bounds the request,
never by comparing clocks: the event loop may fire a timer up to a clock tick early, and a
client's ``Timing`` clock need not be the loop's. Here the injected clock runs at half the
loop's pace (so at the loop's timer, the wait's clock says half its time is left) against a
service that never answers; every path that bounds a request by a deadline must still end in
``WaiterTimeoutError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from wire import serving

from aimlops_async import AimlopsClient, Credentials, Timing, WaiterTimeoutError

BASE = "/v1/aimlops-platform"
# The wait's timeout: the service never answers, so each test lasts about this long.
TIMEOUT = 0.2


class Silent:
    """A service that takes every request and answers none until the test ends."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.gets = 0
        self.pages = 0

    async def get(self, request: web.Request) -> web.Response:
        self.gets += 1
        await self.released.wait()
        raise web.HTTPServiceUnavailable()

    async def list(self, request: web.Request) -> web.Response:
        self.pages += 1
        await self.released.wait()
        raise web.HTTPServiceUnavailable()


@pytest.fixture
async def silent() -> AsyncIterator[tuple[Silent, str]]:
    service = Silent()
    app = web.Application()
    app.router.add_get(BASE + "/{release_id}", service.get)
    app.router.add_get(BASE, service.list)
    async with serving(app) as url:
        try:
            yield service, url
        finally:
            service.released.set()  # before the server stops: no handler left waiting


def lagging_timing() -> Timing:
    """A clock at half the loop's pace: when the loop's timer fires, the deadline seems far."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    return Timing(clock=lambda: start + (loop.time() - start) / 2)


def client_on(url: str) -> AimlopsClient:
    settings: dict[str, Any] = {"max_retries": 0, "poll_delay": 5.0, "poll_max_delay": 10.0}
    client = AimlopsClient(url, Credentials("ak", "sk"), **settings)
    client.platforms.timing = lagging_timing()
    return client


async def test_a_watch_whose_clock_lags_times_out_with_the_waiter_error(
    silent: tuple[Silent, str],
) -> None:
    service, url = silent
    async with client_on(url) as client:
        watch = client.platforms.watch("r-1", timeout=TIMEOUT)
        with pytest.raises(WaiterTimeoutError) as caught:
            async for _ in watch:
                pass
    assert caught.value.release_id == "r-1"
    assert service.gets == 1


async def test_a_wait_whose_clock_lags_times_out_with_the_waiter_error(
    silent: tuple[Silent, str],
) -> None:
    service, url = silent
    async with client_on(url) as client:
        with pytest.raises(WaiterTimeoutError) as caught:
            await client.platforms.wait_until_deployed("r-1", timeout=TIMEOUT)
        assert client.platforms.poller.waiting == 0
    assert caught.value.release_id == "r-1"
    assert service.gets == 1


async def test_joined_waits_whose_listing_stalls_time_out_with_the_waiter_error(
    silent: tuple[Silent, str],
) -> None:
    service, url = silent
    async with client_on(url) as client:
        outcomes = await asyncio.gather(
            *(client.platforms.wait_until_deployed(f"r-{n}", timeout=TIMEOUT) for n in range(3)),
            return_exceptions=True,
        )
    assert [type(outcome) for outcome in outcomes] == [WaiterTimeoutError] * 3
    assert service.pages >= 1  # three waits: the round read the listing, which never answered
