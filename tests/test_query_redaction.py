"""Query values a caller adds (``extra_query=``, perhaps a signed token) are sent and signed as
given, but never shown: spans, errors, log lines and hooks show ``REDACTED`` in their place,
while the API's own documented parameters keep their values.

Calls go over loopback to a ``WireServer`` that records each request as received and checks its
signature with its own HMAC code, so "signed over the real URL" is read off the wire.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from wire import FAST_RETRIES, Reply, WireServer, free_port

from aimlops_async import (
    AimlopsClient,
    APIConnectionError,
    APIStatusError,
    NotFoundError,
    ServerError,
)
from aimlops_async.redaction import SHOWN_QUERY_PARAMETERS, redact_url
from aimlops_async.telemetry import RequestInfo, ResponseInfo

# "/", "+" and "=" are percent-encoded on the wire: both spellings must stay hidden.
SECRET = "sig-5ecret/token+9f2c=="
SECRET_FORMS = (SECRET, quote(SECRET, safe=""), "5ecret")
LOGGERS = ("", "aimlops_async", "aiohttp", "aiohttp.client", "asyncio", "backoff")


class Spans(InMemorySpanExporter):
    """Finished spans, kept in memory, of the tracer provider ``provider``."""

    def __init__(self) -> None:
        super().__init__()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self))


@pytest.fixture
def spans() -> Iterator[Spans]:
    recorder = Spans()
    yield recorder
    recorder.provider.shutdown()


def exception_texts(error: BaseException) -> list[str]:
    """Everything an exception shows: str, repr, args, attributes, the traceback, its causes."""
    texts = [str(error), repr(error), *map(repr, error.args)]
    texts += [repr(value) for name, value in vars(error).items() if not name.startswith("__")]
    texts.append("".join(traceback.format_exception(error)))
    for linked in (error.__cause__, error.__context__):
        if linked is not None and linked is not error:
            texts += exception_texts(linked)
    return texts


def span_texts(exporter: InMemorySpanExporter) -> list[str]:
    texts = []
    for span in exporter.get_finished_spans():
        texts += [span.name, repr(dict(span.attributes or {})), repr(span.status.description)]
        texts += [repr(dict(event.attributes or {})) for event in span.events]
    return texts


async def test_an_extra_query_value_is_signed_as_sent_and_shown_nowhere(
    spans: Spans, caplog: pytest.LogCaptureFixture,
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    hooked: list[RequestInfo | ResponseInfo] = []

    async def on_request(info: RequestInfo) -> None:
        hooked.append(info)

    async def on_response(info: ResponseInfo) -> None:
        hooked.append(info)

    errors: list[BaseException] = []
    extra = {"sig": SECRET, "page": 2}
    async with WireServer() as server:
        async with AimlopsClient(
            server.url, server.credentials, **FAST_RETRIES, max_retries=1,
            tracer_provider=spans.provider,
            on_request=on_request, on_response=on_response,
        ) as client:
            # Retried once (a retry log line and span event), then answered.
            server.script(Reply(503, {"code": "BUSY"}), Reply(200, {"result": False}))
            assert await client.platforms.check_duplication("keep-me", extra_query=extra) is False

            server.script(Reply(404, {"code": "RELEASE_NOT_FOUND", "message": "no such release"}))
            with pytest.raises(NotFoundError) as missing:
                await client.platforms.get("r1", extra_query=extra)
            errors.append(missing.value)

            server.script(Reply(503, {"code": "BUSY"}), Reply(502, "<html>bad gateway</html>"))
            with pytest.raises(ServerError) as exhausted:
                await client.platforms.get("r1", extra_query=extra)
            errors.append(exhausted.value)

            server.script(Reply(200, "not json"), Reply(200, [1, 2]))
            with pytest.raises(APIStatusError) as malformed:
                await client.platforms.get("r1", extra_query=extra)
            errors.append(malformed.value)

        sent = list(server.requests)

    async with AimlopsClient(
        f"http://127.0.0.1:{free_port()}", server.credentials, **FAST_RETRIES, max_retries=0,
    ) as unreachable:
        with pytest.raises(APIConnectionError) as refused:
            await unreachable.platforms.get("r1", extra_query=extra)
        errors.append(refused.value)

    # The wire carried the secret, and every request was signed over that very URL.
    assert len(sent) == 7
    assert all(quote(SECRET, safe="") in request.raw_path for request in sent)
    assert all(server.signature_ok(request) for request in sent)

    # What is shown keeps the documented parameters and the name of the other one.
    [check, *_] = spans.get_finished_spans()
    assert check.attributes is not None
    assert check.attributes["url.full"] == (
        f"{server.url}/v1/aimlops-platform/check-duplication?release_name=keep-me&sig=REDACTED&page=2"
    )
    assert missing.value.url == f"{server.url}/v1/aimlops-platform/r1?sig=REDACTED&page=2"
    assert "(GET " + missing.value.url + ")" in str(missing.value)
    assert all(info.url.endswith("sig=REDACTED&page=2") for info in hooked) and len(hooked) == 14
    assert any("retrying GET" in record.getMessage() for record in caplog.records)
    debug_lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("/v1/aimlops-platform/r1?sig=REDACTED&page=2 -> 404" in line for line in debug_lines)

    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    shown = [formatter.format(record) for record in caplog.records]
    shown += [repr(record.args) for record in caplog.records]
    shown += span_texts(spans)
    shown += [repr(info) for info in hooked]
    for error in errors:
        shown += exception_texts(error)
    haystack = "\n".join(shown)
    assert [form for form in SECRET_FORMS if form in haystack] == []


def test_only_documented_parameters_keep_their_values() -> None:
    url = (
        "https://aimlops.example/v1/aimlops-platform?size=20&page=0&sort=created_dt%3Adesc"
        "&created_by=u1&release_name=r&cluster_name=c&version=v1&kubeflow_type=Mini"
        "&status=DEPLOYED&with_k8s=true&image_name=i&product_type=Enterprise"
        "&token=t0k&Size=9&x%20y=z&empty=&flag"
    )
    assert redact_url(url) == (
        "https://aimlops.example/v1/aimlops-platform?size=20&page=0&sort=created_dt%3Adesc"
        "&created_by=u1&release_name=r&cluster_name=c&version=v1&kubeflow_type=Mini"
        "&status=DEPLOYED&with_k8s=true&image_name=i&product_type=Enterprise"
        "&token=REDACTED&Size=REDACTED&x%20y=REDACTED&empty=REDACTED&flag"
    )
    assert redact_url("/v1/aimlops-platform/r1") == "/v1/aimlops-platform/r1"
    assert redact_url("/v1/aimlops-platform/r1?") == "/v1/aimlops-platform/r1?"


def test_every_query_parameter_of_the_reference_is_shown() -> None:
    # The reference's query parameters, endpoint by endpoint (a new one must be added here).
    reference: dict[str, set[str]] = {
        "GET clusters/{id}/check-version": {"version"},
        "GET check-duplication": {"release_name"},
        "DELETE {release_id}": {"with_k8s"},
        "GET list": {"size", "page", "sort", "created_by", "release_name", "cluster_name",
                     "version", "kubeflow_type", "status"},
        "GET images": {"size", "page", "sort", "image_name"},
        "GET internal/clusters/{id}/nodes": {"size", "page", "sort"},
        "GET clusters/{id}/validate-resources": {"product_type"},
    }
    assert set().union(*reference.values()) == SHOWN_QUERY_PARAMETERS


def test_a_hook_info_built_by_hand_is_redacted_too() -> None:
    info: Any = RequestInfo(
        operation="x", method="GET", url=f"http://h/p?status=DEPLOYED&sig={SECRET}",
        headers={}, attempt=1,
    )
    assert info.url == "http://h/p?status=DEPLOYED&sig=REDACTED"
