"""Named profiles of the config file: the last source of settings, after flags and the environment.

``$XDG_CONFIG_HOME/aimlops/config.toml`` (``~/.config/aimlops/config.toml``) holds one table per
profile::

    [profiles.default]
    endpoint = "http://127.0.0.1:8080"
    access_key = "..."
    secret_key = "..."

    [profiles.prod]
    region = "kr-west1"
    environment = "e"

The profile is ``--profile NAME``, else ``AIMLOPS_PROFILE``, else ``default`` (when the file has
one). Each setting is used only when neither its flag nor its environment variable gives it; the
endpoint counts as one setting (``endpoint`` or ``region`` + ``environment``), so an endpoint from
the environment is never mixed with a region from the profile.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .common import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["PROFILE_KEYS", "apply_profile", "config_path", "load_profile"]

DEFAULT_PROFILE = "default"
# Profile key -> the environment variables that give the same setting (any of them wins).
PROFILE_KEYS: Mapping[str, tuple[str, ...]] = {
    "endpoint": ("AIMLOPS_ENDPOINT", "SCP_REGION", "SCP_ENVIRONMENT"),
    "region": ("AIMLOPS_ENDPOINT", "SCP_REGION", "SCP_ENVIRONMENT"),
    "environment": ("AIMLOPS_ENDPOINT", "SCP_REGION", "SCP_ENVIRONMENT"),
    "access_key": ("SCP_ACCESS_KEY",),
    "secret_key": ("SCP_SECRET_KEY",),
    "account_id": ("SCP_ACCOUNT_ID",),
    "auth_token": ("SCP_AUTH_TOKEN",),
    "api_version": (),
}
_ENDPOINT_KEYS = ("endpoint", "region", "environment")


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the config file is: under ``XDG_CONFIG_HOME`` when set, else ``~/.config``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "aimlops" / "config.toml"


def load_profile(
    name: str | None, environ: Mapping[str, str] | None = None
) -> tuple[str | None, dict[str, str]]:
    """The profile's name and settings; ``(None, {})`` when none is asked for and there is no default.

    A profile that was asked for (``--profile`` or ``AIMLOPS_PROFILE``) but is missing, an
    unknown key, or a value that is not a string is a ``UsageError`` naming the file.
    """
    env = os.environ if environ is None else environ
    asked = name or env.get("AIMLOPS_PROFILE") or None
    path = config_path(env)
    if not path.is_file():
        if asked:
            raise UsageError(f"profile {asked!r}: there is no config file {path}")
        return None, {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict):
        raise UsageError(f"{path}: 'profiles' must be a table of [profiles.NAME] tables")
    chosen = asked or DEFAULT_PROFILE
    if chosen not in profiles:
        if not asked:
            return None, {}
        known = ", ".join(sorted(profiles)) or "none"
        raise UsageError(f"profile {chosen!r} is not in {path} (profiles there: {known})")
    table = profiles[chosen]
    if not isinstance(table, dict):
        raise UsageError(f"{path}: profiles.{chosen} must be a table")
    settings: dict[str, str] = {}
    for key, value in table.items():
        if key not in PROFILE_KEYS:
            raise UsageError(
                f"{path}: profiles.{chosen}.{key}: unknown setting; known: {', '.join(PROFILE_KEYS)}"
            )
        if not isinstance(value, str):
            raise UsageError(f"{path}: profiles.{chosen}.{key}: must be a string")
        settings[key] = value
    return chosen, settings


def apply_profile(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> str | None:
    """Fill the settings that no flag and no environment variable gave from the profile; its name."""
    env = os.environ if environ is None else environ
    name, settings = load_profile(getattr(args, "profile", None), env)
    endpoint_given = any(getattr(args, key, None) for key in _ENDPOINT_KEYS)
    for key, value in settings.items():
        if key in _ENDPOINT_KEYS and endpoint_given:
            continue
        if getattr(args, key, None) or any(env.get(variable) for variable in PROFILE_KEYS[key]):
            continue
        setattr(args, key, value)
    return name
