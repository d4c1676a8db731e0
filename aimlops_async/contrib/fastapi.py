"""FastAPI integration: one shared AimlopsClient per app, a dependency, SDK errors as HTTP answers, SSE.

Install with ``pip install 'aimlops-async[fastapi]'``. The pieces:

- ``aimlops_lifespan(**client_kwargs)``: ``FastAPI(lifespan=...)``. Opens one ``AimlopsClient``
  at start-up (stored on ``app.state.aimlops_client``), and at shutdown cancels the app's
  background tasks, then closes the client. Wraps your own lifespan when you pass one;
  ``open_client(app, ...)`` is the same as an ``async with`` for use inside your own lifespan.
- ``AimlopsClientDep`` (``Depends(get_client)``): hands a route the app's one client.
- ``TaskRegistry`` / ``TaskRegistryDep``: background work (waits after a 202) that shutdown
  cancels cleanly before the client closes.
- ``install_exception_handlers(app)``: SDK errors as JSON HTTP answers (see ``error_answer``).
- ``log_through_server(...)``: the SDK's (and your) log lines in the server's log.
- ``platform_events_response(client, release_id)``: a ``text/event-stream`` of a platform's states.

Answers never carry credentials, signatures, request bodies or passwords: upstream messages are
passed on only for the caller's own mistakes (400, 404, 409, 429), the client's keys are
scrubbed from every text as a last line of defence, and FastAPI's own 422 answers lose their
``input`` (which would echo a posted ``initial_user_password``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, TypeVar, overload

import attrs

try:
    from fastapi import Depends
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.applications import Starlette
    from starlette.requests import HTTPConnection, Request
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "aimlops_async.contrib.fastapi needs FastAPI, which is not installed; "
        "install it with: pip install 'aimlops-async[fastapi]'"
    ) from exc

from .. import (
    AimlopsClient,
    AimlopsError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TerminalStateError,
    ValidationError,
    WaiterError,
    WaiterTimeoutError,
    to_json,
)

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "SSE_END_ID",
    "SSE_KEEPALIVE",
    "STATE_CLIENT",
    "STATE_TASKS",
    "AimlopsClientDep",
    "ErrorAnswer",
    "TaskRegistry",
    "TaskRegistryDep",
    "aimlops_lifespan",
    "error_answer",
    "get_client",
    "get_tasks",
    "install_exception_handlers",
    "log_through_server",
    "open_client",
    "platform_events_response",
    "sse_event",
    "to_jsonable",
]

logger = logging.getLogger("aimlops_async.contrib.fastapi")

T = TypeVar("T")
AppT = TypeVar("AppT", bound=Starlette)
StateT = TypeVar("StateT")

STATE_CLIENT = "aimlops_client"
"""Attribute of ``app.state`` holding the app's one ``AimlopsClient`` while the app runs."""
STATE_TASKS = "aimlops_tasks"
"""Attribute of ``app.state`` holding the app's ``TaskRegistry`` while the app runs."""

DEFAULT_SHUTDOWN_TIMEOUT = 10.0


# ---------------------------------------------------------------------------- background tasks


