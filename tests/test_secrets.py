"""Secrets: with every logger at DEBUG, nothing captured holds the secret key, a signature or a password.

A workload of every kind of call runs through a recording proxy (it keeps each ``Scp-Signature``
seen on the wire, and can answer 503 itself to force retries) in front of the emulator. Then
everything a user could see is gathered: log records (formatted, with tracebacks), reprs and
strs of the client, credentials, requests, answers, results, events and exceptions (with their
args, attributes, notes, causes and formatted tracebacks), and stdout/stderr.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from aimlops_async import (
    AimlopsClient,
    AimlopsError,
    AuthenticationError,
    Credentials,
    NotFoundError,
    ProvisionEvent,
    ServerError,
    ValidationError,
)
from aimlops_async.converter import structure_request
from aimlops_async.emulator import Emulator
from aimlops_async.models import CreatePlatformRequest

PASSWORD = "Initial-Pa55word-7f3a"
OTHER_PASSWORD = "Second-Pa55word-91c2"
SHORT_PASSWORD = "Sh0rt!"
WRONG_SECRET = "wrong-secret-key-5d1e0b"
CLIENT = {
    "timeout": 5.0, "max_retries": 3, "retry_base_delay": 0.01, "retry_max_delay": 0.02,
    "poll_delay": 0.02, "poll_max_delay": 0.05, "poll_timeout": 10.0,
}
LOGGERS = ("", "aimlops_async", "aimlops_async.bulk", "aimlops_async.emulator", "aiohttp",
           "aiohttp.client", "aiohttp.server", "aiohttp.access", "aiohttp.web", "asyncio", "backoff")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class WireTap:
    """A transparent proxy: forwards each request untouched (Host included) and keeps its signature."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.signatures: set[str] = set()
        self.fail_next = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        signature = request.headers.get("Scp-Signature")
        if signature:
            self.signatures.add(signature)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response(
                {"code": "SERVICE_UNAVAILABLE", "message": "try again"}, status=503
            )
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        async with self._session.request(
            request.method, URL(self.upstream + request.raw_path, encoded=True),
            headers=headers, data=body or None, skip_auto_headers=("Content-Type",),
        ) as answer:
            payload = await answer.read()
            kept = {
                k: v for k, v in answer.headers.items()
                if k.lower() in ("content-type", "date", "retry-after", "x-request-id")
            }
            return web.Response(status=answer.status, body=payload, headers=kept)

    async def __aenter__(self) -> WireTap:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()


@pytest.fixture
async def wired() -> AsyncIterator[tuple[Emulator, WireTap]]:
    async with Emulator(
        creating_seconds=0, installing_seconds=0, updating_seconds=0, deleting_seconds=0,
        fail_pattern="doomed",
    ) as emu, WireTap(emu.url) as tap:
        yield emu, tap


def _exception_texts(error: BaseException) -> list[str]:
    """Everything an exception shows: str, repr, args, public attributes, notes, the traceback."""
    texts = [str(error), repr(error), *map(repr, error.args)]
    texts += [repr(value) for name, value in vars(error).items() if not name.startswith("__")]
    texts += list(getattr(error, "__notes__", ()))
    texts.append("".join(traceback.format_exception(error)))
    for linked in (error.__cause__, error.__context__):
        if linked is not None and linked is not error:
            texts += _exception_texts(linked)
    return texts


