"""Provision a small fleet with provision_many on the embedded emulator: progress, results, and a safe rerun.

    python examples/bulk_provision.py              # 12 platforms, two of them fail on purpose
    python examples/bulk_provision.py --count 50

Against the real service, build the client with ``AimlopsClient()`` (endpoint and keys from
``AIMLOPS_ENDPOINT`` / ``SCP_ACCESS_KEY`` / ``SCP_SECRET_KEY`` / ``SCP_ACCOUNT_ID``), keep the
default poll settings, and pass your own create requests.
"""

from __future__ import annotations

import argparse
import asyncio

from aimlops_async import AimlopsClient, ProvisionEvent
from aimlops_async.emulator import Emulator

FINAL_KINDS = {"deployed", "failed", "error"}


def show(event: ProvisionEvent) -> None:
    """Print one line when a platform is created or adopted, and when it is done."""
    if event.kind in FINAL_KINDS or event.kind in ("created", "adopted"):
        done = event.totals.deployed + event.totals.failed
        note = f"  ({event.error})" if event.error is not None else ""
        print(f"[{done:>3}/{event.totals.total}] {event.release_name:<12} {event.kind:<8}"
              f" {event.state or ''}{note}")


async def main(count: int) -> None:
    # Platforms whose names end in -003 or -007 end in FAILED, to show failures being reported.
    async with Emulator(
        creating_seconds=1.0, installing_seconds=1.0, fail_pattern=r"-00[37]$"
    ) as emu, AimlopsClient(
        emu.url, emu.credentials, poll_delay=0.25, poll_max_delay=1.0
    ) as client:
        requests = [emu.sample_create_request(f"fleet-{index:03d}") for index in range(count)]

        results = await client.platforms.provision_many(requests, on_event=show)

        deployed = [result for result in results if result.ok]
        print(f"\n{len(deployed)} of {len(results)} DEPLOYED with {client.stats.calls} API calls")
        for result in results:
            if not result.ok:
                print(f"  {result.release_name}: {type(result.error).__name__}: {result.error}")

        # Running the same requests again is safe: every platform is adopted, nothing is created.
        calls_before = client.stats.calls
        again = await client.platforms.provision_many(requests)
        created = sum(result.created for result in again)
        print(f"rerun: {created} created, {len(again) - created} adopted, "
              f"{client.stats.calls - calls_before} API calls")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=12, help="platforms to provision (default: 12)")
    asyncio.run(main(parser.parse_args().count))
