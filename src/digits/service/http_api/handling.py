"""What every HTTP request goes through: deadline, error mapping, metrics, in-flight count.

Endpoints are plain handlers marked with ``endpoint(protocol, method)``; this middleware
gives each a deadline from the ``timeout`` query parameter (seconds), turns domain
errors into ``{"error": "..."}`` with their status, counts and times the request with
the same labels as gRPC's (protocol, method, canonical code), and knows how many run.
"""

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from digits.service.errors import DeadlineExpired, InvalidInput, echo
from digits.service.http_api.status import to_status
from digits.service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[web.StreamResponse]])
DEADLINE = web.RequestKey("deadline", float)  # absolute time.monotonic(), or absent


def endpoint(protocol: str, method: str) -> Callable[[Endpoint], Endpoint]:
    """Mark a handler as an endpoint counted under ``protocol`` and ``method``."""
    def mark(handler: Endpoint) -> Endpoint:
        handler.digits_labels = (protocol, method)  # type: ignore[attr-defined]
        return handler
    return mark


def deadline_of(request: web.Request) -> float | None:
    """The request's deadline (absolute time.monotonic() seconds), if it set a timeout."""
    return request.get(DEADLINE)


class RequestHandling:
    """The middleware; ``wait_idle`` lets a shutdown wait for the requests in flight."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        labels = getattr(request.match_info.handler, "digits_labels", None)
        started = time.perf_counter()
        self.in_flight += 1
        self._idle.clear()
        code = "OK"
        try:
            return await self._answer(request, handler)
        except Exception as error:  # mapped, never raised to the framework
            status, code, message = to_status(error)
            if status == 500:
                log.exception("%s %s failed unexpectedly", request.method, request.path)
            return web.json_response({"error": message}, status=status)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()
            if labels is not None:  # unknown paths are never labels
                self._metrics.requests.labels(*labels, code).inc()
                self._metrics.request_duration.labels(*labels).observe(
                    time.perf_counter() - started)

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        timeout = _timeout(request)
        if timeout is None:
            return await handler(request)
        request[DEADLINE] = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                return await handler(request)
        except TimeoutError:
            raise DeadlineExpired(
                f"the deadline passed: the request's timeout was {timeout:g} s") from None


def _timeout(request: web.Request) -> float | None:
    text = request.query.get("timeout")
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise InvalidInput(f"timeout: {echo(text)} is not a number of seconds; send a "
                           "positive number, e.g. ?timeout=2.5")
    return seconds
