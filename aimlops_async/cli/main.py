"""The ``aimlops`` entry point: arguments, logging, exit statuses, and one clear line per error."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .. import AimlopsError, Image, Node, PlatformSummary, ValidationError, __version__
from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    INSTALL_HINT,
    UsageError,
    describe,
)
from .plan import PlanError

__all__ = ["build_parser", "main"]

PROG = "aimlops"
# Global options that take a value: needed to find the subcommand before argparse runs.
_VALUE_OPTIONS = {
    "--endpoint", "--region", "--environment", "--access-key", "--secret-key", "--account-id",
    "--api-version", "--timeout", "--request-timeout", "--poll-delay", "--poll-max-delay",
    "--output", "-o", "--profile",
}
GLOBAL_DEFAULTS: dict[str, Any] = {
    "endpoint": None, "region": None, "environment": None, "access_key": None, "secret_key": None,
    "account_id": None, "api_version": None, "output": None, "timeout": None,
    "request_timeout": 30.0, "poll_delay": None, "poll_max_delay": None, "verbose": 0,
    "progress": None, "profile": None,
}
# The API serves pages of 1 to 100 items.
PAGE_SIZE_MAX = 100

_INTERRUPTED = {
    "apply": "interrupted. Creates already sent go on at the service; run the same command again "
             "to resume: platforms are matched by release name, so nothing is created twice",
    "create": "interrupted. If the create was sent, the platform is being created: see 'aimlops list'",
    "wait": "interrupted. The platforms are not affected; 'aimlops wait' again to resume",
    "delete": "interrupted. Deletes already sent go on at the service; 'aimlops wait --deleted' to follow",
    "update": "interrupted. If the update was sent, it goes on at the service; 'aimlops wait' to follow",
}

Handler = Callable[[argparse.Namespace, Any], Coroutine[Any, Any, int]]

EPILOG = """\
configuration (flags, then the environment, then the profile):
  endpoint     --endpoint URL, or --region R --environment s|g|e;
               else AIMLOPS_ENDPOINT, else SCP_REGION + SCP_ENVIRONMENT
  credentials  SCP_ACCESS_KEY, SCP_SECRET_KEY, SCP_ACCOUNT_ID, SCP_AUTH_TOKEN (or the flags;
               keep the secret key out of the command line, where other local users can read it)
  profile      --profile NAME or AIMLOPS_PROFILE (else "default"): a [profiles.NAME] table of
               $XDG_CONFIG_HOME/aimlops/config.toml (~/.config/aimlops/config.toml)

exit status: 0 everything asked for succeeded; 1 something failed (a platform, the API);
             2 usage or validation error (nothing was sent); 130 interrupted

