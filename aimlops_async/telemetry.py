"""Observability in one place: OpenTelemetry spans and metrics, request hooks, trace propagation.

Everything goes through ``opentelemetry-api`` (the optional extra ``otel``), never the SDK. A
client resolves its tracer and meter once, on its first request: when the extra is absent or no
provider is configured (neither passed to the client nor set globally), the session's request
path skips this module entirely, so an uninstrumented client pays one attribute check per call.

What is recorded (attribute names follow the OpenTelemetry HTTP client semantic conventions):

- one ``CLIENT`` span per API call, named after the operation (``aimlops.platforms.get``), with
  ``http.request.method``, ``server.address``, ``server.port``, ``url.scheme``, ``url.full``
  (the values of query parameters the API does not document read ``REDACTED``),
  ``url.template`` (``/v1/aimlops-platform/{release_id}``), ``http.response.status_code``,
  ``http.request.resend_count`` when it was re-sent, and on failure an ``ERROR`` status and
  ``error.type``; one ``aimlops.retry`` event per attempt that is sent again;
- ``aimlops.wait`` and ``aimlops.provision_many`` spans for the lifecycle layer
  (:meth:`Telemetry.wait_span`, :meth:`Telemetry.provision_span`);
- the metrics listed in :class:`Instruments`.

No header value, body, access key, signature, token or password is ever put in an attribute.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from yarl import URL

from .errors import APIStatusError, TerminalStateError, WaiterTimeoutError
from .redaction import redact_headers, redact_url

if TYPE_CHECKING:  # pragma: no cover - types only
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

try:  # the optional extra "otel"
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    HAVE_OPENTELEMETRY = True
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    HAVE_OPENTELEMETRY = False

__all__ = [
    "HAVE_OPENTELEMETRY",
    "Operation",
    "RequestHook",
    "RequestInfo",
    "ResponseHook",
    "ResponseInfo",
    "Telemetry",
]

logger = logging.getLogger("aimlops_async")

INSTRUMENTATION_NAME = "aimlops_async"
# The HTTP semantic conventions' advice for http.client.request.duration (seconds).
REQUEST_DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
# A call includes its retries and their backoff; a wait or a bulk run can take many minutes.
CALL_DURATION_BUCKETS = (*REQUEST_DURATION_BUCKETS, 30.0, 60.0, 120.0)
WAIT_DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


@attrs.frozen
class Operation:
    """What a resource method calls: its low-cardinality name and URL template.

    ``Operation("platforms.get", "/v1/aimlops-platform/{release_id}")``: the span is named
    ``aimlops.platforms.get`` and never carries the release id in its name.
    """

    name: str
    url_template: str | None = None

    @property
    def span_name(self) -> str:
        return f"aimlops.{self.name}"


UNNAMED_OPERATION = Operation("request")


@attrs.frozen(kw_only=True)
class RequestInfo:
    """What ``on_request`` is given: one attempt of a call, as it is sent.

    ``headers`` show only an allowlist of header values (the rest, such as ``Scp-Signature``,
    ``Scp-AccessKey`` and ``X-Auth-Token``, reads ``REDACTED``); so does ``url``'s query (the
    values of parameters the API does not document read ``REDACTED``). ``attempt`` counts from 1.
    """

    operation: str
    method: str
    url: str = attrs.field(converter=redact_url)
    headers: Mapping[str, str]
    attempt: int


@attrs.frozen(kw_only=True)
class ResponseInfo:
    """What ``on_response`` is given: the answer to one attempt.

    ``elapsed`` is in seconds, from sending the attempt to having read its whole body; ``url``
    is redacted as in ``RequestInfo``.
    """

    operation: str
    method: str
    url: str = attrs.field(converter=redact_url)
    status: int
    headers: Mapping[str, str]
    elapsed: float
    attempt: int


RequestHook = Callable[[RequestInfo], Awaitable[None]]
ResponseHook = Callable[[ResponseInfo], Awaitable[None]]


def error_type(error: BaseException) -> str:
    """``error.type``: the status code of an HTTP error answer, else the exception's full class name."""
    if isinstance(error, APIStatusError) and error.status is not None and error.status >= 400:
        return str(error.status)
    cls = type(error)
    return f"{cls.__module__}.{cls.__qualname__}"


