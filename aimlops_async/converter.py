"""The cattrs converters: tolerant for responses, strict for requests, with datetime and enum hooks.

Responses: unknown keys are ignored, missing keys become ``None``, unknown enum values survive.
Requests given as plain mappings: unknown keys, missing required fields and wrong JSON types are
all reported at once, each with its full field path, as a ``ValidationError``.
Hooks are registered once, at import; cattrs compiles a function per class on first use.
"""

from __future__ import annotations

import inspect
import logging
import sys
import types
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from enum import Enum
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn

from .errors import ValidationError

logger = logging.getLogger("aimlops_async.session")

__all__ = [
    "format_datetime",
    "is_unicode_text",
    "json_type_name",
    "parse_datetime",
    "structure_answer",
    "structure_request",
    "structure_response",
    "unstructure",
]

T = TypeVar("T")


# From Python 3.11 on, fromisoformat reads a trailing "Z" (and any ISO 8601 form) by itself.
_NATIVE_ISOFORMAT = sys.version_info >= (3, 11)


def parse_datetime(value: Any) -> datetime:
    """An API timestamp as an aware datetime; a value without an offset is taken as UTC."""
    if _NATIVE_ISOFORMAT and value.__class__ is str:
        # The common case in one C call; anything it rejects (spaces, "z") takes the path below.
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        # Epoch milliseconds: some SCP services answer timestamps this way.
        try:
            return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
        except (OverflowError, OSError) as exc:  # out of the platform's range: a bad answer
            raise ValueError(f"timestamp out of range: {value}") from exc
    else:
        raise TypeError(f"expected an ISO 8601 timestamp, got {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def format_datetime(value: datetime) -> str:
    """The API's timestamp form: UTC, ``Z`` suffix, milliseconds only when present."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        millis, micros = divmod(value.microsecond, 1000)
        text += f".{value.microsecond:06d}" if micros else f".{millis:03d}"
    return text + "Z"


def _structure_check_result(value: Any, _: Any) -> bool | str | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return str(value)


def _omit_none_unstructure(converter: cattrs.Converter) -> None:
    """Unstructure attrs models without the fields that are ``None`` (the API omits them too)."""

    def factory(cls: type) -> Callable[[Any], dict[str, Any]]:
        base: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(cls, converter)

        def unstructure_without_none(obj: Any) -> dict[str, Any]:
            return {key: value for key, value in base(obj).items() if value is not None}

        return unstructure_without_none

    converter.register_unstructure_hook_factory(attrs.has, factory)


def _common_hooks(converter: cattrs.Converter) -> None:
    converter.register_structure_hook(datetime, lambda value, _: parse_datetime(value))
    converter.register_unstructure_hook(datetime, format_datetime)
    converter.register_structure_hook_func(
        lambda t: t == (bool | str | None), _structure_check_result
    )
    converter.register_structure_hook_func(lambda t: t is Any, lambda value, _: value)
    converter.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, Enum), lambda member: member.value
    )
    _omit_none_unstructure(converter)


# ---------------------------------------------------------------- responses: precompiled hooks
#
# Every response is structured on the request path, so its hooks are built once per type and
# kept lean: ``X | None`` takes one call instead of cattrs' two, a known enum value is a dict
# lookup, and each response model gets one generated function that reads every field with
# ``dict.get``. The results are those of the plain cattrs hooks (tests/test_hot_path.py).

_NONE_TYPE = type(None)


def _optional_of(type_: Any) -> Any:
    """``X`` for ``X | None`` (or ``Optional[X]``); None for any other type."""
    if get_origin(type_) in (Union, types.UnionType):
        args = get_args(type_)
        if len(args) == 2 and _NONE_TYPE in args:
            return args[0] if args[1] is _NONE_TYPE else args[1]
    return None


def _optional_str(value: Any, _: Any) -> str | None:
    return value if value is None or value.__class__ is str else str(value)


def _takes_str_as_is(hook: Any) -> bool:
    # cattrs' own hook for str is str(value), which returns a str unchanged; a custom hook is kept.
    plain = getattr(cattrs.BaseConverter, "_structure_call", None)
    return plain is not None and (hook is plain or getattr(hook, "__func__", None) is plain)


# Each optional-enum hook made below, with what a generated function needs to inline its lookup:
# the value-to-member map, the enum's own hook, and the enum class.
_ENUM_LOOKUPS: dict[Any, tuple[Mapping[Any, Any], Callable[[Any, Any], Any], type]] = {}


def _optional_hooks(converter: cattrs.Converter) -> None:
    def factory(type_: Any) -> Callable[[Any, Any], Any]:
        inner = _optional_of(type_)
        hook = converter.get_structure_hook(inner)
        if inner is str and _takes_str_as_is(hook):
            return _optional_str
        if isinstance(inner, type) and issubclass(inner, Enum):
            members = inner._value2member_map_

            def optional_enum(value: Any, _: Any) -> Any:
                if value is None:
                    return None
                if value.__class__ is str:
                    member = members.get(value)
                    if member is not None:
                        return member
                # Unknown values go through the class (the tolerant enums make a pseudo-member).
                return hook(value, inner)

            _ENUM_LOOKUPS[optional_enum] = (members, hook, inner)
            return optional_enum

        def optional(value: Any, _: Any) -> Any:
            return None if value is None else hook(value, inner)

        return optional

    converter.register_structure_hook_factory(lambda t: _optional_of(t) is not None, factory)


def _is_response_model(cls: Any) -> bool:
    """An attrs class whose fields all default to None: the shape of every response model."""
    return attrs.has(cls) and all(
        field.init and field.default is None and field.alias == field.name
        for field in attrs.fields(cls)
    )


def _builder_of(cls: Any) -> type | None:
    """A subclass of ``cls`` whose instances take plain assignment, or None where that cannot work.

    Only for a class whose ``__init__`` does nothing but store its fields (slotted; no
    validators, converters, pre/post-init hooks, or extra slots such as a hash cache). The
    subclass adds no slots, so an instance built from it becomes a ``cls`` by assigning
    ``__class__``, the same object ``cls(**fields)`` builds. Its attribute assignment is
    ``object``'s own, so the interpreter stores each slot directly: a frozen class's
    ``__setattr__`` refuses, and a slot descriptor's setter costs a method call per field.
    """
    fields = attrs.fields(cls)
    slots = {
        name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ()) if name != "__weakref__"
    }
    if (
        cls.__new__ is not object.__new__
        or hasattr(cls, "__attrs_pre_init__")
        or hasattr(cls, "__attrs_post_init__")
        or slots != {field.name for field in fields}
        or any(field.validator is not None or field.converter is not None for field in fields)
        or not all(
            isinstance(inspect.getattr_static(cls, field.name), types.MemberDescriptorType)
            for field in fields
        )
    ):
        return None
    namespace = {
        "__slots__": (),
        "__module__": cls.__module__,
        "__qualname__": f"{cls.__qualname__}._Builder",
        "__setattr__": object.__setattr__,
        "__delattr__": object.__delattr__,
    }
    try:
        builder = type(f"{cls.__name__}Builder", (cls,), namespace)
        object.__new__(builder).__class__ = cls  # the layouts match: checked once, here
    except TypeError:
        return None
    return builder


# Timestamps repeat: a fleet listed round after round sends the same created_dt, and mostly the
# same modified_dt, for every platform each time. A parsed datetime is immutable, so one object
# can serve every model that holds it; bounded by emptying the memory when it is full.
_PARSED_TIMESTAMPS: dict[str, datetime] = {}
PARSED_TIMESTAMPS_LIMIT = 32_768


def _timestamp_field(value: Any) -> datetime | None:
    """``_optional_datetime``'s rule for a value not found remembered; a parsed text is remembered."""
    if value is None or value == "":
        return None
    parsed = parse_datetime(value)  # raises for a bad timestamp, which is never remembered
    if value.__class__ is str:
        if len(_PARSED_TIMESTAMPS) >= PARSED_TIMESTAMPS_LIMIT:
            _PARSED_TIMESTAMPS.clear()
        _PARSED_TIMESTAMPS[value] = parsed
    return parsed


def _field_expression(
    hook: Any, field_type: Any, number: int, namespace: dict[str, Any]
) -> str:
    """The expression that structures field ``number`` from ``v``, bound by the ``{fetch}`` in it.

    Each is written for the common value (a string of the field's kind) and hands anything else
    to the hook the plain converter uses for the field, so the result is the same.
    """
    if hook is _optional_str:
        namespace["as_text"] = _optional_str
        return "v if (v := {fetch}).__class__ is str else as_text(v, None)"
    if hook in _ENUM_LOOKUPS:
        # A known value is one dict lookup; anything else (None, an unknown string, a number, a
        # member whose value is falsy) goes to the field's optional-enum hook.
        members, _, _ = _ENUM_LOOKUPS[hook]
        # Exact ``str`` keys only: the lookup then compares strings directly, where the enum's
        # own map took the generic comparison (about 400 instructions more per lookup).
        known = {value: member for value, member in members.items() if value.__class__ is str}
        namespace[f"known{number}"], namespace[f"hook{number}"] = known.get, hook
        return f"(known{number}(v) if (v := {{fetch}}).__class__ is str else None) or hook{number}(v, None)"
    if hook is _optional_datetime:
        # A text parsed before is a dict lookup (a datetime is never false); anything else goes
        # to _optional_datetime's rule, which parses through parse_datetime.
        namespace["remembered"] = _PARSED_TIMESTAMPS.get
        namespace["timestamp"] = _timestamp_field
        return "(remembered(v) if (v := {fetch}).__class__ is str else None) or timestamp(v)"
    namespace[f"hook{number}"], namespace[f"type{number}"] = hook, field_type
    return f"None if (v := {{fetch}}) is None else hook{number}(v, type{number})"


# Each generated structure function of a response model, with its loop over a listing's items.
_ITEM_LOOPS: dict[Any, Callable[[Any, Callable[[Any], None], Callable[[Any], None]], None]] = {}


def _response_model_hooks(converter: cattrs.Converter) -> None:
    def factory(cls: Any) -> Callable[[Any, Any], Any]:
        attrs.resolve_types(cls)
        builder = _builder_of(cls)
        namespace: dict[str, Any] = {
            "cls": cls, "builder": builder, "new": object.__new__,
            "general": make_dict_structure_fn(cls, converter),
        }
        fields = attrs.fields(cls)
        expressions = [
            _field_expression(converter.get_structure_hook(field.type), field.type, number, namespace)
            for number, field in enumerate(fields)
        ]

        def build(fetch: str, indent: str) -> list[str]:
            values = [
                (field.name, expression.format(fetch=fetch.format(key=repr(field.name))))
                for field, expression in zip(fields, expressions, strict=True)
            ]
            if builder is None:
                return [
                    f"{indent}obj = cls(",
                    *(f"{indent}    {name}=({value})," for name, value in values),
                    f"{indent})",
                ]
            return [
                f"{indent}obj = new(builder)",
                *(f"{indent}obj.{name} = {value}" for name, value in values),
                f"{indent}obj.__class__ = cls",
            ]

        # The service sends every field, so subscripting is the common path; a key left out
        # (None, like a null) makes the same fields be read again with dict.get.
        source = "\n".join([
            "def structure(o, _=None):",
            "    if o.__class__ is not dict:",  # other mappings, and non-mappings, as cattrs does
            "        return general(o, cls)",
            "    try:",
            *build("o[{key}]", "        "),
            "        return obj",
            "    except KeyError:",
            "        pass",
            "    get = o.get",
            *build("get({key})", "    "),
            "    return obj",
        ])
        if builder is not None:
            # A listing's items in one loop, each built inline (no call per item); any item that
            # is not a dict with every key, or that fails, goes to ``one``, the per-item path.
            source += "\n" + "\n".join([
                "def structure_items(items, append, one):",
                "    for o in items:",
                "        if o.__class__ is dict:",
                "            try:",
                *build("o[{key}]", "                "),
                "                append(obj)",
                "                continue",
                "            except Exception:",
                "                pass",  # the per-item path raises the same error, or reads the keys left out
                "        one(o)",
            ])
        exec(compile(source, f"<response structure {cls.__qualname__}>", "exec"), namespace)
        structure: Callable[[Any, Any], Any] = namespace["structure"]
        if builder is not None:
            _ITEM_LOOPS[structure] = namespace["structure_items"]
        return structure

    converter.register_structure_hook_factory(_is_response_model, factory)


# ---------------------------------------------------------------------------- responses

def _optional_datetime(value: Any, _: Any) -> datetime | None:
    # The service fills unset fields with "" (as in the reference's examples): no time at all.
    # (The generated response functions spell this rule out inline; see _response_model_hooks.)
    if value is None or value == "":
        return None
    return parse_datetime(value)


def _response_converter(precompiled: bool = True) -> cattrs.Converter:
    """The tolerant converter; ``precompiled=False`` leaves out the lean hooks (the tests compare)."""
    converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=False)
    _common_hooks(converter)
    if precompiled:
        # Registered before the specific hooks below, which therefore take precedence over them.
        _optional_hooks(converter)
        _response_model_hooks(converter)
    converter.register_structure_hook_func(lambda t: t == (datetime | None), _optional_datetime)
    _skipping_lists(converter)
    return converter


