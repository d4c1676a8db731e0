"""Tests that the hot-path shortcuts (datetimes, response structuring, first attempt) change no behaviour."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from aimlops_async.converter import parse_datetime


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
