"""The emulator's aiohttp.web app: the twelve routes, the signature check, faults and errors."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import re
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import attrs
from aiohttp import web

from . import faults as fault_kinds
from .faults import NO_FAULT, Fault, Faults
from .store import (
    IMAGE_SORT_FIELDS,
    NODE_SORT_FIELDS,
    PLATFORM_SORT_FIELDS,
    Principal,
    Store,
)
from .validation import (
    ApiError,
    bad_request,
    parse_json_object,
    parse_paging,
    parse_with_k8s,
    required_query,
    validate_create,
    validate_update,
)

__all__ = ["BASE_PATH", "EmulatorStats", "Service", "build_app"]

logger = logging.getLogger("aimlops_async.emulator")

BASE_PATH = "/v1/aimlops-platform"
TIMESTAMP_WINDOW = 300.0  # seconds either side of the server clock
_AUTH_HEADERS = ("Scp-AccessKey", "Scp-Timestamp", "Scp-ClientType", "Scp-Signature")
# Scp-Api-Version values served: 1.1 is CURRENT, 1.0 DEPRECATED; anything else answers 406.
SUPPORTED_API_VERSIONS = ("aimlops-platform 1.0", "aimlops-platform 1.1")
_TIMESTAMP = re.compile(r"[0-9]{1,16}")
_SUPPORTED_K8S = re.compile(r"[vV]?1\.(27|28|29|30)([^0-9].*)?")
# The live service also takes the product types in lower case.
_PRODUCT_CPUS = {"Enterprise": 32, "Mini": 8, "enterprise": 32, "mini": 8}

_JSON = "application/json"
_TRUE = json.dumps({"result": True}).encode()
_FALSE = json.dumps({"result": False}).encode()
_PROXY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)

Endpoint = Callable[[web.Request, Principal], Awaitable[web.Response]]


@attrs.define
class EmulatorStats:
    """What the emulator has seen since it started (or since ``reset()``).

    ``requests``: Counter keyed ``"METHOD /route/pattern"``; ``statuses``: Counter of the HTTP
    statuses answered; ``creates``: Counter of ``release_name`` for every platform actually
    created; ``faults``: Counter of injected fault kinds; ``total``: number of requests.
    """

    requests: Counter[str] = attrs.Factory(Counter)
    statuses: Counter[int] = attrs.Factory(Counter)
    creates: Counter[str] = attrs.Factory(Counter)
    faults: Counter[str] = attrs.Factory(Counter)
    total: int = 0

    def reset(self) -> None:
        self.requests.clear()
        self.statuses.clear()
        self.creates.clear()
        self.faults.clear()
        self.total = 0


class _Dropped(web.Response):
    """Returned after the connection was closed: aiohttp's write fails quietly, nothing is sent."""


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(payload).encode(), status=status, content_type=_JSON)


def _error(exc: ApiError) -> web.Response:
    # One id per answer: in the error envelope and in X-Request-Id (kept by on_prepare).
    request_id = secrets.token_hex(16)
    response = _json(exc.body(request_id), exc.status)
    response.headers["X-Request-Id"] = request_id
    return response


def _bool(result: bool) -> web.Response:
    return web.Response(body=_TRUE if result else _FALSE, content_type=_JSON)


def _http_exception_response(exc: web.HTTPException) -> web.Response:
    code = re.sub(r"[^A-Z0-9]+", "_", (exc.reason or "error").upper()).strip("_")
    message = {
        404: "no such path",
        405: "method not allowed on this path",
        413: "the request body is too large",
    }.get(exc.status, exc.reason)
    response = _error(ApiError(exc.status, code, message))
    allow = exc.headers.get("Allow")
    if allow is not None:
        response.headers["Allow"] = allow
    return response


