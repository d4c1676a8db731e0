"""The one request path: aiohttp session, signing, rate and concurrency limits, retries, errors, JSON.

Every endpoint goes through ``Session.request``: the body is unstructured by the converter, the
signing middleware signs the exact URL that goes out, retries (``backoff``) wrap the whole attempt
so each attempt is signed afresh, non-2xx answers map to the exception tree, and the JSON answer
is structured into the response model.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import heapq
import json
import logging
import math
import platform
import random
import re
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, overload
from urllib.parse import quote

import aiohttp
import attrs
import backoff
import cattrs
from yarl import URL

from . import _checks
from ._version import __version__
from .auth import SigningMiddleware
from .config import Credentials
from .converter import is_unicode_text, structure_answer, unstructure
from .errors import (
    EDGE_THROTTLED,
    GATEWAY_REFUSED,
    MALFORMED_RESPONSE,
    RESPONSE_TOO_LARGE,
    AimlopsError,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    RateLimitError,
    ValidationError,
    describe,
    status_error_class,
)
from .outcomes import Outcome, classify
from .redaction import redact_headers, redact_url
from .telemetry import Operation, ResponseInfo, Telemetry, current_call
from .timing import Timing

try:  # a dependency where orjson has wheels (CPython on common machines); elsewhere, the stdlib.
    import orjson

    def _json_dumps(value: Any) -> bytes:
        encoded: bytes = orjson.dumps(value)
        return encoded

    _json_loads: Callable[[bytes], Any] = orjson.loads
    _JSONDecodeError: tuple[type[Exception], ...] = (orjson.JSONDecodeError,)
except ImportError:  # pragma: no cover - exercised where orjson is not installed

    def _json_dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    _json_loads = json.loads
    _JSONDecodeError = (ValueError, UnicodeDecodeError)

__all__ = [
    "CallOptions", "ErrorBody", "RateLimiter", "RetryPolicy", "Session", "Slots",
    "merge_body", "parse_error_body", "redact_headers",
]

T = TypeVar("T")

logger = logging.getLogger("aimlops_async")

# What structuring a JSON answer of the wrong shape into a response model can raise.
_SHAPE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, cattrs.BaseValidationError)
# Scp-Timestamp counts milliseconds: a retry sent sooner would repeat the previous attempt's
# timestamp and signature instead of being signed afresh.
MIN_RETRY_DELAY = 0.002
# A 401 whose server clock differs from ours by more than this is taken for clock skew.
CLOCK_SKEW_THRESHOLD_S = 30.0

_REQUEST_ID_HEADERS = ("X-Request-Id", "X-Scp-Request-Id", "Scp-Request-Id", "X-Trace-Id")
# How much of a body that is not JSON is read for the error message (the rest is not shown).
ERROR_TEXT_BYTES = 4096
# How much of the live envelope's "detail" lines an error keeps (lines, characters each, message).
ERROR_DETAIL_LINES = 20
ERROR_DETAIL_CHARS = 500
ERROR_MESSAGE_CHARS = 2000
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_READ_CHUNK_BYTES = 64 * 1024


# Headers the signer computes or signs: a per-call value would break the signature.
_SIGNED_HEADERS = frozenset(
    name.lower()
    for name in ("Scp-AccessKey", "Scp-AccountId", "Scp-ClientType", "Scp-Signature", "Scp-Timestamp")
)
# Framing headers: the HTTP client writes them from the URL and the body.
_FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _names_only(value: Mapping[str, Any] | None) -> str:
    return "None" if value is None else "{" + ", ".join(f"{name!r}: ***" for name in value) + "}"


@attrs.frozen
class CallOptions:
    """Per-call options of every operation (the convention of openai-python), checked once.

    ``extra_headers`` are added to (or replace) this call's headers, but never the signed
    ones; ``extra_query`` parameters are added to the query string and signed as sent;
    ``extra_body`` is merged into the JSON body after the known fields were checked (nested
    objects merge key by key), so a field the service added after this release can be sent
    today; ``timeout`` is the per-attempt timeout of this call, in seconds.
    """

    # Their values may be tokens or passwords: a repr (a traceback with locals, a debugger)
    # shows the names only.
    headers: Mapping[str, str] | None = attrs.field(default=None, repr=_names_only)
    query: Mapping[str, Any] | None = attrs.field(default=None, repr=_names_only)
    body: Mapping[str, Any] | None = attrs.field(default=None, repr=_names_only)
    timeout: aiohttp.ClientTimeout | None = None

    @classmethod
    def build(
        cls,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> CallOptions | None:
        """The options, or None when there are none; ``ValidationError`` names a bad one."""
        if extra_headers is None and extra_query is None and extra_body is None and timeout is None:
            return None
        return cls(
            _checked_headers(extra_headers),
            _checked_mapping(extra_query, "extra_query", scalars_only=True),
            _checked_mapping(extra_body, "extra_body", scalars_only=False),
            None if timeout is None else aiohttp.ClientTimeout(total=_checks.seconds("timeout", timeout)),
        )


def _checked_headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    if headers is None:
        return None
    if not isinstance(headers, Mapping):
        raise ValidationError(f"must be a mapping, got {type(headers).__name__}", "extra_headers")
    checked = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValidationError(f"{name!r} is not a header name", "extra_headers")
        field = f"extra_headers.{name}"
        if name.lower() in _SIGNED_HEADERS:
            raise ValidationError("is set by the signer and cannot be replaced", field)
        if name.lower() in _FRAMING_HEADERS:
            raise ValidationError("is set by the HTTP client from the URL and the body", field)
        if name.lower() == "x-auth-token":
            raise ValidationError("goes in Credentials(auth_token=...)", field)
        # Values are never echoed: a header may carry a credential.
        if not isinstance(value, str) or not all(" " <= char <= "~" or char == "\t" for char in value):
            raise ValidationError("must be printable ASCII text without line breaks", field)
        checked[name] = value
    return checked


def _checked_mapping(
    value: Mapping[str, Any] | None, name: str, *, scalars_only: bool
) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and key and is_unicode_text(key) for key in value
    ):
        raise ValidationError("must be a mapping with non-empty text keys", name)
    if scalars_only:
        for key, item in value.items():
            if item is not None and not isinstance(item, (str, int, float)):
                raise ValidationError(
                    f"must be a string, number or boolean, got {type(item).__name__}",
                    f"{name}.{key}",
                )
            if isinstance(item, str) and not is_unicode_text(item):
                raise ValidationError("must be valid Unicode text", f"{name}.{key}")
    else:
        try:
            _json_dumps(value)
        except (TypeError, ValueError):
            raise ValidationError("cannot be sent as JSON", name) from None
    return dict(value)


def merge_body(body: Any, extra: Mapping[str, Any]) -> Any:
    """``extra`` merged into ``body``: objects key by key, anything else replaced."""
    if body is None:
        return dict(extra)
    if not isinstance(body, Mapping):
        raise ValidationError("cannot be merged into a body that is not a JSON object", "extra_body")
    merged = dict(body)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_body(current, value)
        else:
            merged[key] = value
    return merged


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How transient failures are retried: capped exponential backoff with full jitter.

    ``max_retries`` retries after the first attempt. A ``Retry-After`` (429, or 503 when sent) is
    waited for; one longer than ``max_retry_after`` is not slept through: the error is raised at
    once with ``retry_after`` set.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, retry: int, failure: BaseException | None) -> float:
        """Seconds to wait before retry number ``retry`` (from 1) after ``failure``: its
        ``Retry-After`` if it has one, else full jitter up to ``base_delay * 2 ** (retry - 1)``,
        capped at ``max_delay``."""
        retry_after = getattr(failure, "retry_after", None)
        if retry_after is not None:
            delay = float(retry_after)
        else:
            delay = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (retry - 1)))
        return max(delay, MIN_RETRY_DELAY)


class RateLimiter:
    """Spaces request starts at least ``1 / requests_per_second`` apart, across all tasks.

    Each caller reserves the next free slot and sleeps until it, so callers are served in order
    and a burst never exceeds the rate. A caller cancelled while it sleeps gives its slot back:
    the next caller takes the earliest slot given back that is still ahead, so cancelled calls
    never delay the ones that follow.
    """

    def __init__(
        self,
        requests_per_second: float,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not requests_per_second > 0:
            raise ValueError("requests_per_second must be positive")
        self.interval = 1.0 / requests_per_second
        self._next_slot = 0.0
        self._given_back: list[float] = []  # a heap of reserved slots whose callers left
        # The session sets them from its Timing (None: the event loop's clock).
        self.clock = clock
        self.sleep = sleep

    def reserve(self, now: float) -> float:
        """The start time of the next request: a slot given back that is still ahead, else a new one."""
        given_back = self._given_back
        while given_back:
            slot = heapq.heappop(given_back)
            if slot >= now:
                return slot
        slot = max(now, self._next_slot)
        self._next_slot = slot + self.interval
        return slot

    def give_back(self, slot: float) -> None:
        """Return a slot that will not be used (its caller was cancelled before it came)."""
        if slot + self.interval == self._next_slot:
            self._next_slot = slot  # the last one reserved: as if it had never been
        else:
            heapq.heappush(self._given_back, slot)

    async def wait(self) -> None:
        now = self.clock() if self.clock is not None else asyncio.get_running_loop().time()
        slot = self.reserve(now)
        if slot > now:
            try:
                await self.sleep(slot - now)
            except BaseException:
                self.give_back(slot)
                raise


class Slots:
    """The client-wide limit on requests in flight: a counting semaphore that serves in order.

    ``asyncio.Semaphore`` under ``async with`` costs two coroutines and a generator per request
    even when a slot is free; here a free slot is taken with a plain call (``take_nowait``).
    Waiting happens before aiohttp starts the attempt's timeout, so a long queue never times
    out a request that has not been sent. A freed slot goes straight to the longest waiter, so
    no newcomer jumps the queue; a waiter cancelled just after being handed a slot passes it on.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take_nowait(self) -> bool:
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        if self.take_nowait():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give_back()
            raise

    def give_back(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter has left the queue
                waiter.set_result(None)
                return
        self._free += 1

    @property
    def free(self) -> int:
        return self._free


@attrs.define
class CallStats:
    """Counters of what the session sent: API calls (logical) and HTTP attempts (with retries)."""

    calls: int = 0
    attempts: int = 0
    retries: int = 0


class Session:
    """Owns the aiohttp ``ClientSession`` (created lazily, inside the running loop) and the request path."""

    def __init__(
        self,
        *,
        base_url: str,
        credentials: Credentials,
        client_type: str = "Openapi",
        api_version: str | None = "1.1",
        language: str = "en-US",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 64,
        requests_per_second: float | None = None,
        ssl: bool | ssl_module.SSLContext = True,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
        telemetry: Telemetry | None = None,
        session: aiohttp.ClientSession | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        timing: Timing | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # The most body bytes (after decompression) read from one answer; None: no limit.
        self.max_response_bytes = max_response_bytes
        self.retry = retry or RetryPolicy()
        # An infinite timeout is no timeout (aiohttp would raise OverflowError on it).
        self.timeout = aiohttp.ClientTimeout(total=None if math.isinf(timeout) else timeout)
        self.stats = CallStats()
        self.api_version = api_version
        self._signer = SigningMiddleware(credentials, client_type)
        # The official SDK's headers (client/configuration.go, SetupRequestHeader): the account
        # id goes out on every request, empty when there is none; the auth token only when set.
        self._headers = {
            "Scp-AccessKey": credentials.access_key,
            "Scp-AccountId": credentials.account_id or "",
            "Scp-ClientType": client_type,
            "Accept-Language": language,
            "Accept": "application/json",
            "User-Agent": (
                f"aimlops-async/{__version__} python/{platform.python_version_tuple()[0]}."
                f"{platform.python_version_tuple()[1]} aiohttp/{aiohttp.__version__}"
            ),
        }
        if api_version is not None:
            self._headers["Scp-Api-Version"] = f"aimlops-platform {api_version}"
        if credentials.auth_token:
            self._headers["X-Auth-Token"] = credentials.auth_token
        self._json_headers = {"Content-Type": "application/json"}
        self._max_concurrency = max_concurrency
        self._slots = Slots(max_concurrency)
        self._rate = RateLimiter(requests_per_second) if requests_per_second else None
        self.timing = timing or Timing()
        self._ssl = ssl
        self._session: aiohttp.ClientSession | None = session
        self._owns_session = session is None
        self._trace_configs = list(trace_configs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.telemetry = telemetry or Telemetry(base_url=self.base_url)
        # None until the first call resolves the providers: then whether calls are observed.
        self._observed: bool | None = None
        self._middlewares: tuple[aiohttp.ClientMiddlewareType, ...] = (self._signer,)
        self._request_options: dict[str, Any] = {}
        self._plain_headers: Mapping[str, str] | None = None
        if session is not None:
            self._adopt(session)
        # backoff decides whether and when to give up; it is handed a zero wait because its
        # async decorator sleeps with asyncio.sleep itself: _back_off sleeps the real delay
        # through the client's Timing, so tests drive retries in virtual time.
        self._send_again = backoff.on_exception(
            backoff.constant,
            APIError,
            interval=0,
            max_tries=self.retry.max_retries + 1,
            jitter=None,
            giveup=self._gives_up,
            on_backoff=self._back_off,
            on_giveup=self._count_attempts,
            logger=None,
        )(self._replay_then_attempt)

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def timing(self) -> Timing:
        """The clock and sleep of retry backoff and the rate limiter (the client's one ``Timing``)."""
        return self._timing

    @timing.setter
    def timing(self, timing: Timing) -> None:
        self._timing = timing
        if self._rate is not None:
            self._rate.clock, self._rate.sleep = timing.clock, timing.sleep

    def _adopt(self, session: aiohttp.ClientSession) -> None:
        """Use a caller's session: it is never closed here, and every request still gets signed.

        A request's own ``middlewares=`` replace the session's in aiohttp, so the session's
        middlewares run first and the signer runs last, on the URL exactly as it goes out. The
        headers, timeout and TLS settings of this client travel with each request.
        """
        self._middlewares = (*getattr(session, "_middlewares", ()), self._signer)
        self._json_headers = {**self._headers, **self._json_headers}
        self._plain_headers = dict(self._headers)
        self._request_options = {
            "middlewares": self._middlewares, "raise_for_status": False,
        }
        if self._ssl is not True:
            self._request_options["ssl"] = self._ssl

    def _client_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise AimlopsError("this AimlopsClient is closed; create a new one")
        loop = self._loop
        if loop is not None:
            if loop is not asyncio.get_running_loop():
                raise AimlopsError(
                    "this AimlopsClient belongs to the event loop that created it, which is not "
                    "the running one (each asyncio.run() starts a new loop); create one client "
                    "per event loop"
                )
            return self._session  # type: ignore[return-value]  # set with the loop, below
        self._loop = asyncio.get_running_loop()
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_concurrency, ssl=self._ssl, enable_cleanup_closed=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=self.timeout,
                middlewares=self._middlewares,
                raise_for_status=False,
                auto_decompress=True,
                trace_configs=self._trace_configs or None,
            )
            # aiohttp re-sends a dropped GET, PUT or DELETE once, at once and unseen by this
            # session (aio-libs/aiohttp#10790, no public switch). Retries are this session's:
            # counted, backed off, signed afresh and bounded by max_retries.
            if "_retry_connection" in getattr(aiohttp.ClientSession, "ATTRS", ()):
                self._session._retry_connection = False
        return self._session

    async def close(self) -> None:
        """Close the connection pool (never a session the caller passed in). Safe to call twice."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    @property
    def clock_offset_ms(self) -> int:
        """Milliseconds added to the local clock for ``Scp-Timestamp`` (set on detected clock skew)."""
        return self._signer.clock_offset_ms

    # ------------------------------------------------------------------ the request path

    @overload
    async def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = ...,
        body: Any = ..., response_type: type[T], operation: Operation | None = ...,
        options: CallOptions | None = ...,
    ) -> T: ...

    @overload
    async def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = ...,
        body: Any = ..., response_type: None = ..., operation: Operation | None = ...,
        options: CallOptions | None = ...,
    ) -> Any: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        response_type: type[T] | None = None,
        operation: Operation | None = None,
        options: CallOptions | None = None,
    ) -> Any:
        """Send one API call (with retries) and return the structured answer.

        ``path`` is already quoted; ``params`` with ``None`` values are left out; ``body`` is a
        model (unstructured by the converter) or JSON-ready data. ``operation`` names the call
        in spans and metrics (``platforms.get``, its URL template); ``options`` the caller's
        per-call extras (query and body merged here, headers and timeout per attempt).
        """
        if options is None:
            url = self._url(path, params)
            data = None if body is None else _encode_body(unstructure(body))
        else:
            if options.query:
                params = {**(params or {}), **options.query}
            url = self._url(path, params)
            content = None if body is None else unstructure(body)
            if options.body is not None:
                content = merge_body(content, options.body)
            data = None if content is None else _encode_body(content)
        self.stats.calls += 1
        if self._observed is not False:
            return await self._observed_request(operation, method, url, data, response_type, options)
        _, _, answer = await self._send(method, url, data, response_type, options)
        return answer

    async def _observed_request(
        self, operation: Operation | None, method: str, url: URL, data: bytes | None,
        response_type: type[T] | None, options: CallOptions | None,
    ) -> Any:
        """A call with spans, metrics or hooks (see telemetry.py); decides once if there are any."""
        if self._observed is None:
            telemetry = self.telemetry
            self._observed = telemetry.resolve()
            if telemetry.observes_attempts:
                self._middlewares = (*self._middlewares, telemetry.middleware())
                if self._session is not None:  # else the session is created with them
                    self._request_options = {**self._request_options, "middlewares": self._middlewares}
        if not self._observed:
            _, _, answer = await self._send(method, url, data, response_type, options)
            return answer
        with self.telemetry.start_call(operation, method, url):
            _, _, answer = await self._send(method, url, data, response_type, options)
            return answer


    def _url(self, path: str, params: Mapping[str, Any] | None) -> URL:
        text = self.base_url + path
        if params:
            query = {key: _query_value(value) for key, value in params.items() if value is not None}
            if query:
                try:
                    text += "?" + "&".join([
                        # What urlencode(query, quote_via=quote) writes, without quoting text
                        # that quoting leaves as it is (page numbers, sizes, most names).
                        f"{_quoted(key)}={_quoted(value)}" for key, value in query.items()
                    ])
                except UnicodeEncodeError:
                    bad = next(key for key, value in query.items() if not is_unicode_text(value))
                    raise ValidationError(
                        "must be valid Unicode text (it holds a lone surrogate)", bad
                    ) from None
        # encoded=True: the URL goes out exactly as built here, and that is what gets signed.
        return URL(text, encoded=True)

    async def _send(
        self, method: str, url: URL, data: bytes | None, response_type: type[Any] | None,
        options: CallOptions | None = None,
    ) -> Any:
        """The attempts of one call: the first goes straight out, a failure enters ``backoff``.

        backoff's wrapper costs several microseconds per call (clock reads, a details dict, a
        wait generator), so a call that succeeds at once does not pay for it.
        """
        try:
            return await self._attempt(method, url, data, response_type, options)
        except APIError as error:
            first_failure = error
        return await self._send_again([first_failure], method, url, data, response_type, options)

    async def _replay_then_attempt(
        self, failures: list[APIError], method: str, url: URL, data: bytes | None,
        response_type: type[Any] | None, options: CallOptions | None = None,
    ) -> Any:
        # backoff's first try re-raises the first attempt's failure, so the give-up check, the
        # delay and the retry log line are exactly those of backoff wrapping every attempt.
        if failures:
            raise failures.pop()
        return await self._attempt(method, url, data, response_type, options)

    async def _attempt(
        self, method: str, url: URL, data: bytes | None, response_type: type[Any] | None,
        options: CallOptions | None = None,
    ) -> tuple[int, Mapping[str, str], Any]:
        """One signed exchange, its answer decoded and (with ``response_type``) structured.

        Structuring belongs to the attempt, so that an answer of the wrong shape is retried on
        reads like any other transient failure.
        """
        if self._rate is not None:
            await self._rate.wait()
        slots = self._slots
        if not slots.take_nowait():
            await slots.take()
        exchange = self._observed_exchange if self._observed else self._exchange
        try:
            sent_offset_ms = self._signer.clock_offset_ms
            status, headers, raw = await exchange(method, url, data, options)
            # The live gateway refuses a stale timestamp with its own 404 page, not a 401.
            if (
                status == 401 or (status == 404 and parse_error_body(raw).gateway_page)
            ) and self._corrected_clock_skew(headers, sent_offset_ms):
                status, headers, raw = await exchange(method, url, data, options)
        finally:
            slots.give_back()
        decoded = self._decode(method, url, status, headers, raw, options)
        if response_type is None:
            return status, headers, decoded
        return status, headers, _structure(method, url, status, headers, decoded, response_type)

    async def _exchange(
        self, method: str, url: URL, data: bytes | None, options: CallOptions | None = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        session = self._client_session()
        self.stats.attempts += 1
        started = time.perf_counter()
        headers = self._json_headers if data is not None else self._plain_headers
        timeout = self.timeout
        if options is not None:
            if options.headers:
                headers = {**(headers or {}), **options.headers}
            if options.timeout is not None:
                timeout = options.timeout
        try:
            # No redirects: a hop to another host would carry the access key and a valid signature.
            async with session.request(
                method, url, data=data, headers=headers, allow_redirects=False, timeout=timeout,
                **self._request_options,
            ) as response:
                raw = await _read_bounded(response, self.max_response_bytes)
                if raw is None:
                    raise _too_large(method, url, response, self.max_response_bytes)
        except aiohttp.ConnectionTimeoutError as exc:
            raise APITimeoutError(
                f"connecting timed out: {_shown(exc, url)}", method=method, url=str(url), sent=False
            ) from exc
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise APITimeoutError(
                f"no answer within {timeout.total} s", method=method, url=str(url)
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise APIConnectionError(
                f"TLS failure: {_shown(exc, url)}", method=method, url=str(url), sent=False, retryable=False
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            # Connection refused, DNS failure: the request provably never left.
            raise APIConnectionError(
                f"cannot connect: {_shown(exc, url)}", method=method, url=str(url), sent=False
            ) from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(
                f"connection failed: {type(exc).__name__}: {_shown(exc, url)}", method=method, url=str(url)
            ) from exc
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d in %.1f ms, headers %s", method, redact_url(url.raw_path_qs), response.status,
                (time.perf_counter() - started) * 1000,
                redact_headers(response.request_info.headers),
            )
        return response.status, response.headers, raw

    async def _observed_exchange(
        self, method: str, url: URL, data: bytes | None, options: CallOptions | None = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """``_exchange`` with the attempt recorded (metrics, ``on_response``) for the current call."""
        record = current_call()
        if record is None:
            return await self._exchange(method, url, data, options)
        record.attempt_started()
        started = time.perf_counter()
        try:
            status, headers, raw = await self._exchange(method, url, data, options)
        except BaseException as exc:
            record.attempt_finished(time.perf_counter() - started, None, exc)
            raise
        elapsed = time.perf_counter() - started
        record.attempt_finished(elapsed, status, None)
        hook = self.telemetry.on_response
        if hook is not None:
            await self.telemetry.call_hook(hook, ResponseInfo(
                operation=record.operation.name, method=method, url=str(url), status=status,
                headers=headers, elapsed=elapsed, attempt=record.attempts,
            ))
        return status, headers, raw

    def _corrected_clock_skew(self, headers: Mapping[str, str], sent_offset_ms: int) -> bool:
        """After a 401: when the server's ``Date`` shows our clock is off, correct it and say so.

        ``sent_offset_ms`` is the offset the refused request was stamped with. True means "send
        it again": also when a concurrent request already corrected the offset after this one was
        stamped, so that every request caught by the same skew is retried, with one warning.
        """
        date = headers.get("Date")
        if not date:
            return False
        try:
            server_now = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return False
        skew_ms = int((server_now - time.time()) * 1000)
        threshold_ms = CLOCK_SKEW_THRESHOLD_S * 1000
        if abs(skew_ms - sent_offset_ms) < threshold_ms:
            return False
        if abs(skew_ms - self._signer.clock_offset_ms) >= threshold_ms:
            logger.warning(
                "the local clock is %.0f s %s the server's; correcting request timestamps",
                abs(skew_ms) / 1000, "behind" if skew_ms > 0 else "ahead of",
            )
            self._signer.clock_offset_ms = skew_ms
        return True

    def _decode(
        self, method: str, url: URL, status: int, headers: Mapping[str, str], raw: bytes,
        options: CallOptions | None = None,
    ) -> Any:
        if 200 <= status < 300:
            if not raw.strip():
                return None
            try:
                return _json_loads(raw)
            except _JSONDecodeError as exc:
                raise APIStatusError(
                    f"the answer's body is not valid JSON ({len(raw)} bytes)",
                    status=status, code=MALFORMED_RESPONSE, body=_text(raw),
                    request_id=_request_id(headers, None), method=method, url=str(url),
                ) from exc
        raise _status_error(method, url, status, headers, raw, self._sent_api_version(options))

    def _sent_api_version(self, options: CallOptions | None) -> str | None:
        """The ``Scp-Api-Version`` this call carried: a per-call header wins over the client's."""
        if options is not None and options.headers:
            for name, value in options.headers.items():
                if name.lower() == "scp-api-version":
                    return value
        return self._headers.get("Scp-Api-Version")

    # ------------------------------------------------------------------ retry policy

    def _gives_up(self, error: BaseException) -> bool:
        return not _retryable(error, self.retry.max_retry_after)

    async def _count_attempts(self, details: Any) -> None:
        error = details.get("exception")
        if isinstance(error, APIStatusError):
            error.attempts = details["tries"]

    async def _back_off(self, details: Any) -> None:
        """Between a failed attempt and the next: count and log the retry, then sleep its delay."""
        error = details.get("exception")
        method = getattr(error, "method", "?")
        url = getattr(error, "url", "?")
        delay = self.retry.delay(details["tries"], error)
        self.stats.retries += 1
        record = current_call() if self._observed else None
        if record is not None and error is not None:
            record.retrying(error, delay)
        logger.info(
            "retrying %s %s (attempt %d of %d) in %.2f s after %s",
            method, URL(url).path if url else "?", details["tries"] + 1,
            self.retry.max_retries + 1, delay, describe(error),
        )
        await self._timing.sleep(delay)


def _retryable(error: BaseException, max_retry_after: float) -> bool:
    """Whether the session sends a failed call again at once (see the README's retry table).

    What ``outcomes.classify`` calls ``RETRY``: a request that never left, for every method; a
    read after any failure that may mend at once; PUT and DELETE after 429 and 503. A create
    that reached the service is never re-sent here, even after a 429: bulk runs look the
    release name up and honour ``Retry-After`` themselves.
    """
    if classify(error) is not Outcome.RETRY:
        return False
    if isinstance(error, APIStatusError):
        if error.method == "POST":
            return False
        # A Retry-After beyond the cap is not slept through: the caller gets the error at once.
        return error.retry_after is None or error.retry_after <= max_retry_after
    return True


def _structure(
    method: str, url: URL, status: int, headers: Mapping[str, str], decoded: Any,
    response_type: type[T],
) -> T:
    try:
        return structure_answer(decoded, response_type)
    except _SHAPE_ERRORS as exc:
        # A 2xx whose JSON does not fit the model (an array for an object, no release_id, a
        # number for a state) is the service's fault, and still an AimlopsError for the caller.
        raise APIStatusError(
            f"the answer does not fit {response_type.__name__}: {exc}",
            status=status, code=MALFORMED_RESPONSE, body=decoded,
            request_id=_request_id(headers, decoded), method=method, url=str(url),
        ) from exc


def _encode_body(value: Any) -> bytes:
    """The JSON body. Request models were checked strictly already (text, 64-bit integers)."""
    try:
        return _json_dumps(value)
    except (TypeError, ValueError):
        # The value itself is never shown: it may be a password.
        raise ValidationError("cannot be sent as JSON", "request") from None


_LEFT_AS_IT_IS = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch


def _quoted(text: str) -> str:
    """``quote(text, safe="")``: text of the characters it never quotes is returned as it is."""
    return text if _LEFT_AS_IT_IS(text) else quote(text, safe="")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _shown(error: BaseException, url: URL) -> str:
    """``error``'s text with ``url`` as shown (see redaction.py): aiohttp names the whole URL in
    some errors (a connect timeout). The error stays the cause of ours, so it is scrubbed too."""
    sent = str(url)
    shown = redact_url(sent)
    if shown != sent:
        error.args = tuple(
            arg.replace(sent, shown) if isinstance(arg, str) else arg for arg in error.args
        )
    return str(error).replace(sent, shown)


def _text(raw: bytes, limit: int = 500) -> str:
    # A UTF-8 character is at most 4 bytes: decode no more than can be shown.
    text = raw[: limit * 4].decode("utf-8", errors="replace")
    return text if len(text) <= limit and len(raw) <= limit * 4 else text[:limit] + "..."


async def _read_bounded(response: aiohttp.ClientResponse, limit: int | None) -> bytes | None:
    """The body, decompressed, or None as soon as it grows past ``limit`` bytes.

    Reading in chunks bounds memory and work by the limit, whatever the answer claims in its
    headers (a small gzip body can unpack to gigabytes).
    """
    if limit is None:
        return await response.read()
    length = response.content_length
    if length is not None and not response.headers.get("Content-Encoding"):
        # aiohttp reads no more than Content-Length bytes of a body sent as it is: one read.
        return None if length > limit else await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_READ_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(
    method: str, url: URL, response: aiohttp.ClientResponse, limit: int | None
) -> APIStatusError:
    # The body is not kept: holding it is what the limit prevents.
    return APIStatusError(
        f"the answer's body is larger than max_response_bytes ({limit} bytes); it was not read",
        status=response.status, code=RESPONSE_TOO_LARGE,
        request_id=_request_id(response.headers, None), method=method, url=str(url),
    )


def _visible_text(raw: bytes) -> str | None:
    """The readable text at the start of a body that is not JSON (an HTML or plain error page).

    Looks at the first ``ERROR_TEXT_BYTES`` only, drops markup tags and folds whitespace, in
    one linear pass (a regular expression over the whole body was quadratic on some inputs).
    """
    head = raw[:ERROR_TEXT_BYTES].decode("utf-8", errors="replace")
    pieces: list[str] = []
    position = 0
    while (start := head.find("<", position)) != -1:
        end = head.find(">", start + 1)
        if end == -1:
            break  # no tag closes from here on: the rest is text
        if end == start + 1:  # "<>" is not a tag: its "<" is text
            pieces.append(head[position:start + 1])
            position = start + 1
            continue
        pieces += (head[position:start], " ")  # a tag reads as a space
        position = end + 1
    pieces.append(head[position:])
    text = " ".join("".join(pieces).split())
    return text[:300] or None


def _request_id(headers: Mapping[str, str], body: Any) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    if isinstance(body, Mapping):
        for key in ("request_id", "requestId", "trace_id", "traceId"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return None


def _first_text(mapping: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


@attrs.frozen
class ErrorBody:
    """What an error answer says, wherever its fields sit.

    ``body`` is the decoded JSON (or the text, cut short); ``details`` every detail line;
    ``is_json`` False for an HTML or text page; ``gateway_page`` True for the API gateway's own
    ``{"timestamp", "path", "status", "error", "requestId"}`` page, not the service's answer.
    """

    body: Any
    code: str | None = None
    message: str | None = None
    details: tuple[str, ...] = ()
    request_id: str | None = None
    global_request_id: str | None = None
    is_json: bool = True
    gateway_page: bool = False


def parse_error_body(raw: bytes) -> ErrorBody:
    """Read an error answer: the live envelope ``{"errors": [...]}``, a flat JSON body, or text."""
    try:
        body = _json_loads(raw) if raw.strip() else None
    except _JSONDecodeError:
        message = _visible_text(raw)
        return ErrorBody(
            _text(raw), message=message, details=(message,) if message else (), is_json=False
        )
    if isinstance(body, Mapping):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            return _envelope(body, errors[0])
        if _is_gateway_page(body):
            return ErrorBody(
                body, code=_first_text(body, ("error",)), message=_first_text(body, ("error",)),
                request_id=_first_text(body, ("requestId",)), gateway_page=True,
            )
    code = message = None
    candidates = [body]
    if isinstance(body, Mapping):
        for key in ("error", "errors", "detail", "data"):
            inner = body.get(key)
            if isinstance(inner, list) and inner:
                inner = inner[0]
            candidates.append(inner)
    for candidate in candidates:
        if isinstance(candidate, Mapping):
            code = code or _first_text(candidate, ("code", "errorCode", "error_code", "status_code"))
            message = message or _first_text(
                candidate, ("message", "msg", "errorMessage", "error_message", "detail",
                            "description", "error"),
            )
        elif isinstance(candidate, str) and candidate and not message:
            message = candidate
    field = _first_text(body, ("field", "field_path", "fieldName")) if isinstance(body, Mapping) else None
    if message and field and field not in message:
        # The service names the offending field beside the message: keep it in what users read.
        message = f"{field}: {message}"
    return ErrorBody(body, code=code, message=message, details=(message,) if message else ())


def _envelope(body: Mapping[str, Any], first: Mapping[str, Any]) -> ErrorBody:
    """The live service's ``{"errors": [{"code", "title", "detail": [...], ...}]}``: its first error."""
    detail = first.get("detail")
    lines = detail if isinstance(detail, list) else [detail]
    # A hostile or broken peer may send millions of lines: keep what a person can read.
    details = tuple(
        _cut(str(line), ERROR_DETAIL_CHARS) for line in lines[:ERROR_DETAIL_LINES]
        if isinstance(line, (str, int)) and str(line).strip()
    )
    if len(lines) > ERROR_DETAIL_LINES:
        details += (f"(+{len(lines) - ERROR_DETAIL_LINES} more detail lines)",)
    title = _first_text(first, ("title", "message"))
    return ErrorBody(
        body,
        code=_first_text(first, ("code",)),
        message=_cut("; ".join(details), ERROR_MESSAGE_CHARS) if details else title,
        details=details or ((title,) if title else ()),
        request_id=_first_text(first, ("request_id", "requestId")),
        global_request_id=_first_text(first, ("global_request_id", "globalRequestId")),
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _is_gateway_page(body: Mapping[str, Any]) -> bool:
    # The gateway's Spring-style error page: no service error code, only its own bookkeeping.
    return (
        body.get("status") == 404 and "path" in body and "timestamp" in body
        and "error" in body and "code" not in body
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status_error(
    method: str, url: URL, status: int, headers: Mapping[str, str], raw: bytes,
    api_version_header: str | None = None,
) -> APIStatusError:
    parsed = parse_error_body(raw)
    body, code, message = parsed.body, parsed.code, parsed.message
    cls = status_error_class(status)
    kwargs: dict[str, Any] = {
        "status": status, "code": code, "body": body,
        "request_id": parsed.request_id or _request_id(headers, body),
        "global_request_id": parsed.global_request_id, "method": method, "url": str(url),
    }
    if parsed.details:
        kwargs["details"] = parsed.details
    text = message or _reason(status)
    if status in (429, 503):
        # A 503 may also say when to come back; the retry waits honour it as for a 429.
        kwargs["retry_after"] = _retry_after(headers)
    if status == 404 and parsed.gateway_page:
        # The gateway answers a request it cannot authenticate with its own 404 page: never a
        # "not found" from the service (a wait would take it for a deleted platform).
        cls, kwargs["code"] = AuthenticationError, GATEWAY_REFUSED
        text = (
            "the API gateway refused the signature or credentials (it answered with its 404 "
            "page): check the access key, the secret key, the account id and the clock"
        )
        kwargs["details"] = [text]
    elif status == 417 and not parsed.is_json:
        # The edge throttles with an HTML "Request Rejected" page: a rate limit, not an answer.
        cls, kwargs["code"] = RateLimitError, EDGE_THROTTLED
        kwargs["retry_after"] = _retry_after(headers)
        text = f"the edge throttled the request (417 {message or 'Request Rejected'})"
    elif status == 406:
        refused = (
            f"API version {api_version_header!r} (Scp-Api-Version)" if api_version_header
            else "the request's API version (no Scp-Api-Version was sent)"
        )
        text = (
            f"the service does not serve {refused}; choose another with api_version= "
            f"({message or 'Not Acceptable'})"
        )
    if cls is AuthenticationError and code is None and message is None:
        text = (
            "authentication failed: check the access key, the secret key, the account id and "
            "the clock"
        )
    return cls(text, **kwargs)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def load_ssl_context(cafile: str) -> ssl_module.SSLContext:
    """An SSL context that trusts ``cafile``; build it once, at start-up, off the hot path.

    A missing or unreadable bundle is a ``ValidationError`` naming ``ca_bundle``.
    """
    try:
        return ssl_module.create_default_context(cafile=cafile)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ValidationError(f"cannot load the CA bundle {cafile!r}: {reason}", "ca_bundle") from None
