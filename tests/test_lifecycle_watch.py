"""Waiters and watch (CONTRACT section 3) against the emulator, plus a scripted loopback server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from virtual_time import VirtualTime
from wire import serving

from aimlops_async import (
    AimlopsClient,
    AuthenticationError,
    BadRequestError,
    Credentials,
    NotFoundError,
    PermissionDeniedError,
    PlatformDetail,
    ReleaseState,
    TerminalStateError,
    ValidationError,
    WaiterError,
    WaiterTimeoutError,
)
from aimlops_async.emulator import Emulator, Faults

FAST = {"creating_seconds": 0.1, "installing_seconds": 0.1, "updating_seconds": 0.1,
        "deleting_seconds": 0.1}
FAST_CLIENT: dict[str, Any] = {"poll_delay": 0.02, "poll_max_delay": 0.1, "poll_timeout": 15.0,
                               "retry_base_delay": 0.01, "retry_max_delay": 0.05, "timeout": 5.0}
SLOW = {"creating_seconds": 60.0, "installing_seconds": 60.0}


async def create(client: AimlopsClient, emu: Emulator, name: str, *, with_k8s: bool = False) -> str:
    answer = await client.platforms.create(emu.sample_create_request(name, with_k8s=with_k8s))
    assert answer.resource_id
    return answer.resource_id


def states(details: list[PlatformDetail]) -> list[tuple[str | None, str | None]]:
    return [(_text(d.release_state), _text(d.cluster_state)) for d in details]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def stray_tasks() -> set[asyncio.Task[Any]]:
    """Tasks other than this test's own and the in-process server's connection handlers."""
    return {
        task for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and "RequestHandler" not in task.get_coro().__qualname__  # type: ignore[union-attr]
    }


# ---------------------------------------------------------------------------- outcomes


async def test_wait_until_deployed_returns_the_deployed_detail(
    emulator: Emulator, client: AimlopsClient
) -> None:
    release_id = await create(client, emulator, "alpha")

    detail = await client.platforms.wait_until_deployed(release_id, timeout=10)

    assert isinstance(detail, PlatformDetail)
    assert detail.release_state == "DEPLOYED"
    assert detail.release_id == release_id
    assert detail.release_name == "alpha"
    assert detail.ai_ml_ops_platform_endpoint_ip_address  # filled in once deployed


async def test_create_and_wait_returns_the_deployed_detail(
    emulator: Emulator, client: AimlopsClient
) -> None:
    detail = await client.platforms.create_and_wait(emulator.sample_create_request("beta"))

    assert detail.release_state == "DEPLOYED"
    assert detail.release_name == "beta"
    assert emulator.stats.creates["beta"] == 1


async def test_failure_state_raises_terminal_state_error_with_the_last_detail() -> None:
    async with Emulator(**FAST, fail_pattern="fail-.*") as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        release_id = await create(client, emu, "fail-gamma")

        with pytest.raises(TerminalStateError) as caught:
            await client.platforms.wait_until_deployed(release_id)

        error = caught.value
        assert isinstance(error, WaiterError)
        assert error.release_id == release_id
        assert error.state == "FAILED"
        assert error.last_detail is not None
        assert error.last_detail.release_state == "FAILED"
        assert error.last_detail.release_name == "fail-gamma"
        with pytest.raises(TerminalStateError):
            await client.platforms.create_and_wait(emu.sample_create_request("fail-delta"))


async def test_custom_failure_states_end_the_wait_early() -> None:
    async with Emulator(**SLOW) as emu, AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        release_id = await create(client, emu, "epsilon")

        with pytest.raises(TerminalStateError) as caught:
            await client.platforms.wait_until_deployed(release_id, failure_states={"CREATING"})

        assert caught.value.state == "CREATING"


async def test_timeout_raises_waiter_timeout_error_which_is_a_timeout_error() -> None:
    async with Emulator(**SLOW) as emu, AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        release_id = await create(client, emu, "zeta")

        with pytest.raises(WaiterTimeoutError) as caught:
            await client.platforms.wait_until_deployed(release_id, timeout=0.3)

        error = caught.value
        assert isinstance(error, TimeoutError)
        assert isinstance(error, WaiterError)
        assert error.release_id == release_id
        assert error.last_detail is not None
        assert error.last_detail.release_state == "CREATING"
        assert "zeta" not in str(error) or "CREATING" in str(error)


async def test_client_poll_timeout_is_the_default_and_a_call_overrides_it() -> None:
    async with Emulator(**SLOW) as emu, AimlopsClient(
        emu.url, emu.credentials, poll_delay=0.02, poll_max_delay=0.05, poll_timeout=0.2
    ) as client:
        release_id = await create(client, emu, "eta")
        with pytest.raises(WaiterTimeoutError) as caught:
            await client.platforms.wait_until_deployed(release_id)
        assert "0.2 s" in str(caught.value)
        # A per-call timeout wins over the client's.
        with pytest.raises(WaiterTimeoutError) as caught:
            await client.platforms.wait_until_deployed(release_id, timeout=0.4, delay=0.05)
        assert "0.4 s" in str(caught.value)


async def test_the_timeout_bounds_a_request_in_flight() -> None:
    async with Emulator(**FAST) as emu, AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        release_id = await create(client, emu, "theta")
        await client.platforms.wait_until_deployed(release_id)
        # Every answer now takes 3 s: a wait of 0.3 s must not sit through one and succeed.
        emu.faults = Faults(stall_rate=1.0, stall_seconds=3.0)

        watcher = client.platforms.watch(release_id, timeout=0.3)
        with pytest.raises(WaiterTimeoutError):
            async for _ in watcher:
                pass

        assert watcher.polls == 1
        assert watcher.outcome is None
        emu.faults = Faults()
        assert (await client.platforms.get(release_id)).release_state == "DEPLOYED"


# ---------------------------------------------------------------------------- transient errors


async def test_server_errors_while_polling_do_not_end_the_wait() -> None:
    async with Emulator(**FAST) as emu, AimlopsClient(
        emu.url, emu.credentials, **{**FAST_CLIENT, "max_retries": 0}
    ) as client:
        release_id = await create(client, emu, "iota")
        # No session retries: every 500/503 reaches the waiter, which must poll on.
        emu.faults = Faults(error_rate=0.3, seed=1)

        detail = await client.platforms.wait_until_deployed(release_id)

        assert detail.release_state == "DEPLOYED"
        assert emu.stats.faults["error"] >= 1
        assert emu.stats.statuses[500] + emu.stats.statuses[503] >= 1


async def test_dropped_connections_and_malformed_answers_do_not_end_the_wait() -> None:
    async with Emulator(**FAST) as emu, AimlopsClient(
        emu.url, emu.credentials, **{**FAST_CLIENT, "max_retries": 0}
    ) as client:
        release_id = await create(client, emu, "kappa")
        emu.faults = Faults(drop_rate=0.2, malformed_rate=0.2, seed=3)

        detail = await client.platforms.wait_until_deployed(release_id)

        assert detail.release_state == "DEPLOYED"
        assert emu.stats.faults["drop"] >= 1
        assert emu.stats.faults["malformed"] >= 1


async def test_rate_limit_while_polling_honours_retry_after() -> None:
    async with Emulator(**FAST) as emu, AimlopsClient(
        emu.url, emu.credentials, **{**FAST_CLIENT, "max_retries": 0}
    ) as client:
        release_id = await create(client, emu, "lambda")
        await client.platforms.wait_until_deployed(release_id)
        emu.faults = Faults(rate_limit_rate=1.0, retry_after=1.0)

        def recover(_seconds: float) -> None:
            emu.faults = Faults()  # the service recovers after the first 429

        time = VirtualTime(on_sleep=recover)
        client.platforms.timing = time.timing
        slept = time.slept

        detail = await client.platforms.wait_until_deployed(release_id)

        assert detail.release_state == "DEPLOYED"
        assert emu.stats.statuses[429] == 1
        assert slept and slept[0] >= 1.0  # Retry-After: 1, not the 0.02 s poll delay


# ---------------------------------------------------------------------------- 404 grace


async def test_not_found_right_after_create_is_tolerated() -> None:
    async with Emulator(**FAST, visibility_lag=0.2) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        detail = await client.platforms.create_and_wait(emu.sample_create_request("mu"))

        assert detail.release_state == "DEPLOYED"
        assert emu.stats.statuses[404] >= 1  # the new platform was invisible at first

        release_id = await create(client, emu, "nu")
        assert (await client.platforms.wait_until_deployed(release_id)).release_name == "nu"


async def test_not_found_after_the_grace_raises(emulator: Emulator, client: AimlopsClient) -> None:
    with pytest.raises(NotFoundError):
        await client.platforms.wait_until_deployed("0" * 32, not_found_grace=0)
    assert emulator.stats.statuses[404] == 1

    with pytest.raises(NotFoundError):
        await client.platforms.wait_until_deployed("0" * 32, not_found_grace=0.2)
    assert emulator.stats.statuses[404] > 2  # polled through the grace, then gave up


def _foreign_account(keys: Credentials) -> Credentials:
    """Keys of a project sent with another account's id: the emulator refuses them (403)."""
    return Credentials(keys.access_key, keys.secret_key, "f" * 32)


