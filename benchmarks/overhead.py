"""Overhead benchmark: the SDK's get() and list pages against a raw signed aiohttp client, in one run.

A small aiohttp.web server runs in a separate process and answers every request with a fixed,
precomputed body, verifying nothing, so its cost is small and the same for both clients. In this
process the SDK and a raw aiohttp client (which signs the same headers with the same HMAC itself
and parses the JSON into dicts) take turns, SDK then raw, round after round, at 1, 16 and 64
concurrent tasks. Reported: requests per second, client CPU time per request
(``time.process_time`` of this process), and the ratio SDK / raw per round (min, median, max).
Micro-benchmarks: structuring a 100-platform page, signing a request, JSON decoding, and the
per-call cost of the retry wrapper.

    python -m benchmarks.overhead            # full run, about two minutes
    python -m benchmarks.overhead --quick    # a short run
    python -m benchmarks.overhead --profile get   # where the SDK's time goes (cProfile/pyinstrument)
    python -m benchmarks.overhead --instructions --telemetry --ops get   # OpenTelemetry off / on
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import hashlib
import hmac
import itertools
import json
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from benchmarks._common import Column, EmulatorInfo, emulator_process, format_table, write_results

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BASE_PATH = "/v1/aimlops-platform"
PAGE_SIZE = 100
CLIENT_TYPE = "Openapi"
# The minimal server verifies nothing, so these only need to look like real keys.
ACCESS_KEY = "bench-access-key-0001"
SECRET_KEY = "bench-secret-key-0001"
PROJECT_ID = "PROJECT-bench0001"
ACCOUNT_ID = "ACCOUNT-bench0001"

Step = Callable[[], Awaitable[object]]


# ------------------------------------------------------------------------------ fixed answers


def detail_json(release_id: str = "f3a1b2c4d5e6478899aabbccddeeff00") -> dict[str, Any]:
    """A platform detail in the reference's shape (every field present, as the service answers)."""
    return {
        "ai_ml_ops_platform_domain_service": "",
        "ai_ml_ops_platform_endpoint_ip_address": "10.0.12.34",
        "ai_ml_ops_platform_endpoint_port": "443",
        "ai_ml_ops_platform_endpoint_type": "Private",
        "ai_ml_ops_platform_type": "Enterprise",
        "cluster_id": "10a599e031e749b7b260868f441e862b",
        "cluster_name": "cluster-test",
        "cluster_state": "RUNNING",
        "created_by": "10a599e031e749b7b260868f441e862b",
        "created_dt": "2024-05-17T00:23:17Z",
        "dashboard_state": "RUNNING",
        "image_id": "20b599e031e749b7b260868f441e862b",
        "image_name": "kubeflow-1.7.1",
        "initial_user_email": "admin@example.com",
        "modified_by": "10a599e031e749b7b260868f441e862b",
        "modified_dt": "2024-05-17T00:41:09.512Z",
        "project_id": PROJECT_ID,
        "project_name": "bench",
        "release_id": release_id,
        "release_name": "aiml-bench",
        "release_state": "DEPLOYED",
        "storage_class_name": "nfs-default",
        "version": "v1.7.1",
    }


def summary_json(release_id: str, index: int) -> dict[str, Any]:
    """One platform of a list page, in the reference's shape."""
    return {
        "cluster_id": "10a599e031e749b7b260868f441e862b",
        "cluster_name": "cluster-test",
        "created_by": "10a599e031e749b7b260868f441e862b",
        "created_dt": f"2024-05-17T00:{index % 60:02d}:17Z",
        "kubeflow_type": "Enterprise" if index % 3 else "Mini",
        "modified_by": "10a599e031e749b7b260868f441e862b",
        "modified_dt": f"2024-05-18T01:{index % 60:02d}:09.{index % 1000:03d}Z",
        "release_id": release_id,
        "release_name": f"aiml-bench-{index:03d}",
        "status": ("DEPLOYED", "CREATING", "INSTALLING", "FAILED")[index % 4],
        "version": "v1.7.1",
    }


def page_json(page_marker: str = "0", size: int = PAGE_SIZE, total: int = 10**9) -> dict[str, Any]:
    """A full list page; release ids carry ``page_marker`` so every page brings new ids."""
    return {
        "contents": [summary_json(f"rel-{page_marker}-{i:04d}", i) for i in range(size)],
        "total_count": total,
    }


# ------------------------------------------------------------------------------ the server