def status_class(status: int | None) -> str:
    return "none" if status is None else f"{status // 100}xx"


# The call being made in this task: read by the attempt code and the hooks' middleware.
_current_call: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar(
    "aimlops_current_call", default=None
)


class Instruments:
    """The metric instruments of one client (names from the HTTP semantic conventions where they exist).

    - ``http.client.request.duration`` (histogram, s): each attempt, by operation, method,
      ``url.template``, status code or ``error.type``;
    - ``aimlops.client.operation.duration`` (histogram, s): each call with its retries, by
      operation and status class (``2xx``, ``4xx``, ``5xx``, ``none`` when nothing answered);
    - ``aimlops.client.retries`` (counter): attempts sent again, by operation and ``error.type``;
    - ``http.client.active_requests`` (asynchronous up-down counter, read at each collection,
      so an attempt costs an integer increment rather than two measurements): attempts in flight;
    - ``aimlops.waits.active`` (up-down counter), ``aimlops.waits`` (counter, by
      ``aimlops.wait.outcome``) and ``aimlops.wait.duration`` (histogram, s): waits.
    """

    def __init__(self, meter: Any, server_attributes: Mapping[str, Any]) -> None:
        self._server_attributes = dict(server_attributes)
        # Attempts in flight by method, reported when the reader collects.
        self.in_flight: dict[str, int] = {}
        self.request_duration = meter.create_histogram(
            "http.client.request.duration", unit="s", description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=REQUEST_DURATION_BUCKETS,
        )
        self.call_duration = meter.create_histogram(
            "aimlops.client.operation.duration", unit="s",
            description="Duration of API calls, retries and their backoff included.",
            explicit_bucket_boundaries_advisory=CALL_DURATION_BUCKETS,
        )
        self.retries = meter.create_counter(
            "aimlops.client.retries", unit="{retry}", description="Attempts sent again."
        )
        meter.create_observable_up_down_counter(
            "http.client.active_requests", callbacks=[self._observe_in_flight], unit="{request}",
            description="HTTP requests in flight.",
        )
        self.active_waits = meter.create_up_down_counter(
            "aimlops.waits.active", unit="{wait}", description="Waits on a platform in progress."
        )
        self.waits = meter.create_counter(
            "aimlops.waits", unit="{wait}", description="Finished waits, by outcome."
        )
        self.wait_duration = meter.create_histogram(
            "aimlops.wait.duration", unit="s", description="Time a wait took, by outcome.",
            explicit_bucket_boundaries_advisory=WAIT_DURATION_BUCKETS,
        )


    def _observe_in_flight(self, options: Any) -> Iterable[Any]:
        return [
            otel_metrics.Observation(count, {**self._server_attributes, "http.request.method": method})
            for method, count in self.in_flight.items()
        ]


