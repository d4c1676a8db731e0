"""What every resource shares: the session handle, path building and argument checks."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..converter import is_unicode_text, structure_request, unstructure
from ..errors import ValidationError
from ..session import Session

BASE_PATH = "/v1/aimlops-platform"


class Resource:
    """A group of endpoints; subclasses declare one method per endpoint of the reference."""

    def __init__(self, session: Session) -> None:
        self._session = session


# Path segments the API itself uses right after BASE_PATH: an id spelled like one of them would
# call another endpoint (GET {BASE_PATH}/images lists images instead of reading a platform).
ROUTE_NAMES = frozenset({"images", "check-duplication", "internal", "clusters"})
# Characters that proxies and servers may decode or normalise even when quoted (%2F, %5C, %25).
_UNSAFE_IN_PATH = frozenset("/\\%")


def path_id(value: Any, field: str) -> str:
    """A path parameter, checked and quoted so it can never change the path's shape.

    Refused before sending: an id that names one of the API's own routes, ``.`` or ``..``
    (dot segments are resolved away), and ids holding ``/``, a backslash, ``%`` or a control
    character, which servers may decode back into path syntax.
    """
    text = required_text(value, field)
    if text.isascii() and text.isalnum():
        if text.lower() in ROUTE_NAMES:
            raise ValidationError(f"must be an id, not the name of an API route ({text!r})", field)
        return text  # the usual hex id: quoting would leave it as it is
    if text.strip(".") == "" or text.lower() in ROUTE_NAMES:
        raise ValidationError(f"must be an id, not a path segment ({text!r})", field)
    if any(char in _UNSAFE_IN_PATH or not char.isprintable() for char in text):
        raise ValidationError(
            "must not hold '/', '\\', '%' or control characters (they would change the path)",
            field,
        )
    return quote(text, safe="")


def required_text(value: Any, field: str) -> str:
    """A required path or query parameter, checked before anything is sent."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"must be a non-empty string, got {value!r}", field)
    if not is_unicode_text(value):
        raise ValidationError("must be valid Unicode text (it holds a lone surrogate)", field)
    return value



def page_number(page: Any) -> int:
    """The first page to ask for (the reference's 0-based ``page`` parameter)."""
    if isinstance(page, bool) or not isinstance(page, int) or page < 0:
        raise ValidationError(f"must be an integer >= 0, got {page!r}", "page")
    return page


def page_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValidationError(f"must be a positive integer, got {size!r}", "size")
    return size


def checked_request(request: Any, cls: type[Any]) -> Any:
    """A request model or mapping, structured (strictly) and checked, or ``ValidationError``."""
    if isinstance(request, cls):
        # A model built in Python skipped the type checks a mapping gets (attrs does not check
        # types): run them on its JSON shape, so a wrong type is named before anything is sent.
        try:
            request = unstructure(request)
        except (AttributeError, TypeError) as exc:
            raise ValidationError(f"is not a valid {cls.__name__}: {exc}", "request") from None
    model = structure_request(request, cls)
    problems = model.problems()
    if problems:
        raise ValidationError(problems)
    return model
