"""The emulator over real loopback sockets, driven by a plain aiohttp client and its own signer."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import io
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from yarl import URL

from aimlops_async.config import Credentials
from aimlops_async.emulator import Emulator, EmulatorStats, Faults

BASE = "/v1/aimlops-platform"
PHASE_NAMES = ("creating_seconds", "installing_seconds", "updating_seconds", "deleting_seconds")


def make_emulator(phase: float = 10.0, **kwargs: Any) -> Emulator:
    """An emulator whose four phases all last ``phase`` seconds."""
    phases: dict[str, Any] = dict.fromkeys(PHASE_NAMES, phase)
    return Emulator(**phases, **kwargs)

DETAIL_FIELDS = {
    "ai_ml_ops_platform_domain_service",
    "ai_ml_ops_platform_endpoint_ip_address",
    "ai_ml_ops_platform_endpoint_port",
    "ai_ml_ops_platform_endpoint_type",
    "ai_ml_ops_platform_type",
    "cluster_id",
    "cluster_name",
    "cluster_state",
    "created_by",
    "created_dt",
    "dashboard_state",
    "image_id",
    "image_name",
    "initial_user_email",
    "modified_by",
    "modified_dt",
    "project_id",
    "project_name",
    "release_id",
    "release_name",
    "release_state",
    "storage_class_name",
    "version",
}
LIST_FIELDS = {
    "cluster_id",
    "cluster_name",
    "created_by",
    "created_dt",
    "kubeflow_type",
    "modified_by",
    "modified_dt",
    "release_id",
    "release_name",
    "status",
    "version",
}
IMAGE_FIELDS = {
    "base_image",
    "category",
    "created_by",
    "created_dt",
    "description",
    "icon_file",
    "icon_file_name",
    "image_attr",
    "image_id",
    "image_name",
    "modified_by",
    "modified_dt",
    "os_type",
    "product_type",
    "project_id",
}
NODE_FIELDS = {
    "name",
    "status",
    "roles",
    "internal_ip",
    "os_image",
    "kernel_version",
    "kubelet_version",
    "container_runtime_version",
    "cpu",
    "memory",
    "gpu",
    "created_dt",
}
STORAGE_CLASS_FIELDS = {
    "name",
    "provisioner",
    "reclaim_policy",
    "volume_binding_mode",
    "allow_volume_expansion",
    "is_default",
    "created_dt",
}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")
HEX32 = re.compile(r"[0-9a-f]{32}")


# --- an independent signer and a tiny HTTP helper -----------------------------------------------


def signature(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_headers(
    method: str,
    url: str,
    creds: Credentials,
    *,
    timestamp: str | None = None,
    client_type: str = "Openapi",
    account_id: str | None = None,
    api_version: str | None = "1.1",
) -> dict[str, str]:
    """The official SDK's headers; ``account_id`` None: the credentials' (sent always, maybe "")."""
    stamp = timestamp or str(int(time.time() * 1000))
    account = (creds.account_id or "") if account_id is None else account_id
    message = method + url + stamp + creds.access_key + account + client_type
    headers = {
        "Scp-AccessKey": creds.access_key,
        "Scp-AccountId": account,
        "Scp-Timestamp": stamp,
        "Scp-ClientType": client_type,
        "Scp-Signature": signature(creds.secret_key, message),
    }
    if api_version is not None:
        headers["Scp-Api-Version"] = f"aimlops-platform {api_version}"
    return headers


@dataclass
class Reply:
    status: int
    text: str
    headers: Mapping[str, str]
    body: Any = field(default=None)


_UNSET: Any = object()


class Api:
    """Signed calls to an emulator; ``creds`` defaults to its default project."""

    def __init__(self, session: aiohttp.ClientSession, emu: Emulator) -> None:
        self.session = session
        self.emu = emu

    def url(self, path: str, query: dict[str, Any] | str | None = None) -> str:
        url = self.emu.url + path
        if query:
            url += "?" + (query if isinstance(query, str) else urlencode(query, quote_via=quote))
        return url

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | str | None = None,
        body: Any = _UNSET,
        data: bytes | io.BytesIO | None = None,
        creds: Credentials | None = None,
        headers: dict[str, str] | None = None,
        tweak: Callable[[dict[str, str]], None] | None = None,
        timeout: float = 5.0,
        **sign: Any,
    ) -> Reply:
        url = self.url(path, query)
        all_headers = signed_headers(method, url, creds or self.emu.credentials, **sign)
        all_headers.update(headers or {})
        if tweak is not None:
            tweak(all_headers)
        if body is not _UNSET:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        async with self.session.request(
            method,
            URL(url, encoded=True),
            data=data,
            headers=all_headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            text = await response.text()
            reply = Reply(response.status, text, response.headers.copy())
        if response.content_type == "application/json" and text:
            try:
                reply.body = json.loads(text)
            except ValueError:
                reply.body = None
        return reply

    async def get(self, release_id: str, **kw: Any) -> Reply:
        return await self.call("GET", f"{BASE}/{release_id}", **kw)

    async def create(self, body: dict[str, Any], **kw: Any) -> Reply:
        return await self.call("POST", BASE, body=body, **kw)

    async def created(self, name: str, **kw: Any) -> str:
        reply = await self.create(self.emu.sample_create_request(name, **kw))
        assert reply.status == 201, reply.text
        release_id: str = reply.body["resource_id"]
        return release_id

    async def listing(self, **query: Any) -> Reply:
        return await self.call("GET", BASE, query=query)


class Clock:
    """A clock the test moves by hand (the state machine reads it lazily)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def install_clock(emu: Emulator) -> Clock:
    """Drive the emulator's monotonic and wall clocks by hand (wall: real time + advances)."""
    clock = Clock()
    start = clock.now
    emu.store.monotonic = clock
    emu.store.wall_clock = lambda: time.time() + clock.now - start
    return clock


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with make_emulator(seed=7) as emulator:
        yield emulator


@pytest.fixture
def clock(emu: Emulator) -> Clock:
    return install_clock(emu)


@pytest.fixture
def api(http: aiohttp.ClientSession, emu: Emulator) -> Api:
    return Api(http, emu)


def assert_error(reply: Reply, status: int, field: str | None = None, code: str | None = None) -> None:
    """The live service's envelope: ``{"errors": [{"code", "title", "detail", "status", "request_id"}]}``."""
    assert reply.status == status, reply.text
    assert isinstance(reply.body, dict) and set(reply.body) == {"errors"}, reply.text
    assert len(reply.body["errors"]) == 1, reply.body
    error = reply.body["errors"][0]
    assert set(error) == {"code", "title", "detail", "status", "request_id"}, error
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", error["code"]), error
    assert isinstance(error["title"], str) and error["title"], error
    assert error["status"] == str(status)
    assert error["request_id"] == reply.headers["X-Request-Id"]
    detail = error["detail"]
    assert isinstance(detail, list) and detail and all(isinstance(line, str) and line for line in detail)
    if field is not None:
        assert detail[0].startswith(f"{field}: "), error
    if code is not None:
        assert error["code"] == code


# --- signing and authentication -----------------------------------------------------------------


