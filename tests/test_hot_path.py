"""Tests that the hot-path shortcuts (datetimes, response structuring, first attempt) change no behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, get_args

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire import Reply, WireServer, free_port

from aimlops_async import (
    AimlopsClient,
    APIConnectionError,
    Credentials,
    NotFoundError,
    RateLimitError,
    ServerError,
    converter,
)
from aimlops_async.converter import _response_converter, parse_datetime, structure_response
from aimlops_async.models import (
    AsyncResponse,
    CheckResponse,
    Image,
    ImageListPage,
    Node,
    NodeListPage,
    PlatformDetail,
    PlatformListPage,
    PlatformSummary,
    PlatformType,
    ReleaseState,
    StorageClass,
    StorageClassList,
)
from aimlops_async.session import Slots


def _reference_parse(value: str) -> datetime:
    """The general path every timestamp string took before the shortcut: strip, Z, fromisoformat."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-17T00:23:17Z",
        "2024-05-17T00:23:17z",
        "2024-05-17T00:41:09.512Z",
        "2024-05-17T00:41:09.512000Z",
        " 2024-05-17T00:23:17Z\n",
        "2024-05-17T09:23:17+09:00",
        "2024-05-17T00:23:17",
        "2024-05-17",
        "2024-05-17T00:23:17.123456-05:30",
    ],
)
def test_timestamps_parse_as_before_and_are_aware(text: str) -> None:
    parsed = parse_datetime(text)
    assert parsed == _reference_parse(text)
    assert parsed.utcoffset() == _reference_parse(text).utcoffset()
    assert parsed.tzinfo is not None


def test_z_means_utc() -> None:
    parsed = parse_datetime("2024-05-17T00:23:17Z")
    assert parsed == datetime(2024, 5, 17, 0, 23, 17, tzinfo=timezone.utc)
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("bad", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-05-17T25:00:00Z"])
def test_bad_timestamps_still_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(bad)


@pytest.mark.parametrize("value", [None, True, [2024], {"at": 1}])
def test_non_timestamps_still_raise_type_error(value: Any) -> None:
    with pytest.raises(TypeError):
        parse_datetime(value)


def test_epoch_milliseconds_and_datetimes_pass_as_before() -> None:
    assert parse_datetime(1_715_905_397_000) == datetime(2024, 5, 17, 0, 23, 17, tzinfo=timezone.utc)
    naive = datetime(2024, 5, 17, 0, 23, 17)
    assert parse_datetime(naive) == naive.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------------- the first attempt's fast path

RID = "10a599e031e749b7b260868f441e862b"
DETAIL_PATH = f"/v1/aimlops-platform/{RID}"
RETRY_FAST: dict[str, Any] = {"retry_base_delay": 0.001, "retry_max_delay": 0.002, "timeout": 5.0}


@contextlib.asynccontextmanager
async def serving(
    default: Reply, **client_options: Any
) -> AsyncIterator[tuple[WireServer, AimlopsClient]]:
    """A recording server answering ``default``, and a client of it with fast retries."""
    async with (
        WireServer(default=default) as server,
        AimlopsClient(server.url, server.credentials, **{**RETRY_FAST, **client_options}) as client,
    ):
        yield server, client


def _retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying")]


async def test_a_call_that_succeeds_at_once_is_one_attempt_and_logs_no_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="aimlops_async")
    async with serving(Reply(200, {"release_id": RID, "release_state": "DEPLOYED"})) as (_, client):
        detail = await client.platforms.get(RID)
        assert detail.release_id == RID and detail.release_state == "DEPLOYED"
        assert (client.stats.calls, client.stats.attempts, client.stats.retries) == (1, 1, 0)
    assert _retry_lines(caplog) == []


