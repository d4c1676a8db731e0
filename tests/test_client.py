"""The client (CONTRACT section 2): endpoint and credentials resolution, lifecycle without warnings,
concurrency, and every operation against the emulator returning its documented type.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import warnings
from datetime import datetime

import pytest
from wire import FAST_RETRIES, Recorded, Reply, WireServer

from aimlops_async import (
    AimlopsClient,
    AimlopsError,
    AsyncPager,
    AsyncResponse,
    AuthenticationError,
    CheckResponse,
    Credentials,
    Image,
    Node,
    NotFoundError,
    PlatformDetail,
    PlatformSummary,
    PlatformType,
    ReleaseState,
    StorageClass,
    StorageClassList,
    ValidationError,
)
from aimlops_async.emulator import Emulator

ENV_NAMES = ("AIMLOPS_ENDPOINT", "SCP_REGION", "SCP_ENVIRONMENT", "SCP_ACCESS_KEY",
             "SCP_SECRET_KEY", "SCP_ACCOUNT_ID", "SCP_AUTH_TOKEN")
SECRET = "s3cr3t-value-never-shown"
TOKEN = "t0ken-value-never-shown"
CREDENTIALS = Credentials("ak-1", SECRET, "acct-1", TOKEN)
# What the check endpoints answer: an answer without "result" is a malformed one.
CHECK_ANSWER = Reply(200, {"result": True})


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --------------------------------------------------------------------------- endpoint


# The documented pairs (CONTRACT section 1), written out here rather than read from the library.
DOCUMENTED_PAIRS = [
    ("kr-west1", "s"), ("kr-east1", "s"), ("kr-south1", "g"), ("kr-south2", "g"),
    ("kr-south3", "g"), ("kr-west1", "e"), ("kr-east1", "e"),
]


@pytest.mark.parametrize(("region", "environment"), DOCUMENTED_PAIRS)
async def test_region_and_environment(clean_env: pytest.MonkeyPatch, region: str,
                                      environment: str) -> None:
    async with AimlopsClient(credentials=CREDENTIALS, region=region,
                             environment=environment) as client:
        assert client.endpoint == f"https://aimlops-platform.{region}.{environment}.samsungsdscloud.com"


async def test_documented_example_endpoint(clean_env: pytest.MonkeyPatch) -> None:
    async with AimlopsClient(region="kr-west1", environment="e", credentials=CREDENTIALS) as client:
        assert client.endpoint == "https://aimlops-platform.kr-west1.e.samsungsdscloud.com"


async def test_explicit_endpoint_wins(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AIMLOPS_ENDPOINT", "http://from-env:1")
    clean_env.setenv("SCP_REGION", "kr-west1")
    clean_env.setenv("SCP_ENVIRONMENT", "e")
    async with AimlopsClient("http://127.0.0.1:8080", CREDENTIALS) as client:
        assert client.endpoint == "http://127.0.0.1:8080"
    async with AimlopsClient(endpoint="https://example.test:9443/", credentials=CREDENTIALS) as client:
        assert client.endpoint == "https://example.test:9443"


async def test_endpoint_from_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SCP_REGION", "kr-south2")
    clean_env.setenv("SCP_ENVIRONMENT", "g")
    async with AimlopsClient(credentials=CREDENTIALS) as client:
        assert client.endpoint == "https://aimlops-platform.kr-south2.g.samsungsdscloud.com"
    clean_env.setenv("AIMLOPS_ENDPOINT", "http://127.0.0.1:9999")
    async with AimlopsClient(credentials=CREDENTIALS) as client:
        assert client.endpoint == "http://127.0.0.1:9999"


@pytest.mark.parametrize(
    ("kwargs", "env", "field"),
    [
        ({"region": "kr-west1", "environment": "x"}, {}, "environment"),
        ({"region": "kr-west1", "environment": "prod"}, {}, "environment"),
        ({}, {"SCP_REGION": "kr-west1", "SCP_ENVIRONMENT": "q"}, "SCP_ENVIRONMENT"),
        ({}, {}, "endpoint"),
        ({"endpoint": "127.0.0.1:8080"}, {}, "endpoint"),
        ({"region": "kr-east1", "environment": "g"}, {}, "region"),
        ({"region": "kr-south1", "environment": "e"}, {}, "region"),
        ({"region": "us-west1", "environment": "s"}, {}, "region"),
        ({}, {"SCP_REGION": "kr-south3", "SCP_ENVIRONMENT": "s"}, "SCP_REGION"),
    ],
    ids=["bad-environment", "long-environment", "bad-env-variable", "nothing", "no-scheme",
         "east-in-g", "south-in-e", "unknown-region", "undocumented-pair-from-env"],
)
def test_bad_endpoints_are_validation_errors(
    clean_env: pytest.MonkeyPatch, kwargs: dict[str, str], env: dict[str, str], field: str
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        AimlopsClient(credentials=CREDENTIALS, **kwargs)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


# --------------------------------------------------------------------------- credentials


def test_credentials_from_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SCP_ACCESS_KEY", "ak-env")
    clean_env.setenv("SCP_SECRET_KEY", SECRET)
    clean_env.setenv("SCP_PROJECT_ID", "no-longer-read")
    assert Credentials.from_env() == Credentials("ak-env", SECRET, None, None)
    clean_env.setenv("SCP_ACCOUNT_ID", "acct-env")
    clean_env.setenv("SCP_AUTH_TOKEN", TOKEN)
    credentials = Credentials.from_env()
    assert (credentials.access_key, credentials.secret_key, credentials.account_id,
            credentials.auth_token) == ("ak-env", SECRET, "acct-env", TOKEN)
    assert not hasattr(credentials, "project_id")


def test_credentials_from_env_missing(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SCP_ACCESS_KEY", "ak-env")
    with pytest.raises(ValidationError) as caught:
        Credentials.from_env()
    assert "SCP_SECRET_KEY" in str(caught.value)
    clean_env.setenv("AIMLOPS_ENDPOINT", "http://127.0.0.1:1")
    with pytest.raises(ValidationError):
        AimlopsClient()


async def test_client_reads_credentials_from_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SCP_ACCESS_KEY", "ak-env")
    clean_env.setenv("SCP_SECRET_KEY", SECRET)
    clean_env.setenv("SCP_ACCOUNT_ID", "acct-env")
    clean_env.setenv("SCP_AUTH_TOKEN", TOKEN)
    async with WireServer(
        access_key="ak-env", secret_key=SECRET, account_id="acct-env", default=CHECK_ANSWER
    ) as server:
        clean_env.setenv("AIMLOPS_ENDPOINT", server.url)
        async with AimlopsClient(**FAST_RETRIES) as client:
            await client.clusters.validate_namespaces("c1")
        recorded = server.requests[0]
        assert recorded.headers["Scp-AccessKey"] == "ak-env"
        assert recorded.headers["Scp-AccountId"] == "acct-env"
        assert recorded.headers["X-Auth-Token"] == TOKEN
        assert "Scp-ProjectId" not in recorded.headers
        assert server.signature_ok(recorded)


def test_secrets_never_shown() -> None:
    client = AimlopsClient("http://127.0.0.1:1", CREDENTIALS)
    for text in (repr(CREDENTIALS), str(CREDENTIALS), f"{CREDENTIALS}", repr(client), str(client)):
        assert SECRET not in text
        assert TOKEN not in text
        assert "ak-1" in text or "127.0.0.1" in text


# --------------------------------------------------------------------------- lifecycle


async def test_async_with_and_close() -> None:
    async with WireServer(default=CHECK_ANSWER) as server:
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            await client.clusters.validate_namespaces("c1")
            assert not client.closed
        assert client.closed
        await client.close()  # twice is fine
        with pytest.raises(AimlopsError, match="closed"):
            await client.platforms.get("r1")
        other = AimlopsClient(server.url, server.credentials, **FAST_RETRIES)
        await other.clusters.validate_namespaces("c1")
        await other.close()
        with pytest.raises(AimlopsError, match="closed"):
            await other.clusters.validate_namespaces("c1")
        assert len(server.requests) == 2


async def test_no_unclosed_session_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with WireServer(default=CHECK_ANSWER) as server:
            async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
                await asyncio.gather(*(client.clusters.validate_namespaces("c") for _ in range(5)))
            unused = AimlopsClient(server.url, server.credentials)  # never used, never closed
            del unused
            closed = AimlopsClient(server.url, server.credentials, **FAST_RETRIES)
            await closed.platforms.check_duplication("x")
            await closed.close()
            del closed, client
            gc.collect()
        await asyncio.sleep(0)
        gc.collect()
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "nclosed" in m], messages


def test_client_built_outside_a_loop_works_inside_one() -> None:
    async def scenario() -> bool:
        async with WireServer() as server:
            server.script(Reply(200, {"result": True}))
            client = AimlopsClient(server.url, server.credentials, **FAST_RETRIES)
            async with client:
                return await client.platforms.check_duplication("x")

    assert asyncio.run(scenario()) is True


async def test_client_created_before_the_loop_runs_it_uses() -> None:
    server = WireServer(default=Reply(200, {"result": False}))
    await server.start()
    try:
        client = AimlopsClient(server.url, server.credentials, **FAST_RETRIES)
        async with client:
            assert await client.platforms.check_duplication("x") is False
    finally:
        await server.stop()


@pytest.mark.parametrize(
    "kwargs",
    [{"language": "fr-FR"}, {"max_concurrency": 0}, {"max_retries": -1}, {"timeout": 0},
     {"api_version": ""}, {"requests_per_second": 0}],
)
def test_bad_options_are_validation_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AimlopsClient("http://127.0.0.1:1", CREDENTIALS, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("limit", [1, 3, 8])
async def test_max_concurrency_bounds_requests_in_flight(limit: int) -> None:
    full = asyncio.Event()

    async def hold_until_full(recorded: Recorded) -> Reply:
        # Requests wait until `limit` of them are in flight, so the limit is surely reached;
        # the short sleep after it leaves room for any request beyond the limit to show up.
        if server.in_flight >= limit:
            full.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(full.wait(), 2.0)
        await asyncio.sleep(0.01)
        return Reply(200, {"result": True})

    async with WireServer(handler=hold_until_full) as server:
        async with AimlopsClient(server.url, server.credentials, max_concurrency=limit,
                                 **FAST_RETRIES) as client:
            results = await asyncio.gather(
                *(client.platforms.check_duplication(f"n{i}") for i in range(limit * 4))
            )
        assert results == [True] * (limit * 4)
        assert server.max_in_flight <= limit
        assert server.max_in_flight == limit  # and the limit is actually used


async def test_one_client_many_tasks(emulator: Emulator, client: AimlopsClient) -> None:
    names = [f"many-{i}" for i in range(20)]
    created = await asyncio.gather(
        *(client.platforms.create(emulator.sample_create_request(name)) for name in names)
    )
    ids = [answer.resource_id for answer in created]
    assert len(set(ids)) == 20
    details = await asyncio.gather(*(client.platforms.get(rid) for rid in ids for _ in range(3)))
    assert {d.release_name for d in details} == set(names)
    taken = await asyncio.gather(*(client.platforms.check_duplication(n) for n in names))
    assert taken == [True] * 20


# --------------------------------------------------------------------------- the emulator


async def wait_for_state(client: AimlopsClient, release_id: str, state: str) -> PlatformDetail:
    for _ in range(300):
        detail = await client.platforms.get(release_id)
        if detail.release_state == state:
            return detail
        await asyncio.sleep(0.02)
    raise AssertionError(f"{release_id} never reached {state}")


async def test_every_operation_against_the_emulator(emulator: Emulator, client: AimlopsClient) -> None:
    cluster = emulator.cluster_id

    assert await client.platforms.check_duplication("e2e-one") is False

    created = await client.platforms.create(emulator.sample_create_request("e2e-one"))
    assert isinstance(created, AsyncResponse) and created.resource_id
    release_id = created.resource_id

    assert await client.platforms.check_duplication("e2e-one") is True

    detail = await client.platforms.get(release_id)
    assert isinstance(detail, PlatformDetail)
    assert detail.release_id == release_id and detail.release_name == "e2e-one"
    assert isinstance(detail.release_state, ReleaseState)
    assert isinstance(detail.created_dt, datetime) and detail.created_dt.tzinfo is not None

    pager = client.platforms.list(release_name="e2e-one")
    assert isinstance(pager, AsyncPager)
    listed = [item async for item in pager]
    assert [item.release_id for item in listed] == [release_id]
    assert isinstance(listed[0], PlatformSummary)
    pages = [page async for page in client.platforms.list().pages()]
    assert pages[0].total_count == 1

    await wait_for_state(client, release_id, "DEPLOYED")
    updated = await client.platforms.update(release_id, {"ai_ml_ops_platform_endpoint_type": "Public"})
    assert isinstance(updated, AsyncResponse) and updated.resource_id == release_id
    deployed = await wait_for_state(client, release_id, "DEPLOYED")
    assert deployed.ai_ml_ops_platform_endpoint_type == "Public"

    images = [image async for image in client.images.list()]
    assert images and all(isinstance(image, Image) for image in images)
    assert {image.image_id for image in images} == set(emulator.image_ids)

    version = await client.clusters.check_version(cluster, "1.28.1")
    assert isinstance(version, CheckResponse) and version.result is True
    old = await client.clusters.check_version(cluster, "1.10.0")
    assert isinstance(old, CheckResponse) and old.result is False

    namespaces = await client.clusters.validate_namespaces(cluster)
    assert isinstance(namespaces, CheckResponse) and isinstance(namespaces.result, bool)

    for product in ("Enterprise", "Mini", PlatformType.MINI):
        resources = await client.clusters.validate_resources(cluster, product)
        assert isinstance(resources, CheckResponse) and isinstance(resources.result, bool)

    nodes = [node async for node in client.clusters.list_nodes(cluster)]
    assert nodes and all(isinstance(node, Node) and node.name for node in nodes)

    classes = await client.clusters.list_storage_classes(cluster)
    assert isinstance(classes, StorageClassList)
    assert classes.storage_classes and isinstance(classes.storage_classes[0], StorageClass)

    assert await client.platforms.delete(release_id) is None
    for _ in range(300):
        try:
            await client.platforms.get(release_id)
        except NotFoundError:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the platform was never deleted")
    assert await client.platforms.check_duplication("e2e-one") is False


async def test_create_with_k8s_and_delete_with_k8s(emulator: Emulator, client: AimlopsClient) -> None:
    created = await client.platforms.create(emulator.sample_create_request("e2e-k8s", with_k8s=True))
    assert created.resource_id
    detail = await client.platforms.get(created.resource_id)
    assert detail.release_name == "e2e-k8s"
    await wait_for_state(client, created.resource_id, "DEPLOYED")
    assert await client.platforms.delete(created.resource_id, with_k8s=True) is None


async def test_missing_things_are_not_found(emulator: Emulator, client: AimlopsClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.platforms.get("no-such-release")
    assert caught.value.status == 404 and caught.value.request_id
    with pytest.raises(NotFoundError):
        await client.platforms.delete("no-such-release")
    with pytest.raises(NotFoundError):
        await client.clusters.list_storage_classes("no-such-cluster")
    assert client.stats.retries == 0


async def test_wrong_secret_is_an_authentication_error(emulator: Emulator) -> None:
    wrong = Credentials(emulator.credentials.access_key, "wrong-secret",
                        emulator.credentials.account_id)
    async with AimlopsClient(emulator.url, wrong, **FAST_RETRIES) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.platforms.check_duplication("x")
    assert caught.value.status == 401
    assert "wrong-secret" not in str(caught.value)


async def test_projects_are_separate(emulator: Emulator, client: AimlopsClient) -> None:
    await client.platforms.create(emulator.sample_create_request("mine"))
    other = emulator.add_project()
    async with AimlopsClient(emulator.url, other, **FAST_RETRIES) as theirs:
        assert [p async for p in theirs.platforms.list()] == []
        assert await theirs.platforms.check_duplication("mine") is False


async def test_requests_per_second_spaces_request_starts() -> None:
    async with WireServer(default=Reply(200, {"result": True})) as server:
        async with AimlopsClient(server.url, server.credentials, requests_per_second=20,
                                 **FAST_RETRIES) as client:
            await asyncio.gather(*(client.platforms.check_duplication(f"n{i}") for i in range(4)))
        arrivals = sorted(r.received_at for r in server.requests)
        # 20 per second: starts at least 50 ms apart (a lower bound, whatever the machine's speed).
        assert all(b - a >= 0.04 for a, b in itertools.pairwise(arrivals))


def test_ca_bundle_and_ssl_together_are_refused() -> None:
    # Either would silently override the other.
    with pytest.raises(ValidationError) as caught:
        AimlopsClient("https://127.0.0.1:1", Credentials("ak", "sk"), ssl=False, ca_bundle="ca.pem")
    assert caught.value.field == "ca_bundle"
