"""Attrs models for every schema of the AI&MLOps Platform API 1.0, the state enums, and request checks.

Attribute names are the API's JSON field names. Response models are tolerant: every field is
optional (``None`` when the server leaves it out) but those a model lists in ``required_fields``
(without them the answer is malformed), and unknown fields are ignored by the converter.
Request models are strict: ``validate()`` lists every problem with its full field path.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

import attrs

__all__ = [
    "AiMLOpsPlatformCreateRequest",
    "AiMlOpsPlatformCreateWithK8sEngineRequest",
    "AiMlOpsPlatformDetailResponse",
    "AiMlOpsPlatformDomainServiceReuqest",
    "AiMlOpsPlatformImagesListResponse",
    "AiMlOpsPlatformImagesResponse",
    "AiMlOpsPlatformUpdateRequest",
    "AiMlOpsPlatformsListResponse",
    "AsyncResponse",
    "CheckResponse",
    "ClusterState",
    "CreatePlatformRequest",
    "DomainOperationType",
    "DomainServiceRequest",
    "EndpointType",
    "Image",
    "ImageListPage",
    "KubeflowResponse",
    "KubernetesEngineCreateRequest",
    "ListNodeResponse",
    "ListStorageClassResponse",
    "Node",
    "NodeListPage",
    "NodePoolCreateRequest",
    "NodeResponse",
    "PlatformCreateRequest",
    "PlatformDetail",
    "PlatformListPage",
    "PlatformSummary",
    "PlatformType",
    "ReleaseState",
    "StorageClass",
    "StorageClassList",
    "StorageClassResponse",
    "UpdatePlatformRequest",
]


class _TolerantStrEnum(str, Enum):
    """A string enum that equals its API string and accepts values it does not know.

    An unknown value becomes a pseudo-member (not added to the class) so a new state introduced
    by the service never breaks parsing; it still compares equal to its string.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return member

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    @property
    def is_known(self) -> bool:
        """False for a value this version of the library does not know."""
        return self._value_ in type(self)._value2member_map_


class ReleaseState(_TolerantStrEnum):
    """``release_state`` of a platform (``status`` in list items)."""

    CREATING = "CREATING"
    INSTALLING = "INSTALLING"
    DEPLOYED = "DEPLOYED"
    UPDATING = "UPDATING"
    DELETING = "DELETING"
    FAILED = "FAILED"
    ERROR = "ERROR"


class ClusterState(_TolerantStrEnum):
    """``cluster_state`` of the Kubernetes cluster a platform runs on."""

    CREATING = "CREATING"
    RUNNING = "RUNNING"
    UPDATING = "UPDATING"
    DELETING = "DELETING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    ERROR = "ERROR"


class PlatformType(_TolerantStrEnum):
    """``ai_ml_ops_platform_type`` / ``kubeflow_type`` / ``product_type``."""

    ENTERPRISE = "Enterprise"
    MINI = "Mini"


class EndpointType(_TolerantStrEnum):
    """``ai_ml_ops_platform_endpoint_type``."""

    PUBLIC = "Public"
    PRIVATE = "Private"