def test_signer_known_answer() -> None:
    # Computed with: printf '%s' "$MESSAGE" | openssl dgst -sha256 -hmac 'SECRET/abc+=' -binary | base64
    # The message: METHOD + URL + TIMESTAMP + ACCESS_KEY + ACCOUNT_ID + CLIENT_TYPE.
    message = (
        "GET" + "http://127.0.0.1:8080/v1/aimlops-platform?size=20&page=0"
        "1605290625682" + "AKEY1234" + "p-1" + "Openapi"
    )
    assert signature("SECRET/abc+=", message) == "glBh7+OzvxbdW6w5hvnvrWmgL9sCRs0HMR77Xjr4qZg="


async def test_signed_request_is_answered(api: Api, emu: Emulator) -> None:
    reply = await api.call("GET", f"{BASE}/images")
    assert reply.status == 200
    assert reply.body["total_count"] == len(emu.image_ids) == 4
    assert re.fullmatch(r"[0-9a-f]{16,}", reply.headers["X-Request-Id"])
    served = parsedate_to_datetime(reply.headers["Date"]).timestamp()
    assert abs(served - time.time()) < 5


async def test_request_without_account_header_is_signed_with_empty_account(api: Api) -> None:
    reply = await api.call("GET", f"{BASE}/images", tweak=_drop_header("Scp-AccountId"))
    assert reply.status == 200


async def test_api_versions_1_0_and_1_1_and_none_are_served_others_get_406(api: Api) -> None:
    for version in ("1.0", "1.1", None):
        assert (await api.call("GET", f"{BASE}/images", api_version=version)).status == 200
    for version in ("2.0", "1.2"):
        reply = await api.call("GET", f"{BASE}/images", api_version=version)
        assert_error(reply, 406, code="NOT_ACCEPTABLE")
        assert f"aimlops-platform {version}" in reply.body["errors"][0]["detail"][0]


async def test_an_account_id_is_checked_when_sent(http: aiohttp.ClientSession) -> None:
    async with Emulator(account_id="acct-1") as emu:
        api = Api(http, emu)
        assert emu.credentials.account_id == "acct-1"
        assert (await api.call("GET", BASE)).status == 200
        # The SDK sends an empty Scp-AccountId when none is configured: accepted.
        assert (await api.call("GET", BASE, account_id="")).status == 200
        assert_error(await api.call("GET", BASE, account_id="acct-2"), 403, code="FORBIDDEN")


def _drop_header(name: str) -> Callable[[dict[str, str]], None]:
    def drop(headers: dict[str, str]) -> None:
        del headers[name]

    return drop


@pytest.mark.parametrize(
    "kwargs",
    [
        {"creds": Credentials("unknown-key", "secret")},
        # Offsets, not timestamps: a timestamp taken at collection time drifts into the window.
        {"timestamp_offset_s": -310.0},
        {"timestamp_offset_s": 310.0},
        {"timestamp": "12:00"},
        {"tweak": _drop_header("Scp-AccessKey")},
        {"tweak": _drop_header("Scp-Timestamp")},
        {"tweak": _drop_header("Scp-ClientType")},
        {"tweak": _drop_header("Scp-Signature")},
        {"tweak": lambda h: h.update({"Scp-Signature": h["Scp-Signature"].lower()})},
        {"tweak": lambda h: h.update({"Scp-ClientType": "Other"})},
        {"tweak": lambda h: h.update({"Scp-AccountId": "f" * 32})},  # changed after signing
    ],
    ids=[
        "unknown-key",
        "stale",
        "future",
        "bad-timestamp",
        "no-access-key",
        "no-timestamp",
        "no-client-type",
        "no-signature",
        "bad-signature",
        "client-type-changed",
        "account-changed",
    ],
)
async def test_bad_authentication_gets_401_and_changes_nothing(
    api: Api, emu: Emulator, kwargs: dict[str, Any]
) -> None:
    kwargs = dict(kwargs)
    offset = kwargs.pop("timestamp_offset_s", None)
    if offset is not None:
        kwargs["timestamp"] = str(int((time.time() + offset) * 1000))
    reply = await api.create(emu.sample_create_request("unauthorized"), **kwargs)
    assert_error(reply, 401, code="AUTHENTICATION_FAILED")
    assert emu.platforms() == []
    assert not emu.stats.creates


async def test_wrong_secret_and_tampered_url_are_rejected(api: Api, emu: Emulator) -> None:
    creds = emu.credentials
    wrong = Credentials(creds.access_key, creds.secret_key + "x", creds.account_id)
    assert_error(await api.call("GET", BASE, creds=wrong), 401)
    # Signed for one query, sent with another.
    url = api.url(BASE, {"size": 5})
    headers = signed_headers("GET", url, creds)
    async with api.session.get(URL(api.url(BASE, {"size": 6}), encoded=True), headers=headers) as r:
        assert r.status == 401
    # Signed with a re-encoded URL (%2D instead of '-'), sent raw.
    raw = api.url(BASE, "release_name=a-b")
    headers = signed_headers("GET", raw.replace("a-b", "a%2Db"), creds)
    async with api.session.get(URL(raw, encoded=True), headers=headers) as r:
        assert r.status == 401


async def test_percent_encoded_query_is_verified_as_sent(api: Api) -> None:
    reply = await api.call("GET", BASE, query="release_name=a%2Db&cluster_name=%ED%81%B4")
    assert reply.status == 200


async def test_account_of_another_key_is_forbidden(api: Api, emu: Emulator) -> None:
    emu.add_project(account_id="acct-other")
    mine = emu.add_project(account_id="acct-mine")
    foreign = Credentials(mine.access_key, mine.secret_key, "acct-other")
    assert_error(await api.call("GET", BASE, creds=foreign), 403, code="FORBIDDEN")
    assert (await api.call("GET", BASE, creds=mine)).status == 200


async def test_clock_skew_shifts_the_accepted_window(http: aiohttp.ClientSession) -> None:
    async with Emulator(clock_skew=3600.0) as emu:
        api = Api(http, emu)
        assert_error(await api.call("GET", BASE), 401)
        server_ms = str(int((time.time() + 3600.0) * 1000))
        reply = await api.call("GET", BASE, timestamp=server_ms)
        assert reply.status == 200
        served = parsedate_to_datetime(reply.headers["Date"]).timestamp()
        assert abs(served - (time.time() + 3600.0)) < 5


async def test_faults_do_not_apply_before_authentication(api: Api, emu: Emulator) -> None:
    emu.faults = Faults(error_rate=1.0)
    assert_error(await api.call("GET", BASE, timestamp="1"), 401)
    assert (await api.call("GET", BASE)).status in (500, 503)


# --- projects -----------------------------------------------------------------------------------


