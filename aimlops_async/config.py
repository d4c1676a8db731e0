"""Endpoint and credentials resolution: explicit arguments first, then the environment."""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import attrs

from .errors import ValidationError

__all__ = ["ENVIRONMENTS", "Credentials", "header_safe", "resolve_endpoint"]

logger = logging.getLogger("aimlops_async")

ENVIRONMENTS = ("s", "g", "e")
_HOST_TEMPLATE = "https://aimlops-platform.{region}.{environment}.samsungsdscloud.com"


@attrs.frozen(repr=False)
class Credentials:
    """An SCP access key, its secret key and (optionally) the project the calls act on.

    ``repr`` and ``str`` never show the secret key.
    """

    access_key: str
    secret_key: str
    project_id: str | None = None

    def __attrs_post_init__(self) -> None:
        for name in ("access_key", "secret_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValidationError(f"must be a non-empty string, got {type(value).__name__}", name)
        if self.project_id is not None and not isinstance(self.project_id, str):
            raise ValidationError("must be a string or None", "project_id")
        # The access key and project id travel as header values; the secret key only keys the
        # HMAC but must be UTF-8 text. Values are never echoed: they are credentials.
        for name in ("access_key", "project_id"):
            value = getattr(self, name)
            if value is not None and not header_safe(value):
                raise ValidationError("must be printable ASCII without spaces or line breaks", name)
        try:
            self.secret_key.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("must be valid Unicode text", "secret_key") from None

    def __repr__(self) -> str:
        return (
            f"Credentials(access_key={self.access_key!r}, secret_key='***', "
            f"project_id={self.project_id!r})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read ``SCP_ACCESS_KEY``, ``SCP_SECRET_KEY`` and (optional) ``SCP_PROJECT_ID``."""
        env = os.environ if environ is None else environ
        missing = [name for name in ("SCP_ACCESS_KEY", "SCP_SECRET_KEY") if not env.get(name)]
        if missing:
            raise ValidationError(
                [(name, "is not set; pass credentials= or set the environment variable")
                 for name in missing]
            )
        return cls(
            access_key=env["SCP_ACCESS_KEY"],
            secret_key=env["SCP_SECRET_KEY"],
            project_id=env.get("SCP_PROJECT_ID") or None,
        )


def header_safe(value: str) -> bool:
    """True for a non-empty run of printable ASCII without spaces: safe as an HTTP header value."""
    return bool(value) and all("!" <= char <= "~" for char in value)


def resolve_endpoint(
    endpoint: str | None = None,
    region: str | None = None,
    environment: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The base URL to call, without a trailing slash.

    Order: ``endpoint``; ``region`` + ``environment``; ``AIMLOPS_ENDPOINT``;
    ``SCP_REGION`` + ``SCP_ENVIRONMENT``.
    """
    env = os.environ if environ is None else environ
    if endpoint:
        return _check_endpoint(endpoint)
    if region or environment:
        return _regional(region, environment, "region", "environment")
    if env.get("AIMLOPS_ENDPOINT"):
        return _check_endpoint(env["AIMLOPS_ENDPOINT"])
    if env.get("SCP_REGION") or env.get("SCP_ENVIRONMENT"):
        return _regional(
            env.get("SCP_REGION"), env.get("SCP_ENVIRONMENT"), "SCP_REGION", "SCP_ENVIRONMENT"
        )
    raise ValidationError(
        "no endpoint: pass endpoint= or region= and environment=, or set AIMLOPS_ENDPOINT "
        "or SCP_REGION and SCP_ENVIRONMENT",
        "endpoint",
    )


def _regional(region: str | None, environment: str | None, region_name: str, env_name: str) -> str:
    if not region:
        raise ValidationError("is required together with the environment", region_name)
    if environment not in ENVIRONMENTS:
        raise ValidationError(f"must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}", env_name)
    if not all(part.isalnum() or part == "-" for part in region) or region.startswith("-"):
        raise ValidationError(f"is not a valid region name: {region!r}", region_name)
    return _HOST_TEMPLATE.format(region=region, environment=environment)


def _check_endpoint(endpoint: str) -> str:
    """The endpoint without a trailing slash: http or https, a host, optional port and path prefix.

    A query or a fragment would be mangled into every request URL, and so into what is signed;
    plain http to a host that is not this machine sends the access key and signatures in clear.
    """
    if "://" not in endpoint:
        raise ValidationError(
            f"must include a scheme, e.g. http://127.0.0.1:8080, got {endpoint!r}", "endpoint"
        )
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise ValidationError(f"is not a valid URL: {exc}", "endpoint") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError(f"must be an http or https URL, got {parts.scheme!r}", "endpoint")
    if not parts.hostname:
        raise ValidationError(f"must name a host, got {endpoint!r}", "endpoint")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("must not hold a user name or password", "endpoint")
    if parts.query or "?" in endpoint:
        raise ValidationError("must not have a query string (per-call extra_query= does that)", "endpoint")
    if parts.fragment or "#" in endpoint:
        raise ValidationError("must not have a fragment ('#...')", "endpoint")
    if parts.scheme.lower() == "http" and not _is_loopback(parts.hostname):
        logger.warning(
            "endpoint %s uses plain http: the access key and request signatures travel unencrypted",
            parts.hostname,
        )
    return endpoint.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
