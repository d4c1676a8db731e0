"""Plan files: parsing, defaults merge, count expansion, and every problem reported with its path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from aimlops_async import CreatePlatformRequest, ValidationError
from aimlops_async.cli.plan import (
    Plan,
    PlanError,
    build_plan,
    deep_merge,
    expand_env,
    load_plan,
    parse_document,
)

PASSWORD = "Sample-Passw0rd"

DEFAULTS: dict[str, Any] = {
    "ai_ml_ops_platform_create_request": {
        "ai_ml_ops_platform_type": "Enterprise",
        "image_id": "image-1",
        "cluster_id": "cluster-1",
        "initial_user_email": "admin@example.com",
        "initial_user_password": PASSWORD,
        "ai_ml_ops_platform_endpoint_type": "Private",
        "tags": [{"key": "team", "value": "ml"}],
    }
}

NODE_POOL: dict[str, Any] = {
    "name": "pool-1",
    "desired_node_count": 2,
    "image_os": "ubuntu",
    "image_os_version": "22.04",
    "keypair_name": "keypair",
    "kubernetes_version": "v1.28.1",
    "server_type_id": "s1v16m64",
    "volume_size": 104,
    "volume_type_name": "SSD",
}


def plan_of(**parts: Any) -> dict[str, Any]:
    return {"defaults": copy.deepcopy(DEFAULTS), **parts}


def problems(data: Any, environ: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(PlanError) as caught:
        build_plan(data, environ=environ or {})
    return caught.value.errors


# ---------------------------------------------------------------------------- building


def test_platform_entries_get_the_defaults_and_keep_their_own_fields() -> None:
    plan = build_plan(plan_of(platforms=[
        "team-a",
        {"release_name": "team-b", "ai_ml_ops_platform_endpoint_type": "Public"},
        {"ai_ml_ops_platform_create_request": {"release_name": "team-c", "tags": []},
         "node_pool_create_request": NODE_POOL},
    ]), environ={})

    assert isinstance(plan, Plan)
    assert plan.release_names == ["team-a", "team-b", "team-c"]
    assert all(isinstance(request, CreatePlatformRequest) for request in plan.requests)
    a, b, c = (request.ai_ml_ops_platform_create_request for request in plan.requests)
    assert (a.cluster_id, a.image_id, a.initial_user_password) == ("cluster-1", "image-1", PASSWORD)
    assert a.ai_ml_ops_platform_endpoint_type == "Private"
    assert b.ai_ml_ops_platform_endpoint_type == "Public"
    # Lists replace the default's list rather than adding to it.
    assert a.tags == [{"key": "team", "value": "ml"}]
    assert c.tags == []
    assert plan.requests[2].node_pool_create_request is not None
    assert plan.requests[2].node_pool_create_request.desired_node_count == 2
    assert plan.requests[0].node_pool_create_request is None


def test_nested_fields_win_over_the_same_fields_written_at_the_top() -> None:
    plan = build_plan(plan_of(platforms=[{
        "release_name": "top",
        "ai_ml_ops_platform_create_request": {"release_name": "nested"},
    }]), environ={})
    assert plan.release_names == ["nested"]


def test_defaults_may_use_the_short_form_too() -> None:
    defaults = dict(DEFAULTS["ai_ml_ops_platform_create_request"])
    plan = build_plan({"defaults": defaults, "platforms": ["x-1"]}, environ={})
    assert plan.requests[0].ai_ml_ops_platform_create_request.image_id == "image-1"


def test_count_with_a_prefix_names_platforms_in_order() -> None:
    plan = build_plan(plan_of(count=12, name_prefix="demo-"), environ={})
    assert len(plan) == 12
    assert plan.release_names[:3] == ["demo-000", "demo-001", "demo-002"]
    assert plan.release_names[-1] == "demo-011"
    clusters = {request.ai_ml_ops_platform_create_request.cluster_id for request in plan.requests}
    assert clusters == {"cluster-1"}


def test_count_widens_the_number_when_three_digits_are_not_enough() -> None:
    plan = build_plan(plan_of(count=1001, name_prefix="n-"), environ={})
    assert plan.release_names[0] == "n-0000"
    assert plan.release_names[-1] == "n-1000"
    assert len(set(plan.release_names)) == 1001


def test_deep_merge_leaves_its_inputs_alone() -> None:
    base = {"a": {"b": 1, "c": [1]}, "d": 1}
    override = {"a": {"c": [2], "e": 3}}
    merged = deep_merge(base, override)
    assert merged == {"a": {"b": 1, "c": [2], "e": 3}, "d": 1}
    assert base == {"a": {"b": 1, "c": [1]}, "d": 1}
    assert override == {"a": {"c": [2], "e": 3}}


# ---------------------------------------------------------------------------- problems


def test_every_problem_of_every_entry_is_listed_with_its_path() -> None:
    found = problems(plan_of(platforms=[
        "good-1",
        {"release_name": "Bad_Name"},
        "good-2",
        {"release_name": "pool-bad",
         "node_pool_create_request": {**NODE_POOL, "desired_node_count": 3, "max_node_count": 2}},
        {"release_name": "typo", "ai_ml_ops_platform_endpoint_typ": "Public"},
        {"release_name": "wrong-type", "node_pool_create_request": {**NODE_POOL, "volume_size": "104"}},
    ]))
    paths = [path for path, _ in found]
    assert paths == [
        "platforms[1].ai_ml_ops_platform_create_request.release_name",
        "platforms[3].node_pool_create_request.max_node_count",
        "platforms[4].ai_ml_ops_platform_endpoint_typ",
        "platforms[5].node_pool_create_request.volume_size",
    ]
    messages = dict(found)
    assert "DNS-1123" in messages[paths[0]]
    assert messages[paths[1]] == "must be >= desired_node_count (3), got 2"
    assert messages[paths[2]] == (
        "is not a field of this request (did you mean ai_ml_ops_platform_endpoint_type?)"
    )
    assert "must be an integer" in messages[paths[3]]


def test_the_error_message_names_each_problem_on_its_own_line() -> None:
    with pytest.raises(ValidationError) as caught:
        build_plan(plan_of(platforms=[
            {"release_name": "a", "node_pool_create_request": {**NODE_POOL, "max_node_count": 1}},
            {"release_name": "B"},
        ]), environ={})
    text = str(caught.value)
    assert "2 problems" in text
    assert "platforms[0].node_pool_create_request.max_node_count: must be >= desired_node_count" in text
    assert "platforms[1].ai_ml_ops_platform_create_request.release_name: must be a DNS-1123" in text


def test_duplicate_release_names_point_at_the_first_use() -> None:
    found = problems(plan_of(platforms=["a", "b", {"release_name": "a"}]))
    assert found == [(
        "platforms[2].ai_ml_ops_platform_create_request.release_name",
        "'a' is already used by platforms[0]",
    )]


def test_a_problem_shared_by_every_entry_is_reported_once() -> None:
    defaults = copy.deepcopy(DEFAULTS)
    del defaults["ai_ml_ops_platform_create_request"]["image_id"]
    found = problems({"defaults": defaults, "platforms": ["a", "b", {"release_name": "C"}]})
    assert (
        "platforms[*].ai_ml_ops_platform_create_request.image_id",
        "is required (in all 3 platforms)",
    ) in found
    # The entry's own problem is still listed with its own index.
    assert any(path == "platforms[2].ai_ml_ops_platform_create_request.release_name" for path, _ in found)
    assert len(found) == 2


def test_plan_level_mistakes_are_all_reported() -> None:
    found = problems({"defaults": DEFAULTS, "platform": ["a"], "name_prefix": "x-"})
    assert ("platform", "is not a plan key (expected one of defaults, platforms, count, name_prefix)") \
        in found
    assert any(path == "platforms" and "is required" in message for path, message in found)


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        (plan_of(platforms=[]), "platforms", "nothing to provision"),
        (plan_of(platforms={"a": 1}), "platforms", "must be a list"),
        (plan_of(platforms=[42]), "platforms[0]", "must be a release name or a mapping"),
        (plan_of(count=0, name_prefix="x-"), "count", "from 1 to"),
        (plan_of(count=True, name_prefix="x-"), "count", "from 1 to"),
        (plan_of(count=3), "name_prefix", "is required with count"),
        (plan_of(count=3, name_prefix="Upper-"), "name_prefix", "DNS-1123"),
        (plan_of(count=3, name_prefix="x" * 60), "name_prefix", "at most 53"),
        (plan_of(count=2, name_prefix="x-", platforms=["a"]), "count", "not both"),
        ({"defaults": [], "platforms": ["a"]}, "defaults", "must be a mapping"),
        (["a"], "plan", "must be a mapping"),
    ],
)
def test_plan_shape_problems(data: Any, path: str, fragment: str) -> None:
    found = problems(data)
    assert any(p == path and fragment in message for p, message in found), found


def test_count_plans_report_default_problems_once_against_the_defaults() -> None:
    defaults = copy.deepcopy(DEFAULTS)
    defaults["ai_ml_ops_platform_create_request"]["release_name"] = "fixed"
    defaults["node_pool_create_request"] = {**NODE_POOL, "min_node_count": 5}
    found = problems({"defaults": defaults, "count": 50, "name_prefix": "n-"})
    assert found == [
        ("defaults.ai_ml_ops_platform_create_request.release_name",
         "must not be set with count: each platform is named from name_prefix"),
        ("defaults.node_pool_create_request.min_node_count", "must be <= desired_node_count (2), got 5"),
    ]


# ------------------------------------------------------------------------ environment


def test_environment_references_are_expanded() -> None:
    defaults = copy.deepcopy(DEFAULTS)
    defaults["ai_ml_ops_platform_create_request"]["initial_user_password"] = "${PLAN_PASSWORD}"
    plan = build_plan(
        {"defaults": defaults, "platforms": ["a", {"release_name": "b", "tags": [{"k": "$${HOME}"}]}]},
        environ={"PLAN_PASSWORD": "from-the-env-1"},
    )
    first, second = (request.ai_ml_ops_platform_create_request for request in plan.requests)
    assert first.initial_user_password == "from-the-env-1"
    assert second.tags == [{"k": "${HOME}"}]  # $${ is a literal ${


def test_an_unset_variable_is_one_problem_not_a_cascade() -> None:
    defaults = copy.deepcopy(DEFAULTS)
    defaults["ai_ml_ops_platform_create_request"]["initial_user_password"] = "${PLAN_PASSWORD}"
    found = problems({"defaults": defaults, "platforms": ["a", "b"]})
    assert found == [(
        "defaults.ai_ml_ops_platform_create_request.initial_user_password",
        "refers to ${PLAN_PASSWORD}, which is not set in the environment",
    )]


def test_expand_env_for_single_requests() -> None:
    assert expand_env({"a": ["${X}-1"]}, environ={"X": "v"}) == {"a": ["v-1"]}
    with pytest.raises(PlanError, match=r"a\[0\]: refers to \$\{Y\}"):
        expand_env({"a": ["${Y}"]}, environ={})


def test_passwords_never_appear_in_problems() -> None:
    defaults = copy.deepcopy(DEFAULTS)
    defaults["ai_ml_ops_platform_create_request"]["initial_user_password"] = "short"
    with pytest.raises(PlanError) as caught:
        build_plan({"defaults": defaults, "platforms": ["a", "B"]}, environ={})
    assert "short" not in str(caught.value)
    assert "initial_user_password: must be 8 to 64 characters long" in str(caught.value)


# ---------------------------------------------------------------------------- files


def test_yaml_and_json_files_load_to_the_same_plan(tmp_path: Path) -> None:
    yaml_file = tmp_path / "plan.yaml"
    yaml_file.write_text(
        "defaults:\n"
        "  ai_ml_ops_platform_create_request:\n"
        "    ai_ml_ops_platform_type: Enterprise\n"
        "    image_id: image-1\n"
        "    cluster_id: cluster-1\n"
        "    initial_user_email: admin@example.com\n"
        f"    initial_user_password: {PASSWORD}\n"
        "platforms:\n"
        "  - team-a\n"
        "  - release_name: team-b\n"
        "    ai_ml_ops_platform_endpoint_type: Public\n",
        encoding="utf-8",
    )
    json_file = tmp_path / "plan.json"
    json_file.write_text(json.dumps({
        "defaults": {"ai_ml_ops_platform_create_request": {
            "ai_ml_ops_platform_type": "Enterprise", "image_id": "image-1", "cluster_id": "cluster-1",
            "initial_user_email": "admin@example.com", "initial_user_password": PASSWORD,
        }},
        "platforms": ["team-a", {"release_name": "team-b", "ai_ml_ops_platform_endpoint_type": "Public"}],
    }), encoding="utf-8")

    from_yaml, from_json = load_plan(yaml_file, environ={}), load_plan(json_file, environ={})
    assert from_yaml.requests == from_json.requests
    assert from_yaml.release_names == ["team-a", "team-b"]
    assert from_yaml.source == str(yaml_file)


def test_syntax_errors_name_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"bad\.json: is not valid JSON: .*\(line 2"):
        parse_document('{"platforms":\n  [,]}', source="bad.json")
    with pytest.raises(PlanError, match=r"bad\.yaml: is not valid YAML: .*\(line 3, column 2\)"):
        parse_document("platforms:\n  - a\n - b\n", source="bad.yaml")
    with pytest.raises(PlanError, match=r"duplicate key 'platforms'.*\(line 3"):
        parse_document("platforms: [a]\ncount: 2\nplatforms: [b]\n", source="dup.yaml")
    missing = tmp_path / "missing.yaml"
    with pytest.raises(PlanError, match="cannot be read"):
        load_plan(missing)