async def test_projects_are_isolated(api: Api, emu: Emulator) -> None:
    release_id = await api.created("shared-name")
    other = emu.add_project()
    assert emu.store.principals[other.access_key].project.project_id != emu.project_id
    assert other.access_key != emu.credentials.access_key
    assert emu.cluster_id_of(other) != emu.cluster_id

    assert_error(await api.get(release_id, creds=other), 404)
    assert_error(await api.call("DELETE", f"{BASE}/{release_id}", creds=other), 404)
    update = {"ai_ml_ops_platform_endpoint_type": "Public"}
    assert_error(await api.call("PUT", f"{BASE}/{release_id}", body=update, creds=other), 404)
    listing = await api.call("GET", BASE, creds=other)
    assert listing.body == {"contents": [], "total_count": 0}
    dup = await api.call("GET", f"{BASE}/check-duplication", query={"release_name": "shared-name"},
                         creds=other)
    assert dup.body == {"result": False}
    assert_error(
        await api.call("GET", f"{BASE}/internal/clusters/{emu.cluster_id}/nodes", creds=other), 404
    )
    # The other project cannot install on this project's cluster, but may reuse the name.
    body = emu.sample_create_request("shared-name")
    assert_error(await api.create(body, creds=other), 404,
                 "ai_ml_ops_platform_create_request.cluster_id")
    body["ai_ml_ops_platform_create_request"]["cluster_id"] = emu.cluster_id_of(other)
    assert (await api.create(body, creds=other)).status == 201
    assert len(emu.platforms(other)) == 1
    assert len(emu.platforms()) == 1
    assert (await api.get(release_id)).status == 200


# --- the state machine --------------------------------------------------------------------------


async def test_create_moves_through_creating_installing_deployed(
    api: Api, emu: Emulator, clock: Clock
) -> None:
    reply = await api.create(emu.sample_create_request("life"))
    assert reply.status == 201
    assert set(reply.body) == {"project_id", "request_id", "resource_id"}
    assert reply.body["project_id"] == emu.project_id
    release_id = reply.body["resource_id"]
    assert HEX32.fullmatch(release_id) and HEX32.fullmatch(reply.body["request_id"])

    detail = (await api.get(release_id)).body
    assert set(detail) == DETAIL_FIELDS
    assert detail["release_state"] == "CREATING"
    assert detail["release_name"] == "life"
    assert detail["cluster_id"] == emu.cluster_id
    assert detail["cluster_state"] == "RUNNING"
    assert detail["image_id"] == emu.image_ids[0]
    assert detail["ai_ml_ops_platform_endpoint_ip_address"] == ""
    assert TIMESTAMP.fullmatch(detail["created_dt"]) and TIMESTAMP.fullmatch(detail["modified_dt"])

    clock.advance(10.0)
    assert (await api.get(release_id)).body["release_state"] == "INSTALLING"
    clock.advance(10.0)
    deployed = (await api.get(release_id)).body
    assert deployed["release_state"] == "DEPLOYED"
    assert deployed["dashboard_state"] == "RUNNING"
    assert deployed["ai_ml_ops_platform_endpoint_ip_address"]
    assert deployed["created_dt"] == detail["created_dt"]
    assert emu.platforms()[0]["release_state"] == "DEPLOYED"


async def test_real_time_transitions(http: aiohttp.ClientSession) -> None:
    async with make_emulator(0.05) as emu:
        api = Api(http, emu)
        release_id = await api.created("quick")
        seen: list[str] = []
        for _ in range(200):
            state = (await api.get(release_id)).body["release_state"]
            if not seen or seen[-1] != state:
                seen.append(state)
            if state == "DEPLOYED":
                break
            await asyncio.sleep(0.005)
        assert seen[0] == "CREATING" and seen[-1] == "DEPLOYED"
        assert set(seen) <= {"CREATING", "INSTALLING", "DEPLOYED"}


async def test_update_flow(api: Api, emu: Emulator, clock: Clock) -> None:
    release_id = await api.created("upd")
    path = f"{BASE}/{release_id}"
    public = {"ai_ml_ops_platform_endpoint_type": "Public"}
    assert_error(await api.call("PUT", path, body=public), 400, code="INVALID_STATE")
    clock.advance(20.0)
    before = (await api.get(release_id)).body

    reply = await api.call("PUT", path, body=public)
    assert reply.status == 200
    assert reply.body["resource_id"] == release_id
    assert set(reply.body) == {"project_id", "request_id", "resource_id"}
    during = (await api.get(release_id)).body
    assert during["release_state"] == "UPDATING"
    assert during["ai_ml_ops_platform_endpoint_type"] == "Public"
    assert during["modified_dt"] != before["modified_dt"]
    assert during["created_dt"] == before["created_dt"]
    assert_error(await api.call("PUT", path, body=public), 400, code="INVALID_STATE")
    assert_error(await api.call("DELETE", path), 400, code="INVALID_STATE")

    clock.advance(10.0)
    assert (await api.get(release_id)).body["release_state"] == "DEPLOYED"
    domain = {
        "ai_ml_ops_platform_domain_service": {
            "operation_type": "CREATE",
            "domain_service_name": "sample.aimlopsplatform.com",
            "ip": "192.168.3.197",
        }
    }
    assert (await api.call("PUT", path, body=domain)).status == 200
    clock.advance(10.0)
    detail = (await api.get(release_id)).body
    assert detail["ai_ml_ops_platform_domain_service"] == "sample.aimlopsplatform.com"
    assert detail["ai_ml_ops_platform_endpoint_type"] == "Public"
    domain["ai_ml_ops_platform_domain_service"]["operation_type"] = "DELETE"
    assert (await api.call("PUT", path, body=domain)).status == 200
    clock.advance(10.0)
    assert (await api.get(release_id)).body["ai_ml_ops_platform_domain_service"] == ""
    assert_error(await api.call("PUT", f"{BASE}/{'0' * 32}", body=public), 404)


async def test_delete_flow(api: Api, emu: Emulator, clock: Clock) -> None:
    release_id = await api.created("del")
    path = f"{BASE}/{release_id}"
    dup_query = {"release_name": "del"}
    assert_error(await api.call("DELETE", path), 400, code="INVALID_STATE")
    clock.advance(20.0)
    assert_error(await api.call("DELETE", path, query={"with_k8s": "maybe"}), 400, "with_k8s")

    reply = await api.call("DELETE", path, query={"with_k8s": "FALSE"})
    assert reply.status == 200 and reply.text == ""
    assert (await api.get(release_id)).body["release_state"] == "DELETING"
    assert_error(await api.call("DELETE", path), 400, code="INVALID_STATE")
    dup = await api.call("GET", f"{BASE}/check-duplication", query=dup_query)
    assert dup.body == {"result": True}
    assert_error(await api.create(emu.sample_create_request("del")), 400,
                 code="DUPLICATE_RELEASE_NAME")

    clock.advance(10.0)
    assert_error(await api.get(release_id), 404)
    assert_error(await api.call("DELETE", path), 404)
    assert (await api.listing()).body["total_count"] == 0
    dup = await api.call("GET", f"{BASE}/check-duplication", query=dup_query)
    assert dup.body == {"result": False}
    assert emu.platforms() == []
    assert await api.created("del") != release_id


