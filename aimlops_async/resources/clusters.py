"""Cluster checks and inventory: version, namespaces, resources, nodes and storage classes."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from operator import attrgetter
from typing import Any

from ..models import CheckResponse, Node, NodeListPage, StorageClassList
from ..pagination import DEFAULT_PAGE_SIZE, AsyncPager
from ..session import CallOptions
from ..telemetry import Operation
from ._base import BASE_PATH, Resource, page_number, page_size, path_id, required_text

_CLUSTER = f"{BASE_PATH}/clusters/{{cluster_id}}"
_INTERNAL_CLUSTER = f"{BASE_PATH}/internal/clusters/{{cluster_id}}"
CHECK_VERSION = Operation("clusters.check_version", f"{_CLUSTER}/check-version")
VALIDATE_NAMESPACES = Operation("clusters.validate_namespaces", f"{_CLUSTER}/validate-namespaces")
VALIDATE_RESOURCES = Operation("clusters.validate_resources", f"{_CLUSTER}/validate-resources")
LIST_NODES = Operation("clusters.list_nodes", f"{_INTERNAL_CLUSTER}/nodes")
LIST_STORAGE_CLASSES = Operation("clusters.list_storage_classes", f"{_INTERNAL_CLUSTER}/storageclasses")


class Clusters(Resource):
    """``client.clusters``."""

    async def check_version(
        self,
        cluster_id: str,
        version: str,
        *,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> CheckResponse:
        """``GET clusters/{cluster_id}/check-version``: can the platform run on this version?"""
        cluster = path_id(cluster_id, "cluster_id")
        params = {"version": required_text(version, "version")}
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)
        return await self._session.request(
            "GET", f"{BASE_PATH}/clusters/{cluster}/check-version",
            params=params, response_type=CheckResponse, options=options, operation=CHECK_VERSION,
        )

    async def validate_namespaces(
        self,
        cluster_id: str,
        *,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> CheckResponse:
        """``GET clusters/{cluster_id}/validate-namespaces``: is the cluster free to install on?"""
        cluster = path_id(cluster_id, "cluster_id")
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)
        return await self._session.request(
            "GET", f"{BASE_PATH}/clusters/{cluster}/validate-namespaces",
            response_type=CheckResponse, options=options, operation=VALIDATE_NAMESPACES,
        )

    async def validate_resources(
        self,
        cluster_id: str,
        product_type: str,
        *,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> CheckResponse:
        """``GET clusters/{cluster_id}/validate-resources``: is the cluster big enough?

        ``product_type``: ``Enterprise`` or ``Mini`` (the live service also takes them in
        lower case).
        """
        cluster = path_id(cluster_id, "cluster_id")
        params = {"product_type": required_text(product_type, "product_type")}
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)
        return await self._session.request(
            "GET", f"{BASE_PATH}/clusters/{cluster}/validate-resources",
            params=params, response_type=CheckResponse, options=options, operation=VALIDATE_RESOURCES,
        )

    def list_nodes(
        self,
        cluster_id: str,
        *,
        sort: str | None = None,
        size: int = DEFAULT_PAGE_SIZE,
        page: int = 0,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> AsyncPager[Node, NodeListPage]:
        """A pager over the cluster's nodes (``GET internal/clusters/{cluster_id}/nodes``).

        ``size`` is the page size; ``page`` the 0-based page the walk starts from. The per-call
        options apply to every page.
        """
        path = f"{BASE_PATH}/internal/clusters/{path_id(cluster_id, 'cluster_id')}/nodes"
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)

        def fetch(page: int, size: int) -> Awaitable[NodeListPage]:
            # The request's own coroutine: no frame of its own to pass through on each wake-up.
            return self._session.request(
                "GET", path, params={"sort": sort, "size": size, "page": page},
                response_type=NodeListPage, options=options, operation=LIST_NODES,
            )

        return AsyncPager(
            fetch,
            items=attrgetter("nodes"),
            total=attrgetter("count"),
            key=attrgetter("name"),
            size=page_size(size),
            first_page=page_number(page),
        )

    async def list_storage_classes(
        self,
        cluster_id: str,
        *,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> StorageClassList:
        """``GET internal/clusters/{cluster_id}/storageclasses``."""
        cluster = path_id(cluster_id, "cluster_id")
        options = CallOptions.build(extra_headers, extra_query, extra_body, timeout)
        return await self._session.request(
            "GET", f"{BASE_PATH}/internal/clusters/{cluster}/storageclasses",
            response_type=StorageClassList, options=options, operation=LIST_STORAGE_CLASSES,
        )
