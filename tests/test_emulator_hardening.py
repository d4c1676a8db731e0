"""The emulator against hostile input: text it could not send back, pathological fields, and
requests its HTTP parser refuses (oversized headers, huge URLs, malformed request lines).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from test_emulator import BASE, Api, make_emulator

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


# ---------------------------------------------------------------- requests the HTTP parser refuses

UNPARSABLE = {
    "60 KB URL": b"GET /" + b"a" * 60_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "oversized header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    "many headers": b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
    "malformed request line": b"NOT A REQUEST LINE\r\n\r\n",
    "unknown version": b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    "bad method": b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "TLS on a plain port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
    "bad header line": b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "bad content length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
}


async def _raw_exchange(emu: Emulator, request: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = emu.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)  # the server closes after it
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("request_bytes", UNPARSABLE.values(), ids=UNPARSABLE.keys())
async def test_what_the_parser_refuses_gets_a_json_error_and_one_log_line(
    emu: Emulator, request_bytes: bytes, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    with caplog.at_level(logging.DEBUG):
        status, headers, body = await _raw_exchange(emu, request_bytes)
    assert 400 <= status < 500
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)
    assert isinstance(error, dict) and error
    assert "Traceback" not in body.decode("utf-8", "replace")
    ours = [r for r in caplog.records if r.name == "aimlops_async.emulator"]
    assert len(ours) == 1, [r.getMessage() for r in caplog.records]
    assert ours[0].exc_info is None and len(ours[0].getMessage()) < 400
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    assert "Traceback" not in capfd.readouterr().err


async def test_the_emulator_still_serves_after_refusing_garbage(api: Api, emu: Emulator) -> None:
    for request_bytes in UNPARSABLE.values():
        await _raw_exchange(emu, request_bytes)
    reply = await api.listing()
    assert reply.status == 200 and reply.body["contents"] == []
    assert (await api.call("GET", f"{BASE}/images")).status == 200