def build_app(size: int = PAGE_SIZE) -> web.Application:
    """GET {release_id} -> a fixed detail; GET list -> a full page of ``size`` with page-unique ids."""
    detail = json.dumps(detail_json()).encode()
    # The page body is precomputed once with a marker; each answer only splices the page number in.
    page_parts = json.dumps(page_json("@PAGE@", size)).encode().split(b"@PAGE@")

    async def get_detail(request: web.Request) -> web.Response:
        return web.Response(body=detail, content_type="application/json")

    async def list_page(request: web.Request) -> web.Response:
        page = request.query.get("page", "0").encode()
        return web.Response(body=page.join(page_parts), content_type="application/json")

    app = web.Application()
    app.router.add_get(BASE_PATH, list_page)
    app.router.add_get(BASE_PATH + "/{release_id}", get_detail)
    return app


async def serve(host: str, port: int) -> None:
    """Serve until stdin closes (the parent process ending closes it too), printing the URL first."""
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    print(json.dumps({"url": f"http://{host}:{bound_port}"}), flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, _wait_for_stdin_to_close)
    finally:
        await runner.cleanup()


def _wait_for_stdin_to_close() -> None:
    while os.read(sys.stdin.fileno(), 65536):
        pass


@dataclass
class Target:
    """Where the benchmark sends requests, with the credentials and ids to use."""

    url: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    account_id: str | None = ACCOUNT_ID
    release_ids: list[str] = field(default_factory=list)
    page_size: int = PAGE_SIZE
    label: str = "minimal aiohttp.web server (fixed answers, no checks)"


