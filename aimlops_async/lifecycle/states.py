"""The success, failure and stop sets of platform states, and the one judge of a reading.

Every poller (one wait, the shared poller, bulk runs) and the command line judge states here,
so "FAILED ends a wait" or "DELETING will never deploy" is said once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from ..errors import ValidationError

__all__ = [
    "DEFAULT_FAILURE_STATES",
    "DEFAULT_SUCCESS_STATES",
    "DELETE_JUDGE",
    "DEPLOY_JUDGE",
    "StateJudge",
    "Verdict",
    "state_text",
]

DEFAULT_SUCCESS_STATES: frozenset[str] = frozenset({"DEPLOYED"})
DEFAULT_FAILURE_STATES: frozenset[str] = frozenset({"FAILED", "ERROR"})
# A platform being deleted will not reach a success state by itself: a wait for one stops there.
DELETING = "DELETING"


class Verdict(enum.Enum):
    """What one reading of a platform's ``release_state`` says about a wait."""

    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILURE = "failure"


def state_text(value: object) -> str | None:
    """The API's string of a state (the tolerant enums' ``str``), or None."""
    return None if value is None else str(value)


@attrs.frozen(slots=True)
class StateJudge:
    """Which states end a wait, and how: ``success`` returns, ``failure`` raises.

    ``stop`` states are failures too, unless named a success: they are the states from which
    the platform cannot reach a success state by itself (``DELETING`` while waiting to deploy).
    Build one with ``for_deploy`` or ``for_delete``, which check the caller's sets.
    """

    success: frozenset[str]
    failure: frozenset[str]
    terminal: frozenset[str] = attrs.field(init=False)

    @terminal.default
    def _terminal(self) -> frozenset[str]:
        return self.success | self.failure

    @classmethod
    def for_deploy(
        cls, success_states: Iterable[str] | None = None, failure_states: Iterable[str] | None = None
    ) -> StateJudge:
        """The judge of a wait until deployed (or a caller's own success states)."""
        if success_states is None and failure_states is None:
            return DEPLOY_JUDGE
        success = _states("success_states", success_states, DEFAULT_SUCCESS_STATES)
        failure = _states("failure_states", failure_states, DEFAULT_FAILURE_STATES)
        _no_overlap(success, failure)
        return cls(success, failure if DELETING in success else failure | {DELETING})

    @classmethod
    def for_delete(cls, failure_states: Iterable[str] | None = None) -> StateJudge:
        """The judge of a wait until deleted: no success state (the platform's absence is)."""
        if failure_states is None:
            return DELETE_JUDGE
        return cls(frozenset(), _states("failure_states", failure_states, DEFAULT_FAILURE_STATES))

    def judge(self, state: object) -> Verdict:
        """The verdict on a reading's ``release_state`` (a string or the tolerant enum)."""
        text = state_text(state)
        if text is None or text not in self.terminal:
            return Verdict.IN_PROGRESS
        return Verdict.SUCCESS if text in self.success else Verdict.FAILURE

    def describe_target(self) -> str:
        return "/".join(sorted(self.success)) or "deleted"


def _states(field: str, value: Iterable[str] | None, default: frozenset[str]) -> frozenset[str]:
    if value is None:
        return default
    if isinstance(value, str):
        value = [value]  # a single state given as a string, not its characters
    states = frozenset(str(state) for state in value)
    if not all(states):
        raise ValidationError("states must be non-empty strings", field)
    return states


def _no_overlap(success: frozenset[str], failure: frozenset[str]) -> None:
    overlap = success & failure
    if overlap:
        raise ValidationError(
            f"a state cannot be both success and failure: {', '.join(sorted(overlap))}",
            "failure_states",
        )


# Shared by every wait that keeps the defaults: thousands of waits need no copy of the sets each.
DEPLOY_JUDGE = StateJudge(DEFAULT_SUCCESS_STATES, DEFAULT_FAILURE_STATES | {DELETING})
DELETE_JUDGE = StateJudge(frozenset(), DEFAULT_FAILURE_STATES)
