"""The signer and the wire (CONTRACT section 1): known-answer vectors for ``auth.sign``, and every one of
the twelve operations checked on a recording server for method, path, query, headers, signature and body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from wire import FAST_RETRIES, Recorded, Reply, WireServer

from aimlops_async import (
    AimlopsClient,
    CreatePlatformRequest,
    Credentials,
    DomainServiceRequest,
    UpdatePlatformRequest,
)
from aimlops_async import __version__ as library_version
from aimlops_async.auth import sign
from aimlops_async.converter import structure_request

FIXTURES = Path(__file__).parent / "fixtures"
BASE = "/v1/aimlops-platform"
RID = "10a599e031e749b7b260868f441e862b"
# What the check endpoints answer: an answer without "result" is a malformed one.
CHECK_ANSWER = Reply(200, {"result": True})
CID = "c0ffee31e749b7b260868f441e862b00"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def reference_signature(secret: str, message: str) -> str:
    """CONTRACT section 1, written out here so the test does not trust the code under test."""
    mac = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


# --------------------------------------------------------------------------- known answers

# (secret, method, url, timestamp, access key, account id, client type, expected signature).
# The message is the official SCP SDK's: METHOD + URL + TIMESTAMP + ACCESS_KEY + ACCOUNT_ID + CLIENT_TYPE.
# The expected values were computed outside Python (openssl dgst -sha256 -hmac ... | base64).
VECTORS = [
    pytest.param(
        "secret-key", "GET", "http://127.0.0.1:8080/v1/aimlops-platform/images?size=20&page=0",
        "1605290625682", "access-key", "account-1", "Openapi",
        "kBWllmWwC/iy0/0PEhByKgZV0A1TYqDi0xTO8d7EhkI=", id="non-default-port",
    ),
    pytest.param(
        "secret-key", "GET",
        "https://aimlops-platform.kr-west1.e.samsungsdscloud.com/v1/aimlops-platform"
        "/check-duplication?release_name=aiml-test",
        "1605290625682", "access-key", None, "Openapi",
        "3NaLmfu5ZXG/blFom2DBxCkyzV0bx1SiliR6kUCE7VY=", id="default-port-no-account",
    ),
    pytest.param(
        "secret-key", "post",
        "https://aimlops-platform.kr-west1.e.samsungsdscloud.com/v1/aimlops-platform",
        "1605290625682", "access-key", "account-1", "Openapi",
        "fbAdrPHF4ZObw8BIV468zulfAE6dJCeihLVBmDxAG5E=", id="lower-case-method",
    ),
    pytest.param(
        "sëcret", "GET",
        "http://127.0.0.1:8080/v1/aimlops-platform"
        "?release_name=a%20b%26c%3Dd%2Be%2F%C3%A9&sort=created_dt%3Adesc",
        "1605290625682", "access-key", "", "Openapi",
        "lzeEywx7avs8O93PGCH8Wv6vjG/bwXXHHD8va74SVWY=", id="encoded-query-empty-account",
    ),
    pytest.param(
        "secret-key", "DELETE",
        "https://aimlops-platform.kr-east1.s.samsungsdscloud.com:8443/v1/aimlops-platform/abc"
        "?with_k8s=true",
        "1700000000000", "AK", "acct-9", "Console",
        "WE6SyuWBp0qz/SI+znrLGZ+T++PR4uy2py9rsHJdXfw=", id="other-client-type",
    ),
]


@pytest.mark.parametrize(
    ("secret", "method", "url", "timestamp", "access", "account", "client_type", "expected"), VECTORS
)
def test_sign_known_answers(
    secret: str, method: str, url: str, timestamp: str, access: str, account: str | None,
    client_type: str, expected: str,
) -> None:
    message = method.upper() + url + timestamp + access + (account or "") + client_type
    assert reference_signature(secret, message) == expected
    assert sign(secret, method, url, timestamp, access, account, client_type) == expected


def test_sign_is_padded_standard_base64() -> None:
    signature = sign("k", "GET", "http://h:1/p", "1", "a", None, "Openapi")
    raw = base64.b64decode(signature, validate=True)
    assert len(raw) == 32 and signature.endswith("=") and "-" not in signature and "_" not in signature


def test_empty_and_missing_account_id_sign_the_same() -> None:
    args = ("http://127.0.0.1:1/v1/aimlops-platform", "1605290625682", "ak")
    assert sign("s", "GET", args[0], args[1], args[2], None, "Openapi") == sign(
        "s", "GET", args[0], args[1], args[2], "", "Openapi"
    )


# --------------------------------------------------------------------------- the wire

UA = (
    f"aimlops-async/{library_version} python/{sys.version_info.major}.{sys.version_info.minor} "
    f"aiohttp/{aiohttp.__version__}"
)


def assert_wire_headers(
    server: WireServer,
    recorded: Recorded,
    *,
    has_body: bool,
    client_type: str = "Openapi",
    api_version: str | None = "1.1",
    language: str = "en-US",
) -> None:
    headers = recorded.headers
    assert headers["Scp-AccessKey"] == server.access_key
    # Sent always, as the official SDK does; empty when no account id is configured.
    assert headers["Scp-AccountId"] == (server.account_id or "")
    assert "Scp-ProjectId" not in headers
    timestamp = headers["Scp-Timestamp"]
    assert timestamp.isdigit() and len(timestamp) == 13
    assert abs(int(timestamp) / 1000 - time.time()) < 60
    assert headers["Scp-ClientType"] == client_type
    if api_version is None:
        assert "Scp-Api-Version" not in headers
    else:
        assert headers["Scp-Api-Version"] == f"aimlops-platform {api_version}"
    assert headers["Accept-Language"] == language
    assert headers["User-Agent"] == UA
    assert server.signature_ok(recorded), f"bad signature for {recorded.method} {recorded.url}"
    if has_body:
        assert headers.get("Content-Type") == "application/json"
    else:
        assert "Content-Type" not in headers
        assert recorded.body == b""
    if server.auth_token:
        assert headers["X-Auth-Token"] == server.auth_token
    else:
        assert "X-Auth-Token" not in headers
    # One value per header: nothing doubled by session defaults plus per-request headers.
    for name in ("Scp-AccessKey", "Scp-AccountId", "X-Auth-Token", "Scp-Timestamp", "Scp-Signature",
                 "Scp-ClientType", "Scp-Api-Version", "Accept-Language", "User-Agent", "Content-Type"):
        assert len(headers.getall(name, [])) <= 1, name


MIN_CREATE: dict[str, Any] = {
    "ai_ml_ops_platform_create_request": {
        "ai_ml_ops_platform_type": "Enterprise",
        "cluster_id": CID,
        "image_id": "img-1",
        "initial_user_email": "admin@example.com",
        "initial_user_password": "Sample-Passw0rd",
        "release_name": "aiml-test",
    }
}

Call = Callable[[AimlopsClient], Awaitable[Any]]


async def collect(pager: Any) -> list[Any]:
    return [item async for item in pager]


# (id, call, reply, method, path, query, body or None, check of the returned value)
OPERATIONS: list[Any] = [
    pytest.param(
        lambda c: c.platforms.check_duplication("aiml-test"),
        Reply(200, {"result": True}), "GET", f"{BASE}/check-duplication",
        {"release_name": "aiml-test"}, None, lambda value: value is True,
        id="check_duplication",
    ),
    pytest.param(
        lambda c: c.platforms.create(fixture("create_request.json")),
        Reply(201, fixture("create_response.json")), "POST", BASE, {},
        fixture("create_request.json"),
        lambda value: value.resource_id == RID and value.project_id == RID,
        id="create-reference-example",
    ),
    pytest.param(
        lambda c: c.platforms.create(MIN_CREATE),
        Reply(201, fixture("create_response.json")), "POST", BASE, {}, MIN_CREATE,
        lambda value: value.request_id == RID, id="create-minimal-no-nulls",
    ),
    pytest.param(
        # The reference's path carries no query when with_k8s keeps its default (False).
        lambda c: c.platforms.delete(RID), Reply(200), "DELETE", f"{BASE}/{RID}",
        {}, None, lambda value: value is None, id="delete",
    ),
    pytest.param(
        lambda c: c.platforms.delete(RID, with_k8s=True), Reply(200), "DELETE", f"{BASE}/{RID}",
        {"with_k8s": "true"}, None, lambda value: value is None, id="delete-with-k8s",
    ),
    pytest.param(
        lambda c: c.platforms.get(RID), Reply(200, fixture("platform_detail_response.json")),
        "GET", f"{BASE}/{RID}", {}, None,
        lambda value: value.release_state == "DEPLOYED" and value.release_id == RID, id="get",
    ),
    pytest.param(
        lambda c: collect(c.platforms.list()),
        Reply(200, {"contents": fixture("platforms_list_response.json")["contents"],
                    "total_count": 1}),
        "GET", BASE, {"size": "20", "page": "0"}, None,
        lambda value: [item.release_id for item in value] == [RID], id="list",
    ),
    pytest.param(
        lambda c: collect(c.platforms.list(
            release_name="aiml-test", status="DEPLOYED", cluster_name="cluster-test",
            version="v1.7.1", kubeflow_type="Mini", created_by="u1", sort="created_dt:desc",
            size=5,
        )),
        Reply(200, {"contents": [], "total_count": 0}), "GET", BASE,
        {"release_name": "aiml-test", "status": "DEPLOYED", "cluster_name": "cluster-test",
         "version": "v1.7.1", "kubeflow_type": "Mini", "created_by": "u1",
         "sort": "created_dt:desc", "size": "5", "page": "0"},
        None, lambda value: value == [], id="list-filters",
    ),
    pytest.param(
        lambda c: c.platforms.update(RID, {"ai_ml_ops_platform_endpoint_type": "Public"}),
        Reply(200, fixture("update_response.json")), "PUT", f"{BASE}/{RID}", {},
        {"ai_ml_ops_platform_endpoint_type": "Public"},
        lambda value: value.resource_id == RID, id="update",
    ),
    pytest.param(
        lambda c: c.platforms.update(RID, UpdatePlatformRequest(
            ai_ml_ops_platform_domain_service=structure_request(
                {"operation_type": "CREATE", "domain_service_name": "sample.aimlopsplatform.com"},
                DomainServiceRequest,
            ),
        )),
        Reply(200, fixture("update_response.json")), "PUT", f"{BASE}/{RID}", {},
        {"ai_ml_ops_platform_domain_service": {
            "operation_type": "CREATE", "domain_service_name": "sample.aimlopsplatform.com"}},
        lambda value: value.resource_id == RID, id="update-model-domain-service",
    ),
    pytest.param(
        lambda c: collect(c.images.list(image_name="kubeflow", sort="created_dt:asc", size=7)),
        Reply(200, {"contents": fixture("images_list_response.json")["contents"],
                    "total_count": 1}),
        "GET", f"{BASE}/images",
        {"image_name": "kubeflow", "sort": "created_dt:asc", "size": "7", "page": "0"}, None,
        lambda value: len(value) == 1 and value[0].product_type == "Enterprise", id="images.list",
    ),
    pytest.param(
        lambda c: c.clusters.check_version(CID, "1.28.1"), Reply(200, {"result": True}),
        "GET", f"{BASE}/clusters/{CID}/check-version", {"version": "1.28.1"}, None,
        lambda value: value.result is True, id="check_version",
    ),
    pytest.param(
        lambda c: c.clusters.validate_namespaces(CID), Reply(200, {"result": False}),
        "GET", f"{BASE}/clusters/{CID}/validate-namespaces", {}, None,
        lambda value: value.result is False, id="validate_namespaces",
    ),
    pytest.param(
        lambda c: c.clusters.validate_resources(CID, "Enterprise"), Reply(200, {"result": True}),
        "GET", f"{BASE}/clusters/{CID}/validate-resources", {"product_type": "Enterprise"}, None,
        lambda value: value.result is True, id="validate_resources",
    ),
    pytest.param(
        lambda c: collect(c.clusters.list_nodes(CID)),
        Reply(200, {"count": 1, "links": [], "nodes": [{"name": "node-1", "status": "Ready"}]}),
        "GET", f"{BASE}/internal/clusters/{CID}/nodes", {"size": "20", "page": "0"}, None,
        lambda value: [node.name for node in value] == ["node-1"], id="list_nodes",
    ),
    pytest.param(
        lambda c: c.clusters.list_storage_classes(CID),
        Reply(200, {"count": 1, "links": [], "storage_classes": [{"name": "standard"}]}),
        "GET", f"{BASE}/internal/clusters/{CID}/storageclasses", {}, None,
        lambda value: value.storage_classes[0].name == "standard", id="list_storage_classes",
    ),
]


@pytest.mark.parametrize(
    ("call", "reply", "method", "path", "query", "body", "check"), OPERATIONS
)
@pytest.mark.parametrize(
    ("account_id", "auth_token"), [(None, None), ("account-7", "token-7")],
    ids=["no-account", "account-and-token"],
)
async def test_every_operation_on_the_wire(
    call: Call, reply: Reply, method: str, path: str, query: dict[str, str] | None,
    body: Any, check: Callable[[Any], bool], account_id: str | None, auth_token: str | None,
) -> None:
    async with WireServer(account_id=account_id, auth_token=auth_token) as server:
        server.script(reply)
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            value = await call(client)
        assert check(value), value
        assert len(server.requests) == 1
        recorded = server.requests[0]
        assert recorded.method == method
        assert recorded.path == path
        if query is not None:
            assert recorded.query == query
            # Each parameter once, nothing else (parse_qsl would hide a repeated key).
            assert len(recorded.query_string.split("&")) == len(query) if query else (
                recorded.query_string == ""
            )
        else:
            assert recorded.query.get("with_k8s", "false") == "false"
        assert_wire_headers(server, recorded, has_body=body is not None)
        if body is not None:
            assert recorded.json() == body


async def test_query_is_encoded_once_and_signed_as_sent() -> None:
    name = "a b&c=d+e/é?#%"
    async with WireServer() as server:
        server.script(Reply(200, {"result": False}))
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            assert await client.platforms.check_duplication(name) is False
        recorded = server.requests[0]
        assert recorded.query == {"release_name": name}
        assert "+" not in recorded.query_string and " " not in recorded.query_string
        assert server.signature_ok(recorded)


async def test_path_ids_are_quoted_and_signed_as_sent() -> None:
    async with WireServer() as server:
        server.script(Reply(200, fixture("platform_detail_response.json")))
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            # A "/" is refused before sending (it could route elsewhere); these are quoted.
            await client.platforms.get("id with?query#and-é")
        recorded = server.requests[0]
        assert recorded.raw_path == f"{BASE}/id%20with%3Fquery%23and-%C3%A9"
        assert server.signature_ok(recorded)


async def test_enum_filters_go_out_as_their_api_strings() -> None:
    from aimlops_async import PlatformType, ReleaseState

    async with WireServer() as server:
        server.script(Reply(200, {"contents": [], "total_count": 0}))
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            await collect(
                client.platforms.list(status=ReleaseState.DEPLOYED, kubeflow_type=PlatformType.MINI)
            )
        assert server.requests[0].query == {
            "status": "DEPLOYED", "kubeflow_type": "Mini", "size": "20", "page": "0"
        }


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"client_type": "Openapi", "api_version": "1.1", "language": "en-US"}),
        ({"client_type": "Console"}, {"client_type": "Console", "api_version": "1.1",
                                      "language": "en-US"}),
        ({"api_version": "1.0"}, {"client_type": "Openapi", "api_version": "1.0",
                                  "language": "en-US"}),
        ({"api_version": None}, {"client_type": "Openapi", "api_version": None,
                                 "language": "en-US"}),
        ({"language": "ko-KR"}, {"client_type": "Openapi", "api_version": "1.1",
                                 "language": "ko-KR"}),
    ],
    ids=["defaults", "client-type", "api-version-1.0", "no-api-version", "korean"],
)
async def test_configurable_headers(options: dict[str, Any], expected: dict[str, Any]) -> None:
    async with WireServer(account_id="a-1", default=CHECK_ANSWER) as server:
        async with AimlopsClient(server.url, server.credentials, **options, **FAST_RETRIES) as client:
            await client.clusters.validate_namespaces(CID)
            await client.platforms.update(RID, {"ai_ml_ops_platform_endpoint_type": "Private"})
        get, put = server.requests
        assert_wire_headers(server, get, has_body=False, **expected)
        assert_wire_headers(server, put, has_body=True, **expected)


async def test_default_port_is_left_out_of_the_signed_url() -> None:
    try:
        server = WireServer(port=80, default=CHECK_ANSWER)
        await server.start()
    except OSError:
        pytest.skip("port 80 is not available here")
    try:
        endpoint = "http://127.0.0.1:80"
        async with AimlopsClient(endpoint, server.credentials, **FAST_RETRIES) as client:
            await client.clusters.validate_namespaces(CID)
        recorded = server.requests[0]
        assert recorded.host == "127.0.0.1"
        assert recorded.url == f"http://127.0.0.1{BASE}/clusters/{CID}/validate-namespaces"
        assert server.signature_ok(recorded)
    finally:
        await server.stop()


async def test_endpoint_with_trailing_slash_and_explicit_port() -> None:
    async with WireServer(default=CHECK_ANSWER) as server:
        async with AimlopsClient(server.url + "/", server.credentials, **FAST_RETRIES) as client:
            await client.clusters.validate_namespaces(CID)
        recorded = server.requests[0]
        assert recorded.path == f"{BASE}/clusters/{CID}/validate-namespaces"
        assert recorded.host == server.url.removeprefix("http://")
        assert server.signature_ok(recorded)


async def test_each_attempt_is_signed_afresh() -> None:
    async with WireServer() as server:
        server.script(Reply(503, {"code": "SERVICE_UNAVAILABLE", "message": "busy"}),
                      Reply(502, "bad gateway"),
                      Reply(200, fixture("platform_detail_response.json")))
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            detail = await client.platforms.get(RID)
        assert detail.release_id == RID
        assert len(server.requests) == 3
        timestamps = [r.headers["Scp-Timestamp"] for r in server.requests]
        signatures = [r.headers["Scp-Signature"] for r in server.requests]
        assert len(set(timestamps)) == 3, timestamps
        assert len(set(signatures)) == 3
        assert timestamps == sorted(timestamps)
        assert all(server.signature_ok(r) for r in server.requests)


async def test_retry_after_zero_still_gets_a_new_timestamp() -> None:
    async with WireServer() as server:
        for _ in range(5):
            server.script(Reply(429, {"code": "TOO_MANY_REQUESTS"}, headers={"Retry-After": "0"}))
        server.script(Reply(200, {"result": True}))
        async with AimlopsClient(
            server.url, server.credentials, max_retries=5, retry_base_delay=0, timeout=5
        ) as client:
            assert await client.platforms.check_duplication("x") is True
        timestamps = [r.headers["Scp-Timestamp"] for r in server.requests]
        assert len(server.requests) == 6
        assert len(set(timestamps)) == 6, timestamps


async def test_a_wrong_secret_is_what_the_server_sees() -> None:
    """The recording server really checks signatures: a client with another secret fails them."""
    async with WireServer(default=CHECK_ANSWER) as server:
        wrong = Credentials(server.access_key, "not-the-secret")
        async with AimlopsClient(server.url, wrong, **FAST_RETRIES) as client:
            await client.clusters.validate_namespaces(CID)
        assert not server.signature_ok(server.requests[0])


async def test_create_body_is_exactly_the_model_without_nulls() -> None:
    request = structure_request(MIN_CREATE, CreatePlatformRequest)
    async with WireServer() as server:
        server.script(Reply(201, fixture("create_response.json")))
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            await client.platforms.create(request)
        body = server.requests[0].json()
        assert body == MIN_CREATE
        assert "null" not in server.requests[0].body.decode()
