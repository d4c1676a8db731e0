"""Polling a release until a target or terminal state: watch, wait_until_deployed, wait_until_deleted."""

from __future__ import annotations

import attrs

__all__ = ["DEFAULT_POLL_DELAY", "DEFAULT_POLL_MAX_DELAY", "DEFAULT_POLL_TIMEOUT", "PollDefaults"]

DEFAULT_POLL_DELAY = 5.0
DEFAULT_POLL_MAX_DELAY = 30.0
DEFAULT_POLL_TIMEOUT = 3600.0


@attrs.frozen(kw_only=True)
class PollDefaults:
    """The client's defaults for every wait (bulk runs included), in seconds.

    Fit for the real service, where provisioning takes many minutes: the first poll comes after
    ``delay``, later ones back off exponentially (with jitter) up to ``max_delay``, and the wait
    gives up after ``timeout``.
    """

    delay: float = DEFAULT_POLL_DELAY
    max_delay: float = DEFAULT_POLL_MAX_DELAY
    timeout: float = DEFAULT_POLL_TIMEOUT
