"""The one clock and sleep of a client: ``Timing``. Every wait, poll, retry backoff and rate
limit reads the time and sleeps through it, so tests drive time instead of waiting for it.

A leaf module: the session (below the lifecycle layer) and the lifecycle layer both use it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

__all__ = ["Timing"]


def _monotonic_clock() -> float:
    return time.monotonic()


@attrs.frozen
class Timing:
    """The clock and sleep of a client: ``clock()`` in seconds (monotonic), ``sleep(s)``.

    ``wall()`` is the wall-clock time in seconds since the epoch, compared with the service's
    ``modified_dt``. One ``Timing`` serves the whole client: the session's retry backoff (and
    ``Retry-After``) sleeps and its rate limiter, and every wait, shared poll and bulk run.
    Tests pass their own functions to run all of it in virtual time.
    """

    clock: Callable[[], float] = _monotonic_clock
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    wall: Callable[[], float] = time.time
