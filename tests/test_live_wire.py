"""What the live service answers (CONTRACT sections 1 and 5): the error envelope, the gateway's own
404 page, 406 for an unserved API version, 417 edge throttling, and the credentials that go with
the official SDK's headers. Scripted on a recording server and checked against the emulator.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest
from wire import FAST_RETRIES, Reply, WireServer

from aimlops_async import (
    AimlopsClient,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    Credentials,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ValidationError,
)
from aimlops_async.emulator import Emulator

FIXTURES = Path(__file__).parent / "fixtures"
RID = "10a599e031e749b7b260868f441e862b"
DETAIL = json.loads((FIXTURES / "platform_detail_response.json").read_text(encoding="utf-8"))
CREATE = json.loads((FIXTURES / "create_request.json").read_text(encoding="utf-8"))
SECRET = "wire-secret-never-shown"
TOKEN = "wire-auth-token-never-shown"

ENVELOPE_400 = {
    "errors": [
        {
            "code": "AIMLOPS_PLATFORM_INVALID_PARAMETER",
            "title": "Bad Request",
            "detail": ["release_name: must be at most 53 characters", "image_id: is required"],
            "status": "400",
            "request_id": "req-4711",
            "global_request_id": "global-0815",
        }
    ]
}
# The API gateway's own page for a request it cannot authenticate (not the service's 404).
GATEWAY_404 = {
    "timestamp": "2025-11-20T02:41:16.734+00:00",
    "path": "/v1/aimlops-platform/10a599e031e749b7b260868f441e862b",
    "status": 404,
    "error": "Not Found",
    "requestId": "6a0c1f2e-41",
}
EDGE_PAGE = (
    "<html><head><title>Request Rejected</title></head><body>The requested URL was rejected. "
    "Please consult with your administrator.<br><br>Your support ID is: 1234567890</body></html>"
)


async def failure(server: WireServer, reply: Reply, call: Any = None, **options: Any) -> Any:
    """Script ``reply`` and return the exception a GET of a platform raises."""
    server.script(reply)
    async with AimlopsClient(server.url, server.credentials, max_retries=0, **options) as client:
        with pytest.raises(APIStatusError) as caught:
            await (call(client) if call else client.platforms.get(RID))
    return caught.value


# --------------------------------------------------------------------------- the error envelope


async def test_the_live_envelope_gives_code_detail_lines_and_request_ids() -> None:
    async with WireServer() as server:
        error = await failure(server, Reply(400, ENVELOPE_400, headers={"X-Request-Id": "hdr"}))
    assert type(error) is BadRequestError
    assert error.code == "AIMLOPS_PLATFORM_INVALID_PARAMETER"
    assert error.details == ["release_name: must be at most 53 characters", "image_id: is required"]
    assert error.message == "release_name: must be at most 53 characters; image_id: is required"
    assert error.request_id == "req-4711"  # the envelope's, before any header
    assert error.global_request_id == "global-0815"
    assert error.body == ENVELOPE_400
    text = str(error)
    assert "[400 AIMLOPS_PLATFORM_INVALID_PARAMETER]" in text and "request_id=req-4711" in text
    assert "Bad Request" not in error.message


async def test_an_envelope_detail_given_as_text_or_missing() -> None:
    one_line = {"errors": [{"code": "C1", "title": "Conflict", "detail": "in use", "status": "409"}]}
    title_only = {"errors": [{"code": "C2", "title": "Forbidden", "status": "403"}]}
    async with WireServer() as server:
        error = await failure(server, Reply(409, one_line))
        assert (error.code, error.message, error.details) == ("C1", "in use", ["in use"])
        error = await failure(server, Reply(403, title_only))
        assert isinstance(error, PermissionDeniedError)
        assert (error.code, error.message, error.details) == ("C2", "Forbidden", ["Forbidden"])


async def test_flat_bodies_are_still_understood() -> None:
    flat = {"code": "RELEASE_NOT_FOUND", "message": "no such platform", "request_id": "r-9"}
    async with WireServer() as server:
        error = await failure(server, Reply(404, flat))
    assert type(error) is NotFoundError
    assert (error.code, error.message, error.details) == (
        "RELEASE_NOT_FOUND", "no such platform", ["no such platform"]
    )
    assert error.request_id == "r-9" and error.global_request_id is None


async def test_the_service_own_404_stays_not_found() -> None:
    envelope = {"errors": [{"code": "RELEASE_NOT_FOUND", "title": "Not Found",
                            "detail": ["platform not found"], "status": "404"}]}
    async with WireServer() as server:
        error = await failure(server, Reply(404, envelope))
    assert type(error) is NotFoundError and error.status == 404


# --------------------------------------------------------------------------- the gateway page


async def test_the_gateway_404_page_is_an_authentication_error() -> None:
    async with WireServer() as server:
        error = await failure(server, Reply(404, GATEWAY_404))
        assert len(server.requests) == 1
    assert isinstance(error, AuthenticationError)
    assert not isinstance(error, NotFoundError)
    assert error.status == 404 and error.code == "GATEWAY_REFUSED"
    for hint in ("signature or credentials", "access key", "secret key", "account id", "clock"):
        assert hint in error.message, hint
    assert error.request_id == "6a0c1f2e-41"
    assert error.body == GATEWAY_404


async def test_the_gateway_page_never_reads_as_a_deleted_platform_on_delete_either() -> None:
    async with WireServer() as server:
        error = await failure(server, Reply(404, GATEWAY_404), lambda c: c.platforms.delete(RID))
    assert isinstance(error, AuthenticationError)


async def test_a_404_with_gateway_like_fields_and_a_code_is_the_service() -> None:
    body = {**GATEWAY_404, "code": "RELEASE_NOT_FOUND", "message": "gone"}
    async with WireServer() as server:
        error = await failure(server, Reply(404, body))
    assert type(error) is NotFoundError and error.code == "RELEASE_NOT_FOUND"


# --------------------------------------------------------------------------- API version


@pytest.mark.parametrize(
    ("api_version", "named"),
    [("1.0", "'aimlops-platform 1.0'"), ("1.1", "'aimlops-platform 1.1'"),
     (None, "no Scp-Api-Version was sent")],
)
async def test_a_406_names_the_refused_version(api_version: str | None, named: str) -> None:
    refused = {"errors": [{"code": "NOT_ACCEPTABLE", "title": "Not Acceptable",
                           "detail": ["unsupported version"], "status": "406"}]}
    async with WireServer() as server:
        error = await failure(server, Reply(406, refused), api_version=api_version)
    assert error.status == 406 and error.code == "NOT_ACCEPTABLE"
    assert named in error.message and "api_version=" in error.message
    assert "unsupported version" in error.message


async def test_the_emulator_refuses_other_versions_with_406(emulator: Emulator) -> None:
    async with AimlopsClient(emulator.url, emulator.credentials, api_version="2.0") as client:
        with pytest.raises(APIStatusError) as caught:
            await client.platforms.check_duplication("x")
    assert caught.value.status == 406 and "'aimlops-platform 2.0'" in caught.value.message
    for version in ("1.0", "1.1", None):
        async with AimlopsClient(emulator.url, emulator.credentials, api_version=version) as client:
            assert await client.platforms.check_duplication("x") is False


def test_a_bad_api_version_is_refused_before_sending() -> None:
    with pytest.raises(ValidationError) as caught:
        AimlopsClient("http://127.0.0.1:1", Credentials("ak", "sk"), api_version="1.1\r\nX: y")
    assert caught.value.field == "api_version"


# --------------------------------------------------------------------------- edge throttling


async def test_edge_throttling_is_retried_on_reads() -> None:
    async with WireServer() as server:
        server.script(Reply(417, EDGE_PAGE, content_type="text/html"),
                      Reply(417, EDGE_PAGE, content_type="text/html"),
                      Reply(200, DETAIL))
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            detail = await client.platforms.get(RID)
            assert client.stats.retries == 2
        assert detail.release_id == RID
        assert len(server.requests) == 3
        assert len({r.headers["Scp-Timestamp"] for r in server.requests}) == 3


async def test_edge_throttling_out_of_retries_is_a_rate_limit_error() -> None:
    async with WireServer(default=Reply(417, EDGE_PAGE, content_type="text/html")) as server:
        async with AimlopsClient(
            server.url, server.credentials, **{**FAST_RETRIES, "max_retries": 2}
        ) as client:
            with pytest.raises(RateLimitError) as caught:
                await client.platforms.get(RID)
        assert len(server.requests) == 3
    error = caught.value
    assert error.status == 417 and error.code == "EDGE_THROTTLED" and error.attempts == 3
    assert "Request Rejected" in error.message and "<" not in error.message


async def test_edge_throttling_never_resends_a_create() -> None:
    async with WireServer(default=Reply(417, EDGE_PAGE, content_type="text/html")) as server:
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            with pytest.raises(RateLimitError):
                await client.platforms.create(CREATE)
        assert len(server.requests) == 1


async def test_a_417_with_json_is_not_throttling() -> None:
    body = {"errors": [{"code": "EXPECTATION_FAILED", "title": "Expectation Failed",
                        "detail": ["no"], "status": "417"}]}
    async with WireServer(default=Reply(417, body)) as server:
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            with pytest.raises(APIStatusError) as caught:
                await client.platforms.get(RID)
        assert len(server.requests) == 1
    assert not isinstance(caught.value, RateLimitError) and caught.value.code == "EXPECTATION_FAILED"


# --------------------------------------------------------------------------- credentials


def test_credentials_never_show_the_secret_or_the_token() -> None:
    credentials = Credentials("ak-1", SECRET, "acct-1", TOKEN)
    for text in (repr(credentials), str(credentials), f"{credentials!r}"):
        assert SECRET not in text and TOKEN not in text
        assert "ak-1" in text and "acct-1" in text
    assert "auth_token=None" in repr(Credentials("ak-1", SECRET))
    assert pickle.loads(pickle.dumps(credentials)) == credentials


@pytest.mark.parametrize("field", ["access_key", "account_id", "auth_token"])
def test_credentials_that_cannot_travel_in_headers_are_refused(field: str) -> None:
    values = {"access_key": "ak", "secret_key": "sk", field: "x\r\nX-Injected: 1"}
    with pytest.raises(ValidationError) as caught:
        Credentials(**values)
    assert caught.value.field == field and "Injected" not in str(caught.value)


def test_empty_account_id_and_token_mean_none() -> None:
    assert Credentials("ak", "sk", "", "").account_id == ""


async def test_the_auth_token_is_sent_but_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aimlops_async")
    async with WireServer(account_id="acct-1", auth_token=TOKEN) as server:
        server.script(Reply(200, DETAIL), Reply(404, GATEWAY_404))
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            await client.platforms.get(RID)
            with pytest.raises(AuthenticationError) as caught:
                await client.platforms.get(RID)
        assert server.requests[0].headers["X-Auth-Token"] == TOKEN
    logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
    assert "'Scp-AccountId': 'acct-1'" in logged  # the account id may be logged
    assert "'X-Auth-Token': 'REDACTED'" in logged
    for secret in (TOKEN, SECRET):
        assert secret not in logged
        assert secret not in str(caught.value) and secret not in repr(caught.value)


# --------------------------------------------------------------------------- against the emulator


async def test_emulator_errors_arrive_as_the_envelope(emulator: Emulator) -> None:
    async with AimlopsClient(emulator.url, emulator.credentials, **FAST_RETRIES) as client:
        with pytest.raises(NotFoundError) as caught:
            await client.platforms.get("0" * 32)
    error = caught.value
    assert error.code == "RELEASE_NOT_FOUND"
    assert error.details == [f"release_id: platform {'0' * 32!r} was not found"]
    assert error.request_id and error.request_id == error.body["errors"][0]["request_id"]


async def test_the_emulator_can_answer_400_for_a_missing_release() -> None:
    emu = Emulator(missing_release_status=400)
    async with emu, AimlopsClient(emu.url, emu.credentials, **FAST_RETRIES) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.platforms.get("0" * 32)
    assert caught.value.details[0].startswith("release_id: ")


async def test_the_emulator_can_refuse_bad_keys_with_the_gateway_page() -> None:
    async with Emulator(gateway_auth_failures=True) as emu:
        wrong = Credentials(emu.credentials.access_key, "not-the-secret")
        async with AimlopsClient(emu.url, wrong, **FAST_RETRIES) as client:
            with pytest.raises(AuthenticationError) as caught:
                await client.platforms.get("0" * 32)
        async with AimlopsClient(emu.url, emu.credentials, **FAST_RETRIES) as client:
            with pytest.raises(NotFoundError):  # good keys: the service's own 404
                await client.platforms.get("0" * 32)
        assert emu.stats.statuses == {404: 2}
    error = caught.value
    assert error.status == 404 and error.code == "GATEWAY_REFUSED"
    assert set(error.body) == {"timestamp", "path", "status", "error", "requestId"}
    assert error.body["path"] == f"/v1/aimlops-platform/{'0' * 32}"
    assert error.request_id == error.body["requestId"]


def test_missing_release_status_is_404_or_400() -> None:
    with pytest.raises(ValueError, match="missing_release_status"):
        Emulator(missing_release_status=410)


async def test_the_emulator_checks_an_account_id_when_one_is_sent() -> None:
    async with Emulator(account_id="acct-1") as emu:
        keys = emu.credentials
        assert keys.account_id == "acct-1"
        async with AimlopsClient(emu.url, keys, **FAST_RETRIES) as client:
            assert await client.platforms.check_duplication("x") is False
        # No account id configured: the SDK sends an empty Scp-AccountId, signed as such.
        without = Credentials(keys.access_key, keys.secret_key)
        async with AimlopsClient(emu.url, without, **FAST_RETRIES) as client:
            assert await client.platforms.check_duplication("x") is False
        wrong = Credentials(keys.access_key, keys.secret_key, "acct-2")
        async with AimlopsClient(emu.url, wrong, **FAST_RETRIES) as client:
            with pytest.raises(PermissionDeniedError):
                await client.platforms.check_duplication("x")


@pytest.mark.parametrize("product_type", ["Enterprise", "Mini", "enterprise", "mini"])
async def test_product_types_in_either_case(emulator: Emulator, product_type: str) -> None:
    async with AimlopsClient(emulator.url, emulator.credentials, **FAST_RETRIES) as client:
        answer = await client.clusters.validate_resources(emulator.cluster_id, product_type)
    assert answer.result is True  # three 16-CPU nodes fit either product


async def test_zoneless_timestamps_and_scp_image_ids_are_read() -> None:
    async with (
        Emulator(zoneless_timestamps=True, scp_image_ids=True) as emu,
        AimlopsClient(emu.url, emu.credentials, **FAST_RETRIES) as client,
    ):
        images = await client.images.list().to_list()
        assert all(image.image_id.startswith("IMAGE-R=") for image in images)
        assert all(len(image.image_id) == len("IMAGE-R=HXHY3ccc9f3TSVtPpPFR") for image in images)
        raw = {image["image_id"]: image["created_dt"] for image in emu.store.images}
        for image in images:
            sent = raw[image.image_id]
            assert not sent.endswith("Z") and "+" not in sent
            # Zone-less timestamps are UTC.
            assert image.created_dt.utcoffset().total_seconds() == 0
            assert image.created_dt.isoformat() == sent + "+00:00"
        request = emu.sample_create_request("zoneless")
        request["ai_ml_ops_platform_create_request"]["image_id"] = images[0].image_id
        created = await client.platforms.create(request)
        detail = await client.platforms.get(created.resource_id)
    assert detail.image_id == images[0].image_id
    assert detail.created_dt is not None and detail.created_dt.utcoffset().total_seconds() == 0


async def test_a_406_names_the_version_a_per_call_header_sent() -> None:
    refused = {"errors": [{"code": "NOT_ACCEPTABLE", "detail": ["unsupported version"], "status": "406"}]}
    async with WireServer(default=Reply(406, refused)) as server, AimlopsClient(
        server.url, server.credentials, max_retries=0
    ) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.platforms.get("r1", extra_headers={"scp-api-version": "aimlops-platform 1.2"})
        [sent] = server.requests
    assert sent.headers["Scp-Api-Version"] == "aimlops-platform 1.2"
    assert "'aimlops-platform 1.2'" in caught.value.message
    assert "1.1" not in caught.value.message


async def test_an_envelope_with_millions_of_detail_lines_gives_a_readable_error() -> None:
    # Within the default body limit: a few long lines, then very many short ones.
    lines = ["line 0 " + "x" * 100_000] + [f"line {number}" for number in range(1, 600_000)]
    refused = {"errors": [{"code": "BAD", "title": "Bad Request", "detail": lines, "status": "400"}]}
    async with WireServer(default=Reply(400, refused)) as server, AimlopsClient(
        server.url, server.credentials, max_retries=0
    ) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.platforms.get("r1")
    error = caught.value
    assert error.code == "BAD" and error.details[0].startswith("line 0 ")
    assert len(error.details) == 21 and error.details[-1] == "(+599980 more detail lines)"
    assert all(len(line) <= 503 for line in error.details)
    assert len(error.message) <= 2003 and len(str(error)) < 3000


def test_per_call_options_never_show_their_values() -> None:
    from aimlops_async.session import CallOptions

    options = CallOptions.build(
        {"X-Extra": "Bearer tok-secret"}, {"q": "query-secret"},
        {"initial_user_password": "Pa55-secret"}, 5.0,
    )
    assert options is not None
    shown = repr(options)
    assert "'X-Extra': ***" in shown and "'initial_user_password': ***" in shown
    for secret in ("tok-secret", "query-secret", "Pa55-secret"):
        assert secret not in shown
