"""Plan files of ``aimlops apply``: loading (YAML or JSON), defaults merging, expansion and validation.

A plan is a mapping with ``defaults`` (a partial create request in the API's JSON shape, deep-merged
into every entry) and either ``platforms`` (a list of entries) or ``count`` with ``name_prefix``::

    defaults:
      ai_ml_ops_platform_create_request:
        ai_ml_ops_platform_type: Enterprise
        image_id: 10a599e031e749b7b260868f441e862b
        cluster_id: 10a599e031e749b7b260868f441e862b
        initial_user_email: admin@example.com
        initial_user_password: ${AIMLOPS_INITIAL_PASSWORD}
    platforms:
      - team-a                                   # just a release name
      - release_name: team-b                     # platform fields at the top level
        ai_ml_ops_platform_endpoint_type: Public
      - ai_ml_ops_platform_create_request:       # or the full API shape
          release_name: team-c

Strings may name environment variables as ``${NAME}`` (``$${`` is a literal ``${``), so that
passwords need not be written into the file. The whole plan is checked before anything is sent:
every problem of every entry is reported at once, each with its path in the plan, such as
``platforms[3].node_pool_create_request.max_node_count: must be >= desired_node_count (2), got 1``.
Everything here is pure (no I/O) except ``load_plan`` and ``load_document``, which read a file.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .. import (
    CreatePlatformRequest,
    KubernetesEngineCreateRequest,
    NodePoolCreateRequest,
    PlatformCreateRequest,
    ValidationError,
    from_json,
    json_type_name,
    release_name_problem,
)

__all__ = [
    "Plan",
    "PlanError",
    "build_plan",
    "deep_merge",
    "expand_env",
    "load_document",
    "load_plan",
    "parse_document",
]

PLAN_KEYS = ("defaults", "platforms", "count", "name_prefix")
PLATFORM_KEY = "ai_ml_ops_platform_create_request"
_REQUEST_KEYS = {field.name for field in attrs.fields(CreatePlatformRequest)}
_PLATFORM_FIELDS = {field.name for field in attrs.fields(PlatformCreateRequest)}
_ENV_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Above this many platforms, a count plan is almost certainly a typo (and a costly one).
MAX_COUNT = 10_000

Problems = list[tuple[str, str]]

_UNKNOWN_FIELD = "is not a field of this request"
_ALL_FIELDS = sorted(
    {field.name for cls in (CreatePlatformRequest, PlatformCreateRequest,
                            KubernetesEngineCreateRequest, NodePoolCreateRequest)
     for field in attrs.fields(cls)}
)


class PlanError(ValidationError):
    """A plan that cannot be used: every problem, as ``(path in the plan, message)`` pairs."""

    def __init__(self, errors: Sequence[tuple[str, str]], source: str | None = None) -> None:
        self.source = source
        super().__init__(errors)


@attrs.frozen
class Plan:
    """A validated plan: one create request per platform, in the plan's order."""

    requests: list[CreatePlatformRequest]
    source: str | None = None

    @property
    def release_names(self) -> list[str]:
        return [request.release_name for request in self.requests]

    def __len__(self) -> int:
        return len(self.requests)


# ------------------------------------------------------------------------------- documents


