"""Per-call options on every operation (CONTRACT section 2): ``extra_headers``, ``extra_query`` (signed
as sent), ``extra_body`` (merged after validation) and ``timeout``, checked on a recording server.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from wire import FAST_RETRIES, Reply, WireServer

from aimlops_async import AimlopsClient, APITimeoutError, ValidationError

FIXTURES = Path(__file__).parent / "fixtures"
BASE = "/v1/aimlops-platform"
RID = "10a599e031e749b7b260868f441e862b"
CID = "c0ffee31e749b7b260868f441e862b00"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


CREATE = fixture("create_request.json")
UPDATE = {"ai_ml_ops_platform_endpoint_type": "Public"}
PAGE = {"contents": [], "total_count": 0}

Call = Callable[..., Awaitable[Any]]


async def _walk(pager: Any) -> list[Any]:
    return [item async for item in pager]


# (call taking the client and the options, the reply, whether it sends a body)
OPERATIONS = [
    pytest.param(lambda c, **o: c.platforms.check_duplication("n", **o), Reply(200, {"result": True}),
                 False, id="check_duplication"),
    pytest.param(lambda c, **o: c.platforms.create(CREATE, **o),
                 Reply(201, fixture("create_response.json")), True, id="create"),
    pytest.param(lambda c, **o: c.platforms.delete(RID, **o), Reply(200), False, id="delete"),
    pytest.param(lambda c, **o: c.platforms.get(RID, **o),
                 Reply(200, fixture("platform_detail_response.json")), False, id="get"),
    pytest.param(lambda c, **o: _walk(c.platforms.list(**o)), Reply(200, PAGE), False, id="list"),
    pytest.param(lambda c, **o: c.platforms.update(RID, UPDATE, **o),
                 Reply(200, fixture("update_response.json")), True, id="update"),
    pytest.param(lambda c, **o: _walk(c.images.list(**o)), Reply(200, PAGE), False, id="images"),
    pytest.param(lambda c, **o: c.clusters.check_version(CID, "1.28", **o),
                 Reply(200, {"result": True}), False, id="check_version"),
    pytest.param(lambda c, **o: c.clusters.validate_namespaces(CID, **o),
                 Reply(200, {"result": True}), False, id="validate_namespaces"),
    pytest.param(lambda c, **o: c.clusters.validate_resources(CID, "mini", **o),
                 Reply(200, {"result": True}), False, id="validate_resources"),
    pytest.param(lambda c, **o: _walk(c.clusters.list_nodes(CID, **o)),
                 Reply(200, {"count": 0, "links": [], "nodes": []}), False, id="list_nodes"),
    pytest.param(lambda c, **o: c.clusters.list_storage_classes(CID, **o),
                 Reply(200, {"count": 0, "links": [], "storage_classes": []}), False,
                 id="list_storage_classes"),
]


@pytest.mark.parametrize(("call", "reply", "has_body"), OPERATIONS)
async def test_every_operation_takes_extra_headers_query_and_timeout(
    call: Call, reply: Reply, has_body: bool
) -> None:
    async with WireServer() as server:
        server.script(reply)
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            await call(
                client,
                extra_headers={"X-Trace": "trace 1", "Scp-Api-Version": "aimlops-platform 1.0"},
                extra_query={"dry_run": True, "note": "a b&c", "skipped": None},
                timeout=3.0,
            )
        assert len(server.requests) == 1
        recorded = server.requests[0]
        assert recorded.headers["X-Trace"] == "trace 1"
        # A per-call header replaces the client's, once.
        assert recorded.headers.getall("Scp-Api-Version") == ["aimlops-platform 1.0"]
        assert recorded.query["dry_run"] == "true" and recorded.query["note"] == "a b&c"
        assert "skipped" not in recorded.query
        assert recorded.query_string.endswith("dry_run=true&note=a%20b%26c")
        assert server.signature_ok(recorded)  # the query extras are signed as sent
        assert (recorded.headers.get("Content-Type") == "application/json") == has_body


@pytest.mark.parametrize(("call", "reply", "has_body"), OPERATIONS)
async def test_every_operation_takes_extra_body(call: Call, reply: Reply, has_body: bool) -> None:
    extra = {"ai_ml_ops_platform_create_request": {"added_in_1_1": "x"}, "top_level_new": 1}
    async with WireServer() as server:
        server.script(reply)
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            await call(client, extra_body=extra)
        recorded = server.requests[0]
        assert server.signature_ok(recorded)
        sent = recorded.json()
        if call is OPERATIONS[1].values[0]:  # create: nested objects merge key by key
            expected = json.loads(json.dumps(CREATE))
            expected["ai_ml_ops_platform_create_request"]["added_in_1_1"] = "x"
            expected["top_level_new"] = 1
            assert sent == expected
        elif has_body:  # update
            assert sent == {**UPDATE, **extra}
        else:  # an operation without a body of its own sends the extra one as asked
            assert sent == extra


async def test_extra_body_comes_after_validation() -> None:
    async with WireServer() as server:
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            bad = {**CREATE, "unknown_top_level": 1}
            with pytest.raises(ValidationError):
                await client.platforms.create(bad)
            # The same field as an extra passes: it is the caller's explicit choice.
            server.script(Reply(201, fixture("create_response.json")))
            await client.platforms.create(CREATE, extra_body={"unknown_top_level": 1})
        assert len(server.requests) == 1
        assert server.requests[0].json()["unknown_top_level"] == 1


async def test_a_per_call_timeout_applies_to_that_call_only() -> None:
    async with WireServer() as server:
        server.script(Reply(200, {"result": True}, stall=5.0))
        async with AimlopsClient(server.url, server.credentials, max_retries=0, timeout=30) as client:
            with pytest.raises(APITimeoutError) as caught:
                await client.platforms.check_duplication("n", timeout=0.05)
            assert "0.05 s" in str(caught.value)
            server.script(Reply(200, {"result": False}))
            assert await client.platforms.check_duplication("n") is False


async def test_pager_options_apply_to_every_page() -> None:
    pages = [{"contents": [{"image_id": f"i{n}"}], "total_count": 2} for n in range(2)]
    async with WireServer() as server:
        server.script(Reply(200, pages[0]), Reply(200, pages[1]))
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            images = await client.images.list(size=1, extra_headers={"X-Trace": "t"},
                                              extra_query={"tag": "v"}).to_list()
        assert [image.image_id for image in images] == ["i0", "i1"]
        assert [r.query["page"] for r in server.requests] == ["0", "1"]
        assert all(r.headers["X-Trace"] == "t" and r.query["tag"] == "v" for r in server.requests)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"extra_headers": {"Scp-Signature": "x"}}, "extra_headers.Scp-Signature"),
        ({"extra_headers": {"scp-accesskey": "x"}}, "extra_headers.scp-accesskey"),
        ({"extra_headers": {"Scp-AccountId": "x"}}, "extra_headers.Scp-AccountId"),
        ({"extra_headers": {"Scp-Timestamp": "1"}}, "extra_headers.Scp-Timestamp"),
        ({"extra_headers": {"X-Auth-Token": "t"}}, "extra_headers.X-Auth-Token"),
        ({"extra_headers": {"Host": "elsewhere"}}, "extra_headers.Host"),
        ({"extra_headers": {"Content-Length": "1"}}, "extra_headers.Content-Length"),
        ({"extra_headers": {"X-A": "1\r\nX-Injected: 1"}}, "extra_headers.X-A"),
        ({"extra_headers": {"bad name": "1"}}, "extra_headers"),
        ({"extra_headers": {"X-A": 1}}, "extra_headers.X-A"),
        ({"extra_headers": ["X-A"]}, "extra_headers"),
        ({"extra_query": {"a": [1, 2]}}, "extra_query.a"),
        ({"extra_query": {"a": "\udc80"}}, "extra_query.a"),
        ({"extra_query": {1: "a"}}, "extra_query"),
        ({"extra_query": {"\udc80": "a"}}, "extra_query"),
        ({"extra_query": {"": "a"}}, "extra_query"),
        ({"extra_body": {"a": object()}}, "extra_body"),
        ({"extra_body": "text"}, "extra_body"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": "5"}, "timeout"),
    ],
)
async def test_bad_options_are_refused_before_sending(options: dict[str, Any], field: str) -> None:
    async with WireServer() as server:
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            with pytest.raises(ValidationError) as caught:
                await client.platforms.update(RID, UPDATE, **options)
            with pytest.raises(ValidationError):
                client.platforms.list(**options)
        assert server.requests == []
    assert caught.value.field == field
    assert "Injected" not in str(caught.value)
