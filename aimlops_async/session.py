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
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, TypeVar, overload
from urllib.parse import quote, urlencode

import aiohttp
import attrs
import backoff
import cattrs
from yarl import URL

from ._version import __version__
from .auth import SigningMiddleware
from .config import Credentials
from .converter import is_unicode_text, structure_answer, unstructure
from .errors import (
    AimlopsError,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ValidationError,
    describe,
    status_error_class,
)

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

__all__ = ["RateLimiter", "RetryPolicy", "Session", "Slots", "redact_headers"]

T = TypeVar("T")

logger = logging.getLogger("aimlops_async")

# Reads may be re-sent whatever happened to the first attempt.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# PUT and DELETE start a background operation on this service: a second copy sent while it runs
# is refused (400, the platform is UPDATING or DELETING) although the first one worked. They are
# re-sent only after an answer that says the first was not acted on.
NOT_ACTED_ON_STATUSES = frozenset({429, 503})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
MALFORMED_RESPONSE = "MALFORMED_RESPONSE"
# What structuring a JSON answer of the wrong shape into a response model can raise.
_SHAPE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, cattrs.BaseValidationError)
# Scp-Timestamp counts milliseconds: a retry sent sooner would repeat the previous attempt's
# timestamp and signature instead of being signed afresh.
MIN_RETRY_DELAY = 0.002
# A 401 whose server clock differs from ours by more than this is taken for clock skew.
CLOCK_SKEW_THRESHOLD_S = 30.0

