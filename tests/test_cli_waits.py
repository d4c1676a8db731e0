"""The command line's waits: an unknown id said at once, a poll failure named on the board and in
the result, and ``delete --wait`` on a platform already being deleted."""

from __future__ import annotations

import asyncio

from aiohttp import web
from test_cli import PHASES, _clean_environ, aimlops, cli

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
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    env = {**_clean_environ(), "AIMLOPS_ENDPOINT": f"http://127.0.0.1:{runner.addresses[0][1]}",
           "SCP_ACCESS_KEY": "ak", "SCP_SECRET_KEY": "sk-never-shown"}
    try:
        tolerated = await aimlops("--poll-delay", "0.02", "wait", "r1", "--not-found-grace", "30",
                                  "--json", env=env, secrets=("sk-never-shown",))
        answers[:] = [404, 200]
        refused = await aimlops("--poll-delay", "0.02", "wait", "r1", "--json",
                                env=env, secrets=("sk-never-shown",))
    finally:
        await runner.cleanup()
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
        run = await cli(emu, "delete", created.release_id, "--wait", "--yes", "--json")
        assert run.code == 0, run.stderr
        assert run.json() == [{"release_id": created.release_id, "release_name": "twice",
                               "state": "DELETED", "ok": True, "error": None}]
        assert emu.platforms() == []
        assert emu.stats.statuses[400] == 1  # refused as already deleting, then waited for