@pytest.mark.parametrize(
    ("credentials", "error"),
    [
        (lambda emu: Credentials(emu.credentials.access_key, "not-the-secret",
                                 emu.credentials.account_id), AuthenticationError),
        (lambda emu: _foreign_account(emu.add_project(account_id="a" * 32)), PermissionDeniedError),
    ],
    ids=["401", "403"],
)
async def test_auth_errors_end_the_wait_at_once(
    emulator: Emulator,
    client: AimlopsClient,
    credentials: Callable[[Emulator], Credentials],
    error: type[Exception],
) -> None:
    release_id = await create(client, emulator, "xi")
    emulator.stats.reset()
    async with AimlopsClient(emulator.url, credentials(emulator), **FAST_CLIENT) as other:
        with pytest.raises(error):
            await other.platforms.wait_until_deployed(release_id)
    assert emulator.stats.total == 1


# ---------------------------------------------------------------------------- update race


async def test_update_and_wait_never_returns_the_stale_deployed() -> None:
    async with Emulator(**FAST, visibility_lag=0.2) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        before = await client.platforms.create_and_wait(emu.sample_create_request("omicron"))
        assert before.release_id and before.modified_dt

        detail = await client.platforms.update_and_wait(
            before.release_id, {"ai_ml_ops_platform_endpoint_type": "Public"}
        )

        assert detail.release_state == "DEPLOYED"
        assert detail.modified_dt is not None and detail.modified_dt > before.modified_dt
        assert detail.ai_ml_ops_platform_endpoint_type == "Public"


