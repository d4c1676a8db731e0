"""Concurrent waits on one client share their polls (CONTRACT section 3), in virtual time.

A small loopback service holds a project of platforms whose states the test sets; the client's
waits run on a virtual clock (``VirtualTime``), so rounds, delays and timeouts are driven by the
test, never by the machine's speed. The service counts what each round cost: GETs of one
platform and listing pages.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from virtual_time import VirtualTime
from wire import serving

from aimlops_async import (
    AimlopsClient,
    Credentials,
    NotFoundError,
    TerminalStateError,
    WaiterTimeoutError,
)

BASE = "/v1/aimlops-platform"
# Waits poll every 5 to 10 virtual seconds; nothing here sleeps for real.
CLIENT: dict[str, Any] = {"poll_delay": 5.0, "poll_max_delay": 10.0, "poll_timeout": 600.0,
                          "max_retries": 0}


class Project:
    """The service's side: platforms (oldest first), their states, and the calls they cost."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.gets: dict[str, int] = {}
        self.pages = 0
        self.page_sizes: list[int] = []
        self.list_available = True
        # GETs of these ids wait until ``held`` is set (a round's request kept in flight).
        self.held_ids: set[str] = set()
        self.held = asyncio.Event()
        self.reached_held = asyncio.Event()

    def add(self, count: int, prefix: str = "p", state: str = "CREATING") -> list[str]:
        ids = [f"{prefix}{len(self.states) + index:05d}" for index in range(count)]
        for release_id in ids:
            self.states[release_id] = state
        return ids

    @property
    def total_gets(self) -> int:
        return sum(self.gets.values())

    def detail(self, release_id: str) -> dict[str, Any]:
        return {"release_id": release_id, "release_name": f"name-{release_id}",
                "release_state": self.states[release_id], "modified_dt": "2024-05-17T00:23:17Z"}

    async def get(self, request: web.Request) -> web.Response:
        release_id = request.match_info["release_id"]
        self.gets[release_id] = self.gets.get(release_id, 0) + 1
        if release_id in self.held_ids:
            self.reached_held.set()
            await self.held.wait()
        if release_id not in self.states:
            return web.json_response(
                {"errors": [{"code": "NOT_FOUND", "detail": ["no such release"], "status": 404}]},
                status=404,
            )
        return web.json_response(self.detail(release_id))

    async def list(self, request: web.Request) -> web.Response:
        if not self.list_available:
            return web.json_response({"errors": [{"code": "FORBIDDEN", "status": 403}]}, status=403)
        self.pages += 1
        size = int(request.query.get("size", "20"))
        page = int(request.query.get("page", "0"))
        self.page_sizes.append(size)
        newest_first = list(reversed(self.states))
        chunk = newest_first[page * size:(page + 1) * size]
        return web.json_response({
            "contents": [{"release_id": rid, "release_name": f"name-{rid}", "status": self.states[rid],
                          "modified_dt": "2024-05-17T00:23:17Z"} for rid in chunk],
            "total_count": len(self.states),
        })


@pytest.fixture
async def project() -> AsyncIterator[tuple[Project, str]]:
    service = Project()
    app = web.Application()
    app.router.add_get(BASE + "/{release_id}", service.get)
    app.router.add_get(BASE, service.list)
    async with serving(app) as url:
        yield service, url


def client_on(url: str, time: VirtualTime) -> AimlopsClient:
    client = AimlopsClient(url, Credentials("ak", "sk"), **CLIENT)
    client.platforms.timing = time.timing
    return client


def deploy_after(service: Project, ids: list[str], seconds: float, time: VirtualTime) -> None:
    """The platforms reach DEPLOYED once ``seconds`` of virtual time have passed."""
    due = time.now + seconds

    def advance(slept: float) -> None:
        if time.now + slept >= due:
            for release_id in ids:
                service.states[release_id] = "DEPLOYED"

    time.on_sleep = advance


def poller_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "aimlops-poller"]


# ---------------------------------------------------------------------------- GET or listing


async def test_a_lone_wait_in_a_large_project_costs_one_get_per_round(
    project: tuple[Project, str],
) -> None:
    service, url = project
    service.add(1000)
    (mine,) = service.add(1)
    time = VirtualTime()
    deploy_after(service, [mine], 60.0, time)
    async with client_on(url, time) as client:
        detail = await client.platforms.wait_until_deployed(mine)
    assert detail.release_state == "DEPLOYED"
    assert service.pages == 0  # one wait: a GET is always the cheaper read
    assert service.gets == {mine: service.gets[mine]}
    rounds = client.platforms.poller.stats.rounds
    assert service.gets[mine] == rounds >= 2


