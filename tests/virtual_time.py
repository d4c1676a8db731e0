"""Virtual time for the lifecycle layer: waits read this clock and sleep on it, so a test drives
time instead of waiting for it (nothing here depends on how fast the machine is)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aimlops_async import Timing

EPOCH = 1_700_000_000.0


class VirtualTime:
    """A clock that moves only when a wait sleeps: each sleep advances it by what was asked.

    ``slept`` records every sleep; ``on_sleep`` (optional) runs before each one, for a test to
    change the world "while time passes".
    """

    def __init__(self, on_sleep: Callable[[float], None] | None = None) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)

    @property
    def timing(self) -> Timing:
        return Timing(clock=self.clock, sleep=self.sleep, wall=self.wall)