async def test_the_race_is_real_and_changed_since_guards_against_it() -> None:
    async with Emulator(**FAST, visibility_lag=0.2) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        before = await client.platforms.create_and_wait(emu.sample_create_request("pi"))
        assert before.release_id and before.modified_dt
        await client.platforms.update(before.release_id, {"ai_ml_ops_platform_endpoint_type": "Public"})

        stale = await client.platforms.get(before.release_id)
        assert stale.release_state == "DEPLOYED"  # what a naive waiter would return
        assert stale.modified_dt == before.modified_dt

        detail = await client.platforms.wait_until_deployed(before.release_id, changed_since=before)
        assert detail.modified_dt is not None and detail.modified_dt > before.modified_dt


async def test_a_plain_wait_after_an_update_through_the_client_is_not_fooled() -> None:
    async with Emulator(**FAST, visibility_lag=0.2) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        before = await client.platforms.create_and_wait(emu.sample_create_request("pi2"))
        assert before.release_id and before.modified_dt
        # update() itself notes the change: nothing else is needed for the wait to see past it.
        await client.platforms.update(before.release_id, {"ai_ml_ops_platform_endpoint_type": "Public"})

        detail = await client.platforms.wait_until_deployed(before.release_id)

        assert detail.release_state == "DEPLOYED"
        assert detail.modified_dt is not None and detail.modified_dt > before.modified_dt