class Telemetry:
    """One client's instrumentation: tracer, meter, hooks and trace propagation.

    ``tracer_provider`` / ``meter_provider``: use these instead of the global providers.
    Resolution happens once, at the first request (or the first :meth:`wait_span`): configure
    global providers before the client's first request.
    """

    def __init__(
        self,
        *,
        base_url: str,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        on_request: RequestHook | None = None,
        on_response: ResponseHook | None = None,
        propagate_trace_context: bool = False,
    ) -> None:
        url = URL(base_url)
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self.on_request = on_request
        self.on_response = on_response
        self.propagate_trace_context = propagate_trace_context
        # The origin only: no user name or password the endpoint was given ever reaches url.full.
        self.url_base = str(url.origin())
        self._server_attributes: dict[str, Any] = {
            "server.address": url.host or "",
            "server.port": url.port or 0,
            "url.scheme": url.scheme,
        }
        self._resolved = False
        self.tracer: Any = None
        self.instruments: Instruments | None = None
        self._propagator: Any = None

    # ------------------------------------------------------------------ resolution

    def resolve(self) -> bool:
        """Look the providers up (once); True when anything at all is to be observed."""
        if not self._resolved:
            self._resolved = True
            if HAVE_OPENTELEMETRY:
                self._resolve_opentelemetry()
        return self.enabled

    def _resolve_opentelemetry(self) -> None:
        from ._version import __version__

        tracer_provider = self._tracer_provider or otel_trace.get_tracer_provider()
        if not isinstance(tracer_provider, (otel_trace.ProxyTracerProvider, otel_trace.NoOpTracerProvider)):
            self.tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME, __version__)
            if self.propagate_trace_context:
                self._propagator = TraceContextTextMapPropagator()
        meter_provider = self._meter_provider or otel_metrics.get_meter_provider()
        # The API's stand-ins while no SDK provider is set: the proxy is not a public class.
        if type(meter_provider).__name__ not in ("_ProxyMeterProvider", "NoOpMeterProvider"):
            meter = meter_provider.get_meter(INSTRUMENTATION_NAME, __version__)
            self.instruments = Instruments(meter, self._server_attributes)

    @property
    def enabled(self) -> bool:
        return (
            self.tracer is not None or self.instruments is not None
            or self.on_request is not None or self.on_response is not None
        )

    @property
    def observes_lifecycle(self) -> bool:
        """Whether waits and bulk runs have spans or metrics to record (resolves on first use)."""
        if not self._resolved:
            self.resolve()
        return self.tracer is not None or self.instruments is not None

    @property
    def observes_attempts(self) -> bool:
        """Whether each attempt needs the observing middleware (hooks or propagation)."""
        return self.on_request is not None or self._propagator is not None

    # ------------------------------------------------------------------ API calls

    def start_call(self, operation: Operation | None, method: str, url: URL) -> CallRecord:
        return CallRecord(self, operation or UNNAMED_OPERATION, method, url)

    def middleware(self) -> ObservingMiddleware:
        return ObservingMiddleware(self)

    # ------------------------------------------------------------------ lifecycle spans

    def wait_span(
        self,
        release_id: str,
        *,
        until: str = "deployed",
        clock: Callable[[], float] = time.monotonic,
    ) -> WaitSpan:
        """The span and metrics of one wait on a platform (see :class:`WaitSpan`)."""
        self.resolve()
        return WaitSpan(self, release_id, until, clock)

    def observe_wait(
        self,
        release_id: str,
        *,
        until: str = "deployed",
        clock: Callable[[], float] = time.monotonic,
    ) -> WaitSpan:
        """``wait_span`` for the lifecycle layer: the shared do-nothing ``UNOBSERVED_WAIT`` when
        neither spans nor metrics are configured, so that an unobserved wait allocates nothing."""
        if not self.observes_lifecycle:
            return UNOBSERVED_WAIT
        return WaitSpan(self, release_id, until, clock)

    def detach_from_callers(self) -> None:
        """Make the calling task's spans roots of their own trace: for a task (the shared poller)
        that serves many callers, whose spans belong to none of them. Only for a task of our own:
        its context dies with it, so nothing needs restoring."""
        if self.tracer is not None:
            otel_context.attach(otel_context.Context())

    def provision_span(
        self, count: int, *, clock: Callable[[], float] = time.monotonic
    ) -> ProvisionSpan:
        """The span of one ``provision_many`` run over ``count`` requests (see :class:`ProvisionSpan`)."""
        self.resolve()
        return ProvisionSpan(self, count, clock)

    # ------------------------------------------------------------------ hooks

    async def call_hook(self, hook: Callable[[Any], Awaitable[None]], info: Any) -> None:
        """Run a user's hook. Its failure is logged and ignored: observing never changes a call."""
        try:
            await hook(info)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning(
                "the %s hook raised; the request goes on", getattr(hook, "__name__", "user"),
                exc_info=True,
            )


