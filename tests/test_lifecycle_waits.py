"""Waits that never guess and never stall: deletion confirmed, writes whose answer was lost, a
server's long Retry-After, unreadable listing items, failures named, the not-found grace, and
deleting a platform that is already being deleted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from test_lifecycle_watch import AnswerLosingProxy
from virtual_time import VirtualTime
from wire import serving

from aimlops_async import (
    AimlopsClient,
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    Credentials,
    NotFoundError,
    RateLimitError,
    WaiterTimeoutError,
)
from aimlops_async.converter import structure_answer
from aimlops_async.emulator import Emulator
from aimlops_async.models import PlatformListPage

FAST = {"creating_seconds": 0.1, "installing_seconds": 0.1, "updating_seconds": 0.1,
        "deleting_seconds": 0.1}
FAST_CLIENT: dict[str, Any] = {"poll_delay": 0.02, "poll_max_delay": 0.1, "poll_timeout": 15.0,
                               "retry_base_delay": 0.01, "retry_max_delay": 0.05, "timeout": 5.0}
LIST_ROUTE = "GET /v1/aimlops-platform"
DELETE_ROUTE = "DELETE /v1/aimlops-platform/{release_id}"
PUT_ROUTE = "PUT /v1/aimlops-platform/{release_id}"


def requests_to(emu: Emulator, route: str) -> int:
    return emu.stats.requests.get(route, 0)


# --------------------------------------------------------------------------- a scripted service


def detail(release_id: str, state: str, *, created: str = "2024-05-17T00:00:00Z") -> dict[str, Any]:
    return {"release_id": release_id, "release_name": f"name-{release_id}", "release_state": state,
            "modified_dt": "2024-05-17T00:23:17Z", "created_dt": created, "cluster_state": "RUNNING"}


def summary(release_id: str, state: str, *, created: str = "2024-05-17T00:00:00Z") -> dict[str, Any]:
    return {"release_id": release_id, "release_name": f"name-{release_id}", "status": state,
            "modified_dt": "2024-05-17T00:23:17Z", "created_dt": created}


@attrs.define
class Script:
    """What the scripted service answers: per release id, a list of GET answers (the last one
    repeats); ``listing`` is the listing's items. ``gets`` and ``lists`` count the calls."""

    answers: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = attrs.Factory(dict)
    listing: list[dict[str, Any]] = attrs.Factory(list)
    gets: dict[str, int] = attrs.Factory(dict)
    lists: int = 0

    def answer(self, release_id: str, status: int, body: dict[str, Any], **headers: str) -> None:
        self.answers.setdefault(release_id, []).append((status, body, headers))


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Script, str]]:
    """A misbehaving service on loopback: GET {release_id} from a script, and a listing."""
    script = Script()

    async def get(request: web.Request) -> web.Response:
        release_id = request.match_info["release_id"]
        script.gets[release_id] = script.gets.get(release_id, 0) + 1
        queue = script.answers[release_id]
        status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
        return web.json_response(body, status=status, headers=headers)

    async def listing(request: web.Request) -> web.Response:
        script.lists += 1
        name = request.query.get("release_name")
        items = [item for item in script.listing if not name or name in item["release_name"]]
        size = int(request.query.get("size", "20"))
        page = int(request.query.get("page", "0"))
        return web.json_response({
            "contents": items[page * size:(page + 1) * size], "total_count": len(items),
        })

    app = web.Application()
    app.router.add_get("/v1/aimlops-platform", listing)
    app.router.add_get("/v1/aimlops-platform/{release_id}", get)
    async with serving(app) as url:
        yield script, url


def scripted_client(url: str, time: VirtualTime, **settings: Any) -> AimlopsClient:
    client = AimlopsClient(url, Credentials("ak", "sk"), **{**FAST_CLIENT, **settings})
    client.platforms.timing = time.timing
    return client


def error_body(code: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "title": code, "detail": ["scripted"], "status": "x"}]}


# --------------------------------------------------------------------------- deletion confirmed


async def test_delete_and_wait_ends_on_the_live_services_400_once_a_listing_confirms() -> None:
    async with Emulator(**FAST, missing_release_status=400) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        created = await client.platforms.create_and_wait(emu.sample_create_request("gone-400"))
        assert created.release_id
        lists_before = requests_to(emu, LIST_ROUTE)

        assert await client.platforms.delete_and_wait(created.release_id) is None

        assert emu.platforms() == []
        assert emu.stats.statuses[400] >= 1  # the service said "missing" with a 400 ...
        assert requests_to(emu, LIST_ROUTE) > lists_before  # ... which a listing confirmed


