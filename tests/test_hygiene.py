"""Resource hygiene: after thousands of calls, cancellations and failures, a closed client leaves nothing.

Checked on the aiohttp connector (connections held and pooled), on the process's open sockets
(Linux ``/proc/self/fd``), on ``asyncio.all_tasks()``, and on warnings and asyncio's log of
"Unclosed" objects after a garbage collection.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from aimlops_async import AimlopsClient, AimlopsError, APIConnectionError
from aimlops_async.emulator import Emulator, Faults

PHASES = {"creating_seconds": 0.05, "installing_seconds": 0.05, "deleting_seconds": 0.05}
CONCURRENCY = 32
CLIENT: dict[str, Any] = {
    "timeout": 0.5,
    "max_retries": 2,
    "retry_base_delay": 0.005,
    "retry_max_delay": 0.02,
    "poll_delay": 0.02,
    "poll_max_delay": 0.05,
    "max_concurrency": CONCURRENCY,
}
MIXED_FAULTS = Faults(
    seed=21, error_rate=0.02, drop_rate=0.02, malformed_rate=0.02, stall_rate=0.005,
    stall_seconds=1.0, latency_tail=0.001,
)


def _open_sockets() -> int | None:
    """Sockets this process holds open, or None where /proc is not available."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    count = 0
    for name in names:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
    return count


