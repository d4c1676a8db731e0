"""The aimlops command, run as a subprocess against an in-process emulator: output, --json, exit codes.

The emulator serves on this test's event loop, so the command runs with
``asyncio.create_subprocess_exec`` and the loop keeps answering while it waits.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from aimlops_async.emulator import Emulator

PASSWORD = "Cli-Test-Passw0rd"
PHASES = {
    "creating_seconds": 0.1, "installing_seconds": 0.1, "updating_seconds": 0.1, "deleting_seconds": 0.1,
}
# Fast polls for the emulator's short phases; the command's defaults are for the real service.
FAST = ("--poll-delay", "0.02", "--poll-max-delay", "0.1", "--timeout", "30")
RUN_TIMEOUT = 60.0


@attrs.frozen
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator whose platforms named doomed-* end in FAILED."""
    async with Emulator(**PHASES, fail_pattern=r"^doomed-") as emulator:
        yield emulator


def _clean_environ() -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("SCP_", "AIMLOPS_")) and key not in ("COLUMNS", "LINES")
    }
    env.update({"NO_COLOR": "1", "PYTHONWARNINGS": "error::ResourceWarning"})
    return env


def _environ_for(emu: Emulator) -> dict[str, str]:
    creds = emu.credentials
    return {
        **_clean_environ(),
        "AIMLOPS_ENDPOINT": emu.url,
        "SCP_ACCESS_KEY": creds.access_key,
        "SCP_SECRET_KEY": creds.secret_key,
        "SCP_ACCOUNT_ID": creds.account_id or "",
        "CLI_TEST_PASSWORD": PASSWORD,
    }


async def aimlops(*args: str, env: dict[str, str], secrets: tuple[str, ...] = ()) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aimlops_async.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    run = Run(process.returncode or 0, stdout.decode(), stderr.decode())
    for secret in (*secrets, PASSWORD):
        assert secret not in run.stdout + run.stderr
    # Whatever went wrong, the user gets one clear line, not a traceback.
    assert "Traceback" not in run.stderr
    return run


async def cli(emu: Emulator, *args: str) -> Run:
    return await aimlops(*FAST, *args, env=_environ_for(emu), secrets=(emu.credentials.secret_key,))


def request_file(tmp_path: Path, emu: Emulator, name: str) -> Path:
    body = emu.sample_create_request(name)
    body["ai_ml_ops_platform_create_request"]["initial_user_password"] = "${CLI_TEST_PASSWORD}"
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def plan_file(tmp_path: Path, emu: Emulator, platforms: list[Any]) -> Path:
    lines = [
        "defaults:",
        "  ai_ml_ops_platform_create_request:",
        "    ai_ml_ops_platform_type: Enterprise",
        f"    image_id: {emu.image_ids[0]}",
        f"    cluster_id: {emu.cluster_id}",
        "    initial_user_email: admin@example.com",
        "    initial_user_password: ${CLI_TEST_PASSWORD}",
        "platforms:",
    ]
    lines += [f"  - {json.dumps(entry)}" for entry in platforms]
    path = tmp_path / "plan.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def posts(emu: Emulator) -> int:
    return sum(count for route, count in emu.stats.requests.items() if route.startswith("POST"))


# ----------------------------------------------------------------------- one platform


async def test_create_wait_get_list_update_delete(emu: Emulator, tmp_path: Path) -> None:
    created = await cli(emu, "create", str(request_file(tmp_path, emu, "team-a")), "--wait", "--json")
    assert created.code == 0, created.stderr
    result = created.json()
    assert result["state"] == "DEPLOYED" and result["ok"] is True and result["error"] is None
    assert result["detail"]["release_name"] == "team-a"
    release_id = result["release_id"]

    got, listed, table = await asyncio.gather(
        cli(emu, "get", release_id, "--json"),
        cli(emu, "--json", "list", "--status", "DEPLOYED"),  # a global option before the command
        cli(emu, "list"),
    )
    assert got.code == 0
    assert got.json()["release_id"] == release_id
    assert got.json()["created_dt"].endswith("Z")  # datetimes as ISO strings
    assert [(item["release_name"], item["status"]) for item in listed.json()] == [("team-a", "DEPLOYED")]
    assert table.code == 0
    assert "team-a" in table.stdout and release_id in table.stdout and "1 platform" in table.stdout

    updated = await cli(emu, "update", release_id, "--endpoint-type", "Public", "--wait", "--json")
    assert updated.code == 0, updated.stderr
    assert updated.json()["detail"]["ai_ml_ops_platform_endpoint_type"] == "Public"

    deleted = await cli(emu, "delete", release_id, "--wait", "--json")
    assert deleted.code == 0, deleted.stderr
    assert deleted.json() == [
        {"release_id": release_id, "release_name": "team-a", "state": "DELETED", "ok": True, "error": None}
    ]
    assert emu.platforms() == []