async def test_a_wait_after_this_clients_delete_takes_the_400_as_gone() -> None:
    async with Emulator(**FAST, missing_release_status=400) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        created = await client.platforms.create_and_wait(emu.sample_create_request("gone-later"))
        assert created.release_id
        await client.platforms.delete(created.release_id)
        await asyncio.sleep(0.3)  # gone before the wait's first look

        await client.platforms.wait_until_deleted(created.release_id)

        assert emu.platforms() == []


async def test_a_400_for_a_release_never_seen_never_ends_a_wait_as_deleted() -> None:
    async with Emulator(**FAST, missing_release_status=400) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        with pytest.raises(BadRequestError):
            await client.platforms.wait_until_deleted("0" * 32)
        assert requests_to(emu, LIST_ROUTE) == 0  # nothing to confirm: it was never seen


async def test_the_gateway_page_never_ends_a_wait_as_deleted() -> None:
    async with Emulator(**FAST, gateway_auth_failures=True) as emu:
        async with AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
            created = await client.platforms.create_and_wait(emu.sample_create_request("kept"))
        assert created.release_id
        wrong = Credentials(emu.credentials.access_key, "not-the-secret", emu.credentials.account_id)
        async with AimlopsClient(emu.url, wrong, **FAST_CLIENT) as client:
            with pytest.raises(AuthenticationError) as caught:
                await client.platforms.wait_until_deleted(created.release_id)
        assert caught.value.status == 404 and caught.value.code == "GATEWAY_REFUSED"
        assert [p["release_id"] for p in emu.platforms()] == [created.release_id]


async def test_concurrent_deletes_on_the_shared_poller_confirm_each_400() -> None:
    async with Emulator(**FAST, missing_release_status=400) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        created = await asyncio.gather(*(
            client.platforms.create_and_wait(emu.sample_create_request(f"many-{n}")) for n in range(6)
        ))
        ids = [detail.release_id for detail in created]
        assert all(ids)

        await asyncio.gather(*(client.platforms.delete_and_wait(rid) for rid in ids if rid))

        assert emu.platforms() == []
        assert client.platforms.poller.waiting == 0


async def test_a_400_for_a_platform_the_listing_still_shows_is_not_deleted(
    scripted: tuple[Script, str],
) -> None:
    script, url = scripted
    script.answer("r1", 200, detail("r1", "DELETING"))
    script.answer("r1", 400, error_body("BAD_REQUEST"))
    script.listing = [summary("r1", "DELETING")]
    time = VirtualTime()
    async with scripted_client(url, time) as client:
        with pytest.raises(WaiterTimeoutError) as caught:
            await client.platforms.wait_until_deleted("r1", timeout=30)
    assert isinstance(caught.value.last_error, BadRequestError)
    assert script.lists >= 1  # each 400 was checked against the listing, which showed r1
    assert "400" in str(caught.value)


@pytest.mark.parametrize(("listed", "deleted"), [(True, False), (False, True)])
async def test_a_404_that_is_not_the_services_is_confirmed_by_the_listing(
    scripted: tuple[Script, str], listed: bool, deleted: bool
) -> None:
    script, url = scripted
    script.answer("r1", 200, detail("r1", "DELETING"))
    script.answer("r1", 404, {"message": "no route"})  # no error code: not the service's answer
    script.listing = [summary("r1", "DELETING")] if listed else []
    time = VirtualTime()
    async with scripted_client(url, time) as client:
        if deleted:
            await client.platforms.wait_until_deleted("r1", timeout=30)
        else:
            with pytest.raises(WaiterTimeoutError) as caught:
                await client.platforms.wait_until_deleted("r1", timeout=30)
            assert isinstance(caught.value.last_error, NotFoundError)
    assert script.lists >= 1


# --------------------------------------------------------------------------- lost answers


@pytest.mark.faults
@pytest.mark.parametrize("method", [b"PUT", b"DELETE"])
async def test_a_change_applied_whose_answer_was_lost_is_waited_for_despite_lagging_reads(
    method: bytes,
) -> None:
    # Margins of seconds: the look and the re-send come within the lag and the operation.
    phases = {**FAST, "updating_seconds": 2.0, "deleting_seconds": 2.0}
    async with Emulator(**phases, visibility_lag=1.0) as emu:
        async with AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as direct:
            before = await direct.platforms.create_and_wait(emu.sample_create_request("lagging"))
        assert before.release_id and before.modified_dt
        await asyncio.sleep(1.1)  # let reads catch up with the deployment
        proxy = AnswerLosingProxy(int(emu.url.rsplit(":", 1)[1]), method)
        async with proxy as url, AimlopsClient(url, emu.credentials, **FAST_CLIENT) as client:
            if method == b"PUT":
                after = await client.platforms.update_and_wait(
                    before.release_id, {"ai_ml_ops_platform_endpoint_type": "Public"}
                )
                assert after.release_state == "DEPLOYED"
                assert after.ai_ml_ops_platform_endpoint_type == "Public"
            else:
                await client.platforms.delete_and_wait(before.release_id)
                assert emu.platforms() == []
    assert proxy.lost == 1
    # The lagging read could not show the change, so it was sent again and refused: "already
    # running" after an unknown outcome means the first copy landed.
    assert requests_to(emu, PUT_ROUTE if method == b"PUT" else DELETE_ROUTE) == 2
    assert emu.stats.statuses[400] == 1


