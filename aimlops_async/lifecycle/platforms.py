"""``client.platforms``: the platform endpoints plus watch, waits, ``*_and_wait`` and provision_many.

The class subclasses the endpoints of ``resources.platforms`` and adds what follows platforms
over time. It owns, per client, the memory of the changes (updates, deletes) it made lately, so
that a wait started just after one is not fooled by a stale reading from before it.
"""

from __future__ import annotations

import builtins  # ``list`` is a method of Platforms: annotations need the built-in by name
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from ..errors import (
    INVALID_STATE,
    APIConnectionError,
    APIStatusError,
    BadRequestError,
    NotFoundError,
    WaiterError,
    describe,
)
from ..models import AsyncResponse, CreatePlatformRequest, PlatformDetail, ReleaseState, UpdatePlatformRequest
from ..outcomes import Outcome, classify, may_mend
from ..resources._base import checked_request
from ..resources.platforms import CreateRequestLike, PlatformEndpoints, UpdateRequestLike
from ..session import Session
from ..telemetry import Telemetry
from . import provision, schedule
from .fleet import SharedPoller
from .provision import EventCallback, ProvisionEvent, ProvisionResult
from .schedule import PollDefaults, Timing
from .watch import (
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_NOT_FOUND_GRACE,
    DEFAULT_STALE_GRACE,
    FIRST_READING,
    REPORT_CHANGES,
    PlatformWatch,
)

__all__ = ["CHANGE_MEMORY", "ChangeMemory", "Platforms"]

logger = logging.getLogger("aimlops_async.lifecycle")

# Long past any plausible stale-read window: older changes show in every read.
CHANGE_MEMORY = 300.0
_PRUNE_AT = 1024
# The states a delete is accepted in: a refusal in one of them is a read lagging behind.
_DELETABLE = frozenset({"DEPLOYED", "FAILED", "ERROR"})


class ChangeMemory:
    """The release ids a client updated or deleted lately, with the wall-clock time just before
    each request went out, so that ``update(...)`` then ``wait_until_deployed(...)`` is not
    fooled by a stale DEPLOYED either."""

    __slots__ = ("_changes", "_wall")

    def __init__(self, wall: Callable[[], float]) -> None:
        # Oldest note first: pruning pops from the front and stops at the first recent note, so
        # noting stays O(1) amortized however many changes are recent (a bulk run's thousands of
        # creates must not rescan the whole memory each).
        self._changes: OrderedDict[str, float] = OrderedDict()
        self._wall = wall

    def note(self, release_id: str, started: float) -> None:
        """Remember that ``release_id`` changed; ``started`` is the wall time before the request."""
        changes = self._changes
        changes[release_id] = started
        changes.move_to_end(release_id)
        if len(changes) > _PRUNE_AT:
            horizon = self._wall() - CHANGE_MEMORY
            # Requests overlap, so the order is only nearly by time: an old note behind a recent
            # one waits for a later prune, and ``since`` ignores it meanwhile.
            while changes and next(iter(changes.values())) < horizon:
                changes.popitem(last=False)

    def __len__(self) -> int:
        return len(self._changes)

    def since(self, release_id: str) -> datetime | None:
        """When a change to ``release_id`` noted within ``CHANGE_MEMORY`` seconds began, else None."""
        when = self._changes.get(release_id)
        if when is None or self._wall() - when > CHANGE_MEMORY:
            return None
        # A millisecond earlier: a modified_dt stamped in the very millisecond counts as newer.
        return datetime.fromtimestamp(when - 0.001, timezone.utc)


