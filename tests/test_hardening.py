"""Hostile peers and bad input: malformed answers, bounded work per answer, linear-time checks,
limits that must not leak, settings checked up front, and errors that cross process boundaries.
"""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import pytest

from aimlops_async import errors

# ---------------------------------------------------------------- errors cross process boundaries


def _sample_error(cls: type[errors.AimlopsError]) -> errors.AimlopsError:
    """One instance of ``cls`` with every keyword argument of its constructor set to a distinct value."""
    if issubclass(cls, errors.ValidationError):
        return cls([("request.name", "is required"), ("size", "must be positive")])
    kwargs: dict[str, Any] = {}
    # The keyword-only arguments of every constructor up the tree (a subclass may pass **kwargs on).
    names = [
        name
        for klass in cls.__mro__ if issubclass(klass, errors.AimlopsError) and "__init__" in vars(klass)
        for name, parameter in inspect.signature(vars(klass)["__init__"]).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    for name in names:
        if name == "status":
            kwargs[name] = 503
        elif name in ("attempts",):
            kwargs[name] = 4
        elif name in ("retry_after",):
            kwargs[name] = 1.5
        elif name in ("sent", "retryable"):
            kwargs[name] = False
        elif name == "body":
            kwargs[name] = {"errors": [{"code": "X", "detail": ["a", "b"]}]}
        elif name == "last_detail":
            kwargs[name] = {"release_state": "FAILED"}
        else:
            kwargs[name] = f"{name}-value"
    return cls("it failed", **kwargs)


EXPORTED_ERRORS = [
    getattr(errors, name) for name in errors.__all__
    if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), BaseException)
]


def test_every_exported_error_class_is_covered() -> None:
    assert len(EXPORTED_ERRORS) == len(errors.__all__)
    assert errors.WaiterTimeoutError in EXPORTED_ERRORS and errors.APIStatusError in EXPORTED_ERRORS


@pytest.mark.parametrize("cls", EXPORTED_ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_survives_a_pickle_round_trip(cls: type[errors.AimlopsError]) -> None:
    error = _sample_error(cls)
    error.added_later = ["an attribute", "no constructor knows"]  # type: ignore[attr-defined]
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is cls
    assert restored.args == error.args
    assert restored.__dict__ == error.__dict__
    assert str(restored) == str(error)
    assert restored.added_later == error.added_later  # type: ignore[attr-defined]
