"""AI&MLOps platforms: the six platform endpoints (waits and bulk runs live in ``lifecycle``)."""

from __future__ import annotations

from collections.abc import Mapping
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


class PlatformEndpoints(Resource):
    """One method per platform endpoint; ``client.platforms`` adds waits to them (``lifecycle``)."""

    async def check_duplication(self, release_name: str) -> bool:
        """``GET check-duplication``: True when a platform of that release name already exists."""
        answer = await self._session.request(
            "GET", f"{BASE_PATH}/check-duplication",
            params={"release_name": required_text(release_name, "release_name")},
            response_type=CheckResponse,
        )
        return answer.result is True

    async def create(self, request: CreateRequestLike) -> AsyncResponse:
        """``POST /v1/aimlops-platform``: start creating a platform; ``resource_id`` is its release id.

        ``request`` is a ``CreatePlatformRequest`` or a mapping in the API's JSON shape; it is
        checked before anything is sent (``ValidationError`` names each bad field).
        """
        body = checked_request(request, CreatePlatformRequest)
        return await self._session.request(
            "POST", BASE_PATH, body=body, response_type=AsyncResponse
        )

    async def delete(self, release_id: str, with_k8s: bool = False) -> None:
        """``DELETE {release_id}``: start deleting a platform (and its Kubernetes engine: ``with_k8s``)."""
        if not isinstance(with_k8s, bool):
            raise ValidationError(f"must be True or False, got {with_k8s!r}", "with_k8s")
        await self._session.request(
            "DELETE", f"{BASE_PATH}/{path_id(release_id, 'release_id')}",
            # The reference's path has no query by default: send with_k8s only when it asks for more.
            params={"with_k8s": True} if with_k8s else None,
        )

    async def get(self, release_id: str) -> PlatformDetail:
        """``GET {release_id}``: the platform's detail (``NotFoundError`` when there is none)."""
        return await self._session.request(
            "GET", f"{BASE_PATH}/{path_id(release_id, 'release_id')}",
            response_type=PlatformDetail,
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
    ) -> AsyncPager[PlatformSummary, PlatformListPage]:
        """A pager over platform summaries; the filters are the reference's query parameters.

        ``size`` is the page size; ``page`` the 0-based page the walk starts from.
        """
        params = {
            "release_name": release_name, "status": status, "cluster_name": cluster_name,
            "version": version, "kubeflow_type": kubeflow_type, "created_by": created_by,
            "sort": sort,
        }

        async def fetch(page: int, size: int) -> PlatformListPage:
            return await self._session.request(
                "GET", BASE_PATH, params={**params, "size": size, "page": page},
                response_type=PlatformListPage,
            )

        return AsyncPager(
            fetch,
            items=lambda page: page.contents,
            total=lambda page: page.total_count,
            key=lambda platform: platform.release_id,
            size=page_size(size),
            first_page=page_number(page),
        )

    async def update(self, release_id: str, request: UpdateRequestLike) -> AsyncResponse:
        """``PUT {release_id}``: start an update (endpoint type and/or domain service)."""
        path = f"{BASE_PATH}/{path_id(release_id, 'release_id')}"
        body = checked_request(request, UpdatePlatformRequest)
        return await self._session.request("PUT", path, body=body, response_type=AsyncResponse)
