"""AI&MLOps platforms: the six platform endpoints, plus the waiters and bulk provisioning built on them."""

from __future__ import annotations

import builtins  # ``list`` is a method of Platforms: annotations need the built-in by name
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any

from .. import bulk, waiter
from ..errors import ValidationError
from ..models import (
    AsyncResponse,
    CheckResponse,
    CreatePlatformRequest,
    PlatformDetail,
    PlatformListPage,
    PlatformSummary,
    UpdatePlatformRequest,
)
from ..pagination import DEFAULT_PAGE_SIZE, AsyncPager
from ..session import CallOptions, Session
from ..telemetry import Operation
from ._base import (
    BASE_PATH,
    Resource,
    checked_request,
    page_number,
    page_size,
    path_id,
    required_text,
)

CreateRequestLike = CreatePlatformRequest | Mapping[str, Any]
UpdateRequestLike = UpdatePlatformRequest | Mapping[str, Any]

CHECK_DUPLICATION = Operation("platforms.check_duplication", f"{BASE_PATH}/check-duplication")
CREATE = Operation("platforms.create", BASE_PATH)
DELETE = Operation("platforms.delete", f"{BASE_PATH}/{{release_id}}")
GET = Operation("platforms.get", f"{BASE_PATH}/{{release_id}}")
LIST = Operation("platforms.list", BASE_PATH)
UPDATE = Operation("platforms.update", f"{BASE_PATH}/{{release_id}}")


