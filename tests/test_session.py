"""Retries on the wire: which failures are retried for which methods, exact attempt counts, Retry-After,
POST never re-sent once it may have reached the server, and the client's call statistics.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from wire import FAST_RETRIES, Reply, WireServer, free_port

from aimlops_async import (
    AimlopsClient,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    ServerError,
)

FIXTURES = Path(__file__).parent / "fixtures"
RID = "10a599e031e749b7b260868f441e862b"
DETAIL = json.loads((FIXTURES / "platform_detail_response.json").read_text(encoding="utf-8"))
CREATED = json.loads((FIXTURES / "create_response.json").read_text(encoding="utf-8"))
CREATE = json.loads((FIXTURES / "create_request.json").read_text(encoding="utf-8"))
UPDATE = {"ai_ml_ops_platform_endpoint_type": "Public"}

Call = Callable[[AimlopsClient], Awaitable[Any]]

GET_CALL = pytest.param(lambda c: c.platforms.get(RID), Reply(200, DETAIL), "GET", id="GET")
# PUT and DELETE start background operations: re-sent only when the answer says the first copy
# was not acted on (429, 503), never after an outcome that is unknown.
CHANGES: list[Any] = [
    pytest.param(lambda c: c.platforms.update(RID, UPDATE), Reply(200, CREATED), "PUT", id="PUT"),
    pytest.param(lambda c: c.platforms.delete(RID), Reply(200), "DELETE", id="DELETE"),
]
IDEMPOTENT: list[Any] = [GET_CALL, *CHANGES]


def fast_client(server: WireServer, **options: Any) -> AimlopsClient:
    return AimlopsClient(server.url, server.credentials, **{**FAST_RETRIES, **options})


async def test_503_then_200_succeeds_in_two_attempts() -> None:
    async with WireServer() as server:
        server.script(Reply(503, {"code": "SERVICE_UNAVAILABLE"}), Reply(200, DETAIL))
        async with fast_client(server) as client:
            detail = await client.platforms.get(RID)
            assert detail.release_id == RID
            assert (client.stats.calls, client.stats.attempts, client.stats.retries) == (1, 2, 1)
        assert len(server.requests) == 2
        assert server.requests[0].raw_path == server.requests[1].raw_path


RETRIED_STATUSES: list[Any] = [
    *(pytest.param(status, *GET_CALL.values, id=f"GET-{status}") for status in (429, 502, 503, 504)),
    # PUT and DELETE only when the answer says the first copy was not acted on.
    *(pytest.param(status, *change.values, id=f"{change.id}-{status}")
      for change in CHANGES for status in (429, 503)),
]


@pytest.mark.parametrize(("status", "call", "success", "method"), RETRIED_STATUSES)
async def test_transient_statuses_are_retried(
    status: int, call: Call, success: Reply, method: str
) -> None:
    async with WireServer() as server:
        server.script(Reply(status, {"code": "BUSY"}), Reply(status), success)
        async with fast_client(server) as client:
            await call(client)
        assert [r.method for r in server.requests] == [method] * 3
        assert all(server.signature_ok(r) for r in server.requests)


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, BadRequestError), (401, AuthenticationError), (404, NotFoundError),
     (409, ConflictError), (500, ServerError), (501, ServerError)],
)
@pytest.mark.parametrize(("call", "success", "method"), IDEMPOTENT)
async def test_other_statuses_are_not_retried(
    status: int, cls: type[APIStatusError], call: Call, success: Reply, method: str
) -> None:
    async with WireServer() as server:
        server.script(Reply(status, {"code": "NO"}), success)
        async with fast_client(server) as client:
            with pytest.raises(cls):
                await call(client)
            assert client.stats.attempts == 1 and client.stats.retries == 0
        assert len(server.requests) == 1


@pytest.mark.parametrize("max_retries", [0, 1, 3])
async def test_max_retries_is_exact_for_statuses(max_retries: int) -> None:
    async with WireServer(default=Reply(503, {"code": "SERVICE_UNAVAILABLE"})) as server:
        async with fast_client(server, max_retries=max_retries) as client:
            with pytest.raises(ServerError) as caught:
                await client.platforms.get(RID)
            assert caught.value.status == 503
            assert client.stats.attempts == max_retries + 1
            assert client.stats.retries == max_retries
        assert len(server.requests) == max_retries + 1


@pytest.mark.parametrize("max_retries", [0, 1, 3])
async def test_max_retries_is_exact_for_dropped_connections(max_retries: int) -> None:
    async with WireServer(default=Reply(drop=True)) as server:
        async with fast_client(server, max_retries=max_retries) as client:
            with pytest.raises(APIConnectionError):
                await client.platforms.get(RID)
            assert client.stats.attempts == max_retries + 1
        assert len(server.requests) == max_retries + 1


@pytest.mark.parametrize(
    "first",
    [pytest.param(Reply(502), id="502"), pytest.param(Reply(504), id="504"),
     pytest.param(Reply(drop=True), id="dropped"), pytest.param(Reply(200, {}, stall=3.0), id="timeout"),
     pytest.param(Reply(200, "{truncated"), id="unreadable-2xx")],
)
@pytest.mark.parametrize(("call", "success", "method"), CHANGES)
async def test_changes_with_an_unknown_outcome_are_not_sent_again(
    first: Reply, call: Call, success: Reply, method: str
) -> None:
    # A second copy would be refused while the first one's operation runs, hiding its success.
    async with WireServer() as server:
        server.script(first, success)
        async with fast_client(server, timeout=0.2) as client:
            with pytest.raises((APIStatusError, APIConnectionError)):
                await call(client)
        assert [r.method for r in server.requests] == [method]


async def test_reads_are_retried_after_a_dropped_connection() -> None:
    async with WireServer() as server:
        server.script(Reply(drop=True), Reply(200, DETAIL))
        async with fast_client(server) as client:
            await client.platforms.get(RID)
            assert client.stats.attempts == 2 and client.stats.retries == 1
        assert [r.method for r in server.requests] == ["GET", "GET"]


async def test_reads_are_retried_after_a_timeout() -> None:
    async with WireServer() as server:
        server.script(Reply(200, {}, stall=3.0), Reply(200, DETAIL))
        async with fast_client(server, timeout=0.2) as client:
            await client.platforms.get(RID)
        assert [r.method for r in server.requests] == ["GET", "GET"]


async def test_timeouts_exhaust_to_api_timeout_error() -> None:
    async with WireServer(default=Reply(200, {}, stall=3.0)) as server:
        async with fast_client(server, timeout=0.1, max_retries=1) as client:
            with pytest.raises(APITimeoutError):
                await client.platforms.get(RID)
        assert len(server.requests) == 2


async def test_429_waits_for_retry_after() -> None:
    async with WireServer() as server:
        server.script(Reply(429, {"code": "TOO_MANY_REQUESTS"}, headers={"Retry-After": "0.3"}),
                      Reply(200, DETAIL))
        async with fast_client(server) as client:
            await client.platforms.get(RID)
        first, second = server.requests
        # Retry-After is a lower bound on the wait, whatever the jittered backoff would say.
        assert second.received_at - first.received_at >= 0.25


async def test_retry_after_above_the_cap_raises_at_once() -> None:
    async with WireServer() as server:
        server.script(Reply(429, {"code": "TOO_MANY_REQUESTS"}, headers={"Retry-After": "120"}),
                      Reply(200, DETAIL))
        async with fast_client(server, max_retry_after=5) as client:
            with pytest.raises(RateLimitError) as caught:
                await client.platforms.get(RID)
            assert caught.value.retry_after == 120
            assert client.stats.retries == 0
        assert len(server.requests) == 1


async def test_503_waits_for_its_retry_after_too() -> None:
    async with WireServer() as server:
        server.script(Reply(503, {"code": "SERVICE_UNAVAILABLE"}, headers={"Retry-After": "0.3"}),
                      Reply(200, DETAIL))
        async with fast_client(server) as client:
            await client.platforms.get(RID)
        first, second = server.requests
        assert second.received_at - first.received_at >= 0.25


async def test_503_retry_after_above_the_cap_raises_at_once_with_retry_after() -> None:
    async with WireServer() as server:
        server.script(Reply(503, {"code": "SERVICE_UNAVAILABLE"}, headers={"Retry-After": "600"}),
                      Reply(200, DETAIL))
        async with fast_client(server, max_retry_after=5) as client:
            with pytest.raises(ServerError) as caught:
                await client.platforms.get(RID)
            assert (caught.value.status, caught.value.retry_after) == (503, 600)
        assert len(server.requests) == 1


async def test_redirects_are_not_followed() -> None:
    # Following one would send the access key and a valid signature to wherever it points.
    async with WireServer() as server:
        server.script(Reply(302, headers={"Location": "http://127.0.0.2:9/elsewhere"}))
        async with fast_client(server) as client:
            with pytest.raises(APIStatusError) as caught:
                await client.platforms.get(RID)
            assert caught.value.status == 302
        assert len(server.requests) == 1


async def test_rate_limit_retries_exhaust_to_rate_limit_error() -> None:
    limited = Reply(429, {"code": "TOO_MANY_REQUESTS"}, headers={"Retry-After": "0"})
    async with WireServer(default=limited) as server:
        async with fast_client(server, max_retries=2) as client:
            with pytest.raises(RateLimitError) as caught:
                await client.platforms.list().to_list()
            assert caught.value.retry_after == 0
        assert len(server.requests) == 3


# --------------------------------------------------------------------------- POST


@pytest.mark.parametrize(
    "failure",
    [
        Reply(503, {"code": "SERVICE_UNAVAILABLE"}), Reply(502, "<html>bad gateway</html>"),
        Reply(504), Reply(500), Reply(429, headers={"Retry-After": "0"}), Reply(drop=True),
        Reply(201, CREATED, stall=3.0), Reply(201, "{truncated"),
    ],
    ids=["503", "502", "504", "500", "429", "dropped", "timeout", "truncated"],
)
async def test_post_is_never_resent_once_it_may_have_arrived(failure: Reply) -> None:
    async with WireServer() as server:
        server.script(failure, Reply(201, CREATED))
        async with fast_client(server, timeout=0.3, max_retries=5) as client:
            with pytest.raises((APIStatusError, APIConnectionError)) as caught:
                await client.platforms.create(CREATE)
            assert client.stats.attempts == 1 and client.stats.retries == 0
        assert [r.method for r in server.requests] == ["POST"]
        if isinstance(caught.value, APIConnectionError):
            assert caught.value.sent is True


async def test_refused_post_is_retried_until_the_server_is_up() -> None:
    """A refused connection never reached the server, so even a create may be sent again."""
    port = free_port()
    server = WireServer(port=port, default=Reply(201, CREATED))
    async with AimlopsClient(
        f"http://127.0.0.1:{port}", server.credentials, max_retries=100, retry_base_delay=0.01,
        retry_max_delay=0.02, timeout=5,
    ) as client:

        async def start_after_a_refusal() -> None:
            # The library offers no event for "a retry is scheduled"; its counter is polled.
            while client.stats.retries < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            await server.start()

        starter = asyncio.create_task(start_after_a_refusal())
        try:
            created = await client.platforms.create(CREATE)
        finally:
            await starter
            await server.stop()
        assert created.resource_id == RID
        assert client.stats.attempts >= 2
    assert [r.method for r in server.requests] == ["POST"]
    assert server.requests[0].json() == CREATE


async def test_refused_post_gives_up_after_max_retries() -> None:
    port = free_port()
    server = WireServer()
    async with AimlopsClient(
        f"http://127.0.0.1:{port}", server.credentials, **FAST_RETRIES, max_retries=2
    ) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.platforms.create(CREATE)
        assert caught.value.sent is False and caught.value.method == "POST"
        assert client.stats.attempts == 3 and client.stats.retries == 2


# --------------------------------------------------------------------------- statistics


async def test_stats_count_calls_attempts_and_retries() -> None:
    async with WireServer(default=Reply(200, DETAIL)) as server:
        server.script(Reply(503), Reply(503))
        async with fast_client(server) as client:
            assert (client.stats.calls, client.stats.attempts, client.stats.retries) == (0, 0, 0)
            for _ in range(3):
                await client.platforms.get(RID)
            assert (client.stats.calls, client.stats.attempts, client.stats.retries) == (3, 5, 2)
            with pytest.raises(Exception):  # noqa: B017 - any error; only the counts matter
                await client.platforms.get("")
            assert client.stats.calls == 3  # refused before sending: no call, no attempt
        assert len(server.requests) == 5


async def test_one_failing_call_does_not_disturb_the_next() -> None:
    async with WireServer() as server:
        server.script(Reply(drop=True), Reply(200, DETAIL))
        async with fast_client(server, max_retries=0) as client:
            with pytest.raises(APIConnectionError):
                await client.platforms.get(RID)
            assert (await client.platforms.get(RID)).release_id == RID


async def test_each_retry_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aimlops_async")
    async with WireServer() as server:
        server.script(Reply(503), Reply(200, DETAIL))
        async with fast_client(server) as client:
            await client.platforms.get(RID)
    retries = [r for r in caplog.records if r.levelno == logging.INFO and "retr" in r.getMessage()]
    assert len(retries) == 1
    message = retries[0].getMessage()
    assert "GET" in message and f"/v1/aimlops-platform/{RID}" in message and "503" in message


async def test_the_error_that_ends_a_call_counts_its_attempts() -> None:
    async with WireServer(default=Reply(503, {"code": "SERVICE_UNAVAILABLE"})) as server:
        async with fast_client(server, max_retries=2) as client:
            with pytest.raises(ServerError) as caught:
                await client.platforms.get(RID)
        assert caught.value.attempts == 3 == len(server.requests)
