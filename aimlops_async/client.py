"""AimlopsClient: configuration, lifecycle, and the resource groups (platforms, images, clusters)."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

import aiohttp

from . import _checks
from .config import Credentials, header_safe, resolve_endpoint
from .errors import ValidationError
from .lifecycle.platforms import Platforms
from .lifecycle.schedule import (
    DEFAULT_POLL_DELAY,
    DEFAULT_POLL_MAX_DELAY,
    DEFAULT_POLL_TIMEOUT,
    PollDefaults,
)
from .resources.clusters import Clusters
from .resources.images import Images
from .session import (
    DEFAULT_MAX_RESPONSE_BYTES,
    CallStats,
    RetryPolicy,
    Session,
    load_ssl_context,
)
from .telemetry import RequestHook, ResponseHook, Telemetry
from .timing import Timing

if TYPE_CHECKING:  # pragma: no cover - types only
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["AimlopsClient"]

_LANGUAGES = ("en-US", "ko-KR")


class AimlopsClient:
    """An async client for the AI&MLOps Platform API. One client serves many concurrent tasks.

    ``async with AimlopsClient(...) as client:`` (or ``await client.close()`` when done). The
    aiohttp session is created on first use, inside the running event loop.

    Arguments (all keyword-only but ``endpoint`` and ``credentials``):

    - ``endpoint``: an ``http`` or ``https`` base URL (host, optional port and path prefix; no
      query, fragment or user name; plain http to a host other than this machine logs a
      warning); else ``region`` + ``environment``, one of
      the documented pairs (``s``: kr-west1, kr-east1; ``g``: kr-south1, kr-south2, kr-south3;
      ``e``: kr-west1, kr-east1); else ``AIMLOPS_ENDPOINT``; else ``SCP_REGION`` + ``SCP_ENVIRONMENT``.
    - ``credentials``: ``Credentials``; ``None`` reads ``SCP_ACCESS_KEY``, ``SCP_SECRET_KEY``
      and the optional ``SCP_ACCOUNT_ID`` and ``SCP_AUTH_TOKEN``.
    - ``api_version``: sent as ``Scp-Api-Version: aimlops-platform <version>``; ``"1.1"`` (the
      service's CURRENT version) by default, ``"1.0"`` is deprecated; ``None`` sends no header
      (the service then answers with its latest CURRENT version).
    - ``language`` (``en-US`` or ``ko-KR``), ``client_type`` (``Openapi``): request headers.
    - ``timeout``: seconds per attempt (``math.inf``: no limit). ``max_retries``: retries of a
      transient failure per call.
    - ``max_concurrency``: requests in flight across the whole client (also the connection pool size).
    - ``requests_per_second``: optional client-wide rate limit, shared by every task.
    - ``retry_base_delay``, ``retry_max_delay``: the retry backoff; ``max_retry_after``: the longest
      ``Retry-After`` slept through (``math.inf``: any).
    - Every number is checked here: NaN, a negative or (where it matters) zero or infinite value
      is a ``ValidationError`` naming the setting.
    - ``poll_delay``, ``poll_max_delay``, ``poll_timeout``: defaults for every wait.
    - ``ssl``: ``True`` (verify, the default), an ``ssl.SSLContext``, or ``False`` (no verification).
      ``ca_bundle``: path of a CA bundle to trust instead of the system's.
    - ``max_response_bytes``: the largest answer body read, counted after decompression
      (16 MiB by default; ``None``: no limit). A larger answer raises ``APIStatusError`` with
      code ``RESPONSE_TOO_LARGE`` and is not retried.
    - ``session``: your own ``aiohttp.ClientSession`` (proxies, connection pools, tracing); the
      client signs every request on it and never closes it. It must be used in the event loop
      it was made in. ``trace_configs``: aiohttp ``TraceConfig``s for the session the client
      creates (not with ``session``: give them to your session).
    - ``on_request``, ``on_response``: async callables given a ``RequestInfo`` (each attempt as
      sent, secret headers redacted) and a ``ResponseInfo`` (status, headers, elapsed seconds,
      attempt). A hook that raises is logged and ignored.
    - ``tracer_provider``, ``meter_provider``: OpenTelemetry providers (default: the global
      ones, looked up at the first request); ``propagate_trace_context``: send ``traceparent``.
      See docs/observability.md.
    - ``timing``: the client's one clock and sleep (``Timing(clock, sleep, wall)``), used by
      retry backoff, ``Retry-After`` waits, the rate limiter, every wait and bulk run; tests
      pass a virtual one to drive time (also settable later as ``client.platforms.timing``).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        *,
        region: str | None = None,
        environment: str | None = None,
        api_version: str | None = "1.1",
        language: str = "en-US",
        client_type: str = "Openapi",
        timeout: float = 30.0,
        max_retries: int = 3,
        max_concurrency: int = 64,
        requests_per_second: float | None = None,
        poll_delay: float = DEFAULT_POLL_DELAY,
        poll_max_delay: float = DEFAULT_POLL_MAX_DELAY,
        poll_timeout: float = DEFAULT_POLL_TIMEOUT,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 8.0,
        max_retry_after: float = 60.0,
        ssl: bool | ssl_module.SSLContext = True,
        ca_bundle: str | None = None,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
        session: aiohttp.ClientSession | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] | None = None,
        on_request: RequestHook | None = None,
        on_response: ResponseHook | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        propagate_trace_context: bool = False,
        timing: Timing | None = None,
    ) -> None:
        timeout = _checks.seconds("timeout", timeout, allow_inf=True)
        poll_delay = _checks.seconds("poll_delay", poll_delay)
        poll_max_delay = _checks.seconds("poll_max_delay", poll_max_delay)
        poll_timeout = _checks.seconds("poll_timeout", poll_timeout)
        retry_base_delay = _checks.seconds("retry_base_delay", retry_base_delay, allow_zero=True)
        retry_max_delay = _checks.seconds("retry_max_delay", retry_max_delay)
        # inf: sleep through whatever Retry-After the server sends.
        max_retry_after = _checks.seconds(
            "max_retry_after", max_retry_after, allow_zero=True, allow_inf=True
        )
        requests_per_second = _checks.optional_limit("requests_per_second", requests_per_second)
        max_retries = _checks.count("max_retries", max_retries, minimum=0)
        max_concurrency = _checks.count("max_concurrency", max_concurrency, minimum=1)
        max_response_bytes = _checks.optional_size("max_response_bytes", max_response_bytes)
        if language not in _LANGUAGES:
            raise ValidationError(f"must be one of {', '.join(_LANGUAGES)}, got {language!r}", "language")
        if api_version is not None and (
            not isinstance(api_version, str) or not header_safe(api_version)
        ):
            raise ValidationError("must be a version such as '1.1', or None", "api_version")
        if not isinstance(client_type, str) or not header_safe(client_type):
            raise ValidationError("must be printable ASCII without spaces, such as 'Openapi'", "client_type")
        if poll_max_delay < poll_delay:
            raise ValidationError(
                f"must be >= poll_delay ({poll_delay}), got {poll_max_delay}", "poll_max_delay"
            )
        _check_observability(session, trace_configs, on_request, on_response, propagate_trace_context)
        if timing is not None and not isinstance(timing, Timing):
            raise ValidationError(f"must be a Timing, got {timing!r}", "timing")
        self.endpoint = resolve_endpoint(endpoint, region, environment)
        self.credentials = credentials if credentials is not None else Credentials.from_env()
        if ca_bundle is not None:
            if ssl is not True:
                # Either would silently override the other; make the caller choose.
                raise ValidationError("give either ca_bundle or ssl, not both", "ca_bundle")
            ssl = load_ssl_context(ca_bundle)
        self._session = Session(
            base_url=self.endpoint,
            credentials=self.credentials,
            client_type=client_type,
            api_version=api_version,
            language=language,
            timeout=timeout,
            retry=RetryPolicy(
                max_retries=max_retries, base_delay=retry_base_delay,
                max_delay=retry_max_delay, max_retry_after=max_retry_after,
            ),
            max_concurrency=max_concurrency,
            requests_per_second=requests_per_second,
            ssl=ssl,
            max_response_bytes=max_response_bytes,
            telemetry=Telemetry(
                base_url=self.endpoint, tracer_provider=tracer_provider,
                meter_provider=meter_provider, on_request=on_request, on_response=on_response,
                propagate_trace_context=propagate_trace_context,
            ),
            session=session,
            trace_configs=trace_configs or (),
            timing=timing,
        )
        self.poll_defaults = PollDefaults(
            delay=poll_delay, max_delay=poll_max_delay, timeout=poll_timeout
        )
        self.platforms = Platforms(self._session, self.poll_defaults)
        self.images = Images(self._session)
        self.clusters = Clusters(self._session)

    @property
    def stats(self) -> CallStats:
        """Counters of API calls, HTTP attempts and retries made by this client."""
        return self._session.stats

    @property
    def closed(self) -> bool:
        return self._session.closed

    async def close(self) -> None:
        """Close the connection pool. The client cannot be used afterwards."""
        await self._session.close()

    async def __aenter__(self) -> AimlopsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AimlopsClient(endpoint={self.endpoint!r}, credentials={self.credentials!r})"


def _check_observability(
    session: object, trace_configs: object, on_request: object, on_response: object,
    propagate_trace_context: object,
) -> None:
    if session is not None:
        if not isinstance(session, aiohttp.ClientSession):
            raise ValidationError(f"must be an aiohttp.ClientSession, got {session!r}", "session")
        if session.closed:
            raise ValidationError("is closed", "session")
        if trace_configs:
            raise ValidationError("give trace configs to your own session instead", "trace_configs")
    if trace_configs is not None and (
        isinstance(trace_configs, (str, bytes))
        or not all(isinstance(config, aiohttp.TraceConfig) for config in trace_configs)  # type: ignore[attr-defined]
    ):
        raise ValidationError("must be a sequence of aiohttp.TraceConfig", "trace_configs")
    for name, hook in (("on_request", on_request), ("on_response", on_response)):
        if hook is not None and not callable(hook):
            raise ValidationError(f"must be an async callable, got {hook!r}", name)
    if not isinstance(propagate_trace_context, bool):
        raise ValidationError(
            f"must be True or False, got {propagate_trace_context!r}", "propagate_trace_context"
        )
