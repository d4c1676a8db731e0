"""The Emulator: start/stop of the local server, its credentials, and helpers for tests."""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any

from aiohttp import web

from ..config import Credentials
from .app import EmulatorStats, Service, build_app
from .faults import Faults
from .protocol import JsonErrorAppRunner
from .store import EmulatorConfig, Principal, Store

__all__ = ["Emulator"]

_SHUTDOWN_TIMEOUT = 0.1  # seconds a stopping server waits for in-flight (e.g. stalled) answers


class Emulator:
    """A local, stateful stand-in for the AI&MLOps Platform API (see CONTRACT section 6).

    ``async with Emulator(port=0) as emu:`` serves on ``emu.url`` with ``emu.credentials``.
    Phase durations are in seconds; ``visibility_lag`` delays what GET and list see;
    ``failure_rate`` / ``fail_pattern`` make platforms end in FAILED; ``faults`` injects
    transport and server faults (replace ``emu.faults`` at any time).

    Where the live service differs from the reference: ``missing_release_status`` is what a GET
    of a missing release answers (404, the reference; 400, the live service);
    ``zoneless_timestamps`` writes timestamps without a zone (UTC); ``scp_image_ids`` gives
    images ids like ``IMAGE-R=HXHY3ccc9f3TSVtPpPFR``. ``account_id`` makes the default project
    belong to an account: a request sending another ``Scp-AccountId`` is refused (403).
    ``gateway_auth_failures`` answers a request that fails authentication as the live API
    gateway does, with its own 404 page ``{"timestamp", "path", "status", "error", "requestId"}``
    instead of a 401.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        project_id: str | None = None,
        account_id: str | None = None,
        seed: int = 0,
        creating_seconds: float = 1.0,
        installing_seconds: float = 1.0,
        updating_seconds: float = 1.0,
        deleting_seconds: float = 1.0,
        k8s_seconds: float | None = None,
        visibility_lag: float = 0.0,
        failure_rate: float = 0.0,
        fail_pattern: str | re.Pattern[str] | None = None,
        faults: Faults | None = None,
        clock_skew: float = 0.0,
        page_size_max: int = 100,
        missing_release_status: int = 404,
        zoneless_timestamps: bool = False,
        scp_image_ids: bool = False,
        gateway_auth_failures: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.config = EmulatorConfig(
            seed=seed,
            creating_seconds=creating_seconds,
            installing_seconds=installing_seconds,
            updating_seconds=updating_seconds,
            deleting_seconds=deleting_seconds,
            k8s_seconds=k8s_seconds,
            visibility_lag=visibility_lag,
            failure_rate=failure_rate,
            fail_pattern=fail_pattern,
            clock_skew=clock_skew,
            page_size_max=page_size_max,
            missing_release_status=missing_release_status,
            zoneless_timestamps=zoneless_timestamps,
            scp_image_ids=scp_image_ids,
            gateway_auth_failures=gateway_auth_failures,
        )
        self.store = Store(self.config)
        self._service = Service(self.store, faults or Faults(), EmulatorStats())
        self._default = self.store.add_project(access_key, secret_key, project_id, account_id)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = JsonErrorAppRunner(
            build_app(self._service),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
            handler_cancellation=True,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._url = f"http://{_url_host(self.host)}:{bound_port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        self._url = None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- what clients need ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._url is None:
            raise RuntimeError("the emulator is not running; use 'async with' or await start()")
        return self._url

    @property
    def credentials(self) -> Credentials:
        """Credentials of the default project (with its account id, when it has one)."""
        return _credentials(self._default)

    def add_project(
        self,
        access_key: str | None = None,
        secret_key: str | None = None,
        project_id: str | None = None,
        account_id: str | None = None,
    ) -> Credentials:
        """Create one more, separate project (with its own seeded cluster); return its keys.

        ``project_id`` is the id the API's answers carry; ``account_id``, when given, must be
        the ``Scp-AccountId`` of requests that send one.
        """
        return _credentials(self.store.add_project(access_key, secret_key, project_id, account_id))

    @property
    def project_id(self) -> str:
        """The default project's id, as the API's answers carry it."""
        return self._default.project.project_id

    @property
    def cluster_id(self) -> str:
        """The default project's seeded cluster: RUNNING, three 16-CPU nodes, storage classes."""
        return self._default.project.default_cluster_id

    def cluster_id_of(self, credentials: Credentials) -> str:
        """The seeded cluster of the project ``credentials`` belong to."""
        return self._principal(credentials).project.default_cluster_id

    @property
    def image_ids(self) -> list[str]:
        """Ids of the seeded images (the same in every project)."""
        return [image["image_id"] for image in self.store.images]

    @property
    def faults(self) -> Faults:
        return self._service.faults

    @faults.setter
    def faults(self, faults: Faults | None) -> None:
        self._service.faults = faults or Faults()

    @property
    def stats(self) -> EmulatorStats:
        return self._service.stats

    def platforms(self, credentials: Credentials | None = None) -> list[dict[str, Any]]:
        """The true (not lagged) details of a project's live platforms, oldest first."""
        principal = self._default if credentials is None else self._principal(credentials)
        return self.store.true_platforms(principal.project)

    def sample_create_request(
        self, release_name: str, *, with_k8s: bool = False, cluster_id: str | None = None
    ) -> dict[str, Any]:
        """A valid create body, in the API's JSON shape, for the default project."""
        platform: dict[str, Any] = {
            "ai_ml_ops_platform_endpoint_type": "Private",
            "ai_ml_ops_platform_type": "Enterprise",
            "image_id": self.image_ids[0],
            "initial_user_email": "admin@example.com",
            "initial_user_password": "Sample-Passw0rd",
            "release_name": release_name,
            "storage_class_name": "",
            "tags": [],
        }
        body: dict[str, Any] = {"ai_ml_ops_platform_create_request": platform}
        if not with_k8s:
            platform["cluster_id"] = cluster_id or self.cluster_id
            return body
        k8s_name = f"k8s-{release_name}"[:40]
        body["kubernetes_engine_create_request"] = {
            "cifs_volume_id": "",
            "cloud_logging_enabled": False,
            "k8s_version": "v1.28.1",
            "kubernetes_engine_name": k8s_name,
            "lb_id": "",
            "private_acl_ip_resource": [],
            "public_acl_ip_address": "",
            "security_group_id_list": [self.store.new_id()],
            "subnet_id": self.store.new_id(),
            "volume_id": self.store.new_id(),
            "vpc_id": self.store.new_id(),
        }
        body["node_pool_create_request"] = {
            "desired_node_count": 2,
            "image_os": "ubuntu",
            "image_os_version": "22.04",
            "is_auto_recovery": False,
            "is_auto_scale": False,
            "keypair_name": "keypair",
            "kubernetes_version": "v1.28.1",
            "max_node_count": 3,
            "min_node_count": 2,
            "name": "nodepool-1",
            "server_type_id": "s1v16m64",
            "volume_size": 104,
            "volume_type_name": "SSD",
        }
        return body

    def _principal(self, credentials: Credentials) -> Principal:
        principal = self.store.principals.get(credentials.access_key)
        if principal is None:
            raise KeyError("these credentials are not known to this emulator")
        return principal

    def __repr__(self) -> str:
        where = self._url or "not running"
        return f"<Emulator {where} project={self._default.project.project_id}>"


def _credentials(principal: Principal) -> Credentials:
    return Credentials(principal.access_key, principal.secret_key, principal.project.account_id)


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
