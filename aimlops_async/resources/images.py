"""Platform images: ``GET /v1/aimlops-platform/images``."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from operator import attrgetter
from typing import Any

from ..models import Image, ImageListPage
from ..pagination import DEFAULT_PAGE_SIZE, AsyncPager
from ..session import CallOptions
from ..telemetry import Operation
from ._base import BASE_PATH, Resource, page_number, page_size

LIST = Operation("images.list", f"{BASE_PATH}/images")


class Images(Resource):
    """``client.images``."""

    def list(
        self,
        *,
        image_name: str | None = None,
        sort: str | None = None,
        size: int = DEFAULT_PAGE_SIZE,
        page: int = 0,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> AsyncPager[Image, ImageListPage]:
        """A pager over the images (``async for image in client.images.list()``).

        ``size`` is the page size; ``page`` the 0-based page the walk starts from. The per-call
        options apply to every page.
        """
        filters = {"image_name": image_name, "sort": sort}
        params = {name: value for name, value in filters.items() if value is not None}
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)

        def fetch(page: int, size: int) -> Awaitable[ImageListPage]:
            # The request's own coroutine: no frame of its own to pass through on each wake-up.
            return self._session.request(
                "GET", f"{BASE_PATH}/images", params={**params, "size": size, "page": page},
                response_type=ImageListPage, options=options, operation=LIST,
            )

        return AsyncPager(
            fetch,
            items=attrgetter("contents"),
            total=attrgetter("total_count"),
            key=attrgetter("image_id"),
            size=page_size(size),
            first_page=page_number(page),
        )