# What structuring one unreadable item raises (a bad timestamp, a field of the wrong type).
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, OverflowError)


def _skipping_lists(converter: cattrs.Converter) -> None:
    """Lists of response models (a listing's ``contents``) skip the items they cannot read.

    One unreadable item (a bad ``created_dt``) must not make the whole page unreadable: every
    wait that reads the listing would stall on it. The item is left out and logged at WARNING;
    the waits fall back to GET for the platforms the page does not show.
    """

    def factory(type_: Any) -> Callable[[Any, Any], Any]:
        (item_type,) = get_args(type_)
        item_hook = converter.get_structure_hook(item_type)
        item_loop = _ITEM_LOOPS.get(item_hook)

        def structure_list(value: Any, _: Any) -> list[Any]:
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"must be an array, got {json_type_name(value)}")
            items: list[Any] = []
            append = items.append

            def one(item: Any) -> None:
                try:
                    append(item_hook(item, item_type))
                except _UNREADABLE as error:
                    identity = item.get("release_id") if isinstance(item, Mapping) else None
                    logger.warning(
                        "skipping an unreadable %s in a listing%s: %s", item_type.__name__,
                        f" (release_id {identity!r})" if isinstance(identity, str) else "", error,
                    )

            if item_loop is not None:
                item_loop(value, append, one)
            else:
                for item in value:
                    one(item)
            return items

        return structure_list

    def is_list_of_models(type_: Any) -> bool:
        args = get_args(type_)
        return get_origin(type_) is list and len(args) == 1 and _is_response_model(args[0])

    converter.register_structure_hook_factory(is_list_of_models, factory)


