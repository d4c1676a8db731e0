"""The aimlops command in pipes and scripts: partial results, closed pipes, plain tables, usage
errors before anything is sent, --output, completion, delete confirmation and profiles."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from test_cli import PHASES, Run, _clean_environ, _environ_for, aimlops

from aimlops_async import AimlopsClient
from aimlops_async.emulator import Emulator

RUN_TIMEOUT = 60.0


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(**PHASES) as emulator:
        yield emulator


async def cli(emu: Emulator, *args: str, env: dict[str, str] | None = None) -> Run:
    return await aimlops(*args, env=env or _environ_for(emu), secrets=(emu.credentials.secret_key,))


async def create(emu: Emulator, *names: str) -> list[str]:
    async with AimlopsClient(emu.url, emu.credentials) as client:
        answers = await asyncio.gather(
            *(client.platforms.create(emu.sample_create_request(name)) for name in names)
        )
    return [str(answer.resource_id) for answer in answers]


async def shell(command: str, env: dict[str, str]) -> Run:
    """``command`` in bash with pipefail, ``aimlops`` being this interpreter's module."""
    bin_dir = Path(sys.executable).parent
    process = await asyncio.create_subprocess_exec(
        "bash", "-o", "pipefail", "-c", command,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    return Run(process.returncode or 0, stdout.decode(), stderr.decode())


async def test_get_shows_what_was_found_and_reports_the_rest(emu: Emulator) -> None:
    [found] = await create(emu, "found-one")
    run = await cli(emu, "get", found, "0123456789abcdef0123456789abcdef")
    assert run.code == 1
    assert "found-one" in run.stdout
    assert "0123456789abcdef0123456789abcdef" in run.stderr and "NotFoundError" in run.stderr
    assert "found-one" not in run.stderr

    as_json = await cli(emu, "--json", "get", found, "0123456789abcdef0123456789abcdef")
    assert as_json.code == 1
    assert [item["release_name"] for item in as_json.json()] == ["found-one"]


async def test_a_reader_that_closes_the_pipe_is_a_quiet_success(emu: Emulator) -> None:
    # Enough output to fill the pipe's buffer, so that the write really meets the closed pipe.
    await create(emu, *(f"pipe-{index:03d}" for index in range(150)))
    run = await shell("aimlops --json list --page-size 100 | head -1", _environ_for(emu))
    assert (run.code, run.stdout, run.stderr) == (0, "[\n", "")


async def test_tables_into_a_pipe_are_plain_and_unpadded(emu: Emulator) -> None:
    await create(emu, "plain-a", "plain-b")
    run = await cli(emu, "list")
    assert run.code == 0
    lines = run.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["release name", "release id", "status"]
    assert {line.split("\t")[0] for line in lines[1:3]} == {"plain-a", "plain-b"}
    assert not any(character in run.stdout for character in "─━│┃")
    assert all(line == line.rstrip() for line in lines)
    assert len(lines[0].split("\t")) == len(lines[1].split("\t"))


@pytest.mark.parametrize("arguments", [
    ("list", "--page-size", "500"),
    ("list", "--sort", "bogus"),
    ("list", "--sort", "created_dt:sideways"),
    ("images", "--sort", "no_such_field:asc"),
])
async def test_bad_listing_options_are_usage_errors_before_anything_is_sent(
    emu: Emulator, arguments: tuple[str, ...]
) -> None:
    run = await cli(emu, *arguments)
    assert run.code == 2
    assert arguments[-2] in run.stderr
    assert emu.stats.total == 0


async def test_a_negative_emulator_port_is_a_usage_error() -> None:
    run = await aimlops("emulator", "--port", "-5", env=_clean_environ())
    assert run.code == 2
    assert "--port" in run.stderr and "0 to 65535" in run.stderr


async def test_output_yaml_and_json_hold_the_same_results(emu: Emulator) -> None:
    await create(emu, "yaml-one")
    as_yaml = await cli(emu, "list", "--output", "yaml")
    as_json = await cli(emu, "-o", "json", "list")
    assert as_yaml.code == as_json.code == 0
    assert yaml.safe_load(as_yaml.stdout) == as_json.json()
    assert as_json.json()[0]["release_name"] == "yaml-one"


async def test_completion_scripts() -> None:
    for shell_name, marker in (("bash", "complete "), ("zsh", "#compdef aimlops")):
        run = await aimlops("completion", shell_name, env=_clean_environ())
        assert run.code == 0
        assert marker in run.stdout and "--page-size" in run.stdout


async def test_delete_asks_at_a_terminal_and_does_nothing_without_a_yes(emu: Emulator) -> None:
    [release_id] = await create(emu, "keep-me")
    controller, terminal = os.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aimlops_async.cli", "delete", release_id,
            stdin=terminal, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=_environ_for(emu),
        )
        os.write(controller, b"n\n")
        _, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    finally:
        os.close(controller)
        os.close(terminal)
    assert process.returncode == 1
    assert "Delete 1 platform" in stderr.decode() and "nothing was deleted" in stderr.decode()
    assert not any(route.startswith("DELETE") for route in emu.stats.requests)

    confirmed = await cli(emu, "delete", release_id, "--yes")
    assert confirmed.code == 0
    assert emu.stats.requests["DELETE /v1/aimlops-platform/{release_id}"] == 1