async def test_failure_injection_by_pattern_and_rate(http: aiohttp.ClientSession) -> None:
    async with make_emulator(0.0, fail_pattern=r"^fail-") as emu:
        api = Api(http, emu)
        bad, good = await api.created("fail-one"), await api.created("good-one")
        failed = (await api.get(bad)).body
        assert failed["release_state"] == "FAILED" and failed["dashboard_state"] == "FAILED"
        assert (await api.get(good)).body["release_state"] == "DEPLOYED"
        assert (await api.call("DELETE", f"{BASE}/{bad}")).status == 200
        assert (await api.listing(status="FAILED")).body["total_count"] == 0
    async with make_emulator(0.0, failure_rate=1.0) as emu:
        api = Api(http, emu)
        assert (await api.get(await api.created("any"))).body["release_state"] == "FAILED"
    states = []
    for _ in range(2):
        async with make_emulator(0.0, failure_rate=0.5, seed=3) as emu:
            api = Api(http, emu)
            for index in range(20):
                await api.created(f"p-{index}")
            states.append([p["release_state"] for p in emu.platforms()])
    assert states[0] == states[1]  # seeded
    assert 0 < states[0].count("FAILED") < 20


async def test_visibility_lag_hides_recent_changes(http: aiohttp.ClientSession) -> None:
    async with make_emulator(visibility_lag=30.0) as emu:
        clock = install_clock(emu)
        api = Api(http, emu)
        release_id = await api.created("laggy")
        assert_error(await api.get(release_id), 404)
        assert (await api.listing()).body["total_count"] == 0
        dup = await api.call("GET", f"{BASE}/check-duplication", query={"release_name": "laggy"})
        assert dup.body == {"result": True}  # the truth, not the lagged view
        assert [p["release_state"] for p in emu.platforms()] == ["CREATING"]
        clock.advance(30.0)
        assert (await api.get(release_id)).body["release_state"] == "CREATING"
        clock.advance(15.0)  # truth: DEPLOYED since +20; lagged view (+15): INSTALLING
        assert (await api.get(release_id)).body["release_state"] == "INSTALLING"
        assert emu.platforms()[0]["release_state"] == "DEPLOYED"
        assert (await api.call("DELETE", f"{BASE}/{release_id}")).status == 200
        assert (await api.get(release_id)).body["release_state"] == "INSTALLING"
        clock.advance(15.0)  # truth: gone; lagged view: DEPLOYED (before the delete)
        assert emu.platforms() == []
        assert (await api.get(release_id)).body["release_state"] == "DEPLOYED"
        clock.advance(30.0)
        assert_error(await api.get(release_id), 404)
        assert (await api.listing()).body["total_count"] == 0


async def test_create_with_new_kubernetes_engine(api: Api, emu: Emulator, clock: Clock) -> None:
    body = emu.sample_create_request("with-k8s", with_k8s=True)
    pool = body["node_pool_create_request"]
    pool["desired_node_count"], pool["min_node_count"], pool["server_type_id"] = 1, 1, "s1v4m16"
    release_id = (await api.create(body)).body["resource_id"]
    detail = (await api.get(release_id)).body
    cluster_id = detail["cluster_id"]
    assert cluster_id != emu.cluster_id
    assert detail["cluster_name"] == body["kubernetes_engine_create_request"]["kubernetes_engine_name"]
    assert detail["cluster_state"] == "CREATING"
    nodes = (await api.call("GET", f"{BASE}/internal/clusters/{cluster_id}/nodes")).body
    assert nodes["count"] == 1 and nodes["nodes"][0]["status"] == "NotReady"
    assert nodes["nodes"][0]["cpu"] == "4" and nodes["nodes"][0]["memory"] == "16Gi"
    mini = await api.call("GET", f"{BASE}/clusters/{cluster_id}/validate-resources",
                          query={"product_type": "Mini"})
    assert mini.body == {"result": False}

    clock.advance(10.0)
    assert (await api.get(release_id)).body["cluster_state"] == "RUNNING"
    clock.advance(10.0)
    assert (await api.call("DELETE", f"{BASE}/{release_id}", query={"with_k8s": "true"})).status == 200
    clock.advance(10.0)
    assert_error(await api.call("GET", f"{BASE}/internal/clusters/{cluster_id}/nodes"), 404)
    assert (await api.call("GET", f"{BASE}/internal/clusters/{emu.cluster_id}/nodes")).status == 200


async def test_delete_with_k8s_keeps_a_cluster_that_existed_before(
    api: Api, emu: Emulator, clock: Clock
) -> None:
    release_id = await api.created("keep-cluster")
    clock.advance(20.0)
    assert (await api.call("DELETE", f"{BASE}/{release_id}", query={"with_k8s": "True"})).status == 200
    clock.advance(10.0)
    assert (await api.call("GET", f"{BASE}/clusters/{emu.cluster_id}/validate-namespaces")).status == 200


# --- validation ---------------------------------------------------------------------------------

P = "ai_ml_ops_platform_create_request"
K = "kubernetes_engine_create_request"
N = "node_pool_create_request"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = body
        for part in parents:
            target = target[part]
        if value is _UNSET:
            del target[last]
        else:
            target[last] = value

    return apply


CREATE_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("unknown-top", _set("extra", 1), "extra"),
    ("unknown-nested", _set(f"{P}.colour", "red"), f"{P}.colour"),
    ("platform-missing", _set(P, _UNSET), P),
    ("platform-null", _set(P, None), P),
    ("platform-not-object", _set(P, []), P),
    ("name-missing", _set(f"{P}.release_name", _UNSET), f"{P}.release_name"),
    ("name-null", _set(f"{P}.release_name", None), f"{P}.release_name"),
    ("name-int", _set(f"{P}.release_name", 5), f"{P}.release_name"),
    ("name-upper", _set(f"{P}.release_name", "Bad"), f"{P}.release_name"),
    ("name-dash-end", _set(f"{P}.release_name", "bad-"), f"{P}.release_name"),
    ("name-newline", _set(f"{P}.release_name", "bad\n"), f"{P}.release_name"),
    ("name-empty", _set(f"{P}.release_name", ""), f"{P}.release_name"),
    ("name-too-long", _set(f"{P}.release_name", "a" * 54), f"{P}.release_name"),
    ("type-empty", _set(f"{P}.ai_ml_ops_platform_type", ""), f"{P}.ai_ml_ops_platform_type"),
    ("type-missing", _set(f"{P}.ai_ml_ops_platform_type", _UNSET), f"{P}.ai_ml_ops_platform_type"),
    ("image-empty", _set(f"{P}.image_id", ""), f"{P}.image_id"),
    ("image-missing", _set(f"{P}.image_id", _UNSET), f"{P}.image_id"),
    ("email-bad", _set(f"{P}.initial_user_email", "nobody"), f"{P}.initial_user_email"),
    ("email-space", _set(f"{P}.initial_user_email", "a b@c.de"), f"{P}.initial_user_email"),
    ("email-missing", _set(f"{P}.initial_user_email", _UNSET), f"{P}.initial_user_email"),
    ("password-short", _set(f"{P}.initial_user_password", "1234567"), f"{P}.initial_user_password"),
    ("password-long", _set(f"{P}.initial_user_password", "x" * 65), f"{P}.initial_user_password"),
    ("password-int", _set(f"{P}.initial_user_password", 12345678), f"{P}.initial_user_password"),
    ("password-missing", _set(f"{P}.initial_user_password", _UNSET), f"{P}.initial_user_password"),
    ("cluster-int", _set(f"{P}.cluster_id", 7), f"{P}.cluster_id"),
    ("cluster-missing", _set(f"{P}.cluster_id", _UNSET), f"{P}.cluster_id"),
    ("cluster-empty", _set(f"{P}.cluster_id", ""), f"{P}.cluster_id"),
    ("endpoint-bad", _set(f"{P}.ai_ml_ops_platform_endpoint_type", "public"),
     f"{P}.ai_ml_ops_platform_endpoint_type"),
    ("storage-bool", _set(f"{P}.storage_class_name", True), f"{P}.storage_class_name"),
    ("tags-object", _set(f"{P}.tags", {}), f"{P}.tags"),
    ("tags-item", _set(f"{P}.tags", ["x"]), f"{P}.tags[0]"),
    ("tags-value", _set(f"{P}.tags", [{"key": "a", "value": 1}]), f"{P}.tags[0].value"),
]