async def test_a_noted_change_that_is_already_visible_costs_no_grace() -> None:
    async with Emulator(**{**FAST, "updating_seconds": 0.0}) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        before = await client.platforms.create_and_wait(emu.sample_create_request("pi3"))
        assert before.release_id and before.modified_dt
        await client.platforms.update(before.release_id, {"ai_ml_ops_platform_endpoint_type": "Public"})

        # The new modified_dt is recognised at once: no waiting out the 60 s grace.
        detail = await client.platforms.wait_until_deployed(before.release_id, stale_grace=60, timeout=5)

        assert detail.modified_dt is not None and detail.modified_dt > before.modified_dt


async def test_update_that_finishes_at_once_is_seen_by_its_new_modified_dt() -> None:
    async with Emulator(**{**FAST, "updating_seconds": 0.0}, visibility_lag=0.2) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        before = await client.platforms.create_and_wait(emu.sample_create_request("rho"))
        assert before.release_id and before.modified_dt

        detail = await client.platforms.update_and_wait(
            before.release_id, {"ai_ml_ops_platform_endpoint_type": "Public"}, stale_grace=60
        )

        assert detail.modified_dt is not None and detail.modified_dt > before.modified_dt


async def test_stale_grace_bounds_the_wait_for_a_change_that_never_shows(
    emulator: Emulator, client: AimlopsClient
) -> None:
    release_id = await create(client, emulator, "sigma")
    deployed = await client.platforms.wait_until_deployed(release_id)

    # Nothing changes: after the grace the DEPLOYED reading is accepted, not a timeout.
    detail = await client.platforms.wait_until_deployed(
        release_id, changed_since=deployed, stale_grace=0.2
    )
    assert detail.release_state == "DEPLOYED"

    with pytest.raises(WaiterTimeoutError) as caught:
        await client.platforms.wait_until_deployed(
            release_id, changed_since=deployed, stale_grace=5, timeout=0.2
        )
    assert caught.value.last_detail is not None
    assert caught.value.last_detail.release_state == "DEPLOYED"


# ---------------------------------------------------------------------------- delete


async def test_delete_and_wait_waits_for_the_404_through_stale_reads() -> None:
    async with Emulator(**FAST, visibility_lag=0.2) as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        detail = await client.platforms.create_and_wait(emu.sample_create_request("tau"))
        assert detail.release_id
        await client.platforms.delete(detail.release_id)
        assert (await client.platforms.get(detail.release_id)).release_state == "DEPLOYED"  # stale

        seen = [d async for d in client.platforms.watch(detail.release_id, until_deleted=True)]

        assert [s for s, _ in states(seen)] == ["DEPLOYED", "DELETING"]
        with pytest.raises(NotFoundError):
            await client.platforms.get(detail.release_id)

        other = await client.platforms.create_and_wait(emu.sample_create_request("upsilon"))
        assert other.release_id
        assert await client.platforms.delete_and_wait(other.release_id) is None
        with pytest.raises(NotFoundError):
            await client.platforms.get(other.release_id)


async def test_deleting_a_failed_platform_is_not_a_failure_of_the_delete() -> None:
    async with Emulator(**FAST, visibility_lag=0.2, fail_pattern="^fail") as emu, \
            AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        release_id = await create(client, emu, "fail-phi")
        with pytest.raises(TerminalStateError):
            await client.platforms.wait_until_deployed(release_id)

        # The stale reads right after the delete still say FAILED: that is not the delete failing.
        await client.platforms.delete_and_wait(release_id, with_k8s=False)

        with pytest.raises(NotFoundError):
            await client.platforms.get(release_id)


