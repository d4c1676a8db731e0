"""Request validation for the emulator: body schemas, query parameters, and the ApiError they raise."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import attrs

__all__ = [
    "CREATE_SCHEMA",
    "UPDATE_SCHEMA",
    "ApiError",
    "Paging",
    "bad_request",
    "not_found",
    "parse_json_object",
    "parse_paging",
    "parse_with_k8s",
    "required_query",
    "validate_create",
    "validate_update",
]

RELEASE_NAME_MAX = 53
_RELEASE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# RFC 5321: at most 254 characters; checked before the shape, which is checked in linear time.
EMAIL_MAX = 254
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_SORT = re.compile(r"([A-Za-z_]+)(?::([A-Za-z]+))?")


class ApiError(Exception):
    """An error answer: HTTP status, a code, the detail text and (optionally) the field it names.

    ``body()`` is the live service's envelope ``{"errors": [{"code", "title", "detail": [...],
    "status", "request_id"}]}``.
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self, request_id: str = "") -> dict[str, Any]:
        detail = f"{self.field}: {self.message}" if self.field else self.message
        try:
            title = HTTPStatus(self.status).phrase
        except ValueError:
            title = "Error"
        error = {
            "code": self.code, "title": title, "detail": [detail], "status": str(self.status),
            "request_id": request_id,
        }
        return {"errors": [error]}


def bad_request(message: str, field: str | None = None, code: str = "VALIDATION_ERROR") -> ApiError:
    return ApiError(400, code, message, field)


def not_found(message: str, field: str | None = None, code: str = "NOT_FOUND") -> ApiError:
    return ApiError(404, code, message, field)


# --- body schemas -------------------------------------------------------------------------------


@attrs.frozen
class Spec:
    """What one JSON field must look like. ``kind``: str, int, bool, str_list, object, tags."""

    kind: str
    required: bool = False
    non_empty: bool = False
    choices: tuple[str, ...] | None = None
    pattern: re.Pattern[str] | None = None
    # A linear-time shape check, for shapes a regular expression would match by backtracking.
    test: Callable[[str], bool] | None = None
    pattern_hint: str = ""
    min_len: int | None = None
    max_len: int | None = None
    minimum: int | None = None
    fields: Mapping[str, Spec] | None = None
    rule: Callable[[dict[str, Any], str], None] | None = None


def _is_email_address(value: str) -> bool:
    """One "@" with text before it, a domain with a dot inside it, no whitespace."""
    local, _, domain = value.partition("@")
    return (
        bool(local)
        and "@" not in domain
        and "." in domain[1:-1]
        and not any(char.isspace() for char in value)
    )


def _req_str(**kw: Any) -> Spec:
    return Spec("str", required=True, non_empty=True, **kw)


def _opt_str(**kw: Any) -> Spec:
    return Spec("str", **kw)


def _node_counts(obj: dict[str, Any], path: str) -> None:
    desired = obj.get("desired_node_count")
    low, high = obj.get("min_node_count"), obj.get("max_node_count")
    if low is not None and desired is not None and low > desired:
        raise bad_request("must be <= desired_node_count", f"{path}.min_node_count")
    if high is not None and desired is not None and desired > high:
        raise bad_request("must be >= desired_node_count", f"{path}.max_node_count")


_PLATFORM_CREATE = Spec(
    "object",
    required=True,
    fields={
        "release_name": _req_str(
            pattern=_RELEASE_NAME,
            pattern_hint="a DNS-1123 label: lower case letters, digits and '-', "
            "starting and ending with a letter or digit",
            max_len=RELEASE_NAME_MAX,
        ),
        "ai_ml_ops_platform_type": _req_str(),
        "image_id": _req_str(),
        "initial_user_email": _req_str(
            test=_is_email_address, pattern_hint="an e-mail address", max_len=EMAIL_MAX
        ),
        "initial_user_password": Spec("str", required=True, min_len=8, max_len=64),
        "cluster_id": _opt_str(),
        "ai_ml_ops_platform_endpoint_type": _opt_str(choices=("", "Public", "Private")),
        "storage_class_name": _opt_str(),
        "tags": Spec("tags"),
    },
)

_K8S_CREATE = Spec(
    "object",
    fields={
        "k8s_version": _req_str(),
        "kubernetes_engine_name": _req_str(),
        "subnet_id": _req_str(),
        "volume_id": _req_str(),
        "vpc_id": _req_str(),
        "security_group_id_list": Spec("str_list", required=True),
        "cifs_volume_id": _opt_str(),
        "lb_id": _opt_str(),
        "public_acl_ip_address": _opt_str(),
        "cloud_logging_enabled": Spec("bool"),
        "private_acl_ip_resource": Spec("str_list"),
    },
)

