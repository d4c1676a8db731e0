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
        async for page, _ in self._walk():
            yield page

    def __aiter__(self) -> AsyncIterator[ItemT]:
        return self._unique_items()

    async def _unique_items(self) -> AsyncIterator[ItemT]:
        async for _, new_items in self._walk():
            for item in new_items:
                yield item

    async def _walk(self) -> AsyncIterator[tuple[PageT, list[ItemT]]]:
        seen: set[Hashable] = set()
        seen_keyless: set[tuple[str, ...]] = set()
        stalled = 0
        number = self.first_page
        while True:
            page = await self._fetch(number, self.size)
            items = list(self._items(page) or ())
            if len(items) > max_page_items(self.size):
                raise APIStatusError(
                    f"page {number} holds {len(items)} items, {self.size} were asked for",
                    status=200, code=MALFORMED_RESPONSE,
                )
            keys = list(map(self._key, items))
            if None not in keys and seen.isdisjoint(keys) and len(set(keys)) == len(keys):
                # The usual page: every item new. Set operations in C instead of a loop per item.
                seen.update(keys)
                yield page, items
                stalled = 0 if items else stalled + 1
                if self._last(page, number, items):
                    return
                number += 1
                continue
            keyless_are_new = True
            if None in keys:
                # Items without an id can only be told apart by their content: a page of them
                # seen before is a repeat, or a server repeating it would be walked forever.
                fingerprint = tuple(repr(item) for item, key in zip(items, keys, strict=True) if key is None)
                keyless_are_new = fingerprint not in seen_keyless
                seen_keyless.add(fingerprint)
            new_items = []
            for item, key in zip(items, keys, strict=True):
                if key is None:
                    if keyless_are_new:
                        new_items.append(item)
                elif key not in seen:
                    seen.add(key)
                    new_items.append(item)
            yield page, new_items
            stalled = 0 if new_items else stalled + 1
            if self._last(page, number, items) or stalled >= _STALLED_PAGES_LIMIT:
                return
            number += 1

    def _last(self, page: PageT, number: int, items: list[ItemT]) -> bool:
        """Whether page ``number`` ends the walk: empty, short, or reaching ``total_count``."""
        total = self._total(page)
        return (
            not items
            or len(items) < self.size
            or (total is not None and (number + 1) * self.size >= total)
        )

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