async def test_wait_until_deleted_with_k8s(emulator: Emulator, client: AimlopsClient) -> None:
    detail = await client.platforms.create_and_wait(
        emulator.sample_create_request("chi", with_k8s=True)
    )
    assert detail.release_id and detail.cluster_id
    await client.platforms.delete(detail.release_id, with_k8s=True)

    await client.platforms.wait_until_deleted(detail.release_id)

    assert all(p["release_id"] != detail.release_id for p in emulator.platforms())


# ---------------------------------------------------------------------------- watch


# Phases long enough that a poll lands in each of them even on a loaded machine, with polls
# capped well below a phase.
OBSERVABLE = {**FAST, "creating_seconds": 0.6, "installing_seconds": 0.6}
OBSERVING_CLIENT = {**FAST_CLIENT, "poll_max_delay": 0.05}


async def test_watch_yields_each_state_once_in_order() -> None:
    async with Emulator(**OBSERVABLE) as emulator, \
            AimlopsClient(emulator.url, emulator.credentials, **OBSERVING_CLIENT) as client:
        release_id = await create(client, emulator, "psi", with_k8s=True)

        watcher = client.platforms.watch(release_id)
        seen = [detail async for detail in watcher]

    assert states(seen) == [
        ("CREATING", "CREATING"),
        ("INSTALLING", "RUNNING"),
        ("DEPLOYED", "RUNNING"),
    ]
    assert watcher.outcome == "success"
    assert watcher.polls > len(seen)  # repeated readings were polled but not yielded
    assert [d async for d in watcher] == []  # ended for good


async def test_watch_ends_on_a_failure_state_without_raising() -> None:
    async with Emulator(**OBSERVABLE, fail_pattern="^fail") as emu, \
            AimlopsClient(emu.url, emu.credentials, **OBSERVING_CLIENT) as client:
        release_id = await create(client, emu, "fail-omega")

        watcher = client.platforms.watch(release_id)
        seen = [detail async for detail in watcher]

        assert [s for s, _ in states(seen)] == ["CREATING", "INSTALLING", "FAILED"]
        assert watcher.outcome == "failure"
        assert watcher.last_detail is seen[-1]


async def test_leaving_a_watch_early_leaves_nothing_running(
    emulator: Emulator, client: AimlopsClient
) -> None:
    release_id = await create(client, emulator, "alpha2")
    async for detail in client.platforms.watch(release_id):
        assert detail.release_state == "CREATING"
        break
    total = emulator.stats.total
    await asyncio.sleep(0.3)
    assert emulator.stats.total == total
    assert stray_tasks() == set()


# ---------------------------------------------------------------------------- cancellation


@pytest.mark.parametrize("where", ["sleeping", "in-flight"])
async def test_cancelling_a_wait_stops_it_and_the_client_stays_usable(where: str) -> None:
    async with Emulator(**SLOW) as emu, AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as client:
        release_id = await create(client, emu, f"beta2-{where}")
        if where == "in-flight":
            emu.faults = Faults(latency=0.5)
        task = asyncio.create_task(
            client.platforms.wait_until_deployed(release_id, delay=0.05, max_delay=0.05)
        )
        await asyncio.sleep(0.25)
        assert not task.done()

        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)

        assert task in done and task.cancelled()
        assert stray_tasks() == set()
        requests = emu.stats.total
        await asyncio.sleep(0.2)
        assert emu.stats.total <= requests + 1  # at most the request that was already on its way
        emu.faults = Faults()
        assert (await client.platforms.get(release_id)).release_state == "CREATING"


# ---------------------------------------------------------------------------- many waits


async def test_a_thousand_concurrent_waits_on_one_client() -> None:
    async with Emulator(creating_seconds=0.15, installing_seconds=0.15) as emu, \
            AimlopsClient(emu.url, emu.credentials, poll_delay=0.05, poll_max_delay=0.3,
                          poll_timeout=60) as client:
        requests = [emu.sample_create_request(f"many-{i:04d}") for i in range(1000)]

        details = await asyncio.gather(*(client.platforms.create_and_wait(r) for r in requests))

        assert all(d.release_state == "DEPLOYED" for d in details)
        assert sorted(d.release_name or "" for d in details) == [f"many-{i:04d}" for i in range(1000)]
        assert len({d.release_id for d in details}) == 1000
        assert stray_tasks() == set()


