"""The FastAPI integration and example backend: real uvicorn on loopback, emulator behind, httpx in front."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from starlette.applications import Starlette

from aimlops_async import (
    AimlopsClient,
    AimlopsError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    Credentials,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TerminalStateError,
    ValidationError,
    WaiterTimeoutError,
)
from aimlops_async.contrib.fastapi import (
    STATE_CLIENT,
    STATE_TASKS,
    AimlopsClientDep,
    TaskRegistry,
    aimlops_lifespan,
    error_answer,
    get_client,
    install_exception_handlers,
    open_client,
    sse_event,
    to_jsonable,
)
from aimlops_async.emulator import Emulator, Faults

ROOT = Path(__file__).resolve().parent.parent
FAST_PHASES: dict[str, float] = {
    "creating_seconds": 0.15, "installing_seconds": 0.15, "updating_seconds": 0.15,
    "deleting_seconds": 0.15,
}
FAST_CLIENT: dict[str, Any] = {
    "poll_delay": 0.02,
    "poll_max_delay": 0.1,
    "poll_timeout": 15.0,
    "retry_base_delay": 0.01,
    "retry_max_delay": 0.05,
    "timeout": 5.0,
}
SAMPLE_PASSWORD = "Sample-Passw0rd"  # what Emulator.sample_create_request puts in every body


def _load_example() -> ModuleType:
    # examples/ is not an installed package: load the file itself, as uvicorn would import it.
    spec = importlib.util.spec_from_file_location("fastapi_app_example", ROOT / "examples" / "fastapi_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()


# ------------------------------------------------------------------------------ harness


class Served:
    """An app served by uvicorn on a loopback port, with an httpx client that checks every answer."""

    def __init__(self, app: Starlette, server: uvicorn.Server, task: asyncio.Task[None],
                 http: httpx.AsyncClient) -> None:
        self.app = app
        self.server = server
        self.task = task
        self.http = http

    @property
    def client(self) -> AimlopsClient:
        client = getattr(self.app.state, STATE_CLIENT)
        assert isinstance(client, AimlopsClient)
        return client

    @property
    def tasks(self) -> TaskRegistry:
        tasks = getattr(self.app.state, STATE_TASKS)
        assert isinstance(tasks, TaskRegistry)
        return tasks

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


def _secret_checker(secrets: list[str]) -> Callable[[httpx.Response], Any]:
    async def check(response: httpx.Response) -> None:
        for name, value in response.headers.items():
            assert not any(secret in value for secret in secrets), f"secret in header {name}"
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return  # streams are read, and checked, by the tests themselves
        await response.aread()
        for secret in secrets:
            assert secret not in response.text, f"a secret leaked into {response.request.url}"

    return check


@asynccontextmanager
async def serve(
    app: Starlette, *, secrets: list[str], graceful: float = 2.0
) -> AsyncIterator[Served]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", log_config=None,
        timeout_graceful_shutdown=graceful,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name="test-uvicorn")
    while not server.started:
        if task.done():
            task.result()
            raise AssertionError("the server stopped during start-up")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    checker = _secret_checker([secret for secret in secrets if secret])
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=15.0,
            event_hooks={"response": [checker]},
        ) as http:
            yield Served(app, server, task, http)
    finally:
        if not task.done():
            server.should_exit = True
            await task


def served_example(emu: Emulator, *, credentials: Credentials | None = None,
                   graceful: float = 2.0, **options: Any) -> Any:
    app = example.create_app(
        endpoint=emu.url, credentials=credentials or emu.credentials, **{**FAST_CLIENT, **options}
    )
    secrets = [emu.credentials.secret_key, SAMPLE_PASSWORD]
    if credentials is not None:
        secrets.append(credentials.secret_key)
    return serve(app, secrets=secrets, graceful=graceful)


def parse_sse(text: str) -> list[tuple[str, dict[str, str]]]:
    """``(kind, fields)`` per block: kind is the event name, or ``comment`` for ``:`` lines."""
    found: list[tuple[str, dict[str, str]]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                fields["comment"] = line[1:].strip()
            else:
                name, _, value = line.partition(": ")
                fields[name] = value
        found.append((fields.get("event", "comment"), fields))
    return found


async def read_stream(http: httpx.AsyncClient, url: str, **kwargs: Any) -> tuple[httpx.Response, str]:
    async with http.stream("GET", url, **kwargs) as response:
        text = "".join([chunk async for chunk in response.aiter_text()])
    return response, text


async def eventually(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------------------ the example, end to end


async def test_create_then_stream_until_deployed_with_config_from_environment(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = emulator.credentials
    monkeypatch.setenv("AIMLOPS_ENDPOINT", emulator.url)
    monkeypatch.setenv("SCP_ACCESS_KEY", creds.access_key)
    monkeypatch.setenv("SCP_SECRET_KEY", creds.secret_key)
    monkeypatch.setenv("SCP_ACCOUNT_ID", creds.account_id or "")
    monkeypatch.setenv("AIMLOPS_POLL_DELAY", "0.02")
    monkeypatch.setenv("AIMLOPS_POLL_MAX_DELAY", "0.05")
    app = example.create_app(keepalive=5.0)
    async with serve(app, secrets=[creds.secret_key, SAMPLE_PASSWORD]) as served:
        created = await served.http.post("/platforms", json=emulator.sample_create_request("web-1"))
        assert created.status_code == 202
        release_id = created.json()["release_id"]
        assert created.headers["Location"] == f"/platforms/{release_id}"
        assert served.client.endpoint == emulator.url

        response, text = await read_stream(served.http, created.headers["Location"] + "/events")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert creds.secret_key not in text and SAMPLE_PASSWORD not in text
        events = [(kind, fields) for kind, fields in parse_sse(text) if kind != "comment"]
        kinds = [kind for kind, _ in events]
        assert kinds[-1] == "done" and set(kinds[:-1]) == {"state"}
        details = [json.loads(fields["data"]) for _, fields in events[:-1]]
        states = [detail["release_state"] for detail in details]
        assert states[-1] == "DEPLOYED"
        assert set(states) <= {"CREATING", "INSTALLING", "DEPLOYED"}
        pairs = [(detail["release_state"], detail["cluster_state"]) for detail in details]
        assert all(one != two for one, two in itertools.pairwise(pairs))  # one event per change
        assert {detail["release_id"] for detail in details} == {release_id}
        assert details[-1]["release_name"] == "web-1"
        assert json.loads(events[-1][1]["data"]) == {"release_id": release_id, "state": "DEPLOYED"}
        assert events[-1][1]["id"] == "end"

        # An EventSource reconnecting after the last event is told to stop.
        again = await served.http.get(f"/platforms/{release_id}/events", headers={"Last-Event-ID": "end"})
        assert again.status_code == 204

        # The background wait ends by itself once the platform is deployed.
        await eventually(lambda: len(served.tasks) == 0, "the background wait finished")
        detail = await served.http.get(f"/platforms/{release_id}")
        assert detail.status_code == 200 and detail.json()["release_state"] == "DEPLOYED"
        assert detail.json()["created_dt"].endswith("Z")


async def test_stream_of_a_failing_platform_ends_with_an_error_event() -> None:
    async with Emulator(**FAST_PHASES, fail_pattern="^doomed") as emu, served_example(emu) as served:
        created = await served.http.post("/platforms", json=emu.sample_create_request("doomed-1"))
        release_id = created.json()["release_id"]
        _, text = await read_stream(served.http, f"/platforms/{release_id}/events")
        events = [(kind, fields) for kind, fields in parse_sse(text) if kind != "comment"]
        assert events[-1][0] == "error"
        error = json.loads(events[-1][1]["data"])
        assert error["status"] == 409 and error["error"] == "terminal_state"
        assert error["release_id"] == release_id and error["state"] == "FAILED"
        assert json.loads(events[-2][1]["data"])["release_state"] == "FAILED"

        # The long-poll route says the same as an HTTP answer.
        waited = await served.http.get(f"/platforms/{release_id}/wait", params={"timeout": 5})
        assert waited.status_code == 409
        assert waited.json()["state"] == "FAILED" and waited.json()["error"] == "terminal_state"


async def test_stream_sends_keepalives_and_stops_polling_when_the_client_leaves() -> None:
    async with Emulator(creating_seconds=30.0) as emu, served_example(emu, keepalive=0.02) as served:
        created = await served.http.post("/platforms", json=emu.sample_create_request("slow-1"))
        release_id = created.json()["release_id"]
        await eventually(lambda: len(served.tasks) == 1, "the background wait started")
        # Stop the background wait's polling so only the stream polls from here on.
        for task in served.tasks.tasks:
            task.cancel()
        await eventually(lambda: len(served.tasks) == 0, "the background wait was cancelled")

        seen: list[str] = []
        async with served.http.stream("GET", f"/platforms/{release_id}/events") as response:
            async for line in response.aiter_lines():
                seen.append(line)
                if line.startswith(": keep-alive") and len(seen) > 3:
                    break
        assert seen[0] == "event: state"
        assert ": keep-alive" in seen

        key = "GET /v1/aimlops-platform/{release_id}"

        def polls() -> int:
            return emu.stats.requests[key]

        # Once the server has seen the disconnect, nothing polls this platform any more.
        await asyncio.sleep(0.3)
        before = polls()
        await asyncio.sleep(0.4)
        assert polls() == before


async def test_list_passes_pages_and_filters_through(emulator: Emulator, client: AimlopsClient) -> None:
    for number in range(5):
        await client.platforms.create(emulator.sample_create_request(f"page-{number}"))
    await client.platforms.create(emulator.sample_create_request("other-0"))
    async with served_example(emulator) as served:
        first = await served.http.get("/platforms", params={"size": 2, "page": 0, "release_name": "page-"})
        assert first.status_code == 200
        body = first.json()
        assert body["total_count"] == 5 and body["page"] == 0 and body["size"] == 2
        assert len(body["contents"]) == 2
        last_page = {"size": 2, "page": 2, "release_name": "page-"}
        last = (await served.http.get("/platforms", params=last_page)).json()
        assert len(last["contents"]) == 1
        names = {item["release_name"] for item in body["contents"] + last["contents"]}
        assert names <= {f"page-{number}" for number in range(5)}
        everything = (await served.http.get("/platforms", params={"size": 100})).json()
        assert everything["total_count"] == 6
        assert {item["status"] for item in everything["contents"]} <= {"CREATING", "INSTALLING", "DEPLOYED"}
        for bad in ({"size": 0}, {"size": 101}, {"page": -1}):
            assert (await served.http.get("/platforms", params=bad)).status_code == 422


async def test_delete_answers_202_and_the_platform_goes_away_in_the_background(emulator: Emulator) -> None:
    async with served_example(emulator) as served:
        created = await served.http.post("/platforms", json=emulator.sample_create_request("gone-1"))
        release_id = created.json()["release_id"]
        deployed = await served.http.get(f"/platforms/{release_id}/wait", params={"timeout": 10})
        assert deployed.status_code == 200 and deployed.json()["release_state"] == "DEPLOYED"

        deleted = await served.http.delete(f"/platforms/{release_id}")
        assert deleted.status_code == 202 and deleted.json() == {"release_id": release_id}
        await eventually(lambda: len(served.tasks) == 0, "the background delete wait finished")
        assert (await served.http.get(f"/platforms/{release_id}")).status_code == 404


async def test_delete_cancels_a_deploy_wait_still_running(emulator: Emulator, client: AimlopsClient) -> None:
    # Slow polls in the app: its deploy wait is still asleep when the platform is deployed.
    async with served_example(emulator, poll_delay=5.0, poll_max_delay=5.0) as served:
        created = await served.http.post("/platforms", json=emulator.sample_create_request("short-lived"))
        release_id = created.json()["release_id"]
        (deploy_wait,) = served.tasks.tasks
        await client.platforms.wait_until_deployed(release_id)
        assert not deploy_wait.done()

        assert (await served.http.delete(f"/platforms/{release_id}")).status_code == 202
        # Left alone, it would see the platform vanish and poll 404s until its grace ran out.
        await eventually(deploy_wait.cancelled, "the deploy wait was cancelled")
        assert [task.get_name() for task in served.tasks.tasks] == [f"aimlops:delete:{release_id}"]
        await client.platforms.wait_until_deleted(release_id)


# ------------------------------------------------------------------------------ errors as HTTP answers


async def test_unknown_release_ids_answer_404(emulator: Emulator) -> None:
    async with served_example(emulator, events_not_found_grace=0.0) as served:
        for method, path in (("GET", "/platforms/nope"), ("DELETE", "/platforms/nope"),
                             ("GET", "/platforms/nope/events")):
            answer = await served.http.request(method, path)
            assert answer.status_code == 404, (method, path)
            assert answer.json()["error"] == "not_found"
            assert "nope" in answer.json()["detail"]


async def test_invalid_create_bodies_answer_422_naming_the_field(emulator: Emulator) -> None:
    async with served_example(emulator) as served:
        body = emulator.sample_create_request("bad-1")
        del body["ai_ml_ops_platform_create_request"]["release_name"]
        body["ai_ml_ops_platform_create_request"]["tags"] = "not-a-list"
        answer = await served.http.post("/platforms", json=body)
        assert answer.status_code == 422
        problems = {problem["field"]: problem for problem in answer.json()["detail"]}
        assert "ai_ml_ops_platform_create_request.release_name" in problems
        assert problems["ai_ml_ops_platform_create_request.tags"]["loc"] == [
            "ai_ml_ops_platform_create_request", "tags",
        ]
        assert answer.json()["error"] == "validation_error"

        # FastAPI's own 422 (not a JSON object) must not echo the posted password either.
        wrapped = await served.http.post("/platforms", json=[emulator.sample_create_request("bad-2")])
        assert wrapped.status_code == 422
        assert "input" not in wrapped.json()["detail"][0]
        broken = await served.http.post(
            "/platforms", content=b'{"initial_user_password": "' + SAMPLE_PASSWORD.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert broken.status_code == 422
        assert emulator.stats.requests["POST /v1/aimlops-platform"] == 0  # nothing bad was sent


async def test_duplicate_release_name_answers_409(emulator: Emulator) -> None:
    async with served_example(emulator) as served:
        body = emulator.sample_create_request("twice")
        assert (await served.http.post("/platforms", json=body)).status_code == 202
        again = await served.http.post("/platforms", json=body)
        assert again.status_code == 409
        assert again.json()["error"] == "already_exists" and "twice" in again.json()["detail"]
        assert emulator.stats.creates["twice"] == 1


async def test_an_unknown_cluster_in_a_create_body_answers_422_naming_the_field(emulator: Emulator) -> None:
    async with served_example(emulator) as served:
        body = emulator.sample_create_request("nowhere")
        body["ai_ml_ops_platform_create_request"]["cluster_id"] = "0" * 32
        answer = await served.http.post("/platforms", json=body)
        assert answer.status_code == 422
        assert answer.json()["error"] == "validation_error"
        [problem] = answer.json()["detail"]
        assert problem["field"] == "ai_ml_ops_platform_create_request.cluster_id"
        assert problem["loc"] == ["ai_ml_ops_platform_create_request", "cluster_id"]
        assert len(served.tasks) == 0  # nothing to wait for


async def test_waiting_for_an_unknown_release_id_answers_404_at_once(emulator: Emulator) -> None:
    # The default grace (5 s) is for platforms this app has just created, not for any id.
    async with served_example(emulator) as served:
        answer = await served.http.get("/platforms/0123456789abcdef0123456789abcdef/wait")
        assert answer.status_code == 404
        assert answer.json()["error"] == "not_found"
        # One GET, answered 404, was enough: the wait did not poll on.
        assert emulator.stats.requests["GET /v1/aimlops-platform/{release_id}"] == 1


async def test_fastapis_own_422_carries_the_same_error_field(emulator: Emulator) -> None:
    async with served_example(emulator) as served:
        answer = await served.http.get("/platforms", params={"size": "1000"})
        assert answer.status_code == 422
        assert answer.json()["error"] == "validation_error"
        [problem] = answer.json()["detail"]
        assert problem["loc"] == ["query", "size"] and problem["field"] == "size"


async def test_background_log_lines_reach_the_servers_log(emulator: Emulator) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    server_log = logging.getLogger("uvicorn.error")
    handler = Collect()
    server_log.addHandler(handler)
    try:
        async with served_example(emulator) as served:
            created = await served.http.post("/platforms", json=emulator.sample_create_request("logged"))
            release_id = created.json()["release_id"]
            await eventually(
                lambda: any(release_id in record.getMessage() and "DEPLOYED" in record.getMessage()
                            for record in records),
                "the background wait's line in the server's log",
            )
        # Put back at shutdown: the example's loggers no longer write to the server's handlers.
        assert handler not in logging.getLogger("examples.fastapi_app").handlers
        assert handler not in logging.getLogger("aimlops_async").handlers
    finally:
        server_log.removeHandler(handler)


async def test_upstream_rate_limit_answers_429_with_retry_after(emulator: Emulator) -> None:
    emulator.faults = Faults(rate_limit_rate=1.0, retry_after=7)
    async with served_example(emulator, max_retries=0) as served:
        answer = await served.http.get("/platforms/whatever")
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "7"
        assert answer.json()["retry_after"] == 7 and answer.json()["error"] == "rate_limited"
    # A Retry-After beyond what the client will sleep through is passed on, not slept through.
    async with served_example(emulator, max_retry_after=1.0) as served:
        answer = await served.http.get("/platforms")
        assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"


async def test_upstream_server_errors_answer_502(emulator: Emulator) -> None:
    emulator.faults = Faults(error_rate=1.0)
    async with served_example(emulator, max_retries=1) as served:
        answer = await served.http.get("/platforms/whatever")
        assert answer.status_code == 502
        assert answer.json()["error"] == "upstream_error"
        assert answer.json()["upstream_status"] in (500, 503)


async def test_rejected_credentials_answer_502_without_leaking_them(emulator: Emulator) -> None:
    wrong = Credentials(emulator.credentials.access_key, "not-the-secret-key-at-all",
                        emulator.credentials.account_id)
    async with served_example(emulator, credentials=wrong) as served:
        answer = await served.http.get("/platforms")
        assert answer.status_code == 502
        assert answer.json()["error"] == "upstream_auth_failed"
        assert answer.json()["upstream_status"] == 401


async def test_unreachable_api_answers_502() -> None:
    emu = Emulator(**FAST_PHASES)
    await emu.start()
    async with served_example(emu) as served:
        assert (await served.http.get("/platforms")).status_code == 200
        await emu.stop()
        answer = await served.http.get("/platforms/whatever")
        assert answer.status_code == 502 and answer.json()["error"] == "upstream_unreachable"


async def test_api_that_does_not_answer_in_time_answers_502() -> None:
    stalling = Faults(stall_rate=1.0, stall_seconds=5.0)
    async with Emulator(**FAST_PHASES, faults=stalling) as emu, served_example(
        emu, timeout=0.2, max_retries=0
    ) as served:
        answer = await served.http.get("/platforms/whatever")
        assert answer.status_code == 502 and answer.json()["error"] == "upstream_timeout"


async def test_wait_that_runs_out_answers_504() -> None:
    async with Emulator(creating_seconds=30.0) as emu, served_example(emu) as served:
        created = await served.http.post("/platforms", json=emu.sample_create_request("late-1"))
        release_id = created.json()["release_id"]
        answer = await served.http.get(f"/platforms/{release_id}/wait", params={"timeout": 0.2})
        assert answer.status_code == 504
        assert answer.json()["error"] == "wait_timeout"
        assert answer.json()["release_id"] == release_id and answer.json()["state"] == "CREATING"


def _status_error(cls: type[Any], status: int, **extra: Any) -> Any:
    return cls("upstream says no", status=status, method="GET", url="http://x/v1", request_id="r-1", **extra)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ValidationError([("a.b[2].c", "is required")]), 422, "validation_error"),
        (_status_error(NotFoundError, 404), 404, "not_found"),
        (_status_error(BadRequestError, 400), 400, "bad_request"),
        (_status_error(ConflictError, 409), 409, "conflict"),
        (_status_error(RateLimitError, 429, retry_after=2.5), 429, "rate_limited"),
        (_status_error(AuthenticationError, 401), 502, "upstream_auth_failed"),
        (_status_error(PermissionDeniedError, 403), 502, "upstream_auth_failed"),
        (_status_error(ServerError, 503), 502, "upstream_error"),
        (APIConnectionError("cannot connect", sent=False), 502, "upstream_unreachable"),
        (APITimeoutError("no answer"), 502, "upstream_timeout"),
        (WaiterTimeoutError("too slow", release_id="r"), 504, "wait_timeout"),
        (TerminalStateError("failed", release_id="r", state="FAILED"), 409, "terminal_state"),
        (AimlopsError("this AimlopsClient is closed"), 500, "internal_error"),
    ],
)
def test_error_answer_maps_every_sdk_error(error: AimlopsError, status: int, code: str) -> None:
    answer = error_answer(error)
    assert answer.status_code == status
    assert answer.content["error"] == code
    assert "http://x" not in json.dumps(answer.content)  # upstream URLs stay inside
    if status == 502 and code == "upstream_auth_failed":
        assert "upstream says no" not in json.dumps(answer.content)


def test_error_answer_details() -> None:
    validation = error_answer(ValidationError([("a.b[2].c", "is required"), ("d", "bad")]))
    assert validation.content["detail"][0] == {
        "loc": ["a", "b", 2, "c"], "field": "a.b[2].c", "msg": "is required", "type": "value_error",
    }
    limited = error_answer(_status_error(RateLimitError, 429, retry_after=2.5))
    assert limited.headers == {"Retry-After": "3"} and limited.content["upstream_request_id"] == "r-1"
    failed = error_answer(TerminalStateError("p ended in FAILED", release_id="r", state="FAILED"))
    assert failed.content["release_id"] == "r" and failed.content["state"] == "FAILED"
    leaky = error_answer(_status_error(NotFoundError, 404), redact=["says"])
    assert leaky.content["detail"] == "upstream *** no"


async def test_waiter_timeout_through_a_route_answers_504() -> None:
    app = FastAPI()
    install_exception_handlers(app)

    @app.get("/slow")
    async def slow() -> None:
        raise WaiterTimeoutError("platform r was not DEPLOYED within 1 s", release_id="r")

    async with serve(app, secrets=[]) as served:
        answer = await served.http.get("/slow")
        assert answer.status_code == 504 and answer.json()["release_id"] == "r"


# ------------------------------------------------------------------------------ one client, many requests


async def test_many_concurrent_requests_share_one_client(emulator: Emulator, client: AimlopsClient) -> None:
    answer = await client.platforms.create(emulator.sample_create_request("shared-1"))
    release_id = answer.resource_id
    async with served_example(emulator) as served:
        shared = served.client
        assert (await served.http.get(f"/platforms/{release_id}")).status_code == 200
        session = shared._session._session  # the aiohttp ClientSession, created on first use
        assert session is not None
        calls_before = shared.stats.calls

        answers = await asyncio.gather(
            *(served.http.get(f"/platforms/{release_id}") for _ in range(100))
        )

        assert [answer.status_code for answer in answers] == [200] * 100
        assert {answer.json()["release_id"] for answer in answers} == {release_id}
        assert served.client is shared
        assert shared.stats.calls - calls_before == 100
        assert shared._session._session is session
    assert shared.closed and session.closed


# ------------------------------------------------------------------------------ shutdown


async def test_shutdown_cancels_waits_in_flight_and_closes_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with Emulator(creating_seconds=30.0) as emu:
        served_context = served_example(emu, graceful=0.3)
        served = await served_context.__aenter__()
        try:
            for number in range(5):
                body = emu.sample_create_request(f"busy-{number}")
                created = await served.http.post("/platforms", json=body)
                assert created.status_code == 202
            await eventually(lambda: len(served.tasks) == 5, "five background waits running")
            waits = list(served.tasks.tasks)
            client = served.client
            release_id = created.json()["release_id"]

            # An open event stream too: a browser still watching when the server stops.
            opened = asyncio.Event()

            async def watch_stream() -> str:
                text = ""
                # The stream ends as a normal end of the response, not as a broken connection.
                async with served.http.stream("GET", f"/platforms/{release_id}/events") as response:
                    async for chunk in response.aiter_text():
                        text += chunk
                        opened.set()
                return text

            watcher = asyncio.create_task(watch_stream())
            await asyncio.wait_for(opened.wait(), 10)

            registry = served.tasks
            await served.stop()

            assert all(task.cancelled() for task in waits)
            assert len(registry) == 0 and registry.closing
            assert client.closed
            assert getattr(served.app.state, STATE_CLIENT) is None
            text = await asyncio.wait_for(watcher, 10)
            assert "event: state" in text
            # Neither a traceback nor an error per open stream in the server's log.
            assert not [record for record in caplog.records if record.exc_info], caplog.text
            assert "Exception in ASGI application" not in caplog.text
            # Nothing of the app is left running: no wait, no poll, no stream, no server task.
            left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            assert left == [], [task.get_coro() for task in left]
        finally:
            await served_context.__aexit__(None, None, None)


async def test_cancelled_lifespan_still_cancels_waits_and_closes_the_client(emulator: Emulator) -> None:
    # What a server's forced exit does: it cancels the lifespan instead of asking it to stop.
    app = FastAPI()
    running = asyncio.Event()
    seen: dict[str, Any] = {}

    async def background() -> None:
        running.set()
        await asyncio.sleep(3600)

    async def lifespan() -> None:
        async with open_client(app, endpoint=emulator.url, credentials=emulator.credentials) as client:
            seen["client"] = client
            await client.platforms.list().to_list()  # the aiohttp session is open now
            seen["task"] = getattr(app.state, STATE_TASKS).spawn(background())
            await asyncio.sleep(3600)

    task = asyncio.create_task(lifespan())
    await asyncio.wait_for(running.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen["task"].cancelled()
    assert seen["client"].closed
    assert getattr(app.state, STATE_CLIENT) is None


async def test_spawn_after_shutdown_is_refused_without_a_never_awaited_warning() -> None:
    registry = TaskRegistry()
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = registry.spawn(forever(), name="forever")
    await started.wait()
    await registry.aclose()
    assert task.cancelled() and len(registry) == 0 and registry.closing
    with pytest.raises(RuntimeError, match="shutting down"):
        registry.spawn(forever())


async def test_failed_background_tasks_are_logged_and_do_not_disturb_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with TaskRegistry("test") as registry:

        async def fails() -> None:
            raise NotFoundError("platform 'x' was not found", status=404)

        async def crashes() -> None:
            raise KeyError("bug")

        async def works() -> str:
            return "ok"

        with caplog.at_level(logging.WARNING, logger="aimlops_async.contrib.fastapi"):
            tasks = [registry.spawn(fails()), registry.spawn(crashes()), registry.spawn(works())]
            await asyncio.wait(tasks)
        assert tasks[2].result() == "ok"
        messages = [record.getMessage() for record in caplog.records]
        assert any("failed: [404] platform 'x' was not found" in message for message in messages)
        assert any("crashed" in message for message in messages)


# ------------------------------------------------------------------------------ lifespan and dependency


async def test_lifespan_composes_with_the_apps_own(emulator: Emulator) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[Mapping[str, Any]]:
        client = getattr(app.state, STATE_CLIENT)
        events.append(f"start, client open: {not client.closed}")
        yield {"greeting": "hello"}
        events.append(f"stop, client open: {not client.closed}")

    app = FastAPI(lifespan=aimlops_lifespan(own, endpoint=emulator.url, credentials=emulator.credentials))
    install_exception_handlers(app)

    @app.get("/where")
    async def where(request: Request, client: AimlopsClientDep) -> dict[str, Any]:
        return {"endpoint": client.endpoint, "greeting": request.state.greeting}

    async with serve(app, secrets=[emulator.credentials.secret_key]) as served:
        answer = await served.http.get("/where")
        assert answer.json() == {"endpoint": emulator.url, "greeting": "hello"}
        client = served.client
    assert events == ["start, client open: True", "stop, client open: True"]
    assert client.closed


async def test_startup_fails_clearly_without_configuration(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for variable in ("AIMLOPS_ENDPOINT", "SCP_REGION", "SCP_ENVIRONMENT", "SCP_ACCESS_KEY", "SCP_SECRET_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AIMLOPS_ENDPOINT", "http://127.0.0.1:9")
    app = example.create_app()  # importing or creating the app reads nothing yet
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="on", log_level="error", log_config=None,
    ))
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit):
        await server.serve()
    assert not server.started
    assert "SCP_ACCESS_KEY: is not set" in caplog.text
    assert getattr(app.state, STATE_CLIENT, None) is None


def test_get_client_explains_a_missing_lifespan() -> None:
    request = Request({"type": "http", "app": FastAPI(), "headers": []})
    with pytest.raises(RuntimeError, match="aimlops_lifespan"):
        get_client(request)


def test_importing_without_fastapi_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"
        "try:\n"
        "    import aimlops_async.contrib.fastapi\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'aimlops-async[fastapi]'" in result.stdout, result.stderr


def test_sse_and_json_helpers() -> None:
    assert sse_event("state", {"a": "x\ny"}, id="7") == b'event: state\nid: 7\ndata: {"a":"x\\ny"}\n\n'
    with pytest.raises(ValueError):
        sse_event("two\nlines", {})
    from datetime import datetime, timedelta, timezone

    from aimlops_async import PlatformDetail, ReleaseState

    detail = PlatformDetail(
        release_id="r", release_state=ReleaseState("SOMETHING_NEW"),
        created_dt=datetime(2024, 5, 17, 9, 23, 17, tzinfo=timezone(timedelta(hours=9))),
    )
    data = to_jsonable(detail)
    assert data["release_state"] == "SOMETHING_NEW"
    assert data["created_dt"] == "2024-05-17T00:23:17Z"
    assert data["cluster_id"] is None
    json.dumps(data)


async def test_error_answers_never_carry_the_auth_token_or_the_keys(caplog: pytest.LogCaptureFixture) -> None:
    from aimlops_async.contrib.fastapi import STATE_CLIENT, install_exception_handlers

    token = "tok-never-in-an-answer"
    credentials = Credentials("ak-in-answer", "sk-in-answer", "acct-1", token)
    app = FastAPI()
    install_exception_handlers(app)

    @app.get("/leak")
    async def leak() -> None:
        raise APIStatusError(
            f"upstream echoed {token} {credentials.access_key} {credentials.secret_key}",
            status=400, method="GET", url="http://x/v1",
        )

    async with AimlopsClient("http://127.0.0.1:1", credentials) as client:
        setattr(app.state, STATE_CLIENT, client)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            answer = await http.get("/leak")
    assert answer.status_code == 502  # a 400 from the API is the backend's fault, not the browser's
    for secret in (token, credentials.access_key, credentials.secret_key):
        assert secret not in answer.text
        assert secret not in caplog.text
    assert "upstream echoed *** *** ***" in caplog.text  # the log line keeps the message, redacted
