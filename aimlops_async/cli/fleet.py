"""``aimlops apply``: a plan of platforms provisioned with provision_many, a live board and a summary."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from .. import AimlopsClient, CreatePlatformRequest, StateJudge, TerminalStateError, Verdict, to_json
from .board import Board
from .common import EXIT_FAILED, EXIT_OK, describe
from .connect import client_from_args
from .output import Output
from .plan import load_plan
from .render import Column, duration, rows_table

__all__ = ["FleetRun", "provision", "result_json", "run_apply", "summary"]

# The library's own judge of states: a platform that will not deploy is no success here either.
DEPLOY_JUDGE = StateJudge.for_deploy()
# Above this many platforms the summary lists only the ones that need attention.
FULL_TABLE_LIMIT = 25
_TOTAL_KEYS = ("total", "created", "adopted", "in_progress", "deployed", "failed")
_FINISHING_KINDS = {"deployed": True, "failed": False, "error": False}


class FleetRun:
    """The outcome of one provisioning run: results in input order, elapsed time, API calls."""

    def __init__(self, results: Sequence[Any], seconds: float, calls: int, retries: int, wait: bool) -> None:
        self.results = list(results)
        self.seconds = seconds
        self.calls = calls
        self.retries = retries
        self.wait = wait

    def succeeded(self, result: Any) -> bool:
        state = _text(getattr(result, "state", None))
        if getattr(result, "error", None) is not None or DEPLOY_JUDGE.judge(state) is Verdict.FAILURE:
            return False
        return state == "DEPLOYED" if self.wait else bool(getattr(result, "release_id", None))

    @property
    def all_ok(self) -> bool:
        return all(self.succeeded(result) for result in self.results)

    def count(self, predicate: Callable[[Any], bool]) -> int:
        return sum(1 for result in self.results if predicate(result))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def result_json(result: Any) -> dict[str, Any]:
    error = getattr(result, "error", None)
    if isinstance(error, BaseException):
        error = describe(error)
    return {
        "release_name": result.release_name,
        "release_id": result.release_id,
        "state": _text(result.state),
        "created": bool(result.created),
        "error": None if error is None else str(error),
    }


def event_handler(board: Board, *, wait: bool) -> Callable[[Any], None]:
    """The ``on_event`` callback of provision_many: each event moves one line of the board."""

    def on_event(event: Any) -> None:
        kind = str(event.kind)
        state = _text(getattr(event, "state", None))
        error = getattr(event, "error", None)
        finishing = _FINISHING_KINDS.get(kind)
        if finishing is None and not wait and kind in ("created", "adopted"):
            finishing = True
        note = None
        if kind == "adopted":
            note = "adopted: it already existed"
        elif kind == "creating":
            state = state or "sending"
        elif error is not None and not isinstance(error, TerminalStateError):
            # A failure state needs no words: the state column shows it.
            note = describe(error) if isinstance(error, BaseException) else str(error)
        board.update(
            event.index,
            release_id=getattr(event, "release_id", None),
            state=state if state is not None or kind != "error" else "ERROR",
            note=note,
            done=finishing is not None,
            ok=finishing,
        )
        totals = getattr(event, "totals", None)
        if totals is not None:
            board.set_totals({key: getattr(totals, key) for key in _TOTAL_KEYS if hasattr(totals, key)})

    return on_event


async def provision(
    client: AimlopsClient,
    requests: Sequence[CreatePlatformRequest],
    out: Output,
    *,
    title: str,
    concurrency: int,
    wait: bool,
    timeout: float | None,
    notes: Mapping[str, str] | None = None,
) -> FleetRun:
    """provision_many with the live board; the client's call counters give the run's cost."""
    names = [request.release_name for request in requests]
    calls_before, retries_before = client.stats.calls, client.stats.retries
    async with out.board(names, title=title, notes=notes) as board:
        results = await client.platforms.provision_many(
            list(requests), concurrency=concurrency, wait=wait, timeout=timeout,
            on_event=event_handler(board, wait=wait),
        )
    return FleetRun(
        results, board.elapsed, client.stats.calls - calls_before,
        client.stats.retries - retries_before, wait,
    )


def summary(
    run: FleetRun, *, notes: Mapping[str, str] | None = None, width: int | None = None
) -> RenderableType:
    """The end-of-run table (every platform, or only those needing attention for large runs) and totals."""
    notes = notes or {}
    rows = list(enumerate(run.results))
    shown = rows if len(rows) <= FULL_TABLE_LIMIT else [
        (index, result) for index, result in rows if not run.succeeded(result)
    ]
    parts: list[RenderableType] = []
    if shown:
        parts.append(rows_table(
            (
                Column("#", lambda row: row[0], style="dim", drop=1),
                Column("release name", lambda row: row[1].release_name, keep=True),
                Column("release id", lambda row: row[1].release_id, style="dim", keep=True),
                Column("state", lambda row: _text(row[1].state), keep=True),
                Column("source", lambda row: "created" if row[1].created else "adopted", drop=2),
                Column("note", lambda row: _note(row[1], notes)),
            ),
            shown,
            width=width,
        ))
    hidden = len(rows) - len(shown)
    if hidden:
        parts.append(Text(f"… and {hidden} more {'DEPLOYED' if run.wait else 'accepted'} "
                          "(--json lists every platform)", style="dim"))
    parts.append(totals_line(run))
    return Group(*parts)


def _note(result: Any, notes: Mapping[str, str]) -> Text:
    extra = notes.get(result.release_name)
    error = result_json(result)["error"]
    if extra:
        return Text(extra, style="yellow")
    return Text(error or "", style="red")


def totals_line(run: FleetRun) -> Text:
    total = len(run.results)
    ok = run.count(run.succeeded)
    failed = total - ok
    created = run.count(lambda result: bool(result.created) and bool(result.release_id))
    adopted = run.count(lambda result: not result.created and bool(result.release_id))
    text = Text()
    text.append(f"{total} platform{'s' if total != 1 else ''} in {duration(run.seconds)}: ", style="bold")
    text.append(f"{ok} {'deployed' if run.wait else 'accepted'}", style="bold green" if ok else "")
    text.append(", ")
    text.append(f"{failed} failed", style="bold red" if failed else "")
    text.append(f"  ·  {created} created, {adopted} adopted", style="")
    per = f" ({run.calls / total:.1f} per platform)" if total else ""
    text.append(f"  ·  {run.calls} API calls{per}, {run.retries} retries", style="dim")
    return text


async def run_apply(args: argparse.Namespace, out: Output) -> int:
    plan = load_plan(args.plan)
    if args.dry_run:
        return _dry_run(plan.requests, args.plan, out)
    title = f"Provisioning {len(plan)} platform{'s' if len(plan) != 1 else ''} from {args.plan}"
    async with client_from_args(args) as client:
        run = await provision(
            client, plan.requests, out, title=title, concurrency=args.concurrency,
            wait=not args.no_wait, timeout=args.timeout,
        )
    if out.json:
        out.result([result_json(result) for result in run.results])
    else:
        out.result(None, summary(run, width=out.width))
    return EXIT_OK if run.all_ok else EXIT_FAILED


def _dry_run(requests: Sequence[CreatePlatformRequest], source: str, out: Output) -> int:
    """The plan is valid: show what it would provision, without sending anything."""
    if out.json:
        out.result([
            {**to_json(request), "ai_ml_ops_platform_create_request": {
                **to_json(request.ai_ml_ops_platform_create_request), "initial_user_password": "***",
            }}
            for request in requests
        ])
        return EXIT_OK

    def platform(request: CreatePlatformRequest) -> Any:
        return request.ai_ml_ops_platform_create_request

    out.result(None, rows_table(
        (
            Column("release name", lambda request: request.release_name, keep=True),
            Column("type", lambda request: platform(request).ai_ml_ops_platform_type),
            Column("endpoint", lambda request: platform(request).ai_ml_ops_platform_endpoint_type),
            Column("cluster", lambda request: platform(request).cluster_id
                   or Text("new Kubernetes engine", style="cyan")),
            Column("image", lambda request: platform(request).image_id, style="dim", drop=1),
        ),
        requests,
        width=out.width,
    ))
    out.say(Text(f"{source} is valid: {len(requests)} platform{'s' if len(requests) != 1 else ''}; "
                 "nothing was sent (drop --dry-run to provision)", style="green"))
    return EXIT_OK