class TaskRegistry:
    """The background tasks of an app: started with ``spawn``, all cancelled by ``aclose``.

    Unlike ``asyncio.TaskGroup`` (Python 3.11+), one task failing never cancels the others: each
    background wait lives and fails on its own, and its failure is logged rather than left as
    "Task exception was never retrieved". Strong references are kept so no task is collected
    while it runs.
    """

    def __init__(self, name: str = "aimlops") -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    @property
    def closing(self) -> bool:
        """True once ``aclose`` began: ``spawn`` refuses new work."""
        return self._closing

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        """The tasks still running."""
        return frozenset(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Run ``coro`` as a background task of the app; ``RuntimeError`` once shutdown began."""
        if self._closing:
            coro.close()  # never awaited: close it so Python does not warn about it
            raise RuntimeError("the app is shutting down; no new background tasks are started")
        label = name or getattr(coro, "__qualname__", "task")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{label}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def running(self, name: str) -> bool:
        """True while a task spawned with ``name`` runs (e.g. the deploy wait of a platform just created)."""
        full_name = f"{self.name}:{name}"
        return any(task.get_name() == full_name and not task.done() for task in self._tasks)

    def cancel(self, name: str) -> int:
        """Cancel the running tasks spawned with ``name`` (e.g. a deploy wait when a delete comes).

        Returns how many were cancelled.
        """
        full_name = f"{self.name}:{name}"
        found = [task for task in self._tasks if task.get_name() == full_name and not task.done()]
        for task in found:
            task.cancel()
        return len(found)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        if isinstance(error, AimlopsError):
            # An expected kind of outcome (a failed platform, a wait that ran out): no traceback.
            logger.warning("background task %s failed: %s", task.get_name(), error)
        else:
            logger.error("background task %s crashed", task.get_name(), exc_info=error)

    async def aclose(self, timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        """Refuse new tasks, cancel the running ones and wait (up to ``timeout`` s) for them to end."""
        self._closing = True
        running = list(self._tasks)
        for task in running:
            task.cancel()
        if not running:
            return
        _, stuck = await asyncio.wait(running, timeout=timeout)
        if stuck:
            logger.warning(
                "%d background task(s) did not stop within %s s of being cancelled: %s",
                len(stuck), timeout, ", ".join(sorted(task.get_name() for task in stuck)),
            )

    async def __aenter__(self) -> TaskRegistry:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<TaskRegistry {self.name!r} running={len(self._tasks)} closing={self._closing}>"


# ---------------------------------------------------------------------------- lifespan


@asynccontextmanager
async def open_client(
    app: Starlette,
    *,
    client_factory: Callable[[], AimlopsClient] | None = None,
    shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
    **client_kwargs: Any,
) -> AsyncIterator[AimlopsClient]:
    """Give ``app`` one ``AimlopsClient`` and a ``TaskRegistry`` for as long as the block runs.

    ``client_kwargs`` go to ``AimlopsClient`` (none: endpoint and credentials come from the
    environment, read now, at start-up, not at import); or pass ``client_factory``. On the way
    out, even when cancelled: background tasks are cancelled first (waiting at most
    ``shutdown_timeout`` s), then the client is closed.
    """
    if client_factory is not None and client_kwargs:
        raise TypeError("pass either client_factory or AimlopsClient arguments, not both")
    if getattr(app.state, STATE_CLIENT, None) is not None:
        raise RuntimeError("this app already has an AimlopsClient (aimlops_lifespan used twice?)")
    client = client_factory() if client_factory is not None else AimlopsClient(**client_kwargs)
    tasks = TaskRegistry()
    setattr(app.state, STATE_CLIENT, client)
    setattr(app.state, STATE_TASKS, tasks)
    try:
        yield client
    finally:
        try:
            # Waits in flight use the client: stop them before it closes under them.
            await tasks.aclose(timeout=shutdown_timeout)
        finally:
            try:
                await client.close()
            finally:
                setattr(app.state, STATE_CLIENT, None)
                setattr(app.state, STATE_TASKS, None)


@overload
def aimlops_lifespan(
    lifespan: None = None,
    *,
    client_factory: Callable[[], AimlopsClient] | None = ...,
    shutdown_timeout: float | None = ...,
    **client_kwargs: Any,
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]: ...


@overload
def aimlops_lifespan(
    lifespan: Callable[[AppT], AbstractAsyncContextManager[StateT]],
    *,
    client_factory: Callable[[], AimlopsClient] | None = ...,
    shutdown_timeout: float | None = ...,
    **client_kwargs: Any,
) -> Callable[[AppT], AbstractAsyncContextManager[StateT]]: ...


def aimlops_lifespan(
    lifespan: Callable[[Any], AbstractAsyncContextManager[Any]] | None = None,
    *,
    client_factory: Callable[[], AimlopsClient] | None = None,
    shutdown_timeout: float | None = DEFAULT_SHUTDOWN_TIMEOUT,
    **client_kwargs: Any,
) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    """A lifespan for ``FastAPI(lifespan=...)`` that owns the app's one ``AimlopsClient``.

    ``aimlops_lifespan(poll_timeout=900)`` or ``aimlops_lifespan(my_lifespan, max_retries=5)``:
    your ``lifespan`` runs inside, so its start-up already finds ``app.state.aimlops_client`` and
    its shutdown runs before the background tasks are cancelled and the client is closed; the
    state it yields is passed on. See ``open_client`` for the arguments.
    """

    @asynccontextmanager
    async def combined(app: Any) -> AsyncIterator[Any]:
        async with open_client(
            app, client_factory=client_factory, shutdown_timeout=shutdown_timeout, **client_kwargs
        ):
            if lifespan is None:
                yield None
            else:
                async with lifespan(app) as state:
                    yield state

    return combined


@contextlib.contextmanager
def log_through_server(
    *names: str, level: int = logging.INFO, server_logger: str = "uvicorn.error"
) -> Iterator[None]:
    """While the block runs, the loggers ``names`` (default ``aimlops_async``) write to the server's log.

    uvicorn configures only its own loggers, so without this the lines of background tasks
    (a wait that failed, a platform deployed) go nowhere, or to bare stderr. The loggers get the
    handlers of ``server_logger`` and ``level`` (when theirs is not set), and stop propagating to
    the root logger meanwhile so no line is written twice; everything is put back at exit. Does
    nothing when the server logger has no handlers (a server started with ``log_config=None``).
    """
    handlers = list(logging.getLogger(server_logger).handlers)
    if not handlers:
        yield
        return
    saved = []
    for name in names or ("aimlops_async",):
        target = logging.getLogger(name)
        saved.append((target, list(target.handlers), target.level, target.propagate))
        for handler in handlers:
            if handler not in target.handlers:
                target.addHandler(handler)
        if target.level == logging.NOTSET:
            target.setLevel(level)
        target.propagate = False
    try:
        yield
    finally:
        for target, old_handlers, old_level, old_propagate in saved:
            target.handlers = old_handlers
            target.setLevel(old_level)
            target.propagate = old_propagate


# ---------------------------------------------------------------------------- dependencies


def get_client(connection: HTTPConnection) -> AimlopsClient:
    """The app's one ``AimlopsClient`` (a dependency: ``client: AimlopsClientDep``)."""
    client = getattr(connection.app.state, STATE_CLIENT, None)
    if not isinstance(client, AimlopsClient):
        raise RuntimeError(
            "this app has no AimlopsClient: create it with FastAPI(lifespan=aimlops_lifespan(...)) "
            "and run it under a server that runs the lifespan"
        )
    return client


def get_tasks(connection: HTTPConnection) -> TaskRegistry:
    """The app's ``TaskRegistry`` (a dependency: ``tasks: TaskRegistryDep``)."""
    tasks = getattr(connection.app.state, STATE_TASKS, None)
    if not isinstance(tasks, TaskRegistry):
        raise RuntimeError(
            "this app has no TaskRegistry: create it with FastAPI(lifespan=aimlops_lifespan(...))"
        )
    return tasks


AimlopsClientDep = Annotated[AimlopsClient, Depends(get_client)]
TaskRegistryDep = Annotated[TaskRegistry, Depends(get_tasks)]


# ---------------------------------------------------------------------------- errors as answers


@attrs.frozen
class ErrorAnswer:
    """The HTTP answer for an SDK error: status, JSON body and headers (``Retry-After``)."""

    status_code: int
    content: dict[str, Any]
    headers: dict[str, str] = attrs.field(factory=dict)

    def response(self) -> JSONResponse:
        return JSONResponse(self.content, status_code=self.status_code, headers=self.headers or None)


def error_answer(error: AimlopsError, *, redact: Iterable[str] = ()) -> ErrorAnswer:
    """How an SDK error is answered. Every body has ``detail`` (text) and ``error`` (a code).

    ========================================  ======  ==========================================
    error                                     status  body (besides ``detail``)
    ========================================  ======  ==========================================
    ``ValidationError``                       422     ``detail`` is a list like FastAPI's:
                                                      ``loc``, ``field`` (``a.b[0]``), ``msg``
    ``NotFoundError``                         404     ``error: not_found``
    ``BadRequestError``                       400     ``error: bad_request``
    ``BadRequestError``, a duplicate name     409     ``error: already_exists``
    ``ConflictError``                         409     ``error: conflict``
    ``RateLimitError`` (429, the edge's 417)  429     ``retry_after``; ``Retry-After`` header
    ``AuthenticationError``, 403              502     ``error: upstream_auth_failed``
    ``ServerError``, other status errors      502     ``error: upstream_error``, ``upstream_status``
    ``APITimeoutError``                       502     ``error: upstream_timeout``
    ``APIConnectionError``                    502     ``error: upstream_unreachable``
    ``TerminalStateError``                    409     ``error: terminal_state``, ``release_id``, ``state``
    ``WaiterTimeoutError``                    504     ``error: wait_timeout``, ``release_id``, ``state``
    anything else                             500     ``error: internal_error``
    ========================================  ======  ==========================================

    An ``AuthenticationError`` (a 401, or the API gateway's 404 page) or a 403 from the
    platform API means *this service's* keys are wrong or lack rights; the
    browser's request is not at fault, so it is a 502 (a 401 would make a front end log its
    user out), with no upstream text. Upstream 4xx texts are passed on for 400/404/409/429
    only; ``upstream_request_id`` is included when the service sent one. Every text has the
    strings in ``redact`` (the client's keys) replaced by ``***``.
    """
    secrets = [secret for secret in redact if secret]

    def clean(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    if isinstance(error, ValidationError):
        return ErrorAnswer(422, {
            "detail": [
                {"loc": _location(path), "field": path, "msg": clean(message), "type": "value_error"}
                for path, message in error.errors
            ],
            "error": "validation_error",
        })
    if isinstance(error, APIStatusError):
        return _status_answer(error, clean)
    if isinstance(error, APITimeoutError):
        return ErrorAnswer(502, {
            "detail": "the platform API did not answer in time", "error": "upstream_timeout",
        })
    if isinstance(error, APIConnectionError):
        return ErrorAnswer(502, {
            "detail": "the platform API could not be reached", "error": "upstream_unreachable",
        })
    if isinstance(error, WaiterError):
        return _waiter_answer(error, clean)
    return ErrorAnswer(500, {"detail": "internal error", "error": "internal_error"})


def _status_answer(error: APIStatusError, clean: Callable[[str], str]) -> ErrorAnswer:
    extra: dict[str, Any] = {}
    if error.request_id:
        extra["upstream_request_id"] = clean(error.request_id)
    message = clean(error.message or "")
    if isinstance(error, RateLimitError):
        headers: dict[str, str] = {}
        body: dict[str, Any] = {
            "detail": message or "too many requests to the platform API", "error": "rate_limited",
        }
        if error.retry_after is not None:
            seconds = max(0, math.ceil(error.retry_after))
            headers["Retry-After"] = str(seconds)
            body["retry_after"] = seconds
        return ErrorAnswer(429, {**body, **extra}, headers)
    if isinstance(error, BadRequestError) and "DUPLICATE" in (error.code or "").upper():
        # The service says 400, but for the caller a name already taken is a conflict.
        return ErrorAnswer(409, {"detail": message or "already exists", "error": "already_exists", **extra})
    for cls, status, code in (
        (NotFoundError, 404, "not_found"),
        (BadRequestError, 400, "bad_request"),
        (ConflictError, 409, "conflict"),
    ):
        if isinstance(error, cls):
            return ErrorAnswer(status, {"detail": message or code.replace("_", " "), "error": code, **extra})
    if isinstance(error, (AuthenticationError, PermissionDeniedError)):
        return ErrorAnswer(502, {
            "detail": "the platform API refused this service's credentials",
            "error": "upstream_auth_failed", "upstream_status": error.status, **extra,
        })
    return ErrorAnswer(502, {
        "detail": f"the platform API failed (HTTP {error.status})",
        "error": "upstream_error", "upstream_status": error.status, **extra,
    })


def _waiter_answer(error: WaiterError, clean: Callable[[str], str]) -> ErrorAnswer:
    state = getattr(error, "state", None)
    if state is None:
        state = getattr(error.last_detail, "release_state", None)
    body: dict[str, Any] = {
        "detail": clean(str(error)),
        "release_id": error.release_id or None,
        "state": None if state is None else str(state),
    }
    if isinstance(error, WaiterTimeoutError):
        return ErrorAnswer(504, {**body, "error": "wait_timeout"})
    if isinstance(error, TerminalStateError):
        return ErrorAnswer(409, {**body, "error": "terminal_state"})
    return ErrorAnswer(502, {**body, "error": "wait_failed"})


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _location(path: str) -> list[str | int]:
    """``a.b[0].c`` as FastAPI-style ``loc``: ``["a", "b", 0, "c"]``."""
    return [name if name else int(index) for name, index in _PATH_PART.findall(path)]


def _secrets_of(app: Any) -> list[str]:
    client = getattr(getattr(app, "state", None), STATE_CLIENT, None)
    credentials = getattr(client, "credentials", None)
    if credentials is None:
        return []
    return _secret_texts(credentials)


def _secret_texts(credentials: Any) -> list[str]:
    """What an answer to a browser must never hold: the keys and the auth token."""
    return [text for text in (credentials.secret_key, credentials.access_key, credentials.auth_token) if text]


async def _aimlops_error_handler(request: Request, error: Exception) -> Response:
    if not isinstance(error, AimlopsError):  # pragma: no cover - registered for AimlopsError only
        raise error
    secrets = _secrets_of(request.app)
    answer = error_answer(error, redact=secrets)
    if answer.status_code >= 500:
        # The SDK's messages hold no secrets; scrubbed again all the same.
        text = str(error)
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        # Refused credentials are this service's misconfiguration: an operator must act.
        level = logging.ERROR if answer.content.get("error") == "upstream_auth_failed" else logging.WARNING
        logger.log(level, "%s %s -> %d: %s", request.method, request.url.path, answer.status_code, text)
    return answer.response()


async def _request_validation_handler(request: Request, error: Exception) -> Response:
    if not isinstance(error, RequestValidationError):  # pragma: no cover
        raise error
    # FastAPI's default answer echoes the offending input, which can be a posted password.
    errors = [
        {
            **{key: value for key, value in problem.items() if key in ("type", "loc", "msg")},
            "field": _field_path(problem.get("loc", ())),
        }
        for problem in error.errors()
    ]
    return JSONResponse({"detail": jsonable_encoder(errors), "error": "validation_error"}, status_code=422)


_REQUEST_PARTS = ("body", "query", "path", "header", "cookie")


def _field_path(location: Iterable[Any]) -> str:
    """FastAPI's ``loc`` as the SDK's field path: ``["body", "a", "b", 0]`` -> ``a.b[0]``."""
    parts = list(location)
    if len(parts) > 1 and parts[0] in _REQUEST_PARTS:
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def install_exception_handlers(app: Starlette, *, hide_request_input: bool = True) -> None:
    """Answer every ``AimlopsError`` raised in a route as ``error_answer`` says.

    ``hide_request_input`` (default) also replaces FastAPI's own 422 handler by one that leaves
    out ``input`` and ``ctx``: the default would echo the posted body (with its
    ``initial_user_password``) back to the caller.
    """
    app.add_exception_handler(AimlopsError, _aimlops_error_handler)
    if hide_request_input:
        app.add_exception_handler(RequestValidationError, _request_validation_handler)


# ---------------------------------------------------------------------------- JSON and SSE


def to_jsonable(model: Any) -> Any:
    """An SDK model (or a mapping or list of them) as JSON-ready data with the API's field names:
    ``aimlops_async.to_json(model, keep_none=True)``, the rendering the command line uses too,
    with fields that are None written as ``null`` so that every answer has the same keys."""
    return to_json(model, keep_none=True)


SSE_KEEPALIVE = b": keep-alive\n\n"
"""An SSE comment line: keeps proxies from timing out an idle stream; clients ignore it."""

SSE_END_ID = "end"
"""``id`` of a stream's last event. An EventSource that reconnects after it sends it back as
``Last-Event-ID``; answer 204 then, which tells the browser to stop reconnecting."""


def sse_event(event: str, data: Any, *, id: str | None = None) -> bytes:
    """One Server-Sent Event: ``event:``, an optional ``id:``, and ``data:`` as one line of JSON."""
    if "\n" in event or "\r" in event:
        raise ValueError("an SSE event name must be a single line")
    lines = [f"event: {event}"]
    if id is not None:
        lines.append(f"id: {id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


_SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx buffers answers by default, which would hold the events back.
    "X-Accel-Buffering": "no",
}


async def platform_events_response(
    client: AimlopsClient,
    release_id: str,
    *,
    keepalive: float = 15.0,
    **watch_options: Any,
) -> StreamingResponse:
    """A ``text/event-stream`` of one platform's progress, built on ``client.platforms.watch``.

    The first reading is taken before answering, so an unknown release id (after the watch's
    ``not_found_grace``) or an unreachable API is a plain HTTP error (with
    ``install_exception_handlers``). Then the stream sends one ``event: state`` per change
    (``data``: the platform detail as JSON), a ``: keep-alive`` comment after every
    ``keepalive`` seconds of silence, and ends with ``event: done`` (``{"release_id", "state"}``)
    once the platform is deployed, or ``event: error`` (an ``error_answer`` body plus its
    ``status``) when it failed or the wait ended in an error. Both carry ``id: end``. A client
    that disconnects stops the polling at once. ``watch_options`` go to ``watch()``.
    """
    if not keepalive > 0:
        raise ValueError(f"keepalive must be a positive number of seconds, got {keepalive!r}")
    watcher = client.platforms.watch(release_id, **watch_options)
    first = await anext(watcher)
    redact = _secret_texts(client.credentials)
    return _EventStreamResponse(
        _event_stream(watcher, first, keepalive, redact),
        media_type="text/event-stream",
        headers=_SSE_HEADERS,
    )


async def _event_stream(
    watcher: Any, first: Any, keepalive: float, redact: list[str]
) -> AsyncIterator[bytes]:
    yield sse_event("state", to_jsonable(first))
    pending: asyncio.Future[Any] | None = None
    try:
        while watcher.outcome is None:
            pending = asyncio.ensure_future(anext(watcher))
            # The next reading may take minutes: say something meanwhile, without cancelling the
            # poll (cancelling and restarting it would restart its backoff).
            while not (await asyncio.wait({pending}, timeout=keepalive))[0]:
                yield SSE_KEEPALIVE
            try:
                detail = pending.result()
            except StopAsyncIteration:
                break
            finally:
                pending = None
            yield sse_event("state", to_jsonable(detail))
        if watcher.outcome == "failure":
            yield _error_event(watcher.failure_error(), redact)
        else:
            last = watcher.last_detail
            state = getattr(last, "release_state", None)
            yield sse_event(
                "done",
                {"release_id": getattr(last, "release_id", None),
                 "state": None if state is None else str(state)},
                id=SSE_END_ID,
            )
    except AimlopsError as error:
        yield _error_event(error, redact)
    finally:
        # Client gone or server stopping: stop the poll in flight now, not when it next returns.
        if pending is not None and not pending.done():
            pending.cancel()


class _EventStreamResponse(StreamingResponse):
    """A ``StreamingResponse`` that ends cleanly when the server stops while it is open.

    uvicorn cancels the responses still open once ``--timeout-graceful-shutdown`` has passed,
    and logs "Exception in ASGI application" with a traceback for each one that lets the
    cancellation out. An event stream is open by design, so its cancellation is the normal way
    it ends at shutdown: the body is closed properly (a browser's EventSource reconnects once
    the server is back) and nothing is logged as an error.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body_ended = False

        async def tracking_send(message: Any) -> None:
            nonlocal body_ended
            await send(message)
            if message.get("type") == "http.response.body" and not message.get("more_body", False):
                body_ended = True

        try:
            await super().__call__(scope, receive, tracking_send)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            uncancel = getattr(task, "uncancel", None)  # Python 3.11+: the cancellation is handled
            if uncancel is not None:
                uncancel()
            logger.info("event stream closed: the server is shutting down")
            if not body_ended:
                # The connection may be gone already; then there is nothing left to close.
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _error_event(error: AimlopsError, redact: list[str]) -> bytes:
    answer = error_answer(error, redact=redact)
    return sse_event("error", {"status": answer.status_code, **answer.content}, id=SSE_END_ID)
