"""Hostile peers and bad input: malformed answers, bounded work per answer, linear-time checks,
limits that must not leak, settings checked up front, and errors that cross process boundaries.
"""

from __future__ import annotations

import inspect
import logging
import math
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wire import Reply, WireServer

from aimlops_async import AimlopsClient, Credentials, ValidationError, errors

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


# ---------------------------------------------------------------- settings checked when the client is built

CREDENTIALS = Credentials("hardening-access-key", "hardening-secret-key")
LOOPBACK = "http://127.0.0.1:9"

# Each numeric setting, with the values it must refuse and those it must accept.
SETTINGS: dict[str, tuple[list[Any], list[Any]]] = {
    "timeout": ([math.nan, 0, -1.0, "3"], [0.5, math.inf]),
    "poll_delay": ([math.nan, 0, -1, math.inf], [0.1]),
    "poll_max_delay": ([math.nan, 0, -1, math.inf], [60.0]),
    "poll_timeout": ([math.nan, 0, -5, math.inf], [3600]),
    "retry_base_delay": ([math.nan, -0.1, math.inf], [0, 0.5]),
    "retry_max_delay": ([math.nan, 0, -1, math.inf], [8.0]),
    "max_retry_after": ([math.nan, -1.0], [0, 60.0, math.inf]),
    "requests_per_second": ([math.nan, 0, -1.0, True], [None, 0.5, math.inf]),
    "max_retries": ([math.nan, -1, 1.5, True], [0, 5]),
    "max_concurrency": ([math.nan, 0, 2.0, None], [1, 64]),
}


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, (bad, _) in SETTINGS.items() for value in bad],
)
def test_a_bad_numeric_setting_is_refused_naming_it(name: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        AimlopsClient(LOOPBACK, CREDENTIALS, **{name: value})
    assert caught.value.field == name


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, (_, good) in SETTINGS.items() for value in good],
)
def test_a_good_numeric_setting_is_accepted(name: str, value: Any) -> None:
    AimlopsClient(LOOPBACK, CREDENTIALS, **{name: value})


@given(
    name=st.sampled_from(sorted(SETTINGS)),
    value=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70),
)
def test_any_number_for_any_setting_builds_a_client_or_is_refused_naming_it(
    name: str, value: float
) -> None:
    try:
        AimlopsClient(LOOPBACK, CREDENTIALS, **{name: value})
    except ValidationError as error:
        # A poll_delay beyond the default poll_max_delay is refused by their relation.
        assert error.field == name or (name, error.field) == ("poll_delay", "poll_max_delay")
    else:
        assert not math.isnan(value)


async def test_an_infinite_timeout_means_no_timeout() -> None:
    async with WireServer(default=Reply(200, {"release_id": "r-1"})) as server:
        client = AimlopsClient(server.url, server.credentials, timeout=math.inf)
        async with client:
            detail = await client.platforms.get("r-1")
    assert detail.release_id == "r-1"


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8080/?project=1",
        "http://127.0.0.1:8080/base?",
        "https://host.example/#top",
        "ftp://host.example",
        "file:///etc/passwd",
        "https://user:pass@host.example",
        "https://",
        "http://127.0.0.1:99999",
    ],
)
def test_an_endpoint_with_a_query_fragment_or_other_scheme_is_refused(endpoint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AimlopsClient(endpoint, CREDENTIALS)
    assert caught.value.field == "endpoint"


def test_plain_http_to_another_host_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="aimlops_async"):
        AimlopsClient("http://10.0.0.5:8080/prefix", CREDENTIALS)
    assert any("unencrypted" in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aimlops_async"):
        for endpoint in ("http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:2",
                         "https://10.0.0.5"):
            AimlopsClient(endpoint, CREDENTIALS)
    assert not caplog.records