_NODE_POOL_CREATE = Spec(
    "object",
    fields={
        "name": _req_str(),
        "image_os": _req_str(),
        "image_os_version": _req_str(),
        "keypair_name": _req_str(),
        "kubernetes_version": _req_str(),
        "server_type_id": _req_str(),
        "volume_type_name": _req_str(),
        "desired_node_count": Spec("int", required=True, minimum=1),
        "volume_size": Spec("int", required=True, minimum=1),
        "min_node_count": Spec("int", minimum=0),
        "max_node_count": Spec("int", minimum=0),
        "is_auto_recovery": Spec("bool"),
        "is_auto_scale": Spec("bool"),
        "cluster_id": _opt_str(),
    },
    rule=_node_counts,
)


def _needs_cluster(obj: dict[str, Any], path: str) -> None:
    platform = obj["ai_ml_ops_platform_create_request"]
    if not platform.get("cluster_id") and obj.get("kubernetes_engine_create_request") is None:
        raise bad_request(
            "is required unless kubernetes_engine_create_request is given",
            "ai_ml_ops_platform_create_request.cluster_id",
        )


CREATE_SCHEMA = Spec(
    "object",
    required=True,
    fields={
        "ai_ml_ops_platform_create_request": _PLATFORM_CREATE,
        "kubernetes_engine_create_request": _K8S_CREATE,
        "node_pool_create_request": _NODE_POOL_CREATE,
    },
    rule=_needs_cluster,
)


def _needs_a_change(obj: dict[str, Any], path: str) -> None:
    if (
        obj.get("ai_ml_ops_platform_domain_service") is None
        and obj.get("ai_ml_ops_platform_endpoint_type") is None
    ):
        raise bad_request(
            "give ai_ml_ops_platform_domain_service or ai_ml_ops_platform_endpoint_type",
            "ai_ml_ops_platform_endpoint_type",
        )


UPDATE_SCHEMA = Spec(
    "object",
    required=True,
    fields={
        "ai_ml_ops_platform_domain_service": Spec(
            "object",
            fields={
                "dns_id": _opt_str(),
                "domain_service_name": _opt_str(),
                "ip": _opt_str(),
                "record_id": _opt_str(),
                "record_name": _opt_str(),
                "operation_type": Spec(
                    "str", required=True, choices=("CREATE", "UPDATE", "DELETE")
                ),
            },
        ),
        "ai_ml_ops_platform_endpoint_type": _opt_str(choices=("Public", "Private")),
    },
    rule=_needs_a_change,
)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(spec: Spec, value: Any, path: str) -> None:
    """Raise ApiError(400) naming ``path`` when ``value`` (not None) does not fit ``spec``."""
    kind = spec.kind
    if kind == "str":
        _check_str(spec, value, path)
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad_request(f"must be an integer, got {_type_name(value)}", path)
        if spec.minimum is not None and value < spec.minimum:
            raise bad_request(f"must be >= {spec.minimum}", path)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise bad_request(f"must be a boolean, got {_type_name(value)}", path)
    elif kind == "str_list":
        if not isinstance(value, list):
            raise bad_request(f"must be an array of strings, got {_type_name(value)}", path)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise bad_request(f"must be a string, got {_type_name(item)}", f"{path}[{index}]")
    elif kind == "tags":
        _check_tags(value, path)
    else:
        _check_object(spec, value, path)