_responses = _response_converter()


def structure_response(data: Any, cls: type[T]) -> T:
    """Structure a decoded JSON answer into a response model (tolerant)."""
    if data is None:
        data = {}
    return _responses.structure(data, cls)


def structure_answer(data: Any, cls: type[T]) -> T:
    """A whole answer of the service as a response model: checked for shape, then structured.

    An answer that cannot be the model at all raises ``TypeError`` or ``ValueError`` (the session
    reports it as a malformed answer): a JSON value that is not an object, or an object without
    one of the model's ``required_fields`` (its identity, such as a detail's ``release_id``).
    Other fields stay tolerant: unknown ones are ignored, missing ones are None.
    """
    found = _ANSWER_HOOKS.get(cls)
    if found is None:
        if not attrs.has(cls):
            return structure_response(data, cls)
        # Looked up once per model: every call of the session ends here.
        found = _ANSWER_HOOKS[cls] = (
            _responses.get_structure_hook(cls), tuple(getattr(cls, "required_fields", ()))
        )
    hook, required = found
    if data.__class__ is not dict and not isinstance(data, Mapping):
        raise TypeError(f"expected a JSON object, got {json_type_name(data)}")
    for name in required:
        if data.get(name) is None:
            missing = [name for name in required if data.get(name) is None]
            raise ValueError(f"the answer has no {', '.join(missing)}")
    result: T = hook(data, cls)
    return result


