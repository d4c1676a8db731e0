"""Benchmark of N concurrent waits on one client: shared polls, per-wait polling, a fixed-delay loop.

The emulator runs as a separate process (``python -m aimlops_async.emulator --port 0 --json``),
so the client process measures only itself. For each N (``--sizes``, default 300,1000,5000) and
each strategy, N platforms are created, then N independent waits start together on one
``AimlopsClient``:

- ``shared``: ``client.platforms.wait_until_deployed``: the waits join the client's shared
  poller, whose rounds read one GET per due wait or the project's listing pages, whichever is
  cheaper;
- ``per-wait``: the same rules, each wait polling by GET on its own (a ``SharedPoller`` of its
  own, whose one member is always read by GET): how every wait polled before the shared poller;
- ``fixed``: the naive loop users write: ``get``, then ``asyncio.sleep(fixed)``, until DEPLOYED.

Reported per run: API calls per platform (GETs and listing pages, from the client's counters)
and the project's size (the listing's cost depends on it); detection latency (the wait's return
minus the moment the emulator reached DEPLOYED, which is ``created_dt`` + creating + installing
seconds; p50, p95, max); event-loop blocking (the worst oversleep of a 10 ms monitor sleep: in
wall time, in this process's CPU time, and in CPU time less garbage collection, with the longest
collection alongside, since on CPython a full collection over thousands of live tasks is the
usual cause of a long block); burstiness (the most polls in any window over the average rate,
counted from the client-side poll timestamps after a warm-up and normalised by the waits still
running); and, in a separate pass with ``tracemalloc`` on (it slows the loop, so it never
overlaps the timing pass), the peak memory per wait.

Time is compressed: the issue's targets talk of 1 s windows after the first minute with the
default 30 s cap. Here the cap is ``--max-delay`` (10 s), so the window and the warm-up are
scaled by ``max_delay / 30``: a 1/3 s window after 20 s. The defaults (2 to 10 s polls, 15 s
phases) keep 5,000 waits within what one emulator process serves on a small machine; the
fixed loop polls every ``--delay`` (2 s).

    python -m benchmarks.waiters                    # 300, 1,000 and 5,000 waits
    python -m benchmarks.waiters --sizes 300,1000 --strategies shared,per-wait
    python -m benchmarks.waiters --quick            # 100 waits, short phases (about 20 s)

Results: a table on stdout and ``benchmarks/results/waiters.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import json
import math
import os
import random
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from aimlops_async import AimlopsClient, Credentials, PlatformDetail
from aimlops_async.lifecycle.fleet import SharedPoller
from aimlops_async.lifecycle.schedule import DEFAULT_POLL_MAX_DELAY
from aimlops_async.lifecycle.watch import PlatformWatch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "waiters.json"
STRATEGIES = ("shared", "per-wait", "fixed")
MONITOR_INTERVAL = 0.01
START_CHUNK = 100  # waits started per loop tick, so starting 5,000 tasks is not itself a stall


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.waiters",
        description="N concurrent waits on one client: shared polls, per-wait polls, a fixed loop.",
    )
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help="comma-separated strategies (default: %(default)s)")
    parser.add_argument("--sizes", default="300,1000,5000",
                        help="comma-separated numbers of concurrent waits (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="a small run: 100 waits, 2 s phases, 0.25-1 s polls")
    parser.add_argument("--seed", type=int, default=1, help="seed of the jitter and the emulator")
    parser.add_argument("--phase", type=float, default=15.0,
                        help="emulator creating and installing seconds each (default: %(default)s)")
    parser.add_argument("--delay", type=float, default=2.0, help="waiter first delay (s)")
    parser.add_argument("--max-delay", type=float, default=10.0, help="waiter delay cap (s)")
    parser.add_argument("--fixed-delay", type=float, default=None,
                        help="the baseline loop's delay (default: --delay)")
    parser.add_argument("--memory-seconds", type=float, default=None,
                        help="length of the tracemalloc pass (default: 3 x --delay, at least 2 s)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    return parser


# ---------------------------------------------------------------------------- emulator process


@contextlib.asynccontextmanager
async def emulator_process(args: argparse.Namespace) -> AsyncIterator[dict[str, Any]]:
    """Start the emulator in its own process; yield its JSON banner; always stop it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aimlops_async.emulator", "--port", "0", "--json",
        "--seed", str(args.seed),
        "--creating-seconds", str(args.phase), "--installing-seconds", str(args.phase),
        cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "SCP_ACCESS_KEY": "", "SCP_SECRET_KEY": ""},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError(f"the emulator exited before starting (status {await proc.wait()})")
        yield json.loads(line)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()