K8S_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    *[
        (f"k8s-{name}", _set(f"{K}.{name}", value), f"{K}.{name}")
        for name in ("k8s_version", "kubernetes_engine_name", "subnet_id", "volume_id", "vpc_id")
        for value in ("", _UNSET, 1)
    ],
    ("k8s-sg-missing", _set(f"{K}.security_group_id_list", _UNSET), f"{K}.security_group_id_list"),
    ("k8s-sg-string", _set(f"{K}.security_group_id_list", "sg"), f"{K}.security_group_id_list"),
    ("k8s-sg-item", _set(f"{K}.security_group_id_list", ["a", 2]), f"{K}.security_group_id_list[1]"),
    ("k8s-lb", _set(f"{K}.lb_id", 3), f"{K}.lb_id"),
    ("k8s-logging", _set(f"{K}.cloud_logging_enabled", "false"), f"{K}.cloud_logging_enabled"),
    ("k8s-logging-int", _set(f"{K}.cloud_logging_enabled", 0), f"{K}.cloud_logging_enabled"),
    ("k8s-acl", _set(f"{K}.private_acl_ip_resource", [None]), f"{K}.private_acl_ip_resource[0]"),
    ("k8s-not-object", _set(K, "yes"), K),
    ("k8s-unknown", _set(f"{K}.zone", "a"), f"{K}.zone"),
    *[
        (f"pool-{name}", _set(f"{N}.{name}", ""), f"{N}.{name}")
        for name in (
            "name", "image_os", "image_os_version", "keypair_name", "kubernetes_version",
            "server_type_id", "volume_type_name",
        )
    ],
    ("pool-desired-missing", _set(f"{N}.desired_node_count", _UNSET), f"{N}.desired_node_count"),
    ("pool-desired-zero", _set(f"{N}.desired_node_count", 0), f"{N}.desired_node_count"),
    ("pool-desired-float", _set(f"{N}.desired_node_count", 2.0), f"{N}.desired_node_count"),
    ("pool-desired-bool", _set(f"{N}.desired_node_count", True), f"{N}.desired_node_count"),
    ("pool-volume-zero", _set(f"{N}.volume_size", 0), f"{N}.volume_size"),
    ("pool-volume-string", _set(f"{N}.volume_size", "104"), f"{N}.volume_size"),
    ("pool-min-negative", _set(f"{N}.min_node_count", -1), f"{N}.min_node_count"),
    ("pool-max-negative", _set(f"{N}.max_node_count", -1), f"{N}.max_node_count"),
    ("pool-min-above-desired", _set(f"{N}.min_node_count", 3), f"{N}.min_node_count"),
    ("pool-desired-above-max", _set(f"{N}.max_node_count", 1), f"{N}.max_node_count"),
    ("pool-auto-scale", _set(f"{N}.is_auto_scale", "no"), f"{N}.is_auto_scale"),
    ("pool-recovery", _set(f"{N}.is_auto_recovery", 1), f"{N}.is_auto_recovery"),
    ("pool-cluster", _set(f"{N}.cluster_id", 1), f"{N}.cluster_id"),
    ("pool-unknown", _set(f"{N}.labels", {}), f"{N}.labels"),
]


@pytest.mark.parametrize(
    ("mutate", "field"), [case[1:] for case in CREATE_CASES], ids=[c[0] for c in CREATE_CASES]
)
async def test_create_validation(
    api: Api, emu: Emulator, mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    body = emu.sample_create_request("valid-name")
    mutate(body)
    reply = await api.create(body)
    assert_error(reply, 400, field)
    assert "Passw0rd" not in reply.text
    assert emu.platforms() == [] and not emu.stats.creates


@pytest.mark.parametrize(
    ("mutate", "field"), [case[1:] for case in K8S_CASES], ids=[c[0] for c in K8S_CASES]
)
async def test_create_with_k8s_validation(
    api: Api, emu: Emulator, mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    body = emu.sample_create_request("valid-name", with_k8s=True)
    mutate(body)
    assert_error(await api.create(body), 400, field)
    assert emu.platforms() == []


async def test_valid_edge_values_are_accepted(api: Api, emu: Emulator) -> None:
    body = emu.sample_create_request("a" * 53)
    platform = body[P]
    platform["initial_user_password"] = "x" * 8
    platform["storage_class_name"] = None  # null is absent for optional fields
    platform["ai_ml_ops_platform_endpoint_type"] = ""
    platform["tags"] = [{"key": "team", "value": "ml"}]
    assert (await api.create(body)).status == 201
    body = emu.sample_create_request("k", with_k8s=True)
    body[N].update(min_node_count=None, max_node_count=None, desired_node_count=5)
    body[K]["cloud_logging_enabled"] = None
    assert (await api.create(body)).status == 201
    assert (await api.create(emu.sample_create_request("z", with_k8s=True))).status == 201
    assert {p["release_name"] for p in emu.platforms()} == {"a" * 53, "k", "z"}
    assert all("initial_user_password" not in p for p in emu.platforms())


async def test_create_semantic_errors(api: Api, emu: Emulator) -> None:
    await api.created("taken")
    assert_error(await api.create(emu.sample_create_request("taken")), 400,
                 f"{P}.release_name", "DUPLICATE_RELEASE_NAME")
    assert_error(await api.create(emu.sample_create_request("x", cluster_id="0" * 32)), 404,
                 f"{P}.cluster_id")
    body = emu.sample_create_request("y")
    body[P]["image_id"] = "no-such-image"
    assert_error(await api.create(body), 404, f"{P}.image_id")
    assert [p["release_name"] for p in emu.platforms()] == ["taken"]
    assert emu.stats.creates == {"taken": 1}


UPDATE_CASES: list[tuple[Any, str | None]] = [
    ({}, "ai_ml_ops_platform_endpoint_type"),
    ({"ai_ml_ops_platform_endpoint_type": None}, "ai_ml_ops_platform_endpoint_type"),
    ({"ai_ml_ops_platform_endpoint_type": "Elsewhere"}, "ai_ml_ops_platform_endpoint_type"),
    ({"ai_ml_ops_platform_endpoint_type": ""}, "ai_ml_ops_platform_endpoint_type"),
    ({"ai_ml_ops_platform_endpoint_type": "Public", "x": 1}, "x"),
    ({"ai_ml_ops_platform_domain_service": {}}, "ai_ml_ops_platform_domain_service.operation_type"),
    (
        {"ai_ml_ops_platform_domain_service": {"operation_type": "MOVE"}},
        "ai_ml_ops_platform_domain_service.operation_type",
    ),
    (
        {"ai_ml_ops_platform_domain_service": {"operation_type": "CREATE", "ip": 1}},
        "ai_ml_ops_platform_domain_service.ip",
    ),
    (
        {"ai_ml_ops_platform_domain_service": {"operation_type": "CREATE", "zone": "a"}},
        "ai_ml_ops_platform_domain_service.zone",
    ),
    ({"ai_ml_ops_platform_domain_service": "CREATE"}, "ai_ml_ops_platform_domain_service"),
    ([], None),
]


@pytest.mark.parametrize(("body", "field"), UPDATE_CASES)
async def test_update_validation(
    api: Api, emu: Emulator, clock: Clock, body: Any, field: str | None
) -> None:
    release_id = await api.created("to-update")
    clock.advance(20.0)
    assert_error(await api.call("PUT", f"{BASE}/{release_id}", body=body), 400, field)
    assert emu.platforms()[0]["release_state"] == "DEPLOYED"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page": "-1"}, "page"),
        ({"page": "x"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"page": ""}, "page"),
        ({"size": "0"}, "size"),
        ({"size": "101"}, "size"),
        ({"size": "ten"}, "size"),
        ({"size": " 5"}, "size"),
        ({"sort": "colour:asc"}, "sort"),
        ({"sort": "created_dt:sideways"}, "sort"),
        ({"sort": "created_dt:asc:desc"}, "sort"),
    ],
)
@pytest.mark.parametrize("path", [BASE, f"{BASE}/images", f"{BASE}/internal/clusters/{{}}/nodes"])
async def test_bad_paging_gets_400(
    api: Api, emu: Emulator, path: str, query: dict[str, str], field: str
) -> None:
    assert_error(await api.call("GET", path.format(emu.cluster_id), query=query), 400, field)


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/check-duplication", {}, "release_name"),
        ("/check-duplication", {"release_name": ""}, "release_name"),
        ("/clusters/{}/check-version", {}, "version"),
        ("/clusters/{}/validate-resources", {}, "product_type"),
        ("/clusters/{}/validate-resources", {"product_type": "Huge"}, "product_type"),
    ],
)
async def test_missing_or_bad_query_parameter(
    api: Api, emu: Emulator, path: str, query: dict[str, str], field: str
) -> None:
    assert_error(await api.call("GET", BASE + path.format(emu.cluster_id), query=query), 400, field)