# --------------------------------------------------------------------------- never stall


@pytest.mark.faults
@pytest.mark.parametrize("status", [429, 503])
async def test_a_retry_after_of_a_day_is_capped_by_max_retry_after(
    scripted: tuple[Script, str], status: int
) -> None:
    script, url = scripted
    script.answer("r1", status, error_body("BUSY"), **{"Retry-After": "86400"})
    script.answer("r1", 200, detail("r1", "DEPLOYED"))
    time = VirtualTime()
    async with scripted_client(url, time, max_retry_after=20) as client:
        ready = await client.platforms.wait_until_deployed("r1", timeout=3600)
    assert ready.release_state == "DEPLOYED"
    assert max(time.slept) <= 20  # the client's cap, not the server's day
    assert 20 in time.slept  # but the server's delay was honoured up to that cap


@pytest.mark.faults
async def test_a_wait_never_sleeps_past_its_deadline(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    script.answer("r1", 429, error_body("THROTTLED"), **{"Retry-After": "86400"})
    time = VirtualTime()
    async with scripted_client(url, time) as client:  # max_retry_after: 60 s
        with pytest.raises(WaiterTimeoutError) as caught:
            await client.platforms.wait_until_deployed("r1", timeout=100)
    assert sum(time.slept) <= 100  # polls at 0 and 60 s, then the rest of the time, no more
    assert script.gets["r1"] == 2
    assert isinstance(caught.value.last_error, RateLimitError)


@pytest.mark.faults
async def test_one_unreadable_listing_item_stalls_no_wait(
    scripted: tuple[Script, str], caplog: pytest.LogCaptureFixture
) -> None:
    script, url = scripted
    ids = [f"r{n}" for n in range(8)]
    for rid in ids:
        script.answer(rid, 200, detail(rid, "DEPLOYED"))
    script.listing = [summary(rid, "DEPLOYED") for rid in ids]
    script.listing[3]["created_dt"] = "not a time"  # one item nobody can read
    time = VirtualTime()
    async with scripted_client(url, time) as client:
        with caplog.at_level(logging.WARNING):
            done = await asyncio.gather(*(
                client.platforms.wait_until_deployed(rid, timeout=60) for rid in ids
            ))
        stats = client.platforms.poller.stats
    assert [d.release_id for d in done] == ids
    assert stats.pages >= 1  # the listing was read, and served the waits it could tell about
    assert script.gets["r3"] >= 1  # the unreadable one was read with GET
    skipped = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert skipped and "'r3'" in skipped[0].getMessage()


_UNREADABLE_TIMES = st.sampled_from(["not a time", "2024-13-45T99:00:00Z", "", "yesterday"])


@pytest.mark.faults
@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), _UNREADABLE_TIMES), min_size=0, max_size=30))
def test_a_page_keeps_every_item_it_can_read(bad_times: list[str | None]) -> None:
    """Whatever items of a page cannot be read, the others are all there, in order."""
    items = []
    for number, bad in enumerate(bad_times):
        item = summary(f"r{number}", "DEPLOYED")
        if bad:  # "" is the service's "no time", which reads as None: a readable item
            item["created_dt"] = bad
        items.append(item)
    page = structure_answer({"contents": items, "total_count": len(items)}, PlatformListPage)
    readable = [f"r{n}" for n, bad in enumerate(bad_times) if not bad]
    assert [item.release_id for item in page.contents or ()] == readable


# --------------------------------------------------------------------------- failures named


async def test_an_unreachable_endpoint_is_named_once_and_in_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nothing listens there any more
    time = VirtualTime()
    async with scripted_client(f"http://127.0.0.1:{port}", time, max_retries=0) as client:
        with caplog.at_level(logging.INFO, logger="aimlops_async.lifecycle"), \
                pytest.raises(WaiterTimeoutError) as caught:
            await client.platforms.wait_until_deployed("r1", timeout=120)
    error = caught.value
    assert isinstance(error.last_error, APIConnectionError)
    assert "the last poll failed" in str(error) and "APIConnectionError" in str(error)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once, not once per poll
    assert len(time.slept) > 3


