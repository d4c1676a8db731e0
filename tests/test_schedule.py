"""The one poll schedule: a wait keeps it as a count, and the count gives backoff's delays."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from aimlops_async.lifecycle import schedule

delays = st.floats(min_value=0.001, max_value=3600.0, allow_nan=False)


@given(first=delays, cap=delays)
def test_a_step_of_the_schedule_is_backoffs_delay_at_that_attempt(first: float, cap: float) -> None:
    expected = list(itertools.islice(schedule.expo(first, cap), 80))
    assert [schedule.expo_step(first, cap, attempt) for attempt in range(80)] == expected


def test_a_schedule_counted_far_past_its_cap_stays_at_the_cap() -> None:
    assert schedule.expo_step(5.0, 30.0, 10**6) == 30.0
