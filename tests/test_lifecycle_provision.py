"""provision_many (CONTRACT section 4) on the emulator: idempotency, faults, cancellation, fleet polling."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from virtual_time import VirtualTime
from wire import FAST_RETRIES, Recorded, Reply, WireServer

from aimlops_async import (
    AimlopsClient,
    AimlopsError,
    APIStatusError,
    PlatformDetail,
    ProvisionEvent,
    ProvisionResult,
    ProvisionTotals,
    TerminalStateError,
    ValidationError,
    WaiterTimeoutError,
)
from aimlops_async.emulator import Emulator, Faults
from aimlops_async.lifecycle import provision as provision_module
from aimlops_async.lifecycle.platforms import Platforms

FAST = {"creating_seconds": 0.15, "installing_seconds": 0.15, "deleting_seconds": 0.1}
FAST_CLIENT: dict[str, Any] = {"poll_delay": 0.02, "poll_max_delay": 0.1, "poll_timeout": 15.0,
                               "retry_base_delay": 0.01, "retry_max_delay": 0.05, "timeout": 5.0}
LIST = "GET /v1/aimlops-platform"
CREATE = "POST /v1/aimlops-platform"
GET_ONE = "GET /v1/aimlops-platform/{release_id}"
CHECK_DUPLICATION = "GET /v1/aimlops-platform/check-duplication"
# About 15% of all requests fail in one of the ways a real network and service do.
FAULTS = {"error_rate": 0.03, "rate_limit_rate": 0.03, "retry_after": 0.05, "drop_rate": 0.03,
          "ambiguous_create_rate": 0.03, "malformed_rate": 0.03}


@contextlib.asynccontextmanager
async def emulator_and_client(**emulator: Any) -> AsyncIterator[tuple[Emulator, AimlopsClient]]:
    client_options = emulator.pop("client", {})
    async with Emulator(**{**FAST, **emulator}) as emu, AimlopsClient(
        emu.url, emu.credentials, **{**FAST_CLIENT, **client_options}
    ) as client:
        yield emu, client


def requests_for(emu: Emulator, names: list[str]) -> list[dict[str, Any]]:
    return [emu.sample_create_request(name) for name in names]


def bulk_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("aimlops-bulk")]


def assert_no_duplicates(emu: Emulator) -> None:
    assert emu.stats.creates, "nothing was created"
    assert set(emu.stats.creates.values()) == {1}, emu.stats.creates.most_common(3)


def assert_reports_every_live_platform(emu: Emulator, results: list[ProvisionResult]) -> None:
    live = {platform["release_name"]: platform["release_id"] for platform in emu.platforms()}
    reported = {result.release_name: result.release_id for result in results if result.release_id}
    assert reported == live


# ---------------------------------------------------------------------------- outcomes


async def test_every_platform_deploys_and_results_keep_input_order(
    emulator: Emulator, client: AimlopsClient
) -> None:
    names = [f"order-{i:02d}" for i in range(30)][::-1]  # not the server's listing order
    events: list[ProvisionEvent] = []

    results = await client.platforms.provision_many(
        requests_for(emulator, names), concurrency=8, on_event=events.append
    )

    assert [result.release_name for result in results] == names
    for result in results:
        assert result.ok and result.created and result.error is None
        assert result.state == "DEPLOYED"
        assert isinstance(result.detail, PlatformDetail)
        assert result.detail.release_name == result.release_name
        assert result.detail.release_id == result.release_id
    assert_no_duplicates(emulator)
    assert_reports_every_live_platform(emulator, results)
    by_index: dict[int, list[str]] = {}
    for event in events:
        by_index.setdefault(event.index, []).append(event.kind)
    for kinds in by_index.values():
        assert kinds[0] == "validated" and kinds[-1] == "deployed"
        assert kinds.index("creating") < kinds.index("created") < kinds.index("deployed")
    last = events[-1]
    assert last.totals == ProvisionTotals(total=30, created=30, deployed=30)
    assert last.result is results[last.index]


async def test_injected_failures_end_only_their_platforms_and_a_rerun_reports_them_again() -> None:
    async with emulator_and_client(fail_pattern=r"^bad-") as (emu, client):
        names = [f"bad-{i}" if i % 4 == 0 else f"good-{i}" for i in range(16)]

        results = await client.platforms.provision_many(requests_for(emu, names))

        for name, result in zip(names, results, strict=True):
            if name.startswith("bad-"):
                assert not result.ok and result.state == "FAILED"
                assert isinstance(result.error, TerminalStateError)
                assert result.error.release_id == result.release_id
                assert result.error.last_detail is not None
                assert result.error.last_detail.release_state == "FAILED"
                assert result.detail is result.error.last_detail
            else:
                assert result.ok and result.state == "DEPLOYED"

        rerun = await client.platforms.provision_many(requests_for(emu, names))

        assert [result.release_id for result in rerun] == [result.release_id for result in results]
        assert not any(result.created for result in rerun)
        assert [result.ok for result in rerun] == [result.ok for result in results]
        assert_no_duplicates(emu)


async def test_a_rerun_adopts_everything_and_creates_nothing(
    emulator: Emulator, client: AimlopsClient
) -> None:
    requests = requests_for(emulator, [f"again-{i}" for i in range(20)])
    first = await client.platforms.provision_many(requests)
    posts_before = emulator.stats.requests[CREATE]

    second = await client.platforms.provision_many(requests)

    assert emulator.stats.requests[CREATE] == posts_before
    assert all(result.ok and not result.created for result in second)
    assert [result.release_id for result in second] == [result.release_id for result in first]
    assert all(result.detail is not None for result in second)
    assert_no_duplicates(emulator)


async def test_wait_false_returns_after_the_creates(emulator: Emulator, client: AimlopsClient) -> None:
    events: list[ProvisionEvent] = []
    results = await client.platforms.provision_many(
        requests_for(emulator, [f"nowait-{i}" for i in range(10)]), wait=False, on_event=events.append
    )

    assert all(result.ok and result.created and result.release_id for result in results)
    assert all(result.detail is None for result in results)
    assert emulator.stats.requests[GET_ONE] == 0
    finals = [event for event in events if event.result is not None]
    assert sorted(event.index for event in finals) == list(range(10))
    assert {event.kind for event in finals} == {"created"}


async def test_a_platform_past_its_timeout_gets_a_waiter_timeout_result() -> None:
    async with emulator_and_client(creating_seconds=60.0) as (emu, client):
        results = await client.platforms.provision_many(requests_for(emu, ["slow-1", "slow-2"]), timeout=0.3)

    for result in results:
        assert isinstance(result.error, WaiterTimeoutError)
        assert isinstance(result.error, TimeoutError)
        assert result.created and result.release_id == result.error.release_id
        assert result.state == "CREATING"


async def test_a_bulk_wait_whose_reads_keep_failing_names_the_failure_when_it_times_out() -> None:
    async with emulator_and_client(creating_seconds=60.0) as (emu, client):

        created: list[str] = []

        def outage(event: Any) -> None:
            if event.kind == "created":
                created.append(event.release_id)
                if len(created) == 2:
                    emu.faults = Faults(error_rate=1.0)  # every call from now on fails

        results = await client.platforms.provision_many(
            requests_for(emu, ["dark-1", "dark-2"]), timeout=0.5, on_event=outage
        )

    for result in results:
        assert isinstance(result.error, WaiterTimeoutError)
        assert isinstance(result.error.last_error, APIStatusError)
        assert result.error.last_error.status >= 500
        assert "the last poll failed" in str(result.error)


# ---------------------------------------------------------------------------- input checks


async def test_invalid_and_repeated_requests_are_refused_without_being_sent(
    emulator: Emulator, client: AimlopsClient
) -> None:
    bad_email = emulator.sample_create_request("bad-email")
    bad_email["ai_ml_ops_platform_create_request"]["initial_user_email"] = "not-an-address"
    unknown_key = emulator.sample_create_request("unknown-key")
    unknown_key["surprise"] = 1
    requests: list[Any] = [
        emulator.sample_create_request("fine-1"),
        bad_email,
        unknown_key,
        "not a request",
        emulator.sample_create_request("Not_A_DNS_Label"),
        emulator.sample_create_request("fine-1"),  # the same name again
        emulator.sample_create_request("fine-2"),
    ]

    results = await client.platforms.provision_many(requests)

    assert [result.ok for result in results] == [True, False, False, False, False, False, True]
    for result in results[1:6]:
        assert isinstance(result.error, ValidationError)
        assert result.release_id is None and not result.created
    assert "initial_user_email" in str(results[1].error)
    assert "surprise" in str(results[2].error)
    assert results[3].release_name is None
    assert "index 0" in str(results[5].error)
    assert set(emulator.stats.creates) == {"fine-1", "fine-2"}
    assert emulator.stats.statuses[400] == 0  # nothing invalid reached the server


async def test_arguments_are_checked_before_anything_is_sent(
    emulator: Emulator, client: AimlopsClient
) -> None:
    one = emulator.sample_create_request("alone")
    with pytest.raises(ValidationError, match="requests"):
        await client.platforms.provision_many(one)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="concurrency"):
        await client.platforms.provision_many([one], concurrency=0)
    with pytest.raises(ValidationError, match="timeout"):
        await client.platforms.provision_many([one], timeout=-1)
    assert emulator.stats.total == 0
    assert await client.platforms.provision_many([]) == []


def _parameters(function: Any) -> list[tuple[str, Any, Any]]:
    # Names, kinds and defaults: annotations are strings that may spell the same type differently.
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()][1:]


def test_the_client_method_has_the_signature_of_provision_many() -> None:
    assert _parameters(Platforms.provision_many) == _parameters(provision_module.provision_many)
    assert _parameters(Platforms.provision_events) == _parameters(provision_module.provision_events)


# ---------------------------------------------------------------------------- idempotency under faults


@pytest.mark.parametrize(
    ("seed", "visibility_lag", "details"), [(1, 0.0, True), (2, 0.3, True), (3, 0.3, False)]
)
async def test_under_faults_every_request_gets_a_result_and_nothing_is_created_twice(
    seed: int, visibility_lag: float, details: bool
) -> None:
    # Which request draws which fault depends on arrival order; at 10 % of 60 creates an
    # ambiguous create is all but certain (0.9**60 < 0.2 %), so the check below does not flake.
    faults = Faults(seed=seed, **{**FAULTS, "ambiguous_create_rate": 0.10})
    async with emulator_and_client(faults=faults, visibility_lag=visibility_lag, seed=seed) as (emu, client):
        names = [f"fault-{i:03d}" for i in range(60)]

        results = await client.platforms.provision_many(
            requests_for(emu, names), not_found_grace=1.0, details=details
        )

        assert [result.release_name for result in results] == names
        assert all(result.ok for result in results), [str(r.error) for r in results if not r.ok]
        assert all(result.created for result in results)
        assert {result.state for result in results} == {"DEPLOYED"}
        if details:
            assert all(isinstance(result.detail, PlatformDetail) for result in results)
        assert emu.stats.faults["ambiguous_create"] > 0 and emu.stats.faults["drop"] > 0
        assert_no_duplicates(emu)
        assert_reports_every_live_platform(emu, results)

        rerun = await client.platforms.provision_many(
            requests_for(emu, names), not_found_grace=1.0, details=details
        )

        assert all(result.ok and not result.created for result in rerun)
        assert_no_duplicates(emu)
        assert_reports_every_live_platform(emu, rerun)


async def test_a_name_created_elsewhere_and_not_yet_listed_is_adopted_not_duplicated() -> None:
    async with emulator_and_client(visibility_lag=0.5) as (emu, client):
        for name in ("taken-1", "taken-2"):
            await client.platforms.create(emu.sample_create_request(name))
        names = ["taken-1", "taken-2", "taken-3"]

        results = await client.platforms.provision_many(requests_for(emu, names))

        assert [result.created for result in results] == [False, False, True]
        assert all(result.ok for result in results)
        assert emu.stats.statuses[400] == 2  # the two DUPLICATE_RELEASE_NAME answers
        assert_no_duplicates(emu)
        assert_reports_every_live_platform(emu, results)


# ---------------------------------------------------------------------------- cancellation


async def test_cancelling_midway_leaves_nothing_running_and_a_rerun_finishes_the_job() -> None:
    async with emulator_and_client(faults=Faults(latency=0.01)) as (emu, client):
        names = [f"cancel-{i:02d}" for i in range(40)]
        midway = asyncio.Event()

        def on_event(event: ProvisionEvent) -> None:
            if event.totals.created >= 12:
                midway.set()

        run = asyncio.create_task(client.platforms.provision_many(
            requests_for(emu, names), concurrency=4, on_event=on_event
        ))
        await midway.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert bulk_tasks() == []
        await asyncio.sleep(0.1)  # let the server finish any create it had already received
        created_before = set(emu.stats.creates)
        assert 12 <= len(created_before) < len(names)

        results = await client.platforms.provision_many(requests_for(emu, names))

        assert all(result.ok for result in results)
        assert {result.release_name for result in results if not result.created} == created_before
        assert_no_duplicates(emu)
        assert_reports_every_live_platform(emu, results)


async def test_an_error_raised_by_on_event_stops_the_run_and_is_raised(
    emulator: Emulator, client: AimlopsClient
) -> None:
    def on_event(event: ProvisionEvent) -> None:
        if event.kind == "state":
            raise RuntimeError("display broke")

    with pytest.raises(RuntimeError, match="display broke"):
        await client.platforms.provision_many(
            requests_for(emulator, [f"cb-{i}" for i in range(5)]), on_event=on_event
        )
    assert bulk_tasks() == []


async def test_a_run_stopped_by_on_event_never_disturbs_other_waits_of_the_client() -> None:
    async with emulator_and_client(client={"poll_delay": 0.05, "poll_max_delay": 0.1}) as (emu, client):
        created = [await client.platforms.create(emu.sample_create_request(f"own-{i}")) for i in range(2)]
        waits = [asyncio.create_task(client.platforms.wait_until_deployed(str(answer.resource_id)))
                 for answer in created]

        def on_event(event: ProvisionEvent) -> None:
            if event.kind == "state":
                raise RuntimeError("display broke")

        with pytest.raises(RuntimeError, match="display broke"):
            await client.platforms.provision_many(
                requests_for(emu, [f"stopped-{i}" for i in range(5)]), on_event=on_event
            )
        details = await asyncio.gather(*waits)  # the run's error was its own, not theirs

    assert [detail.release_state for detail in details] == ["DEPLOYED"] * 2
    assert bulk_tasks() == []
    assert client.platforms.poller.waiting == 0


# ---------------------------------------------------------------------------- events


async def test_an_async_on_event_is_awaited_and_totals_add_up(
    emulator: Emulator, client: AimlopsClient
) -> None:
    seen: list[ProvisionEvent] = []

    async def on_event(event: ProvisionEvent) -> None:
        await asyncio.sleep(0)
        seen.append(event)

    results = await client.platforms.provision_many(
        requests_for(emulator, [f"evt-{i}" for i in range(6)]), on_event=on_event
    )

    assert all(result.ok for result in results)
    assert Counter(event.kind for event in seen)["deployed"] == 6
    for event in seen:
        totals = event.totals
        assert totals.total == 6
        assert totals.adopted + totals.created >= totals.in_progress + totals.deployed
    assert any(event.kind == "state" and event.state == "INSTALLING" for event in seen)


async def test_provision_events_yields_every_event_and_the_results(
    emulator: Emulator, client: AimlopsClient
) -> None:
    names = [f"iter-{i}" for i in range(5)]
    results: dict[int, ProvisionResult] = {}
    async with contextlib.aclosing(
        client.platforms.provision_events(requests_for(emulator, names))  # type: ignore[type-var]
    ) as events:
        async for event in events:
            if event.result is not None:
                results[event.index] = event.result

    assert sorted(results) == list(range(5))
    assert all(result.ok and result.created for result in results.values())
    assert bulk_tasks() == []


async def test_leaving_provision_events_early_cancels_the_run(
    emulator: Emulator, client: AimlopsClient
) -> None:
    async with contextlib.aclosing(
        client.platforms.provision_events(requests_for(emulator, [f"leave-{i}" for i in range(5)]))  # type: ignore[type-var]
    ) as events:
        async for event in events:
            if event.kind == "created":
                break
    assert bulk_tasks() == []


# ---------------------------------------------------------------------------- fleet polling and limits


async def test_fleet_polling_costs_few_calls_per_platform() -> None:
    async with emulator_and_client(creating_seconds=0.3, installing_seconds=0.3) as (emu, client):
        count = 200
        names = [f"fleet-{i:03d}" for i in range(count)]

        results = await client.platforms.provision_many(requests_for(emu, names), concurrency=32)

        assert all(result.ok for result in results)
        requests = emu.stats.requests
        assert requests[CREATE] == count
        assert requests[GET_ONE] <= count * 1.1  # one GET each for the final detail, not per round
        assert emu.stats.total / count < 6
        assert client.stats.calls / count < 6


def calls_of(emu: Emulator) -> int:
    return sum(emu.stats.requests.values())


@pytest.mark.parametrize("wait", [False, True])
async def test_a_bulk_run_costs_at_most_1_1_calls_per_platform(wait: bool) -> None:
    # Polls slower than the phases: a handful of rounds whatever the machine's speed.
    async with emulator_and_client(
        creating_seconds=0.3, installing_seconds=0.3,
        client={"poll_delay": 0.5, "poll_max_delay": 1.0},
    ) as (emu, client):
        count = 300
        names = [f"cheap-{i:03d}" for i in range(count)]
        attempts_before = client.stats.attempts

        results = await client.platforms.provision_many(
            requests_for(emu, names), concurrency=32, wait=wait, details=False
        )

        assert all(result.ok and result.created for result in results)
        assert all(result.detail is None for result in results)
        if wait:
            assert {result.state for result in results} == {"DEPLOYED"}
        requests = emu.stats.requests
        assert requests[CREATE] == count
        assert requests[CHECK_DUPLICATION] == 0
        assert requests[GET_ONE] == 0
        assert calls_of(emu) / count <= 1.1
        assert (client.stats.attempts - attempts_before) / count <= 1.1
        assert_no_duplicates(emu)


async def test_with_details_each_deployed_platform_costs_one_get_more() -> None:
    async with emulator_and_client(
        creating_seconds=0.3, installing_seconds=0.3,
        client={"poll_delay": 0.5, "poll_max_delay": 1.0},
    ) as (emu, client):
        count = 200
        results = await client.platforms.provision_many(
            requests_for(emu, [f"detailed-{i:03d}" for i in range(count)]), concurrency=32
        )

        assert all(isinstance(result.detail, PlatformDetail) for result in results)
        assert emu.stats.requests[GET_ONE] == count
        assert emu.stats.requests[CHECK_DUPLICATION] == 0
        assert calls_of(emu) / count <= 2.1


async def test_names_that_exist_are_adopted_from_the_listing_without_lookups(
    emulator: Emulator, client: AimlopsClient
) -> None:
    count = 250
    names = [f"known-{i:03d}" for i in range(count)]
    existing = await client.platforms.provision_many(requests_for(emulator, names[::3]), wait=False)
    emulator.stats.reset()

    results = await client.platforms.provision_many(
        requests_for(emulator, names), concurrency=32, wait=False
    )

    ids = {result.release_name: result.release_id for result in existing}
    for name, result in zip(names, results, strict=True):
        assert result.ok
        assert result.created is (name not in ids)
        if name in ids:
            assert result.release_id == ids[name]
    requests = emulator.stats.requests
    assert requests[CHECK_DUPLICATION] == 0
    assert requests[CREATE] == count - len(ids)
    assert requests[LIST] == 1 + len(ids) // 100  # the whole listing, and nothing else
    assert set(emulator.stats.creates.values()) == {1}
    assert_reports_every_live_platform(emulator, results)


async def test_a_rerun_of_a_large_run_costs_a_listing_page_per_100_platforms(
    emulator: Emulator, client: AimlopsClient
) -> None:
    requests = requests_for(emulator, [f"again-large-{i:03d}" for i in range(450)])
    first = await client.platforms.provision_many(requests, concurrency=32, wait=False)
    emulator.stats.reset()

    rerun = await client.platforms.provision_many(requests, concurrency=32, wait=False)

    assert [result.release_id for result in rerun] == [result.release_id for result in first]
    assert not any(result.created for result in rerun)
    assert dict(emulator.stats.requests) == {LIST: 5}


async def test_in_a_project_much_larger_than_the_request_each_name_is_looked_up(
    emulator: Emulator, client: AimlopsClient
) -> None:
    await client.platforms.provision_many(
        requests_for(emulator, [f"big-{i:03d}" for i in range(250)]), concurrency=32, wait=False
    )
    emulator.stats.reset()
    names = ["big-000", "big-001", "big-new"]

    results = await client.platforms.provision_many(
        requests_for(emulator, names), wait=False, page_size=20
    )

    assert [result.created for result in results] == [False, False, True]
    assert all(result.ok for result in results)
    requests = emulator.stats.requests
    # One page tells the listing's 13 pages would cost more than three lookups.
    assert requests[CHECK_DUPLICATION] == 3
    assert requests[LIST] == 1 + 2  # the first page, then a listing for each name that exists
    assert requests[CREATE] == 1


async def test_a_name_created_by_someone_else_after_the_listing_is_adopted(
    emulator: Emulator, client: AimlopsClient
) -> None:
    names = [f"race-{i}" for i in range(6)]
    theirs: dict[str, str | None] = {}

    async def someone_else_creates_it_first(event: ProvisionEvent) -> None:
        if event.kind == "creating" and event.release_name == "race-3" and not theirs:
            answer = await client.platforms.create(emulator.sample_create_request("race-3"))
            theirs["race-3"] = answer.resource_id

    results = await client.platforms.provision_many(
        requests_for(emulator, names), wait=False, on_event=someone_else_creates_it_first
    )

    assert all(result.ok for result in results)
    assert [result.created for result in results] == [True, True, True, False, True, True]
    assert results[3].release_id == theirs["race-3"]
    assert emulator.stats.statuses[400] == 1  # the DUPLICATE_RELEASE_NAME that revealed it
    assert_no_duplicates(emulator)
    assert_reports_every_live_platform(emulator, results)


async def test_names_without_a_common_prefix_are_each_followed_to_their_end(
    emulator: Emulator, client: AimlopsClient
) -> None:
    await client.platforms.provision_many(requests_for(emulator, [f"other-{i}" for i in range(5)]))
    names = ["alpha-1", "bravo-2", "charlie-3", "delta-4"]

    results = await client.platforms.provision_many(requests_for(emulator, names))

    assert all(result.ok and result.created for result in results)
    assert all(result.state == "DEPLOYED" and result.detail is not None for result in results)
    assert_no_duplicates(emulator)
    # The rounds read the project's listing (one page: 9 platforms) and each platform once
    # with GET at the end, for its detail; no per-platform polling.
    poller = client.platforms.poller.stats
    assert poller.pages <= poller.rounds
    assert emulator.stats.requests[GET_ONE] == 5 + len(names)


async def test_a_bulk_run_keeps_to_the_clients_rate_limit() -> None:
    rate = 40.0
    async with emulator_and_client(client={"requests_per_second": rate}) as (emu, client):
        loop = asyncio.get_running_loop()
        started = loop.time()

        results = await client.platforms.provision_many(requests_for(emu, [f"rate-{i}" for i in range(6)]))

        elapsed = loop.time() - started
        assert all(result.ok for result in results)
        # Request starts are spaced 1/rate apart: n requests need at least (n - 1) / rate seconds.
        assert elapsed >= (emu.stats.total - 1) / rate


async def test_errors_that_end_one_platform_are_aimlops_errors(
    emulator: Emulator, client: AimlopsClient
) -> None:
    request = emulator.sample_create_request("no-cluster")
    request["ai_ml_ops_platform_create_request"]["cluster_id"] = "0" * 32

    results = await client.platforms.provision_many([request, emulator.sample_create_request("has-cluster")])

    assert isinstance(results[0].error, AimlopsError)
    assert not isinstance(results[0].error, ValidationError)  # refused by the server, once
    assert emulator.stats.requests[CREATE] == 2
    assert results[1].ok


# ---------------------------------------------------------------------------- servers unlike the emulator


def request_body(name: str) -> dict[str, Any]:
    return {"ai_ml_ops_platform_create_request": {
        "release_name": name, "ai_ml_ops_platform_type": "Enterprise", "image_id": "image",
        "initial_user_email": "admin@example.com", "initial_user_password": "Sample-Passw0rd",
        "cluster_id": "cluster"}}


class OtherServer:
    """A small scripted service whose listing differs from the emulator's: ``release_name``
    filters by exact name, and pages larger than ``max_size`` are refused with a 400."""

    def __init__(
        self, *, max_size: int = 100, deploy_after: float = 0.2, conflict_status: int = 400,
        check_duplication: bool = True, lose_every: int = 0,
    ) -> None:
        self.max_size = max_size
        self.deploy_after = deploy_after
        self.conflict_status = conflict_status  # 409: "already exists" as a conflict
        self.check_duplication = check_duplication  # False: that endpoint answers 404
        self.lose_every = lose_every  # every n-th create happens but its answer is lost
        self.platforms: dict[str, dict[str, Any]] = {}  # by release id
        self.ids = itertools.count(1)
        self.creates: Counter[str] = Counter()

    def __call__(self, request: Recorded) -> Reply:
        base = "/v1/aimlops-platform"
        if request.method == "POST" and request.path == base:
            return self.create(request.json()["ai_ml_ops_platform_create_request"]["release_name"])
        if request.path == f"{base}/check-duplication" and not self.check_duplication:
            return Reply(404, {"code": "NOT_FOUND", "message": "no such path"})
        if request.path == f"{base}/check-duplication":
            name = request.query["release_name"]
            return Reply(200, {"result": any(p["release_name"] == name for p in self.platforms.values())})
        if request.path == base:
            return self.list(request.query)
        platform = self.platforms.get(request.path.rpartition("/")[2])
        if platform is None:
            return Reply(404, {"code": "RELEASE_NOT_FOUND", "message": "no such platform"})
        return Reply(200, {**self.view(platform), "release_state": self.view(platform)["status"]})

    def create(self, name: str) -> Reply:
        if any(p["release_name"] == name for p in self.platforms.values()):
            if self.conflict_status == 409:
                return Reply(409, {"code": "CONFLICT", "message": f"{name} already exists"})
            return Reply(400, {"code": "DUPLICATE_RELEASE_NAME", "message": "taken"})
        number = next(self.ids)
        release_id = f"{number:032x}"
        self.platforms[release_id] = {"release_id": release_id, "release_name": name,
                                      "created": time.monotonic()}
        self.creates[name] += 1
        if self.lose_every and number % self.lose_every == 0:
            return Reply(drop=True)
        return Reply(201, {"resource_id": release_id})

    def view(self, platform: dict[str, Any]) -> dict[str, Any]:
        deployed = time.monotonic() - platform["created"] >= self.deploy_after
        return {"release_id": platform["release_id"], "release_name": platform["release_name"],
                "status": "DEPLOYED" if deployed else "INSTALLING"}

    def list(self, query: dict[str, str]) -> Reply:
        size, page = int(query.get("size", "20")), int(query.get("page", "0"))
        if size > self.max_size:
            return Reply(400, {"code": "BAD_REQUEST", "message": f"size must be <= {self.max_size}"})
        items = [self.view(p) for p in reversed(self.platforms.values())
                 if query.get("release_name") in (None, p["release_name"])]
        return Reply(200, {"contents": items[page * size:(page + 1) * size], "total_count": len(items)})


async def test_a_server_whose_name_filter_is_exact_never_hides_platforms_from_the_polls() -> None:
    service = OtherServer()
    async with WireServer(handler=service) as server, AimlopsClient(
        server.url, server.credentials, poll_delay=0.02, poll_max_delay=0.05, **FAST_RETRIES
    ) as client:
        names = [f"exact-{i}" for i in range(12)]
        requests = [request_body(name) for name in names]

        results = await client.platforms.provision_many(requests)
        rerun = await client.platforms.provision_many(requests)
        poller = client.platforms.poller.stats

    assert all(result.ok and result.created for result in results)
    assert all(result.ok and not result.created for result in rerun)
    assert all(result.state == "DEPLOYED" and result.detail is not None for result in results + rerun)
    assert len(service.platforms) == len(names)
    listings = [r.query for r in server.requests if r.method == "GET" and r.path == "/v1/aimlops-platform"]
    # The polls read the whole listing, newest first, which a name filter cannot hide: one
    # page a round (12 platforms), and one GET per platform and run, for its final detail.
    polls = [query for query in listings if "release_name" not in query]
    assert len(polls) == poller.pages <= poller.rounds
    assert all(query["sort"] == "created_dt:desc" for query in polls)
    gets = [r for r in server.requests if r.method == "GET" and r.path.count("/") == 3]
    assert len(gets) == 2 * len(names)


async def test_a_server_refusing_large_pages_is_listed_with_the_default_page_size() -> None:
    service = OtherServer(max_size=20)
    async with WireServer(handler=service) as server, AimlopsClient(
        server.url, server.credentials, poll_delay=0.02, poll_max_delay=0.05, **FAST_RETRIES
    ) as client:
        requests = [request_body(f"small-{i}") for i in range(30)]

        results = await client.platforms.provision_many(requests)

    assert all(result.ok and result.created for result in results)
    listings = [r.query for r in server.requests if r.method == "GET" and r.path == "/v1/aimlops-platform"]
    assert {query["size"] for query in listings} == {"100", "20"}
    assert not any(r.path.endswith("/check-duplication") for r in server.requests)
    gets = sum(1 for r in server.requests if r.method == "GET" and r.path.count("/") == 3)
    assert gets <= len(requests) * 1.2  # still one GET each at the end, no per-platform polling


async def test_a_listing_that_fails_leaves_each_name_to_a_lookup() -> None:
    service = OtherServer()
    async with WireServer(handler=service) as server, AimlopsClient(
        server.url, server.credentials, poll_delay=0.02, poll_max_delay=0.05, **FAST_RETRIES
    ) as client:
        taken = await client.platforms.create(request_body("fallback-0"))  # made by someone else
        server.requests.clear()
        server.script(Reply(403, {"code": "FORBIDDEN", "message": "listing not allowed"}))
        requests = [request_body(f"fallback-{i}") for i in range(5)]

        results = await client.platforms.provision_many(requests, wait=False)

    assert all(result.ok for result in results), [str(result.error) for result in results]
    assert results[0].release_id == taken.resource_id and not results[0].created
    assert all(result.created for result in results[1:])
    assert set(service.creates.values()) == {1} and len(service.creates) == 5
    checks = [r.query["release_name"] for r in server.requests if r.path.endswith("/check-duplication")]
    assert sorted(checks) == [f"fallback-{i}" for i in range(5)]
    creates = [r for r in server.requests if r.method == "POST"]
    assert len(creates) == 4  # the name that exists was never sent


async def test_conflicts_as_409_and_no_check_duplication_still_create_nothing_twice() -> None:
    service = OtherServer(conflict_status=409, check_duplication=False, lose_every=3)
    async with WireServer(handler=service) as server, AimlopsClient(
        server.url, server.credentials, poll_delay=0.02, poll_max_delay=0.05, **FAST_RETRIES
    ) as client:
        taken = await client.platforms.create(request_body("conflict-0"))  # made by someone else
        requests = [request_body(f"conflict-{i}") for i in range(10)]

        results = await client.platforms.provision_many(requests)

    assert all(result.ok for result in results), [str(result.error) for result in results]
    assert results[0].release_id == taken.resource_id and not results[0].created
    assert all(result.created for result in results[1:])  # lost answers resolved as ours
    assert set(service.creates.values()) == {1} and len(service.creates) == 10
    assert any(r.path.endswith("/check-duplication") for r in server.requests)


class ThrottlingServer(OtherServer):
    """Answers the first create with 429 and a Retry-After of a day."""

    throttled = False

    def create(self, name: str) -> Reply:
        if not self.throttled:
            self.throttled = True
            return Reply(429, {"code": "TOO_MANY_REQUESTS", "message": "slow down"},
                         headers={"Retry-After": "86400"})
        return super().create(name)


@pytest.mark.faults
async def test_a_create_throttled_for_a_day_waits_only_the_clients_max_retry_after() -> None:
    service = ThrottlingServer(deploy_after=0.0)
    time = VirtualTime()
    async with WireServer(handler=service) as server, AimlopsClient(
        server.url, server.credentials, poll_delay=0.02, poll_max_delay=0.05, max_retry_after=3,
        **FAST_RETRIES,
    ) as client:
        client.platforms.timing = time.timing
        [result] = await client.platforms.provision_many([request_body("throttled")])

    assert result.ok and result.created
    assert service.throttled and service.creates["throttled"] == 1
    assert 3 in time.slept and max(time.slept) <= 3  # the client's cap, not the server's day


class LateServer(OtherServer):
    """New platforms stay invisible, to the listing and to GET (a 404), for ``hidden_for`` s."""

    def __init__(self, *, hidden_for: float, **options: Any) -> None:
        super().__init__(**options)
        self.hidden_for = hidden_for

    def visible(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        return {rid: p for rid, p in self.platforms.items() if now - p["created"] >= self.hidden_for}

    def __call__(self, request: Recorded) -> Reply:
        if request.method != "GET":
            return super().__call__(request)
        shown, self.platforms = self.platforms, self.visible()
        try:
            return super().__call__(request)
        finally:
            self.platforms = shown


async def test_platforms_not_visible_yet_are_waited_out_by_the_listing_without_gets() -> None:
    service = LateServer(hidden_for=0.2, deploy_after=0.4)
    async with WireServer(handler=service) as server, AimlopsClient(
        server.url, server.credentials, poll_delay=0.02, poll_max_delay=0.05, **FAST_RETRIES
    ) as client:
        requests = [request_body(f"late-{i}") for i in range(8)]

        results = await client.platforms.provision_many(requests, details=False)

    assert all(result.ok and result.created for result in results), [str(r.error) for r in results]
    assert {result.state for result in results} == {"DEPLOYED"}
    assert set(service.creates.values()) == {1} and len(service.creates) == 8
    # Within the creation grace, a listing walked to its end without a platform says "not
    # visible yet" as well as a 404 would: no GET, before or after it shows.
    assert not [r for r in server.requests if r.method == "GET" and r.path.count("/") == 3]


async def test_a_bulk_run_and_independent_waits_share_the_clients_poller() -> None:
    async with emulator_and_client(client={"poll_delay": 0.05, "poll_max_delay": 0.1}) as (emu, client):
        created = [await client.platforms.create(emu.sample_create_request(f"alone-{i}")) for i in range(3)]
        ids = [str(answer.resource_id) for answer in created]

        results, *details = await asyncio.gather(
            client.platforms.provision_many(requests_for(emu, [f"shared-{i}" for i in range(10)])),
            *(client.platforms.wait_until_deployed(rid) for rid in ids),
        )

        assert all(result.ok and result.created for result in results)
        assert [detail.release_state for detail in details] == ["DEPLOYED"] * 3
        assert_no_duplicates(emu)
        # One poller served both: the listing rounds read every platform, so each cost one GET,
        # for the detail its wait or its result returns.
        assert emu.stats.requests[GET_ONE] == 10 + 3
        assert client.platforms.poller.waiting == 0