class Platforms(PlatformEndpoints):
    """``client.platforms``: one method per platform endpoint, then waits and bulk provisioning.

    ``poll_defaults`` are the client's defaults for every wait; ``timing`` is the client's one
    clock and sleep, shared with the session: every wait, bulk run, retry backoff and rate limit
    goes by it (replace it to drive time in tests).
    """

    def __init__(
        self,
        session: Session,
        poll_defaults: PollDefaults | None = None,
        *,
        timing: Timing | None = None,
    ) -> None:
        super().__init__(session)
        self.poll_defaults = poll_defaults or PollDefaults()
        if timing is not None:
            self.timing = timing
        self.changes = ChangeMemory(lambda: self.timing.wall())
        # The platforms this client created lately: only their waits tolerate a 404 at first.
        self.creations = ChangeMemory(lambda: self.timing.wall())
        # Every wait, watch() and bulk run of this client shares its polls (fleet.SharedPoller).
        self.poller = SharedPoller(self)

    @property
    def timing(self) -> Timing:
        """The client's clock and sleep (its session's): setting it sets the session's too."""
        return self._session.timing

    @timing.setter
    def timing(self, timing: Timing) -> None:
        self._session.timing = timing

    @property
    def telemetry(self) -> Telemetry:
        """The client's spans and metrics: waits and bulk runs record theirs here too."""
        return self._session.telemetry

    @property
    def max_retry_after(self) -> float:
        """The longest ``Retry-After`` honoured (the client's ``max_retry_after``), waits included."""
        retry = getattr(self._session, "retry", None)
        return float(getattr(retry, "max_retry_after", DEFAULT_MAX_RETRY_AFTER))

    # ------------------------------------------------------------------ changes remembered

    async def create(self, request: CreateRequestLike, **options: Any) -> AsyncResponse:
        """``POST``: start creating a platform; ``resource_id`` is its release id."""
        started = self.timing.wall()
        answer = await super().create(request, **options)
        if answer.resource_id:
            # A wait on it may see a 404 for a moment (reads lag): that one is tolerated.
            self.creations.note(answer.resource_id, started)
        return answer

    async def delete(self, release_id: str, with_k8s: bool = False, **options: Any) -> None:
        """``DELETE {release_id}``: start deleting a platform (and its Kubernetes engine: ``with_k8s``)."""
        started = self.timing.wall()
        await super().delete(release_id, with_k8s, **options)
        # A later wait on this release must not take a stale reading from before the delete.
        self.changes.note(release_id, started)

    async def update(
        self, release_id: str, request: UpdateRequestLike, **options: Any
    ) -> AsyncResponse:
        """``PUT {release_id}``: start an update (endpoint type and/or domain service)."""
        started = self.timing.wall()
        answer = await super().update(release_id, request, **options)
        # A later wait_until_deployed must not return on the DEPLOYED reading from before the update.
        self.changes.note(release_id, started)
        return answer

    # ------------------------------------------------------------------ watch and waits

    def watch(
        self,
        release_id: str,
        *,
        success_states: Iterable[str] | None = None,
        failure_states: Iterable[str] | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        timeout: float | None = None,
        not_found_grace: float | None = None,
        stale_grace: float | None = None,
        changed_since: PlatformDetail | datetime | None = None,
        until_deleted: bool = False,
    ) -> PlatformWatch:
        """``async for detail in client.platforms.watch(release_id):`` one detail per state change.

        Yields the first reading, then each change of ``release_state`` or ``cluster_state``, and
        last the detail in a success or failure state; then the iteration ends (no exception on a
        failure state: check ``detail.release_state`` or the watch's ``outcome``). With
        ``until_deleted=True`` it ends once the platform is confirmed gone (see
        ``wait_until_deleted``). Raises ``WaiterTimeoutError`` past ``timeout``, naming the last
        poll's failure if it failed (``last_error``); ``on_failure``, if set, is called with
        each new kind of failure. Arguments as for ``wait_until_deployed``.

        Its polls go through the client's shared poller: each step of the loop joins it until
        there is news, then leaves it, so nothing runs between steps and leaving the loop early
        leaves nothing behind.
        """
        return self._watch(
            release_id, success_states=success_states, failure_states=failure_states,
            delay=delay, max_delay=max_delay, timeout=timeout, not_found_grace=not_found_grace,
            stale_grace=stale_grace, changed_since=changed_since, until_deleted=until_deleted,
            report=REPORT_CHANGES,
        )

    def _watch(self, release_id: str, **settings: Any) -> PlatformWatch:
        noted = None
        if settings.get("changed_since") is None and isinstance(release_id, str):
            noted = self.changes.since(release_id)
        if settings.get("not_found_grace") is None:
            # The 404 grace is for a platform this client just created; any other id that is
            # not found is a mistake (a typo) that deserves saying at once.
            created = isinstance(release_id, str) and self.creations.since(release_id) is not None
            settings["not_found_grace"] = DEFAULT_NOT_FOUND_GRACE if created else 0.0
        if settings.get("until_deleted") and noted is not None and "seen" not in settings:
            settings["seen"] = True  # this client deleted it: it existed
        return PlatformWatch(self, release_id, noted_change=noted, **settings)

    async def wait_until_deployed(
        self,
        release_id: str,
        *,
        timeout: float | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        success_states: Iterable[str] | None = None,
        failure_states: Iterable[str] | None = None,
        not_found_grace: float | None = None,
        changed_since: PlatformDetail | datetime | None = None,
        stale_grace: float | None = None,
    ) -> PlatformDetail:
        """Poll ``GET {release_id}`` until ``release_state`` is ``DEPLOYED``; return that detail.

        - ``timeout``, ``delay``, ``max_delay`` (seconds): default to the client's ``poll_*``.
        - ``success_states`` (default ``{"DEPLOYED"}``), ``failure_states`` (default
          ``{"FAILED", "ERROR"}``): a failure state raises ``TerminalStateError``, and so does
          ``DELETING`` (the platform will not deploy); any other state is in progress (a state
          unknown to this library is logged once).
        - ``not_found_grace`` (default: 30 s for a platform this client created lately, else 0):
          a 404 within it is a platform not visible yet; after it, ``NotFoundError`` is raised
          (at once for an id that does not exist).
        - ``changed_since``: the detail (or ``modified_dt``) from before a change you made; a
          stale ``DEPLOYED`` from before it is not returned (``stale_grace`` bounds that).

        Raises ``WaiterTimeoutError`` (also a ``TimeoutError``) past ``timeout``.
        """
        detail = await self.poller.wait(self._watch(
            release_id, timeout=timeout, delay=delay, max_delay=max_delay,
            success_states=success_states, failure_states=failure_states,
            not_found_grace=not_found_grace, changed_since=changed_since, stale_grace=stale_grace,
        ))
        assert detail is not None  # only a wait until deleted ends without a detail
        return detail

    async def wait_until_deleted(
        self,
        release_id: str,
        *,
        timeout: float | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        failure_states: Iterable[str] | None = None,
        changed_since: PlatformDetail | datetime | None = None,
        stale_grace: float | None = None,
    ) -> None:
        """Poll until the platform is confirmed gone. A failure state seen after the delete showed
        raises ``TerminalStateError``; past ``timeout``, ``WaiterTimeoutError``.

        Gone means the service's 404, or (the live service's answer for a missing release) a 400
        for a platform this wait has seen that a listing filtered by its name no longer shows.
        The gateway's 404 page (``AuthenticationError``) or a 400 for an id never seen raise.
        """
        await self.poller.wait(self._watch(
            release_id, timeout=timeout, delay=delay, max_delay=max_delay,
            failure_states=failure_states, changed_since=changed_since, stale_grace=stale_grace,
            until_deleted=True,
        ))

    # ------------------------------------------------------------------ change, then wait

    async def create_and_wait(
        self,
        request: CreateRequestLike,
        *,
        timeout: float | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        success_states: Iterable[str] | None = None,
        failure_states: Iterable[str] | None = None,
        not_found_grace: float | None = None,
    ) -> PlatformDetail:
        """``create(request)``, then ``wait_until_deployed`` on the new release id (a 404 at first
        is tolerated)."""
        answer = await self.create(request)
        release_id = answer.resource_id
        if not release_id:
            raise WaiterError(
                "the create answer carried no release id (resource_id); look the platform up by "
                f"release name ({_release_name(request)!r})",
                release_id="",
            )
        detail = await self.poller.wait(self._watch(
            release_id, success_states=success_states, failure_states=failure_states,
            delay=delay, max_delay=max_delay, timeout=timeout, not_found_grace=not_found_grace,
            immediate=False,
        ))
        assert detail is not None
        return detail

    async def update_and_wait(
        self,
        release_id: str,
        request: UpdateRequestLike,
        *,
        timeout: float | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        success_states: Iterable[str] | None = None,
        failure_states: Iterable[str] | None = None,
        stale_grace: float | None = None,
    ) -> PlatformDetail:
        """``update(release_id, request)``, then wait until the update shows and it is deployed.

        Never returns the stale ``DEPLOYED`` from before the update: the detail before the update
        is read first, and a newer ``modified_dt`` or an in-progress state is waited for (at most
        ``stale_grace`` seconds).
        """
        model = checked_request(request, UpdatePlatformRequest)  # bad input fails before any request
        before = await self._detail_before_change(release_id)

        async def updating_or_updated() -> bool:
            detail = await self.get(release_id)
            changed = before is not None and detail.modified_dt != before.modified_dt
            return changed or detail.release_state == ReleaseState.UPDATING

        await _send_change(lambda: self.update(release_id, model), updating_or_updated)
        detail = await self.poller.wait(self._watch(
            release_id, success_states=success_states, failure_states=failure_states,
            delay=delay, max_delay=max_delay, timeout=timeout, stale_grace=stale_grace,
            changed_since=before if before is not None else FIRST_READING, immediate=False,
        ))
        assert detail is not None
        return detail

    async def delete_and_wait(
        self,
        release_id: str,
        with_k8s: bool = False,
        *,
        timeout: float | None = None,
        delay: float | None = None,
        max_delay: float | None = None,
        failure_states: Iterable[str] | None = None,
        stale_grace: float | None = None,
    ) -> None:
        """``delete(release_id, with_k8s)``, then wait until the platform is confirmed gone (stale
        200s on the way are expected; see ``wait_until_deleted``).

        A platform already ``DELETING`` is waited for, not refused: the delete asked for is
        under way.
        """
        before = await self._detail_before_change(release_id)
        if before is None or before.release_state != ReleaseState.DELETING:
            await self.ensure_deleting(release_id, with_k8s)
        await self.poller.wait(self._watch(
            release_id, failure_states=failure_states, delay=delay, max_delay=max_delay,
            timeout=timeout, stale_grace=stale_grace, until_deleted=True, immediate=False,
            seen=before if before is not None else True,
        ))

    async def ensure_deleting(self, release_id: str, with_k8s: bool = False) -> None:
        """Start deleting a platform, or join the delete already under way: ``delete_and_wait``
        without the wait, for callers that follow the platform themselves (``watch``).

        Like ``delete``, but a refusal (400 ``INVALID_STATE``) of a platform already being
        deleted returns normally: one that reads as ``DELETING`` or is gone, or that still reads
        as deletable, since reads lag behind a delete that just began (it is read again for up
        to 10 s). A delete whose outcome is unknown (a timeout, a dropped connection) is looked
        for before it is sent again. Any other refusal is raised, such as ``INVALID_STATE`` for
        a platform that is ``CREATING``.
        """

        async def deleting_or_gone() -> bool:
            try:
                detail = await self.get(release_id)
            except NotFoundError:
                return True
            return detail.release_state == ReleaseState.DELETING

        try:
            await _send_change(lambda: self.delete(release_id, with_k8s=with_k8s), deleting_or_gone)
        except BadRequestError as error:
            # Refused because it is already being deleted (by someone, or a copy of ours that
            # lagging reads hid): that is the delete asked for. Anything else stands.
            if error.code != INVALID_STATE or not await self._delete_under_way(release_id):
                raise
            logger.info("platform %s is already being deleted", release_id)

    async def _delete_under_way(self, release_id: str) -> bool:
        """After a delete refused with ``INVALID_STATE``: whether a delete is under way.

        A platform in a state that cannot be deleted (``CREATING``, ``UPDATING``) makes the
        refusal stand at once. One that reads as deletable contradicts the refusal: reads lag
        behind a delete that just began, so look again for up to ``DEFAULT_STALE_GRACE``.
        """
        timing = self.timing
        give_up = timing.clock() + DEFAULT_STALE_GRACE
        pause = schedule.delays(min(self.poll_defaults.delay, 1.0), self.poll_defaults.max_delay)
        while True:
            try:
                detail = await self.get(release_id)
            except NotFoundError:
                return True  # gone already
            except (APIStatusError, APIConnectionError) as error:
                if not may_mend(error):
                    return False
            else:
                state = detail.release_state
                if state == ReleaseState.DELETING:
                    return True
                if state is None or str(state) not in _DELETABLE:
                    return False
            left = give_up - timing.clock()
            if left <= 0:
                return False
            await timing.sleep(min(next(pause), left))

    async def _detail_before_change(self, release_id: str) -> PlatformDetail | None:
        """The detail before a change, or None when a transient failure hides it (the wait copes)."""
        try:
            return await self.get(release_id)
        except (APIStatusError, APIConnectionError) as error:
            if not may_mend(error):
                raise
            logger.info("reading %s before the change failed (%s)", release_id, describe(error))
            return None

    # ------------------------------------------------------------------ bulk (provision.py)

    async def provision_many(
        self,
        requests: Iterable[CreateRequestLike],
        *,
        concurrency: int = provision.DEFAULT_CONCURRENCY,
        wait: bool = True,
        timeout: float | None = None,
        on_event: EventCallback | None = None,
        page_size: int = provision.DEFAULT_LIST_PAGE_SIZE,
        not_found_grace: float = provision.DEFAULT_NOT_FOUND_GRACE,
        details: bool = True,
    ) -> builtins.list[ProvisionResult]:
        """Create (or adopt) a platform per request and, with ``wait``, see each to ``DEPLOYED``.

        Returns one ``ProvisionResult`` per request, in input order; one platform's failure never
        raises. Idempotent by release name: a platform that exists is adopted (``created=False``),
        and a create whose outcome is unknown is looked up before anything is sent again.
        Waiting goes through the client's shared poller, which reads the project's listing
        (about N / 100 calls a round).

        - ``concurrency``: this run's creates in flight (and, separately, its status reads).
        - ``wait``: False returns once every platform is created or adopted.
        - ``timeout``: per platform, for its create phase and for its wait (default: the
          client's ``poll_timeout``).
        - ``on_event``: called with each ``ProvisionEvent`` (a plain or an async function).
        - ``details``: with ``wait``, read each DEPLOYED platform once for its result's
          ``detail``; False saves that GET (about one call per platform in all).
        """
        return await provision.provision_many(
            self, requests, concurrency=concurrency, wait=wait, timeout=timeout,
            on_event=on_event, page_size=page_size, not_found_grace=not_found_grace,
            details=details,
        )

    def provision_events(
        self,
        requests: Iterable[CreateRequestLike],
        *,
        concurrency: int = provision.DEFAULT_CONCURRENCY,
        wait: bool = True,
        timeout: float | None = None,
        page_size: int = provision.DEFAULT_LIST_PAGE_SIZE,
        not_found_grace: float = provision.DEFAULT_NOT_FOUND_GRACE,
        details: bool = True,
    ) -> AsyncIterator[ProvisionEvent]:
        """``provision_many`` as an async iterator of its ``ProvisionEvent``s.

        The last event of each platform carries its ``result``. Leaving the loop early cancels
        the run (wrap it in ``contextlib.aclosing`` for that to happen at once).
        """
        return provision.provision_events(
            self, requests, concurrency=concurrency, wait=wait, timeout=timeout,
            page_size=page_size, not_found_grace=not_found_grace, details=details,
        )