def parse_document(text: str, *, source: str | None = None, fmt: str | None = None) -> Any:
    """Parse JSON or YAML text (``fmt``: "json", "yaml", or None to pick by ``source``'s suffix).

    Raises ``PlanError`` with the line of a syntax error. YAML needs PyYAML (the ``cli`` extra);
    duplicate keys in a YAML mapping are an error rather than silently keeping the last one.
    """
    where = source or "<input>"
    if fmt is None:
        fmt = "json" if where.lower().endswith(".json") else "yaml"
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanError(
                [(where, f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")],
                source,
            ) from None
    return _parse_yaml(text, where, source)


def _parse_yaml(text: str, where: str, source: str | None) -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise PlanError(
            [(where, "reading YAML needs PyYAML: pip install 'aimlops-async[cli]' (or use JSON)")],
            source,
        ) from None

    class _StrictLoader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return dict(loader.construct_mapping(node, deep=True))

    _StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise PlanError([(where, f"is not valid YAML: {problem}{line}")], source) from None


def load_document(path: str | os.PathLike[str]) -> Any:
    """Read and parse a YAML or JSON file (``-`` reads standard input)."""
    name = os.fspath(path)
    if name == "-":
        import sys

        return parse_document(sys.stdin.read(), source="<stdin>")
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError([(name, f"cannot be read: {exc.strerror or exc}")], name) from None
    except UnicodeDecodeError:
        raise PlanError([(name, "is not UTF-8 text")], name) from None
    return parse_document(text, source=name)


def expand_env(
    data: Any, *, environ: Mapping[str, str] | None = None, source: str | None = None
) -> Any:
    """``data`` with every ``${NAME}`` in its strings replaced from the environment.

    ``PlanError`` names each reference to a variable that is not set (never a value).
    """
    unresolved: Problems = []
    expanded = _expand_env(data, "", os.environ if environ is None else environ, unresolved)
    if unresolved:
        raise PlanError(unresolved, source)
    return expanded


def load_plan(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Plan:
    """Read, expand and validate a plan file; ``PlanError`` lists every problem found."""
    name = os.fspath(path)
    return build_plan(load_document(name), environ=environ, source=name)


# ------------------------------------------------------------------------------- building


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: mappings merge key by key, anything else is replaced.

    Lists are replaced, not concatenated (a platform's ``tags`` are its own). Neither input is
    changed.
    """
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def build_plan(
    data: Any, *, environ: Mapping[str, str] | None = None, source: str | None = None
) -> Plan:
    """Expand a parsed plan into validated create requests, or raise ``PlanError`` with every problem."""
    env = os.environ if environ is None else environ
    problems: Problems = []
    if not isinstance(data, Mapping):
        raise PlanError(
            [("plan", "must be a mapping with defaults and platforms (or count), "
                      f"got {json_type_name(data)}")],
            source,
        )
    for key in data:
        if key not in PLAN_KEYS:
            problems.append((str(key), f"is not a plan key (expected one of {', '.join(PLAN_KEYS)})"))
    unresolved: Problems = []
    data = _expand_env(data, "", env, unresolved)

    defaults = data.get("defaults")
    if defaults is None:
        defaults = {}
    elif not isinstance(defaults, Mapping):
        problems.append(
            ("defaults", f"must be a mapping (a partial create request), got {json_type_name(defaults)}")
        )
        defaults = {}
    else:
        defaults = _normalize_entry(defaults)

    has_platforms = "platforms" in data
    has_count = "count" in data
    if has_platforms and has_count:
        problems.append(("count", "give either platforms or count (with name_prefix), not both"))
        raise PlanError(problems, source)
    if has_count:
        requests = _from_count(data, defaults, problems)
    elif has_platforms:
        if "name_prefix" in data:
            problems.append(("name_prefix", "is only used together with count"))
        requests = _from_platforms(data["platforms"], defaults, problems)
    else:
        problems.append(("platforms", "is required: a list of platforms, or count with name_prefix"))
        requests = []
    if problems or unresolved:
        entries = data["platforms"] if has_platforms else None
        problems = _without_consequences(problems, unresolved)
        grouped = _grouped(problems, len(entries) if isinstance(entries, list) else 0)
        raise PlanError(unresolved + grouped, source)
    return Plan(requests=requests, source=source)


def _from_platforms(entries: Any, defaults: Mapping[str, Any], problems: Problems) -> list[Any]:
    if not isinstance(entries, list):
        problems.append(("platforms", f"must be a list of platforms, got {json_type_name(entries)}"))
        return []
    if not entries:
        problems.append(("platforms", "is empty: there is nothing to provision"))
        return []
    requests: list[Any] = []
    first_seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        path = f"platforms[{index}]"
        if isinstance(entry, str):
            entry = {"release_name": entry}
        if not isinstance(entry, Mapping):
            problems.append((path, f"must be a release name or a mapping, got {json_type_name(entry)}"))
            continue
        merged = deep_merge(defaults, _normalize_entry(entry))
        model = _checked(merged, path, problems)
        name = _release_name(merged)
        if isinstance(name, str) and name:
            if name in first_seen:
                problems.append((
                    f"{path}.{PLATFORM_KEY}.release_name",
                    f"{name!r} is already used by platforms[{first_seen[name]}]",
                ))
            else:
                first_seen[name] = index
        if model is not None:
            requests.append(model)
    return requests


def _from_count(data: Mapping[str, Any], defaults: Mapping[str, Any], problems: Problems) -> list[Any]:
    count = data.get("count")
    prefix = data.get("name_prefix")
    count_ok = isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= MAX_COUNT
    if not count_ok:
        problems.append(("count", f"must be an integer from 1 to {MAX_COUNT}, got {count!r}"))
    if not isinstance(prefix, str) or not prefix:
        problems.append(("name_prefix", "is required with count: the release names are <prefix>000, ..."))
    if _release_name(defaults) is not None:
        problems.append((
            f"defaults.{PLATFORM_KEY}.release_name",
            "must not be set with count: each platform is named from name_prefix",
        ))
    if not count_ok or not isinstance(prefix, str) or not prefix:
        return []
    assert isinstance(count, int)
    width = max(3, len(str(count - 1)))
    names = [f"{prefix}{index:0{width}d}" for index in range(count)]
    # Every name has the same shape, so checking the longest one checks them all.
    name_problem = release_name_problem(names[-1])
    if name_problem:
        problems.append(("name_prefix", f"gives release names like {names[-1]!r}, which {name_problem}"))
        return []
    # The requests differ only by name: validate one and report its problems against the defaults.
    first = deep_merge(defaults, {PLATFORM_KEY: {"release_name": names[0]}})
    if _checked(first, "defaults", problems) is None:
        return []
    return [
        from_json(deep_merge(defaults, {PLATFORM_KEY: {"release_name": name}}), CreatePlatformRequest)
        for name in names
    ]


def _checked(request: Mapping[str, Any], path: str, problems: Problems) -> CreatePlatformRequest | None:
    try:
        model = from_json(request, CreatePlatformRequest)  # its types, then its rules
    except ValidationError as exc:
        found = [(field, _with_suggestion(field, message)) for field, message in exc.errors]
        # The rules run only on a request that structures; the name is worth checking anyway.
        name_path = f"{PLATFORM_KEY}.release_name"
        name = _release_name(request)
        if isinstance(name, str) and all(field != name_path for field, _ in found):
            name_problem = release_name_problem(name)
            if name_problem:
                found.append((name_path, name_problem))
        problems.extend(_prefixed(path, found))
        return None
    return model


def _with_suggestion(path: str, message: str) -> str:
    if message != _UNKNOWN_FIELD:
        return message
    key = re.split(r"[.\]]", path)[-1]
    close = difflib.get_close_matches(key, _ALL_FIELDS, n=1, cutoff=0.75)
    return f"{message} (did you mean {close[0]}?)" if close else message


def _normalize_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Move platform fields written at the top level (``release_name: x``) to where the API wants them."""
    normalized: dict[str, Any] = {}
    platform: dict[str, Any] = {}
    for key, value in entry.items():
        if key not in _REQUEST_KEYS and key in _PLATFORM_FIELDS:
            platform[key] = value
        else:
            normalized[key] = value
    if platform:
        nested = normalized.get(PLATFORM_KEY)
        if isinstance(nested, Mapping):
            # Fields given in both places: the explicit nested form wins.
            normalized[PLATFORM_KEY] = deep_merge(platform, nested)
        elif nested is None:
            normalized[PLATFORM_KEY] = platform
        # else: a non-mapping nested value; let validation report it.
    return normalized


def _release_name(request: Mapping[str, Any]) -> Any:
    platform = request.get(PLATFORM_KEY)
    return platform.get("release_name") if isinstance(platform, Mapping) else None


def _expand_env(value: Any, path: str, env: Mapping[str, str], problems: Problems) -> Any:
    if isinstance(value, str):
        return _expand_string(value, path, env, problems)
    if isinstance(value, Mapping):
        return {
            key: _expand_env(item, f"{path}.{key}" if path else str(key), env, problems)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_expand_env(item, f"{path}[{index}]", env, problems) for index, item in enumerate(value)]
    return value


def _expand_string(text: str, path: str, env: Mapping[str, str], problems: Problems) -> str:
    def substitute(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:
            return f"${{{name}}}"
        if name not in env:
            problems.append((path, f"refers to ${{{name}}}, which is not set in the environment"))
            return ""
        return env[name]

    return _ENV_REFERENCE.sub(substitute, text) if "${" in text else text


_SCOPED_PATH = re.compile(r"^(defaults|platforms\[\d+\])(?:\.(.*))?$")


def _scoped_field(path: str) -> tuple[str, str] | None:
    """``platforms[3].release_name`` -> ``("platforms[3]", "<PLATFORM_KEY>.release_name")``."""
    match = _SCOPED_PATH.match(path)
    if match is None:
        return None
    scope, field = match.group(1), match.group(2) or "release_name"
    head = re.split(r"[.\[]", field, maxsplit=1)[0]
    if head not in _REQUEST_KEYS and head in _PLATFORM_FIELDS:
        field = f"{PLATFORM_KEY}.{field}"
    return scope, field


def _without_consequences(problems: Problems, unresolved: Problems) -> Problems:
    """Drop the problems caused by an unset ``${VAR}`` (an empty password is too short...)."""
    missing = {scoped for path, _ in unresolved if (scoped := _scoped_field(path)) is not None}
    if not missing:
        return problems
    kept: Problems = []
    for path, message in problems:
        scoped = _scoped_field(path)
        if scoped is not None and (scoped in missing or ("defaults", scoped[1]) in missing):
            continue
        kept.append((path, message))
    return kept


def _prefixed(prefix: str, problems: Sequence[tuple[str, str]]) -> Problems:
    return [(f"{prefix}.{path}" if path else prefix, message) for path, message in problems]


_ENTRY_PATH = re.compile(r"^platforms\[(\d+)\](.*)$")


def _grouped(problems: Problems, entries: int) -> Problems:
    """Report a problem that every entry shares (usually one of the defaults) once, as ``platforms[*]``."""
    if entries < 2:
        return problems
    holders: dict[tuple[str, str], set[int]] = {}
    for path, message in problems:
        match = _ENTRY_PATH.match(path)
        if match:
            holders.setdefault((match.group(2), message), set()).add(int(match.group(1)))
    shared = {key for key, indexes in holders.items() if len(indexes) == entries}
    grouped: Problems = []
    reported: set[tuple[str, str]] = set()
    for path, message in problems:
        match = _ENTRY_PATH.match(path)
        key = (match.group(2), message) if match else None
        if key is not None and key in shared:
            if key not in reported:
                reported.add(key)
                grouped.append((f"platforms[*]{key[0]}", f"{message} (in all {entries} platforms)"))
            continue
        grouped.append((path, message))
    return grouped
