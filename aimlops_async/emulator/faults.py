"""Fault injection for the emulator: what goes wrong with a request, drawn from a seeded random."""

from __future__ import annotations

import math
import random
from typing import Any

import attrs

__all__ = ["Fault", "Faults"]

# Checked in this order; each request gets at most one of them.
DROP = "drop"
ERROR = "error"
RATE_LIMIT = "rate_limit"
MALFORMED = "malformed"
AMBIGUOUS_CREATE = "ambiguous_create"
STALL = "stall"

_PARETO_ALPHA = 1.5


def _rate(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


def _seconds(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0.0:
        raise ValueError(f"{attribute.name} must be >= 0 seconds, got {value!r}")


@attrs.frozen
class Fault:
    """The fate of one request: a kind (None: answer normally), a delay, and the kind's variant.

    ``variant``: for ``error`` the status (500 or 503); for ``malformed`` "truncated" (200 with
    cut-off JSON, GET only) or "html" (502 with a proxy's HTML page).
    """

    kind: str | None = None
    delay: float = 0.0
    variant: int | str | None = None


NO_FAULT = Fault()


@attrs.define
class Faults:
    """Rates (0..1) and timings of injected faults. Replace ``emu.faults`` to change them live.

    One ``random.Random(seed)`` per instance draws, in request arrival order, one number per
    request to pick at most one fault, checked in this order: drop, error, rate_limit, malformed,
    ambiguous_create (POST create only), stall. ``latency`` and ``latency_tail`` come on top.
    """

    seed: int = 0
    latency: float = attrs.field(default=0.0, validator=_seconds)
    latency_tail: float = attrs.field(default=0.0, validator=_seconds)
    error_rate: float = attrs.field(default=0.0, validator=_rate)
    rate_limit_rate: float = attrs.field(default=0.0, validator=_rate)
    retry_after: float = attrs.field(default=1.0, validator=_seconds)
    drop_rate: float = attrs.field(default=0.0, validator=_rate)
    ambiguous_create_rate: float = attrs.field(default=0.0, validator=_rate)
    stall_rate: float = attrs.field(default=0.0, validator=_rate)
    stall_seconds: float = attrs.field(default=60.0, validator=_seconds)
    malformed_rate: float = attrs.field(default=0.0, validator=_rate)
    _rng: random.Random = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        total = sum(rate for _, rate in self._bands())
        if total > 1.0 + 1e-9:
            raise ValueError(f"the fault rates add up to {total:g}; at most 1 is possible")
        self._rng = random.Random(self.seed)

    def _bands(self) -> tuple[tuple[str, float], ...]:
        return (
            (DROP, self.drop_rate),
            (ERROR, self.error_rate),
            (RATE_LIMIT, self.rate_limit_rate),
            (MALFORMED, self.malformed_rate),
            (AMBIGUOUS_CREATE, self.ambiguous_create_rate),
            (STALL, self.stall_rate),
        )

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` value: whole seconds, rounded up."""
        return str(math.ceil(self.retry_after))

    def roll(self, *, is_get: bool, is_create: bool) -> Fault:
        """Decide the fate of the next request."""
        rng = self._rng
        delay = self.latency
        if self.latency_tail > 0:
            tail = self.latency_tail
            delay += min(tail * rng.paretovariate(_PARETO_ALPHA), 10 * tail)
        draw = rng.random()
        for kind, rate in self._bands():
            if draw < rate:
                return self._fault(kind, delay, is_get=is_get, is_create=is_create)
            draw -= rate
        return Fault(None, delay) if delay else NO_FAULT

    def _fault(self, kind: str, delay: float, *, is_get: bool, is_create: bool) -> Fault:
        if kind == ERROR:
            return Fault(kind, delay, 500 if self._rng.random() < 0.5 else 503)
        if kind == MALFORMED:
            truncated = is_get and self._rng.random() < 0.5
            return Fault(kind, delay, "truncated" if truncated else "html")
        if kind == AMBIGUOUS_CREATE and not is_create:
            return Fault(None, delay)
        return Fault(kind, delay)
