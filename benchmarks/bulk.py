"""Benchmark of bulk provisioning: provision_many against a naive loop and a thread pool of blocking clients.

The emulator runs in a separate process (``python -m aimlops_async.emulator --port 0 --json``)
with fixed phase durations (default 5 s CREATING + 5 s INSTALLING = 10 s of provisioning), a
fresh one for every run. Each run is a fresh child process too, so its peak memory is its own.
For each N (``--sizes``, default 100 and 1,000):

- ``provision_many``: ``client.platforms.provision_many(requests)`` on one ``AimlopsClient``
  (the shared poller: paginated listings, one GET per platform at the end).
- ``provision_many (details=False)``: the same without the GET at the end (results carry the
  state, no detail): about one call per platform.
- ``thread pool``: what many users write today with a blocking HTTP library: a
  ``ThreadPoolExecutor`` of 32 threads (``--threads``), each platform created with ``requests``
  (signing each request itself with HMAC-SHA256) and polled with GET every ``--pool-poll``
  seconds until DEPLOYED.
- ``naive loop``: create, ``wait_until_deployed``, next. That takes hours for 1,000, so it runs
  once on a small N (``--naive-n``, 5) and its time per platform is extrapolated to each N
  (marked "extrapolated" in the table and in the JSON).

Reported: wall time, HTTP requests sent (API calls, retries included), calls per platform,
peak RSS of the measuring process, and how many platforms reached DEPLOYED. The targets are
checked for N >= 1,000: wall time under 1.5 x provisioning + 5 s, at least 5 times faster than
the thread pool, fewer than 6 API calls per platform, and at most 1.1 with ``details=False``.

    python -m benchmarks.bulk                   # 100 and 1,000 platforms (about 8 minutes)
    python -m benchmarks.bulk --sizes 1000
    python -m benchmarks.bulk --sizes 1000,5000,10000 --skip thread_pool,naive_loop
    python -m benchmarks.bulk --quick           # 100 platforms, 1 s phases (about 30 s)

Results: a table on stdout and ``benchmarks/results/bulk.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ._common import (
    RESULTS_DIR,
    Column,
    EmulatorInfo,
    emulator_process,
    format_table,
    peak_rss_mb,
    run_child,
    write_results,
)

RESULTS = RESULTS_DIR / "bulk.json"
BASE_PATH = "/v1/aimlops-platform"
PROVISION_MANY = "provision_many"
NO_DETAILS = "no_details"
THREAD_POOL = "thread_pool"
NAIVE_LOOP = "naive_loop"
LABELS = {
    PROVISION_MANY: "provision_many",
    NO_DETAILS: "provision_many (details=False)",
    THREAD_POOL: "thread pool",
    NAIVE_LOOP: "naive loop",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bulk",
        description="Provision N platforms: provision_many against a thread pool and a naive loop.",
    )
    add = parser.add_argument
    add("--sizes", default="100,1000", help="comma-separated numbers of platforms (default: %(default)s)")
    add("--quick", action="store_true", help="100 platforms, 1 s phases, 0.25-0.5 s polls, naive N=3")
    add("--creating-seconds", type=float, default=5.0, help="emulator CREATING phase (default: %(default)s)")
    add("--installing-seconds", type=float, default=5.0,
        help="emulator INSTALLING phase (default: %(default)s)")
    add("--poll-delay", type=float, default=1.0,
        help="client poll_delay: first polling interval (default: %(default)s)")
    add("--poll-max-delay", type=float, default=2.0,
        help="client poll_max_delay: polling interval cap (default: %(default)s)")
    add("--pool-poll", type=float, default=None,
        help="the thread pool's fixed GET interval (default: --poll-delay)")
    add("--threads", type=int, default=32, help="thread pool size (default: %(default)s)")
    add("--concurrency", type=int, default=16,
        help="provision_many concurrency (default: %(default)s, the library's default)")
    add("--page-size", type=int, default=100, help="provision_many listing page size")
    add("--naive-n", type=int, default=5, help="platforms the naive loop really provisions")
    add("--skip", default="",
        help="comma-separated scenarios to leave out: no_details, thread_pool, naive_loop")
    add("--seed", type=int, default=1, help="emulator seed")
    add("--out", type=Path, default=RESULTS, help="JSON results file (default: %(default)s)")
    # Internal: run one scenario in this (child) process and print its JSON result.
    add("--child", choices=(PROVISION_MANY, NO_DETAILS, THREAD_POOL, NAIVE_LOOP), help=argparse.SUPPRESS)
    add("--n", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def settle(args: argparse.Namespace) -> list[int]:
    if args.quick:
        args.sizes = "100"
        args.creating_seconds = args.installing_seconds = 1.0
        args.poll_delay, args.poll_max_delay = 0.25, 0.5
        args.naive_n = 3
    if args.pool_poll is None:
        args.pool_poll = args.poll_delay
    return [int(size) for size in str(args.sizes).split(",") if size.strip()]


# ---------------------------------------------------------------------------- the scenarios (child side)


def names(count: int) -> list[str]:
    return [f"bulk-{index:05d}" for index in range(count)]


async def run_provision_many(
    args: argparse.Namespace, info: EmulatorInfo, *, details: bool = True
) -> dict[str, Any]:
    from aimlops_async import AimlopsClient

    requests = [info.create_body(name) for name in names(args.n)]
    async with AimlopsClient(
        poll_delay=args.poll_delay, poll_max_delay=args.poll_max_delay,
        poll_timeout=max(600.0, 20 * (args.creating_seconds + args.installing_seconds)),
    ) as client:
        started = time.perf_counter()
        results = await client.platforms.provision_many(
            requests, concurrency=args.concurrency, page_size=args.page_size, details=details
        )
        wall = time.perf_counter() - started
        calls = client.stats.attempts
    return {"wall_s": wall, "calls": calls, "deployed": sum(result.ok for result in results)}


async def run_naive_loop(args: argparse.Namespace, info: EmulatorInfo) -> dict[str, Any]:
    from aimlops_async import AimlopsClient

    deployed = 0
    async with AimlopsClient(
        poll_delay=args.poll_delay, poll_max_delay=args.poll_max_delay,
        poll_timeout=max(600.0, 20 * (args.creating_seconds + args.installing_seconds)),
    ) as client:
        started = time.perf_counter()
        for name in names(args.n):
            answer = await client.platforms.create(info.create_body(name))
            assert answer.resource_id
            detail = await client.platforms.wait_until_deployed(answer.resource_id)
            deployed += detail.release_state == "DEPLOYED"
        wall = time.perf_counter() - started
        calls = client.stats.attempts
    return {"wall_s": wall, "calls": calls, "deployed": deployed}


class BlockingClient:
    """The blocking client a user would write with ``requests``: one session per thread, HMAC signing."""

    def __init__(self, info: EmulatorInfo) -> None:
        import requests

        self._requests = requests
        self.info = info
        self.calls = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[Any] = []

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._requests.Session()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def call(self, method: str, path: str, body: Any = None) -> Any:
        info = self.info
        url = info.url + path
        timestamp = str(int(time.time() * 1000))
        message = method + url + timestamp + info.access_key + (info.account_id or "") + "Openapi"
        digest = hmac.new(info.secret_key.encode(), message.encode(), hashlib.sha256).digest()
        headers = {
            "Scp-AccessKey": info.access_key,
            "Scp-AccountId": info.account_id or "",
            "Scp-Timestamp": timestamp,
            "Scp-ClientType": "Openapi",
            "Scp-Signature": base64.b64encode(digest).decode(),
            "Scp-Api-Version": "aimlops-platform 1.1",
            "Accept-Language": "en-US",
        }
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        with self._lock:
            self.calls += 1
        response = self._session().request(method, url, data=data, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def provision(self, name: str, poll: float) -> str:
        release_id = self.call("POST", BASE_PATH, self.info.create_body(name))["resource_id"]
        while True:
            time.sleep(poll)
            state = self.call("GET", f"{BASE_PATH}/{release_id}")["release_state"]
            if state in ("DEPLOYED", "FAILED", "ERROR"):
                return str(state)

    def close(self) -> None:
        for session in self._sessions:
            session.close()


def run_thread_pool(args: argparse.Namespace, info: EmulatorInfo) -> dict[str, Any]:
    client = BlockingClient(info)
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            states = list(pool.map(lambda name: client.provision(name, args.pool_poll), names(args.n)))
        wall = time.perf_counter() - started
    finally:
        client.close()
    return {"wall_s": wall, "calls": client.calls, "deployed": states.count("DEPLOYED")}


def child_main(args: argparse.Namespace) -> int:
    info = EmulatorInfo.from_environ()
    if args.child == THREAD_POOL:
        result = run_thread_pool(args, info)
    elif args.child == NAIVE_LOOP:
        result = asyncio.run(run_naive_loop(args, info))
    else:
        result = asyncio.run(run_provision_many(args, info, details=args.child != NO_DETAILS))
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------------------- the runs (parent side)


def child_args(args: argparse.Namespace, scenario: str, count: int) -> list[str]:
    return [
        "--child", scenario, "--n", str(count),
        "--creating-seconds", str(args.creating_seconds),
        "--installing-seconds", str(args.installing_seconds),
        "--poll-delay", str(args.poll_delay), "--poll-max-delay", str(args.poll_max_delay),
        "--pool-poll", str(args.pool_poll), "--threads", str(args.threads),
        "--concurrency", str(args.concurrency), "--page-size", str(args.page_size),
    ]


def measure(args: argparse.Namespace, scenario: str, count: int) -> dict[str, Any]:
    print(f"  {LABELS[scenario]}, N={count} ...", file=sys.stderr, flush=True)
    with emulator_process(
        creating_seconds=args.creating_seconds, installing_seconds=args.installing_seconds,
        seed=args.seed,
    ) as info:
        result = run_child("benchmarks.bulk", child_args(args, scenario, count), info.environ())
    row = {
        "scenario": scenario, "n": count, "measured_n": count, "extrapolated": False,
        "wall_s": round(result["wall_s"], 3), "calls": result["calls"],
        "calls_per_platform": round(result["calls"] / count, 3),
        "peak_rss_mb": round(result["peak_rss_mb"], 1), "deployed": result["deployed"],
    }
    print(f"    {row['wall_s']:.1f} s, {row['calls']} calls, {row['deployed']}/{count} deployed",
          file=sys.stderr, flush=True)
    return row


def extrapolate(measured: dict[str, Any], count: int) -> dict[str, Any]:
    per_platform = measured["wall_s"] / measured["n"]
    return {
        **measured, "n": count, "extrapolated": True,
        "wall_s": round(per_platform * count, 1),
        "calls": round(measured["calls_per_platform"] * count),
        "deployed": None,
    }


def check_targets(rows: list[dict[str, Any]], provisioning: float) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    for ours in (row for row in rows if row["scenario"] == PROVISION_MANY and row["n"] >= 1000):
        count = ours["n"]
        limit = 1.5 * provisioning + 5
        checks.append({"n": count, "target": f"wall time < 1.5 x {provisioning:g} s + 5 s = {limit:g} s",
                       "value": ours["wall_s"], "met": ours["wall_s"] < limit})
        pool = next((row for row in rows if row["scenario"] == THREAD_POOL and row["n"] == count), None)
        if pool is not None:
            speedup = pool["wall_s"] / ours["wall_s"]
            checks.append({"n": count, "target": ">= 5x faster than the thread pool",
                           "value": round(speedup, 1), "met": speedup >= 5})
        checks.append({"n": count, "target": "< 6 API calls per platform",
                       "value": ours["calls_per_platform"], "met": ours["calls_per_platform"] < 6})
        checks.append({"n": count, "target": "every platform DEPLOYED",
                       "value": ours["deployed"], "met": ours["deployed"] == count})
    for lean in (row for row in rows if row["scenario"] == NO_DETAILS and row["n"] >= 1000):
        count = lean["n"]
        checks.append({"n": count, "target": "details=False: <= 1.1 API calls per platform",
                       "value": lean["calls_per_platform"], "met": lean["calls_per_platform"] <= 1.1})
        checks.append({"n": count, "target": "details=False: every platform DEPLOYED",
                       "value": lean["deployed"], "met": lean["deployed"] == count})
    return checks


COLUMNS = (
    Column("N", lambda row: row["n"], "{:,}"),
    Column("client", lambda row: LABELS[row["scenario"]]
           + (f" (extrapolated from N={row['measured_n']})" if row["extrapolated"] else "")),
    Column("wall time (s)", lambda row: row["wall_s"], "{:,.1f}"),
    Column("vs provision_many", lambda row: row.get("slowdown"), "{:.1f}x"),
    Column("API calls", lambda row: row["calls"], "{:,}"),
    Column("calls / platform", lambda row: row["calls_per_platform"], "{:.2f}"),
    Column("peak RSS (MiB)", lambda row: row["peak_rss_mb"], "{:.0f}"),
    Column("deployed", lambda row: row["deployed"], "{:,}"),
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sizes = settle(args)
    if args.child:
        return child_main(args)
    skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    provisioning = args.creating_seconds + args.installing_seconds
    print(f"bulk benchmark: N in {sizes}, {provisioning:g} s of provisioning per platform",
          file=sys.stderr, flush=True)
    rows: list[dict[str, Any]] = []
    naive = measure(args, NAIVE_LOOP, args.naive_n) if NAIVE_LOOP not in skip else None
    for count in sizes:
        ours = measure(args, PROVISION_MANY, count)
        group = [ours]
        if NO_DETAILS not in skip:
            group.append(measure(args, NO_DETAILS, count))
        if THREAD_POOL not in skip:
            group.append(measure(args, THREAD_POOL, count))
        if naive is not None:
            group.append(naive if count == naive["n"] else extrapolate(naive, count))
        for row in group:
            row["slowdown"] = round(row["wall_s"] / ours["wall_s"], 1)
        rows += group
    checks = check_targets(rows, provisioning)
    print(format_table(rows, COLUMNS))
    for check in checks:
        verdict = "met" if check["met"] else "NOT MET"
        print(f"N={check['n']:,}: {check['target']}: {check['value']} -> {verdict}")
    path = write_results(args.out, {
        "benchmark": "bulk",
        "config": {
            "sizes": sizes, "creating_seconds": args.creating_seconds,
            "installing_seconds": args.installing_seconds, "poll_delay": args.poll_delay,
            "poll_max_delay": args.poll_max_delay, "pool_poll": args.pool_poll,
            "threads": args.threads, "concurrency": args.concurrency, "page_size": args.page_size,
            "naive_n": args.naive_n, "seed": args.seed,
        },
        "runs": rows,
        "targets": checks,
    })
    print(f"results written to {path}", file=sys.stderr)
    return 0 if all(check["met"] for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
