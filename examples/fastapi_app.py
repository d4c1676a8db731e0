"""Example FastAPI backend on aimlops-async: list, get, create (202), delete (202), wait, live progress (SSE).

One ``AimlopsClient`` serves the whole app (opened at start-up, closed at shutdown), SDK errors
become HTTP answers, and the waits after a 202 run as tracked background tasks that shutdown
cancels before the client closes.

Try it against the local emulator, in two shells::

    aimlops emulator --port 8080
    # paste the "export ..." lines it printed, then:
    uvicorn examples.fastapi_app:app --port 8000 --timeout-graceful-shutdown 5

and drive it::

    curl -s localhost:8000/platforms
    curl -si -X POST localhost:8000/platforms -H 'Content-Type: application/json' -d @body.json
    curl -sN localhost:8000/platforms/<release_id>/events

Configuration comes from the environment, read at start-up: ``AIMLOPS_ENDPOINT``,
``SCP_ACCESS_KEY``, ``SCP_SECRET_KEY``, ``SCP_ACCOUNT_ID`` (the SDK's own variables), and, for
this example only, ``AIMLOPS_POLL_DELAY`` / ``AIMLOPS_POLL_MAX_DELAY`` (seconds between polls;
the SDK's defaults suit the real service, where provisioning takes minutes).
``--timeout-graceful-shutdown`` matters for open event streams: uvicorn waits for open
responses before it runs the shutdown, so without it Ctrl-C waits for each stream to end.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any, cast
from urllib.parse import quote

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse, Response

from aimlops_async import AimlopsClient, NotFoundError, PlatformDetail, PlatformListPage, ValidationError
from aimlops_async.contrib.fastapi import (
    SSE_END_ID,
    AimlopsClientDep,
    TaskRegistry,
    TaskRegistryDep,
    aimlops_lifespan,
    install_exception_handlers,
    log_through_server,
    platform_events_response,
    to_jsonable,
)

__all__ = ["app", "create_app"]

logger = logging.getLogger("examples.fastapi_app")

PAGE_SIZE_MAX = 100
WAIT_TIMEOUT_MAX = 300.0


def _client_from_env() -> AimlopsClient:
    """The client, configured from the environment at start-up (not at import)."""
    options: dict[str, Any] = {}
    for variable, option in (
        ("AIMLOPS_POLL_DELAY", "poll_delay"), ("AIMLOPS_POLL_MAX_DELAY", "poll_max_delay")
    ):
        if os.environ.get(variable):
            options[option] = float(os.environ[variable])
    if "poll_delay" in options and "poll_max_delay" not in options:
        options["poll_max_delay"] = max(options["poll_delay"], 30.0)
    return AimlopsClient(**options)


def create_app(
    *,
    keepalive: float = 15.0,
    events_not_found_grace: float = 5.0,
    shutdown_timeout: float = 10.0,
    **client_kwargs: Any,
) -> FastAPI:
    """The app. ``client_kwargs`` go to ``AimlopsClient`` (none: everything from the environment).

    ``keepalive``: seconds of silence before an event stream sends a keep-alive comment.
    ``events_not_found_grace``: an event stream or a long poll of a platform this app has just
    created (its deploy wait still runs) tolerates 404s this long (the new platform may not be
    visible yet); any other unknown release id answers 404 at once. ``shutdown_timeout``: how long
    shutdown waits for cancelled background waits to stop.
    """
    factory = None if client_kwargs else _client_from_env

    @contextlib.asynccontextmanager
    async def logging_lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Background waits log when a platform is deployed or gone: into uvicorn's log.
        with log_through_server("aimlops_async", logger.name):
            yield

    app = FastAPI(
        title="aimlops-async FastAPI example",
        lifespan=aimlops_lifespan(
            logging_lifespan, client_factory=factory, shutdown_timeout=shutdown_timeout, **client_kwargs
        ),
    )
    install_exception_handlers(app)

    @app.get("/platforms")
    async def list_platforms(
        client: AimlopsClientDep,
        page: Annotated[int, Query(ge=0, description="0-based page number")] = 0,
        size: Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)] = 20,
        release_name: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """One page of the API's platform list, passed through."""
        pager = client.platforms.list(release_name=release_name, status=status, size=size, page=page)
        # Only the first page walked is wanted: close the walk instead of leaving it to the GC.
        walk = cast(AsyncGenerator[PlatformListPage, None], pager.pages())
        async with contextlib.aclosing(walk) as pages:
            async for found in pages:
                return {
                    "contents": to_jsonable(found.contents or []),
                    "total_count": found.total_count,
                    "page": page,
                    "size": size,
                }
        return {"contents": [], "total_count": 0, "page": page, "size": size}  # pragma: no cover

    @app.get("/platforms/{release_id}")
    async def get_platform(release_id: str, client: AimlopsClientDep) -> dict[str, Any]:
        """One platform's detail."""
        detail = await client.platforms.get(release_id)
        return dict(to_jsonable(detail))

    @app.post("/platforms", status_code=202)
    async def create_platform(
        body: dict[str, Any], client: AimlopsClientDep, tasks: TaskRegistryDep
    ) -> JSONResponse:
        """Start creating a platform (body: the API's create request); 202 now, the wait goes on."""
        try:
            answer = await client.platforms.create(body)
        except NotFoundError as error:
            # Not this route that is missing: a cluster or image the body names.
            raise ValidationError([(_missing_field(error), error.message or "was not found")]) from error
        release_id = answer.resource_id
        if not release_id:
            raise HTTPException(502, "the platform API accepted the create but sent no release id")
        tasks.spawn(_until_deployed(client, release_id), name=f"deploy:{release_id}")
        return JSONResponse(
            {"release_id": release_id}, status_code=202, headers={"Location": _location(release_id)}
        )

    @app.delete("/platforms/{release_id}", status_code=202)
    async def delete_platform(
        release_id: str,
        client: AimlopsClientDep,
        tasks: TaskRegistryDep,
        with_k8s: bool = False,
    ) -> JSONResponse:
        """Start deleting a platform; 202 at once, then wait in the background until it is gone."""
        # The delete itself is sent here, not in the background, so that a 404 or a refusal
        # reaches the caller instead of a log line.
        await client.platforms.delete(release_id, with_k8s=with_k8s)
        # A deploy wait still running would see the platform vanish and end in an error.
        tasks.cancel(f"deploy:{release_id}")
        tasks.spawn(_until_deleted(client, release_id), name=f"delete:{release_id}")
        return JSONResponse(
            {"release_id": release_id}, status_code=202, headers={"Location": _location(release_id)}
        )

    @app.get("/platforms/{release_id}/wait")
    async def wait_for_platform(
        release_id: str,
        client: AimlopsClientDep,
        tasks: TaskRegistryDep,
        timeout: Annotated[float, Query(gt=0, le=WAIT_TIMEOUT_MAX)] = 60.0,
    ) -> dict[str, Any]:
        """Long poll: the detail once deployed; 404 if unknown, 409 if it failed, 504 past ``timeout``."""
        detail = await client.platforms.wait_until_deployed(
            release_id, timeout=timeout, not_found_grace=_grace(tasks, release_id)
        )
        return dict(to_jsonable(detail))

    @app.get("/platforms/{release_id}/events", response_model=None)
    async def platform_events(
        release_id: str,
        client: AimlopsClientDep,
        tasks: TaskRegistryDep,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Server-Sent Events: ``state`` per change, then ``done`` or ``error``."""
        if last_event_id == SSE_END_ID:
            # An EventSource reconnecting after the final event: 204 tells it to stop.
            return Response(status_code=204)
        return await platform_events_response(
            client, release_id, keepalive=keepalive, not_found_grace=_grace(tasks, release_id)
        )

    def _grace(tasks: TaskRegistry, release_id: str) -> float:
        # A platform this app just created may not be visible yet; any other unknown id is a 404 now.
        return events_not_found_grace if tasks.running(f"deploy:{release_id}") else 0.0

    return app


_MISSING_FIELDS = {
    "CLUSTER_NOT_FOUND": "ai_ml_ops_platform_create_request.cluster_id",
    "IMAGE_NOT_FOUND": "ai_ml_ops_platform_create_request.image_id",
}


def _missing_field(error: NotFoundError) -> str:
    """The field of the create body that named something missing, as the service tells it."""
    field = error.body.get("field") if isinstance(error.body, dict) else None
    if isinstance(field, str) and field:
        return field
    return _MISSING_FIELDS.get((error.code or "").upper(), "body")


def _location(release_id: str) -> str:
    return f"/platforms/{quote(release_id, safe='')}"


async def _until_deployed(client: AimlopsClient, release_id: str) -> PlatformDetail:
    detail = await client.platforms.wait_until_deployed(release_id)
    logger.info("platform %s (%s) is %s", release_id, detail.release_name, detail.release_state)
    return detail


async def _until_deleted(client: AimlopsClient, release_id: str) -> None:
    await client.platforms.wait_until_deleted(release_id)
    logger.info("platform %s is deleted", release_id)


app = create_app()


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(app, host="127.0.0.1", port=8000, timeout_graceful_shutdown=5)
