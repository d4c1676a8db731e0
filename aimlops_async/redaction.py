"""Which request headers may be shown in a log line or handed to a hook: an allowlist.

Everything not on it (the access key, the signature, an auth token, any header a caller adds)
is shown as ``REDACTED``, so a new secret header is hidden without anyone remembering to.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["redact_headers"]

_LOGGED_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept", "Accept-Language", "Content-Length", "Content-Type", "Date", "Retry-After",
        "Scp-AccountId", "Scp-Api-Version", "Scp-ClientType", "Scp-Timestamp", "User-Agent",
        "X-Request-Id",
    )
)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers fit for a log line: only an allowlist is shown, the rest (keys, signature) is REDACTED."""
    return {
        name: value if name.lower() in _LOGGED_HEADERS else "REDACTED"
        for name, value in headers.items()
    }
