"""From command-line options and the environment to a configured AimlopsClient (CONTRACT section 2)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

from .. import AimlopsClient, Credentials
from .common import UsageError

__all__ = ["client_from_args", "credentials_from_args"]


def credentials_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Credentials:
    """Keys from ``--access-key``/``--secret-key``/``--account-id``, each else from its SCP_* variable.

    The optional auth token comes from ``SCP_AUTH_TOKEN`` or a profile, never a flag (a flag
    would show it in ``ps``).
    """
    env = os.environ if environ is None else environ
    access_key = args.access_key or env.get("SCP_ACCESS_KEY")
    secret_key = args.secret_key or env.get("SCP_SECRET_KEY")
    account_id = getattr(args, "account_id", None) or env.get("SCP_ACCOUNT_ID") or None
    auth_token = getattr(args, "auth_token", None) or env.get("SCP_AUTH_TOKEN") or None
    missing = [
        f"{flag} (or {variable})"
        for flag, variable, value in (
            ("--access-key", "SCP_ACCESS_KEY", access_key),
            ("--secret-key", "SCP_SECRET_KEY", secret_key),
        )
        if not value
    ]
    if missing:
        raise UsageError(
            f"no credentials: set {' and '.join(missing)}; "
            "try 'aimlops demo' or 'aimlops emulator' to play without an account"
        )
    assert access_key is not None and secret_key is not None
    return Credentials(access_key, secret_key, account_id, auth_token)


def client_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None, **overrides: Any
) -> AimlopsClient:
    """A client for the endpoint of ``--endpoint`` or ``--region``/``--environment``, else the environment."""
    env = os.environ if environ is None else environ
    region, environment = args.region, args.environment
    # One of the pair on the command line, the other from the environment, is a fine combination.
    if region or environment:
        region = region or env.get("SCP_REGION")
        environment = environment or env.get("SCP_ENVIRONMENT")
        if not region or not environment:
            raise UsageError(
                "--region and --environment (s, g or e) go together; the missing one may also "
                "come from SCP_REGION or SCP_ENVIRONMENT"
            )
    options: dict[str, Any] = {"timeout": args.request_timeout}
    api_version = getattr(args, "api_version", None)
    if api_version is not None:
        # "latest" (or "none") sends no Scp-Api-Version: the service's latest CURRENT version.
        options["api_version"] = None if api_version.lower() in ("latest", "none") else api_version
    for option, name in (
        ("poll_delay", "poll_delay"), ("poll_max_delay", "poll_max_delay"), ("poll_timeout", "timeout"),
    ):
        value = getattr(args, name, None)
        if value is not None:
            options[option] = value
    if "poll_max_delay" not in options and "poll_delay" in options:
        options["poll_max_delay"] = max(options["poll_delay"], 30.0)
    options.update(overrides)
    if args.endpoint is None and not region and not environment and not (
        env.get("AIMLOPS_ENDPOINT") or env.get("SCP_REGION") or env.get("SCP_ENVIRONMENT")
    ):
        raise UsageError(
            "no endpoint: pass --endpoint URL or --region and --environment, or set "
            "AIMLOPS_ENDPOINT (or SCP_REGION and SCP_ENVIRONMENT)"
        )
    return AimlopsClient(
        args.endpoint,
        credentials_from_args(args, env),
        region=region,
        environment=environment,
        **options,
    )
