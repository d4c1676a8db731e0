"""Many platforms followed by listing pages: the fleet poller of a bulk run.

A round lists the project newest first (filtered by the names' common prefix while that filter
proves reliable), stops as soon as every platform it waits for was seen, and reads with GET only
the platforms that reached a failure state, or success when the run wants details (for their
detail), plus those the listing should have shown but did not. A round costs about N / page
size calls instead of N GETs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from typing import Any, Protocol, TypeVar

import attrs

from ..errors import (
    AimlopsError,
    APIConnectionError,
    APIStatusError,
    BadRequestError,
    NotFoundError,
    TerminalStateError,
    WaiterTimeoutError,
)
from ..models import PlatformDetail, PlatformListPage, PlatformSummary
from ..outcomes import may_mend
from ..pagination import AsyncPager
from ..telemetry import Telemetry, WaitSpan
from . import schedule
from .schedule import Timing, within
from .states import DEPLOY_JUDGE, StateJudge, Verdict
from .watch import PlatformWatch, failure_kind, failure_text

__all__ = [
    "DEFAULT_LIST_PAGE_SIZE",
    "FLEET_SORT",
    "Fleet",
    "FleetOwner",
    "PollerStats",
    "SharedPoller",
    "closing",
    "last_page",
]

logger = logging.getLogger("aimlops_async.lifecycle")

_T = TypeVar("_T")

# The largest page the reference's service accepts; fewer pages means fewer calls per round.
DEFAULT_LIST_PAGE_SIZE = 100
# Newest first: this run's platforms sit on the first pages however large the project is, and a
# platform created during a walk shifts items down (seen twice, deduplicated), never skips one.
FLEET_SORT = "created_dt:desc"

# Listing pages a shared round reads at once once it knows how many there are.
_PAGES_AT_ONCE = 4
# Listing readings judged between two yields to the event loop, so that a round of thousands
# of waits never blocks it for long.
_JUDGED_PER_STEP = 256

_FILTERED = "filtered"
_UNFILTERED = "unfiltered"
_BY_ID = "by-id"


class Member(Protocol):
    """One request of a run, as the fleet names it."""

    @property
    def index(self) -> int: ...

    @property
    def name(self) -> str | None: ...


class Lister(Protocol):
    """What the fleet needs of ``client.platforms``."""

    timing: Timing

    async def get(self, release_id: str) -> PlatformDetail: ...

    def list(
        self, *, release_name: str | None = ..., sort: str | None = ..., size: int = ...
    ) -> AsyncPager[PlatformSummary, PlatformListPage]: ...


class FleetOwner(Protocol):
    """What the fleet needs of the run it serves (``provision``'s run)."""

    @property
    def platforms(self) -> Lister: ...

    read_slots: asyncio.Semaphore
    prefix: str
    page_size: int
    grace: float
    timeout: float
    delay: float
    max_delay: float
    details: bool  # read a platform that reached success with GET, for its detail

    async def emit(
        self, item: Any, kind: Any, *, release_id: str | None = ..., state: str | None = ...
    ) -> None: ...

    def smaller_pages(self, error: AimlopsError) -> bool: ...


@contextlib.asynccontextmanager
async def closing(iterator: AsyncIterator[_T]) -> AsyncIterator[AsyncIterator[_T]]:
    """Close an async generator we may leave early (``break``), now rather than at collection."""
    try:
        yield iterator
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def last_page(page: PlatformListPage, pages: int, size: int) -> bool:
    """Whether the pager will stop after this page (the same rule as ``AsyncPager``)."""
    count = len(page.contents or ())
    total = page.total_count
    return count < size or (total is not None and pages * size >= total)


@attrs.define(eq=False)
class _Watch:
    item: Member
    release_id: str
    since: float
    deadline: float
    future: asyncio.Future[PlatformDetail | None]  # None: succeeded, detail not read
    state: str | None = None
    listed: bool = False  # seen in a listing at least once (or found through one)
    last_detail: PlatformDetail | None = None
    polls: int = 0  # readings: listing rows and GETs
    last_error: AimlopsError | None = None  # the failure of its last GET, when that failed
    failure_kinds: set[tuple[str, int | None, str | None]] = attrs.Factory(set)  # logged once each


@attrs.define
class _Listing:
    found: dict[str, PlatformSummary]
    complete: bool  # walked to the end (or found every platform wanted)
    failed: bool = False


class Fleet:
    """Waits for many platforms at once with paginated listings, one round at a time.

    A round lists the project newest first (filtered by the names' common prefix while that
    filter proves reliable), stops as soon as every platform it waits for was seen, and reads
    with GET only the platforms that reached a success or failure state (for their detail), plus
    those the listing should have shown but did not. When the listing proves useless (a
    server-side filter that hides our platforms, or a project so large that its pages cost more
    than one GET per platform), rounds switch to one GET per platform.
    """

    def __init__(self, run: FleetOwner, judge: StateJudge = DEPLOY_JUDGE) -> None:
        self.run = run
        self.judge = judge
        self.timing = run.platforms.timing
        self.task: asyncio.Task[None] | None = None
        self.watches: dict[int, _Watch] = {}
        self.mode = _FILTERED if run.prefix else _UNFILTERED

    def _now(self) -> float:
        return self.timing.clock()

    async def wait(self, item: Member, release_id: str, state: str | None, *, listed: bool) -> _Watch:
        """Watch one platform until it is settled; the returned watch's future holds the outcome."""
        now = self._now()
        watch = _Watch(
            item, release_id, since=now, deadline=now + self.run.timeout,
            future=asyncio.get_running_loop().create_future(), state=state, listed=listed,
        )
        self.watches[item.index] = watch
        try:
            verdict = self.judge.judge(state)
            if verdict is Verdict.SUCCESS and not self.run.details:
                self._resolve(watch)  # adopted and already there: nothing to read
            elif verdict is not Verdict.IN_PROGRESS:
                # Adopted and already settled: one GET instead of a polling round.
                await self._check(watch, now)
            if not watch.future.done() and (self.task is None or self.task.done()):
                self.task = asyncio.create_task(self._poll(), name="aimlops-bulk-poller")
            await asyncio.wait({watch.future})
            return watch
        finally:
            self.watches.pop(item.index, None)
            if not watch.future.done():
                watch.future.cancel()

    def _resolve(
        self, watch: _Watch, detail: PlatformDetail | None = None, error: BaseException | None = None
    ) -> None:
        self.watches.pop(watch.item.index, None)
        if watch.future.done():
            return
        if error is not None:
            watch.future.set_exception(error)
        else:
            watch.future.set_result(detail)

    async def _poll(self) -> None:
        try:
            delays = schedule.delays(self.run.delay, self.run.max_delay)
            while self.watches:
                earliest = min(watch.deadline for watch in self.watches.values())
                await self.timing.sleep(max(0.0, min(next(delays), earliest - self._now())))
                await self._round()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug or an on_event callback's error: hand it to every waiter, which raise it.
            for watch in list(self.watches.values()):
                self._resolve(watch, error=exc)

    async def _round(self) -> None:
        now = self._now()
        watches = [watch for watch in self.watches.values() if not watch.future.done()]
        if not watches:
            return
        due = [watch for watch in watches if watch.listed or now - watch.since >= self.run.grace]
        listing = await self._list(watches, due) if self.mode != _BY_ID else None
        to_read: list[_Watch] = []
        for watch in watches:
            summary = listing.found.get(watch.release_id) if listing is not None else None
            if summary is not None:
                watch.listed = True
                watch.polls += 1
                await self._note_state(watch, summary.status)
                verdict = self.judge.judge(summary.status)
                if verdict is Verdict.SUCCESS and not self.run.details:
                    self._resolve(watch)
                elif verdict is not Verdict.IN_PROGRESS:
                    to_read.append(watch)  # for its detail
            elif self._unseen_needs_read(watch, listing, now):
                to_read.append(watch)
        if (
            not to_read and listing is not None and self.mode == _FILTERED
            and listing.complete and not listing.found
        ):
            # The filtered listing shows none of them: if GET shows the oldest exists, the
            # server's name filter is not the substring match this relies on.
            to_read.append(min(watches, key=lambda watch: watch.since))
        outcomes = await asyncio.gather(*(self._check(watch, now) for watch in to_read))
        if listing is not None and not listing.failed:
            self._adapt(listing, due, to_read, outcomes, now)
        for watch in watches:
            if not watch.future.done() and self._now() >= watch.deadline:
                failure = watch.last_error
                because = f"; the last poll failed: {failure_text(failure)}" if failure else ""
                self._resolve(watch, error=WaiterTimeoutError(
                    f"platform {watch.item.name!r} ({watch.release_id}) did not reach "
                    f"{self.judge.describe_target()} "
                    f"within {self.run.timeout:g} s (last state: {watch.state or 'unknown'}{because})",
                    release_id=watch.release_id, last_detail=watch.last_detail, last_error=failure,
                ))

    def _unseen_needs_read(self, watch: _Watch, listing: _Listing | None, now: float) -> bool:
        """Read with GET a platform the round's listing did not show?"""
        if listing is None or listing.failed or now >= watch.deadline:
            # Polling by GET, a listing that told nothing (it may keep failing: a round must not
            # stall on it), or a last look before timing out.
            return True
        # Listed before, or past the grace period: the listing should have shown it.
        return watch.listed or now - watch.since >= self.run.grace

    async def _list(self, watches: list[_Watch], due: list[_Watch]) -> _Listing:
        """Walk the listing newest first until every watched platform was seen, within a budget.

        The budget is what reading each platform with GET would cost, but at least the pages
        the watched platforms fill; a walk also stops once every due platform was seen and a
        page brought none of the others (they are not visible yet).
        """
        wanted = {watch.release_id for watch in watches}
        wanted_due = {watch.release_id for watch in due}
        size = self.run.page_size
        budget = max(1, len(due), math.ceil(len(wanted) / size))
        found: dict[str, PlatformSummary] = {}
        pages = 0
        try:
            async with self.run.read_slots:
                pager = self.run.platforms.list(
                    release_name=self.run.prefix if self.mode == _FILTERED else None,
                    sort=FLEET_SORT, size=size,
                )
                async with closing(pager.pages()) as walk:
                    async for page in walk:
                        pages += 1
                        new = 0
                        for summary in page.contents or ():
                            if summary.release_id in wanted:
                                new += summary.release_id not in found
                                found[summary.release_id] = summary
                        if len(found) == len(wanted) or last_page(page, pages, size):
                            return _Listing(found, complete=True)
                        if pages >= budget or (not new and wanted_due <= found.keys()):
                            return _Listing(found, complete=False)
        except AimlopsError as exc:
            if not may_mend(exc) and not self.run.smaller_pages(exc):
                logger.info("the listing failed (%s); polling each platform with GET instead", exc)
                self.mode = _BY_ID
            logger.debug("polling round: listing failed (%s)", exc)
            return _Listing(found, complete=False, failed=True)
        return _Listing(found, complete=True)

    def _adapt(
        self,
        listing: _Listing,
        due: list[_Watch],
        read: list[_Watch],
        outcomes: list[bool | None],
        now: float,
    ) -> None:
        """Step down from filtered listing to unfiltered, then to GET per platform, when the
        listing hides platforms that GET shows to exist."""
        hidden = [
            watch for watch, exists in zip(read, outcomes, strict=True)
            if exists and watch.release_id not in listing.found and not watch.listed
            and ((listing.complete and self.mode == _FILTERED) or now - watch.since >= self.run.grace)
        ]
        useless = (
            not listing.complete and bool(due)
            and not any(watch.release_id in listing.found for watch in due)
            and any(exists for exists in outcomes)
        )
        if not hidden and not useless:
            return
        self.mode = _UNFILTERED if self.mode == _FILTERED and not useless else _BY_ID
        logger.info(
            "the listing does not show %d platform(s) that exist; polling %s from now on",
            len(hidden) or len(due),
            "the unfiltered listing" if self.mode == _UNFILTERED else "each platform with GET",
        )

    async def _check(self, watch: _Watch, now: float) -> bool | None:
        """GET one platform and act on its state. True: it exists; False: 404; None: unknown."""
        try:
            async with self.run.read_slots:
                watch.polls += 1
                detail = await self.run.platforms.get(watch.release_id)
        except NotFoundError as exc:
            # Within the grace period a 404 is a platform not visible yet; after it, it is gone.
            if now - watch.since >= self.run.grace:
                self._resolve(watch, error=exc)
            return False
        except AimlopsError as exc:
            if not may_mend(exc):
                self._resolve(watch, error=exc)
            elif failure_kind(exc) not in watch.failure_kinds:
                watch.failure_kinds.add(failure_kind(exc))
                logger.warning("polls of platform %s fail: %s; polling on until the timeout",
                               watch.release_id, failure_text(exc))
            watch.last_error = exc
            return None
        watch.last_error = None
        watch.last_detail = detail
        state = detail.release_state
        await self._note_state(watch, state)
        verdict = self.judge.judge(state)
        if verdict is Verdict.SUCCESS:
            self._resolve(watch, detail)
        elif verdict is Verdict.FAILURE:
            self._resolve(watch, error=TerminalStateError(
                f"platform {watch.item.name!r} ({watch.release_id}) reached {state}",
                release_id=watch.release_id, state=state, last_detail=detail,
            ))
        return True

    async def _note_state(self, watch: _Watch, state: str | None) -> None:
        if state is None or state == watch.state:
            return
        watch.state = state
        await self.run.emit(watch.item, "state", release_id=watch.release_id, state=state)


# --------------------------------------------------------------------------- the shared poller


class Poller(Protocol):
    """What the shared poller needs of ``client.platforms``."""

    timing: Timing

    @property
    def telemetry(self) -> Telemetry: ...

    async def get(self, release_id: str) -> PlatformDetail: ...

    def list(
        self, *, release_name: str | None = ..., sort: str | None = ..., size: int = ...,
        page: int = ...,
    ) -> AsyncPager[PlatformSummary, PlatformListPage]: ...


@attrs.define
class PollerStats:
    """What the shared poller did: rounds, GETs of one platform, listing pages read."""

    rounds: int = 0
    gets: int = 0
    pages: int = 0


class SharedPoller:
    """The waits of one client, polled together: ``client.platforms`` waits join it.

    Each wait keeps its own schedule, deadline and rules (a ``PlatformWatch``); the poller runs
    one task while any wait is joined, and each round reads the waits that are due by whichever
    costs fewer calls: one GET per wait, or the project's listing newest first (its
    ``total_count`` tells how many pages that is; a walk stops once every due wait was seen).
    A listing reading that may end a wait is followed by a GET of that platform, for the detail
    the wait returns. A wait's 404s, failures, grace periods and stale reads are judged by its
    ``PlatformWatch`` exactly as a lone wait would judge them.

    Cancelling a wait removes only that wait; the task stops when the last wait leaves.
    """

    def __init__(self, platforms: Poller, *, page_size: int = DEFAULT_LIST_PAGE_SIZE,
                 concurrency: int = 64) -> None:
        self._platforms = platforms
        self._members: dict[PlatformWatch, None] = {}  # an ordered set: rounds read in join order
        self._task: asyncio.Task[None] | None = None
        self._asleep_until: float | None = None  # when the poller task, asleep, means to wake
        self._page_size = page_size
        self._concurrency = concurrency
        self._total: int | None = None  # the project's size, from the last listing read
        self._listing_works = True
        self._observed: dict[PlatformWatch, WaitSpan] = {}  # waits with a span, while tracing
        self.stats = PollerStats()

    @property
    def waiting(self) -> int:
        """How many waits are joined."""
        return len(self._members)

    async def wait(self, member: PlatformWatch) -> PlatformDetail | None:
        """Follow ``member`` to its end with the others: the final detail (None once deleted).

        The one place where every wait of ``client.platforms`` starts and ends. A wait costs
        its ``PlatformWatch`` and one future: no task and no timer of its own (the poller keeps
        the deadlines, and bounds each request it sends by the deadlines it serves).
        """
        timing = self._platforms.timing
        now = timing.clock()
        member.start(now)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        member.future = future
        if member.take_immediate():
            member.earliest = member.due = now
        else:
            member.plan_next(now)
        self._members[member] = None
        self._wake_for(member.due)
        with self._platforms.telemetry.observe_wait(
            member.release_id, until=member.until, clock=timing.clock
        ) as observed:
            if observed.span is not None:
                self._observed[member] = observed
            try:
                await future
            finally:
                observed.finish(member.last_state, polls=member.polls)
                await self._leave(member)
            return member.result()

    # ---------------------------------------------------------------- joining and leaving

    def _wake_for(self, due: float) -> None:
        task = self._task
        if task is not None and not task.done():
            if self._asleep_until is None or due >= self._asleep_until:
                return
            task.cancel()  # asleep until later than this wait is due: start again
            # The new task is awake (in a round) until it sleeps: a wait joining meanwhile must
            # not cancel that round.
            self._asleep_until = None
        self._task = asyncio.create_task(self._run(), name="aimlops-poller")

    async def _leave(self, member: PlatformWatch) -> None:
        self._members.pop(member, None)
        if self._observed:
            self._observed.pop(member, None)
        future = member.future
        member.future = None
        if future is not None and not future.done():
            future.cancel()
        task = self._task
        if not self._members and task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            self._task = None
            # Wait for it, so that a cancelled wait leaves nothing running behind it.
            await asyncio.wait({task})

    # ---------------------------------------------------------------- rounds

    async def _run(self) -> None:
        clock = self._platforms.timing.clock
        sleep = self._platforms.timing.sleep
        self._platforms.telemetry.detach_from_callers()  # this task serves every caller's waits
        try:
            while self._members:
                now = clock()
                wake = math.inf
                due: list[PlatformWatch] = []
                for member in list(self._members):
                    future = member.future
                    if future is None or future.done():
                        # Its task was cancelled and has yet to run its way out: no more reads.
                        self._members.pop(member, None)
                    elif member.deadline <= now:
                        self._end(member, member.timed_out())
                    elif member.earliest <= now:
                        due.append(member)  # within its window: read it with the others
                        continue
                    if member.due < wake:
                        wake = member.due
                if due:
                    await self._round(due)
                elif self._members:
                    self._asleep_until = wake
                    try:
                        await sleep(wake - now)
                    finally:
                        if self._task is asyncio.current_task():
                            self._asleep_until = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: hand it to every wait rather than hang them
            for member in list(self._members):
                self._end(member, exc)

    async def _round(self, due: list[PlatformWatch]) -> None:
        self.stats.rounds += 1
        to_get = due
        if len(due) > 1 and self._listing_is_cheaper(len(due)):
            clock = self._platforms.timing.clock
            first_deadline = min(member.deadline for member in due)
            try:
                # A stalled listing must not hold a wait past its deadline.
                async with within(None if math.isinf(first_deadline) else
                                    max(0.0, first_deadline - clock())) as scope:
                    found = await self._walk(due)
            except asyncio.TimeoutError:
                if not schedule.expired(scope):
                    raise
                found = None  # the GETs below end the waits whose time is up
            if found is not None:
                now = self._platforms.timing.clock()
                to_get = []
                for index, member in enumerate(due, 1):
                    if not index % _JUDGED_PER_STEP:
                        await asyncio.sleep(0)  # thousands of readings: let the loop breathe
                        now = self._platforms.timing.clock()
                    summary = found.get(member.release_id)
                    if summary is None or member.accept_summary(summary, now):
                        to_get.append(member)  # not listed (gone, not visible yet), or ending
                    else:
                        member.polls += 1
                        self._reschedule(member, now)
        await self._get_each(to_get)

    def _listing_is_cheaper(self, due: int) -> bool:
        if not self._listing_works:
            return False
        if self._total is None:
            return True  # the first page tells: at most one call more than GETs, once
        return math.ceil(max(1, self._total) / self._page_size) < due

    async def _walk(self, due: list[PlatformWatch]) -> dict[str, PlatformSummary] | None:
        """The listing's summaries of the due waits' platforms, newest first; None when it failed.

        The first page tells the project's size; the next pages are read a few at a time (a
        round of a large project should not take one round trip per page). The walk stops once
        every due platform was seen, at the last page, or before it would cost as many calls as
        reading each due platform with GET.
        """
        wanted = {member.release_id for member in due}
        found: dict[str, PlatformSummary] = {}
        size = self._page_size
        budget = len(due) - 1
        read = 0
        try:
            while read < budget:
                if read == 0 or self._total is None:
                    batch = 1
                else:
                    batch = min(_PAGES_AT_ONCE, budget - read, math.ceil(self._total / size) - read)
                    if batch <= 0:
                        break
                pages = await asyncio.gather(*(self._page(read + index) for index in range(batch)))
                read += batch
                ended = False
                for page in pages:
                    if page.total_count is not None:
                        self._total = page.total_count
                    for summary in page.contents or ():
                        if summary.release_id in wanted:
                            found[summary.release_id] = summary
                    ended = ended or len(page.contents or ()) < size
                if ended or len(found) == len(wanted) or not self._listing_is_cheaper(len(due)):
                    break
        except AimlopsError as exc:
            if not may_mend(exc):
                logger.info("the listing failed (%s); polling each platform with GET", exc)
                self._listing_works = False
            return None
        return found

    async def _page(self, number: int) -> PlatformListPage:
        self.stats.pages += 1
        pager = self._platforms.list(sort=FLEET_SORT, size=self._page_size, page=number)
        async with closing(pager.pages()) as walk:
            async for page in walk:
                return page
        return PlatformListPage(contents=[], total_count=self._total)

    async def _get_each(self, members: list[PlatformWatch]) -> None:
        """GET each platform, at most ``concurrency`` at once (a few workers, not a task each)."""
        if not members:
            return
        queue = iter(members)

        async def worker() -> None:
            for member in queue:
                if self._observed and member in self._observed:
                    with self._observed[member].current():  # the GET is a child of its wait
                        await self._get(member)
                else:
                    await self._get(member)

        workers = min(len(members), self._concurrency)
        if workers == 1:
            await worker()
        else:
            await asyncio.gather(*(worker() for _ in range(workers)))

    async def _get(self, member: PlatformWatch) -> None:
        if member.future is None or member.future.done():
            return
        clock = self._platforms.timing.clock
        member.polls += 1
        self.stats.gets += 1
        try:
            try:
                deadline = member.deadline
                async with within(None if math.isinf(deadline) else
                                    max(0.0, deadline - clock())) as scope:
                    detail = await self._platforms.get(member.release_id)
            except asyncio.TimeoutError:
                if not schedule.expired(scope):
                    raise
                self._end(member, member.timed_out())
                return
            except (NotFoundError, BadRequestError) as error:
                # Gone, not visible yet, or in doubt (then confirmed by a listing), or final.
                await member.missing(error, clock())
            except (APIStatusError, APIConnectionError) as error:
                member.failed(error)
            else:
                member.accept(detail, clock())
        except AimlopsError as error:
            self._end(member, error)
            return
        if member.outcome is not None:
            self._end(member)
        else:
            self._reschedule(member, clock())

    def _reschedule(self, member: PlatformWatch, now: float) -> None:
        member.plan_next(now)

    def _end(self, member: PlatformWatch, error: BaseException | None = None) -> None:
        self._members.pop(member, None)
        future = member.future
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(None)