_LOGGED_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept", "Accept-Language", "Content-Length", "Content-Type", "Date", "Retry-After",
        "Scp-Api-Version", "Scp-ClientType", "Scp-ProjectId", "Scp-Timestamp", "User-Agent",
        "X-Request-Id",
    )
)
_REQUEST_ID_HEADERS = ("X-Request-Id", "X-Scp-Request-Id", "Scp-Request-Id", "X-Trace-Id")
# How much of a body that is not JSON is read for the error message (the rest is not shown).
ERROR_TEXT_BYTES = 4096
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"
_READ_CHUNK_BYTES = 64 * 1024


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers fit for a log line: only an allowlist is shown, the rest (keys, signature) is REDACTED."""
    return {
        name: value if name.lower() in _LOGGED_HEADERS else "REDACTED"
        for name, value in headers.items()
    }


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

    def delays(self) -> Generator[float | None, BaseException | None, None]:
        """A ``backoff`` wait generator: it is sent each failure and yields the next delay."""
        attempt = 0
        failure = yield None
        while True:
            retry_after = getattr(failure, "retry_after", None)
            if retry_after is not None:
                delay = float(retry_after)
            else:
                delay = random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
            attempt += 1
            failure = yield max(delay, MIN_RETRY_DELAY)


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
        self._clock = clock
        self._sleep = sleep

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
        now = self._clock() if self._clock is not None else asyncio.get_running_loop().time()
        slot = self.reserve(now)
        if slot > now:
            try:
                await self._sleep(slot - now)
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
        api_version: str = "1.0",
        language: str = "en-US",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 64,
        requests_per_second: float | None = None,
        ssl: bool | ssl_module.SSLContext = True,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # The most body bytes (after decompression) read from one answer; None: no limit.
        self.max_response_bytes = max_response_bytes
        self.retry = retry or RetryPolicy()
        # An infinite timeout is no timeout (aiohttp would raise OverflowError on it).
        self.timeout = aiohttp.ClientTimeout(total=None if math.isinf(timeout) else timeout)
        self.stats = CallStats()
        self._signer = SigningMiddleware(credentials, client_type)
        self._headers = {
            "Scp-Accesskey": credentials.access_key,
            "Scp-ClientType": client_type,
            "Scp-Api-Version": f"aimlops-platform {api_version}",
            "Accept-Language": language,
            "Accept": "application/json",
            "User-Agent": (
                f"aimlops-async/{__version__} python/{platform.python_version_tuple()[0]}."
                f"{platform.python_version_tuple()[1]} aiohttp/{aiohttp.__version__}"
            ),
        }
        if credentials.project_id:
            self._headers["Scp-ProjectId"] = credentials.project_id
        self._json_headers = {"Content-Type": "application/json"}
        self._max_concurrency = max_concurrency
        self._slots = Slots(max_concurrency)
        self._rate = RateLimiter(requests_per_second) if requests_per_second else None
        self._ssl = ssl
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._send_again = backoff.on_exception(
            self.retry.delays,  # type: ignore[arg-type]  # backoff's stubs predate send()-driven waits
            APIError,
            max_tries=self.retry.max_retries + 1,
            jitter=None,
            giveup=self._gives_up,
            on_backoff=self._log_retry,
            on_giveup=self._count_attempts,
            logger=None,
        )(self._replay_then_attempt)

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        return self._closed

    def _client_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise AimlopsError("this AimlopsClient is closed; create a new one")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_concurrency, ssl=self._ssl, enable_cleanup_closed=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=self.timeout,
                middlewares=(self._signer,),
                raise_for_status=False,
                auto_decompress=True,
            )
            # aiohttp re-sends a dropped GET, PUT or DELETE once, at once and unseen by this
            # session (aio-libs/aiohttp#10790, no public switch). Retries are this session's:
            # counted, backed off, signed afresh and bounded by max_retries.
            if "_retry_connection" in getattr(aiohttp.ClientSession, "ATTRS", ()):
                self._session._retry_connection = False
        return self._session

    async def close(self) -> None:
        """Close the connection pool. Safe to call twice."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def clock_offset_ms(self) -> int:
        """Milliseconds added to the local clock for ``Scp-Timestamp`` (set on detected clock skew)."""
        return self._signer.clock_offset_ms

    # ------------------------------------------------------------------ the request path

    @overload
    async def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = ...,
        body: Any = ..., response_type: type[T],
    ) -> T: ...

    @overload
    async def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = ...,
        body: Any = ..., response_type: None = ...,
    ) -> Any: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        response_type: type[T] | None = None,
    ) -> Any:
        """Send one API call (with retries) and return the structured answer.

        ``path`` is already quoted; ``params`` with ``None`` values are left out; ``body`` is a
        model (unstructured by the converter) or JSON-ready data.
        """
        url = self._url(path, params)
        data = None if body is None else _encode_body(unstructure(body))
        self.stats.calls += 1
        _, _, answer = await self._send(method, url, data, response_type)
        return answer

    def _url(self, path: str, params: Mapping[str, Any] | None) -> URL:
        text = self.base_url + path
        if params:
            query = {key: _query_value(value) for key, value in params.items() if value is not None}
            if query:
                try:
                    text += "?" + urlencode(query, quote_via=quote)
                except UnicodeEncodeError:
                    bad = next(key for key, value in query.items() if not is_unicode_text(value))
                    raise ValidationError(
                        "must be valid Unicode text (it holds a lone surrogate)", bad
                    ) from None
        # encoded=True: the URL goes out exactly as built here, and that is what gets signed.
        return URL(text, encoded=True)

    async def _send(
        self, method: str, url: URL, data: bytes | None, response_type: type[Any] | None
    ) -> Any:
        """The attempts of one call: the first goes straight out, a failure enters ``backoff``.

        backoff's wrapper costs several microseconds per call (clock reads, a details dict, a
        wait generator), so a call that succeeds at once does not pay for it.
        """
        try:
            return await self._attempt(method, url, data, response_type)
        except APIError as error:
            first_failure = error
        return await self._send_again([first_failure], method, url, data, response_type)

    async def _replay_then_attempt(
        self, failures: list[APIError], method: str, url: URL, data: bytes | None,
        response_type: type[Any] | None,
    ) -> Any:
        # backoff's first try re-raises the first attempt's failure, so the give-up check, the
        # delay and the retry log line are exactly those of backoff wrapping every attempt.
        if failures:
            raise failures.pop()
        return await self._attempt(method, url, data, response_type)

    async def _attempt(
        self, method: str, url: URL, data: bytes | None, response_type: type[Any] | None
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
        try:
            sent_offset_ms = self._signer.clock_offset_ms
            status, headers, raw = await self._exchange(method, url, data)
            if status == 401 and self._corrected_clock_skew(headers, sent_offset_ms):
                status, headers, raw = await self._exchange(method, url, data)
        finally:
            slots.give_back()
        decoded = self._decode(method, url, status, headers, raw)
        if response_type is None:
            return status, headers, decoded
        return status, headers, _structure(method, url, status, headers, decoded, response_type)

    async def _exchange(
        self, method: str, url: URL, data: bytes | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        session = self._client_session()
        self.stats.attempts += 1
        started = time.perf_counter()
        try:
            # No redirects: a hop to another host would carry the access key and a valid signature.
            async with session.request(
                method, url, data=data, headers=self._json_headers if data is not None else None,
                allow_redirects=False,
            ) as response:
                raw = await _read_bounded(response, self.max_response_bytes)
                if raw is None:
                    raise _too_large(method, url, response, self.max_response_bytes)
        except aiohttp.ConnectionTimeoutError as exc:
            raise APITimeoutError(
                f"connecting timed out: {exc}", method=method, url=str(url), sent=False
            ) from exc
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise APITimeoutError(
                f"no answer within {self.timeout.total} s", method=method, url=str(url)
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise APIConnectionError(
                f"TLS failure: {exc}", method=method, url=str(url), sent=False, retryable=False
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            # Connection refused, DNS failure: the request provably never left.
            raise APIConnectionError(
                f"cannot connect: {exc}", method=method, url=str(url), sent=False
            ) from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(
                f"connection failed: {type(exc).__name__}: {exc}", method=method, url=str(url)
            ) from exc
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d in %.1f ms, headers %s", method, url.raw_path_qs, response.status,
                (time.perf_counter() - started) * 1000,
                redact_headers(response.request_info.headers),
            )
        return response.status, response.headers, raw

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
        self, method: str, url: URL, status: int, headers: Mapping[str, str], raw: bytes
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
        raise _status_error(method, url, status, headers, raw)

    # ------------------------------------------------------------------ retry policy

    def _gives_up(self, error: BaseException) -> bool:
        return not _retryable(error, self.retry.max_retry_after)

    async def _count_attempts(self, details: Any) -> None:
        error = details.get("exception")
        if isinstance(error, APIStatusError):
            error.attempts = details["tries"]

    async def _log_retry(self, details: Any) -> None:
        error = details.get("exception")
        method = getattr(error, "method", "?")
        url = getattr(error, "url", "?")
        self.stats.retries += 1
        logger.info(
            "retrying %s %s (attempt %d of %d) in %.2f s after %s",
            method, URL(url).path if url else "?", details["tries"] + 1,
            self.retry.max_retries + 1, details["wait"], describe(error),
        )


def _retryable(error: BaseException, max_retry_after: float) -> bool:
    """Whether the session sends a failed call again (see the README's retry table).

    A request that never left (refused, DNS) is re-sent for every method. After that: GET on
    any transient failure; PUT and DELETE only on 429 and 503; POST never, since re-sending a
    create could make a second platform.
    """
    if isinstance(error, APIConnectionError):
        if not error.retryable:
            return False
        return not error.sent or error.method in SAFE_METHODS
    if isinstance(error, APIStatusError):
        if error.code == RESPONSE_TOO_LARGE:
            return False  # the same answer again would cost as much again
        if error.method in SAFE_METHODS:
            retry = error.status in RETRYABLE_STATUSES or error.code == MALFORMED_RESPONSE
        elif error.method in ("PUT", "DELETE"):
            retry = error.status in NOT_ACTED_ON_STATUSES
        else:
            retry = False
        # A Retry-After beyond the cap is not slept through: the caller gets the error at once.
        return retry and (error.retry_after is None or error.retry_after <= max_retry_after)
    return False


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


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
    if length is not None and length > limit and not response.headers.get("Content-Encoding"):
        return None
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


def parse_error_body(raw: bytes) -> tuple[Any, str | None, str | None]:
    """``(body, code, message)`` from an error answer: JSON wherever the fields sit, or plain text."""
    try:
        body = _json_loads(raw) if raw.strip() else None
    except _JSONDecodeError:
        return _text(raw), None, _visible_text(raw)
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
    return body, code, message


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
    method: str, url: URL, status: int, headers: Mapping[str, str], raw: bytes
) -> APIStatusError:
    body, code, message = parse_error_body(raw)
    cls = status_error_class(status)
    kwargs: dict[str, Any] = {
        "status": status, "code": code, "body": body, "request_id": _request_id(headers, body),
        "method": method, "url": str(url),
    }
    text = message or _reason(status)
    if status in (429, 503):
        # A 503 may also say when to come back; the retry waits honour it as for a 429.
        kwargs["retry_after"] = _retry_after(headers)
    if cls is AuthenticationError and code is None and message is None:
        text = "authentication failed: check the access key, the secret key and the clock"
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
