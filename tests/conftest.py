"""Shared fixtures: an in-process emulator on a loopback port and a client pointed at it.

Phase durations and poll delays are tiny so that whole create -> DEPLOYED flows take well under
a second; nothing here replaces aiohttp or the session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aimlops_async import AimlopsClient
from aimlops_async.emulator import Emulator

FAST_PHASES = {
    "creating_seconds": 0.15,
    "installing_seconds": 0.15,
    "updating_seconds": 0.15,
    "deleting_seconds": 0.15,
}

FAST_CLIENT = {
    "poll_delay": 0.02,
    "poll_max_delay": 0.1,
    "poll_timeout": 15.0,
    "retry_base_delay": 0.01,
    "retry_max_delay": 0.05,
    "timeout": 5.0,
}


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A fresh emulator with quick state transitions and no faults."""
    async with Emulator(**FAST_PHASES) as emu:
        yield emu


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[AimlopsClient]:
    """A client of the emulator's default project, with fast polls and retries."""
    async with AimlopsClient(emulator.url, emulator.credentials, **FAST_CLIENT) as aimlops:
        yield aimlops