# Each response model's structure hook and required fields (see structure_answer).
_ANSWER_HOOKS: dict[Any, tuple[Callable[[Any, Any], Any], tuple[str, ...]]] = {}


def unstructure(obj: Any) -> Any:
    """A model as the API's JSON shape (``None`` fields left out)."""
    return _responses.unstructure(obj)


# ----------------------------------------------------------------------------- requests

_requests = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
_common_hooks(_requests)


def is_unicode_text(value: str) -> bool:
    """False for a str that UTF-8, and so JSON on the wire, cannot carry (a lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_LONE_SURROGATE = "must be valid Unicode text (it holds a lone surrogate)"


def _strict_str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"must be a string, got {json_type_name(value)}")
    if not is_unicode_text(value):
        raise TypeError(_LONE_SURROGATE)  # the value is never echoed: it may be a password
    return value


def _strict_bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be a boolean, got {json_type_name(value)}")
    return value


def json_type_name(value: Any) -> str:
    """What a value is, in JSON's words ("a string", "an array", ...), for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _strict_list(converter: cattrs.Converter) -> None:
    """Lists must be JSON arrays: cattrs alone would turn a string into a list of characters."""

    def factory(type_: Any) -> Callable[[Any, Any], Any]:
        base: Callable[[Any, Any], Any] = list_structure_factory(type_, converter)

        def structure_list(value: Any, _: Any) -> Any:
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"must be an array, got {json_type_name(value)}")
            return base(value, type_)

        return structure_list

    def is_list(type_: Any) -> bool:
        return get_origin(type_) is list

    converter.register_structure_hook_factory(is_list, factory)


