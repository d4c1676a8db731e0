"""Helpers shared by the benchmark scripts: emulator subprocess, child runs, peak memory, tables, results.

- ``emulator_process(...)``: ``python -m aimlops_async.emulator --port 0 --json ...`` in its own
  process (so the measured process measures only itself), its JSON banner read back as an
  ``EmulatorInfo``, and the process terminated afterwards.
- ``run_child(module, args, env)``: run ``python -m <module> <args>`` and read back the one JSON
  object it prints last; each scenario in a fresh process gives it its own peak memory.
- ``peak_rss_mb()``: this process's peak resident set size.
- ``format_table(rows, columns)``: a plain-text table; ``write_results(path, payload)``: JSON
  with the machine and Python it ran on.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"

__all__ = [
    "RESULTS_DIR",
    "ROOT",
    "Column",
    "EmulatorInfo",
    "emulator_process",
    "format_table",
    "peak_rss_mb",
    "run_child",
    "write_results",
]

_BANNER_TIMEOUT = 30.0


@dataclass(frozen=True)
class EmulatorInfo:
    """What ``python -m aimlops_async.emulator --json`` prints: where it serves and with which keys."""

    url: str
    access_key: str
    secret_key: str
    account_id: str | None
    cluster_id: str
    image_id: str

    def environ(self) -> dict[str, str]:
        """The variables a client (or a child benchmark process) reads its endpoint and keys from."""
        env = {
            "AIMLOPS_ENDPOINT": self.url,
            "SCP_ACCESS_KEY": self.access_key,
            "SCP_SECRET_KEY": self.secret_key,
            "BENCH_CLUSTER_ID": self.cluster_id,
            "BENCH_IMAGE_ID": self.image_id,
        }
        if self.account_id:
            env["SCP_ACCOUNT_ID"] = self.account_id
        return env

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> EmulatorInfo:
        env = os.environ if environ is None else environ
        return cls(
            url=env["AIMLOPS_ENDPOINT"], access_key=env["SCP_ACCESS_KEY"],
            secret_key=env["SCP_SECRET_KEY"], account_id=env.get("SCP_ACCOUNT_ID") or None,
            cluster_id=env["BENCH_CLUSTER_ID"], image_id=env["BENCH_IMAGE_ID"],
        )

    def create_body(self, release_name: str) -> dict[str, Any]:
        """A valid create request in the API's JSON shape, on the emulator's seeded cluster."""
        return {
            "ai_ml_ops_platform_create_request": {
                "ai_ml_ops_platform_endpoint_type": "Private",
                "ai_ml_ops_platform_type": "Enterprise",
                "cluster_id": self.cluster_id,
                "image_id": self.image_id,
                "initial_user_email": "admin@example.com",
                "initial_user_password": "Bench-Passw0rd",
                "release_name": release_name,
            }
        }


@contextlib.contextmanager
def emulator_process(*args: str, **options: float | int | str | None) -> Iterator[EmulatorInfo]:
    """Run the emulator in a subprocess for the ``with`` block.

    Keyword options become flags (``creating_seconds=5`` is ``--creating-seconds 5``; None is left
    out); positional ``args`` are passed as they are.
    """
    argv = [sys.executable, "-m", "aimlops_async.emulator", "--host", "127.0.0.1", "--port", "0", "--json"]
    for name, value in options.items():
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    argv += list(args)
    env = {k: v for k, v in os.environ.items() if k not in ("SCP_ACCESS_KEY", "SCP_SECRET_KEY")}
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = _read_banner(process)
        yield EmulatorInfo(
            url=banner["url"], access_key=banner["access_key"], secret_key=banner["secret_key"],
            account_id=banner.get("account_id"), cluster_id=banner["cluster_id"],
            image_id=banner["image_id"],
        )
    finally:
        _stop(process)


def _read_banner(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(_BANNER_TIMEOUT)
    if not lines or not lines[0].strip():
        _stop(process)
        errors = process.stderr.read() if process.stderr is not None else ""
        raise RuntimeError(f"the emulator did not start: {errors.strip()[-2000:]}")
    banner: dict[str, Any] = json.loads(lines[0])
    return banner


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def run_child(
    module: str, args: Sequence[str], env: Mapping[str, str] | None = None, *, timeout: float | None = None
) -> dict[str, Any]:
    """Run ``python -m module args`` from the repository root; return the last JSON object it printed.

    Its stderr passes through (progress lines); a failure raises with the child's exit status.
    """
    completed = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, text=True, timeout=timeout, check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} exited with status {completed.returncode}")
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise RuntimeError(f"{module} {' '.join(args)} printed no JSON result")


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass(frozen=True)
class Column:
    """A table column: header, how to get the cell from a row, and the cell's format."""

    header: str
    value: Callable[[Mapping[str, Any]], Any]
    fmt: str = "{}"

    def cell(self, row: Mapping[str, Any]) -> str:
        value = self.value(row)
        return "-" if value is None else self.fmt.format(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A Markdown-compatible table (it reads as plain text too)."""
    cells = [[column.cell(row) for column in columns] for row in rows]
    widths = [
        max([len(column.header)] + [len(line[index]) for line in cells])
        for index, column in enumerate(columns)
    ]

    def line(values: Sequence[str]) -> str:
        padded = (value.ljust(width) for value, width in zip(values, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line([column.header for column in columns]), rule, *(line(row) for row in cells)])


def write_results(path: Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as JSON, with when and where it ran, and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **payload,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