class Platforms(Resource):
    """``client.platforms``: one method per platform endpoint, then waiters and bulk provisioning."""

    def __init__(self, session: Session, poll_defaults: waiter.PollDefaults | None = None) -> None:
        super().__init__(session)
        # The client's defaults for every wait (delay, max_delay, timeout); see waiter.PollDefaults.
        self.poll_defaults = poll_defaults or waiter.PollDefaults()

    # ------------------------------------------------------------------ endpoints

    # Every endpoint method takes the per-call options as keyword-only arguments (the
    # convention of openai-python): ``extra_headers``, ``extra_query`` (signed as sent),
    # ``extra_body`` (merged into the JSON after the known fields are checked) and ``timeout``
    # (seconds per attempt of this call). See ``CallOptions``.

    async def check_duplication(
        self,
        release_name: str,
        *,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> bool:
        """``GET check-duplication``: True when a platform of that release name already exists."""
        params = {"release_name": required_text(release_name, "release_name")}
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)
        answer = await self._session.request(
            "GET", f"{BASE_PATH}/check-duplication", params=params,
            response_type=CheckResponse, options=options, operation=CHECK_DUPLICATION,
        )
        return answer.result is True

    async def create(
        self,
        request: CreateRequestLike,
        *,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> AsyncResponse:
        """``POST /v1/aimlops-platform``: start creating a platform; ``resource_id`` is its release id.

        ``request`` is a ``CreatePlatformRequest`` or a mapping in the API's JSON shape; it is
        checked before anything is sent (``ValidationError`` names each bad field).
        ``extra_body`` is merged in afterwards, for fields this release does not know yet.
        """
        body = checked_request(request, CreatePlatformRequest)
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)
        return await self._session.request(
            "POST", BASE_PATH, body=body, response_type=AsyncResponse, options=options, operation=CREATE
        )

    async def delete(
        self,
        release_id: str,
        with_k8s: bool = False,
        *,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        """``DELETE {release_id}``: start deleting a platform (and its Kubernetes engine: ``with_k8s``)."""
        if not isinstance(with_k8s, bool):
            raise ValidationError(f"must be True or False, got {with_k8s!r}", "with_k8s")
        path = f"{BASE_PATH}/{path_id(release_id, 'release_id')}"
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)
        started = time.time()
        await self._session.request(
            "DELETE", path,
            # The reference's path has no query by default: send with_k8s only when it asks for more.
            params={"with_k8s": True} if with_k8s else None, options=options, operation=DELETE,
        )
        # A later wait on this release must not take a stale reading from before the delete.
        waiter.note_change(self, release_id, started)

    async def get(
        self,
        release_id: str,
        *,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> PlatformDetail:
        """``GET {release_id}``: the platform's detail (``NotFoundError`` when there is none).

        The live service may answer 400 instead of 404 for a release that no longer exists;
        the API gateway's 404 page (refused credentials) is an ``AuthenticationError``.
        """
        path = f"{BASE_PATH}/{path_id(release_id, 'release_id')}"
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)
        return await self._session.request(
            "GET", path, response_type=PlatformDetail, options=options, operation=GET
        )

    def list(
        self,
        *,
        release_name: str | None = None,
        status: str | None = None,
        cluster_name: str | None = None,
        version: str | None = None,
        kubeflow_type: str | None = None,
        created_by: str | None = None,
        sort: str | None = None,
        size: int = DEFAULT_PAGE_SIZE,
        page: int = 0,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> AsyncPager[PlatformSummary, PlatformListPage]:
        """A pager over platform summaries; the filters are the reference's query parameters.

        ``size`` is the page size; ``page`` the 0-based page the walk starts from. The per-call
        options apply to every page.
        """
        params = {
            "release_name": release_name, "status": status, "cluster_name": cluster_name,
            "version": version, "kubeflow_type": kubeflow_type, "created_by": created_by,
            "sort": sort,
        }
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)

        async def fetch(page: int, size: int) -> PlatformListPage:
            return await self._session.request(
                "GET", BASE_PATH, params={**params, "size": size, "page": page},
                response_type=PlatformListPage, options=options, operation=LIST,
            )

        return AsyncPager(
            fetch,
            items=lambda page: page.contents,
            total=lambda page: page.total_count,
            key=lambda platform: platform.release_id,
            size=page_size(size),
            first_page=page_number(page),
        )

    async def update(
        self,
        release_id: str,
        request: UpdateRequestLike,
        *,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> AsyncResponse:
        """``PUT {release_id}``: start an update (endpoint type and/or domain service)."""
        path = f"{BASE_PATH}/{path_id(release_id, 'release_id')}"
        body = checked_request(request, UpdatePlatformRequest)
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)
        started = time.time()
        answer = await self._session.request(
            "PUT", path, body=body, response_type=AsyncResponse, options=options, operation=UPDATE
        )
        # A later wait_until_deployed must not return on the DEPLOYED reading from before the update.
        waiter.note_change(self, release_id, started)
        return answer

    # ------------------------------------------------------------------ waiters (waiter.py)

    def watch(
        self,
        release_id: str,
        *,
        success_states: Iterable[str] | None = None,
        failure_states: Iterable[str] | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        timeout: float | None = None,
        not_found_grace: float | None = None,
        stale_grace: float | None = None,
        changed_since: PlatformDetail | datetime | None = None,
        until_deleted: bool = False,
    ) -> waiter.PlatformWatch:
        """``async for detail in client.platforms.watch(release_id):`` one detail per state change.

        Yields the first reading, then each change of ``release_state`` or ``cluster_state``, and
        last the detail in a success or failure state; then the iteration ends (no exception on a
        failure state: check ``detail.release_state`` or the watch's ``outcome``). With
        ``until_deleted=True`` it ends once the platform is gone (404). Raises
        ``WaiterTimeoutError`` past ``timeout``. Arguments as for ``wait_until_deployed``.
        """
        return waiter.PlatformWatch(
            self, release_id, success_states=success_states, failure_states=failure_states,
            delay=delay, max_delay=max_delay, timeout=timeout, not_found_grace=not_found_grace,
            stale_grace=stale_grace, changed_since=changed_since, until_deleted=until_deleted,
        )

    async def wait_until_deployed(
        self,
        release_id: str,
        *,
        timeout: float | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        success_states: Iterable[str] | None = None,
        failure_states: Iterable[str] | None = None,
        not_found_grace: float | None = None,
        changed_since: PlatformDetail | datetime | None = None,
        stale_grace: float | None = None,
    ) -> PlatformDetail:
        """Poll ``GET {release_id}`` until ``release_state`` is ``DEPLOYED``; return that detail.

        - ``timeout``, ``delay``, ``max_delay`` (seconds): default to the client's ``poll_*``.
        - ``success_states`` (default ``{"DEPLOYED"}``), ``failure_states`` (default
          ``{"FAILED", "ERROR"}``): a failure state raises ``TerminalStateError``; any other
          state is in progress (a state unknown to this library is logged once).
        - ``not_found_grace`` (default 30 s from the wait's start): a 404 then is a platform not
          visible yet; after it, ``NotFoundError`` is raised.
        - ``changed_since``: the detail (or ``modified_dt``) from before a change you made; a
          stale ``DEPLOYED`` from before it is not returned (``stale_grace`` bounds that).

        Raises ``WaiterTimeoutError`` (also a ``TimeoutError``) past ``timeout``.
        """
        detail = await waiter.run(waiter.PlatformWatch(
            self, release_id, timeout=timeout, delay=delay, max_delay=max_delay,
            success_states=success_states, failure_states=failure_states,
            not_found_grace=not_found_grace, changed_since=changed_since, stale_grace=stale_grace,
        ))
        assert detail is not None  # run() answers None only for a wait until deleted
        return detail

    async def wait_until_deleted(
        self,
        release_id: str,
        *,
        timeout: float | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        failure_states: Iterable[str] | None = None,
        changed_since: PlatformDetail | datetime | None = None,
        stale_grace: float | None = None,
    ) -> None:
        """Poll until the platform is gone (404). A failure state seen after the delete showed
        raises ``TerminalStateError``; past ``timeout``, ``WaiterTimeoutError``."""
        await waiter.run(waiter.PlatformWatch(
            self, release_id, timeout=timeout, delay=delay, max_delay=max_delay,
            failure_states=failure_states, changed_since=changed_since, stale_grace=stale_grace,
            until_deleted=True,
        ))

    async def create_and_wait(
        self,
        request: CreateRequestLike,
        *,
        timeout: float | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        success_states: Iterable[str] | None = None,
        failure_states: Iterable[str] | None = None,
        not_found_grace: float | None = None,
    ) -> PlatformDetail:
        """``create(request)``, then ``wait_until_deployed`` on the new release id."""
        return await waiter.create_and_wait(
            self, request, timeout=timeout, delay=delay, max_delay=max_delay,
            success_states=success_states, failure_states=failure_states,
            not_found_grace=not_found_grace,
        )

    async def update_and_wait(
        self,
        release_id: str,
        request: UpdateRequestLike,
        *,
        timeout: float | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        success_states: Iterable[str] | None = None,
        failure_states: Iterable[str] | None = None,
        stale_grace: float | None = None,
    ) -> PlatformDetail:
        """``update(release_id, request)``, then wait until the update shows and it is deployed.

        Never returns the stale ``DEPLOYED`` from before the update: it waits for a newer
        ``modified_dt`` or an in-progress state first (at most ``stale_grace`` seconds).
        """
        return await waiter.update_and_wait(
            self, release_id, request, timeout=timeout, delay=delay, max_delay=max_delay,
            success_states=success_states, failure_states=failure_states, stale_grace=stale_grace,
        )

    async def delete_and_wait(
        self,
        release_id: str,
        with_k8s: bool = False,
        *,
        timeout: float | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        failure_states: Iterable[str] | None = None,
        stale_grace: float | None = None,
    ) -> None:
        """``delete(release_id, with_k8s)``, then wait until GET answers 404."""
        await waiter.delete_and_wait(
            self, release_id, with_k8s, timeout=timeout, delay=delay, max_delay=max_delay,
            failure_states=failure_states, stale_grace=stale_grace,
        )

    # ------------------------------------------------------------------ bulk (bulk.py)

    async def provision_many(
        self,
        requests: Iterable[CreateRequestLike],
        *,
        concurrency: int = bulk.DEFAULT_CONCURRENCY,
        wait: bool = True,
        timeout: float | None = None,
        on_event: bulk.EventCallback | None = None,
        page_size: int = bulk.DEFAULT_LIST_PAGE_SIZE,
        not_found_grace: float = bulk.DEFAULT_NOT_FOUND_GRACE,
    ) -> builtins.list[bulk.ProvisionResult]:
        """Create (or adopt) a platform per request and, with ``wait``, see each to ``DEPLOYED``.

        Returns one ``ProvisionResult`` per request, in input order; one platform's failure never
        raises. Idempotent by release name: a platform that exists is adopted (``created=False``),
        and a create whose outcome is unknown is looked up before anything is sent again.
        Waiting polls the fleet with paginated listings (about N / ``page_size`` calls a round).

        - ``concurrency``: this run's creates in flight (and, separately, its status reads).
        - ``wait``: False returns once every platform is created or adopted.
        - ``timeout``: per platform, for its create phase and for its wait (default: the
          client's ``poll_timeout``).
        - ``on_event``: called with each ``ProvisionEvent`` (a plain or an async function).
        """
        return await bulk.provision_many(
            self, requests, concurrency=concurrency, wait=wait, timeout=timeout,
            on_event=on_event, page_size=page_size, not_found_grace=not_found_grace,
        )

    def provision_events(
        self,
        requests: Iterable[CreateRequestLike],
        *,
        concurrency: int = bulk.DEFAULT_CONCURRENCY,
        wait: bool = True,
        timeout: float | None = None,
        page_size: int = bulk.DEFAULT_LIST_PAGE_SIZE,
        not_found_grace: float = bulk.DEFAULT_NOT_FOUND_GRACE,
    ) -> AsyncIterator[bulk.ProvisionEvent]:
        """``provision_many`` as an async iterator of its ``ProvisionEvent``s.

        The last event of each platform carries its ``result``. Leaving the loop early cancels
        the run (wrap it in ``contextlib.aclosing`` for that to happen at once).
        """
        return bulk.provision_events(
            self, requests, concurrency=concurrency, wait=wait, timeout=timeout,
            page_size=page_size, not_found_grace=not_found_grace,
        )
