"""The pagers of platforms, images and nodes on the wire: 0-based pages, size and filters on every page,
the three ways a walk ends, page models, no repeats when items shift, no endless loops, size checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from wire import FAST_RETRIES, Recorded, Reply, WireServer

from aimlops_async import (
    AimlopsClient,
    AsyncPager,
    Image,
    ImageListPage,
    Node,
    NodeListPage,
    PlatformListPage,
    PlatformSummary,
    ValidationError,
)
from aimlops_async.emulator import Emulator

CID = "c0ffee31e749b7b260868f441e862b00"


@dataclass(frozen=True)
class Kind:
    """How one list endpoint looks on the wire."""

    name: str
    path: str
    key: str  # the field that identifies an item
    items_field: str
    total_field: str
    item_cls: type[Any]
    page_cls: type[Any]
    open: Callable[..., AsyncPager[Any, Any]]

    def item(self, number: int) -> dict[str, Any]:
        return {self.key: f"{self.name}-{number:04d}"}

    def page(self, items: list[dict[str, Any]], total: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {self.items_field: items}
        if total is not None:
            body[self.total_field] = total
        if self.items_field == "nodes":
            body["links"] = []
        return body


KINDS = [
    Kind("platform", "/v1/aimlops-platform", "release_id", "contents", "total_count",
         PlatformSummary, PlatformListPage, lambda c, **kw: c.platforms.list(**kw)),
    Kind("image", "/v1/aimlops-platform/images", "image_id", "contents", "total_count",
         Image, ImageListPage, lambda c, **kw: c.images.list(**kw)),
    Kind("node", f"/v1/aimlops-platform/internal/clusters/{CID}/nodes", "name", "nodes", "count",
         Node, NodeListPage, lambda c, **kw: c.clusters.list_nodes(CID, **kw)),
]
KIND_IDS = [kind.name for kind in KINDS]


def key_of(kind: Kind, item: Any) -> str:
    value: str = getattr(item, kind.key)
    return value


class Listing:
    """A server-side list answering ``page``/``size`` the way offset paging does."""

    def __init__(self, kind: Kind, count: int, *, total: Callable[[int], int | None] | None = None):
        self.kind = kind
        self.items = [kind.item(n) for n in range(count)]
        self.total = total or (lambda real: real)
        self.on_page: Callable[[int], None] | None = None
        self.pages_served: list[int] = []

    def __call__(self, recorded: Recorded) -> Reply:
        assert recorded.path == self.kind.path, recorded.path
        page, size = int(recorded.query["page"]), int(recorded.query["size"])
        self.pages_served.append(page)
        if len(self.pages_served) > 100:  # a pager that never stops fails instead of hanging
            return Reply(400, {"code": "TOO_MANY_PAGES"})
        chunk = self.items[page * size:(page + 1) * size]
        body = self.kind.page(chunk, self.total(len(self.items)))
        if self.on_page is not None:
            self.on_page(page)
        return Reply(200, body)


def client_of(server: WireServer) -> AimlopsClient:
    return AimlopsClient(server.url, server.credentials, **FAST_RETRIES)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize(("count", "size", "pages"), [(12, 5, 3), (10, 5, 2), (3, 20, 1), (0, 20, 1)])
async def test_walks_every_page(kind: Kind, count: int, size: int, pages: int) -> None:
    listing = Listing(kind, count)
    async with WireServer(handler=listing) as server, client_of(server) as client:
        items = [item async for item in kind.open(client, size=size)]
        assert all(isinstance(item, kind.item_cls) for item in items)
        assert [key_of(kind, item) for item in items] == [i[kind.key] for i in listing.items]
        assert listing.pages_served == list(range(pages))
        assert {r.query["size"] for r in server.requests} == {str(size)}
        assert all(server.signature_ok(r) for r in server.requests)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_default_page_size_is_20(kind: Kind) -> None:
    listing = Listing(kind, 45)
    async with WireServer(handler=listing) as server, client_of(server) as client:
        assert len([item async for item in kind.open(client)]) == 45
        assert [r.query for r in server.requests] == [
            {"size": "20", "page": "0"}, {"size": "20", "page": "1"}, {"size": "20", "page": "2"}
        ]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_stops_at_total_count_without_asking_for_more(kind: Kind) -> None:
    """Full pages, but total_count says that was all: no request for an empty page after it."""
    listing = Listing(kind, 10)
    async with WireServer(handler=listing) as server, client_of(server) as client:
        assert len([item async for item in kind.open(client, size=5)]) == 10
        assert listing.pages_served == [0, 1]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_stops_at_a_short_page(kind: Kind) -> None:
    listing = Listing(kind, 7, total=lambda real: 1000)  # a total_count that overstates
    async with WireServer(handler=listing) as server, client_of(server) as client:
        assert len([item async for item in kind.open(client, size=5)]) == 7
        assert listing.pages_served == [0, 1]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_stops_at_an_empty_page(kind: Kind) -> None:
    listing = Listing(kind, 10, total=lambda real: 1000)
    async with WireServer(handler=listing) as server, client_of(server) as client:
        assert len([item async for item in kind.open(client, size=5)]) == 10
        assert listing.pages_served == [0, 1, 2]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_missing_total_count_walks_until_short_page(kind: Kind) -> None:
    listing = Listing(kind, 11, total=lambda real: None)
    async with WireServer(handler=listing) as server, client_of(server) as client:
        assert len([item async for item in kind.open(client, size=5)]) == 11
        assert listing.pages_served == [0, 1, 2]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_pages_yields_page_models(kind: Kind) -> None:
    listing = Listing(kind, 12)
    async with WireServer(handler=listing) as server, client_of(server) as client:
        pages = [page async for page in kind.open(client, size=5).pages()]
        assert [type(page) for page in pages] == [kind.page_cls] * 3
        assert [len(getattr(page, kind.items_field)) for page in pages] == [5, 5, 2]
        assert all(getattr(page, kind.total_field) == 12 for page in pages)
        # CONTRACT section 2: every page model has contents and total_count, nodes included.
        assert [len(page.contents) for page in pages] == [5, 5, 2]
        assert [page.total_count for page in pages] == [12, 12, 12]
        assert [key_of(kind, item) for page in pages for item in page.contents] == [
            i[kind.key] for i in listing.items
        ]


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_items_inserted_mid_iteration_are_not_yielded_twice(kind: Kind) -> None:
    listing = Listing(kind, 10)
    inserted = iter(range(100, 200))

    def insert_newest_first(page: int) -> None:
        # Newest first (created_dt:desc): each new item pushes every other one a place down.
        for _ in range(2):
            listing.items.insert(0, kind.item(next(inserted)))

    listing.on_page = insert_newest_first
    async with WireServer(handler=listing) as server, client_of(server) as client:
        keys = [key_of(kind, item) async for item in kind.open(client, size=4)]
        assert len(keys) == len(set(keys)), keys
        original = {kind.item(n)[kind.key] for n in range(10)}
        assert original <= set(keys)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_a_server_repeating_one_page_does_not_loop_forever(kind: Kind) -> None:
    page = kind.page([kind.item(n) for n in range(5)], 1000)
    async with WireServer(default=Reply(200, page)) as server, client_of(server) as client:
        keys = [key_of(kind, item) async for item in kind.open(client, size=5)]
        assert keys == [kind.item(n)[kind.key] for n in range(5)]
        assert len(server.requests) <= 5


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_a_server_cycling_two_pages_does_not_loop_forever(kind: Kind) -> None:
    first = kind.page([kind.item(n) for n in range(3)], None)
    second = kind.page([kind.item(n) for n in range(3, 6)], None)

    def cycle(recorded: Recorded) -> Reply:
        if len(server.requests) > 50:
            return Reply(400, {"code": "TOO_MANY_PAGES"})
        return Reply(200, first if int(recorded.query["page"]) % 2 == 0 else second)

    async with WireServer(handler=cycle) as server, client_of(server) as client:
        keys = [key_of(kind, item) async for item in kind.open(client, size=3)]
        assert sorted(keys) == sorted(kind.item(n)[kind.key] for n in range(6))
        assert len(server.requests) <= 6


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_a_repeated_page_of_items_without_ids_does_not_loop_forever(kind: Kind) -> None:
    page = kind.page([{"other": n} for n in range(4)], None)

    def repeat(recorded: Recorded) -> Reply:
        if len(server.requests) > 50:
            return Reply(400, {"code": "TOO_MANY_PAGES"})
        return Reply(200, page)

    async with WireServer(handler=repeat) as server, client_of(server) as client:
        items = [item async for item in kind.open(client, size=4)]
        assert 4 <= len(items) <= 8
        assert len(server.requests) <= 5


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_filters_and_size_go_on_every_page(kind: Kind) -> None:
    listing = Listing(kind, 9)
    filters: dict[str, Any] = {"sort": "created_dt:asc"}
    if kind.name == "platform":
        filters.update(release_name="aiml", status="DEPLOYED")
    elif kind.name == "image":
        filters.update(image_name="kubeflow")
    async with WireServer(handler=listing) as server, client_of(server) as client:
        assert len([item async for item in kind.open(client, size=4, **filters)]) == 9
        expected = {key: str(value) for key, value in filters.items()}
        for number, recorded in enumerate(server.requests):
            assert recorded.query == {**expected, "size": "4", "page": str(number)}


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_to_list_stops_early_and_a_pager_can_be_walked_again(kind: Kind) -> None:
    listing = Listing(kind, 10)
    async with WireServer(handler=listing) as server, client_of(server) as client:
        pager = kind.open(client, size=2)
        assert len(await pager.to_list(3)) == 3
        assert listing.pages_served == [0, 1]
        assert len(await pager.to_list()) == 10
        assert len([item async for item in pager]) == 10
        assert await pager.to_list(0) == []


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("size", [0, -1, True, 2.5, "10", None])
async def test_bad_sizes_are_refused_before_sending(kind: Kind, size: Any) -> None:
    async with WireServer() as server, client_of(server) as client:
        with pytest.raises(ValidationError) as caught:
            await kind.open(client, size=size).to_list()
        assert caught.value.field == "size"
        assert server.requests == []


async def test_errors_in_the_middle_of_a_walk_surface() -> None:
    kind = KINDS[0]
    listing = Listing(kind, 10)

    def fail_on_second_page(recorded: Recorded) -> Reply:
        if recorded.query["page"] == "1":
            return Reply(404, {"code": "NOT_FOUND", "message": "gone"})
        return listing(recorded)

    async with WireServer(handler=fail_on_second_page) as server, client_of(server) as client:
        seen: list[Any] = []
        with pytest.raises(Exception, match="gone"):
            async for item in kind.open(client, size=5):
                seen.append(item)
        assert len(seen) == 5


async def test_emulator_pages_agree_with_one_big_page(emulator: Emulator, client: AimlopsClient) -> None:
    for n in range(7):
        await client.platforms.create(emulator.sample_create_request(f"pager-{n}"))
    big = [p.release_id async for p in client.platforms.list(size=100)]
    small = [p.release_id async for p in client.platforms.list(size=2)]
    assert len(big) == 7 and sorted(big) == sorted(small)
    images = [i.image_id async for i in client.images.list(size=1)]
    assert sorted(images) == sorted(emulator.image_ids)
    nodes = [n.name async for n in client.clusters.list_nodes(emulator.cluster_id, size=1)]
    assert len(nodes) == len(set(nodes)) >= 1


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_page_is_where_the_walk_starts(kind: Kind) -> None:
    """``page`` is one of the reference's query parameters, so it is accepted like the filters."""
    listing = Listing(kind, 12)
    async with WireServer(handler=listing) as server, client_of(server) as client:
        items = [item async for item in kind.open(client, size=5, page=1)]
        assert [key_of(kind, item) for item in items] == [i[kind.key] for i in listing.items[5:]]
        assert listing.pages_served == [1, 2]
        assert len(await kind.open(client, size=5, page=0).to_list()) == 12


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("page", [-1, True, "1", 1.0, None])
async def test_bad_pages_are_refused_before_sending(kind: Kind, page: Any) -> None:
    async with WireServer() as server, client_of(server) as client:
        with pytest.raises(ValidationError) as caught:
            await kind.open(client, page=page).to_list()
        assert caught.value.field == "page"
        assert server.requests == []


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_a_page_repeating_an_item_or_with_keyless_items_leaves_the_rest_of_the_walk_right(
    kind: Kind,
) -> None:
    # Page 0 repeats one of its own items and holds one without a key: it is sorted out item by
    # item, and what it adds to the seen keys must be exactly its keyed items, once each.
    pages = {
        0: [kind.item(0), kind.item(1), kind.item(0), {"other": 1}],
        1: [kind.item(1), kind.item(2), kind.item(3), kind.item(4)],
        2: [kind.item(5)],
    }

    def serve(recorded: Recorded) -> Reply:
        return Reply(200, kind.page(pages[int(recorded.query["page"])], None))

    async with WireServer(handler=serve) as server, client_of(server) as client:
        items = [item async for item in kind.open(client, size=4)]
        assert [key_of(kind, item) for item in items] == [
            kind.item(n)[kind.key] if n is not None else None for n in (0, 1, None, 2, 3, 4, 5)
        ]
        walked = [page async for page in kind.open(client, size=4).pages()]
        assert [len(getattr(page, kind.items_field)) for page in walked] == [4, 4, 1]


async def test_a_walk_holds_no_page_while_it_fetches_the_next() -> None:
    # With many walks in flight, a page kept by the pager until the next one arrives is memory
    # (and garbage collection work) that grows with the number of walks.
    import gc
    import weakref

    kind = KINDS[0]
    listing = Listing(kind, 30)
    released: list[bool] = []

    async with WireServer(handler=listing) as server, client_of(server) as client:
        previous: weakref.ref[Any] | None = None

        def check(_: int) -> None:
            if previous is not None:
                gc.collect()
                released.append(previous() is None)

        listing.on_page = check
        async for page in kind.open(client, size=10).pages():
            previous = weakref.ref(page)
            del page
    assert released == [True, True]


async def test_a_walk_left_unfinished_keeps_no_page_alive() -> None:
    import gc
    import weakref

    kind = KINDS[0]
    listing = Listing(kind, 30)
    async with WireServer(handler=listing) as server, client_of(server) as client:
        walk = kind.open(client, size=10).pages()
        page = await walk.__anext__()
        first = weakref.ref(page)
        del page
        gc.collect()
        assert first() is None  # the walk, suspended after handing the page out, holds none
        await walk.aclose()