# --- listing, pagination, filters, checks -------------------------------------------------------


async def test_pagination_sorting_and_filters(api: Api, emu: Emulator, clock: Clock) -> None:
    names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
    ids = []
    for name in names:
        ids.append(await api.created(name))
        clock.advance(1.0)
    mini = emu.sample_create_request("hotel-mini")
    mini[P]["ai_ml_ops_platform_type"] = "Mini"
    mini[P]["image_id"] = emu.image_ids[3]
    assert (await api.create(mini)).status == 201

    everything = (await api.listing(size=100)).body
    assert everything["total_count"] == 8
    assert all(set(item) == LIST_FIELDS for item in everything["contents"])

    seen = []
    for page in range(3):
        reply = (await api.listing(size=3, page=page)).body
        assert reply["total_count"] == 8
        seen += [item["release_name"] for item in reply["contents"]]
    assert len(seen) == len(set(seen)) == 8
    assert (await api.listing(size=3, page=3)).body == {"contents": [], "total_count": 8}
    assert (await api.listing(page=99999999)).body["contents"] == []

    by_name = (await api.listing(sort="release_name:asc")).body["contents"]
    assert [i["release_name"] for i in by_name] == sorted([*names, "hotel-mini"])
    default = [i["release_name"] for i in (await api.listing()).body["contents"]]
    oldest_first = [i["release_name"] for i in (await api.listing(sort="created_dt:asc")).body["contents"]]
    assert default == list(reversed(oldest_first))
    assert default[-1] == "alpha"

    async def names_for(**query: Any) -> list[str]:
        return sorted(i["release_name"] for i in (await api.listing(**query)).body["contents"])

    assert await names_for(release_name="o") == ["bravo", "echo", "foxtrot", "golf", "hotel-mini"]
    assert await names_for(kubeflow_type="Mini") == ["hotel-mini"]
    assert await names_for(version="v1.7.1") == names
    assert await names_for(version="v1.7") == []
    assert await names_for(status="CREATING") == sorted([*names, "hotel-mini"])
    assert await names_for(status="DEPLOYED") == []
    assert len(await names_for(cluster_name="emulator")) == 8
    user = everything["contents"][0]["created_by"]
    assert len(await names_for(created_by=user[4:12])) == 8
    assert len(await names_for(colour="red", size=2)) == 2  # unknown parameters are ignored
    clock.advance(30.0)
    assert len(await names_for(status="DEPLOYED")) == 8


async def test_images_nodes_and_storage_classes(api: Api, emu: Emulator) -> None:
    images = (await api.call("GET", f"{BASE}/images", query={"size": 3})).body
    assert images["total_count"] == 4 and len(images["contents"]) == 3
    assert all(set(image) == IMAGE_FIELDS for image in images["contents"])
    assert {i["project_id"] for i in images["contents"]} == {emu.project_id}
    page1 = (await api.call("GET", f"{BASE}/images", query={"size": 3, "page": 1})).body
    ids = [i["image_id"] for i in images["contents"] + page1["contents"]]
    assert sorted(ids) == sorted(emu.image_ids)
    mini = (await api.call("GET", f"{BASE}/images", query={"image_name": "mini"})).body
    assert mini["total_count"] == 2 and {i["product_type"] for i in mini["contents"]} == {"Mini"}

    nodes = (await api.call("GET", f"{BASE}/internal/clusters/{emu.cluster_id}/nodes",
                            query={"size": 2, "sort": "name:asc"})).body
    assert nodes["count"] == 3 and nodes["links"] == [] and len(nodes["nodes"]) == 2
    node = nodes["nodes"][0]
    assert set(node) == NODE_FIELDS
    assert node["status"] == "Ready" and node["roles"] == ["worker"] and node["gpu"] == "0"
    assert node["cpu"] == "16" and node["memory"] == "64Gi"
    assert nodes["nodes"][0]["name"] < nodes["nodes"][1]["name"]

    classes = (await api.call("GET", f"{BASE}/internal/clusters/{emu.cluster_id}/storageclasses")).body
    assert classes["count"] == len(classes["storage_classes"]) == 2 and classes["links"] == []
    assert all(set(sc) == STORAGE_CLASS_FIELDS for sc in classes["storage_classes"])
    assert [sc["is_default"] for sc in classes["storage_classes"]].count(True) == 1
    for path in ("nodes", "storageclasses"):
        assert_error(await api.call("GET", f"{BASE}/internal/clusters/nope/{path}"), 404)


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.28.1", True), ("v1.27.3", True), ("1.30", True), ("v1.29.0-eks", True),
     ("1.26.9", False), ("1.31.0", False), ("1.280", False), ("latest", False)],
)
async def test_check_version(api: Api, emu: Emulator, version: str, expected: bool) -> None:
    reply = await api.call("GET", f"{BASE}/clusters/{emu.cluster_id}/check-version",
                           query={"version": version})
    assert reply.body == {"result": expected}


