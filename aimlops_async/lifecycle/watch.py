"""The rules of following one platform: ``PlatformWatch``, behind ``watch()``, every wait and
each platform of a bulk run.

A watch holds one platform's schedule, deadline and judgement of readings; it reads nothing by
itself. The client's shared poller (``fleet.SharedPoller``) reads for every joined watch, with
one ``GET {release_id}`` each or the project's listing, through the client's request path (so
the session first retries what it may, within the client's limits), and hands each reading to
the watch's rules below. A watch joins the poller while its caller awaits it and leaves it
when the caller stops: no task of its own, nothing left behind when the caller is cancelled.

- Schedule: the first poll is immediate (after create, update or delete it comes after a first
  jittered ``delay``); later polls follow ``schedule.delays`` up to ``max_delay``; the whole
  wait, sleeps and requests in flight included, is bounded by ``timeout``.
- Failures the session gave up on that may mend (``outcomes.classify``: anything but final)
  never end a wait: the next poll comes on schedule (after ``Retry-After`` at least, but never
  more than the client's ``max_retry_after``, and never past the deadline). Each new kind of
  failure is logged at WARNING once; the timeout names the last one (``last_error``). A final
  answer (400, 401, 403, ...) ends it with that error.
- A 404 within ``not_found_grace`` seconds of the wait's start is a platform not visible yet.
- Deletion is confirmed, never guessed: the service's 404 (with its error code) ends a wait
  until deleted. What is in doubt is confirmed by a listing filtered by ``release_name``: a 404
  without the service's error code (a page from something in between), and a 400 (what the
  live service answers for a missing release), which counts only for a release this wait has
  seen. The gateway's 404 page is an ``AuthenticationError``: it ends the wait with that
  error, never as "deleted".
- Stale reads: with ``changed_since`` (``update_and_wait`` and ``delete_and_wait`` set it, and a
  change this client made lately counts too), a success or failure reading counts only once the
  change has shown: a newer ``modified_dt``, an in-progress state, or a state other than the one
  before; or, for changes that finish without any visible sign, once ``stale_grace`` seconds
  have passed.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from ..errors import (
    APIConnectionError,
    APIStatusError,
    BadRequestError,
    NotFoundError,
    TerminalStateError,
    ValidationError,
    WaiterTimeoutError,
    describe,
)
from ..models import PlatformDetail, PlatformListPage, PlatformSummary, ReleaseState
from ..outcomes import Outcome, classify
from ..telemetry import UNOBSERVED_WAIT, Telemetry, WaitSpan
from . import schedule
from .schedule import PollDefaults, Timing
from .states import StateJudge, Verdict, state_text

if TYPE_CHECKING:
    from ..pagination import AsyncPager


__all__ = [
    "DEFAULT_NOT_FOUND_GRACE",
    "DEFAULT_STALE_GRACE",
    "FIRST_READING",
    "REPORT_CHANGES",
    "REPORT_END",
    "REPORT_STATES",
    "ChangedSince",
    "Follower",
    "PlatformWatch",
    "Reader",
    "Report",
]

logger = logging.getLogger("aimlops_async.lifecycle")

# A platform may stay invisible to GET for a moment after create (eventually consistent reads).
# Only for platforms this client just created (or when a caller asks): any other id that is not
# found is a mistake, said at once.
DEFAULT_NOT_FOUND_GRACE = 30.0
# The longest server-asked delay a wait honours when the client has no setting of its own.
DEFAULT_MAX_RETRY_AFTER = 60.0
# Floor of the stale-read grace; the grace is max(this, STALE_GRACE_DELAYS * delay). It only
# matters for a change that finishes without any visible sign (no new modified_dt, no
# in-progress state), so erring long costs little, and erring short returns stale data.
DEFAULT_STALE_GRACE = 10.0
STALE_GRACE_DELAYS = 3

# The outcomes of a watch (PlatformWatch.outcome).
SUCCESS: Literal["success"] = "success"
FAILURE: Literal["failure"] = "failure"
DELETED: Literal["deleted"] = "deleted"
WatchOutcome = Literal["success", "failure", "deleted"]

# What a member of the shared poller reports before its end (PlatformWatch.report): nothing
# (a wait), each detail with a new state (``watch()``: a listing's reading that shows a new
# state is followed by a GET for that detail), or each new release_state as any reading shows
# it, a listing's included (a bulk run's "state" events: no GET for them).
REPORT_END: Literal["end"] = "end"
REPORT_CHANGES: Literal["changes"] = "changes"
REPORT_STATES: Literal["states"] = "states"
Report = Literal["end", "changes", "states"]


class Follower(Protocol):
    """The shared poller, as a watch sees it (``fleet.SharedPoller``)."""

    async def follow(self, member: PlatformWatch, observed: WaitSpan | None = ...) -> None: ...


class Reader(Protocol):
    """What a watch needs of ``client.platforms``: GET and a filtered listing, the shared poller,
    the poll defaults, the timing, the telemetry and the longest server-asked delay
    (``max_retry_after``)."""

    poll_defaults: PollDefaults
    timing: Timing

    @property
    def poller(self) -> Follower: ...

    @property
    def telemetry(self) -> Telemetry: ...

    @property
    def max_retry_after(self) -> float: ...

    async def get(self, release_id: str) -> PlatformDetail: ...

    def list(
        self, *, release_name: str | None = ..., sort: str | None = ..., size: int = ...
    ) -> AsyncPager[PlatformSummary, PlatformListPage]: ...


class _FirstReading:
    """``changed_since`` marker: take the first reading as the "before" state."""


FIRST_READING = _FirstReading()

ChangedSince = PlatformDetail | datetime | _FirstReading | None


class PlatformWatch:
    """An async iterator over a platform's details, one per change of state (``client.platforms.watch``).

    Yields the first reading, then a detail each time ``release_state`` or ``cluster_state``
    changes, and finally the detail that reached a success or failure state, after which the
    iteration ends. It does not raise on a failure state: check ``outcome`` (``"success"``,
    ``"failure"``, or ``"deleted"`` when ``until_deleted`` and the platform is gone) or the last
    detail's ``release_state``. It raises ``WaiterTimeoutError`` past ``timeout``, and the
    ``APIStatusError`` that ended it otherwise (``NotFoundError`` after the grace, 400, 401, 403).

    ``last_error`` is the failure of the last poll when it failed (else None); ``on_failure``, if
    set, is called with each new kind of failure (the command line's board shows it).

    ``last_detail`` is the last detail seen (also stale ones), ``polls`` the number of readings
    (GETs and listing rows). Its polls go through the client's ``SharedPoller`` (``fleet.py``),
    like those of every wait: each step of ``async for`` joins the poller until the watch has
    news (a new state, or its end), then leaves it, so that between steps nothing runs for it
    and breaking out of the loop leaves nothing running. When the poller reads the listing, a
    reading that shows a new ``release_state`` is followed by a GET, for the detail yielded; a
    change of ``cluster_state`` alone shows at the next GET of this platform.

    The same object is each wait's and each bulk run platform's member of the poller; its
    options for that: ``report`` (what counts as news before the end: ``"end"`` for a wait,
    ``"changes"`` for ``watch()``, ``"states"`` for a bulk run's state events, which take a
    listing's reading as it is), ``listing_ends`` (a success state in the listing ends the
    wait without a GET, for a bulk run that wants no details) and ``prefer_listing`` (read from
    the listing even when GETs would cost fewer calls: a bulk run's platforms are the newest).
    """

    __slots__ = (
        "_attempt",
        "_base_modified",
        "_base_state",
        "_begun",
        "_closed",
        "_deadline",
        "_failure_kinds",
        "_first_modified",
        "_first_pending",
        "_immediate",
        "_known_name",
        "_last_key",
        "_listed_row",
        "_observed",
        "_pending",
        "_reader",
        "_reported_state",
        "_retry_after",
        "_seen",
        "_settled",
        "_started",
        "_state_from_first",
        "_warned",
        "delay",
        "due",
        "earliest",
        "future",
        "judge",
        "last_detail",
        "last_error",
        "listing_ends",
        "max_delay",
        "not_found_grace",
        "on_failure",
        "outcome",
        "polls",
        "prefer_listing",
        "release_id",
        "report",
        "stale_grace",
        "timeout",
        "until_deleted",
    )

    def __init__(
        self,
        reader: Reader,
        release_id: str,
        *,
        success_states: Iterable[str] | None = None,
        failure_states: Iterable[str] | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        timeout: float | None = None,
        not_found_grace: float | None = None,
        stale_grace: float | None = None,
        changed_since: ChangedSince = None,
        noted_change: datetime | None = None,
        until_deleted: bool = False,
        immediate: bool = True,
        seen: PlatformDetail | bool = False,
        report: Report = REPORT_END,
        listing_ends: bool = False,
        prefer_listing: bool = False,
    ) -> None:
        if not isinstance(release_id, str) or not release_id.strip():
            raise ValidationError(f"must be a non-empty string, got {release_id!r}", "release_id")
        defaults = reader.poll_defaults
        self.release_id = release_id
        self.until_deleted = bool(until_deleted)
        self.delay, self.max_delay = defaults.resolve(delay, max_delay)
        self.timeout = schedule.positive(defaults.timeout if timeout is None else timeout, "timeout")
        self.not_found_grace = schedule.non_negative(
            DEFAULT_NOT_FOUND_GRACE if not_found_grace is None else not_found_grace, "not_found_grace"
        )
        self.stale_grace = schedule.non_negative(
            max(DEFAULT_STALE_GRACE, STALE_GRACE_DELAYS * self.delay) if stale_grace is None
            else stale_grace,
            "stale_grace",
        )
        if self.until_deleted:
            self.judge = StateJudge.for_delete(failure_states)
        else:
            self.judge = StateJudge.for_deploy(success_states, failure_states)
        if report not in (REPORT_END, REPORT_CHANGES, REPORT_STATES):
            raise ValidationError(f"must be one of end, changes, states; got {report!r}", "report")
        self.report: Report = report
        self.listing_ends = bool(listing_ends)
        self.prefer_listing = bool(prefer_listing)
        self._reader = reader
        # What "before the change" looked like: from changed_since, and from the first reading
        # (a later reading with another modified_dt than the first cannot be the stale one).
        self._base_modified: datetime | None = None
        self._base_state: str | None = None
        self._first_modified: datetime | None = None
        self._first_pending = True
        self._state_from_first = False
        self._settled = False
        if isinstance(changed_since, PlatformDetail):
            self._base_modified = changed_since.modified_dt
            self._base_state = state_text(changed_since.release_state)
        elif isinstance(changed_since, datetime):
            if changed_since.tzinfo is None:
                raise ValidationError("must be a timezone-aware datetime", "changed_since")
            self._base_modified = changed_since
        elif isinstance(changed_since, _FirstReading):
            self._state_from_first = True
        elif changed_since is None:
            # A change this client made lately is waited out like changed_since.
            self._base_modified = noted_change
            # Waiting for a delete: a failure state seen before any sign of the delete is the
            # state the platform had before (a stale read), not a failed delete.
            self._state_from_first = self.until_deleted
            self._settled = noted_change is None and not self.until_deleted
        else:
            raise ValidationError(
                f"must be a PlatformDetail or a datetime, got {type(changed_since).__name__}",
                "changed_since",
            )
        self._attempt = 0  # polls planned so far: the schedule's step (a number, not a generator)
        self._immediate = immediate
        self._begun = False
        self._pending: PlatformDetail | None = None  # news not handed out yet (report="changes")
        self._reported_state: str | None = None  # the last state handed out (report="states")
        self._started: float | None = None
        self._deadline = math.inf
        self._last_key: tuple[str | None, str | None] | None = None
        self._retry_after: float | None = None
        self._warned = False
        self._closed = False
        self._observed: WaitSpan = UNOBSERVED_WAIT  # the span of a watch iterated by its caller
        # Whether the platform was seen to exist (by this wait, or by the caller: ``seen``), and
        # its name: only then may a 400 mean "gone", and a filtered listing confirm it.
        self._seen = bool(seen) if not isinstance(seen, PlatformDetail) else True
        self._known_name = seen.release_name if isinstance(seen, PlatformDetail) else None
        # Created at the first failure: thousands of waits that never fail hold no set.
        self._failure_kinds: set[tuple[str, int | None, str | None]] | None = None
        self.last_error: APIStatusError | APIConnectionError | None = None
        # Called with each failure of a new kind (the command line's board shows it).
        self.on_failure: Callable[[BaseException], Any] | None = None
        self.last_detail: PlatformDetail | None = None
        # A listing's reading, newer than last_detail, as plain values (``_ListedRow``).
        self._listed_row: _ListedRow | None = None
        self.outcome: WatchOutcome | None = None
        self.polls = 0
        # Set for a wait that joined the shared poller: its next read is due between
        # ``earliest`` and ``due`` (the jitter's range), and ``future`` holds its end.
        self.due = math.inf
        self.earliest = math.inf
        self.future: asyncio.Future[None] | None = None

    @property
    def until(self) -> Literal["deployed", "deleted"]:
        """What the watch waits for: ``"deployed"`` (a success state) or ``"deleted"``."""
        return "deleted" if self.until_deleted else "deployed"

    @property
    def last_state(self) -> str | None:
        """The last state seen (a listing's reading included); None once deleted or never seen."""
        if self.outcome == DELETED:
            return None
        if self._listed_row is not None:
            return self._listed_row[_STATE]
        return None if self.last_detail is None else state_text(self.last_detail.release_state)

    @property
    def success_states(self) -> frozenset[str]:
        return self.judge.success

    @property
    def failure_states(self) -> frozenset[str]:
        return self.judge.failure

    def __repr__(self) -> str:
        state = state_text(self.last_detail.release_state) if self.last_detail is not None else None
        return (
            f"<PlatformWatch release_id={self.release_id!r} state={state!r} "
            f"outcome={self.outcome!r} polls={self.polls}>"
        )

    def __aiter__(self) -> PlatformWatch:
        return self

    async def aclose(self) -> None:
        """Stop the watch: later iteration ends at once. (Nothing runs between polls anyway, so
        leaving a loop early needs no cleanup but this: its ``aimlops.wait`` span ends here, as
        ``cancelled``; use ``contextlib.aclosing``.)"""
        self._closed = True
        self._end_observed(asyncio.CancelledError())

    async def __anext__(self) -> PlatformDetail:
        if self.outcome is not None or self._closed:
            raise StopAsyncIteration
        if self._started is None:
            timing = self._reader.timing
            self.start(timing.clock())
            # start()/end(), not ``with``: the span lives across the caller's iterations.
            self._observed = self._reader.telemetry.observe_wait(
                self.release_id, until=self.until, clock=timing.clock
            ).start()
        try:
            news = await self._next()
        except StopAsyncIteration:
            self._end_observed(None)
            raise
        except BaseException as error:
            self._end_observed(error)
            raise
        if self.outcome is not None:
            self._end_observed(self.failure_error() if self.outcome == FAILURE else None)
        return news

    def _end_observed(self, error: BaseException | None) -> None:
        observed = self._observed
        if observed is not UNOBSERVED_WAIT:
            self._observed = UNOBSERVED_WAIT
            observed.finish(self.last_state, polls=self.polls)
            observed.end(error)

    async def _next(self) -> PlatformDetail:
        poller = self._reader.poller
        while True:
            news, self._pending = self._pending, None
            if news is not None:
                return news
            if self.outcome is not None:
                raise StopAsyncIteration
            # Joined until there is news or an end, then left: nothing runs between steps.
            await poller.follow(self, self._observed)

    # ------------------------------------------------------------------ the rules of a reading

    def start(self, now: float) -> None:
        """Start the wait's clock (its timeout and grace periods count from here)."""
        self._started = now
        self._deadline = now + self.timeout

    def begin(self, now: float) -> None:
        """On joining the poller the first time: start the clock if need be, plan the first read."""
        if self._begun:
            return
        self._begun = True
        if self._started is None:
            self.start(now)
        if self.take_immediate():
            self.earliest = self.due = now
        else:
            self.plan_next(now)

    @property
    def has_news(self) -> bool:
        """Whether the last reading is news to report before the end (see ``report``)."""
        if self.report == REPORT_CHANGES:
            return self._pending is not None
        return self.report == REPORT_STATES and self._unreported_state() is not None

    def take_state(self) -> str | None:
        """``report="states"``: the state not reported yet (then reported), else None."""
        state = self._unreported_state()
        if state is not None:
            self._reported_state = state
        return state

    def _unreported_state(self) -> str | None:
        state = self.last_state
        return None if state == self._reported_state else state

    def reported(self, state: str | None) -> None:
        """``report="states"``: ``state`` is known already (a bulk run adopted it in that state)."""
        self._reported_state = state

    @property
    def deadline(self) -> float:
        return self._deadline

    def accept(self, detail: PlatformDetail, now: float) -> PlatformDetail | None:
        """Judge one reading: the detail when it is news (a new state, or the final one), else None.

        Sets ``outcome`` when the reading ends the wait.
        """
        self.last_detail = detail
        self._listed_row = None
        self._seen = True
        self.last_error = None
        state = state_text(detail.release_state)
        verdict = self.judge.judge(state)
        if self._ends(verdict, state, detail.modified_dt, now):
            self.outcome = SUCCESS if verdict is Verdict.SUCCESS else FAILURE
            return self._news(detail)
        if verdict is not Verdict.IN_PROGRESS:
            return None
        self._warn_if_unknown(detail.release_state, state)
        key = (state, state_text(detail.cluster_state))
        if key != self._last_key:
            self._last_key = key
            return self._news(detail)
        return None

    def _news(self, detail: PlatformDetail) -> PlatformDetail:
        if self.report == REPORT_CHANGES:
            self._pending = detail  # handed out by the next step of the iteration
        return detail

    def accept_summary(self, summary: PlatformSummary, now: float) -> bool:
        """Judge a listing's reading: True when a GET should follow (its reading is judged by
        ``accept``): the reading may end the wait and the detail is wanted, or (``watch()``) it
        shows a new state, whose detail the iteration yields.

        With ``listing_ends``, a success reading that may end the wait ends it here.
        """
        row = _row_of(summary)
        if row != self._listed_row:
            # Kept as plain values, not the model: a tuple of strings and datetimes is one the
            # garbage collector stops tracking, so thousands of waits' readings cost nothing in a
            # full collection. An unchanged row keeps the tuple held (the new one dies young).
            self._listed_row = row
        self._seen = True
        self.last_error = None
        state = row[_STATE]
        verdict = self.judge.judge(state)
        self._look_for_change(state, summary.modified_dt, verdict)
        if verdict is Verdict.IN_PROGRESS:
            self._warn_if_unknown(summary.status, state)
            return self.report == REPORT_CHANGES and (
                self._last_key is None or state != self._last_key[0]
            )
        assert self._started is not None
        if not self._settled and now - self._started < self.stale_grace:
            return False  # most likely the state from before the change
        if verdict is Verdict.SUCCESS and self.listing_ends:
            self.outcome = SUCCESS
            return False
        return True

    def unlisted_may_wait(self, now: float) -> bool:
        """After a listing walked to its end without this platform: whether that is a platform
        not visible yet (never seen, within ``not_found_grace``: no GET needed to say so)."""
        assert self._started is not None
        return not self._seen and not self.until_deleted and now - self._started < self.not_found_grace

    def _newly_settled(self, state: str | None, modified: datetime | None) -> bool:
        return (
            (self._base_state is not None and state != self._base_state)
            or _newer(modified, self._base_modified)
            or _newer(modified, self._first_modified)
        )

    def _ends(self, verdict: Verdict, state: str | None, modified: datetime | None, now: float) -> bool:
        """Whether a reading in ``state`` ends the wait (once the change waited for has shown)."""
        self._look_for_change(state, modified, verdict)
        if verdict is Verdict.IN_PROGRESS:
            return False
        if not self._settled:
            assert self._started is not None
            if now - self._started < self.stale_grace:
                return False  # most likely the state from before the change: not news
            logger.info(
                "platform %s: no sign of the change within %g s; taking %s as final",
                self.release_id, self.stale_grace, state,
            )
        return True

    def take_immediate(self) -> bool:
        """Whether the first poll comes at once (then later ones do not)."""
        immediate, self._immediate = self._immediate, False
        return immediate

    def plan_next(self, now: float) -> None:
        """Set when the next read is due: any time from ``earliest`` (half the delay, as the
        jitter allows) to ``due``, so that a shared round may serve waits whose windows meet."""
        floor, delay = self._next_window()
        self.earliest = min(now + floor, self._deadline)
        self.due = min(now + delay, self._deadline)

    def _next_window(self) -> tuple[float, float]:
        base = schedule.expo_step(self.delay, self.max_delay, self._attempt)
        self._attempt += 1
        floor, delay = base / 2, schedule.jitter(base)
        if self._retry_after is not None:
            # A server's delay is honoured up to the client's max_retry_after: a Retry-After of a
            # day must not park a wait whose platform is ready a second later.
            asked = min(self._retry_after, _max_retry_after(self._reader))
            floor, delay = max(floor, asked), max(delay, asked)
            self._retry_after = None
        return floor, delay

    def not_found(self, error: NotFoundError, now: float) -> None:
        """A 404: the end of a wait until deleted, a platform not visible yet, or the error."""
        if self.until_deleted:
            self.outcome = DELETED
            return
        assert self._started is not None
        if now - self._started >= self.not_found_grace:
            raise error

    def failed(self, error: APIStatusError | APIConnectionError, *, final: bool | None = None) -> None:
        """A failed poll: raise a final answer, note the ``Retry-After`` of one that may mend.

        The first failure of each kind is logged at WARNING (and handed to ``on_failure``), the
        repeats at INFO: a wait that cannot reach the service says so, once, not every poll.
        """
        if final if final is not None else classify(error, "GET") is Outcome.FINAL:
            raise error
        self.last_error = error
        if isinstance(error, APIStatusError) and error.retry_after is not None:
            self._retry_after = error.retry_after
        kind = failure_kind(error)
        if self._failure_kinds is None:
            self._failure_kinds = set()
        elif kind in self._failure_kinds:
            logger.info("a poll of %s failed (%s); polling on", self.release_id, describe(error))
            return
        self._failure_kinds.add(kind)
        logger.warning(
            "polls of platform %s fail: %s; polling on until the timeout", self.release_id,
            failure_text(error),
        )
        if self.on_failure is not None:
            self.on_failure(error)

    async def missing(self, error: NotFoundError | BadRequestError, now: float) -> None:
        """A 404, or a 400 on a poll (the live service's answer for a missing release).

        The service's own 404 (it carries an error code) is judged by ``not_found``. Waiting
        until deleted, what is in doubt is confirmed by a listing filtered by the platform's
        name: a 404 that is not the service's (no error code: a page from something in between)
        and a 400 for a platform this wait has seen. A 400 for a platform never seen is final.
        """
        if isinstance(error, NotFoundError) and (error.code or not self.until_deleted):
            self.not_found(error, now)
            return
        if not self.until_deleted or (isinstance(error, BadRequestError) and not self._seen):
            raise error
        name = self._known_name
        if self.last_detail is not None and self.last_detail.release_name:
            name = self.last_detail.release_name
        elif self._listed_row is not None and self._listed_row[_NAME]:
            name = self._listed_row[_NAME]
        try:
            listed = await _listed(self._reader, self.release_id, name)
        except (APIStatusError, APIConnectionError) as listing_error:
            self.failed(listing_error)
            return
        if not listed:
            logger.info("platform %s: a %d and the listing agree that it is gone",
                        self.release_id, error.status)
            self.outcome = DELETED
            return
        # Listed, so it exists: the answer meant something else. Poll on; the timeout names it.
        self.failed(error, final=False)

    def needs_change_shown(self) -> bool:
        """Whether a success or failure reading still needs the change to show first."""
        return not self._settled

    # ------------------------------------------------------------------ judging readings

    def _look_for_change(self, state: str | None, modified: datetime | None, verdict: Verdict) -> None:
        """Settle once a reading shows that the change being waited for has taken effect."""
        if self._settled:
            return
        if self._first_pending:
            self._first_pending = False
            self._first_modified = modified
            if self._state_from_first:
                self._base_state = state
        if verdict is Verdict.IN_PROGRESS or self._newly_settled(state, modified):
            self._settled = True

    def _warn_if_unknown(self, release_state: ReleaseState | None, state: str | None) -> None:
        if self._warned:
            return
        if release_state is not None and release_state.is_known:
            return
        self._warned = True
        logger.warning(
            "platform %s reports release_state %r, which this library does not know; treating it "
            "as in progress (pass success_states= or failure_states= to say otherwise)",
            self.release_id, state,
        )

    def timed_out(self) -> WaiterTimeoutError:
        detail = self.last_detail
        if self._listed_row is not None:
            detail = _detail_of(self.release_id, self._listed_row)
        state = state_text(detail.release_state) if detail is not None else None
        target = "deleted" if self.until_deleted else self.judge.describe_target()
        seen = f"last state {state}" if state is not None else "never seen"
        error = self.last_error
        if error is not None:
            seen += f"; the last poll failed: {failure_text(error)}"
        return WaiterTimeoutError(
            f"platform {self.release_id} was not {target} within {self.timeout:g} s ({seen})",
            release_id=self.release_id, last_detail=detail, last_error=error,
        )

    def failure_error(self) -> TerminalStateError:
        """The ``TerminalStateError`` for a watch that ended in a failure state."""
        detail = self.last_detail
        state = state_text(detail.release_state) if detail is not None else None
        name = f" ({detail.release_name})" if detail is not None and detail.release_name else ""
        return TerminalStateError(
            f"platform {self.release_id}{name} ended in {state}",
            release_id=self.release_id, state=state, last_detail=detail,
        )

    def result(self) -> PlatformDetail | None:
        """The end of a finished watch: the final detail (None once deleted), or ``TerminalStateError``."""
        if self.outcome == FAILURE:
            raise self.failure_error()
        if self.outcome == DELETED or (self.outcome == SUCCESS and self._listed_row is not None):
            return None  # gone, or ended by a listing's reading (``listing_ends``): no detail read
        return self.last_detail


def failure_text(error: BaseException) -> str:
    """What went wrong with a poll, for a person: the status and code, or the connection failure,
    with the message (never a secret: errors carry none)."""
    label = describe(error)
    message = getattr(error, "message", None) or str(error)
    if isinstance(error, APIConnectionError) or message.strip() != label:
        return f"{label}: {message}" if message else label
    return label


def failure_kind(error: BaseException) -> tuple[str, int | None, str | None]:
    return (type(error).__name__, getattr(error, "status", None), getattr(error, "code", None))


def _max_retry_after(reader: Any) -> float:
    value = getattr(reader, "max_retry_after", DEFAULT_MAX_RETRY_AFTER)
    return float(value) if isinstance(value, (int, float)) else DEFAULT_MAX_RETRY_AFTER


# Pages a confirmation walks at most: a name filter leaves a handful; an unfiltered walk (the
# name unknown) that has not reached the end by then confirms nothing.
_CONFIRM_PAGES = 20
_CONFIRM_PAGE_SIZE = 100


async def _listed(reader: Reader, release_id: str, release_name: str | None) -> bool:
    """Whether a listing (filtered by ``release_name`` when known) may still show ``release_id``:
    False only once the walk reached its end without it."""
    size = _CONFIRM_PAGE_SIZE
    walk = reader.list(release_name=release_name or None, sort="created_dt:desc", size=size).pages()
    pages = seen = 0
    try:
        async for page in walk:
            pages += 1
            contents = page.contents or ()
            seen += len(contents)
            if any(item.release_id == release_id for item in contents):
                return True
            total = page.total_count
            if len(contents) < size or (total is not None and seen >= total):
                return False
            if pages >= _CONFIRM_PAGES:
                return True  # not confirmed gone: poll on
    finally:
        close = getattr(walk, "aclose", None)
        if close is not None:
            await close()
    return False


def _newer(modified: datetime | None, before: datetime | None) -> bool:
    return modified is not None and before is not None and modified > before


# A listing's reading of a platform, as a wait keeps it: (release_name, state text, modified_dt,
# cluster_id, cluster_name, created_by, created_dt, modified_by, version). Strings, datetimes
# and None only: no enum member, so the collector untracks the tuple.
_ListedRow = tuple[
    str | None, str | None, datetime | None, str | None, str | None, str | None,
    datetime | None, str | None, str | None,
]
_NAME: Final = 0
_STATE: Final = 1


def _row_of(summary: PlatformSummary) -> _ListedRow:
    return (
        summary.release_name, state_text(summary.status), summary.modified_dt, summary.cluster_id,
        summary.cluster_name, summary.created_by, summary.created_dt, summary.modified_by,
        summary.version,
    )


def _detail_of(release_id: str, row: _ListedRow) -> PlatformDetail:
    """What a listing showed of a platform, as a detail (the fields a listing lacks are None)."""
    name, state, modified_dt, cluster_id, cluster_name, created_by, created_dt, modified_by, version = row
    return PlatformDetail(
        cluster_id=cluster_id, cluster_name=cluster_name, created_by=created_by,
        created_dt=created_dt, modified_by=modified_by, modified_dt=modified_dt,
        release_id=release_id, release_name=name,
        release_state=None if state is None else ReleaseState(state), version=version,
    )
