"""The request signer: a pure function, and the aiohttp client middleware that signs every attempt.

It follows the official SCP Go SDK (``client/signature_generator.go``, ``MakeHmacSignature``, and
``client/configuration.go``, ``SetupRequestHeader``): the message is
``METHOD + URL + TIMESTAMP + ACCESS_KEY + ACCOUNT_ID + CLIENT_TYPE``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

from .config import Credentials

__all__ = ["SigningMiddleware", "sign"]


def sign(
    secret_key: str,
    method: str,
    url: str,
    timestamp: str,
    access_key: str,
    account_id: str | None,
    client_type: str,
) -> str:
    """``base64(HMAC-SHA256(secret_key, METHOD + URL + TIMESTAMP + ACCESS_KEY + ACCOUNT_ID + CLIENT_TYPE))``.

    ``url`` must be the full URL exactly as it goes on the wire (scheme, host, the port when it is
    not the scheme's default, path and encoded query). ``account_id`` None counts as "".
    """
    message = f"{method.upper()}{url}{timestamp}{access_key}{account_id or ''}{client_type}"
    digest = hmac.new(secret_key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class SigningMiddleware:
    """aiohttp client middleware: stamps and signs each request at the moment it is sent.

    It runs inside aiohttp after the URL is final, so it signs the exact URL on the wire, and it
    runs again for every retry, so each attempt carries a fresh timestamp and signature.
    ``clock_offset_ms`` corrects a local clock that is off from the server's (see the session).
    """

    __slots__ = ("_access_key", "_account_id", "_client_type", "_key", "clock", "clock_offset_ms")

    def __init__(
        self,
        credentials: Credentials,
        client_type: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._access_key = credentials.access_key
        self._account_id = credentials.account_id or ""
        self._client_type = client_type
        # The HMAC key object is built once; each signature copies it instead of re-keying.
        self._key = hmac.new(credentials.secret_key.encode("utf-8"), digestmod=hashlib.sha256)
        self.clock = clock
        self.clock_offset_ms = 0

    def __repr__(self) -> str:
        return f"SigningMiddleware(access_key={self._access_key!r}, secret_key='***')"

    def timestamp(self) -> str:
        return str(int(self.clock() * 1000) + self.clock_offset_ms)

    def signature(self, method: str, url: str, timestamp: str) -> str:
        mac = self._key.copy()
        mac.update(
            f"{method}{url}{timestamp}{self._access_key}{self._account_id}{self._client_type}"
            .encode()
        )
        return base64.b64encode(mac.digest()).decode("ascii")

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        timestamp = self.timestamp()
        headers = request.headers
        headers["Scp-Timestamp"] = timestamp
        headers["Scp-Signature"] = self.signature(request.method, str(request.url), timestamp)
        return await handler(request)
