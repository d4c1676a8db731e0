"""What a failed call means: retry it, its outcome is unknown, or the answer is final.

One classification by method and answer, shared by the session's retries, the waits, the fleet
poller and bulk provisioning, so that "transient" means the same thing everywhere:

- ``RETRY``: the call was not carried out, or carrying it out twice is harmless, and trying again
  may mend it (a refused connection; 429; for reads 502/503/504, the edge's 417 page, a dropped
  connection, a timeout, an unreadable 2xx; for PUT and DELETE 503). The session sends these
  again at once (with backoff).
- ``UNKNOWN``: nothing definite was learnt. A write may have been carried out (a dropped connection
  or timeout after sending, a 5xx, 408/425, an unreadable 2xx): look before sending it again.
  A read told nothing (a 500): the session does not repeat it at once, a poller reads again later.
- ``FINAL``: a definite answer (any other 4xx, a TLS failure, a body past the size limit):
  trying again changes nothing.
"""

from __future__ import annotations

import enum

from .errors import EDGE_THROTTLED, RESPONSE_TOO_LARGE, APIConnectionError, APIStatusError

__all__ = ["READ_METHODS", "Outcome", "classify"]


class Outcome(enum.Enum):
    RETRY = "retry"
    UNKNOWN = "unknown"
    FINAL = "final"


# Reads may be repeated whatever happened to the first attempt.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Busy or unreachable upstream: a read is worth repeating at once.
_READ_RETRY_STATUSES = frozenset({429, 502, 503, 504})
# PUT and DELETE start a background operation on this service: a second copy sent while it runs
# is refused (400) although the first one worked, so they are repeated only after an answer that
# says the first copy was not acted on.
_NOT_ACTED_ON_STATUSES = frozenset({429, 503})
# "Try again later" answers that say nothing of whether a write was carried out.
_TRY_LATER_STATUSES = frozenset({408, 425})


def classify(error: BaseException, method: str | None = None) -> Outcome:
    """The outcome of a failed call; ``method`` defaults to the one the error carries."""
    method = (method or getattr(error, "method", None) or "GET").upper()
    read = method in READ_METHODS
    if isinstance(error, APIConnectionError):
        if not error.retryable:
            return Outcome.FINAL
        return Outcome.RETRY if read or not error.sent else Outcome.UNKNOWN
    if not isinstance(error, APIStatusError):
        return Outcome.FINAL
    if error.code == RESPONSE_TOO_LARGE:
        return Outcome.FINAL  # the same answer again would cost as much again
    status = error.status
    answered_2xx = 200 <= status < 300  # an answer that could not be read
    if read:
        # The edge's 417 page throttles like a 429 (writes surface it: RateLimitError).
        if status in _READ_RETRY_STATUSES or answered_2xx or error.code == EDGE_THROTTLED:
            return Outcome.RETRY
        return Outcome.UNKNOWN if status >= 500 or status in _TRY_LATER_STATUSES else Outcome.FINAL
    if status == 429 or (method != "POST" and status in _NOT_ACTED_ON_STATUSES):
        # A create answered 503 may still have been carried out: only 429 says it was not.
        return Outcome.RETRY
    if status >= 500 or answered_2xx or status in _TRY_LATER_STATUSES:
        return Outcome.UNKNOWN
    return Outcome.FINAL


def may_mend(error: BaseException) -> bool:
    """Whether trying again later may mend a failure (anything but a final answer)."""
    return classify(error) is not Outcome.FINAL
