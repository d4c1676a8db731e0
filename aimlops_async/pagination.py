"""The async pager: walks 0-based pages of a list endpoint, without repeats and without looping forever."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from .errors import MALFORMED_RESPONSE, APIStatusError

__all__ = ["DEFAULT_PAGE_SIZE", "AsyncPager", "max_page_items"]

ItemT = TypeVar("ItemT")
PageT = TypeVar("PageT")

DEFAULT_PAGE_SIZE = 20
# A server that answers this many pages in a row with nothing new is repeating itself.
_STALLED_PAGES_LIMIT = 2
# A page may hold a little more than was asked for (a server with its own page size), but a
# page far larger is a malformed answer, not work to do.
_EXTRA_ITEMS_ALLOWED = 100


def max_page_items(size: int) -> int:
    """The most items a page asked for with ``size`` may hold before it is a malformed answer."""
    return max(2 * size, size + _EXTRA_ITEMS_ALLOWED)


class AsyncPager(Generic[ItemT, PageT]):
    """``async for item in pager`` walks every item; ``pager.pages()`` walks the page models.

    Paging stops at an empty or short page, or once ``(page + 1) * size`` reaches the latest
    ``total_count``. Items are keyed (``release_id``, ``image_id``, node ``name``): an item seen on an
    earlier page is not yielded again (offset paging repeats items when new ones are inserted
    mid-listing); items without a key are told apart by content, a page of them at a time;
    and pages that bring nothing new end the walk instead of looping forever. A page with far
    more items than ``size`` (see ``max_page_items``) raises a malformed-answer ``APIStatusError``.
    """

    def __init__(
        self,
        fetch: Callable[[int, int], Awaitable[PageT]],
        *,
        items: Callable[[PageT], Sequence[ItemT] | None],
        total: Callable[[PageT], int | None],
        key: Callable[[ItemT], Hashable],
        size: int = DEFAULT_PAGE_SIZE,
        first_page: int = 0,
    ) -> None:
        self._fetch = fetch
        self._items = items
        self._total = total
        self._key = key
        self.size = size
        self.first_page = first_page

    async def pages(self) -> AsyncIterator[PageT]:
        """Each page model in turn (items as the server sent them, repeats included)."""
        walk = _Walk(self)
        while not walk.done:
            # No local holds the page: a walk waiting for the next page, or left unfinished,
            # keeps no page alive.
            yield walk.passed(await self._fetch(walk.number, self.size))

    def __aiter__(self) -> AsyncIterator[ItemT]:
        return self._unique_items()

    async def _unique_items(self) -> AsyncIterator[ItemT]:
        walk = _Walk(self)
        while not walk.done:
            for item in walk.take(await self._fetch(walk.number, self.size)):
                yield item

    async def to_list(self, limit: int | None = None) -> list[ItemT]:
        """Collect the items (at most ``limit``) into a list."""
        collected: list[ItemT] = []
        if limit is not None and limit <= 0:
            return collected
        async for item in self:
            collected.append(item)
            if limit is not None and len(collected) >= limit:
                break
        return collected

    def __repr__(self) -> str:
        return f"AsyncPager(size={self.size})"


class _Walk(Generic[ItemT, PageT]):
    """One walk's state: the page to ask for next, the keys seen, and whether the walk is over.

    Kept apart from the generators so that each walk is one generator over ``fetch``, and the
    work per page is plain calls: a page whose items are all new (the usual page) is checked
    with set operations in C, not a Python loop per item.
    """

    __slots__ = ("done", "number", "pager", "seen", "seen_keyless", "stalled")

    def __init__(self, pager: AsyncPager[ItemT, PageT]) -> None:
        self.pager = pager
        self.number = pager.first_page
        self.done = False
        self.seen: set[Hashable] = set()
        self.seen_keyless: set[tuple[str, ...]] = set()
        self.stalled = 0

    def passed(self, page: PageT) -> PageT:
        """``page``, once taken (see ``take``)."""
        self.take(page)
        return page

    def take(self, page: PageT) -> Sequence[ItemT]:
        """The items of page ``number`` not seen before; decides whether the walk ends there.

        It ends at an empty or short page, once ``(number + 1) * size`` reaches ``total_count``,
        or after ``_STALLED_PAGES_LIMIT`` pages in a row with nothing new.
        """
        pager, number, size = self.pager, self.number, self.pager.size
        items = pager._items(page) or ()
        count = len(items)
        if count > max_page_items(size):
            raise APIStatusError(
                f"page {number} holds {count} items, {size} were asked for",
                status=200, code=MALFORMED_RESPONSE,
            )
        keys = list(map(pager._key, items))
        seen = self.seen
        new_items: Sequence[ItemT]
        if seen.isdisjoint(keys):
            before = len(seen)
            seen.update(keys)
            # None is never kept in ``seen``: here it can only be a key of this page.
            if len(seen) - before == count and None not in seen:
                new_items = items  # the usual page: every item keyed, new and unique
            else:
                seen.difference_update(keys)  # none was seen before: as it was
                new_items = self._sorted_out(items, keys)
        else:
            new_items = self._sorted_out(items, keys)
        self.stalled = 0 if new_items else self.stalled + 1
        total = pager._total(page)
        self.done = (
            not count
            or count < size
            or (total is not None and (number + 1) * size >= total)
            or self.stalled >= _STALLED_PAGES_LIMIT
        )
        self.number = number + 1
        return new_items

    def _sorted_out(self, items: Sequence[ItemT], keys: list[Hashable]) -> list[ItemT]:
        """The new items of a page with repeats, or with items that have no key."""
        seen = self.seen
        keyless_are_new = True
        if None in keys:
            # Items without an id can only be told apart by their content: a page of them
            # seen before is a repeat, or a server repeating it would be walked forever.
            fingerprint = tuple(repr(item) for item, key in zip(items, keys, strict=True) if key is None)
            keyless_are_new = fingerprint not in self.seen_keyless
            self.seen_keyless.add(fingerprint)
        new_items = []
        for item, key in zip(items, keys, strict=True):
            if key is None:
                if keyless_are_new:
                    new_items.append(item)
            elif key not in seen:
                seen.add(key)
                new_items.append(item)
        return new_items
