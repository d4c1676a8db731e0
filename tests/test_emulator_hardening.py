"""The emulator against hostile input: text it could not send back, pathological fields, and
requests its HTTP parser refuses (oversized headers, huge URLs, malformed request lines).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from test_emulator import Api, make_emulator

from aimlops_async.emulator import Emulator
from aimlops_async.emulator.validation import EMAIL_MAX, ApiError, validate_create

pytestmark = pytest.mark.faults


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with make_emulator(seed=11) as emulator:
        yield emulator


@pytest.fixture
async def api(emu: Emulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, emu)


def _error_text(reply: Any) -> str:
    assert isinstance(reply.body, dict), reply.text
    return json.dumps(reply.body)


# ---------------------------------------------------------------- text the emulator could not send back

LONE_SURROGATES = ["\ud800", "a\udfffb", "\udc00" * 3]


@pytest.mark.parametrize("text", LONE_SURROGATES, ids=range(len(LONE_SURROGATES)))
@pytest.mark.parametrize("where", ["value", "tag value", "tag key"])
async def test_a_lone_surrogate_is_refused_at_the_door_and_nothing_is_stored(
    api: Api, emu: Emulator, text: str, where: str
) -> None:
    body = emu.sample_create_request("surrogate-test")
    platform = body["ai_ml_ops_platform_create_request"]
    if where == "value":
        platform["storage_class_name"] = text
    elif where == "tag value":
        platform["tags"] = [{"key": "owner", "value": text}]
    else:
        platform["tags"] = [{text: "x"}]
    reply = await api.create(body)
    assert reply.status == 400, reply.text
    assert "surrogate" in _error_text(reply)
    listing = await api.listing()
    assert listing.status == 200, listing.text
    assert listing.body["contents"] == []
    # Nothing was half-stored: the name is still free.
    assert (await api.create(emu.sample_create_request("surrogate-test"))).status == 201


# ---------------------------------------------------------------- pathological fields, in linear time

LONG = 100_000


@pytest.mark.parametrize(
    "email",
    ["a@" + "." * LONG + "@", "a@" + "a." * (LONG // 2) + "@", "a" * LONG + "@"],
    ids=range(3),
)
async def test_a_long_crafted_email_is_refused_by_its_length_first(
    api: Api, emu: Emulator, email: str
) -> None:
    body = emu.sample_create_request("crafted-email")
    body["ai_ml_ops_platform_create_request"]["initial_user_email"] = email
    with pytest.raises(ApiError) as caught:
        validate_create(body)
    assert f"at most {EMAIL_MAX}" in str(caught.value)
    reply = await api.create(body)
    assert reply.status == 400
    assert "initial_user_email" in _error_text(reply)


@pytest.mark.parametrize("email", ["a@b.c", "first.last@sub.example.com", "x@" + "d" * 240 + ".com"])
async def test_ordinary_emails_are_accepted(api: Api, emu: Emulator, email: str) -> None:
    body = emu.sample_create_request("ordinary-email")
    body["ai_ml_ops_platform_create_request"]["initial_user_email"] = email
    assert (await api.create(body)).status == 201


@pytest.mark.parametrize("email", ["a@b", "a@.b", "a@b.", "a b@c.d", "a@b@c.d", "@b.c"])
async def test_malformed_emails_are_refused(api: Api, emu: Emulator, email: str) -> None:
    body = emu.sample_create_request("bad-email")
    body["ai_ml_ops_platform_create_request"]["initial_user_email"] = email
    reply = await api.create(body)
    assert reply.status == 400
    assert "initial_user_email" in _error_text(reply)
