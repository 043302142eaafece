"""Wraps every Classifier call: domain errors to status codes, request metrics, in-flight count.

Servicer methods raise ``errors.ServiceError`` subclasses; this is where they become
gRPC status codes (by ``status.to_status``). Anything else becomes INTERNAL with a
generic message and a logged traceback, so bad input can never crash the server or leak
internals.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from digits.api import CLASSIFIER_SERVICE
from digits.service.errors import InvalidInput
from digits.service.grpc_api.status import to_status
from digits.service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

_SERVICE_PREFIX = f"/{CLASSIFIER_SERVICE}/"
Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class RequestInterceptor(grpc.aio.ServerInterceptor):
    """Maps errors, times and counts the Classifier's unary calls; knows how many run."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        """Classifier calls currently running."""
        return self._in_flight

    async def wait_idle(self) -> None:
        """Return once no Classifier call is running."""
        await self._idle.wait()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or not method.startswith(_SERVICE_PREFIX) or (
                handler.unary_unary is None):
            return handler
        # The request is parsed inside the wrapper, so that corrupt bytes are bad input
        # (INVALID_ARGUMENT, counted) rather than the framework's UNKNOWN.
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(method[len(_SERVICE_PREFIX):], handler.unary_unary,
                       handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, method: str, behaviour: Handler,
              deserialize: Callable[[bytes], Any] | None) -> Handler:
        duration = self._metrics.request_duration.labels(method=method)
        requests = self._metrics.requests

        def finish(code: grpc.StatusCode, started: float) -> None:
            # Recorded before the status goes out, so a client that has its answer also
            # finds it counted.
            self._leave()
            requests.labels(method=method, code=code.name).inc()
            duration.observe(time.perf_counter() - started)

        def parse(data: bytes) -> Any:
            if deserialize is None:
                return data
            try:
                return deserialize(data)
            except DecodeError as error:
                raise InvalidInput(f"request: not a valid {method} request message ({error}); "
                                   "send a message built from protos/digits/v1") from None

        async def handle(data: bytes, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            self._enter()
            try:
                response = await behaviour(parse(data), context)
            except asyncio.CancelledError:
                # The client cancelled, its deadline passed, or the grace period ended.
                remaining = context.time_remaining()
                expired = remaining is not None and remaining <= 0
                finish(grpc.StatusCode.DEADLINE_EXCEEDED if expired
                       else grpc.StatusCode.CANCELLED, started)
                raise
            except Exception as error:
                code, message = to_status(error)
                if code == grpc.StatusCode.INTERNAL:
                    log.exception("%s failed unexpectedly", method)
                else:
                    log.debug("%s: %s: %s", method, code.name, message)
                finish(code, started)
                await context.abort(code, message)
                raise  # abort() raises; this only runs if it ever stops doing so
            finish(grpc.StatusCode.OK, started)
            return response

        return handle

    def _enter(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()
