"""The exception tree on the wire (CONTRACT section 5): each status to its class with status, code, message,
body, request id, method and url; lenient error bodies; Retry-After; connection failures and timeouts.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from wire import FAST_RETRIES, Reply, WireServer, free_port

import aimlops_async
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
    WaiterError,
    WaiterTimeoutError,
)

FIXTURES = Path(__file__).parent / "fixtures"
BASE = "/v1/aimlops-platform"
RID = "r-1"
PASSWORD = "147@53A69a"
PROXY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def no_retries(server: WireServer, **options: Any) -> AimlopsClient:
    return AimlopsClient(server.url, server.credentials, **{**FAST_RETRIES, "max_retries": 0,
                                                             **options})


def test_the_tree() -> None:
    for cls in (BadRequestError, AuthenticationError, PermissionDeniedError, NotFoundError,
                ConflictError, RateLimitError, ServerError):
        assert issubclass(cls, APIStatusError)
    for cls in (APIStatusError, APIConnectionError, APITimeoutError, ValidationError, WaiterError,
                TerminalStateError, WaiterTimeoutError):
        assert issubclass(cls, AimlopsError)
        assert getattr(aimlops_async, cls.__name__) is cls
    assert issubclass(APITimeoutError, APIConnectionError)
    assert not issubclass(APIConnectionError, APIStatusError)
    assert issubclass(ValidationError, ValueError)
    assert issubclass(TerminalStateError, WaiterError) and issubclass(WaiterTimeoutError, WaiterError)
    assert issubclass(WaiterTimeoutError, TimeoutError)


STATUSES = [
    (400, BadRequestError), (401, AuthenticationError), (403, PermissionDeniedError),
    (404, NotFoundError), (409, ConflictError), (429, RateLimitError), (500, ServerError),
    (502, ServerError), (503, ServerError), (504, ServerError), (418, APIStatusError),
]


@pytest.mark.parametrize(("status", "cls"), STATUSES, ids=[str(s) for s, _ in STATUSES])
async def test_status_maps_to_its_class(status: int, cls: type[APIStatusError]) -> None:
    body = {"code": f"CODE_{status}", "message": f"message {status}"}
    async with WireServer() as server:
        server.script(Reply(status, body, headers={"X-Request-Id": f"req-{status}"}))
        async with no_retries(server) as client:
            with pytest.raises(APIStatusError) as caught:
                await client.platforms.get(RID)
        error = caught.value
        assert type(error) is cls
        assert error.status == status
        assert error.code == f"CODE_{status}"
        assert error.message == f"message {status}"
        assert error.body == body
        assert error.request_id == f"req-{status}"
        assert error.method == "GET"
        assert error.url == f"{server.url}{BASE}/{RID}"
        assert str(status) in str(error) and f"message {status}" in str(error)
        assert len(server.requests) == 1


@pytest.mark.parametrize(("status", "cls"), STATUSES, ids=[str(s) for s, _ in STATUSES])
async def test_post_errors_carry_the_method(status: int, cls: type[APIStatusError]) -> None:
    async with WireServer() as server:
        server.script(Reply(status, {"code": "X", "message": "no"}))
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            with pytest.raises(cls) as caught:
                await client.platforms.create(fixture("create_request.json"))
        assert caught.value.method == "POST" and caught.value.url == f"{server.url}{BASE}"
        assert len(server.requests) == 1  # a POST that got an answer is never re-sent


@pytest.mark.parametrize(
    ("reply", "code", "message"),
    [
        pytest.param(Reply(400, {"code": "INVALID", "message": "bad name"}), "INVALID", "bad name",
                     id="flat-json"),
        pytest.param(Reply(400, {"error": {"code": "INVALID", "message": "bad name"}}), "INVALID",
                     "bad name", id="nested-json"),
        pytest.param(Reply(400, {"errors": [{"code": "INVALID", "message": "bad name"}]}),
                     "INVALID", "bad name", id="error-list"),
        pytest.param(Reply(400, {"message": "bad name"}), None, "bad name", id="message-only"),
        pytest.param(Reply(400, {"code": 4001, "message": "bad name"}), "4001", "bad name",
                     id="numeric-code"),
        pytest.param(Reply(400, "bad name, plain"), None, "bad name, plain", id="plain-text"),
        pytest.param(Reply(400, {"code": "VALIDATION_ERROR", "message": "must be a label",
                                 "field": "ai_ml_ops_platform_create_request.release_name"}),
                     "VALIDATION_ERROR", "ai_ml_ops_platform_create_request.release_name: must be a label",
                     id="field-named-beside-the-message"),
        pytest.param(Reply(400, "bad name as json text", content_type="application/json"),
                     None, "bad name as json text", id="mislabelled-text"),
    ],
)
async def test_error_bodies_are_read_leniently(reply: Reply, code: str | None, message: str) -> None:
    async with WireServer() as server:
        server.script(reply)
        async with no_retries(server) as client:
            with pytest.raises(BadRequestError) as caught:
                await client.platforms.get(RID)
        assert caught.value.code == code
        assert caught.value.message == message
        assert message in str(caught.value)


async def test_html_proxy_page_gives_a_readable_message() -> None:
    async with WireServer() as server:
        server.script(Reply(502, PROXY_PAGE, content_type="text/html"))
        async with no_retries(server) as client:
            with pytest.raises(ServerError) as caught:
                await client.platforms.get(RID)
        error = caught.value
        assert error.status == 502 and error.code is None
        assert "502 Bad Gateway" in error.message
        assert "<" not in error.message and "\r" not in error.message
        assert isinstance(error.body, str) and "nginx" in error.body


async def test_empty_error_body_uses_the_reason_phrase() -> None:
    async with WireServer() as server:
        server.script(Reply(404), Reply(401))
        async with no_retries(server) as client:
            with pytest.raises(NotFoundError) as missing:
                await client.platforms.get(RID)
            with pytest.raises(AuthenticationError) as denied:
                await client.platforms.get(RID)
        assert missing.value.message == "Not Found" and missing.value.body is None
        assert denied.value.message  # a hint, never empty


async def test_request_id_absent_is_none() -> None:
    async with WireServer() as server:
        server.script(Reply(404, {"message": "gone"}))
        async with no_retries(server) as client:
            with pytest.raises(NotFoundError) as caught:
                await client.platforms.get(RID)
        assert caught.value.request_id is None


@pytest.mark.parametrize("when", ["seconds", "http-date"])
async def test_retry_after_is_read(when: str) -> None:
    if when == "seconds":
        header, low, high = "7", 7.0, 7.0
    else:
        header = email.utils.formatdate(time.time() + 30, usegmt=True)
        low, high = 25.0, 31.0
    async with WireServer() as server:
        server.script(Reply(429, {"code": "TOO_MANY_REQUESTS"}, headers={"Retry-After": header}))
        async with no_retries(server) as client:
            with pytest.raises(RateLimitError) as caught:
                await client.platforms.get(RID)
        assert caught.value.retry_after is not None
        assert low <= caught.value.retry_after <= high
        assert caught.value.code == "TOO_MANY_REQUESTS"


@pytest.mark.parametrize("header", [None, "soon", ""])
async def test_missing_or_unreadable_retry_after_is_none(header: str | None) -> None:
    headers = {} if header is None else {"Retry-After": header}
    async with WireServer() as server:
        server.script(Reply(429, {"code": "TOO_MANY_REQUESTS"}, headers=headers))
        async with no_retries(server) as client:
            with pytest.raises(RateLimitError) as caught:
                await client.platforms.get(RID)
        assert caught.value.retry_after is None


async def test_refused_connection_is_not_sent() -> None:
    port = free_port()
    credentials = Credentials("ak", "sk")
    async with AimlopsClient(f"http://127.0.0.1:{port}", credentials, **FAST_RETRIES,
                             max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.platforms.get(RID)
    error = caught.value
    assert not isinstance(error, APIStatusError)
    assert error.sent is False
    assert error.method == "GET" and error.url == f"http://127.0.0.1:{port}{BASE}/{RID}"


async def test_dropped_connection_may_have_been_sent() -> None:
    async with WireServer() as server:
        server.script(Reply(drop=True))
        async with no_retries(server) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.platforms.get(RID)
        assert not isinstance(caught.value, APITimeoutError)
        assert caught.value.sent is True
        assert caught.value.method == "GET"
        assert len(server.requests) == 1


async def test_stall_beyond_the_timeout_is_a_timeout() -> None:
    async with WireServer() as server:
        server.script(Reply(200, {}, stall=5.0))
        async with no_retries(server, timeout=0.2) as client:
            with pytest.raises(APITimeoutError) as caught:
                await client.platforms.get(RID)
        assert isinstance(caught.value, APIConnectionError)
        assert not isinstance(caught.value, TimeoutError) or isinstance(caught.value, AimlopsError)
        assert caught.value.sent is True
        assert caught.value.url == f"{server.url}{BASE}/{RID}"


async def test_unreadable_success_body_is_an_api_error() -> None:
    async with WireServer() as server:
        server.script(Reply(200, "<html>not json</html>", content_type="text/html"))
        async with no_retries(server) as client:
            with pytest.raises(APIStatusError) as caught:
                await client.platforms.get(RID)
        assert caught.value.status == 200 and caught.value.code == "MALFORMED_RESPONSE"


@pytest.mark.parametrize(
    "body",
    [{"created_dt": "yesterday"}, {"release_state": 7}, {"total_count": "many"}],
    ids=["bad-date", "number-state", "text-count"],
)
async def test_malformed_success_fields_are_an_api_error(body: dict[str, Any]) -> None:
    """A 2xx whose JSON cannot be read into the model is an AimlopsError, never a bare ValueError."""
    async with WireServer() as server:
        server.default = Reply(200, body)
        async with no_retries(server) as client:
            with pytest.raises(AimlopsError) as caught:
                if "total_count" in body:
                    await client.platforms.list().to_list()
                else:
                    await client.platforms.get(RID)
        assert isinstance(caught.value, APIStatusError)
        assert caught.value.status == 200 and caught.value.code == "MALFORMED_RESPONSE"


async def test_no_secret_or_password_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with WireServer() as server:
        server.script(
            Reply(503), Reply(drop=True), Reply(429, headers={"Retry-After": "0"}),
            Reply(200, fixture("platform_detail_response.json")),
            Reply(400, {"code": "INVALID", "message": "release_name is taken"}),
            Reply(drop=True),
        )
        errors: list[BaseException] = []
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            await client.platforms.get(RID)
            for _ in range(2):
                try:
                    await client.platforms.create(fixture("create_request.json"))
                except AimlopsError as exc:
                    errors.append(exc)
            text = repr(client) + str(client) + repr(client.credentials) + str(client.credentials)
        assert len(errors) == 2
        text += "".join(repr(e) + str(e) + str(e.args) for e in errors)
        text += "".join(record.getMessage() + repr(record.args) for record in caplog.records)
        assert server.secret_key not in text
        assert PASSWORD not in text
        assert "Scp-Signature" not in text or "REDACTED" in text


async def test_text_that_utf8_cannot_carry_is_refused_before_sending() -> None:
    async with WireServer(default=Reply(200, fixture("platform_detail_response.json"))) as server:
        async with no_retries(server) as client:
            with pytest.raises(ValidationError) as in_path:
                await client.platforms.get("\ud800")
            with pytest.raises(ValidationError) as in_query:
                await client.platforms.list(release_name="a\udc80").to_list()
        assert (in_path.value.field, in_query.value.field) == ("release_id", "release_name")
        assert server.requests == []


@pytest.mark.parametrize(
    ("credentials", "field"),
    [
        (("ak\nX-Injected: 1", "sk", None), "access_key"),
        (("ak", "sk", "a\r\nX-Injected: 1"), "account_id"),
        (("ak", "s\udc80k", None), "secret_key"),
    ],
)
def test_credentials_that_cannot_travel_in_headers_are_refused(
    credentials: tuple[str, str, str | None], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Credentials(*credentials)
    assert caught.value.field == field
    assert "Injected" not in str(caught.value)  # credentials are never echoed


async def test_an_epoch_timestamp_out_of_range_is_a_malformed_answer() -> None:
    answer = {**fixture("platform_detail_response.json"), "created_dt": 10**30}
    async with WireServer(default=Reply(200, answer)) as server, no_retries(server) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.platforms.get(RID)
    assert caught.value.code == "MALFORMED_RESPONSE"
