"""The fault suite: hundreds of platforms provisioned and waited for under every injected fault.

Run it alone with ``pytest -m faults``. Each test provisions a fleet against an emulator that
injects one kind of fault (or all of them) and checks what a caller relies on: one result per
request, every platform the emulator holds reported, no release name created twice, only
documented exceptions with a message, and no 5xx from the emulator but the injected ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from aimlops_async import (
    AimlopsClient,
    AimlopsError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ProvisionResult,
    RateLimitError,
    ServerError,
    TerminalStateError,
    ValidationError,
    WaiterError,
    WaiterTimeoutError,
)
from aimlops_async.emulator import Emulator, EmulatorStats, Faults

pytestmark = pytest.mark.faults

FLEET = 200
PHASES = {"creating_seconds": 0.1, "installing_seconds": 0.1, "updating_seconds": 0.1}
CLIENT_TIMEOUT = 1.0
CLIENT = {
    "timeout": CLIENT_TIMEOUT,
    "max_retries": 6,
    "retry_base_delay": 0.01,
    "retry_max_delay": 0.1,
    "poll_delay": 0.05,
    "poll_max_delay": 0.2,
    "poll_timeout": 20.0,
    "max_concurrency": 64,
}
# CONTRACT section 5: every error a caller may see.
DOCUMENTED = (
    ValidationError, APIStatusError, BadRequestError, AuthenticationError, PermissionDeniedError,
    NotFoundError, ConflictError, RateLimitError, ServerError, APIConnectionError, APITimeoutError,
    WaiterError, TerminalStateError, WaiterTimeoutError,
)

FAULTS = {
    "latency": Faults(seed=1, latency=0.01, latency_tail=0.04),
    "server_errors": Faults(seed=2, error_rate=0.2),
    # The emulator sends Retry-After in whole seconds (rounded up), so each 429 costs a second.
    "rate_limit": Faults(seed=3, rate_limit_rate=0.03, retry_after=0.1),
    "drops": Faults(seed=4, drop_rate=0.1),
    "ambiguous_creates": Faults(seed=5, ambiguous_create_rate=0.3),
    "stalls": Faults(seed=6, stall_rate=0.03, stall_seconds=CLIENT_TIMEOUT + 0.5),
    "malformed": Faults(seed=7, malformed_rate=0.15),
}
ALL_AT_ONCE = Faults(
    seed=8, latency=0.005, latency_tail=0.02, error_rate=0.05, rate_limit_rate=0.01,
    retry_after=0.1, drop_rate=0.05, ambiguous_create_rate=0.05, stall_rate=0.01,
    stall_seconds=CLIENT_TIMEOUT + 0.5, malformed_rate=0.05,
)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def emulator_errors() -> Iterator[_Errors]:
    """ERROR records of the emulator: its catch-all turns an emulator crash into a 400."""
    handler = _Errors()
    target = logging.getLogger("aimlops_async.emulator")
    target.addHandler(handler)
    try:
        yield handler
    finally:
        target.removeHandler(handler)


@attrs.frozen
class Run:
    names: list[str]
    results: list[ProvisionResult]
    live: list[dict[str, Any]]
    stats: EmulatorStats
    client_retries: int


def _requests(emu: Emulator, names: list[str]) -> list[dict[str, Any]]:
    return [emu.sample_create_request(name) for name in names]


async def _provision(emu: Emulator, prefix: str, count: int = FLEET) -> Run:
    names = [f"{prefix}-{index:04d}" for index in range(count)]
    async with AimlopsClient(emu.url, emu.credentials, **CLIENT) as client:
        results = await client.platforms.provision_many(
            _requests(emu, names), concurrency=32, timeout=20.0
        )
        retries = client.stats.retries
    return Run(names, results, emu.platforms(), emu.stats, retries)


def _check_errors_are_documented(results: list[ProvisionResult]) -> None:
    for result in results:
        error = result.error
        if error is None:
            continue
        assert isinstance(error, AimlopsError), repr(error)
        assert isinstance(error, DOCUMENTED), f"undocumented {type(error).__name__}: {error}"
        assert str(error).strip(), f"{type(error).__name__} without a message"


def _check_run(run: Run, *, failed: frozenset[str] = frozenset()) -> None:
    # One result per request, in input order.
    assert [result.release_name for result in run.results] == run.names
    _check_errors_are_documented(run.results)
    for result in run.results:
        if result.release_name in failed:
            assert isinstance(result.error, TerminalStateError), result
            assert result.state == "FAILED"
            continue
        assert result.ok, f"{result.release_name}: {type(result.error).__name__}: {result.error}"
        assert result.state == "DEPLOYED"
        assert result.detail is not None and result.detail.release_state == "DEPLOYED"
        assert result.detail.release_id == result.release_id

    # Every platform the emulator holds was reported, under its own name.
    reported = {result.release_id: result.release_name for result in run.results}
    held = {platform["release_id"]: platform["release_name"] for platform in run.live}
    assert held == reported

    # No release name was created twice.
    assert set(run.stats.creates) == set(run.names)
    assert max(run.stats.creates.values()) == 1

    # The emulator answered no 5xx but the injected ones (500/503; 502 from a "proxy").
    statuses = run.stats.statuses
    injected = run.stats.faults
    assert statuses[500] + statuses[503] <= injected["error"]
    assert statuses[502] <= injected["malformed"]
    assert not {status for status in statuses if status >= 500} - {500, 502, 503}


@pytest.mark.parametrize("kind", sorted(FAULTS))
async def test_a_fleet_survives(kind: str, emulator_errors: _Errors) -> None:
    faults = FAULTS[kind]
    async with Emulator(faults=faults, seed=11, **PHASES) as emu:
        run = await _provision(emu, kind.replace("_", "-"))
    _check_run(run)
    # The fault was really injected, and was really survived.
    assert sum(run.stats.faults.values()) > 0 or kind == "latency"
    assert not emulator_errors.records, [record.getMessage() for record in emulator_errors.records]


async def test_a_fleet_survives_every_fault_at_once_and_a_rerun_creates_nothing(
    emulator_errors: _Errors,
) -> None:
    doomed = r"^all-00[0-4]7$"
    async with Emulator(faults=ALL_AT_ONCE, seed=12, fail_pattern=doomed, **PHASES) as emu:
        first = await _provision(emu, "all")
        failed = frozenset(name for name in first.names if name.endswith("7") and name < "all-0050")
        _check_run(first, failed=failed)
        assert len(set(first.stats.faults)) >= 6, first.stats.faults

        again = await _provision(emu, "all")
        assert [result.release_id for result in again.results] == [
            result.release_id for result in first.results
        ]
        assert not any(result.created for result in again.results)
        _check_run(again, failed=failed)
    assert not emulator_errors.records, [record.getMessage() for record in emulator_errors.records]


async def _single_calls(emu: Emulator, client: AimlopsClient, faults: Faults, rounds: int) -> None:
    """get, list and check-duplication, ``rounds`` times over, under ``faults``; all must succeed."""
    created = []
    for index in range(5):
        answer = await client.platforms.create(emu.sample_create_request(f"single-{index}"))
        assert answer.resource_id is not None
        created.append(answer.resource_id)
    emu.faults = faults
    for _ in range(rounds):
        for release_id in created:
            detail = await client.platforms.get(release_id)
            assert detail.release_id == release_id
        listed = await client.platforms.list(size=2).to_list()
        assert sorted(str(item.release_id) for item in listed) == sorted(created)
        assert await client.platforms.check_duplication("single-0") is True
    assert sum(emu.stats.faults.values()) > 0
    assert client.stats.retries >= 1


async def test_single_calls_succeed_through_transient_faults() -> None:
    faults = Faults(
        seed=17, drop_rate=0.1, malformed_rate=0.15, stall_rate=0.02,
        stall_seconds=CLIENT_TIMEOUT + 0.5,
    )
    async with Emulator(seed=18, **PHASES) as emu, AimlopsClient(
        emu.url, emu.credentials, **{**CLIENT, "max_retries": 10}
    ) as client:
        await _single_calls(emu, client, faults, rounds=10)
        assert emu.stats.faults["drop"] and emu.stats.faults["malformed"]
        assert emu.stats.faults["stall"]


async def test_single_calls_under_every_fault_fail_only_with_documented_errors() -> None:
    """Few retries and many faults: calls may fail, but only with a documented, readable error."""
    async with Emulator(seed=15, **PHASES) as emu, AimlopsClient(
        emu.url, emu.credentials, **{**CLIENT, "max_retries": 1}
    ) as client:
        release_id = (await client.platforms.create(emu.sample_create_request("one"))).resource_id
        assert release_id is not None
        emu.faults = Faults(
            seed=16, error_rate=0.15, drop_rate=0.1, malformed_rate=0.15, stall_rate=0.02,
            stall_seconds=CLIENT_TIMEOUT + 0.5, rate_limit_rate=0.0,
        )
        errors: list[AimlopsError] = []
        successes = 0
        for _ in range(30):
            try:
                await client.platforms.get(release_id)
                await client.platforms.list().to_list()
            except AimlopsError as exc:
                errors.append(exc)
            else:
                successes += 1
        assert successes > 0
        for error in errors:
            assert isinstance(error, DOCUMENTED), f"undocumented {type(error).__name__}: {error}"
            assert str(error).strip()
            assert getattr(error, "method", None) == "GET"
