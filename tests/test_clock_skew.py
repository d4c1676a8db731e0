"""Clock skew: a client whose clock is minutes off gets a 401, corrects itself from Date, warns once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aimlops_async import AimlopsClient, AuthenticationError, Credentials
from aimlops_async.emulator import Emulator

PHASES = {"creating_seconds": 0.0, "installing_seconds": 0.0}
CLIENT = {"timeout": 5.0, "retry_base_delay": 0.01, "retry_max_delay": 0.05}


def _skew_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record for record in caplog.records
        if record.name == "aimlops_async" and record.levelno == logging.WARNING
        and "clock" in record.getMessage()
    ]


@pytest.mark.parametrize("refusal", [401, 404], ids=["401", "gateway-404-page"])
@pytest.mark.parametrize("skew", [600.0, -600.0])
async def test_skewed_clock_is_corrected_once_then_calls_just_work(
    skew: float, refusal: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aimlops_async")
    gateway = refusal == 404
    async with Emulator(clock_skew=skew, gateway_auth_failures=gateway, **PHASES) as emu, (
        AimlopsClient(emu.url, emu.credentials, **CLIENT)
    ) as client:
        assert await client.platforms.list().to_list() == []
        assert emu.stats.statuses[refusal] == 1
        assert emu.stats.statuses[200] == 1
        # The offset comes from a Date header with one-second resolution.
        assert abs(client._session.clock_offset_ms - skew * 1000) < 5_000
        warnings = _skew_warnings(caplog)
        assert len(warnings) == 1
        assert ("behind" if skew > 0 else "ahead") in warnings[0].getMessage()

        created = await client.platforms.create(emu.sample_create_request("skewed"))
        assert created.resource_id
        detail = await client.platforms.get(created.resource_id)
        assert detail.release_name == "skewed"
        assert await client.platforms.check_duplication("skewed") is True

        assert emu.stats.statuses[refusal] == 1
        assert len(_skew_warnings(caplog)) == 1


async def test_a_refused_create_is_sent_again_once_and_creates_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aimlops_async")
    async with Emulator(clock_skew=-900, **PHASES) as emu, AimlopsClient(
        emu.url, emu.credentials, **CLIENT
    ) as client:
        created = await client.platforms.create(emu.sample_create_request("first-call"))
        assert created.resource_id
        assert emu.stats.statuses[401] == 1
        assert emu.stats.creates == {"first-call": 1}
        assert len(_skew_warnings(caplog)) == 1


async def test_concurrent_first_calls_all_recover_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aimlops_async")
    async with Emulator(clock_skew=600, **PHASES) as emu, AimlopsClient(
        emu.url, emu.credentials, **CLIENT
    ) as client:
        results = await asyncio.gather(
            *(client.platforms.check_duplication(f"name-{i}") for i in range(20)),
            return_exceptions=True,
        )
        assert results == [False] * 20
        refused = emu.stats.statuses[401]
        assert 1 <= refused <= 20
        assert len(_skew_warnings(caplog)) == 1

        await asyncio.gather(*(client.platforms.check_duplication("again") for _ in range(20)))
        assert emu.stats.statuses[401] == refused


async def test_skew_inside_the_window_needs_no_correction(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aimlops_async")
    async with Emulator(clock_skew=120, **PHASES) as emu, AimlopsClient(
        emu.url, emu.credentials, **CLIENT
    ) as client:
        for _ in range(3):
            await client.platforms.list().to_list()
        assert emu.stats.statuses[401] == 0
        assert client._session.clock_offset_ms == 0
        assert _skew_warnings(caplog) == []


async def test_a_wrong_secret_is_not_mistaken_for_skew(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aimlops_async")
    async with Emulator(**PHASES) as emu:
        good = emu.credentials
        bad = Credentials(good.access_key, "not-the-secret", good.account_id)
        async with AimlopsClient(emu.url, bad, **CLIENT) as client:
            with pytest.raises(AuthenticationError) as caught:
                await client.platforms.list().to_list()
        assert caught.value.status == 401
        assert emu.stats.statuses[401] == 1
        assert client.stats.attempts == 1
        assert _skew_warnings(caplog) == []


async def test_skew_plus_a_wrong_secret_is_retried_only_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aimlops_async")
    async with Emulator(clock_skew=600, **PHASES) as emu:
        good = emu.credentials
        bad = Credentials(good.access_key, "not-the-secret", good.account_id)
        async with AimlopsClient(emu.url, bad, **CLIENT) as client:
            with pytest.raises(AuthenticationError):
                await client.platforms.get("some-release")
        # The emulator checks the signature before the timestamp: both answers are 401.
        assert emu.stats.statuses[401] == 2
        assert client.stats.attempts == 2
        assert len(_skew_warnings(caplog)) == 1