async def test_transient_failures_are_retried_and_logged_as_before(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="aimlops_async")
    async with WireServer() as server:
        server.script(Reply(503, {"code": "BUSY"}), Reply(502, "bad gateway"),
                      Reply(200, {"release_id": RID}))
        async with AimlopsClient(server.url, server.credentials, max_retries=3, **RETRY_FAST) as client:
            detail = await client.platforms.get(RID)
            assert detail.release_id == RID
            assert (client.stats.attempts, client.stats.retries) == (3, 2)
        # Every attempt is signed afresh, the retried ones included.
        assert all(server.signature_ok(recorded) for recorded in server.requests)
        assert len({r.headers["Scp-Timestamp"] for r in server.requests}) == 3
    lines = _retry_lines(caplog)
    assert len(lines) == 2
    assert lines[0].startswith(f"retrying GET {DETAIL_PATH} (attempt 2 of 4) in ")
    assert lines[0].endswith("after 503 BUSY")
    assert lines[1].startswith(f"retrying GET {DETAIL_PATH} (attempt 3 of 4) in ")


async def test_exhausted_retries_raise_the_last_failure() -> None:
    async with serving(Reply(503, {"code": "BUSY", "message": "later"}), max_retries=2) as (server, client):
        with pytest.raises(ServerError) as caught:
            await client.platforms.get(RID)
        assert caught.value.status == 503 and caught.value.code == "BUSY"
        assert (client.stats.attempts, client.stats.retries) == (3, 2)
        assert len(server.requests) == 3


async def test_no_retries_configured_means_one_attempt() -> None:
    async with serving(Reply(503, {"code": "BUSY"}), max_retries=0) as (_, client):
        with pytest.raises(ServerError):
            await client.platforms.get(RID)
        assert (client.stats.attempts, client.stats.retries) == (1, 0)


async def test_a_final_answer_is_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aimlops_async")
    async with serving(Reply(404, {"code": "NOT_FOUND", "message": "no such"})) as (_, client):
        with pytest.raises(NotFoundError):
            await client.platforms.get(RID)
        assert (client.stats.attempts, client.stats.retries) == (1, 0)
    assert _retry_lines(caplog) == []


async def test_a_retry_after_above_the_cap_raises_at_once() -> None:
    slow_down = Reply(429, {"code": "SLOW_DOWN"}, headers={"Retry-After": "120"})
    async with serving(slow_down, max_retry_after=5.0) as (_, client):
        with pytest.raises(RateLimitError) as caught:
            await client.platforms.get(RID)
        assert caught.value.retry_after == pytest.approx(120.0)
        assert client.stats.attempts == 1


async def test_a_post_that_got_an_answer_is_not_sent_twice() -> None:
    async with serving(Reply(503, {"code": "BUSY"})) as (server, client):
        with pytest.raises(ServerError):
            await client.platforms.create(CREATE_BODY)
        assert [r.method for r in server.requests] == ["POST"]


async def test_a_refused_connection_is_retried_then_raised() -> None:
    async with AimlopsClient(
        f"http://127.0.0.1:{free_port()}", Credentials("a", "b"), max_retries=2, **RETRY_FAST
    ) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.platforms.get(RID)
        assert caught.value.sent is False
        assert (client.stats.attempts, client.stats.retries) == (3, 2)


SUMMARY: dict[str, Any] = {
    "cluster_id": RID, "cluster_name": "cluster-test", "created_by": RID,
    "created_dt": "2024-05-17T00:23:17Z", "kubeflow_type": "Mini", "modified_by": RID,
    "modified_dt": "2024-05-18T01:02:09.512Z", "release_id": RID, "release_name": "aiml-test-001",
    "status": "INSTALLING", "version": "v1.7.1",
}

CREATE_BODY: dict[str, Any] = {
    "ai_ml_ops_platform_create_request": {
        "release_name": "aiml-test", "ai_ml_ops_platform_type": "Enterprise",
        "image_id": "10a599e031e749b7b260868f441e862b", "cluster_id": "10a599e031e749b7b260868f441e862b",
        "initial_user_email": "admin@example.com", "initial_user_password": "147@53A69a",
    }
}


# ---------------------------------------------------------------------- precompiled response hooks

