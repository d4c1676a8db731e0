"""The per-client memory of recent changes: old notes are forgotten, recent ones kept."""

from __future__ import annotations

from aimlops_async.lifecycle.platforms import _PRUNE_AT, CHANGE_MEMORY, ChangeMemory


class WallClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_old_notes_are_pruned_and_recent_ones_kept() -> None:
    wall = WallClock()
    memory = ChangeMemory(wall)
    for number in range(_PRUNE_AT):
        memory.note(f"old-{number}", wall.now)
    wall.now += CHANGE_MEMORY + 1
    memory.note("old-7", wall.now)  # noted again: now a recent change
    for number in range(_PRUNE_AT):
        memory.note(f"new-{number}", wall.now)
    assert len(memory) == _PRUNE_AT + 1  # every old note gone but the one noted again
    assert memory.since("old-3") is None
    assert memory.since("old-7") is not None
    assert memory.since(f"new-{_PRUNE_AT - 1}") is not None


def test_thousands_of_recent_notes_are_all_remembered() -> None:
    wall = WallClock()
    memory = ChangeMemory(wall)
    for number in range(5 * _PRUNE_AT):
        memory.note(f"id-{number}", wall.now)
        wall.now += 0.001
    assert len(memory) == 5 * _PRUNE_AT
    assert memory.since("id-0") is not None