async def test_a_platform_that_fails_exits_1(emu: Emulator, tmp_path: Path) -> None:
    run = await cli(emu, "create", str(request_file(tmp_path, emu, "doomed-1")), "--wait", "--json")
    assert run.code == 1
    assert run.json()["state"] == "FAILED"
    assert run.json()["ok"] is False

    waited = await cli(emu, "wait", run.json()["release_id"], "--json")
    assert waited.code == 1
    assert waited.json()[0]["state"] == "FAILED"


async def test_api_errors_are_one_line_and_exit_1(emu: Emulator) -> None:
    run = await cli(emu, "get", "no-such-release")
    assert run.code == 1
    assert run.stdout == ""
    assert run.stderr.startswith("aimlops: error: NotFoundError: [404")
    assert len(run.stderr.strip().splitlines()) == 1


async def test_an_invalid_request_file_is_a_usage_error(emu: Emulator, tmp_path: Path) -> None:
    path = request_file(tmp_path, emu, "Not_A_Valid_Name")
    run = await cli(emu, "create", str(path))
    assert run.code == 2
    assert "ai_ml_ops_platform_create_request.release_name: must be a DNS-1123 label" in run.stderr
    assert posts(emu) == 0


# ---------------------------------------------------------------------------- apply


async def test_apply_reports_every_platform_and_a_rerun_adopts(emu: Emulator, tmp_path: Path) -> None:
    plan = plan_file(tmp_path, emu, ["web-1", {"release_name": "web-2"}, "doomed-3"])

    first = await cli(emu, "apply", str(plan), "--json", "--progress")
    assert first.code == 1  # doomed-3 ends in FAILED
    results = first.json()  # --progress went to stderr: stdout is only the JSON
    assert [(r["release_name"], r["state"], r["created"]) for r in results] == [
        ("web-1", "DEPLOYED", True), ("web-2", "DEPLOYED", True), ("doomed-3", "FAILED", True),
    ]
    assert all(r["release_id"] for r in results)
    assert results[0]["error"] is None and results[2]["error"]
    assert "doomed-3" in first.stderr  # the progress lines

    again = await cli(emu, "apply", str(plan), "--json")
    assert again.code == 1
    assert [(r["release_name"], r["created"]) for r in again.json()] == [
        ("web-1", False), ("web-2", False), ("doomed-3", False),
    ]
    assert [r["release_id"] for r in again.json()] == [r["release_id"] for r in results]
    assert dict(emu.stats.creates) == {"web-1": 1, "web-2": 1, "doomed-3": 1}


async def test_apply_exits_0_when_all_deploy_and_prints_a_summary(emu: Emulator, tmp_path: Path) -> None:
    plan = plan_file(tmp_path, emu, ["ok-1", "ok-2"])
    run = await cli(emu, "apply", str(plan))
    assert run.code == 0, run.stderr
    assert "ok-1" in run.stdout and "ok-2" in run.stdout
    assert "2 platforms in" in run.stdout and "2 deployed, 0 failed" in run.stdout
    assert {platform["release_state"] for platform in emu.platforms()} == {"DEPLOYED"}


async def test_an_invalid_plan_lists_every_problem_and_sends_nothing(emu: Emulator, tmp_path: Path) -> None:
    plan = plan_file(tmp_path, emu, [
        "fine-1",
        {"release_name": "Bad_Name"},
        {"release_name": "fine-1"},
        {"release_name": "pool", "node_pool_create_request": {
            "name": "p", "desired_node_count": 3, "max_node_count": 1, "image_os": "ubuntu",
            "image_os_version": "22.04", "keypair_name": "k", "kubernetes_version": "v1.28.1",
            "server_type_id": "s", "volume_size": 10, "volume_type_name": "SSD",
        }},
    ])
    run = await cli(emu, "apply", str(plan))
    assert run.code == 2
    assert run.stdout == ""
    for expected in (
        "platforms[1].ai_ml_ops_platform_create_request.release_name: must be a DNS-1123 label",
        "platforms[2].ai_ml_ops_platform_create_request.release_name: 'fine-1' is already used by "
        "platforms[0]",
        "platforms[3].node_pool_create_request.max_node_count: must be >= desired_node_count (3), got 1",
        "nothing was sent",
    ):
        assert expected in run.stderr
    assert emu.stats.total == 0  # not even a lookup


async def test_apply_dry_run_needs_no_service(emu: Emulator, tmp_path: Path) -> None:
    plan = plan_file(tmp_path, emu, ["a-1", "a-2"])
    run = await aimlops("apply", str(plan), "--dry-run", "--json",
                        env={**_clean_environ(), "CLI_TEST_PASSWORD": PASSWORD})
    assert run.code == 0, run.stderr
    requests = run.json()
    assert [r["ai_ml_ops_platform_create_request"]["release_name"] for r in requests] == ["a-1", "a-2"]
    assert {r["ai_ml_ops_platform_create_request"]["initial_user_password"] for r in requests} == {"***"}
    assert emu.stats.total == 0