async def test_nothing_captured_holds_a_secret(
    wired: tuple[Emulator, WireTap],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu, tap = wired
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    credentials = emu.credentials
    seen: list[Any] = [credentials]
    errors: list[BaseException] = []
    events: list[ProvisionEvent] = []

    def create_body(name: str, password: str = PASSWORD) -> dict[str, Any]:
        body = emu.sample_create_request(name)
        body["ai_ml_ops_platform_create_request"]["initial_user_password"] = password
        return body

    async with AimlopsClient(tap.url, credentials, **CLIENT) as client:
        seen.append(client)
        model = structure_request(create_body("modelled"), CreatePlatformRequest)
        seen += [model, model.ai_ml_ops_platform_create_request]

        created = await client.platforms.create(model)
        release_id = str(created.resource_id)
        seen.append(created)
        seen.append(await client.platforms.get(release_id))
        seen.append(await client.platforms.list().to_list())
        seen.append(
            await client.platforms.update(release_id, {"ai_ml_ops_platform_endpoint_type": "Public"})
        )
        seen.append(await client.platforms.wait_until_deployed(release_id, timeout=5.0))

        # A retried call that succeeds, and one that runs out of retries.
        tap.fail_next = 2
        seen.append(await client.platforms.check_duplication("modelled"))
        assert client.stats.retries >= 2
        tap.fail_next = 10
        with pytest.raises(ServerError) as exhausted:
            await client.platforms.get(release_id)
        errors.append(exhausted.value)
        tap.fail_next = 0

        with pytest.raises(NotFoundError) as missing:
            await client.platforms.get("no-such-release")
        errors.append(missing.value)

        # Refused before sending: a short password, and a password under a misspelt key.
        with pytest.raises(ValidationError) as short:
            await client.platforms.create(create_body("short", SHORT_PASSWORD))
        errors.append(short.value)
        misspelt = create_body("misspelt")
        misspelt["ai_ml_ops_platform_create_request"]["initial_user_pasword"] = OTHER_PASSWORD
        with pytest.raises(ValidationError) as typo:
            await client.platforms.create(misspelt)
        errors.append(typo.value)
        assert "initial_user_pasword" in str(typo.value)

        # A create the service refuses (400, duplicate name) after its body was sent.
        with pytest.raises(AimlopsError) as refused:
            await client.platforms.create(create_body("modelled", OTHER_PASSWORD))
        errors.append(refused.value)

        results = await client.platforms.provision_many(
            [
                create_body("bulk-ok"),
                create_body("bulk-doomed", OTHER_PASSWORD),
                {**create_body("bulk-bad", SHORT_PASSWORD)},
                create_body("bulk-ok"),
            ],
            on_event=events.append,
        )
        seen += [results, events]
        assert [result.ok for result in results] == [True, False, False, False]
        errors += [result.error for result in results if result.error is not None]

        await client.platforms.delete(release_id)
        await client.platforms.wait_until_deleted(release_id, timeout=5.0)

    wrong = Credentials(credentials.access_key, WRONG_SECRET, credentials.account_id)
    async with AimlopsClient(tap.url, wrong, **CLIENT) as stranger:
        seen += [wrong, stranger]
        with pytest.raises(AuthenticationError) as denied:
            await stranger.platforms.list().to_list()
        errors.append(denied.value)

    assert tap.signatures, "the proxy saw no signature"
    secrets = {
        "the secret key": credentials.secret_key,
        "a wrong secret key": WRONG_SECRET,
        "a password": PASSWORD,
        "another password": OTHER_PASSWORD,
        "a refused password": SHORT_PASSWORD,
    }
    secrets.update({f"signature {value}": value for value in tap.signatures})

    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    captured = [formatter.format(record) for record in caplog.records]
    captured += [repr(record.args) for record in caplog.records]
    captured += [repr(item) for item in seen] + [str(item) for item in seen]
    for error in errors:
        captured += _exception_texts(error)
    for event in events:
        if event.error is not None:
            captured += _exception_texts(event.error)
    out, err = capsys.readouterr()
    captured += [out, err]

    assert any("retrying" in line for line in captured), "the retries were not logged"
    assert len(caplog.records) > 10
    haystack = "\n".join(captured)
    leaked = [label for label, secret in secrets.items() if secret in haystack]
    assert leaked == []


def test_credentials_never_show_the_secret() -> None:
    credentials = Credentials("ak-visible", "sk-hidden-0192", "project-1")
    for text in (repr(credentials), str(credentials), f"{credentials}", f"{credentials!r}"):
        assert "sk-hidden-0192" not in text
        assert "ak-visible" in text


def test_a_request_model_never_shows_the_password() -> None:
    body = {
        "ai_ml_ops_platform_create_request": {
            "release_name": "r", "ai_ml_ops_platform_type": "Enterprise", "image_id": "i",
            "initial_user_email": "a@b.co", "initial_user_password": PASSWORD, "cluster_id": "c",
        }
    }
    model = structure_request(body, CreatePlatformRequest)
    for text in (repr(model), str(model), repr(model.ai_ml_ops_platform_create_request)):
        assert PASSWORD not in text