async def _send_change(
    send: Callable[[], Awaitable[Any]], took_effect: Callable[[], Awaitable[bool]]
) -> None:
    """Send an update or delete; when its outcome is unknown, look before sending it again.

    The service refuses a second copy (400) while the first one's operation runs, so a blind
    re-send would turn a change that worked into an error. The session does not re-send these
    after an unknown outcome; this does, once, and only when the change has not shown.
    """
    try:
        await send()
        return
    except (APIStatusError, APIConnectionError) as error:
        if classify(error) is not Outcome.UNKNOWN:
            raise
        logger.info("a change had an unknown outcome (%s); looking before sending it again",
                    describe(error))
    if await _shows(took_effect):
        return
    try:
        await send()
    except BadRequestError as error:
        if error.code == INVALID_STATE:
            # "An operation is already running on this platform", right after a copy whose
            # outcome is unknown: that copy landed (reads lag behind it). Wait for it.
            logger.info("the service is busy with the change sent before (%s); waiting for it",
                        describe(error))
            return
        # The first copy may have shown only now (a lagging read): then the refusal is expected.
        if not await _shows(took_effect):
            raise


async def _shows(took_effect: Callable[[], Awaitable[bool]]) -> bool:
    try:
        return await took_effect()
    except (APIStatusError, APIConnectionError) as error:
        if not may_mend(error):
            raise
        return False


def _release_name(request: Any) -> str | None:
    if isinstance(request, CreatePlatformRequest):
        return request.ai_ml_ops_platform_create_request.release_name
    try:
        return str(request["ai_ml_ops_platform_create_request"]["release_name"])
    except (KeyError, TypeError):
        return None
