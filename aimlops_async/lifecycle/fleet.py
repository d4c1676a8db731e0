"""The shared poller: every wait, ``watch()`` and bulk run of a client, polled together.

``SharedPoller`` reads for whichever ``PlatformWatch`` is joined, each round by whichever costs
fewer calls: one GET per platform due, or the project's listing newest first (the first page's
``total_count`` tells how many pages that is; a walk stops once every due platform was seen,
and every joined platform it showed gets that reading too). A listing reading that may end a
wait, or that a watch needs the detail of, is followed by a GET of that platform. The rules of
each reading (404s and their grace, failures, stale reads, timeouts, failure states) are the
watch's own (``watch.py``); this module only decides what to read and when, and walks listing
pages (``walk_pages``, also used by ``provision`` to find the names that exist).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

import attrs

from ..errors import (
    AimlopsError,
    APIConnectionError,
    APIStatusError,
    BadRequestError,
    NotFoundError,
)
from ..models import PlatformDetail, PlatformListPage, PlatformSummary
from ..outcomes import may_mend
from ..pagination import AsyncPager
from ..telemetry import UNOBSERVED_WAIT, Telemetry, WaitSpan
from . import schedule
from .schedule import Timing, within
from .watch import PlatformWatch

__all__ = [
    "DEFAULT_LIST_PAGE_SIZE",
    "FLEET_SORT",
    "PAGES_AT_ONCE",
    "SAFE_PAGE_SIZE",
    "PollerStats",
    "SharedPoller",
    "closing",
    "smaller_page_size",
    "walk_pages",
]

logger = logging.getLogger("aimlops_async.lifecycle")

_T = TypeVar("_T")

# The largest page the reference's service accepts; fewer pages means fewer calls per round.
DEFAULT_LIST_PAGE_SIZE = 100
# The reference's default page size: the fallback when a server refuses a larger one.
SAFE_PAGE_SIZE = 20
# Newest first: the platforms just created sit on the first pages however large the project
# is, and a platform created during a walk shifts items down (seen twice), never skips one.
FLEET_SORT = "created_dt:desc"
# Listing pages read at once once the first page told how many there are.
PAGES_AT_ONCE = 8
# Listing readings judged between two yields to the event loop, so that a round of thousands
# of waits never blocks it for long.
_JUDGED_PER_STEP = 256


@contextlib.asynccontextmanager
async def closing(iterator: AsyncIterator[_T]) -> AsyncIterator[AsyncIterator[_T]]:
    """Close an async generator we may leave early (``break``), now rather than at collection."""
    try:
        yield iterator
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def smaller_page_size(error: AimlopsError, size: int) -> int | None:
    """After a listing failed: the API's default page size when a 400 may be about ``size``."""
    if isinstance(error, BadRequestError) and size > SAFE_PAGE_SIZE:
        logger.info("the listing refused page size %d (%s); using %d", size, error, SAFE_PAGE_SIZE)
        return SAFE_PAGE_SIZE
    return None


async def walk_pages(
    read_page: Callable[[int], Awaitable[PlatformListPage]],
    *,
    size: int,
    note: Callable[[PlatformListPage], bool],
    limit: Callable[[int | None], int],
) -> tuple[bool, int]:
    """Read a listing page by page: the first alone (its ``total_count`` tells how many there
    are), then up to ``PAGES_AT_ONCE`` at once.

    ``note(page)`` takes a page's items and says whether the walk may stop (all it wants was
    seen); ``limit(total)`` is how many pages are worth reading in all, given the listing's
    size (None while unknown). Returns whether the walk reached the listing's end (the rule of
    ``AsyncPager``: a short page, or ``total_count`` items read), and the pages read. An error
    of a page is raised once every page of its batch was answered.
    """
    read = 0
    total: int | None = None
    while True:
        worth = limit(total)
        if read >= worth:
            return False, read
        batch = 1
        if read and total is not None:
            batch = min(PAGES_AT_ONCE, worth - read, math.ceil(total / size) - read)
            if batch <= 0:
                return True, read
        outcomes = await asyncio.gather(
            *(read_page(read + index) for index in range(batch)), return_exceptions=True
        )
        read += batch
        ended = stop = False
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome.total_count is not None:
                total = outcome.total_count
            stop = note(outcome) or stop
            ended = ended or len(outcome.contents or ()) < size
        if ended or (total is not None and read * size >= total):
            return True, read
        if stop:
            return False, read


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


@attrs.define
class _Listing:
    """A round's walk: the summaries of joined platforms it showed, and whether it reached the end."""

    found: dict[str, PlatformSummary]
    ended: bool