_requests.register_structure_hook(str, _strict_str)
_INT64 = range(-(2**63), 2**63)


def _strict_int(value: Any, _: Any) -> int:
    # bool is an int subclass in Python, never in JSON; and the service's integers are 64-bit,
    # whichever JSON encoder is installed.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"must be an integer, got {json_type_name(value)}")
    if value not in _INT64:
        raise TypeError("must fit in a 64-bit signed integer")
    return value


_requests.register_structure_hook(int, _strict_int)
_requests.register_structure_hook(bool, _strict_bool)


def _strict_mapping(value: Any, type_: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"must be an object, got {json_type_name(value)}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError("must be an object whose values are strings")
        if not (is_unicode_text(key) and is_unicode_text(item)):
            raise TypeError(_LONE_SURROGATE)
    return dict(value)


_requests.register_structure_hook_func(lambda t: t == dict[str, str], _strict_mapping)


def _strict_attrs(converter: cattrs.Converter) -> None:
    def factory(cls: type) -> Callable[[Any, Any], Any]:
        base: Callable[..., Any] = make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=True)
        fields = frozenset(field.name for field in attrs.fields(cls))

        def structure_object(value: Any, _: Any) -> Any:
            if not isinstance(value, Mapping):
                raise TypeError(f"must be an object, got {json_type_name(value)}")
            # null means "not given" for a field of the model, as in the API; an unknown key
            # stays, null or not, so that it is reported rather than sent.
            return base({k: v for k, v in value.items() if v is not None or k not in fields}, cls)

        return structure_object

    converter.register_structure_hook_factory(attrs.has, factory)


_strict_attrs(_requests)
_strict_list(_requests)


def _problems(exc: BaseException, path: str) -> list[tuple[str, str]]:
    """Flatten a cattrs validation error tree into ``(field path, message)`` pairs."""
    found: list[tuple[str, str]] = []
    if isinstance(exc, cattrs.ClassValidationError):
        with_notes, others = exc.group_exceptions()
        for inner, attribute in with_notes:
            found += _problems(inner, f"{path}.{attribute.name}" if path else attribute.name)
        for inner in others:
            found += _problems(inner, path)
    elif isinstance(exc, cattrs.IterableValidationError):
        items, others = exc.group_exceptions()
        for inner, item in items:
            found += _problems(inner, f"{path}[{item.index}]")
        for inner in others:
            found += _problems(inner, path)
    elif isinstance(exc, cattrs.ForbiddenExtraKeysError):
        prefix = f"{path}." if path else ""
        found += [
            (f"{prefix}{key}", "is not a field of this request") for key in sorted(exc.extra_fields)
        ]
    elif isinstance(exc, KeyError):
        found.append((path, "is required"))
    else:
        found.append((path, str(exc) or type(exc).__name__))
    return found


def structure_request(data: Any, cls: type[T]) -> T:
    """Structure a plain mapping in the API's JSON shape into a request model, strictly.

    Raises ``ValidationError`` listing every problem with its field path.
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ValidationError(
            f"must be a {cls.__name__} or a mapping in the API's JSON shape, "
            f"got {type(data).__name__}",
            "request",
        )
    try:
        return _requests.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise ValidationError(_problems(exc, "") or [("request", str(exc))]) from None

