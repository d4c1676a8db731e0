"""A local, stateful stand-in for the AI&MLOps Platform API (aiohttp.web), for tests and demos."""

from __future__ import annotations

from .app import EmulatorStats
from .faults import Faults
from .server import Emulator
from .store import EmulatorConfig

__all__ = ["Emulator", "EmulatorConfig", "EmulatorStats", "Faults"]
