"""What every command shares and that needs no rich: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TextIO

import attrs

from .. import APIStatusError, ValidationError, to_json

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "INSTALL_HINT",
    "UsageError",
    "describe",
    "json_ready",
    "print_data",
    "print_json",
]

EXIT_OK = 0
EXIT_FAILED = 1  # something asked for did not succeed: a platform failed, the API refused
EXIT_USAGE = 2  # the command itself was wrong: arguments, configuration, an invalid file
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

INSTALL_HINT = "pip install 'aimlops-async[cli]'"


class UsageError(Exception):
    """A mistake in how the command was called (exit status 2); the message is one clear line."""


def describe(error: BaseException) -> str:
    """An error as ``Class: message``, on one line (multi-problem validation errors keep their list)."""
    name = type(error).__name__
    if isinstance(error, ValidationError) and len(error.errors) > 1:
        return f"{name}: {error}"
    if isinstance(error, APIStatusError):
        return f"{name}: {error}"
    text = " ".join(str(error).split())
    return f"{name}: {text}" if text else name


def json_ready(value: Any) -> Any:
    """Models, datetimes and enums as plain JSON values (``aimlops_async.to_json``: models in the
    API's JSON shape); exceptions as their one-line description."""
    if attrs.has(type(value)) or isinstance(value, (datetime, Enum)):
        return to_json(value)
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, BaseException):
        return describe(value)
    return value


def print_json(value: Any, file: TextIO | None = None) -> None:
    """Write ``value`` as indented JSON, one document, to stdout."""
    out = file or sys.stdout
    out.write(json.dumps(json_ready(value), indent=2, ensure_ascii=False, default=str))
    out.write("\n")
    out.flush()


def print_data(value: Any, output_format: str = "json", file: TextIO | None = None) -> None:
    """Write ``value`` as one JSON (indented) or YAML document to stdout."""
    if output_format != "yaml":
        print_json(value, file)
        return
    import yaml

    out = file or sys.stdout
    # Through JSON first, so that YAML holds exactly what --output json would.
    plain = json.loads(json.dumps(json_ready(value), default=str))
    out.write(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True))
    out.flush()
