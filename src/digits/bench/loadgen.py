"""The load generator: concurrent clients in a process of their own, for a set window.

It imports neither TensorFlow nor the server, so a client process stays small and does not
share a GIL with the server it measures. Requests are serialised in advance; responses
are parsed only to check that every image got its prediction (``transports``).
"""

import asyncio
import resource
import time

from digits.bench.plan import LoadPlan, LoadResult
from digits.bench.transports import Sender, senders

__all__ = ["LoadPlan", "LoadResult", "drive", "run_plan"]


def drive(plan: LoadPlan) -> LoadResult:
    """Run the plan to completion (entry point of a client process)."""
    cpu_before = _cpu_seconds()
    result = asyncio.run(run_plan(plan))
    result.cpu_seconds = _cpu_seconds() - cpu_before
    return result


async def run_plan(plan: LoadPlan) -> LoadResult:
    """Run the plan's clients in the running event loop; CPU time is left at 0."""
    result = LoadResult(window=plan.stop_at - plan.start_at)
    async with senders(plan) as sending:
        await asyncio.gather(*(
            _client(plan, sending[index % len(sending)], index, result)
            for index in range(plan.concurrency)))
    return result


async def _client(plan: LoadPlan, send: Sender, index: int, result: LoadResult) -> None:
    """One client: send, wait for the answer, send again, until stop_at."""
    sent = index
    while time.monotonic() < plan.stop_at:
        began = time.monotonic()
        code = await send(sent % len(plan.payloads))
        sent += 1
        ended = time.monotonic()
        if code != "OK":
            result.errors[code] = result.errors.get(code, 0) + 1
        elif plan.start_at <= ended <= plan.stop_at:
            result.requests += 1
            result.images += plan.images_per_request
            result.latencies.append(ended - began)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
