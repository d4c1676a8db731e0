"""Polling a release until a target or terminal state: PlatformWatch, behind the waiters.

One wait is one object (``PlatformWatch``) driven by the caller's own task: no background task,
no thread, nothing left behind when the caller is cancelled. Each poll is one
``GET /v1/aimlops-platform/{release_id}`` through the client's normal request path (so the session
retries transient failures first, within the client's concurrency and rate limits).

- Schedule: the first poll is immediate (after create, update or delete it comes after a jittered
  first ``delay``); later polls back off exponentially (``backoff.expo``) from ``delay`` up to
  ``max_delay``, each delay "equal-jittered" (between half and all of it) so that thousands of
  waits started together drift apart instead of polling in lock-step. The whole wait, sleeps and
  requests in flight included, is bounded by ``timeout``.
- Transient failures the session gave up on (429, 5xx, connection errors, timeouts, malformed
  answers) never end a wait: the next poll comes on schedule (after ``Retry-After`` at least).
  400/401/403 and other client errors end it with that error.
- A 404 within ``not_found_grace`` seconds of the wait's start is a platform not visible yet.
- Stale reads: with ``changed_since`` (``update_and_wait`` and ``delete_and_wait`` set it, and
  an update or delete this client made lately counts too, see ``note_change``), a success or
  failure reading counts only once the change has shown: a newer ``modified_dt``, an
  in-progress state, or a state other than the one before; or, for changes that finish without
  any visible sign, once ``stale_grace`` seconds have passed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Generator, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

import attrs
import backoff

from .errors import (
    APIConnectionError,
    APIStatusError,
    BadRequestError,
    NotFoundError,
    TerminalStateError,
    ValidationError,
    WaiterError,
    WaiterTimeoutError,
    describe,
    is_transient,
    outcome_unknown,
)
from .models import CreatePlatformRequest, PlatformDetail, ReleaseState, UpdatePlatformRequest
from .resources._base import checked_request

if sys.version_info >= (3, 11):
    from asyncio import timeout_at as _timeout_at
else:  # pragma: no cover - aiohttp installs async-timeout on Python 3.10
    from async_timeout import timeout_at as _timeout_at  # type: ignore[import-not-found,unused-ignore]

if TYPE_CHECKING:
    from .resources.platforms import CreateRequestLike, Platforms, UpdateRequestLike

__all__ = [
    "DEFAULT_FAILURE_STATES",
    "DEFAULT_NOT_FOUND_GRACE",
    "DEFAULT_POLL_DELAY",
    "DEFAULT_POLL_MAX_DELAY",
    "DEFAULT_POLL_TIMEOUT",
    "DEFAULT_STALE_GRACE",
    "DEFAULT_SUCCESS_STATES",
    "PlatformWatch",
    "PollDefaults",
    "create_and_wait",
    "delete_and_wait",
    "note_change",
    "run",
    "update_and_wait",
]

logger = logging.getLogger("aimlops_async.waiter")

DEFAULT_POLL_DELAY = 5.0
DEFAULT_POLL_MAX_DELAY = 30.0
DEFAULT_POLL_TIMEOUT = 3600.0

DEFAULT_SUCCESS_STATES: frozenset[str] = frozenset({"DEPLOYED"})
DEFAULT_FAILURE_STATES: frozenset[str] = frozenset({"FAILED", "ERROR"})
# A platform may stay invisible to GET for a moment after create (eventually consistent reads).
DEFAULT_NOT_FOUND_GRACE = 30.0
# Floor of the stale-read grace; the grace is max(this, STALE_GRACE_DELAYS * delay). It only
# matters for a change that finishes without any visible sign (no new modified_dt, no
# in-progress state), so erring long costs little, and erring short returns stale data.
DEFAULT_STALE_GRACE = 10.0
STALE_GRACE_DELAYS = 3

# The outcomes of a watch (PlatformWatch.outcome).
SUCCESS: Literal["success"] = "success"
FAILURE: Literal["failure"] = "failure"
DELETED: Literal["deleted"] = "deleted"
Outcome = Literal["success", "failure", "deleted"]

# Statuses worth polling through besides 429 and 5xx: the service or a proxy was busy.


@attrs.frozen(kw_only=True)
class PollDefaults:
    """The client's defaults for every wait (bulk runs included), in seconds.

    Fit for the real service, where provisioning takes many minutes: after the first poll, the
    next comes after about ``delay``, later ones back off exponentially (with jitter) up to
    ``max_delay``, and the wait gives up after ``timeout``.
    """

    delay: float = DEFAULT_POLL_DELAY
    max_delay: float = DEFAULT_POLL_MAX_DELAY
    timeout: float = DEFAULT_POLL_TIMEOUT


# Every poll sleep goes through here (one place to observe or replace).
_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


def _equal_jitter(value: float) -> float:
    """Between half and all of ``value``: spreads waits apart but keeps the cap meaningful."""
    half = value / 2
    return half + random.uniform(0.0, half)


class _FirstReading:
    """``changed_since`` marker: take the first reading as the "before" state."""


FIRST_READING = _FirstReading()

ChangedSince = PlatformDetail | datetime | _FirstReading | None


class PlatformWatch:
    """An async iterator over a platform's details, one per change of state (``client.platforms.watch``).

    Yields the first reading, then a detail each time ``release_state`` or ``cluster_state``
    changes, and finally the detail that reached a success or failure state, after which the
    iteration ends. It does not raise on a failure state: check ``outcome`` (``"success"``,
    ``"failure"``, or ``"deleted"`` when ``until_deleted`` and the platform is gone) or the last
    detail's ``release_state``. It raises ``WaiterTimeoutError`` past ``timeout``, and the
    ``APIStatusError`` that ended it otherwise (``NotFoundError`` after the grace, 400, 401, 403).

    ``last_detail`` is the last detail seen (also stale ones), ``polls`` the number of GETs.
    Each wait lives in the iterating task only; breaking out of the loop leaves nothing running.
    """

    __slots__ = (
        "_base_modified",
        "_base_state",
        "_closed",
        "_deadline",
        "_first_modified",
        "_first_pending",
        "_immediate",
        "_last_key",
        "_platforms",
        "_retry_after",
        "_settled",
        "_started",
        "_state_from_first",
        "_terminal",
        "_waits",
        "_warned",
        "delay",
        "failure_states",
        "last_detail",
        "max_delay",
        "not_found_grace",
        "outcome",
        "polls",
        "release_id",
        "stale_grace",
        "success_states",
        "timeout",
        "until_deleted",
    )

    def __init__(
        self,
        platforms: Platforms,
        release_id: str,
        *,
        success_states: Iterable[str] | None = None,
        failure_states: Iterable[str] | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        timeout: float | None = None,
        not_found_grace: float | None = None,
        stale_grace: float | None = None,
        changed_since: ChangedSince = None,
        until_deleted: bool = False,
        immediate: bool = True,
    ) -> None:
        if not isinstance(release_id, str) or not release_id.strip():
            raise ValidationError(f"must be a non-empty string, got {release_id!r}", "release_id")
        defaults = platforms.poll_defaults
        self.release_id = release_id
        self.until_deleted = bool(until_deleted)
        # A per-call delay above the client's cap (or a cap below its delay) moves the other
        # default along, rather than failing; only two explicit values can conflict.
        given_delay = None if delay is None else _positive("delay", delay)
        given_cap = None if max_delay is None else _positive("max_delay", max_delay)
        self.delay = given_delay or (
            defaults.delay if given_cap is None else min(defaults.delay, given_cap)
        )
        self.max_delay = given_cap or max(defaults.max_delay, self.delay)
        if self.max_delay < self.delay:
            raise ValidationError(f"must be >= delay ({self.delay:g}), got {self.max_delay:g}", "max_delay")
        self.timeout = _positive("timeout", defaults.timeout if timeout is None else timeout)
        self.not_found_grace = _non_negative(
            "not_found_grace", DEFAULT_NOT_FOUND_GRACE if not_found_grace is None else not_found_grace
        )
        self.stale_grace = _non_negative(
            "stale_grace",
            max(DEFAULT_STALE_GRACE, STALE_GRACE_DELAYS * self.delay) if stale_grace is None
            else stale_grace,
        )
        self.success_states = _states(
            "success_states", success_states, frozenset() if self.until_deleted else DEFAULT_SUCCESS_STATES
        )
        self.failure_states = _states("failure_states", failure_states, DEFAULT_FAILURE_STATES)
        overlap = self.success_states & self.failure_states
        if overlap:
            raise ValidationError(
                f"a state cannot be both success and failure: {', '.join(sorted(overlap))}",
                "failure_states",
            )
        self._terminal = _terminal_states(self.success_states, self.failure_states)
        self._platforms = platforms
        # What "before the change" looked like: from changed_since, and from the first reading
        # (a later reading with another modified_dt than the first cannot be the stale one).
        self._base_modified: datetime | None = None
        self._base_state: str | None = None
        self._first_modified: datetime | None = None
        self._first_pending = True
        self._state_from_first = False
        self._settled = False
        if isinstance(changed_since, PlatformDetail):
            self._base_modified = changed_since.modified_dt
            self._base_state = _text(changed_since.release_state)
        elif isinstance(changed_since, datetime):
            if changed_since.tzinfo is None:
                raise ValidationError("must be a timezone-aware datetime", "changed_since")
            self._base_modified = changed_since
        elif isinstance(changed_since, _FirstReading):
            self._state_from_first = True
        elif changed_since is None:
            # A change this client made lately (note_change) is waited out like changed_since.
            self._base_modified = _noted_change(platforms, release_id)
            # Waiting for a delete: a failure state seen before any sign of the delete is the
            # state the platform had before (a stale read), not a failed delete.
            self._state_from_first = self.until_deleted
            self._settled = self._base_modified is None and not self.until_deleted
        else:
            raise ValidationError(
                f"must be a PlatformDetail or a datetime, got {type(changed_since).__name__}",
                "changed_since",
            )
        self._waits: Generator[float, Any, None] = backoff.expo(factor=self.delay, max_value=self.max_delay)
        next(self._waits)  # backoff's wait generators start with a priming step
        self._immediate = immediate
        self._started: float | None = None
        self._deadline = math.inf
        self._last_key: tuple[str | None, str | None] | None = None
        self._retry_after: float | None = None
        self._warned = False
        self._closed = False
        self.last_detail: PlatformDetail | None = None
        self.outcome: Outcome | None = None
        self.polls = 0

    def __repr__(self) -> str:
        state = _text(self.last_detail.release_state) if self.last_detail is not None else None
        return (
            f"<PlatformWatch release_id={self.release_id!r} state={state!r} "
            f"outcome={self.outcome!r} polls={self.polls}>"
        )

    def __aiter__(self) -> PlatformWatch:
        return self

    async def aclose(self) -> None:
        """Stop the watch: later iteration ends at once. (Nothing runs between polls anyway, so
        leaving a loop early needs no cleanup; this is for ``contextlib.aclosing``.)"""
        self._closed = True

    async def __anext__(self) -> PlatformDetail:
        if self.outcome is not None or self._closed:
            raise StopAsyncIteration
        loop = asyncio.get_running_loop()
        if self._started is None:
            self._started = loop.time()
            self._deadline = self._started + self.timeout
        while True:
            await self._pause(loop)
            detail = await self._read(loop)
            if detail is None:
                if self.outcome is not None:
                    raise StopAsyncIteration
                continue
            self.last_detail = detail
            state = _text(detail.release_state)
            self._look_for_change(detail, state)
            if state in self._terminal:
                if not self._settled:
                    if loop.time() - self._started < self.stale_grace:
                        continue  # most likely the state from before the change: not news
                    logger.info(
                        "platform %s: no sign of the change within %g s; taking %s as final",
                        self.release_id, self.stale_grace, state,
                    )
                self.outcome = SUCCESS if state in self.success_states else FAILURE
                return detail
            self._warn_if_unknown(detail, state)
            key = (state, _text(detail.cluster_state))
            if key != self._last_key:
                self._last_key = key
                return detail

    # ------------------------------------------------------------------ one poll

    async def _pause(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._immediate:
            self._immediate = False
            return
        delay = _equal_jitter(next(self._waits))
        if self._retry_after is not None:
            delay = max(delay, self._retry_after)
            self._retry_after = None
        remaining = self._deadline - loop.time()
        if delay >= remaining:
            # No poll can happen before the deadline: wait it out rather than overshoot it.
            if remaining > 0:
                await _sleep(remaining)
            raise self._timed_out()
        await _sleep(delay)

    async def _read(self, loop: asyncio.AbstractEventLoop) -> PlatformDetail | None:
        """One GET: the detail, or None when there is nothing to judge (404 in grace, transient)."""
        self.polls += 1
        try:
            if math.isinf(self._deadline):
                return await self._platforms.get(self.release_id)
            async with _timeout_at(self._deadline):
                return await self._platforms.get(self.release_id)
        except asyncio.TimeoutError:
            if loop.time() >= self._deadline:
                raise self._timed_out() from None
            raise
        except NotFoundError:
            if self.until_deleted:
                self.outcome = DELETED
                return None
            assert self._started is not None
            if loop.time() - self._started < self.not_found_grace:
                return None
            raise
        except (APIStatusError, APIConnectionError) as error:
            if not is_transient(error):
                raise
            if isinstance(error, APIStatusError) and error.retry_after is not None:
                self._retry_after = error.retry_after
            logger.info("a poll of %s failed (%s); polling on", self.release_id, describe(error))
            return None

    # ------------------------------------------------------------------ judging readings

    def _look_for_change(self, detail: PlatformDetail, state: str | None) -> None:
        """Settle once a reading shows that the change being waited for has taken effect."""
        if self._settled:
            return
        modified = detail.modified_dt
        if self._first_pending:
            self._first_pending = False
            self._first_modified = modified
            if self._state_from_first:
                self._base_state = state
        if (
            state not in self._terminal
            or (self._base_state is not None and state != self._base_state)
            or _newer(modified, self._base_modified)
            or _newer(modified, self._first_modified)
        ):
            self._settled = True

    def _warn_if_unknown(self, detail: PlatformDetail, state: str | None) -> None:
        if self._warned:
            return
        release_state = detail.release_state
        if release_state is not None and release_state.is_known:
            return
        self._warned = True
        logger.warning(
            "platform %s reports release_state %r, which this library does not know; treating it "
            "as in progress (pass success_states= or failure_states= to say otherwise)",
            self.release_id, state,
        )

    def _timed_out(self) -> WaiterTimeoutError:
        state = _text(self.last_detail.release_state) if self.last_detail is not None else None
        target = "deleted" if self.until_deleted else "/".join(sorted(self.success_states))
        seen = f"last state {state}" if state is not None else "never seen"
        return WaiterTimeoutError(
            f"platform {self.release_id} was not {target} within {self.timeout:g} s ({seen})",
            release_id=self.release_id, last_detail=self.last_detail,
        )

    def failure_error(self) -> TerminalStateError:
        """The ``TerminalStateError`` for a watch that ended in a failure state."""
        detail = self.last_detail
        state = _text(detail.release_state) if detail is not None else None
        name = f" ({detail.release_name})" if detail is not None and detail.release_name else ""
        return TerminalStateError(
            f"platform {self.release_id}{name} ended in {state}",
            release_id=self.release_id, state=state, last_detail=detail,
        )


# ---------------------------------------------------------------------- changes made by this client

# Release ids this client updated or deleted lately (per Platforms object): the wall-clock time
# just before the request went out, so that ``update(...)`` then ``wait_until_deployed(...)`` is
# not fooled by a stale DEPLOYED either.
_recent_changes: weakref.WeakKeyDictionary[Any, dict[str, float]] = weakref.WeakKeyDictionary()
# Long past any plausible stale-read window: older changes show in every read.
CHANGE_MEMORY = 300.0
_PRUNE_AT = 1024


def note_change(platforms: Platforms, release_id: str, started: float | None = None) -> None:
    """Remember that ``release_id`` was just updated or deleted through ``platforms``.

    ``started`` is ``time.time()`` taken just before the request was sent (default: now).
    ``Platforms.update`` and ``Platforms.delete`` call this once the service accepted the change.
    A later wait on that release without ``changed_since`` (within ``CHANGE_MEMORY`` seconds)
    then takes a success or failure reading only when its ``modified_dt`` is not older than
    ``started``, or differs from the first reading's, or after an in-progress state, or after
    ``stale_grace``. (A server clock behind ours only makes that slower, never wrong.)
    """
    now = time.time()
    changes = _recent_changes.setdefault(platforms, {})
    if len(changes) >= _PRUNE_AT:
        for key in [key for key, when in changes.items() if now - when > CHANGE_MEMORY]:
            del changes[key]
    changes[release_id] = now if started is None else started


def _noted_change(platforms: Platforms, release_id: str) -> datetime | None:
    changes = _recent_changes.get(platforms)
    when = changes.get(release_id) if changes else None
    if when is None or time.time() - when > CHANGE_MEMORY:
        return None
    # A millisecond earlier: a modified_dt stamped in the very millisecond counts as newer.
    return datetime.fromtimestamp(when - 0.001, timezone.utc)


# ---------------------------------------------------------------------- the public operations


async def run(watcher: PlatformWatch) -> PlatformDetail | None:
    """Drive a watch to its end: the final detail (None once deleted), or ``TerminalStateError``."""
    # Not ``async for``: its loop variable would keep the previous detail alive between polls.
    while True:
        try:
            await watcher.__anext__()
        except StopAsyncIteration:
            break
    if watcher.outcome == FAILURE:
        raise watcher.failure_error()
    return None if watcher.outcome == DELETED else watcher.last_detail


async def create_and_wait(
    platforms: Platforms,
    request: CreateRequestLike,
    *,
    timeout: float | None = None,
    delay: float | None = None,
    max_delay: float | None = None,
    success_states: Iterable[str] | None = None,
    failure_states: Iterable[str] | None = None,
    not_found_grace: float | None = None,
) -> PlatformDetail:
    """Create a platform, then wait until it is deployed (a 404 at first is tolerated)."""
    answer = await platforms.create(request)
    release_id = answer.resource_id
    if not release_id:
        raise WaiterError(
            "the create answer carried no release id (resource_id); look the platform up by "
            f"release name ({_release_name(request)!r})",
            release_id="",
        )
    detail = await run(PlatformWatch(
        platforms, release_id, success_states=success_states, failure_states=failure_states,
        delay=delay, max_delay=max_delay, timeout=timeout, not_found_grace=not_found_grace,
        immediate=False,
    ))
    assert detail is not None
    return detail


async def update_and_wait(
    platforms: Platforms,
    release_id: str,
    request: UpdateRequestLike,
    *,
    timeout: float | None = None,
    delay: float | None = None,
    max_delay: float | None = None,
    success_states: Iterable[str] | None = None,
    failure_states: Iterable[str] | None = None,
    stale_grace: float | None = None,
) -> PlatformDetail:
    """Update a platform, then wait until the update has shown and the platform is deployed again.

    The detail before the update is read first, so that a stale ``DEPLOYED`` from before the
    update (same ``modified_dt``) is never returned; see ``PlatformWatch``.
    """
    model = checked_request(request, UpdatePlatformRequest)  # bad input fails before any request
    before = await _detail_before_change(platforms, release_id)

    async def updating_or_updated() -> bool:
        detail = await platforms.get(release_id)
        changed = before is not None and detail.modified_dt != before.modified_dt
        return changed or detail.release_state == ReleaseState.UPDATING

    await _send_change(lambda: platforms.update(release_id, model), updating_or_updated)
    detail = await run(PlatformWatch(
        platforms, release_id, success_states=success_states, failure_states=failure_states,
        delay=delay, max_delay=max_delay, timeout=timeout, stale_grace=stale_grace,
        changed_since=before if before is not None else FIRST_READING, immediate=False,
    ))
    assert detail is not None
    return detail


async def delete_and_wait(
    platforms: Platforms,
    release_id: str,
    with_k8s: bool = False,
    *,
    timeout: float | None = None,
    delay: float | None = None,
    max_delay: float | None = None,
    failure_states: Iterable[str] | None = None,
    stale_grace: float | None = None,
) -> None:
    """Delete a platform, then wait until GET answers 404 (stale 200s on the way are expected)."""

    async def deleting_or_gone() -> bool:
        try:
            detail = await platforms.get(release_id)
        except NotFoundError:
            return True
        return detail.release_state == ReleaseState.DELETING

    await _send_change(lambda: platforms.delete(release_id, with_k8s=with_k8s), deleting_or_gone)
    await run(PlatformWatch(
        platforms, release_id, failure_states=failure_states, delay=delay, max_delay=max_delay,
        timeout=timeout, stale_grace=stale_grace, until_deleted=True, immediate=False,
    ))


# ---------------------------------------------------------------------- helpers


async def _send_change(
    send: Callable[[], Awaitable[Any]], took_effect: Callable[[], Awaitable[bool]]
) -> None:
    """Send an update or delete; when its outcome is unknown, look before sending it again.

    The service refuses a second copy (400) while the first one's operation runs, so a blind
    re-send would turn a change that worked into an error. The session does not re-send these
    after an unknown outcome; this does, once, and only when the change has not shown.
    """
    try:
        await send()
        return
    except (APIStatusError, APIConnectionError) as error:
        if not outcome_unknown(error):
            raise
        logger.info("a change had an unknown outcome (%s); looking before sending it again",
                    describe(error))
    if await _shows(took_effect):
        return
    try:
        await send()
    except BadRequestError:
        # The first copy may have shown only now (a lagging read): then the refusal is expected.
        if not await _shows(took_effect):
            raise


async def _shows(took_effect: Callable[[], Awaitable[bool]]) -> bool:
    try:
        return await took_effect()
    except (APIStatusError, APIConnectionError) as error:
        if not is_transient(error):
            raise
        return False


async def _detail_before_change(platforms: Platforms, release_id: str) -> PlatformDetail | None:
    """The detail before a change, or None when a transient failure hides it (the wait copes)."""
    try:
        return await platforms.get(release_id)
    except (APIStatusError, APIConnectionError) as error:
        if not is_transient(error):
            raise
        logger.info("reading %s before the change failed (%s)", release_id, describe(error))
        return None


def _text(value: object) -> str | None:
    # str() of the tolerant enums is the API's string, so sets of plain strings match it.
    return None if value is None else str(value)


def _newer(modified: datetime | None, before: datetime | None) -> bool:
    return modified is not None and before is not None and modified > before


def _release_name(request: Any) -> str | None:
    if isinstance(request, CreatePlatformRequest):
        return request.ai_ml_ops_platform_create_request.release_name
    try:
        return str(request["ai_ml_ops_platform_create_request"]["release_name"])
    except (KeyError, TypeError):
        return None


_DEFAULT_TERMINAL = DEFAULT_SUCCESS_STATES | DEFAULT_FAILURE_STATES


def _terminal_states(success: frozenset[str], failure: frozenset[str]) -> frozenset[str]:
    # The default sets are shared by every wait: thousands of waits need no copy of them each.
    if success is DEFAULT_SUCCESS_STATES and failure is DEFAULT_FAILURE_STATES:
        return _DEFAULT_TERMINAL
    return success | failure


def _states(field: str, value: Iterable[str] | None, default: frozenset[str]) -> frozenset[str]:
    if value is None:
        return default
    if isinstance(value, str):
        value = [value]  # a single state given as a string, not its characters
    states = frozenset(str(state) for state in value)
    if not all(states):
        raise ValidationError("states must be non-empty strings", field)
    return states


def _positive(field: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValidationError(f"must be a positive number of seconds, got {value!r}", field)
    return float(value)


def _non_negative(field: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValidationError(f"must be a number of seconds >= 0, got {value!r}", field)
    return float(value)