RESPONSE_MODELS = [
    AsyncResponse, CheckResponse, PlatformDetail, PlatformSummary, PlatformListPage, Image,
    ImageListPage, Node, NodeListPage, StorageClass, StorageClassList,
]
_PLAIN = _response_converter(precompiled=False)

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
    st.text(max_size=6),
    st.sampled_from([
        "", "DEPLOYED", "FAILED", "SOMETHING_NEW", "RUNNING", "Enterprise", "Mini", "Private",
        "2024-05-17T00:23:17Z", "2024-05-17T00:41:09.512Z", " 2024-05-17T00:23:17z ",
        "2024-05-17T09:23:17+09:00", "2024-13-01T00:00:00Z", "yesterday", "true", "False",
    ]),
)
_json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def _field_value(type_: Any) -> st.SearchStrategy[Any]:
    """Mostly well-formed values for a field, often the wrong JSON type, sometimes nested models."""
    for arg in get_args(type_):
        for item in get_args(arg):
            if attrs.has(item):
                return st.one_of(st.lists(_model_json(item), max_size=3), _json_values)
    return _json_values


def _model_json(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    attrs.resolve_types(cls)
    fields = {field.name: _field_value(field.type) for field in attrs.fields(cls)}
    return st.fixed_dictionaries(
        {}, optional={**fields, "added_later": _json_values, "nested": _json_values}
    )


def _outcome(data: Any, cls: type) -> tuple[str, Any]:
    try:
        return "ok", structure_response(data, cls)
    except Exception as exc:  # the plain hooks raise whatever the field's hook raised
        return type(exc).__name__, str(exc)


def _plain_outcome(data: Any, cls: type) -> tuple[str, Any]:
    try:
        return "ok", _PLAIN.structure({} if data is None else data, cls)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def _same(fast: Any, plain: Any) -> None:
    """Equal values of the same types, field by field, nested models and lists included."""
    assert type(fast) is type(plain)
    if attrs.has(type(fast)):
        for field in attrs.fields(type(fast)):
            _same(getattr(fast, field.name), getattr(plain, field.name))
    elif isinstance(fast, list):
        assert len(fast) == len(plain)
        for fast_item, plain_item in zip(fast, plain, strict=True):
            _same(fast_item, plain_item)
    else:
        assert fast == plain
        if isinstance(fast, datetime):
            assert fast.utcoffset() == plain.utcoffset()


@pytest.mark.parametrize("cls", RESPONSE_MODELS, ids=lambda cls: cls.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_precompiled_hooks_give_what_the_plain_cattrs_hooks_give(cls: type, data: st.DataObject) -> None:
    body = data.draw(st.one_of(_model_json(cls), _json_values), label="body")
    fast, plain = _outcome(body, cls), _plain_outcome(body, cls)
    assert fast[0] == plain[0]
    if fast[0] == "ok":
        _same(fast[1], plain[1])
    else:
        assert fast[1] == plain[1]


def test_a_full_page_and_a_detail_structure_as_the_plain_hooks_do() -> None:
    detail = {
        "release_id": RID, "release_state": "DEPLOYED", "cluster_state": "NEW_STATE",
        "ai_ml_ops_platform_endpoint_type": "", "created_dt": "2024-05-17T00:23:17Z",
        "modified_dt": "", "ai_ml_ops_platform_domain_service": {"dns": "x"}, "version": 171,
    }
    page = {"contents": [{**detail, "status": "INSTALLING", "kubeflow_type": "Mini"}] * 3,
            "total_count": "3"}
    for body, cls in ((detail, PlatformDetail), (page, PlatformListPage)):
        _same(structure_response(body, cls), _PLAIN.structure(body, cls))
    parsed = structure_response(detail, PlatformDetail)
    assert parsed.release_state is ReleaseState.DEPLOYED
    assert parsed.cluster_state == "NEW_STATE" and not parsed.cluster_state.is_known
    assert parsed.version == "171" and parsed.modified_dt is None
    assert structure_response(page, PlatformListPage).total_count == 3


def test_a_listing_mixing_every_kind_of_item_structures_as_the_plain_hooks_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Full items take the listing's inline loop; the others fall back to the item's own path.
    partial = {key: value for key, value in SUMMARY.items() if key != "modified_dt"}
    items = [
        SUMMARY, partial, {**SUMMARY, "status": "NEW_STATE", "version": 171},
        {**SUMMARY, "release_id": "bad-time", "created_dt": "2024-13-01T00:00:00Z"},
        MappingProxyType(SUMMARY), {**SUMMARY, "kubeflow_type": 5}, SUMMARY,
    ]
    with caplog.at_level(logging.WARNING, logger="aimlops_async"):
        fast = structure_response({"contents": items, "total_count": 7}, PlatformListPage)
    warnings = [record.getMessage().count("bad-time") for record in caplog.records]
    _same(fast, _PLAIN.structure({"contents": items, "total_count": 7}, PlatformListPage))
    # Skipped: the bad timestamp, and a number for an enum (not a state the enum can hold).
    assert fast.contents is not None and len(fast.contents) == 5
    assert fast.contents[1].modified_dt is None and fast.contents[2].status == "NEW_STATE"
    assert warnings == [1, 0]


def test_a_mapping_that_is_not_a_dict_takes_the_general_path() -> None:
    body = MappingProxyType({"release_id": RID, "release_state": "DEPLOYED"})
    _same(structure_response(body, PlatformDetail), _PLAIN.structure(body, PlatformDetail))
    assert structure_response(None, PlatformDetail) == PlatformDetail()


def test_structured_models_hash_and_print_like_constructed_ones() -> None:
    body = {"release_id": RID, "release_state": "DEPLOYED", "created_dt": "2024-05-17T00:23:17Z"}
    fast = structure_response(body, PlatformDetail)
    built = PlatformDetail(
        release_id=RID, release_state=ReleaseState.DEPLOYED,
        created_dt=datetime(2024, 5, 17, 0, 23, 17, tzinfo=timezone.utc),
    )
    assert fast == built and hash(fast) == hash(built) and repr(fast) == repr(built)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.release_id = "other"  # type: ignore[misc]


def test_structured_models_are_the_model_class_itself_and_stay_frozen() -> None:
    page = structure_response({"contents": [SUMMARY], "total_count": 1}, PlatformListPage)
    assert page.contents is not None
    summary = page.contents[0]
    assert type(summary) is PlatformSummary and type(page) is PlatformListPage
    assert summary == PlatformSummary(
        cluster_id=RID, cluster_name="cluster-test", created_by=RID,
        created_dt=datetime(2024, 5, 17, 0, 23, 17, tzinfo=timezone.utc),
        kubeflow_type=PlatformType.MINI, modified_by=RID,
        modified_dt=datetime(2024, 5, 18, 1, 2, 9, 512000, tzinfo=timezone.utc),
        release_id=RID, release_name="aiml-test-001", status=ReleaseState.INSTALLING, version="v1.7.1",
    )
    assert summary.status == "INSTALLING" and summary.kubeflow_type == "Mini"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        summary.status = ReleaseState.DEPLOYED  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del summary.release_id  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(summary)) == summary
    assert attrs.evolve(summary, release_name="other").release_name == "other"
    assert summary.release_name == "aiml-test-001"


def test_a_left_out_key_gives_none_like_a_null_and_the_rest_as_with_every_key() -> None:
    for left_out in SUMMARY:
        body = {key: value for key, value in SUMMARY.items() if key != left_out}
        fast = structure_response(body, PlatformSummary)
        assert getattr(fast, left_out) is None
        _same(fast, _PLAIN.structure(body, PlatformSummary))
        assert fast == attrs.evolve(structure_response(SUMMARY, PlatformSummary), **{left_out: None})


def test_a_timestamp_seen_before_gives_the_same_value_and_the_memory_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(converter, "PARSED_TIMESTAMPS_LIMIT", 8)
    texts = [f"2024-05-17T00:{minute:02d}:17.5Z" for minute in range(20)]
    for _ in range(2):
        for text in texts:
            parsed = structure_response({"created_dt": text}, Image).created_dt
            assert parsed == parse_datetime(text) and parsed.utcoffset() == timedelta(0)
            assert len(converter._PARSED_TIMESTAMPS) <= 8
    # An offset other than UTC survives being remembered.
    for _ in range(2):
        parsed = structure_response({"created_dt": "2024-05-17T09:23:17+09:00"}, Image).created_dt
        assert parsed == datetime(2024, 5, 17, 0, 23, 17, tzinfo=timezone.utc)
        assert parsed.utcoffset() == timedelta(hours=9)


def test_a_bad_timestamp_is_refused_every_time_it_comes() -> None:
    for _ in range(3):
        with pytest.raises(ValueError):
            structure_response({"created_dt": "2024-13-01T00:00:00Z"}, PlatformSummary)
    assert "2024-13-01T00:00:00Z" not in converter._PARSED_TIMESTAMPS


def _release_id_must_not_be_blocked(_: Any, __: Any, value: str | None) -> None:
    if value == "blocked":
        raise ValueError("blocked release id")


@attrs.frozen(kw_only=True)
class _Validated:
    release_id: str | None = attrs.field(default=None, validator=_release_id_must_not_be_blocked)


@attrs.frozen(kw_only=True)
class _PostInit:
    release_id: str | None = None
    seen: list[str] | None = None

    def __attrs_post_init__(self) -> None:
        _POST_INIT_CALLS.append(self.release_id or "")


_POST_INIT_CALLS: list[str] = []


@attrs.frozen(kw_only=True, cache_hash=True)
class _CachedHash:
    release_id: str | None = None


def test_models_whose_init_does_more_than_store_fields_still_go_through_init() -> None:
    converter = _response_converter()
    with pytest.raises(ValueError, match="blocked release id"):
        converter.structure({"release_id": "blocked"}, _Validated)
    assert converter.structure({"release_id": "fine"}, _Validated).release_id == "fine"
    converter.structure({"release_id": "r1"}, _PostInit)
    assert _POST_INIT_CALLS == ["r1"]
    cached = converter.structure({"release_id": "r2"}, _CachedHash)
    assert hash(cached) == hash(_CachedHash(release_id="r2"))


# ---------------------------------------------------------------------- the in-flight limit


async def test_slots_serve_waiters_in_order_and_survive_cancellation() -> None:
    slots = Slots(2)
    order: list[int] = []
    release = asyncio.Event()

    async def user(number: int) -> None:
        if not slots.take_nowait():
            await slots.take()
        try:
            order.append(number)
            await release.wait()
        finally:
            slots.give_back()

    tasks = [asyncio.create_task(user(number)) for number in range(6)]
    await asyncio.sleep(0)
    assert order == [0, 1] and slots.free == 0
    tasks[3].cancel()  # cancelled while waiting: it never runs and holds nothing
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == [0, 1, 2, 4, 5]
    assert tasks[3].cancelled()
    assert slots.free == 2


async def test_a_waiter_cancelled_after_being_handed_a_slot_passes_it_on() -> None:
    slots = Slots(1)
    assert slots.take_nowait()
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    slots.give_back()  # handed to `first`, which has not run yet...
    first.cancel()  # ...and is cancelled before it does
    await asyncio.sleep(0)
    await asyncio.wait_for(second, 1.0)  # the slot went on to `second`
    assert first.cancelled()
    slots.give_back()
    assert slots.free == 1


async def test_max_concurrency_bounds_requests_in_flight_and_frees_every_slot() -> None:
    detail = Reply(200, {"release_id": RID}, stall=0.05)
    async with serving(detail, max_concurrency=3) as (server, client):
        results = await asyncio.gather(*(client.platforms.get(RID) for _ in range(12)))
        assert [r.release_id for r in results] == [RID] * 12
        assert server.max_in_flight == 3
        # Cancel calls still queued for a slot and calls in flight: no slot is lost.
        calls = [asyncio.create_task(client.platforms.get(RID)) for _ in range(9)]
        await asyncio.sleep(0.02)
        for call in calls[::2]:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        assert client._session._slots.free == 3
        server.default = Reply(200, {"release_id": RID})
        assert len(await asyncio.gather(*(client.platforms.get(RID) for _ in range(6)))) == 6