async def test_cluster_checks(api: Api, emu: Emulator, clock: Clock) -> None:
    cluster = f"{BASE}/clusters/{emu.cluster_id}"
    namespaces = f"{cluster}/validate-namespaces"
    assert (await api.call("GET", namespaces)).body == {"result": True}
    for product in ("Enterprise", "Mini"):
        reply = await api.call("GET", f"{cluster}/validate-resources", query={"product_type": product})
        assert reply.body == {"result": True}
    release_id = await api.created("occupant")
    assert (await api.call("GET", namespaces)).body == {"result": False}
    clock.advance(20.0)
    await api.call("DELETE", f"{BASE}/{release_id}")
    assert (await api.call("GET", namespaces)).body == {"result": False}
    clock.advance(10.0)
    assert (await api.call("GET", namespaces)).body == {"result": True}
    for path, query in (
        ("check-version", {"version": "1.28"}),
        ("validate-namespaces", {}),
        ("validate-resources", {"product_type": "Mini"}),
    ):
        assert_error(await api.call("GET", f"{BASE}/clusters/{'0' * 32}/{path}", query=query), 404)


async def test_fixed_paths_are_not_taken_for_release_ids(api: Api, emu: Emulator) -> None:
    for path in ("images", "check-duplication"):
        assert_error(await api.call("DELETE", f"{BASE}/{path}"), 404)
    assert (await api.call("GET", f"{BASE}/check-duplication", query={"release_name": "x"})).status == 200
    assert emu.stats.requests["GET /v1/aimlops-platform/check-duplication"] == 1
    assert emu.stats.requests["DELETE /v1/aimlops-platform/{release_id}"] == 2


# --- never a 5xx for what a client sends --------------------------------------------------------


GARBAGE_BODIES = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"text"',
    b"42",
    b"\xff\xfe\x00garbage",
    b"[" * 100_000,
    b'{"ai_ml_ops_platform_create_request": NaN}',
    b'{"ai_ml_ops_platform_create_request": {"release_name": 1e999}}',
    json.dumps({"ai_ml_ops_platform_create_request": {"tags": [{"k": ["nested"]}]}}).encode(),
    json.dumps({"\ud800": 1}).encode(),
]


@pytest.mark.parametrize("data", GARBAGE_BODIES, ids=range(len(GARBAGE_BODIES)))
@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_garbage_bodies_get_400(api: Api, emu: Emulator, method: str, data: bytes) -> None:
    path = BASE if method == "POST" else f"{BASE}/{'a' * 32}"
    reply = await api.call(method, path, data=data, headers={"Content-Type": "application/json"})
    assert_error(reply, 400)
    assert emu.platforms() == []


async def test_odd_requests_never_get_5xx(api: Api, emu: Emulator) -> None:
    release_id = await api.created("target")
    cases: list[tuple[str, str, str | None]] = [
        ("GET", f"{BASE}/%00", None),
        ("GET", f"{BASE}/{'%ED%81%B4' * 3}", None),
        ("GET", f"{BASE}/{release_id}", "page=%ZZ&size=%FF"),
        ("GET", BASE, "size=1&size=2&page=&sort="),
        ("GET", BASE, "size=99999999999999999999999999"),
        ("GET", BASE, "release_name=%00%FF"),
        ("DELETE", f"{BASE}/{release_id}", "with_k8s=%FF"),
        ("GET", f"{BASE}/clusters/%2F/check-version", "version=%00"),
        ("PATCH", BASE, None),
        ("HEAD", BASE, None),
        ("OPTIONS", f"{BASE}/{release_id}", None),
        ("GET", "/", None),
        ("GET", f"{BASE}/", None),
        ("GET", f"{BASE}/a/b/c/d", None),
        ("POST", f"{BASE}/images", None),
    ]
    for method, path, query in cases:
        reply = await api.call(method, path, query=query)
        assert reply.status < 500, (method, path, query, reply.status, reply.text)
        if method != "HEAD":
            assert isinstance(reply.body, dict), (method, path, reply.text)
    assert (await api.call("PATCH", BASE)).status == 405
    assert_error(await api.call("GET", "/nowhere"), 404)
    huge = io.BytesIO(b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}')
    reply = await api.call("POST", BASE, data=huge, headers={"Content-Type": "application/json"})
    assert reply.status == 413
    assert 500 not in emu.stats.statuses and 503 not in emu.stats.statuses


# --- fault injection ----------------------------------------------------------------------------

def test_faults_validation_and_determinism() -> None:
    with pytest.raises(ValueError):
        Faults(error_rate=1.5)
    with pytest.raises(ValueError):
        Faults(error_rate=0.6, drop_rate=0.6)
    with pytest.raises(ValueError):
        Faults(latency=-1)
    first, second = Faults(seed=5, error_rate=0.3, latency_tail=0.1), Faults(seed=5, error_rate=0.3,
                                                                              latency_tail=0.1)
    rolls = [first.roll(is_get=True, is_create=False) for _ in range(200)]
    assert rolls == [second.roll(is_get=True, is_create=False) for _ in range(200)]
    delays = [roll.delay for roll in rolls]
    assert all(0.1 <= delay <= 1.0 for delay in delays)
    assert max(delays) > 2 * min(delays)
    kinds = [roll.kind for roll in rolls]
    assert 30 < kinds.count("error") < 90
    assert {roll.variant for roll in rolls if roll.kind == "error"} == {500, 503}
    not_create = Faults(ambiguous_create_rate=1.0).roll(is_get=False, is_create=False)
    assert not_create.kind is None
    assert Faults(malformed_rate=1.0).roll(is_get=False, is_create=True).variant == "html"


@pytest.mark.faults
async def test_error_faults_answer_500_or_503_and_do_nothing(api: Api, emu: Emulator) -> None:
    emu.faults = Faults(error_rate=1.0, seed=1)
    statuses = set()
    for index in range(12):
        reply = await api.create(emu.sample_create_request(f"e-{index}"))
        assert_error(reply, reply.status)
        statuses.add(reply.status)
    assert statuses == {500, 503}
    assert emu.platforms() == [] and not emu.stats.creates
    assert emu.stats.faults["error"] == 12
    emu.faults = Faults()
    assert (await api.listing()).status == 200


@pytest.mark.faults
async def test_rate_limit_fault(api: Api, emu: Emulator) -> None:
    emu.faults = Faults(rate_limit_rate=1.0, retry_after=1.5)
    reply = await api.create(emu.sample_create_request("limited"))
    assert_error(reply, 429)
    assert reply.headers["Retry-After"] == "2"
    assert emu.platforms() == []