async def test_each_new_kind_of_failure_is_logged_once(
    scripted: tuple[Script, str], caplog: pytest.LogCaptureFixture
) -> None:
    script, url = scripted
    for status in (500, 500, 500, 501, 501, 500):
        script.answer("r1", status, error_body("OOPS"))
    script.answer("r1", 200, detail("r1", "DEPLOYED"))
    time = VirtualTime()
    async with scripted_client(url, time, max_retries=0) as client:
        with caplog.at_level(logging.INFO, logger="aimlops_async.lifecycle"):
            ready = await client.platforms.wait_until_deployed("r1")
    assert ready.release_state == "DEPLOYED"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "500" in warnings[0] and "501" in warnings[1]


async def test_a_timeout_after_a_good_reading_carries_no_old_failure(
    scripted: tuple[Script, str],
) -> None:
    script, url = scripted
    script.answer("r1", 500, error_body("OOPS"))
    script.answer("r1", 200, detail("r1", "CREATING"))
    time = VirtualTime()
    async with scripted_client(url, time, max_retries=0) as client:
        with pytest.raises(WaiterTimeoutError) as caught:
            await client.platforms.wait_until_deployed("r1", timeout=60)
    assert caught.value.last_error is None
    assert "last state CREATING" in str(caught.value)


# --------------------------------------------------------------------------- the not-found grace


async def test_a_wait_for_an_id_that_does_not_exist_fails_at_once(
    emulator: Emulator, client: AimlopsClient
) -> None:
    with pytest.raises(NotFoundError):
        await client.platforms.wait_until_deployed("0" * 32)
    assert emulator.stats.statuses[404] == 1


async def test_the_grace_still_covers_a_platform_this_client_created() -> None:
    async with Emulator(**FAST, visibility_lag=2.0) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        answer = await client.platforms.create(emu.sample_create_request("fresh"))
        assert answer.resource_id
        ready = await client.platforms.wait_until_deployed(answer.resource_id)
        assert ready.release_state == "DEPLOYED"
        assert emu.stats.statuses[404] >= 1  # invisible at first, tolerated


async def test_the_grace_when_asked_for_covers_any_id(
    emulator: Emulator, client: AimlopsClient
) -> None:
    with pytest.raises(NotFoundError):
        await client.platforms.wait_until_deployed("0" * 32, not_found_grace=0.2)
    assert emulator.stats.statuses[404] > 1


# --------------------------------------------------------------------------- already deleting


async def test_delete_and_wait_on_a_platform_already_deleting_waits_for_it() -> None:
    async with Emulator(**{**FAST, "deleting_seconds": 0.5}) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        created = await client.platforms.create_and_wait(emu.sample_create_request("doomed"))
        assert created.release_id
        async with AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as other:
            await other.platforms.delete(created.release_id)

        await client.platforms.delete_and_wait(created.release_id)

        assert emu.platforms() == []
        assert requests_to(emu, DELETE_ROUTE) == 1  # joined the delete under way


async def test_delete_and_wait_joins_a_delete_that_lagging_reads_do_not_show_yet() -> None:
    async with Emulator(**{**FAST, "deleting_seconds": 2.0}, visibility_lag=1.0) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        created = await client.platforms.create_and_wait(emu.sample_create_request("lag-delete"))
        assert created.release_id
        await asyncio.sleep(1.1)  # reads have caught up with the deployment
        async with AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as other:
            await other.platforms.delete(created.release_id)

        # Reads still show DEPLOYED: the delete is sent, refused (already deleting), and joined.
        await client.platforms.delete_and_wait(created.release_id)

        assert emu.platforms() == []
        assert requests_to(emu, DELETE_ROUTE) == 2
        assert emu.stats.statuses[400] == 1


async def test_ensure_deleting_joins_a_delete_that_lagging_reads_do_not_show_yet() -> None:
    async with Emulator(**{**FAST, "deleting_seconds": 30.0}, visibility_lag=1.0) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        created = await client.platforms.create_and_wait(emu.sample_create_request("lag-join"))
        assert created.release_id
        await asyncio.sleep(1.1)  # reads have caught up with the deployment
        async with AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as other:
            await other.platforms.delete(created.release_id)

        # Refused as already deleting while reads still show DEPLOYED: joined, not raised.
        await client.platforms.ensure_deleting(created.release_id)

        [platform] = emu.platforms()
        assert platform["release_state"] == "DELETING"
        assert requests_to(emu, DELETE_ROUTE) == 2
        assert emu.stats.statuses[400] == 1


async def test_delete_and_wait_still_refuses_what_cannot_be_deleted() -> None:
    async with Emulator(creating_seconds=30.0) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        answer = await client.platforms.create(emu.sample_create_request("busy"))
        assert answer.resource_id
        with pytest.raises(BadRequestError) as caught:
            await client.platforms.delete_and_wait(answer.resource_id)
        assert caught.value.code == "INVALID_STATE"
