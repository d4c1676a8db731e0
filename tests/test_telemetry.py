"""Observability: OpenTelemetry spans and metrics (SDK in-memory exporters), hooks, your own session.

Providers are passed to each client (never set globally), so tests do not leak into each other.
Every call goes over loopback to the emulator or a scripted ``WireServer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import FAST_CLIENT
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from virtual_time import VirtualTime
from wire import FAST_RETRIES, Reply, WireServer, free_port

from aimlops_async import (
    AimlopsClient,
    AimlopsError,
    APIConnectionError,
    Credentials,
    NotFoundError,
    TerminalStateError,
    ValidationError,
    WaiterTimeoutError,
)
from aimlops_async.emulator import Emulator
from aimlops_async.telemetry import UNOBSERVED_WAIT, RequestInfo, ResponseInfo, Telemetry

GET_TEMPLATE = "/v1/aimlops-platform/{release_id}"


class Recorder:
    """An SDK tracer provider and meter provider with in-memory exporters."""

    def __init__(self) -> None:
        self.spans_exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans_exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    @property
    def providers(self) -> dict[str, Any]:
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.spans_exporter.get_finished_spans())
        return [span for span in spans if name is None or span.name == name]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found.extend(item.data.data_points)
        return found

    def everything_as_text(self) -> str:
        """Every span name, attribute, event and metric attribute, as one string."""
        parts: list[str] = []
        for span in self.spans():
            parts.append(span.name)
            parts.append(repr(dict(span.attributes or {})))
            parts.append(repr(span.status.description))
            for event in span.events:
                parts.append(event.name)
                parts.append(repr(dict(event.attributes or {})))
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    for point in item.data.data_points:
                        parts.append(repr(dict(point.attributes)))
        return "\n".join(parts)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recording = Recorder()
    yield recording
    recording.shutdown()


# ---------------------------------------------------------------------------- call spans


async def test_one_client_span_per_operation_named_after_it(
    emulator: Emulator, recorder: Recorder
) -> None:
    async with AimlopsClient(
        emulator.url, emulator.credentials, **FAST_CLIENT, **recorder.providers
    ) as client:
        created = await client.platforms.create(emulator.sample_create_request("otel-one"))
        release_id = created.resource_id
        assert release_id
        await client.platforms.get(release_id)
        assert await client.platforms.check_duplication("otel-one") is True
        [item async for item in client.platforms.list(release_name="otel-one")]
        [item async for item in client.images.list()]
        await client.clusters.validate_namespaces(emulator.cluster_id)
        await client.clusters.list_storage_classes(emulator.cluster_id)

    names = [span.name for span in recorder.spans()]
    assert names == [
        "aimlops.platforms.create", "aimlops.platforms.get", "aimlops.platforms.check_duplication",
        "aimlops.platforms.list", "aimlops.images.list", "aimlops.clusters.validate_namespaces",
        "aimlops.clusters.list_storage_classes",
    ]
    port = int(emulator.url.rsplit(":", 1)[1])
    [get] = recorder.spans("aimlops.platforms.get")
    assert get.kind is SpanKind.CLIENT
    assert release_id not in get.name
    attributes = dict(get.attributes or {})
    assert attributes == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": port,
        "url.scheme": "http",
        "url.template": GET_TEMPLATE,
        "url.full": f"{emulator.url}/v1/aimlops-platform/{release_id}",
        "http.response.status_code": 200,
    }
    assert get.status.status_code is StatusCode.UNSET
    [create] = recorder.spans("aimlops.platforms.create")
    assert create.attributes is not None
    assert create.attributes["http.request.method"] == "POST"
    assert create.attributes["url.template"] == "/v1/aimlops-platform"
    [nodes] = recorder.spans("aimlops.clusters.list_storage_classes")
    assert nodes.attributes is not None
    assert nodes.attributes["url.template"] == (
        "/v1/aimlops-platform/internal/clusters/{cluster_id}/storageclasses"
    )


async def test_an_error_answer_marks_the_span(emulator: Emulator, recorder: Recorder) -> None:
    async with AimlopsClient(
        emulator.url, emulator.credentials, **FAST_CLIENT, **recorder.providers
    ) as client:
        with pytest.raises(NotFoundError):
            await client.platforms.get("0123456789abcdef0123456789abcdef")

    [span] = recorder.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "404"
    assert span.attributes["http.response.status_code"] == 404
    assert "http.request.resend_count" not in span.attributes


async def test_retries_are_events_and_resend_count(recorder: Recorder) -> None:
    async with WireServer() as server:
        server.script(Reply(503, {"code": "BUSY"}), Reply(502, "bad gateway"), Reply(200, {"result": False}))
        async with AimlopsClient(
            server.url, server.credentials, **FAST_RETRIES, **recorder.providers
        ) as client:
            assert await client.platforms.check_duplication("x") is False

    [span] = recorder.spans()
    assert span.attributes is not None
    assert span.attributes["http.request.resend_count"] == 2
    assert span.attributes["http.response.status_code"] == 200
    assert span.status.status_code is StatusCode.UNSET
    events = [(event.name, dict(event.attributes or {})) for event in span.events]
    assert [name for name, _ in events] == ["aimlops.retry", "aimlops.retry"]
    assert [attrs["error.type"] for _, attrs in events] == ["503", "502"]
    assert [attrs["http.request.resend_count"] for _, attrs in events] == [1, 2]
    assert all(attrs["aimlops.retry.delay"] >= 0 for _, attrs in events)

    retries = {
        point.attributes["error.type"]: point.value for point in recorder.points("aimlops.client.retries")
    }
    assert retries == {"503": 1, "502": 1}
    statuses = sorted(
        point.attributes.get("http.response.status_code")
        for point in recorder.points("http.client.request.duration")
    )
    assert statuses == [200, 502, 503]
    assert sum(point.count for point in recorder.points("http.client.request.duration")) == 3
    [call] = recorder.points("aimlops.client.operation.duration")
    assert call.count == 1
    assert call.attributes["aimlops.operation"] == "platforms.check_duplication"
    assert call.attributes["aimlops.status_class"] == "2xx"
    active = recorder.points("http.client.active_requests")
    assert [point.value for point in active] == [0]


async def test_no_answer_is_an_error_type_of_its_class(recorder: Recorder) -> None:
    port = free_port()
    async with AimlopsClient(
        f"http://127.0.0.1:{port}", Credentials("ak", "sk"), **FAST_RETRIES, max_retries=0,
        **recorder.providers,
    ) as client:
        with pytest.raises(APIConnectionError):
            await client.platforms.get("abc")

    [span] = recorder.spans()
    assert span.attributes is not None
    assert span.attributes["error.type"] == "aimlops_async.errors.APIConnectionError"
    assert "http.response.status_code" not in span.attributes
    assert span.status.status_code is StatusCode.ERROR
    [call] = recorder.points("aimlops.client.operation.duration")
    assert call.attributes["aimlops.status_class"] == "none"


async def test_no_secret_in_any_span_event_or_metric(recorder: Recorder) -> None:
    secret, password = "s3cret-key-for-otel", "Otel-Pa55word-1"
    signatures: list[str] = []

    def capture(recorded: Any) -> Reply:
        signatures.append(recorded.headers["Scp-Signature"])
        return Reply(503, {"code": "BUSY"}) if len(signatures) == 1 else Reply(
            200, {"resource_id": "r1", "request_id": "q1"}
        )

    async with WireServer(secret_key=secret, handler=capture) as server:
        credentials = Credentials(server.access_key, secret)
        async with AimlopsClient(
            server.url, credentials, **FAST_RETRIES, **recorder.providers,
            propagate_trace_context=True,
        ) as client:
            await client.platforms.update("r1", {"ai_ml_ops_platform_endpoint_type": "Public"})
            body = {"ai_ml_ops_platform_create_request": {
                "release_name": "n", "ai_ml_ops_platform_type": "Enterprise", "image_id": "i",
                "initial_user_email": "a@example.com", "initial_user_password": password,
                "cluster_id": "c",
            }}
            await client.platforms.create(body)

    text = recorder.everything_as_text()
    assert "aimlops.platforms.create" in text  # the capture worked
    for forbidden in (secret, password, server.access_key, *signatures):
        assert forbidden not in text


# ---------------------------------------------------------------------------- disabled


async def test_nothing_is_recorded_without_a_provider(emulator: Emulator, recorder: Recorder) -> None:
    seen: list[str] = []
    async with WireServer() as server:
        server.script(Reply(503, {}), Reply(200, {"result": True}))
        async with AimlopsClient(
            server.url, server.credentials, **FAST_RETRIES, propagate_trace_context=True
        ) as client:
            assert await client.platforms.check_duplication("x") is True
            telemetry = client._session.telemetry
            assert telemetry.enabled is False and client._session._observed is False
            seen = [request.headers.get("traceparent", "") for request in server.requests]
    assert seen == ["", ""]
    assert recorder.spans() == []  # a provider no client was given records nothing


async def test_traceparent_only_when_asked_and_still_signed(recorder: Recorder) -> None:
    async with WireServer(default=Reply(200, {"result": False})) as server:
        async with AimlopsClient(server.url, server.credentials, **recorder.providers) as client:
            await client.platforms.check_duplication("x")
        async with AimlopsClient(
            server.url, server.credentials, **recorder.providers, propagate_trace_context=True
        ) as client:
            await client.platforms.check_duplication("y")
        quiet, propagated = server.requests
        assert "traceparent" not in quiet.headers
        assert server.signature_ok(propagated)
    span = recorder.spans()[1]
    assert span.context is not None
    assert propagated.headers["traceparent"] == (
        f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-{span.context.trace_flags:02x}"
    )
    assert "baggage" not in propagated.headers


async def test_the_emulator_accepts_propagated_requests(emulator: Emulator, recorder: Recorder) -> None:
    async with AimlopsClient(
        emulator.url, emulator.credentials, **FAST_CLIENT, **recorder.providers,
        propagate_trace_context=True,
    ) as client:
        assert await client.platforms.check_duplication("free-name") is False


def test_without_the_extra_calls_and_hooks_work() -> None:
    program = textwrap.dedent("""
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # as if the extra were not installed
        from aimlops_async import AimlopsClient
        from aimlops_async import telemetry
        from aimlops_async.emulator import Emulator

        async def main():
            seen = []
            async def on_request(info):
                seen.append(info.operation)
            async with Emulator() as emulator, AimlopsClient(
                emulator.url, emulator.credentials, on_request=on_request,
                propagate_trace_context=True,
            ) as client:
                assert await client.platforms.check_duplication("x") is False
                with client._session.telemetry.wait_span("r") as wait:
                    wait.record_poll()
            print(telemetry.HAVE_OPENTELEMETRY, seen)

        asyncio.run(main())
    """)
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False ['platforms.check_duplication']"


# ---------------------------------------------------------------------------- hooks


async def test_hooks_see_each_attempt_redacted(recorder: Recorder) -> None:
    requests: list[RequestInfo] = []
    responses: list[ResponseInfo] = []

    async def on_request(info: RequestInfo) -> None:
        requests.append(info)

    async def on_response(info: ResponseInfo) -> None:
        responses.append(info)

    async with WireServer() as server:
        server.script(Reply(503, {}, headers={"X-Request-Id": "one"}), Reply(200, {"result": True}))
        async with AimlopsClient(
            server.url, server.credentials, **FAST_RETRIES, on_request=on_request, on_response=on_response
        ) as client:
            assert await client.platforms.check_duplication("x") is True
        sent = server.requests

    assert [info.attempt for info in requests] == [1, 2]
    assert [info.attempt for info in responses] == [1, 2]
    assert [info.status for info in responses] == [503, 200]
    assert responses[0].headers["X-Request-Id"] == "one"
    assert all(info.elapsed >= 0 for info in responses)
    first = requests[0]
    assert first.operation == "platforms.check_duplication" and first.method == "GET"
    assert first.url == sent[0].url
    assert first.headers["Scp-Signature"] == "REDACTED"
    assert first.headers["Scp-AccessKey"] == "REDACTED"
    assert first.headers["Scp-Timestamp"] == sent[0].headers["Scp-Timestamp"]
    assert server.secret_key not in repr(requests)
    assert sent[0].headers["Scp-Signature"] not in repr(requests)


async def test_a_hook_that_raises_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(info: Any) -> None:
        raise RuntimeError("hook bug")

    async with WireServer(default=Reply(200, {"result": False})) as server, AimlopsClient(
        server.url, server.credentials, **FAST_RETRIES, on_request=broken, on_response=broken
    ) as client:
        with caplog.at_level(logging.WARNING, logger="aimlops_async"):
            assert await client.platforms.check_duplication("x") is False
    warnings = [record for record in caplog.records if "hook raised" in record.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].exc_info is not None and "hook bug" in str(warnings[0].exc_info[1])


def test_hooks_and_sessions_are_checked() -> None:
    with pytest.raises(ValidationError, match="on_request"):
        AimlopsClient("http://127.0.0.1:1", Credentials("a", "b"), on_request="nope")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="session"):
        AimlopsClient("http://127.0.0.1:1", Credentials("a", "b"), session=object())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="trace_configs"):
        AimlopsClient("http://127.0.0.1:1", Credentials("a", "b"), trace_configs=["x"])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="propagate_trace_context"):
        AimlopsClient("http://127.0.0.1:1", Credentials("a", "b"), propagate_trace_context=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- your own session


async def test_your_own_session_is_signed_and_left_open(emulator: Emulator) -> None:
    calls: list[str] = []
    hooked: list[str] = []

    async def on_request(info: RequestInfo) -> None:
        hooked.append(info.headers["Scp-Signature"])

    async def user_middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        calls.append(request.url.path)
        return await handler(request)

    async with aiohttp.ClientSession(middlewares=(user_middleware,), raise_for_status=True) as session:
        async with AimlopsClient(
            emulator.url, emulator.credentials, **FAST_CLIENT, session=session, on_request=on_request
        ) as client:
            assert await client.platforms.check_duplication("mine") is False
            with pytest.raises(NotFoundError):  # raise_for_status=True on the session is not ours
                await client.platforms.get("0123456789abcdef0123456789abcdef")
        assert client.closed and not session.closed
        assert len(calls) == 2  # the session's own middleware still runs, before signing
        assert hooked == ["REDACTED", "REDACTED"]
        async with session.get(
            emulator.url + "/v1/aimlops-platform/check-duplication", raise_for_status=False
        ) as answer:
            assert answer.status == 401  # the user's other requests are not signed for them


async def test_trace_configs_reach_the_session(emulator: Emulator) -> None:
    started: list[str] = []

    async def on_request_start(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        started.append(params.method)

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_request_start)
    async with AimlopsClient(
        emulator.url, emulator.credentials, **FAST_CLIENT, trace_configs=[config]
    ) as client:
        await client.platforms.check_duplication("traced")
    assert started == ["GET"]


async def test_a_traceparent_set_by_aiohttp_tracing_is_kept(recorder: Recorder) -> None:
    theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def on_request_start(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        params.headers["traceparent"] = theirs  # as opentelemetry-instrumentation-aiohttp-client does

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_request_start)
    async with WireServer(default=Reply(200, {"result": False})) as server:
        async with AimlopsClient(
            server.url, server.credentials, **recorder.providers, trace_configs=[config],
            propagate_trace_context=True,
        ) as client:
            await client.platforms.check_duplication("x")
        [sent] = server.requests
        assert sent.headers.getall("traceparent") == [theirs]
        assert server.signature_ok(sent)


def test_one_client_in_two_event_loops_is_a_clear_error() -> None:
    client = AimlopsClient(
        f"http://127.0.0.1:{free_port()}", Credentials("ak", "sk"), **FAST_RETRIES, max_retries=0
    )

    async def call() -> None:
        await client.platforms.check_duplication("x")

    with pytest.raises(APIConnectionError):
        asyncio.run(call())
    with pytest.raises(AimlopsError, match="event loop that created it"):
        asyncio.run(call())
    asyncio.run(client.close())


# ---------------------------------------------------------------------------- lifecycle spans


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_telemetry(recorder: Recorder) -> Telemetry:
    return Telemetry(base_url="http://127.0.0.1:8080", **recorder.providers)


def test_wait_span_records_polls_state_and_time(recorder: Recorder) -> None:
    telemetry = make_telemetry(recorder)
    clock = Clock()
    with telemetry.provision_span(2, clock=clock) as run:
        with telemetry.wait_span("rel-1", until="deployed", clock=clock) as wait:
            for _ in range(3):
                clock.now += 5
                wait.record_poll()
            wait.finish("DEPLOYED")
        clock.now += 1
        run.finish([_Result(created=True), _Result(created=False)])

    [wait_span] = recorder.spans("aimlops.wait")
    assert dict(wait_span.attributes or {}) == {
        "aimlops.release_id": "rel-1", "aimlops.wait.until": "deployed",
        "aimlops.wait.polls": 3, "aimlops.wait.waited": 15.0,
        "aimlops.wait.outcome": "succeeded", "aimlops.wait.final_state": "DEPLOYED",
    }
    [run_span] = recorder.spans("aimlops.provision_many")
    assert wait_span.parent is not None and run_span.context is not None
    assert wait_span.parent.span_id == run_span.context.span_id
    assert dict(run_span.attributes or {}) == {
        "aimlops.provision.requested": 2, "aimlops.provision.created": 1,
        "aimlops.provision.adopted": 1, "aimlops.provision.succeeded": 2,
        "aimlops.provision.failed": 0, "aimlops.provision.duration": 16.0,
    }
    [outcome] = recorder.points("aimlops.waits")
    assert outcome.value == 1 and outcome.attributes["aimlops.wait.outcome"] == "succeeded"
    [active] = recorder.points("aimlops.waits.active")
    assert active.value == 0
    [duration] = recorder.points("aimlops.wait.duration")
    assert duration.sum == 15.0


@pytest.mark.parametrize(
    ("error", "outcome", "is_error"),
    [
        (WaiterTimeoutError("too long", release_id="r"), "timeout", True),
        (TerminalStateError("failed", release_id="r", state="FAILED"), "failed", True),
        (asyncio.CancelledError(), "cancelled", False),
    ],
)
def test_wait_span_outcome_from_the_exception(
    recorder: Recorder, error: BaseException, outcome: str, is_error: bool
) -> None:
    telemetry = make_telemetry(recorder)
    with pytest.raises(type(error)), telemetry.wait_span("r", clock=Clock()) as wait:
        wait.finish("FAILED")
        raise error
    [span] = recorder.spans("aimlops.wait")
    assert span.attributes is not None
    assert span.attributes["aimlops.wait.outcome"] == outcome
    assert (span.status.status_code is StatusCode.ERROR) is is_error
    [counted] = recorder.points("aimlops.waits")
    assert counted.attributes["aimlops.wait.outcome"] == outcome


def test_wait_span_without_context_switch_and_disabled() -> None:
    recorder = Recorder()
    try:
        telemetry = make_telemetry(recorder)
        wait = telemetry.wait_span("r", until="deleted", clock=Clock()).start()
        wait.record_poll()
        wait.finish(None)
        wait.end()
        wait.end()  # twice is harmless
        [span] = recorder.spans("aimlops.wait")
        assert span.attributes is not None
        assert span.attributes["aimlops.wait.until"] == "deleted"
        assert "aimlops.wait.final_state" not in span.attributes
    finally:
        recorder.shutdown()

    disabled = Telemetry(base_url="http://127.0.0.1:8080")
    with disabled.provision_span(1) as run, disabled.wait_span("r") as wait:
        wait.record_poll()
        wait.finish("DEPLOYED")
        run.finish([])
    assert wait.span is None and run.span is None and wait.polls == 1


class _Result:
    def __init__(self, *, created: bool, error: BaseException | None = None) -> None:
        self.created = created
        self.error = error


@pytest.mark.slow
def test_the_guide_example_runs_and_prints_spans_and_metrics() -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs" / "observability.md").read_text()
    program = guide.split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    for expected in ("deployed: demo DEPLOYED", "as expected: 404", '"aimlops.platforms.create"',
                     '"aimlops.platforms.get"', '"aimlops.wait"', '"aimlops.waits"',
                     '"aimlops.wait.outcome": "succeeded"', '"http.client.request.duration"',
                     '"url.template": "/v1/aimlops-platform/{release_id}"'):
        assert expected in done.stdout


# ---------------------------------------------------------------------------- waits and bulk runs
# The lifecycle layer against the emulator in virtual time: the client's waits and the emulator's
# phases read the same ``VirtualTime`` clock, so a wait of minutes takes no real time.

PHASES = {"creating_seconds": 20.0, "installing_seconds": 20.0, "updating_seconds": 20.0,
          "deleting_seconds": 20.0}
VIRTUAL_CLIENT: dict[str, Any] = {"poll_delay": 5.0, "poll_max_delay": 10.0, "poll_timeout": 600.0}
PASSWORD = "Sample-Passw0rd"  # what the emulator's sample create request carries


@contextlib.asynccontextmanager
async def virtual_world(
    recorder: Recorder | None, **emulator_options: Any
) -> AsyncIterator[tuple[Emulator, AimlopsClient, VirtualTime]]:
    time = VirtualTime()
    async with Emulator(**{**PHASES, **emulator_options}) as emu:
        emu.store.monotonic = time.clock
        providers = recorder.providers if recorder is not None else {}
        async with AimlopsClient(emu.url, emu.credentials, **VIRTUAL_CLIENT, **providers) as client:
            client.platforms.timing = time.timing
            yield emu, client, time


def children_of(recorder: Recorder, parent: ReadableSpan, name: str) -> list[ReadableSpan]:
    assert parent.context is not None
    return [
        span for span in recorder.spans(name)
        if span.parent is not None and span.parent.span_id == parent.context.span_id
    ]


def outcomes_counted(recorder: Recorder) -> dict[tuple[str, str], int]:
    return {
        (point.attributes["aimlops.wait.until"], point.attributes["aimlops.wait.outcome"]): point.value
        for point in recorder.points("aimlops.waits")
    }


def active_waits(recorder: Recorder) -> int:
    return sum(point.value for point in recorder.points("aimlops.waits.active"))


async def test_a_deployed_wait_is_one_span_over_its_polls(recorder: Recorder) -> None:
    async with virtual_world(recorder) as (emu, client, time):
        created = await client.platforms.create(emu.sample_create_request("otel-wait"))
        release_id = created.resource_id
        assert release_id
        started = time.now
        tracer = recorder.tracer_provider.get_tracer("test")
        with tracer.start_as_current_span("deploy") as outer:
            detail = await client.platforms.wait_until_deployed(release_id)
        waited = time.now - started
    assert detail.release_state == "DEPLOYED"

    [wait] = recorder.spans("aimlops.wait")
    attributes = dict(wait.attributes or {})
    polls = attributes.pop("aimlops.wait.polls")
    assert attributes == {
        "aimlops.release_id": release_id, "aimlops.wait.until": "deployed",
        "aimlops.wait.final_state": "DEPLOYED", "aimlops.wait.waited": waited,
        "aimlops.wait.outcome": "succeeded",
    }
    assert waited >= 40.0  # both phases, in virtual seconds
    assert wait.status.status_code is StatusCode.UNSET
    assert wait.parent is not None and wait.parent.span_id == outer.get_span_context().span_id
    # Each poll is a GET, a child of the wait (the shared poller's task makes them for it).
    gets = children_of(recorder, wait, "aimlops.platforms.get")
    assert len(gets) == polls >= 3
    assert outcomes_counted(recorder) == {("deployed", "succeeded"): 1}
    assert active_waits(recorder) == 0
    [duration] = recorder.points("aimlops.wait.duration")
    assert duration.count == 1 and duration.sum == waited


async def test_concurrent_waits_each_get_their_span_and_their_polls(recorder: Recorder) -> None:
    async with virtual_world(recorder) as (emu, client, _time):
        ids = []
        for name in ("otel-a", "otel-b", "otel-c"):
            answer = await client.platforms.create(emu.sample_create_request(name))
            assert answer.resource_id
            ids.append(answer.resource_id)
        await asyncio.gather(*(client.platforms.wait_until_deployed(rid) for rid in ids))

    waits = {
        dict(span.attributes or {})["aimlops.release_id"]: span for span in recorder.spans("aimlops.wait")
    }
    assert sorted(waits) == sorted(ids)
    for release_id, wait in waits.items():
        assert wait.parent is None  # no span was current where the test waited
        gets = children_of(recorder, wait, "aimlops.platforms.get")
        assert gets, release_id
        assert all(release_id in dict(get.attributes or {})["url.full"] for get in gets)
        assert dict(wait.attributes or {})["aimlops.wait.polls"] >= len(gets)
    assert outcomes_counted(recorder) == {("deployed", "succeeded"): 3}


async def test_a_timed_out_wait(recorder: Recorder) -> None:
    async with virtual_world(recorder, creating_seconds=3600.0) as (emu, client, _time):
        created = await client.platforms.create(emu.sample_create_request("otel-slow"))
        assert created.resource_id
        with pytest.raises(WaiterTimeoutError):
            await client.platforms.wait_until_deployed(created.resource_id, timeout=60.0)

    [wait] = recorder.spans("aimlops.wait")
    attributes = dict(wait.attributes or {})
    assert attributes["aimlops.wait.outcome"] == "timeout"
    assert attributes["aimlops.wait.final_state"] == "CREATING"
    assert attributes["aimlops.wait.waited"] >= 60.0
    assert attributes["aimlops.wait.polls"] >= 2
    assert attributes["error.type"] == "aimlops_async.errors.WaiterTimeoutError"
    assert wait.status.status_code is StatusCode.ERROR
    assert outcomes_counted(recorder) == {("deployed", "timeout"): 1}
    assert active_waits(recorder) == 0


async def test_a_failed_platform(recorder: Recorder) -> None:
    async with virtual_world(recorder, fail_pattern="fail-.*") as (emu, client, _time):
        with pytest.raises(TerminalStateError):
            await client.platforms.create_and_wait(emu.sample_create_request("fail-otel"))

    [create] = recorder.spans("aimlops.platforms.create")
    [wait] = recorder.spans("aimlops.wait")
    attributes = dict(wait.attributes or {})
    assert attributes["aimlops.wait.outcome"] == "failed"
    assert attributes["aimlops.wait.final_state"] == "FAILED"
    assert attributes["error.type"] == "aimlops_async.errors.TerminalStateError"
    assert wait.status.status_code is StatusCode.ERROR
    assert create.end_time is not None and wait.start_time is not None
    assert create.end_time <= wait.start_time  # create_and_wait: the call, then the wait
    assert outcomes_counted(recorder) == {("deployed", "failed"): 1}


async def test_a_cancelled_wait_ends_its_span_and_leaves_no_active_wait(recorder: Recorder) -> None:
    async with virtual_world(recorder, creating_seconds=3600.0) as (emu, client, time):
        created = await client.platforms.create(emu.sample_create_request("otel-cancel"))
        assert created.resource_id
        polled_twice = asyncio.Event()

        def between_polls(_seconds: float) -> None:
            if len(recorder.spans("aimlops.platforms.get")) >= 2:
                polled_twice.set()

        time.on_sleep = between_polls
        task = asyncio.create_task(client.platforms.wait_until_deployed(created.resource_id))
        await polled_twice.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Another wait on the same client is unaffected, and recorded on its own.
        await client.platforms.wait_until_deleted("0" * 32)

    waits = recorder.spans("aimlops.wait")
    [cancelled] = [span for span in waits if dict(span.attributes or {})["aimlops.wait.until"] == "deployed"]
    attributes = dict(cancelled.attributes or {})
    assert attributes["aimlops.wait.outcome"] == "cancelled"
    assert attributes["aimlops.wait.final_state"] == "CREATING"
    assert attributes["aimlops.wait.polls"] >= 2
    assert "error.type" not in attributes
    assert cancelled.status.status_code is not StatusCode.ERROR  # cancelling is no failure
    assert outcomes_counted(recorder) == {("deployed", "cancelled"): 1, ("deleted", "succeeded"): 1}
    assert active_waits(recorder) == 0


async def test_delete_and_wait_and_a_watch_are_waits_too(recorder: Recorder) -> None:
    async with virtual_world(recorder) as (emu, client, _time):
        created = await client.platforms.create(emu.sample_create_request("otel-watch"))
        release_id = created.resource_id
        assert release_id
        states = [str(detail.release_state) async for detail in client.platforms.watch(release_id)]
        await client.platforms.delete_and_wait(release_id)

        # A watch left early and closed: its span ends as cancelled.
        created = await client.platforms.create(emu.sample_create_request("otel-left"))
        assert created.resource_id
        async with contextlib.aclosing(client.platforms.watch(created.resource_id)) as watch:
            async for _detail in watch:
                break

    assert states[-1] == "DEPLOYED"
    watched, deleted, left = sorted(
        recorder.spans("aimlops.wait"), key=lambda span: span.start_time or 0
    )
    watched_attributes = dict(watched.attributes or {})
    assert watched_attributes["aimlops.wait.outcome"] == "succeeded"
    assert watched_attributes["aimlops.wait.final_state"] == "DEPLOYED"
    watched_gets = children_of(recorder, watched, "aimlops.platforms.get")
    assert watched_attributes["aimlops.wait.polls"] == len(watched_gets) >= 3
    deleted_attributes = dict(deleted.attributes or {})
    assert deleted_attributes["aimlops.wait.until"] == "deleted"
    assert deleted_attributes["aimlops.wait.outcome"] == "succeeded"
    assert "aimlops.wait.final_state" not in deleted_attributes  # gone: no state
    assert dict(left.attributes or {})["aimlops.wait.outcome"] == "cancelled"
    assert outcomes_counted(recorder) == {
        ("deployed", "succeeded"): 1, ("deleted", "succeeded"): 1, ("deployed", "cancelled"): 1,
    }
    assert active_waits(recorder) == 0


async def test_a_bulk_run_is_the_parent_of_its_calls_and_waits(recorder: Recorder) -> None:
    async with virtual_world(recorder, fail_pattern="fail-.*") as (emu, client, _time):
        existing = await client.platforms.create(emu.sample_create_request("bulk-0"))
        assert existing.resource_id
        requests = [emu.sample_create_request(name) for name in ("bulk-0", "bulk-1", "fail-bulk")]
        requests.append({"ai_ml_ops_platform_create_request": {"release_name": "bad"}})
        results = await client.platforms.provision_many(requests)
    assert [result.ok for result in results] == [True, True, False, False]

    [run] = recorder.spans("aimlops.provision_many")
    attributes = dict(run.attributes or {})
    assert attributes.pop("aimlops.provision.duration") >= 40.0
    assert attributes == {
        # succeeded = created + adopted of the results without error; the platform that was
        # created and then failed counts as failed, as does the invalid request.
        "aimlops.provision.requested": 4, "aimlops.provision.created": 1,
        "aimlops.provision.adopted": 1, "aimlops.provision.succeeded": 2,
        "aimlops.provision.failed": 2,
    }
    assert run.parent is None
    waits = children_of(recorder, run, "aimlops.wait")
    by_id = {dict(span.attributes or {})["aimlops.release_id"]: dict(span.attributes or {}) for span in waits}
    assert sorted(by_id) == sorted(result.release_id for result in results[:3])
    assert {attrs["aimlops.wait.outcome"] for attrs in by_id.values()} == {"succeeded", "failed"}
    assert by_id[str(results[2].release_id)]["aimlops.wait.final_state"] == "FAILED"
    assert all(attrs["aimlops.wait.polls"] >= 1 for attrs in by_id.values())
    # Every call the run made, creates and the fleet's listings and GETs, is inside it.
    assert len(children_of(recorder, run, "aimlops.platforms.create")) == 2
    assert children_of(recorder, run, "aimlops.platforms.list")
    run_trace = run.context.trace_id if run.context else None
    run_calls = [span for span in recorder.spans() if span.name.startswith("aimlops.platforms.")
                 and span.context is not None and span.context.trace_id == run_trace]
    assert len(run_calls) == len(recorder.spans()) - len(recorder.spans("aimlops.wait")) - 2
    assert outcomes_counted(recorder) == {("deployed", "succeeded"): 2, ("deployed", "failed"): 1}
    assert active_waits(recorder) == 0


async def test_provision_events_record_the_run_too(recorder: Recorder) -> None:
    async with virtual_world(recorder) as (emu, client, _time):
        kinds = [event.kind async for event in client.platforms.provision_events(
            [emu.sample_create_request("events-1")]
        )]
    assert kinds[-1] == "deployed"
    [run] = recorder.spans("aimlops.provision_many")
    [wait] = children_of(recorder, run, "aimlops.wait")
    assert dict(wait.attributes or {})["aimlops.wait.outcome"] == "succeeded"


async def test_no_secret_or_password_in_wait_or_bulk_telemetry(recorder: Recorder) -> None:
    async with virtual_world(recorder, fail_pattern="fail-.*") as (emu, client, _time):
        credentials = emu.credentials
        await client.platforms.provision_many(
            [emu.sample_create_request("quiet-1"), emu.sample_create_request("fail-quiet")]
        )
        await client.platforms.create_and_wait(emu.sample_create_request("quiet-2"))
    text = recorder.everything_as_text()
    assert "aimlops.wait" in text and "aimlops.provision_many" in text
    for secret in (credentials.secret_key, credentials.access_key, PASSWORD, "Scp-Signature"):
        assert secret not in text


async def test_nothing_is_recorded_for_waits_when_disabled(recorder: Recorder) -> None:
    seen: list[RequestInfo] = []

    async def on_request(info: RequestInfo) -> None:
        seen.append(info)

    async with virtual_world(None) as (emu, client, _time):
        # Hooks alone observe calls, not waits: every wait takes the shared do-nothing path.
        hooked = AimlopsClient(emu.url, emu.credentials, **VIRTUAL_CLIENT, on_request=on_request)
        async with hooked:
            hooked.platforms.timing = client.platforms.timing
            for platforms in (client.platforms, hooked.platforms):
                assert platforms.telemetry.observe_wait("r") is UNOBSERVED_WAIT
            name = iter(range(100))
            for platforms in (client.platforms, hooked.platforms):
                await platforms.create_and_wait(emu.sample_create_request(f"off-{next(name)}"))
                created = await platforms.create(emu.sample_create_request(f"off-{next(name)}"))
                assert created.resource_id
                [_ async for _ in platforms.watch(created.resource_id)]
                await platforms.provision_many([emu.sample_create_request(f"off-{next(name)}")])
                assert platforms.poller._observed == {}
    assert seen  # the hook did see the calls
    assert recorder.spans() == []
    assert recorder.reader.get_metrics_data() is None or not recorder.points("aimlops.waits")
    assert UNOBSERVED_WAIT.polls == 0 and UNOBSERVED_WAIT.span is None


async def test_metrics_alone_count_waits_without_spans(recorder: Recorder) -> None:
    time = VirtualTime()
    async with Emulator(**PHASES, fail_pattern="fail-.*") as emu:
        emu.store.monotonic = time.clock
        async with AimlopsClient(
            emu.url, emu.credentials, **VIRTUAL_CLIENT, meter_provider=recorder.meter_provider
        ) as client:
            client.platforms.timing = time.timing
            await client.platforms.create_and_wait(emu.sample_create_request("metrics-1"))
            with pytest.raises(TerminalStateError):
                await client.platforms.create_and_wait(emu.sample_create_request("fail-metrics"))
            assert client.platforms.poller._observed == {}  # no span to parent the GETs
    assert recorder.spans() == []
    assert outcomes_counted(recorder) == {("deployed", "succeeded"): 1, ("deployed", "failed"): 1}
    assert active_waits(recorder) == 0
    durations = recorder.points("aimlops.wait.duration")
    assert sum(point.count for point in durations) == 2
    assert all(point.sum >= 40.0 for point in durations)  # virtual seconds, both phases