@contextlib.contextmanager
def server_process(argv: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Run ``python <argv>`` from the repository root; yield the JSON line it prints first."""
    proc = subprocess.Popen(
        [sys.executable, *argv], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the server {' '.join(argv)} exited before printing its URL")
        yield json.loads(line)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=5)


# ------------------------------------------------------------------------------ the raw baseline


def raw_loads() -> Callable[[bytes], Any]:
    try:
        import orjson
    except ImportError:
        return json.loads
    return orjson.loads


class RawClient:
    """What a user would write with aiohttp alone: the same headers, HMAC signed, JSON parsed to dicts.

    Built once: the static headers (session defaults), the HMAC key object, the signature suffix.
    ``style="lean"`` (the default, the strictest baseline) sends a pre-encoded ``yarl.URL`` and
    decodes the body with the SDK's JSON decoder (orjson when installed); ``style="typical"`` is
    the usual code: a string URL and ``await response.json()`` (stdlib json).
    """

    def __init__(self, target: Target, limit: int, style: str = "lean") -> None:
        from aimlops_async._version import __version__

        self.base = target.url.rstrip("/")
        self._key = hmac.new(target.secret_key.encode(), digestmod=hashlib.sha256)
        self._suffix = f"{target.access_key}{target.account_id or ''}{CLIENT_TYPE}"
        self._loads = raw_loads()
        self.typical = style == "typical"
        self._limit = limit
        self.headers = {
            "Scp-AccessKey": target.access_key,
            "Scp-AccountId": target.account_id or "",
            "Scp-ClientType": CLIENT_TYPE,
            "Scp-Api-Version": "aimlops-platform 1.1",
            "Accept-Language": "en-US",
            "Accept": "application/json",
            "User-Agent": (
                f"aimlops-async/{__version__} python/{sys.version_info[0]}.{sys.version_info[1]} "
                f"aiohttp/{aiohttp.__version__}"
            ),
        }
        self.session: aiohttp.ClientSession | None = None

    def signed_headers(self, method: str, url: str) -> dict[str, str]:
        timestamp = str(int(time.time() * 1000))
        mac = self._key.copy()
        mac.update(f"{method}{url}{timestamp}{self._suffix}".encode())
        return {"Scp-Timestamp": timestamp, "Scp-Signature": base64.b64encode(mac.digest()).decode()}

    async def __aenter__(self) -> RawClient:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._limit),
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=30),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def get_json(self, path: str) -> Any:
        assert self.session is not None
        url = self.base + path
        if self.typical:
            async with self.session.get(url, headers=self.signed_headers("GET", url)) as response:
                if response.status != 200:
                    raise RuntimeError(f"GET {url} -> {response.status}")
                return await response.json()
        async with self.session.get(
            URL(url, encoded=True), headers=self.signed_headers("GET", url)
        ) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {url} -> {response.status}: {body[:200]!r}")
        return self._loads(body)


# ------------------------------------------------------------------------------ workloads


def sdk_get_steps(client: Any, target: Target, rng: random.Random) -> Callable[[], Step]:
    ids = target.release_ids

    def make() -> Step:
        async def step() -> object:
            return await client.platforms.get(rng.choice(ids))

        return step

    return make


def raw_get_steps(raw: RawClient, target: Target, rng: random.Random) -> Callable[[], Step]:
    ids = target.release_ids

    def make() -> Step:
        async def step() -> object:
            return await raw.get_json(f"{BASE_PATH}/{rng.choice(ids)}")

        return step

    return make


class PagerSteps:
    """Each worker walks its own ``client.platforms.list(size=...).pages()``, one page per step."""

    def __init__(self, client: Any, size: int) -> None:
        self.client = client
        self.size = size
        self.open: list[Any] = []

    def __call__(self) -> Step:
        pages: AsyncIterator[Any] | None = None

        async def step() -> object:
            nonlocal pages
            for _ in range(2):
                if pages is None:
                    pages = self.client.platforms.list(size=self.size).pages()
                    self.open.append(pages)
                try:
                    return await pages.__anext__()
                except StopAsyncIteration:
                    pages = None
            raise RuntimeError("the pager ended at once")

        return step

    async def close(self) -> None:
        for pages in self.open:
            await pages.aclose()
        self.open.clear()


def raw_page_steps(raw: RawClient, size: int) -> Callable[[], Step]:
    """The raw equivalent of walking the pager: the same query, the same stop rule."""

    def make() -> Step:
        number = 0

        async def step() -> object:
            nonlocal number
            data = await raw.get_json(f"{BASE_PATH}?size={size}&page={number}")
            items = data.get("contents") or []
            total = data.get("total_count")
            if len(items) < size or (total is not None and (number + 1) * size >= total):
                number = 0
            else:
                number += 1
            return data

        return step

    return make


@dataclass
class Sample:
    requests: int
    wall: float
    cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.requests * 1e6


async def measure(make_step: Callable[[], Step], tasks: int, count: int) -> Sample:
    """``count`` steps shared by ``tasks`` workers; wall and CPU time of this process."""
    steps = [make_step() for _ in range(tasks)]
    remaining = count

    async def worker(step: Step) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await step()

    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(step) for step in steps))
    return Sample(count, time.perf_counter() - wall, time.process_time() - cpu)


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


async def compare(
    name: str, tasks: int, count: int, rounds: int,
    sdk: Callable[[], Step], raw: Callable[[], Step],
) -> dict[str, Any]:
    """Warm both up, then SDK, raw, SDK, raw... ``rounds`` times; ratios are taken per round."""
    await measure(sdk, tasks, max(tasks, count // 5))
    await measure(raw, tasks, max(tasks, count // 5))
    sdk_runs: list[Sample] = []
    raw_runs: list[Sample] = []
    for _ in range(rounds):
        sdk_runs.append(await measure(sdk, tasks, count))
        raw_runs.append(await measure(raw, tasks, count))
    rps_ratio = [s.rps / r.rps for s, r in zip(sdk_runs, raw_runs, strict=True)]
    cpu_ratio = [s.cpu_us / r.cpu_us for s, r in zip(sdk_runs, raw_runs, strict=True)]
    return {
        "op": name,
        "tasks": tasks,
        "requests_per_run": count,
        "rounds": rounds,
        "sdk_rps": [s.rps for s in sdk_runs],
        "raw_rps": [r.rps for r in raw_runs],
        "sdk_cpu_us": [s.cpu_us for s in sdk_runs],
        "raw_cpu_us": [r.cpu_us for r in raw_runs],
        "rps_ratio": spread(rps_ratio),
        "cpu_ratio": spread(cpu_ratio),
    }


async def macro(args: argparse.Namespace, target: Target) -> list[dict[str, Any]]:
    from aimlops_async import AimlopsClient, Credentials

    credentials = Credentials(target.access_key, target.secret_key, target.account_id)
    limit = max(args.tasks)
    rows: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            AimlopsClient(target.url, credentials, max_concurrency=limit, max_retries=0)
        )
        raws = {style: await stack.enter_async_context(RawClient(target, limit, style))
                for style in args.raw}
        for op, tasks, style in itertools.product(args.ops, args.tasks, args.raw):
            rng = random.Random(args.seed)
            raw = raws[style]
            if op == "get":
                count = args.get_requests
                sdk_steps: Callable[[], Step] = sdk_get_steps(client, target, rng)
                raw_steps = raw_get_steps(raw, target, rng)
                pagers = None
            else:
                count = args.page_requests
                pagers = PagerSteps(client, target.page_size)
                sdk_steps = pagers
                raw_steps = raw_page_steps(raw, target.page_size)
            row = {"raw": style, **await compare(op, tasks, count, args.rounds, sdk_steps, raw_steps)}
            if pagers is not None:
                await pagers.close()
            rows.append(row)
            print_row(row)
    return rows


# ------------------------------------------------------------------------------ a fleet round

FLEET_PAGES = 100  # 10,000 platforms in pages of 100
_STOP_STATES = frozenset({"FAILED", "ERROR", "DELETING"})


async def fleet_round(client: Any, states: dict[str, Any], pages: int) -> dict[str, float]:
    """One round over a fleet followed by listing: every page, then each platform judged.

    Judging is what a fleet does with each listed platform: is it one of ours, did its state
    change, is it done. Returns the CPU seconds of the round, of the listing (requests, decoding,
    structuring) and of the judging, measured apart (one task, so the process's CPU while a page
    is awaited is the listing's).
    """
    listing = judging = 0.0
    changed = done = 0
    walked = 0
    round_started = mark = time.process_time()
    async with contextlib.aclosing(client.platforms.list(size=PAGE_SIZE).pages()) as walk:
        async for page in walk:
            now = time.process_time()
            listing += now - mark
            for summary in page.contents or ():
                release_id = summary.release_id
                if release_id in states:
                    state = summary.status
                    if state != states[release_id]:
                        states[release_id] = state
                        changed += 1
                    if state == "DEPLOYED" or state in _STOP_STATES:
                        done += 1
            mark = time.process_time()
            judging += mark - now
            walked += 1
            if walked == pages:
                break
    total = time.process_time() - round_started
    return {"cpu": total, "listing": listing, "judging": judging, "changed": changed, "done": done}


async def fleet(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """CPU per round of a 10,000-platform fleet on one client, the listing's share, and structuring's."""
    from aimlops_async import AimlopsClient, Credentials
    from aimlops_async.converter import structure_answer
    from aimlops_async.models import PlatformListPage

    credentials = Credentials(target.access_key, target.secret_key, target.account_id)
    states: dict[str, Any] = {
        f"rel-{page}-{index:04d}": None for page in range(FLEET_PAGES) for index in range(PAGE_SIZE)
    }
    async with AimlopsClient(target.url, credentials, max_retries=0) as client:
        await fleet_round(client, states, FLEET_PAGES)  # warm-up: the first round sees every change
        rounds = []
        for _ in range(args.fleet_rounds):
            gc.collect()
            rounds.append(await fleet_round(client, states, FLEET_PAGES))
    # Structuring alone: the same 100 answers, decoded, turned into page models.
    bodies = [json.loads(json.dumps(page_json(str(number)))) for number in range(FLEET_PAGES)]
    structuring = []
    for _ in range(args.fleet_rounds):
        started = time.process_time()
        for body in bodies:
            structure_answer(body, PlatformListPage)
        structuring.append(time.process_time() - started)
    cpu = statistics.median(r["cpu"] for r in rounds)
    result = {
        "platforms": FLEET_PAGES * PAGE_SIZE, "pages": FLEET_PAGES, "rounds": len(rounds),
        "cpu_per_round": spread([r["cpu"] for r in rounds]),
        "listing_per_round": spread([r["listing"] for r in rounds]),
        "judging_per_round": spread([r["judging"] for r in rounds]),
        "structuring_per_round": spread(structuring),
    }
    listing = statistics.median(r["listing"] for r in rounds)
    print(f"\nfleet round over {result['platforms']:,} platforms ({FLEET_PAGES} pages), one client, "
          f"{len(rounds)} rounds: CPU {cpu * 1e3:.0f} ms per round (median), listing "
          f"{listing * 1e3:.0f} ms ({listing / cpu:.0%}), of which structuring "
          f"{statistics.median(structuring) * 1e3:.0f} ms; judging "
          f"{statistics.median(r['judging'] for r in rounds) * 1e3:.1f} ms", flush=True)
    return result


# ------------------------------------------------------------------------------ micro-benchmarks


def timed(fn: Callable[[], object], number: int, repeat: int) -> dict[str, float]:
    """Seconds per call of ``fn``: min and median over ``repeat`` batches of ``number`` calls."""
    fn()
    per_call = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        per_call.append((time.perf_counter() - started) / number)
    return {"min": min(per_call), "median": statistics.median(per_call)}


async def micro(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    import backoff

    from aimlops_async.auth import SigningMiddleware, sign
    from aimlops_async.config import Credentials
    from aimlops_async.converter import structure_response
    from aimlops_async.models import PlatformDetail, PlatformListPage

    repeat = 5 if args.quick else 15
    results: dict[str, dict[str, float]] = {}
    page_bytes = json.dumps(page_json()).encode()
    detail_bytes = json.dumps(detail_json()).encode()
    page = json.loads(page_bytes)
    detail = json.loads(detail_bytes)
    results["structure a 100-platform page"] = timed(
        lambda: structure_response(page, PlatformListPage), 50, repeat
    )
    results["structure one platform detail"] = timed(
        lambda: structure_response(detail, PlatformDetail), 2000, repeat
    )
    results["json.loads a 100-platform page (stdlib)"] = timed(
        lambda: json.loads(page_bytes), 100, repeat
    )
    results["json.loads a detail (stdlib)"] = timed(lambda: json.loads(detail_bytes), 5000, repeat)
    try:
        import orjson
    except ImportError:
        pass
    else:
        results["orjson.loads a 100-platform page"] = timed(
            lambda: orjson.loads(page_bytes), 100, repeat
        )
        results["orjson.loads a detail"] = timed(lambda: orjson.loads(detail_bytes), 5000, repeat)
    signer = SigningMiddleware(Credentials(ACCESS_KEY, SECRET_KEY, ACCOUNT_ID), CLIENT_TYPE)
    url = f"http://127.0.0.1:8080{BASE_PATH}/f3a1b2c4d5e6478899aabbccddeeff00"

    def sign_with_middleware() -> str:
        return signer.signature("GET", url, signer.timestamp())

    results["sign one request (middleware, prebuilt key)"] = timed(sign_with_middleware, 5000, repeat)
    results["sign one request (auth.sign, pure function)"] = timed(
        lambda: sign(SECRET_KEY, "GET", url, "1605290625682", ACCESS_KEY, ACCOUNT_ID, CLIENT_TYPE),
        5000, repeat,
    )

    async def attempt() -> int:
        return 1

    wrapped = backoff.on_exception(backoff.expo, RuntimeError, max_tries=4, logger=None)(attempt)

    async def per_call(fn: Callable[[], Awaitable[int]], n: int = 5000) -> list[float]:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            for _ in range(n):
                await fn()
            times.append((time.perf_counter() - started) / n)
        return times

    plain = await per_call(attempt)
    backed = await per_call(wrapped)
    results["backoff.on_exception wrapper, per call (minus a plain await)"] = {
        "min": min(backed) - min(plain), "median": statistics.median(backed) - statistics.median(plain),
    }
    return results


# ------------------------------------------------------------------------------ instruction counts
#
# Wall and CPU time on a shared machine drift by tens of percent; the number of instructions a
# client executes per request does not. Under valgrind (callgrind), the same client loop runs
# once with no measured requests and once with N; the difference over N is the user-space
# instructions per request, excluding start-up, imports and warm-up (the kernel's share of
# sending and receiving is not counted, and is the same for both clients).

COLLECTED = re.compile(r"Collected : (\d+)")


async def client_loop(args: argparse.Namespace) -> None:
    """One client (SDK or raw), one workload, one task: warm up, then ``args.count`` steps."""
    from aimlops_async import AimlopsClient, Credentials

    target = Target(url=args.url, release_ids=target_ids(args.seed))
    credentials = Credentials(target.access_key, target.secret_key, target.account_id)
    rng = random.Random(args.seed)
    async with (
        AimlopsClient(
            target.url, credentials, max_retries=0, **telemetry_providers(args.client_telemetry)
        ) as client,
        RawClient(target, 1, args.raw[0]) as raw,
    ):
        pagers = PagerSteps(client, target.page_size)
        steps: Callable[[], Step] = {
            ("sdk", "get"): sdk_get_steps(client, target, rng),
            ("raw", "get"): raw_get_steps(raw, target, rng),
            ("sdk", "pages"): pagers.__call__,
            ("raw", "pages"): raw_page_steps(raw, target.page_size),
            ("sdk", "fleet"): fleet_steps(client),
        }[args.client_loop, args.client_op]
        await measure(steps, 1, 1 if args.client_op == "fleet" else 200)
        if args.count:
            await measure(steps, 1, args.count)
        await pagers.close()


def telemetry_providers(mode: str) -> dict[str, Any]:
    """The client's OpenTelemetry arguments: none (``off``), or SDK providers (``on``).

    ``on`` is the cost of instrumentation itself: every span is created, recorded and ended (a
    tracer provider without exporter), every measurement aggregated (a metric reader that is
    never collected); exporting is left out, as it depends on the exporter chosen.
    """
    if mode == "off":
        return {}
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    return {
        "tracer_provider": TracerProvider(),
        "meter_provider": MeterProvider(metric_readers=[InMemoryMetricReader()]),
    }


def count_instructions(
    url: str, client: str, op: str, count: int, seed: int, raw_style: str, telemetry: str = "off"
) -> int:
    """User-space instructions of ``count`` steps, measured as (N steps) - (0 steps) under callgrind."""
    totals = []
    for steps in (0, count):
        extra = ["--client-telemetry", telemetry] if telemetry != "off" else []
        completed = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             "-m", "benchmarks.overhead", "--client-loop", client, "--client-op", op, "--url", url,
             "--count", str(steps), "--seed", str(seed), "--raw", raw_style, *extra],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )
        found = COLLECTED.search(completed.stderr)
        if found is None:
            raise RuntimeError(f"valgrind printed no instruction count: {completed.stderr[-500:]}")
        totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) // count


def fleet_steps(client: Any) -> Callable[[], Step]:
    """One step is one fleet round (``fleet_round``) over the 10,000 platforms."""
    states: dict[str, Any] = {
        f"rel-{page}-{index:04d}": None for page in range(FLEET_PAGES) for index in range(PAGE_SIZE)
    }

    def make() -> Step:
        async def step() -> object:
            return await fleet_round(client, states, FLEET_PAGES)

        return step

    return make


def instructions(args: argparse.Namespace, target: Target) -> list[dict[str, Any]]:
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    rows = []
    if args.fleet_rounds:
        per_round = count_instructions(target.url, "sdk", "fleet", 1, args.seed, "lean")
        print(f"fleet  SDK {per_round:>12,}  instructions per round over "
              f"{FLEET_PAGES * PAGE_SIZE:,} platforms", flush=True)
        rows.append({"op": "fleet round", "sdk": per_round})
    for op in args.ops:
        count = 1000 if op == "get" else 200
        sdk = count_instructions(target.url, "sdk", op, count, args.seed, "lean")
        if args.telemetry:
            traced = count_instructions(target.url, "sdk", op, count, args.seed, "lean", "on")
            print(f"{op:<6} SDK {sdk:>10,}  with OpenTelemetry SDK providers {traced:>10,}  "
                  f"instructions per {'request' if op == 'get' else 'page'}  "
                  f"on/off {traced / sdk:.3f}", flush=True)
            rows.append({"op": op, "telemetry": "on", "sdk": sdk, "sdk_telemetry": traced})
        for style in args.raw:
            raw = count_instructions(target.url, "raw", op, count, args.seed, style)
            row = {"op": op, "raw_style": style, "sdk": sdk, "raw": raw, "ratio": sdk / raw}
            print(f"{op:<6} SDK {sdk:>10,}  raw ({style}) {raw:>10,}  instructions per "
                  f"{'request' if op == 'get' else 'page'}  SDK/raw {row['ratio']:.3f}", flush=True)
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------ profiling


async def profile_loop(args: argparse.Namespace, target: Target) -> None:
    """Run only the SDK side of one workload under a profiler and print where the time goes."""
    from aimlops_async import AimlopsClient, Credentials

    credentials = Credentials(target.access_key, target.secret_key, target.account_id)
    tasks = args.profile_tasks
    async with AimlopsClient(target.url, credentials, max_concurrency=max(tasks, 1)) as client:
        rng = random.Random(args.seed)
        pagers = PagerSteps(client, target.page_size)
        steps = sdk_get_steps(client, target, rng) if args.profile == "get" else pagers
        count = args.get_requests if args.profile == "get" else args.page_requests
        await measure(steps, tasks, max(tasks, count // 5))
        try:
            from pyinstrument import Profiler  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            sample = await measure(steps, tasks, count * 2)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        else:
            sampler = Profiler(interval=0.0002, async_mode="disabled")
            sampler.start()
            sample = await measure(steps, tasks, count * 2)
            sampler.stop()
            print(sampler.output_text(unicode=False, color=False, show_all=False))
        await pagers.close()
        print(f"{sample.rps:.0f} req/s, {sample.cpu_us:.0f} us CPU per request (profiler on)")


# ------------------------------------------------------------------------------ output


def environment() -> dict[str, Any]:
    """The CPU model and the versions of what the request path runs on (``write_results`` adds the rest)."""
    from importlib.metadata import PackageNotFoundError, version

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in ("aiohttp", "yarl", "multidict", "cattrs", "attrs", "backoff", "orjson"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return {"cpu_model": model, "usable_cpus": len(os.sched_getaffinity(0)), "packages": versions}


TABLE = (
    Column("op", lambda row: row["op"]),
    Column("tasks", lambda row: row["tasks"]),
    Column("raw baseline", lambda row: row["raw"]),
    Column("SDK req/s", lambda row: statistics.median(row["sdk_rps"]), "{:,.0f}"),
    Column("raw req/s", lambda row: statistics.median(row["raw_rps"]), "{:,.0f}"),
    Column("SDK/raw req/s min", lambda row: row["rps_ratio"]["min"], "{:.2f}"),
    Column("median", lambda row: row["rps_ratio"]["median"], "{:.2f}"),
    Column("max", lambda row: row["rps_ratio"]["max"], "{:.2f}"),
    Column("SDK CPU us/req", lambda row: statistics.median(row["sdk_cpu_us"]), "{:.0f}"),
    Column("raw CPU us/req", lambda row: statistics.median(row["raw_cpu_us"]), "{:.0f}"),
    Column("SDK/raw CPU", lambda row: row["cpu_ratio"]["median"], "{:.2f}"),
)


def print_header() -> None:
    print(
        f"{'op':<6}{'tasks':>6}{'raw':>8}{'SDK req/s':>11}{'raw req/s':>11}"
        f"{'SDK us CPU':>12}{'raw us CPU':>12}"
        f"   {'SDK/raw req/s (min med max)':<28}{'SDK/raw CPU (med)':>18}",
        flush=True,
    )


def print_row(row: dict[str, Any]) -> None:
    ratio = row["rps_ratio"]
    print(
        f"{row['op']:<6}{row['tasks']:>6}{row['raw']:>8}{statistics.median(row['sdk_rps']):>11.0f}"
        f"{statistics.median(row['raw_rps']):>11.0f}{statistics.median(row['sdk_cpu_us']):>12.0f}"
        f"{statistics.median(row['raw_cpu_us']):>12.0f}   "
        f"{ratio['min']:.2f} {ratio['median']:.2f} {ratio['max']:.2f}{'':<14}"
        f"{row['cpu_ratio']['median']:>18.2f}",
        flush=True,
    )


def print_micro(results: dict[str, dict[str, float]]) -> None:
    print(f"\n{'micro-benchmark':<62}{'min':>12}{'median':>12}")
    for name, value in results.items():
        print(f"{name:<62}{_duration(value['min']):>12}{_duration(value['median']):>12}")


def _duration(seconds: float) -> str:
    if abs(seconds) >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.2f} us"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead",
        description="SDK get() and list pages against a raw signed aiohttp client, alternating.",
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="fewer requests and rounds")
    add("--seed", type=int, default=7, help="seed for the ids requested (default: %(default)s)")
    add("--rounds", type=int, default=None, help="SDK/raw pairs per setting (default: 15, quick: 5)")
    add("--tasks", type=int, nargs="+", default=[1, 16, 64], help="concurrent tasks")
    add("--ops", nargs="+", choices=("get", "pages"), default=["get", "pages"])
    add("--get-requests", type=int, default=None, help="get() calls per run (default: 1000)")
    add("--page-requests", type=int, default=None, help="pages per run (default: 150)")
    add("--raw", choices=("lean", "typical"), nargs="+", default=["lean", "typical"],
        help="raw baselines: lean (pre-encoded URL, orjson when installed: the strictest) and/or "
        "typical (string URL, await response.json()); default: both")
    add("--server", choices=("minimal", "emulator"), default="minimal",
        help="the minimal fixed-answer server, or the emulator (which verifies every signature)")
    add("--no-micro", action="store_true", help="skip the micro-benchmarks")
    add("--fleet-rounds", type=int, default=None,
        help="rounds over a 10,000-platform fleet by listing, on one client (default: 5, quick: 3; "
        "0 skips them)")
    add("--no-macro", action="store_true", help="skip the SDK/raw comparison")
    add("--profile", choices=("get", "pages"), default=None,
        help="profile the SDK side of one workload instead of comparing")
    add("--profile-tasks", type=int, default=16)
    add("--instructions", action="store_true",
        help="count instructions per request under valgrind instead of timing (deterministic)")
    add("--telemetry", action="store_true",
        help="with --instructions: also count the SDK with OpenTelemetry SDK providers configured")
    add("--client-telemetry", choices=("off", "on"), default="off", help=argparse.SUPPRESS)
    add("--client-loop", choices=("sdk", "raw"), help=argparse.SUPPRESS)
    add("--client-op", choices=("get", "pages", "fleet"), default="get", help=argparse.SUPPRESS)
    add("--url", help=argparse.SUPPRESS)
    add("--count", type=int, default=0, help=argparse.SUPPRESS)
    add("--out", type=Path, default=RESULTS / "overhead.json", help="JSON results file")
    add("--serve", action="store_true", help=argparse.SUPPRESS)
    add("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    add("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def _defaults(args: argparse.Namespace) -> argparse.Namespace:
    # Many short SDK/raw pairs rather than a few long ones: a slow drift of the machine (other
    # processes, frequency) then hits both halves of a pair alike and cancels in its ratio.
    if args.rounds is None:
        args.rounds = 5 if args.quick else 15
    if args.get_requests is None:
        args.get_requests = 400 if args.quick else 1000
    if args.page_requests is None:
        args.page_requests = 60 if args.quick else 150
    if args.fleet_rounds is None:
        args.fleet_rounds = 3 if args.quick else 5
    return args


def target_ids(seed: int) -> list[str]:
    """The release ids requested from the minimal server (which answers any id)."""
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(32)]


@contextlib.asynccontextmanager
async def target_for(args: argparse.Namespace) -> AsyncIterator[Target]:
    ids = target_ids(args.seed)
    if args.server == "minimal":
        with server_process(["-m", "benchmarks.overhead", "--serve"]) as info:
            yield Target(url=info["url"], release_ids=ids)
        return
    with emulator_process(seed=args.seed, creating_seconds=0, installing_seconds=0) as emulator:
        target = Target(
            url=emulator.url, access_key=emulator.access_key, secret_key=emulator.secret_key,
            account_id=emulator.account_id, label="the emulator (verifies every signature)",
        )
        target.release_ids = await _seed_emulator(target, emulator)
        target.page_size = len(target.release_ids)
        yield target


async def _seed_emulator(target: Target, emulator: EmulatorInfo) -> list[str]:
    """Create the platforms the emulator run reads: one full page of them."""
    from aimlops_async import AimlopsClient, Credentials

    credentials = Credentials(target.access_key, target.secret_key, target.account_id)
    async with AimlopsClient(target.url, credentials) as client:

        async def create(i: int) -> str:
            answer = await client.platforms.create(emulator.create_body(f"bench-{i:03d}"))
            assert answer.resource_id is not None
            return answer.resource_id

        return list(await asyncio.gather(*(create(i) for i in range(PAGE_SIZE))))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; returns (and writes to ``args.out``) the results as a dict."""
    _defaults(args)
    logging.getLogger("aimlops_async").setLevel(logging.WARNING)
    results: dict[str, Any] = {
        "benchmark": "overhead", "environment": environment(), "seed": args.seed, "quick": args.quick,
        "rounds": args.rounds, "raw_styles": args.raw,
    }
    async with target_for(args) as target:
        results["server"] = target.label
        if args.profile:
            await profile_loop(args, target)
            return results
        if args.instructions:
            loop = asyncio.get_running_loop()
            results["instructions"] = await loop.run_in_executor(None, instructions, args, target)
            args.no_macro = args.no_micro = True
        if not args.no_macro:
            print(f"SDK vs raw aiohttp against {target.label}; SDK/raw per round, {args.rounds} rounds")
            print_header()
            results["macro"] = await macro(args, target)
        if args.fleet_rounds and not args.instructions:
            results["fleet"] = await fleet(args, target)
    if not args.no_micro:
        results["micro"] = await micro(args)
        print_micro(results["micro"])
    if results.get("macro"):
        print("\n" + format_table(results["macro"], TABLE))
    print(f"\nwrote {write_results(args.out, results)}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.host, args.port))
        return 0
    if args.client_loop:
        asyncio.run(client_loop(args))
        return 0
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