def create_body(banner: dict[str, Any], release_name: str) -> dict[str, Any]:
    return {
        "ai_ml_ops_platform_create_request": {
            "ai_ml_ops_platform_endpoint_type": "Private",
            "ai_ml_ops_platform_type": "Enterprise",
            "cluster_id": banner["cluster_id"],
            "image_id": banner["image_id"],
            "initial_user_email": "bench@example.com",
            "initial_user_password": "Bench-Passw0rd",
            "release_name": release_name,
            "storage_class_name": "",
            "tags": [],
        }
    }


# ---------------------------------------------------------------------------- measuring


class LoopMonitor:
    """Sleeps MONITOR_INTERVAL again and again; the worst oversleep is how long the loop was blocked.

    ``max_block``: the worst oversleep (wall clock). ``max_busy``: the worst oversleep counting
    only this process's CPU time in it, which leaves out the time the OS gave to other processes
    (on a loaded machine the wall-clock figure measures the machine, not the library).
    """

    def __init__(self) -> None:
        self.max_block = 0.0
        self.max_busy = 0.0
        self.max_busy_code = 0.0  # max_busy less the garbage collections within it
        self.max_gc = 0.0  # the longest garbage collection, the usual cause of a long block
        self._gc_started = 0.0
        self._gc_total = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.process_time()
        else:
            spent = time.process_time() - self._gc_started
            self._gc_total += spent
            self.max_gc = max(self.max_gc, spent)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu_before, gc_before = loop.time(), time.process_time(), self._gc_total
            await asyncio.sleep(MONITOR_INTERVAL)
            over = loop.time() - before - MONITOR_INTERVAL
            busy = min(over, time.process_time() - cpu_before)
            self.max_block = max(self.max_block, over)
            self.max_busy = max(self.max_busy, busy)
            self.max_busy_code = max(self.max_busy_code, busy - (self._gc_total - gc_before))

    def __enter__(self) -> LoopMonitor:
        self._task = asyncio.create_task(self._run())
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def burstiness(
    stamps: Sequence[float], ends: Sequence[float], *, window: float, warmup: float
) -> float:
    """The most polls in any ``window`` over the average rate, per wait still running.

    ``stamps`` (poll times) and ``ends`` (wait return times) are relative to the start of the
    waits. Measured from ``warmup`` until half the waits have returned, so the ramp-up and the
    thinning tail (where one poll of the last wait is a "burst") do not count.
    """
    ends = sorted(ends)
    stop = ends[len(ends) // 2]
    in_period = sorted(t for t in stamps if warmup <= t < stop)
    if stop - warmup < 4 * window or not in_period:
        return math.nan
    average = len(in_period) / sum(min(end, stop) - warmup for end in ends if end > warmup)
    worst = 0.0
    left = right = 0
    start = warmup
    while start + window <= stop:
        while left < len(in_period) and in_period[left] < start:
            left += 1
        while right < len(in_period) and in_period[right] < start + window:
            right += 1
        running = len(ends) - bisect.bisect_left(ends, start)
        worst = max(worst, (right - left) / (running * window))
        start += window / 4
    return worst / average


# ---------------------------------------------------------------------------- the strategies


async def fixed_delay_wait(client: AimlopsClient, release_id: str, delay: float) -> PlatformDetail:
    """The baseline: what a naive poll loop looks like."""
    while True:
        detail = await client.platforms.get(release_id)
        if detail.release_state == "DEPLOYED":
            return detail
        await asyncio.sleep(delay)


async def per_wait(client: AimlopsClient, release_id: str, args: argparse.Namespace) -> PlatformDetail:
    """One wait polling by GET on its own, with the same rules and schedule as ``shared``: a
    poller of its own (one member: one GET a round, in the poller's task)."""
    detail = await SharedPoller(client.platforms).wait(PlatformWatch(
        client.platforms, release_id, delay=args.delay, max_delay=args.max_delay, timeout=600,
    ))
    assert detail is not None
    return detail


def make_wait(
    strategy: str, client: AimlopsClient, args: argparse.Namespace
) -> Callable[[str], Awaitable[PlatformDetail]]:
    if strategy == "shared":
        return lambda release_id: client.platforms.wait_until_deployed(
            release_id, delay=args.delay, max_delay=args.max_delay, timeout=600,
        )
    if strategy == "per-wait":
        return lambda release_id: per_wait(client, release_id, args)
    return lambda release_id: fixed_delay_wait(client, release_id, args.fixed_delay)


async def start_together(
    n: int, make: Callable[[int], Awaitable[Any]]
) -> list[asyncio.Task[Any]]:
    tasks = []
    for first in range(0, n, START_CHUNK):
        tasks += [asyncio.ensure_future(make(i)) for i in range(first, min(n, first + START_CHUNK))]
        await asyncio.sleep(0)
    return tasks


async def create_all(client: AimlopsClient, banner: dict[str, Any], names: list[str]) -> list[str]:
    answers = await asyncio.gather(*(client.platforms.create(create_body(banner, n)) for n in names))
    return [answer.resource_id or "" for answer in answers]


def record_polls(client: AimlopsClient) -> list[float]:
    """Client-side timestamps (loop time) of every poll, by wrapping ``platforms.get``."""
    stamps: list[float] = []
    original = client.platforms.get
    loop = asyncio.get_running_loop()

    async def recording_get(release_id: str) -> PlatformDetail:
        stamps.append(loop.time())
        return await original(release_id)

    client.platforms.get = recording_get  # type: ignore[method-assign]
    return stamps


async def timing_pass(
    strategy: str, n: int, banner: dict[str, Any], credentials: Credentials,
    args: argparse.Namespace, tag: str,
) -> dict[str, Any]:
    async with AimlopsClient(banner["url"], credentials, poll_timeout=600) as client:
        started_creating = time.perf_counter()
        release_ids = await create_all(client, banner, [f"{tag}-{i:05d}" for i in range(n)])
        create_seconds = time.perf_counter() - started_creating
        await client.platforms.get(release_ids[0])  # first-use costs (decoders) out of the way
        project_size = (await client.platforms.list(size=1).pages().__anext__()).total_count
        stamps = record_polls(client)
        calls_before = client.stats.calls
        loop = asyncio.get_running_loop()
        wait = make_wait(strategy, client, args)
        returned_wall = [0.0] * n
        returned_loop = [0.0] * n

        async def one(index: int) -> PlatformDetail:
            detail = await wait(release_ids[index])
            returned_wall[index] = time.time()
            returned_loop[index] = loop.time()
            return detail

        gc.collect()
        with LoopMonitor() as monitor:
            t0 = loop.time()
            details = await asyncio.gather(*await start_together(n, one))
        calls = client.stats.calls - calls_before
        assert all(d.release_state == "DEPLOYED" for d in details)
        latencies = []
        for detail, wall in zip(details, returned_wall, strict=True):
            assert detail.created_dt is not None
            deployed_at = detail.created_dt.timestamp() + 2 * args.phase
            latencies.append(wall - deployed_at)
        scale = args.max_delay / DEFAULT_POLL_MAX_DELAY
        return {
            "strategy": strategy,
            "waits": n,
            "create_seconds": round(create_seconds, 2),
            "wait_seconds": round(max(returned_loop) - t0, 2),
            "project_size": project_size,
            "calls_per_platform": round(calls / n, 2),
            "gets_per_platform": round(len(stamps) / n, 2),
            "latency_p50": round(percentile(latencies, 0.50), 3),
            "latency_p95": round(percentile(latencies, 0.95), 3),
            "latency_max": round(max(latencies), 3),
            "loop_max_block_ms": round(monitor.max_block * 1000, 1),
            "loop_max_busy_ms": round(monitor.max_busy * 1000, 1),
            "loop_max_busy_without_gc_ms": round(monitor.max_busy_code * 1000, 1),
            "max_gc_ms": round(monitor.max_gc * 1000, 1),
            "burst_ratio": round(burstiness(
                [s - t0 for s in stamps], [r - t0 for r in returned_loop],
                window=1.0 * scale, warmup=60.0 * scale,
            ), 2),
            "client_attempts": client.stats.attempts,
            "client_retries": client.stats.retries,
        }


async def memory_pass(
    strategy: str, n: int, banner: dict[str, Any], credentials: Credentials,
    args: argparse.Namespace, tag: str,
) -> dict[str, Any]:
    """Peak traced memory of N running waits (started together, cancelled after a while)."""
    async with AimlopsClient(banner["url"], credentials, poll_timeout=600) as client:
        release_ids = await create_all(client, banner, [f"{tag}-{i:05d}" for i in range(n)])
        await client.platforms.get(release_ids[0])  # the connection pool is warm before tracing
        wait = make_wait(strategy, client, args)
        gc.collect()
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            tasks = await start_together(n, lambda i: wait(release_ids[i]))
            await asyncio.sleep(args.memory_seconds)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return {"peak_kb_per_wait": round((peak - base) / n / 1024, 2), "leftover_tasks": len(leftover)}


# ---------------------------------------------------------------------------- the run


def settle_args(args: argparse.Namespace) -> list[int]:
    if args.quick:
        args.phase, args.delay, args.max_delay = 2.0, 0.25, 1.0
        sizes = [100]
    else:
        sizes = [int(size) for size in str(args.sizes).split(",") if size.strip()]
    if args.fixed_delay is None:
        args.fixed_delay = args.delay
    if args.memory_seconds is None:
        args.memory_seconds = max(2.0, 3 * args.delay)
    return sizes


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = settle_args(args)
    random.seed(args.seed)
    rows: list[dict[str, Any]] = []
    async with emulator_process(args) as banner:
        credentials = Credentials(banner["access_key"], banner["secret_key"], banner["account_id"])
        strategies = [name.strip() for name in str(args.strategies).split(",") if name.strip()]
        for n in sizes:
            for strategy in strategies:
                row = await timing_pass(strategy, n, banner, credentials, args, f"t-{strategy}-{n}")
                row.update(await memory_pass(strategy, n, banner, credentials, args, f"m-{strategy}-{n}"))
                rows.append(row)
                print_row(row, header=len(rows) == 1)
    scale = args.max_delay / DEFAULT_POLL_MAX_DELAY
    return {
        "benchmark": "waiters",
        "python": sys.version.split()[0],
        "settings": {
            "seed": args.seed, "phase_seconds": args.phase, "delay": args.delay,
            "max_delay": args.max_delay, "fixed_delay": args.fixed_delay,
            "burst_window": round(scale, 3), "burst_warmup": round(60 * scale, 2),
            "memory_seconds": args.memory_seconds,
        },
        "results": rows,
    }


COLUMNS = (
    ("waits", "waits", "{:>6}"),
    ("strategy", "strategy", "{:<8}"),
    ("project_size", "project", "{:>7}"),
    ("calls_per_platform", "calls/platform", "{:>14}"),
    ("latency_p50", "latency p50 s", "{:>13}"),
    ("latency_p95", "latency p95 s", "{:>13}"),
    ("loop_max_block_ms", "loop block ms", "{:>13}"),
    ("loop_max_busy_ms", "busy ms", "{:>7}"),
    ("max_gc_ms", "gc ms", "{:>6}"),
    ("loop_max_busy_without_gc_ms", "busy-gc ms", "{:>10}"),
    ("burst_ratio", "burst ratio", "{:>11}"),
    ("peak_kb_per_wait", "KB/wait", "{:>8}"),
)


def print_row(row: dict[str, Any], *, header: bool) -> None:
    if header:
        print(" | ".join(fmt.format(title) for _, title, fmt in COLUMNS), flush=True)
        print("-|-".join("-" * len(fmt.format(title)) for _, title, fmt in COLUMNS), flush=True)
    print(" | ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results = asyncio.run(run(args))
    settings = results["settings"]
    print(
        f"\nphases {settings['phase_seconds']} s + {settings['phase_seconds']} s; wait delay "
        f"{settings['delay']}..{settings['max_delay']} s (equal jitter), fixed loop "
        f"{settings['fixed_delay']} s; burst window {settings['burst_window']} s after "
        f"{settings['burst_warmup']} s (1 s after 60 s at the 30 s default cap)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
