"""provision_many: an idempotent fan-out of creates (create-or-adopt by release name), then the fleet.

How a run goes (``client.platforms.provision_many(requests, ...)``):

1. Every request is checked first. An invalid one, or a second request for a release name that
   is already in the input, ends with a ``ValidationError`` result and is never sent.
2. One listing of the project (filtered by the names' common prefix) finds the platforms that
   already exist: they are adopted (``created=False``), never created again. That is what makes
   a rerun after a crash, a Ctrl-C or a cancellation safe. The first page's ``total_count``
   tells what the whole listing costs: when its pages are fewer than the names still unseen it
   is read to the end (a few pages at once) and every name it does not show is created without
   a lookup; otherwise (a project much larger than the request list), or when the listing
   fails, each name it did not show is looked up (``check-duplication``) before its create.
3. Up to ``concurrency`` creates run at once. A create whose outcome is unknown
   (``outcomes.classify``: a timeout, a dropped connection after sending, a 5xx, an unreadable
   2xx) is never re-sent blindly: the release name is looked up first (check-duplication, then
   the listing for its release id), and only a name that is still free is created again. A 400
   ``DUPLICATE_RELEASE_NAME`` adopts the existing platform; a 429 is a definite "not created"
   and is retried after ``Retry-After``.
4. Each platform is then a member (a ``PlatformWatch``) of the client's shared poller
   (``client.platforms.poller``, ``fleet.SharedPoller``), with the rules of every wait: it is
   read from the project's listing, newest first (about one page per 100 platforms a round,
   the walk stopping once every platform due was seen), and its "state" events come from those
   readings. With ``details`` (the default) each platform that reaches DEPLOYED is read with one
   GET, for the ``PlatformDetail`` its result carries. Without, the listing's state is enough
   and a run costs about one call per platform (its create) plus the listing pages. A platform
   this run created may stay invisible for ``not_found_grace`` seconds; an adopted one may not.

Results come back in input order; one platform's failure never raises out of the run.
``Provisioning.execute`` is the one place where a run starts and ends.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal, Protocol

import attrs

from ..errors import (
    AimlopsError,
    APIStatusError,
    BadRequestError,
    ConflictError,
    TerminalStateError,
    ValidationError,
)
from ..models import (
    AsyncResponse,
    CreatePlatformRequest,
    PlatformDetail,
    PlatformListPage,
    PlatformSummary,
)
from ..outcomes import Outcome, classify, may_mend
from ..pagination import AsyncPager
from ..resources._base import checked_request
from ..telemetry import Telemetry, WaitSpan
from . import schedule
from .fleet import (
    DEFAULT_LIST_PAGE_SIZE,
    FLEET_SORT,
    SharedPoller,
    closing,
    smaller_page_size,
    walk_pages,
)
from .schedule import PollDefaults, Timing
from .states import DEPLOY_JUDGE, Verdict
from .watch import REPORT_STATES, PlatformWatch

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_LIST_PAGE_SIZE",
    "DEFAULT_NOT_FOUND_GRACE",
    "EventCallback",
    "EventKind",
    "ProvisionEvent",
    "ProvisionResult",
    "ProvisionTotals",
    "provision_events",
    "provision_many",
]

logger = logging.getLogger("aimlops_async.lifecycle")

DEFAULT_CONCURRENCY = 16
# A platform may be invisible to GET and the listing for a while after create.
DEFAULT_NOT_FOUND_GRACE = 30.0

DUPLICATE_RELEASE_NAME = "DUPLICATE_RELEASE_NAME"
# POST attempts per platform (each failed one is followed by a lookup when its outcome is unknown).
MAX_CREATE_ATTEMPTS = 10
# Longest Retry-After honoured for a create when the client has no max_retry_after of its own;
# the server asking for more is treated as the cap.
MAX_RETRY_AFTER = 60.0

EventKind = Literal["validated", "adopted", "creating", "created", "state", "deployed", "failed", "error"]


class Provisioner(Protocol):
    """What a run needs of ``client.platforms``."""

    poll_defaults: PollDefaults
    timing: Timing

    @property
    def poller(self) -> SharedPoller: ...

    @property
    def telemetry(self) -> Telemetry: ...

    @property
    def max_retry_after(self) -> float: ...

    async def check_duplication(self, release_name: str) -> bool: ...

    async def create(self, request: CreatePlatformRequest) -> AsyncResponse: ...

    async def get(self, release_id: str) -> PlatformDetail: ...

    def list(
        self, *, release_name: str | None = ..., sort: str | None = ..., size: int = ..., page: int = ...
    ) -> AsyncPager[PlatformSummary, PlatformListPage]: ...


@attrs.frozen(kw_only=True)
class ProvisionTotals:
    """Counts over a run, as of one event.

    ``adopted`` + ``created``: platforms that exist (found, or created by this run);
    ``in_progress``: of those, the ones still being waited for; ``deployed``: reached DEPLOYED;
    ``failed``: ended with an error (invalid request, refused create, failure state, timeout).
    """

    total: int = 0
    adopted: int = 0
    created: int = 0
    in_progress: int = 0
    deployed: int = 0
    failed: int = 0


@attrs.frozen(kw_only=True)
class ProvisionResult:
    """The outcome for one request of ``provision_many`` (results come in input order).

    ``created`` is False where an existing platform of that release name was adopted. With
    ``wait=True`` every outcome but DEPLOYED carries an ``error`` (``TerminalStateError``,
    ``WaiterTimeoutError``, ``ValidationError``, an ``APIStatusError``...); ``detail`` is the
    platform's last detail read, when one was read (always for DEPLOYED with ``details=True``,
    never with ``wait=False``).
    """

    release_name: str | None
    release_id: str | None = None
    state: str | None = None
    created: bool = False
    detail: PlatformDetail | None = None
    error: AimlopsError | None = None

    @property
    def ok(self) -> bool:
        """DEPLOYED (``wait=True``), or created or adopted without error (``wait=False``)."""
        return self.error is None and self.release_id is not None


@attrs.frozen(kw_only=True)
class ProvisionEvent:
    """One step of one platform, with the run's totals at that moment.

    ``kind``: ``validated`` (the request is valid), ``adopted`` (a platform of that name exists),
    ``creating`` (a create is being sent; again on a retry), ``created``, ``state`` (a new
    ``release_state`` was seen while waiting), and the last event of a platform: ``deployed``,
    ``failed`` (a failure state, a timeout, the platform vanished) or ``error`` (invalid request,
    create refused); with ``wait=False`` the last one is ``created`` or ``adopted``. The last
    event of a platform carries its ``result``.
    """

    index: int
    release_name: str | None
    kind: EventKind
    totals: ProvisionTotals
    release_id: str | None = None
    state: str | None = None
    error: AimlopsError | None = None
    result: ProvisionResult | None = None


EventCallback = Callable[[ProvisionEvent], "Awaitable[None] | None"]
CreateRequestLike = CreatePlatformRequest | Mapping[str, Any]


# --------------------------------------------------------------------------- entry points


async def provision_many(
    platforms: Provisioner,
    requests: Iterable[CreateRequestLike],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    wait: bool = True,
    timeout: float | None = None,
    on_event: EventCallback | None = None,
    page_size: int = DEFAULT_LIST_PAGE_SIZE,
    not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
    details: bool = True,
) -> list[ProvisionResult]:
    """Create (or adopt) a platform per request and, with ``wait``, see each to DEPLOYED.

    See the module docstring for how. ``concurrency`` bounds this run's creates (with their
    lookups) and, separately, its listing reads of the names that exist; its status reads are
    the client's shared poller's. The client's ``max_concurrency`` and ``requests_per_second``
    still bound every request. ``timeout`` (default: the client's
    ``poll_timeout``) bounds each platform's create phase and, separately, its wait.
    ``on_event`` is called with each ``ProvisionEvent`` (a plain function, or an async one which
    is awaited); an exception it raises stops the run and is raised here. ``page_size`` is the
    listing page size of the run's lookups (the shared poller's rounds read pages of 100, or
    the API's default of 20 where a server refuses those); ``not_found_grace`` is how long a platform
    may stay invisible after create before its absence counts. ``details`` (with ``wait``):
    read each platform that reaches DEPLOYED once with GET, for its result's ``detail``; False
    saves that call per platform (the result has the state, no ``detail``).

    Cancelling the call cancels its work promptly and leaves no task behind; what was created
    stays created, and running the same requests again adopts it.
    """
    run = Provisioning(
        platforms,
        _checked_requests(requests),
        concurrency=schedule.count(concurrency, "concurrency"),
        wait=bool(wait),
        timeout=None if timeout is None else schedule.positive(timeout, "timeout"),
        on_event=on_event,
        page_size=schedule.count(page_size, "page_size"),
        not_found_grace=schedule.non_negative(not_found_grace, "not_found_grace"),
        details=bool(details),
    )
    return await run.execute()


async def provision_events(
    platforms: Provisioner,
    requests: Iterable[CreateRequestLike],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    wait: bool = True,
    timeout: float | None = None,
    page_size: int = DEFAULT_LIST_PAGE_SIZE,
    not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
    details: bool = True,
) -> AsyncIterator[ProvisionEvent]:
    """``provision_many`` as an async iterator of its events (the last one of each platform has its result).

    Leaving the loop early (``break``, an exception) cancels the run; use
    ``contextlib.aclosing`` to have that happen at once rather than when the iterator is collected.
    """
    queue: asyncio.Queue[ProvisionEvent | None] = asyncio.Queue()

    async def run() -> None:
        try:
            await provision_many(
                platforms, requests, concurrency=concurrency, wait=wait, timeout=timeout,
                on_event=queue.put_nowait, page_size=page_size, not_found_grace=not_found_grace,
                details=details,
            )
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(run(), name="aimlops-bulk-events")
    try:
        while (event := await queue.get()) is not None:
            yield event
        await task
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --------------------------------------------------------------------------- input checks


@attrs.define
class _Item:
    """One request of the input: valid (``model``) or not (``error``)."""

    index: int
    name: str | None
    model: CreatePlatformRequest | None = None
    error: ValidationError | None = None


def _checked_requests(requests: Iterable[CreateRequestLike]) -> list[_Item]:
    if isinstance(requests, (Mapping, str, bytes)) or not isinstance(requests, Iterable):
        raise ValidationError(
            f"must be an iterable of create requests, got {type(requests).__name__}", "requests"
        )
    items: list[_Item] = []
    first_index: dict[str, int] = {}
    for index, request in enumerate(requests):
        try:
            model: CreatePlatformRequest = checked_request(request, CreatePlatformRequest)
        except ValidationError as exc:
            items.append(_Item(index, _name_of(request), error=exc))
            continue
        name = model.release_name
        if name in first_index:
            error = ValidationError(
                f"release name {name!r} is already requested at index {first_index[name]}",
                "ai_ml_ops_platform_create_request.release_name",
            )
            items.append(_Item(index, name, error=error))
            continue
        first_index[name] = index
        items.append(_Item(index, name, model=model))
    return items


def _name_of(request: Any) -> str | None:
    """The release name of a request that failed its checks, when there is a readable one."""
    if isinstance(request, CreatePlatformRequest):
        return request.release_name
    if isinstance(request, Mapping):
        inner = request.get("ai_ml_ops_platform_create_request")
        if isinstance(inner, Mapping) and isinstance(inner.get("release_name"), str):
            return str(inner["release_name"])
    return None


# --------------------------------------------------------------------------- failure kinds


def _may_say_taken(error: APIStatusError) -> bool:
    """A refused create that may mean "this release name exists" (worth a lookup)."""
    if error.code == DUPLICATE_RELEASE_NAME or error.status == 409:
        return True
    text = f"{error.code or ''} {error.message or ''}".lower()
    return "duplicat" in text or "already exist" in text


def _common_prefix(names: list[str]) -> str:
    if not names:
        return ""
    first, last = min(names), max(names)
    length = 0
    while length < min(len(first), len(last)) and first[length] == last[length]:
        length += 1
    return first[:length]


# --------------------------------------------------------------------------- one run


@attrs.define
class _Counts:
    total: int
    adopted: int = 0
    created: int = 0
    in_progress: int = 0
    deployed: int = 0
    failed: int = 0

    def snapshot(self) -> ProvisionTotals:
        return ProvisionTotals(
            total=self.total, adopted=self.adopted, created=self.created,
            in_progress=self.in_progress, deployed=self.deployed, failed=self.failed,
        )


class Provisioning:
    """The state of one ``provision_many`` call: its items, results and counters."""

    def __init__(
        self,
        platforms: Provisioner,
        items: list[_Item],
        *,
        concurrency: int,
        wait: bool,
        timeout: float | None,
        on_event: EventCallback | None,
        page_size: int,
        not_found_grace: float,
        details: bool = True,
    ) -> None:
        self.platforms = platforms
        self.items = items
        self.wait = wait
        defaults = platforms.poll_defaults
        self.delay, self.max_delay = defaults.resolve(None, None)
        default_timeout = defaults.timeout
        self.timing = platforms.timing
        self.timeout = default_timeout if timeout is None else timeout
        self.on_event = on_event
        self.page_size = page_size
        self.grace = not_found_grace
        self.details = details
        self.results: list[ProvisionResult | None] = [None] * len(items)
        self.counts = _Counts(total=len(items))
        self.create_slots = asyncio.Semaphore(concurrency)
        self.read_slots = asyncio.Semaphore(concurrency)
        names = [item.name for item in items if item.model is not None and item.name]
        self.prefix = _common_prefix(names)
        # Filled by the first listing: platforms that exist, and whether the names it did not
        # show are known to be free (a complete listing) or still need a lookup each.
        self.existing: dict[str, PlatformSummary] = {}
        self.listing_complete = False
        self.no_check_duplication = False

    # ---------------------------------------------------------------- the whole run

    async def execute(self) -> list[ProvisionResult]:
        telemetry = self.platforms.telemetry
        if not telemetry.observes_lifecycle:
            return await self._execute()
        # Entered before any task starts: the run's calls and waits are children of its span.
        with telemetry.provision_span(len(self.items), clock=self.timing.clock) as observed:
            results = await self._execute()
            observed.finish(results)
            return results

    async def _execute(self) -> list[ProvisionResult]:
        valid = [item for item in self.items if item.model is not None]
        for item in self.items:
            if item.error is not None:
                await self._end(item, "error", ProvisionResult(release_name=item.name, error=item.error))
            else:
                await self.emit(item, "validated")
        tasks: list[asyncio.Task[None]] = []
        try:
            if valid:
                await self._find_existing([item.name for item in valid if item.name])
            tasks = [
                asyncio.create_task(self._provision(item), name=f"aimlops-bulk-{item.index}")
                for item in valid
            ]
            await asyncio.gather(*tasks)
        finally:
            await self._stop(tasks)
        missing = [index for index, result in enumerate(self.results) if result is None]
        assert not missing, f"no result for requests {missing}"
        return [result for result in self.results if result is not None]

    async def _stop(self, tasks: list[asyncio.Task[None]]) -> None:
        """Cancel whatever is still running (after a cancellation or a callback's error) and wait for it."""
        pending = [task for task in tasks if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # ---------------------------------------------------------------- events and results

    async def emit(
        self,
        item: _Item,
        kind: EventKind,
        *,
        release_id: str | None = None,
        state: str | None = None,
        error: AimlopsError | None = None,
        result: ProvisionResult | None = None,
    ) -> None:
        if self.on_event is None:
            return
        event = ProvisionEvent(
            index=item.index, release_name=item.name, kind=kind, totals=self.counts.snapshot(),
            release_id=release_id, state=state, error=error, result=result,
        )
        outcome = self.on_event(event)
        if inspect.isawaitable(outcome):
            await outcome

    async def _end(self, item: _Item, kind: EventKind, result: ProvisionResult) -> None:
        self.results[item.index] = result
        counts = self.counts
        if kind == "deployed":
            counts.deployed += 1
        elif kind in ("failed", "error"):
            counts.failed += 1
        await self.emit(
            item, kind, release_id=result.release_id, state=result.state, error=result.error,
            result=result,
        )

    # ---------------------------------------------------------------- one platform

    async def _provision(self, item: _Item) -> None:
        try:
            async with self.create_slots:
                release_id, created, state = await self._ensure(item)
        except AimlopsError as exc:
            await self._end(item, "error", ProvisionResult(release_name=item.name, error=exc))
            return
        counts = self.counts
        if created:
            counts.created += 1
        else:
            counts.adopted += 1
        kind: EventKind = "created" if created else "adopted"
        if not self.wait:
            result = ProvisionResult(
                release_name=item.name, release_id=release_id, state=state, created=created,
                error=self._stopped(item, release_id, state),
            )
            await self._end(item, "failed" if result.error else kind, result)
            return
        counts.in_progress += 1
        await self.emit(item, kind, release_id=release_id, state=state)
        verdict = DEPLOY_JUDGE.judge(state)
        member = PlatformWatch(
            self.platforms, release_id, timeout=self.timeout,
            # Only a platform this run created may be invisible for a while.
            not_found_grace=self.grace if created else 0.0,
            report=REPORT_STATES, listing_ends=not self.details, prefer_listing=True,
            # Adopted and settled: one read, at once.
            immediate=not created and verdict is not Verdict.IN_PROGRESS,
        )
        member.reported(state)
        # start()/end(), not ``with``: the span lives across the member's joins of the poller.
        observed = self.platforms.telemetry.observe_wait(
            release_id, until="deployed", clock=self.timing.clock
        ).start()
        error: AimlopsError | None = None
        detail: PlatformDetail | None = None
        try:
            # Adopted already DEPLOYED, and no detail wanted: nothing to read.
            if verdict is not Verdict.SUCCESS or self.details:
                error = await self._follow(item, member, observed)
                if error is None:
                    detail = member.result()
        except TerminalStateError as exc:
            error = exc
        except BaseException as exc:
            observed.end(exc)
            raise
        counts.in_progress -= 1
        final_state = member.last_state or state
        observed.finish(final_state, polls=member.polls)
        observed.end(error)
        if error is not None:
            await self._end(item, "failed", ProvisionResult(
                release_name=item.name, release_id=release_id, state=final_state, created=created,
                detail=member.last_detail, error=error,
            ))
            return
        await self._end(item, "deployed", ProvisionResult(
            release_name=item.name, release_id=release_id, state=final_state, created=created,
            detail=detail,
        ))

    async def _follow(self, item: _Item, member: PlatformWatch, observed: WaitSpan) -> AimlopsError | None:
        """Follow one platform with the shared poller, emitting a "state" event for each new
        state; the error that ended it, if one did (a failure state is the member's outcome)."""
        poller = self.platforms.poller
        while True:
            try:
                await poller.follow(member, observed)
            except AimlopsError as exc:
                return exc
            state = member.take_state()
            if state is not None:
                await self.emit(item, "state", release_id=member.release_id, state=state)
            if member.outcome is not None:
                return None

    @staticmethod
    def _stopped(item: _Item, release_id: str, state: str | None) -> TerminalStateError | None:
        """With ``wait=False``: an adopted platform that will not reach DEPLOYED is no success."""
        if DEPLOY_JUDGE.judge(state) is not Verdict.FAILURE:
            return None
        return TerminalStateError(
            f"platform {item.name!r} ({release_id}) is {state}", release_id=release_id, state=state
        )

    async def _ensure(self, item: _Item) -> tuple[str, bool, str | None]:
        """Make sure the platform exists: ``(release_id, created by this run, state if known)``."""
        assert item.model is not None and item.name is not None
        name = item.name
        found = self.existing.get(name)
        if found is not None and found.release_id:
            return found.release_id, False, found.status
        clock = self.timing.clock
        deadline = clock() + self.timeout
        delays = schedule.delays(self.delay, self.max_delay)
        # True once a create of ours may have happened: from then on, look before sending again.
        maybe_ours = False
        look_first = not self.listing_complete
        last_error: AimlopsError | None = None
        attempt = 0
        while True:
            if look_first or maybe_ours:
                found = await self._lookup(name, deadline)
                if found is not None and found.release_id:
                    if maybe_ours:
                        logger.info("create of %r had an unknown outcome; it did happen", name)
                    return found.release_id, maybe_ours, found.status
            if last_error is not None and (attempt >= MAX_CREATE_ATTEMPTS or clock() >= deadline):
                raise last_error
            attempt += 1
            await self.emit(item, "creating")
            try:
                answer = await self.platforms.create(item.model)
            except (BadRequestError, ConflictError) as exc:
                if not _may_say_taken(exc):
                    raise
                # The name is taken: by an earlier attempt of ours, or by someone else.
                duplicate = exc.code == DUPLICATE_RELEASE_NAME
                found = await self._lookup(name, deadline, known_taken=duplicate)
                if found is not None and found.release_id:
                    return found.release_id, maybe_ours, found.status
                if not duplicate:
                    raise  # the name is free: the refusal was about something else
                last_error = exc  # gone again before we could see it: create anew
                wait = next(delays)
            except AimlopsError as exc:
                outcome = classify(exc, "POST")
                if outcome is Outcome.FINAL:
                    raise
                unknown = outcome is Outcome.UNKNOWN
                maybe_ours = maybe_ours or unknown
                last_error = exc
                wait = next(delays)
                if isinstance(exc, APIStatusError) and exc.retry_after is not None:
                    cap = getattr(self.platforms, "max_retry_after", MAX_RETRY_AFTER)
                    wait = min(exc.retry_after, cap)  # the client's max_retry_after
                logger.info(
                    "create of %r failed (%s, %s); %s", name, type(exc).__name__,
                    "outcome unknown" if unknown else "not created",
                    "looking it up before sending again" if maybe_ours else "sending again",
                )
            else:
                if answer.resource_id:
                    return answer.resource_id, True, None
                maybe_ours = True
                last_error = AimlopsError(f"the create of {name!r} was answered without a release id")
                wait = next(delays)
            if clock() + wait >= deadline:
                wait = max(0.0, deadline - clock())
            await self.timing.sleep(wait)

    async def _lookup(
        self, name: str, deadline: float, *, known_taken: bool = False
    ) -> PlatformSummary | None:
        """The platform named ``name``, or None when the name is free; transient failures are retried.

        ``check-duplication`` says whether the name is taken; a taken name is then found in the
        listing (for its release id), waiting out a listing that does not show it yet.
        """
        clock = self.timing.clock
        delays = schedule.delays(self.delay, self.max_delay)
        last_error: AimlopsError | None = None
        while True:
            try:
                taken = True if known_taken else await self._name_taken(name)
                if taken is False:
                    return None
                found = await self._find_listed(name)
                if found is not None or taken is None:
                    return found  # without check-duplication, the listing is all there is
                known_taken = False  # not listed yet: ask again whether the name is still taken
            except AimlopsError as exc:
                if not may_mend(exc):
                    raise
                last_error = exc
            wait = next(delays)
            if clock() + wait >= deadline:
                raise last_error or AimlopsError(
                    f"platform {name!r} exists but did not show in the listing in time"
                )
            await self.timing.sleep(wait)

    async def _name_taken(self, name: str) -> bool | None:
        """``check-duplication``; None when the server has no such endpoint (then never asked again)."""
        if self.no_check_duplication:
            return None
        try:
            return await self.platforms.check_duplication(name)
        except APIStatusError as exc:
            if exc.status not in (404, 405, 501):
                raise
            logger.info("check-duplication is not available (%s); looking names up in the listing", exc)
            self.no_check_duplication = True
            return None

    def smaller_pages(self, error: AimlopsError) -> bool:
        """After a listing failed: when a 400 may be about the page size, use the API's default."""
        smaller = smaller_page_size(error, self.page_size)
        if smaller is None:
            return False
        self.page_size = smaller
        return True

    async def _find_listed(self, name: str) -> PlatformSummary | None:
        # The server's release_name filter may match substrings: compare names exactly.
        pager = self.platforms.list(release_name=name, sort=FLEET_SORT, size=self.page_size)
        async with closing(aiter(pager)) as summaries:
            async for summary in summaries:
                if summary.release_name == name and summary.release_id:
                    return summary
        return None

    async def _find_existing(self, names: list[str]) -> None:
        """One listing for the whole input: which names exist already, and is the rest free?

        Any failure just leaves the names the listing did not show to the per-name lookups.
        """
        wanted = set(names)
        found: dict[str, PlatformSummary] = {}
        complete = False
        pages = 0
        for _ in range(2):
            try:
                complete, pages = await self._walk_existing(wanted, found)
                break
            except AimlopsError as exc:
                if self.smaller_pages(exc):
                    continue
                logger.info("listing existing platforms failed (%s); looking names up one by one", exc)
                break
        self.existing = found
        self.listing_complete = complete or len(found) == len(wanted)
        logger.debug(
            "found %d of %d names existing in %d page(s) (complete: %s)",
            len(found), len(wanted), pages, self.listing_complete,
        )

    async def _walk_existing(
        self, wanted: set[str], found: dict[str, PlatformSummary]
    ) -> tuple[bool, int]:
        """Read the listing into ``found`` while that costs fewer calls than looking names up.

        Returns whether the listing was read to its end (or showed every name wanted), and the
        pages read. The first page tells the listing's size (``total_count``); the other pages
        are read (a few at once) only when they are fewer than the names not seen yet, each of
        which would otherwise cost a ``check-duplication``.
        """
        worth: list[int] = []  # decided once, after the first page

        def note(page: PlatformListPage) -> bool:
            self._note_existing(page, wanted, found)
            return len(found) == len(wanted)

        def limit(total: int | None) -> int:
            unseen = len(wanted) - len(found)
            if total is None:
                # Without a total, one page after another while cheaper than the lookups left.
                return 1 + unseen
            if not worth:
                count = math.ceil(total / self.page_size)
                # A project much larger than the request: per-name lookups are cheaper.
                worth.append(count if count - 1 < unseen else 1)
            return worth[0]

        ended, pages = await walk_pages(
            self._listing_page, size=self.page_size, note=note, limit=limit
        )
        return ended or len(found) == len(wanted), pages

    async def _listing_page(self, number: int) -> PlatformListPage:
        pager = self.platforms.list(
            release_name=self.prefix or None, sort=FLEET_SORT, size=self.page_size, page=number
        )
        async with self.read_slots, closing(pager.pages()) as walk:
            async for page in walk:
                return page
        return PlatformListPage(contents=[])

    @staticmethod
    def _note_existing(
        page: PlatformListPage, wanted: set[str], found: dict[str, PlatformSummary]
    ) -> None:
        # The server's release_name filter may match substrings: compare names exactly.
        for summary in page.contents or ():
            if summary.release_name in wanted and summary.release_id:
                found.setdefault(summary.release_name, summary)