def _check_str(spec: Spec, value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise bad_request(f"must be a string, got {_type_name(value)}", path)
    if spec.non_empty and not value:
        raise bad_request("must not be empty", path)
    if spec.min_len is not None and len(value) < spec.min_len:
        raise bad_request(f"must be at least {spec.min_len} characters long", path)
    if spec.max_len is not None and len(value) > spec.max_len:
        raise bad_request(f"must be at most {spec.max_len} characters long", path)
    if spec.choices is not None and value not in spec.choices:
        shown = ", ".join(repr(choice) for choice in spec.choices)
        raise bad_request(f"must be one of {shown}", path)
    if spec.pattern is not None and not spec.pattern.fullmatch(value):
        raise bad_request(f"must be {spec.pattern_hint}", path)
    if spec.test is not None and not spec.test(value):
        raise bad_request(f"must be {spec.pattern_hint}", path)


def _check_tags(value: Any, path: str) -> None:
    if not isinstance(value, list):
        raise bad_request(f"must be an array of objects, got {_type_name(value)}", path)
    for index, tag in enumerate(value):
        tag_path = f"{path}[{index}]"
        if not isinstance(tag, dict):
            raise bad_request(f"must be an object, got {_type_name(tag)}", tag_path)
        for key, item in tag.items():
            if not isinstance(item, str):
                raise bad_request(f"must be a string, got {_type_name(item)}", f"{tag_path}.{key}")


def _check_object(spec: Spec, value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise bad_request(f"must be an object, got {_type_name(value)}", path or None)
    fields = spec.fields or {}
    for key in value:
        if key not in fields:
            raise bad_request("unknown field", _join(path, key))
    for key, field_spec in fields.items():
        item = value.get(key)
        if item is None:
            if field_spec.required:
                raise bad_request("is required", _join(path, key))
            continue
        _check(field_spec, item, _join(path, key))
    if spec.rule is not None:
        spec.rule(value, path)


def validate_create(body: Any) -> dict[str, Any]:
    """Check a create body (AiMlOpsPlatformCreateWithK8sEngineRequest); return it as a dict."""
    _check_object(CREATE_SCHEMA, body, "")
    result: dict[str, Any] = body
    return result


def validate_update(body: Any) -> dict[str, Any]:
    """Check an update body (AiMlOpsPlatformUpdateRequest); return it as a dict."""
    _check_object(UPDATE_SCHEMA, body, "")
    result: dict[str, Any] = body
    return result


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object."""
    if not raw.strip():
        raise bad_request("a JSON object body is required", code="MALFORMED_JSON")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}", code="MALFORMED_JSON") from None
    if not isinstance(value, dict):
        raise bad_request(f"the body must be a JSON object, got {_type_name(value)}")
    where = _lone_surrogate_at(value)
    if where is not None:
        # Stored, such text could never be sent back: every listing holding it would fail.
        raise bad_request("must be valid Unicode text (it holds a lone surrogate)", where or None)
    return value


def _lone_surrogate_at(value: Any) -> str | None:
    """The path of the first string (or key) in a decoded JSON value that UTF-8 cannot carry.

    Walks with an explicit stack: a deeply nested body must not exhaust the recursion limit.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return path
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not _encodable(key):
                    return path
                stack.append((_join(path, key), inner))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", inner) for index, inner in enumerate(item))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- query parameters ---------------------------------------------------------------------------


@attrs.frozen
class Paging:
    page: int
    size: int
    sort_field: str
    descending: bool

    def window(self, total: int) -> slice:
        start = self.page * self.size
        return slice(min(start, total), min(start + self.size, total))


def _query_int(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        raise bad_request(f"must be an integer, got {raw[:40]!r}", name)
    return int(raw)


def parse_paging(
    query: Mapping[str, str],
    *,
    page_size_max: int,
    sort_fields: frozenset[str],
    default_sort: str = "created_dt",
    default_size: int = 20,
) -> Paging:
    """Read ``page`` (0-based), ``size`` and ``sort`` ("field:asc|desc", desc by default)."""
    page = _query_int(query, "page", 0)
    if page < 0:
        raise bad_request("must be >= 0", "page")
    size = _query_int(query, "size", min(default_size, page_size_max))
    if not 1 <= size <= page_size_max:
        raise bad_request(f"must be between 1 and {page_size_max}", "size")
    raw_sort = query.get("sort")
    if raw_sort is None:
        return Paging(page, size, default_sort, True)
    match = _SORT.fullmatch(raw_sort.strip())
    if match is None or match.group(1) not in sort_fields:
        allowed = ", ".join(sorted(sort_fields))
        raise bad_request(f"must be 'field:asc' or 'field:desc' with field one of {allowed}", "sort")
    direction = (match.group(2) or "asc").lower()
    if direction not in ("asc", "desc"):
        raise bad_request("the direction must be 'asc' or 'desc'", "sort")
    return Paging(page, size, match.group(1), direction == "desc")


def parse_with_k8s(query: Mapping[str, str]) -> bool:
    raw = query.get("with_k8s")
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered not in ("true", "false"):
        raise bad_request("must be 'true' or 'false'", "with_k8s")
    return lowered == "true"


def required_query(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise bad_request("is a required query parameter", name)
    return value