class DomainOperationType(_TolerantStrEnum):
    """``operation_type`` of a domain service change."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


# --------------------------------------------------------------------------- requests

RELEASE_NAME_MAX_LENGTH = 53
_DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# RFC 5321: a forward or reverse path holds at most 256 octets, so an address at most 254.
EMAIL_MAX_LENGTH = 254
_PASSWORD_LENGTH = (8, 64)
_ENDPOINT_TYPES = ("Public", "Private")
_OPERATION_TYPES = tuple(str(member) for member in DomainOperationType)

Problems = list[tuple[str, str]]


def email_address_problem(address: str) -> str | None:
    """Why ``address`` is not an e-mail address, or None; in linear time, length checked first.

    The shape: one ``@``, something before it, and a domain with a dot inside it; no whitespace.
    """
    if len(address) > EMAIL_MAX_LENGTH:
        return f"must be an e-mail address of at most {EMAIL_MAX_LENGTH} characters, got {len(address)}"
    local, _, domain = address.partition("@")
    if (
        not local
        or "@" in domain
        or "." not in domain[1:-1]
        or any(char.isspace() for char in address)
    ):
        return "must be an e-mail address"
    return None


def release_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid release name (a DNS-1123 label of at most 53 characters), or None."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not name:
        return "must not be empty"
    if len(name) > RELEASE_NAME_MAX_LENGTH:
        return f"must be at most {RELEASE_NAME_MAX_LENGTH} characters, got {len(name)}"
    if not _DNS_1123_LABEL.fullmatch(name):
        return (
            "must be a DNS-1123 label: lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit, got {name!r}"
        )
    return None


def _required_text(problems: Problems, path: str, value: str) -> None:
    if not value:
        problems.append((path, "is required and must not be empty"))


def _one_of(problems: Problems, path: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value and value not in allowed:
        problems.append((path, f"must be one of {', '.join(allowed)}, got {value!r}"))


@attrs.frozen(kw_only=True, repr=False)
class PlatformCreateRequest:
    """``AiMLOpsPlatformCreateRequest``: the platform part of a create call."""

    release_name: str
    ai_ml_ops_platform_type: str
    image_id: str
    initial_user_email: str
    initial_user_password: str
    cluster_id: str | None = None
    ai_ml_ops_platform_endpoint_type: str | None = None
    storage_class_name: str | None = None
    tags: list[dict[str, str]] | None = None

    def __repr__(self) -> str:
        # Written by hand so the initial password never reaches a log line or a traceback.
        return (
            f"PlatformCreateRequest(release_name={self.release_name!r}, "
            f"ai_ml_ops_platform_type={self.ai_ml_ops_platform_type!r}, image_id={self.image_id!r}, "
            f"cluster_id={self.cluster_id!r}, initial_user_email={self.initial_user_email!r}, "
            "initial_user_password='***')"
        )

    def problems(self, path: str) -> Problems:
        found: Problems = []
        name_problem = release_name_problem(self.release_name)
        if name_problem:
            found.append((f"{path}.release_name", name_problem))
        _required_text(found, f"{path}.ai_ml_ops_platform_type", self.ai_ml_ops_platform_type)
        _required_text(found, f"{path}.image_id", self.image_id)
        email_problem = email_address_problem(self.initial_user_email)
        if email_problem:
            found.append((f"{path}.initial_user_email", email_problem))
        low, high = _PASSWORD_LENGTH
        if not low <= len(self.initial_user_password) <= high:
            # Never echo the password itself.
            found.append(
                (f"{path}.initial_user_password", f"must be {low} to {high} characters long")
            )
        _one_of(
            found, f"{path}.ai_ml_ops_platform_endpoint_type",
            self.ai_ml_ops_platform_endpoint_type, _ENDPOINT_TYPES,
        )
        return found


@attrs.frozen(kw_only=True)
class KubernetesEngineCreateRequest:
    """``KubernetesEngineCreateRequest``: a new Kubernetes engine to install the platform on."""

    k8s_version: str
    kubernetes_engine_name: str
    security_group_id_list: list[str]
    subnet_id: str
    volume_id: str
    vpc_id: str
    cifs_volume_id: str | None = None
    cloud_logging_enabled: bool | None = None
    lb_id: str | None = None
    private_acl_ip_resource: list[str] | None = None
    public_acl_ip_address: str | None = None

    def problems(self, path: str) -> Problems:
        found: Problems = []
        for name in ("k8s_version", "kubernetes_engine_name", "subnet_id", "volume_id", "vpc_id"):
            _required_text(found, f"{path}.{name}", getattr(self, name))
        return found


@attrs.frozen(kw_only=True)
class NodePoolCreateRequest:
    """``NodePoolCreateRequest``: the node pool of a new Kubernetes engine."""

    name: str
    desired_node_count: int
    image_os: str
    image_os_version: str
    keypair_name: str
    kubernetes_version: str
    server_type_id: str
    volume_size: int
    volume_type_name: str
    cluster_id: str | None = None
    is_auto_recovery: bool | None = None
    is_auto_scale: bool | None = None
    max_node_count: int | None = None
    min_node_count: int | None = None

    def problems(self, path: str) -> Problems:
        found: Problems = []
        for name in (
            "name", "image_os", "image_os_version", "keypair_name", "kubernetes_version",
            "server_type_id", "volume_type_name",
        ):
            _required_text(found, f"{path}.{name}", getattr(self, name))
        if self.desired_node_count < 1:
            found.append((f"{path}.desired_node_count", "must be at least 1"))
        if self.volume_size <= 0:
            found.append((f"{path}.volume_size", f"must be positive, got {self.volume_size}"))
        for name in ("min_node_count", "max_node_count"):
            value = getattr(self, name)
            if value is not None and value < 0:
                found.append((f"{path}.{name}", f"must not be negative, got {value}"))
        if self.min_node_count is not None and self.min_node_count > self.desired_node_count:
            found.append((
                f"{path}.min_node_count",
                f"must be <= desired_node_count ({self.desired_node_count}), "
                f"got {self.min_node_count}",
            ))
        if self.max_node_count is not None and self.max_node_count < self.desired_node_count:
            found.append((
                f"{path}.max_node_count",
                f"must be >= desired_node_count ({self.desired_node_count}), "
                f"got {self.max_node_count}",
            ))
        return found


@attrs.frozen(kw_only=True)
class CreatePlatformRequest:
    """``AiMlOpsPlatformCreateWithK8sEngineRequest``: the body of ``POST /v1/aimlops-platform``."""

    ai_ml_ops_platform_create_request: PlatformCreateRequest
    kubernetes_engine_create_request: KubernetesEngineCreateRequest | None = None
    node_pool_create_request: NodePoolCreateRequest | None = None

    @property
    def release_name(self) -> str:
        return self.ai_ml_ops_platform_create_request.release_name

    def problems(self) -> Problems:
        """Every problem found, as ``(field path, message)`` pairs; empty when the request is valid."""
        platform = self.ai_ml_ops_platform_create_request
        found = platform.problems("ai_ml_ops_platform_create_request")
        if self.kubernetes_engine_create_request is not None:
            found += self.kubernetes_engine_create_request.problems(
                "kubernetes_engine_create_request"
            )
        elif not platform.cluster_id:
            found.append((
                "ai_ml_ops_platform_create_request.cluster_id",
                "is required unless kubernetes_engine_create_request creates a new cluster",
            ))
        if self.node_pool_create_request is not None:
            found += self.node_pool_create_request.problems("node_pool_create_request")
        return found


@attrs.frozen(kw_only=True)
class DomainServiceRequest:
    """``AiMlOpsPlatformDomainServiceReuqest`` (sic): a domain service change in an update."""

    operation_type: str
    dns_id: str | None = None
    domain_service_name: str | None = None
    ip: str | None = None
    record_id: str | None = None
    record_name: str | None = None

    def problems(self, path: str) -> Problems:
        found: Problems = []
        if self.operation_type not in _OPERATION_TYPES:
            found.append((
                f"{path}.operation_type",
                f"must be one of {', '.join(_OPERATION_TYPES)}, got {self.operation_type!r}",
            ))
        return found


@attrs.frozen(kw_only=True)
class UpdatePlatformRequest:
    """``AiMlOpsPlatformUpdateRequest``: the body of ``PUT /v1/aimlops-platform/{release_id}``."""

    ai_ml_ops_platform_domain_service: DomainServiceRequest | None = None
    ai_ml_ops_platform_endpoint_type: str | None = None

    def problems(self) -> Problems:
        """Every problem found, as ``(field path, message)`` pairs; empty when the request is valid."""
        found: Problems = []
        if self.ai_ml_ops_platform_domain_service is None and not self.ai_ml_ops_platform_endpoint_type:
            found.append((
                "ai_ml_ops_platform_endpoint_type",
                "an update needs ai_ml_ops_platform_endpoint_type or "
                "ai_ml_ops_platform_domain_service",
            ))
        if self.ai_ml_ops_platform_domain_service is not None:
            found += self.ai_ml_ops_platform_domain_service.problems(
                "ai_ml_ops_platform_domain_service"
            )
        endpoint_type = self.ai_ml_ops_platform_endpoint_type
        if endpoint_type is not None and endpoint_type not in _ENDPOINT_TYPES:
            found.append((
                "ai_ml_ops_platform_endpoint_type",
                f"must be one of {', '.join(_ENDPOINT_TYPES)}, got {endpoint_type!r}",
            ))
        return found


# --------------------------------------------------------------------------- responses


@attrs.frozen(kw_only=True)
class AsyncResponse:
    """``AsyncResponse``: what create and update answer; ``resource_id`` is the release id."""

    project_id: str | None = None
    request_id: str | None = None
    resource_id: str | None = None


@attrs.frozen(kw_only=True)
class CheckResponse:
    """``CheckResponse``: the answer of the check and validate endpoints.

    ``result`` is a bool when the service answers a boolean (or ``"true"``/``"false"``), otherwise
    the text it sent.
    """

    # Without these an answer is not this model: it is a malformed answer.
    required_fields: ClassVar[tuple[str, ...]] = ("result",)

    result: bool | str | None = None

    def __bool__(self) -> bool:
        return self.result is True


@attrs.frozen(kw_only=True)
class PlatformDetail:
    """``AiMlOpsPlatformDetailResponse``: one platform, as ``GET /v1/aimlops-platform/{release_id}``."""

    # Without these an answer is not this model: it is a malformed answer.
    required_fields: ClassVar[tuple[str, ...]] = ("release_id",)

    ai_ml_ops_platform_domain_service: Any = None
    ai_ml_ops_platform_endpoint_ip_address: str | None = None
    ai_ml_ops_platform_endpoint_port: str | None = None
    ai_ml_ops_platform_endpoint_type: EndpointType | None = None
    ai_ml_ops_platform_type: PlatformType | None = None
    cluster_id: str | None = None
    cluster_name: str | None = None
    cluster_state: ClusterState | None = None
    created_by: str | None = None
    created_dt: datetime | None = None
    dashboard_state: str | None = None
    image_id: str | None = None
    image_name: str | None = None
    initial_user_email: str | None = None
    modified_by: str | None = None
    modified_dt: datetime | None = None
    project_id: str | None = None
    project_name: str | None = None
    release_id: str | None = None
    release_name: str | None = None
    release_state: ReleaseState | None = None
    storage_class_name: str | None = None
    version: str | None = None


@attrs.frozen(kw_only=True)
class PlatformSummary:
    """``KubeflowResponse``: one platform in a list page."""

    cluster_id: str | None = None
    cluster_name: str | None = None
    created_by: str | None = None
    created_dt: datetime | None = None
    kubeflow_type: PlatformType | None = None
    modified_by: str | None = None
    modified_dt: datetime | None = None
    release_id: str | None = None
    release_name: str | None = None
    status: ReleaseState | None = None
    version: str | None = None


@attrs.frozen(kw_only=True)
class PlatformListPage:
    """``AiMlOpsPlatformsListResponse``: one page of platforms."""

    # Without these an answer is not this model: it is a malformed answer.
    required_fields: ClassVar[tuple[str, ...]] = ("contents",)

    contents: list[PlatformSummary] | None = None
    total_count: int | None = None


@attrs.frozen(kw_only=True)
class Image:
    """``AiMlOpsPlatformImagesResponse``: one platform image."""

    base_image: str | None = None
    category: str | None = None
    created_by: str | None = None
    created_dt: datetime | None = None
    description: str | None = None
    icon_file: str | None = None
    icon_file_name: str | None = None
    image_attr: str | None = None
    image_id: str | None = None
    image_name: str | None = None
    modified_by: str | None = None
    modified_dt: datetime | None = None
    os_type: str | None = None
    product_type: PlatformType | None = None
    project_id: str | None = None


@attrs.frozen(kw_only=True)
class ImageListPage:
    """``AiMlOpsPlatformImagesListResponse``: one page of images."""

    # Without these an answer is not this model: it is a malformed answer.
    required_fields: ClassVar[tuple[str, ...]] = ("contents",)

    contents: list[Image] | None = None
    total_count: int | None = None


@attrs.frozen(kw_only=True)
class Node:
    """``NodeResponse``: a Kubernetes node of a cluster, with what Kubernetes reports for it."""

    name: str | None = None
    status: str | None = None
    roles: list[str] | None = None
    internal_ip: str | None = None
    os_image: str | None = None
    kernel_version: str | None = None
    kubelet_version: str | None = None
    container_runtime_version: str | None = None
    cpu: str | None = None
    memory: str | None = None
    gpu: str | None = None
    created_dt: datetime | None = None


@attrs.frozen(kw_only=True)
class NodeListPage:
    """``ListNodeResponse``: one page of nodes; ``count`` is the total number of nodes."""

    # Without these an answer is not this model: it is a malformed answer.
    required_fields: ClassVar[tuple[str, ...]] = ("nodes",)

    count: int | None = None
    links: list[Any] | None = None
    nodes: list[Node] | None = None

    # Every page model a pager yields answers to contents and total_count (CONTRACT section 2).
    @property
    def contents(self) -> list[Node] | None:
        """The nodes of this page (the same list as ``nodes``)."""
        return self.nodes

    @property
    def total_count(self) -> int | None:
        """The total number of nodes (``count``)."""
        return self.count


@attrs.frozen(kw_only=True)
class StorageClass:
    """``StorageClassResponse``: a Kubernetes storage class of a cluster."""

    name: str | None = None
    provisioner: str | None = None
    reclaim_policy: str | None = None
    volume_binding_mode: str | None = None
    allow_volume_expansion: bool | None = None
    is_default: bool | None = None
    created_dt: datetime | None = None


@attrs.frozen(kw_only=True)
class StorageClassList:
    """``ListStorageClassResponse``: the storage classes of a cluster."""

    # Without these an answer is not this model: it is a malformed answer.
    required_fields: ClassVar[tuple[str, ...]] = ("storage_classes",)

    count: int | None = None
    links: list[Any] | None = None
    storage_classes: list[StorageClass] | None = None


# The reference's schema names, for readers who come from the API documentation.
AiMLOpsPlatformCreateRequest = PlatformCreateRequest
AiMlOpsPlatformCreateWithK8sEngineRequest = CreatePlatformRequest
AiMlOpsPlatformDetailResponse = PlatformDetail
AiMlOpsPlatformDomainServiceReuqest = DomainServiceRequest
AiMlOpsPlatformImagesListResponse = ImageListPage
AiMlOpsPlatformImagesResponse = Image
AiMlOpsPlatformsListResponse = PlatformListPage
AiMlOpsPlatformUpdateRequest = UpdatePlatformRequest
KubeflowResponse = PlatformSummary
ListNodeResponse = NodeListPage
ListStorageClassResponse = StorageClassList
NodeResponse = Node
StorageClassResponse = StorageClass