async def test_many_waits_in_a_small_project_read_the_listing(project: tuple[Project, str]) -> None:
    service, url = project
    ids = service.add(300)
    time = VirtualTime()
    deploy_after(service, ids, 60.0, time)
    async with client_on(url, time) as client:
        details = await asyncio.gather(*(client.platforms.wait_until_deployed(rid) for rid in ids))
    assert [d.release_id for d in details] == ids
    assert all(d.release_state == "DEPLOYED" for d in details)
    stats = client.platforms.poller.stats
    # Each round walks 3 pages of 100 instead of 300 GETs; the only GETs are the final reads
    # (the platforms that the listing shows DEPLOYED, for the detail each wait returns).
    assert service.pages <= 3 * stats.rounds
    assert all(count == 1 for count in service.gets.values())
    assert service.total_gets + service.pages < 2 * 300
    assert set(service.page_sizes) == {100}


async def test_a_few_waits_in_a_large_project_poll_by_get_after_one_look_at_its_size(
    project: tuple[Project, str],
) -> None:
    service, url = project
    service.add(1000)
    mine = service.add(3)
    time = VirtualTime()
    deploy_after(service, mine, 120.0, time)
    async with client_on(url, time) as client:
        await asyncio.gather(*(client.platforms.wait_until_deployed(rid) for rid in mine))
    # The first page tells the project holds 1,003 platforms: 11 pages cost more than 3 GETs.
    assert service.pages == 1
    rounds = client.platforms.poller.stats.rounds
    assert rounds >= 3
    assert service.total_gets >= 3 * (rounds - 1)


async def test_a_listing_the_client_may_not_read_falls_back_to_gets(
    project: tuple[Project, str],
) -> None:
    service, url = project
    ids = service.add(20)
    service.list_available = False
    time = VirtualTime()
    deploy_after(service, ids, 30.0, time)
    async with client_on(url, time) as client:
        details = await asyncio.gather(*(client.platforms.wait_until_deployed(rid) for rid in ids))
    assert all(d.release_state == "DEPLOYED" for d in details)
    assert service.pages == 0  # the 403 was answered before a page was served
    assert all(count >= 2 for count in service.gets.values())


async def test_each_joined_wait_keeps_its_own_outcome(project: tuple[Project, str]) -> None:
    service, url = project
    deploying = service.add(10)
    failing = service.add(5, prefix="f")
    missing = "gone00001"
    time = VirtualTime()

    def advance(slept: float) -> None:
        if time.now > 1020:
            for rid in deploying:
                service.states[rid] = "DEPLOYED"
            for rid in failing:
                service.states[rid] = "FAILED"

    time.on_sleep = advance
    async with client_on(url, time) as client:
        platforms = client.platforms
        outcomes = await asyncio.gather(
            *(platforms.wait_until_deployed(rid) for rid in deploying),
            *(platforms.wait_until_deployed(rid) for rid in failing),
            platforms.wait_until_deployed(missing, not_found_grace=20.0),
            return_exceptions=True,
        )
    assert all(getattr(o, "release_state", None) == "DEPLOYED" for o in outcomes[:10])
    assert all(isinstance(o, TerminalStateError) and o.state == "FAILED" for o in outcomes[10:15])
    assert isinstance(outcomes[15], NotFoundError)  # a 404 past its grace, judged for that wait only


async def test_a_wait_times_out_in_virtual_time(project: tuple[Project, str]) -> None:
    service, url = project
    ids = service.add(4)
    time = VirtualTime()
    async with client_on(url, time) as client:
        started = time.now
        outcomes = await asyncio.gather(
            *(client.platforms.wait_until_deployed(rid, timeout=100.0) for rid in ids),
            return_exceptions=True,
        )
    assert all(isinstance(o, WaiterTimeoutError) and o.release_id in ids for o in outcomes)
    assert all(isinstance(o, WaiterTimeoutError) and o.last_detail is not None for o in outcomes)
    assert 100.0 <= time.now - started <= 100.0 + 1e-6  # the deadline, not a poll past it
    assert poller_tasks() == []


# ---------------------------------------------------------------------------- cancellation


