"""Command line for the emulator: ``python -m aimlops_async.emulator`` (also ``aimlops emulator``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import sys
from collections.abc import Sequence

from .faults import Faults
from .server import Emulator

__all__ = ["build_parser", "main"]


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535 (0 picks a free port), got {text}")
    return port


def build_parser(prog: str = "python -m aimlops_async.emulator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local AI&MLOps Platform API emulator until interrupted. Credentials "
        "come from SCP_ACCESS_KEY / SCP_SECRET_KEY (and SCP_ACCOUNT_ID) when set, else they "
        "are generated from the seed.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    add("--port", type=_port, default=8080, help="port, 0 picks a free one (default: %(default)s)")
    add("--seed", type=int, default=0, help="seed for ids, keys and faults (default: 0)")
    timing = parser.add_argument_group("platform lifecycle (seconds)")
    timing.add_argument("--creating-seconds", type=float, default=1.0, metavar="S")
    timing.add_argument("--installing-seconds", type=float, default=1.0, metavar="S")
    timing.add_argument("--updating-seconds", type=float, default=1.0, metavar="S")
    timing.add_argument("--deleting-seconds", type=float, default=1.0, metavar="S")
    timing.add_argument(
        "--k8s-seconds", type=float, default=None, metavar="S",
        help="a new Kubernetes engine stays CREATING this long (default: --creating-seconds)",
    )
    timing.add_argument(
        "--visibility-lag", type=float, default=0.0, metavar="S",
        help="changes show up in GET and list only after this long (stale reads)",
    )
    timing.add_argument(
        "--failure-rate", type=float, default=0.0, metavar="R",
        help="fraction of new platforms that end in FAILED",
    )
    timing.add_argument(
        "--fail-pattern", default=None, metavar="REGEX",
        help="platforms whose release_name matches end in FAILED",
    )
    faults = parser.add_argument_group("fault injection (rates are fractions of requests)")
    faults.add_argument("--latency", type=float, default=0.0, metavar="S")
    faults.add_argument(
        "--latency-tail", type=float, default=0.0, metavar="S",
        help="scale of an extra heavy-tailed (Pareto 1.5) latency, capped at 10x",
    )
    faults.add_argument("--error-rate", type=float, default=0.0, metavar="R", help="500/503")
    faults.add_argument("--rate-limit-rate", type=float, default=0.0, metavar="R", help="429")
    faults.add_argument("--retry-after", type=float, default=1.0, metavar="S")
    faults.add_argument("--drop-rate", type=float, default=0.0, metavar="R")
    faults.add_argument(
        "--ambiguous-create-rate", type=float, default=0.0, metavar="R",
        help="creates that happen but whose answer is lost",
    )
    faults.add_argument("--stall-rate", type=float, default=0.0, metavar="R")
    faults.add_argument("--stall-seconds", type=float, default=60.0, metavar="S")
    faults.add_argument(
        "--malformed-rate", type=float, default=0.0, metavar="R",
        help="truncated JSON or a 502 HTML proxy page",
    )
    add(
        "--clock-skew", type=float, default=0.0, metavar="S",
        help="seconds added to the server clock",
    )
    live = parser.add_argument_group("where the live service differs from the reference")
    live.add_argument(
        "--missing-release-status", type=int, choices=(404, 400), default=404,
        help="what a GET of a missing release answers (the live service: 400)",
    )
    live.add_argument(
        "--zoneless-timestamps", action="store_true", help="timestamps without a zone (UTC)"
    )
    live.add_argument(
        "--gateway-auth-failures", action="store_true",
        help="refuse bad signatures with the API gateway's 404 page instead of a 401",
    )
    live.add_argument(
        "--scp-image-ids", action="store_true", help="image ids like IMAGE-R=HXHY3ccc9f3TSVtPpPFR"
    )
    add("--json", action="store_true", help="print one JSON line with the url and credentials")
    return parser


def _emulator(args: argparse.Namespace) -> Emulator:
    access_key = os.environ.get("SCP_ACCESS_KEY") or None
    secret_key = os.environ.get("SCP_SECRET_KEY") or None
    if (access_key is None) != (secret_key is None):
        raise ValueError("set both SCP_ACCESS_KEY and SCP_SECRET_KEY, or neither")
    faults = Faults(
        seed=args.seed,
        latency=args.latency,
        latency_tail=args.latency_tail,
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        retry_after=args.retry_after,
        drop_rate=args.drop_rate,
        ambiguous_create_rate=args.ambiguous_create_rate,
        stall_rate=args.stall_rate,
        stall_seconds=args.stall_seconds,
        malformed_rate=args.malformed_rate,
    )
    return Emulator(
        host=args.host,
        port=args.port,
        access_key=access_key,
        secret_key=secret_key,
        account_id=os.environ.get("SCP_ACCOUNT_ID") or None,
        seed=args.seed,
        creating_seconds=args.creating_seconds,
        installing_seconds=args.installing_seconds,
        updating_seconds=args.updating_seconds,
        deleting_seconds=args.deleting_seconds,
        k8s_seconds=args.k8s_seconds,
        visibility_lag=args.visibility_lag,
        failure_rate=args.failure_rate,
        fail_pattern=args.fail_pattern,
        faults=faults,
        clock_skew=args.clock_skew,
        missing_release_status=args.missing_release_status,
        zoneless_timestamps=args.zoneless_timestamps,
        scp_image_ids=args.scp_image_ids,
        gateway_auth_failures=args.gateway_auth_failures,
    )


def _banner(emu: Emulator, as_json: bool) -> str:
    creds = emu.credentials
    image_id = emu.image_ids[0]
    if as_json:
        return json.dumps(
            {
                "url": emu.url,
                "access_key": creds.access_key,
                "secret_key": creds.secret_key,
                "account_id": creds.account_id,
                "project_id": emu.project_id,
                "cluster_id": emu.cluster_id,
                "image_id": image_id,
            }
        )
    lines = [
        f"# AI&MLOps Platform emulator listening on {emu.url} (Ctrl-C to stop)",
        f"export AIMLOPS_ENDPOINT={emu.url}",
        f"export SCP_ACCESS_KEY={creds.access_key}",
        f"export SCP_SECRET_KEY={creds.secret_key}",
    ]
    if creds.account_id:
        lines.append(f"export SCP_ACCOUNT_ID={creds.account_id}")
    lines += [
        f"export AIMLOPS_CLUSTER_ID={emu.cluster_id}",
        f"export AIMLOPS_IMAGE_ID={shlex.quote(image_id)}",
    ]
    return "\n".join(lines)


async def _serve(emu: Emulator, as_json: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with emu:
        print(_banner(emu, as_json), flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; 0 on a clean stop, 2 on bad arguments."""
    parser = build_parser(prog) if prog else build_parser()
    args = parser.parse_args(argv)
    try:
        emu = _emulator(args)
    except (ValueError, TypeError, re.error) as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve(emu, args.json))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
