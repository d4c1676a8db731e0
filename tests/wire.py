"""A recording aiohttp.web test server: it records each request exactly as received, answers scripted
replies (status, body, headers, stalls, dropped connections) and checks SCP signatures with its own
HMAC code, written independently of ``aimlops_async.auth``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict

from aimlops_async import Credentials

__all__ = [
    "FAST_RETRIES", "Recorded", "Reply", "WireServer", "expected_signature", "free_port", "serving",
]

ACCESS_KEY = "wire-access-key"
SECRET_KEY = "wire-secret-key/+="


def expected_signature(
    secret_key: str,
    method: str,
    url: str,
    timestamp: str,
    access_key: str,
    account_id: str,
    client_type: str,
) -> str:
    """The SCP signature as CONTRACT section 1 defines it, computed here on its own."""
    message = (method + url + timestamp + access_key + account_id + client_type).encode("utf-8")
    digest = hmac.new(secret_key.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.standard_b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    scheme: str
    host: str  # the Host header: host, plus ":port" when the client sent one
    raw_path: str  # path and query string exactly as on the request line
    headers: CIMultiDict[str]
    body: bytes
    received_at: float  # time.monotonic() when the request arrived

    @property
    def path(self) -> str:
        return self.raw_path.partition("?")[0]

    @property
    def query_string(self) -> str:
        return self.raw_path.partition("?")[2]

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.query_string, keep_blank_values=True))

    @property
    def url(self) -> str:
        """The full URL as it went on the wire: what the client had to sign."""
        return f"{self.scheme}://{self.host}{self.raw_path}"

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """A scripted answer. ``body``: a dict or list is sent as JSON, str or bytes as given."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    stall: float = 0.0  # seconds to wait before answering
    drop: bool = False  # close the connection instead of answering


Handler = Callable[[Recorded], "Reply | Awaitable[Reply]"]


class WireServer:
    """``async with WireServer() as server:`` serves ``server.url``; every request lands in ``requests``.

    Answers come from ``script(...)`` (first in, first out), then from ``handler`` when set, then
    ``default``. ``max_in_flight`` is the largest number of requests handled at the same moment.
    """

    def __init__(
        self,
        *,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        account_id: str | None = None,
        auth_token: str | None = None,
        default: Reply | None = None,
        handler: Handler | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.account_id = account_id
        self.auth_token = auth_token
        self.default = default or Reply(200, {})
        self.handler = handler
        self.host = host
        self.port = port
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[Reply] = deque()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.access_key, self.secret_key, self.account_id, self.auth_token)

    @property
    def url(self) -> str:
        assert self._url is not None, "the server is not running"
        return self._url

    def script(self, *replies: Reply) -> None:
        self._script.extend(replies)

    def signature_ok(self, recorded: Recorded) -> bool:
        headers = recorded.headers
        expected = expected_signature(
            self.secret_key,
            recorded.method,
            recorded.url,
            headers.get("Scp-Timestamp", ""),
            headers.get("Scp-AccessKey", ""),
            headers.get("Scp-AccountId", ""),
            headers.get("Scp-ClientType", ""),
        )
        return hmac.compare_digest(expected, headers.get("Scp-Signature", ""))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = Recorded(
            method=request.method,
            scheme=request.scheme,
            host=request.headers.get("Host", ""),
            raw_path=request.raw_path,
            headers=CIMultiDict(request.headers),
            body=await request.read(),
            received_at=time.monotonic(),
        )
        self.requests.append(recorded)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = await self._reply_for(recorded)
            if reply.stall:
                await asyncio.sleep(reply.stall)
            if reply.drop:
                if request.transport is not None:
                    request.transport.close()
                return web.Response()
            return _response(reply)
        finally:
            self.in_flight -= 1

    async def _reply_for(self, recorded: Recorded) -> Reply:
        if self._script:
            return self._script.popleft()
        if self.handler is not None:
            reply = self.handler(recorded)
            return await reply if not isinstance(reply, Reply) else reply
        return self.default

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.1,
            handler_cancellation=True,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        self._url = f"http://{self.host}:{port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> WireServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _response(reply: Reply) -> web.Response:
    body = reply.body
    content_type = reply.content_type
    if isinstance(body, (dict, list)):
        data: bytes | None = json.dumps(body).encode("utf-8")
        content_type = content_type or "application/json"
    elif isinstance(body, str):
        data = body.encode("utf-8")
        content_type = content_type or "text/plain"
    else:
        data = body
    response = web.Response(status=reply.status, body=data, content_type=content_type)
    response.headers.update(reply.headers)
    return response


def free_port() -> int:
    """A loopback port that nothing listens on right now (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port




# Fast retries and a short attempt timeout, so scripted failures cost milliseconds.
FAST_RETRIES: dict[str, Any] = {
    "retry_base_delay": 0.01,
    "retry_max_delay": 0.02,
    "timeout": 5.0,
}


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve a test's own ``aiohttp.web`` app on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, 0).start()
        yield f"http://{host}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
