"""Waiting for release ids from the command line (``wait``, ``--wait``), with one board line each."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .. import AimlopsClient, AimlopsError, PlatformDetail, WaiterError, WaiterTimeoutError
from .board import Board
from .common import describe

__all__ = ["WaitOutcome", "wait_many"]

DELETED = "DELETED"  # not an API state: what the command line reports once a platform is gone


@attrs.define
class WaitOutcome:
    """How the wait for one release ended."""

    release_id: str
    release_name: str | None = None
    state: str | None = None
    ok: bool = False
    error: str | None = None
    detail: PlatformDetail | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "release_id": self.release_id,
            "release_name": self.release_name,
            "state": self.state,
            "ok": self.ok,
            "error": self.error,
        }

    def seen(self, detail: PlatformDetail | None) -> None:
        if detail is None:
            return
        self.detail = detail
        self.release_name = detail.release_name or self.release_name
        if detail.release_state is not None:
            self.state = str(detail.release_state)


async def wait_many(
    client: AimlopsClient,
    release_ids: Sequence[str],
    *,
    board: Board,
    deleted: bool = False,
    timeout: float | None = None,
    changed_since: Mapping[str, PlatformDetail] | None = None,
    not_found_grace: float | None = None,
) -> list[WaitOutcome]:
    """Wait for every release at once (DEPLOYED, or gone with ``deleted``); never raises for one of them.

    ``changed_since``: per release id, its detail from before a change just made (an update), so
    that the DEPLOYED from before the change does not count. ``not_found_grace``: how long a 404
    is tolerated (default: only for platforms this client created).
    """
    before = changed_since or {}
    return list(await asyncio.gather(*(
        _wait_one(client, board, index, release_id, deleted=deleted, timeout=timeout,
                  changed_since=before.get(release_id), not_found_grace=not_found_grace)
        for index, release_id in enumerate(release_ids)
    )))


async def _wait_one(
    client: AimlopsClient,
    board: Board,
    index: int,
    release_id: str,
    *,
    deleted: bool,
    timeout: float | None,
    changed_since: PlatformDetail | None,
    not_found_grace: float | None,
) -> WaitOutcome:
    outcome = WaitOutcome(release_id)
    board.update(index, release_id=release_id, state="waiting")
    try:
        watch = client.platforms.watch(
            release_id, timeout=timeout, until_deleted=deleted, changed_since=changed_since,
            not_found_grace=not_found_grace,
        )
        watch.on_failure = lambda error: board.update(
            index, state=f"unreachable: {describe(error)}", note=outcome.release_name
        )
        async for detail in watch:
            outcome.seen(detail)
            board.update(index, state=outcome.state, note=outcome.release_name)
        if watch.outcome == "deleted":
            outcome.state = DELETED
        outcome.ok = watch.outcome == ("deleted" if deleted else "success")
        if not outcome.ok:
            outcome.error = f"the platform ended in {outcome.state}"
    except WaiterError as exc:
        outcome.seen(exc.last_detail)
        outcome.error = _waiter_message(exc, timeout)
    except AimlopsError as exc:
        outcome.error = describe(exc)
    board.update(index, state=outcome.state or "unknown", done=True, ok=outcome.ok,
                 note=outcome.release_name if outcome.ok else outcome.error)
    return outcome


def _waiter_message(error: WaiterError, timeout: float | None) -> str:
    if isinstance(error, WaiterTimeoutError):
        limit = f" of {timeout:g}s" if timeout is not None else ""
        if error.last_error is not None:
            return f"WaiterTimeoutError: unreachable: {describe(error.last_error)} (timeout{limit})"
        return f"WaiterTimeoutError: still not there after the timeout{limit}"
    return describe(error)