# ---------------------------------------------------------------------------- arguments and logs


async def test_bad_arguments_fail_before_any_request(emulator: Emulator, client: AimlopsClient) -> None:
    platforms = client.platforms
    bad_calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: platforms.wait_until_deployed("x", delay=0),
        lambda: platforms.wait_until_deployed("x", delay=2, max_delay=1),
        lambda: platforms.wait_until_deployed("x", timeout=-1),
        lambda: platforms.wait_until_deployed("x", not_found_grace=-1),
        lambda: platforms.wait_until_deployed("x", success_states={"A"}, failure_states={"A"}),
        lambda: platforms.wait_until_deployed(""),
        lambda: platforms.update_and_wait("x", {"ai_ml_ops_platform_endpoint_type": "Nowhere"}),
        lambda: platforms.create_and_wait({"ai_ml_ops_platform_create_request": {}}),
    ]
    for call in bad_calls:
        with pytest.raises(ValidationError):
            await call()
    assert emulator.stats.total == 0


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[list[tuple[int, dict[str, Any]]], AimlopsClient]]:
    """A loopback server that answers GET {release_id} from a script (the last answer repeats)."""
    script: list[tuple[int, dict[str, Any]]] = []

    async def get(request: web.Request) -> web.Response:
        status, body = script.pop(0) if len(script) > 1 else script[0]
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/v1/aimlops-platform/{release_id}", get)
    async with serving(app) as url, AimlopsClient(url, Credentials("ak", "sk"), **FAST_CLIENT) as client:
        yield script, client


def _detail(state: str, modified: str = "2024-05-17T00:23:17Z") -> dict[str, Any]:
    return {"release_id": "r1", "release_name": "scripted", "release_state": state,
            "modified_dt": modified, "cluster_state": "RUNNING"}


