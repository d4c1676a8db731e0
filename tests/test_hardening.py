"""Hostile peers and bad input: malformed answers, bounded work per answer, linear-time checks,
limits that must not leak, settings checked up front, and errors that cross process boundaries.
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import itertools
import json
import logging
import math
import pickle
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import cattrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from wire import FAST_RETRIES, Reply, WireServer

from aimlops_async import AimlopsClient, APIStatusError, Credentials, ValidationError, errors
from aimlops_async.converter import structure_answer
from aimlops_async.models import (
    EMAIL_MAX_LENGTH,
    CheckResponse,
    CreatePlatformRequest,
    NodeListPage,
    PlatformDetail,
    PlatformListPage,
    email_address_problem,
    release_name_problem,
)
from aimlops_async.pagination import max_page_items
from aimlops_async.resources._base import ROUTE_NAMES, checked_request, path_id
from aimlops_async.session import RateLimiter, parse_error_body

# ---------------------------------------------------------------- errors cross process boundaries


def _sample_error(cls: type[errors.AimlopsError]) -> errors.AimlopsError:
    """One instance of ``cls`` with every keyword argument of its constructor set to a distinct value."""
    if issubclass(cls, errors.ValidationError):
        return cls([("request.name", "is required"), ("size", "must be positive")])
    kwargs: dict[str, Any] = {}
    # The keyword-only arguments of every constructor up the tree (a subclass may pass **kwargs on).
    names = [
        name
        for klass in cls.__mro__ if issubclass(klass, errors.AimlopsError) and "__init__" in vars(klass)
        for name, parameter in inspect.signature(vars(klass)["__init__"]).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    for name in names:
        if name == "status":
            kwargs[name] = 503
        elif name in ("attempts",):
            kwargs[name] = 4
        elif name in ("retry_after",):
            kwargs[name] = 1.5
        elif name in ("sent", "retryable"):
            kwargs[name] = False
        elif name == "body":
            kwargs[name] = {"errors": [{"code": "X", "detail": ["a", "b"]}]}
        elif name == "last_detail":
            kwargs[name] = {"release_state": "FAILED"}
        else:
            kwargs[name] = f"{name}-value"
    return cls("it failed", **kwargs)


EXPORTED_ERRORS = [
    getattr(errors, name) for name in errors.__all__
    if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), BaseException)
]


def test_every_exported_error_class_is_covered() -> None:
    assert len(EXPORTED_ERRORS) == len(errors.__all__)
    assert errors.WaiterTimeoutError in EXPORTED_ERRORS and errors.APIStatusError in EXPORTED_ERRORS


@pytest.mark.parametrize("cls", EXPORTED_ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_survives_a_pickle_round_trip(cls: type[errors.AimlopsError]) -> None:
    error = _sample_error(cls)
    error.added_later = ["an attribute", "no constructor knows"]  # type: ignore[attr-defined]
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is cls
    assert restored.args == error.args
    assert restored.__dict__ == error.__dict__
    assert str(restored) == str(error)
    assert restored.added_later == error.added_later  # type: ignore[attr-defined]


# ---------------------------------------------------------------- settings checked when the client is built

CREDENTIALS = Credentials("hardening-access-key", "hardening-secret-key")
LOOPBACK = "http://127.0.0.1:9"

# Each numeric setting, with the values it must refuse and those it must accept.
SETTINGS: dict[str, tuple[list[Any], list[Any]]] = {
    "timeout": ([math.nan, 0, -1.0, "3"], [0.5, math.inf]),
    "poll_delay": ([math.nan, 0, -1, math.inf], [0.1]),
    "poll_max_delay": ([math.nan, 0, -1, math.inf], [60.0]),
    "poll_timeout": ([math.nan, 0, -5, math.inf], [3600]),
    "retry_base_delay": ([math.nan, -0.1, math.inf], [0, 0.5]),
    "retry_max_delay": ([math.nan, 0, -1, math.inf], [8.0]),
    "max_retry_after": ([math.nan, -1.0], [0, 60.0, math.inf]),
    "requests_per_second": ([math.nan, 0, -1.0, True], [None, 0.5, math.inf]),
    "max_retries": ([math.nan, -1, 1.5, True], [0, 5]),
    "max_concurrency": ([math.nan, 0, 2.0, None], [1, 64]),
}


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, (bad, _) in SETTINGS.items() for value in bad],
)
def test_a_bad_numeric_setting_is_refused_naming_it(name: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        AimlopsClient(LOOPBACK, CREDENTIALS, **{name: value})
    assert caught.value.field == name


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, (_, good) in SETTINGS.items() for value in good],
)
def test_a_good_numeric_setting_is_accepted(name: str, value: Any) -> None:
    AimlopsClient(LOOPBACK, CREDENTIALS, **{name: value})


@given(
    name=st.sampled_from(sorted(SETTINGS)),
    value=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70),
)
def test_any_number_for_any_setting_builds_a_client_or_is_refused_naming_it(
    name: str, value: float
) -> None:
    try:
        AimlopsClient(LOOPBACK, CREDENTIALS, **{name: value})
    except ValidationError as error:
        # A poll_delay beyond the default poll_max_delay is refused by their relation.
        assert error.field == name or (name, error.field) == ("poll_delay", "poll_max_delay")
    else:
        assert not math.isnan(value)


async def test_an_infinite_timeout_means_no_timeout() -> None:
    async with WireServer(default=Reply(200, {"release_id": "r-1"})) as server:
        client = AimlopsClient(server.url, server.credentials, timeout=math.inf)
        async with client:
            detail = await client.platforms.get("r-1")
    assert detail.release_id == "r-1"


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8080/?project=1",
        "http://127.0.0.1:8080/base?",
        "https://host.example/#top",
        "ftp://host.example",
        "file:///etc/passwd",
        "https://user:pass@host.example",
        "https://",
        "http://127.0.0.1:99999",
    ],
)
def test_an_endpoint_with_a_query_fragment_or_other_scheme_is_refused(endpoint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AimlopsClient(endpoint, CREDENTIALS)
    assert caught.value.field == "endpoint"


def test_plain_http_to_another_host_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="aimlops_async"):
        AimlopsClient("http://10.0.0.5:8080/prefix", CREDENTIALS)
    assert any("unencrypted" in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aimlops_async"):
        for endpoint in ("http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:2",
                         "https://10.0.0.5"):
            AimlopsClient(endpoint, CREDENTIALS)
    assert not caplog.records


# ---------------------------------------------------------------- answers of the wrong shape

# One call per response model, and an answer of the right shape for it.
READS: dict[str, tuple[Callable[[AimlopsClient], Awaitable[Any]], dict[str, Any]]] = {
    "get": (lambda c: c.platforms.get("r1"), {"release_id": "r1", "release_state": "DEPLOYED"}),
    "check_duplication": (lambda c: c.platforms.check_duplication("n1"), {"result": False}),
    "check_version": (lambda c: c.clusters.check_version("c1", "1.28"), {"result": True}),
    "validate_namespaces": (lambda c: c.clusters.validate_namespaces("c1"), {"result": True}),
    "list": (lambda c: c.platforms.list().to_list(), {"contents": [], "total_count": 0}),
    "images": (lambda c: c.images.list().to_list(), {"contents": [], "total_count": 0}),
    "nodes": (lambda c: c.clusters.list_nodes("c1").to_list(), {"nodes": [], "count": 0}),
    "storage_classes": (lambda c: c.clusters.list_storage_classes("c1"), {"storage_classes": []}),
}
# JSON of the wrong type, and objects without the model's identity.
WRONG_SHAPES: list[Any] = [[], [{"release_id": "r1"}], "text", 7, True, {}, {"unrelated": 1}]


@pytest.mark.faults
@pytest.mark.parametrize("body", WRONG_SHAPES, ids=repr)
@pytest.mark.parametrize("call", sorted(READS))
async def test_a_read_answered_with_the_wrong_shape_is_retried_then_raised(call: str, body: Any) -> None:
    read, _ = READS[call]
    answer = Reply(200, json.dumps(body), content_type="application/json")
    async with (
        WireServer(default=answer) as server,
        AimlopsClient(server.url, server.credentials, max_retries=2, **FAST_RETRIES) as client,
    ):
        with pytest.raises(APIStatusError) as caught:
            await read(client)
    assert caught.value.code == "MALFORMED_RESPONSE"
    assert caught.value.status == 200
    assert caught.value.attempts == 3
    assert len(server.requests) == 3


@pytest.mark.faults
@pytest.mark.parametrize("call", sorted(READS))
async def test_one_malformed_answer_is_outlived_by_a_retry(call: str) -> None:
    read, good = READS[call]
    async with WireServer(default=Reply(200, good)) as server:
        server.script(Reply(200, []))
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            await read(client)
    assert len(server.requests) == 2


@pytest.mark.faults
async def test_a_create_answered_with_the_wrong_type_is_malformed_and_not_re_sent() -> None:
    create_request = json.loads((Path(__file__).parent / "fixtures" / "create_request.json").read_text())
    async with (
        WireServer(default=Reply(201, [])) as server,
        AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client,
    ):
        with pytest.raises(APIStatusError) as caught:
            await client.platforms.create(create_request)
    assert caught.value.code == "MALFORMED_RESPONSE"
    assert len(server.requests) == 1


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["release_id", "result", "contents", "nodes", "x"]), inner, max_size=3),
    max_leaves=8,
))
def test_any_json_is_either_the_model_with_its_identity_or_refused(body: Any) -> None:
    for cls in (PlatformDetail, CheckResponse, PlatformListPage, NodeListPage):
        try:
            model = structure_answer(body, cls)
        except (TypeError, ValueError, KeyError, AttributeError, cattrs.BaseValidationError):
            continue
        assert isinstance(body, dict)
        for name in cls.required_fields:
            assert getattr(model, name) is not None


ROUTING_IDS = ["images", "IMAGES", "check-duplication", "internal", "clusters", ".", "..", "...",
               "a/b", "../images", "%2e%2e", "a\\b", "a\nb", "a\x00b"]


@pytest.mark.parametrize("release_id", ROUTING_IDS, ids=repr)
async def test_an_id_that_would_route_elsewhere_is_refused_before_sending(release_id: str) -> None:
    async with (
        WireServer() as server,
        AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client,
    ):
        for call in (client.platforms.get, client.platforms.delete,
                     client.clusters.validate_namespaces, client.clusters.list_storage_classes):
            with pytest.raises(ValidationError) as caught:
                await call(release_id)
            assert caught.value.field in ("release_id", "cluster_id")
    assert server.requests == []


@given(st.text(min_size=1, max_size=30))
def test_a_path_id_is_refused_or_stays_one_path_segment(text: str) -> None:
    try:
        segment = path_id(text, "release_id")
    except ValidationError:
        return
    assert "/" not in segment and segment not in (".", "..")
    assert segment.lower() not in ROUTE_NAMES
    assert unquote(segment) == text


# ---------------------------------------------------------------- bounded work per answer

MIB = 1024 * 1024


def _gzip_reply(payload: bytes, status: int = 200) -> Reply:
    return Reply(status, gzip.compress(payload, compresslevel=1),
                 headers={"Content-Encoding": "gzip"}, content_type="application/json")


@pytest.mark.faults
async def test_a_compressed_answer_is_unpacked_only_up_to_max_response_bytes() -> None:
    bomb = b'{"release_id": "r1", "padding": "' + b"0" * (4 * MIB) + b'"}'
    assert len(gzip.compress(bomb, compresslevel=1)) < 64 * 1024
    async with (
        WireServer(default=_gzip_reply(bomb)) as server,
        AimlopsClient(server.url, server.credentials, max_response_bytes=MIB, **FAST_RETRIES) as client,
    ):
        with pytest.raises(APIStatusError) as caught:
            await client.platforms.get("r1")
    assert caught.value.code == "RESPONSE_TOO_LARGE"
    assert caught.value.body is None
    assert "max_response_bytes" in str(caught.value)
    assert len(server.requests) == 1  # the same answer again would cost as much again


@pytest.mark.faults
@pytest.mark.parametrize("status", [200, 503])
async def test_a_plain_answer_over_the_limit_is_refused_and_one_under_it_is_read(status: int) -> None:
    padding = "0" * (2 * MIB)
    big = Reply(status, {"release_id": "r1", "padding": padding})
    async with (
        WireServer(default=big) as server,
        AimlopsClient(server.url, server.credentials, max_response_bytes=MIB, **FAST_RETRIES) as client,
    ):
        with pytest.raises(APIStatusError) as caught:
            await client.platforms.get("r1")
        assert caught.value.code == "RESPONSE_TOO_LARGE" and caught.value.status == status
    async with (
        WireServer(default=_gzip_reply(json.dumps({"release_id": "r1", "padding": padding}).encode()))
        as server,
        AimlopsClient(server.url, server.credentials, max_response_bytes=3 * MIB, **FAST_RETRIES)
        as client,
    ):
        detail = await client.platforms.get("r1")
    assert detail.release_id == "r1"


def test_the_default_body_limit_is_generous_and_can_be_lifted() -> None:
    assert AimlopsClient(LOOPBACK, CREDENTIALS)._session.max_response_bytes == 16 * MIB
    assert AimlopsClient(LOOPBACK, CREDENTIALS, max_response_bytes=None)._session.max_response_bytes is None
    for bad in (0, -1, 1.5, math.nan, "1"):
        with pytest.raises(ValidationError) as caught:
            AimlopsClient(LOOPBACK, CREDENTIALS, max_response_bytes=bad)
        assert caught.value.field == "max_response_bytes"


def _tags_removed_by_regex(head: str) -> str | None:
    """What the message extraction did with a regular expression (quadratic on '<<<<...')."""
    text = " ".join(re.sub(r"<[^>]+>", " ", head).split())
    return text[:300] or None


@given(st.text(alphabet="<>/ a\n\té", max_size=60))
def test_the_linear_tag_stripper_reads_markup_as_the_regular_expression_did(text: str) -> None:
    read = parse_error_body(text.encode())
    assert read.message == _tags_removed_by_regex(text) or (text.strip() and (
        read.body is not None and _is_json(text)
    ))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.faults
@pytest.mark.parametrize(
    "page",
    ["<" * 200_000, "<a" * 100_000, "<" + "a" * 200_000, "<>" * 100_000, " \t" * 100_000 + "x",
     "<html><body><h1>Request Rejected</h1>" + "<p>" * 50_000 + "</body></html>"],
    ids=["lt", "lt-a", "open-tag", "empty-tags", "spaces", "html"],
)
async def test_a_large_hostile_error_page_gives_a_short_message_from_its_start(page: str) -> None:
    # Only the first ERROR_TEXT_BYTES are looked at: the work does not grow with the page.
    read = parse_error_body(page.encode())
    body, code, message = read.body, read.code, read.message
    assert code is None
    assert message is None or len(message) <= 300
    assert isinstance(body, str) and len(body) <= 503
    if page.startswith("<html>"):
        assert message == "Request Rejected"
    async with (
        WireServer(default=Reply(500, page, content_type="text/html")) as server,
        AimlopsClient(server.url, server.credentials, max_retries=0, **FAST_RETRIES) as client,
    ):
        with pytest.raises(errors.ServerError) as caught:
            await client.platforms.get("r1")
    assert caught.value.message == (message or "Internal Server Error")


@pytest.mark.faults
@pytest.mark.parametrize("size", [1, 5, 20, 100])
async def test_a_page_far_larger_than_asked_for_is_a_malformed_answer(size: int) -> None:
    too_many = max_page_items(size) + 1
    page = {"contents": [{"release_id": f"r{n}"} for n in range(too_many)], "total_count": too_many}
    async with (
        WireServer(default=Reply(200, page)) as server,
        AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client,
    ):
        with pytest.raises(APIStatusError) as caught:
            await client.platforms.list(size=size).to_list()
        assert caught.value.code == "MALFORMED_RESPONSE"
        # A server with its own, somewhat larger page size is still read.
        tolerated = max_page_items(size)
        server.default = Reply(200, {"contents": page["contents"][:tolerated], "total_count": tolerated})
        assert len(await client.platforms.list(size=size).to_list()) == tolerated
    assert max_page_items(size) < 3 * size + 101


# ---------------------------------------------------------------- pathological input refused in linear time
#
# No test here measures time. Each crafted input is long enough (100,000 characters) that a
# check with quadratic backtracking would not finish within the test run; a linear one reads it
# at once. The length limit is asserted to be what refuses the longest inputs.

LONG = 100_000
CRAFTED_EMAILS = [
    "a@" + "." * LONG + "@",
    "a@" + "a." * (LONG // 2) + "@",
    "a" * LONG + "@",
    "@" * LONG,
    "a@b" + "." * LONG,
]
_OLD_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _create_request(**platform: Any) -> dict[str, Any]:
    request = json.loads((Path(__file__).parent / "fixtures" / "create_request.json").read_text())
    request["ai_ml_ops_platform_create_request"].update(platform)
    return request


@pytest.mark.parametrize("email", CRAFTED_EMAILS, ids=range(len(CRAFTED_EMAILS)))
def test_a_long_crafted_email_is_refused_by_its_length_first(email: str) -> None:
    assert email_address_problem(email) == (
        f"must be an e-mail address of at most {EMAIL_MAX_LENGTH} characters, got {len(email)}"
    )
    with pytest.raises(ValidationError) as caught:
        checked_request(_create_request(initial_user_email=email), CreatePlatformRequest)
    assert caught.value.field == "ai_ml_ops_platform_create_request.initial_user_email"


@pytest.mark.parametrize("email", [e[:EMAIL_MAX_LENGTH] for e in CRAFTED_EMAILS] + ["a@b.c d"])
def test_a_crafted_email_within_the_length_limit_is_judged_by_its_shape(email: str) -> None:
    assert (email_address_problem(email) is None) == bool(_OLD_EMAIL.fullmatch(email))


@given(st.text(alphabet="a.@ \t\u00a0é", max_size=30))
def test_the_linear_email_check_agrees_with_the_pattern_on_short_text(email: str) -> None:
    assert (email_address_problem(email) is None) == bool(_OLD_EMAIL.fullmatch(email))


def test_addresses_up_to_254_characters_are_accepted() -> None:
    longest = "a" * 64 + "@" + "b" * 184 + ".corp"
    assert len(longest) == EMAIL_MAX_LENGTH
    assert email_address_problem(longest) is None
    assert email_address_problem(longest + "x") is not None


CRAFTED_TEXT = ["a" + "-" * LONG + "!", "<" * LONG, "${" + "a" * LONG, "$" * LONG + "{",
                "v" + "1" * LONG, "[" + "0" * LONG, "." * LONG, "a" * LONG + "@"]


@pytest.mark.parametrize("text", CRAFTED_TEXT, ids=range(len(CRAFTED_TEXT)))
def test_every_pattern_in_the_package_reads_long_crafted_text(text: str) -> None:
    # Every compiled pattern of every module, on inputs built to make backtracking patterns
    # quadratic: all of them must finish (the audit of issue 11 found the e-mail patterns).
    for pattern in _package_patterns():
        pattern.search(text)
        pattern.fullmatch(text)
    assert release_name_problem(text) is not None


def _package_patterns() -> list[re.Pattern[str]]:
    import importlib
    import pkgutil

    import aimlops_async

    found = []
    for module_info in pkgutil.walk_packages(aimlops_async.__path__, "aimlops_async."):
        if module_info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(module_info.name)
        except ImportError:  # an optional extra that is not installed
            continue
        found += [value for value in vars(module).values()
                  if isinstance(value, re.Pattern) and isinstance(value.pattern, str)]
    assert len(found) >= 8, found
    return found


# ---------------------------------------------------------------- limits that leak: the rate limiter


async def test_cancelled_callers_give_their_rate_slots_back() -> None:
    now = 100.0
    delays: list[float] = []

    async def sleep_until_cancelled(delay: float) -> None:
        delays.append(delay)
        await asyncio.Event().wait()

    limiter = RateLimiter(10.0, clock=lambda: now, sleep=sleep_until_cancelled)
    await limiter.wait()  # the first slot is now: no sleep
    waiting = [asyncio.create_task(limiter.wait()) for _ in range(300)]
    await asyncio.sleep(0)
    assert len(delays) == 300 and max(delays) == pytest.approx(30.0)
    for task in waiting[::2] + waiting[1::2]:  # not in the order they queued
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    delays.clear()
    nxt = asyncio.create_task(limiter.wait())
    await asyncio.sleep(0)
    # The next caller waits one interval after the call that went out, not 30 s.
    assert delays == [pytest.approx(0.1)]
    nxt.cancel()


@given(
    st.lists(
        st.tuples(st.sampled_from(["reserve", "cancel", "tick"]), st.integers(0, 50)),
        max_size=80,
    )
)
# Slots 0, 1, 2; 1 cancelled; at 1.1 the next slot is 3 (one interval after 2), not the gap.
@example([("reserve", 0)] * 3 + [("cancel", 0), ("tick", 11), ("reserve", 0)])
def test_rate_slots_stay_spaced_and_cancelled_ones_never_delay_the_rest(
    operations: list[tuple[str, int]],
) -> None:
    interval = 1.0
    limiter = RateLimiter(1 / interval)
    now = 0.0
    live: list[float] = []  # reserved slots whose callers still wait or already went out
    for operation, number in operations:
        if operation == "tick":
            now += number / 10
        elif operation == "cancel":
            waiting = [slot for slot in live if slot > now]
            if waiting:
                slot = waiting[number % len(waiting)]
                live.remove(slot)
                limiter.give_back(slot)
        else:
            slot = limiter.reserve(now)
            assert slot >= now
            # No leak: a new slot is never later than one interval after the last slot still
            # held (a cancelled slot behind it would push it further), or now when none is near.
            latest = max(live, default=now - interval)
            assert slot <= max(now, latest + interval) + 1e-9
            live.append(slot)
        ordered = sorted(live)
        assert all(b - a >= interval - 1e-9 for a, b in itertools.pairwise(ordered))
