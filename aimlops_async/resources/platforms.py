"""AI&MLOps platforms: the six platform endpoints (waits and bulk runs live in ``lifecycle``)."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from operator import attrgetter
from typing import Any

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
from ..session import CallOptions
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


class PlatformEndpoints(Resource):
    """One method per platform endpoint; ``client.platforms`` adds waits to them (``lifecycle``)."""

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
        await self._session.request(
            "DELETE", path,
            # The reference's path has no query by default: send with_k8s only when it asks for more.
            params={"with_k8s": True} if with_k8s else None, options=options, operation=DELETE,
        )

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
        filters = {
            "release_name": release_name, "status": status, "cluster_name": cluster_name,
            "version": version, "kubeflow_type": kubeflow_type, "created_by": created_by,
            "sort": sort,
        }
        params = {name: value for name, value in filters.items() if value is not None}
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)

        def fetch(page: int, size: int) -> Awaitable[PlatformListPage]:
            # The request's own coroutine: no frame of its own to pass through on each wake-up.
            return self._session.request(
                "GET", BASE_PATH, params={**params, "size": size, "page": page},
                response_type=PlatformListPage, options=options, operation=LIST,
            )

        return AsyncPager(
            fetch,
            items=attrgetter("contents"),
            total=attrgetter("total_count"),
            key=attrgetter("release_id"),
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
        return await self._session.request(
            "PUT", path, body=body, response_type=AsyncResponse, options=options, operation=UPDATE
        )