class CallRecord:
    """One API call being observed: its span, its attempts and its metrics."""

    __slots__ = (
        "_context_token", "_metric_attributes", "_started", "_token", "attempts", "method",
        "operation", "span", "status", "telemetry", "url",
    )

    def __init__(self, telemetry: Telemetry, operation: Operation, method: str, url: URL) -> None:
        self.telemetry = telemetry
        self.operation = operation
        self.method = method
        self.url = url
        self.attempts = 0
        self.status: int | None = None
        self.span: Span | None = None
        self._context_token: object = None
        self._metric_attributes: dict[str, Any] = {}
        self._started = time.perf_counter()
        self._token: contextvars.Token[CallRecord | None] | None = None

    def __enter__(self) -> CallRecord:
        telemetry = self.telemetry
        attributes = {
            **telemetry._server_attributes, "http.request.method": self.method,
        }
        if self.operation.url_template is not None:
            attributes["url.template"] = self.operation.url_template
        self._metric_attributes = {**attributes, "aimlops.operation": self.operation.name}
        if telemetry.tracer is not None:
            # Undocumented query values (extra_query=, perhaps a signed token) are scrubbed, as
            # the HTTP semantic conventions ask of url.full.
            attributes["url.full"] = telemetry.url_base + redact_url(self.url.raw_path_qs)
            self.span = telemetry.tracer.start_span(
                self.operation.span_name, kind=otel_trace.SpanKind.CLIENT, attributes=attributes
            )
            self._context_token = otel_context.attach(otel_trace.set_span_in_context(self.span))
        self._token = _current_call.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current_call.reset(self._token)
        instruments = self.telemetry.instruments
        if instruments is not None:
            attributes = {
                "aimlops.operation": self.operation.name,
                "http.request.method": self.method,
                "aimlops.status_class": status_class(self.status),
            }
            if exc is not None:
                attributes["error.type"] = error_type(exc)
            instruments.call_duration.record(time.perf_counter() - self._started, attributes)
        span = self.span
        if span is None:
            return
        if self.status is not None:
            span.set_attribute("http.response.status_code", self.status)
        if self.attempts > 1:
            span.set_attribute("http.request.resend_count", self.attempts - 1)
        if exc is not None:
            kind = error_type(exc)
            span.set_attribute("error.type", kind)
            request_id = getattr(exc, "request_id", None)
            if isinstance(request_id, str):
                span.set_attribute("aimlops.request_id", request_id)
            span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, kind))
        otel_context.detach(self._context_token)  # type: ignore[arg-type]
        span.end()

    # ------------------------------------------------------------------ per attempt

    def attempt_started(self) -> None:
        self.attempts += 1
        instruments = self.telemetry.instruments
        if instruments is not None:
            in_flight = instruments.in_flight
            in_flight[self.method] = in_flight.get(self.method, 0) + 1

    def attempt_finished(self, elapsed: float, status: int | None, error: BaseException | None) -> None:
        if status is not None:
            self.status = status
        instruments = self.telemetry.instruments
        if instruments is None:
            return
        instruments.in_flight[self.method] -= 1
        attributes = dict(self._metric_attributes)
        if status is not None:
            attributes["http.response.status_code"] = status
            if status >= 400:
                attributes["error.type"] = str(status)
        elif error is not None:
            attributes["error.type"] = error_type(error)
        instruments.request_duration.record(elapsed, attributes)

    def retrying(self, error: BaseException, delay: float) -> None:
        """The attempt that failed with ``error`` is sent again after ``delay`` seconds."""
        kind = error_type(error)
        instruments = self.telemetry.instruments
        if instruments is not None:
            instruments.retries.add(1, {"aimlops.operation": self.operation.name, "error.type": kind})
        if self.span is not None:
            event: dict[str, Any] = {
                "http.request.resend_count": self.attempts, "error.type": kind,
                "aimlops.retry.delay": delay,
            }
            status = getattr(error, "status", None)
            if isinstance(status, int):
                event["http.response.status_code"] = status
            self.span.add_event("aimlops.retry", event)


