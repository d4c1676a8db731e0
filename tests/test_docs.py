"""Every Python and shell example of README.md and docs/ runs against a fresh emulator.

A fenced ```python or ```bash block is a complete program: it runs as a subprocess with the
environment that ``aimlops emulator`` tells its user to export, from the repository's root. A
block that cannot run on its own (a part of a larger program, a command that serves until
Ctrl-C, an install) is marked as a fragment by an HTML comment on the line before it,
``<!-- fragment: why -->``; Python fragments must still compile (top-level ``await`` allowed).
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

from aimlops_async.emulator import Emulator
from aimlops_async.emulator.__main__ import _banner

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN_TIMEOUT = 90.0
EXAMPLE_PASSWORD = "Docs-Example-Passw0rd"

_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.MULTILINE | re.DOTALL
)
_FRAGMENT = re.compile(r"<!--\s*fragment:\s*(?P<why>[^>]*?)\s*-->\s*$")
RUNNABLE = {"python", "bash"}
# Shell examples are ```bash (run) or ```text (output only), never an ambiguous shell dialect.
REFUSED = {"sh", "shell", "console", "shell-session", "zsh", "py", "python3", "pycon"}


@attrs.frozen
class Block:
    path: Path
    line: int
    language: str
    body: str
    fragment: str | None  # why it does not run on its own, for a marked fragment

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def collect(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        fragment = _FRAGMENT.search(before)
        indent = len(match["indent"])
        body = "\n".join(line[indent:] for line in match["body"].splitlines())
        blocks.append(Block(
            path=path,
            line=text.count("\n", 0, match.start()) + 1,
            language=match["info"].strip().split(" ")[0].lower(),
            body=body + "\n",
            fragment=fragment["why"] if fragment else None,
        ))
    return blocks


BLOCKS = [block for path in DOCUMENTS for block in collect(path)]
PROGRAMS = [block for block in BLOCKS if block.language in RUNNABLE and block.fragment is None]


def test_the_documents_have_examples_and_name_their_languages() -> None:
    assert len(PROGRAMS) >= 15, [block.name for block in PROGRAMS]
    for block in BLOCKS:
        assert block.language, f"{block.name}: name the language of every code block"
        assert block.language not in REFUSED, f"{block.name}: use ```bash (runs) or ```text (output)"
        if block.fragment is not None:
            assert block.fragment, f"{block.name}: say why the fragment does not run on its own"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language == "python"], ids=lambda b: b.name)
def test_python_blocks_compile(block: Block) -> None:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if block.fragment is not None else 0
    compile(block.body, block.name, "exec", flags=flags)


def test_the_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install -e '.[test]' && .venv/bin/pytest -q" in readme
    assert "pip install --quiet -e '.[test]'" in ci and ".venv/bin/pytest -q" in ci
    assert "mkdocs build --strict" in ci


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(
        creating_seconds=0.1, installing_seconds=0.1, updating_seconds=0.1, deleting_seconds=0.1,
    ) as emu:
        yield emu


def exported_environment(emu: Emulator) -> dict[str, str]:
    """The variables ``aimlops emulator`` prints as export lines, as a user pastes them."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("SCP_", "AIMLOPS_")) and key not in ("COLUMNS", "LINES")
    }
    for line in _banner(emu, as_json=False).splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value
    bin_dir = str(Path(sys.executable).parent)
    env.update({
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "AIMLOPS_INITIAL_PASSWORD": EXAMPLE_PASSWORD,
        "NO_COLOR": "1",
        "PYTHONWARNINGS": "error::ResourceWarning",
    })
    return env


async def run_block(block: Block, env: dict[str, str], tmp_path: Path) -> None:
    if block.language == "python":
        script = tmp_path / "example.py"
        script.write_text(block.body, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        command = ["bash", "-euo", "pipefail", "-c", block.body]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    report = f"{block.name} exited {process.returncode}\n{stdout.decode()}\n{stderr.decode()}"
    assert process.returncode == 0, report
    assert "Traceback" not in stderr.decode(), report
    assert EXAMPLE_PASSWORD not in stdout.decode() + stderr.decode(), report


@pytest.mark.parametrize("block", PROGRAMS, ids=lambda b: b.name)
async def test_example_runs_against_the_emulator(block: Block, emulator: Emulator, tmp_path: Path) -> None:
    await run_block(block, exported_environment(emulator), tmp_path)


async def test_the_quick_start_runs_with_nothing_but_the_emulators_exports(
    emulator: Emulator, tmp_path: Path
) -> None:
    readme = [block for block in PROGRAMS if block.path.name == "README.md"]
    quick_start = next(block for block in readme if block.language == "python")
    env = exported_environment(emulator)
    del env["AIMLOPS_INITIAL_PASSWORD"]
    await run_block(quick_start, env, tmp_path)
    assert [platform["release_name"] for platform in emulator.platforms()] == ["quick-start"]
