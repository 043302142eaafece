"""The standard grpc.health.v1 service: overall and per model name.

The overall status (service "") and that of each inference service
("digits.v1.Classifier", "inference.GRPCInferenceService") are SERVING while at least
one model version is loaded; each model name is SERVING while one
of its versions is. Everything turns NOT_SERVING for good when shutdown begins.
"""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from grpc_health.v1 import health, health_pb2

from digits.service.models.registry import ModelRegistry, RegistryListener

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class DrainingHealthServicer(health.aio.HealthServicer):
    """grpc's health servicer whose Watch streams end when the drain is over.

    A Watch never finishes by itself, so without this a single watching client would
    hold every shutdown for the whole grace period.
    """

    def __init__(self) -> None:
        super().__init__()
        self._watches: set[asyncio.Task[Any]] = set()
        self._draining = False

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        """Stream status changes of one service until the client or the drain ends it."""
        watch = asyncio.ensure_future(super().Watch(request, context))
        self._watches.add(watch)
        try:
            await watch
        except asyncio.CancelledError:
            if not watch.cancelled() or not self._draining:
                raise
        finally:
            self._watches.discard(watch)

    async def enter_graceful_shutdown(self) -> None:
        """NOT_SERVING for every service, for good; Watch streams may be ended from now on."""
        self._draining = True
        await super().enter_graceful_shutdown()

    def end_watches(self) -> None:
        """End every Watch stream normally (they have seen NOT_SERVING already)."""
        for watch in self._watches:
            watch.cancel()


class HealthReporter(RegistryListener):
    """Keeps the health service in step with which models can serve (a registry listener)."""

    def __init__(self, default_model: str, services: Sequence[str] = ()) -> None:
        """``services``: the inference services, which are SERVING with the server."""
        self.servicer = DrainingHealthServicer()
        self._default_model = default_model
        self._services = tuple(services)
        self._last: dict[str, bool] | None = None

    async def start(self) -> None:
        """Everything NOT_SERVING until a model loads."""
        await self.update({self._default_model: False})

    async def on_change(self, registry: ModelRegistry) -> None:
        await self.update({self._default_model: False, **registry.readiness()})

    async def update(self, models: Mapping[str, bool]) -> None:
        """Set each model name's status and the overall one (any model serving)."""
        if models == self._last:
            return
        self._last = dict(models)
        overall = SERVING if any(models.values()) else NOT_SERVING
        for service in ("", *self._services):
            await self.servicer.set(service, overall)
        for name, serving in models.items():
            await self.servicer.set(name, SERVING if serving else NOT_SERVING)

    async def shut_down(self) -> None:
        """NOT_SERVING for every service, for good (the start of a graceful shutdown)."""
        await self.servicer.enter_graceful_shutdown()