async def _settles(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Whether ``condition`` becomes true within ``timeout`` (the loop needs a few turns to close)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _our_tasks(
    baseline: set[asyncio.Task[Any]], *, server_running: bool = False
) -> list[asyncio.Task[Any]]:
    """Tasks started since ``baseline`` and still pending, bar the emulator's connection handlers."""
    return [
        task for task in asyncio.all_tasks() - baseline
        if task is not asyncio.current_task() and not task.done()
        and not (server_running and _is_server_task(task))
    ]


def _is_server_task(task: asyncio.Task[Any]) -> bool:
    # aiohttp.web keeps one task per open (keep-alive) connection.
    return "RequestHandler" in getattr(task.get_coro(), "__qualname__", "")


def _connector(client: AimlopsClient) -> aiohttp.BaseConnector:
    session = client._session._session
    assert session is not None and session.connector is not None
    return session.connector


def _held(connector: aiohttp.BaseConnector) -> int:
    return len(connector._acquired)  # type: ignore[attr-defined]


def _pooled(connector: aiohttp.BaseConnector) -> int:
    return sum(len(pool) for pool in connector._conns.values())  # type: ignore[attr-defined]


@contextlib.contextmanager
def reported_unclosed(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Collects every "Unclosed ..." report made inside the block, and after a final collection.

    aiohttp reports a session or connector that was never closed when it is collected: with a
    ResourceWarning, and through the loop's exception handler (logged by ``asyncio``).
    """
    caplog.set_level(logging.WARNING, logger="asyncio")
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
        gc.collect()
    found += [str(w.message) for w in caught if "nclosed" in str(w.message)]
    found += [r.getMessage() for r in caplog.records if "nclosed" in r.getMessage()]


async def _calls(
    make: Callable[[int], Awaitable[Any]], count: int, *, cancel_every: int = 0
) -> list[Any]:
    """``count`` concurrent calls; every ``cancel_every``-th one is cancelled while in flight."""
    tasks = [asyncio.create_task(make(index)) for index in range(count)]
    if cancel_every:
        await asyncio.sleep(0.02)
        for task in tasks[::cancel_every]:
            task.cancel()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_thousands_of_calls_cancellations_and_failures_leave_nothing_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with reported_unclosed(caplog) as leaks:
        baseline_tasks = set(asyncio.all_tasks())
        baseline_sockets = _open_sockets()
        async with Emulator(seed=22, **PHASES) as emu:
            serving_sockets = _open_sockets()
            client = AimlopsClient(emu.url, emu.credentials, **CLIENT)
            created = await asyncio.gather(
                *(client.platforms.create(emu.sample_create_request(f"h-{i}")) for i in range(10))
            )
            ids = [str(answer.resource_id) for answer in created]
            emu.faults = MIXED_FAULTS

            outcomes: list[Any] = []
            for _ in range(4):
                outcomes += await _calls(lambda i: client.platforms.get(ids[i % 10]), 500, cancel_every=9)
                connector = _connector(client)
                # Every call has ended: no connection is held, and the pool stays within its limit.
                assert _held(connector) == 0
                assert _pooled(connector) <= CONCURRENCY
            outcomes += await _calls(lambda i: client.platforms.list(size=3).to_list(), 100)

            cancelled = sum(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
            failed = [outcome for outcome in outcomes if isinstance(outcome, AimlopsError)]
            others = [
                outcome for outcome in outcomes
                if isinstance(outcome, BaseException) and not isinstance(
                    outcome, (asyncio.CancelledError, AimlopsError)
                )
            ]
            assert not others, others[:3]
            assert cancelled > 100
            assert failed, "the faults were meant to make some calls fail"
            assert len(outcomes) - cancelled - len(failed) > 1500
            assert sum(emu.stats.faults.values()) > 0

            connector = _connector(client)
            await client.close()
            assert client.closed and client._session._session is None
            assert connector.closed
            assert _held(connector) == 0 and _pooled(connector) == 0
            if serving_sockets is not None:
                # The emulator's side of each connection closes once it reads the client's EOF.
                assert await _settles(lambda: _open_sockets() == serving_sockets)
        assert _our_tasks(baseline_tasks) == []
        if baseline_sockets is not None:
            assert _open_sockets() == baseline_sockets
    assert leaks == []


async def test_a_cancelled_call_frees_its_connection_and_the_client_stays_usable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with reported_unclosed(caplog) as leaks:
        async with Emulator(seed=23, **PHASES) as emu, AimlopsClient(
            emu.url, emu.credentials, **{**CLIENT, "timeout": 5.0}
        ) as client:
            release_id = str((await client.platforms.create(emu.sample_create_request("c"))).resource_id)
            emu.faults = Faults(seed=24, stall_rate=1.0, stall_seconds=10.0)
            stuck = [asyncio.create_task(client.platforms.get(release_id)) for _ in range(CONCURRENCY)]
            assert await _settles(lambda: _held(_connector(client)) == CONCURRENCY)
            for task in stuck:
                task.cancel()
            outcomes = await asyncio.gather(*stuck, return_exceptions=True)
            assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
            assert _held(_connector(client)) == 0

            emu.faults = Faults()
            detail = await client.platforms.get(release_id)
            assert detail.release_id == release_id
    assert leaks == []


async def test_a_cancelled_bulk_run_leaves_no_task_behind(caplog: pytest.LogCaptureFixture) -> None:
    with reported_unclosed(caplog) as leaks:
        baseline = set(asyncio.all_tasks())
        async with Emulator(seed=25, creating_seconds=5.0, installing_seconds=5.0) as emu, AimlopsClient(
            emu.url, emu.credentials, **CLIENT
        ) as client:
            requests = [emu.sample_create_request(f"b-{i:03d}") for i in range(60)]
            run = asyncio.create_task(client.platforms.provision_many(requests, concurrency=8))
            assert await _settles(lambda: len(emu.stats.creates) >= 10)
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run
            assert _our_tasks(baseline, server_running=True) == []
            assert _held(_connector(client)) == 0
            # The client is still usable, and nothing was created twice.
            assert await client.platforms.check_duplication("b-000") is True
            assert max(emu.stats.creates.values()) == 1
        assert _our_tasks(baseline) == []
    assert leaks == []


async def test_failing_connections_leave_no_socket_behind(caplog: pytest.LogCaptureFixture) -> None:
    with reported_unclosed(caplog) as leaks:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # Nothing listens on that port any more: every connection is refused.
        baseline = _open_sockets()
        async with Emulator() as emu:
            credentials = emu.credentials
        client = AimlopsClient(f"http://127.0.0.1:{port}", credentials, **{**CLIENT, "max_retries": 1})
        outcomes = await _calls(lambda i: client.platforms.get(f"r-{i}"), 200)
        assert all(isinstance(outcome, APIConnectionError) for outcome in outcomes)
        assert all(outcome.sent is False for outcome in outcomes)  # type: ignore[union-attr]
        await client.close()
        if baseline is not None:
            assert await _settles(lambda: _open_sockets() == baseline)
    assert leaks == []


async def test_lifecycle_close_twice_use_after_close_and_unused_clients(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with reported_unclosed(caplog) as leaks:
        async with Emulator(**PHASES) as emu:
            never_used = AimlopsClient(emu.url, emu.credentials)
            await never_used.close()

            client = AimlopsClient(emu.url, emu.credentials, **CLIENT)
            await client.platforms.list().to_list()
            await client.close()
            await client.close()
            with pytest.raises(AimlopsError, match="closed"):
                await client.platforms.list().to_list()
            assert client._session._session is None

            with pytest.raises(RuntimeError, match="boom"):
                async with AimlopsClient(emu.url, emu.credentials, **CLIENT) as inner:
                    await inner.platforms.list().to_list()
                    raise RuntimeError("boom")
            assert inner.closed and inner._session._session is None
    assert leaks == []


async def test_the_unclosed_check_does_see_a_leak(caplog: pytest.LogCaptureFixture) -> None:
    """The check above is not vacuous: a session nobody closes is reported."""
    with reported_unclosed(caplog) as leaks:
        leaked: aiohttp.ClientSession | None = aiohttp.ClientSession()
        assert leaked is not None
        leaked = None
    assert any("Unclosed client session" in line for line in leaks)