start here:  aimlops demo
"""


# ------------------------------------------------------------------------------ parser


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _page_size(text: str) -> int:
    size = _count(text)
    if size > PAGE_SIZE_MAX:
        raise argparse.ArgumentTypeError(f"must be at most {PAGE_SIZE_MAX} (the largest page), got {text}")
    return size


def _sort_for(fields: Sequence[str]) -> Callable[[str], str]:
    """A ``--sort`` checker: ``field:asc`` or ``field:desc`` with a field the listing has."""

    def sort(text: str) -> str:
        field, _, direction = text.partition(":")
        if field not in fields or direction not in ("asc", "desc"):
            raise argparse.ArgumentTypeError(
                f"expected FIELD:asc or FIELD:desc with FIELD one of {', '.join(fields)}; got {text!r}"
            )
        return text

    return sort


def _model_fields(model: type[Any]) -> tuple[str, ...]:
    import attrs

    return tuple(field.name for field in attrs.fields(model))


def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """Options allowed before and after the subcommand: ``aimlops --json list`` = ``aimlops list --json``."""
    default = argparse.SUPPRESS if suppress else None
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    conn = parser.add_argument_group("connection")
    conn.add_argument("--endpoint", metavar="URL", default=default,
                      help="base URL of the API, e.g. http://127.0.0.1:8080 (env AIMLOPS_ENDPOINT)")
    conn.add_argument("--region", metavar="REGION", default=default,
                      help="SCP region, e.g. kr-west1 (env SCP_REGION)")
    conn.add_argument("--environment", metavar="ENV", choices=("s", "g", "e"), default=default,
                      help="SCP environment: s, g or e (env SCP_ENVIRONMENT)")
    conn.add_argument("--access-key", metavar="KEY", default=default, help="env SCP_ACCESS_KEY")
    conn.add_argument("--secret-key", metavar="KEY", default=default,
                      help="discouraged: visible to other local users; use env SCP_SECRET_KEY")
    conn.add_argument("--account-id", metavar="ID", default=default,
                      help="SCP account id, signed and sent as Scp-AccountId (env SCP_ACCOUNT_ID)")
    conn.add_argument("--api-version", metavar="V", default=default,
                      help="Scp-Api-Version to ask for: 1.1 (default), 1.0 (deprecated), "
                           "or 'latest' to send none")
    conn.add_argument("--request-timeout", metavar="S", type=_positive, default=default,
                      help="seconds per HTTP attempt (default 30)")
    waits = parser.add_argument_group("waiting")
    waits.add_argument("--timeout", metavar="S", type=_positive, default=default,
                       help="give up waiting after S seconds (default: 3600 per platform)")
    waits.add_argument("--poll-delay", metavar="S", type=_positive, default=default,
                       help="first poll delay (default 5; later polls back off)")
    waits.add_argument("--poll-max-delay", metavar="S", type=_positive, default=default,
                       help="longest delay between polls (default 30)")
    conn.add_argument("--profile", metavar="NAME", default=default,
                      help="a profile of the config file (env AIMLOPS_PROFILE; default: 'default')")
    shown = parser.add_argument_group("output")
    shown.add_argument("-o", "--output", choices=("table", "json", "yaml"), default=default,
                       help="table (default; plain and tab-separated when stdout is not a terminal), "
                            "or json or yaml: the results only on stdout, nothing else there")
    shown.add_argument("--json", dest="output", action="store_const", const="json", default=default,
                       help="the same as --output json")
    shown.add_argument("--no-progress", dest="progress", action="store_false", default=default,
                       help="no live progress on stderr")
    shown.add_argument("--progress", dest="progress", action="store_true", default=default,
                       help="live progress even when stderr is not a terminal")
    shown.add_argument("-v", "--verbose", action="count", default=default,
                       help="log to stderr (-v: retries and notable events, -vv: every request); "
                            "tracebacks on errors")
    return parser


def build_parser() -> argparse.ArgumentParser:
    common = _global_options(suppress=True)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Provision and manage Samsung Cloud Platform AI&MLOps platforms "
                    "(and try it all on a built-in emulator).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, help_text: str, handler: str, description: str | None = None
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_text, description=description or help_text, parents=[common],
            allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
        return sub

    demo = command(
        "demo", "provision a fleet on the built-in emulator (no account needed)", "demo:run_demo",
        "Start the emulator in this process, provision a fleet of platforms with live progress, "
        "with injected server errors, rate limits and a few platforms that fail on purpose, then "
        "show what happened. Needs no configuration; exits 0 when only the injected failures failed.",
    )
    demo.add_argument("--count", type=_count, default=50, help="platforms to provision (default 50)")
    demo.add_argument("--failures", type=int, default=None, metavar="N",
                      help="platforms that fail on purpose (default: about 1 in 15, at most 3)")
    demo.add_argument("--concurrency", type=_count, default=16, help="platforms in flight (default 16)")
    demo.add_argument("--phase-seconds", type=float, default=1.0, metavar="S",
                      help="seconds each platform spends CREATING and INSTALLING (default 1)")

    commands.add_parser(
        "emulator", help="run the local emulator on a port (aimlops emulator --help)", add_help=False,
    )

    listing = command("list", "list platforms", "commands:run_list")
    listing.add_argument("--status", help="e.g. DEPLOYED")
    listing.add_argument("--release-name")
    listing.add_argument("--cluster-name")
    listing.add_argument("--version", dest="version")
    listing.add_argument("--type", help="Enterprise or Mini (kubeflow_type)")
    listing.add_argument("--created-by")
    listing.add_argument("--sort", type=_sort_for(_model_fields(PlatformSummary)),
                         help="FIELD:asc|desc, e.g. created_dt:asc (default created_dt:desc)")
    _paging(listing)

    get = command("get", "show platforms in detail", "commands:run_get")
    get.add_argument("release_ids", nargs="+", metavar="RELEASE_ID")

    create = command(
        "create", "create a platform from a request file", "commands:run_create",
        "Create one platform. FILE (YAML or JSON, '-' for stdin) is the API's create request, "
        "e.g.\n\n  ai_ml_ops_platform_create_request:\n    release_name: team-a\n"
        "    ai_ml_ops_platform_type: Enterprise\n    image_id: ...\n    cluster_id: ...\n"
        "    initial_user_email: admin@example.com\n    initial_user_password: ...",
    )
    create.add_argument("file", metavar="FILE")
    create.add_argument("--release-name", help="use this release name instead of the file's")
    create.add_argument("--wait", action="store_true", help="wait until DEPLOYED")

    update = command("update", "change a platform's endpoint type or domain service", "commands:run_update")
    update.add_argument("release_id", metavar="RELEASE_ID")
    update.add_argument("--endpoint-type", choices=("Public", "Private"))
    update.add_argument("--file", metavar="FILE", help="an update request (YAML or JSON)")
    update.add_argument("--wait", action="store_true", help="wait until DEPLOYED again")

    delete = command("delete", "delete platforms", "commands:run_delete")
    delete.add_argument("release_ids", nargs="+", metavar="RELEASE_ID")
    delete.add_argument("--with-k8s", action="store_true", help="also delete the Kubernetes engine")
    delete.add_argument("--wait", action="store_true", help="wait until they are gone")
    delete.add_argument("-y", "--yes", action="store_true",
                        help="do not ask for confirmation (asked only when stdin is a terminal)")

    wait = command("wait", "wait until platforms are DEPLOYED (or gone)", "commands:run_wait")
    wait.add_argument("release_ids", nargs="+", metavar="RELEASE_ID")
    wait.add_argument("--deleted", action="store_true", help="wait until they are gone instead")
    wait.add_argument("--not-found-grace", metavar="S", type=_positive, default=None,
                      help="tolerate 'not found' for S seconds (a platform just created elsewhere); "
                      "by default an unknown id fails at once")

    apply = command(
        "apply", "provision every platform of a plan file", "fleet:run_apply",
        "Provision every platform of PLAN (YAML or JSON): 'defaults' (a partial create request) "
        "merged into each entry of 'platforms', or 'count' platforms named 'name_prefix'000, ... "
        "The whole plan is checked first; nothing is sent if any entry is invalid. Platforms that "
        "already exist (by release name) are adopted, not created again, so a rerun is safe.",
    )
    apply.add_argument("plan", metavar="PLAN")
    apply.add_argument("--concurrency", type=_count, default=16, help="platforms in flight (default 16)")
    apply.add_argument("--no-wait", action="store_true",
                       help="return once every create was accepted, without waiting for DEPLOYED")
    apply.add_argument("--dry-run", action="store_true", help="check the plan and show it; send nothing")

    images = command("images", "list platform images", "commands:run_images")
    images.add_argument("--name", help="filter by image name")
    images.add_argument("--sort", type=_sort_for(_model_fields(Image)), help="FIELD:asc|desc")
    _paging(images)

    nodes = command("nodes", "list a cluster's nodes", "commands:run_nodes")
    nodes.add_argument("cluster_id", metavar="CLUSTER_ID")
    nodes.add_argument("--sort", type=_sort_for(_model_fields(Node)), help="FIELD:asc|desc")
    _paging(nodes)

    storage = command("storage-classes", "list a cluster's storage classes", "commands:run_storage_classes")
    storage.add_argument("cluster_id", metavar="CLUSTER_ID")

    check = command(
        "check-version", "can a cluster's Kubernetes version run the platform? (exit 1 if not)",
        "commands:run_check_version",
    )
    check.add_argument("cluster_id", metavar="CLUSTER_ID")
    check.add_argument("version", metavar="VERSION", help="e.g. 1.28.1")

    validate = command(
        "validate", "check a cluster's namespaces and resources (exit 1 if a check fails)",
        "commands:run_validate",
    )
    validate.add_argument("cluster_id", metavar="CLUSTER_ID")
    validate.add_argument("--namespaces", action="store_true", help="only the namespace check")
    validate.add_argument("--resources", action="store_true", help="only the resource check")
    validate.add_argument("--product-type", default="Enterprise", choices=("Enterprise", "Mini"),
                          help="for the resource check (default Enterprise)")
    completion = commands.add_parser(
        "completion", help="print a shell completion script (bash, zsh or tcsh)",
        description="Print a completion script for the aimlops command. For bash, e.g.:\n\n"
                    "  aimlops completion bash > ~/.local/share/bash-completion/completions/aimlops\n\n"
                    "for zsh, into a directory of your $fpath as _aimlops.",
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
    )
    completion.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    completion.set_defaults(handler=None)
    return parser


def _completion_script(shell: str) -> str:
    import shtab

    return str(shtab.complete(build_parser(), shell=shell))


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=_count, default=None, help="show at most N")
    parser.add_argument("--page-size", type=_page_size, default=20, metavar="N",
                        help=f"items per request, 1 to {PAGE_SIZE_MAX} (default 20)")


# ---------------------------------------------------------------------------------- run


def _command_position(argv: Sequence[str]) -> int | None:
    """Index of the subcommand in ``argv`` (skipping global options and their values)."""
    skip = False
    for index, token in enumerate(argv):
        if skip:
            skip = False
        elif token == "--":
            return index + 1 if index + 1 < len(argv) else None
        elif token.startswith("-"):
            skip = token in _VALUE_OPTIONS
        else:
            return index
    return None


def _run_emulator(argv: Sequence[str]) -> int:
    from ..emulator.__main__ import main as emulator_main

    try:
        return emulator_main(list(argv), prog="aimlops emulator")
    except SystemExit as exc:  # argparse's --help and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def _setup_logging(verbose: int) -> None:
    if verbose <= 0:
        return
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO, format="%(message)s",
                        datefmt="[%X]", handlers=[handler])
    if verbose < 3:
        # aiohttp's and asyncio's own debug chatter says nothing about our requests.
        for noisy in ("asyncio", "aiohttp"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _check_extras() -> None:
    try:
        importlib.import_module("rich")
    except ImportError:
        raise UsageError(f"the aimlops command needs rich and PyYAML: {INSTALL_HINT}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aimlops`` command; returns the exit status (0 ok, 1 failed, 2 usage, 130 interrupted)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    position = _command_position(args_list)
    if position is not None and args_list[position] == "emulator":
        return _run_emulator(args_list[position + 1:])

    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    for name, value in GLOBAL_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, value)

    verbose = int(args.verbose or 0)
    try:
        if args.command == "completion":
            sys.stdout.write(_completion_script(args.shell))
            sys.stdout.flush()
            return EXIT_OK
        _check_extras()
        secret_on_command_line = bool(args.secret_key)
        from .profiles import apply_profile

        apply_profile(args)
        _setup_logging(verbose)
        if secret_on_command_line:
            print(f"{PROG}: warning: --secret-key is visible to other local users (ps, shell "
                  "history); prefer the SCP_SECRET_KEY environment variable", file=sys.stderr)
        from .output import Output

        out = Output(output_format=args.output or "table", progress=args.progress, verbose=verbose)
        module_name, function_name = args.handler.split(":")
        handler: Handler = getattr(importlib.import_module(f"{__package__}.{module_name}"), function_name)
        status = asyncio.run(handler(args, out))
        sys.stdout.flush()  # here, where a closed pipe is still a quiet success
        return status
    except KeyboardInterrupt:
        _error(_INTERRUPTED.get(args.command, "interrupted"))
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (head, grep -q) has all it wanted: a quiet success, as for any Unix filter.
        _silence_stdout()
        return EXIT_OK
    except (UsageError, ValidationError) as exc:
        _report(exc, verbose)
        return EXIT_USAGE
    except AimlopsError as exc:
        _report(exc, verbose)
        return EXIT_FAILED
    except OSError as exc:
        _report(exc, verbose)
        return EXIT_FAILED
    except Exception as exc:
        # A bug, not a user error: still one line, the traceback with -v.
        _report(exc, verbose)
        if not verbose:
            print(f"{PROG}: this looks like a bug; run again with -v for the traceback and "
                  "report it", file=sys.stderr, flush=True)
        return EXIT_FAILED


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush cannot fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def _report(error: BaseException, verbose: int) -> None:
    if verbose:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    _error(str(error) if isinstance(error, UsageError) else describe(error))
    if isinstance(error, PlanError):
        print(f"{PROG}: nothing was sent", file=sys.stderr, flush=True)
