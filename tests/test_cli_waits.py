"""The command line's waits: an unknown id said at once, a poll failure named on the board and in
the result, and ``delete --wait`` on a platform already being deleted."""

from __future__ import annotations

import asyncio

from aiohttp import web
from test_cli import PHASES, _clean_environ, aimlops, cli
from wire import serving

from aimlops_async import AimlopsClient
from aimlops_async.emulator import Emulator

DELETE_ROUTE = "DELETE /v1/aimlops-platform/{release_id}"


async def test_wait_for_an_id_that_does_not_exist_says_so_at_once() -> None:
    async with Emulator(**PHASES) as emu:
        run = await cli(emu, "wait", "0" * 32, "--json")
    assert run.code == 1
    assert "NotFoundError" in run.json()[0]["error"]
    assert emu.stats.statuses[404] == 1  # no grace for an id this client did not create


async def test_wait_with_a_not_found_grace_tolerates_a_platform_not_visible_yet() -> None:
    answers = [404, 404, 200]  # created elsewhere: not visible for two reads

    async def get(request: web.Request) -> web.Response:
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        if status == 404:
            return web.json_response({"code": "RELEASE_NOT_FOUND", "message": "no"}, status=404)
        return web.json_response({"release_id": "r1", "release_name": "elsewhere",
                                  "release_state": "DEPLOYED"})

    app = web.Application()
    app.router.add_get("/v1/aimlops-platform/{release_id}", get)
    async with serving(app) as url:
        env = _cli_env(url)
        tolerated = await aimlops("--poll-delay", "0.02", "wait", "r1", "--not-found-grace", "30",
                                  "--json", env=env, secrets=("sk-never-shown",))
        answers[:] = [404, 200]
        refused = await aimlops("--poll-delay", "0.02", "wait", "r1", "--json",
                                env=env, secrets=("sk-never-shown",))
    assert tolerated.code == 0, tolerated.stdout + tolerated.stderr
    assert tolerated.json()[0]["state"] == "DEPLOYED"
    assert refused.code == 1  # without the grace, the first 404 is the answer
    assert "NotFoundError" in refused.json()[0]["error"]


async def test_wait_on_an_unreachable_endpoint_says_why() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    env = {**_clean_environ(), "AIMLOPS_ENDPOINT": f"http://127.0.0.1:{port}",
           "SCP_ACCESS_KEY": "ak", "SCP_SECRET_KEY": "sk-never-shown"}
    # 6 s: the session's own retries of the first poll (at most 3.5 s of backoff) end in time.
    run = await aimlops("--poll-delay", "0.05", "--poll-max-delay", "0.2", "--timeout", "6",
                        "wait", "r1", "--json", env=env, secrets=("sk-never-shown",))
    assert run.code == 1
    error = run.json()[0]["error"]
    assert error.startswith("WaiterTimeoutError: unreachable: APIConnectionError")
    assert "still not there" not in error


async def test_delete_wait_on_a_platform_already_deleting_waits_for_it() -> None:
    async with Emulator(**{**PHASES, "deleting_seconds": 1.0}) as emu:
        async with AimlopsClient(emu.url, emu.credentials, poll_delay=0.02) as client:
            created = await client.platforms.create_and_wait(emu.sample_create_request("twice"))
            assert created.release_id
            await client.platforms.delete(created.release_id)
        # The emulator's clock stands still until the command was refused and polled on: however
        # slowly its process starts, it meets the platform DELETING, never already gone.
        frozen_at = emu.store.monotonic()
        emu.store.monotonic = lambda: frozen_at
        command = asyncio.create_task(
            cli(emu, "delete", created.release_id, "--wait", "--yes", "--json")
        )

        async def refused_then_polled() -> None:
            while emu.stats.statuses[400] < 1:
                assert not command.done(), command.result().stderr
                await asyncio.sleep(0.01)
            answered = emu.stats.statuses[200]
            while emu.stats.statuses[200] < answered + 2:  # two polls that saw it DELETING
                assert not command.done(), command.result().stderr
                await asyncio.sleep(0.01)

        await asyncio.wait_for(refused_then_polled(), 60)
        emu.store.monotonic = lambda: frozen_at + 60  # the delete finishes
        run = await command
        assert run.code == 0, run.stderr
        assert run.json() == [{"release_id": created.release_id, "release_name": "twice",
                               "state": "DELETED", "ok": True, "error": None}]
        assert emu.platforms() == []
        assert emu.stats.statuses[400] == 1  # refused as already deleting, then waited for


def _error_envelope(status: int, code: str, detail: str) -> web.Response:
    return web.json_response(
        {"errors": [{"code": code, "title": code, "detail": [detail], "status": str(status)}]},
        status=status,
    )


def _cli_env(url: str) -> dict[str, str]:
    return {**_clean_environ(), "AIMLOPS_ENDPOINT": url,
            "SCP_ACCESS_KEY": "ak", "SCP_SECRET_KEY": "sk-never-shown"}


def _scripted_delete_service(readings: list[str | None]) -> tuple[web.Application, dict[str, int]]:
    """A service whose DELETE is refused (INVALID_STATE) and whose GETs answer ``readings`` in
    turn (the last one repeats): a state, or None for the service's own 404."""
    calls = {"DELETE": 0, "GET": 0}

    async def delete(request: web.Request) -> web.Response:
        calls["DELETE"] += 1
        return _error_envelope(400, "INVALID_STATE", "an operation is already running")

    async def get(request: web.Request) -> web.Response:
        calls["GET"] += 1
        state = readings.pop(0) if len(readings) > 1 else readings[0]
        if state is None:
            return _error_envelope(404, "RELEASE_NOT_FOUND", "no such release")
        return web.json_response({"release_id": "r1", "release_name": "lagging", "release_state": state})

    app = web.Application()
    app.router.add_delete("/v1/aimlops-platform/{release_id}", delete)
    app.router.add_get("/v1/aimlops-platform/{release_id}", get)
    return app, calls


async def test_delete_wait_reads_again_while_reads_lag_behind_a_delete_under_way() -> None:
    # The delete is refused as already running, yet the first reads still show DEPLOYED: reads
    # lag behind it. One look would take the refusal for final; the library looks again.
    app, calls = _scripted_delete_service(["DEPLOYED", "DEPLOYED", "DELETING", "DELETING", None])
    async with serving(app) as url:
        run = await aimlops("--poll-delay", "0.02", "--poll-max-delay", "0.1", "delete", "r1",
                            "--wait", "--yes", "--json", env=_cli_env(url),
                            secrets=("sk-never-shown",))
    assert run.code == 0, run.stdout + run.stderr
    assert run.json() == [{"release_id": "r1", "release_name": "lagging", "state": "DELETED",
                           "ok": True, "error": None}]
    assert calls["DELETE"] == 1  # refused once, never sent again
    assert calls["GET"] >= 5


async def test_delete_wait_on_a_platform_that_cannot_be_deleted_is_refused_at_once() -> None:
    app, calls = _scripted_delete_service(["CREATING"])
    async with serving(app) as url:
        run = await aimlops("--poll-delay", "0.02", "delete", "r1", "--wait", "--yes", "--json",
                            env=_cli_env(url), secrets=("sk-never-shown",))
    assert run.code == 1
    [outcome] = run.json()
    assert outcome["ok"] is False and "INVALID_STATE" in outcome["error"]
    assert calls == {"DELETE": 1, "GET": 1}
