"""Checks of the client's numeric settings, made once when the client is built.

Each function returns the value to use or raises ``ValidationError`` naming the setting. NaN is
refused everywhere (every comparison with it is false, so it would silently turn a limit off);
``inf`` is accepted only where it reads as "no limit".
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ValidationError

__all__ = ["count", "optional_limit", "optional_size", "seconds"]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"must be a number, got {value!r}", name)
    if math.isnan(value):
        raise ValidationError("must be a number, got nan", name)
    return float(value)


def seconds(name: str, value: Any, *, allow_zero: bool = False, allow_inf: bool = False) -> float:
    """A duration: positive (or zero when ``allow_zero``), finite unless ``allow_inf``."""
    number = _number(name, value)
    if number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValidationError(f"must be a number of seconds {bound}, got {value!r}", name)
    if math.isinf(number) and not allow_inf:
        raise ValidationError("must be a finite number of seconds, got inf", name)
    return number


def optional_limit(name: str, value: Any) -> float | None:
    """A positive rate or size limit; ``None`` or ``inf`` mean "no limit" (returned as None)."""
    if value is None:
        return None
    number = _number(name, value)
    if number <= 0:
        raise ValidationError(f"must be positive (or None for no limit), got {value!r}", name)
    return None if math.isinf(number) else value


def count(name: str, value: Any, *, minimum: int) -> int:
    """A whole number of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"must be an integer >= {minimum}, got {value!r}", name)
    return value


def optional_size(name: str, value: Any) -> int | None:
    """A positive whole number of bytes or items; ``None`` or ``inf`` mean "no limit" (None)."""
    if value is None or (isinstance(value, float) and math.isinf(value) and value > 0):
        return None
    return count(name, value, minimum=1)