async def test_cancelling_some_joined_waits_never_disturbs_the_others(
    project: tuple[Project, str],
) -> None:
    service, url = project
    ids = service.add(10)
    time = VirtualTime()
    deploy_after(service, ids, 200.0, time)
    async with client_on(url, time) as client:
        tasks = [asyncio.create_task(client.platforms.wait_until_deployed(rid)) for rid in ids]
        while time.now < 1050:  # let a few rounds go by  # noqa: ASYNC110 - virtual time
            await asyncio.sleep(0)
        for task in tasks[:5]:
            task.cancel()
        await asyncio.wait(tasks[:5])
        assert all(task.cancelled() for task in tasks[:5])
        assert client.platforms.poller.waiting == 5
        reads_of_cancelled = {rid: service.gets.get(rid, 0) for rid in ids[:5]}
        details = await asyncio.gather(*tasks[5:])
        assert [d.release_id for d in details] == ids[5:]
        # The cancelled waits were never read again (listing pages are shared, not theirs).
        assert {rid: service.gets.get(rid, 0) for rid in ids[:5]} == reads_of_cancelled
        assert poller_tasks() == []


async def test_cancelling_every_joined_wait_leaves_nothing_running(
    project: tuple[Project, str],
) -> None:
    service, url = project
    ids = service.add(3)
    time = VirtualTime()
    async with client_on(url, time) as client:
        tasks = [asyncio.create_task(client.platforms.wait_until_deployed(rid)) for rid in ids]
        while time.now < 1030:  # noqa: ASYNC110 - virtual time moves as the poller sleeps
            await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        assert poller_tasks() == []
        assert client.platforms.poller.waiting == 0
        service.states[ids[0]] = "DEPLOYED"
        detail = await client.platforms.wait_until_deployed(ids[0])  # the client stays usable
        assert detail.release_state == "DEPLOYED"
    assert poller_tasks() == []


async def test_a_wait_that_joins_later_is_read_on_its_own_schedule(
    project: tuple[Project, str],
) -> None:
    service, url = project
    slow, quick = service.add(2)
    time = VirtualTime()
    async with client_on(url, time) as client:
        platforms = client.platforms
        slow_wait = asyncio.create_task(platforms.wait_until_deployed(slow, delay=300, max_delay=300))
        while not time.slept:  # noqa: ASYNC110 - until the poller sleeps for the slow wait
            await asyncio.sleep(0)
        service.states[quick] = "DEPLOYED"
        started = time.now
        detail = await platforms.wait_until_deployed(quick)
        assert detail.release_id == quick
        assert service.gets[quick] == 1  # read as soon as it joined, in the round it started
        assert time.now - started < 300  # not held back until the slow wait's turn
        slow_wait.cancel()
        await asyncio.wait([slow_wait])
    assert poller_tasks() == []


async def test_a_round_never_reads_more_pages_than_the_gets_it_replaces(
    project: tuple[Project, str],
) -> None:
    service, url = project
    oldest = service.add(6, prefix="o")  # newest first, these sit on the last of 11 pages
    service.add(1000)
    time = VirtualTime()
    deploy_after(service, oldest, 30.0, time)
    async with client_on(url, time) as client:
        await asyncio.gather(*(client.platforms.wait_until_deployed(rid) for rid in oldest))
        rounds = client.platforms.poller.stats.rounds
    # The first round learns the size (11 pages for 6 waits: GETs are cheaper) within its budget
    # of 5 pages; every later round reads by GET.
    assert 1 <= service.pages <= 5
    assert all(count >= rounds - 1 for count in (service.gets[rid] for rid in oldest))


async def test_waits_until_deleted_share_the_listing_and_end_on_the_404(
    project: tuple[Project, str],
) -> None:
    service, url = project
    ids = service.add(50, state="DELETING")
    time = VirtualTime()

    def delete_later(_slept: float) -> None:
        if time.now > 1040:
            for rid in ids:
                service.states.pop(rid, None)

    time.on_sleep = delete_later
    async with client_on(url, time) as client:
        results = await asyncio.gather(*(client.platforms.wait_until_deleted(rid) for rid in ids))
    assert results == [None] * 50
    assert service.pages >= 1  # DELETING was read from the listing, not with 50 GETs a round
    # A platform missing from the listing is read once with GET: the 404 ends its wait.
    assert all(service.gets[rid] == 1 for rid in ids)