# ------------------------------------------------------------------- reads and checks


async def test_inventory_and_checks(emu: Emulator) -> None:
    images, nodes, classes, version, checks = await asyncio.gather(
        cli(emu, "images", "--json"),
        cli(emu, "nodes", emu.cluster_id, "--json"),
        cli(emu, "storage-classes", emu.cluster_id, "--json"),
        cli(emu, "check-version", emu.cluster_id, "1.28.1", "--json"),
        cli(emu, "validate", emu.cluster_id, "--json"),
    )
    assert {image["image_id"] for image in images.json()} == set(emu.image_ids)
    assert nodes.code == 0 and len(nodes.json()) >= 1
    assert classes.code == 0 and classes.json()["storage_classes"]
    assert version.code == 0 and version.json()["passed"] is True
    assert checks.code == 0
    assert [check["check"] for check in checks.json()["checks"]] == ["namespaces", "resources (Enterprise)"]


# ---------------------------------------------------------------- configuration, usage


async def test_missing_configuration_is_a_usage_error() -> None:
    env = _clean_environ()
    no_endpoint, no_keys, unknown = await asyncio.gather(
        aimlops("list", env=env),
        aimlops("list", env={**env, "AIMLOPS_ENDPOINT": "http://127.0.0.1:9"}),
        aimlops("frobnicate", env=env),
    )
    assert no_endpoint.code == 2
    assert "no endpoint" in no_endpoint.stderr and "AIMLOPS_ENDPOINT" in no_endpoint.stderr
    assert no_keys.code == 2
    assert "SCP_ACCESS_KEY" in no_keys.stderr and "SCP_SECRET_KEY" in no_keys.stderr
    assert unknown.code == 2


async def test_secret_key_flag_works_but_warns(emu: Emulator) -> None:
    creds = emu.credentials
    env = {**_clean_environ(), "AIMLOPS_ENDPOINT": emu.url}
    run = await aimlops(
        "list", "--json", "--access-key", creds.access_key, "--secret-key", creds.secret_key,
        "--account-id", creds.account_id or "", env=env,
    )
    assert run.code == 0
    assert run.json() == []
    assert "warning: --secret-key is visible" in run.stderr


# ------------------------------------------------------------------------ demo, emulator


async def test_demo_runs_with_no_configuration() -> None:
    env = _clean_environ()
    shown, machine = await asyncio.gather(
        aimlops("demo", "--count", "5", "--phase-seconds", "0.2", env=env),
        aimlops("demo", "--count", "6", "--failures", "2", "--phase-seconds", "0.2", "--json", env=env),
    )
    assert shown.code == 0, shown.stderr
    assert "5 platforms in" in shown.stdout
    assert "injected on purpose" in shown.stdout
    assert "API calls" in shown.stdout
    assert "created 0 and adopted 5" in shown.stdout

    assert machine.code == 0, machine.stderr
    summary = machine.json()
    assert summary["ok"] is True
    assert summary["platforms"] == 6 and summary["deployed"] == 4
    assert len(summary["injected_failures"]) == 2 and summary["unexpected"] == []
    assert summary["duplicates"] == [] and summary["rerun"]["created"] == 0
    failed = [r["release_name"] for r in summary["results"] if r["state"] == "FAILED"]
    assert failed == summary["injected_failures"]


async def test_help_and_the_emulator_command() -> None:
    env = _clean_environ()
    emulator_help, main_help = await asyncio.gather(
        aimlops("emulator", "--help", env=env), aimlops("--help", env=env),
    )
    assert emulator_help.code == 0
    assert "--port" in emulator_help.stdout and "--fail-pattern" in emulator_help.stdout
    assert main_help.code == 0
    for command in (
        "demo", "emulator", "list", "get", "create", "update", "delete", "wait", "apply", "images",
        "nodes", "storage-classes", "check-version", "validate",
    ):
        assert command in main_help.stdout


async def test_api_version_and_account_id_flags() -> None:
    async with Emulator(account_id="acct-cli") as emu:
        creds = emu.credentials
        env = {**_clean_environ(), "AIMLOPS_ENDPOINT": emu.url,
               "SCP_ACCESS_KEY": creds.access_key, "SCP_SECRET_KEY": creds.secret_key}
        for version in ("1.0", "1.1", "latest"):
            run = await aimlops("list", "--json", "--api-version", version, "--account-id",
                                "acct-cli", env=env)
            assert run.code == 0, run.stderr
            assert run.json() == []
        refused = await aimlops("list", "--api-version", "9.9", env=env)
        assert refused.code == 1
        assert "'aimlops-platform 9.9'" in refused.stderr and "406" in refused.stderr
        foreign = await aimlops("list", "--account-id", "acct-other", env=env)
        assert foreign.code == 1 and "403" in foreign.stderr
        from_env = await aimlops("list", "--json", env={**env, "SCP_ACCOUNT_ID": "acct-other"})
        assert from_env.code == 1 and "403" in from_env.stderr