async def test_unknown_states_are_in_progress_and_logged_once_per_wait(
    scripted: tuple[list[tuple[int, dict[str, Any]]], AimlopsClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    script, client = scripted
    script += [(200, _detail("PROVISIONING"))] * 4 + [(200, _detail("DEPLOYED"))]

    with caplog.at_level(logging.INFO, logger="aimlops_async.lifecycle"):
        detail = await client.platforms.wait_until_deployed("r1")

    assert detail.release_state == "DEPLOYED"
    unknown = [r for r in caplog.records if "PROVISIONING" in r.getMessage()]
    assert len(unknown) == 1
    assert unknown[0].name == "aimlops_async.lifecycle"


async def test_success_states_may_be_unknown_states(
    scripted: tuple[list[tuple[int, dict[str, Any]]], AimlopsClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    script, client = scripted
    script += [(200, _detail("CREATING")), (200, _detail("READY"))]

    with caplog.at_level(logging.INFO, logger="aimlops_async.lifecycle"):
        detail = await client.platforms.wait_until_deployed("r1", success_states=["READY"])

    assert detail.release_state == "READY"
    assert not [r for r in caplog.records if "READY" in r.getMessage()]


async def test_a_400_while_polling_ends_the_wait_with_that_error(
    scripted: tuple[list[tuple[int, dict[str, Any]]], AimlopsClient],
) -> None:
    script, client = scripted
    script += [(200, _detail("CREATING")), (400, {"code": "BAD", "message": "no"})]

    with pytest.raises(BadRequestError):
        await client.platforms.wait_until_deployed("r1")


async def test_an_update_that_fails_at_once_raises_without_waiting_for_the_grace(
    scripted: tuple[list[tuple[int, dict[str, Any]]], AimlopsClient],
) -> None:
    script, client = scripted
    before = PlatformDetail(release_id="r1", release_state=ReleaseState.DEPLOYED)
    script += [(200, _detail("FAILED"))]

    with pytest.raises(TerminalStateError) as caught:
        await client.platforms.wait_until_deployed("r1", changed_since=before, stale_grace=60)

    assert caught.value.state == "FAILED"


async def test_a_per_call_delay_or_cap_moves_the_other_default_along(client: AimlopsClient) -> None:
    platforms = client.platforms  # the client's polls: 0.02 s up to 0.1 s
    slow = platforms.watch("x", delay=1.0)
    assert (slow.delay, slow.max_delay) == (1.0, 1.0)
    tight = platforms.watch("x", max_delay=0.01)
    assert (tight.delay, tight.max_delay) == (0.01, 0.01)
    both = platforms.watch("x", delay=0.5, max_delay=2.0)
    assert (both.delay, both.max_delay, both.timeout) == (0.5, 2.0, 15.0)
    with pytest.raises(ValidationError):
        platforms.watch("x", delay=2.0, max_delay=1.0)


async def test_a_delete_that_fails_raises_once_the_delete_has_shown(
    scripted: tuple[list[tuple[int, dict[str, Any]]], AimlopsClient],
) -> None:
    script, client = scripted
    script += [(200, _detail("FAILED"))] * 2  # stale: it was FAILED before the delete
    script += [(200, _detail("DELETING", "2024-05-18T00:00:00Z"))]
    script += [(200, _detail("FAILED", "2024-05-18T00:00:05Z"))]

    with pytest.raises(TerminalStateError) as caught:
        await client.platforms.wait_until_deleted("r1", stale_grace=60)

    assert caught.value.state == "FAILED"
    assert caught.value.last_detail is not None
    assert caught.value.last_detail.modified_dt is not None
    assert caught.value.last_detail.modified_dt.day == 18


# ------------------------------------------------------------------- a change whose answer is lost


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


class AnswerLosingProxy:
    """A TCP proxy in front of the emulator that passes the first request of ``method`` on, lets
    the emulator carry it out, and then drops the connection instead of returning the answer."""

    def __init__(self, upstream_port: int, method: bytes) -> None:
        self.upstream_port = upstream_port
        self.method = method
        self.lost = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_message(reader)
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                up_writer.write(request)
                answer = await _read_message(up_reader)
                up_writer.close()
                await up_writer.wait_closed()
                if request.startswith(self.method + b" ") and not self.lost:
                    self.lost += 1
                    writer.transport.abort()
                    return
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.mark.parametrize("method", [b"PUT", b"DELETE"])
async def test_a_change_whose_answer_is_lost_is_looked_up_not_sent_twice(method: bytes) -> None:
    async with Emulator(**{**FAST, "updating_seconds": 0.5, "deleting_seconds": 0.5}) as emu:
        async with AimlopsClient(emu.url, emu.credentials, **FAST_CLIENT) as direct:
            before = await direct.platforms.create_and_wait(emu.sample_create_request("lost-answer"))
        assert before.release_id and before.modified_dt
        port = int(emu.url.rsplit(":", 1)[1])
        proxy = AnswerLosingProxy(port, method)
        async with proxy as url, AimlopsClient(url, emu.credentials, **FAST_CLIENT) as client:
            if method == b"PUT":
                detail = await client.platforms.update_and_wait(
                    before.release_id, {"ai_ml_ops_platform_endpoint_type": "Public"}
                )
                assert detail.release_state == "DEPLOYED"
                assert detail.modified_dt is not None and detail.modified_dt > before.modified_dt
                assert detail.ai_ml_ops_platform_endpoint_type == "Public"
            else:
                await client.platforms.delete_and_wait(before.release_id)
                assert emu.platforms() == []
    assert proxy.lost == 1
    route = "PUT" if method == b"PUT" else "DELETE"
    sent = sum(n for key, n in emu.stats.requests.items() if key.startswith(route + " "))
    assert sent == 1  # the change showed, so it was not sent again