def write_profiles(home: Path, emu: Emulator) -> dict[str, str]:
    creds = emu.credentials
    (home / "aimlops").mkdir(parents=True)
    (home / "aimlops" / "config.toml").write_text(
        "[profiles.default]\n"
        'endpoint = "http://127.0.0.1:9"\n'
        "[profiles.lab]\n"
        f'endpoint = "{emu.url}"\n'
        f'access_key = "{creds.access_key}"\n'
        f'secret_key = "{creds.secret_key}"\n',
        encoding="utf-8",
    )
    return {**_clean_environ(), "XDG_CONFIG_HOME": str(home)}


async def test_profiles_come_after_flags_and_the_environment(emu: Emulator, tmp_path: Path) -> None:
    await create(emu, "profiled")
    env = write_profiles(tmp_path, emu)

    by_flag = await cli(emu, "--profile", "lab", "--json", "list", env=env)
    assert by_flag.code == 0 and by_flag.json()[0]["release_name"] == "profiled"
    by_variable = await cli(emu, "--json", "list", env={**env, "AIMLOPS_PROFILE": "lab"})
    assert by_variable.code == 0 and by_variable.json()[0]["release_name"] == "profiled"

    # The environment wins over the profile: a wrong key from the environment is used, and refused.
    env_wins = await cli(emu, "--profile", "lab", "list", env={**env, "SCP_ACCESS_KEY": "wrong-key"})
    assert env_wins.code == 1 and "AuthenticationError" in env_wins.stderr
    # A flag wins over both.
    flag_wins = await cli(
        emu, "--profile", "lab", "--access-key", emu.credentials.access_key, "list",
        env={**env, "SCP_ACCESS_KEY": "wrong-key"},
    )
    assert flag_wins.code == 0

    unknown = await cli(emu, "--profile", "nope", "list", env=env)
    assert unknown.code == 2
    assert "'nope'" in unknown.stderr and "default, lab" in unknown.stderr
    assert emu.stats.total == 5


async def test_a_profile_with_an_unknown_setting_is_a_usage_error(emu: Emulator, tmp_path: Path) -> None:
    (tmp_path / "aimlops").mkdir()
    (tmp_path / "aimlops" / "config.toml").write_text(
        '[profiles.default]\nendpiont = "http://127.0.0.1:9"\n', encoding="utf-8"
    )
    run = await cli(emu, "list", env={**_clean_environ(), "XDG_CONFIG_HOME": str(tmp_path)})
    assert run.code == 2
    assert "profiles.default.endpiont: unknown setting" in run.stderr



async def test_summaries_into_a_pipe_are_plain_too() -> None:
    run = await aimlops("demo", "--count", "3", "--failures", "0", "--phase-seconds", "0.1",
                        env=_clean_environ())
    assert run.code == 0
    assert not any(character in run.stdout for character in "─━│┃╭╰")
    # No padding: a line may end in a tab (an empty last cell), never in spaces.
    assert not any(line.endswith(" ") for line in run.stdout.splitlines())
    header = next(line for line in run.stdout.splitlines() if "release name" in line)
    assert header.split("\t")[:3] == ["#", "release name", "release id"]
