"""Waiting for a condition by polling it, with a bound and a message naming what was awaited."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

Value = TypeVar("Value")
WAIT_SECONDS = 30.0


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str,
                   timeout: float = WAIT_SECONDS) -> None:
    """Poll the async ``condition`` until true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def wait_until(check: Callable[[], Value | None], *, seconds: float, what: str,
               period: float = 0.05,
               abort: Callable[[], str | None] = lambda: None) -> Value:
    """Poll ``check`` until it returns something truthy, and return that.

    Fails after ``seconds``, or as soon as ``abort`` returns a reason (a process that
    exited, say), naming ``what`` was awaited and the reason.
    """
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        reason = abort()
        if reason or time.monotonic() > deadline:
            raise AssertionError(f"gave up after {seconds:.0f} s waiting for {what}"
                                 + (f": {reason}" if reason else ""))
        time.sleep(period)
