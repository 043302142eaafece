"""Wraps every call of the inference services: domain errors to status codes, request
metrics, in-flight count.

Servicer methods raise ``errors.ServiceError`` subclasses; this is where they become
gRPC status codes (by ``status.to_status``). Anything else becomes INTERNAL with a
generic message and a logged traceback, so bad input can never crash the server or leak
internals.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from digits.service.errors import InvalidInput
from digits.service.grpc_api.status import to_status
from digits.service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class RequestInterceptor(grpc.aio.ServerInterceptor):
    """Maps errors, times and counts the unary calls of the inference services; knows how
    many run. Health and reflection pass through untouched."""

    def __init__(self, metrics: ServiceMetrics, protocols: Mapping[str, str]) -> None:
        """``protocols``: the protocol label of each service, by its full name."""
        self._metrics = metrics
        self._protocols = dict(protocols)
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # per method, built once
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        """Inference calls currently running."""
        return self._in_flight

    async def wait_idle(self) -> None:
        """Return once no inference call is running."""
        await self._idle.wait()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        path: str = details.method
        wrapped = self._wrapped.get(path)
        if wrapped is not None:
            return wrapped
        handler = await continuation(details)
        service, _, method = path[1:].partition("/")
        protocol = self._protocols.get(service)
        if handler is None or protocol is None or handler.unary_unary is None:
            return handler
        # The request is parsed inside the wrapper, so that corrupt bytes are bad input
        # (INVALID_ARGUMENT, counted) rather than the framework's UNKNOWN.
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._wrap(protocol, method, handler.unary_unary, handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
        self._wrapped[path] = wrapped
        return wrapped

    def _wrap(self, protocol: str, method: str, behaviour: Handler,
              deserialize: Callable[[bytes], Any] | None) -> Handler:
        duration = self._metrics.request_duration.labels(protocol=protocol, method=method)
        requests = self._metrics.requests

        def finish(code: grpc.StatusCode, started: float) -> None:
            # Recorded before the status goes out, so a client that has its answer also
            # finds it counted.
            self._leave()
            requests.labels(protocol=protocol, method=method, code=code.name).inc()
            duration.observe(time.perf_counter() - started)

        def parse(data: bytes) -> Any:
            if deserialize is None:
                return data
            try:
                return deserialize(data)
            except DecodeError as error:
                raise InvalidInput(f"request: not a valid {method} request message ({error}); "
                                   f"send a message of the {protocol} protocol") from None

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