def current_call() -> CallRecord | None:
    """The call observed in this task, if any."""
    return _current_call.get()


class ObservingMiddleware:
    """aiohttp client middleware after the signer: sees each attempt exactly as it is sent.

    It adds ``traceparent`` (when propagation is on and no other instrumentation set one; the
    header is not part of the signature) and gives ``on_request`` the attempt with its headers
    redacted.
    """

    __slots__ = ("_telemetry",)

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        telemetry = self._telemetry
        propagator = telemetry._propagator
        if propagator is not None and "traceparent" not in request.headers:
            carrier: dict[str, str] = {}
            propagator.inject(carrier)
            if "traceparent" in carrier:
                request.headers["traceparent"] = carrier["traceparent"]
        hook = telemetry.on_request
        if hook is not None:
            record = _current_call.get()
            await telemetry.call_hook(hook, RequestInfo(
                operation=(record.operation.name if record else UNNAMED_OPERATION.name),
                method=request.method, url=str(request.url),
                headers=redact_headers(request.headers), attempt=record.attempts if record else 1,
            ))
        return await handler(request)


# ---------------------------------------------------------------------- lifecycle spans


def _wait_outcome(error: BaseException | None) -> str:
    if error is None:
        return "succeeded"
    if isinstance(error, WaiterTimeoutError):
        return "timeout"
    if isinstance(error, TerminalStateError):
        return "failed"
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    return "error"