class SharedPoller:
    """The waits of one client, polled together: every wait, ``watch()`` and bulk run joins it.

    Each member keeps its own schedule, deadline and rules (a ``PlatformWatch``); the poller runs
    one task while any member is joined, and each round reads the members that are due by
    whichever costs fewer calls: one GET each, or the project's listing newest first (its
    ``total_count`` tells how many pages that is; a walk stops once every due member was seen).
    A listing round serves every joined member it shows, due or not (a free reading), so that
    members that joined at different times soon share their rounds. A listing reading that may end a wait is
    followed by a GET of that platform, for the detail the wait returns (not for a member with
    ``listing_ends``), and so is one that shows a ``watch()`` a new state. A member with
    ``prefer_listing`` (a bulk run's) is read from the listing even when GETs would cost fewer
    calls: its platforms are the newest, on the first page.

    ``follow(member)`` joins until the member has news (see ``PlatformWatch.report``) or its
    end, then leaves; ``wait(member)`` follows to the end. Cancelling a caller removes only its
    member; the task stops when the last member leaves, and is awaited: nothing keeps running.
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
        self._observed: dict[PlatformWatch, WaitSpan] = {}  # members with a span, while tracing
        self.stats = PollerStats()

    @property
    def waiting(self) -> int:
        """How many members are joined."""
        return len(self._members)

    @property
    def asleep_until(self) -> float | None:
        """When the poller, asleep between rounds, means to wake (its ``Timing`` clock); None
        while a round runs or nothing is joined."""
        task = self._task
        return None if task is None or task.done() else self._asleep_until

    async def wait(self, member: PlatformWatch) -> PlatformDetail | None:
        """Follow ``member`` to its end with the others: the final detail (None once deleted).

        The one place where every wait of ``client.platforms`` starts and ends. A wait costs
        its ``PlatformWatch`` and one future: no task and no timer of its own (the poller keeps
        the deadlines, and bounds each request it sends by the deadlines it serves).
        """
        timing = self._platforms.timing
        observed = self._platforms.telemetry.observe_wait(
            member.release_id, until=member.until, clock=timing.clock
        )
        if observed is not UNOBSERVED_WAIT:
            with observed:
                try:
                    while member.outcome is None:
                        await self.follow(member, observed)
                finally:
                    observed.finish(member.last_state, polls=member.polls)
                return member.result()
        # Nothing recorded: no ``with`` and no ``follow`` layer, whose bound ``__exit__`` and
        # coroutine frame would live as long as the wait (thousands of them for the collector).
        while member.outcome is None:
            future = self._join(member, None)
            try:
                await future
            finally:
                await self._leave(member)
        return member.result()

    async def follow(self, member: PlatformWatch, observed: WaitSpan | None = None) -> None:
        """Join until ``member`` has news or its end, then leave (``observed``: its span, the
        parent of the GETs sent for it). Raises what ended the member with an error."""
        if member.outcome is not None:
            return
        future = self._join(member, observed)
        try:
            await future
        finally:
            await self._leave(member)

    def _join(self, member: PlatformWatch, observed: WaitSpan | None) -> asyncio.Future[None]:
        """Add ``member`` to the rounds; the future it gets ends with its news or its end."""
        member.begin(self._platforms.timing.clock())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        member.future = future
        self._members[member] = None
        if observed is not None and observed.span is not None:
            self._observed[member] = observed
        self._wake_for(member.due)
        return future

    # ---------------------------------------------------------------- joining and leaving

    def _wake_for(self, due: float) -> None:
        task = self._task
        if task is not None and not task.done():
            if self._asleep_until is None or due >= self._asleep_until:
                return
            task.cancel()  # asleep until later than this member is due: start again
            # The new task is awake (in a round) until it sleeps: a member joining meanwhile
            # must not cancel that round.
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
                        self._release(member, member.timed_out())
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
        except Exception as exc:  # a bug: hand it to every member rather than hang them
            for member in list(self._members):
                self._release(member, exc)

    async def _round(self, due: list[PlatformWatch]) -> None:
        self.stats.rounds += 1
        to_get = due
        prefer_listing = any(member.prefer_listing for member in due)
        # The readings a walk is worth: the due members', or every joined member's once the
        # project is known to fit in fewer pages than them (a member due alone, one that left
        # for its news and came back late, say, then rejoins the others' rounds).
        worth = len(due)
        if self._total is not None and self._listing_is_cheaper(len(self._members)):
            worth = len(self._members)
        if self._listing_works and (
            prefer_listing or (worth > 1 and self._listing_is_cheaper(worth))
        ):
            first_deadline = min(member.deadline for member in due)
            clock = self._platforms.timing.clock
            parent = self._listing_parent(due)
            try:
                # A stalled listing must not hold a wait past its deadline.
                async with within(None if math.isinf(first_deadline) else
                                  max(0.0, first_deadline - clock())) as scope:
                    if parent is None:
                        listing = await self._walk(due, worth, prefer_listing)
                    else:
                        with parent.current():
                            listing = await self._walk(due, worth, prefer_listing)
            except asyncio.TimeoutError:
                if not schedule.expired(scope):
                    raise
                listing = None  # the GETs below end the waits whose time is up
            if listing is not None:
                to_get = await self._judge(listing, set(due))
        await self._get_each(to_get)

    async def _judge(self, listing: _Listing, due: set[PlatformWatch]) -> list[PlatformWatch]:
        """Hand the listing's readings to the joined members; those that need a GET."""
        clock = self._platforms.timing.clock
        now = clock()
        to_get: list[PlatformWatch] = []
        for index, member in enumerate(list(self._members), 1):
            if not index % _JUDGED_PER_STEP:
                await asyncio.sleep(0)  # thousands of readings: let the loop breathe
                now = clock()
            if member.future is None or member.future.done():
                continue
            summary = listing.found.get(member.release_id)
            if summary is None:
                if member not in due:
                    continue  # not due, and the walk stopped before it: next time
                if listing.ended and member.unlisted_may_wait(now):
                    member.polls += 1  # not visible yet: the listing says as much as a 404
                    member.plan_next(now)
                else:
                    to_get.append(member)  # gone, or the walk stopped before it
                continue
            if member.accept_summary(summary, now):
                to_get.append(member)  # ending, or a new state whose detail is wanted
                continue
            member.polls += 1
            self._after_reading(member, now)
        return to_get

    def _listing_parent(self, due: list[PlatformWatch]) -> WaitSpan | None:
        """The span a listing round's calls belong under: while every traced wait it serves is
        in one trace (one bulk run's), the first one's, so that the run's trace holds its
        listings too; else none (the calls are then roots of their own)."""
        if not self._observed:
            return None
        first: WaitSpan | None = None
        trace = None
        for member in due:
            observed = self._observed.get(member)
            if observed is None or observed.span is None:
                continue
            member_trace = observed.span.get_span_context().trace_id
            if first is None:
                first, trace = observed, member_trace
            elif member_trace != trace:
                return None
        return first

    def _listing_is_cheaper(self, due: int) -> bool:
        if self._total is None:
            return True  # the first page tells: at most one call more than GETs, once
        return math.ceil(max(1, self._total) / self._page_size) < due

    async def _walk(
        self, due: list[PlatformWatch], worth: int, prefer_listing: bool
    ) -> _Listing | None:
        """The listing's summaries of the joined members' platforms, newest first; None when it
        failed. The walk stops once every due member was seen, at the last page, or before it
        would cost as many calls as the ``worth`` GETs it replaces (a due member that prefers
        the listing allows as many pages as that, at least the pages the joined platforms
        fill). Joined members that are not due yet take its readings too.
        """
        joined = {member.release_id for member in self._members}
        wanted_due = {member.release_id for member in due}
        found: dict[str, PlatformSummary] = {}

        def note(page: PlatformListPage) -> bool:
            if page.total_count is not None:
                self._total = page.total_count
            for summary in page.contents or ():
                if summary.release_id in joined:
                    found[summary.release_id] = summary
            return wanted_due <= found.keys()

        def limit(total: int | None) -> int:
            if prefer_listing:
                # At most a page per GET it replaces, but at least the pages the joined
                # platforms fill, and one more: a run's own are the newest, but those whose
                # create was answered and that have not joined yet (its creates in flight) sit
                # before the older ones, and an adopted one may sit deep.
                return max(1, worth, math.ceil(len(joined) / self._page_size) + 1)
            if total is not None and not self._listing_is_cheaper(worth):
                return 0
            return max(1, worth - 1)

        for _ in range(2):
            try:
                ended, _pages = await walk_pages(
                    self._page, size=self._page_size, note=note, limit=limit
                )
                return _Listing(found, ended)
            except AimlopsError as exc:
                smaller = smaller_page_size(exc, self._page_size)
                if smaller is not None:
                    self._page_size = smaller
                    found.clear()
                    continue
                if not may_mend(exc):
                    logger.info("the listing failed (%s); polling each platform with GET", exc)
                    self._listing_works = False
                return None
        return None

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
                self._release(member, member.timed_out())
                return
            except (NotFoundError, BadRequestError) as error:
                # Gone, not visible yet, or in doubt (then confirmed by a listing), or final.
                await member.missing(error, clock())
            except (APIStatusError, APIConnectionError) as error:
                member.failed(error)
            else:
                member.accept(detail, clock())
        except AimlopsError as error:
            self._release(member, error)
            return
        self._after_reading(member, clock())

    def _after_reading(self, member: PlatformWatch, now: float) -> None:
        if member.outcome is not None:
            self._release(member)
            return
        member.plan_next(now)
        if member.has_news:
            self._release(member)  # its caller takes the news, then joins again

    def _release(self, member: PlatformWatch, error: BaseException | None = None) -> None:
        """Hand ``member`` back to its caller: at its end (``error``, or its outcome), or news."""
        self._members.pop(member, None)
        future = member.future
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(None)