@pytest.mark.faults
async def test_dropped_connection_does_nothing(api: Api, emu: Emulator) -> None:
    emu.faults = Faults(drop_rate=1.0)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await api.create(emu.sample_create_request("dropped"))
    assert emu.platforms() == [] and not emu.stats.creates
    assert emu.stats.faults["drop"] >= 1
    assert not emu.stats.statuses


@pytest.mark.faults
async def test_ambiguous_create_happens_but_gets_no_answer(api: Api, emu: Emulator) -> None:
    emu.faults = Faults(ambiguous_create_rate=1.0)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await api.create(emu.sample_create_request("ambiguous"))
    assert [p["release_name"] for p in emu.platforms()] == ["ambiguous"]
    assert emu.stats.creates == {"ambiguous": 1}
    assert (await api.listing()).status == 200  # only creates are affected
    dup = await api.call("GET", f"{BASE}/check-duplication", query={"release_name": "ambiguous"})
    assert dup.body == {"result": True}


@pytest.mark.faults
async def test_stall_does_the_work_then_outlasts_the_client(api: Api, emu: Emulator) -> None:
    emu.faults = Faults(stall_rate=1.0, stall_seconds=30.0)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await api.create(emu.sample_create_request("stalled"), timeout=0.2)
    assert time.monotonic() - started < 5
    assert [p["release_name"] for p in emu.platforms()] == ["stalled"]


@pytest.mark.faults
async def test_malformed_answers(api: Api, emu: Emulator) -> None:
    emu.faults = Faults(malformed_rate=1.0, seed=2)
    variants = set()
    for _ in range(12):
        reply = await api.listing()
        if reply.status == 200:
            with pytest.raises(ValueError):
                json.loads(reply.text)
            variants.add("truncated")
        else:
            assert reply.status == 502 and "<html>" in reply.text
            variants.add("html")
    assert variants == {"truncated", "html"}
    reply = await api.create(emu.sample_create_request("malformed"))
    assert reply.status == 502 and reply.headers["Content-Type"].startswith("text/html")
    assert emu.platforms() == []


@pytest.mark.faults
async def test_latency_is_added(api: Api, emu: Emulator) -> None:
    emu.faults = Faults(latency=0.15)
    started = time.monotonic()
    assert (await api.listing()).status == 200
    assert time.monotonic() - started >= 0.15


async def test_stop_ends_a_stalled_request_promptly() -> None:
    emu = Emulator(faults=Faults(stall_rate=1.0, stall_seconds=60.0))
    await emu.start()
    url = emu.url + BASE
    host_port = url.split("/")[2]
    headers = signed_headers("GET", url, emu.credentials)
    host, port = host_port.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"GET {BASE} HTTP/1.1", f"Host: {host_port}", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    for _ in range(100):
        if emu.stats.faults["stall"]:
            break
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await emu.stop()
    assert time.monotonic() - started < 2
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    await writer.wait_closed()
    assert asyncio.all_tasks() == {asyncio.current_task()}


# --- the Emulator object ------------------------------------------------------------------------


async def test_emulator_object(http: aiohttp.ClientSession) -> None:
    emu = Emulator(access_key="AK", secret_key="SK", project_id="p" * 32, seed=1)
    with pytest.raises(RuntimeError):
        _ = emu.url
    assert emu.credentials == Credentials("AK", "SK")
    assert emu.project_id == "p" * 32
    assert "SK" not in repr(emu)
    await emu.start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.url)
        with pytest.raises(RuntimeError):
            await emu.start()
        async with Emulator(seed=1) as second:
            assert second.url != emu.url
            assert second.image_ids == emu.image_ids  # same seed, same ids
            assert second.cluster_id != emu.cluster_id  # different project ids consumed
        api = Api(http, emu)
        assert (await api.listing()).status == 200
        assert isinstance(emu.stats, EmulatorStats)
        assert emu.stats.total == 1 and emu.stats.statuses == {200: 1}
        assert emu.stats.requests == {"GET /v1/aimlops-platform": 1}
        emu.stats.reset()
        assert emu.stats.total == 0 and not emu.stats.requests
    finally:
        await emu.stop()
    await emu.stop()  # idempotent
    async with emu:  # and it starts again, with its state kept
        assert (await Api(http, emu).listing()).status == 200
        assert emu.stats.total == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"creating_seconds": -1.0},
        {"visibility_lag": -0.5},
        {"failure_rate": 1.5},
        {"page_size_max": 0},
        {"fail_pattern": "("},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises((ValueError, re.error)):
        Emulator(**kwargs)


def test_sample_requests_are_in_the_reference_shape() -> None:
    emu = Emulator()
    body = emu.sample_create_request("sample", with_k8s=True)
    assert set(body) == {P, K, N}
    assert "cluster_id" not in body[P]
    plain = emu.sample_create_request("sample")
    assert set(plain) == {P} and plain[P]["cluster_id"] == emu.cluster_id
    copy.deepcopy(plain)  # plain JSON data
    json.dumps(body)


# --- the command line ---------------------------------------------------------------------------


async def _run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[str, int]:
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith("SCP_")}
    environment.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aimlops_async.emulator", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE,
        env=environment,
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        output = first
        if "--json" not in args:
            while "AIMLOPS_IMAGE_ID" not in output:  # the banner's last line
                output += (await asyncio.wait_for(proc.stdout.readline(), 5)).decode()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.stdout.read(), 10)
        code = await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return output, code


async def test_cli_json_line(http: aiohttp.ClientSession) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aimlops_async.emulator", "--port", "0", "--json",
        "--creating-seconds", "0", stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
        assert set(info) == {
            "url", "access_key", "secret_key", "account_id", "project_id", "cluster_id", "image_id"
        }
        assert info["account_id"] is None and HEX32.fullmatch(info["project_id"])
        creds = Credentials(info["access_key"], info["secret_key"], info["account_id"])
        url = info["url"] + f"{BASE}/clusters/{info['cluster_id']}/validate-namespaces"
        async with http.get(URL(url, encoded=True), headers=signed_headers("GET", url, creds)) as r:
            assert r.status == 200 and await r.json() == {"result": True}
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_prints_exports_with_credentials_from_the_environment() -> None:
    output, code = await _run_cli(env={"SCP_ACCESS_KEY": "envkey", "SCP_SECRET_KEY": "envsecret"})
    assert code == 0
    assert re.search(r"^export AIMLOPS_ENDPOINT=http://127\.0\.0\.1:\d+$", output, re.M)
    assert "export SCP_ACCESS_KEY=envkey\n" in output
    assert "export SCP_SECRET_KEY=envsecret\n" in output
    assert "SCP_PROJECT_ID" not in output
    assert "SCP_ACCOUNT_ID" not in output  # no account configured
    output, code = await _run_cli(env={
        "SCP_ACCESS_KEY": "envkey", "SCP_SECRET_KEY": "envsecret", "SCP_ACCOUNT_ID": "acct-9",
    })
    assert code == 0 and "export SCP_ACCOUNT_ID=acct-9\n" in output