class WaitSpan:
    """One wait on a platform: the ``aimlops.wait`` span and the wait metrics.

    ``with telemetry.wait_span(release_id, until="deployed") as wait:`` around the polling;
    ``wait.record_poll()`` after each reading; ``wait.finish(state)`` with the last state seen.
    Leaving the block records the outcome: ``succeeded``, or from the exception that left it
    ``timeout`` (``WaiterTimeoutError``), ``failed`` (``TerminalStateError``), ``cancelled``
    or ``error``. Attributes: ``aimlops.release_id``, ``aimlops.wait.until``,
    ``aimlops.wait.final_state``, ``aimlops.wait.polls``, ``aimlops.wait.waited`` (seconds),
    ``aimlops.wait.outcome``. ``with`` makes the span current, so the polls' call spans are
    its children; where that cannot be (code that yields inside an async generator), call
    ``start()`` and ``end(error)`` instead, which do not touch the current context.
    """

    __slots__ = (
        "_clock", "_context_token", "_started", "_telemetry", "final_state", "polls",
        "release_id", "span", "until",
    )

    def __init__(
        self, telemetry: Telemetry, release_id: str, until: str, clock: Callable[[], float]
    ) -> None:
        self._telemetry = telemetry
        self._clock = clock
        self.release_id = release_id
        self.until = until
        self.polls = 0
        self.final_state: str | None = None
        self.span: Span | None = None
        self._started: float | None = None
        self._context_token: object = None

    def start(self) -> WaitSpan:
        self._started = self._clock()
        telemetry = self._telemetry
        if telemetry.tracer is not None:
            self.span = telemetry.tracer.start_span("aimlops.wait", attributes={
                "aimlops.release_id": self.release_id, "aimlops.wait.until": self.until,
            })
        if telemetry.instruments is not None:
            telemetry.instruments.active_waits.add(1, {"aimlops.wait.until": self.until})
        return self

    def record_poll(self) -> None:
        self.polls += 1

    def finish(self, state: str | None, *, polls: int | None = None) -> None:
        """The last state seen (``DEPLOYED``, ``FAILED``, ``None`` when gone); ``polls``, when
        given, is the number of readings (for code that counts them itself)."""
        self.final_state = None if state is None else str(state)
        if polls is not None:
            self.polls = polls

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Make this wait's span the current one for the block (a poll made on its behalf by
        another task: its call span becomes a child of the wait)."""
        if self.span is None:
            yield
            return
        token = otel_context.attach(otel_trace.set_span_in_context(self.span))
        try:
            yield
        finally:
            otel_context.detach(token)

    def end(self, error: BaseException | None = None) -> None:
        if self._started is None:
            return
        waited = self._clock() - self._started
        self._started = None
        outcome = _wait_outcome(error)
        instruments = self._telemetry.instruments
        if instruments is not None:
            until = {"aimlops.wait.until": self.until}
            instruments.active_waits.add(-1, until)
            labels = {**until, "aimlops.wait.outcome": outcome}
            instruments.waits.add(1, labels)
            instruments.wait_duration.record(waited, labels)
        span = self.span
        if span is None:
            return
        span.set_attribute("aimlops.wait.polls", self.polls)
        span.set_attribute("aimlops.wait.waited", waited)
        span.set_attribute("aimlops.wait.outcome", outcome)
        if self.final_state is not None:
            span.set_attribute("aimlops.wait.final_state", self.final_state)
        if error is not None and outcome != "cancelled":
            kind = error_type(error)
            span.set_attribute("error.type", kind)
            span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, kind))
        span.end()

    def __enter__(self) -> WaitSpan:
        self.start()
        if self.span is not None:
            self._context_token = otel_context.attach(otel_trace.set_span_in_context(self.span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._context_token is not None:
            otel_context.detach(self._context_token)  # type: ignore[arg-type]
            self._context_token = None
        self.end(exc)


class _UnobservedWait(WaitSpan):
    """A wait with nothing to record: one shared instance, every method does nothing."""

    __slots__ = ()

    def __init__(self) -> None:
        self.span = None
        self.polls = 0
        self.final_state = None
        self._started = None
        self._context_token = None

    def start(self) -> WaitSpan:
        return self

    def record_poll(self) -> None:
        pass

    def finish(self, state: str | None, *, polls: int | None = None) -> None:
        pass

    def end(self, error: BaseException | None = None) -> None:
        pass

    def __enter__(self) -> WaitSpan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pass


UNOBSERVED_WAIT: WaitSpan = _UnobservedWait()


class ProvisionSpan:
    """One ``provision_many`` run: the ``aimlops.provision_many`` span.

    ``with telemetry.provision_span(len(requests)) as run:`` around the run (wait spans opened
    inside it become its children); ``run.finish(results)`` with the ``ProvisionResult`` list.
    Attributes: ``aimlops.provision.requested``, and after ``finish``
    ``aimlops.provision.created``, ``.adopted``, ``.succeeded``, ``.failed`` and
    ``aimlops.provision.duration`` (seconds).
    """

    __slots__ = ("_clock", "_context_token", "_started", "_telemetry", "count", "span")

    def __init__(self, telemetry: Telemetry, count: int, clock: Callable[[], float]) -> None:
        self._telemetry = telemetry
        self._clock = clock
        self.count = count
        self.span: Span | None = None
        self._started = clock()
        self._context_token: object = None

    def finish(self, results: Iterable[Any]) -> None:
        """Counts from the results (each with ``created``, ``error``)."""
        span = self.span
        if span is None:
            return
        created = adopted = failed = 0
        for result in results:
            if getattr(result, "error", None) is not None:
                failed += 1
            elif getattr(result, "created", False):
                created += 1
            else:
                adopted += 1
        span.set_attribute("aimlops.provision.created", created)
        span.set_attribute("aimlops.provision.adopted", adopted)
        span.set_attribute("aimlops.provision.succeeded", created + adopted)
        span.set_attribute("aimlops.provision.failed", failed)

    def __enter__(self) -> ProvisionSpan:
        self._started = self._clock()
        tracer = self._telemetry.tracer
        if tracer is not None:
            self.span = tracer.start_span(
                "aimlops.provision_many", attributes={"aimlops.provision.requested": self.count}
            )
            self._context_token = otel_context.attach(otel_trace.set_span_in_context(self.span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self.span
        if span is None:
            return
        otel_context.detach(self._context_token)  # type: ignore[arg-type]
        span.set_attribute("aimlops.provision.duration", self._clock() - self._started)
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            kind = error_type(exc)
            span.set_attribute("error.type", kind)
            span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, kind))
        span.end()
