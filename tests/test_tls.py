"""TLS: verification is on by default; a CA bundle or an ssl.SSLContext makes a private CA trusted."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from aimlops_async import AimlopsClient, APIConnectionError, APITimeoutError, Credentials, ValidationError
from aimlops_async.auth import sign

CREDENTIALS = Credentials("tls-access-key", "tls-secret-key", "tls-project")
CLIENT = {"timeout": 5.0, "max_retries": 3, "retry_base_delay": 0.01, "retry_max_delay": 0.02}


def _self_signed(directory: Path, name: str, san: str) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for ``san``, made with the openssl command line."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not available to make a test certificate")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
            "-addext", f"subjectAltName={san}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
            "-addext", "extendedKeyUsage=serverAuth",
        ],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("tls")
    return {
        "loopback": _self_signed(directory, "loopback", "IP:127.0.0.1,DNS:localhost"),
        "elsewhere": _self_signed(directory, "elsewhere", "DNS:elsewhere.example"),
    }


class HttpsServer:
    """A tiny https aiohttp.web server answering GET platform; it checks the request's signature."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.requests = 0
        self.bad_signatures = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _get(self, request: web.Request) -> web.Response:
        self.requests += 1
        headers = request.headers
        expected = sign(
            CREDENTIALS.secret_key, request.method, f"{self.url}{request.raw_path}",
            headers["Scp-Timestamp"], headers["Scp-AccessKey"], headers.get("Scp-AccountId"),
            headers["Scp-ClientType"],
        )
        if headers["Scp-Signature"] != expected:
            self.bad_signatures += 1
            return web.json_response({"code": "AUTHENTICATION_FAILED", "message": "bad"}, status=401)
        release_id = request.match_info["release_id"]
        return web.json_response(
            {"release_id": release_id, "release_name": "tls", "release_state": "DEPLOYED"}
        )

    async def __aenter__(self) -> HttpsServer:
        app = web.Application()
        app.router.add_get("/v1/aimlops-platform/{release_id}", self._get)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.context)
        await site.start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def server(certs: dict[str, tuple[Path, Path]]) -> AsyncIterator[HttpsServer]:
    async with HttpsServer(*certs["loopback"]) as running:
        yield running


async def test_verification_is_on_by_default_and_not_retried(server: HttpsServer) -> None:
    async with AimlopsClient(server.url, CREDENTIALS, **CLIENT) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.platforms.get("release-1")
        assert client.stats.attempts == 1
        assert client.stats.retries == 0
    error = caught.value
    assert not isinstance(error, APITimeoutError)
    assert error.retryable is False
    assert error.sent is False
    assert "TLS" in error.message or "certificate" in error.message.lower()
    assert server.requests == 0


async def test_a_ca_bundle_makes_the_private_ca_trusted(
    server: HttpsServer, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, _ = certs["loopback"]
    async with AimlopsClient(server.url, CREDENTIALS, ca_bundle=str(cert), **CLIENT) as client:
        detail = await client.platforms.get("release-1")
    assert detail.release_id == "release-1"
    assert detail.release_state == "DEPLOYED"
    assert server.requests == 1
    # The https URL, with its non-default port, is what was signed.
    assert server.bad_signatures == 0


async def test_an_ssl_context_can_be_given(
    server: HttpsServer, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, _ = certs["loopback"]
    context = ssl.create_default_context(cafile=str(cert))
    async with AimlopsClient(server.url, CREDENTIALS, ssl=context, **CLIENT) as client:
        detail = await client.platforms.get("release-2")
    assert detail.release_id == "release-2"
    assert server.bad_signatures == 0


async def test_the_host_name_is_still_checked_against_a_trusted_ca(
    certs: dict[str, tuple[Path, Path]],
) -> None:
    cert, key = certs["elsewhere"]
    async with HttpsServer(cert, key) as other, AimlopsClient(
        other.url, CREDENTIALS, ca_bundle=str(cert), **CLIENT
    ) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.platforms.get("release-3")
        assert client.stats.attempts == 1
        assert other.requests == 0
    assert caught.value.retryable is False


async def test_verification_can_be_switched_off_explicitly(server: HttpsServer) -> None:
    async with AimlopsClient(server.url, CREDENTIALS, ssl=False, **CLIENT) as client:
        detail = await client.platforms.get("release-4")
    assert detail.release_id == "release-4"
    assert server.bad_signatures == 0


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_an_unusable_ca_bundle_is_a_validation_error(tmp_path: Path, content: str | None) -> None:
    bundle = tmp_path / "bundle.pem"
    if content is not None:
        bundle.write_text(content)
    with pytest.raises(ValidationError) as caught:
        AimlopsClient("https://127.0.0.1:1", CREDENTIALS, ca_bundle=str(bundle))
    assert caught.value.field == "ca_bundle"
    assert str(bundle) in str(caught.value)
