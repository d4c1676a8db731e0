"""``to_json`` / ``from_json``: the one JSON rendering of models, shared by the CLI and FastAPI."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from aimlops_async import (
    CreatePlatformRequest,
    PlatformDetail,
    PlatformListPage,
    PlatformSummary,
    ReleaseState,
    UpdatePlatformRequest,
    ValidationError,
    from_json,
    release_name_problem,
    to_json,
)
from aimlops_async.cli.common import json_ready
from aimlops_async.emulator import Emulator

KST = timezone(timedelta(hours=9))
DETAIL = PlatformDetail(
    release_id="r1", release_name="team-a", release_state=ReleaseState("SOMETHING_NEW"),
    created_dt=datetime(2024, 5, 17, 9, 23, 17, 250000, tzinfo=KST),
)


def test_to_json_is_the_api_shape_without_none() -> None:
    data = to_json(DETAIL)
    assert data == {
        "release_id": "r1", "release_name": "team-a", "release_state": "SOMETHING_NEW",
        "created_dt": "2024-05-17T00:23:17.250Z",
    }
    assert json.loads(json.dumps(data)) == data


def test_keep_none_writes_every_field_at_every_level() -> None:
    page = PlatformListPage(contents=[PlatformSummary(release_id="a"), PlatformSummary(release_id="b")],
                            total_count=2)
    data = to_json(page, keep_none=True)
    assert set(data) == {"contents", "total_count"}
    first = data["contents"][0]
    assert first["release_id"] == "a" and first["status"] is None and first["created_dt"] is None
    assert set(first) == set(to_json(PlatformSummary(), keep_none=True))
    assert to_json(DETAIL, keep_none=True)["created_dt"] == "2024-05-17T00:23:17.250Z"
    assert to_json(page) == {"contents": [{"release_id": "a"}, {"release_id": "b"}], "total_count": 2}


def test_containers_and_plain_values() -> None:
    assert to_json({"detail": DETAIL, "states": [ReleaseState.DEPLOYED], 3: None}) == {
        "detail": to_json(DETAIL), "states": ["DEPLOYED"], "3": None,
    }
    assert to_json((1, "x")) == [1, "x"]
    assert to_json(datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "2024-01-02T03:04:05Z"


def test_from_json_reads_answers_tolerantly_and_round_trips() -> None:
    assert from_json(to_json(DETAIL), PlatformDetail) == DETAIL
    detail = from_json({"release_id": "r", "a_field_added_later": 1, "release_state": "REPAIRING"},
                       PlatformDetail)
    assert detail.release_state == "REPAIRING" and not detail.release_state.is_known
    with pytest.raises(ValidationError) as caught:
        from_json(["not", "an", "object"], PlatformDetail)
    assert caught.value.errors[0][0] == "data"
    with pytest.raises(ValidationError, match="release_id"):
        from_json({"release_name": "x"}, PlatformDetail)  # a detail without its identity


def test_from_json_checks_requests_as_the_client_does() -> None:
    emulator = Emulator()
    body = emulator.sample_create_request("team-a")
    request = from_json(body, CreatePlatformRequest)
    assert isinstance(request, CreatePlatformRequest) and request.release_name == "team-a"
    assert to_json(request) == body

    broken: dict[str, Any] = json.loads(json.dumps(body))
    broken["ai_ml_ops_platform_create_request"]["release_name"] = "Team_A"
    broken["ai_ml_ops_platform_create_request"]["initial_user_password"] = "short"
    with pytest.raises(ValidationError) as caught:
        from_json(broken, CreatePlatformRequest)
    fields = {field for field, _message in caught.value.errors}
    assert fields == {
        "ai_ml_ops_platform_create_request.release_name",
        "ai_ml_ops_platform_create_request.initial_user_password",
    }
    assert "short" not in str(caught.value)  # a password is never echoed

    with pytest.raises(ValidationError) as unknown:
        from_json({"nonsense": 1}, UpdatePlatformRequest)
    assert unknown.value.errors == [("nonsense", "is not a field of this request")]
    with pytest.raises(ValidationError) as not_a_model:
        from_json({}, dict)
    assert not_a_model.value.errors[0][0] == "cls"


def test_release_name_problem() -> None:
    assert release_name_problem("team-a") is None
    assert "DNS-1123" in (release_name_problem("Team_A") or "")
    assert "53" in (release_name_problem("a" * 54) or "")


def test_the_cli_and_fastapi_render_models_alike() -> None:
    pytest.importorskip("fastapi")
    from aimlops_async.contrib.fastapi import to_jsonable

    value = {"detail": DETAIL, "when": DETAIL.created_dt, "state": ReleaseState.DEPLOYED}
    assert json_ready(value) == to_json(value)
    assert to_jsonable(value) == to_json(value, keep_none=True)
    cli_detail, web_detail = json_ready(DETAIL), to_jsonable(DETAIL)
    assert {key: item for key, item in web_detail.items() if item is not None} == cli_detail
