"""What may be shown of a request in a log line, a span, an error or a hook: allowlists.

Headers: only those on an allowlist show their values; everything else (the access key, the
signature, an auth token, any header a caller adds) is shown as ``REDACTED``, so a new secret
header is hidden without anyone remembering to.

Query strings: only the values of the parameters the API documents show; any other value (a
caller's ``extra_query=``, which may be a signed token) reads ``REDACTED`` and its name stays,
as the OpenTelemetry semantic conventions ask of ``url.full`` (``page=0&sig=REDACTED``). What is
sent and signed is never changed: only what is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

__all__ = ["REDACTED", "SHOWN_QUERY_PARAMETERS", "redact_headers", "redact_query", "redact_url"]

REDACTED = "REDACTED"

_LOGGED_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept", "Accept-Language", "Content-Length", "Content-Type", "Date", "Retry-After",
        "Scp-AccountId", "Scp-Api-Version", "Scp-ClientType", "Scp-Timestamp", "User-Agent",
        "X-Request-Id",
    )
)

# Every query parameter of every endpoint of the API reference (names match case-sensitively).
SHOWN_QUERY_PARAMETERS = frozenset({
    "cluster_name", "created_by", "image_name", "kubeflow_type", "page", "product_type",
    "release_name", "size", "sort", "status", "version", "with_k8s",
})


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers fit for a log line: only an allowlist is shown, the rest (keys, signature) is REDACTED."""
    return {
        name: value if name.lower() in _LOGGED_HEADERS else REDACTED
        for name, value in headers.items()
    }


def redact_url(url: object) -> str:
    """A URL (or a path with its query) fit for a log line, a span or an error message.

    The values of query parameters the API does not document read ``REDACTED``; their names,
    the documented parameters and everything before the query are kept as they were.
    """
    text = str(url)
    head, mark, query = text.partition("?")
    if not mark or not query:
        return text
    return f"{head}?{redact_query(query)}"


def redact_query(query: str) -> str:
    """An encoded query string with every value but the documented parameters' ``REDACTED``."""
    shown = []
    for pair in query.split("&"):
        name, equals, _ = pair.partition("=")
        if equals and unquote(name) not in SHOWN_QUERY_PARAMETERS:
            pair = f"{name}={REDACTED}"
        shown.append(pair)
    return "&".join(shown)
