"""AimlopsClient: configuration, lifecycle, and the resource groups (platforms, images, clusters)."""

from __future__ import annotations

import ssl as ssl_module
from types import TracebackType

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
from .session import CallStats, RetryPolicy, Session, load_ssl_context

__all__ = ["AimlopsClient"]

_LANGUAGES = ("en-US", "ko-KR")


class AimlopsClient:
    """An async client for the AI&MLOps Platform API. One client serves many concurrent tasks.

    ``async with AimlopsClient(...) as client:`` (or ``await client.close()`` when done). The
    aiohttp session is created on first use, inside the running event loop.

    Arguments (all keyword-only but ``endpoint`` and ``credentials``):

    - ``endpoint``: base URL (any scheme, host, port); else ``region`` + ``environment``
      (``s``, ``g`` or ``e``); else ``AIMLOPS_ENDPOINT``; else ``SCP_REGION`` + ``SCP_ENVIRONMENT``.
    - ``credentials``: ``Credentials``; ``None`` reads ``SCP_ACCESS_KEY``, ``SCP_SECRET_KEY``
      and ``SCP_PROJECT_ID``.
    - ``api_version``, ``language`` (``en-US`` or ``ko-KR``), ``client_type``: request headers.
    - ``timeout``: seconds per attempt. ``max_retries``: retries of a transient failure per call.
    - ``max_concurrency``: requests in flight across the whole client (also the connection pool size).
    - ``requests_per_second``: optional client-wide rate limit, shared by every task.
    - ``poll_delay``, ``poll_max_delay``, ``poll_timeout``: defaults for every wait.
    - ``ssl``: ``True`` (verify, the default), an ``ssl.SSLContext``, or ``False`` (no verification).
      ``ca_bundle``: path of a CA bundle to trust instead of the system's.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        *,
        region: str | None = None,
        environment: str | None = None,
        api_version: str = "1.0",
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
    ) -> None:
        _check_positive(timeout=timeout, poll_delay=poll_delay, poll_max_delay=poll_max_delay,
                        poll_timeout=poll_timeout, retry_max_delay=retry_max_delay)
        _check_positive(requests_per_second=requests_per_second, allow_none=True)
        _check_count("max_retries", max_retries, minimum=0)
        _check_count("max_concurrency", max_concurrency, minimum=1)
        if retry_base_delay < 0 or max_retry_after < 0:
            raise ValidationError("must not be negative", "retry_base_delay")
        if language not in _LANGUAGES:
            raise ValidationError(f"must be one of {', '.join(_LANGUAGES)}, got {language!r}", "language")
        if not isinstance(api_version, str) or not header_safe(api_version):
            raise ValidationError("must be a version such as '1.0'", "api_version")
        if not isinstance(client_type, str) or not header_safe(client_type):
            raise ValidationError("must be printable ASCII without spaces, such as 'Openapi'", "client_type")
        if poll_max_delay < poll_delay:
            raise ValidationError(
                f"must be >= poll_delay ({poll_delay}), got {poll_max_delay}", "poll_max_delay"
            )
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


def _check_count(name: str, value: int, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"must be an integer >= {minimum}, got {value!r}", name)


def _check_positive(*, allow_none: bool = False, **values: float | None) -> None:
    for name, value in values.items():
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValidationError(f"must be a positive number of seconds, got {value!r}", name)
