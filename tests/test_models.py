"""Models and validation: the reference's examples round-trip, responses are tolerant, requests are strict,
semantic checks name the full field path, nothing is sent for a bad request, and no password leaks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from wire import FAST_RETRIES, Reply, WireServer

import aimlops_async.models as models
from aimlops_async import (
    AimlopsClient,
    AimlopsError,
    AsyncResponse,
    CheckResponse,
    ClusterState,
    CreatePlatformRequest,
    DomainServiceRequest,
    EndpointType,
    Image,
    ImageListPage,
    KubernetesEngineCreateRequest,
    NodeListPage,
    NodePoolCreateRequest,
    PlatformCreateRequest,
    PlatformDetail,
    PlatformListPage,
    PlatformSummary,
    PlatformType,
    ReleaseState,
    StorageClassList,
    UpdatePlatformRequest,
    ValidationError,
)
from aimlops_async.converter import structure_request, structure_response, unstructure

FIXTURES = Path(__file__).parent / "fixtures"
PASSWORD = "147@53A69a"  # the reference example's initial_user_password


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


RESPONSES = [
    ("check_version_response.json", CheckResponse),
    ("check_duplication_response.json", CheckResponse),
    ("validate_namespaces_response.json", CheckResponse),
    ("validate_resources_response.json", CheckResponse),
    ("create_response.json", AsyncResponse),
    ("update_response.json", AsyncResponse),
    ("platform_detail_response.json", PlatformDetail),
    ("platforms_list_response.json", PlatformListPage),
    ("images_list_response.json", ImageListPage),
    ("nodes_list_response.json", NodeListPage),
    ("storage_classes_list_response.json", StorageClassList),
]


def test_every_reference_schema_has_a_model() -> None:
    names = [
        "AiMLOpsPlatformCreateRequest", "AiMlOpsPlatformCreateWithK8sEngineRequest",
        "AiMlOpsPlatformDetailResponse", "AiMlOpsPlatformDomainServiceReuqest",
        "AiMlOpsPlatformImagesListResponse", "AiMlOpsPlatformImagesResponse",
        "AiMlOpsPlatformsListResponse", "AiMlOpsPlatformUpdateRequest", "AsyncResponse",
        "CheckResponse", "KubeflowResponse", "KubernetesEngineCreateRequest", "ListNodeResponse",
        "ListStorageClassResponse", "NodePoolCreateRequest", "NodeResponse", "StorageClassResponse",
    ]
    assert len(names) == 17
    for name in names:
        cls = getattr(models, name)
        assert isinstance(cls, type) and hasattr(cls, "__attrs_attrs__"), name


# --------------------------------------------------------------------------- responses


@pytest.mark.parametrize(("name", "cls"), RESPONSES, ids=[name for name, _ in RESPONSES])
def test_reference_responses_round_trip(name: str, cls: type[Any]) -> None:
    data = fixture(name)
    model = structure_response(data, cls)
    assert isinstance(model, cls)
    assert unstructure(model) == data


def test_reference_detail_fields() -> None:
    detail = structure_response(fixture("platform_detail_response.json"), PlatformDetail)
    assert detail.release_state == "DEPLOYED" and detail.release_state is ReleaseState.DEPLOYED
    assert detail.cluster_state == "RUNNING" and detail.cluster_state is ClusterState.RUNNING
    assert detail.ai_ml_ops_platform_type == "Enterprise"
    assert detail.release_name == "aiml-test" and detail.version == "v1.7.1"
    assert detail.created_dt == datetime(2024, 5, 17, 0, 23, 17, tzinfo=timezone.utc)
    assert detail.modified_dt is not None and detail.modified_dt.utcoffset() == timedelta(0)


def test_reference_list_fields() -> None:
    page = structure_response(fixture("platforms_list_response.json"), PlatformListPage)
    assert page.total_count == 10
    assert page.contents is not None
    [item] = page.contents
    assert isinstance(item, PlatformSummary)
    assert item.status == "DEPLOYED" and item.kubeflow_type == "Enterprise"
    images = structure_response(fixture("images_list_response.json"), ImageListPage)
    assert images.contents is not None and isinstance(images.contents[0], Image)
    assert images.contents[0].product_type == PlatformType.ENTERPRISE


def test_unknown_fields_are_ignored_everywhere() -> None:
    data = fixture("platforms_list_response.json")
    data["next_cursor"] = {"anything": [1, 2]}
    data["contents"][0]["gpu_quota"] = 8
    page = structure_response(data, PlatformListPage)
    assert page.total_count == 10
    assert page.contents is not None and page.contents[0].release_name == "aiml-test"
    assert "gpu_quota" not in unstructure(page)["contents"][0]
    detail = structure_response({**fixture("platform_detail_response.json"), "x": None}, PlatformDetail)
    assert detail.release_id == "10a599e031e749b7b260868f441e862b"


@pytest.mark.parametrize(
    "cls", [PlatformDetail, PlatformSummary, PlatformListPage, Image, ImageListPage, NodeListPage,
            StorageClassList, AsyncResponse, CheckResponse],
)
def test_missing_fields_are_none(cls: type[Any]) -> None:
    model = structure_response({}, cls)
    for attribute in cls.__attrs_attrs__:
        assert getattr(model, attribute.name) is None, attribute.name
    assert unstructure(model) == {}


def test_partial_detail() -> None:
    detail = structure_response({"release_id": "r1", "release_state": "CREATING"}, PlatformDetail)
    assert detail.release_id == "r1" and detail.release_state == "CREATING"
    assert detail.cluster_name is None and detail.created_dt is None


@pytest.mark.parametrize(
    ("field", "cls", "value"),
    [
        ("release_state", ReleaseState, "HIBERNATING"),
        ("cluster_state", ClusterState, "SCALING"),
        ("ai_ml_ops_platform_type", PlatformType, "Ultra"),
        ("ai_ml_ops_platform_endpoint_type", EndpointType, "Hybrid"),
    ],
)
def test_unknown_enum_values_survive(field: str, cls: type[Any], value: str) -> None:
    detail = structure_response({field: value}, PlatformDetail)
    state = getattr(detail, field)
    assert isinstance(state, cls)
    assert state == value and value == state and state != "DEPLOYED"
    assert str(state) == value and f"{state}" == value
    assert state in {value} and {value: 1}[state] == 1
    assert not state.is_known
    assert unstructure(detail) == {field: value}


def test_known_enum_values_are_members() -> None:
    for member in (*ReleaseState, *ClusterState, *PlatformType, *EndpointType):
        assert member.is_known
        assert type(member)(member.value) is member
        assert member == member.value and hash(member) == hash(member.value)
    assert {"FAILED", "ERROR", "DEPLOYED"} <= {state.value for state in ReleaseState}


def test_list_status_is_a_release_state() -> None:
    page = structure_response({"contents": [{"status": "DELETING"}]}, PlatformListPage)
    assert page.contents is not None and page.contents[0].status is ReleaseState.DELETING


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-17T00:23:17Z", datetime(2024, 5, 17, 0, 23, 17, tzinfo=timezone.utc)),
        ("2024-05-17T09:23:17+09:00", datetime(2024, 5, 17, 0, 23, 17, tzinfo=timezone.utc)),
        ("2024-05-17T00:23:17.250Z",
         datetime(2024, 5, 17, 0, 23, 17, 250000, tzinfo=timezone.utc)),
        ("2024-05-17T00:23:17", datetime(2024, 5, 17, 0, 23, 17, tzinfo=timezone.utc)),
    ],
)
def test_timestamps_are_timezone_aware(text: str, expected: datetime) -> None:
    for cls in (PlatformDetail, PlatformSummary, Image):
        model = structure_response({"created_dt": text, "modified_dt": text}, cls)
        assert model.created_dt is not None and model.created_dt.tzinfo is not None
        assert model.created_dt == expected
        assert model.modified_dt == expected


def test_empty_timestamp_is_none() -> None:
    """The service fills unset string fields with "" (see the reference's examples)."""
    detail = structure_response({"release_id": "r", "created_dt": "", "modified_dt": ""}, PlatformDetail)
    assert detail.created_dt is None and detail.modified_dt is None
    assert detail.release_id == "r"


def test_nodes_and_storage_classes_keep_what_kubernetes_reports() -> None:
    nodes = structure_response(
        {"count": 1, "links": [], "nodes": [{
            "name": "node-1", "status": "Ready", "roles": ["worker"], "internal_ip": "10.0.0.4",
            "kubelet_version": "v1.28.1", "cpu": "16", "memory": "64Gi", "taints": [],
            "created_dt": "2024-05-17T00:23:17Z",
        }]},
        NodeListPage,
    )
    assert nodes.count == 1 and nodes.nodes is not None
    node = nodes.nodes[0]
    assert (node.name, node.status, node.roles, node.cpu) == ("node-1", "Ready", ["worker"], "16")
    assert node.created_dt is not None and node.created_dt.tzinfo is not None
    classes = structure_response(
        {"count": 1, "links": [], "storage_classes": [{
            "name": "standard", "provisioner": "csi.example", "reclaim_policy": "Delete",
            "volume_binding_mode": "Immediate", "allow_volume_expansion": True, "is_default": True,
            "parameters": {"type": "ssd"},
        }]},
        StorageClassList,
    )
    assert classes.storage_classes is not None
    assert classes.storage_classes[0].name == "standard"
    assert classes.storage_classes[0].is_default is True


@pytest.mark.parametrize(
    ("result", "expected"),
    [(True, True), (False, False), ("true", True), ("false", False), ("", ""), (None, None)],
)
def test_check_response_result(result: Any, expected: Any) -> None:
    assert structure_response({"result": result}, CheckResponse).result == expected


# --------------------------------------------------------------------------- requests


def test_reference_create_example_round_trips_and_validates() -> None:
    data = fixture("create_request.json")
    model = structure_request(data, CreatePlatformRequest)
    assert isinstance(model.ai_ml_ops_platform_create_request, PlatformCreateRequest)
    assert isinstance(model.kubernetes_engine_create_request, KubernetesEngineCreateRequest)
    assert isinstance(model.node_pool_create_request, NodePoolCreateRequest)
    assert model.problems() == []
    assert unstructure(model) == data
    assert model.release_name == "aiml-test"


def test_reference_update_example_round_trips() -> None:
    data = fixture("update_request.json")
    model = structure_request(data, UpdatePlatformRequest)
    assert isinstance(model.ai_ml_ops_platform_domain_service, DomainServiceRequest)
    assert unstructure(model) == data
    # The reference writes the allowed values as "CREATE | UPDATE | DELETE"; they are placeholders.
    paths = [path for path, _ in model.problems()]
    assert paths == [
        "ai_ml_ops_platform_domain_service.operation_type", "ai_ml_ops_platform_endpoint_type"
    ]


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE", "DELETE"])
@pytest.mark.parametrize("endpoint_type", ["Public", "Private"])
def test_update_with_concrete_values_is_valid(operation: str, endpoint_type: str) -> None:
    data = fixture("update_request.json")
    data["ai_ml_ops_platform_domain_service"]["operation_type"] = operation
    data["ai_ml_ops_platform_endpoint_type"] = endpoint_type
    model = structure_request(data, UpdatePlatformRequest)
    assert model.problems() == []
    assert unstructure(model) == data


def test_models_built_in_python_serialise_to_the_api_shape() -> None:
    request = CreatePlatformRequest(
        ai_ml_ops_platform_create_request=PlatformCreateRequest(
            release_name="aiml-test", ai_ml_ops_platform_type=PlatformType.MINI, image_id="img",
            initial_user_email="a@example.com", initial_user_password=PASSWORD, cluster_id="c1",
        )
    )
    assert unstructure(request) == {
        "ai_ml_ops_platform_create_request": {
            "release_name": "aiml-test", "ai_ml_ops_platform_type": "Mini", "image_id": "img",
            "initial_user_email": "a@example.com", "initial_user_password": PASSWORD,
            "cluster_id": "c1",
        }
    }
    update = UpdatePlatformRequest(ai_ml_ops_platform_endpoint_type=EndpointType.PUBLIC)
    assert unstructure(update) == {"ai_ml_ops_platform_endpoint_type": "Public"}


def mutated(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    data = copy.deepcopy(fixture("create_request.json"))
    change(data)
    return data


def setter(section: str, field: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda data: data[section].__setitem__(field, value)


def remover(section: str, field: str) -> Callable[[dict[str, Any]], Any]:
    return lambda data: data[section].pop(field)


PLATFORM = "ai_ml_ops_platform_create_request"
K8S = "kubernetes_engine_create_request"
POOL = "node_pool_create_request"

BAD_CREATES = [
    pytest.param(lambda d: d.__setitem__("bogus", 1), "bogus", id="unknown-top-key"),
    pytest.param(setter(POOL, "bogus", 1), f"{POOL}.bogus", id="unknown-nested-key"),
    pytest.param(remover(PLATFORM, "release_name"), f"{PLATFORM}.release_name", id="missing"),
    pytest.param(remover(K8S, "vpc_id"), f"{K8S}.vpc_id", id="missing-k8s"),
    pytest.param(setter(PLATFORM, "release_name", None), f"{PLATFORM}.release_name",
                 id="null-required"),
    pytest.param(lambda d: d.pop(PLATFORM), PLATFORM, id="missing-section"),
    pytest.param(setter(POOL, "max_node_count", "3"), f"{POOL}.max_node_count", id="str-for-int"),
    pytest.param(setter(POOL, "max_node_count", True), f"{POOL}.max_node_count", id="bool-for-int"),
    pytest.param(setter(POOL, "volume_size", 104.5), f"{POOL}.volume_size", id="float-for-int"),
    pytest.param(setter(POOL, "is_auto_scale", "false"), f"{POOL}.is_auto_scale",
                 id="str-for-bool"),
    pytest.param(setter(K8S, "cloud_logging_enabled", 0), f"{K8S}.cloud_logging_enabled",
                 id="int-for-bool"),
    pytest.param(setter(K8S, "security_group_id_list", "sg-1"), f"{K8S}.security_group_id_list",
                 id="str-for-list"),
    pytest.param(setter(PLATFORM, "image_id", 7), f"{PLATFORM}.image_id", id="int-for-str"),
    pytest.param(lambda d: d.__setitem__(POOL, [1]), POOL, id="list-for-object"),
    pytest.param(setter(PLATFORM, "release_name", "a" * 54), f"{PLATFORM}.release_name",
                 id="name-too-long"),
    pytest.param(setter(PLATFORM, "release_name", "Aiml-Test"), f"{PLATFORM}.release_name",
                 id="name-upper-case"),
    pytest.param(setter(PLATFORM, "release_name", "aiml_test"), f"{PLATFORM}.release_name",
                 id="name-underscore"),
    pytest.param(setter(PLATFORM, "release_name", "-aiml"), f"{PLATFORM}.release_name",
                 id="name-leading-dash"),
    pytest.param(setter(PLATFORM, "release_name", "aiml-"), f"{PLATFORM}.release_name",
                 id="name-trailing-dash"),
    pytest.param(setter(PLATFORM, "release_name", ""), f"{PLATFORM}.release_name",
                 id="name-empty"),
    pytest.param(setter(POOL, "max_node_count", 1), f"{POOL}.max_node_count", id="max-below-desired"),
    pytest.param(setter(POOL, "min_node_count", 3), f"{POOL}.min_node_count", id="min-above-desired"),
    pytest.param(setter(POOL, "volume_size", 0), f"{POOL}.volume_size", id="volume-zero"),
    pytest.param(setter(POOL, "volume_size", -5), f"{POOL}.volume_size", id="volume-negative"),
    pytest.param(setter(PLATFORM, "ai_ml_ops_platform_endpoint_type", "Internet"),
                 f"{PLATFORM}.ai_ml_ops_platform_endpoint_type", id="endpoint-type"),
]


@pytest.mark.parametrize(("change", "path"), BAD_CREATES)
def test_bad_create_mappings_name_the_field(change: Callable[[dict[str, Any]], Any], path: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model = structure_request(mutated(change), CreatePlatformRequest)
        problems = model.problems()
        if problems:
            raise ValidationError(problems)
    error = caught.value
    assert isinstance(error, ValueError) and isinstance(error, AimlopsError)
    assert path in [field for field, _ in error.errors]
    assert path in str(error)
    assert PASSWORD not in str(error) and PASSWORD not in repr(error)


def test_dns_label_of_53_characters_is_fine() -> None:
    data = mutated(setter(PLATFORM, "release_name", "a" + "-b" * 26))
    assert len(data[PLATFORM]["release_name"]) == 53
    assert structure_request(data, CreatePlatformRequest).problems() == []


def test_all_problems_are_reported_together() -> None:
    def change(data: dict[str, Any]) -> None:
        data[POOL]["max_node_count"] = "3"
        data[POOL]["is_auto_scale"] = "no"
        data[PLATFORM]["extra"] = 1

    with pytest.raises(ValidationError) as caught:
        structure_request(mutated(change), CreatePlatformRequest)
    assert {path for path, _ in caught.value.errors} == {
        f"{POOL}.max_node_count", f"{POOL}.is_auto_scale", f"{PLATFORM}.extra"
    }


BAD_UPDATES = [
    pytest.param({}, "ai_ml_ops_platform_endpoint_type", id="empty"),
    pytest.param({"ai_ml_ops_platform_endpoint_type": "Internet"},
                 "ai_ml_ops_platform_endpoint_type", id="endpoint-type"),
    pytest.param({"ai_ml_ops_platform_endpoint_type": "public"},
                 "ai_ml_ops_platform_endpoint_type", id="endpoint-type-case"),
    pytest.param({"ai_ml_ops_platform_domain_service": {"operation_type": "RENAME"}},
                 "ai_ml_ops_platform_domain_service.operation_type", id="operation-type"),
    pytest.param({"ai_ml_ops_platform_domain_service": {"record_name": "x"}},
                 "ai_ml_ops_platform_domain_service.operation_type", id="operation-missing"),
    pytest.param({"ai_ml_ops_platform_domain_service": {"operation_type": "CREATE", "ttl": 5}},
                 "ai_ml_ops_platform_domain_service.ttl", id="unknown-nested-key"),
    pytest.param({"ai_ml_ops_platform_endpoint_type": "Public", "endpoint": "x"}, "endpoint",
                 id="unknown-key"),
    pytest.param({"ai_ml_ops_platform_endpoint_type": 1}, "ai_ml_ops_platform_endpoint_type",
                 id="int-for-str"),
]


@pytest.mark.parametrize(("data", "path"), BAD_UPDATES)
async def test_bad_updates_send_nothing(data: dict[str, Any], path: str) -> None:
    async with WireServer() as server:
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            with pytest.raises(ValidationError) as caught:
                await client.platforms.update("r1", data)
            assert path in [field for field, _ in caught.value.errors]
        assert server.requests == []


async def test_bad_creates_send_nothing() -> None:
    async with WireServer() as server:
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            for param in BAD_CREATES:
                change, path = param.values
                with pytest.raises(ValidationError) as caught:
                    await client.platforms.create(mutated(change))  # type: ignore[operator]
                assert path in str(caught.value), param.id
        assert server.requests == []


async def test_bad_arguments_send_nothing() -> None:
    async with WireServer() as server:
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            calls: list[Callable[[], Any]] = [
                lambda: client.platforms.get(""),
                lambda: client.platforms.get(None),  # type: ignore[arg-type]
                lambda: client.platforms.delete("r1", with_k8s="yes"),  # type: ignore[arg-type]
                lambda: client.platforms.check_duplication(""),
                lambda: client.platforms.update("", {"ai_ml_ops_platform_endpoint_type": "Public"}),
                lambda: client.platforms.create([1, 2]),  # type: ignore[arg-type]
                lambda: client.platforms.create(
                    fixture("create_request.json")[PLATFORM]  # the inner part only
                ),
                lambda: client.clusters.check_version("c1", ""),
                lambda: client.clusters.validate_resources("", "Enterprise"),
                lambda: client.clusters.validate_resources("c1", None),  # type: ignore[arg-type]
                lambda: client.clusters.list_storage_classes(""),
            ]
            for call in calls:
                with pytest.raises(ValidationError):
                    await call()
        assert server.requests == []


async def test_models_with_wrong_types_are_refused_before_sending() -> None:
    """A model built in Python (not from a mapping) gets the same checks as a mapping."""
    pool = NodePoolCreateRequest(
        name="np", desired_node_count=2, image_os="ubuntu", image_os_version="22.04",
        keypair_name="k", kubernetes_version="v1.28.1", server_type_id="s1v16m64",
        volume_size=104, volume_type_name="SSD",
        is_auto_scale="no",  # type: ignore[arg-type]
    )
    platform = structure_request(fixture("create_request.json")[PLATFORM], PlatformCreateRequest)
    k8s = structure_request(fixture("create_request.json")[K8S], KubernetesEngineCreateRequest)
    request = CreatePlatformRequest(
        ai_ml_ops_platform_create_request=platform, kubernetes_engine_create_request=k8s,
        node_pool_create_request=pool,
    )
    async with WireServer() as server:
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            with pytest.raises(ValidationError) as caught:
                await client.platforms.create(request)
            assert f"{POOL}.is_auto_scale" in str(caught.value)
            bad_count = NodePoolCreateRequest(
                name="np", desired_node_count="2",  # type: ignore[arg-type]
                image_os="ubuntu", image_os_version="22.04", keypair_name="k",
                kubernetes_version="v1.28.1", server_type_id="s1v16m64", volume_size=104,
                volume_type_name="SSD",
            )
            with pytest.raises(ValidationError) as caught:
                await client.platforms.create(CreatePlatformRequest(
                    ai_ml_ops_platform_create_request=platform,
                    kubernetes_engine_create_request=k8s, node_pool_create_request=bad_count,
                ))
            assert f"{POOL}.desired_node_count" in str(caught.value)
        assert server.requests == []


async def test_valid_model_and_mapping_send_the_same_body() -> None:
    data = fixture("create_request.json")
    async with WireServer() as server:
        server.default = Reply(201, fixture("create_response.json"))
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            await client.platforms.create(data)
            await client.platforms.create(structure_request(data, CreatePlatformRequest))
        first, second = server.requests
        assert first.json() == second.json() == data


# --------------------------------------------------------------------------- secrets


def test_no_password_in_repr_or_str() -> None:
    model = structure_request(fixture("create_request.json"), CreatePlatformRequest)
    for text in (repr(model), str(model), repr(model.ai_ml_ops_platform_create_request),
                 str(model.ai_ml_ops_platform_create_request)):
        assert PASSWORD not in text
        assert "example@gmail.com" in text or "aiml-test" in text  # still useful for debugging


@pytest.mark.parametrize(
    "password", [PASSWORD[:5], PASSWORD * 7, 12345678, [PASSWORD], {"p": PASSWORD}],
    ids=["short", "long", "number", "array", "object"],
)
def test_no_password_in_validation_errors(password: Any) -> None:
    data = mutated(setter(PLATFORM, "initial_user_password", password))
    with pytest.raises(ValidationError) as caught:
        model = structure_request(data, CreatePlatformRequest)
        raise ValidationError(model.problems())
    text = str(caught.value) + repr(caught.value) + repr(caught.value.errors)
    assert f"{PLATFORM}.initial_user_password" in text
    assert PASSWORD[:5] not in text and "12345678" not in text


async def test_model_holding_a_mapping_is_refused_before_sending() -> None:
    request = CreatePlatformRequest(
        ai_ml_ops_platform_create_request=fixture("create_request.json")[PLATFORM],  # type: ignore[arg-type]
    )
    async with WireServer() as server:
        async with AimlopsClient(server.url, server.credentials, **FAST_RETRIES) as client:
            with pytest.raises(ValidationError) as caught:
                await client.platforms.create(request)
            assert PASSWORD not in str(caught.value)
        assert server.requests == []
