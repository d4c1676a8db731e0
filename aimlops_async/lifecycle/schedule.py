"""The one poll schedule (exponential, jittered, within a deadline); ``Timing`` re-exported.

Every wait, the shared poller and bulk runs take their delays from ``delays`` and sleep and
read the time through the client's ``Timing`` (defined in ``aimlops_async.timing``, shared with
the session's retries and rate limiter): tests replace it to drive time instead of waiting for
it, and nothing in the layer calls ``asyncio.sleep`` or reads a clock by itself.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from typing import Any

import attrs
import backoff

from ..errors import ValidationError
from ..timing import Timing  # re-exported: the one clock and sleep, shared with the session

# ``async with within(seconds):`` bounds a read by the deadlines it serves (None: no bound).
if sys.version_info >= (3, 11):
    from asyncio import timeout as within
else:  # pragma: no cover - aiohttp installs async-timeout on Python 3.10
    from async_timeout import timeout as within  # type: ignore[import-not-found,unused-ignore]


__all__ = [
    "DEFAULT_POLL_DELAY",
    "DEFAULT_POLL_MAX_DELAY",
    "DEFAULT_POLL_TIMEOUT",
    "PollDefaults",
    "Timing",
    "count",
    "delays",
    "expired",
    "expo",
    "expo_step",
    "jitter",
    "non_negative",
    "positive",
    "within",
]

DEFAULT_POLL_DELAY = 5.0
DEFAULT_POLL_MAX_DELAY = 30.0
DEFAULT_POLL_TIMEOUT = 3600.0


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

    def resolve(self, delay: float | None, max_delay: float | None) -> tuple[float, float]:
        """A call's ``(delay, max_delay)``: a per-call delay above the client's cap (or a cap below
        its delay) moves the other default along rather than failing; only two explicit values
        can conflict."""
        given_delay = None if delay is None else positive(delay, "delay")
        given_cap = None if max_delay is None else positive(max_delay, "max_delay")
        first = given_delay or (self.delay if given_cap is None else min(self.delay, given_cap))
        cap = given_cap or max(self.max_delay, first)
        if cap < first:
            raise ValidationError(f"must be >= delay ({first:g}), got {cap:g}", "max_delay")
        return first, cap


def expired(scope: Any) -> bool:
    """Whether a ``within`` scope's own timer ran out (the ``TimeoutError`` is the scope's).

    Decided by the scope, never by comparing clocks: the loop may fire a timer a clock tick
    early, and a client's ``Timing`` clock need not be the loop's. ``asyncio.Timeout.expired()``
    is a method; ``async_timeout``'s ``expired`` (Python 3.10) is a property.
    """
    flag = scope.expired
    return bool(flag() if callable(flag) else flag)


def expo(first: float, cap: float) -> Iterator[float]:
    """Exponential delays from ``first`` up to ``cap`` (``backoff.expo``), before jitter."""
    waits = backoff.expo(factor=first, max_value=cap)
    next(waits)  # backoff's wait generators open with a bare yield
    return waits


def expo_step(first: float, cap: float, attempt: int) -> float:
    """The ``attempt``-th value (from 0) of ``expo(first, cap)``, for a schedule kept as a count:
    ``first * 2 ** attempt``, capped (``backoff.expo``'s rule, which the tests pin it to)."""
    value = first * 2.0 ** min(attempt, 64)  # 2**64 times any delay is past every cap
    return value if value < cap else cap


def jitter(value: float) -> float:
    """Between half and all of ``value`` ("equal jitter"): thousands of waits started together
    drift apart instead of polling in lock-step, while the cap stays meaningful."""
    half = value / 2
    return half + random.uniform(0.0, half)


def delays(first: float, cap: float) -> Iterator[float]:
    """Poll and retry delays: ``expo`` with ``jitter``."""
    for value in expo(first, cap):
        yield jitter(value)


def positive(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValidationError(f"must be a positive number of seconds, got {value!r}", field)
    return float(value)


def non_negative(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValidationError(f"must be a number of seconds >= 0, got {value!r}", field)
    return float(value)


def count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"must be an integer >= 1, got {value!r}", field)
    return value
