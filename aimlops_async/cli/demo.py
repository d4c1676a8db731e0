"""``aimlops demo``: a fleet provisioned on the embedded emulator, with injected faults, explained."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .. import AimlopsClient, CreatePlatformRequest
from ..emulator import Emulator, Faults
from .common import EXIT_FAILED, EXIT_OK, UsageError
from .fleet import FleetRun, provision, result_json, summary
from .output import Output
from .plan import build_plan
from .render import duration

__all__ = ["failing_names", "run_demo"]

NAME_PREFIX = "demo-"
MAX_COUNT = 5000
ERROR_RATE = 0.05
RATE_LIMIT_RATE = 0.03
FAULT_SEED = 7
INJECTED = "injected on purpose"


def failing_names(names: Sequence[str], failures: int | None) -> list[str]:
    """The names the emulator will fail: spread over the fleet, about one in fifteen, at most three."""
    count = len(names)
    if failures is None:
        failures = 0 if count < 4 else min(3, max(1, count // 15))
    failures = min(failures, count)
    if failures <= 0:
        return []
    # Evenly spaced and away from the very first platform, so the start of the run looks normal.
    return [names[(2 * k + 1) * count // (2 * failures)] for k in range(failures)]


def _demo_client(emu: Emulator, phase: float) -> AimlopsClient:
    # Polls tuned to the emulator's short phases; the real service needs the defaults (5 s to 30 s).
    return AimlopsClient(
        emu.url, emu.credentials,
        poll_delay=min(0.25, phase / 4), poll_max_delay=max(0.25, min(1.0, phase)),
        poll_timeout=max(60.0, 20 * phase), timeout=10.0, max_retries=6,
        retry_base_delay=0.05, retry_max_delay=0.5,
    )


def _requests(emu: Emulator, names: Sequence[str]) -> list[CreatePlatformRequest]:
    # The same path as `aimlops apply`: a plan with defaults, expanded and validated.
    defaults = emu.sample_create_request("placeholder")
    defaults["ai_ml_ops_platform_create_request"].pop("release_name")
    return build_plan({"defaults": defaults, "platforms": list(names)}, environ={}).requests


async def run_demo(args: argparse.Namespace, out: Output) -> int:
    count, phase = args.count, args.phase_seconds
    if not 1 <= count <= MAX_COUNT:
        raise UsageError(f"--count must be between 1 and {MAX_COUNT}, got {count}")
    if phase <= 0 or phase > 60:
        raise UsageError(f"--phase-seconds must be more than 0 and at most 60, got {phase:g}")
    width = max(3, len(str(count - 1)))
    names = [f"{NAME_PREFIX}{index:0{width}d}" for index in range(count)]
    failing = failing_names(names, args.failures)
    pattern = "^(" + "|".join(re.escape(name) for name in failing) + ")$" if failing else None
    faults = Faults(seed=FAULT_SEED, error_rate=ERROR_RATE, rate_limit_rate=RATE_LIMIT_RATE)
    _introduce(out, count, phase, failing)

    async with Emulator(
        creating_seconds=phase, installing_seconds=phase, fail_pattern=pattern, faults=faults,
    ) as emu, _demo_client(emu, phase) as client:
        requests = _requests(emu, names)
        notes = dict.fromkeys(failing, INJECTED)
        run = await provision(
            client, requests, out, title=f"Provisioning {count} platforms on the emulator",
            concurrency=args.concurrency, wait=True, timeout=None, notes=notes,
        )
        injected = dict(emu.stats.faults)
        creates = dict(emu.stats.creates)
        http_requests = emu.stats.total
        rerun = await provision(
            client, requests, out, title="Running the same requests again",
            concurrency=args.concurrency, wait=True, timeout=None, notes=notes,
        )

    unexpected = [
        result.release_name for result in run.results
        if run.succeeded(result) == (result.release_name in failing)
    ]
    duplicates = sorted(name for name, times in creates.items() if times > 1)
    rerun_created = rerun.count(lambda result: bool(result.created))
    ok = not unexpected and not duplicates and rerun_created == 0

    if out.json:
        out.result({
            "platforms": count,
            "seconds": round(run.seconds, 3),
            "api_calls": run.calls,
            "http_requests": http_requests,
            "retries": run.retries,
            "deployed": run.count(run.succeeded),
            "injected_failures": failing,
            "unexpected": unexpected,
            "injected_faults": injected,
            "duplicates": duplicates,
            "rerun": {
                "created": rerun_created,
                "adopted": rerun.count(lambda result: not result.created),
                "seconds": round(rerun.seconds, 3),
                "api_calls": rerun.calls,
            },
            "ok": ok,
            "results": [result_json(result) for result in run.results],
        })
    else:
        out.say(summary(run, notes=notes, width=out.width))
        out.say(Text())
        out.say(_findings(run, rerun, failing, unexpected, injected, duplicates, creates, http_requests))
    return EXIT_OK if ok else EXIT_FAILED


def _introduce(out: Output, count: int, phase: float, failing: Sequence[str]) -> None:
    failing_text = ", ".join(failing) if failing else "none"
    out.say(Group(
        Text.assemble(
            ("aimlops demo", "bold"),
            (f": provisioning {count} AI&MLOps platforms against the built-in emulator", ""),
        ),
        Padding(Text(
            "Everything runs on this machine: no account, no network, nothing is billed. The emulator "
            f"stands in for the real service; each platform spends {phase:g}s CREATING and "
            f"{phase:g}s INSTALLING. To show failure handling, it answers about "
            f"{ERROR_RATE:.0%} of requests with 500/503 and {RATE_LIMIT_RATE:.0%} with 429, and "
            f"these platforms are set up to end in FAILED: {failing_text}.",
            style="dim",
        ), (0, 0, 1, 2)),
    ))


def _findings(
    run: FleetRun,
    rerun: FleetRun,
    failing: Sequence[str],
    unexpected: Sequence[str],
    injected: dict[str, Any],
    duplicates: Sequence[str],
    creates: dict[str, int],
    http_requests: int,
) -> Group:
    checks = Table.grid(padding=(0, 1))
    checks.add_column(width=3, justify="right")
    checks.add_column()

    def line(ok: bool, text: str) -> None:
        checks.add_row(Text("✓" if ok else "✗", style="green" if ok else "bold red"), Text(text))

    could_deploy = len(run.results) - len(failing)
    deployed = run.count(lambda result: run.succeeded(result) and result.release_name not in failing)
    line(deployed == could_deploy,
         f"{deployed} of the {could_deploy} platforms that could deploy reached DEPLOYED")
    if failing:
        reported = run.count(lambda result: result.release_name in failing and not run.succeeded(result))
        line(reported == len(failing),
             f"{reported} of {len(failing)} injected failures came back as FAILED results: "
             "reported, not retried forever, and no other platform was held up")
    server_errors, rate_limits = injected.get("error", 0), injected.get("rate_limit", 0)
    line(not unexpected,
         f"{server_errors} injected 500/503 answers and {rate_limits} injected 429s were retried "
         "(with backoff, after Retry-After) and cost no platform")
    line(not duplicates,
         f"no platform was created twice: the emulator counted {sum(creates.values())} creates "
         f"for {len(creates)} names" if not duplicates
         else f"created more than once: {', '.join(duplicates)}")
    rerun_created = rerun.count(lambda result: bool(result.created))
    line(rerun_created == 0,
         f"running the same {len(rerun.results)} requests again created {rerun_created} and adopted "
         f"{rerun.count(lambda result: not result.created)} in {duration(rerun.seconds)}: "
         "safe to rerun after a crash or Ctrl-C")
    if unexpected:
        line(False, f"unexpected outcomes: {', '.join(unexpected)}")
    total = len(run.results)
    cost = Text(
        f"{run.calls} API calls for {total} platforms ({run.calls / total:.1f} per platform, polling "
        f"included; {http_requests} HTTP requests with the faults and retries) in {duration(run.seconds)}.",
        style="bold",
    )
    nxt = Text.assemble(
        ("Next: ", "dim"), ("aimlops emulator", "bold"),
        (" keeps an emulator running on a port; point ", "dim"),
        ("aimlops apply examples/plan.yaml", "bold"), (" at it (see the README).", "dim"),
    )
    return Group(checks, Text(), cost, nxt)
