"""The emulator's HTTP protocol: requests aiohttp's parser refuses get the JSON error answer.

Oversized headers, a huge URL or a malformed request line never reach the application, so
its middleware cannot answer them: aiohttp answers plain text and logs a traceback. Here
they are answered like every other error of the emulator, with one log line.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from .app import _error
from .validation import ApiError

__all__ = ["JsonErrorAppRunner"]

logger = logging.getLogger("aimlops_async.emulator")
# What aiohttp's parser error says is its own wording; the length shown is bounded.
_REASON_LIMIT = 200


class _JsonErrorRequestHandler(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        reason = " ".join(str(message or exc or HTTPStatus(status).phrase).split())[:_REASON_LIMIT]
        logger.warning("refused a request from %s: %d %s", request.remote, status, reason)
        if request.writer.output_size > 0:
            # Part of an answer went out already: the connection is beyond repair (as aiohttp does).
            raise ConnectionError("an answer was already being sent; closing the connection")
        code = "BAD_REQUEST" if status < 500 else "INTERNAL_SERVER_ERROR"
        text = reason if status < 500 else "the emulator failed to answer this request"
        response = _error(ApiError(status, code, text))
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorAppRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer parser errors with the emulator's JSON errors."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp has no public hook for errors raised before a request reaches the application:
        # the server it built is given the protocol class that answers them (no state is added).
        server.__class__ = _JsonErrorServer
        return server