async def test_deleting_ends_a_wait_until_deployed(project: tuple[Project, str]) -> None:
    service, url = project
    (release_id,) = service.add(1, state="DELETING")
    async with client_on(url, VirtualTime()) as client:
        with pytest.raises(TerminalStateError) as caught:
            await client.platforms.wait_until_deployed(release_id)
    assert caught.value.state == "DELETING"


async def test_a_wait_without_a_deadline_joins_like_any_other(project: tuple[Project, str]) -> None:
    service, url = project
    ids = service.add(3)
    time = VirtualTime()
    deploy_after(service, ids, 5000.0, time)  # longer than the client's poll_timeout of 600 s
    async with client_on(url, time) as client:
        details = await asyncio.gather(
            *(client.platforms.wait_until_deployed(rid, timeout=math.inf) for rid in ids)
        )
    assert [d.release_state for d in details] == ["DEPLOYED"] * 3
    assert poller_tasks() == []


class HeldTime(VirtualTime):
    """Virtual time whose sleeps wait until the test opens ``gate``: the poller stays asleep."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.asleep = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.asleep.set()
        await self.gate.wait()
        await super().sleep(seconds)


async def test_a_wait_joining_during_a_round_never_cancels_the_round(
    project: tuple[Project, str],
) -> None:
    service, url = project
    first, second, third = service.add(3)
    time = HeldTime()
    service.held_ids = {second, third}  # their GETs stay in flight until `held` is set
    async with client_on(url, time) as client:
        waits = [asyncio.create_task(client.platforms.wait_until_deployed(first))]
        await asyncio.wait_for(time.asleep.wait(), 30)  # the first round read `first`; asleep now
        assert service.gets == {first: 1}
        # A wait due now wakes the sleeping poller: a new round starts and reads `second`.
        waits.append(asyncio.create_task(client.platforms.wait_until_deployed(second)))
        await asyncio.wait_for(service.reached_held.wait(), 30)
        # A third wait joins while that round's GET is in flight: it must wait for the round.
        waits.append(asyncio.create_task(client.platforms.wait_until_deployed(third)))
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert service.gets.get(second) == 1 and third not in service.gets
        for release_id in (first, second, third):
            service.states[release_id] = "DEPLOYED"
        service.held.set()
        time.gate.set()
        details = await asyncio.gather(*waits)
    assert [detail.release_state for detail in details] == ["DEPLOYED"] * 3
    assert service.gets[second] == 1  # the round in flight was never cancelled and sent again


# ---------------------------------------------------------------------------- watch() joins too


async def test_watches_iterated_together_share_the_listing_and_get_only_their_news(
    project: tuple[Project, str],
) -> None:
    service, url = project
    ids = service.add(30)
    time = VirtualTime()

    def advance(_slept: float) -> None:
        for rid in ids:
            service.states[rid] = "INSTALLING" if time.now < 1040 else "DEPLOYED"

    async def follow(client: AimlopsClient, release_id: str) -> list[str]:
        return [str(detail.release_state) async for detail in client.platforms.watch(release_id)]

    time.on_sleep = advance
    async with client_on(url, time) as client:
        seen = await asyncio.gather(*(follow(client, rid) for rid in ids))
        assert poller_tasks() == []
    assert seen == [["CREATING", "INSTALLING", "DEPLOYED"]] * 30
    rounds = client.platforms.poller.stats.rounds
    assert rounds >= 4 and service.pages >= rounds  # every round read the listing
    # A GET only where the listing showed a new state, for the detail each step yields.
    assert service.gets == {rid: 3 for rid in ids}


async def test_between_the_steps_of_a_watch_nothing_runs(project: tuple[Project, str]) -> None:
    service, url = project
    (release_id,) = service.add(1)
    time = VirtualTime()
    async with client_on(url, time) as client:
        watch = client.platforms.watch(release_id)
        first = await anext(watch)
        assert first.release_state == "CREATING"
        assert poller_tasks() == [] and client.platforms.poller.waiting == 0
        slept, gets = list(time.slept), dict(service.gets)
        for _ in range(50):
            await asyncio.sleep(0)
        assert time.slept == slept and service.gets == gets  # no poll, no sleep in between
        service.states[release_id] = "DEPLOYED"
        last = await anext(watch)
        assert last.release_state == "DEPLOYED" and watch.outcome == "success"
        assert poller_tasks() == []
        with pytest.raises(StopAsyncIteration):
            await anext(watch)
