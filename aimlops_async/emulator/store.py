"""Emulator state: projects and keys, clusters, images, platforms, and the lazy state machine."""

from __future__ import annotations

import bisect
import random
import re
import string
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

import attrs

from .validation import Paging, bad_request, not_found

__all__ = [
    "CREATING",
    "DELETING",
    "DEPLOYED",
    "ERROR",
    "FAILED",
    "GONE",
    "IMAGE_SORT_FIELDS",
    "INSTALLING",
    "NODE_SORT_FIELDS",
    "PLATFORM_SORT_FIELDS",
    "UPDATING",
    "Cluster",
    "EmulatorConfig",
    "Platform",
    "Principal",
    "Project",
    "Store",
    "iso_utc",
]

CREATING = "CREATING"
INSTALLING = "INSTALLING"
DEPLOYED = "DEPLOYED"
FAILED = "FAILED"
ERROR = "ERROR"
UPDATING = "UPDATING"
DELETING = "DELETING"
GONE = "GONE"  # internal: the platform no longer exists (404)

RUNNING = "RUNNING"
DELETED = "DELETED"  # internal: the cluster no longer exists

DELETABLE = frozenset({DEPLOYED, FAILED, ERROR})

PLATFORM_SORT_FIELDS = frozenset(
    {
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
)
IMAGE_SORT_FIELDS = frozenset(
    {"created_dt", "modified_dt", "image_id", "image_name", "product_type", "category", "os_type"}
)
NODE_SORT_FIELDS = frozenset({"created_dt", "name", "internal_ip", "status"})

_DASHBOARD = {
    CREATING: "PENDING",
    INSTALLING: "PENDING",
    DEPLOYED: "RUNNING",
    FAILED: "FAILED",
    UPDATING: "RUNNING",
    DELETING: "TERMINATING",
}

_SERVER_TYPE = re.compile(r"v(\d+)m(\d+)")
_KEY_ALPHABET = string.ascii_letters + string.digits

_T = TypeVar("_T")


def _non_negative(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _fraction(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


def _compile_pattern(value: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    if value is None or isinstance(value, re.Pattern):
        return value
    return re.compile(value)


def _positive_int(_: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value!r}")


@attrs.frozen
class EmulatorConfig:
    """The emulator's behaviour, fixed for its lifetime (faults are separate and replaceable)."""

    seed: int = 0
    creating_seconds: float = attrs.field(default=1.0, validator=_non_negative)
    installing_seconds: float = attrs.field(default=1.0, validator=_non_negative)
    updating_seconds: float = attrs.field(default=1.0, validator=_non_negative)
    deleting_seconds: float = attrs.field(default=1.0, validator=_non_negative)
    k8s_seconds: float | None = attrs.field(default=None, validator=_non_negative)
    visibility_lag: float = attrs.field(default=0.0, validator=_non_negative)
    failure_rate: float = attrs.field(default=0.0, validator=_fraction)
    fail_pattern: re.Pattern[str] | None = attrs.field(default=None, converter=_compile_pattern)
    clock_skew: float = 0.0
    page_size_max: int = attrs.field(default=100, validator=_positive_int)
    # What a GET of a release that does not exist answers: 404 (the reference) or 400 (the
    # live service).
    missing_release_status: int = attrs.field(default=404, validator=attrs.validators.in_((404, 400)))
    # Timestamps without a zone (UTC), as the live service may send them.
    zoneless_timestamps: bool = False
    # Image ids in the SCP style (``IMAGE-R=HXHY3ccc9f3TSVtPpPFR``) instead of 32 hex digits.
    scp_image_ids: bool = False
    # Refuse a bad signature as the live API gateway does, with its own 404 page, not a 401.
    gateway_auth_failures: bool = False

    @property
    def cluster_seconds(self) -> float:
        return self.creating_seconds if self.k8s_seconds is None else self.k8s_seconds


def iso_utc(wall: float) -> str:
    """``2024-05-17T00:23:17.123Z``: UTC with milliseconds."""
    moment = datetime.fromtimestamp(wall, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Timeline(Generic[_T]):
    """Values that take effect at given (monotonic) times; ``at(t)`` is the latest one due by t."""

    __slots__ = ("_times", "_values")

    def __init__(self) -> None:
        self._times: list[float] = []
        self._values: list[_T] = []

    def append(self, when: float, value: _T) -> None:
        if self._times and when < self._times[-1]:
            when = self._times[-1]
        self._times.append(when)
        self._values.append(value)

    def at(self, when: float) -> _T | None:
        index = bisect.bisect_right(self._times, when)
        return self._values[index - 1] if index else None

    def last_time(self) -> float:
        return self._times[-1]

    def prune(self, before: float) -> None:
        """Forget entries superseded by one already due at ``before`` (nobody can see them)."""
        index = bisect.bisect_right(self._times, before) - 1
        if index > 0:
            del self._times[:index]
            del self._values[:index]


@attrs.define(eq=False)
class Snapshot:
    """What a platform looks like in one phase: its state, detail JSON and list-item JSON."""

    state: str
    detail: dict[str, Any]
    summary: dict[str, Any]


@attrs.define(eq=False)
class Cluster:
    cluster_id: str
    name: str
    project_id: str
    created_dt: str
    states: Timeline[str]
    nodes: list[dict[str, Any]]
    storage_classes: list[dict[str, Any]]
    owner_release_id: str | None = None
    cpu_total: int = 0

    def state_at(self, when: float) -> str | None:
        state = self.states.at(when)
        return None if state == DELETED else state

    def render_nodes(self, now: float) -> list[dict[str, Any]]:
        ready = "Ready" if self.state_at(now) == RUNNING else "NotReady"
        return [dict(node, status=ready) for node in self.nodes]


@attrs.define(eq=False)
class Platform:
    release_id: str
    release_name: str
    cluster: Cluster
    timeline: Timeline[Snapshot]

    def view(self, when: float) -> Snapshot | None:
        snapshot = self.timeline.at(when)
        if snapshot is None or snapshot.state == GONE:
            return None
        return snapshot


@attrs.define(eq=False)
class Project:
    project_id: str
    project_name: str
    user_id: str
    # The account the project belongs to; when set, a request's Scp-AccountId must match it.
    account_id: str | None = None
    default_cluster_id: str = ""
    clusters: dict[str, Cluster] = attrs.Factory(dict)
    platforms: dict[str, Platform] = attrs.Factory(dict)
    by_name: dict[str, Platform] = attrs.Factory(dict)


@attrs.define(eq=False)
class Principal:
    """One access key: its secret (as bytes, for the HMAC) and the project it acts on."""

    access_key: str
    secret_key: str = attrs.field(repr=False)
    secret_bytes: bytes = attrs.field(repr=False)
    project: Project = attrs.field(repr=False)


_IMAGE_CATALOG = (
    ("v1.7.1", "Enterprise", "2024-03-04T01:12:40Z"),
    ("v1.7.1", "Mini", "2024-03-04T01:13:02Z"),
    ("v1.8.1", "Enterprise", "2024-05-17T00:23:17Z"),
    ("v1.8.1", "Mini", "2024-05-17T00:23:45Z"),
)
_SYSTEM_USER = "00000000000000000000000000000000"


class Store:
    """All server-side state. Single-threaded (event loop), so no locks.

    Platform phases are never driven by tasks: each platform keeps a timeline of snapshots with
    future times, and a read picks the latest one due at ``now - visibility_lag``.
    """

    def __init__(self, config: EmulatorConfig, monotonic: Callable[[], float] = time.monotonic):
        self.config = config
        # Both replaceable: tests drive the state machine with a fake clock.
        self.monotonic = monotonic
        self.wall_clock = time.time
        self._ids = random.Random(config.seed)
        self._failures = random.Random(f"failures-{config.seed}")
        self.principals: dict[str, Principal] = {}
        self.projects: dict[str, Project] = {}
        self.images: list[dict[str, Any]] = []
        self.image_versions: dict[str, str] = {}
        self._images_by_id: dict[str, dict[str, Any]] = {}
        self._seed_images()

    # --- clocks and ids ---------------------------------------------------------------------

    def now(self) -> float:
        return self.monotonic()

    def wall(self) -> float:
        """The server's wall clock (with the configured skew)."""
        return self.wall_clock() + self.config.clock_skew

    def timestamp(self) -> str:
        """Now, as the service writes it: UTC with milliseconds, with or without the ``Z``."""
        stamp = iso_utc(self.wall())
        return stamp.removesuffix("Z") if self.config.zoneless_timestamps else stamp

    def new_id(self) -> str:
        return f"{self._ids.getrandbits(128):032x}"

    def _token(self, length: int) -> str:
        return "".join(self._ids.choice(_KEY_ALPHABET) for _ in range(length))

    # --- projects, keys, images, clusters ---------------------------------------------------

    def add_project(
        self,
        access_key: str | None = None,
        secret_key: str | None = None,
        project_id: str | None = None,
        account_id: str | None = None,
    ) -> Principal:
        project_id = project_id or self.new_id()
        if project_id in self.projects:
            raise ValueError(f"project {project_id!r} already exists")
        access_key = access_key or self._token(20)
        if access_key in self.principals:
            raise ValueError("this access key is already in use")
        secret_key = secret_key or self._token(40)
        project = Project(
            project_id=project_id,
            project_name=f"emulator-project-{len(self.projects) + 1}",
            user_id=self.new_id(),
            account_id=account_id,
        )
        cluster = self._new_cluster(
            project,
            name="k8s-emulator",
            k8s_version="v1.28.1",
            node_pool=("pool-default", 3, "s1v16m64"),
            ready_at=None,
        )
        project.default_cluster_id = cluster.cluster_id
        principal = Principal(access_key, secret_key, secret_key.encode(), project)
        self.projects[project_id] = project
        self.principals[access_key] = principal
        return principal

    def _seed_images(self) -> None:
        for version, product, created in _IMAGE_CATALOG:
            image_id = f"IMAGE-R={self._token(20)}" if self.config.scp_image_ids else self.new_id()
            if self.config.zoneless_timestamps:
                created = created.removesuffix("Z")
            self.image_versions[image_id] = version
            self.images.append(
                image := {
                    "base_image": f"kubeflow/kubeflow:{version}",
                    "category": "AI/ML",
                    "created_by": _SYSTEM_USER,
                    "created_dt": created,
                    "description": f"Kubeflow {version} ({product})",
                    "icon_file": "",
                    "icon_file_name": "kubeflow.png",
                    "image_attr": "",
                    "image_id": image_id,
                    "image_name": f"kubeflow-{version}-{product.lower()}",
                    "modified_by": _SYSTEM_USER,
                    "modified_dt": created,
                    "os_type": "Ubuntu",
                    "product_type": product,
                    "project_id": "",
                }
            )
            self._images_by_id[image_id] = image

    def image(self, image_id: str) -> dict[str, Any] | None:
        return self._images_by_id.get(image_id)

    def list_images(
        self, project: Project, image_name: str | None, paging: Paging
    ) -> tuple[list[dict[str, Any]], int]:
        items = [
            dict(image, project_id=project.project_id)
            for image in self.images
            if not image_name or image_name in image["image_name"]
        ]
        return _page(items, paging, "image_id")

    def _new_cluster(
        self,
        project: Project,
        *,
        name: str,
        k8s_version: str,
        node_pool: tuple[str, int, str],
        ready_at: float | None,
        owner_release_id: str | None = None,
    ) -> Cluster:
        cluster_id = self.new_id()
        created_dt = self.timestamp()
        states: Timeline[str] = Timeline()
        if ready_at is None:
            states.append(float("-inf"), RUNNING)
        else:
            states.append(self.now(), CREATING)
            states.append(ready_at, RUNNING)
        pool_name, count, server_type = node_pool
        cpu, memory = _server_size(server_type)
        subnet = f"{len(self.projects) % 256}.{len(project.clusters) % 256}"
        nodes = [
            {
                "name": f"{name}-{pool_name}-{self._ids.getrandbits(20):05x}",
                "status": "Ready",
                "roles": ["worker"],
                "internal_ip": f"10.{subnet}.{11 + index}",
                "os_image": "Ubuntu 22.04.4 LTS",
                "kernel_version": "5.15.0-105-generic",
                "kubelet_version": k8s_version,
                "container_runtime_version": "containerd://1.7.13",
                "cpu": str(cpu),
                "memory": f"{memory}Gi",
                "gpu": "0",
                "created_dt": created_dt,
            }
            for index in range(count)
        ]
        storage_classes = [
            {
                "name": "block-storage",
                "provisioner": "bs.csi.samsungsdscloud.com",
                "reclaim_policy": "Delete",
                "volume_binding_mode": "WaitForFirstConsumer",
                "allow_volume_expansion": True,
                "is_default": True,
                "created_dt": created_dt,
            },
            {
                "name": "file-storage",
                "provisioner": "nfs.csi.k8s.io",
                "reclaim_policy": "Retain",
                "volume_binding_mode": "Immediate",
                "allow_volume_expansion": True,
                "is_default": False,
                "created_dt": created_dt,
            },
        ]
        cluster = Cluster(
            cluster_id=cluster_id,
            name=name,
            project_id=project.project_id,
            created_dt=created_dt,
            states=states,
            nodes=nodes,
            storage_classes=storage_classes,
            owner_release_id=owner_release_id,
            cpu_total=cpu * count,
        )
        project.clusters[cluster_id] = cluster
        return cluster

    def cluster(self, project: Project, cluster_id: str, field: str = "cluster_id") -> Cluster:
        cluster = project.clusters.get(cluster_id)
        if cluster is None or cluster.state_at(self.now()) is None:
            raise not_found(f"cluster {cluster_id!r} was not found", field, "CLUSTER_NOT_FOUND")
        return cluster

    def list_nodes(
        self, project: Project, cluster_id: str, paging: Paging
    ) -> tuple[list[dict[str, Any]], int]:
        cluster = self.cluster(project, cluster_id)
        return _page(cluster.render_nodes(self.now()), paging, "name")

    def namespaces_free(self, project: Project, cluster_id: str) -> bool:
        self.cluster(project, cluster_id)
        now = self.now()
        return not any(
            platform.cluster.cluster_id == cluster_id and platform.view(now) is not None
            for platform in project.platforms.values()
        )

    # --- platforms: writes ------------------------------------------------------------------

    def _live(self, project: Project, release_id: str) -> tuple[Platform, Snapshot]:
        """The platform and its current (un-lagged) snapshot, or 404."""
        platform = project.platforms.get(release_id)
        snapshot = platform.view(self.now()) if platform is not None else None
        if platform is None or snapshot is None:
            raise not_found(
                f"platform {release_id!r} was not found", "release_id", "RELEASE_NOT_FOUND"
            )
        return platform, snapshot

    def name_taken(self, project: Project, release_name: str) -> bool:
        platform = project.by_name.get(release_name)
        if platform is None:
            return False
        if platform.view(self.now()) is not None:
            return True
        self._maybe_collect(project, platform)
        return False

    def create_platform(self, principal: Principal, body: Mapping[str, Any]) -> str:
        """Start a create from a validated body; return the new release id."""
        project = principal.project
        request: Mapping[str, Any] = body["ai_ml_ops_platform_create_request"]
        k8s: Mapping[str, Any] | None = body.get("kubernetes_engine_create_request")
        release_name: str = request["release_name"]
        if self.name_taken(project, release_name):
            raise bad_request(
                f"a platform named {release_name!r} already exists in this project",
                "ai_ml_ops_platform_create_request.release_name",
                "DUPLICATE_RELEASE_NAME",
            )
        existing = None
        if k8s is None:
            field = "ai_ml_ops_platform_create_request.cluster_id"
            existing = self.cluster(project, request["cluster_id"], field)
        image = self.image(request["image_id"])
        if image is None:
            raise not_found(
                f"image {request['image_id']!r} was not found",
                "ai_ml_ops_platform_create_request.image_id",
                "IMAGE_NOT_FOUND",
            )
        release_id = self.new_id()
        cluster = existing or self._engine_for(
            project, release_id, k8s or {}, body.get("node_pool_create_request")
        )
        detail = self._initial_detail(project, release_id, request, cluster, image)
        platform = Platform(release_id, release_name, cluster, Timeline())
        self._schedule_create(platform, detail, failed=self._decide_failure(release_name))
        project.platforms[release_id] = platform
        project.by_name[release_name] = platform
        return release_id

    def _engine_for(
        self,
        project: Project,
        release_id: str,
        k8s: Mapping[str, Any],
        pool: Mapping[str, Any] | None,
    ) -> Cluster:
        """The new Kubernetes engine a create asked for, CREATING for ``k8s_seconds``."""
        node_pool = (
            (pool["name"], min(pool["desired_node_count"], 50), pool["server_type_id"])
            if pool is not None
            else ("pool-default", 2, "s1v8m32")
        )
        return self._new_cluster(
            project,
            name=k8s["kubernetes_engine_name"],
            k8s_version=k8s["k8s_version"],
            node_pool=node_pool,
            ready_at=self.now() + self.config.cluster_seconds,
            owner_release_id=release_id,
        )

    def _initial_detail(
        self,
        project: Project,
        release_id: str,
        request: Mapping[str, Any],
        cluster: Cluster,
        image: Mapping[str, Any],
    ) -> dict[str, Any]:
        created_dt = self.timestamp()
        return {
            "ai_ml_ops_platform_domain_service": "",
            "ai_ml_ops_platform_endpoint_ip_address": "",
            "ai_ml_ops_platform_endpoint_port": "",
            "ai_ml_ops_platform_endpoint_type": request.get("ai_ml_ops_platform_endpoint_type")
            or "",
            "ai_ml_ops_platform_type": request["ai_ml_ops_platform_type"],
            "cluster_id": cluster.cluster_id,
            "cluster_name": cluster.name,
            "cluster_state": "",  # filled in when read: it depends on the cluster's timeline
            "created_by": project.user_id,
            "created_dt": created_dt,
            "dashboard_state": "",
            "image_id": image["image_id"],
            "image_name": image["image_name"],
            "initial_user_email": request["initial_user_email"],
            "modified_by": project.user_id,
            "modified_dt": created_dt,
            "project_id": project.project_id,
            "project_name": project.project_name,
            "release_id": release_id,
            "release_name": request["release_name"],
            "release_state": "",
            "storage_class_name": request.get("storage_class_name")
            or _default_storage_class(cluster),
            "version": self.image_versions[image["image_id"]],
        }

    def _schedule_create(self, platform: Platform, detail: dict[str, Any], *, failed: bool) -> None:
        """CREATING now, INSTALLING after creating_seconds, then DEPLOYED or FAILED."""
        now, config = self.now(), self.config
        installing_at = now + config.creating_seconds
        final = FAILED if failed else DEPLOYED
        endpoint = _endpoint_fields(
            platform.release_id, detail["ai_ml_ops_platform_endpoint_type"], final
        )
        platform.timeline.append(now, _snapshot(CREATING, detail))
        platform.timeline.append(installing_at, _snapshot(INSTALLING, detail))
        platform.timeline.append(
            installing_at + config.installing_seconds, _snapshot(final, detail, **endpoint)
        )

    def _decide_failure(self, release_name: str) -> bool:
        pattern = self.config.fail_pattern
        if pattern is not None and pattern.search(release_name):
            return True
        rate = self.config.failure_rate
        return rate > 0 and self._failures.random() < rate

    def update_platform(self, principal: Principal, release_id: str, body: Mapping[str, Any]) -> None:
        platform, current = self._live(principal.project, release_id)
        if current.state != DEPLOYED:
            raise bad_request(
                f"the platform is {current.state}; only a DEPLOYED platform can be updated",
                "release_state",
                "INVALID_STATE",
            )
        now = self.now()
        changes: dict[str, Any] = {
            "modified_dt": self.timestamp(),
            "modified_by": principal.project.user_id,
        }
        endpoint_type = body.get("ai_ml_ops_platform_endpoint_type")
        if endpoint_type is not None:
            changes["ai_ml_ops_platform_endpoint_type"] = endpoint_type
            changes.update(_endpoint_fields(release_id, endpoint_type, DEPLOYED))
        domain = body.get("ai_ml_ops_platform_domain_service")
        if domain is not None:
            keep = domain["operation_type"] != "DELETE"
            changes["ai_ml_ops_platform_domain_service"] = (
                (domain.get("domain_service_name") or "") if keep else ""
            )
        detail = current.detail
        platform.timeline.prune(now - self.config.visibility_lag)
        platform.timeline.append(now, _snapshot(UPDATING, detail, **changes))
        platform.timeline.append(
            now + self.config.updating_seconds, _snapshot(DEPLOYED, detail, **changes)
        )

    def delete_platform(self, principal: Principal, release_id: str, with_k8s: bool) -> None:
        platform, current = self._live(principal.project, release_id)
        if current.state not in DELETABLE:
            raise bad_request(
                f"the platform is {current.state}; only a DEPLOYED, FAILED or ERROR platform "
                "can be deleted",
                "release_state",
                "INVALID_STATE",
            )
        now = self.now()
        gone_at = now + self.config.deleting_seconds
        changes = {"modified_dt": self.timestamp(), "modified_by": principal.project.user_id}
        platform.timeline.prune(now - self.config.visibility_lag)
        platform.timeline.append(now, _snapshot(DELETING, current.detail, **changes))
        platform.timeline.append(gone_at, Snapshot(GONE, current.detail, current.summary))
        cluster = platform.cluster
        if with_k8s and cluster.owner_release_id == release_id:
            cluster.states.append(now, DELETING)
            cluster.states.append(gone_at, DELETED)

    # --- platforms: reads -------------------------------------------------------------------

    def _render(self, platform: Platform, snapshot: Snapshot, when: float) -> dict[str, Any]:
        detail = dict(snapshot.detail)
        detail["cluster_state"] = platform.cluster.states.at(when) or CREATING
        if detail["cluster_state"] == DELETED:
            detail["cluster_state"] = DELETING
        return detail

    def get_platform(self, project: Project, release_id: str) -> dict[str, Any]:
        """The detail a GET sees (lagged), or 404."""
        platform = project.platforms.get(release_id)
        view_time = self.now() - self.config.visibility_lag
        snapshot = platform.view(view_time) if platform is not None else None
        if platform is None or snapshot is None:
            if platform is not None:
                self._maybe_collect(project, platform)
            if self.config.missing_release_status == 400:
                raise bad_request(f"platform {release_id!r} does not exist", "release_id", "BAD_REQUEST")
            raise not_found(
                f"platform {release_id!r} was not found", "release_id", "RELEASE_NOT_FOUND"
            )
        return self._render(platform, snapshot, view_time)

    def list_platforms(
        self, project: Project, filters: Mapping[str, str], paging: Paging
    ) -> tuple[list[dict[str, Any]], int]:
        view_time = self.now() - self.config.visibility_lag
        substring = [(key, filters[key]) for key in _SUBSTRING_FILTERS if filters.get(key)]
        exact = [(key, filters[key]) for key in _EXACT_FILTERS if filters.get(key)]
        items: list[dict[str, Any]] = []
        finished: list[Platform] = []
        for platform in project.platforms.values():
            snapshot = platform.view(view_time)
            if snapshot is None:
                finished.append(platform)
                continue
            item = snapshot.summary
            if all(value in item[key] for key, value in substring) and all(
                item[key] == value for key, value in exact
            ):
                items.append(item)
        for platform in finished:
            self._maybe_collect(project, platform)
        return _page(items, paging, "release_id")

    def true_platforms(self, project: Project) -> list[dict[str, Any]]:
        """Current (un-lagged) details of the project's live platforms, oldest first."""
        now = self.now()
        result = []
        for platform in project.platforms.values():
            snapshot = platform.view(now)
            if snapshot is not None:
                result.append(self._render(platform, snapshot, now))
        return result

    # --- garbage collection -----------------------------------------------------------------

    def _maybe_collect(self, project: Project, platform: Platform) -> None:
        """Drop a platform once it is gone both in truth and for lagged readers."""
        now = self.now()
        if now - self.config.visibility_lag < platform.timeline.last_time():
            return  # not gone yet, or lagged readers still see it
        last = platform.timeline.at(now)
        if last is None or last.state != GONE:
            return
        project.platforms.pop(platform.release_id, None)
        if project.by_name.get(platform.release_name) is platform:
            del project.by_name[platform.release_name]
        cluster = platform.cluster
        if cluster.state_at(now) is None:
            project.clusters.pop(cluster.cluster_id, None)


_SUBSTRING_FILTERS = ("release_name", "cluster_name", "created_by")
_EXACT_FILTERS = ("version", "kubeflow_type", "status")


def _page(
    items: list[dict[str, Any]], paging: Paging, tie_key: str
) -> tuple[list[dict[str, Any]], int]:
    field = paging.sort_field
    items.sort(key=lambda item: (str(item.get(field, "")), item[tie_key]), reverse=paging.descending)
    return items[paging.window(len(items))], len(items)


def _snapshot(state: str, base: Mapping[str, Any], **changes: Any) -> Snapshot:
    detail = dict(base)
    detail.update(changes)
    detail["release_state"] = state
    detail["dashboard_state"] = _DASHBOARD.get(state, state)
    summary = {
        "cluster_id": detail["cluster_id"],
        "cluster_name": detail["cluster_name"],
        "created_by": detail["created_by"],
        "created_dt": detail["created_dt"],
        "kubeflow_type": detail["ai_ml_ops_platform_type"],
        "modified_by": detail["modified_by"],
        "modified_dt": detail["modified_dt"],
        "release_id": detail["release_id"],
        "release_name": detail["release_name"],
        "status": state,
        "version": detail["version"],
    }
    return Snapshot(state, detail, summary)


def _endpoint_fields(release_id: str, endpoint_type: str, state: str) -> dict[str, str]:
    if state != DEPLOYED:
        return {"ai_ml_ops_platform_endpoint_ip_address": "", "ai_ml_ops_platform_endpoint_port": ""}
    octets = bytes.fromhex(release_id[:6])
    if endpoint_type == "Public":
        address = f"198.51.100.{octets[0] % 254 + 1}"
    else:
        address = f"10.{octets[0]}.{octets[1]}.{octets[2] % 254 + 1}"
    return {
        "ai_ml_ops_platform_endpoint_ip_address": address,
        "ai_ml_ops_platform_endpoint_port": "443",
    }


def _server_size(server_type: str) -> tuple[int, int]:
    """CPUs and GiB of memory from an SCP server type id such as ``s1v16m64``."""
    match = _SERVER_TYPE.search(server_type)
    if match is None:
        return 4, 16
    return max(int(match.group(1)), 1), max(int(match.group(2)), 1)


def _default_storage_class(cluster: Cluster) -> str:
    for storage_class in cluster.storage_classes:
        if storage_class["is_default"]:
            name: str = storage_class["name"]
            return name
    return ""