class Service:
    """Everything a request needs: the store, the current faults, the stats."""

    def __init__(self, store: Store, faults: Faults, stats: EmulatorStats) -> None:
        self.store = store
        self.faults = faults
        self.stats = stats
        self._date_second = -1
        self._date_value = ""

    # --- cross-cutting ----------------------------------------------------------------------

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        stats = self.stats
        stats.total += 1
        resource = request.match_info.route.resource
        pattern = resource.canonical if resource is not None else "(unmatched)"
        stats.requests[f"{request.method} {pattern}"] += 1
        try:
            response = await handler(request)
        except ApiError as exc:
            response = _error(exc)
        except web.HTTPException as exc:
            response = _http_exception_response(exc)
        except Exception:
            logger.exception("unexpected error answering %s %s", request.method, request.path)
            response = _error(
                ApiError(400, "BAD_REQUEST", "the request could not be processed")
            )
        if not isinstance(response, _Dropped):
            stats.statuses[response.status] += 1
        return response

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Date"] = self._http_date()
        if "X-Request-Id" not in response.headers:
            response.headers["X-Request-Id"] = secrets.token_hex(16)

    def _http_date(self) -> str:
        wall = self.store.wall()
        second = int(wall)
        if second != self._date_second:
            moment = datetime.fromtimestamp(second, timezone.utc)
            self._date_value = format_datetime(moment, usegmt=True)
            self._date_second = second
        return self._date_value

    def authenticate(self, request: web.Request) -> Principal:
        """Check the SCP signature headers (401) and the API version (406).

        The signed message is the official SDK's: METHOD + URL + TIMESTAMP + ACCESS_KEY +
        ACCOUNT_ID + CLIENT_TYPE, the account id being the ``Scp-AccountId`` header ("" when
        absent). An account id sent that is not the project's is refused (403).
        """
        headers = request.headers
        values = [headers.get(name) for name in _AUTH_HEADERS]
        for name, value in zip(_AUTH_HEADERS, values, strict=True):
            if not value:
                raise ApiError(401, "AUTHENTICATION_FAILED", f"the {name} header is missing")
        access_key, timestamp, client_type, signature = values
        assert access_key and timestamp and client_type and signature
        if not _TIMESTAMP.fullmatch(timestamp):
            raise ApiError(
                401, "AUTHENTICATION_FAILED", "Scp-Timestamp must be milliseconds since the epoch"
            )
        principal = self.store.principals.get(access_key)
        if principal is None:
            raise ApiError(401, "AUTHENTICATION_FAILED", "the access key is not known")
        account_id = headers.get("Scp-AccountId") or ""
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        message = request.method + url + timestamp + access_key + account_id + client_type
        digest = hmac.digest(
            principal.secret_bytes, message.encode("utf-8", "surrogateescape"), "sha256"
        )
        given = signature.encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(base64.b64encode(digest), given):
            raise ApiError(401, "AUTHENTICATION_FAILED", "the signature does not match")
        if abs(int(timestamp) / 1000.0 - self.store.wall()) > TIMESTAMP_WINDOW:
            raise ApiError(
                401,
                "AUTHENTICATION_FAILED",
                "Scp-Timestamp is more than 5 minutes away from the server clock",
            )
        expected_account = principal.project.account_id
        if account_id and expected_account is not None and account_id != expected_account:
            raise ApiError(403, "FORBIDDEN", "the access key does not belong to this account")
        version = headers.get("Scp-Api-Version")
        if version is not None and version not in SUPPORTED_API_VERSIONS:
            raise ApiError(
                406, "NOT_ACCEPTABLE",
                f"Scp-Api-Version {version!r} is not served; supported: "
                + ", ".join(SUPPORTED_API_VERSIONS),
            )
        return principal

    def endpoint(self, func: Endpoint, *, is_create: bool = False) -> Callable[
        [web.Request], Awaitable[web.StreamResponse]
    ]:
        """Wrap an endpoint with the signature check and fault injection."""

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                principal = self.authenticate(request)
            except ApiError as exc:
                if exc.status == 401 and self.store.config.gateway_auth_failures:
                    return self._gateway_page(request)
                raise
            faults = self.faults
            fault = faults.roll(is_get=request.method == "GET", is_create=is_create)
            if fault is NO_FAULT:
                return await func(request, principal)
            return await self._faulty(request, principal, func, faults, fault)

        return handler

    def _gateway_page(self, request: web.Request) -> web.Response:
        """The live API gateway's answer to a request it cannot authenticate: its own 404 page."""
        moment = datetime.fromtimestamp(self.store.wall(), timezone.utc)
        return _json(
            {
                "timestamp": moment.isoformat(timespec="milliseconds"),
                "path": request.path,
                "status": 404,
                "error": "Not Found",
                "requestId": secrets.token_hex(8),
            },
            404,
        )

    async def _faulty(
        self,
        request: web.Request,
        principal: Principal,
        func: Endpoint,
        faults: Faults,
        fault: Fault,
    ) -> web.StreamResponse:
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        kind = fault.kind
        if kind is None:
            return await func(request, principal)
        self.stats.faults[kind] += 1
        if kind == fault_kinds.DROP:
            return _drop(request)
        if kind == fault_kinds.ERROR:
            status = int(fault.variant or 500)
            code = "INTERNAL_SERVER_ERROR" if status == 500 else "SERVICE_UNAVAILABLE"
            return _error(ApiError(status, code, "injected server error"))
        if kind == fault_kinds.RATE_LIMIT:
            response = _error(
                ApiError(429, "TOO_MANY_REQUESTS", "rate limit exceeded, retry later")
            )
            response.headers["Retry-After"] = faults.retry_after_header
            return response
        if kind == fault_kinds.MALFORMED and fault.variant == "html":
            return web.Response(body=_PROXY_PAGE, status=502, content_type="text/html")
        try:
            response = await func(request, principal)
        except ApiError as exc:
            response = _error(exc)
        if kind == fault_kinds.AMBIGUOUS_CREATE:
            return _drop(request)
        if kind == fault_kinds.STALL:
            await asyncio.sleep(faults.stall_seconds)
            return response
        body = response.body if isinstance(response.body, bytes) else b"{}"
        return web.Response(body=body[: max(1, len(body) // 2)], content_type=_JSON)

    # --- endpoints --------------------------------------------------------------------------

    async def check_duplication(self, request: web.Request, principal: Principal) -> web.Response:
        name = required_query(request.query, "release_name")
        return _bool(self.store.name_taken(principal.project, name))

    async def create(self, request: web.Request, principal: Principal) -> web.Response:
        body = validate_create(parse_json_object(await request.read()))
        release_id = self.store.create_platform(principal, body)
        self.stats.creates[body["ai_ml_ops_platform_create_request"]["release_name"]] += 1
        return self._async_response(principal, release_id, 201)

    async def delete(self, request: web.Request, principal: Principal) -> web.Response:
        with_k8s = parse_with_k8s(request.query)
        self.store.delete_platform(principal, request.match_info["release_id"], with_k8s)
        return web.Response(status=200)

    async def get(self, request: web.Request, principal: Principal) -> web.Response:
        release_id = request.match_info["release_id"]
        return _json(self.store.get_platform(principal.project, release_id))

    async def list_platforms(self, request: web.Request, principal: Principal) -> web.Response:
        query = request.query
        paging = parse_paging(
            query,
            page_size_max=self.store.config.page_size_max,
            sort_fields=PLATFORM_SORT_FIELDS,
        )
        items, total = self.store.list_platforms(principal.project, query, paging)
        return _json({"contents": items, "total_count": total})

    async def update(self, request: web.Request, principal: Principal) -> web.Response:
        body = validate_update(parse_json_object(await request.read()))
        release_id = request.match_info["release_id"]
        self.store.update_platform(principal, release_id, body)
        return self._async_response(principal, release_id, 200)

    async def list_images(self, request: web.Request, principal: Principal) -> web.Response:
        query = request.query
        paging = parse_paging(
            query, page_size_max=self.store.config.page_size_max, sort_fields=IMAGE_SORT_FIELDS
        )
        items, total = self.store.list_images(principal.project, query.get("image_name"), paging)
        return _json({"contents": items, "total_count": total})

    async def check_version(self, request: web.Request, principal: Principal) -> web.Response:
        version = required_query(request.query, "version")
        self.store.cluster(principal.project, request.match_info["cluster_id"])
        return _bool(_SUPPORTED_K8S.fullmatch(version.strip()) is not None)

    async def validate_namespaces(
        self, request: web.Request, principal: Principal
    ) -> web.Response:
        cluster_id = request.match_info["cluster_id"]
        return _bool(self.store.namespaces_free(principal.project, cluster_id))

    async def validate_resources(
        self, request: web.Request, principal: Principal
    ) -> web.Response:
        product_type = required_query(request.query, "product_type")
        needed = _PRODUCT_CPUS.get(product_type)
        if needed is None:
            raise bad_request(
                "must be 'Enterprise' or 'Mini' (or 'enterprise', 'mini')", "product_type"
            )
        cluster = self.store.cluster(principal.project, request.match_info["cluster_id"])
        return _bool(cluster.cpu_total >= needed)

    async def list_nodes(self, request: web.Request, principal: Principal) -> web.Response:
        paging = parse_paging(
            request.query,
            page_size_max=self.store.config.page_size_max,
            sort_fields=NODE_SORT_FIELDS,
        )
        nodes, total = self.store.list_nodes(
            principal.project, request.match_info["cluster_id"], paging
        )
        return _json({"count": total, "links": [], "nodes": nodes})

    async def list_storage_classes(
        self, request: web.Request, principal: Principal
    ) -> web.Response:
        cluster = self.store.cluster(principal.project, request.match_info["cluster_id"])
        classes = cluster.storage_classes
        return _json({"count": len(classes), "links": [], "storage_classes": classes})

    def _async_response(self, principal: Principal, release_id: str, status: int) -> web.Response:
        return _json(
            {
                "project_id": principal.project.project_id,
                "request_id": self.store.new_id(),
                "resource_id": release_id,
            },
            status,
        )


def _drop(request: web.Request) -> web.Response:
    """Close the connection without answering (the client sees a disconnect)."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return _Dropped()


def build_app(service: Service) -> web.Application:
    """The aiohttp application. Fixed paths come before ``/{release_id}`` so they win."""
    app = web.Application(middlewares=[service.middleware])
    app.on_response_prepare.append(service.on_prepare)
    base = BASE_PATH
    ep = service.endpoint
    routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
        ("GET", f"{base}/check-duplication", ep(service.check_duplication)),
        ("GET", f"{base}/images", ep(service.list_images)),
        ("GET", f"{base}/clusters/{{cluster_id}}/check-version", ep(service.check_version)),
        (
            "GET",
            f"{base}/clusters/{{cluster_id}}/validate-namespaces",
            ep(service.validate_namespaces),
        ),
        (
            "GET",
            f"{base}/clusters/{{cluster_id}}/validate-resources",
            ep(service.validate_resources),
        ),
        ("GET", f"{base}/internal/clusters/{{cluster_id}}/nodes", ep(service.list_nodes)),
        (
            "GET",
            f"{base}/internal/clusters/{{cluster_id}}/storageclasses",
            ep(service.list_storage_classes),
        ),
        ("GET", base, ep(service.list_platforms)),
        ("POST", base, ep(service.create, is_create=True)),
        ("GET", f"{base}/{{release_id}}", ep(service.get)),
        ("PUT", f"{base}/{{release_id}}", ep(service.update)),
        ("DELETE", f"{base}/{{release_id}}", ep(service.delete)),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return app
