"""The single-resource subcommands: list, get, create, update, delete, wait, images, nodes, checks."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from .. import AimlopsError, CheckResponse, PlatformDetail, to_json
from .common import EXIT_FAILED, EXIT_OK, UsageError, describe
from .connect import client_from_args
from .output import Output
from .plan import PLATFORM_KEY, deep_merge, expand_env, load_document
from .render import Column, detail_table, rows_table, when
from .waits import WaitOutcome, wait_many

__all__ = [
    "run_check_version",
    "run_create",
    "run_delete",
    "run_get",
    "run_images",
    "run_list",
    "run_nodes",
    "run_storage_classes",
    "run_update",
    "run_validate",
    "run_wait",
]

PLATFORM_COLUMNS = (
    Column("release name", "release_name", keep=True),
    Column("release id", "release_id", style="dim", keep=True),
    Column("status", "status", keep=True),
    Column("type", "kubeflow_type", no_wrap=True, drop=1),
    Column("version", "version", no_wrap=True, drop=3),
    Column("cluster", "cluster_name", no_wrap=True, drop=2),
    Column("created", lambda platform: when(platform.created_dt, seconds=False), keep=True),
)
IMAGE_COLUMNS = (
    Column("image id", "image_id", style="dim", keep=True),
    Column("name", "image_name", keep=True),
    Column("product type", "product_type", drop=1),
    Column("os", "os_type", drop=3),
    Column("category", "category", drop=4),
    Column("base image", "base_image", drop=2),
)
NODE_COLUMNS = (
    Column("name", "name", keep=True),
    Column("status", "status"),
    Column("roles", "roles", drop=3),
    Column("internal ip", "internal_ip", drop=2),
    Column("kubelet", "kubelet_version", drop=4),
    Column("cpu", "cpu"),
    Column("memory", "memory"),
    Column("gpu", "gpu", drop=1),
)
STORAGE_CLASS_COLUMNS = (
    Column("name", "name", keep=True),
    Column("provisioner", "provisioner"),
    Column("reclaim policy", "reclaim_policy", drop=2),
    Column("binding mode", "volume_binding_mode", drop=1),
    Column("expansion", "allow_volume_expansion"),
    Column("default", "is_default"),
)


def _count_line(count: int, noun: str, limit: int | None = None) -> Text:
    more = " (the --limit; there may be more)" if limit is not None and count >= limit else ""
    plural = noun if count == 1 else (noun + "es" if noun.endswith("s") else noun + "s")
    return Text(f"{count} {plural}{more}", style="dim")


def _show_items(
    out: Output, items: list[Any], columns: Sequence[Column], noun: str, limit: int | None
) -> int:
    """A listing: JSON items, or a table and a count line."""
    if out.json:
        out.result(items)
    else:
        out.result(items, rows_table(columns, items, width=out.width))
        out.say(_count_line(len(items), noun, limit))
    return EXIT_OK


# ---------------------------------------------------------------------------- reading


async def run_list(args: argparse.Namespace, out: Output) -> int:
    async with client_from_args(args) as client:
        pager = client.platforms.list(
            release_name=args.release_name, status=args.status, cluster_name=args.cluster_name,
            version=args.version, kubeflow_type=args.type, created_by=args.created_by,
            sort=args.sort, size=args.page_size,
        )
        items = await pager.to_list(args.limit)
    return _show_items(out, items, PLATFORM_COLUMNS, "platform", args.limit)


async def run_get(args: argparse.Namespace, out: Output) -> int:
    """Every platform that was found is shown; the others are reported on stderr (exit 1)."""
    release_ids: list[str] = list(dict.fromkeys(args.release_ids))
    async with client_from_args(args) as client:
        answers = await asyncio.gather(
            *(client.platforms.get(rid) for rid in release_ids), return_exceptions=True
        )
    found: list[PlatformDetail] = []
    failed: list[tuple[str, Exception]] = []
    for rid, answer in zip(release_ids, answers, strict=True):
        if isinstance(answer, PlatformDetail):
            found.append(answer)
        elif isinstance(answer, Exception):
            failed.append((rid, answer))
        else:
            raise answer  # KeyboardInterrupt, cancellation: not ours to swallow
    if out.json:
        out.result(found[0] if len(release_ids) == 1 and found else found)
    else:
        for detail in found:
            out.result(None, detail_table(detail, title=detail.release_name or detail.release_id))
    for rid, error in failed:
        out.warn(describe(error) if len(release_ids) == 1 else f"{rid}: {describe(error)}", prefix="error")
    return EXIT_FAILED if failed else EXIT_OK


async def run_images(args: argparse.Namespace, out: Output) -> int:
    async with client_from_args(args) as client:
        images = await client.images.list(
            image_name=args.name, sort=args.sort, size=args.page_size
        ).to_list(args.limit)
    return _show_items(out, images, IMAGE_COLUMNS, "image", args.limit)


async def run_nodes(args: argparse.Namespace, out: Output) -> int:
    async with client_from_args(args) as client:
        nodes = await client.clusters.list_nodes(
            args.cluster_id, sort=args.sort, size=args.page_size
        ).to_list(args.limit)
    return _show_items(out, nodes, NODE_COLUMNS, "node", args.limit)


async def run_storage_classes(args: argparse.Namespace, out: Output) -> int:
    async with client_from_args(args) as client:
        answer = await client.clusters.list_storage_classes(args.cluster_id)
    classes = answer.storage_classes or []
    if out.json:
        out.result(answer)
    else:
        out.result(answer, rows_table(STORAGE_CLASS_COLUMNS, classes, width=out.width))
        out.say(_count_line(len(classes), "storage class"))
    return EXIT_OK


# ----------------------------------------------------------------------------- checks


def _check_row(name: str, answer: CheckResponse) -> dict[str, Any]:
    return {"check": name, "passed": answer.result is True, "result": answer.result}


def _check_result(row: Mapping[str, Any]) -> Text:
    if row["passed"]:
        return Text("pass", style="bold green")
    reason = row["result"]
    # The service may explain itself in text; a plain false needs no echo.
    return Text("fail" if reason in (False, None) else f"fail: {reason}", style="bold red")


def _checks_output(out: Output, subject: dict[str, Any], rows: list[dict[str, Any]]) -> int:
    passed = all(row["passed"] for row in rows)
    if out.json:
        out.result({**subject, "passed": passed, "checks": rows})
    else:
        table = rows_table(
            (
                Column("check", lambda row: row["check"]),
                Column("result", _check_result),
            ),
            rows,
        )
        out.result(None, table)
    return EXIT_OK if passed else EXIT_FAILED


async def run_check_version(args: argparse.Namespace, out: Output) -> int:
    async with client_from_args(args) as client:
        answer = await client.clusters.check_version(args.cluster_id, args.version)
    return _checks_output(
        out, {"cluster_id": args.cluster_id, "version": args.version},
        [_check_row(f"version {args.version}", answer)],
    )


async def run_validate(args: argparse.Namespace, out: Output) -> int:
    both = not args.namespaces and not args.resources
    async with client_from_args(args) as client:
        calls: dict[str, Any] = {}
        if args.namespaces or both:
            calls["namespaces"] = client.clusters.validate_namespaces(args.cluster_id)
        if args.resources or both:
            calls[f"resources ({args.product_type})"] = client.clusters.validate_resources(
                args.cluster_id, args.product_type
            )
        answers = await asyncio.gather(*calls.values())
    rows = [_check_row(name, answer) for name, answer in zip(calls, answers, strict=True)]
    return _checks_output(out, {"cluster_id": args.cluster_id}, rows)


# ---------------------------------------------------------------------------- changing


def _outcomes_output(out: Output, outcomes: Sequence[WaitOutcome], *, single: bool) -> int:
    ok = all(outcome.ok for outcome in outcomes)
    if out.json:
        data = [outcome.to_json() for outcome in outcomes]
        if single:
            detail = outcomes[0].detail
            out.result({**data[0], "detail": detail})
        else:
            out.result(data)
    else:
        out.result(None, rows_table(
            (
                Column("release id", "release_id", style="dim", keep=True),
                Column("release name", "release_name", keep=True),
                Column("state", "state", keep=True),
                Column("error", lambda outcome: Text(outcome.error or "", style="red")),
            ),
            outcomes,
            width=out.width,
        ))
    return EXIT_OK if ok else EXIT_FAILED


async def _wait_with_board(
    args: argparse.Namespace, out: Output, client: Any, release_ids: Sequence[str], *,
    deleted: bool, title: str, changed_since: Mapping[str, PlatformDetail] | None = None,
) -> list[WaitOutcome]:
    async with out.board(release_ids, title=title) as board:
        return await wait_many(
            client, release_ids, board=board, deleted=deleted, timeout=args.timeout,
            changed_since=changed_since, not_found_grace=getattr(args, "not_found_grace", None),
        )


def _read_request(path: str) -> dict[str, Any]:
    document = expand_env(load_document(path), source=path)
    if not isinstance(document, Mapping):
        raise UsageError(f"{path}: must hold one request (a mapping in the API's JSON shape)")
    return dict(document)


async def run_create(args: argparse.Namespace, out: Output) -> int:
    request = _read_request(args.file)
    if args.release_name:
        request = deep_merge(request, {PLATFORM_KEY: {"release_name": args.release_name}})
    platform = request.get(PLATFORM_KEY)
    name = platform.get("release_name") if isinstance(platform, Mapping) else None
    async with client_from_args(args) as client:
        answer = await client.platforms.create(request)
        release_id = answer.resource_id
        if not args.wait:
            data = {"release_id": release_id, "release_name": name, **_without_none(answer)}
            out.result(data, Text.assemble(
                ("Creating ", ""), (str(name), "bold"), (": release id ", ""), (str(release_id), "cyan"),
                ("\nFollow it with: ", "dim"), (f"aimlops wait {release_id}", "bold"),
            ))
            return EXIT_OK
        if not release_id:
            raise AimlopsError("the service accepted the create but sent no resource_id to wait for")
        out.note(f"Creating {name} ({release_id}); waiting until it is DEPLOYED")
        outcomes = await _wait_with_board(
            args, out, client, [release_id], deleted=False, title=f"Creating {name}"
        )
    return _outcomes_output(out, outcomes, single=True)


async def run_update(args: argparse.Namespace, out: Output) -> int:
    request: dict[str, Any] = _read_request(args.file) if args.file else {}
    if args.endpoint_type:
        request["ai_ml_ops_platform_endpoint_type"] = args.endpoint_type
    if not request:
        raise UsageError("nothing to update: give --endpoint-type Public|Private or --file REQUEST")
    async with client_from_args(args) as client:
        # The detail from before the update tells the wait which DEPLOYED is the old one.
        before = await client.platforms.get(args.release_id) if args.wait else None
        answer = await client.platforms.update(args.release_id, request)
        if not args.wait or before is None:
            out.result(
                {"release_id": args.release_id, **_without_none(answer)},
                Text.assemble(("Updating ", ""), (args.release_id, "cyan")),
            )
            return EXIT_OK
        outcomes = await _wait_with_board(
            args, out, client, [args.release_id], deleted=False,
            title=f"Updating {before.release_name or args.release_id}",
            changed_since={args.release_id: before},
        )
    return _outcomes_output(out, outcomes, single=True)


def _confirm_delete(release_ids: Sequence[str], with_k8s: bool) -> bool:
    """Ask at the terminal; scripts (stdin not a terminal) and ``--yes`` are not asked."""
    what = f"{len(release_ids)} platform{'s' if len(release_ids) > 1 else ''} ({', '.join(release_ids)})"
    engine = " and the Kubernetes engines created with them" if with_k8s else ""
    sys.stderr.write(f"Delete {what}{engine}? [y/N] ")
    sys.stderr.flush()
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


async def run_delete(args: argparse.Namespace, out: Output) -> int:
    release_ids: list[str] = list(dict.fromkeys(args.release_ids))
    if not args.yes and sys.stdin.isatty() and not _confirm_delete(release_ids, args.with_k8s):
        out.warn("nothing was deleted", prefix="error")
        return EXIT_FAILED
    async with client_from_args(args) as client:
        # With --wait, a platform already being deleted is waited for, not refused: the library's
        # check of that reads again through lagging reads, as delete_and_wait does.
        delete = client.platforms.ensure_deleting if args.wait else client.platforms.delete
        answers = await asyncio.gather(
            *(delete(rid, with_k8s=args.with_k8s) for rid in release_ids),
            return_exceptions=True,
        )
        refused = {
            rid: answer
            for rid, answer in zip(release_ids, answers, strict=True)
            if isinstance(answer, BaseException)
        }
        for answer in refused.values():
            if not isinstance(answer, Exception):
                raise answer  # KeyboardInterrupt, cancellation: not ours to swallow
        accepted = [rid for rid in release_ids if rid not in refused]
        if args.wait and accepted:
            waited = {
                outcome.release_id: outcome
                for outcome in await _wait_with_board(
                    args, out, client, accepted, deleted=True,
                    title=f"Deleting {len(accepted)} platform{'s' if len(accepted) > 1 else ''}",
                )
            }
        else:
            waited = {rid: WaitOutcome(rid, state="DELETING", ok=True) for rid in accepted}
    outcomes = [
        waited[rid] if rid in waited else WaitOutcome(rid, error=describe(refused[rid]))
        for rid in release_ids
    ]
    return _outcomes_output(out, outcomes, single=False)


async def run_wait(args: argparse.Namespace, out: Output) -> int:
    release_ids: list[str] = list(dict.fromkeys(args.release_ids))
    target = "gone" if args.deleted else "DEPLOYED"
    async with client_from_args(args) as client:
        outcomes = await _wait_with_board(
            args, out, client, release_ids, deleted=args.deleted,
            title=f"Waiting for {len(release_ids)} platform{'s' if len(release_ids) > 1 else ''} "
                  f"to be {target}",
        )
    return _outcomes_output(out, outcomes, single=False)


def _without_none(model: Any) -> dict[str, Any]:
    data = to_json(model)
    return dict(data) if isinstance(data, Mapping) else {}
