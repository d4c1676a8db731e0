"""The exception tree (CONTRACT section 5): every error this library raises derives from AimlopsError."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .redaction import redact_url

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AimlopsError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "TerminalStateError",
    "ValidationError",
    "WaiterError",
    "WaiterTimeoutError",
]


# Codes this library gives to answers that are not the service's own (``APIStatusError.code``).
MALFORMED_RESPONSE = "MALFORMED_RESPONSE"  # a 2xx whose body is not the expected JSON shape
RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"  # a body past ``max_response_bytes``
INVALID_STATE = "INVALID_STATE"  # 400: the platform's state does not allow it (an operation already runs)
GATEWAY_REFUSED = "GATEWAY_REFUSED"  # the API gateway's own 404 page: the request was not authenticated
EDGE_THROTTLED = "EDGE_THROTTLED"  # the edge's 417 "Request Rejected" page: slow down

class AimlopsError(Exception):
    """Base class of every exception raised by aimlops_async.

    Every subclass survives a pickle round trip with all its attributes (task queues carry
    errors between processes): the object is rebuilt from its ``args`` and ``__dict__``
    without calling ``__init__``, so keyword-only arguments and attributes set later are kept.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore_error, (type(self), self.args, self.__dict__)


class ValidationError(AimlopsError, ValueError):
    """Bad input caught before anything was sent.

    ``errors`` lists every problem found as ``(field_path, message)`` pairs; the exception's
    message names each of them, for example ``node_pool_create_request.max_node_count: must be ...``.
    """

    def __init__(self, errors: Sequence[tuple[str, str]] | str, field: str | None = None) -> None:
        if isinstance(errors, str):
            errors = [(field or "", errors)]
        self.errors: list[tuple[str, str]] = list(errors)
        self.field: str | None = self.errors[0][0] if self.errors else field
        super().__init__(self._render())

    def _render(self) -> str:
        lines = [f"{path}: {message}" if path else message for path, message in self.errors]
        if len(lines) == 1:
            return lines[0]
        return f"{len(lines)} problems:\n" + "\n".join(f"  - {line}" for line in lines)


class APIError(AimlopsError):
    """An error that came from talking to the service (or failing to).

    ``url`` is the request's URL as shown: the values of query parameters the API does not
    document (a caller's ``extra_query=``, perhaps a signed token) read ``REDACTED``.
    """

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = None if url is None else redact_url(url)


class APIConnectionError(APIError):
    """No answer: the connection failed or dropped.

    ``sent`` tells whether the request may have reached the server (``False`` only when the
    connection was provably never made, such as refused or DNS failure). ``retryable`` is False
    for failures that a retry cannot mend (a TLS certificate problem).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        sent: bool = True,
        retryable: bool = True,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.sent = sent
        self.retryable = retryable


class APITimeoutError(APIConnectionError):
    """No answer within the per-attempt timeout; the request may have reached the server."""


class APIStatusError(APIError):
    """The service answered with a status outside 2xx, or with an answer that cannot be used.

    Codes this library gives: ``MALFORMED_RESPONSE`` (a 2xx body that is not JSON, not an
    object, or without the model's ``required_fields``), ``RESPONSE_TOO_LARGE`` (a body over
    ``max_response_bytes``; ``body`` is None), ``GATEWAY_REFUSED`` and ``EDGE_THROTTLED``.

    Read from the live service's envelope ``{"errors": [{"code", "title", "detail": [...],
    "status", "request_id", "global_request_id"}]}`` (its first error) or from a flat body:
    ``code``; ``message``, the detail text; ``details``, every detail line; ``request_id`` and
    ``global_request_id``; ``body``, the decoded answer.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        body: Any = None,
        request_id: str | None = None,
        method: str | None = None,
        url: str | None = None,
        attempts: int = 1,
        retry_after: float | None = None,
        details: Sequence[str] | None = None,
        global_request_id: str | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.details: list[str] = list(details) if details is not None else [message]
        self.global_request_id = global_request_id
        # The server's Retry-After in seconds (429, and 503 when it sends one), else None.
        self.retry_after = retry_after
        self.status = status
        self.code = code
        self.body = body
        self.request_id = request_id
        # How many times the call was sent (retries included) before this answer ended it.
        self.attempts = attempts

    def __str__(self) -> str:
        parts = [f"{self.status}"]
        if self.code:
            parts.append(self.code)
        text = f"[{' '.join(parts)}] {self.message}"
        if self.method and self.url:
            text += f" ({self.method} {self.url})"
        if self.request_id:
            text += f" request_id={self.request_id}"
        return text


class BadRequestError(APIStatusError):
    """400: the service refused the request as malformed or invalid."""


class AuthenticationError(APIStatusError):
    """401: missing or wrong signature, unknown access key, or a timestamp outside the window.

    Also the API gateway's own 404 page (``status`` 404, ``code`` ``GATEWAY_REFUSED``): the
    gateway answers a request it cannot authenticate that way, so it is never a "not found".
    """


class PermissionDeniedError(APIStatusError):
    """403: the credentials may not act on this project or resource."""


class NotFoundError(APIStatusError):
    """404: no such platform, cluster or path."""


class ConflictError(APIStatusError):
    """409: the resource is in a state that does not allow the operation."""


class RateLimitError(APIStatusError):
    """429: too many requests. ``retry_after`` holds the server's ``Retry-After`` in seconds.

    Also the edge's 417 HTML page ("Request Rejected", code ``EDGE_THROTTLED``); a read is
    retried first, like after a 429.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, retry_after=retry_after, **kwargs)


class ServerError(APIStatusError):
    """5xx: the service failed."""


class WaiterError(AimlopsError):
    """A wait ended without reaching its target. ``last_detail`` is the last detail seen (or None)."""

    def __init__(self, message: str, *, release_id: str, last_detail: Any = None) -> None:
        super().__init__(message)
        self.release_id = release_id
        self.last_detail = last_detail


class TerminalStateError(WaiterError):
    """The platform reached a failure state (``FAILED``, ``ERROR``, ...) while being waited for."""

    def __init__(
        self, message: str, *, release_id: str, state: str | None, last_detail: Any = None
    ) -> None:
        super().__init__(message, release_id=release_id, last_detail=last_detail)
        self.state = state


class WaiterTimeoutError(WaiterError, TimeoutError):
    """The wait ran past its timeout. Also a built-in ``TimeoutError``.

    ``last_error`` is the failure of the wait's last poll when that poll failed (the endpoint
    unreachable, a 5xx, a throttle), else None: "not there yet" and "could not look" differ.
    """

    def __init__(
        self, message: str, *, release_id: str, last_detail: Any = None,
        last_error: BaseException | None = None,
    ) -> None:
        super().__init__(message, release_id=release_id, last_detail=last_detail)
        self.last_error = last_error


def _restore_error(
    cls: type[AimlopsError], args: tuple[Any, ...], state: dict[str, Any]
) -> AimlopsError:
    """The unpickling half of ``AimlopsError.__reduce__``."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The most specific exception class for an HTTP status."""
    if status >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status, APIStatusError)


def describe(error: BaseException) -> str:
    """A short label for a log line: ``503 SERVICE_UNAVAILABLE``, or the class name."""
    if isinstance(error, APIStatusError):
        return f"{error.status} {error.code or ''}".strip()
    return type(error).__name__
