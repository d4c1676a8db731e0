"""Models to and from the API's JSON shape: the one rendering the command line and the FastAPI
integration share, for callers that store, print or serve the SDK's models.

Both are thin layers over the converter the client itself uses on the wire, so a model written
with ``to_json`` reads back with ``from_json`` as the client would read it from the service.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import attrs

from .converter import json_type_name, structure_answer, unstructure
from .errors import ValidationError
from .resources._base import checked_request

__all__ = ["from_json", "json_type_name", "to_json"]

T = TypeVar("T")


def to_json(value: Any, *, keep_none: bool = False) -> Any:
    """``value`` as JSON-ready data (``json.dumps`` takes it as is), in the API's JSON shape.

    Models (requests and answers) become objects with the API's field names, datetimes the
    API's UTC form (``2024-05-17T00:23:17Z``, milliseconds when present), enums their value;
    mappings, lists and tuples are rendered item by item, anything else is returned as it is.
    Fields that are ``None`` are left out, as the API leaves them out; ``keep_none=True`` writes
    them as ``null`` instead (a stable set of keys, for a web client's schema).
    """
    if attrs.has(type(value)):
        if keep_none:
            return {
                field.name: to_json(getattr(value, field.name), keep_none=True)
                for field in attrs.fields(type(value))
            }
        return unstructure(value)
    if isinstance(value, (datetime, Enum)):
        return unstructure(value)
    if isinstance(value, Mapping):
        return {str(key): to_json(item, keep_none=keep_none) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item, keep_none=keep_none) for item in value]
    return value


def from_json(data: Any, cls: type[T]) -> T:
    """A model of class ``cls`` from decoded JSON in the API's shape.

    A request model (``CreatePlatformRequest``, ``UpdatePlatformRequest``, ...) is checked as
    the client checks it before sending: strictly, every type and rule, an unknown field is an
    error; ``ValidationError`` lists every problem with its field path. An answer model
    (``PlatformDetail``, ``PlatformListPage``, ...) is read as the client reads the service's
    answers: unknown fields are ignored, missing ones are None, an unknown state is kept; only
    a value that is not an object, or an object without the model's identity field (a detail's
    ``release_id``), raises ``ValidationError``.
    """
    is_model = isinstance(cls, type) and attrs.has(cls)  # a stored test: ``cls`` keeps its type T
    if not is_model:
        raise ValidationError(f"must be an SDK model class, got {cls!r}", "cls")
    if hasattr(cls, "problems"):
        request: T = checked_request(data, cls)
        return request
    try:
        answer: T = structure_answer(data, cls)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"is not a {cls.__name__}: {exc}", "data") from None
    return answer
